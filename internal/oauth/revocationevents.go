package oauth

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage"
)

// revocationEvents serves the revocation feed to a resource server that
// authenticates as at introspection: its own confidential client's credentials
// (HTTP Basic, as the request has no body), the same checks and throttle; a
// public client is refused. An access token is no credential here.
func (h *Handler) revocationEvents(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	client, err := h.authenticateClient(r, url.Values{}, realm, false)
	if err != nil {
		// The only way in is Basic, so every 401 names it (RFC 6749 §5.2), also to a
		// request that tried none or another scheme.
		var e *protocol.Error
		if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
			e.Basic = true
		}
		h.writeError(w, r, err)
		return
	}
	if err := h.events.Serve(w, r, realm, client); err != nil {
		h.writeError(w, r, err)
	}
}
