package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Caller says where a request came from, for audit events.
type Caller struct {
	IP        string
	UserAgent string
}

// Revoke revokes tok on behalf of client (RFC 7009). An access token, JWT or
// opaque, goes on the deny-list until it expires; a refresh token takes its whole
// family with it. Unknown, malformed, expired or foreign-realm tokens
// are not an error (RFC 7009 §2.2); another client's token is ErrNotOwner.
func (s *Service) Revoke(ctx context.Context, realm storage.Realm, client storage.Client, tok string, from Caller) error {
	event := storage.AuditEvent{ClientID: client.ID, IP: from.IP, UserAgent: from.UserAgent}
	return s.revoke(ctx, realm, client.ID, tok, event, "revoked by client")
}

// revoke revokes tok, a token issued to owner, writing event (its Time, Realm,
// Type and the token's subject filled in) and giving reason as the revocation's.
func (s *Service) revoke(ctx context.Context, realm storage.Realm, owner, tok string, event storage.AuditEvent, reason string) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	event.Time, event.Realm = now, realm.Name
	tok, err := s.unwrapRefresh(ctx, realm.Name, tok)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}

	switch {
	case strings.HasPrefix(tok, RefreshPrefix):
		rt, err := s.store.GetRefreshToken(ctx, Hash(tok))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		fam, err := s.store.GetFamily(ctx, rt.FamilyID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && fam.Realm != realm.Name) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		if fam.ClientID != owner {
			return ErrNotOwner
		}
		if err := s.store.RevokeFamily(ctx, fam.ID, now, reason); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		event.Type, event.UserID, event.SessionID, event.FamilyID = "refresh_family.revoked", fam.UserID, fam.SessionID, fam.ID

	default:
		c, err := s.accessClaims(ctx, realm, tok)
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		if c == nil {
			return nil // not an access token of this realm
		}
		exp := time.Unix(c.Expiry, 0)
		if !now.Before(exp) {
			return nil // dead already
		}
		if c.ClientID != owner {
			return ErrNotOwner
		}
		if err := s.store.DenyJWT(ctx, storage.DeniedJWT{Realm: realm.Name, JTI: c.ID, ExpiresAt: exp.UTC(), CreatedAt: now, Reason: reason}); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		s.deny.Add(realm.Name, c.ID, exp)
		event.Type = "access_token.revoked"
		if c.Subject != c.ClientID {
			event.UserID = c.Subject
		}
		event.SessionID, event.FamilyID = c.SessionID, c.FamilyID
		if event.Details == nil {
			event.Details = map[string]string{}
		}
		event.Details["jti"] = c.ID
	}
	if _, err := s.store.AppendAudit(ctx, event); err != nil {
		return fmt.Errorf("revoke: audit: %w", err)
	}
	return nil
}
