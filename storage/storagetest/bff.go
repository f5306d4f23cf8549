package storagetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// The sessions of `latchkey bff` (issue 15).
var bffTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"BFFSessions", testBFFSessions},
	{"BFFSessionExpiry", testBFFSessionExpiry},
	{"BFFSessionUpdate", testBFFSessionUpdate},
	{"BFFSessionUpdateLosesNothingUnderRace", testBFFSessionUpdateRace},
	{"BFFSessionDeleteByIssuerSessionAndSubject", testBFFSessionDeleteBy},
	{"BFFSessionPurge", testBFFSessionPurge},
	{"BFFSessionBounds", testBFFSessionBounds},
}

// newBFFSession is a session expiring an hour after t0, with an ID made as the
// BFF makes it: the hex SHA-256 of a random cookie value.
func newBFFSession(t *testing.T, sid, sub string) storage.BFFSession {
	sum := sha256.Sum256(randBytes(t))
	return storage.BFFSession{ID: hex.EncodeToString(sum[:]), SID: sid, Subject: sub,
		Sealed: randBytes(t), ExpiresAt: at(time.Hour), Version: 1}
}

func testBFFSessions(t *testing.T, s storage.Store) {
	c, b := ctx(t), s.BFFSessions()
	rec := newBFFSession(t, "sid-1", "alice")
	must(t, b.Put(c, rec))
	got, err := b.Get(c, rec.ID, t0)
	must(t, err)
	same(t, "Get", got, rec)

	// Put replaces every field.
	repl := rec
	repl.SID, repl.Subject, repl.Sealed, repl.ExpiresAt, repl.Version = "sid-2", "bob", randBytes(t), at(2*time.Hour), 7
	must(t, b.Put(c, repl))
	got, err = b.Get(c, rec.ID, t0)
	must(t, err)
	same(t, "Get after a second Put", got, repl)

	// An empty sid and nil sealed bytes round-trip.
	bare := newBFFSession(t, "", "carol")
	bare.Sealed = nil
	must(t, b.Put(c, bare))
	got, err = b.Get(c, bare.ID, t0)
	must(t, err)
	same(t, "Get of a bare session", got, bare)

	_, err = b.Get(c, newBFFSession(t, "", "x").ID, t0)
	wantErr(t, err, storage.ErrNotFound)

	must(t, b.Delete(c, rec.ID))
	_, err = b.Get(c, rec.ID, t0)
	wantErr(t, err, storage.ErrNotFound)
	// Deleting what is gone is no error: two logouts may race.
	must(t, b.Delete(c, rec.ID))
	_, err = b.Get(c, bare.ID, t0)
	must(t, err)
}

func testBFFSessionExpiry(t *testing.T, s storage.Store) {
	c, b := ctx(t), s.BFFSessions()
	rec := newBFFSession(t, "sid-1", "alice")
	must(t, b.Put(c, rec))

	got, err := b.Get(c, rec.ID, rec.ExpiresAt.Add(-time.Microsecond))
	must(t, err)
	same(t, "Get just before expiry", got, rec)
	// From its very expiry, a session is gone for Get and Update alike.
	for _, now := range []time.Time{rec.ExpiresAt, rec.ExpiresAt.Add(time.Hour)} {
		_, err = b.Get(c, rec.ID, now)
		wantErr(t, err, storage.ErrNotFound)
		called := false
		_, err = b.Update(c, rec.ID, now, func(r storage.BFFSession) (storage.BFFSession, error) {
			called = true
			r.ExpiresAt = now.Add(time.Hour) // an expired session is not brought back
			return r, nil
		})
		wantErr(t, err, storage.ErrNotFound)
		if called {
			t.Errorf("Update at %v ran fn on an expired session", now)
		}
	}
	got, err = b.Get(c, rec.ID, t0)
	must(t, err)
	same(t, "Get before expiry after the refused updates", got, rec)
}

