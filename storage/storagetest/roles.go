package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// The role contract: realm and client roles, composites, the references users
// and clients hold, which never dangle, and the changes role writes record.

var roleTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Roles", testRoles},
	{"RoleFieldsOfUsersAndClients", testRoleFields},
	{"ReferencesToMissingRolesAreDropped", testMissingRoleRefs},
	{"DeleteRoleTakesItsReferences", testDeleteRoleStrips},
	{"DeleteClientTakesItsRoles", testDeleteClientTakesRoles},
	{"DeleteRealmTakesItsRoles", testDeleteRealmTakesRoles},
	{"ChangesOfRoles", testChangesOfRoles},
	{"SeedRoles", testSeedRoles},
	{"SeedFailsOnUnknownRole", testSeedUnknownRole},
	{"RoleReferencesUnderRace", testRoleRefsRace},
}

func realmRole(name string) storage.RoleRef { return storage.RoleRef{Name: name} }

func clientRole(client, name string) storage.RoleRef {
	return storage.RoleRef{ClientID: client, Name: name}
}

func newRole(realm, client, name string, composites ...storage.RoleRef) storage.Role {
	return storage.Role{Realm: realm, ClientID: client, Name: name, Description: "Role " + name,
		Composites: composites, CreatedAt: t0, UpdatedAt: t0}
}

func mkRole(t *testing.T, s storage.Store, realm, client, name string, composites ...storage.RoleRef) storage.Role {
	t.Helper()
	r := newRole(realm, client, name, composites...)
	must(t, s.CreateRole(ctx(t), r))
	return r
}

func getRole(t *testing.T, s storage.Store, realm, client, name string) storage.Role {
	t.Helper()
	r, err := s.GetRole(ctx(t), realm, client, name)
	must(t, err)
	return r
}

func testRoles(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkRealm(t, s, "other")

	user := mkRole(t, s, "acme", "", "user")
	editor := mkRole(t, s, "acme", "", "editor", realmRole("user"))
	// A client role may have a realm role's name: it is another role.
	read := mkRole(t, s, "acme", "web", "user")
	admin := mkRole(t, s, "acme", "web", "admin", clientRole("web", "user"), realmRole("editor"))
	wantErr(t, s.CreateRole(c, newRole("acme", "", "user")), storage.ErrConflict)
	wantErr(t, s.CreateRole(c, newRole("acme", "web", "admin")), storage.ErrConflict)
	wantErr(t, s.CreateRole(c, newRole("missing", "", "user")), storage.ErrNotFound)
	wantErr(t, s.CreateRole(c, newRole("acme", "nope", "user")), storage.ErrNotFound)
	wantErr(t, s.CreateRole(c, newRole("other", "web", "user")), storage.ErrNotFound)
	// The same name in another realm is another role.
	mkRole(t, s, "other", "", "user")

	for _, want := range []storage.Role{user, editor, read, admin} {
		same(t, "GetRole "+want.ClientID+"/"+want.Name, getRole(t, s, "acme", want.ClientID, want.Name), want)
	}
	_, err := s.GetRole(c, "acme", "", "nope")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetRole(c, "acme", "nope", "user")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetRole(c, "nope", "", "user")
	wantErr(t, err, storage.ErrNotFound)

	list, err := s.ListRoles(c, "acme")
	must(t, err)
	same(t, "ListRoles: realm roles first, then by client and name", list, []storage.Role{editor, user, admin, read})
	list, err = s.ListRoles(c, "nope")
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("ListRoles of a missing realm = %+v, want none", list)
	}

	// UpdateRole stores the description, composites and UpdatedAt; not the keys
	// nor CreatedAt.
	updated, err := s.UpdateRole(c, "acme", "", "editor", func(r *storage.Role) ([]storage.AuditEvent, error) {
		r.Name, r.ClientID, r.Realm, r.CreatedAt = "renamed", "web", "other", at(time.Hour)
		r.Description = "Edits"
		r.Composites = []storage.RoleRef{clientRole("web", "admin"), realmRole("user")}
		r.UpdatedAt = at(time.Minute)
		return nil, nil
	})
	must(t, err)
	editor.Description, editor.UpdatedAt = "Edits", at(time.Minute)
	editor.Composites = []storage.RoleRef{clientRole("web", "admin"), realmRole("user")}
	same(t, "UpdateRole's result", updated, editor)
	same(t, "updated role", getRole(t, s, "acme", "", "editor"), editor)
	_, err = s.UpdateRole(c, "acme", "", "nope", func(*storage.Role) ([]storage.AuditEvent, error) { return nil, nil })
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.DeleteRole(c, "acme", "web", "user"))
	wantErr(t, s.DeleteRole(c, "acme", "web", "user"), storage.ErrNotFound)
	// The realm role of the same name, and the role of that name in the other realm, stay.
	getRole(t, s, "acme", "", "user")
	getRole(t, s, "other", "", "user")
}

