package oauth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// A client set to refresh_token_format jwt gets refresh tokens keycloak-js can
// decode, which rotate, retry and betray reuse exactly as opaque ones do, and are
// never a Bearer credential.
func TestRefreshTokenInJWTForm(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		basic := "kcrt:kcrt-secret-222-0123456789abcdefghijklmnop"
		jwks := fetchJWKS(t, inst, "acme")
		first := signInTokens(t, inst, newBrowser(t), "kcrt", basic, "openid profile offline_access")
		rt1 := str(first, "refresh_token")
		if strings.HasPrefix(rt1, token.RefreshPrefix) {
			t.Fatalf("refresh token %q is opaque", rt1)
		}
		typ, c := verifyLocally(t, jwks, rt1)
		_, id := verifyLocally(t, jwks, str(first, "id_token"))
		iss := inst.issuer("acme")
		iat, _ := c["iat"].(float64)
		exp, _ := c["exp"].(float64)
		if typ != "Offline" || c["typ"] != "Offline" || c["iss"] != iss || c["aud"] != iss || c["azp"] != "kcrt" || c["sub"] != id["sub"] ||
			c["sid"] != id["sid"] || c["sid"] == nil || c["scope"] != "openid profile offline_access" || c["jti"] == nil ||
			float64(inst.clock.Now().Unix()) != iat || exp-iat != 24*3600 {
			t.Fatalf("refresh token typ %q, claims %v", typ, c)
		}

		// Refused as a Bearer credential: at userinfo, and as an access token at introspection.
		req, _ := http.NewRequest("GET", iss+userinfoPath, nil)
		req.Header.Set("Authorization", "Bearer "+rt1)
		if r := do(t, req); r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("userinfo with the refresh token = %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		wantInactive(t, inst.introspect(t, "acme", rt1)) // svc: not its client, and no access token
		// Its own client introspects it as a refresh token.
		in := post(t, inst.introspectURL("acme"), basic, form("token", rt1, "token_type_hint", "access_token"))
		if in.body["active"] != true || str(in, "token_type") != "refresh_token" || str(in, "client_id") != "kcrt" || in.body["exp"] != exp {
			t.Fatalf("introspection by its client = %d %s", in.status, in.raw)
		}

		// Rotation, twice, with the retry window in between.
		r2 := inst.refresh(t, basic, rt1)
		rt2 := str(r2, "refresh_token")
		if r2.status != 200 || rt2 == "" || rt2 == rt1 {
			t.Fatalf("refresh = %d %s", r2.status, r2.raw)
		}
		if typ, c2 := verifyLocally(t, jwks, rt2); typ != "Offline" || c2["jti"] == c["jti"] || c2["azp"] != "kcrt" {
			t.Fatalf("rotated refresh token typ %q, claims %v", typ, c2)
		}
		if retry := inst.refresh(t, basic, rt1); retry.status != 200 || retry.raw != r2.raw {
			t.Fatalf("retry = %d, same response: %v", retry.status, retry.raw == r2.raw)
		}
		r3 := inst.refresh(t, basic, rt2, "scope", "openid")
		rt3 := str(r3, "refresh_token")
		if r3.status != 200 || rt3 == "" {
			t.Fatalf("second rotation = %d %s", r3.status, r3.raw)
		}
		// Still Offline: the family stays offline (outlives the session) whatever the scope.
		if typ, c3 := verifyLocally(t, jwks, rt3); typ != "Offline" || c3["scope"] != "openid" {
			t.Fatalf("narrowed refresh token typ %q, claims %v", typ, c3)
		}

		// Reuse of a spent one revokes the family, as for opaque tokens.
		wantError(t, inst.refresh(t, basic, rt1), 400, protocol.InvalidGrant)
		wantError(t, inst.refresh(t, basic, rt3), 400, protocol.InvalidGrant)
		events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: "refresh_token.reuse_detected"})
		if len(events) != 1 || events[0].ClientID != "kcrt" {
			t.Fatalf("audit %+v", events)
		}

		// Another client cannot spend it, and a tampered one is no refresh token.
		fresh := str(signInTokens(t, inst, newBrowser(t), "kcrt", basic, "openid offline_access"), "refresh_token")
		wantError(t, inst.refresh(t, "web:web-secret-123-0123456789abcdefghijklmnop", fresh), 400, protocol.InvalidGrant)
		wantError(t, inst.refresh(t, basic, fresh[:len(fresh)-4]+"AAAA"), 400, protocol.InvalidGrant)
		if r := inst.refresh(t, basic, fresh); r.status != 200 {
			t.Fatalf("fresh after another client's attempt = %d %s", r.status, r.raw)
		}
	})
}
