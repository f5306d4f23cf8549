package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The one-time bootstrap makes realm master and an admin client whose secret it
// prints once; its token administers every realm of a production server; a second
// run for the same client is refused with a one-line error.
func TestAdminBootstrap(t *testing.T) {
	dir := t.TempDir()
	getenv := env("LATCHKEY_MASTER_KEY", "q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA=")
	code, out, errOut := runCLI(t, getenv, "admin", "bootstrap", "--data-dir", dir, "--base-url", "https://id.example.com")
	if code != 0 {
		t.Fatalf("bootstrap exited %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`admin_client_id\s+(\S+)\nadmin_client_secret\s+(\S+)\nadmin_token_url\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || m[1] != "latchkey-admin" || len(m[2]) < 32 || m[3] != "https://id.example.com/realms/master/protocol/openid-connect/token" {
		t.Fatalf("bootstrap printed:\n%s", out)
	}
	code, _, errOut = runCLI(t, getenv, "admin", "bootstrap", "--data-dir", dir)
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second bootstrap: exit %d, %q; want a one-line refusal", code, errOut)
	}
	code, out, _ = runCLI(t, getenv, "admin", "bootstrap", "--data-dir", dir, "--name", "ops-admin")
	if code != 0 || !strings.Contains(out, "ops-admin") {
		t.Fatalf("another admin client: exit %d:\n%s", code, out)
	}

	s := startServe(t, env("LATCHKEY_MASTER_KEY", "q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA=", "LATCHKEY_SEED", acmeSeed), "--insecure-http", "--data-dir", dir)
	defer s.stop()
	base := "http://" + s.addr
	req, _ := http.NewRequest("POST", base+"/realms/master/protocol/openid-connect/token", strings.NewReader("grant_type=client_credentials&scope=latchkey:admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(m[1], m[2])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("admin token: %d", res.StatusCode)
	}
	req, _ = http.NewRequest("GET", base+"/admin/realms", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	json.NewDecoder(res.Body).Decode(&page)
	res.Body.Close()
	if res.StatusCode != 200 || len(page.Items) != 2 || page.Items[0].Name != "acme" || page.Items[1].Name != "master" {
		t.Fatalf("GET /admin/realms: %d %+v", res.StatusCode, page)
	}
}
