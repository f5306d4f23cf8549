package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage"
)

// The keys of the "jar" client, which signs request objects (RFC 9101) and
// authenticates with private_key_jwt; strangerKey is registered nowhere.
var (
	jarRSA, _      = rsa.GenerateKey(rand.Reader, 2048)
	jarEC, _       = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	strangerKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
)

// addPARClients registers the clients these tests use beside the seed's: "jar"
// (keys for request objects and private_key_jwt, two redirect URIs) and "parspa"
// (public, must push its requests).
func addPARClients(t *testing.T, inst *instance) {
	t.Helper()
	now := inst.clock.Now().UTC().Truncate(time.Microsecond)
	for _, c := range []storage.Client{
		jarClient(),
		{Realm: "acme", ID: "parspa", RedirectURIs: []string{callback}, RequirePushedAuthorizationRequests: true,
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile"}},
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := inst.store.CreateClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
}

// jarClient is the client that signs request objects with jarRSA and jarEC.
func jarClient() storage.Client {
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &jarRSA.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: &jarEC.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	}})
	return storage.Client{Realm: "acme", ID: "jar", Name: "Signed Requests", JWKS: set, RedirectURIs: []string{callback, "http://127.0.0.1:9999/other"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "offline_access"}}
}

func (i *instance) parURL(realm string) string { return i.issuer(realm) + parPath }

// pushParams are a good authorization request of client web, with kv overriding
// or (when the value is "") removing parameters.
func pushParams(kv ...string) url.Values {
	v := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {callback},
		"scope": {"openid profile"}, "state": {"pushed"}, "nonce": {"n-pushed"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			v.Del(kv[i])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v
}

// push sends a pushed authorization request, failing unless it is taken.
func (i *instance) push(t *testing.T, basic string, params url.Values) string {
	t.Helper()
	r := post(t, i.parURL("acme"), basic, params)
	if r.status != 201 || r.body["expires_in"] != float64(60) || !strings.HasPrefix(str(r, "request_uri"), requestURIPrefix) {
		t.Fatalf("PAR = %d %s", r.status, r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("PAR headers %v", r.header)
	}
	return str(r, "request_uri")
}

// pushedAuthURL is the authorization request that uses a request_uri, with kv added.
func pushedAuthURL(inst *instance, client, requestURI string, kv ...string) string {
	v := url.Values{"client_id": {client}, "request_uri": {requestURI}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return inst.issuer("acme") + authPath + "?" + v.Encode()
}

// wantErrorPage checks that the browser was shown the error page and sent nowhere.
func wantErrorPage(t *testing.T, what string, p page) {
	t.Helper()
	if p.status != 400 || p.location != nil || !strings.Contains(p.body, "<h1>") || strings.Contains(p.body, `name="password"`) {
		t.Errorf("%s: %d location %v; want the error page", what, p.status, p.location)
	}
}

// A pushed request takes a browser through sign-in to a code and tokens, for a
// confidential client (Basic) and a public one (client_id alone); its parameters
// replace the query's; its request_uri is then spent.
func TestPAR_PushedRequestSignsInToTokens(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		// Confidential client: the request_uri survives the login form's round trip.
		uri := inst.push(t, webBasic, pushParams("scope", "openid offline_access"))
		b := newBrowser(t)
		// Parameters in the query beside request_uri are ignored (RFC 9126 §4).
		loc := b.signIn(pushedAuthURL(inst, "web", uri, "state", "from-query", "scope", "openid email"), "alice", "alice-password-1")
		q := loc.Query()
		if q.Get("state") != "pushed" || q.Get("iss") != inst.issuer("acme") || q.Get("code") == "" || loc.Host+loc.Path != "127.0.0.1:9999/cb" {
			t.Fatalf("callback %s", loc)
		}
		tok := inst.redeem(t, webBasic, q.Get("code"))
		if tok.status != 200 || str(tok, "id_token") == "" || str(tok, "refresh_token") == "" || str(tok, "scope") != "openid offline_access" {
			t.Fatalf("redeem = %d %s", tok.status, tok.raw)
		}
		_, claims := verifyLocally(t, fetchJWKS(t, inst, "acme"), str(tok, "id_token"))
		if claims["nonce"] != "n-pushed" {
			t.Fatalf("ID token nonce %v", claims["nonce"])
		}
		// Used once: the same request_uri again gets the error page, even signed in.
		wantErrorPage(t, "reused request_uri", b.get(pushedAuthURL(inst, "web", uri)))

		// Public client, by client_id; this browser is signed in already (SSO).
		uri = inst.push(t, "", pushParams("client_id", "spa"))
		p := b.get(pushedAuthURL(inst, "spa", uri))
		if p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatalf("public pushed request: %d %v %s", p.status, p.location, p.body)
		}
		tok = post(t, inst.tokenURL("acme"), "", form("grant_type", "authorization_code", "code", p.location.Query().Get("code"),
			"redirect_uri", callback, "code_verifier", verifier, "client_id", "spa"))
		if tok.status != 200 || str(tok, "access_token") == "" {
			t.Fatalf("public redeem = %d %s", tok.status, tok.raw)
		}
	})
}

