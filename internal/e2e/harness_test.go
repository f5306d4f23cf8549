package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
	"github.com/latchkey/latchkey/storage/sqlite"
)

func TestMain(m *testing.M) {
	pgtest.Main(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	// Returning lets the test binary exit with m.Run's code.
	if err := checkAdminCoverage(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}

// The binary is built once per test run, without the race detector: it is the
// program an operator runs.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the latchkey binary")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "latchkey-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "latchkey")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/latchkey/latchkey/cmd/latchkey").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Credentials of the default seed. Client secrets are 32 characters or more.
const (
	webSecret   = "web-secret-0123456789abcdefghijklmnop"
	svcSecret   = "svc-secret-0123456789abcdefghijklmnop"
	opqSecret   = "opq-secret-0123456789abcdefghijklmnop"
	alicePass   = "alice-password-1"
	callback    = "http://127.0.0.1:9999/cb"
	verifier    = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	challenge   = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 appendix B
	masterKey   = "q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA="
	webBasic    = "web:" + webSecret
	svcBasic    = "svc:" + svcSecret
	defaultSeed = `
realms:
  - name: acme
    clients:
      - id: web
        name: Web App
        secret: ` + webSecret + `
        redirect_uris: [` + callback + `]
        post_logout_redirect_uris: [http://127.0.0.1:9999/bye]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, email, offline_access]
      - id: spa
        redirect_uris: [` + callback + `]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
      - id: svc
        secret: ` + svcSecret + `
        grant_types: [client_credentials]
        scopes: [orders:read, orders:write]
      - id: opq
        secret: ` + opqSecret + `
        grant_types: [client_credentials]
        scopes: [orders:read]
        access_token_format: opaque
    users:
      - username: alice
        password: ` + alicePass + `
        email: alice@example.com
        email_verified: true
        name: Alice Liddell
`
)

// options change how a server is started.
type options struct {
	seed string            // seed file contents; defaultSeed when empty
	args []string          // extra serve flags
	env  map[string]string // extra environment
	db   string            // --db; set by eachStore
	addr string            // --addr, and so the base URL; a free port when empty
	// https gives the server an https base URL (TLS ends before it, as behind a
	// proxy) and no --insecure-http, so it allows no plain http; requests still
	// go to URL over plain http.
	https bool
}

// server is a running `latchkey serve` process.
type server struct {
	t    testing.TB
	URL  string // base URL, also the listen address
	cmd  *exec.Cmd
	logs *syncBuffer // stdout and stderr
	done chan struct{}
}

// stores runs fn once on SQLite and once on PostgreSQL (a fresh database each).
func stores(t *testing.T, fn func(t *testing.T, db string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "latchkey.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.DSN(t)) })
}

// start runs the binary on o.db (a SQLite path or a PostgreSQL URL) with the seed,
// and waits until /readyz answers 200. The process is stopped when the test ends.
func start(t testing.TB, o options) *server {
	t.Helper()
	bin := binary(t)
	addr := o.addr
	if addr == "" {
		addr = freeAddr(t)
	}
	seedFile := filepath.Join(t.TempDir(), "seed.yaml")
	seed := o.seed
	if seed == "" {
		seed = defaultSeed
	}
	if err := os.WriteFile(seedFile, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if o.db == "" {
		o.db = filepath.Join(t.TempDir(), "latchkey.db")
	}
	s := &server{t: t, URL: "http://" + addr, logs: &syncBuffer{}, done: make(chan struct{})}
	args := []string{"serve", "--insecure-http", "--addr", addr, "--base-url", s.URL}
	if o.https {
		args = []string{"serve", "--addr", addr, "--base-url", "https://" + addr}
	}
	args = append(append(args, "--db", o.db, "--data-dir", t.TempDir(), "--seed", seedFile), o.args...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = []string{"LATCHKEY_MASTER_KEY=" + masterKey, "PATH=" + os.Getenv("PATH")}
	for k, v := range o.env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)

	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-s.done:
			t.Fatalf("latchkey exited before it was ready:\n%s", s.logs)
		default:
		}
		if res, err := http.Get(s.URL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
	}
	t.Fatalf("latchkey never became ready:\n%s", s.logs)
	return nil
}

// stop ends the process with SIGTERM (SIGKILL if it does not stop in time).
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if s.t.Failed() {
		s.t.Logf("latchkey output:\n%s", s.logs)
	}
}

// rss is the process's resident set size in bytes, from /proc.
func (s *server) rss() int64 {
	s.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		s.t.Fatalf("no VmRSS in /proc status")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

func (s *server) issuer(realm string) string { return s.URL + "/realms/" + realm }
func (s *server) tokenURL() string           { return s.issuer("acme") + "/protocol/openid-connect/token" }
func (s *server) introspectURL() string      { return s.tokenURL() + "/introspect" }
func (s *server) revokeURL() string          { return s.issuer("acme") + "/protocol/openid-connect/revoke" }
func (s *server) userinfoURL() string        { return s.issuer("acme") + "/protocol/openid-connect/userinfo" }

// authURL builds an authorization request for client (PKCE S256), with kv
// overriding or (when the value is "") removing parameters.
func (s *server) authURL(client string, kv ...string) string {
	v := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {callback},
		"scope": {"openid profile offline_access"}, "state": {"xyz"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			v.Del(kv[i])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	return s.issuer("acme") + "/protocol/openid-connect/auth?" + v.Encode()
}

// redeem exchanges a code at the token endpoint; basic is "id:secret" or "" (then
// client_id=spa goes in the form).
func (s *server) redeem(t testing.TB, basic, code string) response {
	t.Helper()
	f := form("grant_type", "authorization_code", "code", code, "redirect_uri", callback, "code_verifier", verifier)
	if basic == "" {
		f.Set("client_id", "spa")
	}
	return post(t, s.tokenURL(), basic, f)
}

func (s *server) refresh(t testing.TB, basic, rt string) response {
	t.Helper()
	return post(t, s.tokenURL(), basic, form("grant_type", "refresh_token", "refresh_token", rt))
}

func (s *server) introspect(t testing.TB, basic, tok string, kv ...string) response {
	t.Helper()
	return post(t, s.introspectURL(), basic, form(append([]string{"token", tok}, kv...)...))
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// invalidGrant reports whether the token endpoint answered 400 invalid_grant.
func (r response) invalidGrant() bool { return r.status == 400 && r.str("error") == "invalid_grant" }

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

// client is shared by the helpers: many idle connections, so races are not
// serialised by dialing.
var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}

// post sends a form; basic is "id:secret" or "".
func post(t testing.TB, endpoint, basic string, f url.Values) response {
	t.Helper()
	req, err := http.NewRequest("POST", endpoint, strings.NewReader(f.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return do(t, req)
}

// do sends req; a transport error fails the test (use client.Do to see them).
func do(t testing.TB, req *http.Request) response {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func wantInactive(t testing.TB, what string, r response) {
	t.Helper()
	if r.status != 200 || strings.TrimSpace(r.raw) != `{"active":false}` {
		t.Fatalf("%s: introspection = %d %s; want exactly {\"active\":false}", what, r.status, r.raw)
	}
}

// browser is a user agent with a cookie jar that stops at the client's redirect
// URI, as a browser hands over to the app there.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 60 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == "127.0.0.1:9999" {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

type page struct {
	status   int
	body     string
	header   http.Header
	location *url.URL // set when the response sent the browser to the app
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	p := page{status: res.StatusCode, body: string(body), header: res.Header}
	if loc, err := res.Location(); err == nil {
		p.location = loc
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

// loginRequest builds the POST of the login page's form, as a same-origin browser
// sends it, with fields added to its hidden ones.
func (b *browser) loginRequest(p page, base string, fields ...string) *http.Request {
	b.t.Helper()
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(p.body)
	if action == nil {
		b.t.Fatalf("no form on the page (%d):\n%s", p.status, p.body)
	}
	f := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`).FindAllStringSubmatch(p.body, -1) {
		f.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		f.Set(fields[i], fields[i+1])
	}
	u, _ := url.Parse(base)
	req, _ := http.NewRequest("POST", u.Scheme+"://"+u.Host+html.UnescapeString(action[1]), strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return req
}

// code signs in (once per browser; later calls ride the session) and returns a
// fresh authorization code for client.
func (b *browser) code(s *server, client string) string {
	b.t.Helper()
	u := s.authURL(client)
	p := b.get(u)
	if p.location == nil {
		if p.status != 200 || !strings.Contains(p.body, `name="password"`) {
			b.t.Fatalf("no login page (%d): %s", p.status, p.body)
		}
		p = b.do(b.loginRequest(p, u, "username", "alice", "password", alicePass))
	}
	if p.location == nil || p.location.Query().Get("code") == "" {
		b.t.Fatalf("no code (%d %v): %s", p.status, p.location, p.body)
	}
	return p.location.Query().Get("code")
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe to read while the process writes to it.
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

// openStore opens the store a server uses (or used), beside it, to read what it
// recorded.
func openStore(t *testing.T, db string) storage.Store {
	t.Helper()
	var st storage.Store
	var err error
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		st, err = postgres.Open(t.Context(), db)
	} else {
		st, err = sqlite.Open(t.Context(), sqlite.Config{Path: db})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// seedWith is defaultSeed with each old→new pair replaced once; the test fails if
// an old is not there to replace.
func seedWith(t testing.TB, oldNew ...string) string {
	t.Helper()
	seed := defaultSeed
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(seed, oldNew[i]) {
			t.Fatalf("the seed has no %q to replace", oldNew[i])
		}
		seed = strings.Replace(seed, oldNew[i], oldNew[i+1], 1)
	}
	return seed
}

// Seed edits that disable a user or a client of defaultSeed.
const (
	aliceLine = "        name: Alice Liddell\n"
	webLine   = "        name: Web App\n"
	svcLine   = "      - id: svc\n"
	disabled  = "        disabled: true\n"
)
