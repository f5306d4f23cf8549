package oauth

import (
	"mime"
	"net/http"
	"strings"

	"github.com/latchkey/latchkey/storage"
)

// accountRepresentation is the part of Keycloak's account REST representation
// that keycloak-js's loadUserProfile reads (GET {realm}/account).
type accountRepresentation struct {
	ID            string `json:"id"`
	Username      string `json:"username"`
	Email         string `json:"email,omitempty"`
	FirstName     string `json:"firstName,omitempty"`
	LastName      string `json:"lastName,omitempty"`
	EmailVerified bool   `json:"emailVerified"`
}

// wantsAccountAPI tells the account REST call (a Bearer token, or JSON asked for,
// or its CORS preflight) from a browser opening the account page.
func wantsAccountAPI(r *http.Request) bool {
	if r.Method == http.MethodOptions || r.Header.Get("Authorization") != "" {
		return true
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if t, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil {
			switch t {
			case "text/html":
				return false
			case "application/json":
				return true
			}
		}
	}
	return false
}

// accountAPI answers the account representation of the user a Bearer access
// token stands for, with userinfo's checks. It is reached through corsRealm, for
// the realm's web origins, as Keycloak answers it; the HTML account page, which
// the cookie opens, is never readable across origins.
func (h *Handler) accountAPI(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	tok, found := authCredentials(r.Header.Get("Authorization"), "Bearer")
	user, _, ok := h.bearerUser(w, r, realm, tok, found)
	if !ok {
		return
	}
	first, last := user.GivenName, user.FamilyName
	if first == "" && last == "" {
		// A user with only a name: split it, as before given and family names were kept.
		first, last, _ = strings.Cut(strings.TrimSpace(user.Name), " ")
	}
	writeJSON(w, http.StatusOK, accountRepresentation{
		ID: user.ID, Username: user.Username, Email: user.Email, EmailVerified: user.EmailVerified,
		FirstName: first, LastName: strings.TrimSpace(last),
	})
}
