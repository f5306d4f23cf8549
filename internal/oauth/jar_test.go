package oauth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// signObject signs claims as a request object with key (kid, alg).
func signObject(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("oauth-authz-req+jwt")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
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

// objectClaims are a good request object of client jar at now, changed by mods.
func objectClaims(issuer string, now time.Time, mods ...func(map[string]any)) map[string]any {
	c := map[string]any{"iss": "jar", "aud": issuer, "client_id": "jar", "exp": now.Add(5 * time.Minute).Unix(),
		"nbf": now.Unix(), "iat": now.Unix(), "jti": "j-" + rand.Text(),
		"response_type": "code", "redirect_uri": callback, "scope": "openid profile", "state": "obj",
		"nonce": "n-obj", "code_challenge": challenge, "code_challenge_method": "S256"}
	for _, m := range mods {
		m(c)
	}
	return c
}

// objectCase is one request object and whether it is good.
type objectCase struct {
	name   string
	object string
	good   bool
}

// objectCases are the request objects the tests and the fuzz corpus share.
func objectCases(t testing.TB, issuer string, now time.Time) []objectCase {
	claims := func(mods ...func(map[string]any)) map[string]any { return objectClaims(issuer, now, mods...) }
	rs := func(c map[string]any) string { return signObject(t, jose.RS256, jarRSA, "rsa-1", c) }
	es := func(c map[string]any) string { return signObject(t, jose.ES256, jarEC, "ec-1", c) }
	good := rs(claims())
	parts := strings.Split(good, ".")
	tampered := claims(func(c map[string]any) { c["redirect_uri"] = "http://127.0.0.1:9999/other" })
	tamperedPayload, _ := json.Marshal(tampered)
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))}, nil)
	hsPayload, _ := json.Marshal(claims())
	hsJWS, _ := hs.Sign(hsPayload)
	hsObj, _ := hsJWS.CompactSerialize()
	return []objectCase{
		{"RS256", good, true},
		{"ES256", es(claims()), true},
		{"PS256 with the RS256 key", signObject(t, jose.PS256, jarRSA, "rsa-1", claims()), false},
		{"no nbf", rs(claims(func(c map[string]any) { delete(c, "nbf") })), true},
		{"aud array", rs(claims(func(c map[string]any) { c["aud"] = []string{"https://other.example", issuer} })), true},
		{"tampered", parts[0] + "." + b64url(string(tamperedPayload)) + "." + parts[2], false},
		{"wrong key", signObject(t, jose.ES256, strangerKey, "ec-1", claims()), false},
		{"wrong key, no kid", signObject(t, jose.ES256, strangerKey, "", claims()), false},
		{"alg none", b64url(`{"alg":"none","typ":"oauth-authz-req+jwt"}`) + "." + b64url(string(hsPayload)) + ".", false},
		{"HS256", hsObj, false},
		{"expired", rs(claims(func(c map[string]any) { c["exp"] = now.Add(-time.Second).Unix() })), false},
		{"no exp", rs(claims(func(c map[string]any) { delete(c, "exp") })), false},
		{"not yet valid", rs(claims(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() })), false},
		{"wrong aud", rs(claims(func(c map[string]any) { c["aud"] = "https://elsewhere.example" })), false},
		{"no aud", rs(claims(func(c map[string]any) { delete(c, "aud") })), false},
		{"iss mismatch", rs(claims(func(c map[string]any) { c["iss"] = "web" })), false},
		{"client_id mismatch", rs(claims(func(c map[string]any) { c["client_id"] = "web" })), false},
		{"no client_id", rs(claims(func(c map[string]any) { delete(c, "client_id") })), false},
		{"nested request_uri", rs(claims(func(c map[string]any) { c["request_uri"] = requestURIPrefix + "x" })), false},
		{"typ of an access token", func() string {
			signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: jarRSA, KeyID: "rsa-1"}}, (&jose.SignerOptions{}).WithType("at+jwt"))
			p, _ := json.Marshal(claims())
			j, _ := signer.Sign(p)
			s, _ := j.CompactSerialize()
			return s
		}(), false},
		{"encrypted", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", false},
		{"garbage", "eyJ.x.y", false},
	}
}

