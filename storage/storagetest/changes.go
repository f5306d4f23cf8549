package storagetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

var changeTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"ChangesOfRevocations", testChangesOfRevocations},
	{"ChangesOfUsers", testChangesOfUsers},
	{"ChangesOfClients", testChangesOfClients},
	{"ChangesOfRealms", testChangesOfRealms},
	{"ChangesOfSigningKeys", testChangesOfSigningKeys},
	{"ChangesOfRotation", testChangesOfRotation},
	{"ChangesOfSeed", testChangesOfSeed},
	{"ListChanges", testListChanges},
	{"PurgeChanges", testPurgeChanges},
	{"WatchChanges", testWatchChanges},
	{"ChangesUnderRace", testChangesUnderRace},
}

// feed reads the changes recorded since it last looked.
type feed struct {
	t    *testing.T
	s    storage.Store
	last int64
}

func newFeed(t *testing.T, s storage.Store) *feed {
	t.Helper()
	last, err := s.LastChangeSeq(ctx(t))
	must(t, err)
	return &feed{t: t, s: s, last: last}
}

// want checks that exactly the changes given (in any order, Seq ignored) were
// recorded since the last look.
func (f *feed) want(what string, want ...storage.Change) {
	f.t.Helper()
	got, err := f.s.ListChanges(ctx(f.t), storage.ChangeQuery{After: f.last})
	must(f.t, err)
	for i := range got {
		if got[i].Seq <= f.last || (i > 0 && got[i].Seq <= got[i-1].Seq) {
			f.t.Fatalf("%s: Seqs %d after %d, not increasing", what, got[i].Seq, f.last)
		}
	}
	if len(got) > 0 {
		f.last = got[len(got)-1].Seq
	}
	for i := range got {
		got[i].Seq = 0
	}
	byKey := func(a, b storage.Change) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Subject, b.Subject))
	}
	slices.SortFunc(got, byKey)
	want = slices.Clone(want)
	slices.SortFunc(want, byKey)
	same(f.t, what+": changes recorded", got, want)
}

func sessionEnded(realm, userID, id string, when time.Time, reason string) storage.Change {
	return storage.Change{Time: when, Realm: realm, Kind: storage.ChangeSessionEnded, Subject: id, UserID: userID, Reason: reason}
}

func familyRevoked(realm, clientID, userID, id string, when time.Time, reason string) storage.Change {
	return storage.Change{Time: when, Realm: realm, Kind: storage.ChangeFamilyRevoked, Subject: id,
		UserID: userID, ClientID: clientID, Reason: reason}
}

func clientChanged(realm, id string, when time.Time) storage.Change {
	return storage.Change{Time: when, Realm: realm, Kind: storage.ChangeClientChanged, Subject: id, ClientID: id}
}

func realmChange(kind, realm string, when time.Time, reason string) storage.Change {
	return storage.Change{Time: when, Realm: realm, Kind: kind, Subject: realm, Reason: reason}
}

