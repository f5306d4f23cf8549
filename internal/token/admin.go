package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// VerifyAccess says whether tok is an active access token of the realm, JWT or
// opaque, by exactly introspection's rules (signature, typ, iss, exp, the
// deny-list, and the client, user, session and family it stands on), and returns
// its claims when it is. Only a store failure is an error.
func (s *Service) VerifyAccess(ctx context.Context, realm, tok string) (*AccessClaims, bool, error) {
	c, _, live, err := s.verifyAccess(ctx, realm, tok)
	return c, live, err
}

// IntrospectAny answers as Introspect does, but for a refresh token issued to any
// client of the realm: for an administrator, not for a client.
func (s *Service) IntrospectAny(ctx context.Context, realm storage.Realm, tok string) (Introspection, error) {
	tok, err := s.unwrapRefresh(ctx, realm.Name, tok)
	if err != nil {
		return inactive, err
	}
	if !strings.HasPrefix(tok, RefreshPrefix) {
		return s.introspectAccess(ctx, realm, tok)
	}
	owner, err := s.refreshOwner(ctx, realm.Name, tok)
	if err != nil || owner == "" {
		return inactive, err
	}
	return s.introspectRefresh(ctx, realm, owner, tok)
}

// refreshOwner returns the client a refresh token of the realm was issued to, or
// "" when it is no refresh token of the realm.
func (s *Service) refreshOwner(ctx context.Context, realm, tok string) (string, error) {
	rt, err := s.store.GetRefreshToken(ctx, Hash(tok))
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	fam, err := s.store.GetFamily(ctx, rt.FamilyID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && fam.Realm != realm) {
		return "", nil
	}
	return fam.ClientID, err
}

// RevokeAny revokes tok, whichever client of the realm it was issued to, as Revoke
// does for its owner; event (Type, Time and the token's subject filled in) is the
// audit event it writes. It reports whether tok was a live token of the realm.
func (s *Service) RevokeAny(ctx context.Context, realm storage.Realm, tok string, event storage.AuditEvent) (bool, error) {
	tok, err := s.unwrapRefresh(ctx, realm.Name, tok)
	if err != nil {
		return false, err
	}
	owner := ""
	if strings.HasPrefix(tok, RefreshPrefix) {
		var err error
		if owner, err = s.refreshOwner(ctx, realm.Name, tok); err != nil || owner == "" {
			return false, err
		}
	} else {
		c, err := s.accessClaims(ctx, realm, tok)
		if err != nil || c == nil || !s.now().Before(time.Unix(c.Expiry, 0)) {
			return false, err
		}
		owner = c.ClientID
	}
	return true, s.revoke(ctx, realm, owner, tok, event, "revoked by admin")
}

// DenyJTI puts an access token of the realm on the deny-list by its jti until
// until (its expiry is not known: the caller passes the longest it can be), and
// writes event.
func (s *Service) DenyJTI(ctx context.Context, realm, jti string, until time.Time, event storage.AuditEvent) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	if err := s.store.DenyJWT(ctx, storage.DeniedJWT{Realm: realm, JTI: jti, ExpiresAt: until.UTC(), CreatedAt: now, Reason: "revoked by admin"}); err != nil {
		return fmt.Errorf("deny jti: %w", err)
	}
	s.deny.Add(realm, jti, until)
	event.Time, event.Realm = now, realm
	if _, err := s.store.AppendAudit(ctx, event); err != nil {
		return fmt.Errorf("deny jti: audit: %w", err)
	}
	return nil
}

// ForgetVerified forgets every access token whose signature was checked, so that
// after a key is retired the tokens it signed are checked against the key ring
// again, and fail, at once.
func (s *Service) ForgetVerified() { s.verified.clear() }
