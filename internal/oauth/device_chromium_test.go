package oauth

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/token"
)

// The device verification page in the browser, scripts off: the code from
// verification_uri_complete prefilled, the sign-in, the client's name and
// scopes, Approve; then a second device, Deny. The device's polls see both.
func TestChromium_DevicePage(t *testing.T) {
	c := newChromium(t)
	inst := chromiumInstance(t)
	addDeviceClients(t, inst)

	// 1. A wrong code first: the page says so and keeps the form.
	r := inst.authorizeDevice(t, "", "client_id", "tv", "scope", "openid profile")
	dc, uc := r.body["device_code"].(string), r.body["user_code"].(string)
	c.do("the code form",
		chromedp.Navigate(inst.issuer("acme")+devicePath),
		chromedp.WaitVisible(chromedp.ID("user_code")))
	c.screenshot("device code form", 1280, 0)
	c.do("a wrong code",
		chromedp.SendKeys(chromedp.ID("user_code"), "BCDF-BCDF"),
		chromedp.Click(`//button[normalize-space()="Continue"]`),
		chromedp.WaitVisible(`//p[@role="alert" and contains(., "wrong or has expired")]`))

	// 2. The complete URI prefills the code; Continue leads to the sign-in.
	c.do("the complete verification URI",
		chromedp.Navigate(r.body["verification_uri_complete"].(string)),
		chromedp.WaitVisible(chromedp.ID("user_code")))
	if v := inTab(c, "the prefilled code", chromedp.AttributeValue(chromedp.ID("user_code"), "value")); v.Value != uc {
		t.Fatalf("the code field holds %q, want %q", v.Value, uc)
	}
	c.do("continuing",
		chromedp.Click(`//button[normalize-space()="Continue"]`),
		chromedp.WaitVisible(chromedp.ID("password")))
	c.do("signing in",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1"),
		chromedp.Click(`//button[normalize-space()="Sign in"]`),
		chromedp.WaitVisible(`//button[@name="decision" and @value="approve"]`))
	html := inTab(c, "the confirmation", chromedp.OuterHTML(chromedp.CSS("main")))
	if !strings.Contains(html, "Living Room TV") || !strings.Contains(html, "See your name and username") || !strings.Contains(html, uc) {
		t.Errorf("the confirmation lacks the client, a scope or the code:\n%s", html)
	}
	c.screenshot("device confirmation", 1280, 0)
	wantError(t, inst.pollDevice(t, "", dc, "client_id", "tv"), 400, "authorization_pending")
	c.do("approving",
		chromedp.Click(`//button[@name="decision" and @value="approve"]`),
		chromedp.WaitVisible(`//h1[normalize-space()="Device connected"]`))
	inst.clock.Add(token.DeviceInterval)
	if tok := inst.pollDevice(t, "", dc, "client_id", "tv"); tok.status != 200 || tok.body["access_token"] == nil {
		t.Fatalf("poll after approving = %d %s", tok.status, tok.raw)
	}

	// 3. A second device: signed in already, straight to the confirmation; Deny.
	r = inst.authorizeDevice(t, "", "client_id", "tv")
	c.do("the second device's code",
		chromedp.Navigate(r.body["verification_uri_complete"].(string)),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.Click(`//button[normalize-space()="Continue"]`),
		chromedp.WaitVisible(`//button[@name="decision" and @value="deny"]`))
	c.do("denying",
		chromedp.Click(`//button[@name="decision" and @value="deny"]`),
		chromedp.WaitVisible(`//h1[normalize-space()="Request denied"]`))
	wantError(t, inst.pollDevice(t, "", r.body["device_code"].(string), "client_id", "tv"), 400, "access_denied")

	// 4. The code form on a phone.
	c.do("a phone", onPhone(),
		chromedp.Navigate(inst.issuer("acme")+devicePath),
		chromedp.WaitVisible(chromedp.ID("user_code")))
	c.fitsPhone("device code form on a phone")
}