// Users and clients keep their names, roles, default scopes and lean option.
func testRoleFields(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	must(t, s.CreateClient(c, newClient("acme", "api")))
	mkRole(t, s, "acme", "", "user")
	mkRole(t, s, "acme", "", "admin")
	mkRole(t, s, "acme", "api", "read")

	alice := newUser("acme", "alice")
	alice.GivenName, alice.FamilyName = "Alice", "Liddell"
	alice.Roles = []storage.RoleRef{realmRole("user"), clientRole("api", "read")}
	must(t, s.CreateUser(c, alice))
	got, err := s.GetUser(c, "acme", alice.ID)
	must(t, err)
	same(t, "created user", got, alice)

	alice.GivenName, alice.FamilyName = "Alicia", ""
	alice.Roles = []storage.RoleRef{clientRole("api", "read"), realmRole("admin"), realmRole("user")}
	alice.UpdatedAt = at(time.Minute)
	must(t, putUser(c, s, alice))
	got, err = s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	same(t, "updated user (the roles' order kept)", got, alice)

	svc := newClient("acme", "svc")
	svc.ServiceAccountRoles = []storage.RoleRef{clientRole("api", "read"), realmRole("admin")}
	svc.DefaultScopes = []string{"profile", "roles"}
	svc.LeanAccessTokens = true
	must(t, s.CreateClient(c, svc))
	gotC, err := s.GetClient(c, "acme", "svc")
	must(t, err)
	same(t, "created client", gotC, svc)
	same(t, "its default scopes", gotC.EffectiveDefaultScopes(), []string{"profile", "roles"})

	svc.ServiceAccountRoles = []storage.RoleRef{realmRole("user")}
	svc.DefaultScopes, svc.LeanAccessTokens = nil, false
	svc.UpdatedAt = at(time.Minute)
	must(t, putClient(c, s, svc))
	gotC, err = s.GetClient(c, "acme", "svc")
	must(t, err)
	same(t, "updated client", gotC, svc)
	same(t, "default scopes when none are set", gotC.EffectiveDefaultScopes(), []string{"profile", "email", "roles"})
}

