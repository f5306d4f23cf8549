package oauth

import (
	"bytes"
	"context"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// The login, consent and logout pages are plain HTML forms. httptest shows what the
// server sends; only a browser shows that the browser does what the server means:
// follows the post-login redirect under the page's CSP (form-action), keeps the
// cookies with their attributes, sends the Sec-Fetch-Site the cross-origin check
// wants, and lays the pages out on a phone. Scripts are off in the tab throughout.

const (
	// browserEnv set to 1 makes a missing browser a test failure instead of a skip.
	browserEnv = "LATCHKEY_REQUIRE_BROWSER"
	// stepTimeout bounds each step in the browser; browserTimeout the browser's life.
	stepTimeout    = 30 * time.Second
	browserTimeout = 3 * time.Minute
)

// chromium is one headless Chromium tab with JavaScript turned off. Navigations to
// the client's redirect URIs (http://127.0.0.1:9999, where nothing listens) never
// reach the network: the tab answers them with a stub page and their URLs arrive
// on callbacks, in order.
type chromium struct {
	t         *testing.T
	tab       context.Context
	callbacks chan *url.URL
	// posted holds the form of each callback that was a POST (form_post), sent
	// before its URL arrives on callbacks.
	posted chan url.Values

	mu  sync.Mutex
	log []string // the browser's log for the tab; a CSP violation is reported here
}

// browserPath finds a Chromium to drive, or skips (fails, under LATCHKEY_REQUIRE_BROWSER=1).
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "no chromium, chromium-browser or google-chrome on PATH (Debian: apt-get install chromium)"
	if os.Getenv(browserEnv) == "1" {
		t.Fatalf("%s=1 but %s", browserEnv, why)
	}
	t.Skipf("SKIPPED, PAGES NOT TESTED IN A BROWSER: %s (set %s=1 to fail instead)", why, browserEnv)
	return ""
}

func newChromium(t *testing.T) *chromium {
	t.Helper()
	path := browserPath(t)
	output := &lockedWriter{mu: &sync.Mutex{}, w: &bytes.Buffer{}}
	life, cancelLife := context.WithTimeout(context.Background(), browserTimeout)
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
	c := &chromium{t: t, tab: tab, callbacks: make(chan *url.URL, 16), posted: make(chan url.Values, 16)}
	answered := make(chan struct{})
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit, before t.TempDir goes
		cancelLife()
		<-answered
		if t.Failed() {
			output.mu.Lock()
			t.Logf("browser output:\n%s", output.w.(*bytes.Buffer))
			output.mu.Unlock()
		}
	})

	// The first run starts the browser; it is bounded by browserTimeout, the
	// steps after it by stepTimeout each.
	if err := chromedp.Do(tab); err != nil {
		close(answered)
		t.Fatalf("starting %s: %v", path, err)
	}
	if err := chromedp.Listen(tab, func(ev any) {
		if e, ok := ev.(*cdplog.EventEntryAdded); ok {
			c.mu.Lock()
			c.log = append(c.log, string(e.Entry.Source)+" "+string(e.Entry.Level)+": "+e.Entry.Text+" "+e.Entry.URL)
			c.mu.Unlock()
		}
	}); err != nil {
		close(answered)
		t.Fatal(err)
	}
	paused := chromedp.Events(tab, fetch.RequestPaused)
	go func() {
		defer close(answered)
		for ev, err := range paused {
			if err != nil {
				return
			}
			u, _ := url.Parse(ev.Request.URL)
			if ev.Request.Method == "POST" {
				var body []byte
				for _, e := range ev.Request.PostDataEntries {
					body = append(body, e.Bytes...)
				}
				f, _ := url.ParseQuery(string(body))
				select {
				case c.posted <- f:
				default:
				}
			}
			// The app's page: a navigation that ends here ends on a document, not
			// on an error page, so the next step starts from a settled tab.
			chromedp.Call(tab, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID: ev.RequestID, ResponseCode: 200,
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
				Body:            []byte(`<!doctype html><title>app</title><h1 id="app">the app</h1>`),
			})
			select {
			case c.callbacks <- u:
			case <-tab.Done():
				return
			}
		}
	}()
	c.do("turning scripts off and catching the app's redirect URIs",
		call(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}),
		call(fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: "http://127.0.0.1:9999/*", ResourceType: network.ResourceTypeDocument},
		}}),
	)
	return c
}

// call makes a protocol command a step.
func call[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cmd, params)
		return err
	})
}

