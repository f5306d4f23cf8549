package backchannel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/cluster"
	"github.com/latchkey/latchkey/storage"
)

// fakeStore is a change feed, the sessions' clients and a cursor in memory.
type fakeStore struct {
	mu       sync.Mutex
	changes  []storage.Change
	cursor   int64
	hasCur   bool
	clients  map[string][]storage.SessionClient
	uri      string
	wake     func()
	audit    []storage.AuditEvent
	cursorCh chan int64 // every cursor stored
	terms    int        // calls of Exclusive
}

func (f *fakeStore) ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []storage.Change
	for _, c := range f.changes {
		if c.Seq > q.After && (q.Limit == 0 || len(out) < q.Limit) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeStore) LastChangeSeq(ctx context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.changes) == 0 {
		return 0, nil
	}
	return f.changes[len(f.changes)-1].Seq, nil
}

func (f *fakeStore) WatchChanges(ctx context.Context, wake func()) error {
	f.mu.Lock()
	f.wake = wake
	f.mu.Unlock()
	wake()
	<-ctx.Done()
	return nil
}

func (f *fakeStore) Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	f.mu.Lock()
	f.terms++
	f.mu.Unlock()
	return true, fn(ctx)
}

func (f *fakeStore) BackchannelCursor(ctx context.Context) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursor, f.hasCur, nil
}

func (f *fakeStore) SetBackchannelCursor(ctx context.Context, seq int64) error {
	f.mu.Lock()
	f.cursor, f.hasCur = seq, true
	f.mu.Unlock()
	select { // a failed test may stop reading
	case f.cursorCh <- seq:
	case <-ctx.Done():
	}
	return nil
}

func (f *fakeStore) SessionClients(ctx context.Context, sid string) ([]storage.SessionClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clients[sid], nil
}

func (f *fakeStore) ListSessionsRevokedAt(ctx context.Context, realm string, at time.Time) ([]storage.Session, error) {
	return nil, nil
}

func (f *fakeStore) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	return storage.Client{Realm: realm, ID: id, BackchannelLogoutURI: f.uri + "/" + id}, nil
}

func (f *fakeStore) AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = append(f.audit, e)
	return int64(len(f.audit)), nil
}

// add records a session.ended change and wakes the feed's watcher.
func (f *fakeStore) add(seq int64, sid string) {
	f.mu.Lock()
	f.changes = append(f.changes, storage.Change{Seq: seq, Kind: storage.ChangeSessionEnded, Realm: "acme", Subject: sid, UserID: "u-" + sid})
	wake := f.wake
	f.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// tokens "signs" a logout token as the session ID it is for.
type tokens struct{}

func (tokens) IssueLogoutToken(ctx context.Context, c storage.Client, userID, sid string) (string, error) {
	return sid, nil
}

// waitCursor waits until the deliverer stores want as its cursor.
func waitCursor(t *testing.T, f *fakeStore, want int64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-f.cursorCh:
			if got == want {
				return
			}
			if got > want {
				t.Fatalf("cursor moved to %d, past %d", got, want)
			}
		case <-timeout:
			t.Fatalf("cursor never reached %d", want)
		}
	}
}

// nop is the rest of the instance the Follower applies changes to: session
// changes touch none of it.
type nop struct{}

func (nop) Add(realm, jti string, until time.Time) {}
func (nop) InvalidateRealm(realm string)           {}
func (nop) InvalidateClient(realm, id string)      {}
func (nop) InvalidateRoles(realm string)           {}
func (nop) Clear()                                 {}
func (nop) Forget(realm string)                    {}
func (nop) Stale(realm string)                     {}
func (nop) ForgetVerified()                        {}

// run delivers from f, following its feed with the real cluster Follower, as
// the server does.
func run(t *testing.T, f *fakeStore, c Config) {
	after, _ := f.LastChangeSeq(t.Context())
	fol := cluster.New(cluster.Config{Feed: f, Deny: nop{}, Cache: nop{}, Keys: nop{}, Verified: nop{}, After: after})
	c.Follower = fol
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { fol.Run(ctx); done <- struct{}{} }()
	runWith(t, ctx, f, c)
	t.Cleanup(func() { cancel(); <-done })
}

