package storagetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// The admin contract: updater functions whose revocations and audit events share
// their transaction, audit events with every create and delete, LogoutRealm, user
// search and pages, audit pages.

var adminTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"UpdateUserMovesStampAndEndsWhatTheUserHolds", testUpdateUserStamp},
	{"UpdateClientMovesStampAndEndsWhatTheClientHolds", testUpdateClientStamp},
	{"UpdaterFailureChangesNothing", testUpdaterFailure},
	{"UpdateRealm", testUpdateRealm},
	{"EventsGoWithTheirChange", testEventsWithChange},
	{"DeleteClientTakesWhatWasIssuedToIt", testDeleteClientTakesGrants},
	{"LogoutRealm", testLogoutRealm},
	{"ListUsersSearchAndPages", testListUsers},
	{"AuditByClientAndCursor", testAuditPages},
	{"UpdatersLoseNoUpdate", testUpdatersLoseNoUpdate},
	{"DisableRacingRotationRevokesTheFamily", testDisableRacesRotation},
}

// holding is what a user holds in realm acme, made for the tests below: a live
// session with a family born in it, an unredeemed code, and a redeemed code
// (with the family its redemption started), all for client web.
type holding struct {
	session         string
	family          string
	code, usedCode  []byte
	usedCodeFamily  string
	realm, clientID string
}

