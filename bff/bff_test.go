package bff

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func variants(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, v := range []struct {
		name      string
		par, dpop bool
	}{{"plain", false, false}, {"par", true, false}, {"dpop", false, true}, {"par+dpop", true, true}} {
		t.Run(v.name, func(t *testing.T) { fn(t, newEnv(t, v.par, v.dpop)) })
	}
}

func TestLogin_CallbackSetsSessionCookie(t *testing.T) {
	variants(t, func(t *testing.T, e *env) {
		res := e.do("GET", "/bff/login?returnTo=/orders%3Fpage%3D2", nil)
		login := cookieNamed(res, "__Host-bff_login")
		if res.StatusCode != http.StatusFound || login == nil || !login.HttpOnly || !login.Secure ||
			login.SameSite != http.SameSiteLaxMode || login.Path != "/" || login.Domain != "" {
			t.Fatalf("login: %d %+v", res.StatusCode, login)
		}
		loc, _ := url.Parse(res.Header.Get("Location"))
		if e.iss.par {
			if loc.Query().Get("code_challenge") != "" || loc.Query().Get("request_uri") == "" {
				t.Fatalf("PAR: browser URL carries the parameters: %s", loc)
			}
		} else if q := loc.Query(); q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("nonce") == "" ||
			q.Get("redirect_uri") != extURL+"/bff/callback" || q.Get("scope") != "openid profile email offline_access" {
			t.Fatalf("authorize URL: %s", loc)
		}
		q := e.iss.authorize(res.Header.Get("Location"))
		res = e.do("GET", "/bff/callback?"+q.Encode(), nil, &http.Cookie{Name: login.Name, Value: login.Value})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/orders?page=2" {
			t.Fatalf("callback: %d %q %s", res.StatusCode, res.Header.Get("Location"), body(t, res))
		}
		c := cookieNamed(res, "__Host-bff_session")
		if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" ||
			c.Domain != "" || len(c.Value) != 43 || c.MaxAge <= 0 {
			t.Fatalf("session cookie: %+v", c)
		}
		if lc := cookieNamed(res, "__Host-bff_login"); lc == nil || lc.MaxAge >= 0 {
			t.Fatalf("login cookie not cleared: %+v", lc)
		}
		if e.iss.dpop {
			e.iss.mu.Lock()
			seen := append([]string(nil), e.iss.dpopSeen...)
			e.iss.mu.Unlock()
			if len(seen) != 2 || !strings.Contains(claimsOf(t, seen[1]), `"nonce":"n1"`) {
				t.Fatalf("DPoP nonce retry: %d proofs", len(seen))
			}
		}
		// The same callback again (login cookie and code replayed) signs nobody in.
		res = e.do("GET", "/bff/callback?"+q.Encode(), nil, &http.Cookie{Name: login.Name, Value: login.Value})
		if res.StatusCode == http.StatusSeeOther {
			t.Fatal("replayed callback signed in")
		}
	})
}

func claimsOf(t *testing.T, compact string) string {
	t.Helper()
	tok, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return string(tok.UnsafePayloadWithoutVerification())
}

func TestCallback_WrongStateOrNoCookieRefused(t *testing.T) {
	e := newEnv(t, false, false)
	res := e.do("GET", "/bff/login", nil)
	login := cookieNamed(res, "__Host-bff_login")
	q := e.iss.authorize(res.Header.Get("Location"))
	q2 := url.Values{"code": q["code"], "state": {"forged"}}
	if res := e.do("GET", "/bff/callback?"+q2.Encode(), nil, &http.Cookie{Name: login.Name, Value: login.Value}); res.StatusCode != http.StatusBadRequest || cookieNamed(res, "__Host-bff_session") != nil {
		t.Fatalf("wrong state: %d", res.StatusCode)
	}
	if res := e.do("GET", "/bff/callback?"+q.Encode(), nil); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("no login cookie: %d", res.StatusCode)
	}
}

