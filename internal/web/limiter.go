package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"sync"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// AttemptStore keeps the failure counts, shared by every instance on the store.
type AttemptStore interface {
	GetAttempts(ctx context.Context, now time.Time, keys ...storage.AttemptKey) ([]storage.Attempts, error)
	AdmitAttempt(ctx context.Context, now time.Time, hold time.Duration, keys ...storage.AttemptKey) (admitted bool, lock time.Duration, err error)
	EndAttempt(ctx context.Context, now time.Time, clear bool, keys ...storage.AttemptKey) error
	FailAttempt(ctx context.Context, now time.Time, keys ...storage.AttemptKey) (counted bool, lock time.Duration, err error)
	ClearAttempts(ctx context.Context, key string) error
}

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
	// InFlightInStore counts the attempts in flight in the store, so that
	// admission holds across instances (a burst spread over them gets no more
	// checks than on one), at a store write on every attempt. Otherwise they are
	// counted in this process: a success costs one store read and no write, and a
	// burst spread over N instances may have N times the checks in flight, though
	// no more of them answered (see Limiter).
	InFlightInStore bool
	// TrustClean is how long, counting in process, an attempt may go by having
	// read that a key had no failures, without reading it again (0: always read).
	// A key that another instance locks within it stays open here until it ends
	// (failures here are still counted, and refused, by the store). It takes the
	// store read off the path of a success that follows a success.
	TrustClean time.Duration
}

const (
	// busyWait is the wait given to an attempt refused only because others were
	// still in flight after it queued for them.
	busyWait = time.Second
	// maxQueued bounds an attempt's whole wait in the queue, in Queues.
	maxQueued = 5
	// hold is how long a place in flight kept in the store outlives an attempt
	// that never settled (its instance stopped): far longer than any check.
	hold = 10 * time.Second
	// poll is how often an attempt queued behind attempts in flight in the store
	// asks again: those may be on other instances, whose landings it cannot hear.
	poll = 25 * time.Millisecond
	// maxClean bounds the keys remembered as clean (TrustClean); at about 100
	// bytes a key, about a megabyte.
	maxClean = 10_000
)

// Limiter throttles attempts (logins, client authentications) per account and
// per client IP. A failure counts against both; once a key's failures reach its
// threshold it is locked until lastFailure + BaseLock*2^(failures-threshold),
// capped at MaxLock. A key's failures are forgotten together once its last
// failure is older than Forget.
//
// The failures are kept in the store (storage.AttemptStore), so every instance
// on it counts the same: N instances together allow what one allows. The store
// decides each failure atomically and counts none against a locked key, so
// failures spread over instances, even at once, lock a key after as many as on
// one instance, and are answered as they would be one after another. An attempt
// that succeeds costs one store read and no write (unless it clears failures).
//
// Admission is decided before the expensive check (a password hash, a client
// secret) and counts the attempts still in flight as failures that have not
// landed yet: a key n failures short of its lock admits at most n attempts at
// once, and a key whose lock has run out admits one at a time; the others queue
// until those land. So a burst of parallel attempts gets no more checks than the
// same attempts in sequence: wrong ones lock the key and the queue is refused,
// right ones go through a few at a time. With InFlightInStore the attempts in
// flight are counted in the store too (the login page: a password hash is worth
// a store write), so this holds across instances. Otherwise they are counted per
// process (the token endpoint: a store write per attempt would put one on every
// token request): a burst spread over N instances may have up to N times as many
// checks in flight, but no more of them are answered than in sequence, as the
// store refuses to count a failure once the key is locked and the attempt is then
// refused.
type Limiter struct {
	store   AttemptStore
	prefix  string // keeps this limiter's keys apart from another's in the store
	account storage.AttemptLimit
	ip      storage.AttemptLimit
	queue   time.Duration
	inStore bool // attempts in flight are counted in the store (InFlightInStore)
	now     func() time.Time

	mu sync.Mutex
	// inFlight counts, unless inStore, the attempts in flight here by key; it
	// holds only those keys, so it is bounded by them.
	inFlight map[string]int
	// landed is closed, and cleared, when an attempt settles, waking the attempts
	// queued behind those in flight; nil while none is queued.
	landed chan struct{}
	// landings counts the attempts settled, so that one deciding on what it read
	// from the store can tell whether another landed meanwhile.
	landings uint64
	// clean holds, with TrustClean, the keys read to have no failures, and until
	// when that may be trusted.
	clean      map[string]time.Time
	trustClean time.Duration
}

