package bff

import (
	"bytes"
	"encoding/hex"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/logging"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/seed"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/storecache"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage/sqlite"
)

const latchkeySeed = `
realms:
  - name: dev
    clients:
      - id: web
        secret: web-secret-123-0123456789abcdefghijklmnop
        redirect_uris: [https://app.example.test/bff/callback]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, email, offline_access]
    users:
      - username: alice
        password: alice-password-1
        email: alice@example.com
        email_verified: true
        name: Alice Liddell
`

// startLatchkey runs a real, seeded Latchkey in-process (SQLite), wired as
// internal/oauth's own tests wire it, and returns the realm's issuer.
func startLatchkey(t *testing.T, clk *testClock) string {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "latchkey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, _ := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	secrets := clientsecret.NewHasher(mk)
	f, err := seed.Parse("test.yaml", []byte(latchkeySeed))
	if err != nil {
		t.Fatal(err)
	}
	a := &seed.Applier{Store: st, Secrets: secrets, Password: password.Params{Memory: 64, Time: 1, Threads: 1}, Now: clk.Now}
	if _, err := a.Apply(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	log := logging.New(io.Discard, slog.LevelInfo)
	cached := storecache.New(st, time.Second, clk.Now)
	km := keys.NewManager(cached, mk, keys.DefaultPolicy, clk.Now)
	tokens := token.NewService(cached, km, token.NewDenyList(), base, clk.Now)
	pages, err := web.NewPages()
	if err != nil {
		t.Fatal(err)
	}
	h := oauth.New(oauth.Config{Store: cached, Tokens: tokens, Keys: km, Secrets: secrets, MasterKey: mk, Pages: pages,
		Limiter: web.NewLimiter(st, "login", web.LimiterConfig{InFlightInStore: true}, clk.Now), Log: log, BaseURL: base, Now: clk.Now})
	srv.Config.Handler = server.New(log, st, h).Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return base + "/realms/dev"
}

// TestLatchkey_SignInProxyRefreshLogout runs the BFF against a real Latchkey: sign-in
// through the login form, a proxied call, a refresh with rotation, and logout that
// revokes the refresh token at the issuer.
func TestLatchkey_SignInProxyRefreshLogout(t *testing.T) {
	clk := &testClock{t: time.Now().Truncate(time.Second)}
	issuer := startLatchkey(t, clk)
	var auths []string // Latchkey offers DPoP (RFC 9449), so the BFF binds its tokens
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auths = append(auths, r.Header.Get("Authorization"))
	}))
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)
	store := NewMemorySessions()
	h, err := New(t.Context(), Config{Issuer: issuer, ClientID: "web", ClientSecret: "web-secret-123-0123456789abcdefghijklmnop",
		ExternalURL: extURL, APIs: []API{{Prefix: "/api", Upstream: upURL}}, Sessions: store, Key: make([]byte, 32), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: clk, h: h, store: store}

	res := e.do("GET", "/bff/login?returnTo=/home", nil)
	login := cookieNamed(res, "__Host-bff_login")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == "app.example.test" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	page, err := browser.Get(res.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(page.Body)
	page.Body.Close()
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(string(b))
	if action == nil {
		t.Fatalf("no login form (%d): %s", page.StatusCode, b)
	}
	form := url.Values{"username": {"alice"}, "password": {"alice-password-1"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`).FindAllStringSubmatch(string(b), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	iu, _ := url.Parse(issuer)
	req, _ := http.NewRequest("POST", iu.Scheme+"://"+iu.Host+html.UnescapeString(action[1]), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	done, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	done.Body.Close()
	cb, err := done.Location()
	if err != nil || !strings.HasPrefix(cb.String(), extURL+"/bff/callback?") {
		t.Fatalf("login did not return to the BFF: %d %v", done.StatusCode, cb)
	}
	res = e.do("GET", "/bff/callback?"+cb.RawQuery, nil, &http.Cookie{Name: login.Name, Value: login.Value})
	sc := cookieNamed(res, "__Host-bff_session")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/home" || sc == nil {
		t.Fatalf("callback: %d %s", res.StatusCode, body(t, res))
	}
	c := &http.Cookie{Name: sc.Name, Value: sc.Value}
	if b := body(t, e.do("GET", "/bff/user", nil, c)); !strings.Contains(b, `"preferred_username":"alice"`) && !strings.Contains(b, `"sub"`) {
		t.Fatalf("user: %s", b)
	}
	if res := e.do("GET", "/api/x", csrfHeaders(), c); res.StatusCode != 200 || len(auths) != 1 || !strings.HasPrefix(auths[0], "DPoP ") {
		t.Fatalf("proxy: %d %v", res.StatusCode, len(auths))
	}
	rec, _ := store.Get(t.Context(), sessionID(c.Value), clk.Now())
	var before sealedSession
	h.open(rec.ID, rec.Sealed, &before)

	clk.Add(5 * time.Minute) // the 5-minute access token is (nearly) spent
	if res := e.do("GET", "/api/x", csrfHeaders(), c); res.StatusCode != 200 || len(auths) != 2 || auths[1] == auths[0] {
		t.Fatalf("proxy after expiry: %d, new token %v", res.StatusCode, len(auths) == 2 && auths[1] != auths[0])
	}
	rec, _ = store.Get(t.Context(), sessionID(c.Value), clk.Now())
	var after sealedSession
	h.open(rec.ID, rec.Sealed, &after)
	if after.RefreshToken == "" || after.RefreshToken == before.RefreshToken {
		t.Fatal("refresh token not rotated")
	}
	if res := e.do("POST", "/bff/logout", csrfHeaders(), c); res.StatusCode != 200 {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	// The refresh token is dead at the issuer.
	treq, _ := http.NewRequest("POST", h.meta.TokenEndpoint, strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {after.RefreshToken}}.Encode()))
	treq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	treq.SetBasicAuth("web", "web-secret-123-0123456789abcdefghijklmnop")
	tres, err := http.DefaultClient.Do(treq)
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := io.ReadAll(tres.Body)
	tres.Body.Close()
	if tres.StatusCode != http.StatusBadRequest || !strings.Contains(string(tb), "invalid_grant") {
		t.Fatalf("refresh token after logout: %d %s", tres.StatusCode, tb)
	}
}
