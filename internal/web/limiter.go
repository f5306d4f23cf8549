package web

import (
	"net/netip"
	"sync"
	"time"
)

// LimiterConfig tunes login throttling. Zero fields take the defaults.
type LimiterConfig struct {
	AccountFailures int           // failures before an account is locked (default 5)
	IPFailures      int           // failures before an IP is locked (default 20)
	BaseLock        time.Duration // first lock (default 30s); doubles with each further failure
	MaxLock         time.Duration // cap (default 15m)
	Forget          time.Duration // failures older than this are forgotten (default 1h)
}

const (
	// maxLimiterEntries bounds each of the account and IP tables; at about
	// 100 bytes an entry that is ~10 MB each in the worst case.
	maxLimiterEntries = 100_000
	// sweepEvery is how often (by the injected clock) Failure drops forgotten entries.
	sweepEvery = time.Minute
	// evictSample is how many entries are looked at to pick one to evict when a
	// table is full: an approximate "least recently failed", without an O(n) scan
	// on every failure while under attack.
	evictSample = 32
)

// Limiter throttles login attempts per account and per client IP, in memory.
// A failure counts against both; once a key's failures reach its threshold it is
// locked until lastFailure + BaseLock*2^(failures-threshold), capped at MaxLock.
// A key's failures are forgotten together once its last failure is older than
// Forget. Safe for concurrent use.
//
// The limiter is per process: behind several instances each enforces its own
// limits, so the effective limit is multiplied by the instance count.
type Limiter struct {
	cfg LimiterConfig
	now func() time.Time

	mu         sync.Mutex
	accounts   map[string]*failures
	ips        map[string]*failures
	lastSweep  time.Time
	maxEntries int
}

type failures struct {
	count int
	last  time.Time
}

// NewLimiter returns a Limiter reading time from now (time.Now if nil).
// Zero fields of c take the defaults. Forget is raised to MaxLock if shorter,
// so forgetting never cuts a lock short.
func NewLimiter(c LimiterConfig, now func() time.Time) *Limiter {
	if c.AccountFailures <= 0 {
		c.AccountFailures = 5
	}
	if c.IPFailures <= 0 {
		c.IPFailures = 20
	}
	if c.BaseLock <= 0 {
		c.BaseLock = 30 * time.Second
	}
	if c.MaxLock <= 0 {
		c.MaxLock = 15 * time.Minute
	}
	if c.MaxLock < c.BaseLock {
		c.MaxLock = c.BaseLock
	}
	if c.Forget <= 0 {
		c.Forget = time.Hour
	}
	if c.Forget < c.MaxLock {
		c.Forget = c.MaxLock
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		cfg:        c,
		now:        now,
		accounts:   make(map[string]*failures),
		ips:        make(map[string]*failures),
		lastSweep:  now(),
		maxEntries: maxLimiterEntries,
	}
}

// Check says how long the caller must wait before another attempt (0: go ahead).
// It is the longer of the account's and the IP's waits. An empty account or ip
// is not limited.
func (l *Limiter) Check(account, ip string) time.Duration {
	ip = ipKey(ip)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.wait(l.accounts, account, l.cfg.AccountFailures, now),
		l.wait(l.ips, ip, l.cfg.IPFailures, now))
}

// Failure records a failed attempt against both the account and the IP.
func (l *Limiter) Failure(account, ip string) {
	ip = ipKey(ip)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	l.record(l.accounts, account, now)
	l.record(l.ips, ip, now)
}

// Success clears the account's failures. The IP's are kept: one good password
// must not reset the count of an address that is guessing at many accounts.
func (l *Limiter) Success(account, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.accounts, account)
}

func (l *Limiter) wait(table map[string]*failures, key string, threshold int, now time.Time) time.Duration {
	f := table[key]
	if key == "" || f == nil || f.count < threshold || l.forgotten(f, now) {
		return 0
	}
	return max(f.last.Add(l.lockFor(f.count-threshold)).Sub(now), 0)
}

// lockFor is BaseLock*2^extra capped at MaxLock, without overflowing.
func (l *Limiter) lockFor(extra int) time.Duration {
	d := l.cfg.BaseLock
	for ; extra > 0 && d < l.cfg.MaxLock; extra-- {
		d *= 2
	}
	return min(d, l.cfg.MaxLock)
}

func (l *Limiter) forgotten(f *failures, now time.Time) bool {
	return now.Sub(f.last) >= l.cfg.Forget
}

func (l *Limiter) record(table map[string]*failures, key string, now time.Time) {
	if key == "" {
		return
	}
	f := table[key]
	if f == nil {
		// A full table is not swept here (Failure sweeps once a minute):
		// a full O(n) sweep on every new key would be an easy CPU amplifier.
		if len(table) >= l.maxEntries {
			evictOne(table)
		}
		f = &failures{}
		table[key] = f
	} else if l.forgotten(f, now) {
		f.count = 0
	}
	f.count++
	f.last = now
}

// sweep drops every entry whose failures are forgotten.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for _, table := range []map[string]*failures{l.accounts, l.ips} {
		for k, f := range table {
			if l.forgotten(f, now) {
				delete(table, k)
			}
		}
	}
}

// evictOne drops the entry with the oldest last failure among a sample; Go's
// randomised map iteration makes the sample start at a random place.
func evictOne(table map[string]*failures) {
	var oldest string
	var oldestAt time.Time
	n := 0
	for k, f := range table {
		if n == 0 || f.last.Before(oldestAt) {
			oldest, oldestAt = k, f.last
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(table, oldest)
}

// ipKey groups IPv6 clients by /64, the block one host or subscriber usually
// controls; otherwise an attacker could walk a /64 and never hit the IP limit.
// IPv4 (and IPv4-mapped IPv6) addresses count one by one. Anything that does
// not parse as an address is used as given.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
