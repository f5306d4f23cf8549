package token

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// ErrInvalidScope is a refresh asking for a scope the grant does not have.
var ErrInvalidScope = errors.New("invalid scope")

// Response is a token endpoint response as the refresh grant returns it, and as it is
// sealed for an honest retry.
type Response struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	// IssuedTokenType is the type of the token issued by a token exchange
	// (RFC 8693 §2.2.1); empty for every other grant.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// RefreshRequest is a refresh_token grant request from an authenticated client.
type RefreshRequest struct {
	Realm  storage.Realm
	Client storage.Client
	Token  string // the refresh token presented
	Scope  string // the scope parameter; "" keeps the token's scopes
	From   Caller
	// JKT is the thumbprint of the DPoP key the request proved, "" without a
	// proof: the new access token is bound to it, and a family bound to a key
	// may only be refreshed with a proof of that key (RFC 9449 §5).
	JKT string
}

// Refresh redeems a refresh token (RFC 6749 §6): it rotates the token, so the one
// presented is spent and a successor comes back with a new access token (and ID
// token, for openid).
//
// A token presented again is either an honest retry or theft. Within the client's
// retry window, while its successor is still unused, the same client gets the very
// response the first use got, decrypted from the sealed copy only the holder of the
// spent token can open: a lost response or two tabs refreshing at once cause no
// alarm and no fork in the family. Outside the window it is reuse: the whole family
// is revoked and the event audited.
func (s *Service) Refresh(ctx context.Context, req RefreshRequest) (Response, error) {
	inner, err := s.unwrapRefresh(ctx, req.Realm.Name, req.Token)
	if err != nil {
		return Response{}, fmt.Errorf("refresh: %w", err)
	}
	req.Token = inner // from here on a JWT-form token is its opaque one, rules and all
	rt, fam, err := s.refreshOf(ctx, req.Realm.Name, req.Client.ID, req.Token)
	if err != nil {
		return Response{}, err
	}
	// Before anything else, retry and reuse included: a token presented without a
	// proof of its family's key proves nothing about who holds it, so it rotates
	// nothing and revokes nothing. fam.JKT is set when the family is created and
	// never changes, so no concurrent rotation can make this check stale.
	if err := s.checkFamilyKey(ctx, req, fam); err != nil {
		return Response{}, err
	}
	if !rt.UsedAt.IsZero() {
		return s.retryOrReuse(ctx, req, rt, fam)
	}
	user, sess, err := s.refreshLive(ctx, rt, fam)
	if err != nil {
		return Response{}, err
	}
	scopes, err := narrow(req.Scope, rt.Scopes)
	if err != nil {
		return Response{}, err
	}

	now := s.now()
	idle := now.Add(req.Client.Tokens.RefreshIdle)
	if idle.After(fam.AbsoluteExpiresAt) || req.Client.Tokens.RefreshIdle <= 0 {
		idle = fam.AbsoluteExpiresAt // the absolute limit never moves
	}
	if err := s.slideSession(ctx, fam, sess, now); err != nil {
		return Response{}, err
	}
	resp, child, err := s.successor(ctx, req, fam, user, scopes, sess.AuthTime, refreshExpiry(fam, idle, sess))
	if err != nil {
		return Response{}, err
	}
	sealed, err := sealRetry(req.Token, resp)
	if err != nil {
		return Response{}, err
	}
	use := storage.FamilyUse{At: now.UTC().Truncate(time.Microsecond), IdleExpiresAt: idle.UTC().Truncate(time.Microsecond),
		IP: req.From.IP, UserAgent: req.From.UserAgent}
	parent, err := s.store.RotateRefreshToken(ctx, rt.Hash, child, sealed, use) // rt.Hash: hashed once, by refreshOf
	switch {
	case errors.Is(err, storage.ErrAlreadyUsed):
		// Another request rotated this token a moment ago: the same retry rules apply.
		return s.retryOrReuse(ctx, req, parent, fam)
	case errors.Is(err, storage.ErrRevoked):
		return Response{}, fmt.Errorf("%w: refresh token family is revoked", ErrInvalidRefreshToken)
	case err != nil:
		return Response{}, fmt.Errorf("refresh: %w", err)
	}
	if s.obs != nil {
		s.obs.Rotated()
		s.Delivered(req.Client, resp)
	}
	return resp, nil
}