func mkHolding(t *testing.T, s storage.Store, realm, clientID, userID, tag string) holding {
	t.Helper()
	c := ctx(t)
	h := holding{session: "sid-" + tag, family: "fam-" + tag, realm: realm, clientID: clientID}
	must(t, s.CreateSession(c, newSession(realm, userID, h.session)))
	must(t, s.CreateFamily(c, newFamily(realm, clientID, userID, h.session, h.family),
		storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	code := newCode(t, realm)
	code.ClientID, code.UserID, code.SessionID = clientID, userID, h.session
	must(t, s.CreateAuthCode(c, code, 0))
	h.code = code.Hash
	used := newCode(t, realm)
	used.ClientID, used.UserID, used.SessionID = clientID, userID, h.session
	must(t, s.CreateAuthCode(c, used, 0))
	_, err := redeem(c, s, used.Hash, at(time.Second))
	must(t, err)
	h.usedCode, h.usedCodeFamily = used.Hash, used.FamilyID
	return h
}

// wantEnded checks that the session (if checkSession), both families and the
// unredeemed code are ended at `when` for reason, and the redeemed code kept.
func (h holding) wantEnded(t *testing.T, s storage.Store, what string, checkSession bool, when time.Time, reason string) {
	t.Helper()
	c := ctx(t)
	if checkSession {
		ss, err := s.GetSession(c, h.session)
		must(t, err)
		same(t, what+": session revoked at", ss.RevokedAt, when)
	}
	for _, id := range []string{h.family, h.usedCodeFamily} {
		f, err := s.GetFamily(c, id)
		must(t, err)
		same(t, what+": family "+id+" revoked", []any{f.RevokedAt, f.RevokeReason}, []any{when, reason})
	}
	_, err := redeem(c, s, h.code, at(2*time.Second))
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("%s: unredeemed code: %v, want it deleted (ErrNotFound)", what, err)
	}
	_, err = redeem(c, s, h.usedCode, at(2*time.Second))
	if !errors.Is(err, storage.ErrAlreadyUsed) {
		t.Fatalf("%s: redeemed code: %v, want it kept (ErrAlreadyUsed)", what, err)
	}
}

// wantLive checks that nothing of h is ended.
func (h holding) wantLive(t *testing.T, s storage.Store, what string) {
	t.Helper()
	c := ctx(t)
	ss, err := s.GetSession(c, h.session)
	must(t, err)
	same(t, what+": session revoked at", ss.RevokedAt, time.Time{})
	for _, id := range []string{h.family, h.usedCodeFamily} {
		f, err := s.GetFamily(c, id)
		must(t, err)
		same(t, what+": family "+id+" revoked at", f.RevokedAt, time.Time{})
	}
	// Checked last: a redemption spends the code.
	if _, err := redeem(c, s, h.code, at(2*time.Second)); err != nil {
		t.Fatalf("%s: unredeemed code: %v, want it redeemable", what, err)
	}
}

// events lists the types of the events f selects, oldest first.
func events(t *testing.T, s storage.Store, f storage.AuditFilter) []string {
	t.Helper()
	ev, err := s.ListAudit(ctx(t), f)
	must(t, err)
	var types []string
	for i := len(ev) - 1; i >= 0; i-- {
		types = append(types, ev[i].Type)
	}
	return types
}

// userFn returns an updater that runs change and returns events of the given types.
func userFn(change func(u *storage.User), types ...string) func(u *storage.User) ([]storage.AuditEvent, error) {
	return func(u *storage.User) ([]storage.AuditEvent, error) {
		change(u)
		var ev []storage.AuditEvent
		for _, typ := range types {
			ev = append(ev, storage.AuditEvent{Time: u.UpdatedAt, Type: typ, Realm: u.Realm, UserID: u.ID})
		}
		return ev, nil
	}
}

func clientFn(change func(c *storage.Client), types ...string) func(c *storage.Client) ([]storage.AuditEvent, error) {
	return func(c *storage.Client) ([]storage.AuditEvent, error) {
		change(c)
		var ev []storage.AuditEvent
		for _, typ := range types {
			ev = append(ev, storage.AuditEvent{Time: c.UpdatedAt, Type: typ, Realm: c.Realm, ClientID: c.ID})
		}
		return ev, nil
	}
}

func testUpdateUserStamp(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	bob := mkUser(t, s, "acme", "bob")
	alice := mkHolding(t, s, "acme", "web", "acme-alice", "a1")
	bobs := mkHolding(t, s, "acme", "web", bob.ID, "b1")

	// A change that does not move the stamp ends nothing.
	u, err := s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) {
		u.Name, u.UpdatedAt = "Alice L.", at(time.Minute)
	}, "user.updated"))
	must(t, err)
	if u.Name != "Alice L." || !u.TokensValidAfter.IsZero() {
		t.Fatalf("renamed user = %+v", u)
	}
	got, err := s.GetUser(c, "acme", "acme-alice")
	must(t, err)
	same(t, "renamed user as stored", got, u)
	same(t, "events of the rename", events(t, s, storage.AuditFilter{UserID: "acme-alice"}), []string{"user.updated"})

	// Disabling moves the stamp to the update's time, and in the same call every
	// session and family of alice ends there and her pending code is gone.
	u, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) {
		u.Disabled, u.UpdatedAt = true, at(2*time.Minute)
	}, "user.disabled"))
	must(t, err)
	same(t, "stamp after disabling", u.TokensValidAfter, at(2*time.Minute))
	got, err = s.GetUser(c, "acme", "acme-alice")
	must(t, err)
	same(t, "disabled user as stored", got, u)
	alice.wantEnded(t, s, "disabled", true, at(2*time.Minute), storage.ReasonUserDisabled)
	same(t, "events of the disabling", events(t, s, storage.AuditFilter{UserID: "acme-alice"}), []string{"user.updated", "user.disabled"})

	// Enabling again brings nothing back.
	u, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) {
		u.Disabled, u.UpdatedAt = false, at(3*time.Minute)
	}))
	must(t, err)
	same(t, "stamp after enabling", u.TokensValidAfter, at(2*time.Minute))
	alice.wantEnded(t, s, "enabled again", true, at(2*time.Minute), storage.ReasonUserDisabled)

	// Bob, of the same realm and client, keeps everything.
	bobs.wantLive(t, s, "another user")

	// A password change that moves the stamp, and a logout everywhere.
	for i, tc := range []struct {
		change func(u *storage.User)
		reason string
	}{
		{func(u *storage.User) { u.PasswordHash = "$argon2id$new" }, storage.ReasonPasswordChanged},
		{func(u *storage.User) {}, storage.ReasonLogoutEverywhere},
	} {
		tag := fmt.Sprintf("a%d", i+2)
		h := mkHolding(t, s, "acme", "web", "acme-alice", tag)
		when := at(time.Duration(10+i) * time.Minute)
		u, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) {
			tc.change(u)
			u.TokensValidAfter, u.UpdatedAt = when, when
		}))
		must(t, err)
		same(t, tc.reason+": stamp", u.TokensValidAfter, when)
		h.wantEnded(t, s, tc.reason, true, when, tc.reason)
	}

	// A stamp never moves back: that would bring dead tokens back.
	u, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) {
		u.TokensValidAfter, u.UpdatedAt = at(time.Minute), at(20*time.Minute)
	}))
	must(t, err)
	same(t, "stamp moved back", u.TokensValidAfter, at(11*time.Minute))

	// Disabling with a stamp moved by fn keeps fn's stamp.
	h := mkHolding(t, s, "acme", "web", "acme-alice", "a9")
	u, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) {
		u.Disabled, u.TokensValidAfter, u.UpdatedAt = true, at(25*time.Minute), at(30*time.Minute)
	}))
	must(t, err)
	same(t, "fn's stamp", u.TokensValidAfter, at(25*time.Minute))
	h.wantEnded(t, s, "disabled with fn's stamp", true, at(25*time.Minute), storage.ReasonUserDisabled)

	_, err = s.UpdateUser(c, "acme", "ghost", userFn(func(u *storage.User) {}))
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.UpdateUser(c, "other", "acme-alice", userFn(func(u *storage.User) {}))
	wantErr(t, err, storage.ErrNotFound)
}

