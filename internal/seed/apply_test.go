package seed

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

const threeUsers = `realms:
  - name: acme
    users:
      - username: alice
        password: alice-password-1
      - username: bob
        password: bob-password-1
      - username: carol
        password: carol-password-1
`

// A restart applies the same seed without one argon2id hash: the MACs stored by
// the first start tell the declarations it already applied. A changed password is
// hashed again; a password changed elsewhere (the admin API) is not undone while
// the seed's declaration stays the same.
func TestApply_HashesOnlyPasswordsTheSeedChanged(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "seed.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, err := masterkey.Parse("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	hashed := 0 // argon2id runs: hashes and verifications
	a := &Applier{Store: st, Secrets: clientsecret.NewHasher(mk), Password: password.Params{Memory: 64, Time: 1, Threads: 1},
		MACKey: PasswordMACKey(mk), Now: time.Now,
		hash:   func(pw string, p password.Params) (string, error) { hashed++; return password.Hash(pw, p) },
		verify: func(pw, h string) (bool, error) { hashed++; return password.Verify(pw, h) }}
	apply := func(doc string) storage.SeedResult {
		t.Helper()
		f, err := Parse("seed.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		hashed = 0
		res, err := a.Apply(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := apply(threeUsers); hashed != 3 || res.Created != 4 {
		t.Fatalf("first start: %d hashes, %+v", hashed, res)
	}
	if res := apply(threeUsers); hashed != 0 || res.Unchanged != 4 {
		t.Fatalf("restart: %d hashes, %+v; want none, all unchanged", hashed, res)
	}

	changed := `realms:
  - name: acme
    users:
      - username: alice
        password: alice-password-2
      - username: bob
        password: bob-password-1
      - username: carol
        password: carol-password-1
`
	before, _ := st.GetUserByUsername(t.Context(), "acme", "alice")
	if res := apply(changed); hashed != 1 || res.Updated != 1 {
		t.Fatalf("one password changed: %d hashes, %+v", hashed, res)
	}
	after, _ := st.GetUserByUsername(t.Context(), "acme", "alice")
	if ok, _ := password.Verify("alice-password-2", after.PasswordHash); !ok || !after.TokensValidAfter.After(before.TokensValidAfter) {
		t.Fatalf("alice's new password not set, or her stamp not moved: %+v", after)
	}

	// Bob's password changed by an operator: the unchanged seed keeps it.
	bob, _ := st.GetUserByUsername(t.Context(), "acme", "bob")
	newHash, _ := password.Hash("set-by-an-admin", password.Params{Memory: 64, Time: 1, Threads: 1})
	bob.PasswordHash = newHash
	if _, err := st.ApplySeed(t.Context(), storage.Seed{Realms: []storage.SeedRealm{{Realm: mustRealm(t, st), Users: []storage.User{bob}}}}); err != nil {
		t.Fatal(err)
	}
	if apply(changed); hashed != 0 {
		t.Fatalf("restart after an operator's change: %d hashes", hashed)
	}
	if bob, _ = st.GetUserByUsername(t.Context(), "acme", "bob"); bob.PasswordHash != newHash {
		t.Fatal("the seed undid a password set elsewhere although its own declaration did not change")
	}
}

func mustRealm(t *testing.T, st storage.Store) storage.Realm {
	r, err := st.GetRealm(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return r
}
