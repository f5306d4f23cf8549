package e2e

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// names are the names of a page's items.
func names(r response) []string {
	var out []string
	for _, it := range items(r) {
		s, _ := it["name"].(string)
		out = append(out, s)
	}
	return out
}

// Roles through the admin API: realm and client roles created, listed, read,
// replaced under If-Match and deleted; composites, users' role mappings and
// clients' service-account roles checked against the realm's roles by field;
// a deleted role leaves every user, client and composite that named it.
func TestAdmin_Roles(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)
		const realmRoles, webRoles = "/admin/realms/acme/roles", "/admin/realms/acme/clients/web/roles"

		r := want(t, "create user", a.do("POST", realmRoles, map[string]any{"name": "user", "description": "Signs in"}), 201)
		if r.header.Get("Location") != realmRoles+"/user" || r.header.Get("ETag") == "" || r.str("description") != "Signs in" {
			t.Fatalf("created user: %v %s", r.header, r.raw)
		}
		wantProblem(t, "create user again", a.do("POST", realmRoles, map[string]any{"name": "user"}), 409)
		r = want(t, "create web's read", a.do("POST", webRoles, map[string]any{"name": "read"}), 201)
		if r.str("client_id") != "web" || r.header.Get("Location") != webRoles+"/read" {
			t.Fatalf("created web's read: %v %s", r.header, r.raw)
		}
		want(t, "create web's user", a.do("POST", webRoles, map[string]any{"name": "user"}), 201) // not the realm role
		r = want(t, "create editor", a.do("POST", realmRoles, map[string]any{"name": "editor",
			"composites": map[string]any{"realm": []string{"user"}, "client": map[string][]string{"web": {"read"}}}}), 201)
		if !reflect.DeepEqual(r.body["composites"], map[string]any{"realm": []any{"user"}, "client": map[string]any{"web": []any{"read"}}}) {
			t.Fatalf("editor's composites: %s", r.raw)
		}

		// Unknown or bad roles are named by field.
		r = wantProblem(t, "unknown composite", a.do("POST", realmRoles, map[string]any{"name": "x",
			"composites": map[string]any{"realm": []string{"user", "ghost"}, "client": map[string][]string{"spa": {"read"}}}}), 400)
		if got := fieldErrors(r); !slices.Equal(got, []string{"composites.realm[1]", "composites.client.spa[0]"}) {
			t.Fatalf("unknown composites: fields %v: %s", got, r.raw)
		}
		r = wantProblem(t, "bad name", a.bad("POST", realmRoles, map[string]any{"name": "two words"}), 400)
		if got := fieldErrors(r); !slices.Equal(got, []string{"name"}) {
			t.Fatalf("bad name: fields %v: %s", got, r.raw)
		}
		wantProblem(t, "includes itself", a.do("PUT", realmRoles+"/editor", map[string]any{
			"composites": map[string]any{"realm": []string{"editor"}}}), 400)
		wantProblem(t, "roles of an unknown client", a.do("GET", "/admin/realms/acme/clients/nope/roles", nil), 404)
		wantProblem(t, "roles of an unknown realm", a.do("POST", "/admin/realms/nope/roles", map[string]any{"name": "x"}), 404)
		wantProblem(t, "an unknown role", a.do("GET", realmRoles+"/ghost", nil), 404)
		wantProblem(t, "a role name no role can have", a.bad("GET", realmRoles+"/"+strings.Repeat("r", 200), nil), 404)

		// Lists: the realm's roles, the client's roles, each by name.
		if got := names(want(t, "list realm roles", a.do("GET", realmRoles, nil), 200)); !slices.Equal(got, []string{"editor", "user"}) {
			t.Fatalf("realm roles = %v", got)
		}
		r = want(t, "list web's roles", a.do("GET", webRoles+"?limit=1", nil), 200)
		if got := names(r); !slices.Equal(got, []string{"read"}) || r.str("next") != "read" {
			t.Fatalf("web's roles, first page = %v (%s)", got, r.raw)
		}
		if got := names(want(t, "list web's roles", a.do("GET", webRoles+"?after=read", nil), 200)); !slices.Equal(got, []string{"user"}) {
			t.Fatalf("web's roles, second page = %v", got)
		}

		// PUT replaces under If-Match, or creates.
		r = want(t, "get user", a.do("GET", realmRoles+"/user", nil), 200)
		tag := r.header.Get("ETag")
		r = want(t, "replace user", a.do("PUT", realmRoles+"/user", map[string]any{"description": "Anyone signed in"}, "If-Match", tag), 200)
		if r.str("description") != "Anyone signed in" {
			t.Fatalf("replaced user: %s", r.raw)
		}
		wantProblem(t, "replace with a stale If-Match", a.do("PUT", realmRoles+"/user", map[string]any{"description": "x"}, "If-Match", tag), 412)
		wantProblem(t, "rename", a.do("PUT", realmRoles+"/user", map[string]any{"name": "member"}), 400)
		want(t, "create web's write by PUT", a.do("PUT", webRoles+"/write", map[string]any{"description": "Writes"}), 201)
		r = want(t, "get web's write", a.do("GET", webRoles+"/write", nil), 200)
		if r.str("description") != "Writes" || r.str("client_id") != "web" {
			t.Fatalf("web's write: %s", r.raw)
		}

		// A user with roles and names; unknown roles are named by field.
		r = want(t, "create bob", a.do("POST", "/admin/realms/acme/users", map[string]any{
			"username": "bob", "password": "bob-password-1", "given_name": "Bob", "family_name": "Builder",
			"realm_roles": []string{"user", "editor"}, "client_roles": map[string][]string{"web": {"write"}}}), 201)
		bob := r.str("id")
		if r.str("given_name") != "Bob" || r.str("family_name") != "Builder" ||
			!reflect.DeepEqual(r.body["realm_roles"], []any{"user", "editor"}) ||
			!reflect.DeepEqual(r.body["client_roles"], map[string]any{"web": []any{"write"}}) {
			t.Fatalf("created bob: %s", r.raw)
		}
		r = wantProblem(t, "unknown user roles", a.do("POST", "/admin/realms/acme/users", map[string]any{
			"username": "carol", "password": "carol-password-1", "realm_roles": []string{"read"},
			"client_roles": map[string][]string{"web": {"read", "admin"}}}), 400)
		if got := fieldErrors(r); !slices.Equal(got, []string{"realm_roles[0]", "client_roles.web[1]"}) {
			t.Fatalf("unknown user roles: fields %v: %s", got, r.raw)
		}
		// A PUT without the role fields keeps them; one with realm_roles replaces those only.
		r = want(t, "put bob", a.do("PUT", "/admin/realms/acme/users/"+bob, map[string]any{"username": "bob", "name": "Bob B."}), 200)
		if !reflect.DeepEqual(r.body["realm_roles"], []any{"user", "editor"}) || r.str("given_name") != "Bob" {
			t.Fatalf("bob after a PUT without roles: %s", r.raw)
		}
		r = want(t, "put bob's realm roles", a.do("PUT", "/admin/realms/acme/users/"+bob, map[string]any{
			"username": "bob", "realm_roles": []string{"editor", "user"}}), 200)
		if !reflect.DeepEqual(r.body["realm_roles"], []any{"editor", "user"}) || !reflect.DeepEqual(r.body["client_roles"], map[string]any{"web": []any{"write"}}) {
			t.Fatalf("bob after a PUT of realm roles: %s", r.raw)
		}
		wantProblem(t, "put bob an unknown role", a.do("PUT", "/admin/realms/acme/users/"+bob, map[string]any{
			"username": "bob", "client_roles": map[string][]string{"spa": {"viewer"}}}), 400)

		// A service client's roles and options; unknown ones named by field.
		svc := map[string]any{"grant_types": []string{"client_credentials"}, "secret": svcSecret,
			"service_account_roles": map[string]any{"realm": []string{"user"}, "client": map[string][]string{"web": {"read"}}},
			"default_scopes":        []string{"roles"}, "lean_access_tokens": true}
		r = want(t, "put svc", a.do("PUT", "/admin/realms/acme/clients/svc", svc), 200)
		if !reflect.DeepEqual(r.body["service_account_roles"], map[string]any{"realm": []any{"user"}, "client": map[string]any{"web": []any{"read"}}}) ||
			!reflect.DeepEqual(r.body["default_scopes"], []any{"roles"}) || r.body["lean_access_tokens"] != true {
			t.Fatalf("svc: %s", r.raw)
		}
		if r := want(t, "get web", a.do("GET", "/admin/realms/acme/clients/web", nil), 200); !reflect.DeepEqual(r.body["default_scopes"], []any{"profile", "email", "roles"}) {
			t.Fatalf("web's default scopes (none set) = %v", r.body["default_scopes"])
		}
		svc["service_account_roles"] = map[string]any{"realm": []string{"ghost"}}
		r = wantProblem(t, "unknown service-account role", a.do("PUT", "/admin/realms/acme/clients/svc", svc), 400)
		if got := fieldErrors(r); !slices.Equal(got, []string{"service_account_roles.realm[0]"}) {
			t.Fatalf("unknown service-account role: fields %v: %s", got, r.raw)
		}

		// Deleting a role takes it from users, clients and composites.
		want(t, "delete user", a.do("DELETE", realmRoles+"/user", nil), 204)
		wantProblem(t, "delete user again", a.do("DELETE", realmRoles+"/user", nil), 404)
		if r := a.do("GET", "/admin/realms/acme/users/"+bob, nil); !reflect.DeepEqual(r.body["realm_roles"], []any{"editor"}) {
			t.Fatalf("bob after user went: %s", r.raw)
		}
		if r := a.do("GET", "/admin/realms/acme/clients/svc", nil); !reflect.DeepEqual(r.body["service_account_roles"], map[string]any{"client": map[string]any{"web": []any{"read"}}}) {
			t.Fatalf("svc after user went: %s", r.raw)
		}
		if r := a.do("GET", realmRoles+"/editor", nil); !reflect.DeepEqual(r.body["composites"], map[string]any{"client": map[string]any{"web": []any{"read"}}}) {
			t.Fatalf("editor after user went: %s", r.raw)
		}
		want(t, "delete web's write", a.do("DELETE", webRoles+"/write", nil), 204)
		if r := a.do("GET", "/admin/realms/acme/users/"+bob, nil); r.body["client_roles"] != nil {
			t.Fatalf("bob after web's write went: %s", r.raw)
		}
		// So does deleting the client its roles.
		want(t, "delete web", a.do("DELETE", "/admin/realms/acme/clients/web", nil), 204)
		if r := a.do("GET", realmRoles+"/editor", nil); r.body["composites"] != nil {
			t.Fatalf("editor after web went: %s", r.raw)
		}
		if r := a.do("GET", "/admin/realms/acme/clients/svc", nil); r.body["service_account_roles"] != nil {
			t.Fatalf("svc after web went: %s", r.raw)
		}

		// Each change is audited with the role's name.
		r = want(t, "events", a.do("GET", "/admin/realms/acme/events?type=admin.role.deleted", nil), 200)
		if len(items(r)) != 2 {
			t.Fatalf("role deletions audited: %s", r.raw)
		}

		// A read-only admin reads roles but changes none; another realm's admin neither.
		reader := asAdmin(t, s, clientToken(t, s, "master", "reader", readerSecret, "latchkey:admin:read"))
		want(t, "reader lists", reader.do("GET", realmRoles, nil), 200)
		wantProblem(t, "reader creates", reader.do("POST", realmRoles, map[string]any{"name": "x"}), 403)
		other := asAdmin(t, s, clientToken(t, s, "other", "other-admin", otherAdmSec, "latchkey:admin"))
		wantProblem(t, "other realm's admin", other.do("GET", realmRoles, nil), 403)
	})
}

