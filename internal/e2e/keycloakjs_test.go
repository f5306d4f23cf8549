package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-jose/go-jose/v4"
)

// The Done-when test: keycloak-js, as published on npm and pinned by
// testdata/keycloakjs/package-lock.json, in headless Chromium with its default
// options (response_mode fragment, PKCE S256, the login status iframe and the
// third-party cookie check on), against a real `latchkey serve`. The app's page
// is served from another port than Latchkey's, so every fetch keycloak-js makes
// (code exchange, refresh, account) is a cross-origin request with credentials.

const (
	// browserEnv set to 1 makes a missing browser, or a missing npm to fetch
	// keycloak-js with, a test failure instead of a skip.
	browserEnv = "LATCHKEY_REQUIRE_BROWSER"
	// kcStep bounds each step in the browser; keycloak-js's own timeouts for the
	// iframes are 10 s.
	kcStep = 30 * time.Second
	// kcClient is the public client of the realm export
	// (internal/kcimport/testdata/realm-export.json); kcPassword alice's password there.
	kcClient   = "acme-spa"
	kcPassword = "alice-Secret-42"
)

func TestKeycloakJS_DefaultOptionsSignInProfileRefreshLogout(t *testing.T) {
	lib := keycloakJS(t)
	chrome := chromiumPath(t)
	binary(t) // built once, before the clock below starts
	stores(t, func(t *testing.T, db string) {
		begin := time.Now()
		runKeycloakJS(t, db, lib, chrome)
		t.Logf("import, server, browser and keycloak-js journey: %v", time.Since(begin).Round(time.Millisecond))
	})
}

