package storagetest

import (
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// testSessionClients: each code issued in a session records its client once;
// the record outlives the session (a deleted user's clients must still be told)
// until purged, and a purge keeps those of sessions that still exist.
func testSessionClients(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	must(t, s.CreateClient(c, newClient("acme", "app")))
	alice := "acme-alice"
	must(t, s.CreateSession(c, newSession("acme", alice, "sid-1")))
	must(t, s.CreateSession(c, newSession("acme", alice, "sid-2")))

	got, err := s.SessionClients(c, "sid-1")
	must(t, err)
	same(t, "clients of a session without codes", got, []storage.SessionClient(nil))

	for _, code := range []struct{ sid, client string }{{"sid-1", "web"}, {"sid-1", "app"}, {"sid-1", "web"}, {"sid-2", "app"}} {
		cd := newCode(t, "acme")
		cd.SessionID, cd.ClientID = code.sid, code.client
		must(t, s.CreateAuthCode(c, cd, 0))
	}
	// A code outside any session records nothing.
	cd := newCode(t, "acme")
	cd.SessionID = ""
	must(t, s.CreateAuthCode(c, cd, 0))

	got, err = s.SessionClients(c, "sid-1")
	must(t, err)
	same(t, "clients of sid-1", got, []storage.SessionClient{{Realm: "acme", ClientID: "app"}, {Realm: "acme", ClientID: "web"}})
	got, err = s.SessionClients(c, "sid-2")
	must(t, err)
	same(t, "clients of sid-2", got, []storage.SessionClient{{Realm: "acme", ClientID: "app"}})

	// The user's deletion takes the sessions, not the record of their clients.
	must(t, s.DeleteUser(c, "acme", alice))
	got, err = s.SessionClients(c, "sid-1")
	must(t, err)
	same(t, "clients of sid-1 after the user's deletion", got, []storage.SessionClient{{Realm: "acme", ClientID: "app"}, {Realm: "acme", ClientID: "web"}})

	// Records younger than the cutoff stay; then those of gone sessions go.
	n, err := s.PurgeSessionClients(c, t0)
	wantCount(t, "purged before t0", n, err, 0)
	mkUser(t, s, "acme", "bob")
	must(t, s.CreateSession(c, newSession("acme", "acme-bob", "sid-3")))
	cd = newCode(t, "acme")
	cd.SessionID, cd.UserID = "sid-3", "acme-bob"
	must(t, s.CreateAuthCode(c, cd, 0))
	n, err = s.PurgeSessionClients(c, at(time.Minute))
	wantCount(t, "purged records of gone sessions", n, err, 3)
	got, err = s.SessionClients(c, "sid-3")
	must(t, err)
	same(t, "clients of a live session after a purge", got, []storage.SessionClient{{Realm: "acme", ClientID: "web"}})
}

// testSessionsRevokedAt: a realm logout's sessions are found by its time; those
// revoked before, and other realms', are not.
func testSessionsRevokedAt(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	setupRealm(t, s, "other")
	for _, id := range []string{"sid-b", "sid-a", "sid-early"} {
		must(t, s.CreateSession(c, newSession("acme", "acme-alice", id)))
	}
	must(t, s.CreateSession(c, newSession("other", "other-alice", "sid-other")))
	must(t, s.RevokeSession(c, "sid-early", at(time.Minute)))
	_, _, err := s.LogoutRealm(c, "acme", at(2*time.Minute))
	must(t, err)
	got, err := s.ListSessionsRevokedAt(c, "acme", at(2*time.Minute))
	must(t, err)
	var ids []string
	for _, ss := range got {
		ids = append(ids, ss.ID+"/"+ss.UserID)
	}
	same(t, "sessions the realm logout ended", ids, []string{"sid-a/acme-alice", "sid-b/acme-alice"})
	got, err = s.ListSessionsRevokedAt(c, "other", at(2*time.Minute))
	must(t, err)
	same(t, "the other realm's", got, []storage.Session(nil))
}

// testBackchannelCursor: unset at first, then the last value set.
func testBackchannelCursor(t *testing.T, s storage.Store) {
	c := ctx(t)
	seq, ok, err := s.BackchannelCursor(c)
	must(t, err)
	if ok || seq != 0 {
		t.Fatalf("fresh cursor = %d, %v; want unset", seq, ok)
	}
	for _, want := range []int64{0, 42, 7} {
		must(t, s.SetBackchannelCursor(c, want))
		seq, ok, err = s.BackchannelCursor(c)
		must(t, err)
		if !ok || seq != want {
			t.Fatalf("cursor = %d, %v; want %d", seq, ok, want)
		}
	}
}
