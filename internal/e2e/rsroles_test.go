package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/rs"
	"github.com/latchkey/latchkey/storage"
)

// rolesAPI is a Go API protected by rs with roles per route: GET /orders/{id}
// needs realm role clerk; DELETE /orders/{id} also orders:write and the client
// role orders-api:admin.
func rolesAPI(t *testing.T, issuer string) string {
	t.Helper()
	v, err := rs.New(t.Context(), rs.Options{Issuer: issuer, Audience: ordersAud, ClientID: "orders-api", ClientSecret: ordersAPISecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	who := func(w http.ResponseWriter, r *http.Request) {
		c, _ := rs.ClaimsFrom(r.Context())
		json.NewEncoder(w).Encode(map[string]string{"sub": c.Subject, "client_id": c.ClientID})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", v.RequireRoles(rs.RealmRole("clerk"))(http.HandlerFunc(who)))
	mux.Handle("DELETE /orders/{id}", v.RequireAll(rs.Requirements{
		Scopes: []string{"orders:write"},
		Roles:  []rs.Role{rs.RealmRole("clerk"), rs.ClientRole("orders-api", "admin")},
	})(http.HandlerFunc(who)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Real tokens with roles (a client's service-account roles, JWT and opaque) meet a
// Go API with rs and the gate, each requiring roles per route: a token without the
// route's role is refused with 403 insufficient_scope naming it, one with it is let
// through; once the client is given the role, its next token passes.
func TestRS_RolesPerRoute(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s, p := startBehindProxy(t, db)
		st := openStore(t, db)
		ctx := t.Context()
		clerk, admin := storage.RoleRef{Name: "clerk"}, storage.RoleRef{ClientID: "orders-api", Name: "admin"}
		for _, r := range []storage.Role{{Realm: "acme", Name: "clerk"}, {Realm: "acme", ClientID: "orders-api", Name: "admin"}} {
			if err := st.CreateRole(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		setRoles := func(id string, refs ...storage.RoleRef) {
			if _, err := st.UpdateClient(ctx, "acme", id, func(c *storage.Client) ([]storage.AuditEvent, error) {
				c.ServiceAccountRoles = refs
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		setRoles("caller", clerk)
		setRoles("opq", clerk, admin)

		api := rolesAPI(t, p.issuer())
		gate := startGate(t, p.issuer(), standIn(t), "--require-role", "clerk",
			"--route", "DELETE /orders/=scope:orders:write,role:orders-api:admin")

		clerkTok := apiToken(t, s, callerBasic, "orders:read orders:write")
		c := claimsOf(t, clerkTok)
		if !reflect.DeepEqual(c["realm_access"], map[string]any{"roles": []any{"clerk"}}) || c["resource_access"] != nil {
			t.Fatalf("caller's token: realm_access %v, resource_access %v", c["realm_access"], c["resource_access"])
		}
		opaque := apiToken(t, s, "opq:"+opqSecret, "orders:read")
		web := s.redeem(t, webBasic, newBrowser(t).code(s, "web")).str("access_token") // alice has no roles

		for _, base := range []string{api, gate} {
			for _, tt := range []struct {
				method, tok string
				status      int
				desc        string
			}{
				{"GET", clerkTok, 200, ""},
				{"GET", opaque, 200, ""},
				{"GET", web, 403, "realm role clerk"},
				{"DELETE", clerkTok, 403, "client role orders-api:admin"},
				{"DELETE", opaque, 403, "required scope"}, // the role, but not orders:write
			} {
				st, ch, body := call(t, tt.method, base+"/orders/7", tt.tok)
				if st != tt.status {
					t.Fatalf("%s %s: %d %q %v; want %d", base, tt.method, st, ch, body, tt.status)
				}
				if st == 403 && (!strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, tt.desc)) {
					t.Fatalf("%s %s: challenge %q; want insufficient_scope with %q", base, tt.method, ch, tt.desc)
				}
			}
		}
		if _, _, body := call(t, "GET", gate+"/orders/7", opaque); body["roles"] != "clerk orders-api:admin" {
			t.Fatalf("X-Auth-Roles at the upstream: %v", body)
		}

		// Given the role, the client's next token carries it (the server's client
		// cache follows the change feed).
		setRoles("caller", clerk, admin)
		var adminTok string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			adminTok = apiToken(t, s, callerBasic, "orders:read orders:write")
			if claimsOf(t, adminTok)["resource_access"] != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the new role never reached the client's tokens")
			}
		}
		for _, base := range []string{api, gate} {
			if st, ch, body := call(t, "DELETE", base+"/orders/7", adminTok); st != 200 || body["client_id"] != "caller" {
				t.Fatalf("%s DELETE with the role: %d %q %v", base, st, ch, body)
			}
		}
	})
}
