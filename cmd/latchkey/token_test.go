package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testIssuer serves discovery and a JWKS of freshly made keys, like a Latchkey realm.
type testIssuer struct {
	url     string // the OIDC realm: /.well-known/openid-configuration
	rfc8414 string // a realm with only /.well-known/oauth-authorization-server
	ec      *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: ec.Public(), KeyID: "ec-1", Algorithm: string(jose.ES256), Use: "sig"},
		{Key: ed.Public(), KeyID: "ed-1", Algorithm: string(jose.EdDSA), Use: "sig"},
	}})
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	serveJSON := func(path, body string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body))
		})
	}
	ti := &testIssuer{url: srv.URL + "/realms/dev", rfc8414: srv.URL + "/realms/oauth", ec: ec, ed: ed}
	serveJSON("/jwks", string(jwks))
	serveJSON("/realms/dev/.well-known/openid-configuration", `{"issuer":"`+ti.url+`","jwks_uri":"`+srv.URL+`/jwks"}`)
	serveJSON("/realms/oauth/.well-known/oauth-authorization-server", `{"issuer":"`+ti.rfc8414+`","jwks_uri":"`+srv.URL+`/jwks"}`)
	serveJSON("/realms/broken/.well-known/openid-configuration", `{"issuer":"`+srv.URL+`/realms/broken","jwks_uri":"`+srv.URL+`/realms/broken/jwks"}`)
	serveJSON("/realms/broken/jwks", `<html>not a key set</html>`)
	return ti
}

// claims are those of a Latchkey access token from this issuer, valid for 5 minutes.
func (ti *testIssuer) claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": ti.url, "sub": "user-42", "aud": "api", "client_id": "demo-web", "scope": "openid profile",
		"jti": "jti-1", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

// sign makes a JWS with go-jose, as the server does.
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid, typ string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handMade builds a compact JWS from a raw header, claims and signing function,
// for the tokens no honest library will make.
func handMade(header string, claims map[string]any, mac func(signingInput string) []byte) string {
	payload, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(mac(in))
}

func TestTokenInspect_DecodeOnlySaysNothingIsVerified(t *testing.T) {
	ti := newTestIssuer(t)
	valid := sign(t, jose.ES256, ti.ec, "ec-1", "at+jwt", ti.claims())
	// Decoding must also show the tokens go-jose refuses to parse.
	unsigned := handMade(`{"alg":"none","typ":"at+jwt"}`, ti.claims(), func(string) []byte { return nil })
	for _, tok := range []string{valid, unsigned} {
		code, out, errOut := runCLI(t, env(), "token", "inspect", tok)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		for _, want := range []string{`"sub": "user-42"`, `"client_id": "demo-web"`, `"typ": "at+jwt"`, "Decoded only: nothing above is verified."} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "signature:") {
			t.Errorf("decode-only output claims a check passed:\n%s", out)
		}
	}
}

func TestTokenInspect_ValidTokenPassesEveryCheck(t *testing.T) {
	ti := newTestIssuer(t)
	cases := []struct {
		name, issuer, token string
	}{
		{"ES256", ti.url, sign(t, jose.ES256, ti.ec, "ec-1", "at+jwt", ti.claims())},
		{"EdDSA and a trailing slash", ti.url + "/", sign(t, jose.EdDSA, ti.ed, "ed-1", "application/at+jwt", ti.claims())},
	}
	// The RFC 8414 fallback, for an issuer without OIDC discovery.
	c := ti.claims()
	c["iss"] = ti.rfc8414
	cases = append(cases, struct{ name, issuer, token string }{"RFC 8414 metadata", ti.rfc8414, sign(t, jose.ES256, ti.ec, "ec-1", "at+jwt", c)})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env(), "token", "inspect", tc.token, "--issuer", tc.issuer)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
			}
			for _, want := range []string{"signature: ok", "exp:       ok: expires in ", "nbf:       ok", "iss:       ok", "typ:       ok"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "FAILED") || strings.Contains(out, "Decoded only") {
				t.Errorf("output:\n%s", out)
			}
		})
	}
}