// latchkey admin roles: create (with composites), list, get and delete realm
// and client roles; refusals are one line naming the field.
func TestAdminCLI_Roles(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)

		out := lkOK(t, s, "", "roles", "create", "read", "--in", "acme", "--client", "web", "--description", "Reads")
		wantLine(t, out, "name:", "read")
		lkOK(t, s, "", "roles", "create", "user", "--in", "acme")
		out = lkOK(t, s, "", "roles", "create", "editor", "--in", "acme", "--composite", "user", "--composite", "web/read")
		wantLine(t, out, "name:", "editor")

		out = lkOK(t, s, "", "roles", "list", "--in", "acme")
		wantLine(t, out, "NAME", "DESCRIPTION", "COMPOSITES")
		wantLine(t, out, "editor", "user,web/read")
		var list named
		lkJSON(t, s, "", &list, "roles", "list", "--in", "acme")
		if got := strings.Join(list.field("name"), ","); got != "editor,user" {
			t.Fatalf("roles list -o json = %s", got)
		}
		lkJSON(t, s, "", &list, "roles", "list", "--in", "acme", "--client", "web")
		if got := strings.Join(list.field("name"), ","); got != "read" {
			t.Fatalf("roles list --client web -o json = %s", got)
		}
		var role map[string]any
		lkJSON(t, s, "", &role, "roles", "get", "read", "--in", "acme", "--client", "web")
		if role["description"] != "Reads" || role["client_id"] != "web" {
			t.Fatalf("roles get read --client web = %v", role)
		}

		lkAdmin(t, s, nil, "", "roles", "create", "x", "--in", "acme", "--composite", "ghost").oneLineError(t, `composites.realm[0]: unknown role "ghost"`)
		lkAdmin(t, s, nil, "", "roles", "create", "x", "--in", "acme", "--composite", "/read").oneLineError(t, "CLIENT/NAME")
		lkAdmin(t, s, nil, "", "roles", "get", "ghost", "--in", "acme").oneLineError(t, "404")

		out = lkOK(t, s, "", "roles", "delete", "read", "--in", "acme", "--client", "web")
		wantLine(t, out, "role read of client web of realm acme deleted")
		lkJSON(t, s, "", &role, "roles", "get", "editor", "--in", "acme")
		if c, _ := role["composites"].(map[string]any); c["client"] != nil {
			t.Fatalf("editor kept the deleted client role: %v", role)
		}
	})
}
