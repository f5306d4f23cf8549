package e2e

import (
	"strings"
	"testing"
)

// RFC 7662 for refresh tokens: the client that owns one learns what it is, with or
// without token_type_hint (a hint is only a hint, §2.1); any other client, and a
// spent, revoked or otherwise dead one, gets exactly {"active":false}.
func TestIntrospection_RefreshTokens(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		r := s.redeem(t, webBasic, newBrowser(t).code(s, "web"))
		at, rt := r.str("access_token"), r.str("refresh_token")
		if r.status != 200 || rt == "" {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}
		// Access token introspection still works, and says who the user is.
		in := s.introspect(t, svcBasic, at)
		sub := in.str("sub")
		if in.status != 200 || in.body["active"] != true || in.str("token_type") != "Bearer" || sub == "" {
			t.Fatalf("access token introspection = %d %s", in.status, in.raw)
		}

		owner := func(what, tok string, hint ...string) {
			t.Helper()
			in := s.introspect(t, webBasic, tok, hint...)
			iat, _ := in.body["iat"].(float64)
			exp, _ := in.body["exp"].(float64)
			if in.status != 200 || in.body["active"] != true || in.str("token_type") != "refresh_token" ||
				in.str("client_id") != "web" || in.str("sub") != sub || in.str("scope") != "openid profile offline_access" ||
				in.str("iss") != s.issuer("acme") || iat <= 0 || exp <= iat {
				t.Fatalf("%s: introspection = %d %s", what, in.status, in.raw)
			}
			if strings.Contains(in.raw, tok) {
				t.Fatalf("%s: the introspection echoes the token", what)
			}
		}
		owner("no hint", rt)
		owner("hint refresh_token", rt, "token_type_hint", "refresh_token")
		owner("wrong hint access_token", rt, "token_type_hint", "access_token")

		// Another client learns nothing, hint or not.
		wantInactive(t, "another client", s.introspect(t, svcBasic, rt))
		wantInactive(t, "another client with hint", s.introspect(t, svcBasic, rt, "token_type_hint", "refresh_token"))
		wantInactive(t, "unknown refresh token", s.introspect(t, webBasic, otherToken(rt)))

		// Rotated: the parent is spent, its successor is active.
		r2 := s.refresh(t, webBasic, rt)
		rt2 := r2.str("refresh_token")
		if r2.status != 200 || rt2 == "" {
			t.Fatalf("refresh = %d %s", r2.status, r2.raw)
		}
		wantInactive(t, "rotated", s.introspect(t, webBasic, rt, "token_type_hint", "refresh_token"))
		owner("successor", rt2)

		// Revoked by its client.
		if rv := post(t, s.revokeURL(), webBasic, form("token", rt2, "token_type_hint", "refresh_token")); rv.status != 200 {
			t.Fatalf("revoke = %d %s", rv.status, rv.raw)
		}
		wantInactive(t, "revoked", s.introspect(t, webBasic, rt2))
		wantInactive(t, "revoked, with hint", s.introspect(t, webBasic, rt2, "token_type_hint", "refresh_token"))

		if strings.Contains(s.logs.String(), rt) || strings.Contains(s.logs.String(), rt2) {
			t.Fatal("a refresh token reached the log")
		}
	})
}

// otherToken is a token of the same shape as tok that is certainly not tok.
func otherToken(tok string) string {
	last := "A"
	if strings.HasSuffix(tok, "A") {
		last = "B"
	}
	return tok[:len(tok)-1] + last
}
