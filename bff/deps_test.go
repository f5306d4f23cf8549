package bff

import (
	"os/exec"
	"strings"
	"testing"
)

// The package is imported by other programs: it may depend on the standard
// library, go-jose and internal/dpop only (conventions, "guard the public surfaces").
func TestDependencies_OnlyStandardLibraryJoseAndDPoP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "github.com/latchkey/latchkey/bff",
			p == "github.com/latchkey/latchkey/internal/dpop",
			strings.HasPrefix(p, "github.com/go-jose/go-jose/"):
		default:
			t.Errorf("bff depends on %s", p)
		}
	}
}
