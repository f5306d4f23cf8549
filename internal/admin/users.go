package admin

import (
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// registerUsers adds the users, sessions and families routes: h(pattern, handler)
// as Register does for the others.
func (a *API) registerUsers(h func(pattern string, fn handlerFunc)) {
	h("GET /admin/realms/{realm}/users", a.listUsers)
	h("POST /admin/realms/{realm}/users", a.createUser)
	h("GET /admin/realms/{realm}/users/{user}", a.getUser)
	h("PUT /admin/realms/{realm}/users/{user}", a.putUser)
	h("DELETE /admin/realms/{realm}/users/{user}", a.deleteUser)
	h("POST /admin/realms/{realm}/users/{user}/disable", a.disableUser)
	h("POST /admin/realms/{realm}/users/{user}/enable", a.enableUser)
	h("PUT /admin/realms/{realm}/users/{user}/password", a.setUserPassword)
	h("POST /admin/realms/{realm}/users/{user}/unlock", a.unlockUser)
	h("POST /admin/realms/{realm}/users/{user}/logout", a.logoutUser)
	h("GET /admin/realms/{realm}/users/{user}/sessions", a.listUserSessions)
	h("DELETE /admin/realms/{realm}/users/{user}/sessions/{session}", a.deleteUserSession)
	h("DELETE /admin/realms/{realm}/users/{user}/families/{family}", a.deleteUserFamily)
}

// userView is a user as the API shows it: never their password or its hash.
type userView struct {
	ID            string              `json:"id"`
	Username      string              `json:"username"`
	Email         string              `json:"email"`
	EmailVerified bool                `json:"email_verified"`
	Name          string              `json:"name"`
	GivenName     string              `json:"given_name,omitempty"`
	FamilyName    string              `json:"family_name,omitempty"`
	Disabled      bool                `json:"disabled"`
	RealmRoles    []string            `json:"realm_roles,omitempty"`
	ClientRoles   map[string][]string `json:"client_roles,omitempty"`
	CreatedAt     time.Time           `json:"created_at,omitzero"`
	UpdatedAt     time.Time           `json:"updated_at,omitzero"`
}

func viewUser(u storage.User) userView {
	reg := registry.UserOf(u)
	return userView{ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified,
		Name: u.Name, GivenName: u.GivenName, FamilyName: u.FamilyName, Disabled: u.Disabled,
		RealmRoles: reg.RealmRoles, ClientRoles: reg.ClientRoles, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// checkUserRoles checks that the user's role mappings name roles of the realm.
func (a *API) checkUserRoles(r *http.Request, u *registry.User) error {
	if len(u.RealmRoles) == 0 && len(u.ClientRoles) == 0 {
		return nil
	}
	known, err := a.knownRoles(r.Context(), r.PathValue("realm"))
	if err != nil {
		return err
	}
	return registry.CheckUserRoles(u, known)
}

// userETag hashes the stored user without their password hash, stamp included:
// a logout everywhere is a change an If-Match must see.
func userETag(u storage.User) string {
	u.PasswordHash = ""
	if len(u.Roles) == 0 {
		u.Roles = nil // stores may give an empty list as nil, or not
	}
	return etag(u)
}

// maxSearch bounds ?q=, as every identifier from outside is bounded.
const maxSearch = 255

func userErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no such user (or realm)")
	}
	if errors.Is(err, storage.ErrConflict) {
		return conflict("the username or email is taken by another user of the realm")
	}
	return err
}

// user reads the path's user (its ID bounded by checkPathIDs).
func (a *API) user(r *http.Request) (storage.User, error) {
	u, err := a.Store.GetUser(r.Context(), r.PathValue("realm"), r.PathValue("user"))
	return u, userErr(err)
}

// listUsers lists the realm's users by username, or those matching ?q=; the
// cursor is the last username of the previous page.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := pageQueryOf(r)
	if err != nil {
		return err
	}
	search := r.URL.Query().Get("q")
	if len(search) > maxSearch {
		return invalidField("q", "must have at most "+strconv.Itoa(maxSearch)+" bytes")
	}
	realm := r.PathValue("realm")
	if _, err := a.Store.GetRealm(r.Context(), realm); err != nil {
		return realmErr(err)
	}
	// One more than the page, to know whether there is a next one.
	users, err := a.Store.ListUsers(r.Context(), realm, storage.UserQuery{Search: search, After: q.after, Limit: q.limit + 1})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pageOf(users, q, func(u storage.User) string { return u.Username }, viewUser))
	return nil
}

