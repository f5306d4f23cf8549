package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// SessionStore is what ending a user's sessions needs.
type SessionStore interface {
	UpdateUser(ctx context.Context, realm, id string, fn func(u *storage.User) ([]storage.AuditEvent, error)) (storage.User, error)
	GetFamily(ctx context.Context, id string) (storage.Family, error)
	RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error
	AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error)
}

// LogoutEverywhere signs a user out of every browser and app: it moves the user's
// security stamp (tokens_valid_after), so every token issued so far is dead at
// introspection and refresh. The store ends every session and refresh family, and
// deletes the codes not yet redeemed, in the same transaction as the stamp and
// its audit event (see storage.UserStore.UpdateUser), so none of it is ever seen
// without the rest.
func LogoutEverywhere(ctx context.Context, st SessionStore, realm, userID string, now time.Time, from Caller) error {
	now = now.UTC().Truncate(time.Microsecond)
	_, err := st.UpdateUser(ctx, realm, userID, func(u *storage.User) ([]storage.AuditEvent, error) {
		u.TokensValidAfter, u.UpdatedAt = now, now
		return []storage.AuditEvent{{Time: now, Type: "user.logout_everywhere", Realm: realm, UserID: userID,
			IP: from.IP, UserAgent: from.UserAgent}}, nil
	})
	if err != nil {
		return fmt.Errorf("log out everywhere: %w", err)
	}
	return nil
}

// ErrNotYours is returned when a family asked to be ended is not the user's.
var ErrNotYours = errors.New("token: no such session of this user")

// EndFamily ends one of a user's app sessions (a refresh family).
func EndFamily(ctx context.Context, st SessionStore, realm, userID, familyID string, now time.Time, from Caller) error {
	now = now.UTC().Truncate(time.Microsecond)
	f, err := st.GetFamily(ctx, familyID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (f.Realm != realm || f.UserID != userID)) {
		return ErrNotYours
	}
	if err != nil {
		return err
	}
	if err := st.RevokeFamily(ctx, familyID, now, "ended by user"); err != nil {
		return err
	}
	_, err = st.AppendAudit(ctx, storage.AuditEvent{Time: now, Type: "refresh_family.revoked", Realm: realm,
		ClientID: f.ClientID, UserID: userID, SessionID: f.SessionID, FamilyID: familyID, IP: from.IP, UserAgent: from.UserAgent,
		Details: map[string]string{"reason": "ended by user"}})
	return err
}
