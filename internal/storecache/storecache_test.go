package storecache

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
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
	if _, err := raw.UpdateClient(ctx, cl.Realm, cl.ID, func(p *storage.Client) ([]storage.AuditEvent, error) {
		*p = cl
		return nil, nil
	}); err != nil {
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
	if _, err := c.UpdateClient(ctx, "acme", "web", func(p *storage.Client) ([]storage.AuditEvent, error) {
		p.Disabled = false
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetClient(ctx, "acme", "web"); got.Disabled {
		t.Fatal("a write through the cache did not show at once")
	}
}

// Made-up names fill only the small not-found budget: they never push out the
// answers for names that exist, and not-found answers keep nothing but the name
// they are kept under (the store's error, which repeats the name, is not kept).
func TestNotFoundAnswersAreBoundedInBytesAndKeepNoError(t *testing.T) {
	ctx := t.Context()
	c := New(open(t), time.Hour, time.Now)
	if err := c.CreateRealm(ctx, storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateClient(ctx, storage.Client{Realm: "acme", ID: "web", GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRealm(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetClient(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 8<<10)
	for i := range 2000 {
		name := fmt.Sprint(i, long)
		for range 2 { // the second answer comes from the cache
			if _, err := c.GetRealm(ctx, name); err != storage.ErrNotFound {
				t.Fatalf("unknown realm: %v; want exactly storage.ErrNotFound", err)
			}
			if _, err := c.GetClient(ctx, "acme", name); err != storage.ErrNotFound {
				t.Fatalf("unknown client: %v; want exactly storage.ErrNotFound", err)
			}
		}
	}
	within := func(what string, used, n int) {
		if used > missingBytes || n == 0 || n > missingBytes/(8<<10) {
			t.Errorf("%s: %d entries of %d bytes; want some, within %d bytes", what, n, used, missingBytes)
		}
	}
	within("missing realms", c.realms.missing.used, len(c.realms.missing.m))
	within("missing clients", c.clients.missing.used, len(c.clients.missing.m))
	if _, ok := c.realms.found.m["acme"]; !ok {
		t.Error("the found realm was pushed out by made-up ones")
	}
	if _, ok := c.clients.found.m[clientKey{"acme", "web"}]; !ok {
		t.Error("the found client was pushed out by made-up ones")
	}
}

// The budget holds entries of every size, and a replaced entry gives its bytes back.
func TestTableStaysWithinItsBudget(t *testing.T) {
	tb := table[string, struct{}]{max: 10 << 10, m: map[string]entry[struct{}]{}}
	now := time.Now()
	for i := range 1000 {
		k := fmt.Sprint(i % 300)
		tb.put(k, struct{}{}, now, i%500)
		sum := 0
		for _, e := range tb.m {
			sum += e.bytes
		}
		if sum != tb.used || tb.used > tb.max {
			t.Fatalf("after %d puts: used %d, entries sum to %d, max %d", i+1, tb.used, sum, tb.max)
		}
		if _, ok := tb.m[k]; !ok {
			t.Fatalf("the entry just put is not there")
		}
	}
	tb.put("huge", struct{}{}, now, 20<<10)
	if _, ok := tb.m["huge"]; ok {
		t.Fatal("an entry over the whole budget was kept")
	}
}

// An answer is kept until it is invalidated, however long that takes, and an
// invalidation drops only what it names (a realm takes its clients with it).
func TestInvalidateDropsWhatItNames(t *testing.T) {
	ctx := t.Context()
	raw := open(t)
	clk := &clock{t: time.Now()}
	c := New(raw, time.Hour, clk.Now)
	for _, r := range []string{"acme", "other"} {
		if err := c.CreateRealm(ctx, storage.Realm{Name: r, SigningAlg: "ES256", AccessTokenTTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"web", "api"} {
			if err := c.CreateClient(ctx, storage.Client{Realm: r, ID: id, GrantTypes: []string{"client_credentials"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// disable changes every client and realm behind the cache's back.
	disable := func() {
		for _, r := range []string{"acme", "other"} {
			if _, err := raw.UpdateRealm(ctx, r, func(p *storage.Realm) ([]storage.AuditEvent, error) {
				p.DisplayName = "changed"
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"web", "api"} {
				if _, err := raw.UpdateClient(ctx, r, id, func(p *storage.Client) ([]storage.AuditEvent, error) {
					p.Disabled = true
					return nil, nil
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	fresh := func(want map[string]bool) {
		t.Helper()
		for _, r := range []string{"acme", "other"} {
			realm, err := c.GetRealm(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if got := realm.DisplayName == "changed"; got != want[r] {
				t.Errorf("realm %s: fresh %v, want %v", r, got, want[r])
			}
			for _, id := range []string{"web", "api"} {
				cl, err := c.GetClient(ctx, r, id)
				if err != nil {
					t.Fatal(err)
				}
				if got := cl.Disabled; got != want[r+"/"+id] {
					t.Errorf("client %s/%s: fresh %v, want %v", r, id, got, want[r+"/"+id])
				}
			}
		}
	}
	fresh(map[string]bool{})
	disable()
	clk.Add(59 * time.Minute)
	fresh(map[string]bool{})
	c.InvalidateClient("acme", "web")
	fresh(map[string]bool{"acme/web": true})
	c.InvalidateRealm("other")
	fresh(map[string]bool{"acme/web": true, "other": true, "other/web": true, "other/api": true})
	c.Clear()
	fresh(map[string]bool{"acme": true, "acme/web": true, "acme/api": true, "other": true, "other/web": true, "other/api": true})

	// A client created elsewhere after a not-found answer shows once invalidated.
	if _, err := c.GetClient(ctx, "acme", "new"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if err := raw.CreateClient(ctx, storage.Client{Realm: "acme", ID: "new", GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatal(err)
	}
	c.InvalidateClient("acme", "new")
	if _, err := c.GetClient(ctx, "acme", "new"); err != nil {
		t.Fatal(err)
	}
}

// ListRoles answers are kept per realm until a role write through the cache,
// InvalidateRoles of their realm (a roles.changed from elsewhere), InvalidateRealm
// or Clear.
func TestRolesAreKeptPerRealmUntilInvalidated(t *testing.T) {
	ctx := t.Context()
	raw := open(t)
	clk := &clock{t: time.Now()}
	c := New(raw, time.Hour, clk.Now)
	for _, r := range []string{"acme", "other"} {
		if err := c.CreateRealm(ctx, storage.Realm{Name: r, SigningAlg: "ES256", AccessTokenTTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(realm string) int {
		t.Helper()
		roles, err := c.ListRoles(ctx, realm)
		if err != nil {
			t.Fatal(err)
		}
		return len(roles)
	}
	// addElsewhere adds a role to both realms behind the cache's back.
	n := 0
	addElsewhere := func() {
		t.Helper()
		n++
		for _, r := range []string{"acme", "other"} {
			if err := raw.CreateRole(ctx, storage.Role{Realm: r, Name: fmt.Sprintf("r%d", n)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := func(acme, other int) {
		t.Helper()
		if a, o := count("acme"), count("other"); a != acme || o != other {
			t.Fatalf("roles seen: acme %d, other %d; want %d, %d", a, o, acme, other)
		}
	}
	want(0, 0)
	addElsewhere()
	want(0, 0) // kept
	c.InvalidateRoles("acme")
	want(1, 0)
	addElsewhere()
	c.InvalidateRealm("other")
	want(1, 2)
	addElsewhere()
	c.Clear()
	want(3, 3)

	// Writes through the cache show at once.
	if err := c.CreateRole(ctx, storage.Role{Realm: "acme", Name: "mine"}); err != nil {
		t.Fatal(err)
	}
	want(4, 3)
	if _, err := c.UpdateRole(ctx, "acme", "", "mine", func(r *storage.Role) ([]storage.AuditEvent, error) {
		r.Description = "changed"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if roles, _ := c.ListRoles(ctx, "acme"); roles[0].Description != "changed" {
		t.Fatalf("an updated role is stale: %+v", roles[0])
	}
	if err := c.DeleteRole(ctx, "acme", "", "mine"); err != nil {
		t.Fatal(err)
	}
	want(3, 3)

	// A caller changing its answer does not change the next one.
	roles, _ := c.ListRoles(ctx, "acme")
	roles[0].Name = "scribbled"
	if again, _ := c.ListRoles(ctx, "acme"); again[0].Name == "scribbled" {
		t.Fatal("the kept answer was changed through a caller's copy")
	}
}

// pausingStore holds GetClient after it has read, until release is closed.
type pausingStore struct {
	storage.Store
	read, release chan struct{}
}

func (p *pausingStore) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	c, err := p.Store.GetClient(ctx, realm, id)
	if p.read != nil {
		close(p.read)
		<-p.release
		p.read = nil
	}
	return c, err
}

// A load that read the store before an invalidation returns what it read, but
// does not keep it: kept, the stale answer would live until the next change.
func TestALoadOverlappingAnInvalidationIsNotKept(t *testing.T) {
	ctx := t.Context()
	raw := open(t)
	p := &pausingStore{Store: raw}
	c := New(p, time.Hour, time.Now)
	if err := c.CreateRealm(ctx, storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateClient(ctx, storage.Client{Realm: "acme", ID: "web", GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatal(err)
	}
	p.read, p.release = make(chan struct{}), make(chan struct{})
	done := make(chan storage.Client)
	go func() {
		cl, _ := c.GetClient(ctx, "acme", "web")
		done <- cl
	}()
	<-p.read
	if _, err := raw.UpdateClient(ctx, "acme", "web", func(p *storage.Client) ([]storage.AuditEvent, error) {
		p.Disabled = true
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	c.InvalidateClient("acme", "web")
	close(p.release)
	if cl := <-done; cl.Disabled {
		t.Fatal("the load read after the update")
	}
	if cl, _ := c.GetClient(ctx, "acme", "web"); !cl.Disabled {
		t.Fatal("the load that overlapped the invalidation was kept")
	}
}
