package rs

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Keycloak's role claims: realm_access.roles and resource_access.CLIENT.roles.
func withRoles(realm []string, clients map[string][]string) func(map[string]any) {
	return func(c map[string]any) {
		if realm != nil {
			c["realm_access"] = map[string]any{"roles": realm}
		}
		if clients != nil {
			ra := map[string]any{}
			for k, v := range clients {
				ra[k] = map[string]any{"roles": v}
			}
			c["resource_access"] = ra
		}
	}
}

// A route that requires roles admits a token carrying them (JWT or introspected)
// and refuses one without: 403 insufficient_scope naming the missing role, never
// the token's own roles; a role of another client or a realm role of the same name
// is not the client role.
func TestRequireRoles(t *testing.T) {
	clk := newClock()
	ec := ecKey(t, "ec-1")
	is := newIssuer(t, ec)
	opaque := map[string]map[string]any{}
	is.introspect = func(tok string) map[string]any {
		if c, ok := opaque[tok]; ok {
			c["active"] = true
			return c
		}
		return map[string]any{"active": false}
	}
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, Keys: NewStaticKeySet(ec),
		ClientID: "orders-api", ClientSecret: "orders-secret", DisableFeed: true, Now: clk.Now, Realm: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	claims := func(edit ...func(map[string]any)) map[string]any {
		c := accessClaims(clk.Now(), edit...)
		c["iss"] = is.URL
		return c
	}
	jwt := func(edit ...func(map[string]any)) string { return sign(t, ec, "at+jwt", claims(edit...)) }
	opaqueTok := func(name string, edit ...func(map[string]any)) string {
		opaque["lk_at_"+name] = claims(edit...)
		return "lk_at_" + name
	}
	var seen *Claims
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = ClaimsFrom(r.Context()); w.WriteHeader(204) })
	admin := v.RequireRoles(RealmRole("admin"))(ok)
	reader := v.RequireRoles(ClientRole("orders-api", "read"))(ok)
	both := v.RequireAll(Requirements{Scopes: []string{"orders:read"}, Roles: []Role{RealmRole("admin"), ClientRole("orders-api", "read")}})(ok)

	full := withRoles([]string{"user", "admin"}, map[string][]string{"orders-api": {"read"}, "account": {"view-profile"}})
	tests := []struct {
		name   string
		h      http.Handler
		tok    string
		status int
		desc   string
	}{
		{"realm role present", admin, jwt(full), 204, ""},
		{"realm role present, opaque", admin, opaqueTok("a", full), 204, ""},
		{"realm role missing", admin, jwt(withRoles([]string{"user"}, nil)), 403, "the token lacks the required realm role admin"},
		{"no roles at all", admin, jwt(), 403, "the token lacks the required realm role admin"},
		{"realm role missing, opaque", admin, opaqueTok("b", withRoles([]string{"user"}, nil)), 403, "the token lacks the required realm role admin"},
		{"client role as a realm role", admin, jwt(withRoles(nil, map[string][]string{"orders-api": {"admin"}})), 403, "realm role admin"},
		{"client role present", reader, jwt(full), 204, ""},
		{"client role present, opaque", reader, opaqueTok("c", full), 204, ""},
		{"realm role of the same name", reader, jwt(withRoles([]string{"read"}, nil)), 403, "the token lacks the required client role orders-api:read"},
		{"another client's role", reader, jwt(withRoles(nil, map[string][]string{"billing": {"read"}})), 403, "client role orders-api:read"},
		{"scope and roles", both, jwt(full), 204, ""},
		{"scope missing", both, jwt(full, func(c map[string]any) { c["scope"] = "profile" }), 403, "the token lacks a required scope"},
		{"second role missing", both, jwt(withRoles([]string{"admin"}, nil)), 403, "client role orders-api:read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, bearerReq(tt.tok))
			if rec.Code != tt.status {
				t.Fatalf("= %d %q; want %d", rec.Code, rec.Header().Get("WWW-Authenticate"), tt.status)
			}
			if tt.status == 204 {
				return
			}
			ch := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, `Bearer realm="orders", error="insufficient_scope", error_description="`) || !strings.Contains(ch, tt.desc) {
				t.Fatalf("challenge %q; want insufficient_scope with %q", ch, tt.desc)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != "insufficient_scope" || !strings.Contains(body["error_description"], tt.desc) {
				t.Fatalf("body %s", rec.Body)
			}
			// The refusal says what the route wants, not what the token holds.
			for _, held := range []string{"user", "view-profile", "account", "billing"} {
				if strings.Contains(ch, held) || strings.Contains(rec.Body.String(), held) {
					t.Fatalf("the refusal leaks %q: %q %s", held, ch, rec.Body)
				}
			}
		})
	}
	rec := httptest.NewRecorder()
	reader.ServeHTTP(rec, bearerReq(jwt(full, func(c map[string]any) { c["preferred_username"] = "alice" })))
	if rec.Code != 204 || !seen.HasRealmRole("admin") || !seen.HasClientRole("account", "view-profile") ||
		seen.HasClientRole("account", "admin") || seen.Username != "alice" || len(seen.RealmRoles) != 2 {
		t.Fatalf("= %d, claims %+v", rec.Code, seen)
	}
}

// A malformed role claim makes the token malformed rather than role-less.
func TestValidate_MalformedRoles(t *testing.T) {
	clk := newClock()
	ec := ecKey(t, "ec-1")
	v := staticValidator(t, clk, ec)
	for _, bad := range []func(map[string]any){
		func(c map[string]any) { c["realm_access"] = "admin" },
		func(c map[string]any) { c["realm_access"] = map[string]any{"roles": "admin"} },
		func(c map[string]any) { c["resource_access"] = map[string]any{"api": []string{"read"}} },
	} {
		if _, err := v.Validate(t.Context(), sign(t, ec, "at+jwt", accessClaims(clk.Now(), bad))); err == nil || !strings.Contains(err.Error(), "malformed claims") {
			t.Fatalf("= %v; want malformed claims", err)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Role
		bad  bool
		str  string // String(), when it is not in
	}{
		{"admin", RealmRole("admin"), false, ""},
		{"orders-api:read", ClientRole("orders-api", "read"), false, ""},
		{"orders-api/read", ClientRole("orders-api", "read"), false, "orders-api:read"},
		{"urn:orders:api:read", ClientRole("urn:orders:api", "read"), false, "urn:orders:api/read"},
		{"urn:orders:api/read", ClientRole("urn:orders:api", "read"), false, ""},
		{"api/orders:read", ClientRole("api", "orders:read"), false, ""},
		{"/orders:read", RealmRole("orders:read"), false, ""},
		{"/admin", RealmRole("admin"), false, "admin"},
		{"", Role{}, true, ""},
		{":read", Role{}, true, ""},
		{"api:", Role{}, true, ""},
		{"api/", Role{}, true, ""},
		{"a/b/c", Role{}, true, ""},
		{"a b", Role{}, true, ""},
		{`x"y`, Role{}, true, ""},
		{"a\nb", Role{}, true, ""},
	} {
		got, err := ParseRole(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseRole(%q) = %+v, %v", tt.in, got, err)
		}
		if err != nil {
			continue
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if got.String() != str {
			t.Errorf("String() = %q; want %q", got.String(), str)
		}
		if back, err := ParseRole(got.String()); err != nil || back != got {
			t.Errorf("ParseRole(%q) = %+v, %v; want %+v back", got.String(), back, err, got)
		}
	}
}
