package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The seed file (YAML) and the admin API (JSON) read one representation: the
// same document in either syntax gives the same client, and the same verdict.
func TestClientReadsTheSameFromYAMLAndJSON(t *testing.T) {
	docs := []string{
		`{"id": "web", "secret": "0123456789abcdef0123456789abcdef", "redirect_uris": ["https://app.example/cb"],
		  "grant_types": ["authorization_code", "refresh_token"], "scopes": ["openid"], "refresh_idle": "2h", "refresh_retry_window": "0s"}`,
		`{"id": "svc", "secret": "0123456789abcdef0123456789abcdef", "grant_types": ["client_credentials"], "access_token_format": "opaque"}`,
		`{"id": "spa", "redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code", "refresh_token"], "pkce_optional": true,
		  "web_origins": ["+", "https://spa.example"]}`,
		`{"id": "bad", "redirect_uris": ["/relative"], "grant_types": ["authorization_code", "password"]}`,
		`{"id": "short", "secret": "too-short", "grant_types": ["client_credentials"], "access_token_ttl": "2h"}`,
	}
	for _, doc := range docs {
		var fromJSON, fromYAML Client
		if err := json.Unmarshal([]byte(doc), &fromJSON); err != nil {
			t.Fatalf("JSON %s: %v", doc, err)
		}
		if err := yaml.Unmarshal([]byte(doc), &fromYAML); err != nil { // JSON is YAML
			t.Fatalf("YAML %s: %v", doc, err)
		}
		errJ, errY := CheckClient(&fromJSON), CheckClient(&fromYAML)
		if (errJ == nil) != (errY == nil) || (errJ != nil && errJ.Error() != errY.Error()) {
			t.Errorf("%s: JSON says %v, YAML says %v", doc, errJ, errY)
		}
		j1, _ := json.Marshal(fromJSON)
		j2, _ := json.Marshal(fromYAML)
		if string(j1) != string(j2) {
			t.Errorf("%s:\nJSON read %s\nYAML read %s", doc, j1, j2)
		}
	}
}

// Every problem is reported, each with its field path.
func TestCheckClientNamesEveryBadField(t *testing.T) {
	c := Client{ID: "x", RedirectURIs: []string{"https://ok.example/cb", "relative", "https://a.example/#frag"},
		GrantTypes: []string{"authorization_code", "implicit"}, Scopes: []string{"ok", "not ok"}, RefreshTokenFormat: "paseto"}
	err := CheckClient(&c)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("CheckClient = %v, want Errors", err)
	}
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field())
	}
	want := "grant_types[1] redirect_uris[1] redirect_uris[2] scopes[1] refresh_token_format"
	if got := strings.Join(fields, " "); got != want {
		t.Fatalf("fields = %q, want %q (%v)", got, want, err)
	}
}

func TestCheckClientFillsDefaults(t *testing.T) {
	c := Client{ID: "web", Secret: strings.Repeat("s", 32), RedirectURIs: []string{"https://a.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}}
	if err := CheckClient(&c); err != nil {
		t.Fatal(err)
	}
	if c.RefreshPreset != "web" || time.Duration(c.RefreshIdle) != 24*time.Hour || c.AccessTokenFormat != "jwt" || c.RefreshTokenFormat != "opaque" ||
		c.RefreshRetryWindow == nil || time.Duration(*c.RefreshRetryWindow) != DefaultRefreshRetryWindow {
		t.Fatalf("defaults: %+v", c)
	}
	// What was stored reads back as what was checked, but for the secret.
	back := ClientOf(c.StoredClient("acme", "hash", time.Now()))
	c.Secret = ""
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}
}

func TestCheckUser(t *testing.T) {
	u := User{Username: "  Alice ", Email: "Alice@Example.COM", Password: "long-enough-pw"}
	if err := CheckUser(&u, true); err != nil || u.Username != "alice" || u.Email != "alice@example.com" {
		t.Fatalf("CheckUser = %v, %+v", err, u)
	}
	// An update need not carry a password; a new user must.
	if err := CheckUser(&User{Username: "bob"}, false); err != nil {
		t.Fatalf("update without password: %v", err)
	}
	err := CheckUser(&User{Username: "bob", Email: "not an email"}, true)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 || errs[0].Field() != "email" || errs[1].Field() != "password" {
		t.Fatalf("CheckUser = %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	var r Realm
	if err := json.Unmarshal([]byte(`{"name":"a","access_token_ttl":"90s"}`), &r); err != nil || time.Duration(r.AccessTokenTTL) != 90*time.Second {
		t.Fatalf("%v %+v", err, r)
	}
	for _, bad := range []string{`{"access_token_ttl":300}`, `{"access_token_ttl":"5 minutes"}`} {
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := CheckRealm(&Realm{Name: "a", AccessTokenTTL: Duration(2 * time.Hour)}); err == nil || !strings.Contains(err.Error(), "access_token_ttl") {
		t.Fatalf("long TTL: %v", err)
	}
}
