package oauth

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/realip"
	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

const (
	deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"
	tvcSecret   = "tvc-secret-555-0123456789abcdefghijklmnop"
)

// addDeviceClients registers the device grant's clients in acme, as the seed
// file or the admin API would: tv (public, can refresh), tvc (confidential)
// and tvonce (public, no refresh_token grant).
func addDeviceClients(t *testing.T, inst *instance) {
	t.Helper()
	secrets := clientsecret.NewHasher(masterKey)
	for _, c := range []registry.Client{
		{ID: "tv", Name: "Living Room TV", GrantTypes: []string{deviceGrant, "refresh_token"}, Scopes: []string{"openid", "profile", "offline_access"}},
		{ID: "tvc", Name: "Kiosk", Secret: tvcSecret, GrantTypes: []string{deviceGrant}, Scopes: []string{"openid"}},
		{ID: "tvonce", GrantTypes: []string{deviceGrant}, Scopes: []string{"openid"}},
	} {
		if err := registry.CheckClient(&c); err != nil {
			t.Fatal(err)
		}
		hash := ""
		if c.Secret != "" {
			hash = secrets.Hash("acme", c.ID, c.Secret)
		}
		if err := inst.store.CreateClient(t.Context(), c.StoredClient("acme", hash, inst.clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
}

func (i *instance) deviceURL(realm string) string { return i.issuer(realm) + deviceAuthPath }

// authorizeDevice asks for a device code, failing the test unless one is issued.
func (i *instance) authorizeDevice(t *testing.T, basic string, kv ...string) response {
	t.Helper()
	r := post(t, i.deviceURL("acme"), basic, form(kv...))
	if r.status != 200 {
		t.Fatalf("device authorization = %d %s", r.status, r.raw)
	}
	return r
}

func (i *instance) pollDevice(t *testing.T, basic, deviceCode string, kv ...string) response {
	t.Helper()
	return post(t, i.tokenURL("acme"), basic, form(append([]string{"grant_type", deviceGrant, "device_code", deviceCode}, kv...)...))
}

// decideDevice walks the verification page as a user would: the prefilled
// code, the sign-in if the browser has none, the confirmation, and the
// decision. It returns the last page.
func decideDevice(t *testing.T, inst *instance, b *browser, userCode, decision string) page {
	t.Helper()
	u := inst.issuer("acme") + devicePath + "?user_code=" + userCode
	p := b.get(u)
	if p.status != 200 || !strings.Contains(p.body, `value="`+userCode+`"`) {
		t.Fatalf("code form = %d, not prefilled:\n%s", p.status, p.body)
	}
	p = b.submit(p, u, "user_code", userCode)
	if strings.Contains(p.body, `name="password"`) {
		p = b.submit(p, u, "username", "alice", "password", "alice-password-1")
	}
	if p.status != 200 || !strings.Contains(p.body, `value="approve"`) {
		t.Fatalf("no confirmation (%d):\n%s", p.status, p.body)
	}
	return b.submit(p, u, "decision", decision)
}

var userCodeSyntax = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

func TestDeviceAuthorization_AnswersAsRFC8628(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addDeviceClients(t, inst)
		r := inst.authorizeDevice(t, "", "client_id", "tv", "scope", "openid profile")
		iss := inst.issuer("acme")
		code, _ := r.body["user_code"].(string)
		if dc, _ := r.body["device_code"].(string); !strings.HasPrefix(dc, "lk_dc_") || len(dc) < 6+43 ||
			!userCodeSyntax.MatchString(code) || r.body["verification_uri"] != iss+"/device" ||
			r.body["verification_uri_complete"] != iss+"/device?user_code="+code ||
			r.body["expires_in"] != 600.0 || r.body["interval"] != 5.0 {
			t.Fatalf("device authorization = %s", r.raw)
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", r.header)
		}
		// A confidential client authenticates; discovery names the endpoint.
		inst.authorizeDevice(t, "tvc:"+tvcSecret)
		d := do(t, mustReq(t, "GET", iss+"/.well-known/openid-configuration"))
		if d.body["device_authorization_endpoint"] != iss+deviceAuthPath {
			t.Fatalf("discovery: %s", d.raw)
		}
	})
}

func TestDeviceAuthorization_RefusesBadRequests(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addDeviceClients(t, inst)
		u := inst.deviceURL("acme")
		wantError(t, post(t, u, "", form("client_id", "nobody")), 401, InvalidClient)
		wantError(t, post(t, u, "", form("client_id", "tvc")), 401, InvalidClient) // confidential: must authenticate
		wantError(t, post(t, u, "tvc:wrong-secret-0123456789abcdefghijklmnop", form()), 401, InvalidClient)
		wantError(t, post(t, u, "svc:svc-secret-123-0123456789abcdefghijklmnop", form()), 400, UnauthorizedClient)
		wantError(t, post(t, u, "", form("client_id", "spa")), 400, UnauthorizedClient)
		wantError(t, post(t, u, "", form("client_id", "tv", "scope", "admin")), 400, InvalidScope)
		wantError(t, post(t, u, "", form("client_id", "tv", "resource", "https://elsewhere.example/")), 400, InvalidTarget)
		if r := do(t, mustReq(t, "GET", u+"?client_id=tv")); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("GET = %d", r.status)
		}
	})
}

