package web

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// memAttempts is an AttemptStore in memory, deciding as the stores do (with the
// storage package's Decide* functions; the conformance suite checks the stores,
// and TestLimiter_InstancesShareOneStore runs on SQLite).
type memAttempts struct {
	mu sync.Mutex
	m  map[string]storage.AttemptRow
}

func (s *memAttempts) rows(keys []storage.AttemptKey) []storage.AttemptRow {
	rows := make([]storage.AttemptRow, len(keys))
	for i, k := range keys {
		rows[i] = s.m[k.Key]
	}
	return rows
}

func (s *memAttempts) put(keys []storage.AttemptKey, rows []storage.AttemptRow, write []bool) {
	for i, k := range keys {
		if write == nil || write[i] {
			s.m[k.Key] = rows[i]
		}
	}
}

func (s *memAttempts) GetAttempts(_ context.Context, now time.Time, keys ...storage.AttemptKey) ([]storage.Attempts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]storage.Attempts, len(keys))
	for i, k := range keys {
		out[i] = s.m[k.Key].At(k.Limit, now)
	}
	return out, nil
}

func (s *memAttempts) AdmitAttempt(_ context.Context, now time.Time, hold time.Duration, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := s.rows(keys)
	ok, lock := storage.DecideAdmit(rows, keys, now, hold)
	if ok {
		s.put(keys, rows, nil)
	}
	return ok, lock, nil
}

func (s *memAttempts) EndAttempt(_ context.Context, now time.Time, clear bool, keys ...storage.AttemptKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := s.rows(keys)
	s.put(keys, rows, storage.DecideEnd(rows, now, clear))
	return nil
}

func (s *memAttempts) FailAttempt(_ context.Context, now time.Time, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := s.rows(keys)
	counted, lock, write := storage.DecideFail(rows, keys, now)
	s.put(keys, rows, write)
	return counted, lock, nil
}

func (s *memAttempts) ClearAttempts(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.m[key]; ok {
		r.Failures = 0
		s.m[key] = r
	}
	return nil
}

func newTestLimiter(c LimiterConfig, now func() time.Time) *Limiter {
	return NewLimiter(&memAttempts{m: map[string]storage.AttemptRow{}}, "login", c, now)
}

// try is Admit for tests, whose store does not fail.
func (l *Limiter) try(ctx context.Context, account, ip string) (*Attempt, time.Duration) {
	a, wait, err := l.Admit(ctx, account, ip)
	if err != nil {
		panic(err)
	}
	return a, wait
}

func (a *Attempt) fail() time.Duration {
	d, _, err := a.Fail(context.Background())
	if err != nil {
		panic(err)
	}
	return d
}

func (a *Attempt) succeed() {
	if err := a.Succeed(context.Background()); err != nil {
		panic(err)
	}
}

func (l *Limiter) unlock(account string) {
	if err := l.Unlock(context.Background(), account); err != nil {
		panic(err)
	}
}

// fakeClock is a settable clock for the limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// now is a done context: an Admit given it decides at once and never queues.
var now = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// fail admits an attempt and fails it; the test fails if it is not admitted.
func fail(t *testing.T, l *Limiter, account, ip string) time.Duration {
	t.Helper()
	a, wait := l.try(now, account, ip)
	if a == nil {
		t.Fatalf("Admit(%q, %q) refused (wait %v), want admitted", account, ip, wait)
	}
	return a.fail()
}

// waitFor is how long an attempt must wait now (0: it would be admitted).
func waitFor(l *Limiter, account, ip string) time.Duration {
	a, wait := l.try(now, account, ip)
	if a != nil {
		a.Release(context.Background())
	}
	return wait
}

