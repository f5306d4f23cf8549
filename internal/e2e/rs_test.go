package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey/latchkey/rs"
)

// The orders API of these tests: its audience, and its own confidential client
// (client credentials) with which rs and the gate follow the revocation feed and
// introspect opaque tokens.
const (
	ordersAud       = "https://orders.example"
	ordersAPISecret = "orders-api-secret-0123456789abcdefghij"
	callerSecret    = "caller-secret-0123456789abcdefghijklmn"
	callerBasic     = "caller:" + callerSecret
)

// rsSeed is the admin seed with tokens of web (users) and opq (opaque) for the orders
// API, a caller client (client credentials) for it, and the API's own client.
func rsSeed(t testing.TB) string {
	seed := adminSeed(t)
	for _, r := range [][2]string{
		{webLine, webLine + "        audiences: [" + ordersAud + "]\n"},
		{"        access_token_format: opaque\n", "        access_token_format: opaque\n        audiences: [" + ordersAud + "]\n"},
		{"    users:\n", `      - id: orders-api
        secret: ` + ordersAPISecret + `
        grant_types: [client_credentials]
        scopes: [orders:read]
      - id: caller
        secret: ` + callerSecret + `
        grant_types: [client_credentials]
        scopes: [orders:read, orders:write]
        audiences: [` + ordersAud + `]
    users:
`},
	} {
		if !strings.Contains(seed, r[0]) {
			t.Fatalf("the seed has no %q", r[0])
		}
		seed = strings.Replace(seed, r[0], r[1], 1)
	}
	return seed
}

// asProxy stands between the authorization server and the resource servers (the
// server's --base-url is the proxy, so the issuer and every endpoint discovery names
// go through it). It counts the requests it forwards by path, and can be cut: open
// streams end and new requests fail until it is restored.
type asProxy struct {
	URL string

	mu      sync.Mutex
	counts  map[string]int
	cursors []string // the Last-Event-ID of each connection to the feed
	cutOff  bool
	gen     context.Context
	cancel  context.CancelFunc
	proxy   *httputil.ReverseProxy
}

// startBehindProxy starts a server whose public URL is a proxy in front of it.
func startBehindProxy(t *testing.T, db string) (*server, *asProxy) {
	p := listenProxy(t)
	s := start(t, options{db: db, seed: rsSeed(t), args: []string{"--base-url", p.URL}})
	p.forwardTo(s)
	return s, p
}

// listenProxy starts a proxy that forwards nowhere (502) until forwardTo: its URL
// is needed to start the servers behind it.
func listenProxy(t *testing.T) *asProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &asProxy{URL: "http://" + ln.Addr().String(), counts: map[string]int{}}
	p.gen, p.cancel = context.WithCancel(context.Background())
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p}}
	srv.Start()
	t.Cleanup(func() { p.cut(); srv.Close() })
	return p
}

// forwardTo sends every request through the proxy to s.
func (p *asProxy) forwardTo(s *server) {
	target, _ := url.Parse(s.URL)
	p.mu.Lock()
	p.proxy = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host }}
	p.mu.Unlock()
}

func (p *asProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.cutOff || p.proxy == nil {
		p.mu.Unlock()
		http.Error(w, "cut", http.StatusBadGateway)
		return
	}
	p.counts[r.URL.Path]++
	if strings.HasSuffix(r.URL.Path, "/revocation-events") {
		p.cursors = append(p.cursors, r.Header.Get("Last-Event-ID"))
	}
	gen, proxy := p.gen, p.proxy
	p.mu.Unlock()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(gen, cancel)
	defer stop()
	proxy.ServeHTTP(w, r.WithContext(ctx))
}

// cut ends every stream through the proxy and refuses new requests.
func (p *asProxy) cut() {
	p.mu.Lock()
	p.cutOff = true
	p.cancel()
	p.mu.Unlock()
}

func (p *asProxy) restore() {
	p.mu.Lock()
	p.cutOff = false
	p.gen, p.cancel = context.WithCancel(context.Background())
	p.mu.Unlock()
}

// calls is how many requests other than the revocation feed's have gone through.
func (p *asProxy) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for path, c := range p.counts {
		if !strings.HasSuffix(path, "/revocation-events") {
			n += c
		}
	}
	return n
}

func (p *asProxy) issuer() string { return p.URL + "/realms/acme" }