// Denials, session ends and family revocations record one change each, once.
func testChangesOfRevocations(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	f := newFeed(t, s)

	d := storage.DeniedJWT{Realm: "acme", JTI: "jti-1", ExpiresAt: at(time.Hour), CreatedAt: at(time.Minute), Reason: "revoked"}
	must(t, s.DenyJWT(c, d))
	f.want("DenyJWT", storage.Change{Time: at(time.Minute), Realm: "acme", Kind: storage.ChangeTokenDenied,
		Subject: "jti-1", Until: at(time.Hour), Reason: "revoked"})
	d.CreatedAt = at(2 * time.Minute)
	must(t, s.DenyJWT(c, d))
	f.want("DenyJWT again")

	must(t, s.CreateSession(c, newSession("acme", "acme-alice", "sid-1")))
	must(t, s.CreateSession(c, newSession("acme", "acme-alice", "sid-2")))
	must(t, s.TouchSession(c, "sid-1", at(time.Minute), at(2*time.Hour)))
	for _, fam := range []storage.Family{
		newFamily("acme", "web", "acme-alice", "sid-2", "fam-1"),
		newFamily("acme", "web", "acme-alice", "", "fam-2"),
		newFamily("acme", "web", "acme-alice", "sid-2", "fam-3"),
	} {
		must(t, s.CreateFamily(c, fam, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	}
	f.want("creating and touching sessions and families")

	must(t, s.RevokeSession(c, "sid-1", at(time.Minute)))
	f.want("RevokeSession", sessionEnded("acme", "acme-alice", "sid-1", at(time.Minute), ""))
	must(t, s.RevokeSession(c, "sid-1", at(2*time.Minute)))
	wantErr(t, s.RevokeSession(c, "sid-none", at(time.Minute)), storage.ErrNotFound)
	f.want("RevokeSession again, and of no session")

	must(t, s.RevokeFamily(c, "fam-2", at(time.Minute), "ended by user"))
	f.want("RevokeFamily", familyRevoked("acme", "web", "acme-alice", "fam-2", at(time.Minute), "ended by user"))
	must(t, s.RevokeFamily(c, "fam-2", at(2*time.Minute), "again"))
	wantErr(t, s.RevokeFamily(c, "fam-none", at(time.Minute), "x"), storage.ErrNotFound)
	f.want("RevokeFamily again, and of no family")

	n, err := s.RevokeSessionFamilies(c, "sid-2", at(3*time.Minute), "logout")
	wantCount(t, "RevokeSessionFamilies", n, err, 2)
	f.want("RevokeSessionFamilies",
		familyRevoked("acme", "web", "acme-alice", "fam-1", at(3*time.Minute), "logout"),
		familyRevoked("acme", "web", "acme-alice", "fam-3", at(3*time.Minute), "logout"))
	n, err = s.RevokeSessionFamilies(c, "sid-2", at(4*time.Minute), "logout")
	wantCount(t, "RevokeSessionFamilies again", n, err, 0)
	f.want("RevokeSessionFamilies again")

	n, err = s.RevokeUserSessions(c, "acme", "acme-alice", at(5*time.Minute))
	wantCount(t, "RevokeUserSessions", n, err, 1)
	f.want("RevokeUserSessions", sessionEnded("acme", "acme-alice", "sid-2", at(5*time.Minute), ""))
	n, err = s.RevokeUserSessions(c, "acme", "acme-alice", at(6*time.Minute))
	wantCount(t, "RevokeUserSessions again", n, err, 0)
	f.want("RevokeUserSessions again")

	must(t, s.CreateFamily(c, newFamily("acme", "web", "acme-alice", "", "fam-4"), storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	n, err = s.RevokeUserFamilies(c, "acme", "acme-alice", at(7*time.Minute), "logout everywhere")
	wantCount(t, "RevokeUserFamilies", n, err, 1)
	f.want("RevokeUserFamilies", familyRevoked("acme", "web", "acme-alice", "fam-4", at(7*time.Minute), "logout everywhere"))
	n, err = s.RevokeUserFamilies(c, "acme", "acme-alice", at(8*time.Minute), "logout everywhere")
	wantCount(t, "RevokeUserFamilies again", n, err, 0)
	f.want("RevokeUserFamilies again")
}

// A user's stamp moving records the user's revocation and every session and
// family it ends, in its transaction; an update that moves nothing, or fails,
// records nothing.
func testChangesOfUsers(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkUser(t, s, "acme", "bob")
	h := mkHolding(t, s, "acme", "web", "acme-alice", "a")
	f := newFeed(t, s)

	_, err := s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) { u.Name, u.UpdatedAt = "Alice", at(time.Minute) }))
	must(t, err)
	f.want("a rename")

	_, err = s.UpdateUser(c, "acme", "acme-alice", func(u *storage.User) ([]storage.AuditEvent, error) {
		u.Disabled, u.UpdatedAt = true, at(time.Hour)
		return nil, errRefused
	})
	wantErr(t, err, errRefused)
	f.want("a refused update")

	_, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) { u.Disabled, u.UpdatedAt = true, at(time.Hour) }))
	must(t, err)
	f.want("disabling",
		storage.Change{Time: at(time.Hour), Realm: "acme", Kind: storage.ChangeUserRevoked, Subject: "acme-alice",
			UserID: "acme-alice", Reason: storage.ReasonUserDisabled},
		sessionEnded("acme", "acme-alice", h.session, at(time.Hour), storage.ReasonUserDisabled),
		familyRevoked("acme", "web", "acme-alice", h.family, at(time.Hour), storage.ReasonUserDisabled),
		familyRevoked("acme", "web", "acme-alice", h.usedCodeFamily, at(time.Hour), storage.ReasonUserDisabled))

	// Disabled already: signing out everywhere moves the stamp again, with
	// nothing left to end.
	_, err = s.UpdateUser(c, "acme", "acme-alice", userFn(func(u *storage.User) { u.TokensValidAfter, u.UpdatedAt = at(2*time.Hour), at(2*time.Hour) }))
	must(t, err)
	f.want("moving the stamp again", storage.Change{Time: at(2 * time.Hour), Realm: "acme", Kind: storage.ChangeUserRevoked,
		Subject: "acme-alice", UserID: "acme-alice", Reason: storage.ReasonUserDisabled})

	b := mkHolding(t, s, "acme", "web", "acme-bob", "b")
	must(t, s.RevokeFamily(c, b.usedCodeFamily, at(time.Minute), "reuse"))
	f = newFeed(t, s)
	must(t, s.DeleteUser(c, "acme", "acme-bob", storage.AuditEvent{Time: at(3 * time.Hour), Type: "user.deleted", Realm: "acme", UserID: "acme-bob"}))
	f.want("DeleteUser",
		storage.Change{Time: at(3 * time.Hour), Realm: "acme", Kind: storage.ChangeUserRevoked, Subject: "acme-bob",
			UserID: "acme-bob", Reason: storage.ReasonDeleted},
		sessionEnded("acme", "acme-bob", b.session, at(3*time.Hour), storage.ReasonDeleted),
		familyRevoked("acme", "web", "acme-bob", b.family, at(3*time.Hour), storage.ReasonDeleted))
	wantErr(t, s.DeleteUser(c, "acme", "acme-bob"), storage.ErrNotFound)
	f.want("DeleteUser of no user")
}

