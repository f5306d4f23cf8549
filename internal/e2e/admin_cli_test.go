package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cliResult is how one run of `latchkey admin ...` ended.
type cliResult struct {
	code           int
	stdout, stderr string
}

// oneLineError fails the test unless the run failed with exactly one line on
// stderr, prefixed latchkey:, containing want, and nothing on stdout.
func (r cliResult) oneLineError(t *testing.T, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.code == 0 || len(lines) != 1 || !strings.HasPrefix(r.stderr, "latchkey: ") || !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Fatalf("want exit != 0 and one line with %q; got %d, stderr %q, stdout %q", want, r.code, r.stderr, r.stdout)
	}
}

// lkAdmin runs `latchkey admin args...` against s as the root client of adminSeed (or as the
// client given by LATCHKEY_ADMIN_* in env), with stdin, in an empty directory.
func lkAdmin(t *testing.T, s *server, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), append([]string{"admin"}, args...)...)
	cmd.Dir = t.TempDir() // no ./latchkey-data/dev-credentials.json to find
	vars := map[string]string{
		"PATH":                         os.Getenv("PATH"),
		"LATCHKEY_ADMIN_SERVER":        s.URL,
		"LATCHKEY_ADMIN_CLIENT_ID":     "root",
		"LATCHKEY_ADMIN_CLIENT_SECRET": rootSecret,
	}
	for k, v := range env {
		vars[k] = v
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("latchkey admin %v: %v", args, err)
	}
	return r
}

// lkOK runs lkAdmin and fails the test unless it succeeded with nothing on stderr.
func lkOK(t *testing.T, s *server, stdin string, args ...string) string {
	t.Helper()
	r := lkAdmin(t, s, nil, stdin, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("latchkey admin %s = %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// lkJSON runs lkAdmin with -o json and decodes its output.
func lkJSON(t *testing.T, s *server, stdin string, out any, args ...string) {
	t.Helper()
	raw := lkOK(t, s, stdin, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		t.Fatalf("latchkey admin %s -o json printed no JSON: %v\n%s", strings.Join(args, " "), err, raw)
	}
}

// wantLines fails unless out has a line containing all of the words.
func wantLine(t *testing.T, out string, words ...string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return
		}
	}
	t.Fatalf("no line with %q in:\n%s", words, out)
}

type named struct {
	Items []map[string]any `json:"items"`
	Next  string           `json:"next"`
}

// activeByCLI introspects tok through `latchkey admin tokens introspect`: any
// token of the realm, whichever client it was issued to.
func activeByCLI(t *testing.T, s *server, tok string) bool {
	t.Helper()
	var in map[string]any
	lkJSON(t, s, tok+"\n", &in, "tokens", "introspect", "--in", "acme")
	active, isBool := in["active"].(bool)
	if !isBool {
		t.Fatalf("introspection without active: %v", in)
	}
	return active
}

func (n named) field(k string) []string {
	var out []string
	for _, it := range n.Items {
		s, _ := it[k].(string)
		out = append(out, s)
	}
	return out
}

func TestAdminCLI_Realms(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)

		out := lkOK(t, s, "display_name: Shop\naccess_token_ttl: 10m\n", "realms", "put", "shop", "-f", "-")
		wantLine(t, out, "display_name:", "Shop")

		out = lkOK(t, s, "", "realms", "list")
		wantLine(t, out, "NAME", "DISPLAY NAME")
		wantLine(t, out, "shop", "Shop", "10m")
		wantLine(t, out, "acme")
		var realms named
		lkJSON(t, s, "", &realms, "realms", "list")
		if got := strings.Join(realms.field("name"), ","); got != "acme,master,other,shop" {
			t.Fatalf("realms list -o json names = %s", got)
		}
		// --limit stops the pages early; the next cursor says where to go on.
		lkJSON(t, s, "", &realms, "realms", "list", "--limit", "1")
		if len(realms.Items) != 1 || realms.Next == "" {
			t.Fatalf("realms list --limit 1 = %+v", realms)
		}

		var realm map[string]any
		lkJSON(t, s, "", &realm, "realms", "get", "shop")
		if realm["name"] != "shop" || realm["display_name"] != "Shop" {
			t.Fatalf("realms get shop -o json = %v", realm)
		}

		// logout-all ends alice's refresh family.
		tok := s.redeem(t, webBasic, newBrowser(t).code(s, "web"))
		out = lkOK(t, s, "", "realms", "logout-all", "acme")
		wantLine(t, out, "realm acme logged out", "1 refresh families")
		if r := s.refresh(t, webBasic, tok.str("refresh_token")); !r.invalidGrant() {
			t.Fatalf("refresh after logout-all = %d %s", r.status, r.raw)
		}

		wantLine(t, lkOK(t, s, "", "realms", "delete", "shop"), "realm shop deleted")
		lkAdmin(t, s, nil, "", "realms", "get", "shop").oneLineError(t, "(404)")
	})
}

