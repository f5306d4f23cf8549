package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// syncBuffer is a bytes.Buffer safe to read while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env builds a getenv from pairs, so tests never see the real environment.
func env(pairs ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return func(k string) string { return m[k] }
}

// runCLI runs a command that is expected to end by itself.
func runCLI(t *testing.T, getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	code = run(ctx, args, &out, &errb, getenv)
	return code, out.String(), errb.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runningServer is a `latchkey serve` running in-process.
type runningServer struct {
	addr   string
	stdout *syncBuffer
	stderr *syncBuffer
	stop   func() int
}

// startServe runs `latchkey serve` with args plus a free --addr and waits until /readyz answers 200.
func startServe(t *testing.T, getenv func(string) string, args ...string) *runningServer {
	t.Helper()
	s := &runningServer{addr: freeAddr(t), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", s.addr}, args...), s.stdout, s.stderr, getenv)
	}()
	var once sync.Once
	code := -1
	s.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
		return code
	}
	t.Cleanup(func() { s.stop() })

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before it was ready:\n%s", code, s.stderr)
		default:
		}
		if res, err := http.Get("http://" + s.addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve never became ready:\n%s", s.stderr)
	return nil
}

func openSQLite(t *testing.T, path string) storage.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, env(), "version")
	if code != 0 || !strings.HasPrefix(out, "latchkey ") || errOut != "" {
		t.Fatalf("version = %d %q %q", code, out, errOut)
	}
}

// seed check counts realm and client roles too.
func TestSeedCheck_CountsRoles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "roles.yaml")
	yaml := "realms:\n  - name: shop\n    roles:\n      - name: user\n      - name: admin\n        composites: {realm: [user]}\n" +
		"    clients:\n      - id: api\n        grant_types: [client_credentials]\n        secret: \"0123456789abcdef0123456789abcdef\"\n" +
		"        roles:\n          - name: read\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, env("LATCHKEY_DATA_DIR", t.TempDir()), "seed", "check", file)
	if code != 0 || errOut != "" || !strings.HasSuffix(out, "roles.yaml: valid: 1 realms, 1 clients, 0 users, 3 roles\n") {
		t.Fatalf("seed check = %d %q %q", code, out, errOut)
	}
}

// seed check validates as serve --seed does, touching no database.
func TestSeedCheck(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, env("LATCHKEY_DATA_DIR", dir), "seed", "check", "../../internal/seed/testdata/acme.yaml")
	if code != 0 || errOut != "" || !strings.HasSuffix(out, "acme.yaml: valid: 1 realms, 3 clients, 1 users, 0 roles\n") {
		t.Fatalf("seed check = %d %q %q", code, out, errOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("seed check wrote to the data directory: %v", entries)
	}
}

