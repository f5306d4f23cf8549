package oauth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/seed"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// The token exchange clients (RFC 8693), seeded beside the usual ones.
const (
	xchgBasic  = "xchg:xchg-secret-444-0123456789abcdefghijklmnop"
	xchg2Basic = "xchg2:xchg2-secret-555-0123456789abcdefghijklmnop"
	xchgoBasic = "xchgo:xchgo-secret-666-0123456789abcdefghijklmnop"
	noxBasic   = "nox:nox-secret-777-0123456789abcdefghijklmnop"
)

var exchangeSeed = fmt.Sprintf(`
realms:
  - name: acme
    clients:
      - id: xchg
        secret: xchg-secret-444-0123456789abcdefghijklmnop
        redirect_uris: [http://127.0.0.1:9999/cb]
        post_logout_redirect_uris: [http://127.0.0.1:9999/bye]
        grant_types: [authorization_code, refresh_token, client_credentials, %[1]s]
        scopes: [openid, profile, email, offline_access, orders:read, orders:write]
        token_exchange_audiences: [https://api.example/orders, xchg2]
      - id: xchg2
        secret: xchg2-secret-555-0123456789abcdefghijklmnop
        grant_types: [client_credentials, %[1]s]
        scopes: [orders:read]
        token_exchange_audiences: [https://api.example/billing]
      - id: xchgo
        secret: xchgo-secret-666-0123456789abcdefghijklmnop
        redirect_uris: [http://127.0.0.1:9999/cb]
        grant_types: [authorization_code, refresh_token, %[1]s]
        scopes: [openid, profile, orders:read]
        access_token_format: opaque
        token_exchange_audiences: [https://api.example/orders]
      - id: nox
        secret: nox-secret-777-0123456789abcdefghijklmnop
        redirect_uris: [http://127.0.0.1:9999/cb]
        grant_types: [authorization_code, client_credentials]
        scopes: [openid, orders:read]
`, grants.TokenExchangeType)

// startExchange is start with the token exchange clients seeded too.
func startExchange(t *testing.T, fn func(t *testing.T, inst *instance)) {
	start(t, func(t *testing.T, inst *instance) {
		f, err := seed.Parse("exchange.yaml", []byte(exchangeSeed))
		if err != nil {
			t.Fatal(err)
		}
		a := &seed.Applier{Store: inst.store, Secrets: clientsecret.NewHasher(masterKey),
			Password: password.Params{Memory: 64, Time: 1, Threads: 1}, Now: inst.clock.Now}
		if _, err := a.Apply(t.Context(), f); err != nil {
			t.Fatal(err)
		}
		fn(t, inst)
	})
}

// exchange posts a token exchange request for basic's client.
func (i *instance) exchange(t *testing.T, basic string, kv ...string) response {
	t.Helper()
	return post(t, i.tokenURL("acme"), basic, form(append([]string{"grant_type", grants.TokenExchangeType}, kv...)...))
}