func TestAdminCLI_Clients(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		file := filepath.Join(t.TempDir(), "cron.yaml")
		os.WriteFile(file, []byte("id: cron\nname: Nightly job\ngrant_types: [client_credentials]\nscopes: [orders:read]\n"), 0o600)

		// A confidential client created without a secret: the 201 carries a generated one, printed once.
		r := lkAdmin(t, s, nil, "", "clients", "put", "--in", "acme", "-f", file)
		if r.code != 0 || !strings.Contains(r.stderr, "shown this once") {
			t.Fatalf("clients put = %d %q %q", r.code, r.stderr, r.stdout)
		}
		var created map[string]any
		lkJSON(t, s, "", &created, "clients", "get", "cron", "--in", "acme")
		if created["name"] != "Nightly job" || created["secret"] != nil {
			t.Fatalf("clients get cron = %v", created)
		}

		// rotate-secret prints the new secret alone on stdout; with --grace the old one still works.
		r = lkAdmin(t, s, nil, "", "clients", "rotate-secret", "cron", "--in", "acme")
		oldSecret := strings.TrimSuffix(r.stdout, "\n")
		if r.code != 0 || strings.Contains(oldSecret, "\n") || len(oldSecret) < 32 || !strings.Contains(r.stderr, "old secret no longer works") {
			t.Fatalf("rotate-secret = %d %q %q; want one secret line on stdout", r.code, r.stdout, r.stderr)
		}
		ccGrant := func(secret string) response {
			return post(t, s.tokenURL(), "cron:"+secret, form("grant_type", "client_credentials"))
		}
		if r := ccGrant(oldSecret); r.status != 200 {
			t.Fatalf("the rotated secret: %d %s", r.status, r.raw)
		}
		r = lkAdmin(t, s, nil, "", "clients", "rotate-secret", "cron", "--in", "acme", "--grace", "1h")
		newSecret := strings.TrimSuffix(r.stdout, "\n")
		if r.code != 0 || !strings.Contains(r.stderr, "old secret works until") || newSecret == oldSecret {
			t.Fatalf("rotate-secret --grace = %d %q %q", r.code, r.stderr, r.stdout)
		}
		if a, b := ccGrant(oldSecret), ccGrant(newSecret); a.status != 200 || b.status != 200 {
			t.Fatalf("within the grace both secrets work: old %d, new %d", a.status, b.status)
		}

		out := lkOK(t, s, "", "clients", "list", "--in", "acme")
		wantLine(t, out, "ID", "TYPE", "GRANT TYPES")
		wantLine(t, out, "cron", "Nightly job", "confidential", "client_credentials", "no")
		wantLine(t, out, "spa", "public")
		var clients named
		lkJSON(t, s, "", &clients, "clients", "list", "--in", "acme")
		if got := strings.Join(clients.field("id"), ","); got != "acme-admin,cron,opq,spa,svc,web" {
			t.Fatalf("clients list -o json ids = %s", got)
		}

		// disable: its token dies and it gets no new one; enable: a new one, the old stays dead.
		tok := ccGrant(newSecret).str("access_token")
		if !activeByCLI(t, s, tok) {
			t.Fatal("a fresh token of cron is not active")
		}
		wantLine(t, lkOK(t, s, "", "clients", "disable", "cron", "--in", "acme"), "client cron disabled")
		if activeByCLI(t, s, tok) {
			t.Fatal("a disabled client's token is active")
		}
		if r := ccGrant(newSecret); r.status == 200 {
			t.Fatal("a disabled client got a token")
		}
		var enabled map[string]any
		lkJSON(t, s, "", &enabled, "clients", "enable", "cron", "--in", "acme")
		if enabled["disabled"] == true {
			t.Fatalf("clients enable -o json = %v", enabled)
		}
		if activeByCLI(t, s, tok) {
			t.Fatal("the old token came back with enable")
		}

		if r := ccGrant(newSecret); r.status != 200 {
			t.Fatalf("the enabled client gets no token: %d %s", r.status, r.raw)
		}

		// revoke-tokens, on svc: a token of cron may be issued in the second of the
		// disable's stamp, which counts as before it.
		tok = post(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials")).str("access_token")
		if !activeByCLI(t, s, tok) {
			t.Fatal("a fresh token of svc is not active")
		}
		wantLine(t, lkOK(t, s, "", "clients", "revoke-tokens", "svc", "--in", "acme"), "client svc")
		if activeByCLI(t, s, tok) {
			t.Fatal("a token is active after revoke-tokens")
		}

		wantLine(t, lkOK(t, s, "", "clients", "delete", "cron", "--in", "acme"), "client cron deleted")
		lkAdmin(t, s, nil, "", "clients", "get", "cron", "--in", "acme").oneLineError(t, "(404)")

		// A bad field comes back as one line naming it.
		os.WriteFile(file, []byte("id: bad\nredirect_uris: [not-a-url]\ngrant_types: [authorization_code]\n"), 0o600)
		lkAdmin(t, s, nil, "", "clients", "put", "--in", "acme", "-f", file).oneLineError(t, "redirect_uris[0]")
	})
}

