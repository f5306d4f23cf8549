package oauth

import (
	"net/http"
	"slices"

	"github.com/latchkey/latchkey/storage"
)

// CORS, as Keycloak does it for a client's web origins: the realm's browser apps
// (keycloak-js fetches with credentials: 'include') may call the token,
// revocation, userinfo, logout and account endpoints from the origins their
// clients registered (web_origins; by default, or with "+", the origins of their
// redirect URIs). An allowed origin gets itself back, exactly, with
// Access-Control-Allow-Credentials: true; never "*", which the Fetch standard
// forbids with credentials. Other origins get no CORS headers, so browsers keep
// the answer from their pages. Discovery and JWKS are public documents instead
// (publicJSON: "*", no credentials).
//
// Which client's origins count:
//   - An actual token or revocation request names its client, authenticated
//     first: only that client's origins count (corsClient), as in Keycloak's
//     TokenEndpoint. This costs nothing beyond the client lookup the request
//     makes anyway (cached), so the token endpoint's hot path reads no more.
//     When the client is unknown or fails to authenticate, the answer carries no
//     CORS headers (Keycloak likewise): a page may not read invalid_client, but
//     no origin can probe with a client it does not own.
//   - A preflight carries no body, so no client: any enabled client of the realm
//     counts. It grants nothing by itself; the actual request is checked again.
//     (Keycloak answers every preflight; this is stricter.) Browsers cache the
//     answer for Access-Control-Max-Age.
//   - Userinfo, logout and account: any enabled client of the realm. Userinfo's
//     authority is the bearer token, not a cookie; logout and account do act on
//     the session cookie, so it is the realm's registered apps, and only them,
//     that may read those answers with it.

// corsMethods are the methods the CORS endpoints take.
const corsMethods = "GET, POST"

// corsRealm answers CORS for an endpoint on which any enabled client of the
// realm may register the caller's origin.
func (h *Handler) corsRealm(next realmHandler) realmHandler {
	return h.cors(next, true)
}

// corsByClient answers CORS for the token and revocation endpoints: preflights
// for any client's origin, actual requests through corsClient once the client is
// authenticated.
func (h *Handler) corsByClient(next realmHandler) realmHandler {
	return h.cors(next, false)
}

func (h *Handler) cors(next realmHandler, realmWide bool) realmHandler {
	return func(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
		// Every answer depends on Origin, the ones without too.
		w.Header().Add("Vary", "Origin")
		o := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if o == "" || (!preflight && !realmWide) {
			next(w, r, realm)
			return
		}
		allowed, err := h.realmAllows(r, realm, o)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if allowed {
			allowOrigin(w, o)
		}
		if preflight {
			if allowed {
				w.Header().Set("Access-Control-Allow-Methods", corsMethods)
				// DPoP (RFC 9449 §4.1) is sent by browser clients that bind their tokens.
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
				w.Header().Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next(w, r, realm)
	}
}

// corsClient allows the request's origin, if any, when the authenticated client
// registered it. Called before the answer is written, success or error, so a
// page can read an invalid_grant too.
func corsClient(w http.ResponseWriter, r *http.Request, c storage.Client) {
	if o := r.Header.Get("Origin"); o != "" && clientAllows(c, o) {
		allowOrigin(w, o)
	}
}

func allowOrigin(w http.ResponseWriter, o string) {
	w.Header().Set("Access-Control-Allow-Origin", o)
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	// A browser client must read the DPoP nonce it is given (RFC 9449 §8, §9) and
	// the DPoP challenge of a refused token (§7.1).
	w.Header().Set("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate")
}

// realmAllows reports whether an enabled client of the realm allows origin o.
func (h *Handler) realmAllows(r *http.Request, realm storage.Realm, o string) (bool, error) {
	clients, err := h.store.ListClients(r.Context(), realm.Name)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(clients, func(c storage.Client) bool { return !c.Disabled && clientAllows(c, o) }), nil
}

// clientAllows reports whether the client's web origins hold o: the origins
// listed, and with "+" or none listed, those of its redirect URIs. Origins are
// compared as strings: registry.checkWebOrigin keeps them in the form browsers
// send.
func clientAllows(c storage.Client, o string) bool {
	return !c.Disabled && slices.Contains(webOrigins(c), o)
}

// webOrigins are the client's web origins: those listed, and with "+" or none
// listed, those of its redirect URIs.
func webOrigins(c storage.Client) []string {
	var out []string
	if len(c.WebOrigins) == 0 || slices.Contains(c.WebOrigins, "+") {
		for _, u := range c.RedirectURIs {
			out = append(out, origin(u))
		}
	}
	for _, o := range c.WebOrigins {
		if o != "+" {
			out = append(out, o)
		}
	}
	return out
}
