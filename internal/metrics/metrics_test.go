package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/latchkey/latchkey/storage"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newMetrics(t *testing.T) (*Metrics, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	return New(prometheus.NewRegistry(), clk.Now), clk
}

// count is how many series the named metric has.
func count(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(m.reg, namespace+"_"+name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTokenRequest_ValuesOutsideTheSetsAddNoSeries(t *testing.T) {
	m, _ := newMetrics(t)
	want := len(grants) * len(outcomes)
	m.TokenRequest("client_credentials", "success")
	m.TokenRequest("urn:ietf:params:oauth:grant-type:jwt-bearer", "invalid_grant")
	m.TokenRequest("lk_rt_secretvalue", "a-new-code")
	m.TokenRequest("refresh_token", "made_up")
	if got := count(t, m, "token_requests_total"); got != want {
		t.Fatalf("%d series, want the fixed %d", got, want)
	}
	for _, c := range []struct {
		grant, outcome string
		want           float64
	}{
		{"client_credentials", "success", 1},
		{"unsupported", "invalid_grant", 1},
		{"unsupported", other, 1},
		{"refresh_token", other, 1},
	} {
		if got := testutil.ToFloat64(m.tokenRequests[[2]string{c.grant, c.outcome}]); got != c.want {
			t.Errorf("%s/%s = %v, want %v", c.grant, c.outcome, got, c.want)
		}
	}
}

func TestRequest_RoutesAreBoundedAndNeverEmpty(t *testing.T) {
	m, _ := newMetrics(t)
	m.Request("", time.Millisecond)
	m.Request("POST /realms/{realm}/protocol/openid-connect/token", time.Millisecond)
	m.Request("POST /realms/{realm}/protocol/openid-connect/token", 2*time.Millisecond)
	for i := range 3 * maxRoutes {
		m.Request(fmt.Sprintf("GET /r%d", i), time.Millisecond)
	}
	if got := count(t, m, "http_request_duration_seconds"); got != maxRoutes {
		t.Fatalf("%d routes, want at most %d", got, maxRoutes)
	}
	body := scrapeText(t, m)
	for _, want := range []string{
		`latchkey_http_request_duration_seconds_count{route="POST /realms/{realm}/protocol/openid-connect/token"} 2`,
		// the empty pattern, and every route past the cap
		fmt.Sprintf(`latchkey_http_request_duration_seconds_count{route="unmatched"} %d`, 1+3*maxRoutes-(maxRoutes-2)),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s", want)
		}
	}
}

func scrapeText(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// The counting on request paths allocates nothing.
func TestHotPathsDoNotAllocate(t *testing.T) {
	m, _ := newMetrics(t)
	st := m.Store(fakeStore{})
	m.Request("GET /x", time.Millisecond) // first sight of a route may allocate; later ones not
	ctx := context.Background()
	for name, f := range map[string]func(){
		"TokenRequest": func() { m.TokenRequest("client_credentials", "invalid_client") },
		"Issued":       func() { m.Issued("access_jwt") },
		"Rotated":      m.Rotated,
		"Introspected": func() { m.Introspected(true) },
		"Request":      func() { m.Request("GET /x", time.Millisecond) },
		"store call":   func() { st.GetRealm(ctx, "acme") },
		"Audited":      func() { m.Audited(storage.AuditEvent{Type: "refresh_family.revoked"}) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times", name, n)
		}
	}
}

func TestAudited_CountsTypesReuseAndRevocations(t *testing.T) {
	m, _ := newMetrics(t)
	for _, c := range []struct {
		event        storage.AuditEvent
		kind, source string // "" when no revocation
	}{
		{storage.AuditEvent{Type: "refresh_family.revoked"}, "family", "client"}, // RFC 7009
		{storage.AuditEvent{Type: "refresh_family.revoked", Details: map[string]string{"reason": "ended by user"}}, "family", "user"},
		{storage.AuditEvent{Type: "access_token.revoked", Details: map[string]string{"jti": "x"}}, "access_token", "client"},
		{storage.AuditEvent{Type: "refresh_token.reuse_detected"}, "family", "reuse"},
		{storage.AuditEvent{Type: "authorization_code.replayed"}, "family", "reuse"},
		{storage.AuditEvent{Type: "session.ended", Details: map[string]string{"reason": "logout"}}, "session", "logout"},
		{storage.AuditEvent{Type: "session.ended", Details: map[string]string{"reason": "something new"}}, "session", other},
		{storage.AuditEvent{Type: "user.logout_everywhere"}, "user", "user"},
		{storage.AuditEvent{Type: "user.disabled", Details: map[string]string{"by": "seed"}}, "user", "seed"},
		{storage.AuditEvent{Type: "user.password_changed", Details: map[string]string{"by": "admin"}}, "user", "admin"},
		{storage.AuditEvent{Type: "client.disabled", Details: map[string]string{"by": "alice@example.com"}}, "client", other},
		{storage.AuditEvent{Type: "login.failed", UserID: "u1", IP: "192.0.2.1"}, "", ""},
	} {
		before := map[[2]string]float64{}
		for k, c := range m.revocations {
			before[k] = testutil.ToFloat64(c)
		}
		m.Audited(c.event)
		for k, counter := range m.revocations {
			want := before[k]
			if k == [2]string{c.kind, c.source} {
				want++
			}
			if got := testutil.ToFloat64(counter); got != want {
				t.Errorf("%s %v: revocations%v = %v, want %v", c.event.Type, c.event.Details, k, got, want)
			}
		}
	}
	m.Audited(storage.AuditEvent{Type: "something.unheard_of"})
	for typ, want := range map[string]float64{"refresh_family.revoked": 2, "session.ended": 2, "login.failed": 1, other: 1} {
		if got := testutil.ToFloat64(m.audit[typ]); got != want {
			t.Errorf("audit %s = %v, want %v", typ, got, want)
		}
	}
	if got := testutil.ToFloat64(m.reuse["refresh_token"]) + testutil.ToFloat64(m.reuse["authorization_code"]); got != 2 {
		t.Errorf("reuse detections = %v, want 2", got)
	}
	if got := count(t, m, "audit_events_total"); got != len(auditKinds)+1 {
		t.Errorf("%d audit series, want %d", got, len(auditKinds)+1)
	}
}

// fakeStore answers what a test sets; any other method panics (nil Store).
type fakeStore struct {
	storage.Store
	err error
}

func (f fakeStore) GetRealm(ctx context.Context, name string) (storage.Realm, error) {
	return storage.Realm{}, f.err
}

func (f fakeStore) AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error) {
	return 1, f.err
}

func TestStore_CountsFailuresNotAnswers(t *testing.T) {
	m, _ := newMetrics(t)
	ctx := context.Background()
	for _, err := range []error{nil, storage.ErrNotFound, fmt.Errorf("get: %w", storage.ErrUnavailable), errors.New("disk on fire")} {
		m.Store(fakeStore{err: err}).GetRealm(ctx, "acme")
	}
	if got := testutil.ToFloat64(m.storeErrors.WithLabelValues("GetRealm", "unavailable")); got != 1 {
		t.Errorf("unavailable = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.storeErrors.WithLabelValues("GetRealm", other)); got != 1 {
		t.Errorf("other = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.storeErrors); got != 2*len(opNames) {
		t.Errorf("%d error series, want %d", got, 2*len(opNames))
	}

	// Audit events are counted once stored, not when the store refused them.
	m.Store(fakeStore{}).AppendAudit(ctx, storage.AuditEvent{Type: "login.failed"})
	m.Store(fakeStore{err: storage.ErrUnavailable}).AppendAudit(ctx, storage.AuditEvent{Type: "login.failed"})
	if got := testutil.ToFloat64(m.audit["login.failed"]); got != 1 {
		t.Errorf("login.failed = %v, want 1", got)
	}
}

func TestAges_ReadTheClock(t *testing.T) {
	m, clk := newMetrics(t)
	m.WatchDenyList(func() int { return 7 })
	created := clk.t.Add(-time.Hour)
	m.WatchSigningKeys(func() []SigningKey {
		return []SigningKey{{Realm: "acme", Alg: "ES256", CreatedAt: created}}
	})
	clk.t = clk.t.Add(5 * time.Second)
	m.DenyListSynced()
	clk.t = clk.t.Add(3 * time.Second)
	want := `
# HELP latchkey_denylist_entries Revoked access tokens held in the in-memory deny-list.
# TYPE latchkey_denylist_entries gauge
latchkey_denylist_entries 7
# HELP latchkey_denylist_sync_age_seconds Seconds since the deny-list was last brought up to date: the change feed read to its end, or the list reloaded (since start, before either).
# TYPE latchkey_denylist_sync_age_seconds gauge
latchkey_denylist_sync_age_seconds 3
# HELP latchkey_signing_key_age_seconds Age of the key currently signing, per realm and algorithm (realms whose keys this instance has loaded).
# TYPE latchkey_signing_key_age_seconds gauge
latchkey_signing_key_age_seconds{alg="ES256",realm="acme"} 3608
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"latchkey_denylist_entries", "latchkey_denylist_sync_age_seconds", "latchkey_signing_key_age_seconds"); err != nil {
		t.Fatal(err)
	}
}

func TestHandler_ServesTheTextFormat(t *testing.T) {
	m, _ := newMetrics(t)
	m.Rotated()
	body := scrapeText(t, m)
	for _, want := range []string{"latchkey_refresh_rotations_total 1", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
}