// Every request_uri that is not a live one the client pushed gets the error page.
func TestPAR_RequestURIRefusals(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		// Expired: 60 seconds.
		uri := inst.push(t, webBasic, pushParams())
		inst.clock.Add(61 * time.Second)
		wantErrorPage(t, "expired", b.get(pushedAuthURL(inst, "web", uri)))
		// Pushed by web, used with client_id=spa: refused (and spent).
		uri = inst.push(t, webBasic, pushParams())
		wantErrorPage(t, "another client's", b.get(pushedAuthURL(inst, "spa", uri)))
		wantErrorPage(t, "another client's, then its own", b.get(pushedAuthURL(inst, "web", uri)))
		// Never given out.
		wantErrorPage(t, "unknown", b.get(pushedAuthURL(inst, "web", requestURIPrefix+strings.Repeat("A", 43))))
		wantErrorPage(t, "malformed", b.get(pushedAuthURL(inst, "web", requestURIPrefix+"short")))
		// request and request_uri together (RFC 9101 §5).
		uri = inst.push(t, webBasic, pushParams())
		wantErrorPage(t, "request and request_uri", b.get(pushedAuthURL(inst, "web", uri, "request", "eyJ.e30.x")))
		// A request_uri from elsewhere is not fetched: request_uri_not_supported, at
		// the registered redirect URI the query names.
		p := b.get(pushedAuthURL(inst, "web", "https://evil.example/req", "redirect_uri", callback, "state", "s1"))
		if p.location == nil || p.location.Query().Get("error") != "request_uri_not_supported" || p.location.Query().Get("state") != "s1" {
			t.Errorf("remote request_uri: %d %v", p.status, p.location)
		}
		// Without a usable redirect URI in the query: the error page.
		wantErrorPage(t, "remote request_uri, no redirect", b.get(pushedAuthURL(inst, "web", "https://evil.example/req", "redirect_uri", "https://evil.example/cb")))
	})
}

// The PAR endpoint refuses what the authorization endpoint would, as JSON (RFC
// 9126 §2.3), and authenticates clients as the token endpoint does.
func TestPAR_BadPushes(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		for name, tc := range map[string]struct {
			basic  string
			params url.Values
			status int
			code   protocol.Code
		}{
			"bad redirect_uri":         {webBasic, pushParams("redirect_uri", "https://evil.example/cb"), 400, protocol.InvalidRequest},
			"redirect_uri prefix":      {webBasic, pushParams("redirect_uri", callback+"/x"), 400, protocol.InvalidRequest},
			"request_uri in the body":  {webBasic, pushParams("request_uri", requestURIPrefix+strings.Repeat("A", 43)), 400, protocol.InvalidRequest},
			"unknown scope":            {webBasic, pushParams("scope", "openid admin"), 400, protocol.InvalidScope},
			"implicit":                 {webBasic, pushParams("response_type", "token"), 400, protocol.UnsupportedResponseType},
			"plain PKCE":               {webBasic, pushParams("code_challenge_method", "plain"), 400, protocol.InvalidRequest},
			"public without PKCE":      {"", pushParams("client_id", "spa", "code_challenge", "", "code_challenge_method", ""), 400, protocol.InvalidRequest},
			"malformed state":          {webBasic, pushParams("state", "a\x01b"), 400, protocol.InvalidRequest},
			"client_id not the client": {webBasic, pushParams("client_id", "spa"), 401, protocol.InvalidClient}, // as at the token endpoint
			"wrong secret":             {"web:nope-nope-nope-nope-nope-nope-nope-nope", pushParams(), 401, protocol.InvalidClient},
			"confidential as public":   {"", pushParams(), 401, protocol.InvalidClient},
			"client credentials only":  {"svc:svc-secret-123-0123456789abcdefghijklmnop", pushParams("client_id", "svc"), 400, protocol.InvalidRequest},
		} {
			r := post(t, inst.parURL("acme"), tc.basic, tc.params)
			if r.status != tc.status || r.body["error"] != string(tc.code) || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %d %s; want %d %s", name, r.status, r.raw, tc.status, tc.code)
			}
		}
		if r := do(t, mustReq(t, "GET", inst.parURL("acme")+"?"+pushParams().Encode())); r.status != 405 {
			t.Errorf("GET PAR = %d %s", r.status, r.raw)
		}
	})
}

