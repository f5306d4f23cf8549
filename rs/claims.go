package rs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Claims are what a verified access token says (RFC 9068 §2.2).
type Claims struct {
	Issuer    string
	Subject   string // the user, or for client credentials the client itself
	Audience  []string
	ClientID  string
	Scopes    []string
	ID        string // jti
	SessionID string // sid: the browser session, if any
	FamilyID  string // fid: the refresh-token family (grant), if any
	IssuedAt  time.Time
	Expiry    time.Time
	NotBefore time.Time // zero when the token has none
	AuthTime  time.Time // zero when the token has none
	KeyID     string    // the kid that signed it; empty for an introspected opaque token

	// RealmRoles are the user's (or, for client credentials, the service client's)
	// effective realm roles, from realm_access.roles, as Keycloak and Latchkey issue
	// them when the roles scope is granted.
	RealmRoles []string
	// ClientRoles are the effective roles per client ID, from
	// resource_access.CLIENT.roles.
	ClientRoles map[string][]string
	// Username is preferred_username, when the token carries it (profile scope).
	Username string

	// Confirmation is the key the token is bound to (cnf, RFC 7800), nil for a
	// bearer token. A bound token reaches a handler only after a DPoP proof
	// signed with that key was checked (RFC 9449 §7.1).
	Confirmation *Confirmation

	viaDPoP bool // the request used the DPoP scheme with a valid proof
}

// Confirmation is a token's cnf claim as Latchkey issues it.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the DPoP key, base64url
	// (RFC 9449 §6.1).
	JKT string
}

// HasScope says whether the token was granted scope s.
func (c *Claims) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

// HasRealmRole says whether the token carries realm role name.
func (c *Claims) HasRealmRole(name string) bool { return slices.Contains(c.RealmRoles, name) }

// HasClientRole says whether the token carries role name of client clientID.
func (c *Claims) HasClientRole(clientID, name string) bool {
	return slices.Contains(c.ClientRoles[clientID], name)
}

// HasRole says whether the token carries role r.
func (c *Claims) HasRole(r Role) bool {
	if r.Client == "" {
		return c.HasRealmRole(r.Name)
	}
	return c.HasClientRole(r.Client, r.Name)
}

// Role names a role a route may require: a realm role when Client is empty, else
// a role of the client with that ID.
type Role struct {
	Client string
	Name   string
}

// RealmRole is the realm role name.
func RealmRole(name string) Role { return Role{Name: name} }

// ClientRole is role name of client clientID.
func ClientRole(clientID, name string) Role { return Role{Client: clientID, Name: name} }

// ParseRole reads a role as the gate's flags give it: "NAME" is a realm role,
// "CLIENT:NAME" a client role (split at the last colon: client IDs may hold colons,
// urn:orders:read is role read of client urn:orders), and "CLIENT/NAME" a client
// role too, which is never ambiguous since neither client IDs nor role names hold
// a slash; "/NAME" is the realm role NAME, for a realm role whose name holds a
// colon.
func ParseRole(s string) (Role, error) {
	var r Role
	if client, name, ok := strings.Cut(s, "/"); ok {
		r = Role{Client: client, Name: name}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		r = Role{Client: s[:i], Name: s[i+1:]}
		if r.Client == "" {
			return Role{}, fmt.Errorf("rs: %q is not NAME, CLIENT:NAME or CLIENT/NAME", s)
		}
	} else {
		r = Role{Name: s}
	}
	if r.Name == "" || strings.Contains(r.Name, "/") || !printable(r.Client) || !printable(r.Name) {
		return Role{}, fmt.Errorf("rs: %q is not NAME, CLIENT:NAME or CLIENT/NAME", s)
	}
	return r, nil
}

// String is the role as ParseRole reads it back: NAME or CLIENT:NAME, or with a
// slash where a colon would be ambiguous.
func (r Role) String() string {
	colon := strings.Contains(r.Name, ":")
	switch {
	case r.Client == "" && !colon:
		return r.Name
	case r.Client == "":
		return "/" + r.Name
	case colon || strings.Contains(r.Client, ":"):
		return r.Client + "/" + r.Name
	}
	return r.Client + ":" + r.Name
}

// printable: no spaces, quotes, backslashes or control characters, so a role can be
// named in a challenge and in a space-separated list.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '\\' || c == 0x7f {
			return false
		}
	}
	return true
}

type claimsKey struct{}

// ClaimsFrom returns the claims the middleware verified for the request.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// WithClaims returns ctx carrying c, as the middleware does; for tests of handlers.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// wireClaims is the JSON of an access token's payload and of an introspection answer.
type wireClaims struct {
	Active    *bool    `json:"active,omitempty"` // introspection only
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	SessionID string   `json:"sid"`
	FamilyID  string   `json:"fid"`
	AuthTime  int64    `json:"auth_time"`

	// Keycloak's shape of roles (and Latchkey's, with the roles scope).
	RealmAccess    roleList            `json:"realm_access"`
	ResourceAccess map[string]roleList `json:"resource_access"`
	Username       string              `json:"preferred_username"`

	Cnf json.RawMessage `json:"cnf"`
}

type roleList struct {
	Roles []string `json:"roles"`
}

// claims are the token's claims; an error when they bind it to a key in a way
// this package cannot check.
func (w *wireClaims) claims(kid string) (*Claims, error) {
	c := &Claims{
		Issuer: w.Issuer, Subject: w.Subject, Audience: w.Audience, ClientID: w.ClientID,
		Scopes: strings.Fields(w.Scope), ID: w.ID, SessionID: w.SessionID, FamilyID: w.FamilyID,
		IssuedAt: time.Unix(w.IssuedAt, 0), Expiry: time.Unix(w.Expiry, 0), KeyID: kid,
		RealmRoles: w.RealmAccess.Roles, Username: w.Username,
	}
	if len(w.ResourceAccess) > 0 {
		c.ClientRoles = make(map[string][]string, len(w.ResourceAccess))
		for client, l := range w.ResourceAccess {
			c.ClientRoles[client] = l.Roles
		}
	}
	if w.NotBefore != 0 {
		c.NotBefore = time.Unix(w.NotBefore, 0)
	}
	if w.AuthTime != 0 {
		c.AuthTime = time.Unix(w.AuthTime, 0)
	}
	if len(w.Cnf) > 0 && string(w.Cnf) != "null" {
		// Only jkt is understood; a token bound any other way (an mTLS certificate,
		// x5t#S256) cannot be checked here, so it is refused rather than taken as
		// a bearer token.
		var cnf map[string]json.RawMessage
		var jkt string
		if err := json.Unmarshal(w.Cnf, &cnf); err != nil || len(cnf) != 1 ||
			json.Unmarshal(cnf["jkt"], &jkt) != nil || !isThumbprint(jkt) {
			return nil, invalid("unsupported confirmation (cnf) method")
		}
		c.Confirmation = &Confirmation{JKT: jkt}
	}
	return c, nil
}

// isThumbprint: a SHA-256 thumbprint in base64url without padding, 43 characters.
func isThumbprint(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// audience is the aud claim: one string or an array of them (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}
