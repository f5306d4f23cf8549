package oauth

import (
	"context"
	"strings"

	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/storage"
)

// rehashPassword replaces the hash that just verified user's password with an
// argon2id one when the hash is of another scheme or cheaper than
// password.Default: an imported Keycloak hash (pbkdf2-sha512, argon2 with
// Keycloak's parameters) lasts only until the user's next sign-in.
//
// The password is the same, so this is not a password change: the updater leaves
// TokensValidAfter where it is, and UpdateUser revokes nothing unless the stamp
// moves (see storage.UserRevocation). It writes only if the stored hash is still
// the one verified, so a password changed meanwhile is never overwritten. A
// failure is logged and the sign-in goes on: the old hash still works.
func (h *Handler) rehashPassword(ctx context.Context, user storage.User, pw string) {
	if !password.NeedsRehash(user.PasswordHash, password.Default) {
		return
	}
	fresh, err := password.Hash(pw, password.Default)
	if err != nil {
		h.log.ErrorContext(ctx, "rehash password", "realm", user.Realm, "user", user.ID, "err", err)
		return
	}
	old := user.PasswordHash
	scheme, _, _ := strings.Cut(strings.TrimPrefix(old, "$"), "$")
	now := h.now().UTC()
	_, err = h.store.UpdateUser(ctx, user.Realm, user.ID, func(u *storage.User) ([]storage.AuditEvent, error) {
		if u.PasswordHash != old {
			return nil, nil
		}
		u.PasswordHash, u.UpdatedAt = fresh, now
		return []storage.AuditEvent{{Time: now, Type: "user.password_rehashed", Realm: u.Realm, UserID: u.ID,
			Details: map[string]string{"from": scheme, "to": "argon2id"}}}, nil
	})
	if err != nil {
		h.log.ErrorContext(ctx, "rehash password", "realm", user.Realm, "user", user.ID, "err", err)
	}
}
