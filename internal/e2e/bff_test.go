package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/rs"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// Issue 15's Done-when: headless Chromium against a real `latchkey serve` and a
// real `latchkey bff`. Latchkey's public URL is a recording proxy, so the test
// holds every token the token endpoint issued (the BFF's code exchanges and
// refreshes go through it); the API behind the BFF is an rs-validated upstream
// that records every Authorization it receives. Then the browser's page, its
// storage, its cookies and every request and response it saw are searched for
// each of those tokens.

const (
	bffClientSecret = "bff-secret-0123456789abcdefghijklmnop"
	bffBasic        = "bff:" + bffClientSecret
	bffAPIAud       = "https://bff-api.example"
	// bffAccessTTL is the BFF client's access token lifetime: short, so a few
	// seconds of calls span several lifetimes.
	bffAccessTTL = 3 * time.Second
)

// bffSeed is the admin seed with the BFF's client in acme.
func bffSeed(t *testing.T, bffURL string) string {
	seed := adminSeed(t)
	if !strings.Contains(seed, "    users:\n") {
		t.Fatal("the admin seed has no users")
	}
	return strings.Replace(seed, "    users:\n", `      - id: bff
        name: BFF
        secret: `+bffClientSecret+`
        redirect_uris: [`+bffURL+`/bff/callback]
        backchannel_logout_uri: `+bffURL+`/bff/backchannel-logout
        backchannel_logout_session_required: true
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, email, offline_access]
        audiences: [`+bffAPIAud+`]
        access_token_ttl: 3s
    users:
`, 1)
}

// tokenProxy is Latchkey's public URL: it forwards everything and records the
// tokens of every token endpoint answer.
type tokenProxy struct {
	URL   string
	proxy *httputil.ReverseProxy

	mu        sync.Mutex
	issued    []map[string]string // each 200 token response: access_token, refresh_token, id_token
	endPoints []string            // paths of end-session and revocation calls, with the Sec-Fetch-Mode only a browser sends
}

func newTokenProxy(t *testing.T) *tokenProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tokenProxy{URL: "http://" + ln.Addr().String()}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p}}
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

func (p *tokenProxy) forwardTo(s *server) {
	target, _ := url.Parse(s.URL)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host },
		ModifyResponse: func(res *http.Response) error {
			if !strings.HasSuffix(res.Request.URL.Path, "/protocol/openid-connect/token") || res.StatusCode != 200 {
				return nil
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			res.Body = io.NopCloser(bytes.NewReader(body))
			if err != nil {
				return err
			}
			var m map[string]any
			json.Unmarshal(body, &m)
			rec := map[string]string{}
			for _, k := range []string{"access_token", "refresh_token", "id_token"} {
				if v, _ := m[k].(string); v != "" {
					rec[k] = v
				}
			}
			p.mu.Lock()
			p.issued = append(p.issued, rec)
			p.mu.Unlock()
			return nil
		},
	}
}

func (p *tokenProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	proxy := p.proxy
	if strings.HasSuffix(r.URL.Path, "/logout") || strings.HasSuffix(r.URL.Path, "/revoke") {
		p.endPoints = append(p.endPoints, r.URL.Path+" "+r.Header.Get("Sec-Fetch-Mode"))
	}
	p.mu.Unlock()
	if proxy == nil {
		http.Error(w, "not yet", http.StatusBadGateway)
		return
	}
	proxy.ServeHTTP(w, r)
}

// tokens are every token issued so far, of kind k ("" for all).
func (p *tokenProxy) tokens(k string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, rec := range p.issued {
		for kind, v := range rec {
			if k == "" || k == kind {
				out = append(out, v)
			}
		}
	}
	return out
}

// last is the newest token of kind k.
func (p *tokenProxy) last(t *testing.T, k string) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.issued) - 1; i >= 0; i-- {
		if v := p.issued[i][k]; v != "" {
			return v
		}
	}
	t.Fatalf("no %s issued yet", k)
	return ""
}

