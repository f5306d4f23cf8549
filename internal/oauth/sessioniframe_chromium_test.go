package oauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/storage"
)

// askFrameJS frames src in the page, as keycloak-js does (hidden, sandboxed),
// posts msg to it once loaded (unless msg is empty), and resolves with the
// first message the frame sends back, or "timeout" after wait ms.
const askFrameJS = `window.askFrame = function (src, msg, sandbox, wait) {
  return new Promise(function (resolve) {
    var f = document.createElement('iframe');
    f.setAttribute('sandbox', sandbox);
    f.style.display = 'none';
    var done = function (v) { removeEventListener('message', on); f.remove(); resolve(v); };
    var on = function (e) { if (e.source === f.contentWindow) done(String(e.data)); };
    addEventListener('message', on);
    f.onload = function () { if (msg) f.contentWindow.postMessage(msg, new URL(src).origin); };
    f.src = src;
    document.body.appendChild(f);
    setTimeout(function () { done('timeout'); }, wait);
  });
}; true`

// keycloakSandbox is the sandbox keycloak-js 26 gives its iframes.
const keycloakSandbox = "allow-storage-access-by-user-activation allow-scripts allow-same-origin"

// An application on another loopback origin frames the login status iframe
// and the third-party cookie check as keycloak-js does, with scripts on:
// "unchanged" while signed in, for the session_state and for the sid
// keycloak-js sends, "changed" after logout. (The app is a real server: the
// tab's stubbed 127.0.0.1:9999 pages may not frame loopback pages.)
func TestChromium_SessionIframeAndThirdPartyCookieCheck(t *testing.T) {
	c := newChromium(t)
	inst := chromiumInstance(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>app</title><h1 id="app">the app</h1>`))
	}))
	t.Cleanup(app.Close)
	now := inst.clock.Now()
	if err := inst.store.CreateClient(t.Context(), storage.Client{Realm: "acme", ID: "kc", RedirectURIs: []string{app.URL + "/cb"},
		PostLogoutRedirectURIs: []string{app.URL + "/bye"}, GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"},
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	c.do("turning scripts on", call(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}))
	ask := func(what, src, msg, sandbox string) string {
		t.Helper()
		js := `askFrame(` + jsString(src) + `, ` + jsString(msg) + `, ` + jsString(sandbox) + `, 10000)`
		return inTab(c, what, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	}
	iframe := inst.issuer("acme") + checkSessionPath
	step1 := inst.issuer("acme") + thirdPartyStep1

	c.do("signing in to the app",
		chromedp.Navigate(authURL(inst, "acme", "client_id", "kc", "redirect_uri", app.URL+"/cb", "scope", "openid")),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1"),
		chromedp.Click(`//button[normalize-space()="Sign in"]`),
		chromedp.WaitVisible(chromedp.ID("app")))
	cb, _ := url.Parse(inTab(c, "the app's URL", chromedp.Location()))
	ss := cb.Query().Get("session_state")
	r := post(t, inst.tokenURL("acme"), "", form("grant_type", "authorization_code", "code", cb.Query().Get("code"),
		"redirect_uri", app.URL+"/cb", "client_id", "kc", "code_verifier", verifier))
	_, claims := verifyLocally(t, fetchJWKS(t, inst, "acme"), str(r, "id_token"))
	sid, _ := claims["sid"].(string)
	if ss == "" || sid == "" {
		t.Fatalf("session_state %q, sid %q (%s, %s)", ss, sid, cb, r.raw)
	}
	inTab(c, "the app's frame helper", chromedp.Evaluate[bool](askFrameJS))
	for msg, want := range map[string]string{
		"kc " + ss:                   "unchanged",
		"kc " + sid:                  "unchanged", // keycloak-js sends the token's sid
		"kc NOTTHESESSION":           "changed",
		"web " + ss:                  "changed", // session_state is bound to its client
		"kc " + ss[:len(ss)-1] + "x": "changed",
		"kc ":                        "changed", // no session, but the browser has one
		"kc":                         "error",
	} {
		if got := ask("signed in: "+msg, iframe, msg, keycloakSandbox); got != want {
			t.Errorf("signed in, %q answers %q, want %q", msg, got, want)
		}
	}
	if got := ask("3p cookie check", step1, "", keycloakSandbox); got != "supported" {
		t.Errorf("the third-party cookie check says %q, want supported", got)
	}
	// A frame that may not keep cookies (no allow-same-origin) cannot keep them.
	if got := ask("3p cookie check without storage", step1, "", "allow-scripts"); got != "unsupported" {
		t.Errorf("the third-party cookie check in a cookieless frame says %q, want unsupported", got)
	}

	// A site that is no client's may not frame the iframe to learn whether the
	// browser is signed in: the frame never loads, so never answers.
	other := httptest.NewServer(app.Config.Handler)
	t.Cleanup(other.Close)
	c.do("another site", chromedp.Navigate(other.URL), chromedp.WaitVisible(chromedp.ID("app")))
	inTab(c, "the other site's frame helper", chromedp.Evaluate[bool](askFrameJS))
	js := `askFrame(` + jsString(iframe) + `, "kc ", ` + jsString(keycloakSandbox) + `, 2000)`
	if got := inTab(c, "another site asks", chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise)); got != "timeout" {
		t.Errorf("a site that is no client's framed the iframe, which answered %q", got)
	}
	c.mu.Lock()
	c.log = nil // its frame-ancestors refusal is expected
	c.mu.Unlock()

	c.do("signing out", chromedp.Navigate(inst.issuer("acme")+logoutPath+"?"+url.Values{
		"id_token_hint": {str(r, "id_token")}, "post_logout_redirect_uri": {app.URL + "/bye"}}.Encode()),
		chromedp.WaitVisible(chromedp.ID("app")))
	inTab(c, "the app's frame helper", chromedp.Evaluate[bool](askFrameJS))
	for msg, want := range map[string]string{"kc " + ss: "changed", "kc " + sid: "changed", "kc ": "unchanged"} {
		if got := ask("signed out: "+msg, iframe, msg, keycloakSandbox); got != want {
			t.Errorf("signed out, %q answers %q, want %q", msg, got, want)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.log {
		if strings.Contains(l, "Content Security Policy") || strings.Contains(l, "frame") {
			t.Errorf("browser log: %s", l)
		}
	}
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }
