package oauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// The "done when" walk-through: get a client-credentials token, verify it against the
// JWKS with a standard JWT library, introspect it, revoke it, introspect it again.
func TestClientCredentialsWalkThrough(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		r := inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop", "scope", "orders:read")
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
			t.Fatalf("token response headers %v", r.header)
		}
		if r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(300) || r.body["scope"] != "orders:read" || r.body["refresh_token"] != nil {
			t.Fatalf("token response %s", r.raw)
		}
		at := r.body["access_token"].(string)

		typ, claims := verifyLocally(t, fetchJWKS(t, inst, "acme"), at)
		if typ != "at+jwt" {
			t.Fatalf("typ = %q", typ)
		}
		exp, iat := claims["exp"].(float64), claims["iat"].(float64)
		if claims["iss"] != inst.issuer("acme") || claims["sub"] != "svc" || claims["client_id"] != "svc" ||
			claims["scope"] != "orders:read" || claims["jti"] == "" || exp-iat != 300 {
			t.Fatalf("claims %v", claims)
		}
		if aud, _ := claims["aud"].([]any); len(aud) != 2 || aud[0] != "https://api.example/orders" {
			t.Fatalf("aud = %v, want the client's two audiences", claims["aud"])
		}

		in := inst.introspect(t, "acme", at)
		for k, want := range map[string]any{"active": true, "scope": "orders:read", "client_id": "svc", "sub": "svc",
			"iss": inst.issuer("acme"), "exp": exp, "iat": iat, "token_type": "Bearer", "jti": claims["jti"]} {
			if in.body[k] != want {
				t.Fatalf("introspection %s = %v, want %v (%s)", k, in.body[k], want, in.raw)
			}
		}

		rv := post(t, inst.revokeURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", at, "token_type_hint", "access_token"))
		if rv.status != 200 || rv.raw != "" {
			t.Fatalf("revoke = %d %q", rv.status, rv.raw)
		}
		wantInactive(t, inst.introspect(t, "acme", at))

		// Revocation survives a restart: a new instance loads the deny-list from the store.
		other := newInstanceBehind(t, inst.store, inst.clock, false, inst.url, slog.LevelDebug)
		if other.introspect(t, "acme", inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop").body["access_token"].(string)).body["active"] != true {
			t.Fatal("the restarted instance does not accept live tokens")
		}
		if err := other.tokens.SyncDenyList(t.Context(), []string{"acme"}); err != nil {
			t.Fatal(err)
		}
		wantInactive(t, other.introspect(t, "acme", at))
	})
}

func TestEachRealmSignsWithItsAlgorithm(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		for realm, want := range map[string]struct {
			alg string
			ttl float64
		}{"acme": {"ES256", 300}, "ed": {"EdDSA", 300}, "rs": {"RS256", 120}} {
			r := inst.clientCredentials(t, realm, "svc:svc-secret-123-0123456789abcdefghijklmnop")
			set := fetchJWKS(t, inst, realm)
			// The realm's access-token key, and always an RS256 key for ID tokens (OIDC Core §15.1).
			var algs []string
			for _, k := range set.Keys {
				if k.Use != "sig" || !k.IsPublic() {
					t.Fatalf("%s JWKS key %+v", realm, k)
				}
				algs = append(algs, k.Algorithm)
			}
			if !slices.Contains(algs, want.alg) || !slices.Contains(algs, "RS256") || len(algs) > 2 {
				t.Fatalf("%s JWKS algs = %v", realm, algs)
			}
			_, claims := verifyLocally(t, set, r.body["access_token"].(string))
			if claims["exp"].(float64)-claims["iat"].(float64) != want.ttl || r.body["expires_in"] != want.ttl {
				t.Fatalf("%s lifetime: %v", realm, r.raw)
			}
			// Tokens are bound to their realm.
			other := "acme"
			if realm == "acme" {
				other = "ed"
			}
			wantInactive(t, post(t, inst.introspectURL(other), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", r.body["access_token"].(string))))
		}
	})
}

