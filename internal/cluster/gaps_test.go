package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// feed is a change feed whose visible changes the test chooses, as a store shared
// by several writers shows them: a change may become visible after higher ones.
type feed struct {
	mu      sync.Mutex
	visible []storage.Change
	reads   int
}

func (f *feed) show(seqs ...int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range seqs {
		f.visible = append(f.visible, storage.Change{Seq: s, Realm: "acme", Kind: storage.ChangeClientChanged, Subject: fmt.Sprint("c", s)})
	}
	slices.SortFunc(f.visible, func(a, b storage.Change) int { return int(a.Seq - b.Seq) })
}

func (f *feed) ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	var out []storage.Change
	for _, c := range f.visible {
		if c.Seq > q.After && (q.Limit == 0 || len(out) < q.Limit) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *feed) WatchChanges(ctx context.Context, wake func()) error {
	wake()
	<-ctx.Done()
	return nil
}

// record notes what the follower did to this instance.
type record struct {
	mu  sync.Mutex
	log []string
}

func (r *record) note(s string) { r.mu.Lock(); r.log = append(r.log, s); r.mu.Unlock() }
func (r *record) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}
func (r *record) Add(realm, jti string, until time.Time) { r.note("deny " + realm + "/" + jti) }
func (r *record) InvalidateRealm(realm string)           { r.note("realm " + realm) }
func (r *record) InvalidateClient(realm, id string)      { r.note("client " + realm + "/" + id) }
func (r *record) InvalidateRoles(realm string)           { r.note("roles " + realm) }
func (r *record) Clear()                                 { r.note("clear") }
func (r *record) Forget(realm string)                    { r.note("keys " + realm) }
func (r *record) Stale(realm string)                     { r.note("keys " + realm) }
func (r *record) ForgetVerified()                        { r.note("verified") }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newFollower(fd *feed, rec *record, clk *clock, after int64, batch int) *Follower {
	return New(Config{Feed: fd, Deny: rec, Cache: rec, Keys: rec, Verified: rec, After: after,
		GapTimeout: 3 * time.Second, Batch: batch, Now: clk.Now})
}

func wantLog(t *testing.T, rec *record, want ...string) {
	t.Helper()
	if got := rec.take(); !slices.Equal(got, want) {
		t.Fatalf("applied %q; want %q", got, want)
	}
}

func wantLast(t *testing.T, f *Follower, want int64) {
	t.Helper()
	if got := f.Last(); got != want {
		t.Fatalf("Last %d; want %d", got, want)
	}
}

// A change past a gap is applied at once (changes apply in any order); Last stays
// below the gap until it fills, and the late change is applied once, when it shows.
func TestGap_ChangesPastItApplyAtOnceAndItIsAppliedWhenItFills(t *testing.T) {
	ctx := t.Context()
	fd, rec, clk := &feed{}, &record{}, &clock{t: time.Unix(1e9, 0)}
	f := newFollower(fd, rec, clk, 0, 500)
	fd.show(1, 3, 4)
	if err := f.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	wantLog(t, rec, "client acme/c1", "client acme/c3", "client acme/c4")
	wantLast(t, f, 1)
	clk.Add(2 * time.Second)
	if err := f.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	wantLog(t, rec) // nothing new: 3 and 4 are not applied twice
	wantLast(t, f, 1)
	fd.show(2, 5)
	if err := f.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	wantLog(t, rec, "client acme/c2", "client acme/c5")
	wantLast(t, f, 5)
}

// A gap that never fills (its transaction rolled back, or it was purged) is given
// up after the store's timeout; since something may have been missed, the caches
// are dropped.
func TestGap_NeverFilledIsGivenUpAfterTheTimeoutAndCachesDropped(t *testing.T) {
	ctx := t.Context()
	fd, rec, clk := &feed{}, &record{}, &clock{t: time.Unix(1e9, 0)}
	f := newFollower(fd, rec, clk, 10, 500)
	fd.show(13)
	if err := f.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	wantLog(t, rec, "client acme/c13")
	wantLast(t, f, 10)
	clk.Add(3*time.Second - time.Millisecond)
	f.catchUp(ctx)
	wantLog(t, rec)
	wantLast(t, f, 10)
	clk.Add(time.Millisecond)
	f.catchUp(ctx)
	wantLog(t, rec, "clear")
	wantLast(t, f, 13)
	// A change that shows after it was given up is applied all the same.
	fd.show(12, 14)
	f.catchUp(ctx)
	wantLog(t, rec, "client acme/c14")
	wantLast(t, f, 14)
}

