package oauth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

// aliceImported is alice's password, alice-password-1, as a Keycloak export
// carries it (pbkdf2-sha512, 1000 iterations, 512 bits), computed with Python's
// hashlib.pbkdf2_hmac.
const aliceImported = "$pbkdf2-sha512$i=1000,l=64$aW1wb3J0ZWQtc2FsdC0xNg$dqO3B5boiuM1Ul+39vU7gH0N6U/QsoT1hmfPJObPjoZ1Cun1bQtdMg3qnnSrFc932jNAtfOurd78IwG3Ope6ZQ"

func TestLoginRehashesAnImportedPasswordOnceAndKeepsTokens(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		// Tokens issued before the rehash.
		code := newBrowser(t).signIn(authURL(inst, "acme", "scope", "openid offline_access"), "alice", "alice-password-1").Query().Get("code")
		r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", code)
		rt, _ := r.body["refresh_token"].(string)
		if r.status != http.StatusOK || rt == "" {
			t.Fatalf("redeem: %d %v", r.status, r.body)
		}
		u := mustUser(t, inst, "alice")
		u.PasswordHash = aliceImported
		if err := putUser(t, inst, u); err != nil {
			t.Fatal(err)
		}
		before := mustUser(t, inst, "alice")

		// A wrong password changes nothing.
		b := newBrowser(t)
		p := b.get(authURL(inst, "acme"))
		if p = b.submit(p, inst.url, "username", "alice", "password", "alice-password-2"); p.status != http.StatusUnauthorized {
			t.Fatalf("wrong password: status %d", p.status)
		}
		if got := mustUser(t, inst, "alice"); got.PasswordHash != aliceImported {
			t.Fatalf("a failed sign-in rehashed: %s", got.PasswordHash)
		}

		// The imported hash signs alice in, and is replaced by argon2id.
		if cb := newBrowser(t).signIn(authURL(inst, "acme"), "alice", "alice-password-1"); cb.Query().Get("code") == "" {
			t.Fatalf("sign-in with the imported hash: %v", cb)
		}
		after := mustUser(t, inst, "alice")
		if !strings.HasPrefix(after.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Fatalf("hash after sign-in = %q; want argon2id at password.Default", after.PasswordHash)
		}
		if !after.TokensValidAfter.Equal(before.TokensValidAfter) {
			t.Fatalf("the rehash moved TokensValidAfter %v -> %v: it is not a password change", before.TokensValidAfter, after.TokensValidAfter)
		}

		// The tokens issued before the rehash still work.
		if r := post(t, inst.tokenURL("acme"), "web:web-secret-123-0123456789abcdefghijklmnop",
			form("grant_type", "refresh_token", "refresh_token", rt)); r.status != http.StatusOK {
			t.Fatalf("refresh after the rehash: %d %v", r.status, r.body)
		}

		// Once: the next sign-in keeps the argon2id hash.
		if cb := newBrowser(t).signIn(authURL(inst, "acme"), "alice", "alice-password-1"); cb.Query().Get("code") == "" {
			t.Fatalf("second sign-in: %v", cb)
		}
		if again := mustUser(t, inst, "alice"); again.PasswordHash != after.PasswordHash {
			t.Fatal("the second sign-in rehashed again")
		}
		events, err := inst.store.ListAudit(t.Context(), storage.AuditFilter{Realm: "acme", Type: "user.password_rehashed"})
		if err != nil {
			t.Fatal(err)
		}
		// The test instance's own hashes are cheaper than password.Default, so the
		// very first sign-in rehashed too; the imported hash was rehashed once.
		var fromImport int
		for _, e := range events {
			if e.UserID == after.ID && e.Details["from"] == "pbkdf2-sha512" {
				fromImport++
			}
		}
		if fromImport != 1 {
			t.Fatalf("rehash audit events = %+v; want one from pbkdf2-sha512", events)
		}
	})
}
