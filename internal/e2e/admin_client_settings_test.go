package e2e

import (
	"slices"
	"testing"

	"github.com/latchkey/latchkey/internal/grants"
)

// The DPoP, PAR and token-exchange client settings through the admin API: set on
// create, read back, changed on replace, and refused with RFC 9457 problems that
// name the field where they make no sense.
func TestAdmin_ClientDPoPPARAndExchangeSettings(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)

		r := want(t, "create app", a.do("PUT", "/admin/realms/acme/clients/app", map[string]any{
			"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{callback},
			"dpop_bound_access_tokens": true, "require_pushed_authorization_requests": true}), 201)
		if r.body["dpop_bound_access_tokens"] != true || r.body["require_pushed_authorization_requests"] != true {
			t.Fatalf("created app: %s", r.raw)
		}
		r = want(t, "get app", a.do("GET", "/admin/realms/acme/clients/app", nil), 200)
		if r.body["dpop_bound_access_tokens"] != true || r.body["require_pushed_authorization_requests"] != true {
			t.Fatalf("get app: %s", r.raw)
		}
		r = want(t, "replace app", a.do("PUT", "/admin/realms/acme/clients/app", map[string]any{
			"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{callback},
			"require_pushed_authorization_requests": true}, "If-Match", r.header.Get("ETag")), 200)
		if _, ok := r.body["dpop_bound_access_tokens"]; ok || r.body["require_pushed_authorization_requests"] != true {
			t.Fatalf("replaced app: %s", r.raw)
		}
		if r = want(t, "get app again", a.do("GET", "/admin/realms/acme/clients/app", nil), 200); r.body["dpop_bound_access_tokens"] != nil {
			t.Fatalf("get replaced app: %s", r.raw)
		}

		r = wantProblem(t, "PAR without authorization_code", a.do("PUT", "/admin/realms/acme/clients/svc3", map[string]any{
			"grant_types": []string{"client_credentials"}, "require_pushed_authorization_requests": true}), 400)
		if !slices.Contains(fieldErrors(r), "require_pushed_authorization_requests") {
			t.Fatalf("PAR without authorization_code: %s", r.raw)
		}
		r = wantProblem(t, "audiences without the exchange grant", a.do("PUT", "/admin/realms/acme/clients/svc3", map[string]any{
			"grant_types": []string{"client_credentials"}, "token_exchange_audiences": []string{"orders-api"}}), 400)
		if !slices.Contains(fieldErrors(r), "token_exchange_audiences") {
			t.Fatalf("audiences without the exchange grant: %s", r.raw)
		}
		r = wantProblem(t, "bad audiences", a.bad("PUT", "/admin/realms/acme/clients/svc3", map[string]any{
			"grant_types":              []string{"client_credentials", grants.TokenExchangeType},
			"token_exchange_audiences": []string{"", "orders api", "orders-api", "orders-api"}}), 400)
		if f := fieldErrors(r); !slices.Contains(f, "token_exchange_audiences[0]") || !slices.Contains(f, "token_exchange_audiences[1]") ||
			!slices.Contains(f, "token_exchange_audiences[3]") || slices.Contains(f, "token_exchange_audiences[2]") {
			t.Fatalf("bad audiences: %s", r.raw)
		}
		wantProblem(t, "a setting that is no bool", a.bad("PUT", "/admin/realms/acme/clients/svc3", map[string]any{
			"grant_types": []string{"client_credentials"}, "dpop_bound_access_tokens": "yes"}), 400)
		wantProblem(t, "audiences that are no list", a.bad("PUT", "/admin/realms/acme/clients/svc3", map[string]any{
			"grant_types": []string{"client_credentials"}, "token_exchange_audiences": "orders-api"}), 400)

		// Stored and read back once the token-exchange grant is offered (its row in
		// the grants table comes with the grant itself).
		if _, offered := grants.Lookup(grants.TokenExchangeType); offered {
			auds := []string{"orders-api", "https://api.example/orders"}
			r = want(t, "create exchanger", a.do("PUT", "/admin/realms/acme/clients/exchanger", map[string]any{
				"grant_types": []string{"client_credentials", grants.TokenExchangeType}, "token_exchange_audiences": auds}), 201)
			if got := strs(r.body["token_exchange_audiences"]); !slices.Equal(got, auds) {
				t.Fatalf("created exchanger: %s", r.raw)
			}
			if r = want(t, "get exchanger", a.do("GET", "/admin/realms/acme/clients/exchanger", nil), 200); !slices.Equal(strs(r.body["token_exchange_audiences"]), auds) {
				t.Fatalf("get exchanger: %s", r.raw)
			}
		}
	})
}