func TestDevModeSeedsTheDevRealmAndReusesItsData(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "latchkey-data")
	s := startServe(t, env(), "--dev", "--data-dir", dataDir)

	res, err := http.Get("http://" + s.addr + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/healthz = %v, %v", res, err)
	}
	res.Body.Close()
	banner := s.stdout.String()
	for _, want := range []string{"issuer          http://" + s.addr + "/realms/dev", "demo-web", "demo-spa", "demo-bff", "demo "} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, s.stderr)
	}

	var creds devCredentials
	b, err := os.ReadFile(filepath.Join(dataDir, devCredsFile))
	if err != nil || json.Unmarshal(b, &creds) != nil || len(creds.ClientSecret) < 52 {
		t.Fatalf("dev credentials file: %s, %v", b, err)
	}
	if !strings.Contains(banner, creds.ClientSecret) || !strings.Contains(banner, creds.UserPassword) {
		t.Fatal("the banner must print the demo credentials")
	}
	// Dev secrets are printed to stdout for the developer, never logged.
	if strings.Contains(s.stderr.String(), creds.ClientSecret) || strings.Contains(s.stderr.String(), creds.UserPassword) {
		t.Fatalf("the log holds a demo credential:\n%s", s.stderr)
	}
	for _, name := range []string{"latchkey.db", "master.key", devCredsFile} {
		info, err := os.Stat(filepath.Join(dataDir, name))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", name, info.Mode().Perm(), err)
		}
	}

	// A second start reuses the key, the database and the credentials.
	s2 := startServe(t, env(), "--dev", "--data-dir", dataDir)
	if !strings.Contains(s2.stdout.String(), creds.ClientSecret) {
		t.Fatal("the second start printed other demo credentials")
	}
	if !strings.Contains(s2.stderr.String(), "created=0 updated=0 unchanged=7") {
		t.Fatalf("the second start re-seeded:\n%s", s2.stderr)
	}
	s2.stop()

	st := openSQLite(t, filepath.Join(dataDir, "latchkey.db"))
	web, err := st.GetClient(t.Context(), "dev", "demo-web")
	if err != nil {
		t.Fatal(err)
	}
	key, err := masterkey.Load(filepath.Join(dataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := clientsecret.NewHasher(key).Verify("dev", "demo-web", creds.ClientSecret, web.SecretHash); !ok || err != nil {
		t.Fatalf("the demo client's stored secret does not verify: %v", err)
	}
	spa, err := st.GetClient(t.Context(), "dev", "demo-spa")
	if err != nil || !spa.Public() {
		t.Fatalf("demo-spa = %+v, %v; want a public client", spa, err)
	}
	// The client of `latchkey bff --dev` (issue 15): confidential, its secret in the
	// credentials file and the banner, the BFF's callback and back-channel logout URLs.
	bffc, err := st.GetClient(t.Context(), "dev", "demo-bff")
	if err != nil || bffc.Public() || !slices.Equal(bffc.RedirectURIs, []string{"http://127.0.0.1:9090/bff/callback"}) ||
		bffc.BackchannelLogoutURI != "http://127.0.0.1:9090/bff/backchannel-logout" ||
		!slices.Contains(bffc.GrantTypes, "refresh_token") || !slices.Contains(bffc.Scopes, "offline_access") {
		t.Fatalf("demo-bff = %+v, %v", bffc, err)
	}
	if ok, err := clientsecret.NewHasher(key).Verify("dev", "demo-bff", creds.BFFClientSecret, bffc.SecretHash); !ok || err != nil || !strings.Contains(banner, creds.BFFClientSecret) {
		t.Fatalf("the demo-bff secret does not verify or is not in the banner: %v", err)
	}
	adm, err := st.GetClient(t.Context(), "master", creds.AdminClientID)
	if err != nil || !slices.Equal(adm.Scopes, []string{"latchkey:admin", "latchkey:admin:read"}) {
		t.Fatalf("admin client = %+v, %v", adm, err)
	}
	if ok, err := clientsecret.NewHasher(key).Verify("master", creds.AdminClientID, creds.AdminClientSecret, adm.SecretHash); !ok || err != nil {
		t.Fatalf("the admin client's stored secret does not verify: %v", err)
	}
}

// serve --dev makes an admin client in realm master, keeps it in the credentials
// file (added to a file written before there was one), prints it, and its token
// administers the dev realm.
func TestDevModeAdminClient(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "latchkey-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := `{"client_secret": "old-secret-0123456789abcdefghijklmnopqrstuvwxyz", "user_password": "old-password-123"}`
	if err := os.WriteFile(filepath.Join(dataDir, devCredsFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, env(), "--dev", "--data-dir", dataDir)
	defer s.stop()
	var creds devCredentials
	b, err := os.ReadFile(filepath.Join(dataDir, devCredsFile))
	if err != nil || json.Unmarshal(b, &creds) != nil {
		t.Fatalf("dev credentials file: %s, %v", b, err)
	}
	want := "http://" + s.addr + "/realms/master/protocol/openid-connect/token"
	if creds.ClientSecret != "old-secret-0123456789abcdefghijklmnopqrstuvwxyz" || creds.AdminClientID != "latchkey-admin" ||
		len(creds.AdminClientSecret) < 32 || creds.AdminTokenURL != want {
		t.Fatalf("credentials = %+v; want the old ones kept and an admin client added", creds)
	}
	banner := s.stdout.String()
	for _, w := range []string{creds.AdminClientID, creds.AdminClientSecret, creds.AdminTokenURL} {
		if !strings.Contains(banner, w) {
			t.Errorf("banner lacks %q:\n%s", w, banner)
		}
	}
	req, _ := http.NewRequest("POST", creds.AdminTokenURL, strings.NewReader("grant_type=client_credentials&scope=latchkey:admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(creds.AdminClientID, creds.AdminClientSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("admin token: %d", res.StatusCode)
	}
	req, _ = http.NewRequest("GET", "http://"+s.addr+"/admin/realms/dev/clients/demo-web", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET demo-web with the dev admin token: %d", res.StatusCode)
	}
}

const acmeSeed = "../../internal/seed/testdata/acme.yaml"

func TestSeedFileCreatesRealmClientsAndUserIdempotently(t *testing.T) {
	dir := t.TempDir()
	key := rand.Text() + rand.Text() // not a valid key: must be refused
	code, _, errOut := runCLI(t, env("LATCHKEY_MASTER_KEY", key), "serve", "--insecure-http", "--addr", freeAddr(t), "--data-dir", dir, "--seed", acmeSeed)
	if code == 0 || !strings.Contains(errOut, "master key must be 32 bytes") || strings.Contains(errOut, key) {
		t.Fatalf("a malformed master key: %d %q", code, errOut)
	}

	mk := "q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA="
	getenv := env("LATCHKEY_MASTER_KEY", mk, "LATCHKEY_SEED", acmeSeed)
	s := startServe(t, getenv, "--insecure-http", "--data-dir", dir)
	logs := s.stderr.String()
	if !strings.Contains(logs, "created=5") {
		t.Fatalf("first start did not create realm, 3 clients and a user:\n%s", logs)
	}
	for _, secret := range []string{"web-secret-123-0123456789abcdefghijklmnop", "svc-secret-123-0123456789abcdefghijklmnop", "alice-password-1", mk} {
		if strings.Contains(logs+s.stdout.String(), secret) {
			t.Fatalf("output echoes a secret %q:\n%s", secret, logs)
		}
	}
	s.stop()

	s = startServe(t, getenv, "--insecure-http", "--data-dir", dir)
	if !strings.Contains(s.stderr.String(), "created=0 updated=0 unchanged=5") {
		t.Fatalf("re-applying the same seed changed something:\n%s", s.stderr)
	}
	s.stop()

	st := openSQLite(t, filepath.Join(dir, "latchkey.db"))
	ctx := t.Context()
	clients, err := st.ListClients(ctx, "acme")
	if err != nil || len(clients) != 3 {
		t.Fatalf("clients = %+v, %v", clients, err)
	}
	k, _ := masterkey.Parse(mk)
	h := clientsecret.NewHasher(k)
	for _, c := range clients {
		switch c.ID {
		case "web", "svc":
			if ok, _ := h.Verify("acme", c.ID, c.ID+"-secret-123-0123456789abcdefghijklmnop", c.SecretHash); !ok || strings.Contains(c.SecretHash, "secret-123") {
				t.Errorf("client %s stored secret %q", c.ID, c.SecretHash)
			}
		case "spa":
			if !c.Public() {
				t.Errorf("spa is not public")
			}
		}
	}
	alice, err := st.GetUserByUsername(ctx, "acme", "alice")
	if err != nil || alice.Email != "alice@example.com" || !strings.HasPrefix(alice.PasswordHash, "$argon2id$") {
		t.Fatalf("alice = %+v, %v", alice, err)
	}
}

func TestBadSeedFileStopsStartAndChangesNothing(t *testing.T) {
	dir := t.TempDir()
	getenv := env("LATCHKEY_MASTER_KEY", "q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA=")
	s := startServe(t, getenv, "--insecure-http", "--data-dir", dir, "--seed", acmeSeed)
	s.stop()

	base, _ := os.ReadFile(acmeSeed)
	bad := strings.Replace(string(base), "email: alice@example.com", "email: alice@changed.example", 1)
	bad = strings.Replace(bad, "grant_types: [client_credentials]", "grant_types: [client_credentials, implicit]", 1)
	badPath := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badPath, []byte(bad), 0o600)

	code, _, errOut := runCLI(t, getenv, "serve", "--insecure-http", "--addr", freeAddr(t), "--data-dir", dir, "--seed", badPath)
	want := badPath + `:15: realms[0].clients[2].grant_types[1]: grant type "implicit" is not offered`
	if code == 0 || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("bad seed: exit %d, stderr %q; want one line with %q", code, errOut, want)
	}
	alice, err := openSQLite(t, filepath.Join(dir, "latchkey.db")).GetUserByUsername(t.Context(), "acme", "alice")
	if err != nil || alice.Email != "alice@example.com" {
		t.Fatalf("a refused seed changed the store: %+v, %v", alice, err)
	}
}

// Every bad start is one clear line on stderr and a non-zero exit.
func TestBadInputIsOneLineAndNonZeroExit(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.db")
	junk := make([]byte, 8192)
	rand.Read(junk)
	os.WriteFile(corrupt, junk, 0o600)
	notADir := filepath.Join(dir, "file")
	os.WriteFile(notADir, []byte("x"), 0o600)
	shortSecret := filepath.Join(dir, "short-secret.yaml")
	os.WriteFile(shortSecret, []byte("realms:\n  - name: acme\n    clients:\n      - id: web\n        secret: \"1\"\n        grant_types: [client_credentials]\n"), 0o600)
	key := "LATCHKEY_MASTER_KEY"
	mk := "q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA="
	// Tests listen on free ports only: a developer's `serve --dev` on the default
	// address must not fail them. Hold that address while the cases run (when it is
	// free) so a case that falls back to it fails here, not only on such a machine.
	if ln, err := net.Listen("tcp", config.DefaultDevAddr); err == nil {
		defer ln.Close()
	}
	free := freeAddr(t)

	cases := []struct {
		name   string
		getenv func(string) string
		args   []string
		want   string
	}{
		{"unknown flag", env(), []string{"serve", "--frobnicate"}, "unknown flag: --frobnicate"},
		{"seed check of a bad seed", env(), []string{"seed", "check", shortSecret}, `realms[0].clients[0].secret: client "web": secret must have at least 32 characters`},
		{"seed check of no file", env(), []string{"seed", "check", filepath.Join(dir, "nope.yaml")}, "seed file: open"},
		{"unknown command", env(), []string{"serv"}, `unknown command "serv"`},
		{"stray argument", env(), []string{"serve", "extra"}, `unknown command "extra"`},
		{"bad address", env(), []string{"serve", "--dev", "--data-dir", dir, "--addr", "8080"}, `--addr "8080": want host:port`},
		{"bad log level", env(), []string{"serve", "--dev", "--addr", free, "--data-dir", dir, "--log-level", "loud"}, `--log-level "loud"`},
		{"no master key", env(), []string{"serve", "--addr", free, "--base-url", "https://id.example", "--data-dir", dir}, "no master key"},
		{"plain-HTTP issuer", env(key, mk), []string{"serve", "--addr", free, "--base-url", "http://id.example", "--data-dir", dir}, "the issuer must be https://"},
		{"no issuer", env(key, mk), []string{"serve", "--addr", free, "--data-dir", dir}, "--base-url is required outside dev mode"},
		{"plain HTTP off loopback", env(key, mk), []string{"serve", "--insecure-http", "--addr", "0.0.0.0:0", "--data-dir", dir}, "is not a loopback address"},
		{"bad trusted proxy", env(), []string{"serve", "--dev", "--addr", free, "--data-dir", dir, "--trusted-proxies", "10.0.0.0/8,10.0.0.300/32"}, `--trusted-proxies: "10.0.0.300/32" is not a CIDR`},
		{"bad trusted proxy in the environment", env("LATCHKEY_TRUSTED_PROXIES", "proxy.internal"), []string{"serve", "--dev", "--addr", free, "--data-dir", dir}, `--trusted-proxies: "proxy.internal" is not an IP address or CIDR`},
		{"unreachable PostgreSQL", env(), []string{"serve", "--dev", "--addr", free, "--data-dir", dir, "--db", "postgres://latchkey:hunter2-secret@127.0.0.1:1/latchkey?sslmode=disable&connect_timeout=2"}, "cannot reach PostgreSQL at 127.0.0.1:1"},
		{"corrupt SQLite file", env(), []string{"serve", "--dev", "--addr", free, "--data-dir", dir, "--db", corrupt}, "not a SQLite database"},
		{"unwritable data directory", env(), []string{"serve", "--dev", "--addr", free, "--data-dir", filepath.Join(notADir, "data")}, "data directory " + filepath.Join(notADir, "data")},
		{"missing seed file", env(), []string{"serve", "--dev", "--addr", free, "--data-dir", dir, "--seed", filepath.Join(dir, "nope.yaml")}, "seed file: open"},
		{"port in use", env(), []string{"serve", "--dev", "--data-dir", dir, "--addr", ""}, "address already in use"},
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases[len(cases)-1].args[len(cases[len(cases)-1].args)-1] = busy.Addr().String()

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.getenv, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0; stdout %q", out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "latchkey: ") {
				t.Fatalf("stderr is not one line: %q", errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr = %q, want it to contain %q", errOut, tc.want)
			}
			for _, secret := range []string{"hunter2-secret", mk} {
				if strings.Contains(errOut, secret) {
					t.Fatalf("stderr leaks a secret: %q", errOut)
				}
			}
		})
	}
}

