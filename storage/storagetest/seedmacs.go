package storagetest

import (
	"bytes"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

// A seed's password MACs are stored with it, replaced by a later seed's for the
// same usernames, kept for the others, and deleted with their realm.
func testSeedPasswordMACs(t *testing.T, s storage.Store) {
	c := ctx(t)
	realm := storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: 300e9, CreatedAt: t0, UpdatedAt: t0}
	seed := func(macs map[string][]byte) {
		t.Helper()
		_, err := s.ApplySeed(c, storage.Seed{Realms: []storage.SeedRealm{{Realm: realm, PasswordMACs: macs}}})
		must(t, err)
	}
	got, err := s.SeedPasswordMACs(c, "acme")
	if err != nil || len(got) != 0 {
		t.Fatalf("before any seed: %v, %v", got, err)
	}
	seed(map[string][]byte{"alice": []byte("mac-a1"), "bob": []byte("mac-b1")})
	seed(map[string][]byte{"alice": []byte("mac-a2")})
	got, err = s.SeedPasswordMACs(c, "acme")
	must(t, err)
	if len(got) != 2 || !bytes.Equal(got["alice"], []byte("mac-a2")) || !bytes.Equal(got["bob"], []byte("mac-b1")) {
		t.Fatalf("SeedPasswordMACs = %q, want alice's replaced and bob's kept", got)
	}
	// A seed that fails stores none of its MACs.
	u1, u2 := newUser("acme", "one"), newUser("acme", "two")
	u2.Email = u1.Email
	bad := storage.SeedRealm{Realm: realm, PasswordMACs: map[string][]byte{"alice": []byte("mac-a3")}, Users: []storage.User{u1, u2}}
	if _, err := s.ApplySeed(c, storage.Seed{Realms: []storage.SeedRealm{bad}}); err == nil {
		t.Fatal("a seed with clashing emails applied")
	}
	if got, _ = s.SeedPasswordMACs(c, "acme"); !bytes.Equal(got["alice"], []byte("mac-a2")) {
		t.Fatalf("a failed seed changed a MAC: %q", got)
	}
	must(t, s.DeleteRealm(c, "acme"))
	if got, err = s.SeedPasswordMACs(c, "acme"); err != nil || len(got) != 0 {
		t.Fatalf("after the realm's deletion: %q, %v", got, err)
	}
}