// bffUpstream is the API behind the BFF: rs validates each request (DPoP proof
// included when the token is bound), and every request is recorded.
type bffUpstream struct {
	URL string

	mu   sync.Mutex
	seen []upstreamCall
}

type upstreamCall struct {
	at            time.Time
	authorization string
	token         string
	exp           time.Time
	sid, sub      string
	status        int
	leaked        []string // headers that should never have been forwarded
}

func newBFFUpstream(t *testing.T, issuer string) *bffUpstream {
	u := &bffUpstream{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.URL = "http://" + ln.Addr().String()
	v, err := rs.New(t.Context(), rs.Options{Issuer: issuer, Audience: bffAPIAud, DisableFeed: true, ExternalURL: u.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := upstreamCall{at: time.Now(), authorization: r.Header.Get("Authorization")}
		_, c.token, _ = strings.Cut(c.authorization, " ")
		for _, h := range []string{"Cookie", "X-Csrf"} {
			if r.Header.Get(h) != "" {
				c.leaked = append(c.leaked, h+": "+r.Header.Get(h))
			}
		}
		var claims struct {
			Exp int64  `json:"exp"`
			Sid string `json:"sid"`
			Sub string `json:"sub"`
		}
		if parts := strings.Split(c.token, "."); len(parts) == 3 {
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			json.Unmarshal(b, &claims)
			c.exp, c.sid, c.sub = time.Unix(claims.Exp, 0), claims.Sid, claims.Sub
		}
		cl, ok := v.Authenticate(w, r)
		if ok {
			c.status = 200
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"hello": cl.Username, "scope": cl.Scopes})
		} else {
			c.status = 401
		}
		u.mu.Lock()
		u.seen = append(u.seen, c)
		u.mu.Unlock()
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return u
}

func (u *bffUpstream) calls() []upstreamCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamCall(nil), u.seen...)
}

// bffProc is a running `latchkey bff`.
type bffProc struct {
	URL  string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

// startBFF runs `latchkey bff --dev` with every flag given, on a free loopback
// port, and waits until it answers.
func startBFF(t *testing.T, addr, issuer, upstream, store string) *bffProc {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "bff.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	app, _ := filepath.Abs(filepath.Join("testdata", "bff", "app"))
	b := &bffProc{URL: "http://" + addr, logs: &syncBuffer{}, done: make(chan struct{})}
	b.cmd = exec.Command(binary(t), "bff", "--dev", "--issuer", issuer, "--client-id", "bff", "--addr", addr,
		"--external-url", b.URL, "--app", app, "--api", "/api="+upstream, "--key-file", keyFile, "--store", store)
	b.cmd.Env = []string{"LATCHKEY_BFF_CLIENT_SECRET=" + bffClientSecret, "PATH=" + os.Getenv("PATH"), "LATCHKEY_DATA_DIR=" + dir}
	b.cmd.Stdout, b.cmd.Stderr = b.logs, b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-b.done:
			case <-time.After(15 * time.Second):
				b.cmd.Process.Kill()
				<-b.done
			}
		}
		if t.Failed() {
			t.Logf("latchkey bff output:\n%s", b.logs)
		}
	})
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-b.done:
			t.Fatalf("latchkey bff exited before it was ready:\n%s", b.logs)
		default:
		}
		if res, err := http.Get(b.URL + "/bff/session"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return b
			}
		}
	}
	t.Fatalf("latchkey bff never answered:\n%s", b.logs)
	return nil
}

// seenByBrowser is everything the browser received or sent, from CDP's Network
// events: URLs, request and response headers, and response bodies.
type seenByBrowser struct {
	mu      sync.Mutex
	texts   []string // "what: text"
	status  map[string][]int64
	ids     chan network.RequestID
	pending int // bodies asked for and not yet read
}

// settle waits until every finished response's body was read.
func (s *seenByBrowser) settle() {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		n := s.pending
		s.mu.Unlock()
		if n == 0 {
			return
		}
	}
}

func (s *seenByBrowser) add(what string, v any) {
	b, _ := json.Marshal(v)
	s.mu.Lock()
	s.texts = append(s.texts, what+": "+string(b))
	s.mu.Unlock()
}

