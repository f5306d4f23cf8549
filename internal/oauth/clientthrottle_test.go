package oauth

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage"
)

func TestClientAuth_ThrottledPerClientThenReleased(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		const right, wrong = "svc:svc-secret-123-0123456789abcdefghijklmnop", "svc:svc-wrong-0123456789abcdefghijklmnopqrs"
		cc := form("grant_type", "client_credentials")
		for range 9 {
			wantError(t, post(t, inst.tokenURL("acme"), wrong, cc), 401, protocol.InvalidClient)
		}
		// The tenth failure locks svc for 10 s; the right secret waits too.
		for _, basic := range []string{wrong, right} {
			r := post(t, inst.tokenURL("acme"), basic, cc)
			wantError(t, r, 429, protocol.InvalidClient)
			if r.header.Get("Retry-After") != "10" {
				t.Fatalf("Retry-After %q, want 10", r.header.Get("Retry-After"))
			}
		}
		inst.clock.Add(10 * time.Second)
		inst.clientCredentials(t, "acme", right)
		// The success cleared svc's count: nine more failures do not lock it.
		for range 9 {
			wantError(t, post(t, inst.tokenURL("acme"), wrong, cc), 401, protocol.InvalidClient)
		}
		inst.clientCredentials(t, "acme", right)

		events, err := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: "client_auth.throttled"})
		if err != nil || len(events) != 1 {
			t.Fatalf("client_auth.throttled events = %+v, %v; want one, for the lock", events, err)
		}
		e := events[0]
		if e.ClientID != "svc" || e.IP == "" || e.Details["retry_after"] != "10" {
			t.Errorf("event %+v", e)
		}
		for _, v := range e.Details {
			if strings.Contains(v, "secret") || strings.Contains(v, "wrong") {
				t.Errorf("event holds a secret: %+v", e)
			}
		}
	})
}

// Unknown client IDs count against the address only, and 20 failures lock it.
func TestClientAuth_ThrottledPerAddress(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		cc := form("grant_type", "client_credentials")
		for i := range 19 {
			wantError(t, post(t, inst.tokenURL("acme"), "ghost-"+string(rune('a'+i))+":whatever-0123456789abcdefghijklmnop", cc), 401, protocol.InvalidClient)
		}
		wantError(t, post(t, inst.tokenURL("acme"), "ghost-z:whatever-0123456789abcdefghijklmnop", cc), 429, protocol.InvalidClient)
		wantError(t, post(t, inst.tokenURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", cc), 429, protocol.InvalidClient)
		// Public clients, which send no secret, are not throttled.
		if r := post(t, inst.revokeURL("acme"), "", form("client_id", "spa", "token", "x")); r.status != 200 {
			t.Fatalf("public client from a locked address: %d %s", r.status, r.raw)
		}
		inst.clock.Add(10 * time.Second)
		inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop")
	})
}

// Names no user has fall into at most 65536 limiter accounts per realm, so that
// typing new names without end cannot grow the store without end; a name always
// falls into the same one, and realms do not share them.
func TestLogin_UnknownNamesShareBoundedAccounts(t *testing.T) {
	h := New(Config{MasterKey: masterKey})
	seen := map[string]bool{}
	for i := range 200_000 {
		k := h.unknownNameAccount("acme", fmt.Sprintf("nobody-%d", i))
		if len(k) > len("acme/name#0000") || !strings.HasPrefix(k, "acme/name#") {
			t.Fatalf("account %q", k)
		}
		seen[k] = true
	}
	if len(seen) > 1<<16 {
		t.Fatalf("%d accounts for unknown names, want at most 65536", len(seen))
	}
	if h.unknownNameAccount("acme", "nobody") != h.unknownNameAccount("acme", "nobody") {
		t.Fatal("one name, two accounts")
	}
	if h.unknownNameAccount("acme", "nobody")[len("acme"):] == h.unknownNameAccount("other", "nobody")[len("other"):] &&
		h.unknownNameAccount("acme", "nobody-2")[len("acme"):] == h.unknownNameAccount("other", "nobody-2")[len("other"):] {
		t.Fatal("the realm does not enter the hash")
	}
}
