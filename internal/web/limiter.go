package web

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// LimiterConfig tunes a Limiter. Zero fields take the defaults, which are the
// login limits.
type LimiterConfig struct {
	AccountFailures int           // failures before an account is locked (default 5)
	IPFailures      int           // failures before an IP is locked (default 20)
	BaseLock        time.Duration // first lock (default 30s); doubles with each further failure
	MaxLock         time.Duration // cap (default 15m)
	// AccountMaxLock caps an account's lock (default MaxLock). Anyone who knows
	// an account's name can lock it, so where the owner must not be shut out for
	// long (a client whose ID is public) its lock is kept short.
	AccountMaxLock time.Duration
	Forget         time.Duration // failures older than this are forgotten (default 1h)
	// Queue is how long an attempt waits for one of the attempts in flight to land
	// when they hold every failure its keys have left (default 2s); past it, or
	// past five Queues in all, it is refused.
	Queue time.Duration
}

const (
	// maxLimiterEntries bounds each of the account and IP tables; at about
	// 100 bytes an entry that is ~10 MB each in the worst case.
	maxLimiterEntries = 100_000
	// sweepEvery is how often (by the injected clock) Admit drops forgotten entries.
	sweepEvery = time.Minute
	// evictSample is how many entries are looked at to pick one to evict when a
	// table is full: an approximate "least recently failed", without an O(n) scan
	// on every failure while under attack.
	evictSample = 32
	// busyWait is the wait given to an attempt refused only because others were
	// still in flight after it queued for them.
	busyWait = time.Second
	// maxQueued bounds an attempt's whole wait in the queue, in Queues.
	maxQueued = 5
)

// Limiter throttles attempts (logins, client authentications) per account and
// per client IP, in memory. A failure counts against both; once a key's failures
// reach its threshold it is locked until lastFailure + BaseLock*2^(failures-threshold),
// capped at MaxLock. A key's failures are forgotten together once its last
// failure is older than Forget. Safe for concurrent use.
//
// Admission is decided before the expensive check (a password hash, a client
// secret) and counts the attempts still in flight as failures that have not
// landed yet: a key n failures short of its lock admits at most n attempts at
// once, and a key whose lock has run out admits one at a time; the others queue
// until those land. So a burst of parallel attempts gets no more checks than the
// same attempts in sequence: wrong ones lock the key and the queue is refused,
// right ones go through a few at a time.
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
	// landed is closed, and cleared, when an attempt settles, waking the attempts
	// queued behind those in flight; nil while none is queued.
	landed chan struct{}
}

type failures struct {
	count    int
	last     time.Time
	inFlight int // admitted attempts not yet settled; while > 0 the entry stays in its table
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
	if c.AccountMaxLock <= 0 || c.AccountMaxLock > c.MaxLock {
		c.AccountMaxLock = c.MaxLock
	}
	if c.AccountMaxLock < c.BaseLock {
		c.AccountMaxLock = c.BaseLock
	}
	if c.Forget <= 0 {
		c.Forget = time.Hour
	}
	if c.Queue <= 0 {
		c.Queue = 2 * time.Second
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

// Attempt is an admitted attempt, in flight until it is settled by Fail,
// Succeed or Release; only the first of these counts.
type Attempt struct {
	l             *Limiter
	account, ip   string
	accountF, ipF *failures // nil for an empty key
	settled       bool
}

// Admit decides whether an attempt on account from ip may go ahead. It returns
// the admitted Attempt, or nil and how long the caller must wait: the longer of
// the account's and the IP's waits. An attempt that only has to wait for others
// in flight queues for them (up to Queue between landings, or until ctx is done)
// and is decided again as they land. An empty account or ip is not limited.
// The caller must settle an admitted Attempt (defer Release covers every path).
func (l *Limiter) Admit(ctx context.Context, account, ip string) (*Attempt, time.Duration) {
	ip = ipKey(ip)
	// The queue moves as attempts in flight land: each landing gives the waiters
	// another Queue, so a slow machine does not refuse honest attempts that are
	// merely behind others; the whole wait is still bounded by maxQueued.
	var idle *time.Timer
	var overall <-chan time.Time
	for {
		a, wait, landed := l.admit(account, ip)
		if landed == nil {
			return a, wait
		}
		if idle == nil {
			idle = time.NewTimer(l.cfg.Queue)
			defer idle.Stop()
			all := time.NewTimer(maxQueued * l.cfg.Queue)
			defer all.Stop()
			overall = all.C
		}
		select {
		case <-landed:
			idle.Reset(l.cfg.Queue)
		case <-ctx.Done():
			return nil, busyWait
		case <-idle.C:
			return nil, busyWait
		case <-overall:
			return nil, busyWait
		}
	}
}

// admit is one decision of Admit: an attempt, a lock's wait, or (when only
// attempts in flight stand in the way) a channel closed when one of them lands.
func (l *Limiter) admit(account, ip string) (*Attempt, time.Duration, <-chan struct{}) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	accountWait := l.wait(l.accounts, account, l.cfg.AccountFailures, l.cfg.AccountMaxLock, now)
	ipWait := l.wait(l.ips, ip, l.cfg.IPFailures, l.cfg.MaxLock, now)
	if wait := max(accountWait, ipWait); wait > 0 {
		return nil, wait, nil
	}
	if accountWait == busy || ipWait == busy {
		if l.landed == nil {
			l.landed = make(chan struct{})
		}
		return nil, 0, l.landed
	}
	return &Attempt{l: l, account: account, ip: ip,
		accountF: l.enter(l.accounts, account, now), ipF: l.enter(l.ips, ip, now)}, 0, nil
}

// wake lets the queued attempts decide again. l.mu must be held.
func (l *Limiter) wake() {
	if l.landed != nil {
		close(l.landed)
		l.landed = nil
	}
}

// Fail records the attempt as failed against both the account and the IP, and
// returns how long they are now locked (0: not locked).
func (a *Attempt) Fail() time.Duration {
	l := a.l
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.settled {
		return 0
	}
	a.settled = true
	defer l.wake()
	for _, f := range []*failures{a.accountF, a.ipF} {
		if f == nil {
			continue
		}
		f.inFlight--
		if l.forgotten(f, now) {
			f.count = 0
		}
		f.count++
		f.last = now
	}
	return max(l.lock(a.accountF, l.cfg.AccountFailures, l.cfg.AccountMaxLock, now),
		l.lock(a.ipF, l.cfg.IPFailures, l.cfg.MaxLock, now))
}

// Succeed records the attempt as successful: it clears the account's failures.
// The IP's are kept: one good password must not reset the count of an address
// that is guessing at many accounts.
func (a *Attempt) Succeed() {
	a.settle(true)
}

// Release settles the attempt without counting it either way, as when the
// check could not be made. After Fail or Succeed it does nothing.
func (a *Attempt) Release() {
	a.settle(false)
}

func (a *Attempt) settle(success bool) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.settled {
		return
	}
	a.settled = true
	defer l.wake()
	if f := a.accountF; f != nil {
		f.inFlight--
		if success {
			f.count = 0
		}
		l.dropIdle(l.accounts, a.account, f)
	}
	if f := a.ipF; f != nil {
		f.inFlight--
		l.dropIdle(l.ips, a.ip, f)
	}
}