// A client's changes record client.changed; its stamp moving, or its deletion,
// client.revoked and the families it ends.
func testChangesOfClients(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	h := mkHolding(t, s, "acme", "web", "acme-alice", "a")
	f := newFeed(t, s)

	app := newClient("acme", "app")
	app.CreatedAt, app.UpdatedAt = at(time.Minute), at(time.Minute)
	must(t, s.CreateClient(c, app))
	f.want("CreateClient", clientChanged("acme", "app", at(time.Minute)))
	wantErr(t, s.CreateClient(c, app), storage.ErrConflict)
	f.want("CreateClient of a taken ID")

	_, err := s.UpdateClient(c, "acme", "web", clientFn(func(cl *storage.Client) { cl.Name, cl.UpdatedAt = "Web", at(time.Hour) }))
	must(t, err)
	f.want("a rename", clientChanged("acme", "web", at(time.Hour)))

	_, err = s.UpdateClient(c, "acme", "web", func(cl *storage.Client) ([]storage.AuditEvent, error) {
		cl.Disabled = true
		return nil, errRefused
	})
	wantErr(t, err, errRefused)
	f.want("a refused update")

	must(t, s.CreateFamily(c, newFamily("acme", "app", "acme-alice", "", "app-fam"), storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	_, err = s.UpdateClient(c, "acme", "web", clientFn(func(cl *storage.Client) { cl.Disabled, cl.UpdatedAt = true, at(2*time.Hour) }))
	must(t, err)
	f.want("disabling",
		clientChanged("acme", "web", at(2*time.Hour)),
		storage.Change{Time: at(2 * time.Hour), Realm: "acme", Kind: storage.ChangeClientRevoked, Subject: "web",
			ClientID: "web", Reason: storage.ReasonClientDisabled},
		familyRevoked("acme", "web", "acme-alice", h.family, at(2*time.Hour), storage.ReasonClientDisabled),
		familyRevoked("acme", "web", "acme-alice", h.usedCodeFamily, at(2*time.Hour), storage.ReasonClientDisabled))

	must(t, s.DeleteClient(c, "acme", "app", storage.AuditEvent{Time: at(3 * time.Hour), Type: "client.deleted", Realm: "acme", ClientID: "app"}))
	f.want("DeleteClient",
		clientChanged("acme", "app", at(3*time.Hour)),
		storage.Change{Time: at(3 * time.Hour), Realm: "acme", Kind: storage.ChangeClientRevoked, Subject: "app",
			ClientID: "app", Reason: storage.ReasonDeleted},
		familyRevoked("acme", "app", "acme-alice", "app-fam", at(3*time.Hour), storage.ReasonDeleted))
	wantErr(t, s.DeleteClient(c, "acme", "app"), storage.ErrNotFound)
	f.want("DeleteClient of no client")
}

// Realms record realm.changed when created, updated or deleted, and one
// realm.logout for a logout however much it ends.
func testChangesOfRealms(t *testing.T, s storage.Store) {
	c := ctx(t)
	f := newFeed(t, s)
	mkRealm(t, s, "acme")
	f.want("CreateRealm", realmChange(storage.ChangeRealmChanged, "acme", t0, ""))
	wantErr(t, s.CreateRealm(c, storage.Realm{Name: "acme", SigningAlg: "ES256", CreatedAt: t0}), storage.ErrConflict)
	f.want("CreateRealm of a taken name")

	_, err := s.UpdateRealm(c, "acme", func(r *storage.Realm) ([]storage.AuditEvent, error) {
		r.DisplayName, r.UpdatedAt = "ACME", at(time.Minute)
		return nil, nil
	})
	must(t, err)
	f.want("UpdateRealm", realmChange(storage.ChangeRealmChanged, "acme", at(time.Minute), ""))
	_, err = s.UpdateRealm(c, "acme", func(r *storage.Realm) ([]storage.AuditEvent, error) { return nil, errRefused })
	wantErr(t, err, errRefused)
	f.want("a refused update")

	must(t, s.CreateClient(c, newClient("acme", "web")))
	mkUser(t, s, "acme", "alice")
	mkUser(t, s, "acme", "bob")
	mkHolding(t, s, "acme", "web", "acme-alice", "a")
	mkHolding(t, s, "acme", "web", "acme-bob", "b")
	f = newFeed(t, s)
	_, _, err = s.LogoutRealm(c, "acme", at(time.Hour))
	must(t, err)
	f.want("LogoutRealm", realmChange(storage.ChangeRealmLogout, "acme", at(time.Hour), storage.ReasonRealmLogout))
	_, _, err = s.LogoutRealm(c, "none", at(time.Hour))
	wantErr(t, err, storage.ErrNotFound)
	f.want("LogoutRealm of no realm")

	must(t, s.DeleteRealm(c, "acme", storage.AuditEvent{Time: at(2 * time.Hour), Type: "realm.deleted", Realm: "acme"}))
	f.want("DeleteRealm", realmChange(storage.ChangeRealmChanged, "acme", at(2*time.Hour), storage.ReasonDeleted))
	wantErr(t, s.DeleteRealm(c, "acme"), storage.ErrNotFound)
	f.want("DeleteRealm of no realm")
}

func testChangesOfSigningKeys(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	f := newFeed(t, s)
	k := storage.SigningKey{Realm: "acme", KID: "k1", Alg: "ES256", PrivateKey: []byte("sealed"),
		PublicJWK: []byte(`{"kty":"EC"}`), CreatedAt: at(time.Minute), SignFrom: at(time.Minute)}
	must(t, s.CreateSigningKey(c, k))
	keys := func(kid string, when time.Time) storage.Change {
		return storage.Change{Time: when, Realm: "acme", Kind: storage.ChangeKeysChanged, Subject: kid}
	}
	f.want("CreateSigningKey", keys("k1", at(time.Minute)))
	wantErr(t, s.CreateSigningKey(c, k), storage.ErrConflict)
	k.Realm = "none"
	wantErr(t, s.CreateSigningKey(c, k), storage.ErrNotFound)
	f.want("CreateSigningKey of a taken KID, and in no realm")

	must(t, s.RetireSigningKey(c, "acme", "k1", at(time.Hour), at(2*time.Hour)))
	f.want("RetireSigningKey", keys("k1", at(time.Hour)))
	wantErr(t, s.RetireSigningKey(c, "acme", "k2", at(time.Hour), at(2*time.Hour)), storage.ErrNotFound)
	f.want("RetireSigningKey of no key")
}

// A rotation, won or lost, and a code's redemption or replay record nothing;
// the revocation that reuse detection then makes records the family.
func testChangesOfRotation(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	fam, first := mkFamily(t, s, "acme", "fam-1")
	code := newCode(t, "acme")
	must(t, s.CreateAuthCode(c, code, 0))
	f := newFeed(t, s)

	child := storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(time.Minute)}
	use := storage.FamilyUse{At: at(time.Minute), IdleExpiresAt: at(2 * time.Hour)}
	_, err := s.RotateRefreshToken(c, first.Hash, child, []byte("sealed"), use)
	must(t, err)
	_, err = s.RotateRefreshToken(c, first.Hash, storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(time.Minute)}, nil, use)
	wantErr(t, err, storage.ErrAlreadyUsed)
	_, err = redeem(c, s, code.Hash, at(time.Second))
	must(t, err)
	_, err = redeem(c, s, code.Hash, at(2*time.Second))
	wantErr(t, err, storage.ErrAlreadyUsed)
	f.want("rotations and redemptions")

	// What the token service does on reuse (and on a replayed code).
	must(t, s.RevokeFamily(c, fam.ID, at(2*time.Minute), "refresh token reuse"))
	must(t, s.RevokeFamily(c, code.FamilyID, at(2*time.Minute), "authorization code replay"))
	f.want("reuse detected",
		familyRevoked("acme", "web", "acme-alice", fam.ID, at(2*time.Minute), "refresh token reuse"),
		familyRevoked("acme", "web", "acme-alice", code.FamilyID, at(2*time.Minute), "authorization code replay"))
	_, err = s.RotateRefreshToken(c, child.Hash, storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(3 * time.Minute)}, nil, use)
	wantErr(t, err, storage.ErrRevoked)
	f.want("a rotation in a revoked family")
}