// checkFamilyKey refuses the refresh of a DPoP-bound family without a proof of
// its key (RFC 9449 §5), and audits it: the token was most likely stolen.
func (s *Service) checkFamilyKey(ctx context.Context, req RefreshRequest, fam storage.Family) error {
	if fam.JKT == "" || subtle.ConstantTimeCompare([]byte(fam.JKT), []byte(req.JKT)) == 1 {
		return nil
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if _, err := s.store.AppendAudit(ctx, storage.AuditEvent{
		Time: now, Type: "refresh_token.wrong_dpop_key", Realm: fam.Realm, ClientID: fam.ClientID, UserID: fam.UserID,
		SessionID: fam.SessionID, FamilyID: fam.ID, IP: req.From.IP, UserAgent: req.From.UserAgent,
	}); err != nil {
		return fmt.Errorf("refresh: audit: %w", err)
	}
	return fmt.Errorf("%w: the family is bound to another DPoP key, or the proof is missing", ErrInvalidRefreshToken)
}

// refreshOf looks a refresh token up by its hash and returns it with its family, if
// it is the realm's, was issued to clientID and its family is not revoked; spent or
// not. Otherwise the error wraps ErrInvalidGrant with why, or is a store failure.
func (s *Service) refreshOf(ctx context.Context, realm, clientID, tok string) (storage.RefreshToken, storage.Family, error) {
	invalid := func(why string) error { return fmt.Errorf("%w: %s", ErrInvalidRefreshToken, why) }
	if !strings.HasPrefix(tok, RefreshPrefix) {
		return storage.RefreshToken{}, storage.Family{}, invalid("not a refresh token")
	}
	rt, err := s.store.GetRefreshToken(ctx, Hash(tok))
	if errors.Is(err, storage.ErrNotFound) {
		return rt, storage.Family{}, invalid("unknown refresh token")
	}
	if err != nil {
		return rt, storage.Family{}, fmt.Errorf("refresh: %w", err)
	}
	fam, err := s.store.GetFamily(ctx, rt.FamilyID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && fam.Realm != realm) {
		return rt, fam, invalid("unknown refresh token")
	}
	if err != nil {
		return rt, fam, fmt.Errorf("refresh: %w", err)
	}
	if fam.ClientID != clientID {
		return rt, fam, invalid("refresh token was issued to another client")
	}
	if !fam.RevokedAt.IsZero() {
		return rt, fam, invalid("refresh token family is revoked")
	}
	return rt, fam, nil
}

// refreshLive is the one rule for whether an unspent refresh token of a live family
// still stands, for the refresh grant and introspection alike: the family has not
// expired (idle or absolute); its user exists, is enabled and has not been signed
// out everywhere since the token was issued; the browser session it was born in, if
// any, has not ended, nor, for a session-bound family, expired. It returns the user
// and that session (the zero Session when the family has none). Otherwise the
// error wraps ErrInvalidGrant with why, or is a store failure.
func (s *Service) refreshLive(ctx context.Context, rt storage.RefreshToken, fam storage.Family) (storage.User, storage.Session, error) {
	invalid := func(why string) error { return fmt.Errorf("%w: %s", ErrInvalidRefreshToken, why) }
	now := s.now()
	if !fam.Live(now) {
		return storage.User{}, storage.Session{}, invalid("refresh token expired")
	}
	user, err := s.store.GetUser(ctx, fam.Realm, fam.UserID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && user.Disabled) {
		return user, storage.Session{}, invalid("user is no longer active")
	}
	if err != nil {
		return user, storage.Session{}, fmt.Errorf("refresh: %w", err)
	}
	if !user.TokensValidAfter.IsZero() && rt.IssuedAt.Before(user.TokensValidAfter) {
		return user, storage.Session{}, invalid("user was signed out everywhere")
	}
	if fam.SessionID == "" {
		return user, storage.Session{}, nil
	}
	// Every family dies with its session's logout. A session-bound one also dies
	// when the session expires; an offline one (offline_access) outlives that, its
	// own idle and absolute limits deciding, and the store keeps its session row
	// for it until then (storage.SessionStore.PurgeSessions).
	sess, err := s.store.GetSession(ctx, fam.SessionID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !sess.RevokedAt.IsZero()) {
		return user, storage.Session{}, invalid("the session has ended")
	}
	if err != nil {
		return user, storage.Session{}, fmt.Errorf("refresh: %w", err)
	}
	if SessionBound(fam) && !sess.Live(now) {
		return user, storage.Session{}, invalid("the session has expired")
	}
	return user, sess, nil
}

// sessionTouchEvery is how often at most a refresh writes its session's idle
// expiry back, as the browser's own use of the session does (oauth's
// touchEvery): refreshes within a minute of the last write add no write.
const sessionTouchEvery = time.Minute

// slideSession slides the idle expiry of a session-bound family's session, as a
// refresh in Keycloak keeps its SSO session alive, at most once a minute. The idle
// period is the one the session was made with: every write of a session sets its
// idle expiry to the time it was last seen plus that period.
func (s *Service) slideSession(ctx context.Context, fam storage.Family, sess storage.Session, now time.Time) error {
	if !SessionBound(fam) || now.Sub(sess.LastSeenAt) < sessionTouchEvery {
		return nil
	}
	idle := sess.IdleExpiresAt.Sub(sess.LastSeenAt)
	if idle <= 0 {
		return nil
	}
	now = now.UTC().Truncate(time.Microsecond)
	err := s.store.TouchSession(ctx, sess.ID, now, now.Add(idle))
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: the session has ended", ErrInvalidRefreshToken)
	}
	if err != nil {
		return fmt.Errorf("refresh: slide the session: %w", err)
	}
	return nil
}