// watchNetwork turns the Network domain on and records what the tab sees;
// bodies are fetched as each response finishes loading.
func watchNetwork(t *testing.T, tab *kcTab) *seenByBrowser {
	s := &seenByBrowser{status: map[string][]int64{}, ids: make(chan network.RequestID, 10000)}
	urls := map[network.RequestID]string{}
	var umu sync.Mutex
	if err := chromedp.Listen(tab.tab, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			umu.Lock()
			urls[e.RequestID] = e.Request.URL
			umu.Unlock()
			s.add("request "+e.Request.URL, e.Request)
			if e.RedirectResponse != nil {
				s.add("redirect response", e.RedirectResponse)
			}
		case *network.EventRequestWillBeSentExtraInfo:
			s.add("request headers", e.Headers)
		case *network.EventResponseReceived:
			s.add("response "+e.Response.URL, e.Response)
			s.mu.Lock()
			s.status[e.Response.URL] = append(s.status[e.Response.URL], e.Response.Status)
			s.mu.Unlock()
		case *network.EventResponseReceivedExtraInfo:
			s.add("raw response", map[string]any{"status": e.StatusCode, "headers": e.Headers, "text": e.HeadersText})
			umu.Lock()
			u := urls[e.RequestID]
			umu.Unlock()
			s.mu.Lock()
			s.status["raw "+u] = append(s.status["raw "+u], e.StatusCode)
			s.mu.Unlock()
		case *network.EventLoadingFinished:
			select {
			case s.ids <- e.RequestID:
				s.mu.Lock()
				s.pending++
				s.mu.Unlock()
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for id := range s.ids {
			ctx, cancel := context.WithTimeout(tab.tab, 10*time.Second)
			res, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetResponseBodyResult, error) {
				return cdp.Call(ctx, tg, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
			})
			cancel()
			s.mu.Lock()
			if err == nil {
				s.texts = append(s.texts, "body: "+string(res.Body))
			}
			s.pending--
			s.mu.Unlock()
		}
	}()
	big, per := int64(200<<20), int64(20<<20)
	tab.do("turning the Network domain on", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{MaxTotalBufferSize: &big, MaxResourceBufferSize: &per})
		return err
	}))
	return s
}

// statuses are the statuses of the responses (raw, so also those CORS hid from
// the page) to requests for u.
func (s *seenByBrowser) statuses(u string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.status["raw "+u]...)
}

// noTokenInBrowser searches the page (its JavaScript globals, its DOM, its
// storage and document.cookie), the browser's cookies and everything it saw on
// the network for every token issued and every Authorization the API received.
func noTokenInBrowser(t *testing.T, what string, tab *kcTab, nw *seenByBrowser, p *tokenProxy, up *bffUpstream, urls ...string) {
	t.Helper()
	nw.settle()
	page := tab.eval(what+": the page's state", `(() => {
		const out = [document.documentElement.outerHTML, document.cookie];
		for (const st of [localStorage, sessionStorage]) {
			for (let i = 0; i < st.length; i++) out.push(st.key(i) + "=" + st.getItem(st.key(i)));
		}
		const seen = new Set();
		const walk = (v, depth) => {
			if (v === null || v === undefined || depth > 4) return;
			if (typeof v === "string") { out.push(v); return; }
			if (typeof v === "function") { try { out.push(String(v)); } catch (e) {} return; }
			if (typeof v !== "object" || seen.has(v)) return;
			seen.add(v);
			let keys = [];
			try { keys = Object.getOwnPropertyNames(v); } catch (e) { return; }
			for (const k of keys) { let x; try { x = v[k]; } catch (e) { continue; } walk(x, depth + 1); }
		};
		for (const k of Object.getOwnPropertyNames(window)) { let x; try { x = window[k]; } catch (e) { continue; } walk(x, 1); }
		return out.join("\n");
	})()`)
	var cookies []string
	res := inKCTab(tab, what+": the browser's cookies", func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: urls})
	})
	for _, c := range res.Cookies {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	nw.mu.Lock()
	seen := strings.Join(nw.texts, "\n")
	nw.mu.Unlock()
	haystacks := map[string]string{"the page": page, "the cookies": strings.Join(cookies, "\n"), "the network": seen}

	needles := p.tokens("")
	for _, c := range up.calls() {
		if c.token != "" {
			needles = append(needles, c.token)
		}
	}
	needles = append(needles, bffClientSecret)
	if len(needles) < 3 {
		t.Fatalf("%s: only %d tokens to look for", what, len(needles))
	}
	for _, tok := range needles {
		parts := []string{tok}
		if sig := strings.Split(tok, "."); len(sig) == 3 {
			parts = append(parts, sig[2]) // a JWT's signature alone
		}
		for where, hay := range haystacks {
			for _, part := range parts {
				if strings.Contains(hay, part) {
					t.Errorf("%s: a token issued to the BFF (%.12s…) reached the browser: %s", what, tok, where)
				}
			}
		}
	}
	t.Logf("%s: searched %d tokens in the page (%d bytes), %d cookies and %d network records (%d bytes)", what, len(needles), len(page), len(cookies), len(nw.texts), len(seen))
	if len(seen) < 1000 || !strings.Contains(seen, "/bff/") {
		t.Errorf("%s: the network record looks empty (%d bytes)", what, len(seen))
	}
}