// jarAuthURL is an authorization request of client with just client_id and the
// request object, and kv added.
func jarAuthURL(inst *instance, client, object string, kv ...string) string {
	v := url.Values{"client_id": {client}, "request": {object}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return inst.issuer("acme") + authPath + "?" + v.Encode()
}

// jarAssertion authenticates client jar at the token or PAR endpoint (private_key_jwt).
func jarAssertion(t *testing.T, inst *instance) url.Values {
	now := inst.clock.Now()
	a := signObject(t, jose.RS256, jarRSA, "rsa-1", map[string]any{"iss": "jar", "sub": "jar", "aud": inst.issuer("acme"),
		"jti": "a-" + rand.Text(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	return url.Values{"client_assertion_type": {assertionType}, "client_assertion": {a}}
}

func withValues(v url.Values, more url.Values) url.Values {
	for k, vs := range more {
		v[k] = vs
	}
	return v
}

// Request objects at the authorization endpoint: a good one (RS256, ES256)
// signs the user in, with only its own parameters; a bad one never does: it is
// answered invalid_request_object at the redirect URI the query names, if the
// client registered it, else on the error page.
func TestJAR_AtTheAuthorizationEndpoint(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addPARClients(t, inst)
		b := newBrowser(t)
		signedIn := false
		for _, tc := range objectCases(t, inst.issuer("acme"), inst.clock.Now()) {
			if !tc.good {
				// The query names a registered redirect URI and a state: the error goes there.
				p := b.get(jarAuthURL(inst, "jar", tc.object, "redirect_uri", callback, "state", "q"))
				if p.location == nil || p.location.Query().Get("error") != "invalid_request_object" || p.location.Query().Get("state") != "q" ||
					p.location.Query().Has("code") {
					t.Errorf("%s: %d %v; want invalid_request_object at the callback", tc.name, p.status, p.location)
				}
				// The query names none, and jar has two: the error page.
				wantErrorPage(t, tc.name+", no redirect_uri", b.get(jarAuthURL(inst, "jar", tc.object)))
				continue
			}
			// Parameters beside the request object are ignored (RFC 9101 §6.3): this
			// state, scope and redirect URI do not count.
			u := jarAuthURL(inst, "jar", tc.object, "state", "from-query", "scope", "openid offline_access", "redirect_uri", "http://127.0.0.1:9999/other",
				"response_mode", "fragment")
			var loc *url.URL
			if signedIn {
				p := b.get(u)
				if p.location == nil {
					t.Fatalf("%s: %d %s", tc.name, p.status, p.body)
				}
				loc = p.location
			} else {
				loc, signedIn = b.signIn(u, "alice", "alice-password-1"), true
			}
			q := loc.Query()
			if loc.Path != "/cb" || q.Get("state") != "obj" || q.Get("code") == "" || loc.Fragment != "" {
				t.Fatalf("%s: callback %s", tc.name, loc)
			}
			tok := post(t, inst.tokenURL("acme"), "", withValues(form("grant_type", "authorization_code", "code", q.Get("code"),
				"redirect_uri", callback, "code_verifier", verifier), jarAssertion(t, inst)))
			if tok.status != 200 || str(tok, "scope") != "openid profile" || str(tok, "id_token") == "" {
				t.Fatalf("%s: redeem = %d %s", tc.name, tok.status, tok.raw)
			}
			if _, claims := verifyLocally(t, fetchJWKS(t, inst, "acme"), str(tok, "id_token")); claims["nonce"] != "n-obj" {
				t.Fatalf("%s: nonce %v", tc.name, claims["nonce"])
			}
		}
		// A client without keys cannot send request objects.
		obj := signObject(t, jose.RS256, jarRSA, "rsa-1", objectClaims(inst.issuer("acme"), inst.clock.Now(), func(c map[string]any) {
			c["iss"], c["client_id"] = "web", "web"
		}))
		p := b.get(jarAuthURL(inst, "web", obj, "redirect_uri", callback, "state", "q"))
		if p.location == nil || p.location.Query().Get("error") != "invalid_request_object" {
			t.Errorf("client without jwks: %d %v", p.status, p.location)
		}
		// An unregistered redirect URI in a good object: the error page.
		obj = signObject(t, jose.ES256, jarEC, "ec-1", objectClaims(inst.issuer("acme"), inst.clock.Now(), func(c map[string]any) {
			c["redirect_uri"] = "https://evil.example/cb"
		}))
		wantErrorPage(t, "object with an unregistered redirect_uri", b.get(jarAuthURL(inst, "jar", obj, "redirect_uri", callback)))
	})
}

// Request objects in pushed requests: a good one is pushed and signs in; a bad
// one is refused with 400 invalid_request_object.
func TestJAR_InPushedRequests(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addPARClients(t, inst)
		b := newBrowser(t)
		for i, tc := range objectCases(t, inst.issuer("acme"), inst.clock.Now()) {
			// Parameters beside the request object are ignored: this state does not count.
			r := post(t, inst.parURL("acme"), "", withValues(form("client_id", "jar", "request", tc.object, "state", "from-body"), jarAssertion(t, inst)))
			if !tc.good {
				if r.status != 400 || r.body["error"] != "invalid_request_object" {
					t.Errorf("%s: %d %s; want 400 invalid_request_object", tc.name, r.status, r.raw)
				}
				continue
			}
			if r.status != 201 {
				t.Fatalf("%s: PAR = %d %s", tc.name, r.status, r.raw)
			}
			u := pushedAuthURL(inst, "jar", str(r, "request_uri"))
			var loc *url.URL
			if i == 0 {
				loc = b.signIn(u, "alice", "alice-password-1")
			} else if p := b.get(u); p.location != nil {
				loc = p.location
			} else {
				t.Fatalf("%s: %d %s", tc.name, p.status, p.body)
			}
			if loc.Query().Get("state") != "obj" || loc.Query().Get("code") == "" {
				t.Fatalf("%s: callback %s", tc.name, loc)
			}
		}
		// A request object cannot name another client than the one authenticated.
		obj := signObject(t, jose.RS256, jarRSA, "rsa-1", objectClaims(inst.issuer("acme"), inst.clock.Now()))
		if r := post(t, inst.parURL("acme"), webBasic, form("request", obj)); r.status != 400 || r.body["error"] != "invalid_request_object" {
			t.Errorf("web pushing jar's object: %d %s", r.status, r.raw)
		}
	})
}

