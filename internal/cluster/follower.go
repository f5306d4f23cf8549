// Package cluster follows the store's change feed and applies it to this instance: deny-list, caches and key rings.
package cluster

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Feed is the part of storage.ChangeFeedStore the follower reads.
type Feed interface {
	ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error)
	WatchChanges(ctx context.Context, wake func()) error
}

// DenyList holds revoked access tokens (token.DenyList).
type DenyList interface {
	Add(realm, jti string, until time.Time)
}

// Cache keeps realms, clients and realms' roles until invalidated (storecache.Store).
type Cache interface {
	InvalidateRealm(realm string)
	InvalidateClient(realm, id string)
	InvalidateRoles(realm string)
	Clear()
}

// Keys holds the realms' loaded signing keys (keys.Manager).
type Keys interface {
	Forget(realm string) // the realm is gone: drop its keys
	Stale(realm string)  // its keys changed: read them again at next use
}

// Verified remembers access tokens whose signature was checked (token.Service).
type Verified interface {
	ForgetVerified()
}

// Defaults of Config.
const (
	DefaultPoll  = 5 * time.Second
	DefaultBatch = 500
	// gapRetry is how soon a gap is read again: a transaction in flight usually
	// commits within milliseconds.
	gapRetry = 20 * time.Millisecond
	// maxMissing bounds the gaps remembered; past it, the rest count as lost.
	maxMissing = 10000
	// primeWindow is how many Seqs below its starting cursor a follower checks
	// for changes still in flight.
	primeWindow = 1000
)

// Config is what a Follower works on.
type Config struct {
	Feed     Feed
	Deny     DenyList
	Cache    Cache
	Keys     Keys
	Verified Verified
	// After is the Seq up to which changes are already applied (taken with
	// LastChangeSeq before the state they change was loaded).
	After int64
	// Poll is how often the feed is read without a wake-up, as a safety net.
	Poll time.Duration
	// GapTimeout is how long a missing Seq is waited for before it is taken as
	// lost: the store's timeout, which bounds a transaction in flight.
	GapTimeout time.Duration
	// Batch bounds the changes read at once.
	Batch int
	// Synced, if set, is called after each catch-up that read the feed to its end.
	Synced func()
	Now    func() time.Time
	Log    *slog.Logger
}

// Follower follows the change feed. Run drives it; Wait and Last tell how far it
// has got.
type Follower struct {
	cfg  Config
	wake chan struct{}

	// Owned by Run.
	ahead   int64               // the highest Seq applied
	missing map[int64]time.Time // Seqs below ahead not seen yet → when first missed

	mu      sync.Mutex
	last    int64         // every change up to it is applied or given up as lost
	changed chan struct{} // closed and replaced when last moves
}

