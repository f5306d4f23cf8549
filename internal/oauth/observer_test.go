package oauth

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// Lockouts and throttling reach the observer: a client's tenth failure locks it
// and an account's fifth failed login locks it; the refusals unchecked after
// them count as throttled.
func TestObserver_CountsLockoutsAndThrottling(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "observed.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Now().Truncate(time.Second)}
	met := metrics.New(prometheus.NewRegistry(), clk.Now)
	inst := newInstanceObserved(t, st, clk, true, "", slog.LevelInfo, met)

	cc := form("grant_type", "client_credentials")
	for range 9 {
		wantError(t, post(t, inst.tokenURL("acme"), "svc:svc-wrong-0123456789abcdefghijklmnopqrs", cc), 401, protocol.InvalidClient)
	}
	wantError(t, post(t, inst.tokenURL("acme"), "svc:svc-wrong-0123456789abcdefghijklmnopqrs", cc), 429, protocol.InvalidClient)
	wantError(t, post(t, inst.tokenURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", cc), 429, protocol.InvalidClient)

	b := newBrowser(t)
	u := authURL(inst, "acme")
	for i := range 6 {
		p := b.submit(b.get(u), u, "username", "alice", "password", "not-alices-password")
		if want := map[bool]int{true: 401, false: 429}[i < 4]; p.status != want {
			t.Fatalf("login %d = %d, want %d", i+1, p.status, want)
		}
	}

	rec := httptest.NewRecorder()
	met.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`latchkey_token_requests_total{grant="client_credentials",outcome="invalid_client"} 11`,
		`latchkey_lockouts_total{limiter="client_auth"} 1`,
		`latchkey_client_auth_throttled_total 2`,
		`latchkey_audit_events_total{type="client_auth.throttled"} 1`,
		`latchkey_logins_total{result="failure"} 5`,
		`latchkey_logins_total{result="throttled"} 1`,
		`latchkey_lockouts_total{limiter="login"} 1`,
		`latchkey_audit_events_total{type="login.failed"} 5`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s", want)
		}
	}
}
