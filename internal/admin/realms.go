package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// realmView is a realm as the API shows it: the seed's representation and when it
// was created and last changed.
type realmView struct {
	registry.Realm
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

func viewRealm(r storage.Realm) realmView {
	return realmView{Realm: registry.RealmOf(r), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func (a *API) listRealms(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := pageQueryOf(r)
	if err != nil {
		return err
	}
	realms, err := a.Store.ListRealms(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pageOf(realms, q, func(r storage.Realm) string { return r.Name }, viewRealm))
	return nil
}

func (a *API) getRealm(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, err := a.Store.GetRealm(r.Context(), r.PathValue("realm"))
	if err != nil {
		return realmErr(err)
	}
	w.Header().Set("ETag", etag(realm))
	writeJSON(w, http.StatusOK, viewRealm(realm))
	return nil
}

// realmErr names what was not found.
func realmErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no such realm")
	}
	return err
}

// putRealm creates the realm (a master admin only) or replaces its configuration.
func (a *API) putRealm(w http.ResponseWriter, r *http.Request, c *caller) error {
	name := r.PathValue("realm")
	var in registry.Realm
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	if in.Name == "" {
		in.Name = name
	} else if in.Name != name {
		return invalidField("name", "must be the realm's name in the path")
	}
	if err := registry.CheckRealm(&in); err != nil {
		return err
	}
	now := a.now()
	stored, err := a.Store.UpdateRealm(r.Context(), name, func(old *storage.Realm) ([]storage.AuditEvent, error) {
		if !ifMatch(r, etag(*old), true) {
			return nil, errPrecondition
		}
		next := in.StoredRealm(now)
		next.CreatedAt = old.CreatedAt
		*old = next
		return []storage.AuditEvent{c.event("admin.realm.updated", name, now)}, nil
	})
	status := http.StatusOK
	if errors.Is(err, storage.ErrNotFound) {
		switch {
		case !ifMatch(r, "", false):
			return errPrecondition
		case !c.master():
			return forbidden("only an admin client of realm master creates realms")
		}
		stored = in.StoredRealm(now)
		err = a.Store.CreateRealm(r.Context(), stored, c.event("admin.realm.created", name, now))
		status = http.StatusCreated
	}
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(stored))
	writeJSON(w, status, viewRealm(stored))
	return nil
}

// deleteRealm deletes a realm and everything in it: a master admin only, and never
// master itself (its admin clients are how the API is reached).
func (a *API) deleteRealm(w http.ResponseWriter, r *http.Request, c *caller) error {
	name := r.PathValue("realm")
	switch {
	case !c.master():
		return forbidden("only an admin client of realm master deletes realms")
	case name == MasterRealm:
		return conflict("the management realm master cannot be deleted")
	}
	if err := a.Store.DeleteRealm(r.Context(), name, c.event("admin.realm.deleted", name, a.now())); err != nil {
		return realmErr(err)
	}
	a.Keys.Forget(name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// logoutRealm ends every browser session and refresh family of the realm.
func (a *API) logoutRealm(w http.ResponseWriter, r *http.Request, c *caller) error {
	name := r.PathValue("realm")
	now := a.now()
	sessions, families, err := a.Store.LogoutRealm(r.Context(), name, now, c.event("admin.realm.logout_all", name, now))
	if err != nil {
		return realmErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]int64{"sessions": sessions, "families": families})
	return nil
}
