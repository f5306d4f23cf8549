package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// rp is a stand-in relying party's back-channel logout endpoint: it records
// every logout token POSTed to it, per client path (/web, /spa), and answers
// 500 to the first failFirst[path] of them (-1: always).
type rp struct {
	srv       *httptest.Server
	mu        sync.Mutex
	got       map[string][]string // accepted tokens by path
	posts     map[string]int      // every POST by path, accepted or not
	all       []string            // every token seen, accepted or not
	failFirst map[string]int
	bad       []string // requests that were not a proper logout POST
}

func newRP(t *testing.T, failFirst map[string]int) *rp {
	r := &rp{got: map[string][]string{}, posts: map[string]int{}, failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		f, err := url.ParseQuery(string(body))
		r.mu.Lock()
		defer r.mu.Unlock()
		// Back-Channel Logout §2.5: a form POST with one logout_token.
		if req.Method != "POST" || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || err != nil || len(f["logout_token"]) != 1 {
			r.bad = append(r.bad, fmt.Sprintf("%s %s %q %q", req.Method, req.URL.Path, req.Header.Get("Content-Type"), body))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		tok := f.Get("logout_token")
		r.all = append(r.all, tok)
		r.posts[req.URL.Path]++
		if n := r.failFirst[req.URL.Path]; n < 0 || r.posts[req.URL.Path] <= n {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		r.got[req.URL.Path] = append(r.got[req.URL.Path], tok)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// postsTo says how many POSTs path got.
func (r *rp) postsTo(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.posts[path]
}

// take waits until the RP accepted want tokens in all (over its paths), waits a
// moment more for any extra one, and returns them by path and clears them.
func (r *rp) take(t *testing.T, want int, settle time.Duration) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		n := 0
		for _, toks := range r.got {
			n += len(toks)
		}
		r.mu.Unlock()
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("the RP got %d logout tokens in 30 s, want %d (posts %v, bad %v)", n, want, r.posts, r.bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(settle) // a duplicate would come now
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Fatalf("malformed logout requests: %v", r.bad)
	}
	got := r.got
	r.got = map[string][]string{}
	return got
}

// backchannelSeed is defaultSeed (plus bob) with web and spa taking logout tokens
// at rp; spa asks for sid.
func backchannelSeed(t *testing.T, base, rpURL string) string {
	t.Helper()
	base = strings.Replace(base, webLine, webLine+"        backchannel_logout_uri: "+rpURL+"/web\n", 1)
	base = strings.Replace(base, "      - id: spa\n", "      - id: spa\n        backchannel_logout_uri: "+rpURL+"/spa\n        backchannel_logout_session_required: true\n", 1)
	if !strings.Contains(base, rpURL+"/web") || !strings.Contains(base, rpURL+"/spa") {
		t.Fatalf("seed edit failed:\n%s", base)
	}
	return strings.Replace(base, aliceLine, aliceLine+"      - username: bob\n        password: bob-password-1\n", 1)
}

// browserSession is a browser signed in as a user, who used it with spa and web.
type browserSession struct {
	b        *browser
	sid, sub string
	idToken  string // web's
}

// signInBoth signs username in with a fresh browser and gets a code for spa and
// one for web in that session, redeeming web's for its ID token.
func signInBoth(t *testing.T, s *server, username, pass string) browserSession {
	t.Helper()
	b := newBrowser(t)
	codeFor := func(client string) string {
		u := s.authURL(client)
		p := b.get(u)
		if p.location == nil {
			p = b.do(b.loginRequest(p, u, "username", username, "password", pass))
		}
		if p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatalf("no code for %s (%d): %s", client, p.status, p.body)
		}
		return p.location.Query().Get("code")
	}
	codeFor("spa")
	r := s.redeem(t, webBasic, codeFor("web"))
	if r.status != 200 || r.str("id_token") == "" {
		t.Fatalf("redeem: %d %s", r.status, r.raw)
	}
	parts := strings.Split(r.str("id_token"), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Sid, Sub string }
	json.Unmarshal(payload, &c)
	if c.Sid == "" || c.Sub == "" {
		t.Fatalf("ID token without sid or sub: %s", payload)
	}
	return browserSession{b: b, sid: c.Sid, sub: c.Sub, idToken: r.str("id_token")}
}

// verifyLogoutTokens checks that got holds exactly one logout token for web and
// one for spa, each valid under the realm's JWKS (Back-Channel Logout §2.4) and
// naming the session and the user.
func verifyLogoutTokens(t *testing.T, s *server, got map[string][]string, sid, sub string) {
	t.Helper()
	if len(got) != 2 || len(got["/web"]) != 1 || len(got["/spa"]) != 1 {
		counts := map[string]int{}
		for p, toks := range got {
			counts[p] = len(toks)
		}
		t.Fatalf("logout tokens per client %v; want exactly one for web and one for spa", counts)
	}
	res, err := client.Get(s.issuer("acme") + "/protocol/openid-connect/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	jtis := map[string]bool{}
	for path, toks := range got {
		aud := strings.TrimPrefix(path, "/")
		jws, err := jose.ParseSigned(toks[0], []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
		if err != nil {
			t.Fatalf("%s: not a JWS: %v", aud, err)
		}
		h := jws.Signatures[0].Protected
		if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
			t.Errorf("%s: typ %q, want logout+jwt", aud, typ)
		}
		keys := jwks.Key(h.KeyID)
		if len(keys) != 1 || keys[0].Algorithm != h.Algorithm {
			t.Fatalf("%s: kid %q (alg %s) is not one key of the realm's JWKS", aud, h.KeyID, h.Algorithm)
		}
		payload, err := jws.Verify(keys[0].Key)
		if err != nil {
			t.Fatalf("%s: signature: %v", aud, err)
		}
		var c map[string]any
		json.Unmarshal(payload, &c)
		now := float64(time.Now().Unix())
		iat, _ := c["iat"].(float64)
		exp, _ := c["exp"].(float64)
		events, _ := c["events"].(map[string]any)
		event, isObject := events["http://schemas.openid.net/event/backchannel-logout"].(map[string]any)
		jti, _ := c["jti"].(string)
		switch {
		case c["iss"] != s.issuer("acme"):
			t.Errorf("%s: iss %v", aud, c["iss"])
		case c["aud"] != aud:
			t.Errorf("%s: aud %v", aud, c["aud"])
		case c["sub"] != sub:
			t.Errorf("%s: sub %v, want %s", aud, c["sub"], sub)
		case c["sid"] != sid:
			t.Errorf("%s: sid %v, want %s", aud, c["sid"], sid)
		case !isObject || len(event) != 0 || len(events) != 1:
			t.Errorf("%s: events %v", aud, c["events"])
		case c["nonce"] != nil:
			t.Errorf("%s: a logout token must not carry a nonce (§2.4)", aud)
		case iat < now-60 || iat > now+5 || exp <= now || exp > iat+600:
			t.Errorf("%s: iat %v exp %v (now %v)", aud, iat, exp, now)
		case jti == "" || jtis[jti]:
			t.Errorf("%s: jti %q missing or repeated", aud, jti)
		}
		jtis[jti] = true
	}
}

// Every way a session ends (RP-initiated logout, the account page's sign-out,
// the admin ending it, logging out everywhere, the realm logged out, the user
// disabled or deleted) tells each of its clients once, with a logout token
// that verifies against the realm's keys.
func TestBackchannelLogout_EveryWayASessionEndsTellsEachClientOnce(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		rp := newRP(t, nil)
		s := start(t, options{db: db, seed: backchannelSeed(t, adminSeed(t), rp.srv.URL)})
		api := root(t, s)
		users := "/admin/realms/acme/users/"
		settle := 1500 * time.Millisecond

		// RP-initiated logout with the ID token as hint.
		a := signInBoth(t, s, "alice", alicePass)
		if p := a.b.get(s.issuer("acme") + "/protocol/openid-connect/logout?" + url.Values{"id_token_hint": {a.idToken}}.Encode()); p.status != 200 {
			t.Fatalf("logout: %d %s", p.status, p.body)
		}
		verifyLogoutTokens(t, s, rp.take(t, 2, settle), a.sid, a.sub)

		// The account page's sign-out button.
		a = signInBoth(t, s, "alice", alicePass)
		p := a.b.get(s.issuer("acme") + "/account")
		m := regexp.MustCompile(`<input type="hidden" name="request" value="([^"]+)"`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("account page without its form: %d %s", p.status, p.body)
		}
		req, _ := http.NewRequest("POST", s.issuer("acme")+"/account/logout", strings.NewReader(url.Values{"request": {m[1]}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if p := a.b.do(req); p.status != 200 || !strings.Contains(p.body, "signed out") {
			t.Fatalf("account sign-out: %d %s", p.status, p.body)
		}
		verifyLogoutTokens(t, s, rp.take(t, 2, settle), a.sid, a.sub)

		// The admin ends the session.
		a = signInBoth(t, s, "alice", alicePass)
		want(t, "end session", api.do("DELETE", users+a.sub+"/sessions/"+a.sid, nil), 204)
		verifyLogoutTokens(t, s, rp.take(t, 2, settle), a.sid, a.sub)

		// Log out everywhere.
		a = signInBoth(t, s, "alice", alicePass)
		want(t, "logout everywhere", api.do("POST", users+a.sub+"/logout", nil), 204)
		verifyLogoutTokens(t, s, rp.take(t, 2, settle), a.sid, a.sub)

		// The realm logged out: alice's and bob's sessions.
		a = signInBoth(t, s, "alice", alicePass)
		b := signInBoth(t, s, "bob", "bob-password-1")
		want(t, "logout-all", api.do("POST", "/admin/realms/acme/logout-all", nil), 200)
		got := rp.take(t, 4, settle)
		for path, toks := range got {
			if len(toks) != 2 {
				t.Fatalf("realm logout: %d tokens for %s, want one per session", len(toks), path)
			}
		}
		for _, sess := range []browserSession{a, b} {
			// Which token is whose: by sub.
			one := map[string][]string{}
			for path, toks := range got {
				for _, tok := range toks {
					payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
					if strings.Contains(string(payload), `"sub":"`+sess.sub+`"`) {
						one[path] = append(one[path], tok)
					}
				}
			}
			verifyLogoutTokens(t, s, one, sess.sid, sess.sub)
		}

		// The user disabled.
		a = signInBoth(t, s, "alice", alicePass)
		want(t, "disable", api.do("POST", users+a.sub+"/disable", nil), 200)
		verifyLogoutTokens(t, s, rp.take(t, 2, settle), a.sid, a.sub)

		// The user deleted.
		b = signInBoth(t, s, "bob", "bob-password-1")
		want(t, "delete", api.do("DELETE", users+b.sub, nil), 204)
		verifyLogoutTokens(t, s, rp.take(t, 2, settle), b.sid, b.sub)

		// No logout token ever reaches the log.
		rp.mu.Lock()
		defer rp.mu.Unlock()
		for _, tok := range rp.all {
			if strings.Contains(s.logs.String(), tok) || strings.Contains(s.logs.String(), strings.Split(tok, ".")[2]) {
				t.Fatal("a logout token is in the server's log")
			}
		}
	})
}

// A client that fails gets its logout token on a retry; one that always fails
// is given up on with an audit event, and the other client of the session is
// told all the same.
func TestBackchannelLogout_RetriesThenGivesUpWithAnAuditEvent(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		rp := newRP(t, map[string]int{"/web": 2, "/spa": -1})
		s := start(t, options{db: db, seed: backchannelSeed(t, defaultSeed, rp.srv.URL), args: []string{"--backchannel-retry", "200ms"}})

		a := signInBoth(t, s, "alice", alicePass)
		if p := a.b.get(s.issuer("acme") + "/protocol/openid-connect/logout?" + url.Values{"id_token_hint": {a.idToken}}.Encode()); p.status != 200 {
			t.Fatalf("logout: %d %s", p.status, p.body)
		}
		got := rp.take(t, 1, 0)
		webPosts := rp.postsTo("/web")
		if len(got["/web"]) != 1 || webPosts != 3 {
			t.Fatalf("web: %d tokens accepted after %d POSTs; want one on the third", len(got["/web"]), webPosts)
		}

		// spa: 1 + 4 retries over 0.2+0.6+1.8+5.4 s, then the audit event.
		st := openStore(t, db)
		var events []storage.AuditEvent
		for deadline := time.Now().Add(30 * time.Second); len(events) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var err error
			if events, err = st.ListAudit(t.Context(), storage.AuditFilter{Realm: "acme", Type: "backchannel_logout.failed"}); err != nil {
				t.Fatal(err)
			}
		}
		if len(events) != 1 {
			t.Fatalf("backchannel_logout.failed events: %+v; want one", events)
		}
		e := events[0]
		if e.ClientID != "spa" || e.SessionID != a.sid || e.UserID != a.sub {
			t.Errorf("audit event %+v; want client spa, session %s, user %s", e, a.sid, a.sub)
		}
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if rp.posts["/spa"] != 5 {
			t.Errorf("spa got %d POSTs, want 5 (one and four retries)", rp.posts["/spa"])
		}
		for _, tok := range rp.all {
			sig := strings.Split(tok, ".")[2]
			for k, v := range e.Details {
				if strings.Contains(v, sig) || strings.Contains(k, sig) {
					t.Fatal("the audit event carries a logout token")
				}
			}
			if strings.Contains(s.logs.String(), sig) {
				t.Fatal("a logout token is in the server's log")
			}
		}
	})
}

// A logout still being retried when the server stops is delivered after it
// starts again: the cursor in the store stays before it until it is done.
func TestBackchannelLogout_SurvivesARestart(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		rp := newRP(t, map[string]int{"/web": -1})
		o := options{db: db, seed: backchannelSeed(t, defaultSeed, rp.srv.URL), args: []string{"--backchannel-retry", "30s"}}
		s := start(t, o)
		a := signInBoth(t, s, "alice", alicePass)
		if p := a.b.get(s.issuer("acme") + "/protocol/openid-connect/logout?" + url.Values{"id_token_hint": {a.idToken}}.Encode()); p.status != 200 {
			t.Fatalf("logout: %d %s", p.status, p.body)
		}
		rp.take(t, 1, 0) // spa's; web refuses its first and waits 30 s to retry
		for deadline := time.Now().Add(10 * time.Second); rp.postsTo("/web") == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("web never got its first POST")
			}
		}
		rp.mu.Lock()
		rp.failFirst["/web"] = 0 // from now on, web takes it
		rp.mu.Unlock()
		if n := rp.postsTo("/web"); n != 1 {
			t.Fatalf("web got %d POSTs before the restart, want 1", n)
		}

		s.stop()
		s = start(t, o)
		got := rp.take(t, 2, time.Second) // web's, and spa's again (at least once)
		if len(got["/web"]) != 1 {
			t.Fatalf("web got %d logout tokens after the restart, want 1", len(got["/web"]))
		}
		verifyLogoutTokens(t, s, map[string][]string{"/web": got["/web"], "/spa": got["/spa"][:1]}, a.sid, a.sub)
	})
}