// Batches are bounded, and a gap does not stop the reading of the changes past it.
func TestBatches_AreBoundedAndReadPastAGap(t *testing.T) {
	ctx := t.Context()
	fd, rec, clk := &feed{}, &record{}, &clock{t: time.Unix(1e9, 0)}
	f := newFollower(fd, rec, clk, 0, 2)
	fd.show(1, 2, 4, 5, 6, 7, 8)
	if err := f.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.take()); got != 7 {
		t.Fatalf("%d changes applied; want 7", got)
	}
	wantLast(t, f, 2)
	if fd.reads != 4 { // 1 2 | 4 5 | 6 7 | 8
		t.Fatalf("%d reads; want 4 of at most 2 changes", fd.reads)
	}
	fd.show(3)
	f.catchUp(ctx)
	wantLog(t, rec, "client acme/c3")
	wantLast(t, f, 8)
}

// A jump too wide to remember every missing Seq counts as a loss at once.
func TestGap_TooWideIsALossAtOnce(t *testing.T) {
	ctx := t.Context()
	fd, rec, clk := &feed{}, &record{}, &clock{t: time.Unix(1e9, 0)}
	f := newFollower(fd, rec, clk, 0, 500)
	fd.show(maxMissing + 10)
	f.catchUp(ctx)
	wantLog(t, rec, "clear", fmt.Sprint("client acme/c", maxMissing+10))
	clk.Add(3 * time.Second)
	f.catchUp(ctx)
	wantLog(t, rec, "clear")
	wantLast(t, f, maxMissing+10)
}

// What each kind of change does to this instance.
func TestApply_EachKind(t *testing.T) {
	ctx := t.Context()
	fd, rec, clk := &feed{}, &record{}, &clock{t: time.Unix(1e9, 0)}
	f := newFollower(fd, rec, clk, 0, 500)
	until := clk.Now().Add(time.Minute)
	fd.visible = []storage.Change{
		{Seq: 1, Realm: "acme", Kind: storage.ChangeTokenDenied, Subject: "j1", Until: until},
		{Seq: 2, Realm: "acme", Kind: storage.ChangeTokenDenied, Subject: "old", Until: clk.Now()}, // expired already
		{Seq: 3, Realm: "acme", Kind: storage.ChangeRealmChanged, Subject: "acme"},
		{Seq: 4, Realm: "acme", Kind: storage.ChangeClientChanged, Subject: "web"},
		{Seq: 5, Realm: "acme", Kind: storage.ChangeClientRevoked, Subject: "svc"},
		{Seq: 6, Realm: "acme", Kind: storage.ChangeKeysChanged, Subject: "kid1"},
		{Seq: 7, Realm: "acme", Kind: storage.ChangeUserRevoked, Subject: "u1"},
		{Seq: 8, Realm: "acme", Kind: storage.ChangeSessionEnded, Subject: "s1"},
		{Seq: 9, Realm: "acme", Kind: storage.ChangeFamilyRevoked, Subject: "f1"},
		{Seq: 10, Realm: "acme", Kind: storage.ChangeRealmLogout, Subject: "acme"},
		{Seq: 11, Realm: "acme", Kind: storage.ChangeRolesChanged, Subject: "acme"},
	}
	if err := f.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	wantLog(t, rec, "deny acme/j1", "realm acme", "keys acme", "client acme/web", "client acme/svc", "keys acme", "verified", "roles acme")
	wantLast(t, f, 11)
}

// Wait returns at once when Last is past after; otherwise when a change past it is
// applied, to every waiter; or when its context ends.
func TestWait(t *testing.T) {
	ctx := t.Context()
	fd, rec, clk := &feed{}, &record{}, &clock{t: time.Unix(1e9, 0)}
	f := newFollower(fd, rec, clk, 5, 500)
	if last, err := f.Wait(ctx, 4); last != 5 || err != nil {
		t.Fatalf("Wait(4) = %d, %v; want 5 at once", last, err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if last, err := f.Wait(short, 5); last != 5 || err != context.DeadlineExceeded {
		t.Fatalf("Wait(5) with nothing new = %d, %v; want 5, deadline exceeded", last, err)
	}
	const waiters = 100
	got := make(chan int64, waiters)
	for range waiters {
		go func() {
			last, err := f.Wait(ctx, 5)
			if err != nil {
				last = -1
			}
			got <- last
		}()
	}
	fd.show(6, 7)
	if err := f.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if last := <-got; last != 7 {
			t.Fatalf("a waiter got %d; want 7", last)
		}
	}
}

// Run catches up at start, on a wake-up, and clears the caches at start.
func TestRun_CatchesUpOnWake(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	fd, rec := &feed{}, &record{}
	f := New(Config{Feed: fd, Deny: rec, Cache: rec, Keys: rec, Verified: rec, Poll: time.Hour})
	fd.show(1)
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	if last, err := f.Wait(ctx, 0); last != 1 || err != nil {
		t.Fatal(last, err)
	}
	fd.show(2)
	f.Wake()
	if last, err := f.Wait(ctx, 1); last != 2 || err != nil {
		t.Fatal(last, err)
	}
	cancel()
	<-done
	wantLog(t, rec, "clear", "client acme/c1", "client acme/c2")
}
