package e2e

import (
	"reflect"
	"strings"
	"testing"
)

// rolesSeedFile is the default seed with Keycloak-like roles: realm roles user and
// editor (a composite of user and svc's client role read), alice with editor and
// her given and family names, svc's own tokens with realm role user.
func rolesSeedFile(t *testing.T) string {
	return seedWith(t,
		"  - name: acme\n", "  - name: acme\n    roles:\n      - name: user\n      - name: editor\n        composites: {realm: [user], client: {svc: [read]}}\n",
		"        scopes: [orders:read, orders:write]\n", "        scopes: [orders:read, orders:write]\n        roles: [{name: read}]\n        service_account_roles: {realm: [user]}\n",
		"        name: Alice Liddell\n", "        given_name: Alice\n        family_name: Liddell\n        realm_roles: [editor]\n",
	)
}

// The token shape keycloak-js and APIs written for Keycloak read, from a real server
// seeded with roles: a request for openid alone gets the default scopes, and the
// access token carries the profile and email claims and realm_access /
// resource_access with the composite expanded; introspection says the same; a
// client's own token carries its service-account roles and name.
func TestTokens_KeycloakShape(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: rolesSeedFile(t)})
		b := newBrowser(t)
		u := s.authURL("web", "scope", "openid")
		p := b.get(u)
		p = b.do(b.loginRequest(p, u, "username", "alice", "password", alicePass))
		if p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatalf("no code (%d %v): %s", p.status, p.location, p.body)
		}
		r := s.redeem(t, webBasic, p.location.Query().Get("code"))
		if r.status != 200 || r.str("scope") != "openid profile email roles" {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}
		at := claimsOf(t, r.str("access_token"))
		want := map[string]any{
			"preferred_username": "alice", "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
			"email": "alice@example.com", "email_verified": true,
			"realm_access":    map[string]any{"roles": []any{"editor", "user"}},
			"resource_access": map[string]any{"svc": map[string]any{"roles": []any{"read"}}},
		}
		in := s.introspect(t, svcBasic, r.str("access_token"))
		for k, v := range want {
			if !reflect.DeepEqual(at[k], v) {
				t.Errorf("access token %s = %v; want %v", k, at[k], v)
			}
			if !reflect.DeepEqual(in.body[k], v) {
				t.Errorf("introspection %s = %v; want %v", k, in.body[k], v)
			}
		}
		if in.str("username") != "alice" {
			t.Errorf("introspection username = %q", in.str("username"))
		}
		id := claimsOf(t, r.str("id_token"))
		if id["given_name"] != "Alice" || id["family_name"] != "Liddell" || id["realm_access"] != nil {
			t.Errorf("ID token %v", id)
		}

		cc := post(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials"))
		c := claimsOf(t, cc.str("access_token"))
		if c["preferred_username"] != "service-account-svc" || !reflect.DeepEqual(c["realm_access"], map[string]any{"roles": []any{"user"}}) ||
			!strings.Contains(c["scope"].(string), "orders:read") {
			t.Errorf("client credentials token %v", c)
		}
	})
}