func TestUserAndSession_HoldNoToken(t *testing.T) {
	variants(t, func(t *testing.T, e *env) {
		res := e.do("GET", "/bff/session", nil)
		if b := body(t, res); res.StatusCode != 200 || !strings.Contains(b, `"signed_in":false`) {
			t.Fatalf("signed out session: %d %s", res.StatusCode, b)
		}
		if res := e.do("GET", "/bff/user", nil); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("signed out user: %d", res.StatusCode)
		}
		c, _ := e.signIn("/")
		res = e.do("GET", "/bff/user", nil, c)
		ub := body(t, res)
		var u map[string]any
		json.Unmarshal([]byte(ub), &u)
		if res.StatusCode != 200 || u["sub"] != "alice" || u["name"] != "Alice" || u["nonce"] != nil || u["at_hash"] != nil || u["sid"] != nil {
			t.Fatalf("user: %d %s", res.StatusCode, ub)
		}
		res = e.do("GET", "/bff/session", nil, c)
		sb := body(t, res)
		var s struct {
			SignedIn  bool  `json:"signed_in"`
			ExpiresAt int64 `json:"expires_at"`
		}
		json.Unmarshal([]byte(sb), &s)
		if !s.SignedIn || s.ExpiresAt != e.clock.Now().Add(12*time.Hour).Unix() {
			t.Fatalf("session: %s", sb)
		}
		for _, b := range []string{ub, sb, fmt.Sprint(res.Header)} {
			if strings.Contains(b, "at-1") || strings.Contains(b, "rt-1") || strings.Contains(b, "eyJ") {
				t.Fatalf("a token reached the browser: %s", b)
			}
		}
	})
}

func TestProxy_AttachesTokenAndStripsBrowserCredentials(t *testing.T) {
	variants(t, func(t *testing.T, e *env) {
		c, _ := e.signIn("/")
		h := csrfHeaders()
		h.Set("Authorization", "Bearer forged")
		h.Set("DPoP", "forged")
		res := e.do("GET", "/api/things?x=1", h, c, &http.Cookie{Name: "other", Value: "v"})
		if b := body(t, res); res.StatusCode != 200 || b != `{"ok":true}` {
			t.Fatalf("proxy: %d %s", res.StatusCode, b)
		}
		e.mu.Lock()
		got, path := e.seen[0], e.paths[0]
		e.mu.Unlock()
		if path != "/things?x=1" {
			t.Errorf("upstream path %q", path)
		}
		if got.Get("Cookie") != "" || got.Get("X-Csrf") != "" {
			t.Errorf("browser credentials forwarded: %v", got)
		}
		if e.iss.dpop {
			if got.Get("Authorization") != "DPoP at-1" || got.Get("DPoP") == "forged" || got.Get("DPoP") == "" {
				t.Errorf("DPoP upstream headers: %v", got)
			}
			cl := claimsOf(t, got.Get("DPoP"))
			if !strings.Contains(cl, `"htu":"`+e.upstream.URL+`/things"`) || !strings.Contains(cl, `"ath"`) || !strings.Contains(cl, `"htm":"GET"`) {
				t.Errorf("DPoP proof claims: %s", cl)
			}
		} else if got.Get("Authorization") != "Bearer at-1" || got.Get("DPoP") != "" {
			t.Errorf("upstream Authorization %q DPoP %q", got.Get("Authorization"), got.Get("DPoP"))
		}
		if cookieNamed(res, "__Host-bff_session") != nil || cookieNamed(res, "upstream_pref") == nil {
			t.Errorf("upstream Set-Cookie handling: %v", res.Header.Values("Set-Cookie"))
		}
	})
}

func TestProxy_SignedOut401(t *testing.T) {
	e := newEnv(t, false, false)
	if res := e.do("GET", "/api/x", csrfHeaders()); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%d", res.StatusCode)
	}
	if res := e.do("GET", "/api/x", csrfHeaders(), &http.Cookie{Name: "__Host-bff_session", Value: strings.Repeat("A", 43)}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown cookie: %d", res.StatusCode)
	}
	if len(e.seen) != 0 {
		t.Fatal("upstream called")
	}
}

