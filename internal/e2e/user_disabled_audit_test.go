package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Disabling a user through the seed is a security event: one `user.disabled` audit
// event, written once, however often the same seed is applied again.
func TestSeed_DisablingAUserIsAudited(t *testing.T) {
	disabledSeed := seedWith(t, aliceLine, aliceLine+disabled)
	stores(t, func(t *testing.T, db string) {
		events := func() []storage.AuditEvent {
			t.Helper()
			ev, err := openStore(t, db).ListAudit(t.Context(), storage.AuditFilter{Type: "user.disabled"})
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		start(t, options{db: db}).stop()
		if ev := events(); len(ev) != 0 {
			t.Fatalf("user.disabled events of an enabled user: %+v", ev)
		}
		alice, err := openStore(t, db).GetUserByUsername(t.Context(), "acme", "alice")
		if err != nil || alice.Disabled {
			t.Fatalf("alice = %+v, %v", alice, err)
		}

		start(t, options{db: db, seed: disabledSeed}).stop()
		ev := events()
		if len(ev) != 1 || ev[0].Realm != "acme" || ev[0].UserID != alice.ID || ev[0].Time.IsZero() {
			t.Fatalf("user.disabled events = %+v; want one for alice (%s)", ev, alice.ID)
		}
		if b, _ := json.Marshal(ev[0]); strings.Contains(string(b), alicePass) || strings.Contains(string(b), "argon2") {
			t.Fatalf("the audit event holds a secret: %s", b)
		}
		if alice, _ := openStore(t, db).GetUserByUsername(t.Context(), "acme", "alice"); !alice.Disabled {
			t.Fatal("alice is not disabled")
		}

		// The same seed again changes nothing, and writes nothing.
		start(t, options{db: db, seed: disabledSeed}).stop()
		if ev := events(); len(ev) != 1 {
			t.Fatalf("after the same seed again, user.disabled events = %+v; want still one", ev)
		}
	})
}

// Disabling a user is for good: their tokens and browser sessions end with it, and
// enabling them again brings none of it back (their security stamp moved).
func TestSeed_EnablingADisabledUserBringsNothingBack(t *testing.T) {
	disabledSeed := seedWith(t, aliceLine, aliceLine+disabled)
	stores(t, func(t *testing.T, db string) {
		// One address for every start, so the issuer stays the same: only the
		// user's state can refuse the old tokens.
		o := options{db: db, addr: freeAddr(t)}
		s := start(t, o)
		b := newBrowser(t)
		at, rt := signIn(t, s, b)
		s.stop()

		o.seed = disabledSeed
		start(t, o).stop()

		o.seed = ""
		s = start(t, o)
		if r := s.refresh(t, webBasic, rt); !r.invalidGrant() {
			t.Errorf("refresh token from before the disabling, user enabled again: %d %s; want 400 invalid_grant", r.status, r.raw)
		}
		wantInactive(t, "access token from before the disabling, user enabled again", s.introspect(t, webBasic, at))
		if p := b.get(s.authURL("web")); p.location != nil {
			t.Errorf("the browser session from before the disabling signed in again without a password: %v", p.location)
		}
		// Alice herself can sign in again.
		if r := s.redeem(t, webBasic, newBrowser(t).code(s, "web")); r.status != 200 {
			t.Errorf("a new sign-in after enabling: %d %s", r.status, r.raw)
		}
	})
}

// A new password for a user, set by the seed, ends what they held: a password is
// changed because the old one may be known.
func TestSeed_NewPasswordEndsSessionsAndTokens(t *testing.T) {
	const newPass = "alice-password-2"
	newSeed := seedWith(t, "password: "+alicePass, "password: "+newPass)
	stores(t, func(t *testing.T, db string) {
		o := options{db: db, addr: freeAddr(t)}
		s := start(t, o)
		b := newBrowser(t)
		at, rt := signIn(t, s, b)
		s.stop()

		o.seed = newSeed
		s = start(t, o)
		if r := s.refresh(t, webBasic, rt); !r.invalidGrant() {
			t.Errorf("refresh token from before the new password: %d %s; want 400 invalid_grant", r.status, r.raw)
		}
		wantInactive(t, "access token from before the new password", s.introspect(t, webBasic, at))
		p := b.get(s.authURL("web"))
		if p.location != nil {
			t.Fatalf("the browser session from before the new password signed in without it: %v", p.location)
		}
		if p = b.do(b.loginRequest(p, s.authURL("web"), "username", "alice", "password", newPass)); p.location == nil || p.location.Query().Get("code") == "" {
			t.Errorf("sign-in with the new password: %d", p.status)
		}
		events, err := openStore(t, db).ListAudit(t.Context(), storage.AuditFilter{Type: "user.password_changed"})
		if err != nil || len(events) != 1 {
			t.Errorf("user.password_changed events = %+v, %v; want one", events, err)
		}
		s.stop()
		// The same seed again is no new password.
		start(t, o).stop()
		if events, _ := openStore(t, db).ListAudit(t.Context(), storage.AuditFilter{Type: "user.password_changed"}); len(events) != 1 {
			t.Errorf("after the same seed again, user.password_changed events = %d; want still one", len(events))
		}
	})
}

// Disabling a client is for good too: the tokens it was issued, access and
// refresh, stay dead when it is enabled again.
func TestSeed_EnablingADisabledClientBringsNothingBack(t *testing.T) {
	disabledSeed := seedWith(t, webLine, webLine+disabled, svcLine, svcLine+disabled)
	stores(t, func(t *testing.T, db string) {
		o := options{db: db, addr: freeAddr(t)}
		s := start(t, o)
		webAT, webRT := signIn(t, s, newBrowser(t))
		cc := post(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials"))
		svcAT := cc.str("access_token")
		if svcAT == "" {
			t.Fatalf("client credentials: %d %s", cc.status, cc.raw)
		}
		s.stop()

		o.seed = disabledSeed
		start(t, o).stop()

		o.seed = ""
		s = start(t, o)
		if r := s.refresh(t, webBasic, webRT); !r.invalidGrant() {
			t.Errorf("web's refresh token from before the disabling, web enabled again: %d %s; want 400 invalid_grant", r.status, r.raw)
		}
		wantInactive(t, "web's access token from before the disabling", s.introspect(t, webBasic, webAT))
		wantInactive(t, "svc's access token from before the disabling", s.introspect(t, svcBasic, svcAT))
		// New tokens work, once past the stamp's second: iat has whole seconds, so a
		// token of that second counts as before it.
		svc, err := openStore(t, db).GetClient(t.Context(), "acme", "svc")
		if err != nil || svc.TokensValidAfter.IsZero() {
			t.Fatalf("svc = %+v, %v; want a security stamp", svc, err)
		}
		time.Sleep(time.Until(svc.TokensValidAfter.Truncate(time.Second).Add(time.Second)))
		cc = post(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials"))
		if in := s.introspect(t, svcBasic, cc.str("access_token")); in.body["active"] != true {
			t.Errorf("a new svc token: introspection = %d %s", in.status, in.raw)
		}
		events, err := openStore(t, db).ListAudit(t.Context(), storage.AuditFilter{Type: "client.disabled"})
		if err != nil || len(events) != 2 {
			t.Errorf("client.disabled events = %+v, %v; want two (web and svc)", events, err)
		}
	})
}

// signIn signs alice in to web in the browser and returns the access and refresh
// tokens of the grant.
func signIn(t *testing.T, s *server, b *browser) (accessToken, refreshToken string) {
	t.Helper()
	r := s.redeem(t, webBasic, b.code(s, "web"))
	accessToken, refreshToken = r.str("access_token"), r.str("refresh_token")
	if accessToken == "" || refreshToken == "" {
		t.Fatalf("sign-in: %d %s", r.status, r.raw)
	}
	return accessToken, refreshToken
}
