package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

// The response modes are decided before any store work, so one backend is enough.

// fragmentOf splits a Location into the URI before the fragment and the
// fragment's parameters.
func fragmentOf(t *testing.T, loc *url.URL) (string, url.Values) {
	t.Helper()
	if loc == nil {
		t.Fatal("no redirect")
	}
	base := *loc
	base.Fragment, base.RawFragment = "", ""
	v, err := url.ParseQuery(loc.EscapedFragment())
	if err != nil {
		t.Fatalf("fragment of %s: %v", loc, err)
	}
	return base.String(), v
}

func TestAuthorize_ResponseModeQueryIsTheDefault(t *testing.T) {
	inst := chromiumInstance(t)
	b := newBrowser(t)
	first := b.signIn(authURL(inst, "acme"), "alice", "alice-password-1")
	for name, loc := range map[string]*url.URL{
		"no response_mode":    first,
		"response_mode=query": b.get(authURL(inst, "acme", "response_mode", "query", "state", "q2")).location,
	} {
		if loc == nil || loc.Fragment != "" || loc.Scheme+"://"+loc.Host+loc.Path != callback ||
			loc.Query().Get("code") == "" || loc.Query().Get("iss") != inst.issuer("acme") || loc.Query().Get("state") == "" {
			t.Errorf("%s: callback %v, want code, state and iss in the query", name, loc)
		}
	}
}

func TestAuthorize_ResponseModeFragmentPutsTheResponseInTheFragment(t *testing.T) {
	inst := chromiumInstance(t)
	b := newBrowser(t)
	// Through the login form: the mode survives the round trip.
	login := b.get(authURL(inst, "acme", "response_mode", "fragment"))
	p := b.submit(login, inst.url, "username", "alice", "password", "alice-password-1")
	if p.status != http.StatusSeeOther || p.header.Get("Cache-Control") != "no-store" || p.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("after login: %d %v", p.status, p.header)
	}
	base, f := fragmentOf(t, p.location)
	if base != callback || p.location.RawQuery != "" {
		t.Fatalf("Location %s: want %s with nothing in the query", p.location, callback)
	}
	if f.Get("code") == "" || f.Get("state") != "xyz" || f.Get("iss") != inst.issuer("acme") || f.Get("session_state") == "" || len(f) != 4 {
		t.Fatalf("fragment %v, want code, state, iss and session_state", f)
	}
	if r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", f.Get("code")); r.status != 200 {
		t.Fatalf("redeeming the fragment's code = %d %s", r.status, r.raw)
	}
	// Errors go back the same way, even one found before response_type.
	for name, u := range map[string]string{
		"unknown scope":    authURL(inst, "acme", "response_mode", "fragment", "scope", "openid admin"),
		"no response_type": authURL(inst, "acme", "response_mode", "fragment", "response_type", ""),
	} {
		p := b.get(u)
		base, f := fragmentOf(t, p.location)
		if base != callback || p.location.RawQuery != "" || f.Get("error") == "" || f.Get("state") != "xyz" || f.Get("iss") != inst.issuer("acme") {
			t.Errorf("%s: Location %v, want the error in the fragment", name, p.location)
		}
	}

	// Through the consent form too, for a third-party client: a denial and an approval.
	u := authURL(inst, "acme", "client_id", "third", "scope", "openid email", "response_mode", "fragment", "state", "c&d=e")
	consent := b.get(u)
	if _, f := fragmentOf(t, b.submit(consent, u, "decision", "deny").location); f.Get("error") != "access_denied" || f.Get("state") != "c&d=e" {
		t.Errorf("consent denied: fragment %v", f)
	}
	consent = b.get(u)
	if _, f := fragmentOf(t, b.submit(consent, u, "decision", "allow").location); f.Get("code") == "" || f.Get("state") != "c&d=e" {
		t.Errorf("consent allowed: fragment %v", f)
	}
}

// formPost is what a form_post page tells the browser to do.
type formPost struct {
	action string
	fields url.Values
	script string
}

