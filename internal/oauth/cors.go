package oauth

import (
	"net/http"
	"slices"

	"github.com/latchkey/latchkey/storage"
)

// cors lets the realm's browser apps call an endpoint from their own pages: a
// single-page app redeems its code and refreshes at the token endpoint, and reads
// userinfo, by fetch. The allowed origins are those of the realm's registered
// redirect URIs; no cookies are involved, so credentials are never allowed.
func (h *Handler) cors(next realmHandler) realmHandler {
	return func(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
		o := r.Header.Get("Origin")
		if o == "" {
			next(w, r, realm)
			return
		}
		w.Header().Add("Vary", "Origin")
		allowed, err := h.allowedOrigin(r, realm, o)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", o)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if allowed {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				w.Header().Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next(w, r, realm)
	}
}

func (h *Handler) allowedOrigin(r *http.Request, realm storage.Realm, o string) (bool, error) {
	clients, err := h.store.ListClients(r.Context(), realm.Name)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(clients, func(c storage.Client) bool {
		return !c.Disabled && slices.ContainsFunc(c.RedirectURIs, func(u string) bool { return origin(u) == o })
	}), nil
}
