package e2e

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// --metrics-addr serves Prometheus metrics on a listener of its own: a flow of
// every kind moves the series that count it, the public listener has no
// /metrics, and no label value holds a token, secret, username or address.
func TestMetrics_FlowMovesTheSeries(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		maddr := freeAddr(t)
		s := start(t, options{db: db, args: []string{"--metrics-addr", maddr}})
		before := scrape(t, "http://"+maddr+"/metrics")

		cc := post(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials"))
		if cc.status != 200 {
			t.Fatalf("client credentials = %d %s", cc.status, cc.raw)
		}
		b := newBrowser(t)
		code := b.code(s, "web")
		r := s.redeem(t, webBasic, code)
		rt := r.str("refresh_token")
		if r.status != 200 || rt == "" || r.str("id_token") == "" {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}
		r2 := s.refresh(t, webBasic, rt)
		if r2.status != 200 {
			t.Fatalf("refresh = %d %s", r2.status, r2.raw)
		}
		// The parent again at once: an honest retry, answered again, nothing new issued.
		if again := s.refresh(t, webBasic, rt); again.status != 200 || again.str("refresh_token") != r2.str("refresh_token") {
			t.Fatalf("retry = %d %s", again.status, again.raw)
		}
		r3 := s.refresh(t, webBasic, r2.str("refresh_token"))
		if r3.status != 200 {
			t.Fatalf("second refresh = %d %s", r3.status, r3.raw)
		}
		// The parent once its successor was used: reuse, the family revoked.
		if reuse := s.refresh(t, webBasic, rt); !reuse.invalidGrant() {
			t.Fatalf("reuse = %d %s", reuse.status, reuse.raw)
		}
		if bad := post(t, s.tokenURL(), "svc:not-the-secret-0123456789abcdefghij", form("grant_type", "client_credentials")); bad.status != 401 {
			t.Fatalf("bad secret = %d %s", bad.status, bad.raw)
		}
		if in := s.introspect(t, svcBasic, cc.str("access_token")); in.body["active"] != true {
			t.Fatalf("introspect = %d %s", in.status, in.raw)
		}
		wantInactive(t, "garbage", s.introspect(t, svcBasic, "lk_at_not-a-token"))
		// A failed login, in a browser of its own.
		wrong := newBrowser(t)
		u := s.authURL("web")
		if p := wrong.do(wrong.loginRequest(wrong.get(u), u, "username", "alice", "password", "not-alices-password")); p.status != 401 {
			t.Fatalf("failed login = %d", p.status)
		}
		// A path no route has, and a realm path with a made-up segment.
		for _, p := range []string{"/no/such/path", "/realms/acme/" + strings.Repeat("x", 40)} {
			res, err := http.Get(s.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
		}

		after := scrape(t, "http://"+maddr+"/metrics")
		tokenRoute := "/realms/{realm}/protocol/openid-connect/token"
		for _, c := range []struct {
			name   string
			labels []string
			delta  float64
		}{
			{"latchkey_token_requests_total", []string{"grant", "client_credentials", "outcome", "success"}, 1},
			{"latchkey_token_requests_total", []string{"grant", "client_credentials", "outcome", "invalid_client"}, 1},
			{"latchkey_token_requests_total", []string{"grant", "authorization_code", "outcome", "success"}, 1},
			{"latchkey_token_requests_total", []string{"grant", "refresh_token", "outcome", "success"}, 3},
			{"latchkey_token_requests_total", []string{"grant", "refresh_token", "outcome", "invalid_grant"}, 1},
			{"latchkey_tokens_issued_total", []string{"kind", "access_jwt"}, 4}, // client credentials, code, two rotations
			{"latchkey_tokens_issued_total", []string{"kind", "refresh"}, 3},
			{"latchkey_tokens_issued_total", []string{"kind", "id"}, 3},
			{"latchkey_refresh_rotations_total", nil, 2},
			{"latchkey_refresh_retry_window_hits_total", nil, 1},
			{"latchkey_reuse_detections_total", []string{"kind", "refresh_token"}, 1},
			{"latchkey_revocations_total", []string{"kind", "family", "source", "reuse"}, 1},
			{"latchkey_audit_events_total", []string{"type", "refresh_token.reuse_detected"}, 1},
			{"latchkey_audit_events_total", []string{"type", "login.failed"}, 1},
			{"latchkey_audit_events_total", []string{"type", "login.succeeded"}, 1},
			{"latchkey_logins_total", []string{"result", "success"}, 1},
			{"latchkey_logins_total", []string{"result", "failure"}, 1},
			{"latchkey_introspections_total", []string{"result", "active"}, 1},
			{"latchkey_introspections_total", []string{"result", "inactive"}, 1},
			{"latchkey_http_request_duration_seconds_count", []string{"route", tokenRoute}, 7},
			{"latchkey_http_request_duration_seconds_count", []string{"route", tokenRoute + "/introspect"}, 2},
			{"latchkey_http_request_duration_seconds_count", []string{"route", "unmatched"}, 2},
			{"latchkey_store_operation_duration_seconds_count", []string{"operation", "RotateRefreshToken"}, 2},
			{"latchkey_store_operation_duration_seconds_count", []string{"operation", "RedeemAuthCode"}, 1},
		} {
			if got := after.sum(c.name, c.labels...) - before.sum(c.name, c.labels...); got != c.delta {
				t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.delta)
			}
		}
		if age, ok := after.get("latchkey_denylist_sync_age_seconds"); !ok || age < 0 || age > 30 {
			t.Errorf("deny-list sync age = %v, %v", age, ok)
		}
		if _, ok := after.get("latchkey_signing_key_age_seconds", "realm", "acme", "alg", "ES256"); !ok {
			t.Errorf("no signing key age for acme/ES256")
		}
		for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "latchkey_denylist_entries"} {
			if _, ok := after.get(name); !ok {
				t.Errorf("no %s", name)
			}
		}

		// Nothing of the flow in any label: tokens, secrets, the code, the user, the address, raw paths.
		secrets := []string{webSecret, svcSecret, alicePass, "not-alices-password", "not-the-secret", code, rt,
			r.str("access_token"), r.str("id_token"), r2.str("refresh_token"), r3.str("refresh_token"), cc.str("access_token"),
			"alice", "127.0.0.1", "/realms/acme", "/no/such/path", "xxxxxxxx"}
		for _, sr := range after.series {
			for _, v := range sr.labels {
				for _, secret := range secrets {
					if strings.Contains(v, secret) {
						t.Errorf("series %s%v has a label value holding %q", sr.name, sr.labels, secret)
					}
				}
			}
		}
		for _, secret := range secrets[:12] {
			if strings.Contains(after.raw, secret) {
				t.Errorf("the exposition holds %q", secret)
			}
		}

		// Never on the public listener.
		res, err := http.Get(s.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("public /metrics = %d, want 404", res.StatusCode)
		}
	})
}

