package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// These tests run two stores on one database, as two Latchkey instances would.

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func twoInstances(t *testing.T) [2]*postgres.Store {
	t.Helper()
	dsn := pgtest.DSN(t)
	return [2]*postgres.Store{openStore(t, dsn), openStore(t, dsn)}
}

func hash(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// raceAll runs fn n times at once and returns the errors.
func raceAll(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func mustWinOnce(t *testing.T, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("callers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrAlreadyUsed):
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no caller won")
	}
	return winner
}

func setupFamily(t *testing.T, s *postgres.Store) storage.RefreshToken {
	t.Helper()
	ctx := t.Context()
	f := storage.Family{ID: "fam", Realm: "acme", ClientID: "web", UserID: "alice", CreatedAt: t0,
		IdleExpiresAt: t0.Add(time.Hour), AbsoluteExpiresAt: t0.Add(24 * time.Hour)}
	first := storage.RefreshToken{Hash: hash(t), IssuedAt: t0}
	if err := s.CreateFamily(ctx, f, first); err != nil {
		t.Fatal(err)
	}
	return first
}

func TestRedeemAuthCode_OnceAcrossInstances(t *testing.T) {
	stores := twoInstances(t)
	code := storage.AuthCode{Hash: hash(t), Realm: "acme", ClientID: "web", UserID: "alice", FamilyID: "fam",
		CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	if err := stores[0].CreateAuthCode(t.Context(), code, 0); err != nil {
		t.Fatal(err)
	}
	mustWinOnce(t, raceAll(50, func(i int) error {
		_, err := stores[i%2].RedeemAuthCode(t.Context(), code.Hash, t0.Add(time.Second),
			func(c storage.AuthCode) (storage.Family, storage.RefreshToken, error) {
				f := storage.Family{ID: c.FamilyID, Realm: c.Realm, ClientID: c.ClientID, UserID: c.UserID,
					CreatedAt: t0, IdleExpiresAt: t0.Add(time.Hour), AbsoluteExpiresAt: t0.Add(time.Hour)}
				return f, storage.RefreshToken{Hash: hash(t), IssuedAt: t0}, nil
			})
		return err
	}))
}

func TestRotateRefreshToken_OnceAcrossInstances(t *testing.T) {
	stores := twoInstances(t)
	parent := setupFamily(t, stores[0])
	children := make([][]byte, 50)
	for i := range children {
		children[i] = hash(t)
	}
	stood := make([]storage.RefreshToken, len(children))
	winner := mustWinOnce(t, raceAll(len(children), func(i int) error {
		var err error
		stood[i], err = stores[i%2].RotateRefreshToken(t.Context(), parent.Hash,
			storage.RefreshToken{Hash: children[i], IssuedAt: t0}, []byte{byte(i)},
			storage.FamilyUse{At: t0.Add(time.Second), IdleExpiresAt: t0.Add(time.Hour)})
		return err
	}))
	for i, got := range stood {
		if string(got.SuccessorHash) != string(children[winner]) || string(got.Sealed) != string([]byte{byte(winner)}) {
			t.Fatalf("caller %d was told successor %x, want the winner's %x", i, got.SuccessorHash, children[winner])
		}
	}
}

// A rotation that starts while a revocation is in flight must wait for it and
// then refuse: it must not issue a child into a family being revoked.
func TestRotateRefreshToken_WaitsForRevokeInFlight(t *testing.T) {
	stores := twoInstances(t)
	ctx := t.Context()
	parent := setupFamily(t, stores[0])

	// Instance 0 is revoking the family, inside a transaction not yet committed.
	tx, err := stores[0].Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked_at = $2, revoke_reason = 'reuse' WHERE id = $1`, "fam", t0); err != nil {
		t.Fatal(err)
	}

	child := storage.RefreshToken{Hash: hash(t), IssuedAt: t0}
	done := make(chan error, 1)
	go func() {
		_, err := stores[1].RotateRefreshToken(ctx, parent.Hash, child, nil,
			storage.FamilyUse{At: t0.Add(time.Second), IdleExpiresAt: t0.Add(time.Hour)})
		done <- err
	}()

	// Wait until the rotation is blocked on the family's row lock.
	for waiting := 0; waiting == 0; {
		select {
		case err := <-done:
			t.Fatalf("the rotation finished (%v) while the revocation was in flight", err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		default:
		}
		time.Sleep(5 * time.Millisecond) // a polling pace, not a wait for time to pass
		err := stores[0].Pool().QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	if err := <-done; !errors.Is(err, storage.ErrRevoked) {
		t.Fatalf("rotation after the revocation committed: %v, want ErrRevoked", err)
	}
	if _, err := stores[1].GetRefreshToken(ctx, child.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the child exists after a refused rotation: %v", err)
	}
}

func TestApplySeed_SameSeedFromTwoInstancesAtOnce(t *testing.T) {
	stores := twoInstances(t)
	seed := storage.Seed{Realms: []storage.SeedRealm{{
		Realm:   storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute, CreatedAt: t0, UpdatedAt: t0},
		Clients: []storage.Client{{ID: "web", Name: "Web", CreatedAt: t0, UpdatedAt: t0}},
		Users:   []storage.User{{ID: "u-alice", Username: "alice", CreatedAt: t0, UpdatedAt: t0}},
	}}}
	results := make([]storage.SeedResult, 2)
	for i, err := range raceAll(2, func(i int) error {
		var err error
		results[i], err = stores[i].ApplySeed(t.Context(), seed)
		return err
	}) {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	created, unchanged := results[0].Created+results[1].Created, results[0].Unchanged+results[1].Unchanged
	if created != 3 || unchanged != 3 {
		t.Fatalf("seed results %+v; want one instance to create 3 and the other to find 3 unchanged", results)
	}
}

// The conformance suite does not look at client assertions after DeleteRealm.
func TestDeleteRealm_ForgetsClientAssertions(t *testing.T) {
	s := openStore(t, pgtest.DSN(t))
	ctx := t.Context()
	for _, realm := range []string{"acme", "keep"} {
		if err := s.CreateRealm(ctx, storage.Realm{Name: realm}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseClientAssertion(ctx, realm, "web", "jti", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRealm(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	var realms []string
	if err := s.Pool().QueryRow(ctx, `SELECT coalesce(array_agg(realm), '{}') FROM client_assertions`).Scan(&realms); err != nil {
		t.Fatal(err)
	}
	if len(realms) != 1 || realms[0] != "keep" {
		t.Fatalf("client assertions left for realms %v, want only [keep]", realms)
	}
}