func TestOpaqueAccessTokens(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		r := inst.clientCredentials(t, "acme", "opq:opq-secret-789-0123456789abcdefghijklmnop")
		at := r.body["access_token"].(string)
		if !strings.HasPrefix(at, token.AccessPrefix) || len(at) < len(token.AccessPrefix)+43 {
			t.Fatalf("opaque token %q", at)
		}
		// Sealed: nothing of its claims can be read from it, and it is no JWT.
		if strings.Contains(at, ".") || strings.Contains(at, "opq") {
			t.Fatalf("opaque token %q shows its structure", at)
		}
		in := inst.introspect(t, "acme", at)
		if in.body["active"] != true || in.body["client_id"] != "opq" || in.body["scope"] != "orders:read" ||
			in.body["iss"] != inst.issuer("acme") || in.body["sub"] != "opq" || in.body["jti"] == "" {
			t.Fatalf("introspection %s", in.raw)
		}
		// Any change to it, or another realm's introspection, finds nothing.
		b := []byte(at)
		b[len(b)/2] ^= 1
		wantInactive(t, inst.introspect(t, "acme", string(b)))
		wantInactive(t, inst.introspect(t, "acme", at[:len(at)-1]))
		wantInactive(t, inst.introspect(t, "acme", token.AccessPrefix))
		wantInactive(t, post(t, inst.introspectURL("ed"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", at)))
		// Another client cannot revoke it; its owner can.
		wantError(t, post(t, inst.revokeURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", at)), 400, UnauthorizedClient)
		if inst.introspect(t, "acme", at).body["active"] != true {
			t.Fatal("a foreign revocation took effect")
		}
		if rv := post(t, inst.revokeURL("acme"), "opq:opq-secret-789-0123456789abcdefghijklmnop", form("token", at)); rv.status != 200 {
			t.Fatalf("revoke = %d %s", rv.status, rv.raw)
		}
		wantInactive(t, inst.introspect(t, "acme", at))
		// The revocation survives a restart, and a restarted instance (same master
		// key) opens the tokens sealed before it.
		live := inst.clientCredentials(t, "acme", "opq:opq-secret-789-0123456789abcdefghijklmnop").body["access_token"].(string)
		other := newInstanceBehind(t, inst.store, inst.clock, false, inst.url, slog.LevelDebug)
		if err := other.tokens.SyncDenyList(t.Context(), []string{"acme"}); err != nil {
			t.Fatal(err)
		}
		wantInactive(t, other.introspect(t, "acme", at))
		if other.introspect(t, "acme", live).body["active"] != true {
			t.Fatal("the restarted instance does not open a live token")
		}
		// One with another base URL (another issuer) refuses it, as it refuses the JWTs.
		elsewhere := newInstanceBehind(t, inst.store, inst.clock, false, "https://elsewhere.example", slog.LevelDebug)
		wantInactive(t, elsewhere.introspect(t, "acme", live))
		// Expired opaque tokens are inactive.
		at2 := inst.clientCredentials(t, "acme", "opq:opq-secret-789-0123456789abcdefghijklmnop").body["access_token"].(string)
		inst.clock.Add(5 * time.Minute)
		wantInactive(t, inst.introspect(t, "acme", at2))
	})
}

func TestScopesAndResources(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		r := inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop")
		if r.body["scope"] != "orders:read orders:write" {
			t.Fatalf("default scope = %v", r.body["scope"])
		}
		r = inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop", "resource", "https://api.example/billing")
		_, claims := verifyLocally(t, fetchJWKS(t, inst, "acme"), r.body["access_token"].(string))
		if claims["aud"] != "https://api.example/billing" {
			t.Fatalf("aud = %v, want the one requested resource", claims["aud"])
		}
		r = inst.clientCredentials(t, "acme", "svc2:svc2-secret-456-0123456789abcdefghijklmnop")
		_, claims = verifyLocally(t, fetchJWKS(t, inst, "acme"), r.body["access_token"].(string))
		if claims["aud"] != inst.issuer("acme") {
			t.Fatalf("aud of a client with no audiences = %v, want the issuer", claims["aud"])
		}
		tok := inst.tokenURL("acme")
		basic := "svc:svc-secret-123-0123456789abcdefghijklmnop"
		wantError(t, post(t, tok, basic, form("grant_type", "client_credentials", "scope", "orders:read admin")), 400, InvalidScope)
		wantError(t, post(t, tok, basic, form("grant_type", "client_credentials", "scope", `orders"read`)), 400, InvalidScope)
		wantError(t, post(t, tok, basic, form("grant_type", "client_credentials", "resource", "https://evil.example")), 400, InvalidTarget)
		wantError(t, post(t, tok, basic, form("grant_type", "client_credentials", "resource", "/relative")), 400, InvalidTarget)
		wantError(t, post(t, tok, basic, form("grant_type", "client_credentials", "resource", "https://api.example/orders#x")), 400, InvalidTarget)
	})
}

func TestClientAuthentication(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		tok := inst.tokenURL("acme")
		cc := form("grant_type", "client_credentials")
		with := func(extra ...string) url.Values {
			v := form("grant_type", "client_credentials")
			for i := 0; i+1 < len(extra); i += 2 {
				v.Set(extra[i], extra[i+1])
			}
			return v
		}

		// client_secret_post works; client_secret_basic works (tested throughout).
		if r := post(t, tok, "", with("client_id", "svc", "client_secret", "svc-secret-123-0123456789abcdefghijklmnop")); r.status != 200 {
			t.Fatalf("client_secret_post = %d %s", r.status, r.raw)
		}
		// Bad secrets: 401 invalid_client, with a Basic challenge only when Basic was tried.
		r := post(t, tok, "svc:wrong", cc)
		wantError(t, r, 401, InvalidClient)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("no Basic challenge: %v", r.header)
		}
		r = post(t, tok, "", with("client_id", "svc", "client_secret", "wrong"))
		wantError(t, r, 401, InvalidClient)
		if r.header.Get("WWW-Authenticate") != "" {
			t.Fatal("a Basic challenge without Basic")
		}
		wantError(t, post(t, tok, "nobody:x", cc), 401, InvalidClient)
		wantError(t, post(t, tok, "off:off-secret-000-0123456789abcdefghijklmnop", cc), 401, InvalidClient)
		wantError(t, post(t, tok, "", cc), 401, InvalidClient)
		wantError(t, post(t, tok, "svc:svc-secret-123-0123456789abcdefghijklmnop", with("client_secret", "svc-secret-123-0123456789abcdefghijklmnop")), 401, InvalidClient) // two methods
		wantError(t, post(t, tok, "svc:svc-secret-123-0123456789abcdefghijklmnop", with("client_id", "svc2")), 401, InvalidClient)                                          // mismatched id
		// A secret that is right for another client, or another realm's client, is not enough.
		wantError(t, post(t, tok, "svc:svc2-secret-456-0123456789abcdefghijklmnop", cc), 401, InvalidClient)
		// Public clients cannot use client credentials.
		wantError(t, post(t, tok, "", with("client_id", "spa")), 400, UnauthorizedClient)
		// A confidential client without the grant cannot either.
		wantError(t, post(t, tok, "web:web-secret-123-0123456789abcdefghijklmnop", cc), 400, UnauthorizedClient)
		// Introspection requires a confidential client.
		wantError(t, post(t, inst.introspectURL("acme"), "", form("token", "x")), 401, InvalidClient)
		wantError(t, post(t, inst.introspectURL("acme"), "", form("client_id", "spa", "token", "x")), 401, InvalidClient)
		// Revocation lets a public client identify itself by client_id.
		if r := post(t, inst.revokeURL("acme"), "", form("client_id", "spa", "token", "unknown")); r.status != 200 {
			t.Fatalf("public revoke = %d %s", r.status, r.raw)
		}
	})
}

