package e2e

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// jwtClaim reads a claim of a JWT, unverified.
func jwtClaim(t *testing.T, tok, claim string) any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20s...", tok)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(b, &c)
	return c[claim]
}

func jwtKID(t *testing.T, tok string) string {
	t.Helper()
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var h struct {
		KID string `json:"kid"`
	}
	json.Unmarshal(b, &h)
	return h.KID
}

// Tokens: the admin introspects and revokes any token of the realm, whichever
// client holds it: access (JWT and opaque) and refresh by value, access by jti.
func TestAdmin_Tokens(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)
		b := newBrowser(t)
		tok := s.redeem(t, webBasic, b.code(s, "web"))
		at, rt := tok.str("access_token"), tok.str("refresh_token")
		svcAT := ccToken(t, s, "svc", svcSecret).str("access_token")
		opqAT := ccToken(t, s, "opq", opqSecret).str("access_token")

		r := want(t, "introspect web's refresh token", a.do("POST", "/admin/realms/acme/tokens/introspect", map[string]string{"token": rt}), 200)
		if r.body["active"] != true || r.str("client_id") != "web" || r.str("token_type") != "refresh_token" || r.str("username") != "alice" {
			t.Fatalf("introspect refresh: %s", r.raw)
		}
		r = want(t, "introspect an opaque token", a.do("POST", "/admin/realms/acme/tokens/introspect", map[string]string{"token": opqAT}), 200)
		if r.body["active"] != true || r.str("client_id") != "opq" {
			t.Fatalf("introspect opaque: %s", r.raw)
		}
		r = want(t, "introspect garbage", a.do("POST", "/admin/realms/acme/tokens/introspect", map[string]string{"token": "garbage"}), 200)
		if strings.TrimSpace(r.raw) != `{"active":false}` {
			t.Fatalf("introspect garbage: %s", r.raw)
		}
		if r := a.do("POST", "/admin/realms/other/tokens/introspect", map[string]string{"token": at}); r.body["active"] != false {
			t.Fatalf("acme's token in realm other: %s", r.raw)
		}

		// Revoke by value: a refresh token takes its family; an opaque token goes on
		// the deny-list.
		want(t, "revoke web's refresh token", a.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{"token": rt}), 204)
		if a.active(rt) || a.active(at) {
			t.Fatal("the revoked refresh token (or its grant's access token) is active")
		}
		if r := s.refresh(t, webBasic, rt); !r.invalidGrant() {
			t.Fatalf("refresh with a revoked token: %d %s", r.status, r.raw)
		}
		want(t, "revoke an opaque token", a.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{"token": opqAT}), 204)
		if a.active(opqAT) {
			t.Fatal("the revoked opaque token is active")
		}
		// By jti.
		jti, _ := jwtClaim(t, svcAT, "jti").(string)
		want(t, "revoke by jti", a.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{"jti": jti}), 204)
		if a.active(svcAT) {
			t.Fatal("the token revoked by jti is active")
		}
		want(t, "revoke garbage", a.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{"token": "garbage"}), 204)

		wantProblem(t, "token and jti", a.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{"token": at, "jti": jti}), 400)
		wantProblem(t, "neither", a.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{}), 400)
		r = wantProblem(t, "unknown field", a.bad("POST", "/admin/realms/acme/tokens/introspect", `{"tok":"x"}`), 400)
		if !slices.Equal(fieldErrors(r), []string{"tok"}) {
			t.Fatalf("unknown field: %s", r.raw)
		}

		r = want(t, "events", a.do("GET", "/admin/realms/acme/events?type=access_token.revoked", nil), 200)
		if ev := items(r); len(ev) != 2 || containsAny(r.raw, svcAT, opqAT) {
			t.Fatalf("access_token.revoked events: %s", r.raw)
		}
	})
}