func testUpdateClientStamp(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	must(t, s.CreateClient(c, newClient("acme", "svc")))
	bob := mkUser(t, s, "acme", "bob")
	alices := mkHolding(t, s, "acme", "web", "acme-alice", "a1")
	bobs := mkHolding(t, s, "acme", "web", bob.ID, "b1")
	svcs := mkHolding(t, s, "acme", "svc", "acme-alice", "s1")

	cl, err := s.UpdateClient(c, "acme", "web", clientFn(func(c *storage.Client) {
		c.Name, c.UpdatedAt = "Web app", at(time.Minute)
	}, "client.updated"))
	must(t, err)
	if cl.Name != "Web app" || !cl.TokensValidAfter.IsZero() {
		t.Fatalf("renamed client = %+v", cl)
	}
	alices.wantLiveFamilies(t, s, "renamed client")

	// Disabling web ends every family issued to it, whoever's, and its pending
	// codes; its sessions are the users', and stay.
	cl, err = s.UpdateClient(c, "acme", "web", clientFn(func(c *storage.Client) {
		c.Disabled, c.UpdatedAt = true, at(2*time.Minute)
	}, "client.disabled"))
	must(t, err)
	same(t, "stamp after disabling", cl.TokensValidAfter, at(2*time.Minute))
	got, err := s.GetClient(c, "acme", "web")
	must(t, err)
	same(t, "disabled client as stored", got, cl)
	alices.wantEnded(t, s, "client disabled", false, at(2*time.Minute), storage.ReasonClientDisabled)
	bobs.wantEnded(t, s, "client disabled", false, at(2*time.Minute), storage.ReasonClientDisabled)
	same(t, "events", events(t, s, storage.AuditFilter{ClientID: "web"}), []string{"client.updated", "client.disabled"})

	// Enabling it again brings nothing back.
	cl, err = s.UpdateClient(c, "acme", "web", clientFn(func(c *storage.Client) {
		c.Disabled, c.UpdatedAt = false, at(3*time.Minute)
	}))
	must(t, err)
	same(t, "stamp after enabling", cl.TokensValidAfter, at(2*time.Minute))
	alices.wantEnded(t, s, "client enabled again", false, at(2*time.Minute), storage.ReasonClientDisabled)

	// Revoking all of an enabled client's tokens: the stamp moved by fn.
	h := mkHolding(t, s, "acme", "web", "acme-alice", "a2")
	cl, err = s.UpdateClient(c, "acme", "web", clientFn(func(c *storage.Client) {
		c.TokensValidAfter, c.UpdatedAt = at(4*time.Minute), at(4*time.Minute)
	}))
	must(t, err)
	same(t, "stamp after revoking", cl.TokensValidAfter, at(4*time.Minute))
	h.wantEnded(t, s, "client tokens revoked", false, at(4*time.Minute), storage.ReasonClientTokensRevoked)

	// The other client keeps everything.
	svcs.wantLive(t, s, "another client")

	_, err = s.UpdateClient(c, "acme", "ghost", clientFn(func(c *storage.Client) {}))
	wantErr(t, err, storage.ErrNotFound)
}