// exposition is a parsed scrape in the Prometheus text format.
type exposition struct {
	raw    string
	series []series
}

type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape fetches and parses a /metrics page.
func scrape(t *testing.T, u string) exposition {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	e := exposition{raw: string(raw)}
	sc := bufio.NewScanner(strings.NewReader(e.raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sr, ok := parseSeries(line)
		if !ok {
			t.Fatalf("cannot parse %q", line)
		}
		e.series = append(e.series, sr)
	}
	return e
}

// parseSeries parses `name{k="v",...} value` (label values escaped as \\, \" and \n).
func parseSeries(line string) (series, bool) {
	sr := series{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return sr, false
	}
	sr.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for line != "" && line[0] != '}' {
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return sr, false
			}
			key := line[:eq]
			line = line[eq+2:]
			var v strings.Builder
			for {
				if line == "" {
					return sr, false
				}
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\\' && line != "" {
					c, line = line[0], line[1:]
					if c == 'n' {
						c = '\n'
					}
				}
				v.WriteByte(c)
			}
			sr.labels[key] = v.String()
			line = strings.TrimPrefix(line, ",")
		}
		if line == "" {
			return sr, false
		}
		line = line[1:]
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return sr, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	sr.value = v
	return sr, err == nil
}

// sum adds up the series of the name whose labels include the given pairs.
func (e exposition) sum(name string, kv ...string) float64 {
	var total float64
	for _, sr := range e.series {
		if sr.name == name && sr.has(kv) {
			total += sr.value
		}
	}
	return total
}

// get returns the first series of the name with the given labels.
func (e exposition) get(name string, kv ...string) (float64, bool) {
	for _, sr := range e.series {
		if sr.name == name && sr.has(kv) {
			return sr.value, true
		}
	}
	return 0, false
}

func (sr series) has(kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if sr.labels[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}
