package e2e

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// The store timeout the servers below run with, and the bound every answer must
// come within while the store is frozen, locked or gone: a liveness bound (a few
// timeouts, generous for a loaded machine), not a measurement. Unbounded, a
// request would wait as long as the store does.
const (
	storeTimeout = "1s"
	answerBound  = 10 * time.Second
)

// A frozen PostgreSQL (every byte held, every connection kept open), then a
// stopped one, answer 503 temporarily_unavailable with Retry-After, fast, at the
// token endpoint, /readyz and the browser pages; once it is back, requests work.
func TestUnavailable_PostgresFrozenThenStopped(t *testing.T) {
	dsn, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	px := newTCPProxy(t, dsn.Host)
	dsn.Host = px.addr()
	s := start(t, options{db: dsn.String(), args: []string{"--store-timeout", storeTimeout}})

	tokens := s.redeem(t, webBasic, newBrowser(t).code(s, "web"))
	rt, at := tokens.str("refresh_token"), tokens.str("access_token")
	if rt == "" || at == "" {
		t.Fatalf("redeem = %d %s", tokens.status, tokens.raw)
	}
	// A login page, to post once the store is frozen.
	b := newBrowser(t)
	login := b.get(s.authURL("web"))
	if login.status != 200 {
		t.Fatalf("login page = %d", login.status)
	}

	px.freeze()
	// /readyz first: each store call takes the timeout, so by the time the token
	// requests run, the second the realm and clients stay cached is over.
	wantUnavailable(t, "readyz (frozen)", answer(t, getRequest(s.URL+"/readyz")))
	wantUnavailableJSON(t, "refresh (frozen)", answer(t, s.refreshRequest(webBasic, rt)))
	// opq is a client the server has not read yet, so its lookup reaches the store.
	wantUnavailableJSON(t, "client_credentials (frozen)", answer(t, s.clientCredentialsRequest("opq:"+opqSecret)))
	// More requests than the pool has connections: the wait for a connection is
	// bounded too.
	for i, r := range answerAll(t, 8, func() *http.Request { return s.refreshRequest(webBasic, rt) }) {
		wantUnavailableJSON(t, fmt.Sprintf("concurrent refresh %d (frozen)", i), r)
	}
	// Whether the token is active depends on its user and grant, which only the store knows.
	wantUnavailableJSON(t, "introspection (frozen)", answer(t, formRequest(s.introspectURL(), webBasic, form("token", at))))
	userinfo := getRequest(s.userinfoURL())
	userinfo.Header.Set("Authorization", "Bearer "+at)
	wantUnavailableJSON(t, "userinfo (frozen)", answer(t, userinfo))
	wantUnavailablePage(t, "authorize (frozen)", answer(t, htmlRequest(getRequest(s.authURL("spa")))))
	wantUnavailablePage(t, "login (frozen)", answerWith(t, b.client, htmlRequest(b.loginRequest(login, s.authURL("web"), "username", "alice", "password", alicePass))))

	px.thaw()
	waitReady(t, s)
	next := s.refresh(t, webBasic, rt)
	if next.status != 200 || next.str("refresh_token") == "" {
		t.Fatalf("refresh after the store came back = %d %s", next.status, next.raw)
	}
	if r := post(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials")); r.status != 200 {
		t.Fatalf("client_credentials after the store came back = %d %s", r.status, r.raw)
	}

	px.stop()
	wantUnavailable(t, "readyz (stopped)", answer(t, getRequest(s.URL+"/readyz")))
	wantUnavailableJSON(t, "refresh (stopped)", answer(t, s.refreshRequest(webBasic, next.str("refresh_token"))))
	wantUnavailableJSON(t, "client_credentials (stopped)", answer(t, s.clientCredentialsRequest("opq:"+opqSecret)))
	wantNoServerError(t, s)
}

// wantNoServerError checks the server never panicked nor answered 500.
func wantNoServerError(t *testing.T, s *server) {
	t.Helper()
	if logs := s.logs.String(); strings.Contains(logs, "panic") || strings.Contains(logs, `msg="request failed"`) {
		t.Fatal("the server panicked or answered 500")
	}
}

// A SQLite database whose write lock another process holds: writes answer 503
// temporarily_unavailable with Retry-After, fast; the writes given up on are
// never made later; once the lock is released, writes work.
func TestUnavailable_SQLiteWriteLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s := start(t, options{db: path, args: []string{"--store-timeout", storeTimeout}})
	rt := s.redeem(t, webBasic, newBrowser(t).code(s, "web")).str("refresh_token")
	if rt == "" {
		t.Fatal("no refresh token")
	}
	b := newBrowser(t)
	login := b.get(s.authURL("web"))
	if login.status != 200 {
		t.Fatalf("login page = %d", login.status)
	}

	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	// A rotation and a new session are writes.
	wantUnavailableJSON(t, "refresh (locked)", answer(t, s.refreshRequest(webBasic, rt)))
	for i, r := range answerAll(t, 8, func() *http.Request { return s.refreshRequest(webBasic, rt) }) {
		wantUnavailableJSON(t, fmt.Sprintf("concurrent refresh %d (locked)", i), r)
	}
	wantUnavailablePage(t, "login (locked)", answerWith(t, b.client, htmlRequest(b.loginRequest(login, s.authURL("web"), "username", "alice", "password", alicePass))))
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	next := s.refresh(t, webBasic, rt)
	if next.status != 200 || next.str("refresh_token") == "" {
		t.Fatalf("refresh after the lock was released = %d %s", next.status, next.raw)
	}
	// The first token and its one successor: none of the nine rotations given up on
	// was made once the lock came free.
	var n int
	if err := conn.QueryRowContext(t.Context(), "SELECT count(*) FROM refresh_tokens").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d refresh tokens stored, want 2: a write given up on was made later", n)
	}
	if r := s.refresh(t, webBasic, next.str("refresh_token")); r.status != 200 {
		t.Fatalf("second refresh after the lock was released = %d %s", r.status, r.raw)
	}
	wantNoServerError(t, s)
}