// Each bad token fails the check it should, with exit 1 and the usual one line.
func TestTokenInspect_BadTokensFailTheirCheck(t *testing.T) {
	ti := newTestIssuer(t)
	expired := ti.claims()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	future := ti.claims()
	future["nbf"] = time.Now().Add(time.Hour).Unix()
	wrongIss := ti.claims()
	wrongIss["iss"] = "https://evil.example/realms/dev"

	// The algorithm-confusion attack: an HMAC keyed with the issuer's public key,
	// which an attacker can fetch from the JWKS.
	der, err := x509.MarshalPKIXPublicKey(ti.ec.Public())
	if err != nil {
		t.Fatal(err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs256 := handMade(`{"alg":"HS256","typ":"at+jwt","kid":"ec-1"}`, ti.claims(), func(in string) []byte {
		m := hmac.New(sha256.New, publicPEM)
		m.Write([]byte(in))
		return m.Sum(nil)
	})

	cases := []struct {
		name, token, want string
	}{
		{"expired", sign(t, jose.ES256, ti.ec, "ec-1", "at+jwt", expired), "exp: expired 1h0m"},
		{"not yet valid", sign(t, jose.ES256, ti.ec, "ec-1", "at+jwt", future), "nbf: not valid for another"},
		{"wrong issuer", sign(t, jose.ES256, ti.ec, "ec-1", "at+jwt", wrongIss), `iss: issued by "https://evil.example/realms/dev"`},
		{"ID token typ", sign(t, jose.ES256, ti.ec, "ec-1", "JWT", ti.claims()), `typ: typ is "JWT", as ID tokens`},
		{"unknown kid", sign(t, jose.ES256, ti.ec, "nope", "at+jwt", ti.claims()), `signature: no signing key with kid "nope"`},
		{"alg none", handMade(`{"alg":"none","typ":"at+jwt","kid":"ec-1"}`, ti.claims(), func(string) []byte { return nil }), `signature: alg "none"`},
		{"HS256 keyed with the public key", hs256, `signature: alg "HS256" is a shared-secret MAC`},
		{"alg not the key's", sign(t, jose.ES256, ti.ec, "ed-1", "at+jwt", ti.claims()), `signature: the token says alg "ES256" but key "ed-1" is for "EdDSA"`},
		{"signed by another key", sign(t, jose.EdDSA, ed25519.NewKeyFromSeed(make([]byte, 32)), "ed-1", "at+jwt", ti.claims()), `signature: does not verify with key "ed-1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env(), "token", "inspect", tc.token, "--issuer", ti.url)
			if code != 1 {
				t.Fatalf("exit %d; want 1\n%s", code, out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "latchkey: token is not valid: ") {
				t.Fatalf("stderr is not the one-line verdict: %q", errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr = %q, want it to contain %q", errOut, tc.want)
			}
			check, _, _ := strings.Cut(tc.want, ":")
			if !strings.Contains(out, check+":") || !strings.Contains(out, "FAILED") {
				t.Fatalf("no FAILED %s line:\n%s", check, out)
			}
			if strings.Contains(errOut, tc.token) {
				t.Fatal("the error echoes the token")
			}
		})
	}
}

// Failures before any check: one line naming what is wrong, never the token.
func TestTokenInspect_UnusableInputIsOneLine(t *testing.T) {
	ti := newTestIssuer(t)
	valid := sign(t, jose.ES256, ti.ec, "ec-1", "at+jwt", ti.claims())
	opaque := "lk_at_" + rand.Text()
	unreachable := "http://" + freeAddr(t) + "/realms/dev"
	broken := strings.Replace(ti.url, "/realms/dev", "/realms/broken", 1)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"opaque token", []string{opaque}, "not a JWT"},
		{"opaque token with issuer", []string{opaque, "--issuer", ti.url}, "can only be checked through introspection"},
		{"unreachable issuer", []string{valid, "--issuer", unreachable}, "cannot reach the issuer: Get \"" + unreachable + "/.well-known/openid-configuration\""},
		{"no discovery", []string{valid, "--issuer", ti.url + "/nowhere"}, "GET " + ti.url + "/nowhere/.well-known/oauth-authorization-server: 404"},
		{"JWKS not JSON", []string{valid, "--issuer", broken}, "GET " + broken + "/jwks: not the JSON expected"},
		{"issuer not a URL", []string{valid, "--issuer", "realms/dev"}, `--issuer "realms/dev": want an http(s) URL`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env(), append([]string{"token", "inspect"}, tc.args...)...)
			if code != 1 {
				t.Fatalf("exit %d; want 1\n%s", code, out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "latchkey: ") {
				t.Fatalf("stderr is not one line: %q", errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr = %q, want it to contain %q", errOut, tc.want)
			}
			if strings.Contains(errOut, tc.args[0]) {
				t.Fatal("the error echoes the token")
			}
		})
	}
}

// The clock-skew allowance, with the clock held still.
func TestTokenInspect_ExpAndNbfAllowSixtySecondsOfSkew(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := decodeJWT(handMade(`{"alg":"ES256"}`, map[string]any{"exp": at.Unix(), "nbf": at.Unix()}, func(string) []byte { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		check func(now time.Time) (string, error)
		now   time.Time
		want  string // the note when ok, or the start of the failure
		fails bool
	}{
		{"exp ahead", tok.checkExp, at.Add(-5 * time.Minute), "expires in 5m0s (at 2030-01-02T03:04:05Z)", false},
		{"exp just passed", tok.checkExp, at.Add(59 * time.Second), "expired 59s ago, within the 1m0s clock-skew allowance", false},
		{"exp beyond skew", tok.checkExp, at.Add(61 * time.Second), "expired 1m1s ago (at 2030-01-02T03:04:05Z)", true},
		{"nbf within skew", tok.checkNbf, at.Add(-59 * time.Second), "", false},
		{"nbf beyond skew", tok.checkNbf, at.Add(-61 * time.Second), "not valid for another 1m1s", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			note, err := tc.check(tc.now)
			if tc.fails {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || note != tc.want {
				t.Fatalf("= %q, %v; want %q", note, err, tc.want)
			}
		})
	}
}
