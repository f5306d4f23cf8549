package seed

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// rolesSeed declares realm roles (a composite among them), client roles, users'
// role mappings and names, and a service client's roles and options.
const rolesSeed = `realms:
  - name: acme
    roles:
      - name: user
        description: Signs in
      - name: editor
        composites:
          realm: [user]
          client: {api: [read]}
    clients:
      - id: api
        secret: api-secret-123-0123456789abcdefghijklmnop
        grant_types: [client_credentials]
        roles:
          - name: read
          - name: write
            composites: {client: {api: [read]}}
        service_account_roles:
          realm: [user]
          client: {api: [write]}
        default_scopes: [roles]
        lean_access_tokens: true
      - id: spa
        redirect_uris: [http://127.0.0.1:9999/cb]
        grant_types: [authorization_code, refresh_token]
        roles:
          - name: viewer
    users:
      - username: alice
        password: alice-password-1
        given_name: Alice
        family_name: Liddell
        realm_roles: [user, editor]
        client_roles:
          spa: [viewer]
`

func TestParseReadsRoles(t *testing.T) {
	f, err := Parse("seed.yaml", []byte(rolesSeed))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Realms[0]
	if len(r.Roles) != 2 || r.Roles[1].Name != "editor" || !reflect.DeepEqual(r.Roles[1].Composites.Client, map[string][]string{"api": {"read"}}) {
		t.Fatalf("realm roles = %+v", r.Roles)
	}
	api := r.Clients[0]
	if len(api.Roles) != 2 || api.Roles[1].Name != "write" || !api.LeanAccessTokens ||
		!reflect.DeepEqual(api.DefaultScopes, []string{"roles"}) || !reflect.DeepEqual(api.ServiceAccountRoles.Realm, []string{"user"}) {
		t.Fatalf("api = %+v", api)
	}
	// A client that says nothing gets Keycloak's default scopes.
	if spa := r.Clients[1]; !reflect.DeepEqual(spa.DefaultScopes, []string{"profile", "email", "roles"}) {
		t.Fatalf("spa's default scopes = %q", spa.DefaultScopes)
	}
	if u := r.Users[0]; u.GivenName != "Alice" || u.FamilyName != "Liddell" || !reflect.DeepEqual(u.RealmRoles, []string{"user", "editor"}) ||
		!reflect.DeepEqual(u.ClientRoles, map[string][]string{"spa": {"viewer"}}) {
		t.Fatalf("alice = %+v", u)
	}
}