// The binary itself, as `go run ./cmd/latchkey serve --dev` starts it: a real process
// that answers /readyz and shuts down cleanly on SIGTERM.
func TestBinaryServesDevModeAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "latchkey")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	addr := freeAddr(t)
	var stdout, stderr syncBuffer
	cmd := exec.Command(bin, "serve", "--dev", "--addr", addr)
	cmd.Dir = work
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	ready := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			ready = res.StatusCode == 200
		}
	}
	if !ready {
		t.Fatalf("never ready:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("http://%s/realms/dev", addr)) {
		t.Fatalf("no issuer printed:\n%s", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(work, "latchkey-data", "latchkey.db")); err != nil {
		t.Fatalf("dev data not under ./latchkey-data: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Fatalf("no graceful shutdown logged:\n%s", stderr.String())
	}
}

func TestDevAndSeedCombine(t *testing.T) {
	dataDir := t.TempDir()
	s := startServe(t, env(), "--dev", "--data-dir", dataDir, "--seed", acmeSeed)
	if n := strings.Count(s.stderr.String(), "seed applied"); n != 2 {
		t.Fatalf("want the dev realm and the seed file applied, got %d:\n%s", n, s.stderr)
	}
	s.stop()
	realms, err := openSQLite(t, filepath.Join(dataDir, "latchkey.db")).ListRealms(t.Context())
	if err != nil || len(realms) != 3 || realms[0].Name != "acme" || realms[1].Name != "dev" || realms[2].Name != "master" {
		t.Fatalf("realms = %+v, %v; want acme, dev and master", realms, err)
	}
}

func TestKeysRotateAndList(t *testing.T) {
	dataDir := t.TempDir()
	s := startServe(t, env(), "--dev", "--data-dir", dataDir)
	s.stop()

	code, out, errOut := runCLI(t, env(), "keys", "rotate", "--realm", "dev", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "new ES256 key") {
		t.Fatalf("rotate: %d %q %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, env(), "keys", "rotate", "--realm", "dev", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("second rotate: %d", code)
	}
	code, out, _ = runCLI(t, env(), "keys", "list", "--realm", "dev", "--data-dir", dataDir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "KID") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	// The first key now has an end to its signing; the newest has none.
	if strings.Count(lines[1], " - ") != 0 || !strings.Contains(lines[2], " - ") {
		t.Fatalf("list shows no retirement:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "rotate", "--data-dir", dataDir}, "--realm is required"},
		{[]string{"keys", "rotate", "--realm", "nope", "--data-dir", dataDir}, `realm "nope" not found`},
		{[]string{"keys", "rotate", "--realm", "dev", "--data-dir", t.TempDir()}, "no master key"},
	} {
		code, _, errOut := runCLI(t, env(), tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: %d %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestSessionsListAndRevoke(t *testing.T) {
	dataDir := t.TempDir()
	s := startServe(t, env(), "--dev", "--data-dir", dataDir)
	s.stop()
	st := openSQLite(t, filepath.Join(dataDir, "latchkey.db"))
	ctx := t.Context()
	demo, err := st.GetUserByUsername(ctx, "dev", "demo")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"fam-a", "fam-b"} {
		f := storage.Family{ID: id, Realm: "dev", ClientID: "demo-web", UserID: demo.ID, CreatedAt: now, LastUsedAt: now,
			IdleExpiresAt: now.Add(time.Hour), AbsoluteExpiresAt: now.Add(24 * time.Hour), IP: "192.0.2.7", UserAgent: "TestBrowser/1.0"}
		if err := st.CreateFamily(ctx, f, storage.RefreshToken{Hash: []byte(id), IssuedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--realm", "dev", "--user", "demo", "--data-dir", dataDir}

	code, out, errOut := runCLI(t, env(), append([]string{"sessions", "list"}, args...)...)
	if code != 0 || !strings.Contains(out, "fam-a") || !strings.Contains(out, "TestBrowser/1.0") || !strings.Contains(out, "demo-web") {
		t.Fatalf("list: %d %q %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, env(), append([]string{"sessions", "revoke", "--family", "fam-a"}, args...)...)
	if code != 0 || !strings.Contains(out, "fam-a") {
		t.Fatalf("revoke --family: %d %q", code, out)
	}
	if f, _ := st.GetFamily(ctx, "fam-a"); f.RevokedAt.IsZero() {
		t.Fatal("fam-a not revoked")
	}
	if f, _ := st.GetFamily(ctx, "fam-b"); !f.RevokedAt.IsZero() {
		t.Fatal("fam-b revoked too")
	}
	code, _, _ = runCLI(t, env(), append([]string{"sessions", "revoke", "--all"}, args...)...)
	if code != 0 {
		t.Fatal("revoke --all failed")
	}
	if f, _ := st.GetFamily(ctx, "fam-b"); f.RevokedAt.IsZero() {
		t.Fatal("log out everywhere left fam-b")
	}
	if u, _ := st.GetUser(ctx, "dev", demo.ID); u.TokensValidAfter.IsZero() {
		t.Fatal("log out everywhere did not set tokens_valid_after")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sessions", "list", "--data-dir", dataDir}, "--realm and --user are required"},
		{[]string{"sessions", "list", "--realm", "dev", "--user", "nobody", "--data-dir", dataDir}, `no user "nobody" in realm "dev"`},
		{append([]string{"sessions", "revoke"}, args...), "exactly one of --family ID and --all"},
		{append([]string{"sessions", "revoke", "--all", "--family", "x"}, args...), "exactly one of --family ID and --all"},
		{append([]string{"sessions", "revoke", "--family", "nope"}, args...), `demo has no session "nope"`},
	} {
		code, _, errOut := runCLI(t, env(), tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: %d %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestBuildString(t *testing.T) {
	for _, tc := range []struct {
		b    build
		want string
	}{
		{build{Version: "(devel)", Go: "go1.26"}, "latchkey (devel) go1.26"},
		{build{Version: "v1.2.3", Revision: "9b560b4", Time: "2026-12-03T08:40:00Z", Go: "go1.26"},
			"latchkey v1.2.3 rev 9b560b4 2026-12-03T08:40:00Z go1.26"},
		{build{Version: "(devel)", Revision: "9b560b4", Time: "2026-12-03T08:40:00Z", Modified: true, Go: "go1.26"},
			"latchkey (devel) rev 9b560b4 2026-12-03T08:40:00Z modified go1.26"},
	} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
