package bff

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testClock is moved by tests; nothing sleeps.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// fakeIssuer is a small OIDC issuer with the endpoints the BFF uses, so tests can
// count refreshes, rotate and kill refresh tokens, and sign logout tokens.
type fakeIssuer struct {
	t      *testing.T
	srv    *httptest.Server
	clock  *testClock
	key    *ecdsa.PrivateKey
	par    bool
	dpop   bool
	ttl    int64
	secret string

	mu        sync.Mutex
	codes     map[string]url.Values // code -> authorize params
	pushed    map[string]url.Values
	rt        string // the one live refresh token
	gen       int
	refreshes atomic.Int64
	revoked   []string
	ended     []string
	dpopSeen  []string
	nonceSent bool
	down      atomic.Bool // the token endpoint answers 500
}

func newFakeIssuer(t *testing.T, clk *testClock, par, dpop bool) *fakeIssuer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &fakeIssuer{t: t, clock: clk, key: k, par: par, dpop: dpop, ttl: 300, secret: "s3cret/with+odd chars",
		codes: map[string]url.Values{}, pushed: map[string]url.Values{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{
			"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/authorize",
			"token_endpoint": f.srv.URL + "/token", "jwks_uri": f.srv.URL + "/jwks",
			"revocation_endpoint": f.srv.URL + "/revoke", "end_session_endpoint": f.srv.URL + "/end",
		}
		if f.par {
			m["pushed_authorization_request_endpoint"] = f.srv.URL + "/par"
		}
		if f.dpop {
			m["dpop_signing_alg_values_supported"] = []string{"ES256"}
		}
		json.NewEncoder(w).Encode(m)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /par", func(w http.ResponseWriter, r *http.Request) {
		if !f.clientOK(w, r) {
			return
		}
		uri := "urn:ietf:params:oauth:request_uri:" + rand.Text()
		f.mu.Lock()
		f.pushed[uri] = r.PostForm
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"request_uri": uri, "expires_in": 60})
	})
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		if f.clientOK(w, r) {
			f.mu.Lock()
			f.revoked = append(f.revoked, r.PostForm.Get("token"))
			f.mu.Unlock()
		}
	})
	mux.HandleFunc("POST /end", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		f.mu.Lock()
		f.ended = append(f.ended, r.PostForm.Get("id_token_hint"))
		f.mu.Unlock()
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) clientOK(w http.ResponseWriter, r *http.Request) bool {
	r.ParseForm()
	id, sec, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	sec, _ = url.QueryUnescape(sec)
	if !ok || id != "web" || sec != f.secret {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		return false
	}
	return true
}

// authorize plays the user signing in: it takes the URL the BFF sent the browser
// to and returns the callback query.
func (f *fakeIssuer) authorize(loc string) url.Values {
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, f.srv.URL+"/authorize?") {
		f.t.Fatalf("login redirected to %q", loc)
	}
	q := u.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.par {
		p, ok := f.pushed[q.Get("request_uri")]
		if !ok || q.Get("state") != "" {
			f.t.Fatalf("PAR expected, got %v", q)
		}
		q = p
	}
	code := rand.Text()
	f.codes[code] = q
	return url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {f.srv.URL}}
}

func (f *fakeIssuer) sign(claims map[string]any, typ string) string {
	opts := (&jose.SignerOptions{}).WithHeader("kid", "k1")
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: f.key}, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		f.t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func (f *fakeIssuer) idToken(nonce string) string {
	now := f.clock.Now()
	return f.sign(map[string]any{"iss": f.srv.URL, "aud": "web", "sub": "alice", "sid": "sid-1",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": nonce, "at_hash": "x",
		"name": "Alice", "email": "alice@example.com"}, "")
}