func TestProxy_OneRefreshForConcurrentRequests(t *testing.T) {
	for _, dpop := range []bool{false, true} {
		for _, n := range []int{2, 5, 100} {
			t.Run(fmt.Sprintf("dpop=%v/%d", dpop, n), func(t *testing.T) {
				e := newEnv(t, false, dpop)
				c, _ := e.signIn("/")
				// Still 31 s left: no refresh.
				e.clock.Add(269 * time.Second)
				if res := e.do("GET", "/api/a", csrfHeaders(), c); res.StatusCode != 200 || e.iss.refreshes.Load() != 0 {
					t.Fatalf("early refresh: %d %d", res.StatusCode, e.iss.refreshes.Load())
				}
				for round, want := range []string{"at-2", "at-3"} {
					e.clock.Add(10 * time.Second) // under 30 s left
					var wg sync.WaitGroup
					codes := make(chan int, n)
					for range n {
						wg.Add(1)
						go func() {
							defer wg.Done()
							codes <- e.do("GET", "/api/a", csrfHeaders(), c).StatusCode
						}()
					}
					wg.Wait()
					close(codes)
					for code := range codes {
						if code != 200 {
							t.Fatalf("round %d: status %d", round, code)
						}
					}
					if got := e.iss.refreshes.Load(); got != int64(round+1) {
						t.Fatalf("round %d: %d refreshes, want %d", round, got, round+1)
					}
					e.mu.Lock()
					last := e.seen[len(e.seen)-1].Get("Authorization")
					e.mu.Unlock()
					if !strings.HasSuffix(last, " "+want) {
						t.Fatalf("round %d: upstream got %q, want %s", round, last, want)
					}
					e.clock.Add(270 * time.Second)
				}
			})
		}
	}
}

func TestProxy_InvalidGrantEndsSession(t *testing.T) {
	e := newEnv(t, false, false)
	c, _ := e.signIn("/")
	e.iss.mu.Lock()
	e.iss.rt = "" // the issuer revoked the family
	e.iss.mu.Unlock()
	e.clock.Add(290 * time.Second)
	res := e.do("GET", "/api/a", csrfHeaders(), c)
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("proxy after invalid_grant: %d", res.StatusCode)
	}
	if sc := cookieNamed(res, "__Host-bff_session"); sc == nil || sc.MaxAge >= 0 {
		t.Fatal("session cookie not cleared")
	}
	if b := body(t, e.do("GET", "/bff/session", nil, c)); !strings.Contains(b, `"signed_in":false`) {
		t.Fatalf("session lives on: %s", b)
	}
	if len(e.seen) != 0 {
		t.Fatal("upstream called")
	}
}

func TestCSRF_Refused(t *testing.T) {
	e := newEnv(t, false, false)
	c, _ := e.signIn("/")
	cases := map[string]http.Header{
		"no X-CSRF":              {"Sec-Fetch-Site": {"same-origin"}},
		"X-CSRF not 1":           {"X-Csrf": {"yes"}},
		"foreign Origin":         {"X-Csrf": {"1"}, "Origin": {"https://evil.example"}},
		"Sec-Fetch-Site cross":   {"X-Csrf": {"1"}, "Sec-Fetch-Site": {"cross-site"}},
		"Sec-Fetch-Site sibling": {"X-Csrf": {"1"}, "Sec-Fetch-Site": {"same-site"}},
	}
	for name, h := range cases {
		for _, rt := range []struct{ method, path string }{{"GET", "/api/a"}, {"POST", "/api/a"}, {"POST", "/bff/logout"}} {
			hh := h.Clone()
			if res := e.do(rt.method, rt.path, hh, c); res.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s %s: %d", name, rt.method, rt.path, res.StatusCode)
			}
		}
	}
	if len(e.seen) != 0 {
		t.Fatal("upstream called")
	}
	if b := body(t, e.do("GET", "/bff/session", nil, c)); !strings.Contains(b, `"signed_in":true`) {
		t.Fatal("a refused logout signed out")
	}
	ok := csrfHeaders()
	ok.Set("Origin", extURL)
	if res := e.do("POST", "/api/a", ok, c); res.StatusCode != 200 {
		t.Fatalf("same-origin POST: %d", res.StatusCode)
	}
}

