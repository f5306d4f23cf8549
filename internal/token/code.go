package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// CodeTTL is how long an authorization code lives (RFC 6749 §4.1.2 recommends at most 10 minutes; we keep it short).
const CodeTTL = 60 * time.Second

// CodeRequest is what an authorization code is bound to.
type CodeRequest struct {
	Realm         string
	ClientID      string
	UserID        string
	SessionID     string
	RedirectURI   string // as the authorization request gave it; "" when it gave none
	Scopes        []string
	Nonce         string
	CodeChallenge string // S256 only
	AuthTime      time.Time
}

// codesPerSession bounds the codes one browser session holds unredeemed: a new
// code past it evicts the session's oldest, so a signed-in browser cannot pile
// them up. Ten covers many tabs and apps signing in at once.
const codesPerSession = 10

// IssueCode stores a new single-use code for the request and returns its value.
// from is the browser the code goes to: the grant's device.
func (s *Service) IssueCode(ctx context.Context, req CodeRequest, from Caller) (string, error) {
	value, hash := newOpaque(CodePrefix)
	now := s.now().UTC().Truncate(time.Microsecond)
	c := storage.AuthCode{
		Hash: hash, Realm: req.Realm, ClientID: req.ClientID, UserID: req.UserID, SessionID: req.SessionID,
		RedirectURI: req.RedirectURI, Scopes: req.Scopes, Nonce: req.Nonce, CodeChallenge: req.CodeChallenge,
		FamilyID: rand.Text(), IP: from.IP, UserAgent: from.UserAgent,
		AuthTime: req.AuthTime.UTC().Truncate(time.Microsecond), CreatedAt: now, ExpiresAt: now.Add(CodeTTL),
	}
	if req.CodeChallenge != "" {
		c.CodeChallengeMethod = "S256"
	}
	if err := s.store.CreateAuthCode(ctx, c, codesPerSession); err != nil {
		return "", fmt.Errorf("store authorization code: %w", err)
	}
	return value, nil
}

// ErrInvalidGrant is a code (or later a refresh token) that cannot be redeemed; the
// wrapped message says why, for the log only.
var ErrInvalidGrant = errors.New("invalid grant")

// ErrInvalidCode and ErrInvalidRefreshToken are ErrInvalidGrant said of what was
// presented, so the edge can say which without a call site of its own.
var (
	ErrInvalidCode         = fmt.Errorf("%w: authorization code", ErrInvalidGrant)
	ErrInvalidRefreshToken = fmt.Errorf("%w: refresh token", ErrInvalidGrant)
)

// verifierSyntax is RFC 7636 §4.1's code_verifier.
var verifierSyntax = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// Redemption is a token request's authorization_code grant.
type Redemption struct {
	Realm       storage.Realm
	Client      storage.Client
	Code        string
	RedirectURI string
	Verifier    string
	Audience    []string
	From        Caller
	// JKT is the thumbprint of the DPoP key the request proved ("" without a
	// proof). A public client's grant is bound to it: its refresh tokens are then
	// worth nothing without that key (RFC 9449 §5).
	JKT string
}

// Redeemed is a code turned into a grant.
type Redeemed struct {
	Code storage.AuthCode
	// RefreshToken is the grant's first refresh token, "" when the client may
	// not use the refresh_token grant.
	RefreshToken string
}

// RedeemCode consumes the code for the client, checking its binding to the client,
// the redirect URI and the PKCE verifier, and starts the grant it authorizes: a
// refresh family with its first refresh token, stored in the same transaction as
// the code's consumption. A client with the refresh_token grant gets that token at
// every code exchange, as from Keycloak: an offline one when offline_access was
// granted, else one bound to the browser session the code came from (see
// SessionBound). A code redeemed a second time is treated as stolen: the
// grant it started, which exists from the moment the code was spent, is revoked,
// and with it every token issued from it.
func (s *Service) RedeemCode(ctx context.Context, req Redemption) (Redeemed, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	var out Redeemed
	var fam storage.Family
	c, err := s.store.RedeemAuthCode(ctx, Hash(req.Code), now, func(c storage.AuthCode) (storage.Family, storage.RefreshToken, error) {
		if err := checkBinding(c, req); err != nil {
			return storage.Family{}, storage.RefreshToken{}, err
		}
		f, first, value := s.newGrant(req.Realm, req.Client, c, req.Audience, now)
		if req.Client.Public() {
			// A confidential client's refresh tokens are bound to its credentials
			// already; a public client's only to the DPoP key (RFC 9449 §5).
			f.JKT = req.JKT
		}
		out.RefreshToken, fam = value, f
		return f, first, nil
	})
	out.Code = c
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return out, fmt.Errorf("%w: unknown or expired code", ErrInvalidCode)
	case errors.Is(err, storage.ErrAlreadyUsed):
		if c.Realm == req.Realm.Name {
			if err := s.revokeGrant(ctx, c, "authorization code replayed", req.From); err != nil {
				return out, err
			}
		}
		return out, fmt.Errorf("%w: code already used; its grant is revoked", ErrInvalidCode)
	case err != nil:
		return out, fmt.Errorf("redeem code: %w", err)
	}
	if !withRefresh(req.Client) {
		out.RefreshToken = ""
		return out, nil
	}
	var sess storage.Session
	if req.Client.Tokens.RefreshTokenFormat == "jwt" && SessionBound(fam) {
		// Only the JWT form shows an expiry, capped by the session's absolute one.
		sess, err = s.store.GetSession(ctx, fam.SessionID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return out, fmt.Errorf("redeem code: %w", err)
		}
	}
	out.RefreshToken, err = s.wrapRefresh(ctx, req.Realm, req.Client, fam, c.Scopes, refreshExpiry(fam, fam.IdleExpiresAt, sess), out.RefreshToken)
	return out, err
}

