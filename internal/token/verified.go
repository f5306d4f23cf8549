package token

import (
	"crypto/sha256"
	"sync"
	"time"
)

// The verified-token cache holds at most maxVerified tokens and, since a token with
// roles and profile claims can be several KiB, at most maxVerifiedBytes of them
// (counted as the tokens' lengths, which bound their claims').
const (
	maxVerified      = 10000
	maxVerifiedBytes = 8 << 20
)

// verifiedCache remembers access tokens whose signature and claims have been
// checked, until they expire, so introspecting the same token again (a resource
// server does so on every call) skips the ECDSA verification, which was 58% of an
// introspection's CPU. Only what cannot change is cached: the deny-list, the
// client, the user, the session and the family are checked on every introspection,
// so revocation still takes effect at once.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[[32]byte]verifiedEntry
	bytes   int // the sum of the entries' sizes
	// cleared counts clears: a token verified against a key ring read before one is
	// not kept, or it would outlive its key's retirement.
	cleared uint64
}

type verifiedEntry struct {
	claims *AccessClaims
	size   int
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{entries: map[[32]byte]verifiedEntry{}}
}

// verifiedSlot is where get would have found a token: put keeps it there.
type verifiedSlot struct {
	key     [32]byte
	cleared uint64
	size    int
}

func (v *verifiedCache) get(tok string, now time.Time) (*AccessClaims, verifiedSlot) {
	key := sha256.Sum256([]byte(tok))
	v.mu.RLock()
	c := v.entries[key].claims
	slot := verifiedSlot{key, v.cleared, len(tok)}
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
	if _, ok := v.entries[slot.key]; ok {
		v.forget(slot.key)
	}
	if len(v.entries) >= maxVerified || v.bytes+slot.size > maxVerifiedBytes {
		for k, e := range v.entries {
			if !now.Before(time.Unix(e.claims.Expiry, 0)) {
				v.forget(k)
			}
		}
		// Still full of live tokens: forget a quarter of them (map order is random).
		for k := range v.entries {
			if len(v.entries) < maxVerified*3/4 && v.bytes+slot.size <= maxVerifiedBytes*3/4 {
				break
			}
			v.forget(k)
		}
	}
	v.entries[slot.key] = verifiedEntry{c, slot.size}
	v.bytes += slot.size
}

func (v *verifiedCache) forget(k [32]byte) {
	v.bytes -= v.entries[k].size
	delete(v.entries, k)
}

func (v *verifiedCache) clear() {
	v.mu.Lock()
	clear(v.entries)
	v.bytes = 0
	v.cleared++
	v.mu.Unlock()
}