// asJSON rewrites a YAML document as JSON (which is YAML too).
func asJSON(t *testing.T, doc string) string {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Bad role declarations and references are refused with the file, line and
// field; the same document written as JSON gets the same verdict.
func TestParseRefusesBadRoles(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(rolesSeed, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(rolesSeed, old, new, 1)
	}
	cases := []struct{ name, yaml, want string }{
		{"unknown realm role of a user", edit("realm_roles: [user, editor]", "realm_roles: [user, admin]"),
			`realms[0].users[0].realm_roles[1]: unknown role "admin"`},
		{"unknown client role of a user", edit("spa: [viewer]", "spa: [viewer, owner]"),
			`realms[0].users[0].client_roles.spa[1]: unknown role "owner" of client "spa"`},
		{"a client role named as a realm role", edit("realm_roles: [user, editor]", "realm_roles: [user, viewer]"),
			`realms[0].users[0].realm_roles[1]: unknown role "viewer"`},
		{"roles of a client that is not there", edit("spa: [viewer]", "web: [viewer]"),
			`realms[0].users[0].client_roles.web[0]: unknown role "viewer" of client "web"`},
		{"unknown composite", edit("realm: [user]\n          client: {api: [read]}", "realm: [user, ghost]\n          client: {api: [read]}"),
			`realms[0].roles[1].composites.realm[1]: unknown role "ghost"`},
		{"unknown composite of a client role", edit("composites: {client: {api: [read]}}", "composites: {client: {spa: [read]}}"),
			`realms[0].clients[0].roles[1].composites.client.spa[0]: unknown role "read" of client "spa"`},
		{"unknown service-account role", edit("client: {api: [write]}", "client: {api: [delete]}"),
			`realms[0].clients[0].service_account_roles.client.api[0]: unknown role "delete" of client "api"`},
		{"service-account roles without client credentials", edit("        roles:\n          - name: viewer\n", "        roles:\n          - name: viewer\n        service_account_roles: {realm: [user]}\n"),
			`realms[0].clients[1].service_account_roles: service_account_roles are the roles of client_credentials tokens`},
		{"duplicate realm role", edit("      - name: editor\n", "      - name: user\n      - name: editor\n"),
			`realms[0].roles[1].name: duplicate role "user"`},
		{"duplicate client role", edit("          - name: write\n", "          - name: read\n          - name: write\n"),
			`realms[0].clients[0].roles[1].name: duplicate role "read"`},
		{"bad role name", edit("      - name: user\n", "      - name: the user\n"),
			`realms[0].roles[0].name: role name "the user" must be 1-128 letters, digits or . _ : -`},
		{"role includes itself", edit("realm: [user]\n          client: {api: [read]}", "realm: [editor]"),
			`realms[0].roles[1].composites: a role cannot include itself`},
		{"role named twice", edit("realm_roles: [user, editor]", "realm_roles: [user, user]"),
			`realms[0].users[0].realm_roles[1]: role "user" is named twice`},
		{"bad default scope", edit("default_scopes: [roles]", `default_scopes: ["two words"]`),
			`realms[0].clients[0].default_scopes[0]: "two words" is not a scope token`},
		{"unknown key in composites", edit("composites: {client: {api: [read]}}", "composites: {clients: {api: [read]}}"),
			`realms[0].clients[0].roles[1].composites: unknown field "clients"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("seed.yaml", []byte(tc.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), "seed.yaml:") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant seed.yaml:LINE: ...%s", err, tc.want)
			}
			_, errJ := Parse("seed.yaml", []byte(asJSON(t, tc.yaml)))
			// JSON is on one line: the verdict is the same but for the line.
			strip := func(e error) string { _, rest, _ := strings.Cut(e.Error(), ": "); return rest }
			if errJ == nil || strip(errJ) != strip(err) {
				t.Fatalf("JSON says %v, YAML says %v", errJ, err)
			}
		})
	}
	if _, err := Parse("seed.json", []byte(asJSON(t, rolesSeed))); err != nil {
		t.Fatalf("the good seed as JSON: %v", err)
	}
}

// Applying the seed stores the roles, the users' and the client's role
// mappings and options; applying it again changes nothing.
func TestApplyStoresRoles(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "seed.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, err := masterkey.Parse("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	a := &Applier{Store: st, Secrets: clientsecret.NewHasher(mk), Password: password.Params{Memory: 64, Time: 1, Threads: 1},
		MACKey: PasswordMACKey(mk), Now: time.Now}
	f, err := Parse("seed.yaml", []byte(rolesSeed))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Apply(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 9 { // realm, 2 clients, 5 roles, 1 user
		t.Fatalf("first apply: %+v", res)
	}
	roles, err := st.ListRoles(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range roles {
		names = append(names, r.ClientID+"/"+r.Name)
	}
	if want := []string{"/editor", "/user", "api/read", "api/write", "spa/viewer"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("roles = %q, want %q", names, want)
	}
	if roles[0].Description != "" || roles[1].Description != "Signs in" ||
		!reflect.DeepEqual(roles[0].Composites, []storage.RoleRef{{Name: "user"}, {ClientID: "api", Name: "read"}}) {
		t.Fatalf("realm roles = %+v", roles[:2])
	}
	alice, err := st.GetUserByUsername(t.Context(), "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if alice.GivenName != "Alice" || alice.FamilyName != "Liddell" ||
		!reflect.DeepEqual(alice.Roles, []storage.RoleRef{{Name: "user"}, {Name: "editor"}, {ClientID: "spa", Name: "viewer"}}) {
		t.Fatalf("alice = %+v", alice)
	}
	api, err := st.GetClient(t.Context(), "acme", "api")
	if err != nil {
		t.Fatal(err)
	}
	if !api.LeanAccessTokens || !reflect.DeepEqual(api.DefaultScopes, []string{"roles"}) ||
		!reflect.DeepEqual(api.ServiceAccountRoles, []storage.RoleRef{{Name: "user"}, {ClientID: "api", Name: "write"}}) {
		t.Fatalf("api = %+v", api)
	}

	f, _ = Parse("seed.yaml", []byte(rolesSeed))
	if res, err := a.Apply(t.Context(), f); err != nil || res.Unchanged != 9 {
		t.Fatalf("second apply: %+v, %v", res, err)
	}
}

// The seed file example in the README is a valid seed file.
func TestParseAcceptsTheREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "## Seeding realms, clients, roles and users")
	_, block, ok := strings.Cut(section, "```yaml\n")
	example, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the README's seeding section")
	}
	f, err := Parse("README.md", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Realms[0]; len(r.Roles) == 0 || len(r.Users[0].RealmRoles) == 0 {
		t.Fatalf("the example declares no roles: %+v", r)
	}
}