// A write that names a role that does not exist (deleted meanwhile) drops the
// reference; the references it had already stay.
func testMissingRoleRefs(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkRealm(t, s, "other")
	mkRole(t, s, "acme", "", "user")
	mkRole(t, s, "acme", "web", "read")
	mkRole(t, s, "other", "", "ghost") // another realm's role is no role of acme

	u := newUser("acme", "bob")
	u.Roles = []storage.RoleRef{realmRole("ghost"), realmRole("user"), clientRole("web", "nope"), clientRole("web", "read")}
	must(t, s.CreateUser(c, u))
	got, err := s.GetUser(c, "acme", u.ID)
	must(t, err)
	same(t, "created user's roles", got.Roles, []storage.RoleRef{realmRole("user"), clientRole("web", "read")})

	got, err = s.UpdateUser(c, "acme", u.ID, func(u *storage.User) ([]storage.AuditEvent, error) {
		u.Roles = append([]storage.RoleRef{clientRole("nope", "read")}, u.Roles...)
		return nil, nil
	})
	must(t, err)
	same(t, "updated user's roles (UpdateUser's result)", got.Roles, []storage.RoleRef{realmRole("user"), clientRole("web", "read")})
	got, err = s.GetUser(c, "acme", u.ID)
	must(t, err)
	same(t, "updated user's roles", got.Roles, []storage.RoleRef{realmRole("user"), clientRole("web", "read")})

	svc := newClient("acme", "svc")
	svc.ServiceAccountRoles = []storage.RoleRef{realmRole("ghost"), clientRole("web", "read")}
	must(t, s.CreateClient(c, svc))
	gotC, err := s.GetClient(c, "acme", "svc")
	must(t, err)
	same(t, "created client's service-account roles", gotC.ServiceAccountRoles, []storage.RoleRef{clientRole("web", "read")})
	gotC, err = s.UpdateClient(c, "acme", "svc", func(c *storage.Client) ([]storage.AuditEvent, error) {
		c.ServiceAccountRoles = append(c.ServiceAccountRoles, realmRole("user"), realmRole("ghost"))
		return nil, nil
	})
	must(t, err)
	same(t, "updated client's service-account roles", gotC.ServiceAccountRoles, []storage.RoleRef{clientRole("web", "read"), realmRole("user")})

	r := newRole("acme", "", "editor", realmRole("ghost"), realmRole("user"))
	must(t, s.CreateRole(c, r))
	same(t, "created role's composites", getRole(t, s, "acme", "", "editor").Composites, []storage.RoleRef{realmRole("user")})
	updated, err := s.UpdateRole(c, "acme", "", "editor", func(r *storage.Role) ([]storage.AuditEvent, error) {
		r.Composites = append(r.Composites, clientRole("web", "ghost"), clientRole("web", "read"))
		return nil, nil
	})
	must(t, err)
	same(t, "updated role's composites", updated.Composites, []storage.RoleRef{realmRole("user"), clientRole("web", "read")})
	same(t, "updated role's composites, read back", getRole(t, s, "acme", "", "editor").Composites, updated.Composites)
}

