package token

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Access tokens with roles can be several KiB: the verified-token cache stays
// within its byte bound, and its count of bytes is exact, whatever goes in.
func TestVerifiedCache_BoundedInBytes(t *testing.T) {
	v := newVerifiedCache()
	now := time.Unix(1_800_000_000, 0)
	live := &AccessClaims{Expiry: now.Add(time.Hour).Unix()}
	big := strings.Repeat("x", 12<<10)
	for i := range 2000 {
		tok := fmt.Sprintf("%d.%s", i, big)
		_, slot := v.get(tok, now)
		v.put(slot, live, now)
		if i%7 == 0 {
			v.put(slot, live, now) // the same token again counts once
		}
		sum := 0
		for _, e := range v.entries {
			sum += e.size
		}
		if v.bytes != sum || v.bytes > maxVerifiedBytes {
			t.Fatalf("after %d: bytes %d, sum %d, bound %d", i, v.bytes, sum, maxVerifiedBytes)
		}
	}
	if len(v.entries) < 100 {
		t.Fatalf("only %d entries kept", len(v.entries))
	}
	if c, _ := v.get(fmt.Sprintf("%d.%s", 1999, big), now); c != live {
		t.Fatal("the last token put is not cached")
	}
}