// successor builds the response of a rotation and the refresh token it hands out,
// which expires at exp at the latest (see refreshExpiry).
func (s *Service) successor(ctx context.Context, req RefreshRequest, fam storage.Family, user storage.User, scopes []string, authTime, exp time.Time) (Response, storage.RefreshToken, error) {
	value, hash := newOpaque(RefreshPrefix)
	child := storage.RefreshToken{Hash: hash, Scopes: scopes, IssuedAt: s.now().UTC().Truncate(time.Microsecond)}
	value, err := s.wrapRefresh(ctx, req.Realm, req.Client, fam, scopes, exp, value)
	if err != nil {
		return Response{}, child, err
	}
	issued, err := s.IssueAccessToken(ctx, Grant{
		Realm: req.Realm, Client: req.Client, UserID: user.ID, User: &user, SessionID: fam.SessionID, AuthTime: authTime,
		FamilyID: fam.ID, Scopes: scopes, Audience: fam.Audience, JKT: req.JKT,
	})
	if err != nil {
		return Response{}, child, err
	}
	resp := Response{AccessToken: issued.Value, TokenType: TokenType(req.JKT), ExpiresIn: int64(issued.ExpiresIn.Seconds()),
		RefreshToken: value, Scope: issued.Scope}
	if slices.Contains(scopes, "openid") {
		// OIDC Core §12.2: a refreshed ID token has no nonce, and the same auth_time.
		resp.IDToken, err = s.IssueIDToken(ctx, IDTokenInput{
			Realm: req.Realm, Client: req.Client, User: user, SessionID: fam.SessionID, AuthTime: authTime,
			Scopes: scopes, AccessToken: issued.Value,
		})
	}
	return resp, child, err
}

// retryOrReuse answers a refresh token that was already rotated.
func (s *Service) retryOrReuse(ctx context.Context, req RefreshRequest, rt storage.RefreshToken, fam storage.Family) (Response, error) {
	window := req.Client.Tokens.RefreshRetryWindow
	if window > 0 && s.now().Sub(rt.UsedAt) < window && len(rt.Sealed) > 0 {
		succ, err := s.store.GetRefreshToken(ctx, rt.SuccessorHash)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return Response{}, fmt.Errorf("refresh: %w", err)
		}
		// Once the successor has been used the client demonstrably got it: from then
		// on the parent is plain reuse.
		if err == nil && succ.UsedAt.IsZero() {
			if resp, err := openRetry(req.Token, rt.Sealed); err == nil {
				if s.obs != nil {
					s.obs.RetryServed()
				}
				return resp, nil
			}
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if err := s.store.RevokeFamily(ctx, fam.ID, now, "refresh token reuse"); err != nil {
		return Response{}, fmt.Errorf("refresh: %w", err)
	}
	if _, err := s.store.AppendAudit(ctx, storage.AuditEvent{
		Time: now, Type: "refresh_token.reuse_detected", Realm: fam.Realm, ClientID: fam.ClientID, UserID: fam.UserID,
		SessionID: fam.SessionID, FamilyID: fam.ID, IP: req.From.IP, UserAgent: req.From.UserAgent,
	}); err != nil {
		return Response{}, fmt.Errorf("refresh: audit: %w", err)
	}
	return Response{}, fmt.Errorf("%w: refresh token reused; its family is revoked", ErrInvalidRefreshToken)
}

// IsScopeToken reports whether s is a scope-token (RFC 6749 §3.3):
// 1*( %x21 / %x23-5B / %x5D-7E ), so no spaces, quotes or backslashes.
func IsScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// narrow applies a refresh request's scope: it may only narrow (RFC 6749 §6).
func narrow(requested string, granted []string) ([]string, error) {
	if requested == "" {
		return granted, nil
	}
	var out []string
	for _, sc := range strings.Fields(requested) {
		if !slices.Contains(granted, sc) {
			return nil, fmt.Errorf("%w: a requested scope was not granted", ErrInvalidScope) // never echoed: it is logged
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// retryAEAD derives the key that seals a rotation's response from the refresh token
// that was spent for it (HKDF-SHA256): only a holder of that token can open it, and
// Latchkey itself keeps no refresh token in plaintext.
func retryAEAD(presented string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(presented), nil, "latchkey refresh retry", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealRetry(presented string, resp Response) ([]byte, error) {
	aead, err := retryAEAD(presented)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, nil), nil
}

func openRetry(presented string, sealed []byte) (Response, error) {
	aead, err := retryAEAD(presented)
	if err != nil {
		return Response{}, err
	}
	if len(sealed) < aead.NonceSize() {
		return Response{}, errors.New("sealed response truncated")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return Response{}, err
	}
	var resp Response
	err = json.Unmarshal(plain, &resp)
	return resp, err
}

// TokenType is the token_type of an access token bound to the DPoP key with
// thumbprint jkt: "DPoP" (RFC 9449 §5), or "Bearer" when jkt is "".
func TokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}
