package oauth

import (
	"net/url"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// mobBasic is the client "mob": refresh tokens in JWT form, and refresh lifetimes
// (40 days idle, 90 absolute) longer than the browser session's (24 hours idle,
// 30 days absolute), so that only the session can end a session-bound family.
const mobBasic = "mob:mob-secret-333-0123456789abcdefghijklmnop"

// browserSessionOf returns the browser session a refresh token's family was born in.
func browserSessionOf(t *testing.T, inst *instance, jwtRefresh string) storage.Session {
	t.Helper()
	_, c := verifyLocally(t, fetchJWKS(t, inst, "acme"), jwtRefresh)
	sid, _ := c["sid"].(string)
	s, err := inst.store.GetSession(t.Context(), sid)
	if err != nil {
		t.Fatalf("session %q: %v", sid, err)
	}
	return s
}

// rpLogout signs the browser out of the session the ID token names (OIDC
// RP-Initiated Logout with id_token_hint).
func rpLogout(t *testing.T, inst *instance, b *browser, idToken string) {
	t.Helper()
	p := b.get(inst.issuer("acme") + logoutPath + "?" + url.Values{"id_token_hint": {idToken},
		"post_logout_redirect_uri": {"http://127.0.0.1:9999/bye"}}.Encode())
	if p.location == nil || p.location.Path != "/bye" {
		t.Fatalf("logout = %d %v", p.status, p.location)
	}
}

// A code exchange without offline_access hands a client with the refresh_token
// grant a refresh token bound to the browser session (Keycloak's typ Refresh):
// it refreshes, rotates, retries and betrays reuse like an offline one, and ends
// with an RP-initiated logout, at the token endpoint and at introspection.
func TestSessionBoundRefresh_IssuedRotatedAndEndedByLogout(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		first := signInTokens(t, inst, b, "mob", mobBasic, "openid profile")
		rt1 := str(first, "refresh_token")
		if rt1 == "" {
			t.Fatalf("no refresh token without offline_access: %s", first.raw)
		}
		typ, c := verifyLocally(t, fetchJWKS(t, inst, "acme"), rt1)
		sess := browserSessionOf(t, inst, rt1)
		// Its exp is the family's (40 days idle) capped by the session's absolute expiry (30 days).
		if exp, _ := c["exp"].(float64); typ != token.TypeRefreshJWT || int64(exp) != sess.ExpiresAt.Unix() {
			t.Fatalf("typ %q exp %v, want Refresh and the session's expiry %d", typ, c["exp"], sess.ExpiresAt.Unix())
		}
		in := post(t, inst.introspectURL("acme"), mobBasic, form("token", rt1))
		if in.body["active"] != true || str(in, "token_type") != "refresh_token" || in.body["exp"] != c["exp"] {
			t.Fatalf("introspection = %s", in.raw)
		}
		// A client without the refresh_token grant still gets none.
		third := "third:third-secret-321-0123456789abcdefghijklmnop"
		code := b.get(authURL(inst, "acme", "client_id", "third", "scope", "openid")).location
		if code != nil && code.Query().Get("code") != "" {
			if r := inst.redeem(t, third, code.Query().Get("code")); r.status != 200 || r.body["refresh_token"] != nil {
				t.Fatalf("third = %s", r.raw)
			}
		}

		// Rotation, the retry window, then reuse of the spent token revokes the family.
		r2 := inst.refresh(t, mobBasic, rt1)
		rt2 := str(r2, "refresh_token")
		if r2.status != 200 || rt2 == "" || rt2 == rt1 || str(r2, "id_token") == "" {
			t.Fatalf("refresh = %d %s", r2.status, r2.raw)
		}
		if typ, _ := verifyLocally(t, fetchJWKS(t, inst, "acme"), rt2); typ != token.TypeRefreshJWT {
			t.Fatalf("rotated typ %q", typ)
		}
		if retry := inst.refresh(t, mobBasic, rt1); retry.status != 200 || retry.raw != r2.raw {
			t.Fatalf("retry within the window = %d, same: %v", retry.status, retry.raw == r2.raw)
		}
		inst.clock.Add(11 * time.Second)
		wantError(t, inst.refresh(t, mobBasic, rt1), 400, protocol.InvalidGrant)
		wantError(t, inst.refresh(t, mobBasic, rt2), 400, protocol.InvalidGrant)
		wantInactive(t, post(t, inst.introspectURL("acme"), mobBasic, form("token", rt2)))

		// A new one from the same session, then the RP logs the session out.
		again := signInTokens(t, inst, b, "mob", mobBasic, "openid profile")
		rt := str(inst.refresh(t, mobBasic, str(again, "refresh_token")), "refresh_token")
		if rt == "" {
			t.Fatal("no rotation before logout")
		}
		rpLogout(t, inst, b, str(again, "id_token"))
		wantError(t, inst.refresh(t, mobBasic, rt), 400, protocol.InvalidGrant)
		wantInactive(t, post(t, inst.introspectURL("acme"), mobBasic, form("token", rt)))
	})
}

// A session-bound refresh token dies when its session idles out, though its own
// family would live on; an offline one of the same session does not.
func TestSessionBoundRefresh_DiesWhenTheSessionIdlesOut(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		bound := str(signInTokens(t, inst, b, "mob", mobBasic, "openid"), "refresh_token")
		offline := str(signInTokens(t, inst, b, "mob", mobBasic, "openid offline_access"), "refresh_token")
		if browserSessionOf(t, inst, bound).ID != browserSessionOf(t, inst, offline).ID {
			t.Fatal("both grants should come from one browser session")
		}
		inst.clock.Add(24*time.Hour + time.Second) // the browser session's idle limit
		wantInactive(t, post(t, inst.introspectURL("acme"), mobBasic, form("token", bound)))
		wantError(t, inst.refresh(t, mobBasic, bound), 400, protocol.InvalidGrant)
		if in := post(t, inst.introspectURL("acme"), mobBasic, form("token", offline)); in.body["active"] != true {
			t.Fatalf("the offline token died with the session's idle expiry: %s", in.raw)
		}
		if r := inst.refresh(t, mobBasic, offline); r.status != 200 {
			t.Fatalf("offline refresh after the session idled out = %s", r.raw)
		}
	})
}

