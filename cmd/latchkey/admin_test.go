package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeAdminAPI is a stand-in for the admin API: a token endpoint that accepts
// ops:ops-secret, and users paged two at a time. The real API is tested in
// internal/e2e; this checks what the CLI does with pages and refusals.
func fakeAdminAPI(t *testing.T) (*httptest.Server, *[]string) {
	var calls []string
	users := []string{"ann", "bob", "cat", "dan", "eve"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/master/protocol/openid-connect/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if id != "ops" || secret != "ops-secret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"at-1","token_type":"Bearer","expires_in":300}`)
	})
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.RequestURI())
		if r.Header.Get("Authorization") != "Bearer at-1" {
			w.WriteHeader(401)
			return
		}
		switch {
		case r.URL.Path == "/admin/realms/acme/users":
			// Two per page at most; after is the last username.
			var page []map[string]string
			after := r.URL.Query().Get("after")
			size := min(2, atoi(r.URL.Query().Get("limit")))
			for _, u := range users {
				if u > after && len(page) < size {
					page = append(page, map[string]string{"id": "id-" + u, "username": u})
				}
			}
			body := map[string]any{"items": page}
			if last := page[len(page)-1]["username"]; len(page) == size && last != users[len(users)-1] {
				body["next"] = last
			}
			json.NewEncoder(w).Encode(body)
		case r.URL.Path == "/admin/realms/acme/users/id-cat/disable":
			fmt.Fprint(w, `{"id":"id-cat","username":"cat","disabled":true}`)
		case r.URL.Path == "/admin/realms/acme/keys/k1/retire":
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="latchkey:admin"`)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(403)
			fmt.Fprint(w, `{"type":"about:blank","title":"Forbidden","status":403,"detail":"this request needs the scope latchkey:admin"}`)
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			fmt.Fprint(w, `{"type":"about:blank","title":"Bad Request","status":400,"detail":"the client is not valid","errors":[{"field":"redirect_uris[0]","message":"not an absolute URI"},{"field":"grant_types","message":"unknown grant"}]}`)
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, &calls
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestAdminCLI_ListFollowsNextToTheEndOrTheLimit(t *testing.T) {
	s, _ := fakeAdminAPI(t)
	getenv := env("LATCHKEY_ADMIN_SERVER", s.URL, "LATCHKEY_ADMIN_CLIENT_ID", "ops", "LATCHKEY_ADMIN_CLIENT_SECRET", "ops-secret")

	code, out, errOut := runCLI(t, getenv, "admin", "users", "list", "--in", "acme")
	if code != 0 || errOut != "" {
		t.Fatalf("users list = %d %q", code, errOut)
	}
	for _, u := range []string{"ann", "bob", "cat", "dan", "eve"} {
		if !strings.Contains(out, "id-"+u) {
			t.Errorf("users list lacks %s:\n%s", u, out)
		}
	}

	code, out, _ = runCLI(t, getenv, "admin", "users", "list", "--in", "acme", "--limit", "3", "-o", "json")
	var p page
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || len(p.Items) != 3 || p.Next != "cat" {
		t.Fatalf("users list --limit 3 -o json = %d %s", code, out)
	}
}

func TestAdminCLI_UserByUsernameIsResolvedThroughTheSearch(t *testing.T) {
	s, calls := fakeAdminAPI(t)
	getenv := env("LATCHKEY_ADMIN_SERVER", s.URL, "LATCHKEY_ADMIN_CLIENT_ID", "ops", "LATCHKEY_ADMIN_CLIENT_SECRET", "ops-secret")
	code, out, errOut := runCLI(t, getenv, "admin", "users", "disable", "cat", "--in", "acme")
	if code != 0 || errOut != "" || out != "user cat disabled\n" {
		t.Fatalf("users disable cat = %d %q %q", code, out, errOut)
	}
	if last := (*calls)[len(*calls)-1]; last != "POST /admin/realms/acme/users/id-cat/disable" {
		t.Fatalf("the last call was %s; calls: %v", last, *calls)
	}
}

func TestAdminCLI_RefusalsAreOneLine(t *testing.T) {
	s, _ := fakeAdminAPI(t)
	getenv := env("LATCHKEY_ADMIN_SERVER", s.URL, "LATCHKEY_ADMIN_CLIENT_ID", "ops", "LATCHKEY_ADMIN_CLIENT_SECRET", "ops-secret")
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("id: c\n"), 0o600)
	for _, tc := range []struct {
		getenv func(string) string
		args   []string
		want   string
	}{
		{getenv, []string{"clients", "put", "--in", "acme", "-f", file},
			"latchkey: the client is not valid; redirect_uris[0]: not an absolute URI; grant_types: unknown grant (400)\n"},
		{getenv, []string{"keys", "retire", "k1", "--in", "acme"},
			"latchkey: admin API refused the token (403): insufficient_scope (needs latchkey:admin)\n"},
		{env("LATCHKEY_ADMIN_SERVER", s.URL, "LATCHKEY_ADMIN_CLIENT_ID", "ops", "LATCHKEY_ADMIN_CLIENT_SECRET", "wrong"), []string{"realms", "list"},
			"latchkey: the token endpoint refused the admin client's credentials (invalid_client): check the client ID and secret, and --realm\n"},
		{getenv, []string{"clients", "put", "--in", "acme", "-f", file, "--nope"}, "latchkey: unknown flag: --nope\n"},
	} {
		code, out, errOut := runCLI(t, tc.getenv, append([]string{"admin"}, tc.args...)...)
		if code == 0 || out != "" || errOut != tc.want {
			t.Errorf("admin %v = %d %q\n got stderr %q\nwant stderr %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// With no credentials given, the CLI uses the admin client `serve --dev` wrote
// into the data directory, at the server its token URL names.
func TestAdminCLI_DevCredentialsFile(t *testing.T) {
	s, _ := fakeAdminAPI(t)
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]string{"client_secret": "x", "admin_client_id": "ops", "admin_client_secret": "ops-secret",
		"admin_token_url": s.URL + "/realms/master/protocol/openid-connect/token"})
	os.WriteFile(filepath.Join(dir, devCredsFile), b, 0o600)
	code, out, errOut := runCLI(t, env("LATCHKEY_DATA_DIR", dir), "admin", "users", "list", "--in", "acme", "--limit", "1")
	if code != 0 || !strings.Contains(out, "id-ann") {
		t.Fatalf("users list with dev credentials = %d %q %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, env("LATCHKEY_DATA_DIR", t.TempDir()), "admin", "users", "list", "--in", "acme")
	if code == 0 || !strings.Contains(errOut, "no admin credentials") {
		t.Fatalf("users list without any credentials = %d %q", code, errOut)
	}
}

func TestAdminCLI_ParseSince(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"":                          "",
		"90m":                       "2026-12-03T10:30:00Z",
		"2026-12-01T08:00:00+01:00": "2026-12-01T07:00:00Z",
	} {
		if got, err := parseSince(in, now); err != nil || got != want {
			t.Errorf("parseSince(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := parseSince("yesterday", now); err == nil {
		t.Error("parseSince(yesterday) succeeded")
	}
}

// `serve --dev` and then `latchkey admin` with nothing set: the CLI finds the dev
// admin client in the data directory, and the server in its token URL.
func TestAdminCLI_AgainstADevServerWithNoFlags(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "latchkey-data")
	startServe(t, env(), "--dev", "--data-dir", dataDir)
	code, out, errOut := runCLI(t, env("LATCHKEY_DATA_DIR", dataDir), "admin", "realms", "list")
	if code != 0 || errOut != "" || !strings.Contains(out, "dev ") || !strings.Contains(out, "master ") {
		t.Fatalf("admin realms list against serve --dev = %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env("LATCHKEY_DATA_DIR", dataDir), "admin", "users", "get", "demo", "--in", "dev", "-o", "json")
	var u map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &u) != nil || u["username"] != "demo" {
		t.Fatalf("admin users get demo = %d %q %q", code, out, errOut)
	}
}

func TestAdminCLI_ServerURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://id.example.com", false, true},
		{"https://id.example.com/auth", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://id.example.com", false, false},
		{"http://10.0.0.7:8080", false, false},
		{"http://10.0.0.7:8080", true, true},
		{"ftp://id.example.com", true, false},
		{"id.example.com", false, false},
	} {
		if err := checkServerURL(tc.url, tc.insecure); (err == nil) != tc.ok {
			t.Errorf("checkServerURL(%q, %v) = %v", tc.url, tc.insecure, err)
		}
	}
}
