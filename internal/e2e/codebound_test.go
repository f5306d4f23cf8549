package e2e

import "testing"

// One signed-in browser cannot pile up authorization codes: past a small number
// of unredeemed codes per session, each new one evicts the oldest, which is then
// refused like any unknown code.
func TestCodesPerSession_OldestUnredeemedAreEvicted(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		b := newBrowser(t)
		const minted, kept = 50, 10
		codes := make([]string, minted)
		for i := range codes {
			codes[i] = b.code(s, "web")
		}
		for i, code := range codes {
			r := s.redeem(t, webBasic, code)
			switch {
			case i < minted-kept && !r.invalidGrant():
				t.Fatalf("code %d of %d, past the per-session bound: %d %s; want 400 invalid_grant", i, minted, r.status, r.raw)
			case i >= minted-kept && r.status != 200:
				t.Fatalf("code %d of %d, among the newest %d: %d %s; want 200", i, minted, kept, r.status, r.raw)
			}
		}
	})
}