// A refresh of a session-bound token slides the session's idle expiry, as a
// Keycloak refresh keeps its SSO session alive, but writes it at most once a
// minute; the session's absolute expiry still ends the family.
func TestSessionBoundRefresh_SlidesTheSessionUntilItsAbsoluteExpiry(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		rt := str(signInTokens(t, inst, newBrowser(t), "mob", mobBasic, "openid"), "refresh_token")
		created := browserSessionOf(t, inst, rt)
		idle := created.IdleExpiresAt.Sub(created.LastSeenAt)

		// Within a minute of the session's last write, a refresh writes nothing.
		inst.clock.Add(30 * time.Second)
		rt = str(inst.refresh(t, mobBasic, rt), "refresh_token")
		if s := browserSessionOf(t, inst, rt); !s.LastSeenAt.Equal(created.LastSeenAt) || !s.IdleExpiresAt.Equal(created.IdleExpiresAt) {
			t.Fatalf("a refresh within a minute wrote the session: %v -> %v", created.LastSeenAt, s.LastSeenAt)
		}
		// Past it, the refresh slides the idle expiry by the session's own idle period.
		inst.clock.Add(23 * time.Hour)
		r := inst.refresh(t, mobBasic, rt)
		rt = str(r, "refresh_token")
		now := inst.clock.Now().UTC().Truncate(time.Microsecond)
		if s := browserSessionOf(t, inst, rt); r.status != 200 || !s.LastSeenAt.Equal(now) || !s.IdleExpiresAt.Equal(now.Add(idle)) {
			t.Fatalf("refresh = %d; session seen %v idle until %v, want %v and %v", r.status, s.LastSeenAt, s.IdleExpiresAt, now, now.Add(idle))
		}
		// The rotated token's exp is still capped by the session's absolute expiry.
		if _, c := verifyLocally(t, fetchJWKS(t, inst, "acme"), rt); c["exp"] != float64(created.ExpiresAt.Unix()) {
			t.Fatalf("rotated exp %v, want the session's %d", c["exp"], created.ExpiresAt.Unix())
		}
		// So a refresh every 23 hours keeps it going past the first 24 hours...
		for inst.clock.Now().Add(23 * time.Hour).Before(created.ExpiresAt) {
			inst.clock.Add(23 * time.Hour)
			r := inst.refresh(t, mobBasic, rt)
			if r.status != 200 {
				t.Fatalf("refresh %v after sign-in = %s", inst.clock.Now().Sub(created.CreatedAt), r.raw)
			}
			rt = str(r, "refresh_token")
		}
		// ...until the session's absolute limit (30 days), well before the family's own.
		inst.clock.Add(23 * time.Hour)
		wantError(t, inst.refresh(t, mobBasic, rt), 400, protocol.InvalidGrant)
		wantInactive(t, post(t, inst.introspectURL("acme"), mobBasic, form("token", rt)))
	})
}

// An offline refresh token (offline_access) outlives its session's idle and
// absolute expiry and the sweep that follows, and still ends with an
// RP-initiated logout of that session.
func TestOfflineRefresh_OutlivesTheSessionAndItsPurgeButNotALogout(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		first := signInTokens(t, inst, b, "mob", mobBasic, "openid offline_access")
		rt := str(first, "refresh_token")
		typ, c := verifyLocally(t, fetchJWKS(t, inst, "acme"), rt)
		sess := browserSessionOf(t, inst, rt)
		// Its exp is the family's own idle expiry (40 days), past the session's 30.
		if exp, _ := c["exp"].(float64); typ != token.TypeOfflineJWT || int64(exp) != inst.clock.Now().Add(960*time.Hour).Unix() {
			t.Fatalf("typ %q exp %v", typ, c["exp"])
		}
		var idToken string
		for inst.clock.Now().Before(sess.ExpiresAt.Add(24 * time.Hour)) {
			inst.clock.Add(23 * time.Hour)
			r := inst.refresh(t, mobBasic, rt)
			if r.status != 200 {
				t.Fatalf("offline refresh %v after sign-in = %s", inst.clock.Now().Sub(sess.CreatedAt), r.raw)
			}
			rt, idToken = str(r, "refresh_token"), str(r, "id_token")
		}
		if s, err := inst.store.GetSession(t.Context(), sess.ID); err != nil || s.Live(inst.clock.Now()) {
			t.Fatalf("the session should be kept, and expired: %v", err)
		}
		// The sweep keeps the expired session while the offline family needs it.
		if _, err := inst.store.Sweep(t.Context(), inst.clock.Now(), 0); err != nil {
			t.Fatal(err)
		}
		r := inst.refresh(t, mobBasic, rt)
		if r.status != 200 {
			t.Fatalf("offline refresh after the sweep = %s", r.raw)
		}
		rt, idToken = str(r, "refresh_token"), str(r, "id_token")

		// RP-initiated logout of that (expired) session still ends the family.
		rpLogout(t, inst, b, idToken)
		wantError(t, inst.refresh(t, mobBasic, rt), 400, protocol.InvalidGrant)
		wantInactive(t, post(t, inst.introspectURL("acme"), mobBasic, form("token", rt)))
	})
}
