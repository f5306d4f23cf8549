package web

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

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
	a, wait := l.Admit(now, account, ip)
	if a == nil {
		t.Fatalf("Admit(%q, %q) refused (wait %v), want admitted", account, ip, wait)
	}
	return a.Fail()
}

// waitFor is how long an attempt must wait now (0: it would be admitted).
func waitFor(l *Limiter, account, ip string) time.Duration {
	a, wait := l.Admit(now, account, ip)
	if a != nil {
		a.Release()
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
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			l := NewLimiter(tc.cfg, clock.Now)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				for range s.fail {
					fail(t, l, s.account, s.ip)
				}
				if s.success {
					a, wait := l.Admit(now, s.account, s.ip)
					if a == nil {
						t.Fatalf("step %d: success refused (wait %v)", i, wait)
					}
					a.Succeed()
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

func TestLimiter_FailReturnsTheLock(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, newFakeClock().Now)
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
	l := NewLimiter(LimiterConfig{Queue: time.Minute}, clock.Now)
	admitted := make(chan *Attempt, 100)
	refused := make(chan time.Duration, 100)
	for range 100 {
		go func() {
			a, wait := l.Admit(context.Background(), "acme/alice", "192.0.2.1")
			if a == nil {
				refused <- wait
				return
			}
			admitted <- a
		}()
	}
	for range 5 {
		(<-admitted).Fail()
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
	a, _ := l.Admit(now, "acme/alice", "192.0.2.1")
	if a == nil {
		t.Fatal("not admitted after the lock ran out")
	}
	if got := waitFor(l, "acme/alice", "192.0.2.2"); got != busyWait {
		t.Errorf("second attempt after the lock = %v, want %v", got, busyWait)
	}
	a.Fail()
	if got := waitFor(l, "acme/alice", "192.0.2.2"); got != time.Minute {
		t.Errorf("wait after a further failure = %v, want 1m", got)
	}
}

// A burst of attempts that succeed is never refused: past the failures a key
// has left, they queue behind those in flight and go through as those land.
func TestLimiter_HonestBurstGoesThrough(t *testing.T) {
	l := NewLimiter(LimiterConfig{AccountFailures: 2, IPFailures: 3, Queue: time.Minute}, newFakeClock().Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	inFlight, most := 0, 0
	for range 100 {
		wg.Go(func() {
			a, wait := l.Admit(context.Background(), "acme/svc", "192.0.2.1")
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
			a.Succeed()
		})
	}
	wg.Wait()
	if most > 2 {
		t.Errorf("%d attempts were checked at once; want at most the account's 2", most)
	}
}

// A queued attempt gives up when its context is done or its queue time is over.
func TestLimiter_QueueIsBounded(t *testing.T) {
	l := NewLimiter(LimiterConfig{AccountFailures: 1, Queue: 10 * time.Millisecond}, newFakeClock().Now)
	held, _ := l.Admit(now, "acme/alice", "192.0.2.1")
	if held == nil {
		t.Fatal("first attempt refused")
	}
	if a, wait := l.Admit(context.Background(), "acme/alice", "192.0.2.2"); a != nil || wait != busyWait {
		t.Fatalf("queued past its time: admitted %v, wait %v; want refused with %v", a != nil, wait, busyWait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	l.cfg.Queue = time.Minute
	if a, wait := l.Admit(ctx, "acme/alice", "192.0.2.2"); a != nil || wait != busyWait {
		t.Fatalf("queued past its context: admitted %v, wait %v; want refused with %v", a != nil, wait, busyWait)
	}
	held.Release()
	if got := waitFor(l, "acme/alice", "192.0.2.2"); got != 0 {
		t.Fatalf("after the release: wait %v, want 0", got)
	}
}

func TestLimiter_InFlightPerIP(t *testing.T) {
	l := NewLimiter(LimiterConfig{IPFailures: 2}, newFakeClock().Now)
	a1, _ := l.Admit(now, "acme/u1", "192.0.2.1")
	a2, _ := l.Admit(now, "acme/u2", "192.0.2.1")
	if a1 == nil || a2 == nil {
		t.Fatal("first two attempts refused")
	}
	if a, wait := l.Admit(now, "acme/u3", "192.0.2.1"); a != nil || wait != busyWait {
		t.Fatalf("third attempt from the IP: admitted %v, wait %v; want refused with %v", a != nil, wait, busyWait)
	}
	a1.Release()
	if got := waitFor(l, "acme/u3", "192.0.2.1"); got != 0 {
		t.Fatalf("after a release: wait %v, want 0", got)
	}
	a2.Release()
}

func TestLimiter_SettlingCountsOnce(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, newFakeClock().Now)
	for range 4 {
		a, _ := l.Admit(now, "acme/alice", "192.0.2.1")
		a.Fail()
		a.Fail()
		a.Release()
		a.Succeed()
	}
	if got := waitFor(l, "acme/alice", "192.0.2.1"); got != 0 {
		t.Fatalf("after 4 attempts failed twice each: wait %v, want 0", got)
	}
	// Release alone counts nothing, and leaves no entry behind.
	for range 10 {
		a, _ := l.Admit(now, "acme/bob", "192.0.2.2")
		a.Release()
	}
	if l.accounts["acme/bob"] != nil || l.ips["192.0.2.2"] != nil {
		t.Error("released attempts left entries")
	}
}

// A success clears the account's failures while other attempts are in flight;
// those still count when they land.
func TestLimiter_SuccessWhileOthersInFlight(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, newFakeClock().Now)
	for range 3 {
		fail(t, l, "acme/alice", "192.0.2.1")
	}
	a, _ := l.Admit(now, "acme/alice", "192.0.2.1")
	b, _ := l.Admit(now, "acme/alice", "192.0.2.2")
	if a == nil || b == nil {
		t.Fatal("two attempts with two failures left: refused")
	}
	if got := waitFor(l, "acme/alice", "192.0.2.3"); got != busyWait {
		t.Fatalf("third: wait %v, want %v", got, busyWait)
	}
	b.Succeed()
	a.Fail()
	for range 3 {
		fail(t, l, "acme/alice", "192.0.2.1")
	}
	if got := fail(t, l, "acme/alice", "192.0.2.1"); got != 30*time.Second {
		t.Fatalf("fifth failure after the success: lock %v, want 30s", got)
	}
}

func TestLimiter_Defaults(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, nil)
	want := LimiterConfig{AccountFailures: 5, IPFailures: 20, BaseLock: 30 * time.Second, MaxLock: 15 * time.Minute,
		AccountMaxLock: 15 * time.Minute, Forget: time.Hour, Queue: 2 * time.Second}
	if l.cfg != want {
		t.Errorf("cfg = %+v, want %+v", l.cfg, want)
	}
}

func TestLimiter_SweepDropsForgottenEntries(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{}, clock.Now)
	for i := range 100 {
		fail(t, l, fmt.Sprintf("acme/u%d", i), fmt.Sprintf("192.0.2.%d", i))
	}
	inFlight, _ := l.Admit(now, "acme/busy", "198.51.100.2")
	clock.Advance(time.Hour)
	fail(t, l, "acme/new", "198.51.100.1") // more than a minute since the last sweep
	if len(l.accounts) != 2 || len(l.ips) != 2 {
		t.Errorf("after sweep: %d accounts, %d IPs; want 2 and 2 (the new and the in-flight)", len(l.accounts), len(l.ips))
	}
	inFlight.Release()
}

func TestLimiter_TablesAreCapped(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{}, clock.Now)
	l.maxEntries = 50
	for i := range 1000 {
		clock.Advance(time.Millisecond)
		fail(t, l, fmt.Sprintf("acme/u%d", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if len(l.accounts) > 50 || len(l.ips) > 50 {
		t.Errorf("tables grew past the cap: %d accounts, %d IPs", len(l.accounts), len(l.ips))
	}
	// The newest key is always recorded.
	if l.accounts["acme/u999"] == nil || l.ips["10.0.3.231"] == nil {
		t.Error("latest failure not recorded")
	}
}

func TestLimiter_EvictionSparesAttemptsInFlight(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, newFakeClock().Now)
	l.maxEntries = 2
	var held []*Attempt
	for i := range 3 {
		a, _ := l.Admit(now, fmt.Sprintf("acme/u%d", i), fmt.Sprintf("192.0.2.%d", i))
		held = append(held, a)
	}
	if len(l.accounts) != 3 {
		t.Fatalf("%d accounts, want all 3 in flight kept", len(l.accounts))
	}
	for _, a := range held {
		a.Fail()
	}
	fail(t, l, "acme/u3", "192.0.2.3")
	if len(l.accounts) != 3 {
		t.Fatalf("%d accounts, want 3 (one evicted for the new one)", len(l.accounts))
	}
}

func TestLimiter_ConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{}, clock.Now)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				account := fmt.Sprintf("acme/u%d", i%7)
				ip := fmt.Sprintf("192.0.2.%d", g)
				a, _ := l.Admit(now, account, ip)
				if a == nil {
					continue
				}
				switch {
				case i%50 == 0:
					a.Succeed()
					clock.Advance(time.Second)
				case i%13 == 0:
					a.Release()
				default:
					a.Fail()
				}
			}
		})
	}
	wg.Wait()
	for _, table := range []map[string]*failures{l.accounts, l.ips} {
		for k, f := range table {
			if f.inFlight != 0 {
				t.Errorf("%s: %d in flight after every attempt settled", k, f.inFlight)
			}
		}
	}
}

func TestLimiter_UnlockClearsTheAccountNotTheIP(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{AccountFailures: 3, IPFailures: 5}, clock.Now)
	alice, ip := UserAccount("acme", "u1"), "192.0.2.1"
	for range 3 {
		fail(t, l, alice, ip)
	}
	if waitFor(l, alice, "192.0.2.9") == 0 {
		t.Fatal("alice is not locked after 3 failures")
	}
	l.Unlock(alice)
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
	l.Unlock("acme/user:nobody") // unknown accounts are fine
}

func TestLimiter_UnlockWithAttemptInFlight(t *testing.T) {
	l := NewLimiter(LimiterConfig{AccountFailures: 2}, newFakeClock().Now)
	fail(t, l, "a", "")
	a, _ := l.Admit(now, "a", "")
	if a == nil {
		t.Fatal("second attempt refused")
	}
	l.Unlock("a")
	a.Fail() // counts from zero: one failure, no lock
	if w := waitFor(l, "a", ""); w != 0 {
		t.Fatalf("wait %v after Unlock and one failure in flight, want admitted", w)
	}
}