func TestDevicePolling_EveryAnswer(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addDeviceClients(t, inst)
		r := inst.authorizeDevice(t, "", "client_id", "tv", "scope", "openid profile")
		dc, uc := r.body["device_code"].(string), r.body["user_code"].(string)

		wantError(t, inst.pollDevice(t, "", dc, "client_id", "tv"), 400, "authorization_pending")
		wantError(t, inst.pollDevice(t, "", dc, "client_id", "tv"), 400, "slow_down") // sooner than 5 s
		inst.clock.Add(9 * time.Second)                                               // the interval is 10 s now
		wantError(t, inst.pollDevice(t, "", dc, "client_id", "tv"), 400, "slow_down")
		inst.clock.Add(15 * time.Second)
		wantError(t, inst.pollDevice(t, "", dc, "client_id", "tv"), 400, "authorization_pending")

		// Bad input, and another client's code.
		inst.clock.Add(20 * time.Second)
		wantError(t, post(t, inst.tokenURL("acme"), "", form("grant_type", deviceGrant, "client_id", "tv")), 400, InvalidRequest)
		wantError(t, inst.pollDevice(t, "", "lk_dc_unknown", "client_id", "tv"), 400, InvalidGrant)
		wantError(t, inst.pollDevice(t, "", "bad code\x00", "client_id", "tv"), 400, InvalidGrant)
		wantError(t, inst.pollDevice(t, "", dc, "client_id", "tvonce"), 400, InvalidGrant)
		wantError(t, inst.pollDevice(t, "svc:svc-secret-123-0123456789abcdefghijklmnop", dc), 400, UnauthorizedClient)

		b := newBrowser(t)
		done := decideDevice(t, inst, b, uc, "approve")
		if done.status != 200 || !strings.Contains(done.body, "Device connected") || !strings.Contains(done.body, "Living Room TV") {
			t.Fatalf("after approving (%d):\n%s", done.status, done.body)
		}
		inst.clock.Add(20 * time.Second)
		tok := inst.pollDevice(t, "", dc, "client_id", "tv")
		if tok.status != 200 || tok.body["access_token"] == nil || tok.body["id_token"] == nil ||
			tok.body["token_type"] != "Bearer" || tok.body["scope"] != "openid profile" {
			t.Fatalf("approved poll = %d %s", tok.status, tok.raw)
		}
		rt, _ := tok.body["refresh_token"].(string)
		if !strings.HasPrefix(rt, "lk_rt_") {
			t.Fatalf("no refresh token: %s", tok.raw)
		}
		if in := inst.introspect(t, "acme", tok.body["access_token"].(string)); in.body["active"] != true || in.body["username"] != "alice" {
			t.Fatalf("introspection = %s", in.raw)
		}
		// Redeemed once: the code is spent.
		inst.clock.Add(20 * time.Second)
		wantError(t, inst.pollDevice(t, "", dc, "client_id", "tv"), 400, InvalidGrant)
		// The refresh token works at refresh, and lives as a mobile app's (30 days idle).
		ref := inst.refresh(t, "", rt, "client_id", "tv")
		if ref.status != 200 || ref.body["access_token"] == nil || ref.body["refresh_token"] == nil {
			t.Fatalf("refresh = %d %s", ref.status, ref.raw)
		}
		inst.clock.Add(29 * 24 * time.Hour)
		if again := inst.refresh(t, "", ref.body["refresh_token"].(string), "client_id", "tv"); again.status != 200 {
			t.Fatalf("refresh after 29 days = %d %s", again.status, again.raw)
		}

		// Denied.
		r = inst.authorizeDevice(t, "", "client_id", "tv")
		denied := decideDevice(t, inst, b, r.body["user_code"].(string), "deny")
		if !strings.Contains(denied.body, "Request denied") {
			t.Fatalf("after denying:\n%s", denied.body)
		}
		wantError(t, inst.pollDevice(t, "", r.body["device_code"].(string), "client_id", "tv"), 400, "access_denied")

		// Expired.
		r = inst.authorizeDevice(t, "tvc:"+tvcSecret)
		inst.clock.Add(601 * time.Second)
		wantError(t, inst.pollDevice(t, "tvc:"+tvcSecret, r.body["device_code"].(string)), 400, "expired_token")

		// The decisions are audited, with no code in them.
		for _, typ := range []string{"device.approved", "device.denied"} {
			events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: typ})
			if len(events) != 1 || events[0].ClientID != "tv" || events[0].UserID == "" {
				t.Fatalf("%s events: %+v", typ, events)
			}
			if s := jsonOf(events[0]); strings.Contains(s, uc) || strings.Contains(s, strings.ReplaceAll(uc, "-", "")) || strings.Contains(s, dc) {
				t.Fatalf("%s event holds a code: %s", typ, s)
			}
		}
	})
}

