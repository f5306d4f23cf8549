package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/internal/cluster"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// heldChange records a token denial in a transaction of its own that the test
// keeps open, as a slow writer on another instance does: its Seq is taken, but
// readers do not see it until it commits. It returns the Seq and the transaction.
func heldChange(t *testing.T, dsn, jti string) (int64, pgx.Tx) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := tx.QueryRow(t.Context(), `INSERT INTO changes (time, realm, kind, subject, user_id, client_id, until, reason)
		VALUES (now(), 'acme', $1, $2, '', '', now() + interval '1 minute', 'revoked') RETURNING seq`,
		storage.ChangeTokenDenied, jti).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq, tx
}

func deny(t *testing.T, st storage.Store, jti string) {
	t.Helper()
	if err := st.DenyJWT(t.Context(), storage.DeniedJWT{Realm: "acme", JTI: jti, ExpiresAt: time.Now().Add(time.Minute),
		CreatedAt: time.Now(), Reason: "revoked"}); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// On PostgreSQL a change may become visible after higher ones, while its
// transaction is open. The changes past the gap apply at once; Last stays below
// it until it fills (then the late change applies too), or until the store's
// timeout has passed (a transaction that rolled back).
func TestFollower_PostgresGapFillsOrTimesOut(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seed(t, st)
	const gapTimeout = time.Second
	in := follow(t, st, cluster.Config{Poll: time.Hour, GapTimeout: gapTimeout})

	// A gap that fills.
	held, tx := heldChange(t, dsn, "held")
	deny(t, st, "later")
	eventually(t, 2*time.Second, "a change past an open transaction's applied", func() bool { return in.deny.Denied("acme", "later") })
	if last := in.f.Last(); last >= held {
		t.Fatalf("Last %d passed the open transaction's change %d", last, held)
	}
	if in.deny.Denied("acme", "held") {
		t.Fatal("an uncommitted change was applied")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, gapTimeout/2) // filled, not given up
	defer cancel()
	if last, err := in.f.Wait(wctx, held); err != nil {
		t.Fatalf("Wait past the filled gap: %d, %v", last, err)
	}
	if !in.deny.Denied("acme", "held") {
		t.Fatal("the change that filled the gap was not applied")
	}

	// A gap that never fills.
	lost, tx := heldChange(t, dsn, "lost")
	deny(t, st, "after-lost")
	eventually(t, 2*time.Second, "a change past an open transaction's applied", func() bool { return in.deny.Denied("acme", "after-lost") })
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if last := in.f.Last(); last >= lost {
		t.Fatalf("Last %d passed the missing change %d at once", last, lost)
	}
	wctx, cancel = context.WithTimeout(ctx, 3*gapTimeout)
	defer cancel()
	if last, err := in.f.Wait(wctx, lost); err != nil {
		t.Fatalf("Wait past a gap that never fills: %d, %v", last, err)
	}
	if in.deny.Denied("acme", "lost") {
		t.Fatal("a rolled-back change was applied")
	}
}

// A change whose transaction took its Seq before an instance read its starting
// cursor, and commits after, is applied when it commits: the Seqs below the
// cursor still missing are waited for like any gap.
func TestFollower_PostgresChangeInFlightAtStartIsApplied(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seed(t, st)
	held, tx := heldChange(t, dsn, "in-flight")
	deny(t, st, "committed") // the cursor the follower starts after is above held
	in := follow(t, st, cluster.Config{Poll: time.Hour, GapTimeout: 5 * time.Second})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := in.f.Wait(wctx, held); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the change in flight at start applied", func() bool { return in.deny.Denied("acme", "in-flight") })
}