// exchanged wants a 200 token exchange response: an access token, issued_token_type
// and no refresh or ID token.
func exchanged(t *testing.T, r response) string {
	t.Helper()
	if r.status != 200 || str(r, "issued_token_type") != token.TokenTypeAccess || str(r, "token_type") != "Bearer" ||
		str(r, "access_token") == "" || r.body["refresh_token"] != nil || r.body["id_token"] != nil || r.body["expires_in"] == nil {
		t.Fatalf("exchange = %d %s", r.status, r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("exchange headers %v", r.header)
	}
	return str(r, "access_token")
}

// jwtClaims verifies a JWT access token against the realm's JWKS.
func jwtClaims(t *testing.T, inst *instance, jwt string) map[string]any {
	t.Helper()
	typ, c := verifyLocally(t, fetchJWKS(t, inst, "acme"), jwt)
	if typ != token.TypeAccessJWT {
		t.Fatalf("typ %q", typ)
	}
	return c
}

func actJSON(c map[string]any) string {
	if c["act"] == nil {
		return ""
	}
	b, _ := json.Marshal(c["act"])
	return string(b)
}

// Impersonation: the new token stands for the subject token's user, session and
// grant, for the exchanging client and the audience asked for, with no act, no
// longer-lived than the subject token; the exchange is audited without tokens.
func TestTokenExchange_Impersonation(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		first := signInTokens(t, inst, newBrowser(t), "xchg", xchgBasic, "openid profile orders:read orders:write")
		subject := str(first, "access_token")
		sc := jwtClaims(t, inst, subject)

		r := inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess,
			"audience", "https://api.example/orders", "scope", "orders:read")
		at := exchanged(t, r)
		if str(r, "scope") != "orders:read" {
			t.Fatalf("scope = %q", str(r, "scope"))
		}
		c := jwtClaims(t, inst, at)
		if c["sub"] != sc["sub"] || c["sid"] != sc["sid"] || c["fid"] != sc["fid"] || c["sid"] == nil || c["fid"] == nil ||
			c["client_id"] != "xchg" || c["aud"] != "https://api.example/orders" || c["scope"] != "orders:read" ||
			c["act"] != nil || c["jti"] == sc["jti"] {
			t.Fatalf("exchanged claims %v\nsubject claims %v", c, sc)
		}
		if c["exp"].(float64) > sc["exp"].(float64) {
			t.Fatalf("exp %v after the subject's %v", c["exp"], sc["exp"])
		}
		in := inst.introspect(t, "acme", at)
		if in.body["active"] != true || str(in, "sub") != sc["sub"] || str(in, "client_id") != "xchg" {
			t.Fatalf("introspection = %s", in.raw)
		}

		// No audience asked for: the exchanging client itself; no scope: the subject's.
		c = jwtClaims(t, inst, exchanged(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess)))
		if c["aud"] != "xchg" || c["scope"] != sc["scope"] {
			t.Fatalf("default audience and scope: %v", c)
		}

		// With a minute left on the subject token, the new one has at most that.
		inst.clock.Add(4 * time.Minute)
		r = inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess)
		c = jwtClaims(t, inst, exchanged(t, r))
		if c["exp"] != sc["exp"] || r.body["expires_in"].(float64) > 60 {
			t.Fatalf("exp %v (expires_in %v), want the subject's %v", c["exp"], r.body["expires_in"], sc["exp"])
		}

		events, err := inst.store.ListAudit(t.Context(), storage.AuditFilter{Realm: "acme", Type: "token.exchanged"})
		if err != nil || len(events) != 3 {
			t.Fatalf("audit events %v, %v", events, err)
		}
		e := events[len(events)-1]
		if e.ClientID != "xchg" || e.UserID != sc["sub"] || e.SessionID != sc["sid"] || e.FamilyID != sc["fid"] ||
			e.Details["subject_token_type"] != token.TokenTypeAccess || e.Details["audience"] != "https://api.example/orders" {
			t.Fatalf("audit event %+v", e)
		}
		b, _ := json.Marshal(events)
		for _, tok := range []string{subject, at, str(first, "refresh_token"), str(first, "id_token")} {
			if strings.Contains(string(b), tok) || strings.Contains(string(b), tok[len(tok)-20:]) {
				t.Fatal("a token reached the audit trail")
			}
		}
	})
}