// DeleteRole takes the references to the role, and only those, from users,
// clients and composites.
func testDeleteRoleStrips(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkRole(t, s, "acme", "", "user")
	mkRole(t, s, "acme", "", "gone")
	mkRole(t, s, "acme", "web", "gone") // a client role of the same name stays
	mkRole(t, s, "acme", "", "editor", realmRole("gone"), clientRole("web", "gone"), realmRole("user"))

	u := newUser("acme", "bob")
	u.Roles = []storage.RoleRef{realmRole("gone"), clientRole("web", "gone"), realmRole("user")}
	must(t, s.CreateUser(c, u))
	plain := newUser("acme", "carol")
	plain.Roles = []storage.RoleRef{realmRole("user")}
	must(t, s.CreateUser(c, plain))
	svc := newClient("acme", "svc")
	svc.ServiceAccountRoles = []storage.RoleRef{realmRole("user"), realmRole("gone")}
	must(t, s.CreateClient(c, svc))
	keep := newClient("acme", "keep")
	keep.ServiceAccountRoles = []storage.RoleRef{clientRole("web", "gone")}
	must(t, s.CreateClient(c, keep))

	f := newFeed(t, s)
	must(t, s.DeleteRole(c, "acme", "", "gone", storage.AuditEvent{Time: at(time.Minute), Type: "role.deleted", Realm: "acme"}))
	_, err := s.GetRole(c, "acme", "", "gone")
	wantErr(t, err, storage.ErrNotFound)
	getRole(t, s, "acme", "web", "gone")

	got, err := s.GetUser(c, "acme", u.ID)
	must(t, err)
	same(t, "user's roles", got.Roles, []storage.RoleRef{clientRole("web", "gone"), realmRole("user")})
	got, err = s.GetUser(c, "acme", plain.ID)
	must(t, err)
	same(t, "other user's roles", got.Roles, []storage.RoleRef{realmRole("user")})
	gotC, err := s.GetClient(c, "acme", "svc")
	must(t, err)
	same(t, "client's service-account roles", gotC.ServiceAccountRoles, []storage.RoleRef{realmRole("user")})
	gotC, err = s.GetClient(c, "acme", "keep")
	must(t, err)
	same(t, "other client's service-account roles", gotC.ServiceAccountRoles, []storage.RoleRef{clientRole("web", "gone")})
	same(t, "composites", getRole(t, s, "acme", "", "editor").Composites, []storage.RoleRef{clientRole("web", "gone"), realmRole("user")})
	// The client whose roles changed is recorded, for caches of clients; the
	// roles change for caches of roles.
	f.want("DeleteRole", rolesChanged("acme", at(time.Minute)), clientChanged("acme", "svc", at(time.Minute)))
	if ev := events(t, s, storage.AuditFilter{Realm: "acme"}); !slices.Contains(ev, "role.deleted") {
		t.Fatalf("events = %v, want role.deleted", ev)
	}

	// The client role now.
	must(t, s.DeleteRole(c, "acme", "web", "gone"))
	got, err = s.GetUser(c, "acme", u.ID)
	must(t, err)
	same(t, "user's roles after the client role went", got.Roles, []storage.RoleRef{realmRole("user")})
	gotC, err = s.GetClient(c, "acme", "keep")
	must(t, err)
	if len(gotC.ServiceAccountRoles) != 0 {
		t.Fatalf("service-account roles = %+v, want none", gotC.ServiceAccountRoles)
	}
	same(t, "composites after the client role went", getRole(t, s, "acme", "", "editor").Composites, []storage.RoleRef{realmRole("user")})
}

func rolesChanged(realm string, when time.Time) storage.Change {
	return storage.Change{Time: when, Realm: realm, Kind: storage.ChangeRolesChanged, Subject: realm}
}

// Deleting a client deletes its roles and every reference to them; a client
// registered again under its ID has none of them.
func testDeleteClientTakesRoles(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	must(t, s.CreateClient(c, newClient("acme", "api")))
	mkRole(t, s, "acme", "", "user")
	mkRole(t, s, "acme", "api", "read")
	mkRole(t, s, "acme", "api", "write")
	mkRole(t, s, "acme", "web", "read")
	mkRole(t, s, "acme", "", "editor", clientRole("api", "write"), realmRole("user"), clientRole("web", "read"))
	u := newUser("acme", "bob")
	u.Roles = []storage.RoleRef{clientRole("api", "read"), realmRole("user"), clientRole("web", "read"), clientRole("api", "write")}
	must(t, s.CreateUser(c, u))
	svc := newClient("acme", "svc")
	svc.ServiceAccountRoles = []storage.RoleRef{clientRole("api", "read"), clientRole("web", "read")}
	must(t, s.CreateClient(c, svc))

	f := newFeed(t, s)
	must(t, s.DeleteClient(c, "acme", "api", storage.AuditEvent{Time: at(time.Minute), Type: "client.deleted", Realm: "acme"}))
	roles, err := s.ListRoles(c, "acme")
	must(t, err)
	var names []string
	for _, r := range roles {
		names = append(names, r.ClientID+"/"+r.Name)
	}
	same(t, "roles left", names, []string{"/editor", "/user", "web/read"})
	got, err := s.GetUser(c, "acme", u.ID)
	must(t, err)
	same(t, "user's roles", got.Roles, []storage.RoleRef{realmRole("user"), clientRole("web", "read")})
	gotC, err := s.GetClient(c, "acme", "svc")
	must(t, err)
	same(t, "client's service-account roles", gotC.ServiceAccountRoles, []storage.RoleRef{clientRole("web", "read")})
	same(t, "composites", getRole(t, s, "acme", "", "editor").Composites, []storage.RoleRef{realmRole("user"), clientRole("web", "read")})
	f.want("DeleteClient",
		clientChanged("acme", "api", at(time.Minute)),
		storage.Change{Time: at(time.Minute), Realm: "acme", Kind: storage.ChangeClientRevoked, Subject: "api", ClientID: "api", Reason: storage.ReasonDeleted},
		rolesChanged("acme", at(time.Minute)),
		clientChanged("acme", "svc", at(time.Minute)))

	must(t, s.CreateClient(c, newClient("acme", "api")))
	_, err = s.GetRole(c, "acme", "api", "read")
	wantErr(t, err, storage.ErrNotFound)
}