// assertion makes a private_key_jwt client assertion signed with the test client's key.
func assertion(t *testing.T, claims map[string]any, kid string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: clientPriv, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func TestPrivateKeyJWT(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		now := inst.clock.Now()
		claims := func(jti string, mod ...func(map[string]any)) map[string]any {
			c := map[string]any{"iss": "pk", "sub": "pk", "aud": inst.tokenURL("acme"), "jti": jti,
				"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix()}
			for _, m := range mod {
				m(c)
			}
			return c
		}
		send := func(a string) response {
			return post(t, inst.tokenURL("acme"), "", form("grant_type", "client_credentials",
				"client_assertion_type", assertionType, "client_assertion", a))
		}
		good := assertion(t, claims("j1"), "pk-1")
		if r := send(good); r.status != 200 {
			t.Fatalf("private_key_jwt = %d %s", r.status, r.raw)
		}
		wantError(t, send(good), 401, InvalidClient) // replayed jti
		// The issuer works as aud too (RFC 7523bis).
		if r := send(assertion(t, claims("j2", func(c map[string]any) { c["aud"] = inst.issuer("acme") }), "pk-1")); r.status != 200 {
			t.Fatalf("aud = issuer: %d %s", r.status, r.raw)
		}
		for name, a := range map[string]string{
			"expired":       assertion(t, claims("j3", func(c map[string]any) { c["exp"] = now.Add(-time.Second).Unix() }), "pk-1"),
			"no exp":        assertion(t, claims("j4", func(c map[string]any) { delete(c, "exp") }), "pk-1"),
			"too long":      assertion(t, claims("j5", func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() }), "pk-1"),
			"no jti":        assertion(t, claims("", func(c map[string]any) { delete(c, "jti") }), "pk-1"),
			"wrong aud":     assertion(t, claims("j6", func(c map[string]any) { c["aud"] = "https://elsewhere.example" }), "pk-1"),
			"sub not iss":   assertion(t, claims("j7", func(c map[string]any) { c["sub"] = "svc" }), "pk-1"),
			"unknown kid":   assertion(t, claims("j8"), "other"),
			"other realm":   assertion(t, claims("j9", func(c map[string]any) { c["aud"] = inst.tokenURL("ed") }), "pk-1"),
			"alg none":      b64url(`{"alg":"none"}`) + "." + b64url(`{"iss":"pk","sub":"pk","jti":"j10"}`) + ".",
			"not a JWT":     "garbage",
			"iss is a user": assertion(t, claims("j11", func(c map[string]any) { c["iss"], c["sub"] = "nobody", "nobody" }), "pk-1"),
		} {
			if r := send(a); r.status != 401 || r.body["error"] != string(InvalidClient) {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
		// A wrong assertion type is refused.
		wantError(t, post(t, inst.tokenURL("acme"), "", form("grant_type", "client_credentials",
			"client_assertion_type", "urn:other", "client_assertion", assertion(t, claims("j12"), "pk-1"))), 401, InvalidClient)
	})
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Bad requests get the RFC error and status, never a 500.
func TestTokenEndpointBadInput(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		tok := inst.tokenURL("acme")
		basic := "svc:svc-secret-123-0123456789abcdefghijklmnop"
		raw := func(method, target, contentType, body string) response {
			req, _ := http.NewRequest(method, target, strings.NewReader(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			req.SetBasicAuth("svc", "svc-secret-123-0123456789abcdefghijklmnop")
			return do(t, req)
		}
		cases := []struct {
			name   string
			r      response
			status int
			code   protocol.Code
		}{
			{"GET", raw("GET", tok, "", ""), 405, InvalidRequest},
			{"JSON body", raw("POST", tok, "application/json", `{"grant_type":"client_credentials"}`), 400, InvalidRequest},
			{"no content type", raw("POST", tok, "", "grant_type=client_credentials"), 400, InvalidRequest},
			{"malformed body", raw("POST", tok, "application/x-www-form-urlencoded", "grant_type=%zz"), 400, InvalidRequest},
			{"duplicate parameter", raw("POST", tok, "application/x-www-form-urlencoded", "grant_type=client_credentials&grant_type=client_credentials"), 400, InvalidRequest},
			{"duplicate scope", raw("POST", tok, "application/x-www-form-urlencoded", "grant_type=client_credentials&scope=a&scope=b"), 400, InvalidRequest},
			{"oversized body", raw("POST", tok, "application/x-www-form-urlencoded", "grant_type=client_credentials&x="+strings.Repeat("a", 100<<10)), 413, InvalidRequest},
			{"secret in the URL", raw("POST", tok+"?client_secret=x", "application/x-www-form-urlencoded", "grant_type=client_credentials"), 400, InvalidRequest},
			{"no grant type", post(t, tok, basic, form("scope", "orders:read")), 400, InvalidRequest},
			{"unknown grant type", post(t, tok, basic, form("grant_type", "urn:magic")), 400, UnsupportedGrantType},
			{"password grant", post(t, tok, basic, form("grant_type", "password", "username", "alice", "password", "alice-password-1")), 400, UnsupportedGrantType},
			{"implicit", post(t, tok, basic, form("grant_type", "implicit")), 400, UnsupportedGrantType},
			{"unknown realm", post(t, inst.tokenURL("nope"), basic, form("grant_type", "client_credentials")), 404, NotFound},
			{"introspect GET", raw("GET", inst.introspectURL("acme"), "", ""), 405, InvalidRequest},
			{"introspect without token", post(t, inst.introspectURL("acme"), basic, form()), 400, InvalidRequest},
			{"revoke without token", post(t, inst.revokeURL("acme"), basic, form()), 400, InvalidRequest},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { wantError(t, c.r, c.status, c.code) })
		}
	})
}

// Tokens that must never be active, each answered with exactly {"active":false}.
func TestIntrospectionRefusesForgedAndDeadTokens(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		ctx := t.Context()
		good := inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop").body["access_token"].(string)
		parts := strings.Split(good, ".")
		set := fetchJWKS(t, inst, "acme")
		pub, _ := json.Marshal(set.Keys[0])
		hsHeader := b64url(`{"alg":"HS256","kid":"` + set.Keys[0].KeyID + `","typ":"at+jwt"}`)
		mac := hmac.New(sha256.New, pub)
		mac.Write([]byte(hsHeader + "." + parts[1]))

		realm, _ := inst.store.GetRealm(ctx, "acme")
		key, _ := inst.keys.Signer(ctx, "acme", "ES256")
		claims := token.AccessClaims{Issuer: inst.issuer("acme"), Subject: "svc", Audience: token.Audience{"svc"},
			Expiry: inst.clock.Now().Add(time.Minute).Unix(), IssuedAt: inst.clock.Now().Unix(), ID: "x1", ClientID: "svc"}
		idToken, _ := key.Sign(claims, "JWT")
		otherIss := claims
		otherIss.Issuer = inst.issuer("ed")
		foreignIss, _ := key.Sign(otherIss, token.TypeAccessJWT)
		disabled := claims
		disabled.ClientID, disabled.Subject = "off", "off"
		offToken, _ := key.Sign(disabled, token.TypeAccessJWT)

		// A user's token, killed by "log out everywhere" (tokens_valid_after).
		alice, _ := inst.store.GetUserByUsername(ctx, "acme", "alice")
		web, _ := inst.store.GetClient(ctx, "acme", "web")
		userTok, err := inst.tokens.IssueAccessToken(ctx, token.Grant{Realm: realm, Client: web, UserID: alice.ID, Scopes: []string{"openid"}, Audience: []string{"web"}})
		if err != nil {
			t.Fatal(err)
		}
		in := inst.introspect(t, "acme", userTok.Value)
		if in.body["active"] != true || in.body["username"] != "alice" || in.body["sub"] != alice.ID {
			t.Fatalf("user token introspection %s", in.raw)
		}
		// A token bound to a browser session dies with it.
		now := inst.clock.Now().UTC().Truncate(time.Microsecond)
		sess := storage.Session{ID: "sid-1", Realm: "acme", UserID: alice.ID, AuthTime: now, CreatedAt: now, LastSeenAt: now,
			IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)}
		if err := inst.store.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		sessTok, _ := inst.tokens.IssueAccessToken(ctx, token.Grant{Realm: realm, Client: web, UserID: alice.ID, SessionID: "sid-1", Scopes: []string{"openid"}, Audience: []string{"web"}})
		if inst.introspect(t, "acme", sessTok.Value).body["active"] != true {
			t.Fatal("session token not active")
		}
		if err := inst.store.RevokeSession(ctx, "sid-1", now); err != nil {
			t.Fatal(err)
		}
		wantInactive(t, inst.introspect(t, "acme", sessTok.Value))

		alice.TokensValidAfter = inst.clock.Now().Add(time.Second).UTC().Truncate(time.Microsecond)
		if err := putUser(t, inst, alice); err != nil {
			t.Fatal(err)
		}

		for name, tok := range map[string]string{
			"alg none":                  b64url(`{"alg":"none","typ":"at+jwt"}`) + "." + parts[1] + ".",
			"HS256 with the public key": hsHeader + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)),
			"unknown kid":               b64url(`{"alg":"ES256","kid":"nope","typ":"at+jwt"}`) + "." + parts[1] + "." + parts[2],
			"tampered payload":          parts[0] + "." + b64url(`{"iss":"x","sub":"svc","client_id":"svc","jti":"y","exp":9999999999}`) + "." + parts[2],
			"ID-token typ":              idToken,
			"another realm's issuer":    foreignIss,
			"disabled client":           offToken,
			"user logged out":           userTok.Value,
			"unknown opaque":            token.AccessPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			"refresh-token shape":       token.RefreshPrefix + "AAAA",
			"garbage":                   "not a token",
			"huge":                      strings.Repeat("eyJ", 5000),
		} {
			t.Run(name, func(t *testing.T) { wantInactive(t, inst.introspect(t, "acme", tok)) })
		}

		// Expired: five minutes later the good token is dead.
		inst.clock.Add(5 * time.Minute)
		wantInactive(t, inst.introspect(t, "acme", good))
	})
}