func TestLimiter_Rules(t *testing.T) {
	const (
		alice = "acme/alice"
		bob   = "acme/bob"
		ip1   = "192.0.2.1"
		ip2   = "192.0.2.2"
	)
	// A step advances time, records failures or a success, then checks the wait
	// of another attempt.
	type step struct {
		advance time.Duration
		fail    int // admitted attempts that fail, one after another
		success bool
		account string
		ip      string
		want    time.Duration // the wait of an attempt on (checkA, checkIP) after the step
		checkA  string        // defaults to account
		checkIP string        // defaults to ip
	}
	for _, tc := range []struct {
		name  string
		cfg   LimiterConfig
		steps []step
	}{
		{"four failures do not lock", LimiterConfig{}, []step{
			{fail: 4, account: alice, ip: ip1, want: 0},
		}},
		{"the fifth failure locks the account for BaseLock", LimiterConfig{}, []step{
			{fail: 5, account: alice, ip: ip1, want: 30 * time.Second},
			{account: alice, ip: ip2, want: 30 * time.Second}, // from another IP too
			{advance: 10 * time.Second, account: alice, ip: ip1, want: 20 * time.Second},
			{advance: 20 * time.Second, account: alice, ip: ip1, want: 0},
			{account: bob, ip: ip1, want: 0}, // other accounts are not locked
		}},
		{"each further failure doubles the wait", LimiterConfig{}, []step{
			{fail: 5, account: alice, ip: ip1, want: 30 * time.Second},
			{advance: 30 * time.Second, fail: 1, account: alice, ip: ip1, want: 60 * time.Second},
			{advance: 60 * time.Second, fail: 1, account: alice, ip: ip1, want: 120 * time.Second},
			{advance: 120 * time.Second, fail: 1, account: alice, ip: ip1, want: 240 * time.Second},
		}},
		{"the wait is capped at MaxLock", LimiterConfig{}, []step{
			{fail: 5, account: alice, ip: ip1, want: 30 * time.Second},
			{advance: 30 * time.Second, fail: 1, account: alice, ip: ip1, want: time.Minute},
			{advance: time.Minute, fail: 1, account: alice, ip: ip1, want: 2 * time.Minute},
			{advance: 2 * time.Minute, fail: 1, account: alice, ip: ip1, want: 4 * time.Minute},
			{advance: 4 * time.Minute, fail: 1, account: alice, ip: ip1, want: 8 * time.Minute},
			{advance: 8 * time.Minute, fail: 1, account: alice, ip: ip1, want: 15 * time.Minute},
			{advance: 15 * time.Minute, fail: 1, account: alice, ip: ip1, want: 15 * time.Minute},
		}},
		{"AccountMaxLock caps the account's lock but not the IP's", LimiterConfig{AccountFailures: 2, IPFailures: 3, BaseLock: time.Second, MaxLock: time.Hour, AccountMaxLock: 2 * time.Second}, []step{
			{fail: 2, account: alice, ip: ip1, want: time.Second, checkIP: ip2},
			{advance: time.Second, fail: 1, account: alice, ip: ip1, want: 2 * time.Second, checkIP: ip2},
			{advance: 2 * time.Second, fail: 1, account: bob, ip: ip1, want: 2 * time.Second},                 // IP: 4 failures, 2nd lock
			{advance: 2 * time.Second, fail: 1, account: alice, ip: ip1, want: 2 * time.Second, checkIP: ip2}, // capped
			{account: bob, ip: ip1, want: 4 * time.Second},                                                    // the IP's is not
		}},
		{"custom thresholds and durations", LimiterConfig{AccountFailures: 2, BaseLock: time.Second, MaxLock: 3 * time.Second}, []step{
			{fail: 1, account: alice, ip: ip1, want: 0},
			{fail: 1, account: alice, ip: ip1, want: time.Second},
			{advance: time.Second, fail: 1, account: alice, ip: ip1, want: 2 * time.Second},
			{advance: 2 * time.Second, fail: 1, account: alice, ip: ip1, want: 3 * time.Second},
		}},
		{"an IP is locked after 20 failures across accounts", LimiterConfig{}, []step{
			{fail: 4, account: "acme/u1", ip: ip1, want: 0},
			{fail: 4, account: "acme/u2", ip: ip1, want: 0},
			{fail: 4, account: "acme/u3", ip: ip1, want: 0},
			{fail: 4, account: "acme/u4", ip: ip1, want: 0},
			{fail: 3, account: "acme/u5", ip: ip1, want: 0},
			{fail: 1, account: "acme/u5", ip: ip1, want: 30 * time.Second},
			{account: bob, ip: ip1, want: 30 * time.Second}, // any account from that IP
			{account: bob, ip: ip2, want: 0},                // other IPs are fine
			{advance: 30 * time.Second, fail: 1, account: "acme/u6", ip: ip1, want: 60 * time.Second},
		}},
		{"the wait is the longer of the account's and the IP's", LimiterConfig{IPFailures: 6}, []step{
			{fail: 5, account: alice, ip: ip1, want: 30 * time.Second},                          // account locked until t30
			{advance: 10 * time.Second, fail: 1, account: bob, ip: ip1, want: 30 * time.Second}, // IP locked until t40
			{account: alice, ip: ip1, want: 30 * time.Second},
			{account: alice, ip: ip2, want: 20 * time.Second},
			{advance: 25 * time.Second, account: alice, ip: ip1, want: 5 * time.Second},
		}},
		{"Success clears the account but not the IP", LimiterConfig{IPFailures: 8}, []step{
			{fail: 4, account: alice, ip: ip1, want: 0},
			{success: true, account: alice, ip: ip1, want: 0},
			{fail: 3, account: alice, ip: ip1, want: 0},                                    // account 3, IP 7
			{fail: 1, account: alice, ip: ip1, want: 30 * time.Second},                     // account 4, IP 8: the IP locks
			{success: true, account: alice, ip: ip2, want: 30 * time.Second, checkIP: ip1}, // still locked by the IP
			{account: bob, ip: ip1, want: 30 * time.Second},
			{account: alice, ip: ip2, want: 0},
			{fail: 4, account: alice, ip: ip2, want: 0}, // the account's count started again
		}},
		{"failures are forgotten after Forget", LimiterConfig{}, []step{
			{fail: 4, account: alice, ip: ip1, want: 0},
			{advance: time.Hour, fail: 1, account: alice, ip: ip1, want: 0}, // the 4 are gone: count is 1
			{fail: 3, account: alice, ip: ip1, want: 0},
			{fail: 1, account: alice, ip: ip1, want: 30 * time.Second},
		}},
		{"failures are forgotten between sweeps", LimiterConfig{BaseLock: time.Second, MaxLock: time.Second, Forget: 10 * time.Second}, []step{
			{fail: 4, account: alice, ip: ip1, want: 0},
			{advance: 10 * time.Second, fail: 1, account: alice, ip: ip1, want: 0},
			{fail: 4, account: alice, ip: ip1, want: time.Second},
		}},
		{"failures within Forget are kept", LimiterConfig{}, []step{
			{fail: 4, account: alice, ip: ip1, want: 0},
			{advance: time.Hour - time.Second, fail: 1, account: alice, ip: ip1, want: 30 * time.Second},
		}},
		{"a lock outlives a shorter Forget", LimiterConfig{BaseLock: time.Minute, MaxLock: 10 * time.Minute, Forget: time.Minute}, []step{
			{fail: 5, account: alice, ip: ip1, want: time.Minute},
			{advance: time.Minute, fail: 1, account: alice, ip: ip1, want: 2 * time.Minute},
			{advance: 2 * time.Minute, fail: 1, account: alice, ip: ip1, want: 4 * time.Minute},
			{advance: 4 * time.Minute, fail: 1, account: alice, ip: ip1, want: 8 * time.Minute},
			{advance: 8 * time.Minute, fail: 1, account: alice, ip: ip1, want: 10 * time.Minute},
			{advance: 9 * time.Minute, account: alice, ip: ip1, want: time.Minute},
		}},
		{"empty keys are not limited", LimiterConfig{}, []step{
			{fail: 30, account: "", ip: "", want: 0},
		}},
		{"IPv6 addresses in one /64 share a count", LimiterConfig{IPFailures: 2}, []step{
			{fail: 1, account: "acme/u1", ip: "2001:db8:1:2::1", want: 0},
			{fail: 1, account: "acme/u2", ip: "2001:db8:1:2:ffff::9", want: 30 * time.Second},
			{account: bob, ip: "2001:db8:1:3::1", want: 0},
		}},
		{"IPv4-mapped IPv6 counts as the IPv4 address", LimiterConfig{IPFailures: 2}, []step{
			{fail: 1, account: "acme/u1", ip: "::ffff:192.0.2.7", want: 0},
			{fail: 1, account: "acme/u2", ip: "192.0.2.7", want: 30 * time.Second},
			{account: bob, ip: "192.0.2.8", want: 0},
		}},
	} {
		for _, inStore := range []bool{false, true} {
			tc.cfg.InFlightInStore = inStore
			t.Run(fmt.Sprintf("%s/in store %v", tc.name, inStore), func(t *testing.T) {
				clock := newFakeClock()
				l := newTestLimiter(tc.cfg, clock.Now)
				for i, s := range tc.steps {
					clock.Advance(s.advance)
					for range s.fail {
						fail(t, l, s.account, s.ip)
					}
					if s.success {
						a, wait := l.try(now, s.account, s.ip)
						if a == nil {
							t.Fatalf("step %d: success refused (wait %v)", i, wait)
						}
						a.succeed()
					}
					a, ip := s.account, s.ip
					if s.checkA != "" {
						a = s.checkA
					}
					if s.checkIP != "" {
						ip = s.checkIP
					}
					if got := waitFor(l, a, ip); got != s.want {
						t.Fatalf("step %d: wait of (%q, %q) = %v, want %v", i, a, ip, got, s.want)
					}
				}
			})
		}
	}
}