func testDeleteRealmTakesRoles(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	setupRealm(t, s, "keep")
	for _, realm := range []string{"acme", "keep"} {
		mkRole(t, s, realm, "", "user")
		mkRole(t, s, realm, "web", "read")
	}
	must(t, s.DeleteRealm(c, "acme"))
	mkRealm(t, s, "acme")
	roles, err := s.ListRoles(c, "acme")
	must(t, err)
	if len(roles) != 0 {
		t.Fatalf("a realm made again has roles %+v", roles)
	}
	roles, err = s.ListRoles(c, "keep")
	must(t, err)
	if len(roles) != 2 {
		t.Fatalf("the other realm's roles = %+v, want 2", roles)
	}
}

// Every role write records a ChangeRolesChanged naming the realm, at its time.
func testChangesOfRoles(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	f := newFeed(t, s)
	mkRole(t, s, "acme", "", "user")
	f.want("CreateRole", rolesChanged("acme", t0))
	_, err := s.UpdateRole(c, "acme", "", "user", func(r *storage.Role) ([]storage.AuditEvent, error) {
		r.Description, r.UpdatedAt = "changed", at(time.Minute)
		return nil, nil
	})
	must(t, err)
	f.want("UpdateRole", rolesChanged("acme", at(time.Minute)))
	must(t, s.DeleteRole(c, "acme", "", "user", storage.AuditEvent{Time: at(time.Hour), Type: "role.deleted", Realm: "acme"}))
	f.want("DeleteRole", rolesChanged("acme", at(time.Hour)))
	// A failed write records nothing.
	wantErr(t, s.DeleteRole(c, "acme", "", "user"), storage.ErrNotFound)
	wantErr(t, s.CreateRole(c, newRole("acme", "nope", "x")), storage.ErrNotFound)
	f.want("failed writes")
	// Deleting a client without roles records no roles change.
	must(t, s.DeleteClient(c, "acme", "web", storage.AuditEvent{Time: at(time.Hour), Type: "client.deleted", Realm: "acme"}))
	f.want("DeleteClient",
		clientChanged("acme", "web", at(time.Hour)),
		storage.Change{Time: at(time.Hour), Realm: "acme", Kind: storage.ChangeClientRevoked, Subject: "web", ClientID: "web", Reason: storage.ReasonDeleted})
}

func roleSeed() storage.Seed {
	seed := seedFixture()
	sr := &seed.Realms[0]
	// Composites may name roles the seed declares later.
	sr.Roles = []storage.Role{
		newRole("acme", "", "editor", realmRole("user"), clientRole("web", "read")),
		newRole("acme", "", "user"),
		newRole("acme", "web", "read"),
	}
	sr.Users[0].GivenName, sr.Users[0].FamilyName = "Alice", "Liddell"
	sr.Users[0].Roles = []storage.RoleRef{realmRole("editor"), clientRole("web", "read")}
	sr.Clients[1].ServiceAccountRoles = []storage.RoleRef{clientRole("web", "read")}
	sr.Clients[1].DefaultScopes = []string{"roles"}
	sr.Clients[1].LeanAccessTokens = true
	return seed
}

