package storecache

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
	"github.com/latchkey/latchkey/storage/storagetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func open(t *testing.T) *sqlite.Store {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The cache is a storage.Store like any other: it passes the conformance suite.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return New(open(t), time.Second, time.Now) })
}

func TestAnswersAreKeptForTheTTLAndDroppedOnWrites(t *testing.T) {
	ctx := t.Context()
	raw := open(t)
	clk := &clock{t: time.Now()}
	c := New(raw, time.Second, clk.Now)
	r := storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute}
	if err := c.CreateRealm(ctx, r); err != nil {
		t.Fatal(err)
	}
	cl := storage.Client{Realm: "acme", ID: "web", GrantTypes: []string{"client_credentials"}}
	if err := c.CreateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetClient(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetClient(ctx, "acme", "ghost"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	// A change made behind the cache's back (another instance) shows after the TTL.
	cl.Disabled = true
	if err := raw.UpdateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetClient(ctx, "acme", "web"); got.Disabled {
		t.Fatal("answered from the store within the TTL")
	}
	raw.CreateClient(ctx, storage.Client{Realm: "acme", ID: "ghost"})
	if _, err := c.GetClient(ctx, "acme", "ghost"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("a not-found answer was not kept")
	}
	clk.Add(time.Second)
	if got, _ := c.GetClient(ctx, "acme", "web"); !got.Disabled {
		t.Fatal("a stale answer outlived the TTL")
	}
	// A change made through the cache shows at once.
	cl.Disabled = false
	if err := c.UpdateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetClient(ctx, "acme", "web"); got.Disabled {
		t.Fatal("a write through the cache did not show at once")
	}
}