func TestAdminCLI_Users(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)

		var bob map[string]any
		lkJSON(t, s, "bob-password-123\n", &bob, "users", "create", "--in", "acme", "--username", "bob", "--email", "bob@example.com", "--password-stdin")
		bobID, _ := bob["id"].(string)
		if bobID == "" || bob["username"] != "bob" || bob["password"] != nil {
			t.Fatalf("users create -o json = %v", bob)
		}
		out := lkOK(t, s, "", "users", "list", "--in", "acme")
		wantLine(t, out, "USERNAME", "EMAIL")
		wantLine(t, out, "alice", "alice@example.com")
		wantLine(t, out, "bob", bobID, "bob@example.com", "no")
		var found named
		lkJSON(t, s, "", &found, "users", "list", "--in", "acme", "--q", "BOB")
		if got := strings.Join(found.field("username"), ","); got != "bob" {
			t.Fatalf("users list --q BOB = %s", got)
		}

		// A user by username or by ID.
		wantLine(t, lkOK(t, s, "", "users", "get", bobID, "--in", "acme"), "username:", "bob")
		var updated map[string]any
		lkJSON(t, s, "", &updated, "users", "update", "bob", "--in", "acme", "--name", "Bob Builder", "--email-verified")
		if updated["name"] != "Bob Builder" || updated["email_verified"] != true || updated["email"] != "bob@example.com" {
			t.Fatalf("users update -o json = %v", updated)
		}

		wantLine(t, lkOK(t, s, "", "users", "disable", "bob", "--in", "acme"), "user bob disabled")
		wantLine(t, lkOK(t, s, "", "users", "list", "--in", "acme", "--q", "bob"), "bob", "yes")
		wantLine(t, lkOK(t, s, "", "users", "enable", "bob", "--in", "acme"), "user bob enabled")
		wantLine(t, lkOK(t, s, "new-bob-password-1\n", "users", "set-password", "bob", "--in", "acme", "--password-stdin"), "password of user bob set")
		wantLine(t, lkOK(t, s, "", "users", "unlock", "bob", "--in", "acme"), "user bob unlocked")
		// A password is never a flag, and never missing.
		if r := lkAdmin(t, s, nil, "", "users", "set-password", "bob", "--in", "acme", "--password-stdin"); r.code == 0 {
			t.Fatal("set-password with nothing on stdin succeeded")
		}

		// alice's browser session and refresh family, listed and ended one by one.
		b := newBrowser(t)
		tok := s.redeem(t, webBasic, b.code(s, "web"))
		out = lkOK(t, s, "", "users", "sessions", "alice", "--in", "acme")
		wantLine(t, out, "Browser sessions (1)")
		wantLine(t, out, "Refresh-token families (1)")
		wantLine(t, out, "web", "openid")
		var sess struct {
			Sessions []struct{ ID string } `json:"sessions"`
			Families []struct{ ID string } `json:"families"`
		}
		lkJSON(t, s, "", &sess, "users", "sessions", "alice", "--in", "acme")
		if len(sess.Sessions) != 1 || len(sess.Families) != 1 {
			t.Fatalf("users sessions -o json = %+v", sess)
		}
		wantLine(t, lkOK(t, s, "", "users", "end-family", "alice", sess.Families[0].ID, "--in", "acme"), "ended")
		if r := s.refresh(t, webBasic, tok.str("refresh_token")); !r.invalidGrant() {
			t.Fatalf("refresh after end-family = %d %s", r.status, r.raw)
		}
		wantLine(t, lkOK(t, s, "", "users", "end-session", "alice", sess.Sessions[0].ID, "--in", "acme"), "ended")
		lkJSON(t, s, "", &sess, "users", "sessions", "alice", "--in", "acme")
		if len(sess.Sessions) != 0 || len(sess.Families) != 0 {
			t.Fatalf("after end-session and end-family: %+v", sess)
		}

		tok = s.redeem(t, webBasic, newBrowser(t).code(s, "web"))
		wantLine(t, lkOK(t, s, "", "users", "logout", "alice", "--in", "acme"), "user alice logged out everywhere")
		if r := s.refresh(t, webBasic, tok.str("refresh_token")); !r.invalidGrant() {
			t.Fatalf("refresh after logout = %d %s", r.status, r.raw)
		}

		wantLine(t, lkOK(t, s, "", "users", "delete", "bob", "--in", "acme"), "user bob deleted")
		lkAdmin(t, s, nil, "", "users", "get", "bob", "--in", "acme").oneLineError(t, "(404)")
	})
}