// A client with require_pushed_authorization_requests gets the error page for
// a request it did not push, and cannot be driven around PAR by a login form
// sealed for an unpushed request.
func TestPAR_RequiredForClient(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addPARClients(t, inst)
		b := newBrowser(t)
		wantErrorPage(t, "unpushed request", b.get(authURL(inst, "acme", "client_id", "parspa")))
		// Without a redirect URI (parspa has one): refused all the same.
		wantErrorPage(t, "unpushed request, no redirect", b.get(authURL(inst, "acme", "client_id", "parspa", "redirect_uri", "")))

		// A login POST carrying a request sealed without Pushed, as a form from
		// before the setting would: refused. The same one with Pushed goes through.
		csrf := strings.Repeat("c", 40)
		forged := func(pushed bool) page {
			req := authRequest{ClientID: "parspa", RedirectURI: callback, Scopes: []string{"openid"}, CodeChallenge: challenge,
				MaxAge: -1, CSRF: csrf, Expires: inst.clock.Now().Add(time.Minute).Unix(), Pushed: pushed}
			body := url.Values{"request": {newBox(masterKey).seal("login", req)}, "username": {"alice"}, "password": {"alice-password-1"}}
			r, _ := http.NewRequest("POST", inst.issuer("acme")+loginPath, strings.NewReader(body.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			r.AddCookie(&http.Cookie{Name: csrfCookie, Value: csrf})
			return newBrowser(t).do(r)
		}
		wantErrorPage(t, "login form of an unpushed request", forged(false))
		if p := forged(true); p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatalf("login form of a pushed request: %d %v %s", p.status, p.location, p.body)
		}

		uri := inst.push(t, "", pushParams("client_id", "parspa"))
		loc := b.signIn(pushedAuthURL(inst, "parspa", uri), "alice", "alice-password-1")
		if loc.Query().Get("code") == "" || loc.Query().Get("state") != "pushed" {
			t.Fatalf("pushed request of parspa: %s", loc)
		}
	})
}

// The same request_uri sent by many browsers at once is used exactly once.
func TestPAR_RequestURIUsedOnceUnderRace(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		for _, n := range []int{2, 5, 100} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				for trial := 0; trial < 3; trial++ {
					uri := inst.push(t, webBasic, pushParams())
					var wg sync.WaitGroup
					pages := make([]page, n)
					start := make(chan struct{})
					for i := range n {
						wg.Add(1)
						go func() {
							defer wg.Done()
							b := newBrowser(t)
							req, _ := http.NewRequest("GET", pushedAuthURL(inst, "web", uri), nil)
							<-start
							pages[i] = b.do(req)
						}()
					}
					close(start)
					wg.Wait()
					logins, refused := 0, 0
					for _, p := range pages {
						switch {
						case p.status == 200 && strings.Contains(p.body, `name="password"`):
							logins++
						case p.status == 400 && p.location == nil:
							refused++
						default:
							t.Errorf("unexpected answer %d %v", p.status, p.location)
						}
					}
					if logins != 1 || refused != n-1 {
						t.Fatalf("%d parties: %d login pages, %d refused; want 1 and %d", n, logins, refused, n-1)
					}
				}
			})
		}
	})
}

// Discovery names the PAR endpoint and what request objects may be signed with
// (RFC 9126 §5, RFC 9101 §10.5); request_uri values from elsewhere are not taken.
func TestDiscovery_PARAndJAR(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		r := do(t, mustReq(t, "GET", inst.issuer("acme")+"/.well-known/openid-configuration"))
		algs, _ := json.Marshal(r.body["request_object_signing_alg_values_supported"])
		if r.body["pushed_authorization_request_endpoint"] != inst.parURL("acme") || r.body["require_pushed_authorization_requests"] != false ||
			r.body["request_parameter_supported"] != true || r.body["request_uri_parameter_supported"] != false ||
			string(algs) != `["RS256","PS256","ES256","ES384","EdDSA"]` {
			t.Fatalf("discovery %s", r.raw)
		}
	})
}