func (s *server) refreshRequest(basic, rt string) *http.Request {
	return formRequest(s.tokenURL(), basic, form("grant_type", "refresh_token", "refresh_token", rt))
}

func (s *server) clientCredentialsRequest(basic string) *http.Request {
	return formRequest(s.tokenURL(), basic, form("grant_type", "client_credentials"))
}

func formRequest(endpoint, basic string, f url.Values) *http.Request {
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return req
}

func getRequest(u string) *http.Request {
	req, _ := http.NewRequest("GET", u, nil)
	return req
}

// htmlRequest makes req ask for a page, as a browser's navigation or form post does.
func htmlRequest(req *http.Request) *http.Request {
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	return req
}

// impatient gives up a little after answerBound, so a request that hangs fails the
// test rather than stalling it.
var impatient = &http.Client{Timeout: answerBound + 5*time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send sends req with c and says how it was answered and how long that took.
func send(c *http.Client, req *http.Request) (response, time.Duration, error) {
	began := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return response{}, time.Since(began), err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	took := time.Since(began)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			return r, took, err
		}
	}
	return r, took, err
}

// answer sends req and fails the test unless it is answered within answerBound.
func answer(t *testing.T, req *http.Request) response {
	t.Helper()
	return answerWith(t, impatient, req)
}

// answerWith is answer with another client (a browser's, with its cookies).
func answerWith(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	r, took, err := send(c, req)
	if err == nil && took > answerBound {
		err = fmt.Errorf("answered %d after %v, want within %v", r.status, took.Round(time.Millisecond), answerBound)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	return r
}

// answerAll sends n requests at once and fails the test unless each is answered
// within answerBound.
func answerAll(t *testing.T, n int, req func() *http.Request) []response {
	t.Helper()
	out := make([]response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, took, err := send(impatient, req())
			if err == nil && took > answerBound {
				err = fmt.Errorf("answered %d after %v, want within %v", r.status, took.Round(time.Millisecond), answerBound)
			}
			out[i], errs[i] = r, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantUnavailable checks for a 503 with a Retry-After of some seconds.
func wantUnavailable(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("%s = %d %s, want 503", what, r.status, r.raw)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs <= 0 {
		t.Fatalf("%s: Retry-After = %q, want a number of seconds", what, r.header.Get("Retry-After"))
	}
}

// wantUnavailableJSON checks for a 503 with Retry-After and the RFC 6749 error body.
func wantUnavailableJSON(t *testing.T, what string, r response) {
	t.Helper()
	wantUnavailable(t, what, r)
	if r.str("error") != "temporarily_unavailable" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s = %s %s, want a JSON body with error temporarily_unavailable", what, r.header.Get("Content-Type"), r.raw)
	}
}

// wantUnavailablePage checks for a 503 with Retry-After and an HTML page.
func wantUnavailablePage(t *testing.T, what string, r response) {
	t.Helper()
	wantUnavailable(t, what, r)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.raw, "Temporarily unavailable") {
		t.Fatalf("%s = %s %s, want the HTML page saying the service is temporarily unavailable", what, r.header.Get("Content-Type"), r.raw)
	}
}

// waitReady waits, within a liveness bound, for /readyz to answer 200 again.
func waitReady(t *testing.T, s *server) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r, _, err := send(impatient, getRequest(s.URL+"/readyz")); err == nil && r.status == 200 {
			return
		}
	}
	t.Fatal("/readyz never answered 200 again")
}

// tcpProxy forwards connections from a free loopback port to target. Frozen, it
// holds every byte (and every close) in both directions while keeping the
// connections open, as a paused server or a silent network does; stopped, it
// closes its listener and every connection, as a stopped server does.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	thawed  chan struct{} // closed while the proxy forwards; open while frozen
	conns   []net.Conn
	stopped bool
	wg      sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, thawed: make(chan struct{})}
	close(p.thawed)
	p.wg.Go(p.accept)
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, upstream) {
			return
		}
		p.wg.Go(func() { p.pump(upstream, client) })
		p.wg.Go(func() { p.pump(client, upstream) })
	}
}

// track remembers the connections for stop, unless the proxy has stopped.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, conns...)
	return true
}

// pump copies src to dst, waiting out every freeze before it passes anything on.
func (p *tcpProxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.waitThawed()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

func (p *tcpProxy) waitThawed() {
	p.mu.Lock()
	thawed := p.thawed
	p.mu.Unlock()
	<-thawed
}

func (p *tcpProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.thawed = make(chan struct{})
}

func (p *tcpProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// stop closes the listener and every connection, and waits for the proxy's goroutines.
func (p *tcpProxy) stop() {
	p.ln.Close()
	p.thaw()
	p.mu.Lock()
	p.stopped = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