// The request object parser never panics, and accepts only objects that verify
// with the client's keys, from the client, for the issuer, unexpired; it gives
// back only authorization request parameters.
func FuzzRequestObject(f *testing.F) {
	const issuer = "https://as.example/realms/acme"
	now := time.Unix(1_800_000_000, 0)
	client := jarClient()
	for _, tc := range objectCases(f, issuer, now) {
		f.Add(tc.object)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		params, err := parseRequestObject(raw, client, issuer, now)
		if err != nil {
			return
		}
		jws, perr := jose.ParseSignedCompact(raw, requestObjectAlgs)
		if perr != nil {
			t.Fatalf("accepted an object go-jose cannot parse: %q", raw)
		}
		var set jose.JSONWebKeySet
		json.Unmarshal(client.JWKS, &set)
		verified := false
		for _, k := range set.Keys {
			if _, ok := k.Key.(*rsa.PublicKey); ok && jws.Signatures[0].Header.Algorithm != "RS256" {
				continue
			}
			if _, err := jws.Verify(k.Key); err == nil {
				verified = true
			}
		}
		if !verified {
			t.Fatalf("accepted an object no registered key verifies: %q", raw)
		}
		for k := range params {
			if !slices.Contains(authParamNames, k) {
				t.Fatalf("parameter %q is not an authorization request parameter", k)
			}
		}
	})
}
