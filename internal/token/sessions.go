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
	GetUser(ctx context.Context, realm, id string) (storage.User, error)
	UpdateUser(ctx context.Context, u storage.User) error
	GetFamily(ctx context.Context, id string) (storage.Family, error)
	RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error
	RevokeUserFamilies(ctx context.Context, realm, userID string, at time.Time, reason string) (int64, error)
	RevokeUserSessions(ctx context.Context, realm, userID string, at time.Time) (int64, error)
	AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error)
}

// LogoutEverywhere signs a user out of every browser and app: it moves the user's
// security stamp (tokens_valid_after), so every token issued so far is dead at
// introspection and refresh, and ends every session and refresh family.
func LogoutEverywhere(ctx context.Context, st SessionStore, realm, userID string, now time.Time, from Caller) error {
	now = now.UTC().Truncate(time.Microsecond)
	u, err := st.GetUser(ctx, realm, userID)
	if err != nil {
		return fmt.Errorf("log out everywhere: %w", err)
	}
	u.TokensValidAfter, u.UpdatedAt = now, now
	if err := st.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("log out everywhere: %w", err)
	}
	sessions, err := st.RevokeUserSessions(ctx, realm, userID, now)
	if err != nil {
		return fmt.Errorf("log out everywhere: %w", err)
	}
	families, err := st.RevokeUserFamilies(ctx, realm, userID, now, "logout everywhere")
	if err != nil {
		return fmt.Errorf("log out everywhere: %w", err)
	}
	_, err = st.AppendAudit(ctx, storage.AuditEvent{Time: now, Type: "user.logout_everywhere", Realm: realm, UserID: userID,
		IP: from.IP, UserAgent: from.UserAgent,
		Details: map[string]string{"sessions": fmt.Sprint(sessions), "families": fmt.Sprint(families)}})
	return err
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