func TestRevocation(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		at := inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop").body["access_token"].(string)
		// Another client cannot revoke it.
		wantError(t, post(t, inst.revokeURL("acme"), "svc2:svc2-secret-456-0123456789abcdefghijklmnop", form("token", at)), 400, UnauthorizedClient)
		if inst.introspect(t, "acme", at).body["active"] != true {
			t.Fatal("another client's revocation took effect")
		}
		// Unknown, malformed or foreign-realm tokens: 200, as RFC 7009 §2.2 says.
		edTok := inst.clientCredentials(t, "ed", "svc:svc-secret-123-0123456789abcdefghijklmnop").body["access_token"].(string)
		for _, tok := range []string{"unknown", "a.b.c", token.AccessPrefix + "nope", token.RefreshPrefix + "nope", edTok} {
			if r := post(t, inst.revokeURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", tok)); r.status != 200 {
				t.Fatalf("revoke %q = %d %s", tok, r.status, r.raw)
			}
		}
		if inst.introspect(t, "ed", edTok).body["active"] != true {
			t.Fatal("a revocation in one realm reached another")
		}
		// The owner revokes; the deny-list entry lives until the token's exp, and is audited.
		if r := post(t, inst.revokeURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", at)); r.status != 200 {
			t.Fatalf("revoke = %d", r.status)
		}
		wantInactive(t, inst.introspect(t, "acme", at))
		denied, err := inst.store.ListDeniedJWTs(t.Context(), "acme", inst.clock.Now())
		if err != nil || len(denied) != 1 {
			t.Fatalf("deny-list = %+v, %v", denied, err)
		}
		events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Realm: "acme", Type: "access_token.revoked"})
		if len(events) != 1 || events[0].ClientID != "svc" || events[0].IP == "" {
			t.Fatalf("audit = %+v", events)
		}
		if strings.Contains(events[0].Details["jti"], ".") || strings.Contains(jsonOf(events[0]), at) {
			t.Fatal("the audit event holds the token")
		}
		if denied[0].ExpiresAt.Unix() != int64(expOf(at)) {
			t.Fatalf("deny-list entry expires at %v, want the token's exp", denied[0].ExpiresAt)
		}
	})
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// expOf returns the exp claim of a JWT without verifying it.
func expOf(jwt string) float64 {
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[1])
	var c map[string]any
	json.Unmarshal(payload, &c)
	return c["exp"].(float64)
}

