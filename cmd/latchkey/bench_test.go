package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/bench"
	"github.com/latchkey/latchkey/internal/token"
)

// Every scenario runs against a real dev server without a single error, and the
// report carries the figures, /proc ones included (this test's own process stands
// in for the server's: it is the server).
func TestBench_EveryScenarioRunsCleanAgainstADevServer(t *testing.T) {
	dataDir := t.TempDir()
	s := startServe(t, env(), "--dev", "--data-dir", dataDir)
	var creds devCredentials
	b, err := os.ReadFile(filepath.Join(dataDir, devCredsFile))
	if err != nil || json.Unmarshal(b, &creds) != nil {
		t.Fatalf("dev credentials: %v", err)
	}
	issuer := "http://" + s.addr + "/realms/dev"

	// Minted while the server runs: SQLite's WAL lets both open the store.
	tokens := filepath.Join(t.TempDir(), "refresh.txt")
	code, out, errOut := runCLI(t, env(), "bench", "mint-refresh", "--data-dir", dataDir, "--realm", "dev",
		"--client", "demo-web", "--user", "demo", "--count", "6", "--audience", issuer, "--out", tokens)
	if code != 0 || out != "" || !strings.Contains(errOut, "minted 6 refresh tokens") {
		t.Fatalf("mint-refresh = %d %q %q", code, out, errOut)
	}
	b, _ = os.ReadFile(tokens)
	minted := strings.Fields(string(b))
	if info, err := os.Stat(tokens); err != nil || info.Mode().Perm() != 0o600 || len(minted) != 6 {
		t.Fatalf("token file: %d tokens, %v, %v", len(minted), info.Mode(), err)
	}

	common := []string{"--issuer", issuer, "--client-id", "demo-web", "--client-secret", creds.ClientSecret,
		"--duration", "1s", "--warmup", "200ms", "--connections", "4", "--pid", strconv.Itoa(os.Getpid()), "--json", "--label", "smoke"}
	extra := map[string][]string{
		bench.Refresh:          {"--refresh-tokens", tokens, "--clients", "5", "--auth", "post"},
		bench.Introspect:       {"--pool", "40"},
		bench.RevokeIntrospect: {"--pool", "40", "--revoke-ratio", "0.5"},
	}
	for _, sc := range bench.Scenarios {
		t.Run(sc, func(t *testing.T) {
			code, out, errOut := runCLI(t, env(), append(append([]string{"bench", sc}, common...), extra[sc]...)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var r bench.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil || strings.Count(out, "\n") != 1 {
				t.Fatalf("not one JSON object: %v\n%s", err, out)
			}
			l := r.LatencyMS
			switch {
			case r.Scenario != sc || r.Label != "smoke" || r.Connections != 4 || r.DurationS != 1:
				t.Errorf("echoed fields wrong: %s", out)
			case r.Requests == 0 || r.OK != r.Requests || len(r.ErrorsByKind) != 0 || r.WarmupErrors != 0:
				t.Errorf("want requests and no errors: %s", out)
			case r.RPS <= 0 || l.P50 <= 0 || l.P90 < l.P50 || l.P99 < l.P90 || l.Max < l.P99:
				t.Errorf("throughput or latency unset: %s", out)
			case r.Server == nil || r.CPUS <= 0 || r.RPSPerCPUS <= 0 || r.PeakRSSMiB <= 0 || r.HWMRSSMiB < r.PeakRSSMiB:
				t.Errorf("server usage unset: %s", out)
			}
		})
	}

	// The refresh run really rotated: the five chains' first tokens are spent, the sixth is not.
	st := openSQLite(t, filepath.Join(dataDir, "latchkey.db"))
	for i, v := range minted {
		rt, err := st.GetRefreshToken(t.Context(), token.Hash(v))
		if err != nil || rt.UsedAt.IsZero() != (i == 5) {
			t.Errorf("minted token %d: used at %v, %v", i, rt.UsedAt, err)
		}
	}
	// The revoke-introspect run really revoked (JWT access tokens go on the deny-list).
	denied, err := st.ListDeniedJWTs(t.Context(), "dev", time.Now())
	if err != nil || len(denied) == 0 {
		t.Errorf("nothing was revoked: %d, %v", len(denied), err)
	}

	// The table form is for people.
	code, out, _ = runCLI(t, env(), append([]string{"bench", "client-credentials"}, common[:len(common)-3]...)...)
	for _, want := range []string{"client-credentials", "errors         none", "latency", "server cpu", "server memory"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestBench_BadInputIsOneLineAndExitOne(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "accepts 1 arg(s), received 0"},
		{[]string{"bench", "login", "--token-url", "http://127.0.0.1:1/t", "--client-id", "c"}, `unknown scenario "login"`},
		{[]string{"bench", "client-credentials", "--token-url", "http://127.0.0.1:1/t", "--client-id", "c"}, "cannot reach the server"},
		{[]string{"bench", "refresh", "--token-url", "http://127.0.0.1:1/t", "--client-id", "c"}, "--refresh-tokens FILE is required"},
		{[]string{"bench", "client-credentials", "--issuer", "http://127.0.0.1:1/realms/dev", "--client-id", "c", "--rate", "-1"}, "--rate must not be negative"},
		{[]string{"bench", "mint-refresh", "--data-dir", dir, "--realm", "dev", "--client", "demo-web"}, "--realm, --client and --user are required"},
		{[]string{"bench", "mint-refresh", "--data-dir", dir, "--realm", "dev", "--client", "demo-web", "--user", "demo"}, `no client "demo-web" in realm "dev"`},
	}
	for _, tc := range cases {
		code, out, errOut := runCLI(t, env(), tc.args...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want one line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