// do runs steps in the tab, failing the test on an error or after stepTimeout.
func (c *chromium) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	inTab(c, what, chromedp.Steps(steps...))
}

// inTab runs one action in the tab and returns its value, failing the test on an
// error or after stepTimeout.
func inTab[T any](c *chromium, what string, a chromedp.Action[T]) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.tab, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.t.Fatalf("%s: %v%s", what, err, c.state())
	}
	return v
}

// state describes where the tab is, for failure messages.
func (c *chromium) state() string {
	ctx, cancel := context.WithTimeout(c.tab, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	c.mu.Lock()
	defer c.mu.Unlock()
	return "\nthe tab is at " + loc + "\nbrowser log:\n  " + strings.Join(c.log, "\n  ") + "\npage body:\n" + body
}

// callback waits for the tab to go to the client's redirect URI, and returns that URL.
func (c *chromium) callback(what string) *url.URL {
	c.t.Helper()
	select {
	case u := <-c.callbacks:
		// The stub page is the app: make sure the tab is on it before going on.
		c.do(what+": landing on the app", chromedp.WaitReady(chromedp.ID("app")))
		return u
	case <-time.After(stepTimeout):
		c.t.Fatalf("%s: the browser never went to %s%s", what, callback, c.state())
		return nil
	}
}

// noCallback checks the tab has not gone to the client since the last callback.
func (c *chromium) noCallback(what string) {
	c.t.Helper()
	select {
	case u := <-c.callbacks:
		c.t.Fatalf("%s: the browser went to the app: %s", what, u)
	default:
	}
}

func (c *chromium) cookies(u string) map[string]*network.Cookie {
	c.t.Helper()
	res := inTab(c, "reading cookies", func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	})
	m := map[string]*network.Cookie{}
	for _, ck := range res.Cookies {
		m[ck.Name] = ck
	}
	return m
}

// screenshot captures the viewport, checks it is a PNG of width×height device
// pixels (height 0: any), writes it under t.TempDir and logs where.
func (c *chromium) screenshot(name string, width, height int) {
	c.t.Helper()
	buf := inTab(c, "screenshot "+name, chromedp.CaptureScreenshot())
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil || len(buf) == 0 {
		c.t.Fatalf("screenshot %s is not a PNG (%d bytes): %v", name, len(buf), err)
	}
	if cfg.Width != width || (height != 0 && cfg.Height != height) || cfg.Height == 0 {
		c.t.Errorf("screenshot %s is %dx%d, want %dx%d", name, cfg.Width, cfg.Height, width, height)
	}
	path := filepath.Join(c.t.TempDir(), strings.ReplaceAll(name, " ", "-")+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("screenshot of the %s: %s (%dx%d, %d bytes)", name, path, cfg.Width, cfg.Height, len(buf))
}

// chromiumInstance starts one seeded instance on a fresh SQLite store for a
// browser test (the pages do not depend on the store).
func chromiumInstance(t *testing.T) *instance {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "latchkey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newInstance(t, st, &clock{t: time.Now().Truncate(time.Second)}, true)
}

// signIn goes from an authorization URL through the login page, with the right
// password at the first try, to the client's redirect URI, and returns that URL.
func (c *chromium) signIn(what, authURL, username, password string) *url.URL {
	c.t.Helper()
	c.do(what+": the login page",
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.ID("password")))
	c.do(what+": the password",
		chromedp.SendKeys(chromedp.ID("username"), username),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(`//button[normalize-space()="Sign in"]`))
	return c.callback(what)
}

// submit clicks a form's button and waits for the page the form leads to (after
// any redirect) to load; it returns that page's HTTP response.
func (c *chromium) submit(what, button string) *network.Response {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.tab, stepTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(button))
	if err != nil {
		c.t.Fatalf("%s: %v%s", what, err, c.state())
	}
	if res == nil {
		c.t.Fatalf("%s: no response for the page%s", what, c.state())
	}
	return res
}

// The phone the pages are laid out on, in CSS pixels, at phoneScale device
// pixels to one.
const phoneWidth, phoneHeight, phoneScale = 390, 844, 3

// onPhone makes the tab a phone, until the tab is made something else.
func onPhone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(phoneScale), chromedp.EmulateMobile, chromedp.EmulateTouch)
}

