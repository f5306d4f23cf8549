package web

import (
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

func TestLimiter_Rules(t *testing.T) {
	const (
		alice = "acme/alice"
		bob   = "acme/bob"
		ip1   = "192.0.2.1"
		ip2   = "192.0.2.2"
	)
	// A step either records failures, a success, or advances time, then checks Check's answer.
	type step struct {
		fail    int // Failure(account, ip) this many times
		success bool
		advance time.Duration
		account string
		ip      string
		want    time.Duration // Check(checkAccount, checkIP) after the step
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
			{fail: 12, account: alice, ip: ip1, want: 15 * time.Minute},
			{fail: 1000, account: alice, ip: ip1, want: 15 * time.Minute}, // no overflow
		}},
		{"custom thresholds and durations", LimiterConfig{AccountFailures: 2, BaseLock: time.Second, MaxLock: 3 * time.Second}, []step{
			{fail: 1, account: alice, ip: ip1, want: 0},
			{fail: 1, account: alice, ip: ip1, want: time.Second},
			{fail: 1, account: alice, ip: ip1, want: 2 * time.Second},
			{fail: 1, account: alice, ip: ip1, want: 3 * time.Second},
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
			{fail: 1, account: "acme/u6", ip: ip1, want: 60 * time.Second},
		}},
		{"Check returns the longer of the account and IP waits", LimiterConfig{IPFailures: 6}, []step{
			{fail: 6, account: alice, ip: ip1, want: 60 * time.Second}, // account: 2nd lock; IP: 1st
			{account: bob, ip: ip1, want: 30 * time.Second},
			{account: alice, ip: ip2, want: 60 * time.Second},
		}},
		{"Success clears the account but not the IP", LimiterConfig{IPFailures: 8}, []step{
			{fail: 4, account: alice, ip: ip1, want: 0},
			{success: true, account: alice, ip: ip1, want: 0},
			{fail: 3, account: alice, ip: ip1, want: 0},                      // account 3, IP 7
			{fail: 1, account: alice, ip: ip1, want: 30 * time.Second},       // account 4, IP 8: the IP locks
			{success: true, account: alice, ip: ip1, want: 30 * time.Second}, // still locked by the IP
			{account: bob, ip: ip1, want: 30 * time.Second},
			{account: alice, ip: ip2, want: 0}, // the account itself is clear
		}},
		{"Success clears a locked account", LimiterConfig{}, []step{
			{fail: 5, account: alice, ip: ip1, want: 30 * time.Second},
			{success: true, account: alice, ip: ip2, want: 0, checkIP: ip2},
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
			{fail: 9, account: alice, ip: ip1, want: 10 * time.Minute},
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
					l.Failure(s.account, s.ip)
				}
				if s.success {
					l.Success(s.account, s.ip)
				}
				a, ip := s.account, s.ip
				if s.checkA != "" {
					a = s.checkA
				}
				if s.checkIP != "" {
					ip = s.checkIP
				}
				if got := l.Check(a, ip); got != s.want {
					t.Fatalf("step %d: Check(%q, %q) = %v, want %v", i, a, ip, got, s.want)
				}
			}
		})
	}
}

func TestLimiter_Defaults(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, nil)
	want := LimiterConfig{AccountFailures: 5, IPFailures: 20, BaseLock: 30 * time.Second, MaxLock: 15 * time.Minute, Forget: time.Hour}
	if l.cfg != want {
		t.Errorf("cfg = %+v, want %+v", l.cfg, want)
	}
}

func TestLimiter_SweepDropsForgottenEntries(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{}, clock.Now)
	for i := range 100 {
		l.Failure(fmt.Sprintf("acme/u%d", i), fmt.Sprintf("192.0.2.%d", i))
	}
	clock.Advance(time.Hour)
	l.Failure("acme/new", "198.51.100.1") // more than a minute since the last sweep
	if len(l.accounts) != 1 || len(l.ips) != 1 {
		t.Errorf("after sweep: %d accounts, %d IPs; want 1 and 1", len(l.accounts), len(l.ips))
	}
}

func TestLimiter_TablesAreCapped(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{}, clock.Now)
	l.maxEntries = 50
	for i := range 1000 {
		clock.Advance(time.Millisecond)
		l.Failure(fmt.Sprintf("acme/u%d", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if len(l.accounts) > 50 || len(l.ips) > 50 {
		t.Errorf("tables grew past the cap: %d accounts, %d IPs", len(l.accounts), len(l.ips))
	}
	// The newest key is always recorded.
	if l.accounts["acme/u999"] == nil || l.ips["10.0.3.231"] == nil {
		t.Error("latest failure not recorded")
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
				l.Check(account, ip)
				l.Failure(account, ip)
				if i%50 == 0 {
					l.Success(account, ip)
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	// 16 goroutines × 500 failures: every IP is far past 20 and locked.
	if got := l.Check("acme/other", "192.0.2.3"); got <= 0 || got > 15*time.Minute {
		t.Errorf("Check after concurrent failures = %v, want a lock of at most 15m", got)
	}
}
