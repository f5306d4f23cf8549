package registry

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkey/latchkey/storage"
)

// fieldErrors renders a check's Errors as "field: message" lines.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not Errors", err)
	}
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestCheckRole(t *testing.T) {
	tests := []struct {
		name   string
		role   Role
		client string
		want   []string
	}{
		{"realm role", Role{Name: "editor", Composites: RoleMappings{Realm: []string{"user"}, Client: map[string][]string{"api": {"read"}}}}, "", nil},
		{"client role of the realm role's name", Role{Name: "user", Composites: RoleMappings{Realm: []string{"user"}}}, "api", nil},
		{"bad name", Role{Name: "has space"}, "",
			[]string{`name: role name "has space" must be 1-128 letters, digits or . _ : -`}},
		{"too long", Role{Name: strings.Repeat("r", 129)}, "",
			[]string{`name: role name "` + strings.Repeat("r", 129) + `" must be 1-128 letters, digits or . _ : -`}},
		{"long description", Role{Name: "x", Description: strings.Repeat("d", MaxDescription+1)}, "",
			[]string{"description: description has over 1024 bytes"}},
		{"includes itself", Role{Name: "x", Composites: RoleMappings{Realm: []string{"y", "x"}}}, "",
			[]string{"composites: a role cannot include itself"}},
		{"client role includes itself", Role{Name: "x", Composites: RoleMappings{Client: map[string][]string{"api": {"x"}}}}, "api",
			[]string{"composites: a role cannot include itself"}},
		{"bad composites", Role{Name: "x", Composites: RoleMappings{Realm: []string{"ok", "no/slash", "ok"},
			Client: map[string][]string{"bad client": {"r"}, "api": {"r", "r", ""}}}}, "",
			[]string{
				`composites.realm[1]: role name "no/slash" must be 1-128 letters, digits or . _ : -`,
				`composites.realm[2]: role "ok" is named twice`,
				`composites.client.api[1]: role "r" of client "api" is named twice`,
				`composites.client.api[2]: role name "" must be 1-128 letters, digits or . _ : -`,
				`composites.client.bad client: client id "bad client" must be 1-128 letters, digits or . _ : -`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fieldErrors(t, CheckRole(&tt.role, tt.client))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("CheckRole =\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}

func TestCheckRoleRefs(t *testing.T) {
	known := RoleSetOf([]storage.Role{{Name: "user"}, {Name: "admin"}, {ClientID: "api", Name: "read"}})
	tests := []struct {
		name  string
		check func() error
		want  []string
	}{
		{"user: known", func() error {
			return CheckUserRoles(&User{RealmRoles: []string{"user", "admin"}, ClientRoles: map[string][]string{"api": {"read"}}}, known)
		}, nil},
		{"user: unknown", func() error {
			return CheckUserRoles(&User{RealmRoles: []string{"user", "x"}, ClientRoles: map[string][]string{"api": {"read", "write"}, "nope": {"read"}}}, known)
		}, []string{
			`realm_roles[1]: unknown role "x"`,
			`client_roles.api[1]: unknown role "write" of client "api"`,
			`client_roles.nope[0]: unknown role "read" of client "nope"`,
		}},
		// A client role is not a realm role of the same name, nor the reverse.
		{"user: realm vs client", func() error {
			return CheckUserRoles(&User{RealmRoles: []string{"read"}, ClientRoles: map[string][]string{"api": {"user"}}}, known)
		}, []string{`realm_roles[0]: unknown role "read"`, `client_roles.api[0]: unknown role "user" of client "api"`}},
		{"client", func() error {
			return CheckClientRoles(&Client{ServiceAccountRoles: RoleMappings{Realm: []string{"ghost"}, Client: map[string][]string{"api": {"read"}}}}, known)
		}, []string{`service_account_roles.realm[0]: unknown role "ghost"`}},
		{"composites", func() error {
			return CheckCompositeRoles(&Role{Name: "editor", Composites: RoleMappings{Client: map[string][]string{"api": {"read", "ghost"}}}}, known)
		}, []string{`composites.client.api[1]: unknown role "ghost" of client "api"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fieldErrors(t, tt.check())
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}

func TestCheckUserRolesAndNames(t *testing.T) {
	u := User{Username: "alice", Password: "long-enough-pw", GivenName: strings.Repeat("g", MaxPersonName+1),
		RealmRoles: []string{"user", "user"}, ClientRoles: map[string][]string{"api": {"bad name"}}}
	got := fieldErrors(t, CheckUser(&u, true))
	want := []string{
		"given_name: given_name has over 255 bytes",
		`realm_roles[1]: role "user" is named twice`,
		`client_roles.api[0]: role name "bad name" must be 1-128 letters, digits or . _ : -`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CheckUser =\n %q\nwant\n %q", got, want)
	}
}

func TestCheckClientRoleOptions(t *testing.T) {
	secret := strings.Repeat("s", 32)
	svc := Client{ID: "svc", Secret: secret, GrantTypes: []string{"client_credentials"},
		ServiceAccountRoles: RoleMappings{Realm: []string{"user"}}, LeanAccessTokens: true}
	if err := CheckClient(&svc); err != nil {
		t.Fatal(err)
	}
	// Default scopes left out are Keycloak's defaults, stored as such.
	if want := []string{"profile", "email", "roles"}; !reflect.DeepEqual(svc.DefaultScopes, want) {
		t.Fatalf("default_scopes = %q, want %q", svc.DefaultScopes, want)
	}
	back := ClientOf(svc.StoredClient("acme", "hash", time.Now()))
	svc.Secret = ""
	a, _ := json.Marshal(svc)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}

	bad := Client{ID: "web", RedirectURIs: []string{"https://a.example/cb"}, GrantTypes: []string{"authorization_code"},
		DefaultScopes: []string{"profile", "two words"}, ServiceAccountRoles: RoleMappings{Realm: []string{"user"}}}
	got := fieldErrors(t, CheckClient(&bad))
	want := []string{
		`default_scopes[1]: "two words" is not a scope token (RFC 6749 §3.3: no spaces, quotes or backslashes)`,
		"service_account_roles: service_account_roles are the roles of client_credentials tokens: add that grant or drop them",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CheckClient =\n %q\nwant\n %q", got, want)
	}
}

// Role mappings read the same from YAML and JSON, and are stored in a fixed
// order: realm roles, then client roles by client ID.
func TestRoleMappingsReadAndStore(t *testing.T) {
	doc := `{"username": "alice", "given_name": "Alice", "family_name": "Liddell",
		"realm_roles": ["user", "editor"], "client_roles": {"web": ["viewer"], "api": ["read", "write"]}}`
	var fromJSON, fromYAML User
	if err := json.Unmarshal([]byte(doc), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(doc), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Fatalf("JSON read %+v, YAML read %+v", fromJSON, fromYAML)
	}
	want := []storage.RoleRef{{Name: "user"}, {Name: "editor"},
		{ClientID: "api", Name: "read"}, {ClientID: "api", Name: "write"}, {ClientID: "web", Name: "viewer"}}
	if got := fromJSON.RoleRefs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("RoleRefs = %+v, want %+v", got, want)
	}
	back := UserOf(storage.User{Username: "alice", GivenName: "Alice", FamilyName: "Liddell", Roles: want})
	if !reflect.DeepEqual(back, fromJSON) {
		t.Fatalf("UserOf = %+v, want %+v", back, fromJSON)
	}

	var r Role
	if err := json.Unmarshal([]byte(`{"name": "editor", "composites": {"realm": ["user"], "client": {"api": ["read"]}}}`), &r); err != nil {
		t.Fatal(err)
	}
	stored := r.StoredRole("acme", "", time.Now())
	if want := []storage.RoleRef{{Name: "user"}, {ClientID: "api", Name: "read"}}; !reflect.DeepEqual(stored.Composites, want) {
		t.Fatalf("composites = %+v", stored.Composites)
	}
	if !reflect.DeepEqual(RoleOf(stored), r) {
		t.Fatalf("RoleOf = %+v, want %+v", RoleOf(stored), r)
	}
	// A role without composites is written without them.
	if b, _ := json.Marshal(Role{Name: "user"}); string(b) != `{"name":"user"}` {
		t.Fatalf("JSON = %s", b)
	}
}