// fitsPhone screenshots the page on the phone (see onPhone) and checks it is laid
// out at the device width with nothing wider than the screen.
func (c *chromium) fitsPhone(name string) {
	c.t.Helper()
	c.screenshot(name, phoneWidth*phoneScale, phoneHeight*phoneScale)
	m := inTab(c, name+": layout metrics", func(ctx context.Context, t *chromedp.Target) (cdppage.GetLayoutMetricsResult, error) {
		return cdp.Call(ctx, t, cdppage.GetLayoutMetrics, cdp.Empty{})
	})
	if vw := m.CSSLayoutViewport.ClientWidth; vw != phoneWidth {
		c.t.Errorf("%s: on a %dpx-wide phone the page is laid out %dpx wide", name, phoneWidth, vw)
	}
	if cw := m.CSSContentSize.Width; cw > phoneWidth {
		c.t.Errorf("%s: on a %dpx-wide phone the page is %vpx wide: it scrolls sideways", name, phoneWidth, cw)
	}
	// The same, element by element: an element that overflows a box that clips
	// or scrolls does not widen the page, but is still cut off. (The tab's
	// scripts are off; DevTools can still evaluate.)
	wide := inTab(c, name+": elements wider than the screen", chromedp.Evaluate[[]string](`(() => {
		const vw = document.documentElement.clientWidth;
		return [...document.querySelectorAll("body *")]
			.filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < 0 || r.right > vw); })
			.map(e => e.outerHTML.slice(0, 120));
	})()`))
	for _, e := range wide {
		c.t.Errorf("%s: on a %dpx-wide phone this element sticks out of the screen: %s", name, phoneWidth, e)
	}
}

