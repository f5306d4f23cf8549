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

// IssueCode stores a new single-use code for the request and returns its value.
func (s *Service) IssueCode(ctx context.Context, req CodeRequest) (string, error) {
	value, hash := newOpaque(CodePrefix)
	now := s.now().UTC().Truncate(time.Microsecond)
	c := storage.AuthCode{
		Hash: hash, Realm: req.Realm, ClientID: req.ClientID, UserID: req.UserID, SessionID: req.SessionID,
		RedirectURI: req.RedirectURI, Scopes: req.Scopes, Nonce: req.Nonce, CodeChallenge: req.CodeChallenge,
		FamilyID: rand.Text(), AuthTime: req.AuthTime.UTC().Truncate(time.Microsecond),
		CreatedAt: now, ExpiresAt: now.Add(CodeTTL),
	}
	if req.CodeChallenge != "" {
		c.CodeChallengeMethod = "S256"
	}
	if err := s.store.CreateAuthCode(ctx, c); err != nil {
		return "", fmt.Errorf("store authorization code: %w", err)
	}
	return value, nil
}

// ErrInvalidGrant is a code (or later a refresh token) that cannot be redeemed; the
// wrapped message says why, for the log only.
var ErrInvalidGrant = errors.New("invalid grant")

// verifierSyntax is RFC 7636 §4.1's code_verifier.
var verifierSyntax = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// RedeemCode consumes the code for the client, checking its binding to the client,
// the redirect URI and the PKCE verifier. A code redeemed a second time is treated as
// stolen: the grant it started is revoked, and with it every token issued from it.
func (s *Service) RedeemCode(ctx context.Context, realm, clientID, code, redirectURI, verifier string, from Caller) (storage.AuthCode, error) {
	now := s.now()
	c, err := s.store.ConsumeAuthCode(ctx, Hash(code), now)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return c, fmt.Errorf("%w: unknown or expired code", ErrInvalidGrant)
	case errors.Is(err, storage.ErrAlreadyUsed):
		if c.Realm == realm {
			if err := s.revokeGrant(ctx, c, "authorization code replayed", from); err != nil {
				return c, err
			}
		}
		return c, fmt.Errorf("%w: code already used; its grant is revoked", ErrInvalidGrant)
	case err != nil:
		return c, fmt.Errorf("redeem code: %w", err)
	}
	switch {
	case c.Realm != realm || c.ClientID != clientID:
		return c, fmt.Errorf("%w: code was issued to another client", ErrInvalidGrant)
	case c.RedirectURI != redirectURI:
		// RFC 6749 §4.1.3: the same redirect_uri as in the authorization request, or none if it had none.
		return c, fmt.Errorf("%w: redirect_uri does not match the authorization request", ErrInvalidGrant)
	case c.CodeChallenge == "" && verifier != "":
		// RFC 9700 §4.8.2: a verifier without a challenge is a PKCE downgrade attempt.
		return c, fmt.Errorf("%w: code_verifier sent but the request had no code_challenge", ErrInvalidGrant)
	case c.CodeChallenge != "" && !verifierSyntax.MatchString(verifier):
		return c, fmt.Errorf("%w: missing or malformed code_verifier", ErrInvalidGrant)
	case c.CodeChallenge != "" && subtle.ConstantTimeCompare([]byte(S256(verifier)), []byte(c.CodeChallenge)) != 1:
		return c, fmt.Errorf("%w: code_verifier does not match the code_challenge", ErrInvalidGrant)
	}
	return c, nil
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

// StartGrant records the grant a redeemed code started, as a refresh family with its
// first refresh token, and returns that token's value. The family exists even when
// no refresh token is handed out, so that every token of the grant can be revoked
// together; it then lives only as long as the access token.
func (s *Service) StartGrant(ctx context.Context, realm storage.Realm, client storage.Client, c storage.AuthCode, withRefresh bool, audience []string, from Caller) (string, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	idle, absolute := client.Tokens.RefreshIdle, client.Tokens.RefreshAbsolute
	if !withRefresh || idle <= 0 || absolute <= 0 {
		idle = TTL(realm, client)
		absolute = idle
	}
	value, hash := newOpaque(RefreshPrefix)
	f := storage.Family{
		ID: c.FamilyID, Realm: realm.Name, ClientID: client.ID, UserID: c.UserID, SessionID: c.SessionID,
		Scopes: c.Scopes, Audience: audience, CreatedAt: now, LastUsedAt: now,
		IdleExpiresAt: now.Add(idle), AbsoluteExpiresAt: now.Add(absolute), IP: from.IP, UserAgent: from.UserAgent,
	}
	if err := s.store.CreateFamily(ctx, f, storage.RefreshToken{Hash: hash, Scopes: c.Scopes, IssuedAt: now}); err != nil {
		return "", fmt.Errorf("start grant: %w", err)
	}
	return value, nil
}
