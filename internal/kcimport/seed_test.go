package kcimport

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/storage"
)

func TestSeedKeepsStoredPasswordsUnlessTold(t *testing.T) {
	r := fixture(t)
	mk, err := masterkey.Parse("q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA=")
	if err != nil {
		t.Fatal(err)
	}
	const rehashed = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5"
	lookup := func(_ context.Context, realm, username string) (storage.User, error) {
		if realm == "acme" && username == "alice" {
			return storage.User{Username: "alice", PasswordHash: rehashed}, nil
		}
		return storage.User{}, storage.ErrNotFound
	}
	o := SeedOptions{Secrets: clientsecret.NewHasher(mk), Now: time.Unix(1_800_000_000, 0), Lookup: lookup}
	hashOf := func(s storage.Seed, name string) string {
		for _, u := range s.Realms[0].Users {
			if u.Username == name {
				return u.PasswordHash
			}
		}
		t.Fatalf("no user %s in the seed", name)
		return ""
	}

	s, problems, err := r.Seed(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if hashOf(s, "alice") != rehashed || !strings.HasPrefix(hashOf(s, "bob"), "$pbkdf2-sha256$") {
		t.Errorf("alice %q, bob %q: want alice's stored hash kept, bob's imported", hashOf(s, "alice"), hashOf(s, "bob"))
	}
	if len(problems) != 1 || problems[0].Path != "$.users[0].credentials" || !strings.Contains(problems[0].Msg, "--replace-passwords") {
		t.Errorf("problems = %v", problems)
	}

	o.ReplacePasswords = true
	s, problems, _ = r.Seed(t.Context(), o)
	if !strings.HasPrefix(hashOf(s, "alice"), "$pbkdf2-sha512$") || len(problems) != 0 {
		t.Errorf("with ReplacePasswords: alice %q, problems %v", hashOf(s, "alice"), problems)
	}

	// Secrets are hashed as the seed file's, never stored as they are.
	for _, c := range s.Realms[0].Clients {
		if c.ID == "acme-api" {
			if ok, err := o.Secrets.Verify("acme", "acme-api", "Qm9vY2F0LWFjbWUtYXBpLXNlY3JldC0wMQ", c.SecretHash); !ok || err != nil {
				t.Errorf("acme-api secret hash %q does not verify: %v", c.SecretHash, err)
			}
		}
	}
}