func readFormPost(t *testing.T, p page) formPost {
	t.Helper()
	if p.status != http.StatusOK || p.location != nil {
		t.Fatalf("form_post answered %d, location %v:\n%s", p.status, p.location, p.body)
	}
	forms := regexp.MustCompile(`<form method="post" action="([^"]*)">`).FindAllStringSubmatch(p.body, -1)
	if len(forms) != 1 {
		t.Fatalf("want one POST form on the page:\n%s", p.body)
	}
	fp := formPost{action: html.UnescapeString(forms[0][1]), fields: url.Values{}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(p.body, -1) {
		fp.fields.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(p.body, -1)
	if len(scripts) != 1 || strings.Count(strings.ToLower(p.body), "<script") != 1 {
		t.Fatalf("want exactly one script on the page:\n%s", p.body)
	}
	fp.script = scripts[0][1]
	if !strings.Contains(p.body, `<button type="submit">Continue</button>`) {
		t.Errorf("no visible submit button for a browser without JavaScript:\n%s", p.body)
	}
	sum := sha256.Sum256([]byte(fp.script))
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	want := "default-src 'none'; style-src 'self'; img-src 'self'; script-src " + hash +
		"; form-action http://127.0.0.1:9999; frame-ancestors 'none'; base-uri 'none'"
	for h, v := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": want,
	} {
		if got := p.header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	if !strings.Contains(p.body, `<meta name="referrer" content="no-referrer">`) {
		t.Error("the page does not keep its Referer to itself")
	}
	return fp
}

func TestAuthorize_ResponseModeFormPostServesAnAutoSubmittingForm(t *testing.T) {
	inst := chromiumInstance(t)
	b := newBrowser(t)
	hostile := `"><script>alert(1)</script>&x='`
	login := b.get(authURL(inst, "acme", "response_mode", "form_post", "state", hostile))
	fp := readFormPost(t, b.submit(login, inst.url, "username", "alice", "password", "alice-password-1"))
	if fp.action != callback {
		t.Errorf("form action %q, want exactly the redirect URI %q", fp.action, callback)
	}
	if fp.fields.Get("code") == "" || fp.fields.Get("state") != hostile || fp.fields.Get("iss") != inst.issuer("acme") ||
		fp.fields.Get("session_state") == "" || len(fp.fields) != 4 {
		t.Errorf("fields %v, want code, the state unchanged, iss and session_state", fp.fields)
	}
	if fp.script != "document.forms[0].submit()" {
		t.Errorf("script %q", fp.script)
	}
	if r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", fp.fields.Get("code")); r.status != 200 {
		t.Fatalf("redeeming the posted code = %d %s", r.status, r.raw)
	}
	// SSO: straight to the form; an error goes back the same way.
	if fp := readFormPost(t, b.get(authURL(inst, "acme", "response_mode", "form_post", "state", "sso"))); fp.fields.Get("code") == "" || fp.fields.Get("state") != "sso" {
		t.Errorf("SSO fields %v", fp.fields)
	}
	fp = readFormPost(t, b.get(authURL(inst, "acme", "response_mode", "form_post", "scope", "openid admin")))
	if fp.action != callback || fp.fields.Get("error") != "invalid_scope" || fp.fields.Get("error_description") == "" ||
		fp.fields.Get("state") != "xyz" || fp.fields.Get("code") != "" {
		t.Errorf("error by form_post: action %q fields %v", fp.action, fp.fields)
	}
}

func TestAuthorize_UnknownResponseModeIsInvalidRequest(t *testing.T) {
	inst := chromiumInstance(t)
	b := newBrowser(t)
	for _, mode := range []string{"jwt", "query.jwt", "form_post.jwt", "web_message", "QUERY"} {
		p := b.get(authURL(inst, "acme", "response_mode", mode))
		if p.status != http.StatusSeeOther || p.location == nil || p.location.Fragment != "" ||
			p.location.Query().Get("error") != "invalid_request" || p.location.Query().Get("state") != "xyz" ||
			p.location.Query().Get("iss") != inst.issuer("acme") {
			t.Errorf("response_mode=%s: %d %v, want invalid_request in the query", mode, p.status, p.location)
		}
	}
	// With an unregistered redirect URI: the error page, whatever the mode.
	for _, mode := range []string{"jwt", "fragment", "form_post"} {
		p := b.get(authURL(inst, "acme", "response_mode", mode, "redirect_uri", "https://evil.example/cb"))
		if p.status != http.StatusBadRequest || p.location != nil || strings.Contains(p.body, "evil.example") || strings.Contains(p.body, "<form") {
			t.Errorf("response_mode=%s, unregistered redirect URI: %d %v\n%s", mode, p.status, p.location, p.body)
		}
	}
}

func TestDiscovery_ResponseModes(t *testing.T) {
	inst := chromiumInstance(t)
	r := do(t, mustReq(t, "GET", inst.issuer("acme")+"/.well-known/openid-configuration"))
	var got []string
	for _, v := range r.body["response_modes_supported"].([]any) {
		got = append(got, v.(string))
	}
	if !slices.Equal(got, []string{"query", "fragment", "form_post"}) {
		t.Fatalf("response_modes_supported = %v", got)
	}
}

// A native app's redirect URI cannot take a POST from the browser: form_post to
// it is invalid_request, sent back in the query; fragment is fine.
func TestAuthorize_FormPostNeedsAWebRedirectURI(t *testing.T) {
	inst := chromiumInstance(t)
	const native = "com.example.app:/cb"
	now := inst.clock.Now().UTC()
	if err := inst.store.CreateClient(t.Context(), storage.Client{Realm: "acme", ID: "native", RedirectURIs: []string{native},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(mode string) *url.URL {
		t.Helper()
		res, err := noFollow.Get(authURL(inst, "acme", "client_id", "native", "redirect_uri", native, "scope", "openid", "response_mode", mode))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc, err := res.Location()
		if err != nil || res.StatusCode != http.StatusSeeOther {
			t.Fatalf("response_mode=%s: %d, no redirect", mode, res.StatusCode)
		}
		return loc
	}
	if loc := get("form_post"); !strings.HasPrefix(loc.String(), native+"?") || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "xyz" {
		t.Errorf("form_post to %s: Location %s, want invalid_request in the query", native, loc)
	}
	// prompt=none without a session: login_required, in the fragment.
	res, err := noFollow.Get(authURL(inst, "acme", "client_id", "native", "redirect_uri", native, "scope", "openid", "response_mode", "fragment", "prompt", "none"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc, _ := res.Location(); loc == nil || !strings.HasPrefix(loc.String(), native+"#") {
		t.Errorf("fragment to %s: Location %v, want login_required in the fragment", native, loc)
	}
}