func TestDevicePolling_ConfidentialClientWithoutRefresh(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addDeviceClients(t, inst)
		r := inst.authorizeDevice(t, "tvc:"+tvcSecret)
		wantError(t, inst.pollDevice(t, "", r.body["device_code"].(string), "client_id", "tvc"), 401, InvalidClient)
		decideDevice(t, inst, newBrowser(t), r.body["user_code"].(string), "approve")
		tok := inst.pollDevice(t, "tvc:"+tvcSecret, r.body["device_code"].(string))
		if tok.status != 200 || tok.body["id_token"] == nil || tok.body["refresh_token"] != nil {
			t.Fatalf("approved poll = %d %s", tok.status, tok.raw)
		}
	})
}

// Two instances on one store answer one device's polls as one: the slow_down
// state is in the store.
func TestDevicePolling_SlowDownIsSharedAcrossInstances(t *testing.T) {
	backends(t, func(t *testing.T, open func() storage.Store) {
		clk := &clock{t: time.Now().Truncate(time.Second)}
		a := newInstance(t, open(), clk, true)
		b := newInstanceBehind(t, open(), clk, false, a.url, slog.LevelDebug)
		addDeviceClients(t, a)
		dc := a.authorizeDevice(t, "", "client_id", "tv").body["device_code"].(string)
		wantError(t, a.pollDevice(t, "", dc, "client_id", "tv"), 400, "authorization_pending")
		clk.Add(time.Second)
		wantError(t, b.pollDevice(t, "", dc, "client_id", "tv"), 400, "slow_down")
		clk.Add(9 * time.Second) // 9 s since b's poll; the interval is 10 s now
		wantError(t, a.pollDevice(t, "", dc, "client_id", "tv"), 400, "slow_down")
		clk.Add(15 * time.Second)
		wantError(t, b.pollDevice(t, "", dc, "client_id", "tv"), 400, "authorization_pending")
	})
}

func TestDevicePage_CodesAndLimits(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addDeviceClients(t, inst)
		u := inst.issuer("acme") + devicePath
		b := newBrowser(t)
		p := b.get(u)
		if p.status != 200 || !strings.Contains(p.body, `name="user_code"`) || !strings.Contains(p.body, "/static/latchkey.css") ||
			p.header.Get("X-Frame-Options") != "DENY" || !strings.Contains(p.header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("device page = %d %v\n%s", p.status, p.header, p.body)
		}
		// Wrong codes are told apart from nothing, then throttled per address.
		for i := range userCodeLimits.IPFailures {
			wrong := b.submit(p, u, "user_code", "BCDF-GHJK")
			if i < userCodeLimits.IPFailures-1 && (wrong.status != 400 || !strings.Contains(wrong.body, "wrong or has expired")) {
				t.Fatalf("wrong code %d = %d\n%s", i, wrong.status, wrong.body)
			}
		}
		locked := b.submit(p, u, "user_code", "BCDF-GHJK")
		if locked.status != 429 || !strings.Contains(locked.body, "Too many wrong codes. Try again in") || locked.header.Get("Retry-After") == "" {
			t.Fatalf("after %d wrong codes = %d\n%s", userCodeLimits.IPFailures, locked.status, locked.body)
		}
		// Even a right code waits out the lock.
		r := inst.authorizeDevice(t, "", "client_id", "tv")
		uc := r.body["user_code"].(string)
		if p := b.submit(p, u, "user_code", uc); p.status != 429 {
			t.Fatalf("right code while locked = %d", p.status)
		}
		inst.clock.Add(time.Hour) // the lock is over, the code expired
		p = b.get(u)
		if p := b.submit(p, u, "user_code", uc); p.status != 400 || !strings.Contains(p.body, "wrong or has expired") {
			t.Fatalf("expired code = %d\n%s", p.status, p.body)
		}
		uc = inst.authorizeDevice(t, "", "client_id", "tv").body["user_code"].(string)
		// Lower case without the dash is the same code; a used one says so.
		if p := b.submit(p, u, "user_code", strings.ToLower(strings.ReplaceAll(uc, "-", ""))); !strings.Contains(p.body, `name="password"`) ||
			!strings.Contains(p.body, "Living Room TV") {
			t.Fatalf("lower-case code = %d\n%s", p.status, p.body)
		}
		decideDevice(t, inst, b, uc, "approve")
		if p := b.submit(p, u, "user_code", uc); p.status != 400 || !strings.Contains(p.body, "already been used") {
			t.Fatalf("used code = %d\n%s", p.status, p.body)
		}
		// A form from another browser (its CSRF value) is refused.
		other := newBrowser(t)
		if p := other.submit(b.get(u), u, "user_code", uc); p.status != 403 {
			t.Fatalf("foreign form = %d\n%s", p.status, p.body)
		}
	})
}