// A seed records what it creates or updates, and nothing when it matches.
func testChangesOfSeed(t *testing.T, s storage.Store) {
	c := ctx(t)
	f := newFeed(t, s)
	seed := seedFixture()
	_, err := s.ApplySeed(c, seed)
	must(t, err)
	f.want("the first seed",
		realmChange(storage.ChangeRealmChanged, "acme", t0, ""),
		clientChanged("acme", "web", t0), clientChanged("acme", "svc", t0))
	_, err = s.ApplySeed(c, seed)
	must(t, err)
	f.want("the same seed again")

	alice, err := s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	must(t, s.CreateFamily(c, newFamily("acme", "web", alice.ID, "", "web-fam"), storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	must(t, s.CreateSession(c, newSession("acme", alice.ID, "sid-1")))
	f = newFeed(t, s)
	seed.Realms[0].Realm.DisplayName, seed.Realms[0].Realm.UpdatedAt = "Acme Inc", at(time.Hour)
	seed.Realms[0].Clients[0].Disabled, seed.Realms[0].Clients[0].UpdatedAt = true, at(time.Hour)
	seed.Realms[0].Users[0].Disabled, seed.Realms[0].Users[0].UpdatedAt = true, at(time.Hour)
	_, err = s.ApplySeed(c, seed)
	must(t, err)
	f.want("a seed that disables",
		realmChange(storage.ChangeRealmChanged, "acme", at(time.Hour), ""),
		clientChanged("acme", "web", at(time.Hour)),
		storage.Change{Time: at(time.Hour), Realm: "acme", Kind: storage.ChangeClientRevoked, Subject: "web",
			ClientID: "web", Reason: storage.ReasonClientDisabled},
		familyRevoked("acme", "web", alice.ID, "web-fam", at(time.Hour), storage.ReasonClientDisabled),
		storage.Change{Time: at(time.Hour), Realm: "acme", Kind: storage.ChangeUserRevoked, Subject: alice.ID,
			UserID: alice.ID, Reason: storage.ReasonUserDisabled},
		sessionEnded("acme", alice.ID, "sid-1", at(time.Hour), storage.ReasonUserDisabled))

	bad := seedFixture()
	bad.Realms[0].Realm.DisplayName, bad.Realms[0].Realm.UpdatedAt = "Other", at(2*time.Hour)
	x, y := newUser("b", "x"), newUser("b", "y")
	y.Email = x.Email // a conflict
	bad.Realms = append(bad.Realms, storage.SeedRealm{Realm: storage.Realm{Name: "b", SigningAlg: "ES256", CreatedAt: t0},
		Users: []storage.User{x, y}})
	_, err = s.ApplySeed(c, bad)
	if err == nil {
		t.Fatal("a seed with a conflict was applied")
	}
	f.want("a seed that failed")
}

func testListChanges(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	mkRealm(t, s, "other")
	for i := range 3 {
		for _, realm := range []string{"acme", "other"} {
			must(t, s.DenyJWT(c, storage.DeniedJWT{Realm: realm, JTI: fmt.Sprintf("jti-%d", i),
				ExpiresAt: at(time.Hour), CreatedAt: at(time.Duration(i) * time.Minute)}))
		}
	}
	all, err := s.ListChanges(c, storage.ChangeQuery{})
	must(t, err)
	if len(all) != 8 {
		t.Fatalf("ListChanges = %d changes, want 8: %+v", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("ListChanges not in Seq order: %+v", all)
		}
	}
	last, err := s.LastChangeSeq(c)
	wantCount(t, "LastChangeSeq", last, err, all[7].Seq)
	denials := all[2:]
	var acme []storage.Change
	for _, ch := range denials {
		if ch.Realm == "acme" {
			acme = append(acme, ch)
		}
	}
	for _, tc := range []struct {
		what string
		q    storage.ChangeQuery
		want []storage.Change
	}{
		{"After", storage.ChangeQuery{After: all[1].Seq}, denials},
		{"After the last", storage.ChangeQuery{After: last}, nil},
		{"Realm", storage.ChangeQuery{Realm: "acme", After: all[1].Seq}, acme},
		{"Since", storage.ChangeQuery{Since: at(time.Minute)}, denials[2:]},
		{"Limit", storage.ChangeQuery{After: all[1].Seq, Limit: 3}, denials[:3]},
		{"all of them", storage.ChangeQuery{Realm: "other", After: all[2].Seq, Since: at(time.Minute), Limit: 1}, denials[3:4]},
	} {
		got, err := s.ListChanges(c, tc.q)
		must(t, err)
		same(t, "ListChanges "+tc.what, got, tc.want)
	}
}

func testPurgeChanges(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	for i, when := range []time.Time{at(-48 * time.Hour), at(-25 * time.Hour), at(-23 * time.Hour), t0} {
		must(t, s.DenyJWT(c, storage.DeniedJWT{Realm: "acme", JTI: fmt.Sprintf("jti-%d", i), ExpiresAt: at(time.Hour), CreatedAt: when}))
	}
	last, err := s.LastChangeSeq(c)
	must(t, err)
	n, err := s.PurgeChanges(c, at(-47*time.Hour))
	wantCount(t, "PurgeChanges", n, err, 1)
	r, err := s.Sweep(c, t0, time.Minute)
	must(t, err)
	wantCount(t, "Sweep's Changes", r.Changes, nil, 1)
	left, err := s.ListChanges(c, storage.ChangeQuery{Realm: "acme", Since: at(-time.Hour * 1000)})
	must(t, err)
	var jtis []string
	for _, ch := range left {
		if ch.Kind == storage.ChangeTokenDenied {
			jtis = append(jtis, ch.Subject)
		}
	}
	same(t, "changes left", jtis, []string{"jti-2", "jti-3"})
	got, err := s.LastChangeSeq(c)
	wantCount(t, "LastChangeSeq after purging", got, err, last)
}

// WatchChanges wakes its caller once at the start and after a write that recorded changes.
func testWatchChanges(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	woken := make(chan struct{}, 1)
	wake := func() {
		select {
		case woken <- struct{}{}:
		default:
		}
	}
	wctx, cancel := context.WithCancel(c)
	done := make(chan error, 1)
	go func() { done <- s.WatchChanges(wctx, wake) }()
	waitWoken(t, woken, "at the start")
	must(t, s.DenyJWT(c, storage.DeniedJWT{Realm: "acme", JTI: "jti-1", ExpiresAt: at(time.Hour), CreatedAt: t0}))
	waitWoken(t, woken, "after a denial")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchChanges did not return when its context ended")
	}
}

func waitWoken(t *testing.T, woken <-chan struct{}, when string) {
	t.Helper()
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatalf("WatchChanges did not wake its caller %s", when)
	}
}