func TestLogin_ReturnToOpenRedirectRefused(t *testing.T) {
	e := newEnv(t, false, false)
	for _, rt := range []string{"//evil.example", "https://evil.example/", "/\\evil.example", "http:/evil", "evil", "javascript:alert(1)", "/a\r\nSet-Cookie: x=1"} {
		res := e.do("GET", "/bff/login?returnTo="+url.QueryEscape(rt), nil)
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Errorf("returnTo %q: %d %q", rt, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if res := e.do("GET", "/bff/login?returnTo=/ok", nil); res.StatusCode != http.StatusFound {
		t.Fatalf("/ok: %d", res.StatusCode)
	}
}

func TestLogout_EndsLocalAndIssuerSession(t *testing.T) {
	e := newEnv(t, false, false)
	c, _ := e.signIn("/")
	res := e.do("POST", "/bff/logout", csrfHeaders(), c)
	if b := body(t, res); res.StatusCode != 200 || !strings.Contains(b, `"logout":true`) {
		t.Fatalf("logout: %d %s", res.StatusCode, b)
	}
	if sc := cookieNamed(res, "__Host-bff_session"); sc == nil || sc.MaxAge >= 0 {
		t.Fatal("cookie not cleared")
	}
	e.iss.mu.Lock()
	revoked, ended := e.iss.revoked, e.iss.ended
	e.iss.mu.Unlock()
	if len(revoked) != 1 || revoked[0] != "rt-1" || len(ended) != 1 || !strings.HasPrefix(ended[0], "eyJ") {
		t.Fatalf("issuer side: revoked %v ended %d", revoked, len(ended))
	}
	if res := e.do("GET", "/api/a", csrfHeaders(), c); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API after logout: %d", res.StatusCode)
	}
	if res := e.do("GET", "/bff/logout", csrfHeaders(), c); res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET logout: %d", res.StatusCode)
	}
}

func (e *env) logoutToken(mut func(map[string]any)) map[string]any {
	now := e.clock.Now()
	c := map[string]any{"iss": e.iss.srv.URL, "aud": "web", "sub": "alice", "sid": "sid-1", "iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(), "jti": rand.Text(),
		"events": map[string]any{eventBackchannelLogout: map[string]any{}}}
	if mut != nil {
		mut(c)
	}
	return c
}

func (e *env) backchannel(tok string) int {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Test-Body": {url.Values{"logout_token": {tok}}.Encode()}}
	return e.do("POST", "/bff/backchannel-logout", h).StatusCode
}

