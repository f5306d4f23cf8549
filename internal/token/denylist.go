package token

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DenyList holds the IDs (jti) of revoked access tokens, JWT and opaque, in memory
// until the tokens would have expired anyway, so checking it costs a map lookup.
// Each instance loads it from the store at start; the change feed's follower
// (internal/cluster) adds the entries other instances record.
type DenyList struct {
	mu      sync.RWMutex
	entries map[denyKey]time.Time // → the token's exp
}

type denyKey struct{ realm, jti string }

// NewDenyList returns an empty deny-list.
func NewDenyList() *DenyList {
	return &DenyList{entries: map[denyKey]time.Time{}}
}

// Add denies the realm's jti until exp.
func (d *DenyList) Add(realm, jti string, exp time.Time) {
	d.mu.Lock()
	d.entries[denyKey{realm, jti}] = exp
	d.mu.Unlock()
}

// Denied reports whether the realm's jti is on the list.
func (d *DenyList) Denied(realm, jti string) bool {
	d.mu.RLock()
	_, ok := d.entries[denyKey{realm, jti}]
	d.mu.RUnlock()
	return ok
}

// Len says how many entries the list holds.
func (d *DenyList) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.entries)
}

// Sweep drops entries whose tokens have expired, keeping the list small.
func (d *DenyList) Sweep(now time.Time) {
	d.mu.Lock()
	for k, exp := range d.entries {
		if !now.Before(exp) {
			delete(d.entries, k)
		}
	}
	d.mu.Unlock()
}

// SyncDenyList loads the realms' unexpired deny-list entries from the store, adding
// those revoked on other instances, and sweeps expired ones.
func (s *Service) SyncDenyList(ctx context.Context, realms []string) error {
	now := s.now()
	for _, realm := range realms {
		entries, err := s.store.ListDeniedJWTs(ctx, realm, now)
		if err != nil {
			return fmt.Errorf("sync deny-list of realm %q: %w", realm, err)
		}
		for _, e := range entries {
			s.deny.Add(realm, e.JTI, e.ExpiresAt)
		}
	}
	s.deny.Sweep(now)
	return nil
}