func TestLimiter_FailReturnsTheLock(t *testing.T) {
	l := newTestLimiter(LimiterConfig{}, newFakeClock().Now)
	for i := range 4 {
		if got := fail(t, l, "acme/alice", "192.0.2.1"); got != 0 {
			t.Fatalf("failure %d: Fail = %v, want 0", i+1, got)
		}
	}
	if got := fail(t, l, "acme/alice", "192.0.2.1"); got != 30*time.Second {
		t.Fatalf("fifth failure: Fail = %v, want 30s", got)
	}
}

// A burst admits no more attempts than the failures a key has left, however
// many arrive before any has landed; the rest queue, and when the admitted ones
// fail and lock the key, the queue is refused with the lock's wait.
func TestLimiter_BurstIsAdmittedLikeASequence(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(LimiterConfig{Queue: time.Minute}, clock.Now)
	admitted := make(chan *Attempt, 100)
	refused := make(chan time.Duration, 100)
	for range 100 {
		go func() {
			a, wait := l.try(context.Background(), "acme/alice", "192.0.2.1")
			if a == nil {
				refused <- wait
				return
			}
			admitted <- a
		}()
	}
	for range 5 {
		(<-admitted).fail()
	}
	for range 95 {
		if wait := <-refused; wait != 30*time.Second {
			t.Fatalf("a queued attempt was refused with wait %v, want the lock's 30s", wait)
		}
	}
	select {
	case <-admitted:
		t.Fatal("a sixth attempt was admitted")
	default:
	}
	if got := waitFor(l, "acme/alice", "192.0.2.1"); got != 30*time.Second {
		t.Errorf("wait after the 5 failed = %v, want 30s", got)
	}
	// Once the lock runs out, one attempt at a time.
	clock.Advance(30 * time.Second)
	a, _ := l.try(now, "acme/alice", "192.0.2.1")
	if a == nil {
		t.Fatal("not admitted after the lock ran out")
	}
	if got := waitFor(l, "acme/alice", "192.0.2.2"); got != busyWait {
		t.Errorf("second attempt after the lock = %v, want %v", got, busyWait)
	}
	a.fail()
	if got := waitFor(l, "acme/alice", "192.0.2.2"); got != time.Minute {
		t.Errorf("wait after a further failure = %v, want 1m", got)
	}
}