// Two instances on one database: a revocation on one is seen by the other once it
// polls the store.
func TestRevocationReachesOtherInstances(t *testing.T) {
	backends(t, func(t *testing.T, open func() storage.Store) {
		clk := &clock{t: time.Now().Truncate(time.Second)}
		a := newInstance(t, open(), clk, true)
		b := newInstanceBehind(t, open(), clk, false, a.url, slog.LevelDebug)
		at := a.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop").body["access_token"].(string)
		if b.introspect(t, "acme", at).body["active"] != true {
			t.Fatal("instance b does not accept a's token")
		}
		if r := post(t, a.revokeURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", at)); r.status != 200 {
			t.Fatal(r.raw)
		}
		wantInactive(t, a.introspect(t, "acme", at))
		if err := b.tokens.SyncDenyList(t.Context(), []string{"acme"}); err != nil {
			t.Fatal(err)
		}
		wantInactive(t, b.introspect(t, "acme", at))
	})
}

func TestDiscovery(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		iss := inst.issuer("acme")
		for _, path := range []string{
			iss + "/.well-known/openid-configuration",
			iss + "/.well-known/oauth-authorization-server",
			inst.url + "/.well-known/oauth-authorization-server/realms/acme",
		} {
			r := do(t, mustReq(t, "GET", path))
			if r.status != 200 || r.body["issuer"] != iss || r.body["token_endpoint"] != iss+tokenPath ||
				r.body["jwks_uri"] != iss+certsPath || r.body["introspection_endpoint"] != iss+introspectPath ||
				r.body["revocation_endpoint"] != iss+revokePath {
				t.Fatalf("%s = %d %s", path, r.status, r.raw)
			}
			strs := func(k string) []string {
				var out []string
				for _, v := range r.body[k].([]any) {
					out = append(out, v.(string))
				}
				return out
			}
			if g := strs("grant_types_supported"); !slices.Equal(g, grants.Types()) {
				t.Fatalf("grant types %v: only what is implemented", g)
			}
			if m := strs("token_endpoint_auth_methods_supported"); !slices.Equal(m, []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}) {
				t.Fatalf("auth methods %v", m)
			}
			if c := strs("code_challenge_methods_supported"); !slices.Equal(c, []string{"S256"}) {
				t.Fatalf("PKCE methods %v", c)
			}
			if r.body["authorization_endpoint"] != iss+authPath || r.body["userinfo_endpoint"] != iss+userinfoPath ||
				r.body["end_session_endpoint"] != iss+logoutPath || r.body["request_uri_parameter_supported"] != false ||
				r.body["authorization_response_iss_parameter_supported"] != true {
				t.Fatalf("OIDC endpoints and flags: %s", r.raw)
			}
			if s := strs("scopes_supported"); !slices.Contains(s, "orders:write") || !slices.Contains(s, "openid") {
				t.Fatalf("scopes %v", s)
			}
			if r.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatal("discovery is not readable cross-origin")
			}
		}
		certs := do(t, mustReq(t, "GET", iss+certsPath))
		if !strings.HasPrefix(certs.header.Get("Cache-Control"), "public, max-age=") {
			t.Fatalf("JWKS Cache-Control %q", certs.header.Get("Cache-Control"))
		}
		if r := do(t, mustReq(t, "GET", inst.issuer("nope")+"/.well-known/openid-configuration")); r.status != 404 {
			t.Fatalf("unknown realm discovery = %d", r.status)
		}
	})
}

