package admin

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// clientView is a client as the API shows it: the seed's representation (never
// the secret, but a generated one in the answer that created it) and its state.
type clientView struct {
	registry.Client
	Confidential            bool      `json:"confidential"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	CreatedAt               time.Time `json:"created_at,omitzero"`
	UpdatedAt               time.Time `json:"updated_at,omitzero"`
}

func viewClient(c storage.Client) clientView {
	v := clientView{Client: registry.ClientOf(c), Confidential: !c.Public(), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if c.PreviousSecretHash != "" {
		v.PreviousSecretExpiresAt = c.PreviousSecretExpiresAt
	}
	return v
}

// clientETag hashes the stored client without its secrets' hashes.
func clientETag(c storage.Client) string {
	c.SecretHash, c.PreviousSecretHash = "", ""
	if len(c.ServiceAccountRoles) == 0 {
		c.ServiceAccountRoles = nil // stores may give an empty list as nil, or not
	}
	return etag(c)
}

// clientInput is a PUT body: the seed's representation, and whether a client
// given neither secret nor jwks is confidential (then a secret is generated).
type clientInput struct {
	registry.Client
	Confidential *bool `json:"confidential,omitempty"`
}

func clientErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no such client (or realm)")
	}
	return err
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := pageQueryOf(r)
	if err != nil {
		return err
	}
	realm := r.PathValue("realm")
	if _, err := a.Store.GetRealm(r.Context(), realm); err != nil {
		return realmErr(err)
	}
	clients, err := a.Store.ListClients(r.Context(), realm)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pageOf(clients, q, func(c storage.Client) string { return c.ID }, viewClient))
	return nil
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request, c *caller) error {
	cl, err := a.Store.GetClient(r.Context(), r.PathValue("realm"), r.PathValue("client"))
	if err != nil {
		return clientErr(err)
	}
	w.Header().Set("ETag", clientETag(cl))
	writeJSON(w, http.StatusOK, viewClient(cl))
	return nil
}

// putClient creates the client or replaces its configuration. A replace without
// secret (or jwks) keeps the stored secret; a confidential client created without
// one gets a generated secret, shown once in the 201 answer.
func (a *API) putClient(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, id := r.PathValue("realm"), r.PathValue("client")
	var in clientInput
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	if in.ID == "" {
		in.ID = id
	} else if in.ID != id {
		return invalidField("id", "must be the client's ID in the path")
	}
	if in.Confidential != nil && !*in.Confidential && (in.Secret != "" || len(in.JWKS) > 0) {
		return invalidField("confidential", "a client with a secret or jwks is confidential")
	}
	// Its service-account roles must be roles of the realm (the store drops one
	// deleted meanwhile).
	if !in.ServiceAccountRoles.IsZero() {
		known, err := a.knownRoles(r.Context(), realm)
		if err != nil {
			return err
		}
		if err := registry.CheckClientRoles(&in.Client, known); err != nil {
			return err
		}
	}
	now := a.now()
	// Replace. The secret's hash is computed before: fn may run more than once.
	newHash := ""
	if in.Secret != "" {
		newHash = a.Secrets.Hash(realm, id, in.Secret)
	}
	stored, err := a.Store.UpdateClient(r.Context(), realm, id, func(old *storage.Client) ([]storage.AuditEvent, error) {
		if !ifMatch(r, clientETag(*old), true) {
			return nil, errPrecondition
		}
		cl := in.Client
		keep := in.Secret == "" && len(in.JWKS) == 0 && old.SecretHash != "" && (in.Confidential == nil || *in.Confidential)
		if keep {
			cl.Secret = strings.Repeat("k", clientsecret.MinLen) // checked as confidential; never stored
		}
		if err := a.checkClient(&cl); err != nil {
			return nil, err
		}
		hash := newHash
		if keep {
			hash = old.SecretHash
		}
		next := cl.StoredClient(realm, hash, now)
		next.CreatedAt, next.TokensValidAfter = old.CreatedAt, old.TokensValidAfter
		if keep {
			next.PreviousSecretHash, next.PreviousSecretExpiresAt = old.PreviousSecretHash, old.PreviousSecretExpiresAt
		}
		events := []storage.AuditEvent{c.event("admin.client.updated", realm, now)}
		events[0].ClientID = id
		if next.Disabled && !old.Disabled {
			events = append(events, c.byAdmin(storage.ClientDisabled(realm, id, now, "admin")))
		}
		*old = next
		return events, nil
	})
	if err == nil {
		w.Header().Set("ETag", clientETag(stored))
		writeJSON(w, http.StatusOK, viewClient(stored))
		return nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}

	// Create.
	if !ifMatch(r, "", false) {
		return errPrecondition
	}
	cl := in.Client
	generated := ""
	if cl.Secret == "" && len(cl.JWKS) == 0 && (in.Confidential != nil && *in.Confidential ||
		in.Confidential == nil && hasGrant(cl.GrantTypes, "client_credentials")) {
		generated = clientsecret.Generate()
		cl.Secret = generated
	}
	if err := a.checkClient(&cl); err != nil {
		return err
	}
	hash := ""
	if cl.Secret != "" {
		hash = a.Secrets.Hash(realm, id, cl.Secret)
	}
	stored = cl.StoredClient(realm, hash, now)
	event := c.event("admin.client.created", realm, now)
	event.ClientID = id
	if err := a.Store.CreateClient(r.Context(), stored, event); err != nil {
		return clientErr(err)
	}
	v := viewClient(stored)
	v.Secret = generated // shown this once
	w.Header().Set("ETag", clientETag(stored))
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// checkClient is the registry's check, with what this server allows of plain http.
func (a *API) checkClient(cl *registry.Client) error {
	if err := registry.CheckClient(cl); err != nil {
		return err
	}
	return registry.CheckPlainHTTP(cl, a.AllowPlainHTTP)
}

func hasGrant(grants []string, g string) bool {
	for _, x := range grants {
		if x == g {
			return true
		}
	}
	return false
}

// deleteClient deletes the client and everything issued to it.
func (a *API) deleteClient(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, id := r.PathValue("realm"), r.PathValue("client")
	event := c.event("admin.client.deleted", realm, a.now())
	event.ClientID = id
	if err := a.Store.DeleteClient(r.Context(), realm, id, event); err != nil {
		return clientErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// updateClient runs fn on the client in the store's transaction and answers with it.
func (a *API) updateClient(w http.ResponseWriter, r *http.Request, fn func(cl *storage.Client, now time.Time) ([]storage.AuditEvent, error)) (storage.Client, error) {
	now := a.now()
	cl, err := a.Store.UpdateClient(r.Context(), r.PathValue("realm"), r.PathValue("client"), func(cl *storage.Client) ([]storage.AuditEvent, error) {
		return fn(cl, now)
	})
	return cl, clientErr(err)
}

// disableClient disables the client: the store moves its stamp, so every token it
// holds dies, and revokes its refresh families, in one transaction.
func (a *API) disableClient(w http.ResponseWriter, r *http.Request, c *caller) error {
	cl, err := a.updateClient(w, r, func(cl *storage.Client, now time.Time) ([]storage.AuditEvent, error) {
		if cl.Disabled {
			return nil, nil
		}
		cl.Disabled, cl.UpdatedAt = true, now
		return []storage.AuditEvent{c.byAdmin(storage.ClientDisabled(cl.Realm, cl.ID, now, "admin"))}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewClient(cl))
	return nil
}

// enableClient enables the client; what it held before stays dead (the stamp).
func (a *API) enableClient(w http.ResponseWriter, r *http.Request, c *caller) error {
	cl, err := a.updateClient(w, r, func(cl *storage.Client, now time.Time) ([]storage.AuditEvent, error) {
		if !cl.Disabled {
			return nil, nil
		}
		cl.Disabled, cl.UpdatedAt = false, now
		e := c.event("client.enabled", cl.Realm, now)
		e.ClientID = cl.ID
		return []storage.AuditEvent{c.byAdmin(e)}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewClient(cl))
	return nil
}

// maxGrace bounds how long a rotated-out secret may keep working.
const maxGrace = 7 * 24 * time.Hour

// rotateSecret gives the client a new secret, shown once. The old one stops at
// once, or at the end of the grace period the body asks for.
func (a *API) rotateSecret(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in struct {
		GracePeriod *registry.Duration `json:"grace_period"`
	}
	if err := decode(w, r, &in, true); err != nil {
		return err
	}
	var grace time.Duration
	if in.GracePeriod != nil {
		grace = time.Duration(*in.GracePeriod)
		if grace < 0 || grace > maxGrace {
			return invalidField("grace_period", "must be from 0s to 168h (7 days)")
		}
	}
	realm, id := r.PathValue("realm"), r.PathValue("client")
	secret := clientsecret.Generate()
	hash := a.Secrets.Hash(realm, id, secret)
	cl, err := a.updateClient(w, r, func(cl *storage.Client, now time.Time) ([]storage.AuditEvent, error) {
		if cl.SecretHash == "" {
			return nil, conflict("the client has no secret to rotate (it is public or uses private_key_jwt)")
		}
		cl.PreviousSecretHash, cl.PreviousSecretExpiresAt = "", time.Time{}
		if grace > 0 {
			cl.PreviousSecretHash, cl.PreviousSecretExpiresAt = cl.SecretHash, now.Add(grace)
		}
		cl.SecretHash, cl.UpdatedAt = hash, now
		e := c.event("admin.client.secret_rotated", realm, now)
		e.ClientID = id
		e.Details["grace_period"] = grace.String()
		return []storage.AuditEvent{e}, nil
	})
	if err != nil {
		return err
	}
	out := struct {
		ClientID                string    `json:"client_id"`
		Secret                  string    `json:"secret"`
		PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	}{ClientID: id, Secret: secret}
	if cl.PreviousSecretHash != "" {
		out.PreviousSecretExpiresAt = cl.PreviousSecretExpiresAt
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeClientTokens moves the client's stamp: every token issued to it so far dies.
func (a *API) revokeClientTokens(w http.ResponseWriter, r *http.Request, c *caller) error {
	_, err := a.updateClient(w, r, func(cl *storage.Client, now time.Time) ([]storage.AuditEvent, error) {
		cl.TokensValidAfter, cl.UpdatedAt = now, now
		e := c.event("admin.client.tokens_revoked", cl.Realm, now)
		e.ClientID = cl.ID
		return []storage.AuditEvent{e}, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