func (f *fakeIssuer) token(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if !f.clientOK(w, r) {
		return
	}
	bad := func(code string) {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	tokenType := "Bearer"
	if f.dpop {
		p := r.Header.Get("DPoP")
		f.mu.Lock()
		first := !f.nonceSent
		f.nonceSent = true
		f.dpopSeen = append(f.dpopSeen, p)
		f.mu.Unlock()
		if p == "" {
			bad("invalid_dpop_proof")
			return
		}
		if first { // RFC 9449 §8: ask for a nonce once
			w.Header().Set("DPoP-Nonce", "n1")
			bad("use_dpop_nonce")
			return
		}
		tokenType = "DPoP"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := map[string]any{"token_type": tokenType, "expires_in": f.ttl}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		q, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		if !ok || pkceChallenge(r.PostForm.Get("code_verifier")) != q.Get("code_challenge") ||
			q.Get("code_challenge_method") != "S256" || r.PostForm.Get("redirect_uri") != q.Get("redirect_uri") {
			bad("invalid_grant")
			return
		}
		f.gen++
		f.rt = "rt-" + strconv.Itoa(f.gen)
		resp["id_token"] = f.idToken(q.Get("nonce"))
	case "refresh_token":
		f.refreshes.Add(1)
		if f.rt == "" || r.PostForm.Get("refresh_token") != f.rt {
			f.rt = ""
			bad("invalid_grant")
			return
		}
		f.gen++
		f.rt = "rt-" + strconv.Itoa(f.gen)
	default:
		bad("unsupported_grant_type")
		return
	}
	resp["access_token"] = "at-" + strconv.Itoa(f.gen)
	resp["refresh_token"] = f.rt
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

// env is a BFF in front of a fake issuer and a recording upstream.
type env struct {
	t        *testing.T
	clock    *testClock
	iss      *fakeIssuer
	h        *Handler
	store    SessionStore
	upstream *httptest.Server
	mu       sync.Mutex
	seen     []http.Header
	paths    []string
}

const extURL = "https://app.example.test"

func newEnv(t *testing.T, par, dpop bool) *env {
	e := &env{t: t, clock: &testClock{t: time.Unix(1_800_000_000, 0)}}
	e.iss = newFakeIssuer(t, e.clock, par, dpop)
	e.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, r.Header.Clone())
		e.paths = append(e.paths, r.URL.RequestURI())
		e.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "__Host-bff_session", Value: "evil", Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "upstream_pref", Value: "dark"})
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(e.upstream.Close)
	up, _ := url.Parse(e.upstream.URL)
	e.store = NewMemorySessions()
	h, err := New(t.Context(), Config{
		Issuer: e.iss.srv.URL, ClientID: "web", ClientSecret: e.iss.secret, ExternalURL: extURL,
		APIs: []API{{Prefix: "/api", Upstream: up}}, Sessions: e.store, Key: make([]byte, 32),
		Now: e.clock.Now, App: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("spa")) }),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

func (e *env) do(method, target string, hdr http.Header, cookies ...*http.Cookie) *http.Response {
	var body *strings.Reader = strings.NewReader("")
	if method == http.MethodPost && hdr.Get("Content-Type") != "" {
		body = strings.NewReader(hdr.Get("X-Test-Body"))
		hdr.Del("X-Test-Body")
	}
	r := httptest.NewRequest(method, extURL+target, body)
	for k, v := range hdr {
		r.Header[k] = v
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Result()
}

func cookieNamed(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// signIn runs /bff/login -> issuer -> /bff/callback and returns the session cookie.
func (e *env) signIn(returnTo string) (*http.Cookie, *http.Response) {
	e.t.Helper()
	res := e.do("GET", "/bff/login?returnTo="+url.QueryEscape(returnTo), nil)
	if res.StatusCode != http.StatusFound {
		e.t.Fatalf("login: %d", res.StatusCode)
	}
	login := cookieNamed(res, "__Host-bff_login")
	if login == nil {
		e.t.Fatal("no login cookie")
	}
	q := e.iss.authorize(res.Header.Get("Location"))
	res = e.do("GET", "/bff/callback?"+q.Encode(), nil, &http.Cookie{Name: login.Name, Value: login.Value})
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("callback: %d", res.StatusCode)
	}
	c := cookieNamed(res, "__Host-bff_session")
	if c == nil {
		e.t.Fatal("no session cookie")
	}
	return &http.Cookie{Name: c.Name, Value: c.Value}, res
}

func csrfHeaders() http.Header {
	return http.Header{"X-Csrf": {"1"}, "Sec-Fetch-Site": {"same-origin"}}
}