// New returns a Follower that starts after cfg.After.
func New(cfg Config) *Follower {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.GapTimeout <= 0 {
		cfg.GapTimeout = storage.DefaultTimeout
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Follower{cfg: cfg, wake: make(chan struct{}, 1), ahead: cfg.After, last: cfg.After,
		missing: map[int64]time.Time{}, changed: make(chan struct{})}
}

// Last returns the Seq up to which every change has been applied (or, missing
// past the store's timeout, given up as lost).
func (f *Follower) Last() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// Wait returns as soon as Last is past after (at once if it already is), with
// Last; or when ctx ends, with its error.
func (f *Follower) Wait(ctx context.Context, after int64) (last int64, err error) {
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

// Wake asks for a catch-up; it never blocks.
func (f *Follower) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run follows the feed until ctx ends: it catches up at start, whenever the store
// says changes may have been recorded (and after every reconnection, which the
// store also says), every Poll, and while a gap is open.
func (f *Follower) Run(ctx context.Context) {
	// What was read before the cursor was taken may be stale already.
	f.cfg.Cache.Clear()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ctx.Err() == nil {
			if err := f.cfg.Feed.WatchChanges(ctx, f.Wake); err != nil && ctx.Err() == nil {
				f.cfg.Log.Warn("change feed: watch failed; polling meanwhile", "err", err)
			}
			select { // WatchChanges retries by itself; this only stops a busy loop
			case <-time.After(f.cfg.Poll):
			case <-ctx.Done():
			}
		}
	}()
	defer func() { <-watchDone }()

	for ctx.Err() == nil {
		err := f.prime(ctx)
		if err == nil {
			break
		}
		f.cfg.Log.Warn("change feed: reading recent changes failed", "err", err)
		select {
		case <-time.After(f.cfg.Poll):
		case <-ctx.Done():
		}
	}
	poll := time.NewTicker(f.cfg.Poll)
	defer poll.Stop()
	for {
		if err := f.catchUp(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.cfg.Log.Warn("change feed: catch-up failed", "err", err)
		} else if f.cfg.Synced != nil {
			f.cfg.Synced()
		}
		var retry <-chan time.Time // a gap is re-read soon, until it fills or times out
		if len(f.missing) > 0 {
			retry = time.After(gapRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-poll.C:
		case <-retry:
		}
	}
}

// prime takes as missing the Seqs just below the starting cursor that are not
// visible yet: on a shared store a write that took its Seq before the cursor was
// read may commit after it. The last primeWindow Seqs are read (applying a change
// twice is harmless), and those not there are waited for like any gap: at worst
// (a Seq a rollback left unused) Last waits GapTimeout at start.
func (f *Follower) prime(ctx context.Context) error {
	from := max(f.ahead-primeWindow, 0)
	recent, err := f.cfg.Feed.ListChanges(ctx, storage.ChangeQuery{After: from, Limit: primeWindow})
	if err != nil {
		return err
	}
	now := f.cfg.Now()
	seen := map[int64]bool{}
	for _, c := range recent {
		if c.Seq <= f.ahead {
			seen[c.Seq] = true
			f.apply(c, now)
		}
	}
	for s := from + 1; s <= f.ahead; s++ {
		if !seen[s] {
			f.missing[s] = now
		}
	}
	if len(f.missing) > 0 {
		f.mu.Lock()
		f.last = min(f.last, slices.Min(mapKeys(f.missing))-1)
		f.mu.Unlock()
	}
	return nil
}

// catchUp reads the feed from Last to its end, in batches, applying what it has
// not applied yet.
func (f *Follower) catchUp(ctx context.Context) error {
	after := f.Last()
	for {
		changes, err := f.cfg.Feed.ListChanges(ctx, storage.ChangeQuery{After: after, Limit: f.cfg.Batch})
		if err != nil {
			return err
		}
		now := f.cfg.Now()
		for _, c := range changes {
			f.take(c, now)
		}
		f.expire(now)
		f.advance()
		if len(changes) < f.cfg.Batch {
			return nil
		}
		after = changes[len(changes)-1].Seq
	}
}

// take applies c unless it was applied already, noting the Seqs it skips over.
// Changes apply in any order (they add to the deny-list or drop cached state), so
// those past a gap need not wait for it.
func (f *Follower) take(c storage.Change, now time.Time) {
	if c.Seq <= f.ahead {
		if _, ok := f.missing[c.Seq]; !ok {
			return // applied before
		}
		delete(f.missing, c.Seq)
		f.apply(c, now)
		return
	}
	lost := false
	for s := f.ahead + 1; s < c.Seq; s++ {
		if len(f.missing) >= maxMissing {
			lost = true
			break
		}
		f.missing[s] = now
	}
	if lost {
		f.cfg.Log.Warn("change feed: too many changes missing; dropping caches", "after", f.ahead, "next", c.Seq)
		f.cfg.Cache.Clear()
	}
	f.ahead = c.Seq
	f.apply(c, now)
}

// expire gives up on Seqs missing for longer than a transaction can be in flight:
// rolled back, or purged before this instance read them. Either way something may
// have been missed, so the caches are dropped.
func (f *Follower) expire(now time.Time) {
	lost := 0
	for s, since := range f.missing {
		if now.Sub(since) >= f.cfg.GapTimeout {
			delete(f.missing, s)
			lost++
		}
	}
	if lost > 0 {
		f.cfg.Log.Info("change feed: gave up on missing changes; dropping caches", "missing", lost)
		f.cfg.Cache.Clear()
	}
}

// advance moves Last to just below the lowest missing Seq, or to ahead, and wakes
// the waiters if it moved.
func (f *Follower) advance() {
	last := f.ahead
	if len(f.missing) > 0 {
		last = slices.Min(mapKeys(f.missing)) - 1
	}
	f.mu.Lock()
	if last > f.last {
		f.last = last
		close(f.changed)
		f.changed = make(chan struct{})
	}
	f.mu.Unlock()
}

func mapKeys(m map[int64]time.Time) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// apply makes this instance act on c.
func (f *Follower) apply(c storage.Change, now time.Time) {
	switch c.Kind {
	case storage.ChangeTokenDenied:
		if now.Before(c.Until) {
			f.cfg.Deny.Add(c.Realm, c.Subject, c.Until)
		}
	case storage.ChangeRealmChanged:
		// A realm deleted and made again must not sign with the old one's keys.
		f.cfg.Cache.InvalidateRealm(c.Subject)
		if c.Reason == storage.ReasonDeleted {
			f.cfg.Keys.Forget(c.Subject)
		} else {
			f.cfg.Keys.Stale(c.Subject)
		}
	case storage.ChangeClientChanged, storage.ChangeClientRevoked:
		f.cfg.Cache.InvalidateClient(c.Realm, c.Subject)
	case storage.ChangeRolesChanged:
		f.cfg.Cache.InvalidateRoles(c.Subject)
	case storage.ChangeKeysChanged:
		// Tokens verified against a key now retired must be checked again.
		f.cfg.Keys.Stale(c.Realm)
		f.cfg.Verified.ForgetVerified()
	}
	// The rest (users, sessions, families, realm logouts) are read from the store
	// at every introspection; they only move Last, for Wait.
}
