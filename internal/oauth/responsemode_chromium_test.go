package oauth

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// keycloak-js asks for response_mode=fragment, and form_post is how server-side
// apps keep the code out of URLs. In a real browser: the fragment reaches the
// app's page (where only its script can read it), and the form_post page's form
// reaches the app as a POST, by its Continue button without JavaScript and by
// itself with it (so its script is allowed by the page's CSP).
func TestChromium_ResponseModesFragmentAndFormPost(t *testing.T) {
	c := newChromium(t)
	inst := chromiumInstance(t)
	const basic = "web:web-secret-123-0123456789abcdefghijklmnop"
	redeem := func(what, code string) {
		t.Helper()
		if r := inst.redeem(t, basic, code); r.status != 200 || r.body["access_token"] == nil {
			t.Fatalf("%s: redeeming the code = %d %s", what, r.status, r.raw)
		}
	}

	// 1. fragment: signing in lands on the app with the response in location.hash.
	cb := c.signIn("fragment", authURL(inst, "acme", "response_mode", "fragment", "state", "fr"), "alice", "alice-password-1")
	if cb.Scheme+"://"+cb.Host+cb.Path != callback || cb.RawQuery != "" {
		t.Fatalf("fragment: the app was asked for %s, want %s with no query", cb, callback)
	}
	hash := inTab(c, "fragment: location.hash", chromedp.Evaluate[string]("location.hash"))
	f, err := url.ParseQuery(strings.TrimPrefix(hash, "#"))
	if err != nil || f.Get("code") == "" || f.Get("state") != "fr" || f.Get("iss") != inst.issuer("acme") {
		t.Fatalf("fragment: location.hash = %q", hash)
	}
	redeem("fragment", f.Get("code"))

	// 2. form_post without JavaScript (the tab's scripts are off): the page waits
	// for its button, which POSTs the response to the redirect URI.
	c.do("form_post: the login page",
		chromedp.Navigate(authURL(inst, "acme", "response_mode", "form_post", "state", "fp", "prompt", "login")),
		chromedp.WaitVisible(chromedp.ID("password")))
	c.do("form_post: the password",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1"),
		chromedp.Click(`//button[normalize-space()="Sign in"]`),
		chromedp.WaitVisible(`//button[normalize-space()="Continue"]`))
	c.noCallback("form_post page without JavaScript")
	c.do("form_post: Continue", chromedp.Click(`//button[normalize-space()="Continue"]`))
	posted := func(what, state string) {
		t.Helper()
		cb := c.callback(what)
		if cb.String() != callback {
			t.Fatalf("%s: the app was asked for %s, want %s", what, cb, callback)
		}
		var f url.Values
		select {
		case f = <-c.posted:
		default:
			t.Fatalf("%s: the app's redirect URI was not POSTed to", what)
		}
		if f.Get("code") == "" || f.Get("state") != state || f.Get("iss") != inst.issuer("acme") || f.Get("session_state") == "" || len(f) != 4 {
			t.Fatalf("%s: the app received %v", what, f)
		}
		redeem(what, f.Get("code"))
	}
	posted("form_post without JavaScript", "fp")

	// 3. form_post with JavaScript: signed in already, the page submits itself.
	c.do("turning scripts on", call(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}))
	c.do("form_post with JavaScript", chromedp.Navigate(authURL(inst, "acme", "response_mode", "form_post", "state", "fp-js")))
	posted("form_post with JavaScript", "fp-js")
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.log {
		if strings.Contains(l, "Content Security Policy") {
			t.Errorf("the browser reported a CSP violation: %s", l)
		}
	}
}