func TestBackchannelLogout_Verification(t *testing.T) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forge := func(claims map[string]any) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: other}, (&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", "k1"))
		out, _ := jwt.Signed(s).Claims(claims).Serialize()
		return out
	}
	bad := map[string]func(e *env) string{
		"bad signature": func(e *env) string { return forge(e.logoutToken(nil)) },
		"wrong aud": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { c["aud"] = "other" }), "logout+jwt")
		},
		"wrong iss": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { c["iss"] = "https://evil" }), "logout+jwt")
		},
		"no events": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { delete(c, "events") }), "logout+jwt")
		},
		"wrong event": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { c["events"] = map[string]any{"x": map[string]any{}} }), "logout+jwt")
		},
		"nonce": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { c["nonce"] = "n" }), "logout+jwt")
		},
		"no iat": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { delete(c, "iat") }), "logout+jwt")
		},
		"expired": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Hour).Unix() }), "logout+jwt")
		},
		"no jti": func(e *env) string {
			return e.iss.sign(e.logoutToken(func(c map[string]any) { delete(c, "jti") }), "logout+jwt")
		},
		"ID token typ": func(e *env) string { return e.iss.sign(e.logoutToken(nil), "JWT") },
		"not a JWT":    func(e *env) string { return "garbage" },
	}
	for name, mk := range bad {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, false, false)
			c, _ := e.signIn("/")
			if code := e.backchannel(mk(e)); code != http.StatusBadRequest {
				t.Fatalf("status %d", code)
			}
			if b := body(t, e.do("GET", "/bff/session", nil, c)); !strings.Contains(b, `"signed_in":true`) {
				t.Fatal("a refused logout token ended the session")
			}
		})
	}
	t.Run("good by sid, then replayed", func(t *testing.T) {
		e := newEnv(t, false, false)
		c1, _ := e.signIn("/")
		c2, _ := e.signIn("/") // same sid: both end
		tok := e.iss.sign(e.logoutToken(nil), "logout+jwt")
		if code := e.backchannel(tok); code != http.StatusOK {
			t.Fatalf("good token: %d", code)
		}
		for _, c := range []*http.Cookie{c1, c2} {
			if res := e.do("GET", "/api/a", csrfHeaders(), c); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("session lives on: %d", res.StatusCode)
			}
		}
		if code := e.backchannel(tok); code != http.StatusBadRequest {
			t.Fatalf("replayed jti: %d", code)
		}
	})
	t.Run("good by sub", func(t *testing.T) {
		e := newEnv(t, false, false)
		c, _ := e.signIn("/")
		tok := e.iss.sign(e.logoutToken(func(c map[string]any) { delete(c, "sid") }), "logout+jwt")
		if code := e.backchannel(tok); code != http.StatusOK {
			t.Fatalf("good token: %d", code)
		}
		if b := body(t, e.do("GET", "/bff/session", nil, c)); !strings.Contains(b, `"signed_in":false`) {
			t.Fatal("session lives on")
		}
	})
}

func TestSealedRecord_HoldsNoTokenInClear(t *testing.T) {
	variants(t, func(t *testing.T, e *env) {
		c, _ := e.signIn("/")
		rec, err := e.store.Get(t.Context(), sessionID(c.Value), e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rec.ID == c.Value || rec.SID != "sid-1" || rec.Subject != "alice" {
			t.Fatalf("record: %+v", rec)
		}
		e.iss.mu.Lock()
		idTok := e.iss.idToken("x")
		e.iss.mu.Unlock()
		for _, secret := range []string{"at-1", "rt-1", c.Value, strings.Split(idTok, ".")[0], "alice@example.com"} {
			if bytes.Contains(rec.Sealed, []byte(secret)) {
				t.Fatalf("sealed record holds %q in clear", secret)
			}
		}
		// A record moved to another ID does not open.
		var s sealedSession
		if err := e.h.open("other", rec.Sealed, &s); err == nil {
			t.Fatal("sealed record opened under another ID")
		}
	})
}

func TestMemorySessions_Bounded(t *testing.T) {
	ctx := context.Background()
	m := newMemorySessions(3)
	now := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if err := m.Put(ctx, SessionRecord{ID: fmt.Sprint(i), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Put(ctx, SessionRecord{ID: "x", ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("4th session: %v", err)
	}
	if err := m.Put(ctx, SessionRecord{ID: "1", ExpiresAt: now.Add(2 * time.Hour)}); err != nil {
		t.Fatalf("replacing: %v", err)
	}
	if n, _ := m.Purge(ctx, now.Add(90*time.Minute)); n != 2 {
		t.Fatalf("purged %d", n)
	}
	if _, err := m.Get(ctx, "0", now); !errors.Is(err, ErrSessionNotFound) {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, "1", now.Add(2*time.Hour)); !errors.Is(err, ErrSessionNotFound) {
		t.Fatal("expired record returned")
	}
}

func TestMemorySessions_UpdateRace(t *testing.T) {
	for _, n := range []int{2, 5, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := context.Background()
			m := NewMemorySessions()
			now := time.Unix(1_800_000_000, 0)
			m.Put(ctx, SessionRecord{ID: "s", ExpiresAt: now.Add(time.Hour)})
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m.Update(ctx, "s", now, func(r SessionRecord) (SessionRecord, error) {
						r.Sealed = append(r.Sealed, 1)
						return r, nil
					})
				}()
			}
			wg.Wait()
			r, _ := m.Get(ctx, "s", now)
			if len(r.Sealed) != n || r.Version != int64(n) {
				t.Fatalf("%d updates, version %d", len(r.Sealed), r.Version)
			}
			if _, err := m.Update(ctx, "s", now, func(r SessionRecord) (SessionRecord, error) {
				r.Sealed = nil
				return r, errors.New("no")
			}); err == nil {
				t.Fatal("fn error ignored")
			}
			if r2, _ := m.Get(ctx, "s", now); len(r2.Sealed) != n {
				t.Fatal("failed Update changed the record")
			}
		})
	}
}