// runWith runs a Deliverer on f and c.Follower until the test ends.
func runWith(t *testing.T, ctx context.Context, f *fakeStore, c Config) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	c.Store, c.Tokens = f, tokens{}
	go func() { New(c).Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// follower is a Follower whose Last the test sets.
type follower struct {
	mu      sync.Mutex
	last    int64
	changed chan struct{}
}

func (f *follower) Last() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *follower) Wait(ctx context.Context, after int64) (int64, error) {
	for {
		f.mu.Lock()
		last, changed := f.last, f.changed
		f.mu.Unlock()
		if last > after {
			return last, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

func (f *follower) set(last int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = last
	close(f.changed)
	f.changed = make(chan struct{})
}

// The cursor stays before a change whose delivery is still being retried, so a
// restart repeats it; changes after it are delivered meanwhile, and the cursor
// moves past all of them once it finishes.
func TestCursorStaysBeforeADeliveryInFlight(t *testing.T) {
	release := make(chan struct{})
	delivered := make(chan string, 10)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		sid := r.PostForm.Get("logout_token")
		if sid == "sid-1" {
			select {
			case <-release:
			default:
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		delivered <- sid
	}))
	defer rp.Close()
	f := &fakeStore{hasCur: true, uri: rp.URL, cursorCh: make(chan int64, 100),
		clients: map[string][]storage.SessionClient{"sid-1": {{Realm: "acme", ClientID: "web"}}, "sid-2": {{Realm: "acme", ClientID: "web"}}}}
	run(t, f, Config{RetryBase: 20 * time.Millisecond, Retries: 8})
	f.add(1, "sid-1")
	f.add(2, "sid-2")
	if got := <-delivered; got != "sid-2" {
		t.Fatalf("first delivered %q, want sid-2 (sid-1 is failing)", got)
	}
	f.mu.Lock()
	cur := f.cursor
	f.mu.Unlock()
	if cur != 0 {
		t.Fatalf("cursor %d while change 1 is still being delivered; want 0", cur)
	}
	close(release)
	if got := <-delivered; got != "sid-1" {
		t.Fatalf("delivered %q, want sid-1 on a retry", got)
	}
	waitCursor(t, f, 2)
}

// A first start does not deliver what ended before there was any delivery; it
// delivers what ends after.
func TestFirstStartBeginsAtTheFeedsEnd(t *testing.T) {
	delivered := make(chan string, 10)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		delivered <- r.PostForm.Get("logout_token")
	}))
	defer rp.Close()
	f := &fakeStore{uri: rp.URL, cursorCh: make(chan int64, 100),
		clients: map[string][]storage.SessionClient{"old": {{Realm: "acme", ClientID: "web"}}, "new": {{Realm: "acme", ClientID: "web"}}}}
	f.add(1, "old")
	run(t, f, Config{})
	waitCursor(t, f, 1)
	f.add(2, "new")
	if got := <-delivered; got != "new" {
		t.Fatalf("delivered %q, want only the session that ended after the start", got)
	}
	waitCursor(t, f, 2)
}

// A client that never takes the token is given up on after the retries, with
// an audit event that holds no token; the cursor then moves on.
func TestGivesUpWithAnAuditEvent(t *testing.T) {
	var mu sync.Mutex
	posts := 0
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
		http.Redirect(w, r, "/elsewhere?"+url.Values{"x": {"y"}}.Encode(), http.StatusFound) // never followed
	}))
	defer rp.Close()
	f := &fakeStore{hasCur: true, uri: rp.URL, cursorCh: make(chan int64, 100),
		clients: map[string][]storage.SessionClient{"sid-1": {{Realm: "acme", ClientID: "web"}}}}
	run(t, f, Config{RetryBase: time.Millisecond, Retries: 2})
	f.add(1, "sid-1")
	waitCursor(t, f, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if posts != 3 {
		t.Errorf("%d POSTs, want 3 (the redirect is not followed)", posts)
	}
	if len(f.audit) != 1 || f.audit[0].Type != EventFailed || f.audit[0].ClientID != "web" || f.audit[0].SessionID != "sid-1" {
		t.Fatalf("audit %+v", f.audit)
	}
	for k, v := range f.audit[0].Details {
		if k == "logout_token" || v == "sid-1" {
			t.Errorf("audit detail %s=%s", k, v)
		}
	}
}

// A term over, the deliverer lets go of the lock and takes it again, losing
// nothing: deliveries go on from the stored cursor.
func TestTermsEndAndDeliveryGoesOn(t *testing.T) {
	delivered := make(chan string, 10)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		delivered <- r.PostForm.Get("logout_token")
	}))
	defer rp.Close()
	f := &fakeStore{hasCur: true, uri: rp.URL, cursorCh: make(chan int64, 1000),
		clients: map[string][]storage.SessionClient{"a": {{Realm: "acme", ClientID: "web"}}, "b": {{Realm: "acme", ClientID: "web"}}}}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	run(t, f, Config{Term: time.Minute, Poll: 5 * time.Millisecond, Now: clock})
	f.add(1, "a")
	if got := <-delivered; got != "a" {
		t.Fatalf("delivered %q", got)
	}
	waitCursor(t, f, 1)
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		terms := f.terms
		f.mu.Unlock()
		if terms > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the term never ended")
		}
	}
	f.add(2, "b")
	if got := <-delivered; got != "b" {
		t.Fatalf("delivered %q after a new term", got)
	}
	waitCursor(t, f, 2)
}

// The feed is read only as far as the Follower has found it whole: a change
// past its Last (a gap below it may yet fill) waits until Last passes it; a gap
// the Follower gave up on is stepped over.
func TestReadsOnlyUpToTheFollowersLast(t *testing.T) {
	var mu sync.Mutex
	released := false
	delivered := make(chan string, 10)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		sid := r.PostForm.Get("logout_token")
		mu.Lock()
		if sid == "c" && !released {
			t.Errorf("change 3 delivered while the Follower's Last was 1")
		}
		mu.Unlock()
		delivered <- sid
	}))
	defer rp.Close()
	f := &fakeStore{hasCur: true, uri: rp.URL, cursorCh: make(chan int64, 100),
		clients: map[string][]storage.SessionClient{"a": {{Realm: "acme", ClientID: "web"}}, "c": {{Realm: "acme", ClientID: "web"}}}}
	f.add(1, "a")
	f.add(3, "c") // 2 is missing
	fol := &follower{last: 1, changed: make(chan struct{})}
	runWith(t, t.Context(), f, Config{Follower: fol})
	if got := <-delivered; got != "a" {
		t.Fatalf("delivered %q, want a", got)
	}
	waitCursor(t, f, 1)
	mu.Lock()
	released = true
	mu.Unlock()
	fol.set(3) // 2 given up: rolled back
	if got := <-delivered; got != "c" {
		t.Fatalf("delivered %q, want c", got)
	}
	waitCursor(t, f, 3)
}
