package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// keycloak-js's loadUserProfile: GET {realm}/account with a Bearer token and
// Accept: application/json gets the account representation, from the client's origin.
func TestAccountAPI(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		code := b.signIn(authURL(inst, "acme", "scope", "openid email profile offline_access"), "alice", "alice-password-1").Query().Get("code")
		r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", code)
		at, idt, rt := r.body["access_token"].(string), r.body["id_token"].(string), r.body["refresh_token"].(string)
		acct := inst.issuer("acme") + accountPath
		get := func(tok string) response {
			req, _ := http.NewRequest("GET", acct, nil)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Origin", "http://127.0.0.1:9999")
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			return do(t, req)
		}
		alice := mustUser(t, inst, "alice")
		ok := get(at)
		want := map[string]any{"id": alice.ID, "username": "alice", "email": "alice@example.com",
			"firstName": "Alice", "lastName": "Liddell", "emailVerified": true}
		if ok.status != 200 || !strings.HasPrefix(ok.header.Get("Content-Type"), "application/json") {
			t.Fatalf("account = %d %s", ok.status, ok.raw)
		}
		for k, v := range want {
			if ok.body[k] != v {
				t.Errorf("%s = %v, want %v", k, ok.body[k], v)
			}
		}
		if got := ok.header.Get("Access-Control-Allow-Origin"); got != "http://127.0.0.1:9999" {
			t.Errorf("Access-Control-Allow-Origin = %q", got)
		}
		for name, tok := range map[string]string{"ID token": idt, "refresh token": rt, "garbage": "x.y.z"} {
			r := get(tok)
			if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) || r.body["id"] != nil {
				t.Errorf("%s: %d %q %s", name, r.status, r.header.Get("WWW-Authenticate"), r.raw)
			}
		}
		if r := get(""); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer realm=") {
			t.Errorf("no token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		// The CORS preflight keycloak-js's request triggers.
		pre, _ := http.NewRequest("OPTIONS", acct, nil)
		pre.Header.Set("Origin", "http://127.0.0.1:9999")
		pre.Header.Set("Access-Control-Request-Method", "GET")
		pre.Header.Set("Access-Control-Request-Headers", "authorization")
		if r := do(t, pre); r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9999" {
			t.Errorf("preflight = %d %v", r.status, r.header)
		}
		// A browser opening the page still gets the HTML account screen.
		req, _ := http.NewRequest("GET", acct, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,application/json;q=0.9")
		if p := b.do(req); p.status != 200 || !strings.Contains(p.body, "<html") || !strings.Contains(p.body, "alice") {
			t.Errorf("account page = %d %.200s", p.status, p.body)
		}
	})
}

// The authorization response carries session_state (OIDC Session Management
// §3) that the iframe can recompute from the browser state cookie, and
// discovery names the iframe.
func TestSessionStateAndCheckSessionIframe(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		d := do(t, mustReq(t, "GET", inst.issuer("acme")+"/.well-known/openid-configuration"))
		if d.body["check_session_iframe"] != inst.issuer("acme")+checkSessionPath {
			t.Errorf("check_session_iframe = %v", d.body["check_session_iframe"])
		}
		b := newBrowser(t)
		cb := b.signIn(authURL(inst, "acme"), "alice", "alice-password-1")
		ss := cb.Query().Get("session_state")
		hash, salt, found := strings.Cut(ss, ".")
		if !found || hash == "" || salt == "" {
			t.Fatalf("session_state = %q in %s", ss, cb)
		}
		u, _ := url.Parse(inst.issuer("acme") + checkSessionPath)
		state := ""
		for _, c := range b.client.Jar.Cookies(u) {
			if c.Name == browserStateCookie {
				state = c.Value
			}
		}
		if state == "" {
			t.Fatal("no browser state cookie for the iframe")
		}
		sum := sha256.Sum256([]byte("web http://127.0.0.1:9999 " + state + " " + salt))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != hash {
			t.Errorf("session_state %q does not match the browser state", ss)
		}
		// The browser state is a hash of the session ID: neither the session cookie nor its secret.
		r := inst.redeem(t, "web:web-secret-123-0123456789abcdefghijklmnop", cb.Query().Get("code"))
		_, claims := verifyLocally(t, fetchJWKS(t, inst, "acme"), r.body["id_token"].(string))
		sid := sha256.Sum256([]byte(claims["sid"].(string)))
		if state != base64.RawURLEncoding.EncodeToString(sid[:]) {
			t.Errorf("browser state %q is not the hash of the sid", state)
		}
		for _, c := range b.client.Jar.Cookies(u) {
			if c.Name == sessionCookie && strings.Contains(c.Value, state) {
				t.Error("the browser state carries the session cookie")
			}
		}
		// A session from before the browser state cookie gets one with its next code.
		gone := &http.Cookie{Name: browserStateCookie, Value: "", Path: "/realms/acme/", MaxAge: -1}
		b.client.Jar.SetCookies(u, []*http.Cookie{gone})
		if again := b.get(authURL(inst, "acme", "prompt", "none")); again.location == nil || again.location.Query().Get("code") == "" {
			t.Fatalf("prompt=none = %d %v", again.status, again.location)
		}
		restored := ""
		for _, c := range b.client.Jar.Cookies(u) {
			if c.Name == browserStateCookie {
				restored = c.Value
			}
		}
		if restored != state {
			t.Errorf("browser state after a code = %q, want %q", restored, state)
		}
		// The pages are frameable, scripted by hash only; the session iframe
		// only by the realm's clients.
		for p, ancestors := range map[string]string{checkSessionPath: "frame-ancestors 'self' http://127.0.0.1:9999 http://127.0.0.1:9998 http://127.0.0.1:9997", thirdPartyStep1: "frame-ancestors *", thirdPartyStep2: "frame-ancestors *"} {
			r := do(t, mustReq(t, "GET", inst.issuer("acme")+p))
			csp := r.header.Get("Content-Security-Policy")
			if r.status != 200 || r.header.Get("X-Frame-Options") != "" || !strings.Contains(csp, "script-src 'sha256-") ||
				!strings.Contains(csp, "default-src 'none'") || !strings.HasSuffix(csp, ancestors) {
				t.Errorf("%s = %d, CSP %q, want it to end with %q", p, r.status, csp, ancestors)
			}
		}
	})
}