// NewLimiter returns a Limiter keeping its counts in store under keys that
// start with prefix (one per limiter: "login", "client"), reading time from now
// (time.Now if nil). Zero fields of c take the defaults. Forget is raised to
// MaxLock if shorter, so forgetting never cuts a lock short.
func NewLimiter(store AttemptStore, prefix string, c LimiterConfig, now func() time.Time) *Limiter {
	c = c.withDefaults()
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		store:      store,
		prefix:     prefix,
		account:    storage.AttemptLimit{Failures: c.AccountFailures, BaseLock: c.BaseLock, MaxLock: c.AccountMaxLock, Forget: c.Forget},
		ip:         storage.AttemptLimit{Failures: c.IPFailures, BaseLock: c.BaseLock, MaxLock: c.MaxLock, Forget: c.Forget},
		queue:      c.Queue,
		inStore:    c.InFlightInStore,
		clean:      make(map[string]time.Time),
		trustClean: c.TrustClean,
		now:        now,
		inFlight:   make(map[string]int),
	}
}

func (c LimiterConfig) withDefaults() LimiterConfig {
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
	return c
}

// Attempt is an admitted attempt, in flight until it is settled by Fail,
// Succeed or Release; only the first of these counts.
type Attempt struct {
	l    *Limiter
	keys []storage.AttemptKey // the account's first, if it has one
	// accountFailed says the account had failures when admitted, which a success clears.
	accountFailed bool
	hasAccount    bool

	mu      sync.Mutex
	settled bool
}

// Admit decides whether an attempt on account from ip may go ahead. It returns
// the admitted Attempt, or nil and how long the caller must wait: the longer of
// the account's and the IP's waits. An attempt that only has to wait for others
// in flight queues for them (up to Queue between landings, or until ctx is done)
// and is decided again as they land. An empty account or ip is not limited. The
// error is the store's, when it cannot be read. The caller must settle an
// admitted Attempt (defer Release covers every path).
func (l *Limiter) Admit(ctx context.Context, account, ip string) (*Attempt, time.Duration, error) {
	keys := l.keys(account, ip)
	// The queue moves as attempts in flight land: each landing gives the waiters
	// another Queue, so a slow machine does not refuse honest attempts that are
	// merely behind others; the whole wait is still bounded by maxQueued.
	var idle *time.Timer
	var overall, polled <-chan time.Time
	for {
		a, wait, landed, err := l.admit(ctx, keys, account != "")
		if landed == nil {
			return a, wait, err
		}
		if idle == nil {
			idle = time.NewTimer(l.queue)
			defer idle.Stop()
			all := time.NewTimer(maxQueued * l.queue)
			defer all.Stop()
			overall = all.C
			if l.inStore {
				p := time.NewTicker(poll)
				defer p.Stop()
				polled = p.C
			}
		}
		select {
		case <-landed:
			idle.Reset(l.queue)
		case <-polled:
		case <-ctx.Done():
			return nil, busyWait, nil
		case <-idle.C:
			return nil, busyWait, nil
		case <-overall:
			return nil, busyWait, nil
		}
	}
}