// Delegation: the actor token's subject and client become the act claim (RFC 8693
// §4.1), the new actor outermost over the subject token's earlier one.
func TestTokenExchange_DelegationNestsActors(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		subject := str(signInTokens(t, inst, newBrowser(t), "xchg", xchgBasic, "openid orders:read"), "access_token")
		sc := jwtClaims(t, inst, subject)
		actor := str(inst.clientCredentials(t, "acme", xchgBasic), "access_token")

		// xchg acts for alice towards xchg2.
		first := exchanged(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess,
			"actor_token", actor, "actor_token_type", token.TokenTypeAccess, "audience", "xchg2", "scope", "orders:read"))
		c := jwtClaims(t, inst, first)
		if got := actJSON(c); got != `{"client_id":"xchg","sub":"xchg"}` || c["sub"] != sc["sub"] || c["aud"] != "xchg2" {
			t.Fatalf("delegated claims %v (act %s)", c, got)
		}

		// xchg2, named in that token's audience, acts on: its own actor outermost.
		actor2 := str(inst.clientCredentials(t, "acme", xchg2Basic), "access_token")
		second := exchanged(t, inst.exchange(t, xchg2Basic, "subject_token", first, "subject_token_type", token.TokenTypeJWT,
			"actor_token", actor2, "actor_token_type", token.TokenTypeJWT, "resource", "https://api.example/billing"))
		c = jwtClaims(t, inst, second)
		want := `{"act":{"client_id":"xchg","sub":"xchg"},"client_id":"xchg2","sub":"xchg2"}`
		if got := actJSON(c); got != want || c["sub"] != sc["sub"] || c["client_id"] != "xchg2" ||
			c["aud"] != "https://api.example/billing" || c["sid"] != sc["sid"] || c["fid"] != sc["fid"] {
			t.Fatalf("nested claims %v (act %s, want %s)", c, got, want)
		}
		// Exchanged again without an actor, it stays delegated: the chain is kept.
		c = jwtClaims(t, inst, exchanged(t, inst.exchange(t, xchg2Basic, "subject_token", second, "subject_token_type", token.TokenTypeAccess)))
		if got := actJSON(c); got != want {
			t.Fatalf("impersonating a delegated token dropped its actors: %s", got)
		}

		// An opaque token says the same at introspection.
		osub := str(signInTokens(t, inst, newBrowser(t), "xchgo", xchgoBasic, "openid orders:read"), "access_token")
		oat := exchanged(t, inst.exchange(t, xchgoBasic, "subject_token", osub, "subject_token_type", token.TokenTypeAccess,
			"actor_token", osub, "actor_token_type", token.TokenTypeAccess))
		if in := inst.introspect(t, "acme", oat); in.body["active"] != true || actJSON(in.body) != fmt.Sprintf(`{"client_id":"xchgo","sub":"%s"}`, sc["sub"]) {
			t.Fatalf("opaque delegated token introspection = %s", in.raw)
		}

		// A user's ID token as the actor: its subject and azp.
		fromID := signInTokens(t, inst, newBrowser(t), "xchg", xchgBasic, "openid")
		c = jwtClaims(t, inst, exchanged(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess,
			"actor_token", str(fromID, "id_token"), "actor_token_type", token.TokenTypeIDToken)))
		if got := actJSON(c); got != fmt.Sprintf(`{"client_id":"xchg","sub":"%s"}`, sc["sub"]) {
			t.Fatalf("ID token actor: act %s", got)
		}

		// An actor token that is dead, or not the exchanging client's, is refused.
		if r := post(t, inst.revokeURL("acme"), xchgBasic, form("token", actor)); r.status != 200 {
			t.Fatalf("revoke = %d %s", r.status, r.raw)
		}
		wantError(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess,
			"actor_token", actor, "actor_token_type", token.TokenTypeAccess), 400, InvalidRequest)
		wantError(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess,
			"actor_token", actor2, "actor_token_type", token.TokenTypeAccess), 400, InvalidRequest)
	})
}