// Discovery offers exactly the grants table, in its order (RFC 8414 §2
// grant_types_supported): a grant type is offered where it is registered, and
// nowhere else.
func TestDiscovery_GrantTypesAreTheGrantsTable(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		r := do(t, mustReq(t, "GET", inst.issuer("acme")+"/.well-known/openid-configuration"))
		var got []string
		for _, v := range r.body["grant_types_supported"].([]any) {
			got = append(got, v.(string))
		}
		if want := grants.Types(); r.status != 200 || !slices.Equal(got, want) {
			t.Fatalf("grant_types_supported = %v (%d), want the grants table %v", got, r.status, want)
		}
	})
}

// A full flow's logs hold none of the tokens or secrets it used.
func TestLogsHoldNoSecrets(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		var tokens []string
		for _, c := range []string{"svc:svc-secret-123-0123456789abcdefghijklmnop", "opq:opq-secret-789-0123456789abcdefghijklmnop"} {
			at := inst.clientCredentials(t, "acme", c).body["access_token"].(string)
			tokens = append(tokens, at)
			inst.introspect(t, "acme", at)
			post(t, inst.revokeURL("acme"), "svc2:svc2-secret-456-0123456789abcdefghijklmnop", form("token", at)) // refused: logged
			post(t, inst.revokeURL("acme"), c, form("token", at))
			inst.introspect(t, "acme", at)
		}
		post(t, inst.tokenURL("acme"), "svc:wrong-secret-999", form("grant_type", "client_credentials"))
		post(t, inst.tokenURL("acme")+"?client_secret=url-secret-777", "", form("grant_type", "client_credentials"))
		inst.logMu.Lock()
		logs := inst.logs.String()
		inst.logMu.Unlock()
		if !strings.Contains(logs, "/protocol/openid-connect/token") {
			t.Fatalf("the flow logged nothing: %q", logs)
		}
		secrets := append(tokens, "svc-secret-123-0123456789abcdefghijklmnop", "opq-secret-789-0123456789abcdefghijklmnop", "svc2-secret-456-0123456789abcdefghijklmnop", "wrong-secret-999", "url-secret-777")
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Fatalf("the logs hold %q:\n%s", s, logs)
			}
			for _, part := range strings.Split(s, ".") {
				if len(part) > 20 && strings.Contains(logs, part) {
					t.Fatalf("the logs hold part of a token:\n%s", logs)
				}
			}
		}
	})
}

