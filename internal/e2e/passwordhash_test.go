package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// A seed may carry a password hash, as `latchkey password hash` prints it, instead
// of a password: the user signs in with the password, and no start hashes it.
func TestSeed_PasswordHashFromTheCLISignsIn(t *testing.T) {
	cmd := exec.Command(binary(t), "password", "hash")
	cmd.Stdin = strings.NewReader(alicePass + "\n")
	out, err := cmd.Output()
	phc := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(phc, "$argon2id$") || strings.Contains(phc, alicePass) {
		t.Fatalf("latchkey password hash = %q, %v", out, err)
	}
	seed := seedWith(t, "        password: "+alicePass+"\n", "        password_hash: "+phc+"\n")
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: seed})
		if r := s.redeem(t, webBasic, newBrowser(t).code(s, "web")); r.status != 200 {
			t.Fatalf("sign-in of a user seeded with a password hash: %d %s", r.status, r.raw)
		}
		s.stop()
		// Started again with the same seed: unchanged, the same hash.
		s = start(t, options{db: db, seed: seed})
		if !strings.Contains(s.logs.String(), "created=0 updated=0") {
			t.Errorf("the same seed again changed something:\n%s", s.logs)
		}
	})
}