// wantLiveFamilies checks that h's families are not revoked.
func (h holding) wantLiveFamilies(t *testing.T, s storage.Store, what string) {
	t.Helper()
	for _, id := range []string{h.family, h.usedCodeFamily} {
		f, err := s.GetFamily(ctx(t), id)
		must(t, err)
		same(t, what+": family "+id+" revoked at", f.RevokedAt, time.Time{})
	}
}

var errRefused = errors.New("storagetest: refused by fn")

// An updater whose fn fails, or whose write fails, changes nothing: not the
// entity, not its revocations, not the audit trail.
func testUpdaterFailure(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkUser(t, s, "acme", "bob")
	alice := mkHolding(t, s, "acme", "web", "acme-alice", "a1")
	before, err := s.GetUser(c, "acme", "acme-alice")
	must(t, err)
	web, err := s.GetClient(c, "acme", "web")
	must(t, err)
	realm, err := s.GetRealm(c, "acme")
	must(t, err)

	_, err = s.UpdateUser(c, "acme", "acme-alice", func(u *storage.User) ([]storage.AuditEvent, error) {
		u.Disabled, u.Name, u.UpdatedAt = true, "changed", at(time.Minute)
		return []storage.AuditEvent{{Time: at(time.Minute), Type: "user.disabled", Realm: "acme"}}, errRefused
	})
	if err != errRefused {
		t.Fatalf("UpdateUser with a failing fn: %v, want fn's error as it is", err)
	}
	_, err = s.UpdateClient(c, "acme", "web", func(c *storage.Client) ([]storage.AuditEvent, error) {
		c.Disabled, c.UpdatedAt = true, at(time.Minute)
		return []storage.AuditEvent{{Time: at(time.Minute), Type: "client.disabled", Realm: "acme"}}, errRefused
	})
	if err != errRefused {
		t.Fatalf("UpdateClient with a failing fn: %v, want fn's error as it is", err)
	}
	_, err = s.UpdateRealm(c, "acme", func(r *storage.Realm) ([]storage.AuditEvent, error) {
		r.DisplayName = "changed"
		return []storage.AuditEvent{{Time: at(time.Minute), Type: "realm.updated", Realm: "acme"}}, errRefused
	})
	if err != errRefused {
		t.Fatalf("UpdateRealm with a failing fn: %v, want fn's error as it is", err)
	}

	// A write that fails (bob's username is taken) undoes the disabling's
	// revocations and its event with it.
	_, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) {
		u.Username, u.Disabled, u.UpdatedAt = "bob", true, at(time.Minute)
	}, "user.disabled"))
	wantErr(t, err, storage.ErrConflict)

	got, err := s.GetUser(c, "acme", "acme-alice")
	must(t, err)
	same(t, "user after failed updates", got, before)
	gotWeb, err := s.GetClient(c, "acme", "web")
	must(t, err)
	same(t, "client after a failed update", gotWeb, web)
	gotRealm, err := s.GetRealm(c, "acme")
	must(t, err)
	same(t, "realm after a failed update", gotRealm, realm)
	alice.wantLive(t, s, "after failed updates")
	if ev := events(t, s, storage.AuditFilter{}); len(ev) != 0 {
		t.Fatalf("failed updates appended events: %v", ev)
	}
}

func testUpdateRealm(t *testing.T, s storage.Store) {
	c := ctx(t)
	acme := mkRealm(t, s, "acme")
	r, err := s.UpdateRealm(c, "acme", func(r *storage.Realm) ([]storage.AuditEvent, error) {
		r.Name, r.CreatedAt = "renamed", at(time.Hour) // neither is updatable
		r.DisplayName, r.AccessTokenTTL, r.UpdatedAt = "ACME", time.Minute, at(time.Minute)
		return []storage.AuditEvent{{Time: at(time.Minute), Type: "realm.updated", Realm: "acme"}}, nil
	})
	must(t, err)
	acme.DisplayName, acme.AccessTokenTTL, acme.UpdatedAt = "ACME", time.Minute, at(time.Minute)
	same(t, "UpdateRealm's result", r, acme)
	got, err := s.GetRealm(c, "acme")
	must(t, err)
	same(t, "updated realm", got, acme)
	same(t, "events", events(t, s, storage.AuditFilter{Realm: "acme"}), []string{"realm.updated"})
	_, err = s.UpdateRealm(c, "ghost", func(r *storage.Realm) ([]storage.AuditEvent, error) { return nil, nil })
	wantErr(t, err, storage.ErrNotFound)
}