func TestBFF_ChromiumSignInAPIRefreshLogoutBackchannelDisableNoTokenInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	binary(t)
	stores(t, func(t *testing.T, db string) {
		bffStore := "sqlite:" + filepath.Join(t.TempDir(), "bff.db")
		if !strings.HasSuffix(db, ".db") {
			bffStore = pgtest.DSN(t)
		}
		runBFFJourney(t, db, bffStore, chrome)
	})
}

func runBFFJourney(t *testing.T, db, bffStore, chrome string) {
	bffAddr := freeAddr(t)
	bffURL := "http://" + bffAddr
	proxy := newTokenProxy(t)
	s := start(t, options{db: db, seed: bffSeed(t, bffURL), args: []string{"--base-url", proxy.URL}})
	proxy.forwardTo(s)
	issuer := proxy.URL + "/realms/acme"
	up := newBFFUpstream(t, issuer)
	b := startBFF(t, bffAddr, issuer, up.URL, bffStore)
	admin := root(t, s)

	tab := newKCTab(t, chrome)
	seen := watchNetwork(t, tab)
	js := func(what, expr string) string { t.Helper(); return tab.eval(what, expr) }
	signedIn := func(what string) bool {
		t.Helper()
		got := js(what, "session()")
		switch {
		case strings.HasPrefix(got, `200 `) && strings.Contains(got, `"signed_in":true`):
			return true
		case strings.HasPrefix(got, `200 `) && strings.Contains(got, `"signed_in":false`):
			return false
		}
		t.Fatalf("%s: GET /bff/session = %s", what, got)
		return false
	}

	// 1. Sign-in: the app, signed out, sends the browser to /bff/login, which
	// sends it to Latchkey's login page; back at the app, it is signed in.
	signIn := func(what string) {
		t.Helper()
		tab.do(what+": the app", chromedp.Navigate(bffURL+"/"), chromedp.WaitVisible(`//p[@id="status" and normalize-space() != "loading"]`))
		if signedIn(what + ": before") {
			t.Fatalf("%s: signed in before signing in", what)
		}
		tab.do(what+": Latchkey's login page", chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("password")))
		if loc := inKCTab(tab, "the login page's URL", chromedp.Location()); !strings.HasPrefix(loc, issuer+"/") {
			t.Fatalf("%s: the login page is at %s, not at the issuer %s", what, loc, issuer)
		}
		tab.do(what+": the password",
			chromedp.SendKeys(chromedp.ID("username"), "alice"),
			chromedp.SendKeys(chromedp.ID("password"), alicePass),
			chromedp.Click(`//button[normalize-space()="Sign in"]`),
			chromedp.WaitVisible(`//p[@id="status" and normalize-space() = "signed in"]`))
		if loc := inKCTab(tab, "the app's URL", chromedp.Location()); loc != bffURL+"/" {
			t.Errorf("%s: back at %s, want the returnTo %s/", what, loc, bffURL)
		}
	}
	signIn("sign-in")
	u := js("GET /bff/user", "user()")
	var claims map[string]any
	if !strings.HasPrefix(u, "200 ") || json.Unmarshal([]byte(u[4:]), &claims) != nil {
		t.Fatalf("GET /bff/user = %s", u)
	}
	sub, _ := claims["sub"].(string)
	if claims["preferred_username"] != "alice" || claims["email"] != "alice@example.com" || sub == "" {
		t.Errorf("GET /bff/user = %s; want alice's claims", u)
	}
	for _, k := range []string{"nonce", "at_hash", "sid"} {
		if _, ok := claims[k]; ok {
			t.Errorf("GET /bff/user has %s: %s", k, u)
		}
	}
	var sess struct {
		SignedIn  bool  `json:"signed_in"`
		ExpiresAt int64 `json:"expires_at"`
	}
	if got := js("GET /bff/session", "session()"); json.Unmarshal([]byte(strings.TrimPrefix(got, "200 ")), &sess) != nil || !sess.SignedIn || sess.ExpiresAt <= time.Now().Unix() {
		t.Errorf("GET /bff/session = %s; want signed in, ending later", got)
	}
	// The session cookie: HttpOnly, SameSite=Strict, Path=/, host-only, opaque.
	var cookie *network.Cookie
	cres := inKCTab(tab, "cookies", func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{bffURL + "/"}})
	})
	for _, c := range cres.Cookies {
		if c.Name == "bff_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no bff_session cookie for %s", bffURL)
	}
	if !cookie.HTTPOnly || cookie.SameSite != network.CookieSameSiteStrict || cookie.Path != "/" || cookie.Domain != "127.0.0.1" ||
		strings.Contains(cookie.Value, ".") || len(cookie.Value) < 43 {
		t.Errorf("bff_session cookie: HttpOnly %v SameSite %v Path %q Domain %q value length %d; want HttpOnly, Strict, /, host-only, an opaque 256-bit value",
			cookie.HTTPOnly, cookie.SameSite, cookie.Path, cookie.Domain, len(cookie.Value))
	}

	// 2. API calls carry the access token the BFF was issued (the upstream,
	// validating with rs, sees it), never the browser's cookie, X-CSRF or an
	// Authorization the page made up.
	for _, hdr := range []string{"", `{"Authorization": "Bearer made-up-by-the-page"}`} {
		if got := js("API call "+hdr, "api("+hdr+")"); got != `200 {"hello":"alice","scope":["openid","profile","email","offline_access"]}`+"\n" && !strings.HasPrefix(got, `200 {"hello":"alice"`) {
			t.Fatalf("API call %s = %s", hdr, got)
		}
	}
	calls := up.calls()
	if len(calls) != 2 {
		t.Fatalf("the upstream got %d calls, want 2", len(calls))
	}
	issuedAT := map[string]bool{}
	for _, at := range proxy.tokens("access_token") {
		issuedAT[at] = true
	}
	for i, c := range calls {
		scheme, _, _ := strings.Cut(c.authorization, " ")
		if !issuedAT[c.token] || (scheme != "Bearer" && scheme != "DPoP") || c.sub != sub || len(c.leaked) > 0 {
			t.Errorf("upstream call %d: Authorization scheme %q, an issued token %v, sub %q (want %s), forwarded %v", i, scheme, issuedAT[c.token], c.sub, sub, c.leaked)
		}
	}
	sid := calls[0].sid

	// 3. Silent refresh with rotation over several access-token lifetimes: each
	// call carries a token still valid when it arrives, and the refresh tokens
	// rotate, each spent one dead at introspection.
	begin := time.Now()
	for i := 0; time.Since(begin) < 3*bffAccessTTL+bffAccessTTL/2; i++ {
		if got := js("API call over the lifetimes", "api()"); !strings.HasPrefix(got, `200 {"hello":"alice"`) {
			t.Fatalf("API call %d, %v after the first: %s", i, time.Since(begin), got)
		}
		time.Sleep(bffAccessTTL / 2) // real time: the BFF is another process
	}
	// Ten at once: one refresh at a time, no reuse detection tripped.
	var many []string
	if err := json.Unmarshal([]byte(js("ten API calls at once", "apiMany(10)")), &many); err != nil || len(many) != 10 {
		t.Fatalf("ten API calls at once: %v %v", many, err)
	}
	for _, got := range many {
		if !strings.HasPrefix(got, `200 {"hello":"alice"`) {
			t.Fatalf("ten API calls at once: %v", many)
		}
	}
	if got := js("API call after the ten", "api()"); !strings.HasPrefix(got, `200 {"hello":"alice"`) {
		t.Fatalf("API call after the ten: %s", got)
	}
	calls = up.calls()
	for _, at := range proxy.tokens("access_token") {
		issuedAT[at] = true
	}
	distinct := map[string]bool{}
	for i, c := range calls {
		distinct[c.token] = true
		if c.status != 200 || !c.exp.After(c.at) || c.sid != sid || !issuedAT[c.token] {
			t.Errorf("upstream call %d: status %d, exp %v at %v, sid %q (want %s)", i, c.status, c.exp, c.at, c.sid, sid)
		}
	}
	rts := proxy.tokens("refresh_token")
	t.Logf("over %v: %d API calls, %d distinct access tokens, %d refresh tokens issued", time.Since(begin).Round(time.Millisecond), len(calls), len(distinct), len(rts))
	if len(distinct) < 4 || len(rts) < 4 {
		t.Errorf("over %v (%v access tokens) the API saw %d distinct access tokens and Latchkey issued %d refresh tokens; want at least 4 each",
			time.Since(begin).Round(time.Millisecond), bffAccessTTL, len(distinct), len(rts))
	}
	for i, rt := range rts[:len(rts)-1] {
		wantInactive(t, fmt.Sprintf("spent refresh token %d", i), s.introspect(t, bffBasic, rt))
	}
	if r := s.introspect(t, bffBasic, rts[len(rts)-1]); r.body["active"] != true {
		t.Errorf("the newest refresh token: %d %s; want active", r.status, r.raw)
	}
	// At rest, the BFF's store holds no token in the clear.
	if path, ok := strings.CutPrefix(bffStore, "sqlite:"); ok {
		var at bytes.Buffer
		for _, f := range []string{path, path + "-wal"} {
			raw, _ := os.ReadFile(f)
			at.Write(raw)
		}
		for _, tok := range proxy.tokens("") {
			if bytes.Contains(at.Bytes(), []byte(tok)) {
				t.Errorf("the BFF's store holds a token in the clear (%.12s…)", tok)
			}
		}
	}

	// 4. CSRF and other origins: 403, nothing reaches the API, the session lives.
	before := len(up.calls())
	if got := js("API call without X-CSRF", "apiNoCSRF()"); !strings.HasPrefix(got, "403") {
		t.Errorf("API call without X-CSRF = %s; want 403", got)
	}
	if got := js("logout without X-CSRF", "logoutNoCSRF()"); !strings.HasPrefix(got, "403") {
		t.Errorf("POST /bff/logout without X-CSRF = %s; want 403", got)
	}
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "same-origin", "Origin", "http://evil.example"},
	} {
		for _, target := range []string{"GET /api/hello", "POST /bff/logout"} {
			method, path, _ := strings.Cut(target, " ")
			req, _ := http.NewRequest(method, bffURL+path, nil)
			req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
			req.Header.Set("X-CSRF", "1")
			for i := 0; i+1 < len(h); i += 2 {
				req.Header.Set(h[i], h[i+1])
			}
			if r := do(t, req); r.status != 403 {
				t.Errorf("%s with the session cookie, X-CSRF and %v = %d %s; want 403", target, h, r.status, r.raw)
			}
		}
	}
	// The same request, same-origin, is let through: the 403s are the checks'.
	req, _ := http.NewRequest("GET", bffURL+"/api/hello", nil)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if r := do(t, req); r.status != 200 {
		t.Fatalf("control: a same-origin API call with the cookie and X-CSRF = %d %s; want 200", r.status, r.raw)
	}
	before++
	// Pages of another origin on the same site (127.0.0.1, another port: the
	// Strict cookie goes along) and of another site (localhost).
	page, err := os.ReadFile(filepath.Join("testdata", "bff", "attacker.html"))
	if err != nil {
		t.Fatal(err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(bytes.ReplaceAll(page, []byte("BFF"), []byte(bffURL)))
	}))
	t.Cleanup(evil.Close)
	_, port, _ := net.SplitHostPort(evil.Listener.Addr().String())
	for _, origin := range []string{evil.URL, "http://localhost:" + port} {
		tab.do("the page of "+origin, chromedp.Navigate(origin+"/"), chromedp.WaitReady(chromedp.ID("f")))
		for _, fn := range []string{"noCORS()", "noCORSLogout()"} {
			if got := js(origin+" "+fn, fn); got != "sent" {
				t.Errorf("%s: %s = %s; want the opaque answer", origin, fn, got)
			}
		}
		for _, fn := range []string{"withCSRF()", "readUser()"} {
			if got := js(origin+" "+fn, fn); !strings.HasPrefix(got, "error:") {
				t.Errorf("%s: %s = %s; want the browser to refuse the page the answer (no CORS)", origin, fn, got)
			}
		}
		// A form POST to /bff/logout: a navigation, which the BFF must refuse.
		tab.do(origin+": the form POST to /bff/logout", chromedp.Click(`//button[normalize-space()="go"]`), chromedp.WaitReady("body"))
		for deadline := time.Now().Add(kcStep); ; time.Sleep(50 * time.Millisecond) {
			if loc := inKCTab(tab, "where the form went", chromedp.Location()); loc == bffURL+"/bff/logout" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the form POST never reached the BFF%s", origin, tab.dump())
			}
		}
		seen.settle()
		for _, u := range []string{bffURL + "/api/hello", bffURL + "/bff/logout"} {
			for _, st := range seen.statuses(u) {
				if st != 403 && st != 200 && st != 204 {
					t.Errorf("%s: a response to %s had status %d", origin, u, st)
				}
			}
		}
		// Every answer to this origin's attempts was 403 (or a refused preflight).
		if sts := seen.statuses(bffURL + "/bff/logout"); len(sts) == 0 || sts[len(sts)-1] != 403 {
			t.Errorf("%s: the form POST to /bff/logout got %v; want 403 last", origin, sts)
		}
	}
	if n := len(up.calls()); n != before {
		t.Errorf("the CSRF and cross-origin attempts reached the API %d times", n-before)
	}
	tab.do("back to the app", chromedp.Navigate(bffURL+"/"), chromedp.WaitVisible(`//p[@id="status" and normalize-space() != "loading"]`))
	if !signedIn("after the CSRF attempts") {
		t.Fatal("the CSRF attempts ended the session")
	}
	noTokenInBrowser(t, "signed in, after refreshes", tab, seen, proxy, up, bffURL+"/", issuer+"/")

	// 5. Logout at the BFF ends Latchkey's session: the refresh token is dead,
	// the end-session call came from the BFF, not the browser, and signing in
	// again asks for the password.
	rt := proxy.last(t, "refresh_token")
	if got := js("logout", "logout()"); !strings.HasPrefix(got, "200") && !strings.HasPrefix(got, "204") {
		t.Fatalf("POST /bff/logout = %s", got)
	}
	if signedIn("after logout") {
		t.Fatal("signed in after logout")
	}
	if got := js("API call after logout", "api()"); !strings.HasPrefix(got, "401") {
		t.Errorf("API call after logout = %s; want 401", got)
	}
	wantInactive(t, "the refresh token after logout at the BFF", s.introspect(t, bffBasic, rt))
	proxy.mu.Lock()
	ends := append([]string(nil), proxy.endPoints...)
	proxy.mu.Unlock()
	fromBFF := false
	for _, e := range ends {
		if !strings.HasSuffix(e, " ") {
			t.Errorf("the browser itself called %s", e)
		}
		fromBFF = fromBFF || e == "/realms/acme/protocol/openid-connect/logout "
	}
	if !fromBFF {
		t.Errorf("the BFF never called the end-session endpoint (calls: %q)", ends)
	}
	signIn("sign-in after logout") // fails unless the login page asks again

	// 6. Back-channel logout: an admin ends the session at Latchkey; the BFF's
	// session ends without the browser doing anything.
	if got := js("API call", "api()"); !strings.HasPrefix(got, `200 {"hello":"alice"`) {
		t.Fatalf("API call after signing in again: %s", got)
	}
	calls = up.calls()
	sid2 := calls[len(calls)-1].sid
	if sid2 == "" || sid2 == sid {
		t.Fatalf("the second sign-in's session %q (the first was %s)", sid2, sid)
	}
	want(t, "admin ends the session", admin.do("DELETE", "/admin/realms/acme/users/"+sub+"/sessions/"+sid2, nil), 204)
	for deadline := time.Now().Add(30 * time.Second); signedIn("after the admin ended the session"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the BFF session outlived the Latchkey session by 30 s: no back-channel logout")
		}
	}
	before = len(up.calls())
	if got := js("API call after back-channel logout", "api()"); !strings.HasPrefix(got, "401") {
		t.Errorf("API call after back-channel logout = %s; want 401", got)
	}

	// The same when the user signs out on Latchkey's account page, in the
	// browser: the BFF's session ends by the back channel.
	signIn("sign-in before the account page")
	if got := js("API call", "api()"); !strings.HasPrefix(got, `200 {"hello":"alice"`) {
		t.Fatalf("API call before the account page's sign-out: %s", got)
	}
	tab.do("the account page's sign-out", chromedp.Navigate(issuer+"/account"),
		chromedp.Click(`//button[normalize-space()="Sign out"]`), chromedp.WaitVisible(`//body[contains(., "signed out")]`))
	tab.do("back to the app", chromedp.Navigate(bffURL+"/"), chromedp.WaitVisible(`//p[@id="status" and normalize-space() != "loading"]`))
	for deadline := time.Now().Add(30 * time.Second); signedIn("after the account page's sign-out"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the BFF session outlived the sign-out on Latchkey's account page by 30 s")
		}
	}
	if got := js("API call after the account page's sign-out", "api()"); !strings.HasPrefix(got, "401") {
		t.Errorf("API call after the account page's sign-out = %s; want 401", got)
	}
	before = len(up.calls())

	// 7. An admin disables the user: API access ends.
	signIn("sign-in before the user is disabled")
	if got := js("API call", "api()"); !strings.HasPrefix(got, `200 {"hello":"alice"`) {
		t.Fatalf("API call before disabling: %s", got)
	}
	want(t, "admin disables alice", admin.do("POST", "/admin/realms/acme/users/"+sub+"/disable", nil), 200)
	disabledAt := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := js("API call after disabling", "api()")
		if strings.HasPrefix(got, "401") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API calls still answered 30 s after the user was disabled: %s", got)
		}
	}
	for _, c := range up.calls()[before:] {
		if c.at.After(disabledAt.Add(bffAccessTTL+time.Second)) && c.status == 200 {
			t.Errorf("the API served alice at %v, after she was disabled at %v", c.at, disabledAt)
		}
	}
	if signedIn("after the user was disabled") {
		t.Error("the BFF session outlived the disabled user")
	}

	// 8. Through all of it, nothing the BFF was issued reached the browser, or
	// the BFF's log.
	noTokenInBrowser(t, "the whole journey", tab, seen, proxy, up, bffURL+"/", issuer+"/")
	for _, tok := range proxy.tokens("") {
		if strings.Contains(b.logs.String(), tok) {
			t.Errorf("a token (%.12s…) is in the BFF's log", tok)
		}
	}
}
