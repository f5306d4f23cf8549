package e2e

import (
	"net/url"
	"strings"
	"testing"
)

const (
	xchgGrantType   = "urn:ietf:params:oauth:grant-type:token-exchange"
	xchgAccessType  = "urn:ietf:params:oauth:token-type:access_token"
	xchgIDTokenType = "urn:ietf:params:oauth:token-type:id_token"
	xchgSecret      = "xchg-secret-0123456789abcdefghijklmnop"
	xchgBasic       = "xchg:" + xchgSecret
)

// Token exchange (RFC 8693) against the real server on each store, over plain
// HTTP: impersonation and delegation from a user's access token and ID token, the
// audience policy, and the exchanged tokens ending with the subject's family and
// session.
func TestTokenExchange_EndToEnd(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: xchgSeed()})
		b := newBrowser(t)
		r := s.redeem(t, xchgBasic, b.code(s, "xchg"))
		at, rt, idt := r.str("access_token"), r.str("refresh_token"), r.str("id_token")
		if r.status != 200 || at == "" || rt == "" || idt == "" {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}
		sub := s.introspect(t, svcBasic, at).str("sub")

		exchange := func(kv ...string) response {
			t.Helper()
			return post(t, s.tokenURL(), xchgBasic, form(append([]string{"grant_type", xchgGrantType}, kv...)...))
		}
		ok := func(what string, r response) string {
			t.Helper()
			if r.status != 200 || r.str("issued_token_type") != xchgAccessType || r.str("token_type") != "Bearer" ||
				r.str("access_token") == "" || r.body["refresh_token"] != nil {
				t.Fatalf("%s: exchange = %d %s", what, r.status, r.raw)
			}
			in := s.introspect(t, svcBasic, r.str("access_token"))
			if in.body["active"] != true || in.str("sub") != sub || in.str("client_id") != "xchg" {
				t.Fatalf("%s: introspection = %s", what, in.raw)
			}
			return r.str("access_token")
		}

		// Impersonation, to an audience the policy allows, narrowed.
		imp := ok("impersonation", exchange("subject_token", at, "subject_token_type", xchgAccessType,
			"audience", "https://api.example/orders", "scope", "openid"))
		if in := s.introspect(t, svcBasic, imp); in.str("scope") != "openid" || in.str("aud") != "https://api.example/orders" {
			t.Fatalf("impersonation introspection = %s", in.raw)
		}
		// Delegation, the client acting for alice with its own token as the actor.
		actor := post(t, s.tokenURL(), xchgBasic, form("grant_type", "client_credentials")).str("access_token")
		del := ok("delegation", exchange("subject_token", at, "subject_token_type", xchgAccessType,
			"actor_token", actor, "actor_token_type", xchgAccessType))
		// From the ID token.
		fromID := ok("ID token", exchange("subject_token", idt, "subject_token_type", xchgIDTokenType))

		// Outside the policy, wider, or malformed: RFC 6749 JSON errors.
		for what, tc := range map[string]struct {
			kv   []string
			code string
		}{
			"audience not allowed": {[]string{"subject_token", at, "subject_token_type", xchgAccessType, "audience", "https://evil.example"}, "invalid_target"},
			"scope widened":        {[]string{"subject_token", at, "subject_token_type", xchgAccessType, "scope", "openid orders:read"}, "invalid_scope"},
			"refresh token":        {[]string{"subject_token", rt, "subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"},
			"no subject token":     {[]string{"subject_token_type", xchgAccessType}, "invalid_request"},
		} {
			if r := exchange(tc.kv...); r.status != 400 || r.str("error") != tc.code || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %d %s, want %s", what, r.status, r.raw, tc.code)
			}
		}
		if r := post(t, s.tokenURL(), webBasic, form("grant_type", xchgGrantType, "subject_token", at, "subject_token_type", xchgAccessType)); r.status != 400 || r.str("error") != "unauthorized_client" {
			t.Errorf("client without the grant: %d %s", r.status, r.raw)
		}

		// Revoking the subject's refresh token ends its family, and the tokens
		// exchanged from its access token with it.
		if rv := post(t, s.revokeURL(), xchgBasic, form("token", rt)); rv.status != 200 {
			t.Fatalf("revoke = %d %s", rv.status, rv.raw)
		}
		wantInactive(t, "impersonation after family revoked", s.introspect(t, svcBasic, imp))
		wantInactive(t, "delegation after family revoked", s.introspect(t, svcBasic, del))
		// The one from the ID token stands on the session, which lives on, until logout.
		if in := s.introspect(t, svcBasic, fromID); in.body["active"] != true {
			t.Fatalf("ID token exchange after the family's revocation = %s", in.raw)
		}
		p := b.get(s.issuer("acme") + "/protocol/openid-connect/logout?" + url.Values{"id_token_hint": {idt},
			"post_logout_redirect_uri": {"http://127.0.0.1:9999/bye"}}.Encode())
		if p.location == nil || p.location.Path != "/bye" {
			t.Fatalf("logout = %d %v", p.status, p.location)
		}
		wantInactive(t, "ID token exchange after logout", s.introspect(t, svcBasic, fromID))

		logs := s.logs.String()
		for _, tok := range []string{at, rt, idt, imp, del, fromID, actor} {
			if strings.Contains(logs, tok) {
				t.Fatal("a token reached the log")
			}
		}
	})
}

// xchgSeed is the default seed with the exchange client added to acme's
// clients.
func xchgSeed() string {
	const marker = "    users:\n"
	client := `      - id: xchg
        secret: ` + xchgSecret + `
        redirect_uris: [` + callback + `]
        post_logout_redirect_uris: [http://127.0.0.1:9999/bye]
        grant_types: [authorization_code, refresh_token, client_credentials, ` + xchgGrantType + `]
        scopes: [openid, profile, offline_access, orders:read]
        token_exchange_audiences: [https://api.example/orders]
`
	return strings.Replace(defaultSeed, marker, client+marker, 1)
}
