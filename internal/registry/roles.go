package registry

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/storage"
)

// Role is a realm role, or a client role (the client is said by where it is
// written: a client's roles in the seed file, the client's roles route in the
// admin API). A composite role includes the roles it names, transitively.
type Role struct {
	Name        string       `yaml:"name" json:"name"`
	Description string       `yaml:"description" json:"description,omitempty"`
	Composites  RoleMappings `yaml:"composites" json:"composites,omitzero"`
}

// RoleMappings names roles as Keycloak writes them: realm roles by name, and
// client roles by client ID and name.
type RoleMappings struct {
	Realm  []string            `yaml:"realm" json:"realm,omitempty"`
	Client map[string][]string `yaml:"client" json:"client,omitempty"`
}

// IsZero reports whether m names no role (for omitzero).
func (m RoleMappings) IsZero() bool { return len(m.Realm) == 0 && len(m.Client) == 0 }

// Refs is m as stored: the realm roles in order, then each client's roles in
// order, clients by ID.
func (m RoleMappings) Refs() []storage.RoleRef {
	var out []storage.RoleRef
	for _, name := range m.Realm {
		out = append(out, storage.RoleRef{Name: name})
	}
	for _, client := range slices.Sorted(maps.Keys(m.Client)) {
		for _, name := range m.Client[client] {
			out = append(out, storage.RoleRef{ClientID: client, Name: name})
		}
	}
	return out
}

// RoleMappingsOf is the representation of stored references.
func RoleMappingsOf(refs []storage.RoleRef) RoleMappings {
	var m RoleMappings
	for _, r := range refs {
		if r.ClientID == "" {
			m.Realm = append(m.Realm, r.Name)
			continue
		}
		if m.Client == nil {
			m.Client = map[string][]string{}
		}
		m.Client[r.ClientID] = append(m.Client[r.ClientID], r.Name)
	}
	return m
}

// StoredRole is the role as stored in realm (a client role when clientID is not
// ""), created or updated at now.
func (r *Role) StoredRole(realm, clientID string, now time.Time) storage.Role {
	return storage.Role{Realm: realm, ClientID: clientID, Name: r.Name, Description: r.Description,
		Composites: r.Composites.Refs(), CreatedAt: now, UpdatedAt: now}
}

// RoleOf is the representation of a stored role.
func RoleOf(r storage.Role) Role {
	return Role{Name: r.Name, Description: r.Description, Composites: RoleMappingsOf(r.Composites)}
}

// roleMappings is the user's realm_roles and client_roles as one RoleMappings.
func (u *User) roleMappings() RoleMappings {
	return RoleMappings{Realm: u.RealmRoles, Client: u.ClientRoles}
}

// RoleRefs is the user's roles as stored.
func (u *User) RoleRefs() []storage.RoleRef { return u.roleMappings().Refs() }

// SetRoles sets the user's realm_roles and client_roles from stored references.
func (u *User) SetRoles(refs []storage.RoleRef) {
	m := RoleMappingsOf(refs)
	u.RealmRoles, u.ClientRoles = m.Realm, m.Client
}

// RoleSet is the set of roles references may name: a realm's roles.
type RoleSet map[storage.RoleRef]bool

// RoleSetOf is the set of the given roles.
func RoleSetOf(roles []storage.Role) RoleSet {
	s := RoleSet{}
	for _, r := range roles {
		s[r.Ref()] = true
	}
	return s
}

// MaxDescription bounds a role's description, in bytes.
const MaxDescription = 1024

// CheckRole checks a role's name, description and composites (their names;
// whether they exist is CheckCompositeRoles's). A composite may not name the
// role itself (of clientID, "" for a realm role). It returns nil or Errors.
func CheckRole(r *Role, clientID string) error {
	var c checker
	if err := ident.Role(r.Name); err != nil {
		c.fail(fmt.Sprintf("role name %q %v", r.Name, err), "name")
	}
	if len(r.Description) > MaxDescription {
		c.fail(fmt.Sprintf("description has over %d bytes", MaxDescription), "description")
	}
	c.checkMappings(r.Composites, []any{"composites", "realm"}, []any{"composites", "client"})
	self := storage.RoleRef{ClientID: clientID, Name: r.Name}
	for _, ref := range r.Composites.Refs() {
		if ref == self {
			c.fail("a role cannot include itself", "composites")
			break
		}
	}
	return c.err()
}

// checkMappings checks the names in m (client IDs and role names) and that none
// is given twice. Field paths are under realmAt and clientAt, as the mappings
// are written: realm_roles[1] and client_roles.api[0] for a user,
// composites.realm[0] and composites.client.api[0] for a role.
func (c *checker) checkMappings(m RoleMappings, realmAt, clientAt []any) {
	seen := map[storage.RoleRef]bool{}
	for i, name := range m.Realm {
		path := append(slices.Clone(realmAt), i)
		if err := ident.Role(name); err != nil {
			c.fail(fmt.Sprintf("role name %q %v", name, err), path...)
		} else if seen[storage.RoleRef{Name: name}] {
			c.fail(fmt.Sprintf("role %q is named twice", name), path...)
		}
		seen[storage.RoleRef{Name: name}] = true
	}
	for _, client := range slices.Sorted(maps.Keys(m.Client)) {
		at := append(slices.Clone(clientAt), client)
		if err := ident.ClientID(client); err != nil {
			c.fail(fmt.Sprintf("client id %q %v", client, err), at...)
			continue
		}
		for i, name := range m.Client[client] {
			path := append(slices.Clone(at), i)
			ref := storage.RoleRef{ClientID: client, Name: name}
			if err := ident.Role(name); err != nil {
				c.fail(fmt.Sprintf("role name %q %v", name, err), path...)
			} else if seen[ref] {
				c.fail(fmt.Sprintf("role %q of client %q is named twice", name, client), path...)
			}
			seen[ref] = true
		}
	}
}

// CheckRoleRefs checks that every role m names is in known: an unknown one is
// an error at its field, under realmAt or clientAt (see checkMappings). It
// returns nil or Errors.
func CheckRoleRefs(m RoleMappings, known RoleSet, realmAt, clientAt []any) error {
	var c checker
	for i, name := range m.Realm {
		if !known[storage.RoleRef{Name: name}] {
			c.fail(fmt.Sprintf("unknown role %q", name), append(slices.Clone(realmAt), i)...)
		}
	}
	for _, client := range slices.Sorted(maps.Keys(m.Client)) {
		for i, name := range m.Client[client] {
			if !known[storage.RoleRef{ClientID: client, Name: name}] {
				c.fail(fmt.Sprintf("unknown role %q of client %q", name, client), append(slices.Clone(clientAt), client, i)...)
			}
		}
	}
	return c.err()
}

// CheckUserRoles checks that the user's realm_roles and client_roles name roles
// in known. It returns nil or Errors.
func CheckUserRoles(u *User, known RoleSet) error {
	return CheckRoleRefs(u.roleMappings(), known, []any{"realm_roles"}, []any{"client_roles"})
}

// CheckClientRoles checks that the client's service_account_roles name roles in
// known. It returns nil or Errors.
func CheckClientRoles(cl *Client, known RoleSet) error {
	return CheckRoleRefs(cl.ServiceAccountRoles, known,
		[]any{"service_account_roles", "realm"}, []any{"service_account_roles", "client"})
}

// CheckCompositeRoles checks that the role's composites name roles in known.
// It returns nil or Errors.
func CheckCompositeRoles(r *Role, known RoleSet) error {
	return CheckRoleRefs(r.Composites, known, []any{"composites", "realm"}, []any{"composites", "client"})
}
