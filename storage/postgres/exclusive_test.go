package postgres_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// Exclusive holds across instances: a name taken by one store (one instance) is
// refused to two others on the same database until it is released.
func TestExclusive_AcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b, c := openStore(t, dsn), openStore(t, dsn), openStore(t, dsn)
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := a.Exclusive(t.Context(), "task", func(context.Context) error { close(inside); <-release; return nil })
		done <- err
	}()
	<-inside
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // a failure below must not leave instance a holding its connection
	for i, st := range []storage.Store{b, c} {
		ran, err := st.Exclusive(t.Context(), "task", func(context.Context) error { return nil })
		if ran || err != nil {
			t.Fatalf("instance %d ran while another held the name: %v, %v", i+2, ran, err)
		}
	}
	free()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ran, err := b.Exclusive(t.Context(), "task", func(context.Context) error { return nil }); !ran || err != nil {
		t.Fatalf("after release: %v, %v", ran, err)
	}
}

// Three instances whose rotation task fires together make one new key, not
// three: the one that runs decides inside Exclusive, from the keys it reads there.
func TestExclusive_ThreeInstancesRotateOnce(t *testing.T) {
	mk, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	for trial := range 10 {
		dsn := pgtest.DSN(t)
		stores := []storage.Store{openStore(t, dsn), openStore(t, dsn), openStore(t, dsn)}
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		if err := stores[0].CreateRealm(t.Context(), storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: 5 * time.Minute, CreatedAt: t0, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		first := keys.NewManager(stores[0], mk, keys.DefaultPolicy, func() time.Time { return t0 })
		if _, err := first.Signer(t.Context(), "acme", "ES256"); err != nil {
			t.Fatal(err)
		}
		later := t0.Add(keys.DefaultPolicy.RotateEvery + time.Hour)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, st := range stores {
			m := keys.NewManager(st, mk, keys.DefaultPolicy, func() time.Time { return later })
			wg.Go(func() {
				<-start
				_, err := st.Exclusive(t.Context(), "key rotation", func(ctx context.Context) error {
					_, err := m.RotateDue(ctx, []string{"acme"})
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		ks, err := stores[0].ListSigningKeys(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(ks) != 2 {
			t.Fatalf("trial %d: %d keys after three instances' rotation; want the first and one new", trial, len(ks))
		}
	}
}

// Three instances starting together on an empty database, each asked to sign
// for a new realm, make one first key between them, and all sign with it.
func TestExclusive_ThreeInstancesMakeOneFirstKey(t *testing.T) {
	mk, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	for trial := range 10 {
		dsn := pgtest.DSN(t)
		stores := []storage.Store{openStore(t, dsn), openStore(t, dsn), openStore(t, dsn)}
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		if err := stores[0].CreateRealm(t.Context(), storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: 5 * time.Minute, CreatedAt: t0, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		kids := make([]string, len(stores))
		for i, st := range stores {
			m := keys.NewManager(st, mk, keys.DefaultPolicy, time.Now)
			wg.Go(func() {
				<-start
				k, err := m.Signer(t.Context(), "acme", "ES256")
				if err != nil {
					t.Error(err)
					return
				}
				kids[i] = k.KID
			})
		}
		close(start)
		wg.Wait()
		ks, err := stores[0].ListSigningKeys(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(ks) != 1 || kids[0] != ks[0].KID || kids[1] != ks[0].KID || kids[2] != ks[0].KID {
			t.Fatalf("trial %d: %d keys made, instances sign with %v; want one key, used by all", trial, len(ks), kids)
		}
	}
}

// Three instances whose sweep timers fire together, or one after another
// within the interval, sweep once: the last sweep is stamped in the store and
// read inside Exclusive.
func TestExclusive_ThreeInstancesSweepOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	stores := []storage.Store{openStore(t, dsn), openStore(t, dsn), openStore(t, dsn)}
	now := time.Now()
	var runs atomic.Int32
	var tasks []func(context.Context) (bool, error)
	for _, st := range stores {
		tasks = append(tasks, server.OncePerInterval(st, "sweep", 10*time.Minute, func() time.Time { return now },
			func(ctx context.Context, now time.Time) error {
				runs.Add(1)
				_, err := st.Sweep(ctx, now, time.Hour)
				return err
			}))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, task := range tasks {
		wg.Go(func() {
			<-start
			if _, err := task(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, task := range tasks {
		if _, err := task(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := runs.Load(); got != 1 {
		t.Fatalf("three instances swept %d times in one interval, want once", got)
	}
}