func runKeycloakJS(t *testing.T, db, lib, chrome string) {
	addr := freeAddr(t)
	app := kcApp(t, lib, "http://"+addr)
	// The realm: `latchkey import keycloak` on the realm export in the
	// repository, its app's origin (http://localhost:3000) made this test's.
	export, err := os.ReadFile(filepath.Join("..", "kcimport", "testdata", "realm-export.json"))
	if err != nil {
		t.Fatal(err)
	}
	exportFile := filepath.Join(t.TempDir(), "realm-export.json")
	if err := os.WriteFile(exportFile, bytes.ReplaceAll(export, []byte("http://localhost:3000"), []byte(app.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := importKeycloak(t, db, exportFile); code != 0 {
		t.Fatalf("latchkey import keycloak: exit %d\n%s%s", code, out, errOut)
	}
	s := start(t, options{db: db, addr: addr, seed: "realms:\n  - name: other\n"}) // the seed must not touch acme
	tab := newKCTab(t, chrome)
	appURL := app.URL + "/app.html"

	// 1. The app sends the browser to Latchkey's login page, as keycloak-js
	// does with its defaults.
	tab.do("opening the app: Latchkey's login page", chromedp.Navigate(appURL), chromedp.WaitVisible(chromedp.ID("password")))
	loginURL, _ := url.Parse(inKCTab(tab, "the login page's URL", chromedp.Location()))
	q := loginURL.Query()
	if loginURL.Scheme+"://"+loginURL.Host+loginURL.Path != s.issuer("acme")+"/protocol/openid-connect/auth" ||
		q.Get("client_id") != kcClient || q.Get("redirect_uri") != appURL || q.Get("response_mode") != "fragment" ||
		q.Get("response_type") != "code" || q.Get("scope") != "openid" || q.Get("code_challenge_method") != "S256" ||
		q.Get("nonce") == "" || q.Get("state") == "" {
		t.Fatalf("keycloak-js's authorization request is not what its defaults make: %s", loginURL)
	}

	// 2. Sign in on the plain HTML form: back at the app, keycloak-js redeems
	// the code (fetch with credentials from the app's origin), frames the
	// session iframe and reports itself authenticated.
	tab.signIn("signing in", "alice", kcPassword)
	st := tab.state("after sign-in")
	checkKCTokens(t, s, st, "after sign-in", true)

	// 3. loadUserProfile: the account representation, by fetch with a Bearer
	// token and credentials.
	var profile struct {
		ID, Username, Email, FirstName, LastName string
		EmailVerified                            bool
	}
	raw := tab.eval("loadUserProfile", `keycloak.loadUserProfile().then(p => JSON.stringify(p))`)
	if err := json.Unmarshal([]byte(raw), &profile); err != nil {
		t.Fatalf("loadUserProfile gave %s: %v", raw, err)
	}
	if profile.ID != st.Subject || profile.Username != "alice" || profile.Email != "alice@example.com" || !profile.EmailVerified ||
		profile.FirstName != "Alice" || profile.LastName != "Liddell" {
		t.Errorf("loadUserProfile = %s; want id %s, alice, alice@example.com (verified), Alice Liddell", raw, st.Subject)
	}

	// 4. updateToken(-1), forced, three times: every refresh rotates.
	seen := []kcState{st}
	for i := 1; i <= 3; i++ {
		what := fmt.Sprintf("updateToken(-1) #%d", i)
		if got := tab.eval(what, kcUpdateToken); got != "true" {
			t.Fatalf("%s = %s%s", what, got, tab.dump())
		}
		st = tab.state(what)
		checkKCTokens(t, s, st, what, false)
		for _, old := range seen {
			if st.RefreshToken == old.RefreshToken || st.Token == old.Token ||
				st.TokenParsed["jti"] == old.TokenParsed["jti"] || st.RefreshTokenParsed["jti"] == old.RefreshTokenParsed["jti"] {
				t.Fatalf("%s: the tokens did not all change", what)
			}
		}
		if st.SessionID != seen[0].SessionID {
			t.Errorf("%s: the session changed from %s to %s", what, seen[0].SessionID, st.SessionID)
		}
		seen = append(seen, st)
	}

	// 5. logout(): keycloak-js sends the browser to the end-session endpoint
	// with id_token_hint and back to the app, which, with no session left, is
	// sent to the login page again.
	tab.eval("logout", `(keycloak.logout(), "ok")`)
	tab.do("after logout: the login page again", chromedp.WaitVisible(chromedp.ID("password")))
	if loc := inKCTab(tab, "the page's URL", chromedp.Location()); !strings.HasPrefix(loc, s.issuer("acme")+"/protocol/openid-connect/auth?") {
		t.Fatalf("after logout the browser is at %s, not at the login page", loc)
	}
	if r := kcRefresh(t, s, st.RefreshToken); !r.invalidGrant() {
		t.Errorf("the refresh token of the signed-out session = %d %s; want invalid_grant", r.status, r.raw)
	}

	// Nothing went wrong on the way that keycloak-js or the browser noticed: no
	// blocked answer (CORS), refused frame (CSP), failed request or exception.
	tab.noErrors("up to the logout")

	// 6. A new sign-in, a new family: a spent refresh token whose successor
	// was used is reuse. The token endpoint refuses it and revokes the family,
	// and keycloak-js's next refresh is refused too.
	tab.signIn("signing in again", "alice", kcPassword)
	first := tab.state("after the second sign-in")
	if first.SessionID == st.SessionID {
		t.Errorf("the second sign-in has the first one's session %s", st.SessionID)
	}
	for i := 1; i <= 2; i++ {
		if got := tab.eval("updateToken(-1)", kcUpdateToken); got != "true" {
			t.Fatalf("updateToken(-1) after the second sign-in = %s%s", got, tab.dump())
		}
	}
	if r := kcRefresh(t, s, first.RefreshToken); !r.invalidGrant() {
		t.Fatalf("the first refresh token again, after its successor was used = %d %s; want invalid_grant", r.status, r.raw)
	}
	got := tab.eval("updateToken(-1) after reuse", `(keycloak.loginRequired = false, `+kcUpdateToken+`)`)
	if !strings.HasPrefix(got, "error:") || !strings.HasSuffix(got, " 400") || tab.eval("authenticated", `String(keycloak.authenticated)`) != "false" {
		t.Errorf("keycloak-js's refresh after reuse was detected = %s; want it refused (400) and the app signed out", got)
	}
}

// kcUpdateToken forces a refresh and says "true" or the error.
const kcUpdateToken = `keycloak.updateToken(-1).then(String, e => "error: " + (e instanceof Error ? e.message + (e.response ? " " + e.response.status : "") : JSON.stringify(e)))`

// kcState is what keycloak-js holds after sign-in or refresh.
type kcState struct {
	Authenticated      bool           `json:"authenticated"`
	Token              string         `json:"token"`
	RefreshToken       string         `json:"refreshToken"`
	IDToken            string         `json:"idToken"`
	TokenParsed        map[string]any `json:"tokenParsed"`
	RefreshTokenParsed map[string]any `json:"refreshTokenParsed"`
	IDTokenParsed      map[string]any `json:"idTokenParsed"`
	SessionID          string         `json:"sessionId"`
	Subject            string         `json:"subject"`
	// What the app asks keycloak-js about the roles.
	HasUser, HasEditor, HasAPIRead, HasViewer bool
}

// checkKCTokens checks the tokens keycloak-js holds: Keycloak's shape, as apps
// read it, on tokens Latchkey signed. signIn: they come from the code exchange
// (keycloak-js checked the ID token's nonce).
func checkKCTokens(t *testing.T, s *server, st kcState, what string, signIn bool) {
	t.Helper()
	if !st.Authenticated || st.Token == "" || st.RefreshToken == "" || st.IDToken == "" {
		t.Fatalf("%s: keycloak-js holds authenticated=%v, tokens %t/%t/%t", what, st.Authenticated, st.Token != "", st.RefreshToken != "", st.IDToken != "")
	}
	at := verifyKCJWT(t, s, st.Token, "at+jwt")
	if !jsonEqual(at, st.TokenParsed) {
		t.Errorf("%s: keycloak-js parsed the access token as %v, its signed claims are %v", what, st.TokenParsed, at)
	}
	id := verifyKCJWT(t, s, st.IDToken, "JWT")
	str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
	if str(at, "iss") != s.issuer("acme") || str(at, "client_id") != kcClient || str(at, "sub") == "" || str(at, "sub") != str(id, "sub") ||
		str(at, "sid") == "" || str(at, "sid") != str(id, "sid") || st.SessionID != str(at, "sid") || st.Subject != str(at, "sub") {
		t.Errorf("%s: access token iss/client_id/sub/sid %v; ID token sub/sid %s/%s; keycloak-js session %s", what, at, str(id, "sub"), str(id, "sid"), st.SessionID)
	}
	for k, want := range map[string]string{"preferred_username": "alice", "email": "alice@example.com", "given_name": "Alice", "family_name": "Liddell"} {
		if got := str(at, k); got != want {
			t.Errorf("%s: access token %s = %q, want %q", what, k, got, want)
		}
	}
	if rs := roles(at["realm_access"]); !slices.Contains(rs, "user") || !slices.Contains(rs, "editor") {
		t.Errorf("%s: access token realm_access = %v; want the roles user and editor", what, at["realm_access"])
	}
	ra, _ := at["resource_access"].(map[string]any)
	if rs := roles(ra["acme-api"]); !slices.Contains(rs, "read") {
		t.Errorf("%s: access token resource_access = %v; want acme-api's read (from the composite editor)", what, at["resource_access"])
	}
	if rs := roles(ra[kcClient]); !slices.Contains(rs, "viewer") {
		t.Errorf("%s: access token resource_access = %v; want acme-spa's viewer", what, at["resource_access"])
	}
	if !st.HasUser || !st.HasEditor || !st.HasAPIRead || !st.HasViewer {
		t.Errorf("%s: keycloak-js hasRealmRole(user, editor) %v %v, hasResourceRole(read, acme-api) %v, hasResourceRole(viewer) %v",
			what, st.HasUser, st.HasEditor, st.HasAPIRead, st.HasViewer)
	}
	// keycloak-js decodes the refresh token too (it throws on an opaque one).
	// Without offline_access it is a session-bound one, typ Refresh (in the
	// header, and in the claims, where Keycloak puts it and apps read it).
	rt := verifyKCJWT(t, s, st.RefreshToken, "Refresh")
	if !jsonEqual(rt, st.RefreshTokenParsed) {
		t.Errorf("%s: keycloak-js parsed the refresh token otherwise than its signed claims say", what)
	}
	if typ := str(rt, "typ"); typ != "Refresh" {
		t.Errorf("%s: the refresh token's claims say typ %q; want Refresh, as Keycloak's (apps read refreshTokenParsed.typ)", what, typ)
	}
	exp, _ := rt["exp"].(float64)
	iat, _ := rt["iat"].(float64)
	if str(rt, "sid") != str(at, "sid") || str(rt, "azp") != kcClient || str(rt, "jti") == "" || exp <= iat {
		t.Errorf("%s: the refresh token's sid %q, azp %q, jti %q, iat %v, exp %v; want the session's sid %q, azp %s, a jti, exp after iat",
			what, str(rt, "sid"), str(rt, "azp"), str(rt, "jti"), iat, exp, str(at, "sid"), kcClient)
	}
	if !jsonEqual(id, st.IDTokenParsed) || (signIn && str(id, "nonce") == "") {
		t.Errorf("%s: ID token %v, as keycloak-js parsed it %v; want a nonce after sign-in", what, id, st.IDTokenParsed)
	}
}

func roles(access any) []string {
	m, _ := access.(map[string]any)
	list, _ := m["roles"].([]any)
	var out []string
	for _, r := range list {
		if s, ok := r.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// verifyKCJWT checks a JWT's typ and its signature with the realm's JWKS, and
// returns its claims.
func verifyKCJWT(t *testing.T, s *server, tok, typ string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("not a JWS: %v", err)
	}
	h := jws.Signatures[0].Protected
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ {
		t.Errorf("JWT typ %q, want %q", got, typ)
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
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not one key of the realm's JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("JWT signature: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// kcRefresh presents a refresh token at the token endpoint as the public client.
func kcRefresh(t *testing.T, s *server, rt string) response {
	t.Helper()
	return post(t, s.tokenURL(), "", form("grant_type", "refresh_token", "refresh_token", rt, "client_id", kcClient))
}

// kcApp serves the test's app: app.html, keycloak-js's ES module from the
// installed package, and config.json saying where Latchkey is. It listens on a
// loopback port of its own: another origin than Latchkey's.
func kcApp(t *testing.T, lib, latchkeyURL string) *httptest.Server {
	t.Helper()
	page, err := os.ReadFile(filepath.Join("testdata", "keycloakjs", "app.html"))
	if err != nil {
		t.Fatal(err)
	}
	module, err := os.ReadFile(filepath.Join(lib, "keycloak.js"))
	if err != nil {
		t.Fatal(err)
	}
	config, _ := json.Marshal(map[string]any{"url": latchkeyURL, "realm": "acme", "clientId": kcClient})
	files := map[string]struct {
		typ  string
		body []byte
	}{
		"/app.html":    {"text/html; charset=utf-8", page},
		"/keycloak.js": {"text/javascript; charset=utf-8", module},
		"/config.json": {"application/json", config},
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok || r.Method != "GET" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.typ)
		w.Header().Set("Cache-Control", "no-store")
		w.Write(f.body)
	}))
	t.Cleanup(app.Close)
	return app
}

// keycloakJS installs the keycloak-js of testdata/keycloakjs/package-lock.json
// (npmInstall) and returns the package's lib directory.
func keycloakJS(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("installs keycloak-js and runs a browser")
	}
	lib := filepath.Join("node_modules", "keycloak-js", "lib")
	return filepath.Join(npmInstall(t, "keycloakjs", filepath.Join(lib, "keycloak.js")), lib)
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "no chromium, chromium-browser or google-chrome on PATH (Debian: apt-get install chromium)")
	return ""
}

// kcTab is a headless Chromium tab with scripts on, and what its pages wrote
// to the console.
type kcTab struct {
	t   *testing.T
	tab context.Context

	mu      sync.Mutex
	console []string
	checked int // console[:checked] was checked by noErrors
}

func newKCTab(t *testing.T, path string) *kcTab {
	t.Helper()
	output := &syncBuffer{}
	life, cancelLife := context.WithTimeout(context.Background(), 5*time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(output),
	)
	tab, cancelTab := chromedp.NewContext(alloc)
	c := &kcTab{t: t, tab: tab}
	read := make(chan struct{})
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit, before t.TempDir goes
		cancelLife()
		<-read
		if t.Failed() {
			t.Logf("browser output:\n%s", output)
		}
	})
	if err := chromedp.Do(tab); err != nil {
		close(read)
		t.Fatalf("starting %s: %v", path, err)
	}
	messages := chromedp.Console(tab)
	go func() {
		defer close(read)
		for m, err := range messages {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.console = append(c.console, m.String()+" "+m.URL)
			c.mu.Unlock()
		}
	}()
	return c
}