// A poll that redeems with a DPoP proof binds the access token to its key, and
// a public client's family too (its refresh tokens); a confidential client's
// family stays bound to the client alone.
func TestDevicePolling_DPoPBindsThePublicClientsFamily(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		addDeviceClients(t, inst)
		g := grants.DeviceCode(grants.Deps{Tokens: inst.tokens, Store: inst.store, Now: inst.clock.Now,
			Caller: func(*http.Request) token.Caller { return token.Caller{IP: "192.0.2.1"} }})
		realm, err := inst.store.GetRealm(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			client, basic, wantFamilyJKT string
		}{{"tv", "", "jkt-tv"}, {"tvc", "tvc:" + tvcSecret, ""}} {
			client, err := inst.store.GetClient(t.Context(), "acme", c.client)
			if err != nil {
				t.Fatal(err)
			}
			r := inst.authorizeDevice(t, c.basic, "client_id", c.client)
			decideDevice(t, inst, newBrowser(t), r.body["user_code"].(string), "approve")
			req := grants.Request{Realm: realm, Client: client, HTTP: httptest.NewRequest("POST", "/", nil),
				Form: form("device_code", r.body["device_code"].(string)), DPoP: &dpop.Proof{JKT: "jkt-" + c.client}}
			resp, err := g.Token(t.Context(), req)
			if err != nil || resp.TokenType != "DPoP" {
				t.Fatalf("%s: poll with a proof = %+v, %v", c.client, resp, err)
			}
			_, claims := verifyLocally(t, fetchJWKS(t, inst, "acme"), resp.AccessToken)
			if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != "jkt-"+c.client {
				t.Fatalf("%s: access token cnf = %v", c.client, claims["cnf"])
			}
			fam, err := inst.store.GetFamily(t.Context(), claims["fid"].(string))
			if err != nil || fam.JKT != c.wantFamilyJKT {
				t.Fatalf("%s: family JKT = %q, %v; want %q", c.client, fam.JKT, err, c.wantFamilyJKT)
			}
		}
	})
}