// jti reads the jti of a JWT, unverified.
func jti(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ JTI string }
	if json.Unmarshal(b, &c) != nil || c.JTI == "" {
		t.Fatal("a JWT without jti")
	}
	return c.JTI
}

func TestAdminCLI_TokensKeysEvents(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		svcToken := func() string {
			r := post(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials"))
			if r.status != 200 {
				t.Fatalf("svc token: %d %s", r.status, r.raw)
			}
			return r.str("access_token")
		}

		// tokens: introspect and revoke by value from stdin, and by jti.
		tok := svcToken()
		out := lkOK(t, s, tok+"\n", "tokens", "introspect", "--in", "acme")
		wantLine(t, out, "active:", "true")
		wantLine(t, out, "client_id:", "svc")
		wantLine(t, lkOK(t, s, tok, "tokens", "revoke", "--in", "acme"), "token revoked")
		var intro map[string]any
		lkJSON(t, s, tok, &intro, "tokens", "introspect", "--in", "acme")
		if intro["active"] != false {
			t.Fatalf("a revoked token: %v", intro)
		}
		tok = svcToken()
		lkOK(t, s, "", "tokens", "revoke", "--in", "acme", "--jti", jti(t, tok))
		wantInactive(t, "a token revoked by jti", s.introspect(t, svcBasic, tok))
		if strings.Contains(s.logs.String(), tok) {
			t.Fatal("a token reached the server's log")
		}

		// keys: list, rotate (a next key), retire it.
		out = lkOK(t, s, "", "keys", "list", "--in", "acme")
		wantLine(t, out, "KID", "STATUS")
		wantLine(t, out, "active")
		var keys struct {
			Items []struct{ KID, Status string } `json:"items"`
		}
		lkJSON(t, s, "", &keys, "keys", "rotate", "--in", "acme")
		var next string
		for _, k := range keys.Items {
			if k.Status == "next" {
				next = k.KID
			}
		}
		if next == "" {
			t.Fatalf("keys rotate -o json: no next key in %+v", keys)
		}
		wantLine(t, lkOK(t, s, "", "keys", "retire", "--in", "acme", "--", next), next, "retired")
		lkAdmin(t, s, nil, "", "keys", "retire", "no-such-kid", "--in", "acme").oneLineError(t, "(404)")

		// events: what the admin did above, newest first, filtered and limited.
		out = lkOK(t, s, "", "events", "list", "--in", "acme", "--type", "admin.keys.rotated")
		wantLine(t, out, "TIME", "TYPE", "CLIENT")
		wantLine(t, out, "admin.keys.rotated", "admin_client=root")
		if strings.Contains(out, "access_token.revoked") {
			t.Fatalf("events --type admin.keys.rotated listed others:\n%s", out)
		}
		var svcEvents named
		lkJSON(t, s, "", &svcEvents, "events", "list", "--in", "acme", "--client", "svc", "--limit", "0")
		for _, e := range svcEvents.Items {
			if e["client_id"] != "svc" {
				t.Fatalf("events --client svc listed %v", e)
			}
		}
		var events named
		lkJSON(t, s, "", &events, "events", "list", "--in", "acme", "--limit", "2", "--since", "1h")
		if len(events.Items) != 2 || events.Next == "" {
			t.Fatalf("events list --limit 2 = %d items, next %q", len(events.Items), events.Next)
		}
		newBrowser(t).code(s, "web") // alice signs in: an event of hers
		lkJSON(t, s, "", &events, "events", "list", "--in", "acme", "--limit", "0", "--user", "alice")
		if len(events.Items) == 0 {
			t.Fatal("events --user alice listed nothing after her sign-in")
		}
		for _, e := range events.Items {
			if e["user_id"] == nil {
				t.Fatalf("events --user alice listed %v", e)
			}
		}
	})
}