// Every subject token type RFC 8693 §3 names that this realm issues: access
// tokens in JWT and opaque form, ID tokens, and jwt for either JWT; and only
// those, each under its own type.
func TestTokenExchange_SubjectTokenTypes(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		jwtTokens := signInTokens(t, inst, b, "xchg", xchgBasic, "openid profile orders:read")
		at, idt, rt := str(jwtTokens, "access_token"), str(jwtTokens, "id_token"), str(jwtTokens, "refresh_token")
		sc := jwtClaims(t, inst, at)
		if idt == "" || rt == "" {
			t.Fatalf("sign-in = %s", jwtTokens.raw)
		}
		opaque := signInTokens(t, inst, b, "xchgo", xchgoBasic, "openid profile orders:read")
		oat := str(opaque, "access_token")
		if !strings.HasPrefix(oat, token.AccessPrefix) {
			t.Fatalf("xchgo access token %q is not opaque", oat)
		}

		for _, tc := range []struct {
			name, basic, tok, typ, scope string
		}{
			{"access JWT", xchgBasic, at, token.TokenTypeAccess, "openid profile orders:read"},
			{"access JWT as jwt", xchgBasic, at, token.TokenTypeJWT, "openid profile orders:read"},
			{"ID token", xchgBasic, idt, token.TokenTypeIDToken, "openid profile"},
			{"ID token as jwt", xchgBasic, idt, token.TokenTypeJWT, "openid profile"},
			{"opaque access token", xchgoBasic, oat, token.TokenTypeAccess, "openid profile orders:read"},
		} {
			r := inst.exchange(t, tc.basic, "subject_token", tc.tok, "subject_token_type", tc.typ)
			nt := exchanged(t, r)
			in := post(t, inst.introspectURL("acme"), tc.basic, form("token", nt))
			if in.body["active"] != true || str(in, "sub") != sc["sub"] || str(in, "scope") != tc.scope || str(r, "scope") != tc.scope {
				t.Errorf("%s: exchanged %s, introspection %s", tc.name, r.raw, in.raw)
			}
			if tc.basic == xchgoBasic && !strings.HasPrefix(nt, token.AccessPrefix) {
				t.Errorf("%s: the opaque client got %q", tc.name, nt[:10])
			}
		}
		// An ID token's exchange keeps its session, and has no family to keep.
		c := jwtClaims(t, inst, exchanged(t, inst.exchange(t, xchgBasic, "subject_token", idt, "subject_token_type", token.TokenTypeIDToken)))
		if c["sid"] != sc["sid"] || c["fid"] != nil {
			t.Fatalf("from an ID token: %v", c)
		}
		// Each under another type, and refresh tokens under any, are refused.
		for name, tc := range map[string][2]string{
			"ID token as access token":   {idt, token.TokenTypeAccess},
			"access token as ID token":   {at, token.TokenTypeIDToken},
			"opaque access token as jwt": {oat, token.TokenTypeJWT},
			"refresh token as refresh":   {rt, token.TokenTypeRefresh},
			"refresh token as access":    {rt, token.TokenTypeAccess},
			"refresh token as jwt":       {rt, token.TokenTypeJWT},
			"garbage":                    {"not-a-token", token.TokenTypeAccess},
			"forged JWT":                 {at[:len(at)-4] + "AAAA", token.TokenTypeAccess},
		} {
			basic := xchgBasic
			if tc[0] == oat {
				basic = xchgoBasic
			}
			r := inst.exchange(t, basic, "subject_token", tc[0], "subject_token_type", tc[1])
			if r.status != 400 || str(r, "error") != string(InvalidRequest) {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
	})
}

// The subject token must be one the exchanging client holds by right: issued to
// it, or naming it in its audience.
func TestTokenExchange_SubjectOfAnotherClientRefused(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		web := signInTokens(t, inst, newBrowser(t), "web", webBasic, "openid profile")
		for _, tc := range [][2]string{
			{str(web, "access_token"), token.TokenTypeAccess},
			{str(web, "id_token"), token.TokenTypeIDToken},
			{str(inst.clientCredentials(t, "acme", xchg2Basic), "access_token"), token.TokenTypeAccess},
		} {
			wantError(t, inst.exchange(t, xchgBasic, "subject_token", tc[0], "subject_token_type", tc[1]), 400, InvalidRequest)
		}
		// xchg's own client token is its to exchange; one naming xchg2 only for xchg2
		// to exchange, and a client's own token only by that client.
		own := str(inst.clientCredentials(t, "acme", xchgBasic), "access_token")
		c := jwtClaims(t, inst, exchanged(t, inst.exchange(t, xchgBasic, "subject_token", own, "subject_token_type", token.TokenTypeAccess, "audience", "xchg2")))
		if c["sub"] != "xchg" || c["client_id"] != "xchg" {
			t.Fatalf("client's own token exchanged: %v", c)
		}
	})
}

