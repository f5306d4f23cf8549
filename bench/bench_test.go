package bench

import (
	"crypto/rand"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHistogram_PercentilesOfKnownDataAreWithinOnePercent(t *testing.T) {
	var h Histogram
	// 1 µs .. 100 ms in 1 µs steps.
	const n = 100_000
	for i := n; i >= 1; i-- {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	if h.Count() != n || h.Max() != n*time.Microsecond {
		t.Fatalf("count %d max %v", h.Count(), h.Max())
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 99900 * time.Microsecond}, {1, 100 * time.Millisecond}} {
		got := h.Percentile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.01 {
			t.Errorf("p%g = %v, want %v within 1%% (off by %.2f%%)", tc.q*100, got, tc.want, rel*100)
		}
	}
}

func TestHistogram_SmallAndHugeValues(t *testing.T) {
	var h Histogram
	if h.Percentile(0.5) != 0 {
		t.Fatal("an empty histogram has no percentiles")
	}
	for _, v := range []time.Duration{0, 1, 127, 128, 129} {
		h.Record(v)
	}
	if got := h.Percentile(0.2); got != 0 {
		t.Errorf("p20 = %v, want 0 (exact below 128 ns)", got)
	}
	if got := h.Percentile(0.6); got != 127 {
		t.Errorf("p60 = %v, want 127ns", got)
	}
	h.Record(time.Hour) // beyond the last bucket: still counted, max exact
	if h.Max() != time.Hour || h.Percentile(1) != time.Hour {
		t.Errorf("max %v p100 %v, want 1h", h.Max(), h.Percentile(1))
	}
	for i := range numBuckets {
		lo, w := bucketRange(i)
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d holds [%d, %d) but values map to %d and %d", i, lo, lo+w, bucketOf(lo), bucketOf(lo+w-1))
		}
	}
}

func TestParseStat_CountsFieldsFromTheLastParenthesis(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "4242 (latch key) (x)) S 1 4242 4242 0 -1 4194560 1520 0 0 0 250 75 0 0 20 0 12 0 4107 1310720000 7400 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStat([]byte(line))
	if err != nil || got != 3250*time.Millisecond {
		t.Fatalf("parseStat = %v, %v; want 3.25s (250+75 ticks)", got, err)
	}
	for _, bad := range []string{"", "4242 latchkey S 1", "4242 (latchkey) S 1 2 3", "4242 (l) S 1 4242 4242 0 -1 4194560 1520 0 0 0 x 75 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestParseStatus_ReadsRSSAndHighWaterMark(t *testing.T) {
	status := "Name:\tlatchkey\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1282048 kB\nVmSize:\t 1281024 kB\nVmHWM:\t   76000 kB\nVmRSS:\t   29696 kB\nRssAnon:\t   20000 kB\nThreads:\t12\n"
	rss, hwm, err := parseStatus([]byte(status))
	if err != nil || rss != 29696<<10 || hwm != 76000<<10 {
		t.Fatalf("parseStatus = %d, %d, %v", rss, hwm, err)
	}
	if mib(rss) != 29 {
		t.Errorf("29696 kB = %v MiB, want 29", mib(rss))
	}
	for _, bad := range []string{"Name:\tkthreadd\nState:\tS\n", "VmHWM:\t1 kB\nVmRSS:\tlots kB\n", "VmHWM:\t1 kB\nVmRSS:\t1 MB\n"} {
		if _, _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q) succeeded", bad)
		}
	}
}

// forgetful is a token server that answers every call with 200 but forgets
// revocations and never rotates refresh tokens: the faults the scenarios exist to catch.
func forgetful(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, _, ok := r.BasicAuth(); !ok || id != "c" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.ParseForm()
		switch r.URL.Path {
		case "/token":
			res := map[string]any{"access_token": rand.Text(), "expires_in": 300}
			if rt := r.PostForm.Get("refresh_token"); rt != "" {
				res["refresh_token"] = rt // not rotated
			}
			json.NewEncoder(w).Encode(res)
		case "/introspect":
			w.Write([]byte(`{"active":true}`))
		case "/revoke":
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fakeConfig(srv *httptest.Server, scenario string) Config {
	return Config{
		Scenario: scenario, TokenURL: srv.URL + "/token", IntrospectURL: srv.URL + "/introspect", RevokeURL: srv.URL + "/revoke",
		ClientID: "c", ClientSecret: "s", Duration: 300 * time.Millisecond, Connections: 2, Timeout: 5 * time.Second, Pool: 10,
	}
}

func TestRevokeIntrospect_CountsRevokedTokensThatStayActive(t *testing.T) {
	cfg := fakeConfig(forgetful(t), RevokeIntrospect)
	cfg.RevokeRatio = 1
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Every step is revoke (ok), introspect (still active: an error), mint (ok).
	n := r.ErrorsByKind["revoked_still_active"]
	if n == 0 || len(r.ErrorsByKind) != 1 || r.OK != 2*n || r.Requests != 3*n {
		t.Fatalf("report = %+v", r)
	}
}

func TestRefresh_AChainThatDoesNotRotateStopsItsClient(t *testing.T) {
	cfg := fakeConfig(forgetful(t), Refresh)
	cfg.Clients = 3
	cfg.RefreshTokens = []string{"a", "b", "c", "d"}
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each of the 3 clients fails once and stops; the fourth token is never used.
	if r.Requests != 3 || r.OK != 0 || r.ErrorsByKind["rotation_failed"] != 3 {
		t.Fatalf("report = %+v", r)
	}
}

func TestRun_RefusesBadConfigAndUnreachableServers(t *testing.T) {
	srv := forgetful(t)
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"unknown scenario", func(c *Config) { c.Scenario = "login" }, `unknown scenario "login"`},
		{"bad auth", func(c *Config) { c.Auth = "jwt" }, `--auth "jwt"`},
		{"no endpoint", func(c *Config) { c.TokenURL = "" }, "give --issuer or --token-url"},
		{"small pool", func(c *Config) { c.Scenario, c.Pool = Introspect, 1 }, "--pool 1 is smaller than --connections 2"},
		{"too few refresh tokens", func(c *Config) { c.Scenario, c.RefreshTokens = Refresh, []string{"a"} }, "1 refresh tokens for 2 clients"},
		{"no such process", func(c *Config) { c.PID = math.MaxInt32 }, "--pid: server process"},
		{"unreachable", func(c *Config) { c.TokenURL = "http://127.0.0.1:1/token" }, "cannot reach the server"},
		{"unreachable issuer", func(c *Config) { c.Issuer = "http://127.0.0.1:1/realms/x" }, "cannot reach the server"},
		{"bad credentials", func(c *Config) { c.Scenario, c.ClientID = Introspect, "nobody" }, "filling the token pool: token endpoint answered HTTP 401"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeConfig(srv, ClientCredentials)
			tc.edit(&cfg)
			_, err := Run(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRefresh_AllowUnrotatedDrivesANonRotatingServer(t *testing.T) {
	cfg := fakeConfig(forgetful(t), Refresh)
	cfg.Clients = 2
	cfg.RefreshTokens = []string{"a", "b"}
	cfg.AllowUnrotated = true
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.OK != r.Requests || len(r.ErrorsByKind) != 0 {
		t.Fatalf("a non-rotating server with --allow-unrotated: %+v", r)
	}
}
