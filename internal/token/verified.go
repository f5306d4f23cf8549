package token

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxVerified bounds the verified-token cache: about 3 MiB of claims.
const maxVerified = 10000

// verifiedCache remembers access tokens whose signature and claims have been
// checked, until they expire, so introspecting the same token again (a resource
// server does so on every call) skips the ECDSA verification, which was 58% of an
// introspection's CPU. Only what cannot change is cached: the deny-list, the
// client, the user, the session and the family are checked on every introspection,
// so revocation still takes effect at once.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[[32]byte]*AccessClaims
	// cleared counts clears: a token verified against a key ring read before one is
	// not kept, or it would outlive its key's retirement.
	cleared uint64
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{entries: map[[32]byte]*AccessClaims{}}
}

// verifiedSlot is where get would have found a token: put keeps it there.
type verifiedSlot struct {
	key     [32]byte
	cleared uint64
}

func (v *verifiedCache) get(tok string, now time.Time) (*AccessClaims, verifiedSlot) {
	key := sha256.Sum256([]byte(tok))
	v.mu.RLock()
	c := v.entries[key]
	slot := verifiedSlot{key, v.cleared}
	v.mu.RUnlock()
	if c != nil && now.Before(time.Unix(c.Expiry, 0)) {
		return c, slot
	}
	return nil, slot
}

func (v *verifiedCache) put(slot verifiedSlot, c *AccessClaims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if slot.cleared != v.cleared {
		return
	}
	if len(v.entries) >= maxVerified {
		for k, e := range v.entries {
			if !now.Before(time.Unix(e.Expiry, 0)) {
				delete(v.entries, k)
			}
		}
		// Still full of live tokens: forget a quarter of them (map order is random).
		for k := range v.entries {
			if len(v.entries) < maxVerified*3/4 {
				break
			}
			delete(v.entries, k)
		}
	}
	v.entries[slot.key] = c
}

func (v *verifiedCache) clear() {
	v.mu.Lock()
	clear(v.entries)
	v.cleared++
	v.mu.Unlock()
}