// A burst of attempts that succeed is never refused: past the failures a key
// has left, they queue behind those in flight and go through as those land.
func TestLimiter_HonestBurstGoesThrough(t *testing.T) {
	l := newTestLimiter(LimiterConfig{AccountFailures: 2, IPFailures: 3, Queue: time.Minute}, newFakeClock().Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	inFlight, most := 0, 0
	for range 100 {
		wg.Go(func() {
			a, wait := l.try(context.Background(), "acme/svc", "192.0.2.1")
			if a == nil {
				t.Errorf("an honest attempt was refused (wait %v)", wait)
				return
			}
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inFlight--
			mu.Unlock()
			a.succeed()
		})
	}
	wg.Wait()
	if most > 2 {
		t.Errorf("%d attempts were checked at once; want at most the account's 2", most)
	}
}

// A queued attempt gives up when its context is done or its queue time is over.
func TestLimiter_QueueIsBounded(t *testing.T) {
	l := newTestLimiter(LimiterConfig{AccountFailures: 1, Queue: 10 * time.Millisecond}, newFakeClock().Now)
	held, _ := l.try(now, "acme/alice", "192.0.2.1")
	if held == nil {
		t.Fatal("first attempt refused")
	}
	if a, wait := l.try(context.Background(), "acme/alice", "192.0.2.2"); a != nil || wait != busyWait {
		t.Fatalf("queued past its time: admitted %v, wait %v; want refused with %v", a != nil, wait, busyWait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	l.queue = time.Minute
	if a, wait := l.try(ctx, "acme/alice", "192.0.2.2"); a != nil || wait != busyWait {
		t.Fatalf("queued past its context: admitted %v, wait %v; want refused with %v", a != nil, wait, busyWait)
	}
	held.Release(context.Background())
	if got := waitFor(l, "acme/alice", "192.0.2.2"); got != 0 {
		t.Fatalf("after the release: wait %v, want 0", got)
	}
}

func TestLimiter_InFlightPerIP(t *testing.T) {
	l := newTestLimiter(LimiterConfig{IPFailures: 2}, newFakeClock().Now)
	a1, _ := l.try(now, "acme/u1", "192.0.2.1")
	a2, _ := l.try(now, "acme/u2", "192.0.2.1")
	if a1 == nil || a2 == nil {
		t.Fatal("first two attempts refused")
	}
	if a, wait := l.try(now, "acme/u3", "192.0.2.1"); a != nil || wait != busyWait {
		t.Fatalf("third attempt from the IP: admitted %v, wait %v; want refused with %v", a != nil, wait, busyWait)
	}
	a1.Release(context.Background())
	if got := waitFor(l, "acme/u3", "192.0.2.1"); got != 0 {
		t.Fatalf("after a release: wait %v, want 0", got)
	}
	a2.Release(context.Background())
}

func TestLimiter_SettlingCountsOnce(t *testing.T) {
	l := newTestLimiter(LimiterConfig{}, newFakeClock().Now)
	for range 4 {
		a, _ := l.try(now, "acme/alice", "192.0.2.1")
		a.fail()
		a.fail()
		a.Release(context.Background())
		a.succeed()
	}
	if got := waitFor(l, "acme/alice", "192.0.2.1"); got != 0 {
		t.Fatalf("after 4 attempts failed twice each: wait %v, want 0", got)
	}
	// Release alone counts nothing, and leaves no entry behind.
	for range 10 {
		a, _ := l.try(now, "acme/bob", "192.0.2.2")
		a.Release(context.Background())
	}
	if len(l.inFlight) != 0 {
		t.Errorf("released attempts left entries: %v", l.inFlight)
	}
}

// A success clears the account's failures while other attempts are in flight;
// those still count when they land.
func TestLimiter_SuccessWhileOthersInFlight(t *testing.T) {
	l := newTestLimiter(LimiterConfig{}, newFakeClock().Now)
	for range 3 {
		fail(t, l, "acme/alice", "192.0.2.1")
	}
	a, _ := l.try(now, "acme/alice", "192.0.2.1")
	b, _ := l.try(now, "acme/alice", "192.0.2.2")
	if a == nil || b == nil {
		t.Fatal("two attempts with two failures left: refused")
	}
	if got := waitFor(l, "acme/alice", "192.0.2.3"); got != busyWait {
		t.Fatalf("third: wait %v, want %v", got, busyWait)
	}
	b.succeed()
	a.fail()
	for range 3 {
		fail(t, l, "acme/alice", "192.0.2.1")
	}
	if got := fail(t, l, "acme/alice", "192.0.2.1"); got != 30*time.Second {
		t.Fatalf("fifth failure after the success: lock %v, want 30s", got)
	}
}

func TestLimiter_ConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(LimiterConfig{}, clock.Now)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				account := fmt.Sprintf("acme/u%d", i%7)
				ip := fmt.Sprintf("192.0.2.%d", g)
				a, _ := l.try(now, account, ip)
				if a == nil {
					continue
				}
				switch {
				case i%50 == 0:
					a.succeed()
					clock.Advance(time.Second)
				case i%13 == 0:
					a.Release(context.Background())
				default:
					a.fail()
				}
			}
		})
	}
	wg.Wait()
	if len(l.inFlight) != 0 {
		t.Errorf("in flight after every attempt settled: %v", l.inFlight)
	}
}

