package oauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage/sqlite"
)

func fuzzInstance(f *testing.F) *instance {
	st, err := sqlite.Open(f.Context(), sqlite.Config{Path: filepath.Join(f.TempDir(), "fuzz.db")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	return newInstance(f, st, &clock{t: time.Now()}, true)
}

// Whatever arrives at the token endpoint, the answer is an RFC 6749 JSON body with a
// 2xx or 4xx status: never a 500, never a panic.
func FuzzTokenEndpoint(f *testing.F) {
	inst := fuzzInstance(f)
	f.Add("grant_type=client_credentials", "svc:svc-secret-123-0123456789abcdefghijklmnop", "application/x-www-form-urlencoded")
	f.Add("grant_type=client_credentials&scope=orders:read&resource=https://api.example/orders", "svc:svc-secret-123-0123456789abcdefghijklmnop", "application/x-www-form-urlencoded")
	f.Add("grant_type=client_credentials&client_id=svc&client_secret=svc-secret-123-0123456789abcdefghijklmnop", "", "application/x-www-form-urlencoded")
	f.Add("grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.e30.", "", "application/x-www-form-urlencoded")
	f.Add("grant_type=%zz&&=", "svc:x", "application/x-www-form-urlencoded; charset=utf-8")
	f.Add("{}", "", "application/json")
	f.Fuzz(func(t *testing.T, body, basic, contentType string) {
		req := httptest.NewRequest("POST", "/realms/acme"+tokenPath, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if id, secret, ok := strings.Cut(basic, ":"); ok {
			req.SetBasicAuth(id, secret)
		}
		rec := httptest.NewRecorder()
		inst.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("not JSON: %q", rec.Body)
		}
		if rec.Code == http.StatusOK && out["access_token"] == nil || rec.Code != http.StatusOK && out["error"] == nil {
			t.Fatalf("status %d with body %s", rec.Code, rec.Body)
		}
	})
}

// Whatever is presented for introspection, the answer is 200 and either an active
// token's claims or exactly {"active":false}; a forged token is never active.
func FuzzIntrospection(f *testing.F) {
	inst := fuzzInstance(f)
	good := tokenFor(f, inst)
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add("eyJhbGciOiJub25lIn0." + parts[1] + ".")
	f.Add("eyJhbGciOiJIUzI1NiJ9." + parts[1] + "." + parts[2])
	f.Add("lk_at_x")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		req := httptest.NewRequest("POST", "/realms/acme"+introspectPath, strings.NewReader(form("token", tok).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", "svc-secret-123-0123456789abcdefghijklmnop")
		rec := httptest.NewRecorder()
		inst.handler.ServeHTTP(rec, req)
		if tok == "" {
			if rec.Code != 400 {
				t.Fatalf("empty token: %d", rec.Code)
			}
			return
		}
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		if tok != good && strings.TrimSpace(rec.Body.String()) != `{"active":false}` {
			t.Fatalf("a token that was never issued is active: %q -> %s", tok, rec.Body)
		}
	})
}

func tokenFor(f *testing.F, inst *instance) string {
	req := httptest.NewRequest("POST", "/realms/acme"+tokenPath, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", "svc-secret-123-0123456789abcdefghijklmnop")
	rec := httptest.NewRecorder()
	inst.handler.ServeHTTP(rec, req)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	tok, _ := out["access_token"].(string)
	if tok == "" {
		f.Fatalf("no token: %s", rec.Body)
	}
	return tok
}