// Unlock clears the account's failures, and so its lock, as an administrator
// unlocking a user does. Attempts in flight still settle; a failure among them
// counts from zero. The IPs the failures came from keep theirs: an address
// guessing at many accounts stays throttled. Only this process's limiter is
// cleared (see Limiter).
func (l *Limiter) Unlock(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.accounts[account]
	if f == nil {
		return
	}
	f.count = 0
	l.dropIdle(l.accounts, account, f)
	l.wake()
}

// UserAccount is the limiter's account key of a user: one count for their
// username and their email, which an administrator can clear with Unlock.
func UserAccount(realm, userID string) string { return realm + "/user:" + userID }

// busy is what wait answers for a key whose failures left are all held by
// attempts in flight: not a duration, a reason to queue.
const busy time.Duration = -1

// wait is how long an attempt on key must wait: the rest of its lock, or busy
// when the failures it has left are all taken by attempts in flight.
func (l *Limiter) wait(table map[string]*failures, key string, threshold int, maxLock time.Duration, now time.Time) time.Duration {
	f := table[key]
	if key == "" || f == nil {
		return 0
	}
	if d := l.lock(f, threshold, maxLock, now); d > 0 {
		return d
	}
	count := f.count
	if l.forgotten(f, now) {
		count = 0
	}
	// Failures left before the lock, or one at a time once a lock has run out.
	if f.inFlight >= max(threshold-count, 1) {
		return busy
	}
	return 0
}

// lock is what is left of f's lock (0: none).
func (l *Limiter) lock(f *failures, threshold int, maxLock time.Duration, now time.Time) time.Duration {
	if f == nil || f.count < threshold || l.forgotten(f, now) {
		return 0
	}
	return max(f.last.Add(l.lockFor(f.count-threshold, maxLock)).Sub(now), 0)
}

// lockFor is BaseLock*2^extra capped at maxLock, without overflowing.
func (l *Limiter) lockFor(extra int, maxLock time.Duration) time.Duration {
	d := l.cfg.BaseLock
	for ; extra > 0 && d < maxLock; extra-- {
		d *= 2
	}
	return min(d, maxLock)
}

func (l *Limiter) forgotten(f *failures, now time.Time) bool {
	return now.Sub(f.last) >= l.cfg.Forget
}

// enter counts an attempt in flight on key, making its entry if needed.
func (l *Limiter) enter(table map[string]*failures, key string, now time.Time) *failures {
	if key == "" {
		return nil
	}
	f := table[key]
	if f == nil {
		// A full table is not swept here (Admit sweeps once a minute):
		// a full O(n) sweep on every new key would be an easy CPU amplifier.
		if len(table) >= l.maxEntries {
			evictOne(table)
		}
		f = &failures{}
		table[key] = f
	} else if f.inFlight == 0 && l.forgotten(f, now) {
		f.count = 0
	}
	f.inFlight++
	return f
}

// dropIdle removes key's entry when it holds neither failures nor attempts.
func (l *Limiter) dropIdle(table map[string]*failures, key string, f *failures) {
	if f.count == 0 && f.inFlight == 0 && table[key] == f {
		delete(table, key)
	}
}

// sweep drops every entry whose failures are forgotten and that has nothing in flight.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for _, table := range []map[string]*failures{l.accounts, l.ips} {
		for k, f := range table {
			if f.inFlight == 0 && l.forgotten(f, now) {
				delete(table, k)
			}
		}
	}
}

// evictOne drops the entry with the oldest last failure among a sample; Go's
// randomised map iteration makes the sample start at a random place. Entries
// with attempts in flight are kept, so a table can outgrow its cap by at most
// the attempts in flight.
func evictOne(table map[string]*failures) {
	var oldest string
	var oldestAt time.Time
	n, found := 0, false
	for k, f := range table {
		if f.inFlight == 0 && (!found || f.last.Before(oldestAt)) {
			oldest, oldestAt, found = k, f.last, true
		}
		if n++; n == evictSample {
			break
		}
	}
	if found {
		delete(table, oldest)
	}
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