// A single-page app on its client's web origins may call the token endpoint
// (and revocation, userinfo, logout, account) by fetch with credentials, as
// keycloak-js does: the exact origin comes back with
// Access-Control-Allow-Credentials, never "*"; other origins get no CORS headers,
// so browsers keep their pages out. spa registers "+" (its redirect URIs'
// origin, :9999) and :9998; web registers :9997 only.
func TestCORSForWebOrigins(t *testing.T) {
	const spaOrigin, spaExtra, webOrigin, evil = "http://127.0.0.1:9999", "http://127.0.0.1:9998", "http://127.0.0.1:9997", "https://evil.example"
	start(t, func(t *testing.T, inst *instance) {
		allowed := func(what string, r response, o string) {
			t.Helper()
			if r.header.Get("Access-Control-Allow-Origin") != o || r.header.Get("Access-Control-Allow-Credentials") != "true" ||
				!slices.Contains(r.header.Values("Vary"), "Origin") {
				t.Fatalf("%s from %s: %d %v", what, o, r.status, r.header)
			}
		}
		refused := func(what string, r response) {
			t.Helper()
			if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Credentials") != "" ||
				!slices.Contains(r.header.Values("Vary"), "Origin") {
				t.Fatalf("%s: CORS allowed: %d %v", what, r.status, r.header)
			}
		}
		preflight := func(endpoint, o string) response {
			req, _ := http.NewRequest("OPTIONS", endpoint, nil)
			req.Header.Set("Origin", o)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
			return do(t, req)
		}
		call := func(method, endpoint, o, basic string, f url.Values) response {
			req, _ := http.NewRequest(method, endpoint, strings.NewReader(f.Encode()))
			if method == "POST" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if id, secret, ok := strings.Cut(basic, ":"); ok {
				req.SetBasicAuth(id, secret)
			}
			if o != "" {
				req.Header.Set("Origin", o)
			}
			return do(t, req)
		}
		iss := inst.issuer("acme")
		endpoints := []string{inst.tokenURL("acme"), inst.revokeURL("acme"), iss + userinfoPath, iss + logoutPath, iss + accountPath}
		for _, e := range endpoints {
			// A preflight names no client: any client's web origins count.
			for _, o := range []string{spaOrigin, spaExtra, webOrigin} {
				r := preflight(e, o)
				allowed("preflight "+e, r, o)
				if r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Content-Type") ||
					!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
					t.Fatalf("preflight %s from %s: %d %v", e, o, r.status, r.header)
				}
			}
			refused("preflight "+e+" from another origin", preflight(e, evil))
			refused("preflight "+e+" from a redirect URI's origin with the scheme changed", preflight(e, "https://127.0.0.1:9999"))
		}

		// The token endpoint: the requesting client's origins, once it is known.
		// An error is readable too (keycloak-js reads invalid_grant).
		spaCode := form("grant_type", "authorization_code", "client_id", "spa", "code", "bogus", "redirect_uri", callback, "code_verifier", strings.Repeat("v", 43))
		for _, o := range []string{spaOrigin, spaExtra} {
			r := call("POST", inst.tokenURL("acme"), o, "", spaCode)
			allowed("spa's token request", r, o)
			if r.status != 400 || r.body["error"] != "invalid_grant" {
				t.Fatalf("spa's bogus code: %d %s", r.status, r.raw)
			}
		}
		refused("spa's token request from another origin", call("POST", inst.tokenURL("acme"), evil, "", spaCode))
		refused("spa's token request from web's origin", call("POST", inst.tokenURL("acme"), webOrigin, "", spaCode))
		webCC := form("grant_type", "refresh_token", "refresh_token", "bogus")
		allowed("web's token request", call("POST", inst.tokenURL("acme"), webOrigin, "web:web-secret-123-0123456789abcdefghijklmnop", webCC), webOrigin)
		// web listed its origins without "+": its redirect URIs' origin is out.
		refused("web's token request from its redirect URI's origin", call("POST", inst.tokenURL("acme"), spaOrigin, "web:web-secret-123-0123456789abcdefghijklmnop", webCC))
		// svc registered no origin: a success is not readable from spa's.
		r := call("POST", inst.tokenURL("acme"), spaOrigin, "svc:svc-secret-123-0123456789abcdefghijklmnop", form("grant_type", "client_credentials"))
		if r.status != 200 {
			t.Fatalf("svc's token: %d %s", r.status, r.raw)
		}
		refused("svc's token request", r)
		refused("an unknown client's token request", call("POST", inst.tokenURL("acme"), spaOrigin, "", form("grant_type", "authorization_code", "client_id", "nope")))
		// No Origin: no CORS headers, but still Vary.
		refused("a token request without Origin", call("POST", inst.tokenURL("acme"), "", "", spaCode))

		// Revocation: the requesting client's origins.
		allowed("spa's revocation", call("POST", inst.revokeURL("acme"), spaExtra, "", form("client_id", "spa", "token", "bogus")), spaExtra)
		refused("spa's revocation from web's origin", call("POST", inst.revokeURL("acme"), webOrigin, "", form("client_id", "spa", "token", "bogus")))

		// Userinfo, logout, account: any client of the realm.
		for _, e := range []string{iss + userinfoPath, iss + logoutPath} {
			allowed("GET "+e, call("GET", e, webOrigin, "", nil), webOrigin)
			refused("GET "+e+" from another origin", call("GET", e, evil, "", nil))
		}
		// The account's JSON (what keycloak-js's loadUserProfile reads), not its
		// HTML page, which the session cookie opens.
		account := func(o, accept string) response {
			req, _ := http.NewRequest("GET", iss+accountPath, nil)
			req.Header.Set("Origin", o)
			req.Header.Set("Accept", accept)
			return do(t, req)
		}
		allowed("the account's JSON", account(webOrigin, "application/json"), webOrigin)
		refused("the account's JSON from another origin", account(evil, "application/json"))
		if r := account(webOrigin, "text/html"); r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("the account's HTML page is readable across origins: %v", r.header)
		}

		// Discovery and JWKS: any origin, without credentials.
		for _, e := range []string{iss + "/.well-known/openid-configuration", iss + certsPath} {
			r := call("GET", e, evil, "", nil)
			if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("GET %s: %v", e, r.header)
			}
		}
	})
}
