package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// parSigner signs what client "jar" sends: request objects (RFC 9101) and its
// private_key_jwt assertions, with one ES256 key registered in the seed.
type parSigner struct {
	t   *testing.T
	key *ecdsa.PrivateKey
}

func (p parSigner) sign(typ string, claims map[string]any) string {
	p.t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: p.key, KeyID: "jar-1"}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		p.t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		p.t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// auth is the client's authentication at an endpoint of s (private_key_jwt).
func (p parSigner) auth(s *server) url.Values {
	now := time.Now()
	a := p.sign("JWT", map[string]any{"iss": "jar", "sub": "jar", "aud": s.issuer("acme"), "jti": rand.Text(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
}

// A client pushes a signed request object (PAR + JAR) to a real server, sends the
// browser with the request_uri alone, and gets tokens for the code; the
// request_uri works once; on both stores.
func TestPARAndJAR_SignedPushedRequestToTokens(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p := parSigner{t: t, key: key}
		jwk, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "jar-1", Algorithm: "ES256", Use: "sig"})
		s := start(t, options{db: db, seed: seedWith(t, "      - id: svc\n", `      - id: jar
        name: Signed Requests
        jwks: {"keys": [`+string(jwk)+`]}
        redirect_uris: [`+callback+`]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
      - id: pushonly
        redirect_uris: [`+callback+`]
        grant_types: [authorization_code]
        scopes: [openid]
        require_pushed_authorization_requests: true
      - id: svc
`)})
		mdReq, _ := http.NewRequest("GET", s.issuer("acme")+"/.well-known/openid-configuration", nil)
		md := do(t, mdReq)
		parURL, _ := md.body["pushed_authorization_request_endpoint"].(string)
		if parURL != s.issuer("acme")+"/protocol/openid-connect/ext/par/request" || md.body["request_parameter_supported"] != true {
			t.Fatalf("discovery: %s", md.raw)
		}
		now := time.Now()
		object := p.sign("oauth-authz-req+jwt", map[string]any{"iss": "jar", "aud": s.issuer("acme"), "client_id": "jar",
			"exp": now.Add(time.Minute).Unix(), "nbf": now.Unix(), "jti": rand.Text(),
			"response_type": "code", "redirect_uri": callback, "scope": "openid offline_access", "state": "signed",
			"nonce": "n-signed", "code_challenge": challenge, "code_challenge_method": "S256"})
		pushed := p.auth(s)
		pushed.Set("client_id", "jar")
		pushed.Set("request", object)
		r := post(t, parURL, "", pushed)
		uri := r.str("request_uri")
		if r.status != 201 || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") || r.body["expires_in"] != float64(60) {
			t.Fatalf("PAR = %d %s", r.status, r.raw)
		}
		authURL := s.issuer("acme") + "/protocol/openid-connect/auth?" + url.Values{"client_id": {"jar"}, "request_uri": {uri}}.Encode()
		b := newBrowser(t)
		login := b.get(authURL)
		if login.status != 200 || !strings.Contains(login.body, `name="password"`) || !strings.Contains(login.body, "Signed Requests") {
			t.Fatalf("no login page (%d): %s", login.status, login.body)
		}
		done := b.do(b.loginRequest(login, authURL, "username", "alice", "password", alicePass))
		if done.location == nil || done.location.Query().Get("state") != "signed" || done.location.Query().Get("code") == "" {
			t.Fatalf("login did not return to the app (%d %v): %s", done.status, done.location, done.body)
		}
		redeem := p.auth(s)
		for k, v := range form("grant_type", "authorization_code", "code", done.location.Query().Get("code"),
			"redirect_uri", callback, "code_verifier", verifier) {
			redeem[k] = v
		}
		tok := post(t, s.tokenURL(), "", redeem)
		if tok.status != 200 || tok.str("access_token") == "" || tok.str("id_token") == "" || !strings.HasPrefix(tok.str("refresh_token"), "lk_rt_") ||
			tok.str("scope") != "openid offline_access" {
			t.Fatalf("token = %d %s", tok.status, tok.raw)
		}
		if n, _ := jwtClaim(t, tok.str("id_token"), "nonce").(string); n != "n-signed" {
			t.Fatalf("ID token nonce %q", n)
		}
		// The request_uri is spent: the same link again gets the error page.
		again := b.get(authURL)
		if again.status != 400 || again.location != nil || strings.Contains(again.body, `name="password"`) {
			t.Fatalf("reused request_uri: %d %v", again.status, again.location)
		}

		// A client that must push (require_pushed_authorization_requests) gets
		// the error page for a request it did not push, and a code for one it did.
		direct := b.get(s.authURL("pushonly", "scope", "openid"))
		if direct.status != 400 || direct.location != nil {
			t.Fatalf("unpushed request of pushonly: %d %v", direct.status, direct.location)
		}
		r = post(t, parURL, "", form("client_id", "pushonly", "response_type", "code", "redirect_uri", callback, "scope", "openid",
			"state", "po", "code_challenge", challenge, "code_challenge_method", "S256"))
		if r.status != 201 {
			t.Fatalf("PAR of pushonly = %d %s", r.status, r.raw)
		}
		done = b.get(s.issuer("acme") + "/protocol/openid-connect/auth?" + url.Values{"client_id": {"pushonly"}, "request_uri": {r.str("request_uri")}}.Encode())
		if done.location == nil || done.location.Query().Get("state") != "po" || done.location.Query().Get("code") == "" {
			t.Fatalf("pushed request of pushonly: %d %v", done.status, done.location)
		}
	})
}