func testSeedRoles(t *testing.T, s storage.Store) {
	c := ctx(t)
	seed := roleSeed()
	f := newFeed(t, s)
	res, err := s.ApplySeed(c, seed)
	must(t, err)
	same(t, "first apply", res, storage.SeedResult{Created: 8})
	sr := seed.Realms[0]
	roles, err := s.ListRoles(c, "acme")
	must(t, err)
	same(t, "seeded roles", roles, []storage.Role{sr.Roles[0], sr.Roles[1], sr.Roles[2]})
	alice, err := s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	same(t, "seeded user", alice, sr.Users[0])
	svc, err := s.GetClient(c, "acme", "svc")
	must(t, err)
	same(t, "seeded client", svc, sr.Clients[1])
	got, err := s.ListChanges(c, storage.ChangeQuery{After: f.last, Realm: "acme"})
	must(t, err)
	if !slices.ContainsFunc(got, func(ch storage.Change) bool { return ch.Kind == storage.ChangeRolesChanged }) {
		t.Fatalf("a seed that created roles recorded %+v, no roles change", got)
	}

	res, err = s.ApplySeed(c, roleSeed())
	must(t, err)
	same(t, "second apply", res, storage.SeedResult{Unchanged: 8})

	again := roleSeed()
	again.Realms[0].Roles[1].Description = "changed"
	again.Realms[0].Roles[1].UpdatedAt = at(time.Hour)
	again.Realms[0].Roles = append(again.Realms[0].Roles, newRole("acme", "svc", "call"))
	again.Realms[0].Users[0].Roles = []storage.RoleRef{realmRole("user")}
	again.Realms[0].Users[1].FamilyName = "Builder"
	again.Realms[0].Clients[1].ServiceAccountRoles = []storage.RoleRef{clientRole("svc", "call")} // its own, new role
	res, err = s.ApplySeed(c, again)
	must(t, err)
	same(t, "third apply", res, storage.SeedResult{Created: 1, Updated: 4, Unchanged: 4})
	user := getRole(t, s, "acme", "", "user")
	if user.Description != "changed" || !user.CreatedAt.Equal(t0) || !user.UpdatedAt.Equal(at(time.Hour)) {
		t.Fatalf("updated role = %+v", user)
	}
	alice, err = s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	same(t, "alice's roles", alice.Roles, []storage.RoleRef{realmRole("user")})
	bob, err := s.GetUserByUsername(c, "acme", "bob")
	must(t, err)
	if bob.FamilyName != "Builder" {
		t.Fatalf("bob's family name = %q", bob.FamilyName)
	}
	svc, err = s.GetClient(c, "acme", "svc")
	must(t, err)
	same(t, "svc's roles", svc.ServiceAccountRoles, []storage.RoleRef{clientRole("svc", "call")})
}

// A seed reference to a role that is nowhere fails the seed, all of it.
func testSeedUnknownRole(t *testing.T, s storage.Store) {
	c := ctx(t)
	for i, spoil := range []func(sr *storage.SeedRealm){
		func(sr *storage.SeedRealm) { sr.Users[1].Roles = []storage.RoleRef{realmRole("nope")} },
		func(sr *storage.SeedRealm) {
			sr.Clients[0].ServiceAccountRoles = []storage.RoleRef{clientRole("svc", "read")}
		},
		func(sr *storage.SeedRealm) { sr.Roles[1].Composites = []storage.RoleRef{clientRole("nope", "x")} },
	} {
		seed := roleSeed()
		spoil(&seed.Realms[0])
		_, err := s.ApplySeed(c, seed)
		wantErr(t, err, storage.ErrNotFound)
		realms, err := s.ListRealms(c)
		must(t, err)
		if len(realms) != 0 {
			t.Fatalf("case %d: a failed seed left realms %+v", i, realms)
		}
	}
}