// admit is one decision of Admit: an attempt, a lock's wait, or (when only
// attempts in flight stand in the way) a channel closed when one of them lands.
func (l *Limiter) admit(ctx context.Context, keys []storage.AttemptKey, hasAccount bool) (*Attempt, time.Duration, <-chan struct{}, error) {
	if len(keys) == 0 {
		return &Attempt{l: l}, 0, nil, nil
	}
	now := l.now()
	l.mu.Lock()
	seen := l.landings
	known := l.knownClean(keys, now)
	l.mu.Unlock()
	if l.inStore {
		return l.admitInStore(ctx, keys, hasAccount, now, seen)
	}
	recs := make([]storage.Attempts, len(keys))
	if !known {
		var err error
		if recs, err = l.store.GetAttempts(ctx, now, keys...); err != nil {
			return nil, 0, nil, err
		}
	}
	var wait time.Duration
	for i, k := range keys {
		wait = max(wait, k.Limit.Lock(recs[i], now))
	}
	if wait > 0 {
		return nil, wait, nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.landings != seen {
		// An attempt landed since the read: what was read may be older than its
		// failure, and so may admit past it. Decide again on a fresh read.
		return nil, 0, closed, nil
	}
	if !known {
		l.noteClean(keys, recs, now)
	}
	for i, k := range keys {
		// Failures left before the lock, or one at a time once a lock has run out.
		if l.inFlight[k.Key] >= max(k.Limit.Failures-recs[i].Failures, 1) {
			return nil, 0, l.queueSince(seen), nil
		}
	}
	for _, k := range keys {
		l.inFlight[k.Key]++
	}
	return &Attempt{l: l, keys: keys, hasAccount: hasAccount, accountFailed: hasAccount && recs[0].Failures > 0}, 0, nil, nil
}

// knownClean says whether every key was read, recently enough to trust it
// (TrustClean), to have no failures. l.mu must be held.
func (l *Limiter) knownClean(keys []storage.AttemptKey, now time.Time) bool {
	if l.trustClean <= 0 || l.inStore {
		return false
	}
	for _, k := range keys {
		if until, ok := l.clean[k.Key]; !ok || !now.Before(until) {
			return false
		}
	}
	return true
}

// noteClean remembers which of keys were read to have no failures, and forgets
// the others. l.mu must be held.
func (l *Limiter) noteClean(keys []storage.AttemptKey, recs []storage.Attempts, now time.Time) {
	if l.trustClean <= 0 {
		return
	}
	for i, k := range keys {
		if recs[i].Failures > 0 {
			delete(l.clean, k.Key)
			continue
		}
		if _, ok := l.clean[k.Key]; !ok && len(l.clean) >= maxClean {
			for old := range l.clean { // Go's map order: an arbitrary one
				delete(l.clean, old)
				break
			}
		}
		l.clean[k.Key] = now.Add(l.trustClean)
	}
}

// admitInStore is admit when the store counts the attempts in flight.
func (l *Limiter) admitInStore(ctx context.Context, keys []storage.AttemptKey, hasAccount bool, now time.Time, seen uint64) (*Attempt, time.Duration, <-chan struct{}, error) {
	admitted, lock, err := l.store.AdmitAttempt(ctx, now, hold, keys...)
	switch {
	case err != nil:
		return nil, 0, nil, err
	case lock > 0:
		return nil, lock, nil, nil
	case admitted:
		return &Attempt{l: l, keys: keys, hasAccount: hasAccount}, 0, nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return nil, 0, l.queueSince(seen), nil
}

// closed is a channel that is always closed: ask again at once.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// queueSince is what an attempt that decided on what it read when l.landings was
// seen waits on: the next landing, or none if one landed since (the attempt must
// decide again on what it left). l.mu must be held.
func (l *Limiter) queueSince(seen uint64) <-chan struct{} {
	if l.landings != seen {
		return closed
	}
	if l.landed == nil {
		l.landed = make(chan struct{})
	}
	return l.landed
}

// settle marks the attempt settled, and says whether it was the first to.
func (a *Attempt) settle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.settled {
		return false
	}
	a.settled = true
	return true
}

// land takes the attempt out of flight and wakes the queue. It comes after the
// attempt's store write, so the queued attempts read what it wrote.
func (a *Attempt) land() {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range a.keys {
		if l.inStore {
			break
		}
		if l.inFlight[k.Key]--; l.inFlight[k.Key] <= 0 {
			delete(l.inFlight, k.Key)
		}
	}
	l.landings++
	if l.landed != nil {
		close(l.landed)
		l.landed = nil
	}
}

// Fail records the attempt as failed against both the account and the IP, and
// returns how long they are now locked (0: not locked) and whether this failure
// counted: a key locked meanwhile (by failures on another instance) counts it no
// more, and its lock is returned. The error is the store's.
func (a *Attempt) Fail(ctx context.Context) (lock time.Duration, counted bool, err error) {
	if !a.settle() {
		return 0, false, nil
	}
	defer a.land()
	if len(a.keys) == 0 {
		return 0, true, nil
	}
	counted, lock, err = a.l.store.FailAttempt(ctx, a.l.now(), a.keys...)
	// Forget that the keys were clean, and count a landing with it, so that an
	// attempt that read them before this failure does not note them clean again.
	a.l.mu.Lock()
	for _, k := range a.keys {
		delete(a.l.clean, k.Key)
	}
	a.l.landings++
	a.l.mu.Unlock()
	return lock, counted, err
}

// Succeed records the attempt as successful: it clears the account's failures
// (counting in process, with a store write only when it had some). The IP's are
// kept: one good password must not reset the count of an address that is
// guessing at many accounts.
func (a *Attempt) Succeed(ctx context.Context) error {
	if !a.settle() {
		return nil
	}
	defer a.land()
	switch {
	case a.l.inStore && len(a.keys) > 0:
		return a.l.store.EndAttempt(ctx, a.l.now(), a.hasAccount, a.keys...)
	case a.accountFailed:
		return a.l.store.ClearAttempts(ctx, a.keys[0].Key)
	}
	return nil
}

// Release settles the attempt without counting it either way, as when the
// check could not be made. After Fail or Succeed it does nothing. It gives the
// attempt's place back even when ctx is done (a request that ended early); a
// place the store did not take back comes free after the hold.
func (a *Attempt) Release(ctx context.Context) {
	if !a.settle() {
		return
	}
	defer a.land()
	if a.l.inStore && len(a.keys) > 0 {
		_ = a.l.store.EndAttempt(context.WithoutCancel(ctx), a.l.now(), false, a.keys...)
	}
}

// Unlock clears the account's failures, and so its lock, on every instance, as
// an administrator unlocking a user does. Attempts in flight still settle; a
// failure among them counts from zero. The IPs the failures came from keep
// theirs: an address guessing at many accounts stays throttled.
func (l *Limiter) Unlock(ctx context.Context, account string) error {
	return l.store.ClearAttempts(ctx, l.key("a:"+account))
}

// UserAccount is the limiter's account key of a user: one count for their
// username and their email, which an administrator can clear with Unlock.
func UserAccount(realm, userID string) string { return realm + "/user:" + userID }

// keys are the store keys of an attempt on account from ip, the account's first.
func (l *Limiter) keys(account, ip string) []storage.AttemptKey {
	var keys []storage.AttemptKey
	if account != "" {
		keys = append(keys, storage.AttemptKey{Key: l.key("a:" + account), Limit: l.account})
	}
	if ip != "" {
		keys = append(keys, storage.AttemptKey{Key: l.key("ip:" + ipKey(ip)), Limit: l.ip})
	}
	return keys
}

// key is the store key of name: prefixed with the limiter's, and hashed when it
// would be longer than the store takes. Callers bound accounts already (realm,
// client ID and login name are checked before they get here); the hash is for
// what is not, such as an address header that does not parse.
func (l *Limiter) key(name string) string {
	k := l.prefix + "/" + name
	if len(k) > storage.MaxAttemptKey {
		sum := sha256.Sum256([]byte(name))
		k = l.prefix + "/sha256:" + hex.EncodeToString(sum[:])
	}
	return k
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
