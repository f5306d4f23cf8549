package admin

import (
	"net/http"
	"time"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// tokenRef names a token: by value (any token of the realm), or an access token by jti.
type tokenRef struct {
	Token string `json:"token"`
	JTI   string `json:"jti"`
}

// introspectToken answers RFC 7662 for any token of the realm, whichever client
// it was issued to.
func (a *API) introspectToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in tokenRef
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	if in.JTI != "" {
		return invalidField("jti", "introspection takes a token by value")
	}
	if ident.Token(in.Token) != nil {
		return invalidField("token", "must be a token (1 to 8192 visible ASCII characters)")
	}
	realm, err := a.Store.GetRealm(r.Context(), r.PathValue("realm"))
	if err != nil {
		return realmErr(err)
	}
	res, err := a.Tokens.IntrospectAny(r.Context(), realm, in.Token)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// revokeToken revokes any token of the realm by value, or an access token by its
// jti: then its expiry is unknown, and the deny-list keeps it for the longest an
// access token of the realm lives.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in tokenRef
	if err := decode(w, r, &in, false); err != nil {
		return err
	}
	switch {
	case (in.Token == "") == (in.JTI == ""):
		return badRequest("give token or jti, one of them")
	case in.Token != "" && ident.Token(in.Token) != nil:
		return invalidField("token", "must be a token (1 to 8192 visible ASCII characters)")
	case in.JTI != "" && (len(in.JTI) > 255 || ident.Token(in.JTI) != nil):
		return invalidField("jti", "must be a jti (1 to 255 visible ASCII characters)")
	}
	realm, err := a.Store.GetRealm(r.Context(), r.PathValue("realm"))
	if err != nil {
		return realmErr(err)
	}
	event := c.event("", realm.Name, a.now())
	if in.Token != "" {
		if _, err := a.Tokens.RevokeAny(r.Context(), realm, in.Token, event); err != nil {
			return err
		}
	} else {
		clients, err := a.Store.ListClients(r.Context(), realm.Name)
		if err != nil {
			return err
		}
		longest := token.TTL(realm, storage.Client{})
		for _, cl := range clients {
			longest = max(longest, token.TTL(realm, cl))
		}
		event.Type = "access_token.revoked"
		event.Details["jti"] = in.JTI
		if err := a.Tokens.DenyJTI(r.Context(), realm.Name, in.JTI, a.Now().Add(longest+time.Second), event); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
