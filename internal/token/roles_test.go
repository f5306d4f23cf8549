package token

import (
	"reflect"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

func TestEffectiveRoles(t *testing.T) {
	realm := func(n string) storage.RoleRef { return storage.RoleRef{Name: n} }
	cl := func(c, n string) storage.RoleRef { return storage.RoleRef{ClientID: c, Name: n} }
	role := func(ref storage.RoleRef, comps ...storage.RoleRef) storage.Role {
		return storage.Role{Realm: "acme", ClientID: ref.ClientID, Name: ref.Name, Composites: comps}
	}
	all := []storage.Role{
		role(realm("user")),
		role(realm("editor"), realm("user"), cl("acme-api", "read")),
		role(realm("admin"), realm("editor"), cl("acme-api", "write"), realm("ghost")), // ghost: dangling
		role(realm("a"), realm("b")),
		role(realm("b"), realm("c")),
		role(realm("c"), realm("a"), cl("ops", "page")), // a → b → c → a
		role(realm("self"), realm("self")),
		role(cl("acme-api", "read")),
		role(cl("acme-api", "write"), cl("acme-api", "read")),
		role(cl("acme-spa", "viewer")),
		role(cl("ops", "page"), realm("user")), // a client role may include a realm role
	}
	tests := []struct {
		name    string
		direct  []storage.RoleRef
		realm   []string
		clients map[string][]string
	}{
		{"none", nil, nil, nil},
		{"plain realm role", []storage.RoleRef{realm("user")}, []string{"user"}, nil},
		{"composite", []storage.RoleRef{realm("editor")}, []string{"editor", "user"}, map[string][]string{"acme-api": {"read"}}},
		{"nested composite, dangling ignored", []storage.RoleRef{realm("admin")}, []string{"admin", "editor", "user"},
			map[string][]string{"acme-api": {"read", "write"}}},
		{"alice", []storage.RoleRef{realm("user"), realm("editor"), cl("acme-spa", "viewer")}, []string{"editor", "user"},
			map[string][]string{"acme-api": {"read"}, "acme-spa": {"viewer"}}},
		{"cycle", []storage.RoleRef{realm("b")}, []string{"a", "b", "c", "user"}, map[string][]string{"ops": {"page"}}},
		{"self cycle", []storage.RoleRef{realm("self")}, []string{"self"}, nil},
		{"duplicates and order", []storage.RoleRef{cl("acme-api", "write"), realm("user"), cl("acme-api", "read"), realm("user")},
			[]string{"user"}, map[string][]string{"acme-api": {"read", "write"}}},
		{"dangling direct", []storage.RoleRef{realm("ghost"), cl("gone", "x")}, nil, nil},
		{"client role, not realm role of same name", []storage.RoleRef{cl("acme-api", "user")}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			realm, clients := EffectiveRoles(all, tt.direct)
			if !reflect.DeepEqual(realm, tt.realm) || !reflect.DeepEqual(clients, tt.clients) {
				t.Fatalf("= %q %q; want %q %q", realm, clients, tt.realm, tt.clients)
			}
		})
	}
}