// Three instances on one PostgreSQL database: each logout is delivered once, not
// once per instance.
func TestBackchannelLogout_ThreeInstancesDeliverOnce(t *testing.T) {
	db := pgtest.DSN(t)
	rp := newRP(t, nil)
	seed := backchannelSeed(t, defaultSeed, rp.srv.URL)
	// One issuer, as behind a load balancer: each instance listens on its own
	// address, and the last --base-url wins.
	addr := freeAddr(t)
	var ss []*server
	for i := range 3 {
		o := options{db: db, seed: seed, args: []string{"--base-url", "http://" + addr}}
		if i == 0 {
			o.addr = addr
		}
		ss = append(ss, start(t, o))
	}
	for i := range 3 {
		// Sign in through one instance and out through another.
		a := signInBoth(t, ss[i], "alice", alicePass)
		out := ss[(i+1)%3]
		if p := a.b.get(out.URL + "/realms/acme/protocol/openid-connect/logout?" + url.Values{"id_token_hint": {a.idToken}}.Encode()); p.status != 200 {
			t.Fatalf("logout: %d %s", p.status, p.body)
		}
		verifyLogoutTokens(t, ss[0], rp.take(t, 2, 3*time.Second), a.sid, a.sub)
	}
}

// backchannel_logout_uri through the admin API: https anywhere, plain http on
// loopback only when the server allows plain http, never a fragment.
func TestBackchannelLogout_AdminAPIChecksTheURI(t *testing.T) {
	put := func(uri string, required bool) map[string]any {
		return map[string]any{"id": "bcl", "redirect_uris": []string{callback}, "grant_types": []string{"authorization_code"},
			"backchannel_logout_uri": uri, "backchannel_logout_session_required": required}
	}
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db) // --insecure-http: plain http to loopback is allowed
		api := root(t, s)
		path := "/admin/realms/acme/clients/bcl"
		r := want(t, "create", api.do("PUT", path, put("https://rp.example/logout", true)), 201)
		if r.str("backchannel_logout_uri") != "https://rp.example/logout" || r.body["backchannel_logout_session_required"] != true {
			t.Fatalf("created: %s", r.raw)
		}
		r = want(t, "get", api.do("GET", path, nil), 200)
		if r.str("backchannel_logout_uri") != "https://rp.example/logout" || r.body["backchannel_logout_session_required"] != true {
			t.Fatalf("read back: %s", r.raw)
		}
		want(t, "loopback http", api.do("PUT", path, put("http://127.0.0.1:9000/logout", false)), 200)
		for _, bad := range []string{"http://rp.example/logout", "https://rp.example/logout#x", "/logout"} {
			r := wantProblem(t, bad, api.do("PUT", path, put(bad, false)), 400)
			if f := fieldErrors(r); len(f) != 1 || f[0] != "backchannel_logout_uri" {
				t.Errorf("%s: field errors %v, want backchannel_logout_uri", bad, f)
			}
		}
	})
	t.Run("without plain http", func(t *testing.T) {
		s := start(t, options{seed: adminSeed(t), https: true})
		api := root(t, s)
		r := wantProblem(t, "loopback http", api.do("PUT", "/admin/realms/acme/clients/bcl", put("http://127.0.0.1:9000/logout", false)), 400)
		if f := fieldErrors(r); len(f) != 1 || f[0] != "backchannel_logout_uri" {
			t.Errorf("field errors %v, want backchannel_logout_uri", f)
		}
		want(t, "https", api.do("PUT", "/admin/realms/acme/clients/bcl", put("https://rp.example/logout", false)), 201)
	})
}