// inKCTab runs one action in the tab and returns its value, failing the test on
// an error or after kcStep.
func inKCTab[T any](c *kcTab, what string, a chromedp.Action[T]) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.tab, kcStep)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.t.Fatalf("%s: %v%s", what, err, c.dump())
	}
	return v
}

func (c *kcTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	inKCTab(c, what, chromedp.Steps(steps...))
}

// eval evaluates a JavaScript expression in the app's page, awaiting a promise,
// and returns its string value.
func (c *kcTab) eval(what, js string) string {
	c.t.Helper()
	return inKCTab(c, what, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
}

// signIn fills in the login page the tab is on and waits for the app to say
// how keycloak-js's init ended: it must be authenticated.
func (c *kcTab) signIn(what, username, password string) {
	c.t.Helper()
	c.do(what,
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("username"), username),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(`//button[normalize-space()="Sign in"]`),
		chromedp.WaitVisible(`//p[@id="status" and normalize-space() != "loading"]`))
	if got := inKCTab(c, what+": the app's status", chromedp.Text(chromedp.ID("status"))); got != "authenticated" {
		c.t.Fatalf("%s: keycloak-js init ended with %q%s", what, got, c.dump())
	}
}

// state reads what keycloak-js holds.
func (c *kcTab) state(what string) kcState {
	c.t.Helper()
	raw := c.eval(what+": keycloak-js's state", `JSON.stringify({
		authenticated: keycloak.authenticated, token: keycloak.token, refreshToken: keycloak.refreshToken, idToken: keycloak.idToken,
		tokenParsed: keycloak.tokenParsed, refreshTokenParsed: keycloak.refreshTokenParsed, idTokenParsed: keycloak.idTokenParsed,
		sessionId: keycloak.sessionId, subject: keycloak.subject,
		HasUser: keycloak.hasRealmRole("user"), HasEditor: keycloak.hasRealmRole("editor"),
		HasAPIRead: keycloak.hasResourceRole("read", "acme-api"), HasViewer: keycloak.hasResourceRole("viewer")})`)
	var st kcState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		c.t.Fatalf("%s: %v: %.200s", what, err, raw)
	}
	return st
}

// noErrors fails the test if the pages wrote an error or threw since the last
// call: a browser that blocks an answer (CORS) or a frame (CSP) says so here. A
// missing favicon is no error.
func (c *kcTab) noErrors(what string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.console[c.checked:] {
		if (strings.HasPrefix(m, "error:") || strings.HasPrefix(m, "exception:")) && !strings.HasSuffix(m, "/favicon.ico") {
			c.t.Errorf("%s, the browser's console says: %s", what, m)
		}
	}
	c.checked = len(c.console)
}

// dump describes where the tab is, for failure messages.
func (c *kcTab) dump() string {
	ctx, cancel := context.WithTimeout(c.tab, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	c.mu.Lock()
	defer c.mu.Unlock()
	return "\nthe tab is at " + loc + "\nconsole:\n  " + strings.Join(c.console, "\n  ") + "\npage body:\n" + body
}
