package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// registerRoles adds the realm roles' and the client roles' routes, the same
// under /roles and /clients/{client}/roles.
func (a *API) registerRoles(h func(pattern string, fn handlerFunc)) {
	for _, base := range []string{"/admin/realms/{realm}/roles", "/admin/realms/{realm}/clients/{client}/roles"} {
		h("GET "+base, a.listRoles)
		h("POST "+base, a.createRole)
		h("GET "+base+"/{role}", a.getRole)
		h("PUT "+base+"/{role}", a.putRole)
		h("DELETE "+base+"/{role}", a.deleteRole)
	}
}

// roleView is a role as the API shows it: the seed's representation and its times.
type roleView struct {
	registry.Role
	ClientID  string    `json:"client_id,omitempty"` // the client of a client role
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

func viewRole(r storage.Role) roleView {
	return roleView{Role: registry.RoleOf(r), ClientID: r.ClientID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// roleETag is the role's entity tag.
func roleETag(r storage.Role) string {
	if len(r.Composites) == 0 {
		r.Composites = nil // stores may give an empty list as nil, or not
	}
	return etag(r)
}

func roleErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no such role (or client, or realm)")
	}
	if errors.Is(err, storage.ErrConflict) {
		return conflict("the role exists: PUT replaces it")
	}
	return err
}

// roleEvent is the audit event of a change to a role, naming it in its details.
func roleEvent(c *caller, typ, realm, clientID, name string, at time.Time) storage.AuditEvent {
	e := c.event(typ, realm, at)
	e.ClientID = clientID
	e.Details["role"] = name
	return e
}

// roleOwner checks that the path's realm, and client if any, exist, and
// returns the client's ID ("" for realm roles).
func (a *API) roleOwner(r *http.Request) (string, error) {
	realm, clientID := r.PathValue("realm"), r.PathValue("client")
	if _, err := a.Store.GetRealm(r.Context(), realm); err != nil {
		return "", realmErr(err)
	}
	if clientID != "" {
		if _, err := a.Store.GetClient(r.Context(), realm, clientID); err != nil {
			return "", clientErr(err)
		}
	}
	return clientID, nil
}

// knownRoles is the set of the realm's roles, which references must name.
func (a *API) knownRoles(ctx context.Context, realm string) (registry.RoleSet, error) {
	roles, err := a.Store.ListRoles(ctx, realm)
	if err != nil {
		return nil, err
	}
	return registry.RoleSetOf(roles), nil
}

// listRoles lists the realm's roles, or the client's, by name.
func (a *API) listRoles(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := pageQueryOf(r)
	if err != nil {
		return err
	}
	clientID, err := a.roleOwner(r)
	if err != nil {
		return err
	}
	all, err := a.Store.ListRoles(r.Context(), r.PathValue("realm"))
	if err != nil {
		return err
	}
	var roles []storage.Role
	for _, role := range all {
		if role.ClientID == clientID {
			roles = append(roles, role)
		}
	}
	writeJSON(w, http.StatusOK, pageOf(roles, q, func(r storage.Role) string { return r.Name }, viewRole))
	return nil
}

func (a *API) getRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	role, err := a.Store.GetRole(r.Context(), r.PathValue("realm"), r.PathValue("client"), r.PathValue("role"))
	if err != nil {
		return roleErr(err)
	}
	w.Header().Set("ETag", roleETag(role))
	writeJSON(w, http.StatusOK, viewRole(role))
	return nil
}

// checkRole checks the body of a create or replace: the registry's rules, and
// composites that name roles of the realm.
func (a *API) checkRole(ctx context.Context, realm, clientID string, in *registry.Role) error {
	if err := registry.CheckRole(in, clientID); err != nil {
		return err
	}
	known, err := a.knownRoles(ctx, realm)
	if err != nil {
		return err
	}
	return registry.CheckCompositeRoles(in, known)
}

// createRole creates a role named in the body.
func (a *API) createRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in registry.Role
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	clientID, err := a.roleOwner(r)
	if err != nil {
		return err
	}
	return a.create(w, r, c, clientID, in)
}

func (a *API) create(w http.ResponseWriter, r *http.Request, c *caller, clientID string, in registry.Role) error {
	realm := r.PathValue("realm")
	if err := a.checkRole(r.Context(), realm, clientID, &in); err != nil {
		return err
	}
	now := a.now()
	stored := in.StoredRole(realm, clientID, now)
	if err := a.Store.CreateRole(r.Context(), stored, roleEvent(c, "admin.role.created", realm, clientID, in.Name, now)); err != nil {
		return roleErr(err)
	}
	// The store drops a composite whose role went meanwhile: show what it kept.
	if got, err := a.Store.GetRole(r.Context(), realm, clientID, in.Name); err == nil {
		stored = got
	}
	if r.Method == http.MethodPost {
		w.Header().Set("Location", r.URL.Path+"/"+in.Name)
	}
	w.Header().Set("ETag", roleETag(stored))
	writeJSON(w, http.StatusCreated, viewRole(stored))
	return nil
}

// putRole replaces the role's description and composites, or creates it.
func (a *API) putRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, clientID, name := r.PathValue("realm"), r.PathValue("client"), r.PathValue("role")
	var in registry.Role
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	if _, err := a.roleOwner(r); err != nil {
		return err
	}
	if in.Name == "" {
		in.Name = name
	} else if in.Name != name {
		return invalidField("name", "must be the role's name in the path (a role is not renamed)")
	}
	if err := a.checkRole(r.Context(), realm, clientID, &in); err != nil {
		return err
	}
	now := a.now()
	stored, err := a.Store.UpdateRole(r.Context(), realm, clientID, name, func(old *storage.Role) ([]storage.AuditEvent, error) {
		if !ifMatch(r, roleETag(*old), true) {
			return nil, errPrecondition
		}
		old.Description, old.Composites, old.UpdatedAt = in.Description, in.Composites.Refs(), now
		return []storage.AuditEvent{roleEvent(c, "admin.role.updated", realm, clientID, name, now)}, nil
	})
	if err == nil {
		w.Header().Set("ETag", roleETag(stored))
		writeJSON(w, http.StatusOK, viewRole(stored))
		return nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if !ifMatch(r, "", false) {
		return errPrecondition
	}
	return a.create(w, r, c, clientID, in)
}

// deleteRole deletes the role and every reference to it (users' mappings,
// clients' service-account roles, other roles' composites).
func (a *API) deleteRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, clientID, name := r.PathValue("realm"), r.PathValue("client"), r.PathValue("role")
	if err := a.Store.DeleteRole(r.Context(), realm, clientID, name, roleEvent(c, "admin.role.deleted", realm, clientID, name, a.now())); err != nil {
		return roleErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