// ordersAPI is a Go API protected by rs: GET /orders needs orders:read, POST /orders
// orders:write; each answers the caller's subject.
func ordersAPI(t *testing.T, issuer string) string {
	t.Helper()
	v, err := rs.New(t.Context(), rs.Options{Issuer: issuer, Audience: ordersAud, ClientID: "orders-api", ClientSecret: ordersAPISecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	who := func(w http.ResponseWriter, r *http.Request) {
		c, _ := rs.ClaimsFrom(r.Context())
		json.NewEncoder(w).Encode(map[string]string{"sub": c.Subject, "client_id": c.ClientID})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders", v.Require("orders:read")(http.HandlerFunc(who)))
	mux.Handle("GET /me", v.Handler(http.HandlerFunc(who)))
	mux.Handle("POST /orders", v.Require("orders:write")(http.HandlerFunc(who)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// standIn is the upstream behind the gate: it answers with the X-Auth-* headers it
// got, and whether an Authorization or a DPoP header came along.
func standIn(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"sub": r.Header.Get("X-Auth-Subject"), "client_id": r.Header.Get("X-Auth-Client-Id"),
			"scope": r.Header.Get("X-Auth-Scope"), "authorization": r.Header.Get("Authorization"),
			"roles": r.Header.Get("X-Auth-Roles"), "dpop": r.Header.Get("DPoP"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// startGate runs `latchkey gate` for the orders API in front of upstream, waits until
// its feed has caught up, and at the end checks that it shuts down cleanly.
func startGate(t *testing.T, issuer, upstream string, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary(t), append([]string{"gate", "--issuer", issuer, "--audience", ordersAud, "--upstream", upstream,
		"--addr", addr, "--client-id", "orders-api"}, extra...)...)
	cmd.Env = []string{"LATCHKEY_GATE_CLIENT_SECRET=" + ordersAPISecret, "PATH=" + os.Getenv("PATH")}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gate exited with %v:\n%s", err, logs)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("gate did not stop on SIGTERM:\n%s", logs)
		}
		if strings.Contains(logs.String(), ordersAPISecret) {
			t.Error("the gate logged its client secret")
		}
	})
	u := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("gate exited (%v):\n%s", err, logs)
		default:
		}
		if res, err := http.Get(u + "/.latchkey-gate/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return u
			}
		}
	}
	t.Fatalf("gate never became ready:\n%s", logs)
	return ""
}

// call sends a request with a bearer token and returns the status, the challenge
// and the JSON body.
func call(t testing.TB, method, u, tok string) (int, string, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var body map[string]string
	json.Unmarshal(b, &body)
	return res.StatusCode, res.Header.Get("WWW-Authenticate"), body
}

// apiToken is a client-credentials access token for the orders API.
func apiToken(t testing.TB, s *server, basic, scope string) string {
	t.Helper()
	r := post(t, s.tokenURL(), basic, form("grant_type", "client_credentials", "scope", scope))
	if r.status != 200 || r.str("access_token") == "" {
		t.Fatalf("client credentials: %d %s", r.status, r.raw)
	}
	return r.str("access_token")
}

// claimsOf reads a JWT's payload without checking it (the test's own tokens).
func claimsOf(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

// A real token is accepted by a Go API using rs and by the gate, which forwards who
// called; warm tokens cost the authorization server no request at all.
func TestRS_AcceptsRealTokensWithoutCallingTheServer(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s, p := startBehindProxy(t, db)
		api := ordersAPI(t, p.issuer())
		gate := startGate(t, p.issuer(), standIn(t))

		svc := apiToken(t, s, callerBasic, "orders:read")
		user := s.redeem(t, webBasic, newBrowser(t).code(s, "web")).str("access_token")
		opaque := apiToken(t, s, "opq:"+opqSecret, "orders:read")
		if !strings.HasPrefix(opaque, "lk_at_") || strings.HasPrefix(user, "lk_") {
			t.Fatalf("token kinds: user %.6s, opaque %.6s", user, opaque)
		}
		userSub, _ := claimsOf(t, user)["sub"].(string)

		for _, tt := range []struct {
			name, tok, path, sub, clientID, scope string
		}{
			{"client credentials", svc, "/orders", "caller", "caller", "orders:read"},
			{"user", user, "/me", userSub, "web", "openid profile offline_access"},
			{"opaque", opaque, "/orders", "opq", "opq", "orders:read"},
		} {
			if st, ch, body := call(t, "GET", api+tt.path, tt.tok); st != 200 || body["sub"] != tt.sub || body["client_id"] != tt.clientID {
				t.Fatalf("%s at the API: %d %q %v", tt.name, st, ch, body)
			}
			st, ch, body := call(t, "GET", gate+tt.path, tt.tok)
			if st != 200 || body["sub"] != tt.sub || body["client_id"] != tt.clientID || body["scope"] != tt.scope ||
				body["authorization"] != "Bearer "+tt.tok {
				t.Fatalf("%s at the gate: %d %q %v", tt.name, st, ch, body)
			}
		}

		// Scopes per route, and the refusals of RFC 6750.
		if st, ch, _ := call(t, "POST", api+"/orders", svc); st != 403 || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="orders:write"`) {
			t.Fatalf("missing scope: %d %q", st, ch)
		}
		if st, ch, _ := call(t, "GET", api+"/orders", user); st != 403 {
			t.Fatalf("user token without orders:read: %d %q", st, ch)
		}
		refresh := s.redeem(t, webBasic, newBrowser(t).code(s, "web")).str("refresh_token")
		for _, base := range []string{api, gate} {
			if st, ch, _ := call(t, "GET", base+"/me", ""); st != 401 || ch != `Bearer realm="`+ordersAud+`"` {
				t.Fatalf("no token: %d %q", st, ch)
			}
			if st, ch, _ := call(t, "GET", base+"/me", refresh); st != 401 || !strings.Contains(ch, `error="invalid_token"`) {
				t.Fatalf("refresh token as a bearer: %d %q", st, ch)
			}
			if st, ch, _ := call(t, "GET", base+"/me?access_token="+svc, ""); st != 400 || !strings.Contains(ch, `error="invalid_request"`) {
				t.Fatalf("token in the query: %d %q", st, ch)
			}
			idTok := s.redeem(t, webBasic, newBrowser(t).code(s, "web")).str("id_token")
			if st, ch, _ := call(t, "GET", base+"/me", idTok); st != 401 || !strings.Contains(ch, `error="invalid_token"`) {
				t.Fatalf("ID token as a bearer: %d %q", st, ch)
			}
		}

		// Warm JWTs: a hundred requests, no request to the authorization server.
		before := p.calls()
		for range 50 {
			for _, base := range []string{api, gate} {
				if st, _, _ := call(t, "GET", base+"/me", svc); st != 200 {
					t.Fatalf("warm token: %d", st)
				}
			}
		}
		if n := p.calls() - before; n != 0 {
			t.Fatalf("%d requests reached the authorization server for warm JWTs", n)
		}
	})
}

// feedCursors are the cursors the feed's connections have carried so far.
func (p *asProxy) feedCursors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.cursors...)
}

// rsPair is a Go API using rs and a gate, both for the orders API.
type rsPair struct{ api, gate string }

func newRSPair(t *testing.T, p *asProxy) rsPair {
	return rsPair{api: ordersAPI(t, p.issuer()), gate: startGate(t, p.issuer(), standIn(t))}
}

// live fails unless both accept tok.
func (rp rsPair) live(t *testing.T, what, tok string) {
	t.Helper()
	for _, base := range []string{rp.api, rp.gate} {
		if st, ch, _ := call(t, "GET", base+"/me", tok); st != 200 {
			t.Fatalf("%s: %s answered %d %q; want 200", what, base, st, ch)
		}
	}
}

// refusedWithin fails unless both refuse tok with invalid_token within d.
func (rp rsPair) refusedWithin(t *testing.T, d time.Duration, what, tok string) {
	t.Helper()
	start := time.Now()
	for _, base := range []string{rp.api, rp.gate} {
		for {
			st, ch, _ := call(t, "GET", base+"/me", tok)
			if st == 401 && strings.Contains(ch, `error="invalid_token"`) {
				break
			}
			if time.Since(start) > d {
				t.Fatalf("%s: %s still answers %d %q after %s", what, base, st, ch, d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("%s: refused by both after %s", what, time.Since(start).Round(time.Millisecond))
}

// signIn signs alice in with a new browser (a new session) at web, and returns the
// access token, the refresh token and the token's claims.
func signInWeb(t *testing.T, s *server) (at, rt string, claims map[string]any) {
	t.Helper()
	r := s.redeem(t, webBasic, newBrowser(t).code(s, "web"))
	at, rt = r.str("access_token"), r.str("refresh_token")
	if r.status != 200 || at == "" || rt == "" {
		t.Fatalf("redeem = %d %s", r.status, r.raw)
	}
	return at, rt, claimsOf(t, at)
}

// Every kind of revocation reaches a Go API and a gate within a second, through the
// feed alone: no request per API call reaches the authorization server.
func TestRS_RevocationsReachAPIAndGateWithinASecond(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s, p := startBehindProxy(t, db)
		rp := newRSPair(t, p)
		admin := root(t, s)

		// A token revoked by its client (RFC 7009); another of the same client lives.
		svc, other := apiToken(t, s, callerBasic, "orders:read"), apiToken(t, s, callerBasic, "orders:read")
		rp.live(t, "client token", svc)
		rp.live(t, "other client token", other)
		before := p.calls()
		if r := post(t, s.revokeURL(), callerBasic, form("token", svc)); r.status != 200 {
			t.Fatalf("revoke = %d %s", r.status, r.raw)
		}
		rp.refusedWithin(t, time.Second, "revoked token", svc)
		rp.live(t, "other token of the client", other)

		// A refresh family revoked (RFC 7009 on its refresh token): its access token ends.
		at, rt, _ := signInWeb(t, s)
		rp.live(t, "user token", at)
		if r := post(t, s.revokeURL(), webBasic, form("token", rt, "token_type_hint", "refresh_token")); r.status != 200 {
			t.Fatalf("revoke refresh = %d %s", r.status, r.raw)
		}
		rp.refusedWithin(t, time.Second, "token of a revoked family", at)

		// A session ended by an admin.
		at, _, c := signInWeb(t, s)
		rp.live(t, "user token", at)
		sub, sid := c["sub"].(string), c["sid"].(string)
		want(t, "end session", admin.do("DELETE", usersPath+"/"+sub+"/sessions/"+sid, nil), 204)
		rp.refusedWithin(t, time.Second, "token of an ended session", at)

		// The user disabled; enabled again, the old token stays dead and a new one works.
		at, _, _ = signInWeb(t, s)
		rp.live(t, "user token", at)
		want(t, "disable", admin.do("POST", usersPath+"/"+sub+"/disable", nil), 200)
		rp.refusedWithin(t, time.Second, "token of a disabled user", at)
		want(t, "enable", admin.do("POST", usersPath+"/"+sub+"/enable", nil), 200)
		rp.refusedWithin(t, time.Second, "token of a disabled, then enabled user", at)
		// iat has whole seconds, so the feed revokes every token issued in the second
		// of the stamp (feed contract: revoked_before); sign in again after it.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		at, _, _ = signInWeb(t, s)
		rp.live(t, "new token after enabling", at)

		// What reached the server between the first revocation and now: none of the
		// API calls above, only what the resource servers never send per request.
		if n := p.calls() - before; n != 0 {
			t.Fatalf("%d requests other than the feed reached the authorization server", n)
		}
	})
}

// A resource server cut off from the feed keeps what it knew, and on reconnecting
// (with its cursor) catches up on the revocations it missed.
func TestRS_CatchesUpAfterTheFeedDrops(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s, p := startBehindProxy(t, db)
		rp := newRSPair(t, p)
		admin := root(t, s)
		svc := apiToken(t, s, callerBasic, "orders:read")
		at, _, c := signInWeb(t, s)
		rp.live(t, "client token", svc)
		rp.live(t, "user token", at)

		p.cut()
		if r := post(t, s.revokeURL(), callerBasic, form("token", svc)); r.status != 200 {
			t.Fatalf("revoke = %d %s", r.status, r.raw)
		}
		want(t, "end session", admin.do("DELETE", usersPath+"/"+c["sub"].(string)+"/sessions/"+c["sid"].(string), nil), 204)
		time.Sleep(300 * time.Millisecond) // what the feed would need, were it connected
		rp.live(t, "revoked token while cut off (known state applies)", svc)

		p.restore()
		rp.refusedWithin(t, 10*time.Second, "token revoked while cut off", svc)
		rp.refusedWithin(t, time.Second, "session ended while cut off", at)
		cursors := p.feedCursors()
		if last := cursors[len(cursors)-1]; last == "" {
			t.Fatalf("the reconnection carried no cursor: %q", cursors)
		}
	})
}
