package postgres_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
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