// createUser creates a user with a new ID. The password is hashed with argon2id;
// a password_hash (in PHC form) is stored as it is.
func (a *API) createUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in registry.User
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	if err := registry.CheckUser(&in, true); err != nil {
		return err
	}
	if err := a.checkUserRoles(r, &in); err != nil {
		return err
	}
	realm := r.PathValue("realm")
	hash := in.PasswordHash
	if hash == "" {
		var err error
		if hash, err = a.HashPassword(in.Password); err != nil {
			return err
		}
	}
	now := a.now()
	u := storage.User{Realm: realm, ID: rand.Text(), Username: in.Username, Email: in.Email,
		EmailVerified: in.EmailVerified, Name: in.Name, GivenName: in.GivenName, FamilyName: in.FamilyName,
		Roles: in.RoleRefs(), PasswordHash: hash, Disabled: in.Disabled, CreatedAt: now, UpdatedAt: now}
	e := c.event("admin.user.created", realm, now)
	e.UserID = u.ID
	if err := a.Store.CreateUser(r.Context(), u, e); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return realmErr(err)
		}
		return userErr(err)
	}
	w.Header().Set("Location", "/admin/realms/"+realm+"/users/"+u.ID)
	w.Header().Set("ETag", userETag(u))
	writeJSON(w, http.StatusCreated, viewUser(u))
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", userETag(u))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

// updateUser runs fn on the path's user in the store's transaction (see
// storage.UserStore.UpdateUser: a stamp moved there revokes their sessions and
// families in the same transaction).
func (a *API) updateUser(r *http.Request, fn func(u *storage.User, now time.Time) ([]storage.AuditEvent, error)) (storage.User, error) {
	now := a.now()
	u, err := a.Store.UpdateUser(r.Context(), r.PathValue("realm"), r.PathValue("user"), func(u *storage.User) ([]storage.AuditEvent, error) {
		return fn(u, now)
	})
	return u, userErr(err)
}

// userUpdate is a PUT body: the profile, replaced whole. The password has its own
// route. The fields that came with roles (names and role mappings) are kept
// when absent, so a client written before them does not wipe them.
type userUpdate struct {
	Username      string               `json:"username"`
	Email         string               `json:"email"`
	EmailVerified bool                 `json:"email_verified"`
	Name          string               `json:"name"`
	Disabled      bool                 `json:"disabled"`
	GivenName     *string              `json:"given_name"`
	FamilyName    *string              `json:"family_name"`
	RealmRoles    *[]string            `json:"realm_roles"`
	ClientRoles   *map[string][]string `json:"client_roles"`
}

// putUser replaces the user's profile. Turning disabled on ends what they hold as
// the disable route does.
func (a *API) putUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in userUpdate
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	reg := registry.User{Username: in.Username, Email: in.Email, EmailVerified: in.EmailVerified, Name: in.Name, Disabled: in.Disabled}
	if in.GivenName != nil {
		reg.GivenName = *in.GivenName
	}
	if in.FamilyName != nil {
		reg.FamilyName = *in.FamilyName
	}
	if in.RealmRoles != nil {
		reg.RealmRoles = *in.RealmRoles
	}
	if in.ClientRoles != nil {
		reg.ClientRoles = *in.ClientRoles
	}
	if err := registry.CheckUser(&reg, false); err != nil {
		return err
	}
	if err := a.checkUserRoles(r, &reg); err != nil {
		return err
	}
	u, err := a.updateUser(r, func(u *storage.User, now time.Time) ([]storage.AuditEvent, error) {
		if !ifMatch(r, userETag(*u), true) {
			return nil, errPrecondition
		}
		was := *u
		u.Username, u.Email, u.EmailVerified, u.Name, u.Disabled = reg.Username, reg.Email, reg.EmailVerified, reg.Name, reg.Disabled
		if in.GivenName != nil {
			u.GivenName = reg.GivenName
		}
		if in.FamilyName != nil {
			u.FamilyName = reg.FamilyName
		}
		if in.RealmRoles != nil || in.ClientRoles != nil {
			// The mappings given replace their kind: realm roles, or client roles.
			have := registry.UserOf(*u)
			if in.RealmRoles != nil {
				have.RealmRoles = reg.RealmRoles
			}
			if in.ClientRoles != nil {
				have.ClientRoles = reg.ClientRoles
			}
			u.Roles = have.RoleRefs()
		}
		u.UpdatedAt = now
		e := c.event("admin.user.updated", u.Realm, now)
		e.UserID = u.ID
		events := []storage.AuditEvent{e}
		switch {
		case u.Disabled && !was.Disabled:
			u.TokensValidAfter = now
			events = append(events, c.byAdmin(storage.UserDisabled(u.Realm, u.ID, now, "admin")))
		case !u.Disabled && was.Disabled:
			events = append(events, userEnabled(c, *u, now))
		}
		return events, nil
	})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", userETag(u))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