// However many polls race for an approved grant, across two instances on one
// store, exactly one gets the tokens; and however many Approve and Deny clicks
// race, exactly one decision is made.
func TestDeviceGrant_RacesHaveOneWinner(t *testing.T) {
	backends(t, func(t *testing.T, open func() storage.Store) {
		clk := &clock{t: time.Now().Truncate(time.Second)}
		a := newInstance(t, open(), clk, true)
		b := newInstanceBehind(t, open(), clk, false, a.url, slog.LevelError)
		addDeviceClients(t, a)
		insts := []*instance{a, b}
		browser := newBrowser(t)
		for _, n := range []int{2, 5, 100} {
			// Decisions: n clicks on one confirmation page, Approve and Deny mixed.
			r := a.authorizeDevice(t, "", "client_id", "tv")
			uc := r.body["user_code"].(string)
			u := a.issuer("acme") + devicePath
			p := browser.submit(browser.get(u), u, "user_code", uc)
			if strings.Contains(p.body, `name="password"`) {
				p = browser.submit(p, u, "username", "alice", "password", "alice-password-1")
			}
			reqs := make([]*http.Request, n)
			for i := range reqs {
				decision := []string{"approve", "deny"}[i%2]
				reqs[i] = browser.formRequest(p, insts[i%2].url, "decision", decision)
				reqs[i].Header.Set("Sec-Fetch-Site", "same-origin")
			}
			before := decisionsAudited(t, a)
			decided := race(t, n, func(i int) bool {
				res, err := browser.client.Do(reqs[i])
				if err != nil {
					t.Error(err)
					return false
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res.StatusCode == 200 && (strings.Contains(string(body), "Device connected") || strings.Contains(string(body), "Request denied"))
			})
			if decided != 1 {
				t.Fatalf("%d racing decisions: %d made", n, decided)
			}
			if audited := decisionsAudited(t, a) - before; audited != 1 {
				t.Fatalf("%d racing decisions: %d audited, want 1", n, audited)
			}

			// Polls: n at once on an approved grant.
			r = a.authorizeDevice(t, "", "client_id", "tv")
			decideDevice(t, a, browser, r.body["user_code"].(string), "approve")
			clk.Add(time.Minute)
			dc := r.body["device_code"].(string)
			won := race(t, n, func(i int) bool {
				res := post(t, insts[i%2].tokenURL("acme"), "", form("grant_type", deviceGrant, "device_code", dc, "client_id", "tv"))
				return res.status == 200
			})
			if won != 1 {
				t.Fatalf("%d racing polls: %d got tokens", n, won)
			}
			clk.Add(time.Minute)
		}
	})
}

// race runs fn(0..n-1) at once and counts the true results.
func race(t *testing.T, n int, fn func(i int) bool) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := 0
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			if fn(i) {
				mu.Lock()
				count++
				mu.Unlock()
			}
		}()
	}
	close(gate)
	wg.Wait()
	return count
}

// decisionsAudited counts the device decisions in the audit trail.
func decisionsAudited(t *testing.T, inst *instance) int {
	t.Helper()
	n := 0
	for _, typ := range []string{"device.approved", "device.denied"} {
		events, err := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		n += len(events)
	}
	return n
}

// Wrong codes from many addresses lock the realm's code form too: a user code
// has only about 34 bits, and a botnet has many addresses.
func TestDevicePage_WrongCodesLockTheRealm(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "latchkey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inst := newInstance(t, st, &clock{t: time.Now().Truncate(time.Second)}, true)
	pages, err := web.NewPages()
	if err != nil {
		t.Fatal(err)
	}
	// This instance is behind a proxy on loopback, which names the client.
	h := New(Config{Store: inst.store, Tokens: inst.tokens, Keys: inst.keys, Secrets: clientsecret.NewHasher(masterKey),
		MasterKey: masterKey, Pages: pages, Limiter: web.NewLimiter(inst.store, "login", web.LimiterConfig{}, inst.clock.Now),
		Log: slog.New(slog.DiscardHandler), BaseURL: inst.url, Now: inst.clock.Now,
		ClientIP: realip.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})})
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u := srv.URL + "/realms/acme" + devicePath
	b := newBrowser(t)
	p := b.get(u)
	try := func(i int) page {
		req := b.formRequest(p, u, "user_code", "BCDF-GHJK")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		return b.do(req)
	}
	for i := range userCodeLimits.AccountFailures - 1 {
		if r := try(i); r.status != 400 || !strings.Contains(r.body, "wrong or has expired") {
			t.Fatalf("wrong code from address %d = %d\n%s", i, r.status, r.body)
		}
	}
	if r := try(100); r.status != 429 { // the failure that locks says so
		t.Fatalf("wrong code %d in the realm = %d", userCodeLimits.AccountFailures, r.status)
	}
	if r := try(200); r.status != 429 || !strings.Contains(r.body, "Too many wrong codes") {
		t.Fatalf("a fresh address after %d wrong codes in the realm = %d\n%s", userCodeLimits.AccountFailures, r.status, r.body)
	}
	// The realm's lock is short, as anyone can cause it: then a right code goes through.
	addDeviceClients(t, inst)
	uc := inst.authorizeDevice(t, "", "client_id", "tv").body["user_code"].(string)
	inst.clock.Add(userCodeLimits.AccountMaxLock)
	p = b.get(u)
	req := b.formRequest(p, u, "user_code", uc)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("X-Forwarded-For", "198.51.100.201")
	if r := b.do(req); r.status != 200 || !strings.Contains(r.body, `name="password"`) {
		t.Fatalf("a right code after the realm's lock = %d\n%s", r.status, r.body)
	}
}
