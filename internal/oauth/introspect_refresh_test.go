package oauth

import (
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
)

// A refresh token is active at introspection exactly while the refresh grant would
// redeem it: it dies with its user, its session, a sign-out everywhere and its idle
// and absolute limits, and its exp says the nearer of the two.
func TestIntrospection_RefreshTokenLivesAsLongAsItsGrant(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		ctx := t.Context()
		basic := "web:web-secret-123-0123456789abcdefghijklmnop"
		introspect := func(tok string) response {
			return post(t, inst.introspectURL("acme"), basic, form("token", tok, "token_type_hint", "refresh_token"))
		}
		active := func(what, tok string) response {
			t.Helper()
			in := introspect(tok)
			if in.body["active"] != true || str(in, "token_type") != "refresh_token" || str(in, "client_id") != "web" {
				t.Fatalf("%s: introspection = %d %s", what, in.status, in.raw)
			}
			return in
		}
		signIn := func() string {
			return str(signInTokens(t, inst, newBrowser(t), "web", basic, "openid offline_access"), "refresh_token")
		}

		// Another client, even one allowed the refresh grant, learns nothing.
		rt := signIn()
		active("fresh", rt)
		wantInactive(t, post(t, inst.introspectURL("acme"), "strict:strict-secret-111-0123456789abcdefghijklmnop", form("token", rt)))
		wantInactive(t, post(t, inst.introspectURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", rt)))

		// A disabled user.
		alice := mustUser(t, inst, "alice")
		alice.Disabled = true
		if err := putUser(t, inst, alice); err != nil {
			t.Fatal(err)
		}
		wantInactive(t, introspect(rt))
		wantError(t, inst.refresh(t, basic, rt), 400, protocol.InvalidGrant)
		alice.Disabled = false
		if err := putUser(t, inst, alice); err != nil {
			t.Fatal(err)
		}

		// Its browser session logged out.
		rt = signIn()
		active("before logout", rt)
		if err := inst.store.RevokeSession(ctx, sessionOf(t, inst, rt), inst.clock.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		wantInactive(t, introspect(rt))

		// Signed out everywhere.
		rt = signIn()
		inst.clock.Add(time.Second)
		if err := token.LogoutEverywhere(ctx, inst.store, "acme", alice.ID, inst.clock.Now(), token.Caller{}); err != nil {
			t.Fatal(err)
		}
		wantInactive(t, introspect(rt))

		// Idle: exp is the idle limit; at it the token is dead.
		inst.clock.Add(time.Second)
		rt = signIn()
		fam, _ := inst.store.GetFamily(ctx, familyOf(t, inst, rt))
		if in := active("idle", rt); int64(in.body["exp"].(float64)) != fam.IdleExpiresAt.Unix() {
			t.Fatalf("exp = %v, want the idle limit %v", in.body["exp"], fam.IdleExpiresAt)
		}
		inst.clock.Add(fam.IdleExpiresAt.Sub(inst.clock.Now()))
		wantInactive(t, introspect(rt))

		// Absolute: once it is nearer than the idle limit, exp says it; at it the token is dead.
		rt = signIn()
		fam, _ = inst.store.GetFamily(ctx, familyOf(t, inst, rt))
		idle := fam.IdleExpiresAt.Sub(inst.clock.Now())
		for inst.clock.Now().Add(idle).Before(fam.AbsoluteExpiresAt) {
			inst.clock.Add(idle - time.Minute)
			r := inst.refresh(t, basic, rt)
			if r.status != 200 {
				t.Fatalf("refresh = %d %s", r.status, r.raw)
			}
			rt = str(r, "refresh_token")
		}
		if in := active("near the absolute limit", rt); int64(in.body["exp"].(float64)) != fam.AbsoluteExpiresAt.Unix() {
			t.Fatalf("exp = %v, want the absolute limit %v", in.body["exp"], fam.AbsoluteExpiresAt)
		}
		inst.clock.Add(fam.AbsoluteExpiresAt.Sub(inst.clock.Now()))
		wantInactive(t, introspect(rt))
	})
}
