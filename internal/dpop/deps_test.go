package dpop

import (
	"os/exec"
	"strings"
	"testing"
)

// The rs package, which other programs import, is to verify proofs with this
// one: it may depend on the standard library and go-jose only (conventions,
// "guard the public surfaces").
func TestDependencies_OnlyStandardLibraryAndJose(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/latchkey/latchkey/internal/dpop" && !strings.HasPrefix(p, "github.com/go-jose/go-jose/") {
			t.Errorf("dpop depends on %s", p)
		}
	}
}
