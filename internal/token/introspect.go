package token

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/storage"
)

// Introspection is an RFC 7662 response. An inactive token marshals to exactly
// {"active":false}: nothing about why, or what it was.
type Introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       Audience `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	// Cnf is the key a DPoP-bound access token is bound to (RFC 9449 §6.2).
	Cnf *Confirmation `json:"cnf,omitempty"`
	// Act is who acts for the subject, for a token from a delegated exchange
	// (RFC 8693 §4.1 names it for introspection responses too).
	Act *Actor `json:"act,omitempty"`
	// An access token's profile, email and role claims, as the token carries them.
	SubjectClaims
}

var inactive = Introspection{}

// Introspect answers RFC 7662 for an authenticated client: whether tok is an active
// access token of the realm, JWT or opaque, or an active refresh token of the realm
// issued to clientID. The token's prefix, not token_type_hint, says which (the hint
// is only a hint, RFC 7662 §2.1). Only a store failure is an error; every other
// problem is simply an inactive token.
func (s *Service) Introspect(ctx context.Context, realm storage.Realm, clientID, tok string) (Introspection, error) {
	tok, err := s.unwrapRefresh(ctx, realm.Name, tok)
	if err != nil {
		return inactive, err
	}
	if strings.HasPrefix(tok, RefreshPrefix) {
		return s.introspectRefresh(ctx, realm, clientID, tok)
	}
	return s.introspectAccess(ctx, realm, tok)
}

// introspectRefresh tells the client a refresh token was issued to what it is, by
// the same rules the refresh grant applies, while it could still be redeemed; to
// any other client, and once it is spent (rotated), revoked or dead, it is inactive.
func (s *Service) introspectRefresh(ctx context.Context, realm storage.Realm, clientID, tok string) (Introspection, error) {
	rt, fam, err := s.refreshOf(ctx, realm.Name, clientID, tok)
	if err == nil && !rt.UsedAt.IsZero() {
		return inactive, nil // spent: only an honest retry may still present it, at the token endpoint
	}
	var user storage.User
	var sess storage.Session
	if err == nil {
		user, sess, err = s.refreshLive(ctx, rt, fam)
	}
	if errors.Is(err, ErrInvalidGrant) {
		return inactive, nil
	}
	if err != nil {
		return inactive, err
	}
	exp := refreshExpiry(fam, fam.IdleExpiresAt, sess)
	return Introspection{
		Active: true, Scope: strings.Join(rt.Scopes, " "), ClientID: fam.ClientID, Username: user.Username,
		TokenType: "refresh_token", Exp: exp.Unix(), Iat: rt.IssuedAt.Unix(), Sub: fam.UserID, Iss: s.Issuer(realm.Name),
	}, nil
}

// introspectAccess says whether tok is an active access token of the realm, JWT or
// opaque.
func (s *Service) introspectAccess(ctx context.Context, realm storage.Realm, tok string) (Introspection, error) {
	c, username, live, err := s.verifyAccess(ctx, realm.Name, tok)
	if err != nil || !live {
		return inactive, err
	}
	if username == "" && c.Subject == c.ClientID {
		username = ServiceAccountPrefix + c.ClientID // RFC 7662 username: the client's service account
	}
	in := Introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, Username: username, TokenType: "Bearer",
		Exp: c.Expiry, Iat: c.IssuedAt, Sub: c.Subject, Aud: c.Audience, Iss: c.Issuer, Jti: c.ID,
		SubjectClaims: c.SubjectClaims, Act: c.Act,
	}
	if jkt := boundTo(c); jkt != "" {
		// RFC 9449 §6.2: the resource server learns the key it must see a proof of.
		in.TokenType, in.Cnf = "DPoP", &Confirmation{JKT: jkt}
	}
	return in, nil
}

// verifyAccess is VerifyAccess, also returning the user's username.
func (s *Service) verifyAccess(ctx context.Context, realm, tok string) (*AccessClaims, string, bool, error) {
	c, err := s.accessClaims(ctx, storage.Realm{Name: realm}, tok)
	if err != nil || c == nil {
		return nil, "", false, err
	}
	if !s.now().Before(time.Unix(c.Expiry, 0)) || s.deny.Denied(realm, c.ID) {
		return nil, "", false, nil
	}
	userID := c.Subject
	if userID == c.ClientID {
		userID = "" // client credentials: the client is the subject
	}
	username, live, err := s.subjectLive(ctx, realm, c.ClientID, userID, c.SessionID, c.FamilyID, time.Unix(c.IssuedAt, 0))
	if err != nil || !live {
		return nil, "", false, err
	}
	return c, username, true, nil
}

// accessClaims returns the claims of an access token of the realm, opened (opaque)
// or verified (JWT), expired or not; nil for anything else, refresh tokens included.
func (s *Service) accessClaims(ctx context.Context, realm storage.Realm, tok string) (*AccessClaims, error) {
	switch {
	case strings.HasPrefix(tok, AccessPrefix):
		return s.openAccess(realm.Name, tok), nil
	case strings.HasPrefix(tok, RefreshPrefix):
		return nil, nil // a refresh token is no access token: never a Bearer credential
	}
	return s.verifyAccessJWT(ctx, realm, tok)
}

// verifyAccessJWT returns the claims of a JWT access token of the realm whose
// signature, typ, iss, iat and nbf hold (not exp: callers differ on that), or nil.
func (s *Service) verifyAccessJWT(ctx context.Context, realm storage.Realm, tok string) (*AccessClaims, error) {
	now := s.now()
	c, slot := s.verified.get(tok, now)
	if c != nil && c.Issuer == s.Issuer(realm.Name) {
		return c, nil
	}
	v, err := s.keys.Verify(ctx, realm.Name, tok)
	if errors.Is(err, keys.ErrBadSignature) || errors.Is(err, keys.ErrUnknownKey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// RFC 9068 §4: the typ must say access token, so an ID token never passes.
	if !strings.EqualFold(v.Typ, TypeAccessJWT) && !strings.EqualFold(v.Typ, "application/"+TypeAccessJWT) {
		return nil, nil
	}
	c = &AccessClaims{}
	if err := json.Unmarshal(v.Payload, c); err != nil || c.ID == "" || c.ClientID == "" || c.Subject == "" {
		return nil, nil
	}
	if c.Issuer != s.Issuer(realm.Name) ||
		time.Unix(c.IssuedAt, 0).After(now.Add(Leeway)) ||
		(c.NotBefore != 0 && time.Unix(c.NotBefore, 0).After(now.Add(Leeway))) {
		return nil, nil
	}
	s.verified.put(slot, c, now)
	return c, nil
}

// subjectLive checks what a token stands on besides itself: its client is enabled;
// its user exists, is enabled and has not been signed out everywhere since the token
// was issued; its browser session and refresh family are live. It returns the
// user's username.
func (s *Service) subjectLive(ctx context.Context, realm, clientID, userID, sessionID, familyID string, issuedAt time.Time) (string, bool, error) {
	ok := func(err error) (bool, error) {
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	// iat has whole seconds: a token from a stamp's own second counts as before it.
	beforeStamp := func(stamp time.Time) bool {
		return !stamp.IsZero() && issuedAt.Before(stamp.Truncate(time.Second).Add(time.Second))
	}
	client, err := s.store.GetClient(ctx, realm, clientID)
	if live, err := ok(err); !live || client.Disabled || beforeStamp(client.TokensValidAfter) {
		return "", false, err
	}
	var username string
	if userID != "" {
		user, err := s.store.GetUser(ctx, realm, userID)
		if live, err := ok(err); !live || user.Disabled {
			return "", false, err
		}
		if beforeStamp(user.TokensValidAfter) {
			return "", false, nil
		}
		username = user.Username
	}
	now := s.now()
	if sessionID != "" {
		sess, err := s.store.GetSession(ctx, sessionID)
		if live, err := ok(err); !live || sess.Realm != realm || !sess.Live(now) {
			return "", false, err
		}
	}
	if familyID != "" {
		fam, err := s.store.GetFamily(ctx, familyID)
		if live, err := ok(err); !live || !fam.RevokedAt.IsZero() {
			return "", false, err
		}
	}
	return username, true, nil
}

// boundTo is the thumbprint of the DPoP key an access token is bound to
// (cnf.jkt, RFC 9449 §6.1), "" for a bearer token.
func boundTo(c *AccessClaims) string {
	if c.Confirmation == nil {
		return ""
	}
	return c.Confirmation.JKT
}
