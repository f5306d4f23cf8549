package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Unknown realm names in the path and unknown client IDs in the form, the Basic
// header and the authorization request, each long and never seen before, are
// refused without the server keeping anything of them: 20 000 of them move its
// resident memory by less than 10 MiB, and each gets the answer an unknown name
// gets.
func TestBounds_UnknownLongIdentifiersDoNotGrowMemory(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		flood(t, s, "warm", 2000) // the heap, the connection pool and the caches settle
		before := s.rss()
		flood(t, s, "load", 20000)
		after := s.rss()
		t.Logf("RSS %d MiB -> %d MiB", before>>20, after>>20)
		if grown := after - before; grown >= 10<<20 {
			t.Fatalf("20 000 requests with unknown long names grew RSS by %d MiB (from %d to %d MiB); want < 10 MiB",
				grown>>20, before>>20, after>>20)
		}
	})
}

// flood sends n requests, a quarter of each kind, from a few goroutines over
// kept-alive connections, each with a unique 4-8 KiB unknown realm name or client
// ID, and checks every answer.
func flood(t *testing.T, s *server, tag string, n int) {
	t.Helper()
	const workers = 4
	filler := strings.Repeat("abcdefghij", 820) // 8 200 characters
	// long returns a unique name of 4 096 to 8 191 characters, of letters and digits.
	long := func(i int) string {
		return fmt.Sprintf("%s%d%s", tag, i, filler[:4096+(i*7919)%4096])
	}
	var next atomic.Int64
	var failed atomic.Bool
	var mu sync.Mutex
	var firstErr string
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			mu.Lock()
			firstErr = fmt.Sprintf(format, args...)
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := long(i)
				var req *http.Request
				switch i % 4 {
				case 0: // an unknown realm
					req, _ = http.NewRequest("GET", s.issuer(name)+"/.well-known/openid-configuration", nil)
				case 1: // an unknown client in the form
					req, _ = http.NewRequest("POST", s.tokenURL(), strings.NewReader(
						form("grant_type", "client_credentials", "client_id", name, "client_secret", webSecret).Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				case 2: // an unknown client in the Basic header
					req, _ = http.NewRequest("POST", s.tokenURL(), strings.NewReader(form("grant_type", "client_credentials").Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(name)+":"+webSecret)))
				case 3: // an unknown client in the authorization request
					req, _ = http.NewRequest("GET", s.authURL(name), nil)
				}
				res, err := client.Do(req)
				if err != nil {
					fail("request %d: %v", i, err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var e struct{ Error string }
				json.Unmarshal(body, &e)
				switch i % 4 {
				case 0:
					if res.StatusCode != 404 || e.Error != "not_found" {
						fail("unknown realm: %d %.200s; want 404 not_found", res.StatusCode, body)
					}
				case 1, 2:
					// After 20 failures the address is throttled: 429, still invalid_client.
					throttled := res.StatusCode == 429 && res.Header.Get("Retry-After") != ""
					if (res.StatusCode != 401 && !throttled) || e.Error != "invalid_client" {
						fail("unknown client (kind %d): %d %.200s; want 401 (or 429 throttled) invalid_client", i%4, res.StatusCode, body)
					}
					if i%4 == 2 && !throttled && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
						fail("unknown client in Basic: no WWW-Authenticate: Basic")
					}
				case 3:
					if res.StatusCode != 400 || !strings.Contains(string(body), "Unknown application") {
						fail("authorization request of an unknown client: %d %.200s; want the 400 error page", res.StatusCode, body)
					}
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		t.Fatal(firstErr)
	}
}

// Overlong login names and tokens get the answers any wrong one gets, and the
// login page does not echo a name no account can have.
func TestBounds_OverlongLoginNamesAndTokensGetTheUsualAnswers(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		longName := strings.Repeat("n", 300) + "@example.com"
		b := newBrowser(t)
		u := s.authURL("web")
		p := b.do(b.loginRequest(b.get(u), u, "username", longName, "password", alicePass))
		if p.status != 401 || !strings.Contains(p.body, "Invalid username or password.") {
			t.Fatalf("login with a %d-character name = %d; want 401 and the usual message:\n%.500s", len(longName), p.status, p.body)
		}
		if strings.Contains(p.body, longName[:100]) {
			t.Fatal("the login page echoes a name no account can have")
		}

		long := strings.Repeat("A", 17<<10) // over the 16 KiB a token may have
		wantInactive(t, "an overlong token", s.introspect(t, svcBasic, long))
		if r := post(t, s.revokeURL(), webBasic, form("token", long)); r.status != 200 {
			t.Fatalf("revoking an overlong token = %d %s; want 200 (RFC 7009 §2.2)", r.status, r.raw)
		}
		if r := s.refresh(t, webBasic, long); !r.invalidGrant() {
			t.Fatalf("refresh with an overlong token = %d %s; want 400 invalid_grant", r.status, r.raw)
		}
		if r := s.redeem(t, webBasic, long); !r.invalidGrant() {
			t.Fatalf("redeeming an overlong code = %d %s; want 400 invalid_grant", r.status, r.raw)
		}
		req, _ := http.NewRequest("GET", s.userinfoURL(), nil)
		req.Header.Set("Authorization", "Bearer "+long)
		if r := do(t, req); r.status != 401 || r.str("error") != "invalid_token" {
			t.Fatalf("userinfo with an overlong token = %d %s; want 401 invalid_token", r.status, r.raw)
		}
		logout := s.issuer("acme") + "/protocol/openid-connect/logout?" + url.Values{"id_token_hint": {long}}.Encode()
		if p := newBrowser(t).get(logout); p.status != 400 {
			t.Fatalf("logout with an overlong id_token_hint = %d; want the 400 error page", p.status)
		}
		for _, realm := range []string{strings.Repeat("a", 64), "ACME", "acme.", "ac%20me"} {
			req, _ := http.NewRequest("GET", s.issuer(realm)+"/.well-known/openid-configuration", nil)
			r := do(t, req)
			if r.status != 404 || r.str("error") != "not_found" {
				t.Fatalf("realm %q = %d %s; want 404 not_found", realm, r.status, r.raw)
			}
		}
	})
}
