package oauth

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

const callback = "http://127.0.0.1:9999/cb"

// browser is a user agent with a cookie jar that stops at the client's redirect URIs,
// as a browser would hand over to the app there.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == "127.0.0.1:9999" {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

type page struct {
	status   int
	body     string
	location *url.URL // set when the response sent the browser to the app
	header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	p := page{status: res.StatusCode, body: string(body), header: res.Header}
	if loc, err := res.Location(); err == nil {
		p.location = loc
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

// submit posts the page's form with the given fields added to its hidden ones, from
// the same origin as a real browser would (Sec-Fetch-Site: same-origin).
func (b *browser) submit(p page, base string, fields ...string) page {
	b.t.Helper()
	req := b.formRequest(p, base, fields...)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// formRequest builds the POST of the page's form.
func (b *browser) formRequest(p page, base string, fields ...string) *http.Request {
	b.t.Helper()
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(p.body)
	if action == nil {
		b.t.Fatalf("no form on the page (%d):\n%s", p.status, p.body)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`).FindAllStringSubmatch(p.body, -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	u, _ := url.Parse(base)
	req, _ := http.NewRequest("POST", u.Scheme+"://"+u.Host+html.UnescapeString(action[1]), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// signIn goes from an authorization URL through the login page to the app's callback.
func (b *browser) signIn(authURL, username, password string) *url.URL {
	b.t.Helper()
	login := b.get(authURL)
	if login.status != 200 || !strings.Contains(login.body, `name="password"`) {
		b.t.Fatalf("no login page (%d): %s", login.status, login.body)
	}
	done := b.submit(login, authURL, "username", username, "password", password)
	if done.location == nil {
		b.t.Fatalf("login did not return to the app (%d): %s", done.status, done.body)
	}
	return done.location
}

func oauthConfig(p *oidc.Provider, clientID, secret string, scopes ...string) *oauth2.Config {
	ep := p.Endpoint()
	if secret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: ep, RedirectURL: callback, Scopes: scopes}
}

// Off-the-shelf OpenID Connect libraries (golang.org/x/oauth2, coreos/go-oidc), given
// nothing but the issuer, sign a user in with the code flow and PKCE.
func TestStandardLibrariesSignInFromDiscoveryAlone(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		ctx := context.Background()
		provider, err := oidc.NewProvider(ctx, inst.issuer("acme"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ client, secret string }{{"web", "web-secret-123-0123456789abcdefghijklmnop"}, {"spa", ""}} {
			t.Run(tc.client, func(t *testing.T) {
				cfg := oauthConfig(provider, tc.client, tc.secret, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
				verifier, state, nonce := oauth2.GenerateVerifier(), "st-"+tc.client, "n-"+tc.client
				b := newBrowser(t)
				loc := b.signIn(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), "alice", "alice-password-1")
				q := loc.Query()
				if q.Get("state") != state || q.Get("iss") != inst.issuer("acme") || q.Get("code") == "" {
					t.Fatalf("callback %s", loc)
				}
				tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
				if err != nil {
					t.Fatal(err)
				}
				if tok.RefreshToken == "" || !strings.HasPrefix(tok.RefreshToken, "lk_rt_") {
					t.Fatalf("no refresh token for offline_access: %+v", tok)
				}
				rawID, _ := tok.Extra("id_token").(string)
				idt, err := provider.Verifier(&oidc.Config{ClientID: tc.client}).Verify(ctx, rawID)
				if err != nil {
					t.Fatal(err)
				}
				if idt.Nonce != nonce || idt.AccessTokenHash == "" {
					t.Fatalf("ID token nonce %q at_hash %q", idt.Nonce, idt.AccessTokenHash)
				}
				if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
					t.Fatalf("at_hash: %v", err)
				}
				var claims struct {
					SID      string `json:"sid"`
					AuthTime int64  `json:"auth_time"`
					Username string `json:"preferred_username"`
				}
				idt.Claims(&claims)
				if claims.SID == "" || claims.AuthTime == 0 || claims.Username != "alice" {
					t.Fatalf("ID token claims %+v", claims)
				}
				// The access token carries the session too, and is not an ID token.
				_, at := verifyLocally(t, fetchJWKS(t, inst, "acme"), tok.AccessToken)
				if at["sid"] != claims.SID || at["auth_time"] != float64(claims.AuthTime) || at["sub"] != idt.Subject {
					t.Fatalf("access token claims %v", at)
				}
				if _, err := provider.Verifier(&oidc.Config{ClientID: tc.client}).Verify(ctx, tok.AccessToken); err == nil {
					t.Fatal("the access token passed as an ID token")
				}
				info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
				if err != nil {
					t.Fatal(err)
				}
				var ui map[string]any
				info.Claims(&ui)
				if info.Subject != idt.Subject || ui["preferred_username"] != "alice" || ui["name"] != "Alice Liddell" || ui["email"] != nil {
					t.Fatalf("userinfo %v (email was not granted)", ui)
				}

				// Single sign-on: the next request from this browser needs no password.
				again := b.get(cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)))
				if again.location == nil || again.location.Query().Get("code") == "" {
					t.Fatalf("SSO did not skip the login page: %d", again.status)
				}
			})
		}
	})
}

// authURL builds an authorization request by hand.
func authURL(inst *instance, realm string, kv ...string) string {
	v := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {callback},
		"scope": {"openid profile"}, "state": {"xyz"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			v.Del(kv[i])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	return inst.issuer(realm) + authPath + "?" + v.Encode()
}

const (
	verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 appendix B
)

func (i *instance) redeem(t *testing.T, basic, code string, extra ...string) response {
	return post(t, i.tokenURL("acme"), basic, form(append([]string{"grant_type", "authorization_code", "code", code,
		"redirect_uri", callback, "code_verifier", verifier}, extra...)...))
}

func TestAuthorizationErrors(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		// Unknown client or unregistered redirect URI: an error page, never a redirect.
		for name, u := range map[string]string{
			"unknown client":      authURL(inst, "acme", "client_id", "nope"),
			"wrong redirect":      authURL(inst, "acme", "redirect_uri", "https://evil.example/cb"),
			"redirect prefix":     authURL(inst, "acme", "redirect_uri", callback+"/extra"),
			"no client":           authURL(inst, "acme", "client_id", ""),
			"client-credentials":  authURL(inst, "acme", "client_id", "svc"),
			"repeated parameter":  authURL(inst, "acme") + "&state=again",
			"ambiguous no uri":    authURL(inst, "acme", "client_id", "spa", "redirect_uri", ""),
			"disabled client app": authURL(inst, "acme", "client_id", "off"),
		} {
			p := b.get(u)
			if p.status != 400 || p.location != nil || !strings.Contains(p.body, "<h1>") {
				t.Errorf("%s: %d location %v", name, p.status, p.location)
			}
			if p.header.Get("Content-Security-Policy") == "" || p.header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("%s: error page headers %v", name, p.header)
			}
		}
		// Once the redirect URI is known good, errors go back to the client with state and iss.
		for name, tc := range map[string]struct {
			u    string
			code string
		}{
			"no response_type":        {authURL(inst, "acme", "response_type", ""), "invalid_request"},
			"implicit":                {authURL(inst, "acme", "response_type", "token"), "unsupported_response_type"},
			"unknown scope":           {authURL(inst, "acme", "scope", "openid admin"), "invalid_scope"},
			"no PKCE (confidential)":  {authURL(inst, "acme", "code_challenge", "", "code_challenge_method", ""), "invalid_request"},
			"no PKCE (public)":        {authURL(inst, "acme", "client_id", "spa", "code_challenge", "", "code_challenge_method", ""), "invalid_request"},
			"plain PKCE":              {authURL(inst, "acme", "code_challenge_method", "plain"), "invalid_request"},
			"challenge w/o method":    {authURL(inst, "acme", "code_challenge_method", ""), "invalid_request"},
			"bad max_age":             {authURL(inst, "acme", "max_age", "-1"), "invalid_request"},
			"prompt none+login":       {authURL(inst, "acme", "prompt", "none login"), "invalid_request"},
			"request object":          {authURL(inst, "acme", "request", "eyJ.x.y"), "invalid_request_object"},
			"prompt=none, no session": {authURL(inst, "acme", "prompt", "none"), "login_required"},
		} {
			p := b.get(tc.u)
			if p.location == nil || p.location.Query().Get("error") != tc.code || p.location.Query().Get("state") != "xyz" ||
				p.location.Query().Get("iss") != inst.issuer("acme") {
				t.Errorf("%s: %d %v, want a redirect with error=%s", name, p.status, p.location, tc.code)
			}
		}
	})
}

func TestCodeRedemption(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		code := b.signIn(authURL(inst, "acme", "scope", "openid offline_access"), "alice", "alice-password-1").Query().Get("code")
		basic := "web:web-secret-123-0123456789abcdefghijklmnop"
		// Wrong verifier, missing verifier, wrong redirect URI, another client: invalid_grant
		// (each of these consumes nothing: the code is only spent by a valid redemption).
		wantError(t, post(t, inst.tokenURL("acme"), basic, form("grant_type", "authorization_code", "code", "lk_ac_nope", "redirect_uri", callback, "code_verifier", verifier)), 400, InvalidGrant)
		first := inst.redeem(t, basic, code)
		if first.status != 200 || first.body["refresh_token"] == nil || first.body["id_token"] == nil {
			t.Fatalf("redeem = %d %s", first.status, first.raw)
		}
		at := first.body["access_token"].(string)
		if inst.introspect(t, "acme", at).body["active"] != true {
			t.Fatal("fresh access token inactive")
		}
		// Replay: invalid_grant, and everything issued from the first redemption is revoked.
		wantError(t, inst.redeem(t, basic, code), 400, InvalidGrant)
		wantInactive(t, inst.introspect(t, "acme", at))
		events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: "authorization_code.replayed"})
		if len(events) != 1 || events[0].UserID == "" {
			t.Fatalf("audit %+v", events)
		}

		for name, tc := range map[string][]string{
			"wrong verifier":   {"code_verifier", strings.Repeat("a", 43)},
			"short verifier":   {"code_verifier", "abc"},
			"no verifier":      {"code_verifier", ""},
			"other redirect":   {"redirect_uri", "http://127.0.0.1:9999/other"},
			"missing redirect": {"redirect_uri", ""},
		} {
			c := b.get(authURL(inst, "acme")).location.Query().Get("code")
			f := form("grant_type", "authorization_code", "code", c, "redirect_uri", callback, "code_verifier", verifier)
			if tc[1] == "" {
				f.Del(tc[0])
			} else {
				f.Set(tc[0], tc[1])
			}
			if r := post(t, inst.tokenURL("acme"), basic, f); r.status != 400 || r.body["error"] != string(InvalidGrant) {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
		// Another client cannot redeem the code.
		c := b.get(authURL(inst, "acme")).location.Query().Get("code")
		wantError(t, post(t, inst.tokenURL("acme"), "third:third-secret-321-0123456789abcdefghijklmnop", form("grant_type", "authorization_code", "code", c, "redirect_uri", callback, "code_verifier", verifier)), 400, InvalidGrant)
		// Codes expire after 60 seconds.
		c = b.get(authURL(inst, "acme")).location.Query().Get("code")
		inst.clock.Add(61 * time.Second)
		wantError(t, inst.redeem(t, basic, c), 400, InvalidGrant)
		// No offline_access: still a refresh token, bound to the browser session (as
		// Keycloak issues one at every code exchange); no openid, no ID token.
		c = b.get(authURL(inst, "acme", "scope", "profile")).location.Query().Get("code")
		r := inst.redeem(t, basic, c)
		if r.status != 200 || !strings.HasPrefix(str(r, "refresh_token"), token.RefreshPrefix) || r.body["id_token"] != nil {
			t.Fatalf("profile-only redemption %s", r.raw)
		}
	})
}

func TestLoginPage(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		u := authURL(inst, "acme", "login_hint", "alice@example.com")
		login := b.get(u)
		if !strings.Contains(login.body, `value="alice@example.com"`) || !strings.Contains(login.body, "Web App") {
			t.Fatalf("login page lacks the hint or client name:\n%s", login.body)
		}
		for _, c := range b.client.Jar.Cookies(mustURL(inst.issuer("acme") + "/")) {
			if c.Name == csrfCookie && c.Value == "" {
				t.Fatal("empty CSRF cookie")
			}
		}
		// Wrong password and unknown user read the same.
		wrong := b.submit(login, u, "username", "alice", "password", "nope")
		unknown := b.submit(login, u, "username", "nobody", "password", "nope")
		disabled := b.submit(login, u, "username", "bob", "password", "bob-password-22")
		for _, p := range []page{wrong, unknown, disabled} {
			if p.status != 401 || !strings.Contains(p.body, "Invalid username or password.") || p.location != nil {
				t.Fatalf("failed login = %d %s", p.status, p.body)
			}
		}
		// Email works as the username.
		if loc := b.submit(login, u, "username", "Alice@Example.com", "password", "alice-password-1").location; loc == nil || loc.Query().Get("code") == "" {
			t.Fatal("sign-in by email failed")
		}

		// Brute force: after five failures the account is locked, visibly.
		b2 := newBrowser(t)
		login = b2.get(authURL(inst, "acme"))
		var p page
		for range 5 {
			p = b2.submit(login, u, "username", "alice", "password", "wrong")
		}
		if p.status != 429 || !strings.Contains(p.body, "Try again in 30 seconds") {
			t.Fatalf("after 5 failures: %d %s", p.status, p.body)
		}
		// Even the right password waits out the lock.
		if p := b2.submit(login, u, "username", "alice", "password", "alice-password-1"); p.status != 429 {
			t.Fatalf("locked account signed in: %d", p.status)
		}
		inst.clock.Add(31 * time.Second)
		if p := b2.submit(login, u, "username", "alice", "password", "alice-password-1"); p.location == nil {
			t.Fatalf("after the lock: %d", p.status)
		}
		events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: "login.failed"})
		// Three failures on the first browser (alice's was cleared by her sign-in by
		// email: one account, one count), five more on the second.
		if len(events) != 8 {
			t.Fatalf("%d login.failed events, want 8", len(events))
		}
	})
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestLoginFormRefusesForgeries(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		u := authURL(inst, "acme")
		login := b.get(u)
		// Cross-site POST: refused by the cross-origin check.
		action := inst.url + "/realms/acme" + loginPath
		req, _ := http.NewRequest("POST", action, strings.NewReader("username=alice&password=alice-password-1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
		if p := b.do(req); p.status != 403 || p.location != nil {
			t.Fatalf("cross-site login POST = %d", p.status)
		}
		// The form from another browser (no matching CSRF cookie): refused.
		other := newBrowser(t)
		if p := other.submit(login, u, "username", "alice", "password", "alice-password-1"); p.status != 403 || p.location != nil {
			t.Fatalf("form without its CSRF cookie = %d", p.status)
		}
		// A tampered sealed request: refused.
		tampered := page{body: strings.Replace(login.body, `name="request" value="`, `name="request" value="x`, 1)}
		if p := b.submit(tampered, u, "username", "alice", "password", "alice-password-1"); p.status != 400 || p.location != nil {
			t.Fatalf("tampered request = %d", p.status)
		}
		// An expired form: refused.
		inst.clock.Add(31 * time.Minute)
		if p := b.submit(login, u, "username", "alice", "password", "alice-password-1"); p.status != 400 || p.location != nil {
			t.Fatalf("expired form = %d", p.status)
		}
	})
}

func TestSessionsAndPrompts(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		loginPage := b.get(authURL(inst, "acme"))
		resp := b.submitRaw(loginPage, authURL(inst, "acme"), "username", "alice", "password", "alice-password-1")
		// The session cookie: HttpOnly, SameSite=Lax, host-only, on the realm's path;
		// not Secure here only because the test issuer is plain-HTTP loopback.
		var sess *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == sessionCookie {
				sess = c
			}
		}
		if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Domain != "" || sess.Path != "/realms/acme/" || sess.Secure {
			t.Fatalf("session cookie %+v", sess)
		}
		if p := b.get(authURL(inst, "acme", "prompt", "login")); !strings.Contains(p.body, `name="password"`) {
			t.Fatal("prompt=login did not ask for the password")
		}
		// prompt=none with a session: straight back with a code.
		if p := b.get(authURL(inst, "acme", "prompt", "none")); p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatal("prompt=none with a session did not return a code")
		}
		// max_age: an old authentication must be repeated.
		inst.clock.Add(2 * time.Minute)
		if p := b.get(authURL(inst, "acme", "max_age", "60")); !strings.Contains(p.body, `name="password"`) {
			t.Fatal("max_age=60 after two minutes did not ask for the password")
		}
		if p := b.get(authURL(inst, "acme", "max_age", "600")); p.location == nil {
			t.Fatal("max_age=600 asked again")
		}
		// The session idles out.
		inst.clock.Add(sessionIdle + time.Minute)
		if p := b.get(authURL(inst, "acme", "prompt", "none")); p.location == nil || p.location.Query().Get("error") != "login_required" {
			t.Fatal("an idle session still signs in")
		}
	})
}

// submitRaw is submit returning the raw response, for its cookies.
func (b *browser) submitRaw(p page, base string, fields ...string) *http.Response {
	b.t.Helper()
	res, err := b.client.Do(b.formRequest(p, base, fields...))
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func TestConsentForThirdPartyClients(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		u := authURL(inst, "acme", "client_id", "third", "scope", "openid email")
		consent := b.submit(b.get(u), u, "username", "alice", "password", "alice-password-1")
		if consent.status != 200 || !strings.Contains(consent.body, "Third Party App") || !strings.Contains(consent.body, "See your email address") {
			t.Fatalf("no consent page: %d %s", consent.status, consent.body)
		}
		if p := b.submit(consent, u, "decision", "deny"); p.location == nil || p.location.Query().Get("error") != "access_denied" {
			t.Fatalf("deny: %v", p.location)
		}
		consent = b.get(u)
		if p := b.submit(consent, u, "decision", "allow"); p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatalf("allow: %v", p.location)
		}
		// Remembered: no consent page next time, unless prompt=consent.
		if p := b.get(u); p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatal("consent not remembered")
		}
		if p := b.get(u + "&prompt=consent"); !strings.Contains(p.body, "decision") {
			t.Fatal("prompt=consent did not ask again")
		}
		// A subset of what was granted does not ask again.
		if p := b.get(authURL(inst, "acme", "client_id", "third", "scope", "email")); p.location == nil {
			t.Fatal("a subset of the consent asked again")
		}
		// openid alone means the client's default scopes too (profile email roles),
		// more than was granted: asked again.
		if p := b.get(authURL(inst, "acme", "client_id", "third", "scope", "openid")); !strings.Contains(p.body, "decision") ||
			!strings.Contains(p.body, "See the roles you have") {
			t.Fatal("openid alone, with the default scopes, did not ask for them")
		}
		// First-party clients never ask.
		if p := b.get(authURL(inst, "acme")); p.location == nil {
			t.Fatal("a first-party client asked for consent")
		}
		// prompt=none when consent is needed: consent_required.
		b2 := newBrowser(t)
		b2.signIn(authURL(inst, "acme"), "alice", "alice-password-1")
		if err := inst.store.DeleteConsent(t.Context(), "acme", mustUser(t, inst, "alice").ID, "third"); err != nil {
			t.Fatal(err)
		}
		if p := b2.get(u + "&prompt=none"); p.location == nil || p.location.Query().Get("error") != "consent_required" {
			t.Fatalf("prompt=none without consent: %v", p.location)
		}
	})
}

// putUser stores u as it is given, through the store's updater.
func putUser(t *testing.T, inst *instance, u storage.User) error {
	t.Helper()
	_, err := inst.store.UpdateUser(t.Context(), u.Realm, u.ID, func(p *storage.User) ([]storage.AuditEvent, error) {
		*p = u
		return nil, nil
	})
	return err
}

func mustUser(t *testing.T, inst *instance, name string) storage.User {
	u, err := inst.store.GetUserByUsername(t.Context(), "acme", name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUserinfoRefusesWhatIsNotAUserAccessToken(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		code := b.signIn(authURL(inst, "acme", "scope", "openid email offline_access"), "alice", "alice-password-1").Query().Get("code")
		r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", code)
		at, idt, rt := r.body["access_token"].(string), r.body["id_token"].(string), r.body["refresh_token"].(string)
		ui := inst.issuer("acme") + userinfoPath
		bearer := func(method, tok string) response {
			req, _ := http.NewRequest(method, ui, nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			return do(t, req)
		}
		if r := bearer("GET", at); r.status != 200 || r.body["email"] != "alice@example.com" || r.body["email_verified"] != true || r.body["name"] != nil {
			t.Fatalf("userinfo = %d %s", r.status, r.raw)
		}
		if r := bearer("POST", at); r.status != 200 {
			t.Fatalf("POST userinfo = %d", r.status)
		}
		cc := inst.clientCredentials(t, "acme", "svc:svc-secret-123-0123456789abcdefghijklmnop").body["access_token"].(string)
		edTok := inst.clientCredentials(t, "ed", "svc:svc-secret-123-0123456789abcdefghijklmnop").body["access_token"].(string)
		for name, tok := range map[string]string{"ID token": idt, "refresh token": rt, "client token": cc, "other realm": edTok, "garbage": "x.y.z"} {
			r := bearer("GET", tok)
			if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s: %d %q", name, r.status, r.header.Get("WWW-Authenticate"))
			}
		}
		if r := bearer("GET", ""); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer realm=") || strings.Contains(r.header.Get("WWW-Authenticate"), "error=") {
			t.Fatalf("no token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		if r := do(t, mustReq(t, "GET", ui+"?access_token="+url.QueryEscape(at))); r.status != 400 {
			t.Fatalf("token in the URL: %d", r.status)
		}
		// Without openid: 403 insufficient_scope.
		c := b.get(authURL(inst, "acme", "scope", "profile")).location.Query().Get("code")
		noOIDC := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", c).body["access_token"].(string)
		if r := bearer("GET", noOIDC); r.status != 403 || !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Fatalf("no openid scope: %d", r.status)
		}
		// Expired.
		inst.clock.Add(5 * time.Minute)
		if r := bearer("GET", at); r.status != 401 {
			t.Fatalf("expired token: %d", r.status)
		}
	})
}

func TestLogout(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		code := b.signIn(authURL(inst, "acme", "scope", "openid offline_access"), "alice", "alice-password-1").Query().Get("code")
		r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", code)
		at, idt, rt := r.body["access_token"].(string), r.body["id_token"].(string), r.body["refresh_token"].(string)
		logout := inst.issuer("acme") + logoutPath

		// An unregistered post_logout_redirect_uri: an error page, and still signed in.
		p := b.get(logout + "?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
		if p.status != 400 || p.location != nil {
			t.Fatalf("unregistered post-logout URI = %d %v", p.status, p.location)
		}
		// An access token is no id_token_hint.
		if p := b.get(logout + "?" + url.Values{"id_token_hint": {at}}.Encode()); p.status != 400 {
			t.Fatalf("access token as id_token_hint = %d", p.status)
		}
		if inst.introspect(t, "acme", at).body["active"] != true {
			t.Fatal("a refused logout ended the session")
		}

		p = b.get(logout + "?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://127.0.0.1:9999/bye"}, "state": {"s1"}}.Encode())
		if p.location == nil || p.location.String() != "http://127.0.0.1:9999/bye?state=s1" {
			t.Fatalf("logout redirect = %d %v", p.status, p.location)
		}
		// The session, its tokens and its refresh family are over, at once.
		wantInactive(t, inst.introspect(t, "acme", at))
		fam, err := inst.store.GetRefreshToken(t.Context(), token.Hash(rt))
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := inst.store.GetFamily(t.Context(), fam.FamilyID); f.RevokedAt.IsZero() {
			t.Fatal("the refresh family outlived the logout")
		}
		if p := b.get(authURL(inst, "acme")); !strings.Contains(p.body, `name="password"`) {
			t.Fatal("still signed in after logout")
		}

		// Without a hint, Latchkey asks first; a cross-site link cannot sign the user out.
		b.signIn(authURL(inst, "acme"), "alice", "alice-password-1")
		confirm := b.get(logout)
		if confirm.status != 200 || !strings.Contains(confirm.body, "<form") {
			t.Fatalf("no confirmation page: %d", confirm.status)
		}
		if p := b.get(authURL(inst, "acme", "prompt", "none")); p.location.Query().Get("code") == "" {
			t.Fatal("the confirmation page signed the user out by itself")
		}
		if p := b.submit(confirm, logout); p.status != 200 || !strings.Contains(p.body, "signed out") {
			t.Fatalf("confirmed logout = %d %s", p.status, p.body)
		}
		if p := b.get(authURL(inst, "acme", "prompt", "none")); p.location.Query().Get("error") != "login_required" {
			t.Fatal("still signed in after confirmed logout")
		}

		// The account screen's sign-out button does the same.
		b.signIn(authURL(inst, "acme"), "alice", "alice-password-1")
		acct := b.get(inst.issuer("acme") + accountPath)
		if acct.status != 200 || !strings.Contains(acct.body, "alice") {
			t.Fatalf("account page = %d %s", acct.status, acct.body)
		}
		if p := b.submit(acct, inst.url); p.status != 200 || !strings.Contains(p.body, "signed out") {
			t.Fatalf("account sign-out = %d", p.status)
		}
		if p := b.get(authURL(inst, "acme", "prompt", "none")); p.location.Query().Get("error") != "login_required" {
			t.Fatal("still signed in after the account screen's sign-out")
		}
	})
}
