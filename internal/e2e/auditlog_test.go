package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// Audit events also reach the log, one JSON object a line with --log-format json,
// and never with a password or a token in them.
func TestAuditEventsAreLoggedAsJSON(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, args: []string{"--log-format", "json"}})

		// A wrong password for alice.
		const wrong = "wrong-password-for-the-log"
		b := newBrowser(t)
		u := s.authURL("web")
		login := b.get(u)
		if p := b.do(b.loginRequest(login, u, "username", "alice", "password", wrong)); p.status != 401 {
			t.Fatalf("wrong password = %d", p.status)
		}

		// A refresh token used after its successor was: reuse.
		tok := s.redeem(t, webBasic, newBrowser(t).code(s, "web"))
		rt1 := tok.str("refresh_token")
		r2 := s.refresh(t, webBasic, rt1)
		rt2 := r2.str("refresh_token")
		r3 := s.refresh(t, webBasic, rt2)
		if rt1 == "" || rt2 == "" || r3.str("refresh_token") == "" {
			t.Fatalf("refresh chain broke: %s / %s / %s", tok.raw, r2.raw, r3.raw)
		}
		if r := s.refresh(t, webBasic, rt1); r.str("error") != "invalid_grant" {
			t.Fatalf("reused refresh token = %d %s", r.status, r.raw)
		}

		s.stop() // the whole log is in once the process has exited
		logs := s.logs.String()
		lines := jsonLines(t, logs)
		find := func(typ string) map[string]any { return auditLine(t, lines, typ, logs) }
		var listening map[string]any
		for _, l := range lines {
			if l["msg"] == "listening" {
				listening = l
			}
		}
		for _, typ := range []string{"login.failed", "refresh_token.reuse_detected"} {
			e := find(typ)
			if e["level"] != "INFO" || e["realm"] != "acme" || e["client_id"] != "web" || e["user_id"] == "" ||
				e["event_id"] == nil || e["event_time"] == nil {
				t.Errorf("%s line = %v", typ, e)
			}
		}
		if e := find("refresh_token.reuse_detected"); e["family_id"] == nil {
			t.Errorf("the reuse line has no family: %v", e)
		}
		if e := find("login.failed"); e["ip"] != "127.0.0.1" {
			t.Errorf("the failed login line has no IP: %v", e)
		}

		for _, secret := range []string{wrong, alicePass, webSecret, rt1, rt2, r3.str("refresh_token"),
			tok.str("access_token"), r2.str("access_token")} {
			if secret != "" && strings.Contains(logs, secret) {
				t.Errorf("the log holds a secret %.12s…:\n%s", secret, logs)
			}
		}

		if listening == nil {
			t.Fatalf("no listening line:\n%s", logs)
		}
		if v, _ := listening["version"].(string); v == "" {
			t.Errorf("the listening line has no version: %v", listening)
		}
		if _, ok := listening["revision"]; !ok {
			t.Errorf("the listening line has no revision: %v", listening)
		}
	})
}

// The audit events the seed writes in its own transaction (a user disabled, a
// client disabled) are logged too, once it has committed.
func TestSeedAuditEventsAreLogged(t *testing.T) {
	disabledSeed := seedWith(t, aliceLine, aliceLine+disabled, webLine, webLine+disabled)
	stores(t, func(t *testing.T, db string) {
		start(t, options{db: db}).stop()
		s := start(t, options{db: db, seed: disabledSeed, args: []string{"--log-format", "json"}})
		s.stop()
		logs := s.logs.String()
		e := auditLine(t, jsonLines(t, logs), "user.disabled", logs)
		if d, _ := e["details"].(map[string]any); e["realm"] != "acme" || e["user_id"] == nil || d["by"] != "seed" {
			t.Errorf("user.disabled line = %v", e)
		}
		e = auditLine(t, jsonLines(t, logs), "client.disabled", logs)
		if d, _ := e["details"].(map[string]any); e["realm"] != "acme" || e["client_id"] != "web" || d["by"] != "seed" {
			t.Errorf("client.disabled line = %v", e)
		}
		if strings.Contains(logs, alicePass) || strings.Contains(logs, webSecret) || strings.Contains(logs, "argon2") {
			t.Errorf("the log holds a password, a secret or a hash:\n%s", logs)
		}
	})
}

// jsonLines parses every line of logs as one JSON object.
func jsonLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("a log line is not JSON: %v: %q", err, sc.Text())
		}
		lines = append(lines, line)
	}
	return lines
}

// auditLine is the first audit line of the type.
func auditLine(t *testing.T, lines []map[string]any, typ, logs string) map[string]any {
	t.Helper()
	for _, l := range lines {
		if l["msg"] == "audit" && l["type"] == typ {
			return l
		}
	}
	t.Fatalf("no %s audit line in the log:\n%s", typ, logs)
	return nil
}

// `latchkey version` prints the module version and, when the build recorded it,
// the VCS revision with its time: "latchkey (devel) rev 9b560b4… 2026-12-03T08:40:00Z modified go1.26".
func TestVersionNamesTheBuild(t *testing.T) {
	bin := binary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	line := strings.TrimSpace(string(out))
	re := regexp.MustCompile(`^latchkey (\(devel\)|v\S+)( rev [0-9a-f]{40}( \S+Z)?( modified)?)? go\S+$`)
	if !re.MatchString(line) {
		t.Fatalf("version = %q; want %s", line, re)
	}
	// The revision is there exactly when the binary recorded one.
	mod, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := regexp.MustCompile(`vcs\.revision=([0-9a-f]+)`).FindSubmatch(mod)
	switch {
	case rev != nil && !strings.Contains(line, " rev "+string(rev[1])):
		t.Errorf("version = %q; the binary was built from %s", line, rev[1])
	case rev == nil && strings.Contains(line, " rev "):
		t.Errorf("version = %q, but the binary recorded no revision", line)
	}
}
