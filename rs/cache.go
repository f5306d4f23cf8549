package rs

import (
	"crypto/sha256"
	"sync"
	"time"
)

// cache remembers what a token turned out to be, by its SHA-256 (so a long token
// costs no more memory than a short one), until a deadline. It holds at most max
// entries; a new one evicts an arbitrary old one, so it never grows past its bound,
// whatever is presented.
type cache struct {
	max int

	mu sync.RWMutex
	m  map[[32]byte]cacheEntry
}

type cacheEntry struct {
	claims *Claims // nil: the token is known to be no good
	until  time.Time
}

func newCache(max int) *cache { return &cache{max: max, m: make(map[[32]byte]cacheEntry)} }

func tokenKey(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// get returns the entry for k while it lasts.
func (c *cache) get(k [32]byte, now time.Time) (cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *cache) put(k [32]byte, e cacheEntry) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		for old := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, old) // map iteration order is random: a random eviction
		}
	}
	c.m[k] = e
}

func (c *cache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
