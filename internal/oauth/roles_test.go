package oauth

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/storage"
)

const (
	webBasic = "web:web-secret-123-0123456789abcdefghijklmnop"
	svcBasic = "svc:svc-secret-123-0123456789abcdefghijklmnop"
	opqBasic = "opq:opq-secret-789-0123456789abcdefghijklmnop"
)

// withRoles gives the seeded realm Keycloak-like roles: alice has realm role
// editor (a composite of user and svc's client role read) and web's client role
// viewer; svc's and opq's own tokens carry realm role robot and svc:read; web has
// an opaque twin (webopq) and a lean one (weblean).
func withRoles(t *testing.T, inst *instance) {
	t.Helper()
	ctx := t.Context()
	st := inst.store
	for _, r := range []storage.Role{
		{Name: "user"},
		{Name: "robot"},
		{ClientID: "svc", Name: "read"},
		{ClientID: "web", Name: "viewer"},
		{Name: "editor", Composites: []storage.RoleRef{{Name: "user"}, {ClientID: "svc", Name: "read"}}},
	} {
		r.Realm = "acme"
		if err := st.CreateRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	alice, err := st.GetUserByUsername(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateUser(ctx, "acme", alice.ID, func(u *storage.User) ([]storage.AuditEvent, error) {
		u.Name, u.GivenName, u.FamilyName = "", "Alice", "Liddell"
		u.Roles = []storage.RoleRef{{Name: "editor"}, {ClientID: "web", Name: "viewer"}}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"svc", "opq"} {
		if _, err := st.UpdateClient(ctx, "acme", id, func(c *storage.Client) ([]storage.AuditEvent, error) {
			c.ServiceAccountRoles = []storage.RoleRef{{Name: "robot"}, {ClientID: "svc", Name: "read"}}
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	web, err := st.GetClient(ctx, "acme", "web")
	if err != nil {
		t.Fatal(err)
	}
	for id, edit := range map[string]func(*storage.Client){
		"webopq":  func(c *storage.Client) { c.Tokens.AccessTokenFormat = "opaque" },
		"weblean": func(c *storage.Client) { c.LeanAccessTokens = true },
	} {
		c := web
		c.ID = id
		c.SecretHash = clientsecret.NewHasher(masterKey).Hash("acme", id, strings.TrimPrefix(webBasic, "web:"))
		edit(&c)
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

// claimsOf reads an access token's claims: a JWT verified with the realm's JWKS, an
// opaque one by introspection.
func claimsOf(t *testing.T, inst *instance, tok string) map[string]any {
	t.Helper()
	if strings.HasPrefix(tok, "lk_at_") {
		return inst.introspect(t, "acme", tok).body
	}
	_, c := verifyLocally(t, fetchJWKS(t, inst, "acme"), tok)
	return c
}

// jsonOf is v as its JSON would decode into a map, for comparing with claims.
func asJSON(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

var profileClaims = map[string]any{"preferred_username": "alice", "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell"}
var emailClaims = map[string]any{"email": "alice@example.com", "email_verified": true}
var aliceRealm = asJSON(map[string]any{"roles": []string{"editor", "user"}})
var aliceClients = asJSON(map[string]any{"svc": map[string]any{"roles": []string{"read"}}, "web": map[string]any{"roles": []string{"viewer"}}})

// Access tokens, JWT and opaque alike, and their introspection carry the profile
// and email claims and Keycloak's realm_access / resource_access (effective roles,
// composites expanded) per granted scope; an openid-only request gets the client's
// default scopes; a lean client's access tokens carry roles but no profile claims
// (its ID token keeps them); ID tokens and userinfo have given_name / family_name.
func TestAccessToken_RolesAndProfileClaimsPerScope(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		withRoles(t, inst)
		type want struct {
			scope          string
			profile, email bool
			roles          bool
		}
		tests := []struct {
			client, scope string
			want          want
		}{
			{"web", "openid profile email roles", want{"openid profile email roles", true, true, true}},
			{"web", "openid", want{"openid profile email roles", true, true, true}}, // the default scopes
			{"web", "openid profile", want{"openid profile", true, false, false}},
			{"web", "openid roles", want{"openid roles", false, false, true}},
			{"web", "openid email offline_access", want{"openid email offline_access", false, true, false}},
			{"webopq", "openid", want{"openid profile email roles", true, true, true}},
			{"webopq", "openid profile", want{"openid profile", true, false, false}},
			{"weblean", "openid", want{"openid profile email roles", false, false, true}},
		}
		for _, tt := range tests {
			t.Run(tt.client+" "+tt.scope, func(t *testing.T) {
				basic := strings.Replace(webBasic, "web:", tt.client+":", 1)
				r := signInTokens(t, inst, newBrowser(t), tt.client, basic, tt.scope)
				if got := str(r, "scope"); got != tt.want.scope {
					t.Fatalf("scope = %q; want %q", got, tt.want.scope)
				}
				at := str(r, "access_token")
				if strings.HasPrefix(at, "lk_at_") != (tt.client == "webopq") {
					t.Fatalf("access token format: %.10s", at)
				}
				c := claimsOf(t, inst, at)
				checkClaims(t, c, profileClaims, tt.want.profile)
				checkClaims(t, c, emailClaims, tt.want.email)
				if tt.want.roles {
					if !reflect.DeepEqual(c["realm_access"], aliceRealm) || !reflect.DeepEqual(c["resource_access"], aliceClients) {
						t.Fatalf("roles: realm_access %v, resource_access %v", c["realm_access"], c["resource_access"])
					}
				} else if c["realm_access"] != nil || c["resource_access"] != nil {
					t.Fatalf("roles without the roles scope: %v %v", c["realm_access"], c["resource_access"])
				}
				// Introspection of any access token says the same, and RFC 7662 username.
				in := inst.introspect(t, "acme", at).body
				for _, k := range []string{"preferred_username", "name", "given_name", "family_name", "email", "email_verified", "realm_access", "resource_access"} {
					if !reflect.DeepEqual(in[k], c[k]) {
						t.Fatalf("introspection %s = %v; the token says %v", k, in[k], c[k])
					}
				}
				if in["active"] != true || in["username"] != "alice" {
					t.Fatalf("introspection %v", in)
				}
				// The ID token keeps the profile claims, lean or not.
				if tt.want.scope == "openid profile email roles" {
					_, id := verifyLocally(t, fetchJWKS(t, inst, "acme"), str(r, "id_token"))
					checkClaims(t, id, profileClaims, true)
					checkClaims(t, id, emailClaims, true)
				}
			})
		}
		// userinfo: given_name and family_name with profile.
		r := signInTokens(t, inst, newBrowser(t), "web", webBasic, "openid profile")
		req := mustReq(t, "GET", inst.issuer("acme")+userinfoPath)
		req.Header.Set("Authorization", "Bearer "+str(r, "access_token"))
		ui := do(t, req)
		if ui.status != 200 {
			t.Fatalf("userinfo = %d %s", ui.status, ui.raw)
		}
		checkClaims(t, ui.body, profileClaims, true)
		// The account representation (keycloak-js loadUserProfile) takes them too.
		req = mustReq(t, "GET", inst.issuer("acme")+accountPath)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+str(r, "access_token"))
		if acct := do(t, req); acct.body["firstName"] != "Alice" || acct.body["lastName"] != "Liddell" {
			t.Fatalf("account = %d %s", acct.status, acct.raw)
		}
		// Discovery names the default scopes and the new claims.
		d := do(t, mustReq(t, "GET", inst.issuer("acme")+"/.well-known/openid-configuration"))
		has := func(k string, want ...string) {
			got, _ := d.body[k].([]any)
			for _, w := range want {
				if !slices.Contains(got, any(w)) {
					t.Fatalf("%s = %v; want %s in it", k, got, w)
				}
			}
		}
		has("scopes_supported", "roles", "email", "profile")
		has("claims_supported", "realm_access", "resource_access", "given_name", "family_name", "preferred_username")
		// A scope the client neither has nor defaults to is still refused.
		loc := newBrowser(t).get(authURL(inst, "acme", "scope", "openid orders:read")).location
		if loc == nil || loc.Query().Get("error") != "invalid_scope" {
			t.Fatalf("openid orders:read: %v", loc)
		}
	})
}

// checkClaims says c has every one of want (present) or none of its keys.
func checkClaims(t *testing.T, c, want map[string]any, present bool) {
	t.Helper()
	for k, v := range want {
		if present && c[k] != v {
			t.Fatalf("%s = %v; want %v (claims %v)", k, c[k], v, c)
		}
		if !present && c[k] != nil {
			t.Fatalf("%s = %v; want none", k, c[k])
		}
	}
}

// A client's own tokens (client credentials) carry its service-account roles,
// effective, and preferred_username service-account-CLIENT, JWT and opaque; the
// introspection username is the same.
func TestClientCredentials_ServiceAccountRoles(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		withRoles(t, inst)
		wantRealm := asJSON(map[string]any{"roles": []string{"robot"}})
		wantClients := asJSON(map[string]any{"svc": map[string]any{"roles": []string{"read"}}})
		for _, tt := range []struct{ id, basic string }{{"svc", svcBasic}, {"opq", opqBasic}} {
			at := inst.clientCredentials(t, "acme", tt.basic).body["access_token"].(string)
			c := claimsOf(t, inst, at)
			if !reflect.DeepEqual(c["realm_access"], wantRealm) || !reflect.DeepEqual(c["resource_access"], wantClients) ||
				c["preferred_username"] != "service-account-"+tt.id {
				t.Fatalf("%s: claims %v", tt.id, c)
			}
			in := inst.introspect(t, "acme", at).body
			if in["username"] != "service-account-"+tt.id || !reflect.DeepEqual(in["realm_access"], wantRealm) {
				t.Fatalf("%s: introspection %v", tt.id, in)
			}
		}
		// A client without service-account roles: no role claims at all.
		at := inst.clientCredentials(t, "acme", "svc2:svc2-secret-456-0123456789abcdefghijklmnop").body["access_token"].(string)
		if c := claimsOf(t, inst, at); c["realm_access"] != nil || c["resource_access"] != nil || c["preferred_username"] != "service-account-svc2" {
			t.Fatalf("svc2: claims %v", c)
		}
	})
}

// A refresh recomputes the roles from the user's mappings now.
func TestRefresh_ShowsCurrentRoles(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		withRoles(t, inst)
		r := signInTokens(t, inst, newBrowser(t), "web", webBasic, "openid roles offline_access")
		if c := claimsOf(t, inst, str(r, "access_token")); !reflect.DeepEqual(c["realm_access"], aliceRealm) {
			t.Fatalf("first token: %v", c["realm_access"])
		}
		alice, _ := inst.store.GetUserByUsername(t.Context(), "acme", "alice")
		if _, err := inst.store.UpdateUser(t.Context(), "acme", alice.ID, func(u *storage.User) ([]storage.AuditEvent, error) {
			u.Roles = []storage.RoleRef{{Name: "robot"}}
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		inst.clock.Add(time.Second)
		r2 := inst.refresh(t, webBasic, str(r, "refresh_token"))
		if r2.status != 200 {
			t.Fatalf("refresh = %d %s", r2.status, r2.raw)
		}
		c := claimsOf(t, inst, str(r2, "access_token"))
		if !reflect.DeepEqual(c["realm_access"], asJSON(map[string]any{"roles": []string{"robot"}})) || c["resource_access"] != nil {
			t.Fatalf("after the change: %v %v", c["realm_access"], c["resource_access"])
		}
	})
}