func testBFFSessionUpdate(t *testing.T, s storage.Store) {
	c, b := ctx(t), s.BFFSessions()
	rec := newBFFSession(t, "sid-1", "alice")
	must(t, b.Put(c, rec))

	want := rec
	want.SID, want.Subject, want.Sealed, want.ExpiresAt, want.Version = "sid-2", "bob", randBytes(t), at(2*time.Hour), rec.Version+1
	got, err := b.Update(c, rec.ID, t0, func(r storage.BFFSession) (storage.BFFSession, error) {
		same(t, "fn's argument", r, rec)
		out := want
		out.ID, out.Version = "another-id", 1000 // the store keeps the ID and counts versions itself
		return out, nil
	})
	must(t, err)
	same(t, "Update", got, want)
	stored, err := b.Get(c, rec.ID, t0)
	must(t, err)
	same(t, "Get after Update", stored, want)
	_, err = b.Get(c, "another-id", t0)
	wantErr(t, err, storage.ErrNotFound)

	// fn's error comes back as it is, and nothing changes.
	errRefused := errors.New("refused")
	_, err = b.Update(c, rec.ID, t0, func(r storage.BFFSession) (storage.BFFSession, error) {
		r.Sealed = []byte("lost")
		return r, errRefused
	})
	wantErr(t, err, errRefused)
	// So does a result the store cannot keep.
	_, err = b.Update(c, rec.ID, t0, func(r storage.BFFSession) (storage.BFFSession, error) {
		r.Sealed = make([]byte, storage.MaxBFFSessionSealed+1)
		return r, nil
	})
	if err == nil {
		t.Fatal("Update to an oversized record succeeded")
	}
	stored, err = b.Get(c, rec.ID, t0)
	must(t, err)
	same(t, "Get after refused updates", stored, want)

	_, err = b.Update(c, newBFFSession(t, "", "x").ID, t0, func(r storage.BFFSession) (storage.BFFSession, error) {
		t.Error("Update ran fn for an unknown session")
		return r, nil
	})
	wantErr(t, err, storage.ErrNotFound)
}

// Every party adds one to a counter kept in the sealed bytes, as two BFF
// instances refreshing one session each store what they got: none may work on
// a copy another has already replaced.
func testBFFSessionUpdateRace(t *testing.T, s storage.Store) {
	c, b := ctx(t), s.BFFSessions()
	for _, n := range contenders {
		rec := newBFFSession(t, "sid", "alice")
		rec.Sealed, rec.Version = []byte("0"), 0
		must(t, b.Put(c, rec))
		errs := together(n, func(int) error {
			_, err := b.Update(c, rec.ID, t0, func(r storage.BFFSession) (storage.BFFSession, error) {
				count, err := strconv.Atoi(string(r.Sealed))
				if err != nil {
					return r, err
				}
				r.Sealed = []byte(strconv.Itoa(count + 1))
				return r, nil
			})
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%d concurrent updates: party %d: %v", n, i, err)
			}
		}
		got, err := b.Get(c, rec.ID, t0)
		must(t, err)
		if string(got.Sealed) != strconv.Itoa(n) || got.Version != int64(n) {
			t.Errorf("%d concurrent updates: counter %s, version %d, want %d and %d", n, got.Sealed, got.Version, n, n)
		}
	}
}

func testBFFSessionDeleteBy(t *testing.T, s storage.Store) {
	c, b := ctx(t), s.BFFSessions()
	put := func(sid, sub string) storage.BFFSession {
		rec := newBFFSession(t, sid, sub)
		must(t, b.Put(c, rec))
		return rec
	}
	a1, a2 := put("sid-a", "alice"), put("sid-a", "alice") // two BFF sessions of one issuer session
	aOther := put("sid-b", "alice")
	bob := put("sid-c", "bob")
	noSID := put("", "carol")
	alive := func(what string, want ...storage.BFFSession) {
		t.Helper()
		for _, r := range []storage.BFFSession{a1, a2, aOther, bob, noSID} {
			_, err := b.Get(c, r.ID, t0)
			wanted := false
			for _, w := range want {
				wanted = wanted || w.ID == r.ID
			}
			switch {
			case wanted && err != nil:
				t.Fatalf("%s: session of sid %q, sub %q: %v", what, r.SID, r.Subject, err)
			case !wanted && !errors.Is(err, storage.ErrNotFound):
				t.Fatalf("%s: session of sid %q, sub %q: got %v, want it gone", what, r.SID, r.Subject, err)
			}
		}
	}

	n, err := b.DeleteByIssuerSession(c, "")
	wantCount(t, `DeleteByIssuerSession("")`, int64(n), err, 0)
	n, err = b.DeleteByIssuerSession(c, "sid-unknown")
	wantCount(t, "DeleteByIssuerSession(unknown)", int64(n), err, 0)
	n, err = b.DeleteByIssuerSession(c, "sid-a")
	wantCount(t, "DeleteByIssuerSession(sid-a)", int64(n), err, 2)
	alive("after DeleteByIssuerSession(sid-a)", aOther, bob, noSID)

	n, err = b.DeleteBySubject(c, "")
	wantCount(t, `DeleteBySubject("")`, int64(n), err, 0)
	n, err = b.DeleteBySubject(c, "alice")
	wantCount(t, "DeleteBySubject(alice)", int64(n), err, 1)
	alive("after DeleteBySubject(alice)", bob, noSID)
	n, err = b.DeleteBySubject(c, "carol")
	wantCount(t, "DeleteBySubject(carol)", int64(n), err, 1)
	alive("after DeleteBySubject(carol)", bob)
	n, err = b.DeleteBySubject(c, "carol")
	wantCount(t, "DeleteBySubject(carol) again", int64(n), err, 0)
}

