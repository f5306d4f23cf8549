package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
	"github.com/latchkey/latchkey/storage/storagetest"
)

// Every test database is a fresh one from pgtest, dropped when its test ends;
// pgtest.Main drops the template they are copied from.
func TestMain(m *testing.M) { pgtest.Main(m) }

// openStore opens a store on dsn, closed when the test ends (before its database is dropped).
func openStore(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newStore is a fresh, migrated store on a database of its own.
func newStore(t *testing.T) *postgres.Store {
	t.Helper()
	return openStore(t, pgtest.DSN(t))
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return newStore(t) })
}

func TestReady_FailsOnceClosed(t *testing.T) {
	s := newStore(t)
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready on a fresh store: %v", err)
	}
	_ = s.Close()
	if err := s.Ready(t.Context()); err == nil {
		t.Fatal("Ready succeeded on a closed store")
	}
}

func TestOpen_RefusesNewerSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := openStore(t, dsn)
	newer := s.SchemaVersion() + 1
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, newer); err != nil {
		t.Fatal(err)
	}

	if err := s.Ready(t.Context()); err == nil {
		t.Fatal("Ready accepted a schema newer than this binary's")
	}
	_, err := postgres.Open(t.Context(), dsn)
	want := fmt.Sprintf("database schema version %d is newer than this Latchkey (knows up to %d); upgrade Latchkey", newer, s.SchemaVersion())
	if err == nil || !containsLine(err.Error(), want) {
		t.Fatalf("Open on a newer schema: error %v, want one line containing %q", err, want)
	}
}

// containsLine reports whether msg is a single line containing want.
func containsLine(msg, want string) bool {
	return !strings.ContainsAny(msg, "\r\n") && strings.Contains(msg, want)
}

func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, func(b *testing.B) storage.Store {
		s, err := postgres.Open(b.Context(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

func TestCall_PastItsTimeoutIsUnavailable(t *testing.T) {
	// Long enough for a new connection on a loaded machine: each call below past
	// its deadline closes the one it had.
	s, err := postgres.OpenConfig(t.Context(), postgres.Config{DSN: pgtest.DSN(t), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	if err := s.CreateRealm(ctx, storage.Realm{Name: "acme"}); err != nil {
		t.Fatal(err)
	}

	// Another session holds a lock every read of realms waits for.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE realms IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRealm(ctx, "acme"); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("read behind a held lock: %v, want ErrUnavailable", err)
	}
	if _, err := s.UpdateRealm(ctx, "acme", displayName("Acme")); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("write behind a held lock: %v, want ErrUnavailable", err)
	}
	if err := s.DeleteRealm(ctx, "acme"); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("transaction behind a held lock: %v, want ErrUnavailable", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// Calls work again. (The UPDATE given up on may yet be made: the server runs a
	// statement it has received once the lock is free, as ErrUnavailable warns. A
	// transaction never is: it is never committed.)
	if _, err := s.GetRealm(ctx, "acme"); err != nil {
		t.Fatalf("read after the lock was released: %v", err)
	}
	if _, err := s.UpdateRealm(ctx, "acme", displayName("Acme Corp")); err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
}

// displayName is an updater that renames a realm.
func displayName(name string) func(r *storage.Realm) ([]storage.AuditEvent, error) {
	return func(r *storage.Realm) ([]storage.AuditEvent, error) {
		r.DisplayName = name
		return nil, nil
	}
}
