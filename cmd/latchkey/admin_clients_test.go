package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// clientPutAPI is a stand-in for the admin API that keeps the body of each
// client PUT and answers with it.
func clientPutAPI(t *testing.T) (*httptest.Server, *[]map[string]any) {
	var bodies []map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/master/protocol/openid-connect/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"at-1","token_type":"Bearer","expires_in":300}`)
	})
	mux.HandleFunc("PUT /admin/realms/acme/clients/{client}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("PUT body %q: %v", b, err)
		}
		bodies = append(bodies, m)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, &bodies
}

// clients put's DPoP, PAR and token-exchange flags set those fields over the
// file's; without them the file's settings go as they are.
func TestAdminCLI_ClientsPutSettingFlags(t *testing.T) {
	s, bodies := clientPutAPI(t)
	getenv := env("LATCHKEY_ADMIN_SERVER", s.URL, "LATCHKEY_ADMIN_CLIENT_ID", "ops", "LATCHKEY_ADMIN_CLIENT_SECRET", "ops-secret")
	file := filepath.Join(t.TempDir(), "svc.yaml")
	os.WriteFile(file, []byte("id: svc\ngrant_types: [client_credentials]\ndpop_bound_access_tokens: true\ntoken_exchange_audiences: [old]\n"), 0o600)

	tests := []struct {
		flags []string
		want  map[string]any // the settings' fields in the PUT body; nil: absent
	}{
		{nil, map[string]any{"dpop_bound_access_tokens": true, "require_pushed_authorization_requests": nil,
			"token_exchange_audiences": []any{"old"}}},
		{[]string{"--dpop-bound-access-tokens=false", "--require-pushed-authorization-requests",
			"--token-exchange-audience", "orders-api", "--token-exchange-audience", "https://api.example"},
			map[string]any{"dpop_bound_access_tokens": false, "require_pushed_authorization_requests": true,
				"token_exchange_audiences": []any{"orders-api", "https://api.example"}}},
	}
	for _, tc := range tests {
		*bodies = nil
		args := append([]string{"admin", "clients", "put", "--in", "acme", "-f", file, "-o", "json"}, tc.flags...)
		if code, _, errOut := runCLI(t, getenv, args...); code != 0 || len(*bodies) != 1 {
			t.Fatalf("%v = %d %q, %d PUTs", tc.flags, code, errOut, len(*bodies))
		}
		body := (*bodies)[0]
		for field, want := range tc.want {
			if got := body[field]; !reflect.DeepEqual(got, want) {
				t.Errorf("%v: %s = %v, want %v", tc.flags, field, got, want)
			}
		}
	}
}
