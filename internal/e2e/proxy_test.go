package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const (
	attackerIP = "203.0.113.7"
	userIP     = "198.51.100.9"
	userIPv6   = "2001:db8::9"
)

// Behind a trusted proxy (the test itself, on 127.0.0.1), the address the proxy
// forwards is the client: 20 failed logins from one forwarded address lock that
// address only, a client-written X-Forwarded-For entry left of the proxy's does
// not move the lock, and audit events and sessions record the forwarded address.
func TestProxy_TrustedProxyLocksOnlyTheForwardedAddress(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, args: []string{"--trusted-proxies", "127.0.0.1/32"}})

		// Distinct unknown usernames, so no account lock is reached, only the
		// per-address one (20 failures). Every other attempt also carries an
		// address the client wrote itself, left of the one the proxy appended.
		for i := range 20 {
			xff := attackerIP
			if i%2 == 1 {
				xff = fmt.Sprintf("192.0.2.%d, %s", i, attackerIP)
			}
			p := proxyLogin(t, s, "X-Forwarded-For", xff, fmt.Sprintf("nobody-%d", i), "wrong-password")
			if p.status != 401 && p.status != 429 {
				t.Fatalf("failed login %d = %d, want 401 or 429", i, p.status)
			}
		}
		// The attacker's address is locked: even the right password is not checked.
		if p := proxyLogin(t, s, "X-Forwarded-For", attackerIP, "alice", alicePass); p.status != 429 {
			t.Fatalf("login from the locked address = %d (location %v), want 429", p.status, p.location)
		}
		// Writing another address in front of the proxy's does not escape the lock.
		if p := proxyLogin(t, s, "X-Forwarded-For", userIP+", "+attackerIP, "alice", alicePass); p.status != 429 {
			t.Fatalf("login with a spoofed X-Forwarded-For = %d (location %v), want 429", p.status, p.location)
		}

		// Other clients behind the same proxy still sign in: by X-Forwarded-For, and
		// by RFC 7239 Forwarded with a quoted, bracketed IPv6 address and a port.
		for _, h := range [][2]string{{"X-Forwarded-For", userIP}, {"Forwarded", `for="[` + userIPv6 + `]:4711";proto=https`}} {
			p := proxyLogin(t, s, h[0], h[1], "alice", alicePass)
			if p.location == nil || p.location.Query().Get("code") == "" {
				t.Fatalf("login with %s: %s = %d, want a redirect with a code:\n%s", h[0], h[1], p.status, p.body)
			}
		}

		st := openStore(t, db)
		failed := proxyAuditIPs(t, st, "login.failed")
		if len(failed) != 20 || slices.ContainsFunc(failed, func(ip string) bool { return ip != attackerIP }) {
			t.Fatalf("login.failed IPs = %v, want 20 × %s", failed, attackerIP)
		}
		if got := proxyAuditIPs(t, st, "login.succeeded"); !proxySameSet(got, userIP, userIPv6) {
			t.Fatalf("login.succeeded IPs = %v, want %s and %s", got, userIP, userIPv6)
		}
		alice, err := st.GetUserByUsername(t.Context(), "acme", "alice")
		if err != nil {
			t.Fatal(err)
		}
		sessions, err := st.ListUserSessions(t.Context(), "acme", alice.ID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, sess := range sessions {
			ips = append(ips, sess.IP)
		}
		if !proxySameSet(ips, userIP, userIPv6) {
			t.Fatalf("session IPs = %v, want %s and %s", ips, userIP, userIPv6)
		}
	})
}

// Without --trusted-proxies the forwarding headers are ignored: changing
// X-Forwarded-For on every attempt does not escape the per-address limit, and
// the audit trail records the TCP peer.
func TestProxy_WithoutTrustedProxiesForwardedForIsIgnored(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		for i := range 20 {
			p := proxyLogin(t, s, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1), fmt.Sprintf("nobody-%d", i), "wrong-password")
			if p.status != 401 && p.status != 429 {
				t.Fatalf("failed login %d = %d, want 401 or 429", i, p.status)
			}
		}
		for _, h := range [][2]string{{"X-Forwarded-For", userIP}, {"Forwarded", "for=" + userIP}} {
			if p := proxyLogin(t, s, h[0], h[1], "alice", alicePass); p.status != 429 {
				t.Fatalf("login with %s: %s = %d (location %v), want 429: the header must not move the client", h[0], h[1], p.status, p.location)
			}
		}
		failed := proxyAuditIPs(t, openStore(t, db), "login.failed")
		if len(failed) != 20 || slices.ContainsFunc(failed, func(ip string) bool { return ip != "127.0.0.1" }) {
			t.Fatalf("login.failed IPs = %v, want 20 × 127.0.0.1", failed)
		}
	})
}

// proxyLogin fetches the login page in a fresh browser and posts the form with
// the forwarding header set, as a proxy in front of Latchkey would send it.
func proxyLogin(t *testing.T, s *server, header, value, username, password string) page {
	t.Helper()
	b := newBrowser(t)
	u := s.authURL("web")
	p := b.get(u)
	if p.status != 200 || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("no login page (%d): %s", p.status, p.body)
	}
	req := b.loginRequest(p, u, "username", username, "password", password)
	req.Header.Set(header, value)
	return b.do(req)
}

// proxyAuditIPs returns the IP of every audit event of the type in realm acme.
func proxyAuditIPs(t *testing.T, st storage.Store, typ string) []string {
	t.Helper()
	events, err := st.ListAudit(t.Context(), storage.AuditFilter{Realm: "acme", Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	ips := make([]string, len(events))
	for i, e := range events {
		ips[i] = e.IP
	}
	return ips
}

// proxySameSet reports whether got holds exactly the distinct values want.
func proxySameSet(got []string, want ...string) bool {
	g := slices.Compact(slices.Sorted(slices.Values(got)))
	return slices.Equal(g, slices.Sorted(slices.Values(want))) && len(got) == len(want)
}
