package rs

import (
	"context"
	"encoding/json"
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
}

// HasScope says whether the token was granted scope s.
func (c *Claims) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

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
}

func (w *wireClaims) claims(kid string) *Claims {
	c := &Claims{
		Issuer: w.Issuer, Subject: w.Subject, Audience: w.Audience, ClientID: w.ClientID,
		Scopes: strings.Fields(w.Scope), ID: w.ID, SessionID: w.SessionID, FamilyID: w.FamilyID,
		IssuedAt: time.Unix(w.IssuedAt, 0), Expiry: time.Unix(w.Expiry, 0), KeyID: kid,
	}
	if w.NotBefore != 0 {
		c.NotBefore = time.Unix(w.NotBefore, 0)
	}
	if w.AuthTime != 0 {
		c.AuthTime = time.Unix(w.AuthTime, 0)
	}
	return c
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
