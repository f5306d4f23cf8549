package seed

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// Whatever the seed file holds, Parse (which validates) never panics and answers
// with a file or an error naming the file; what it accepts is valid on its face
// (unique, well-formed names, grant types that exist, passwords long enough), and
// every role reference names a role the file declares, and reading it twice
// gives the same result.
func FuzzSeed(f *testing.F) {
	base, _ := os.ReadFile("testdata/acme.yaml")
	f.Add(string(base))
	f.Add("realms:\n  - name: x\n    clients: [{id: a, grant_types: [client_credentials], secret: s}]\n")
	f.Add("realms: {}\n")
	f.Add("")
	f.Add("realms:\n  - name: a\n  - name: a\n")
	f.Add("realms:\n  - name: a\n    access_token_ttl: 5x\n    users: [{username: Bob, password: short}]\n")
	f.Add("x: &a [*a]\n")
	f.Add(rolesSeed)
	f.Add("realms:\n  - name: a\n    roles: [{name: r, composites: {realm: [r]}}]\n")
	f.Add("realms:\n  - name: a\n    roles: [{name: r}]\n    users: [{username: u, password: password1, realm_roles: [r, x], client_roles: {c: [r]}}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		file, err := Parse("fuzz.yaml", []byte(s))
		if err != nil {
			if file != nil || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q (file %v) does not name the file", err, file)
			}
			return
		}
		if file == nil {
			t.Fatal("no file and no error")
		}
		realms := map[string]bool{}
		for _, r := range file.Realms {
			known := map[storage.RoleRef]bool{}
			for _, role := range r.Roles {
				known[storage.RoleRef{Name: role.Name}] = true
			}
			for _, c := range r.Clients {
				for _, role := range c.Roles {
					known[storage.RoleRef{ClientID: c.ID, Name: role.Name}] = true
				}
			}
			var refs []storage.RoleRef
			for _, role := range r.Roles {
				refs = append(refs, role.Composites.Refs()...)
			}
			for _, c := range r.Clients {
				refs = append(refs, c.ServiceAccountRoles.Refs()...)
				for _, role := range c.Roles {
					refs = append(refs, role.Composites.Refs()...)
				}
			}
			for _, u := range r.Users {
				refs = append(refs, u.RoleRefs()...)
			}
			for _, ref := range refs {
				if !known[ref] || ident.Role(ref.Name) != nil {
					t.Fatalf("accepted a reference to %+v, which the file does not declare", ref)
				}
			}
			if ident.Realm(r.Name) != nil || realms[r.Name] {
				t.Fatalf("accepted realm name %q", r.Name)
			}
			realms[r.Name] = true
			clients := map[string]bool{}
			for _, c := range r.Clients {
				if ident.ClientID(c.ID) != nil || clients[c.ID] {
					t.Fatalf("accepted client id %q", c.ID)
				}
				clients[c.ID] = true
				if len(c.GrantTypes) == 0 || slices.ContainsFunc(c.GrantTypes, func(g string) bool { return !slices.Contains(registry.GrantTypes, g) }) {
					t.Fatalf("accepted grant types %q", c.GrantTypes)
				}
			}
			users := map[string]bool{}
			for _, u := range r.Users {
				if ident.Username(u.Username) != nil || users[u.Username] || u.Username != strings.ToLower(u.Username) {
					t.Fatalf("accepted username %q", u.Username)
				}
				users[u.Username] = true
				if (u.PasswordHash == "" && len(u.Password) < password.MinLen) ||
					(u.PasswordHash != "" && (u.Password != "" || password.CheckHash(u.PasswordHash, password.Default) != nil)) {
					t.Fatalf("accepted password %d characters long with password_hash %q", len(u.Password), u.PasswordHash)
				}
			}
		}
		file.Warnings()
		again, err := Parse("fuzz.yaml", []byte(s))
		if err != nil || !reflect.DeepEqual(file, again) {
			t.Fatalf("a second reading differs: %v", err)
		}
	})
}
