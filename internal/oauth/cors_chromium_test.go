package oauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/storage"
)

// keycloak-js, in a real browser: a page on one of the spa client's web origins
// (another loopback port than the server's, so another origin) redeems its code at
// the token endpoint and reads userinfo by fetch with credentials: 'include'.
// The browser reads both answers only when they carry the exact origin and
// Access-Control-Allow-Credentials; userinfo's Authorization header makes it
// preflight first. The web client did not register that origin: its answer is
// kept from the page.
func TestChromium_FetchWithCredentialsFromAWebOrigin(t *testing.T) {
	c := newChromium(t)
	inst := chromiumInstance(t)
	// The app's page is served from loopback, as the server is: Chromium keeps a
	// page it cannot place (the tab's stub for :9999) from fetching loopback.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>app</title><h1 id="page">the app</h1>`))
	}))
	t.Cleanup(app.Close)
	if _, err := inst.store.UpdateClient(t.Context(), "acme", "spa", func(c *storage.Client) ([]storage.AuditEvent, error) {
		c.WebOrigins = append(c.WebOrigins, app.URL)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	cb := c.signIn("signing in to the spa", authURL(inst, "acme", "client_id", "spa"), "alice", "alice-password-1")
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("callback %s", cb)
	}
	c.do("the app's page, with scripts on",
		call(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}),
		chromedp.Navigate(app.URL),
		chromedp.WaitReady(chromedp.ID("page")))
	args, _ := json.Marshal(map[string]string{"token": inst.tokenURL("acme"), "userinfo": inst.issuer("acme") + userinfoPath,
		"code": code, "redirect_uri": callback, "verifier": verifier})
	got := inTab(c, "fetching from the app's page", chromedp.Evaluate[string](`(async (a) => {
		const out = {};
		const form = (o) => ({method: "POST", credentials: "include",
			headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: new URLSearchParams(o)});
		try {
			const r = await fetch(a.token, form({grant_type: "authorization_code", client_id: "spa", code: a.code,
				redirect_uri: a.redirect_uri, code_verifier: a.verifier}));
			const tok = await r.json();
			out.token = r.status + " " + (tok.access_token ? "access_token" : JSON.stringify(tok));
			const u = await fetch(a.userinfo, {credentials: "include", headers: {Authorization: "Bearer " + tok.access_token}});
			out.userinfo = u.status + " " + (await u.json()).preferred_username;
		} catch (e) { out.error = String(e); }
		try {
			await fetch(a.token, form({grant_type: "refresh_token", client_id: "web", refresh_token: "x"}));
			out.web = "readable";
		} catch (e) { out.web = "blocked"; }
		return JSON.stringify(out);
	})(`+string(args)+`)`, chromedp.EvalAwaitPromise))
	const want = `{"token":"200 access_token","userinfo":"200 alice","web":"blocked"}`
	if got != want {
		t.Fatalf("the page saw %s, want %s%s", got, want, c.state())
	}
}