// Every create and delete appends its events with its change, and none when it fails.
func testEventsWithChange(t *testing.T, s storage.Store) {
	c := ctx(t)
	ev := func(typ string) storage.AuditEvent {
		return storage.AuditEvent{Time: t0, Type: typ, Realm: "acme", Details: map[string]string{"by": "admin"}}
	}
	r := storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute, CreatedAt: t0, UpdatedAt: t0}
	must(t, s.CreateRealm(c, r, ev("realm.created")))
	wantErr(t, s.CreateRealm(c, r, ev("fail")), storage.ErrConflict)
	must(t, s.CreateClient(c, newClient("acme", "web"), ev("client.created"), ev("client.secret_set")))
	wantErr(t, s.CreateClient(c, newClient("acme", "web"), ev("fail")), storage.ErrConflict)
	wantErr(t, s.CreateClient(c, newClient("ghost", "web"), ev("fail")), storage.ErrNotFound)
	must(t, s.CreateUser(c, newUser("acme", "alice"), ev("user.created")))
	wantErr(t, s.CreateUser(c, newUser("acme", "alice"), ev("fail")), storage.ErrConflict)
	wantErr(t, s.CreateUser(c, newUser("ghost", "alice"), ev("fail")), storage.ErrNotFound)
	must(t, s.CreateSigningKey(c, storage.SigningKey{Realm: "acme", KID: "k1", Alg: "ES256", PrivateKey: []byte("sealed"),
		PublicJWK: []byte(`{}`), CreatedAt: t0, SignFrom: t0}))
	must(t, s.RetireSigningKey(c, "acme", "k1", at(time.Hour), at(2*time.Hour), ev("key.retired")))
	wantErr(t, s.RetireSigningKey(c, "acme", "ghost", at(time.Hour), at(2*time.Hour), ev("fail")), storage.ErrNotFound)
	must(t, s.DeleteUser(c, "acme", "acme-alice", ev("user.deleted")))
	wantErr(t, s.DeleteUser(c, "acme", "acme-alice", ev("fail")), storage.ErrNotFound)
	must(t, s.DeleteClient(c, "acme", "web", ev("client.deleted")))
	wantErr(t, s.DeleteClient(c, "acme", "web", ev("fail")), storage.ErrNotFound)
	_, _, err := s.LogoutRealm(c, "ghost", t0, ev("fail"))
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteRealm(c, "acme", ev("realm.deleted")))
	wantErr(t, s.DeleteRealm(c, "acme", ev("fail")), storage.ErrNotFound)

	same(t, "events", events(t, s, storage.AuditFilter{}), []string{"realm.created", "client.created", "client.secret_set",
		"user.created", "key.retired", "user.deleted", "client.deleted", "realm.deleted"})
	all, err := s.ListAudit(c, storage.AuditFilter{Limit: 1})
	must(t, err)
	same(t, "an event as appended", all, []storage.AuditEvent{{ID: all[0].ID, Time: t0, Type: "realm.deleted", Realm: "acme",
		Details: map[string]string{"by": "admin"}}})
}

