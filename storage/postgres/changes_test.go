package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// watch runs s.WatchChanges until the test ends and returns its wake-ups
// (coalesced: one waiting at most) and its result.
func watch(t *testing.T, s *postgres.Store) (<-chan struct{}, <-chan error) {
	t.Helper()
	woken := make(chan struct{}, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		done <- s.WatchChanges(ctx, func() {
			select {
			case woken <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return woken, done
}

func waitWoken(t *testing.T, woken <-chan struct{}, when string) {
	t.Helper()
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatalf("WatchChanges did not wake its caller %s", when)
	}
}

// A store is woken by a change another store on the same database recorded:
// the NOTIFY crosses instances.
func TestWatchChanges_WakesAnotherInstance(t *testing.T) {
	dsn := pgtest.DSN(t)
	writer, watcher := openStore(t, dsn), openStore(t, dsn)
	woken, _ := watch(t, watcher)
	waitWoken(t, woken, "once connected")
	waitListening(t, watcher)

	if err := writer.CreateRealm(t.Context(), storage.Realm{Name: "acme", SigningAlg: "ES256", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	waitWoken(t, woken, "after another instance's write")
	got, err := watcher.ListChanges(t.Context(), storage.ChangeQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != storage.ChangeRealmChanged || got[0].Subject != "acme" {
		t.Fatalf("changes seen by the other instance = %+v, want acme's realm.changed", got)
	}
}

// waitListening waits until s's change-feed connection is listening.
func waitListening(t *testing.T, s *postgres.Store) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'latchkey change feed'
			  AND query = 'LISTEN latchkey_changes'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A listening connection that the server drops is made again, the caller is
// woken (changes may have been missed), and notifications reach it again.
func TestWatchChanges_ReconnectsWhenDropped(t *testing.T) {
	s := newStore(t)
	woken, done := watch(t, s)
	waitWoken(t, woken, "once connected")
	if n := waitListening(t, s); n != 1 {
		t.Fatalf("%d listening connections, want 1", n)
	}

	var killed int
	err := s.Pool().QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'latchkey change feed'`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminating the listener: %d terminated, %v", killed, err)
	}
	waitWoken(t, woken, "after reconnecting")
	if n := waitListening(t, s); n != 1 {
		t.Fatalf("%d listening connections after the drop, want 1", n)
	}
	select {
	case err := <-done:
		t.Fatalf("WatchChanges returned after a dropped connection: %v", err)
	default:
	}

	if err := s.DenyJWT(t.Context(), storage.DeniedJWT{Realm: "acme", JTI: "j", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	waitWoken(t, woken, "after a write, once reconnected")
}

// Close ends the WatchChanges calls running on the store.
func TestWatchChanges_EndsAtClose(t *testing.T) {
	s, err := postgres.Open(t.Context(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WatchChanges(context.Background(), func() {}) }()
	waitListening(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("WatchChanges returned no error when its store closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WatchChanges still running after Close")
	}
}