func TestLimiter_UnlockClearsTheAccountNotTheIP(t *testing.T) {
	clock := newFakeClock()
	l := newTestLimiter(LimiterConfig{AccountFailures: 3, IPFailures: 5}, clock.Now)
	alice, ip := UserAccount("acme", "u1"), "192.0.2.1"
	for range 3 {
		fail(t, l, alice, ip)
	}
	if waitFor(l, alice, "192.0.2.9") == 0 {
		t.Fatal("alice is not locked after 3 failures")
	}
	l.unlock(alice)
	if w := waitFor(l, alice, "192.0.2.9"); w != 0 {
		t.Fatalf("alice after Unlock: wait %v, want admitted", w)
	}
	// Her count starts again from zero: two more failures do not lock her...
	for range 2 {
		fail(t, l, alice, "192.0.2.9")
	}
	if w := waitFor(l, alice, "192.0.2.9"); w != 0 {
		t.Fatalf("alice after Unlock and 2 failures: wait %v, want admitted", w)
	}
	// ... and the address keeps its failures: two more from it lock it.
	fail(t, l, "acme/user:u2", ip)
	fail(t, l, "acme/user:u3", ip)
	if waitFor(l, "acme/user:u4", ip) == 0 {
		t.Fatal("the address was cleared by Unlock of an account")
	}
	l.unlock("acme/user:nobody") // unknown accounts are fine
}

