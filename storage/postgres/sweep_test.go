package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

func TestSweep_SkipsWhileAnotherInstanceSweeps(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	stores := [2]*postgres.Store{openStore(t, dsn), openStore(t, dsn)}

	// Something for a sweep to delete: an expired session and deny-list entry.
	sess := storage.Session{ID: "sid-1", Realm: "acme", UserID: "u1", CreatedAt: t0,
		IdleExpiresAt: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour)}
	if err := stores[0].CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].DenyJWT(ctx, storage.DeniedJWT{Realm: "acme", JTI: "jti-1", ExpiresAt: t0.Add(time.Minute), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	stored := storage.Counts{Sessions: 1, DeniedJWTs: 1}
	sweepAt := t0.Add(2 * time.Hour)

	// A third instance is sweeping: its transaction holds the lock.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, postgres.SweepLockKey); err != nil {
		t.Fatal(err)
	}

	for i, s := range stores {
		// A sweep that waited for the lock would run into the deadline instead.
		quick, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := s.Sweep(quick, sweepAt, 0)
		cancel()
		if err != nil || res != (storage.SweepResult{Skipped: true}) {
			t.Fatalf("store %d: Sweep while the lock is held = %+v, %v; want Skipped at once", i, res, err)
		}
	}
	counts, err := stores[0].Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts != stored {
		t.Fatalf("Count after skipped sweeps = %+v, want %+v: nothing deleted", counts, stored)
	}

	// The other sweep ends; the lock goes with its transaction.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := stores[1].Sweep(ctx, sweepAt, 0)
	if err != nil || res != (storage.SweepResult{Sessions: 1, DeniedJWTs: 1}) {
		t.Fatalf("Sweep after the lock is released = %+v, %v; want the session and the deny-list entry", res, err)
	}
	counts, err = stores[0].Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts != (storage.Counts{}) {
		t.Fatalf("Count after the sweep = %+v, want nothing left", counts)
	}
}