// Concurrent recorders get distinct, increasing Seqs, and no change is lost.
func testChangesUnderRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	for _, n := range []int{2, 5, 100} {
		f := newFeed(t, s)
		errs := together(n, func(i int) error {
			return s.DenyJWT(c, storage.DeniedJWT{Realm: "acme", JTI: fmt.Sprintf("race-%d-%d", n, i), ExpiresAt: at(time.Hour), CreatedAt: t0})
		})
		for _, err := range errs {
			must(t, err)
		}
		got, err := s.ListChanges(c, storage.ChangeQuery{After: f.last})
		must(t, err)
		seen := map[string]bool{}
		for i, ch := range got {
			if i > 0 && ch.Seq <= got[i-1].Seq {
				t.Fatalf("%d recorders: Seq %d after %d", n, ch.Seq, got[i-1].Seq)
			}
			seen[ch.Subject] = true
		}
		if len(got) != n || len(seen) != n {
			t.Fatalf("%d recorders: %d changes for %d subjects, want %d", n, len(got), len(seen), n)
		}
	}
	// Concurrent revocations of one family, one session and one user's families
	// record each end once.
	setupRealm(t, s, "race")
	for _, n := range []int{2, 5, 100} {
		tag := fmt.Sprint(n)
		user := "race-user-" + tag
		must(t, s.CreateSession(c, newSession("race", user, "sid-"+tag)))
		for _, id := range []string{"fam-" + tag, "fam-user-" + tag} {
			must(t, s.CreateFamily(c, newFamily("race", "web", user, "", id), storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
		}
		f := newFeed(t, s)
		errs := together(n, func(i int) error {
			when := at(time.Duration(i) * time.Second)
			switch i % 3 {
			case 0:
				return s.RevokeFamily(c, "fam-"+tag, when, "race")
			case 1:
				return s.RevokeSession(c, "sid-"+tag, when)
			}
			_, err := s.RevokeUserFamilies(c, "race", user, when, "race")
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		got, err := s.ListChanges(c, storage.ChangeQuery{After: f.last})
		must(t, err)
		count := map[string]int{}
		for _, ch := range got {
			count[ch.Kind+" "+ch.Subject]++
		}
		want := map[string]int{storage.ChangeFamilyRevoked + " fam-" + tag: 1, storage.ChangeSessionEnded + " sid-" + tag: 1}
		if n > 2 { // someone revoked the user's families
			want[storage.ChangeFamilyRevoked+" fam-user-"+tag] = 1
		}
		same(t, tag+" revokers: changes recorded", count, want)
	}
}