// The seed file: a plain-http back-channel logout URI stops a server that does
// not allow plain http, naming the field; a non-loopback one stops any server.
func TestBackchannelLogout_SeedChecksTheURI(t *testing.T) {
	withURI := func(uri string) string {
		return seedWith(t, webLine, webLine+"        backchannel_logout_uri: "+uri+"\n")
	}
	tests := []struct {
		uri   string
		https bool // the server does not allow plain http
		want  string
	}{
		{"http://127.0.0.1:9000/logout", true, "realms[0].clients[0].backchannel_logout_uri"},
		{"http://rp.example/logout", false, "realms[0].clients[0].backchannel_logout_uri"},
		{"https://rp.example/logout#frag", false, "realms[0].clients[0].backchannel_logout_uri"},
	}
	for _, tc := range tests {
		out, err := runServeUntilExit(t, withURI(tc.uri), tc.https)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s (https %v): exit %v, output %q; want a refusal naming %s", tc.uri, tc.https, err, out, tc.want)
		}
	}
	// Loopback http with plain http allowed, and https anywhere, start.
	start(t, options{seed: withURI("http://127.0.0.1:9000/logout")})
	start(t, options{seed: withURI("https://rp.example/logout"), https: true})
}

// runServeUntilExit runs `latchkey serve` with the seed, expecting it to refuse
// to start, and returns its output and exit error (nil if it started: then it
// is stopped).
func runServeUntilExit(t *testing.T, seed string, https bool) (string, error) {
	t.Helper()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(seedFile, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	args := []string{"serve", "--insecure-http", "--addr", addr, "--base-url", "http://" + addr}
	if https {
		args = []string{"serve", "--addr", addr, "--base-url", "https://" + addr}
	}
	args = append(args, "--db", filepath.Join(dir, "latchkey.db"), "--data-dir", dir, "--seed", seedFile)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = []string{"LATCHKEY_MASTER_KEY=" + masterKey, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), nil // it served until killed
	}
	return string(out), err
}