func userEnabled(c *caller, u storage.User, now time.Time) storage.AuditEvent {
	e := c.event("user.enabled", u.Realm, now)
	e.UserID = u.ID
	return c.byAdmin(e)
}

// deleteUser deletes the user and everything they hold, in one store call: their
// tokens are inactive at once (their subject is gone), their sessions and
// refresh families with them.
func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, id := r.PathValue("realm"), r.PathValue("user")
	e := c.event("user.deleted", realm, a.now())
	e.UserID = id
	if err := a.Store.DeleteUser(r.Context(), realm, id, c.byAdmin(e)); err != nil {
		return userErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// disableUser disables the user and moves their security stamp, so every token
// and session they hold is dead, and stays dead when they are enabled again; the
// store ends their sessions and families in the same transaction.
func (a *API) disableUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := a.updateUser(r, func(u *storage.User, now time.Time) ([]storage.AuditEvent, error) {
		if u.Disabled {
			return nil, nil
		}
		u.Disabled, u.UpdatedAt, u.TokensValidAfter = true, now, now
		return []storage.AuditEvent{c.byAdmin(storage.UserDisabled(u.Realm, u.ID, now, "admin"))}, nil
	})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", userETag(u))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

// enableUser enables the user. The stamp stays where disabling put it: nothing
// they held before comes back; they sign in again.
func (a *API) enableUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := a.updateUser(r, func(u *storage.User, now time.Time) ([]storage.AuditEvent, error) {
		if !u.Disabled {
			return nil, nil
		}
		u.Disabled, u.UpdatedAt = false, now
		return []storage.AuditEvent{userEnabled(c, *u, now)}, nil
	})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", userETag(u))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

// setUserPassword sets the user's password. Unless keep_sessions is true it moves
// their stamp, so the store ends their sessions and families in the same
// transaction and every token they hold dies. The password never reaches a log
// or an event.
func (a *API) setUserPassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in struct {
		Password     string `json:"password"`
		KeepSessions bool   `json:"keep_sessions"`
	}
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	if msg := registry.CheckPassword(in.Password); msg != "" {
		return invalidField("password", msg)
	}
	if _, err := a.user(r); err != nil { // before the expensive hash
		return err
	}
	hash, err := a.HashPassword(in.Password)
	if err != nil {
		return err
	}
	_, err = a.updateUser(r, func(u *storage.User, now time.Time) ([]storage.AuditEvent, error) {
		u.PasswordHash, u.UpdatedAt = hash, now
		if !in.KeepSessions {
			u.TokensValidAfter = now
		}
		e := c.byAdmin(storage.PasswordChanged(u.Realm, u.ID, now, "admin"))
		e.Details["keep_sessions"] = strconv.FormatBool(in.KeepSessions)
		return []storage.AuditEvent{e}, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// logoutUser signs the user out everywhere: one update moving their stamp, and
// with it the store ends every session and family they hold.
func (a *API) logoutUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	_, err := a.updateUser(r, func(u *storage.User, now time.Time) ([]storage.AuditEvent, error) {
		u.TokensValidAfter, u.UpdatedAt = now, now
		e := c.event("user.logout_everywhere", u.Realm, now)
		e.UserID = u.ID
		return []storage.AuditEvent{c.byAdmin(e)}, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// unlockUser clears the user's login lock; the limiter keeps its counts in the
// store, so on every instance.
func (a *API) unlockUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	if a.Logins != nil {
		if err := a.Logins.Unlock(r.Context(), web.UserAccount(u.Realm, u.ID)); err != nil {
			return err
		}
	}
	e := c.event("user.unlocked", u.Realm, a.now())
	e.UserID = u.ID
	if _, err := a.Store.AppendAudit(r.Context(), c.byAdmin(e)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sessionView and familyView are a user's browser session and refresh family as
// the API shows them: what, where from, when; never a secret's hash.
type sessionView struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	LastSeenAt time.Time `json:"last_seen_at,omitzero"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

type familyView struct {
	ID         string    `json:"id"`
	ClientID   string    `json:"client_id"`
	SessionID  string    `json:"session_id,omitempty"`
	Scopes     []string  `json:"scopes"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

// listUserSessions lists the user's live browser sessions and refresh families.
func (a *API) listUserSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	now := a.now()
	sessions, err := a.Store.ListUserSessions(r.Context(), u.Realm, u.ID, now)
	if err != nil {
		return err
	}
	families, err := a.Store.ListUserFamilies(r.Context(), u.Realm, u.ID, now)
	if err != nil {
		return err
	}
	out := struct {
		Sessions []sessionView `json:"sessions"`
		Families []familyView  `json:"families"`
	}{Sessions: []sessionView{}, Families: []familyView{}}
	for _, s := range sessions {
		// The session ends at whichever comes first: idle or absolute expiry.
		exp := s.ExpiresAt
		if s.IdleExpiresAt.Before(exp) {
			exp = s.IdleExpiresAt
		}
		out.Sessions = append(out.Sessions, sessionView{ID: s.ID, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt,
			ExpiresAt: exp, IP: s.IP, UserAgent: s.UserAgent})
	}
	for _, f := range families {
		scopes := f.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		out.Families = append(out.Families, familyView{ID: f.ID, ClientID: f.ClientID, SessionID: f.SessionID,
			Scopes: scopes, CreatedAt: f.CreatedAt, LastUsedAt: f.LastUsedAt, IP: f.IP, UserAgent: f.UserAgent})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// reasonAdmin is the revoke reason of what an admin ends one by one.
const reasonAdmin = "ended by admin"

// deleteUserSession ends one of the user's browser sessions and the refresh
// families born in it (and so the access tokens issued in it).
func (a *API) deleteUserSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, userID, sid := r.PathValue("realm"), r.PathValue("user"), r.PathValue("session")
	s, err := a.Store.GetSession(r.Context(), sid)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (s.Realm != realm || s.UserID != userID)) {
		return notFound("no such session of this user")
	}
	if err != nil {
		return err
	}
	now := a.now()
	// The families first: a failure between the two leaves the session to end
	// again, never an app signed in from a session that is over.
	if _, err := a.Store.RevokeSessionFamilies(r.Context(), sid, now, reasonAdmin); err != nil {
		return err
	}
	if err := a.Store.RevokeSession(r.Context(), sid, now); err != nil {
		return err
	}
	e := c.event("session.ended", realm, now)
	e.UserID, e.SessionID = userID, sid
	e.Details["reason"] = reasonAdmin
	if _, err := a.Store.AppendAudit(r.Context(), c.byAdmin(e)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteUserFamily revokes one of the user's refresh families.
func (a *API) deleteUserFamily(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, userID, fid := r.PathValue("realm"), r.PathValue("user"), r.PathValue("family")
	f, err := a.Store.GetFamily(r.Context(), fid)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (f.Realm != realm || f.UserID != userID)) {
		return notFound("no such refresh family of this user")
	}
	if err != nil {
		return err
	}
	now := a.now()
	if err := a.Store.RevokeFamily(r.Context(), fid, now, reasonAdmin); err != nil {
		return err
	}
	e := c.event("refresh_family.revoked", realm, now)
	e.ClientID, e.UserID, e.SessionID, e.FamilyID = f.ClientID, userID, f.SessionID, fid
	e.Details["reason"] = reasonAdmin
	if _, err := a.Store.AppendAudit(r.Context(), c.byAdmin(e)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