// checkBinding says whether a code may be redeemed by the request.
func checkBinding(c storage.AuthCode, req Redemption) error {
	switch {
	case c.Realm != req.Realm.Name || c.ClientID != req.Client.ID:
		return fmt.Errorf("%w: code was issued to another client", ErrInvalidCode)
	case c.RedirectURI != req.RedirectURI:
		// RFC 6749 §4.1.3: the same redirect_uri as in the authorization request, or none if it had none.
		return fmt.Errorf("%w: redirect_uri does not match the authorization request", ErrInvalidCode)
	case c.CodeChallenge == "" && req.Verifier != "":
		// RFC 9700 §4.8.2: a verifier without a challenge is a PKCE downgrade attempt.
		return fmt.Errorf("%w: code_verifier sent but the request had no code_challenge", ErrInvalidCode)
	case c.CodeChallenge != "" && !verifierSyntax.MatchString(req.Verifier):
		return fmt.Errorf("%w: missing or malformed code_verifier", ErrInvalidCode)
	case c.CodeChallenge != "" && subtle.ConstantTimeCompare([]byte(S256(req.Verifier)), []byte(c.CodeChallenge)) != 1:
		return fmt.Errorf("%w: code_verifier does not match the code_challenge", ErrInvalidCode)
	}
	return nil
}

// withRefresh says whether a client's code exchanges hand out refresh tokens:
// whenever it may use the refresh_token grant, offline_access or not.
func withRefresh(client storage.Client) bool {
	return slices.Contains(client.GrantTypes, "refresh_token")
}

// SessionBound reports whether a family's refresh tokens belong to the browser
// session it was born in: born in one, without offline_access. Such a family dies
// when its session ends or expires (idle or absolute), and its use slides the
// session's idle expiry, as Keycloak's SSO session does. With offline_access the
// family outlives the session's expiry, its own client limits alone deciding; an
// explicit logout of the session still ends it.
func SessionBound(f storage.Family) bool {
	return f.SessionID != "" && !slices.Contains(f.Scopes, "offline_access")
}

// refreshExpiry is when a refresh token of family f stops working at the latest,
// as a JWT-form token's exp says and introspection answers: the family's idle
// expiry idle (after the use that issues it), never past its absolute one, and for
// a session-bound family never past the session's absolute expiry when sess (the
// zero Session when unknown) is its session.
func refreshExpiry(f storage.Family, idle time.Time, sess storage.Session) time.Time {
	exp := idle
	if f.AbsoluteExpiresAt.Before(exp) {
		exp = f.AbsoluteExpiresAt
	}
	if SessionBound(f) && sess.ID == f.SessionID && !sess.ExpiresAt.IsZero() && sess.ExpiresAt.Before(exp) {
		exp = sess.ExpiresAt
	}
	return exp
}

// S256 is the PKCE S256 transform (RFC 7636 §4.2).
func S256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// revokeGrant ends a grant's family and records why.
func (s *Service) revokeGrant(ctx context.Context, c storage.AuthCode, reason string, from Caller) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	err := s.store.RevokeFamily(ctx, c.FamilyID, now, reason)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("revoke grant: %w", err)
	}
	_, err = s.store.AppendAudit(ctx, storage.AuditEvent{
		Time: now, Type: "authorization_code.replayed", Realm: c.Realm, ClientID: c.ClientID, UserID: c.UserID,
		SessionID: c.SessionID, FamilyID: c.FamilyID, IP: from.IP, UserAgent: from.UserAgent,
	})
	return err
}

// newGrant makes the family a redeemed code starts, with its first refresh token
// and that token's value. The family exists even when no refresh token is handed
// out, so that every token of the grant can be revoked together; it then lives
// only as long as the access token. Its device is the browser the code was
// issued to, not the app server redeeming it.
func (s *Service) newGrant(realm storage.Realm, client storage.Client, c storage.AuthCode, audience []string, now time.Time) (storage.Family, storage.RefreshToken, string) {
	idle, absolute := client.Tokens.RefreshIdle, client.Tokens.RefreshAbsolute
	if !withRefresh(client) || idle <= 0 || absolute <= 0 {
		idle = TTL(realm, client)
		absolute = idle
	}
	value, hash := newOpaque(RefreshPrefix)
	f := storage.Family{
		ID: c.FamilyID, Realm: realm.Name, ClientID: client.ID, UserID: c.UserID, SessionID: c.SessionID,
		Scopes: c.Scopes, Audience: audience, CreatedAt: now, LastUsedAt: now,
		IdleExpiresAt: now.Add(idle), AbsoluteExpiresAt: now.Add(absolute), IP: c.IP, UserAgent: c.UserAgent,
	}
	return f, storage.RefreshToken{Hash: hash, Scopes: c.Scopes, IssuedAt: now}, value
}
