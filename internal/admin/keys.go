package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/storage"
)

// keyView is a signing key as the API shows it: its public JWK only.
type keyView struct {
	KID          string          `json:"kid"`
	Alg          string          `json:"alg"`
	Status       string          `json:"status"`
	CreatedAt    time.Time       `json:"created_at,omitzero"`
	SignFrom     time.Time       `json:"sign_from,omitzero"`
	SignUntil    time.Time       `json:"sign_until,omitzero"`
	PublishUntil time.Time       `json:"publish_until,omitzero"`
	PublicJWK    json.RawMessage `json:"public_jwk"`
}

func viewKey(k storage.SigningKey, now time.Time) keyView {
	return keyView{KID: k.KID, Alg: k.Alg, Status: keys.Status(k, now), CreatedAt: k.CreatedAt,
		SignFrom: k.SignFrom, SignUntil: k.SignUntil, PublishUntil: k.PublishUntil, PublicJWK: k.PublicJWK}
}

func (a *API) viewKeys(ks []storage.SigningKey) map[string][]keyView {
	now := a.Now()
	out := make([]keyView, len(ks))
	for i, k := range ks {
		out[i] = viewKey(k, now)
	}
	return map[string][]keyView{"items": out}
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm := r.PathValue("realm")
	if _, err := a.Store.GetRealm(r.Context(), realm); err != nil {
		return realmErr(err)
	}
	ks, err := a.Store.ListSigningKeys(r.Context(), realm)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.viewKeys(ks))
	return nil
}

// rotateKeys makes the realm's next keys: published now, signing after the
// publish lead. It answers with the new keys.
func (a *API) rotateKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in struct {
		Alg string `json:"alg"`
	}
	if err := decode(w, r, &in, true); err != nil {
		return err
	}
	if in.Alg != "" && !slices.Contains(keys.Algs, in.Alg) {
		return invalidField("alg", "must be one of ES256, EdDSA, RS256")
	}
	realm := r.PathValue("realm")
	if _, err := a.Store.GetRealm(r.Context(), realm); err != nil {
		return realmErr(err)
	}
	made, err := a.Keys.Rotate(r.Context(), realm, in.Alg)
	if err != nil {
		return err
	}
	e := c.event("admin.keys.rotated", realm, a.now())
	for i, k := range made {
		if i == 0 {
			e.Details["kids"] = k.KID
		} else {
			e.Details["kids"] += " " + k.KID
		}
	}
	if _, err := a.Store.AppendAudit(r.Context(), e); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.viewKeys(made))
	return nil
}

// retireKey takes a key out at once, as after a compromise: it stops signing and
// leaves the JWKS now, and this instance forgets every token signature it checked,
// so tokens the key signed are inactive at once.
func (a *API) retireKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	realm, kid := r.PathValue("realm"), r.PathValue("kid")
	e := c.byAdmin(storage.AuditEvent{Time: a.now(), Type: "signing_key.retired", Realm: realm, Details: map[string]string{"kid": kid}})
	k, err := a.Keys.Retire(r.Context(), realm, kid, e)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no such signing key (or realm)")
	}
	if err != nil {
		return err
	}
	a.Tokens.ForgetVerified()
	writeJSON(w, http.StatusOK, viewKey(k, a.Now()))
	return nil
}