func testBFFSessionPurge(t *testing.T, s storage.Store) {
	c, b := ctx(t), s.BFFSessions()
	short := newBFFSession(t, "sid", "alice")
	short.ExpiresAt = at(time.Minute)
	must(t, b.Put(c, short))
	long := newBFFSession(t, "sid", "alice")
	must(t, b.Put(c, long))

	// What ends exactly at the purge time stays.
	n, err := b.Purge(c, short.ExpiresAt)
	wantCount(t, "Purge(at expiry)", int64(n), err, 0)
	n, err = b.Purge(c, short.ExpiresAt.Add(time.Microsecond))
	wantCount(t, "Purge(after expiry)", int64(n), err, 1)
	// The purged session is gone even for a reader whose clock is behind.
	_, err = b.Get(c, short.ID, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = b.Get(c, long.ID, t0)
	must(t, err)

	// Sweep takes them too, with its grace, and Count counts them.
	counts, err := s.Count(c)
	must(t, err)
	wantCount(t, "Count().BFFSessions", counts.BFFSessions, nil, 1)
	res, err := s.Sweep(c, long.ExpiresAt.Add(time.Minute), time.Minute)
	must(t, err)
	wantCount(t, "Sweep within the grace: BFFSessions", res.BFFSessions, nil, 0)
	res, err = s.Sweep(c, long.ExpiresAt.Add(time.Minute+time.Microsecond), time.Minute)
	must(t, err)
	wantCount(t, "Sweep past the grace: BFFSessions", res.BFFSessions, nil, 1)
	counts, err = s.Count(c)
	must(t, err)
	wantCount(t, "Count().BFFSessions after the sweep", counts.BFFSessions, nil, 0)
}

func testBFFSessionBounds(t *testing.T, s storage.Store) {
	c, b := ctx(t), s.BFFSessions()
	// At every bound, a session is kept whole.
	full := newBFFSession(t, strings.Repeat("s", storage.MaxBFFSessionSID), strings.Repeat("u", storage.MaxBFFSessionSubject))
	full.ID = strings.Repeat("a", storage.MaxBFFSessionID)
	full.Sealed = make([]byte, storage.MaxBFFSessionSealed)
	full.Sealed[len(full.Sealed)-1] = 1
	must(t, b.Put(c, full))
	got, err := b.Get(c, full.ID, t0)
	must(t, err)
	same(t, "Get at the bounds", got, full)

	// One byte past any, or no ID or expiry, and Put refuses it.
	for what, edit := range map[string]func(r *storage.BFFSession){
		"ID":        func(r *storage.BFFSession) { r.ID = strings.Repeat("a", storage.MaxBFFSessionID+1) },
		"sid":       func(r *storage.BFFSession) { r.SID = strings.Repeat("s", storage.MaxBFFSessionSID+1) },
		"subject":   func(r *storage.BFFSession) { r.Subject = strings.Repeat("u", storage.MaxBFFSessionSubject+1) },
		"sealed":    func(r *storage.BFFSession) { r.Sealed = make([]byte, storage.MaxBFFSessionSealed+1) },
		"no ID":     func(r *storage.BFFSession) { r.ID = "" },
		"no expiry": func(r *storage.BFFSession) { r.ExpiresAt = time.Time{} },
	} {
		rec := newBFFSession(t, "sid", "alice")
		edit(&rec)
		if err := b.Put(c, rec); err == nil {
			t.Errorf("Put with an oversized or missing %s succeeded", what)
		}
		if rec.ID != "" {
			if _, err := b.Get(c, rec.ID, t0); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("after Put with an oversized or missing %s: Get gives %v, want %v", what, err, storage.ErrNotFound)
			}
		}
	}
}