// Policy: the client needs the grant and a secret; every audience and resource
// must be in its token_exchange_audiences; scope only narrows.
func TestTokenExchange_Policy(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		subject := str(signInTokens(t, inst, newBrowser(t), "xchg", xchgBasic, "openid orders:read"), "access_token")
		sub := []string{"subject_token", subject, "subject_token_type", token.TokenTypeAccess}
		// A public client, and a confidential one without the grant.
		wantError(t, inst.exchange(t, "", append(sub, "client_id", "spa")...), 400, UnauthorizedClient)
		wantError(t, inst.exchange(t, noxBasic, sub...), 400, UnauthorizedClient)
		// Targets outside the policy.
		for name, extra := range map[string][]string{
			"audience":                {"audience", "https://api.example/billing"},
			"one of two audiences":    {"audience", "https://api.example/orders", "audience", "https://evil.example"},
			"resource":                {"resource", "https://api.example/billing"},
			"relative resource":       {"resource", "xchg2"},
			"another client's policy": {"audience", "https://api.example/billing", "resource", "https://api.example/billing"},
		} {
			r := inst.exchange(t, xchgBasic, append(slices.Clone(sub), extra...)...)
			if r.status != 400 || str(r, "error") != string(InvalidTarget) {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
		// Both audience and resource, each allowed: the token names both.
		c := jwtClaims(t, inst, exchanged(t, inst.exchange(t, xchgBasic, append(slices.Clone(sub),
			"audience", "xchg2", "resource", "https://api.example/orders")...)))
		if aud, _ := c["aud"].([]any); len(aud) != 2 || aud[0] != "xchg2" || aud[1] != "https://api.example/orders" {
			t.Fatalf("aud %v", c["aud"])
		}
		// Widening the scope, even to one the client has.
		wantError(t, inst.exchange(t, xchgBasic, append(slices.Clone(sub), "scope", "orders:read orders:write")...), 400, InvalidScope)
		wantError(t, inst.exchange(t, xchgBasic, append(slices.Clone(sub), "scope", "admin")...), 400, InvalidScope)
	})
}

// Bad input is answered as RFC 6749 §5.2 JSON, never echoing the token.
func TestTokenExchange_BadInput(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		subject := str(inst.clientCredentials(t, "acme", xchgBasic), "access_token")
		for name, kv := range map[string][]string{
			"no subject_token":         {"subject_token_type", token.TokenTypeAccess},
			"no subject_token_type":    {"subject_token", subject},
			"unknown subject type":     {"subject_token", subject, "subject_token_type", "urn:example:saml"},
			"SAML2 subject type":       {"subject_token", subject, "subject_token_type", "urn:ietf:params:oauth:token-type:saml2"},
			"actor type without token": {"subject_token", subject, "subject_token_type", token.TokenTypeAccess, "actor_token_type", token.TokenTypeAccess},
			"actor token without type": {"subject_token", subject, "subject_token_type", token.TokenTypeAccess, "actor_token", subject},
			"unknown actor type":       {"subject_token", subject, "subject_token_type", token.TokenTypeAccess, "actor_token", subject, "actor_token_type", "urn:x"},
			"refresh token requested":  {"subject_token", subject, "subject_token_type", token.TokenTypeAccess, "requested_token_type", token.TokenTypeRefresh},
			"ID token requested":       {"subject_token", subject, "subject_token_type", token.TokenTypeAccess, "requested_token_type", token.TokenTypeIDToken},
			"subject_token repeated":   {"subject_token", subject, "subject_token", subject, "subject_token_type", token.TokenTypeAccess},
			"oversized subject_token":  {"subject_token", strings.Repeat("a", 17<<10), "subject_token_type", token.TokenTypeAccess},
		} {
			r := inst.exchange(t, xchgBasic, kv...)
			if r.status != 400 || str(r, "error") != string(InvalidRequest) || r.header.Get("Content-Type") != "application/json" ||
				r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: %d %v %s", name, r.status, r.header, r.raw)
			}
			if strings.Contains(r.raw, subject) {
				t.Errorf("%s: the token was echoed", name)
			}
		}
		// Sent in the URL, where logs keep it, it is refused too.
		r := post(t, inst.tokenURL("acme")+"?subject_token="+subject, xchgBasic,
			form("grant_type", grants.TokenExchangeType, "subject_token_type", token.TokenTypeAccess))
		wantError(t, r, 400, InvalidRequest)
		// requested_token_type access_token is what is issued anyway.
		exchanged(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess,
			"requested_token_type", token.TokenTypeAccess))
		inst.logMu.Lock()
		logs := inst.logs.String()
		inst.logMu.Unlock()
		if strings.Contains(logs, subject) {
			t.Fatal("a subject token reached the logs")
		}
	})
}