// The whole browser journey on the SQLite backend (the pages do not depend on the
// store, and one browser run is enough): sign-in after a failed attempt, SSO,
// consent, confirmed logout, and the login page on a phone.
func TestChromium_PlainFormsSignInConsentAndLogoutWithoutJavaScript(t *testing.T) {
	c := newChromium(t)
	inst := chromiumInstance(t)
	begin := time.Now()

	// Scripts really are off in the tab.
	c.do("a page with a script",
		chromedp.Navigate(`data:text/html,<p id="js">off</p><script>document.getElementById("js").textContent="on"</script>`),
		chromedp.WaitReady(chromedp.ID("js")))
	if html := inTab(c, "reading the script's target", chromedp.OuterHTML(chromedp.ID("js"))); !strings.Contains(html, ">off<") {
		t.Fatalf("JavaScript ran in the tab: %s", html)
	}

	// 1. The login page, a wrong password, then the right one: back at the app.
	c.do("the login page",
		chromedp.Navigate(authURL(inst, "acme")),
		chromedp.WaitVisible(chromedp.ID("password")))
	c.screenshot("login page", 1280, 0) // the window's height less the headless browser's frame
	c.do("a wrong password",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "not-her-password"),
		chromedp.Click(`//button[normalize-space()="Sign in"]`),
		chromedp.WaitVisible(`//p[@role="alert" and normalize-space()="Invalid username or password."]`))
	c.noCallback("a wrong password")
	if v := inTab(c, "the username kept", chromedp.AttributeValue(chromedp.ID("username"), "value")); v.Value != "alice" {
		t.Errorf("after a failed sign-in the username field holds %q, want alice", v.Value)
	}
	c.do("the right password",
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1"),
		chromedp.Click(`//button[normalize-space()="Sign in"]`))
	cb := c.callback("signing in")
	q := cb.Query()
	if cb.Scheme+"://"+cb.Host+cb.Path != callback || q.Get("state") != "xyz" || q.Get("iss") != inst.issuer("acme") || q.Get("code") == "" {
		t.Fatalf("callback %s", cb)
	}
	if loc := inTab(c, "the tab's location", chromedp.Location()); loc != cb.String() {
		t.Errorf("the tab is at %s, not at the callback %s", loc, cb)
	}
	if r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", q.Get("code")); r.status != 200 || r.body["access_token"] == nil || r.body["id_token"] == nil {
		t.Fatalf("redeeming the browser's code = %d %s", r.status, r.raw)
	}

	// 2. The session cookie as Chromium holds it.
	realmURL := inst.issuer("acme") + "/"
	sess := c.cookies(realmURL)[sessionCookie]
	if sess == nil {
		t.Fatalf("Chromium holds no %s cookie for %s", sessionCookie, realmURL)
	}
	if !sess.HTTPOnly || sess.SameSite != network.CookieSameSiteLax || sess.Path != "/realms/acme/" || sess.Domain != "127.0.0.1" {
		t.Fatalf("session cookie in Chromium: httpOnly=%v sameSite=%q path=%q domain=%q", sess.HTTPOnly, sess.SameSite, sess.Path, sess.Domain)
	}

	// 3. Single sign-on: the next authorization request needs no password.
	c.do("SSO", chromedp.Navigate(authURL(inst, "acme", "state", "sso")))
	if cb := c.callback("SSO"); cb.Query().Get("state") != "sso" || cb.Query().Get("code") == "" {
		t.Fatalf("SSO callback %s", cb)
	}

	// 4. Consent for a third-party client.
	c.do("the consent page",
		chromedp.Navigate(authURL(inst, "acme", "client_id", "third", "scope", "openid email", "state", "consent")),
		chromedp.WaitVisible(`//button[@name="decision" and @value="allow"]`))
	if html := inTab(c, "the consent page", chromedp.OuterHTML(chromedp.CSS("main"))); !strings.Contains(html, "Third Party App") || !strings.Contains(html, "See your email address") {
		t.Errorf("consent page lacks the client or the scope:\n%s", html)
	}
	c.do("allowing", chromedp.Click(`//button[@name="decision" and @value="allow"]`))
	cb = c.callback("allowing")
	if cb.Query().Get("state") != "consent" || cb.Query().Get("code") == "" {
		t.Fatalf("consent callback %s", cb)
	}
	if r := inst.redeem(t, "third:third-secret-321-0123456789abcdefghijklmnop", cb.Query().Get("code")); r.status != 200 || r.body["scope"] != "openid email" {
		t.Fatalf("redeeming the consented code = %d %s", r.status, r.raw)
	}

	// 5. Logout without id_token_hint: a confirmation, then signed out for real.
	c.do("the logout confirmation",
		chromedp.Navigate(inst.issuer("acme")+logoutPath),
		chromedp.WaitVisible(`//h1[normalize-space()="Sign out of acme?"]`))
	c.do("signing out",
		chromedp.Click(`//form//button[normalize-space()="Sign out"]`),
		chromedp.WaitVisible(`//h1[normalize-space()="You are signed out"]`))
	if ck := c.cookies(realmURL)[sessionCookie]; ck != nil {
		t.Errorf("the session cookie outlived the logout: %+v", ck)
	}
	c.do("signing in again after logout",
		chromedp.Navigate(authURL(inst, "acme", "state", "again")),
		chromedp.WaitVisible(chromedp.ID("password")))
	c.noCallback("after logout")

	// 6. The login page on a phone: laid out at the device width, nothing wider
	// than the screen, and the Sign in button in view without scrolling.
	const w, h = phoneWidth, phoneHeight
	c.do("a phone",
		onPhone(),
		chromedp.Navigate(authURL(inst, "acme", "state", "phone")),
		chromedp.WaitVisible(chromedp.ID("password")))
	c.fitsPhone("login page on a phone")
	box := inTab(c, "the Sign in button", chromedp.Dimensions(`//button[normalize-space()="Sign in"]`))
	q0 := box.Border
	left, top, right, bottom := q0[0], q0[1], q0[4], q0[5]
	if left < 0 || top < 0 || right > w || bottom > h {
		t.Errorf("the Sign in button (%v,%v)-(%v,%v) is not within the %dx%d screen", left, top, right, bottom, w, h)
	}
	if bottom-top < 44 {
		t.Errorf("the Sign in button is %vpx tall, too small to tap", bottom-top)
	}
	t.Logf("browser journey took %v", time.Since(begin).Round(time.Millisecond))
}

