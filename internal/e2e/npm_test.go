package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// npmInstall installs the packages testdata/NAME/package-lock.json pins, with
// `npm ci --ignore-scripts` (which checks every package's integrity hash and runs
// none of their install scripts), once per lock: under the user's cache
// directory, keyed by the lock's hash. It returns the directory holding
// node_modules, after checking that want (a path under it) is there.
func npmInstall(t *testing.T, name, want string) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	root, err := os.UserCacheDir()
	if err != nil {
		root = t.TempDir() // no cache: install for this run only
	}
	root = filepath.Join(root, "latchkey-e2e")
	dir := filepath.Join(root, name+"-"+hex.EncodeToString(sum[:12]))
	if _, err := os.Stat(filepath.Join(dir, want)); err == nil {
		return dir
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		missing(t, "no npm on PATH to install "+name+" with (Debian: apt-get install nodejs npm)")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(root, "installing-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp) // after a successful rename, nothing is left there
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci (%s): %v\n%s", name, err, out)
	}
	// The rename fails when another test process got there first: then its copy
	// is used.
	renameErr := os.Rename(tmp, dir)
	if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
		t.Fatalf("no %s after npm ci (rename: %v): %v", want, renameErr, err)
	}
	return dir
}

// missing skips the test for a missing tool, or fails it under LATCHKEY_REQUIRE_BROWSER=1.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(browserEnv) == "1" {
		t.Fatalf("%s=1 but %s", browserEnv, why)
	}
	t.Skipf("SKIPPED, %s NOT TESTED: %s (set %s=1 to fail instead)", t.Name(), why, browserEnv)
}