func testDeleteClientTakesGrants(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	must(t, s.CreateClient(c, newClient("acme", "svc")))
	web := mkHolding(t, s, "acme", "web", "acme-alice", "w1")
	svc := mkHolding(t, s, "acme", "svc", "acme-alice", "s1")
	must(t, s.SaveConsent(c, newConsent("acme", "acme-alice", "web")))
	must(t, s.SaveConsent(c, newConsent("acme", "acme-alice", "svc")))
	webToken := randBytes(t)
	must(t, s.CreateFamily(c, newFamily("acme", "web", "acme-alice", "", "fam-w2"), storage.RefreshToken{Hash: webToken, IssuedAt: t0}))

	must(t, s.DeleteClient(c, "acme", "web"))

	for _, id := range []string{web.family, web.usedCodeFamily, "fam-w2"} {
		_, err := s.GetFamily(c, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	_, err := s.GetRefreshToken(c, webToken)
	wantErr(t, err, storage.ErrNotFound)
	for _, code := range [][]byte{web.code, web.usedCode} {
		_, err = redeem(c, s, code, at(2*time.Second))
		wantErr(t, err, storage.ErrNotFound)
	}
	_, err = s.GetConsent(c, "acme", "acme-alice", "web")
	wantErr(t, err, storage.ErrNotFound)
	// The session is the user's, and stays; so does all of svc's.
	ss, err := s.GetSession(c, web.session)
	must(t, err)
	same(t, "the user's session", ss.RevokedAt, time.Time{})
	_, err = s.GetConsent(c, "acme", "acme-alice", "svc")
	must(t, err)
	svc.wantLive(t, s, "another client")
}

func testLogoutRealm(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	setupRealm(t, s, "other")
	mkUser(t, s, "acme", "bob")
	a := mkHolding(t, s, "acme", "web", "acme-alice", "a1")
	b := mkHolding(t, s, "acme", "web", "acme-bob", "b1")
	o := mkHolding(t, s, "other", "web", "other-alice", "o1")
	// Already ended: neither counted nor moved.
	must(t, s.CreateSession(c, newSession("acme", "acme-bob", "sid-old")))
	must(t, s.RevokeSession(c, "sid-old", at(-time.Hour)))
	must(t, s.CreateFamily(c, newFamily("acme", "web", "acme-bob", "", "fam-old"), storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	must(t, s.RevokeFamily(c, "fam-old", at(-time.Hour), "reuse"))

	sessions, families, err := s.LogoutRealm(c, "acme", at(time.Hour),
		storage.AuditEvent{Time: at(time.Hour), Type: "realm.logout", Realm: "acme"})
	must(t, err)
	if sessions != 2 || families != 4 {
		t.Fatalf("LogoutRealm ended %d sessions and %d families, want 2 and 4", sessions, families)
	}
	a.wantEnded(t, s, "alice", true, at(time.Hour), storage.ReasonRealmLogout)
	b.wantEnded(t, s, "bob", true, at(time.Hour), storage.ReasonRealmLogout)
	ss, err := s.GetSession(c, "sid-old")
	must(t, err)
	same(t, "an old session's end", ss.RevokedAt, at(-time.Hour))
	f, err := s.GetFamily(c, "fam-old")
	must(t, err)
	same(t, "an old family's end", []any{f.RevokedAt, f.RevokeReason}, []any{at(-time.Hour), "reuse"})
	o.wantLive(t, s, "another realm")
	same(t, "events", events(t, s, storage.AuditFilter{}), []string{"realm.logout"})

	sessions, families, err = s.LogoutRealm(c, "acme", at(2*time.Hour))
	must(t, err)
	if sessions != 0 || families != 0 {
		t.Fatalf("a second LogoutRealm ended %d sessions and %d families, want none", sessions, families)
	}
}

func testListUsers(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	mkRealm(t, s, "other")
	add := func(realm, username, email, name string) {
		u := newUser(realm, username)
		u.Email, u.Name = email, name
		must(t, s.CreateUser(c, u))
	}
	add("acme", "alice", "alice@wonder.example", "Alice Liddell")
	add("acme", "bob", "bob@builder.example", "Bob")
	add("acme", "carol_a", "", "Carol")
	add("acme", "carolx", "carolx@example.org", "Carol X")
	add("acme", "dave", "dave@example.org", "100% Dave")
	add("acme", "erin", "", `Erin \ Back`)
	add("acme", "élodie", "elodie@example.com", "ÉLODIE Ünal")
	add("other", "carol", "carol@example.org", "Carol of another realm")

	names := func(q storage.UserQuery) []string {
		t.Helper()
		users, err := s.ListUsers(c, "acme", q)
		must(t, err)
		var out []string
		for _, u := range users {
			out = append(out, u.Username)
		}
		return out
	}
	for _, tc := range []struct {
		q    storage.UserQuery
		want []string
	}{
		{storage.UserQuery{}, []string{"alice", "bob", "carol_a", "carolx", "dave", "erin", "élodie"}},
		{storage.UserQuery{Search: "CAROL"}, []string{"carol_a", "carolx"}},
		{storage.UserQuery{Search: "wonder"}, []string{"alice"}},  // email
		{storage.UserQuery{Search: "lidDELL"}, []string{"alice"}}, // name
		{storage.UserQuery{Search: "EXAMPLE.ORG"}, []string{"carolx", "dave"}},
		{storage.UserQuery{Search: "_"}, []string{"carol_a"}},   // not "any one character"
		{storage.UserQuery{Search: "ol_"}, []string{"carol_a"}}, // not carolx
		{storage.UserQuery{Search: "%"}, []string{"dave"}},      // not "anything"
		{storage.UserQuery{Search: `\`}, []string{"erin"}},      // the escape character itself
		{storage.UserQuery{Search: `\ B`}, []string{"erin"}},
		{storage.UserQuery{Search: "ÉLO"}, []string{"élodie"}}, // case beyond ASCII
		{storage.UserQuery{Search: "ünal"}, []string{"élodie"}},
		{storage.UserQuery{Search: "nobody"}, nil},
		{storage.UserQuery{Limit: 2}, []string{"alice", "bob"}},
		{storage.UserQuery{After: "bob", Limit: 2}, []string{"carol_a", "carolx"}},
		{storage.UserQuery{After: "carolx", Limit: 2}, []string{"dave", "erin"}},
		{storage.UserQuery{After: "erin", Limit: 2}, []string{"élodie"}},
		{storage.UserQuery{After: "élodie", Limit: 2}, nil},
		{storage.UserQuery{Search: "e", Limit: 2}, []string{"alice", "bob"}}, // emails
		{storage.UserQuery{Search: "e", After: "bob", Limit: 2}, []string{"carolx", "dave"}},
		{storage.UserQuery{Search: "carol", After: "carol_a"}, []string{"carolx"}},
	} {
		same(t, fmt.Sprintf("ListUsers(%+v)", tc.q), names(tc.q), tc.want)
	}
}

func testAuditPages(t *testing.T, s storage.Store) {
	c := ctx(t)
	// Times out of order: pages go by ID.
	var ids []int64
	for i, e := range []storage.AuditEvent{
		{Time: at(5 * time.Second), Type: "a", Realm: "acme", ClientID: "web"},
		{Time: at(1 * time.Second), Type: "b", Realm: "acme", ClientID: "svc"},
		{Time: at(3 * time.Second), Type: "c", Realm: "acme", ClientID: "web"},
		{Time: at(2 * time.Second), Type: "d", Realm: "other", ClientID: "web"},
		{Time: at(4 * time.Second), Type: "e", Realm: "acme", ClientID: "web"},
	} {
		id, err := s.AppendAudit(c, e)
		must(t, err)
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("IDs must increase: %d after %d", id, ids[i-1])
		}
		ids = append(ids, id)
	}
	for _, tc := range []struct {
		f    storage.AuditFilter
		want []string // oldest first
	}{
		{storage.AuditFilter{}, []string{"a", "b", "c", "d", "e"}},
		{storage.AuditFilter{ClientID: "web"}, []string{"a", "c", "d", "e"}},
		{storage.AuditFilter{ClientID: "web", Realm: "acme"}, []string{"a", "c", "e"}},
		{storage.AuditFilter{Before: ids[4]}, []string{"a", "b", "c", "d"}},
		{storage.AuditFilter{Before: ids[4], Limit: 2}, []string{"c", "d"}},
		{storage.AuditFilter{Before: ids[2], Limit: 2}, []string{"a", "b"}},
		{storage.AuditFilter{Before: ids[0]}, nil},
		{storage.AuditFilter{ClientID: "web", Before: ids[3], Limit: 1}, []string{"c"}},
		{storage.AuditFilter{Limit: 2}, []string{"d", "e"}},
	} {
		same(t, fmt.Sprintf("ListAudit(%+v)", tc.f), events(t, s, tc.f), tc.want)
	}
}

// together runs fn from n goroutines released at once and returns their errors.
func together(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// Concurrent updaters of one entity each see the others' writes: none is lost.
func testUpdatersLoseNoUpdate(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	for _, n := range []int{2, 5, 100} {
		u := newUser("acme", fmt.Sprintf("user%d", n))
		u.Name = ""
		must(t, s.CreateUser(c, u))
		cl := newClient("acme", fmt.Sprintf("client%d", n))
		cl.Name = ""
		must(t, s.CreateClient(c, cl))

		errs := together(2*n, func(i int) error {
			if i%2 == 0 {
				_, err := s.UpdateUser(c, "acme", u.ID, func(u *storage.User) ([]storage.AuditEvent, error) {
					u.Name += "x"
					return []storage.AuditEvent{{Time: t0, Type: "user.updated", Realm: "acme", UserID: u.ID}}, nil
				})
				return err
			}
			_, err := s.UpdateClient(c, "acme", cl.ID, func(c *storage.Client) ([]storage.AuditEvent, error) {
				c.Name += "x"
				return nil, nil
			})
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		gotU, err := s.GetUser(c, "acme", u.ID)
		must(t, err)
		gotC, err := s.GetClient(c, "acme", cl.ID)
		must(t, err)
		if gotU.Name != strings.Repeat("x", n) || gotC.Name != strings.Repeat("x", n) {
			t.Fatalf("%d concurrent updates: user name %q, client name %q, want %d x each", n, gotU.Name, gotC.Name, n)
		}
		if ev := events(t, s, storage.AuditFilter{UserID: u.ID}); len(ev) != n {
			t.Fatalf("%d concurrent updates appended %d events", n, len(ev))
		}
	}
}

// A disabling decided while rotations of one of the user's or client's tokens
// are under way wins: after all of them, the family is revoked, whichever went
// first. Races of 2, 5 and 100 parties (one disabling, the rest rotating), many
// trials each.
func testDisableRacesRotation(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	for _, tc := range []struct{ parties, trials int }{{2, 100}, {5, 40}, {100, 4}} {
		for i := range tc.trials {
			for _, who := range []string{"user", "client"} {
				tag := fmt.Sprintf("%d-%d-%s", tc.parties, i, who)
				clientID, userID := "c"+tag, "u"+tag
				must(t, s.CreateClient(c, newClient("acme", clientID)))
				u := newUser("acme", userID)
				u.ID = userID
				must(t, s.CreateUser(c, u))
				famID := "fam-" + tag
				parent := storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}
				must(t, s.CreateFamily(c, newFamily("acme", clientID, userID, "", famID), parent))
				children := make([]storage.RefreshToken, tc.parties)
				for j := range children {
					children[j] = storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(time.Minute)}
				}

				errs := together(tc.parties, func(j int) error {
					if j > 0 {
						_, err := s.RotateRefreshToken(c, parent.Hash, children[j], nil,
							storage.FamilyUse{At: at(time.Minute), IdleExpiresAt: at(time.Hour)})
						if errors.Is(err, storage.ErrRevoked) || errors.Is(err, storage.ErrAlreadyUsed) {
							return nil // the disabling, or another rotation, went first
						}
						return err
					}
					if who == "user" {
						_, err := s.UpdateUser(c, "acme", userID, userFn(func(u *storage.User) {
							u.Disabled, u.UpdatedAt = true, at(time.Minute)
						}))
						return err
					}
					_, err := s.UpdateClient(c, "acme", clientID, clientFn(func(c *storage.Client) {
						c.Disabled, c.UpdatedAt = true, at(time.Minute)
					}))
					return err
				})
				for _, err := range errs {
					must(t, err)
				}
				f, err := s.GetFamily(c, famID)
				must(t, err)
				if f.RevokedAt.IsZero() {
					t.Fatalf("%s: the family outlived a disabling that raced its rotation", tag)
				}
				for _, child := range children[1:] {
					_, err = s.RotateRefreshToken(c, child.Hash, storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(2 * time.Minute)}, nil,
						storage.FamilyUse{At: at(2 * time.Minute), IdleExpiresAt: at(time.Hour)})
					if !errors.Is(err, storage.ErrRevoked) && !errors.Is(err, storage.ErrNotFound) {
						t.Fatalf("%s: rotating after the disabling: %v, want ErrRevoked (or no such token)", tag, err)
					}
				}
			}
		}
	}
}