func TestAdminCLI_Errors(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)

		lkAdmin(t, s, nil, "", "clients", "list", "--in", "nope").oneLineError(t, "(404)")
		lkAdmin(t, s, map[string]string{"LATCHKEY_ADMIN_CLIENT_SECRET": "wrong-secret-0123456789abcdefghijkl"}, "", "realms", "list").
			oneLineError(t, "refused the admin client's credentials")
		lkAdmin(t, s, map[string]string{"LATCHKEY_ADMIN_CLIENT_ID": "reader", "LATCHKEY_ADMIN_CLIENT_SECRET": readerSecret}, "", "users", "disable", "alice", "--in", "acme").
			oneLineError(t, "insufficient_scope (needs latchkey:admin)")
		// A token of realm acme does not administer realm master... nor acme: svc lacks the admin scope.
		lkAdmin(t, s, map[string]string{"LATCHKEY_ADMIN_CLIENT_ID": "svc", "LATCHKEY_ADMIN_CLIENT_SECRET": svcSecret}, "", "clients", "list", "--realm", "acme").
			oneLineError(t, "admin API refused the token (403)")
		lkAdmin(t, s, map[string]string{"LATCHKEY_ADMIN_SERVER": "http://" + freeAddr(t)}, "", "realms", "list").
			oneLineError(t, "connection refused")
		lkAdmin(t, s, map[string]string{"LATCHKEY_ADMIN_CLIENT_ID": "", "LATCHKEY_ADMIN_CLIENT_SECRET": ""}, "", "realms", "list").
			oneLineError(t, "no admin credentials")
		lkAdmin(t, s, nil, "", "clients", "list").oneLineError(t, "--in REALM is required")
		// A realm's own admin client: --realm is where it gets its token, and --in defaults to it.
		acme := map[string]string{"LATCHKEY_ADMIN_CLIENT_ID": "acme-admin", "LATCHKEY_ADMIN_CLIENT_SECRET": acmeAdminSec}
		if r := lkAdmin(t, s, acme, "", "clients", "list", "--realm", "acme"); r.code != 0 || !strings.Contains(r.stdout, "acme-admin") {
			t.Fatalf("clients list --realm acme as acme-admin = %d %q %q", r.code, r.stdout, r.stderr)
		}
		lkAdmin(t, s, acme, "", "clients", "list", "--realm", "acme", "--in", "other").oneLineError(t, "admin API refused the token (403)")
		lkAdmin(t, s, nil, "", "realms", "list", "-o", "yaml").oneLineError(t, "-o must be table or json")
	})
}