// Role deletions racing with updates of users, clients and roles that add
// references (to the roles deleted, too) lose no update and leave no reference
// to a deleted role. Races of 2, 5 and 30 parties of each kind.
func testRoleRefsRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, n := range []int{2, 5, 30} {
		realm := fmt.Sprintf("race%d", n)
		mkRealm(t, s, realm)
		var dels []storage.RoleRef
		for i := range n {
			mkRole(t, s, realm, "", fmt.Sprintf("keep%d", i))
			mkRole(t, s, realm, "", fmt.Sprintf("del%d", i))
			dels = append(dels, realmRole(fmt.Sprintf("del%d", i)))
		}
		// The updated ones start with no references (every one they get comes
		// from a racing update); the idle ones with all those to be deleted.
		hub := mkRole(t, s, realm, "", "hub")
		mkRole(t, s, realm, "", "idle", dels...)
		u := newUser(realm, "u")
		must(t, s.CreateUser(c, u))
		idle := newUser(realm, "idle")
		idle.Roles = dels
		must(t, s.CreateUser(c, idle))
		cl := newClient(realm, "svc")
		must(t, s.CreateClient(c, cl))
		idleC := newClient(realm, "idle")
		idleC.ServiceAccountRoles = dels
		must(t, s.CreateClient(c, idleC))

		// Each updater adds a role kept and the one its party deletes (maybe
		// deleted already).
		add := func(refs []storage.RoleRef, i int) []storage.RoleRef {
			return append(refs, realmRole(fmt.Sprintf("keep%d", i)), dels[i])
		}
		errs := together(4*n, func(i int) error {
			k := i / 4
			switch i % 4 {
			case 0:
				return s.DeleteRole(c, realm, "", dels[k].Name)
			case 1:
				_, err := s.UpdateUser(c, realm, u.ID, func(u *storage.User) ([]storage.AuditEvent, error) {
					u.Roles = add(u.Roles, k)
					return nil, nil
				})
				return err
			case 2:
				_, err := s.UpdateClient(c, realm, cl.ID, func(c *storage.Client) ([]storage.AuditEvent, error) {
					c.ServiceAccountRoles = add(c.ServiceAccountRoles, k)
					return nil, nil
				})
				return err
			default:
				_, err := s.UpdateRole(c, realm, "", hub.Name, func(r *storage.Role) ([]storage.AuditEvent, error) {
					r.Composites = add(r.Composites, k)
					return nil, nil
				})
				return err
			}
		})
		for _, err := range errs {
			must(t, err)
		}

		check := func(what string, refs []storage.RoleRef) {
			t.Helper()
			for i := range n {
				if !slices.Contains(refs, realmRole(fmt.Sprintf("keep%d", i))) {
					t.Fatalf("%d parties: %s lost keep%d: %+v", n, what, i, refs)
				}
			}
			for _, d := range dels {
				if slices.Contains(refs, d) {
					t.Fatalf("%d parties: %s still names the deleted %s: %+v", n, what, d.Name, refs)
				}
			}
		}
		got, err := s.GetUser(c, realm, u.ID)
		must(t, err)
		check("the user", got.Roles)
		gotC, err := s.GetClient(c, realm, cl.ID)
		must(t, err)
		check("the client", gotC.ServiceAccountRoles)
		check("the composite", getRole(t, s, realm, "", "hub").Composites)
		got, err = s.GetUser(c, realm, idle.ID)
		must(t, err)
		gotC, err = s.GetClient(c, realm, idleC.ID)
		must(t, err)
		if idleR := getRole(t, s, realm, "", "idle"); len(got.Roles)+len(gotC.ServiceAccountRoles)+len(idleR.Composites) != 0 {
			t.Fatalf("%d parties: references to deleted roles kept: user %+v, client %+v, role %+v",
				n, got.Roles, gotC.ServiceAccountRoles, idleR.Composites)
		}
	}
}