// The account screen in the browser, with scripts off: alice sees her sessions,
// ends another app's one, then signs out everywhere.
func TestChromium_AccountScreen(t *testing.T) {
	c := newChromium(t)
	inst := chromiumInstance(t)
	const webBasic, strictBasic, scope = "web:web-secret-123-0123456789abcdefghijklmnop", "strict:strict-secret-111-0123456789abcdefghijklmnop", "openid offline_access"

	// 1. Alice signs in to the web app in the browser (refresh token A), and to
	// the strict app somewhere else (refresh token B).
	cb := c.signIn("signing in to the web app", authURL(inst, "acme", "scope", scope, "state", "account"), "alice", "alice-password-1")
	if cb.Query().Get("state") != "account" || cb.Query().Get("code") == "" {
		t.Fatalf("callback %s", cb)
	}
	a := inst.redeem(t, webBasic, cb.Query().Get("code"))
	rtA := str(a, "refresh_token")
	if a.status != 200 || rtA == "" {
		t.Fatalf("redeeming the browser's code = %d %s", a.status, a.raw)
	}
	rtB := str(signInTokens(t, inst, newBrowser(t), "strict", strictBasic, scope), "refresh_token")
	if rtB == "" {
		t.Fatal("the strict app got no refresh token")
	}
	famA, famB := familyOf(t, inst, rtA), familyOf(t, inst, rtB)
	// session is the account page's entry for a family, whose form holds its ID.
	session := func(fam string) string {
		return `//ul[@class="apps"]/li[form/input[@name="family" and @value="` + fam + `"]]`
	}
	const endButton, everywhereButton = `//button[normalize-space()="End this session"]`, `//form//button[normalize-space()="Sign out everywhere"]`

	// 2. The account page, on a phone: alice, both sessions, this browser's marked.
	accountURL := inst.issuer("acme") + accountPath
	c.do("the account page on a phone",
		onPhone(),
		chromedp.Navigate(accountURL),
		chromedp.WaitVisible(everywhereButton))
	if u := inTab(c, "the username", chromedp.Text(`//dt[normalize-space()="Username"]/following-sibling::dd[1]`)); strings.TrimSpace(u) != "alice" {
		t.Errorf("the account page shows the username %q, want alice", u)
	}
	if n := len(inTab(c, "the End this session buttons", chromedp.Nodes(endButton))); n != 2 {
		t.Errorf("the account page has %d End this session buttons, want 2", n)
	}
	if s := inTab(c, "the browser's session", chromedp.Text(session(famA))); !strings.Contains(s, "Web App (this browser)") || !strings.Contains(s, "End this session") {
		t.Errorf("the web app's session in this browser reads %q, want it marked (this browser)", s)
	}
	if s := inTab(c, "the strict app's session", chromedp.Text(session(famB))); !strings.Contains(s, "strict") || strings.Contains(s, "this browser") {
		t.Errorf("the strict app's session reads %q, want it listed and not marked (this browser)", s)
	}
	c.fitsPhone("account page on a phone")

	// 3. End B's session: the page comes back without it; B is dead, A lives on.
	res := c.submit("ending the strict app's session", session(famB)+`/form//button[normalize-space()="End this session"]`)
	if res.Status != 200 || res.URL != accountURL {
		t.Errorf("ending a session ends on %d %s, want 200 %s", res.Status, res.URL, accountURL)
	}
	c.do("the account page again", chromedp.WaitVisible(everywhereButton))
	html := inTab(c, "the account page again", chromedp.OuterHTML(chromedp.CSS("main")))
	if strings.Contains(html, famB) || !strings.Contains(html, famA) || strings.Count(html, "End this session") != 1 {
		t.Errorf("after ending the strict app's session the account page lists (want only %s, not %s):\n%s", famA, famB, html)
	}
	wantError(t, inst.refresh(t, strictBasic, rtB), 400, protocol.InvalidGrant)
	r := inst.refresh(t, webBasic, rtA)
	if r.status != 200 || str(r, "refresh_token") == "" {
		t.Fatalf("the web app's session died with the strict app's: %d %s", r.status, r.raw)
	}
	rtA = str(r, "refresh_token")

	// 4. Sign out everywhere: A's newest token dies, and the browser must sign in again.
	res = c.submit("signing out everywhere", everywhereButton)
	if res.Status != 200 {
		t.Errorf("signing out everywhere = %d %s", res.Status, res.URL)
	}
	c.do("the signed-out page", chromedp.WaitVisible(`//h1[normalize-space()="You are signed out everywhere"]`))
	if s := inTab(c, "the signed-out page", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(s, "signed out everywhere") {
		t.Errorf("the page after signing out everywhere reads %q", s)
	}
	if ck := c.cookies(inst.issuer("acme") + "/")[sessionCookie]; ck != nil {
		t.Errorf("the session cookie outlived signing out everywhere: %+v", ck)
	}
	wantError(t, inst.refresh(t, webBasic, rtA), 400, protocol.InvalidGrant)
	c.do("signing in after signing out everywhere",
		chromedp.Navigate(authURL(inst, "acme", "scope", scope, "state", "again")),
		chromedp.WaitVisible(chromedp.ID("password")))
	c.noCallback("after signing out everywhere")
}
