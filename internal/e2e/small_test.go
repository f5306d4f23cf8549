package e2e

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// bearer sends a GET to u with the Authorization header set to authz exactly.
func bearer(t *testing.T, u, authz string) response {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authz)
	return do(t, req)
}

// The Authorization scheme is case-insensitive (RFC 9110 §11.1): userinfo takes
// bearer and BEARER as it takes Bearer, the token endpoint takes basic as Basic,
// and other schemes stay refused.
func TestAuthSchemeIsCaseInsensitive(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		r := s.redeem(t, webBasic, newBrowser(t).code(s, "web"))
		at := r.str("access_token")
		if r.status != 200 || at == "" {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}
		for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
			ui := bearer(t, s.userinfoURL(), scheme+" "+at)
			if ui.status != 200 || ui.str("sub") == "" {
				t.Errorf("userinfo with %q = %d %s; want 200 and the claims", scheme, ui.status, ui.raw)
			}
		}
		for _, scheme := range []string{"DPoP ", "Basic ", "Bearer", "Token "} {
			ui := bearer(t, s.userinfoURL(), scheme+at)
			if ui.status != 401 {
				t.Errorf("userinfo with %q = %d %s; want 401", scheme, ui.status, ui.raw)
			}
		}

		for _, scheme := range []string{"Basic", "basic", "BASIC"} {
			req, _ := http.NewRequest("POST", s.tokenURL(), strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", scheme+" "+base64.StdEncoding.EncodeToString([]byte(svcBasic)))
			if r := do(t, req); r.status != 200 || r.str("access_token") == "" {
				t.Errorf("client_credentials with %q = %d %s; want 200", scheme, r.status, r.raw)
			}
		}
	})
}

// A value sent as grant_type never reaches the log, even at debug level, while
// the log still reads: error codes and prose about tokens stay unmasked.
func TestLogsRedactValuesNotProse(t *testing.T) {
	const pasted = "hunter2-Pasted-Secret-9f8e7d6c5b4a"
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, args: []string{"--log-level", "debug"}})

		r := post(t, s.tokenURL(), svcBasic, form("grant_type", pasted))
		if r.status != 400 || r.str("error") != "unsupported_grant_type" {
			t.Fatalf("unknown grant_type = %d %s; want 400 unsupported_grant_type", r.status, r.raw)
		}
		if strings.Contains(r.raw, pasted) {
			t.Errorf("the grant_type value was echoed: %s", r.raw)
		}
		// A normal flow, and refusals whose log lines should read.
		b := newBrowser(t)
		rt := s.redeem(t, webBasic, b.code(s, "web")).str("refresh_token")
		if r := s.refresh(t, webBasic, rt); r.status != 200 {
			t.Fatalf("refresh = %d %s", r.status, r.raw)
		}
		if r := s.refresh(t, webBasic, "lk_rt_unknown"); r.str("error") != "invalid_grant" {
			t.Fatalf("unknown refresh token = %d %s", r.status, r.raw)
		}
		req, _ := http.NewRequest("POST", s.tokenURL(), strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Basic !!!")
		if r := do(t, req); r.status != 401 {
			t.Fatalf("malformed Basic = %d %s", r.status, r.raw)
		}

		s.stop() // the whole log is in once the process has exited
		logs := s.logs.String()
		if strings.Contains(logs, pasted) || strings.Contains(logs, "hunter2") {
			t.Errorf("the grant_type value reached the log:\n%s", logs)
		}
		for _, want := range []string{
			"code=unsupported_grant_type",
			"code=invalid_grant",
			"unknown refresh token",
			"malformed Basic credentials",
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("the log lost %q:\n%s", want, logs)
			}
		}
	})
}