func TestLimiter_UnlockWithAttemptInFlight(t *testing.T) {
	l := newTestLimiter(LimiterConfig{AccountFailures: 2}, newFakeClock().Now)
	fail(t, l, "a", "")
	a, _ := l.try(now, "a", "")
	if a == nil {
		t.Fatal("second attempt refused")
	}
	l.unlock("a")
	a.fail() // counts from zero: one failure, no lock
	if w := waitFor(l, "a", ""); w != 0 {
		t.Fatalf("wait %v after Unlock and one failure in flight, want admitted", w)
	}
}

func TestLimiter_Defaults(t *testing.T) {
	l := newTestLimiter(LimiterConfig{}, nil)
	account := storage.AttemptLimit{Failures: 5, BaseLock: 30 * time.Second, MaxLock: 15 * time.Minute, Forget: time.Hour}
	ip := storage.AttemptLimit{Failures: 20, BaseLock: 30 * time.Second, MaxLock: 15 * time.Minute, Forget: time.Hour}
	if l.account != account || l.ip != ip || l.queue != 2*time.Second {
		t.Errorf("limits %+v, %+v, queue %v; want %+v, %+v, 2s", l.account, l.ip, l.queue, account, ip)
	}
}

// Three limiters on one store, as three instances are: failures spread over
// them lock the account after as many as on one; the lock is seen by all; an
// unlock on one clears it for all.
// failOn and waitOn are fail and waitFor with a live context, for a real store.
func failOn(t *testing.T, l *Limiter, account, ip string) time.Duration {
	t.Helper()
	a, wait, err := l.Admit(t.Context(), account, ip)
	if err != nil || a == nil {
		t.Fatalf("Admit(%q, %q): %v, wait %v; want admitted", account, ip, err, wait)
	}
	d, _, err := a.Fail(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func waitOn(t *testing.T, l *Limiter, account, ip string) time.Duration {
	t.Helper()
	a, wait, err := l.Admit(t.Context(), account, ip)
	if err != nil {
		t.Fatal(err)
	}
	if a != nil {
		a.Release(context.Background())
	}
	return wait
}

func TestLimiter_InstancesShareOneStore(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := newFakeClock()
	var ls []*Limiter
	for range 3 {
		ls = append(ls, NewLimiter(st, "login", LimiterConfig{}, clock.Now))
	}
	alice := UserAccount("acme", "u1")
	for i := range 4 {
		if got := failOn(t, ls[i%3], alice, fmt.Sprintf("192.0.2.%d", i)); got != 0 {
			t.Fatalf("failure %d: lock %v, want none", i+1, got)
		}
	}
	if got := failOn(t, ls[1], alice, "192.0.2.9"); got != 30*time.Second {
		t.Fatalf("fifth failure, on another instance: lock %v, want 30s", got)
	}
	for i, l := range ls {
		if got := waitOn(t, l, alice, "198.51.100.1"); got != 30*time.Second {
			t.Fatalf("instance %d: wait %v, want 30s", i, got)
		}
	}
	ls[2].unlock(alice)
	for i, l := range ls {
		if got := waitOn(t, l, alice, "198.51.100.1"); got != 0 {
			t.Fatalf("instance %d after an unlock on another: wait %v, want admitted", i, got)
		}
	}
}

// Whatever the address header held, the key that reaches the store is bounded.
func TestLimiter_LongKeysAreHashed(t *testing.T) {
	l := newTestLimiter(LimiterConfig{IPFailures: 2}, newFakeClock().Now)
	long := strings.Repeat("x", 10_000)
	fail(t, l, "", long)
	if got := fail(t, l, "", long); got != 30*time.Second {
		t.Fatalf("second failure from the long address: lock %v, want 30s", got)
	}
	for k := range l.store.(*memAttempts).m {
		if len(k) > storage.MaxAttemptKey {
			t.Fatalf("a key of %d bytes reached the store", len(k))
		}
	}
	if got := waitFor(l, "", long+"y"); got != 0 {
		t.Fatalf("another long address shares the count: wait %v", got)
	}
}

// With the attempts in flight counted in the store, a burst spread over three
// instances gets no more checks than the same attempts in sequence on one: five
// wrong passwords are checked, the rest refused with the lock; and a burst of
// right ones goes through, never more than five checked at once over all three.
func TestLimiter_InFlightInStoreHoldsAcrossInstances(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := newFakeClock()
	var ls []*Limiter
	for range 3 {
		ls = append(ls, NewLimiter(st, "login", LimiterConfig{InFlightInStore: true, Queue: time.Minute}, clock.Now))
	}
	for _, right := range []bool{false, true} {
		account := fmt.Sprintf("acme/user:%v", right)
		var mu sync.Mutex
		checking, most, checked, refused := 0, 0, 0, 0
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				l := ls[i%3]
				a, wait, err := l.Admit(t.Context(), account, fmt.Sprintf("192.0.2.%d", i))
				if err != nil {
					t.Error(err)
					return
				}
				if a == nil {
					mu.Lock()
					refused++
					mu.Unlock()
					if right || wait != 30*time.Second {
						t.Errorf("refused with wait %v (right password: %v)", wait, right)
					}
					return
				}
				defer a.Release(t.Context())
				mu.Lock()
				checking++
				checked++
				most = max(most, checking)
				mu.Unlock()
				time.Sleep(time.Millisecond) // the check
				mu.Lock()
				checking--
				mu.Unlock()
				if right {
					if err := a.Succeed(t.Context()); err != nil {
						t.Error(err)
					}
				} else if _, _, err := a.Fail(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		switch {
		case right && (checked != 30 || most > 5):
			t.Errorf("right passwords: %d checked, %d at once; want all 30, at most 5 at once", checked, most)
		case !right && (checked != 5 || refused != 25):
			t.Errorf("wrong passwords over three instances: %d checked, %d refused; want 5 and 25", checked, refused)
		}
	}
}

// countingStore counts the reads of an AttemptStore.
type countingStore struct {
	AttemptStore
	mu    sync.Mutex
	reads int
}

func (s *countingStore) GetAttempts(ctx context.Context, now time.Time, keys ...storage.AttemptKey) ([]storage.Attempts, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.AttemptStore.GetAttempts(ctx, now, keys...)
}

// With TrustClean, a success that follows a success within it reads nothing;
// a failure here is read again at once; a lock made on another instance is seen
// here once TrustClean has run out.
func TestLimiter_TrustClean(t *testing.T) {
	clock := newFakeClock()
	shared := &memAttempts{m: map[string]storage.AttemptRow{}}
	here := &countingStore{AttemptStore: shared}
	cfg := LimiterConfig{AccountFailures: 2, TrustClean: time.Second}
	l, other := NewLimiter(here, "client", cfg, clock.Now), NewLimiter(shared, "client", cfg, clock.Now)

	for range 3 {
		a, _ := l.try(now, "acme/svc", "192.0.2.1")
		a.succeed()
	}
	if here.reads != 1 {
		t.Fatalf("three successes read the store %d times, want once", here.reads)
	}
	// Locked on another instance: still open here until TrustClean runs out.
	fail(t, other, "acme/svc", "198.51.100.1")
	if got := fail(t, other, "acme/svc", "198.51.100.1"); got == 0 {
		t.Fatal("two failures on the other instance did not lock")
	}
	if got := waitFor(l, "acme/svc", "192.0.2.1"); got != 0 {
		t.Fatalf("within TrustClean: wait %v, want admitted (the documented staleness)", got)
	}
	clock.Advance(time.Second)
	if got := waitFor(l, "acme/svc", "192.0.2.1"); got == 0 {
		t.Fatal("after TrustClean: admitted while locked on another instance")
	}
	// A failure here is not trusted away: the next attempt reads again.
	clock.Advance(time.Hour)
	a, _ := l.try(now, "acme/web", "192.0.2.2")
	a.succeed()
	reads := here.reads
	fail(t, l, "acme/web", "192.0.2.2")
	waitFor(l, "acme/web", "192.0.2.2")
	if here.reads != reads+1 {
		t.Fatalf("the attempt after a failure here read the store %d times, want once", here.reads-reads)
	}
}
