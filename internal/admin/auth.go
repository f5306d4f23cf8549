package admin

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/ident"
)

// caller is an authenticated admin client.
type caller struct {
	realm     string // the admin client's realm: the URL's, or master
	clientID  string
	ip        string
	userAgent string
}

// master reports whether the caller administers every realm.
func (c *caller) master() bool { return c.realm == MasterRealm }

// authenticate checks the request's bearer token (issue 11 item 3): an active
// access token, by introspection's rules, of a client-credentials grant, whose
// client belongs to realm (the URL's; "" for routes across realms) or to master,
// and whose scope allows the request.
func (a *API) authenticate(r *http.Request, realm string, write bool) (*caller, error) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, unauthorized("", "an admin access token is required (Authorization: Bearer)")
	}
	if ident.Token(tok) != nil {
		return nil, unauthorized("invalid_token", "the access token is invalid")
	}
	// The realms whose admin clients may call this route: master, and the URL's
	// (a name no realm can have reaches no store: the handler answers 404). A JWT's
	// own issuer, unverified, only says which to try first.
	candidates := []string{MasterRealm}
	if realm != "" && realm != MasterRealm && ident.Realm(realm) == nil {
		candidates = []string{realm, MasterRealm}
		if a.issuerRealm(tok) == MasterRealm {
			candidates = []string{MasterRealm, realm}
		}
	}
	for _, cand := range candidates {
		claims, live, err := a.Tokens.VerifyAccess(r.Context(), cand, tok)
		if err != nil {
			return nil, err
		}
		if !live {
			continue
		}
		if claims.Subject != claims.ClientID {
			return nil, unauthorized("invalid_token", "admin tokens come from the client-credentials grant, not a user's")
		}
		scopes := strings.Fields(claims.Scope)
		switch {
		case write && !slices.Contains(scopes, ScopeAdmin):
			return nil, insufficientScope(ScopeAdmin, "this request needs the scope "+ScopeAdmin)
		case !slices.Contains(scopes, ScopeAdmin) && !slices.Contains(scopes, ScopeAdminRead):
			return nil, insufficientScope(ScopeAdminRead, "this request needs the scope "+ScopeAdminRead+" or "+ScopeAdmin)
		case realm == "" && cand != MasterRealm:
			return nil, forbidden("only an admin client of realm master works across realms")
		}
		return &caller{realm: cand, clientID: claims.ClientID, ip: a.ClientIP(r), userAgent: r.UserAgent()}, nil
	}
	// Not a live token of the realms that may administer this one. If it is a live
	// token of another realm, say so: it is a valid token without the right.
	if other := a.issuerRealm(tok); other != "" && !slices.Contains(candidates, other) {
		if _, live, err := a.Tokens.VerifyAccess(r.Context(), other, tok); err != nil {
			return nil, err
		} else if live {
			return nil, forbidden("a token of realm " + other + " administers realm " + other + " only")
		}
	}
	return nil, unauthorized("invalid_token", "the access token is invalid, expired or revoked")
}

// issuerRealm returns the realm a JWT claims to be issued by, unverified (the
// caller verifies it), or "".
func (a *API) issuerRealm(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	prefix := strings.TrimSuffix(a.Tokens.Issuer("x"), "x")
	name, ok := strings.CutPrefix(c.Iss, prefix)
	if !ok || ident.Realm(name) != nil {
		return ""
	}
	return name
}