// Keys: listed with their public halves only; rotated; a retired key stops
// signing and leaves the JWKS at once, and the tokens it signed are inactive.
func TestAdmin_Keys(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)
		svcAT := ccToken(t, s, "svc", svcSecret).str("access_token")
		kid := jwtKID(t, svcAT)

		r := want(t, "list keys", a.do("GET", "/admin/realms/acme/keys", nil), 200)
		ks := items(r)
		if len(ks) != 1 || ks[0]["kid"] != kid || ks[0]["status"] != "active" {
			t.Fatalf("keys: %s", r.raw)
		}
		for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
			if strings.Contains(r.raw, private) {
				t.Fatalf("a listed key shows its private part %s: %s", private, r.raw)
			}
		}

		r = want(t, "rotate", a.do("POST", "/admin/realms/acme/keys/rotate", nil), 200)
		if made := items(r); len(made) != 1 || made[0]["status"] != "next" || made[0]["kid"] == kid {
			t.Fatalf("rotated: %s", r.raw)
		}
		wantProblem(t, "rotate to an unknown alg", a.bad("POST", "/admin/realms/acme/keys/rotate", map[string]string{"alg": "HS256"}), 400)
		if r := a.do("GET", "/admin/realms/acme/keys", nil); len(items(r)) != 2 {
			t.Fatalf("keys after rotate: %s", r.raw)
		}
		if !a.active(svcAT) {
			t.Fatal("a rotation (not a retirement) killed a token")
		}

		r = want(t, "retire", a.do("POST", "/admin/realms/acme/keys/"+kid+"/retire", nil), 200)
		if r.str("status") != "retired" {
			t.Fatalf("retired: %s", r.raw)
		}
		if a.active(svcAT) {
			t.Fatal("a token signed by a retired key is active")
		}
		jwks := do(t, getRequest(s.issuer("acme")+"/protocol/openid-connect/certs"))
		if jwks.status != 200 || strings.Contains(jwks.raw, kid) {
			t.Fatalf("the JWKS after the retirement: %s", jwks.raw)
		}
		// Signing goes on with another key.
		next := ccToken(t, s, "svc", svcSecret).str("access_token")
		if jwtKID(t, next) == kid || !a.active(next) {
			t.Fatal("a token issued after the retirement is not signed by a live key")
		}
		wantProblem(t, "retire an unknown key", a.do("POST", "/admin/realms/acme/keys/nope/retire", nil), 404)
		r = want(t, "events", a.do("GET", "/admin/realms/acme/events?type=signing_key.retired", nil), 200)
		if ev := items(r); len(ev) != 1 || ev[0]["details"].(map[string]any)["by"] != "admin" || ev[0]["details"].(map[string]any)["kid"] != kid {
			t.Fatalf("retired event: %s", r.raw)
		}
	})
}

// Events: filtered by type, client and time, paged newest first by cursor.
func TestAdmin_Events(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)
		for range 3 {
			want(t, "revoke svc's tokens", a.do("POST", "/admin/realms/acme/clients/svc/revoke-tokens", nil), 204)
		}
		var ids []float64
		after := ""
		for range 5 {
			r := want(t, "events page", a.do("GET", "/admin/realms/acme/events?type=admin.client.tokens_revoked&client=svc&limit=2&after="+after, nil), 200)
			for _, e := range items(r) {
				ids = append(ids, e["id"].(float64))
				if e["client_id"] != "svc" || e["type"] != "admin.client.tokens_revoked" {
					t.Fatalf("event: %v", e)
				}
			}
			if after = r.str("next"); after == "" {
				break
			}
		}
		if len(ids) != 3 || !(ids[0] > ids[1] && ids[1] > ids[2]) {
			t.Fatalf("event ids paged = %v; want 3, newest first", ids)
		}
		if r := a.do("GET", "/admin/realms/acme/events?since=2999-01-01T00:00:00Z", nil); len(items(r)) != 0 {
			t.Fatalf("events since the future: %s", r.raw)
		}
		if r := a.do("GET", "/admin/realms/acme/events?user=nobody", nil); len(items(r)) != 0 {
			t.Fatalf("events of nobody: %s", r.raw)
		}
		if r := a.do("GET", "/admin/realms/other/events?client=svc", nil); len(items(r)) != 0 {
			t.Fatalf("acme's events in realm other: %s", r.raw)
		}
		wantProblem(t, "bad since", a.bad("GET", "/admin/realms/acme/events?since=yesterday", nil), 400)
		wantProblem(t, "bad cursor", a.do("GET", "/admin/realms/acme/events?after=x", nil), 400)
	})
}