// The exchanged token stands on the subject token's grant and session: revoking
// the family (its refresh token) or ending the session (logout) ends it at
// introspection, as it ends the subject token; and a dead subject token cannot be
// exchanged.
func TestTokenExchange_DiesWithTheSubjectsFamilyAndSession(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		first := signInTokens(t, inst, b, "xchg", xchgBasic, "openid orders:read")
		subject := str(first, "access_token")
		fromAT := exchanged(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess,
			"audience", "xchg2"))
		if in := post(t, inst.introspectURL("acme"), xchg2Basic, form("token", fromAT)); in.body["active"] != true {
			t.Fatalf("introspection = %s", in.raw)
		}
		if r := post(t, inst.revokeURL("acme"), xchgBasic, form("token", str(first, "refresh_token"))); r.status != 200 {
			t.Fatalf("revoke = %d %s", r.status, r.raw)
		}
		wantInactive(t, post(t, inst.introspectURL("acme"), xchg2Basic, form("token", fromAT)))
		wantInactive(t, inst.introspect(t, "acme", subject))
		wantError(t, inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess), 400, InvalidRequest)

		// The session: from an access token and from an ID token, both end with a logout.
		second := signInTokens(t, inst, b, "xchg", xchgBasic, "openid orders:read")
		viaAT := exchanged(t, inst.exchange(t, xchgBasic, "subject_token", str(second, "access_token"), "subject_token_type", token.TokenTypeAccess))
		viaID := exchanged(t, inst.exchange(t, xchgBasic, "subject_token", str(second, "id_token"), "subject_token_type", token.TokenTypeIDToken))
		for _, tok := range []string{viaAT, viaID} {
			if in := inst.introspect(t, "acme", tok); in.body["active"] != true {
				t.Fatalf("before logout: %s", in.raw)
			}
		}
		rpLogout(t, inst, b, str(second, "id_token"))
		for _, tok := range []string{viaAT, viaID} {
			wantInactive(t, inst.introspect(t, "acme", tok))
		}
		wantError(t, inst.exchange(t, xchgBasic, "subject_token", str(second, "id_token"), "subject_token_type", token.TokenTypeIDToken), 400, InvalidRequest)

		// An expired subject token, though its session lives on.
		third := signInTokens(t, inst, b, "xchg", xchgBasic, "openid orders:read")
		inst.clock.Add(token.DefaultAccessTokenTTL)
		wantError(t, inst.exchange(t, xchgBasic, "subject_token", str(third, "access_token"), "subject_token_type", token.TokenTypeAccess), 400, InvalidRequest)
		wantError(t, inst.exchange(t, xchgBasic, "subject_token", str(third, "id_token"), "subject_token_type", token.TokenTypeIDToken), 400, InvalidRequest)
	})
}

// Exchanges racing the revocation of the subject's family: once the revocation
// has returned, no token any of them got is active, whichever finished first.
func TestTokenExchange_RacingFamilyRevocationWins(t *testing.T) {
	startExchange(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		for _, parties := range []int{2, 5, 100} {
			tokens := signInTokens(t, inst, b, "xchg", xchgBasic, "openid orders:read")
			subject := str(tokens, "access_token")
			var (
				wg  sync.WaitGroup
				mu  sync.Mutex
				got []string
			)
			start := make(chan struct{})
			for range parties {
				wg.Go(func() {
					<-start
					r := inst.exchange(t, xchgBasic, "subject_token", subject, "subject_token_type", token.TokenTypeAccess)
					if r.status == 200 {
						mu.Lock()
						got = append(got, str(r, "access_token"))
						mu.Unlock()
					} else if r.status != 400 || str(r, "error") != string(InvalidRequest) {
						t.Errorf("exchange = %d %s", r.status, r.raw)
					}
				})
			}
			wg.Go(func() {
				<-start
				if r := post(t, inst.revokeURL("acme"), xchgBasic, form("token", str(tokens, "refresh_token"))); r.status != 200 {
					t.Errorf("revoke = %d %s", r.status, r.raw)
				}
			})
			close(start)
			wg.Wait()
			for _, tok := range got {
				wantInactive(t, inst.introspect(t, "acme", tok))
			}
			t.Logf("%d parties: %d exchanged before the revocation", parties, len(got))
		}
	})
}
