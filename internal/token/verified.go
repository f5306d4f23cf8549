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
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{entries: map[[32]byte]*AccessClaims{}}
}

func (v *verifiedCache) get(tok string, now time.Time) (*AccessClaims, [32]byte) {
	key := sha256.Sum256([]byte(tok))
	v.mu.RLock()
	c := v.entries[key]
	v.mu.RUnlock()
	if c != nil && now.Before(time.Unix(c.Expiry, 0)) {
		return c, key
	}
	return nil, key
}

func (v *verifiedCache) put(key [32]byte, c *AccessClaims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
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
	v.entries[key] = c
}

func (v *verifiedCache) clear() {
	v.mu.Lock()
	clear(v.entries)
	v.mu.Unlock()
}