func TestRouting_AppAndUnknownBFF(t *testing.T) {
	e := newEnv(t, false, false)
	if b := body(t, e.do("GET", "/index.html", nil)); b != "spa" {
		t.Fatalf("app: %q", b)
	}
	if res := e.do("GET", "/bff/nope", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown bff route: %d", res.StatusCode)
	}
	if b := body(t, e.do("GET", "/apix", nil)); b != "spa" {
		t.Fatalf("/apix is not under /api: %q", b)
	}
}

// A refresh (Update's fn) in flight neither blocks other sessions nor brings back a
// session deleted meanwhile (logout during refresh).
func TestMemorySessions_UpdateDoesNotBlockOrResurrect(t *testing.T) {
	ctx := context.Background()
	m := NewMemorySessions()
	now := time.Unix(1_800_000_000, 0)
	m.Put(ctx, SessionRecord{ID: "a", ExpiresAt: now.Add(time.Hour)})
	m.Put(ctx, SessionRecord{ID: "b", ExpiresAt: now.Add(time.Hour)})
	inFn, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := m.Update(ctx, "a", now, func(r SessionRecord) (SessionRecord, error) {
			close(inFn)
			<-release
			r.Sealed = []byte("new")
			return r, nil
		})
		done <- err
	}()
	<-inFn
	got := make(chan error, 1)
	go func() {
		_, err := m.Get(ctx, "b", now)
		if err == nil {
			err = m.Delete(ctx, "a")
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second): // a guard against a deadlock, not a wait for time
		close(release)
		t.Fatal("Get of another session blocked behind an Update")
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("Update after delete: %v", err)
	}
	if _, err := m.Get(ctx, "a", now); !errors.Is(err, ErrSessionNotFound) {
		t.Fatal("deleted session resurrected")
	}
}

// An issuer outage does not end the session: the still-valid token is used, and
// once it has expired the browser gets 503 (retry), not 401.
func TestProxy_IssuerDownUsesValidTokenThen503(t *testing.T) {
	e := newEnv(t, false, false)
	c, _ := e.signIn("/")
	e.iss.down.Store(true)
	e.clock.Add(290 * time.Second) // 10 s left
	if res := e.do("GET", "/api/a", csrfHeaders(), c); res.StatusCode != 200 || e.seen[0].Get("Authorization") != "Bearer at-1" {
		t.Fatalf("with 10 s left: %d", res.StatusCode)
	}
	e.clock.Add(20 * time.Second)
	if res := e.do("GET", "/api/a", csrfHeaders(), c); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("expired, issuer down: %d", res.StatusCode)
	}
	e.iss.down.Store(false)
	if res := e.do("GET", "/api/a", csrfHeaders(), c); res.StatusCode != 200 {
		t.Fatalf("issuer back: %d", res.StatusCode)
	}
}
