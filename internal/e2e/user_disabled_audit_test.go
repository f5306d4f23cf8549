package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

// Disabling a user through the seed is a security event: one `user.disabled` audit
// event, written once, however often the same seed is applied again.
func TestSeed_DisablingAUserIsAudited(t *testing.T) {
	disabledSeed := strings.Replace(defaultSeed, "        name: Alice Liddell\n", "        name: Alice Liddell\n        disabled: true\n", 1)
	if disabledSeed == defaultSeed {
		t.Fatal("the seed did not change")
	}
	stores(t, func(t *testing.T, db string) {
		events := func() []storage.AuditEvent {
			t.Helper()
			ev, err := openStore(t, db).ListAudit(t.Context(), storage.AuditFilter{Type: "user.disabled"})
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		start(t, options{db: db}).stop()
		if ev := events(); len(ev) != 0 {
			t.Fatalf("user.disabled events of an enabled user: %+v", ev)
		}
		alice, err := openStore(t, db).GetUserByUsername(t.Context(), "acme", "alice")
		if err != nil || alice.Disabled {
			t.Fatalf("alice = %+v, %v", alice, err)
		}

		start(t, options{db: db, seed: disabledSeed}).stop()
		ev := events()
		if len(ev) != 1 || ev[0].Realm != "acme" || ev[0].UserID != alice.ID || ev[0].Time.IsZero() {
			t.Fatalf("user.disabled events = %+v; want one for alice (%s)", ev, alice.ID)
		}
		if b, _ := json.Marshal(ev[0]); strings.Contains(string(b), alicePass) || strings.Contains(string(b), "argon2") {
			t.Fatalf("the audit event holds a secret: %s", b)
		}
		if alice, _ := openStore(t, db).GetUserByUsername(t.Context(), "acme", "alice"); !alice.Disabled {
			t.Fatal("alice is not disabled")
		}

		// The same seed again changes nothing, and writes nothing.
		start(t, options{db: db, seed: disabledSeed}).stop()
		if ev := events(); len(ev) != 1 {
			t.Fatalf("after the same seed again, user.disabled events = %+v; want still one", ev)
		}
	})
}
