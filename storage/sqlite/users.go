package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const userCols = `realm, id, username, email, email_verified, name, password_hash, disabled,
	tokens_valid_after, created_at, updated_at, given_name, family_name, roles`

func scanUser(row rowScanner) (storage.User, error) {
	var u storage.User
	err := row.Scan(&u.Realm, &u.ID, &u.Username, &u.Email, &u.EmailVerified, &u.Name, &u.PasswordHash,
		&u.Disabled, timeCol{&u.TokensValidAfter}, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt},
		&u.GivenName, &u.FamilyName, jsonCol{&u.Roles})
	return u, err
}

func userName(realm, id string) string { return fmt.Sprintf("user %q in realm %q", id, realm) }

func (s *Store) CreateUser(ctx context.Context, u storage.User, events ...storage.AuditEvent) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		var err error
		if u.Roles, err = existingRefs(ctx, tx, u.Realm, u.Roles, nil); err != nil {
			return err
		}
		if err := createUser(ctx, tx, u); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
}

func createUser(ctx context.Context, tx *stmtTx, u storage.User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Realm, u.ID, u.Username, u.Email, u.EmailVerified, u.Name, u.PasswordHash, u.Disabled,
		micros(u.TokensValidAfter), micros(u.CreatedAt), micros(u.UpdatedAt), u.GivenName, u.FamilyName, refsText(u.Roles))
	return mapWriteError(err, userName(u.Realm, u.ID))
}

func (s *Store) GetUser(ctx context.Context, realm, id string) (storage.User, error) {
	return getUserWhere(ctx, s.reader, userName(realm, id), `realm = ? AND id = ?`, realm, id)
}

func (s *Store) GetUserByUsername(ctx context.Context, realm, username string) (storage.User, error) {
	return getUserByUsername(ctx, s.reader, realm, username)
}

func getUserByUsername(ctx context.Context, q querier, realm, username string) (storage.User, error) {
	return getUserWhere(ctx, q, fmt.Sprintf("username %q in realm %q", username, realm),
		`realm = ? AND username = ?`, realm, username)
}

func (s *Store) GetUserByEmail(ctx context.Context, realm, email string) (storage.User, error) {
	what := fmt.Sprintf("email %q in realm %q", email, realm)
	if email == "" {
		// Many users may have no email; none of them is "the" user with no email.
		return storage.User{}, fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	}
	return getUserWhere(ctx, s.reader, what, `realm = ? AND email = ?`, realm, email)
}

// getUserWhere fetches the one user matching where (a fixed condition, never caller input).
func getUserWhere(ctx context.Context, q querier, what, where string, args ...any) (storage.User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	}
	return u, err
}

func (s *Store) ListUsers(ctx context.Context, realm string, q storage.UserQuery) ([]storage.User, error) {
	// Only fixed conditions are joined into the query; the caller's values are arguments.
	query, args := `SELECT `+userCols+` FROM users WHERE realm = ?`, []any{realm}
	if q.After != "" {
		query, args = query+` AND username > ?`, append(args, q.After)
	}
	query += ` ORDER BY username`
	if q.Search == "" {
		if q.Limit > 0 {
			query, args = query+` LIMIT ?`, append(args, q.Limit)
		}
		return list(ctx, s.reader, scanUser, query, args...)
	}
	// The search is matched here rather than with LIKE: SQLite's LIKE and lower()
	// fold ASCII letters only, and "ignoring case" means É as much as E (as
	// PostgreSQL's lower() does). A substring search reads every row either way.
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	search := strings.ToLower(q.Search)
	var out []storage.User
	for (q.Limit <= 0 || len(out) < q.Limit) && rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		if strings.Contains(strings.ToLower(u.Username), search) || strings.Contains(strings.ToLower(u.Email), search) ||
			strings.Contains(strings.ToLower(u.Name), search) {
			out = append(out, u)
		}
	}
	return out, rows.Err()
}

// UpdateUser runs fn in the writer's transaction: nothing else writes between
// its read and its write.
func (s *Store) UpdateUser(ctx context.Context, realm, id string, fn func(u *storage.User) ([]storage.AuditEvent, error)) (storage.User, error) {
	var out storage.User
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		old, err := getUserWhere(ctx, tx, userName(realm, id), `realm = ? AND id = ?`, realm, id)
		if err != nil {
			return err
		}
		u := old
		events, err := fn(&u)
		if err != nil {
			return err
		}
		u.Realm, u.ID, u.CreatedAt = old.Realm, old.ID, old.CreatedAt
		reason := storage.UserRevocation(old, &u)
		if u.Roles, err = existingRefs(ctx, tx, realm, u.Roles, old.Roles); err != nil {
			return err
		}
		if err := updateUser(ctx, tx, u); err != nil {
			return err
		}
		if reason != "" {
			if err := endUserGrants(ctx, tx, realm, id, u.TokensValidAfter, reason); err != nil {
				return err
			}
		}
		out = u
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return storage.User{}, err
	}
	return out, nil
}

// updateUser replaces every column but the keys and created_at.
func updateUser(ctx context.Context, tx *stmtTx, u storage.User) error {
	res, err := tx.ExecContext(ctx, `UPDATE users SET username = ?, email = ?, email_verified = ?, name = ?,
		password_hash = ?, disabled = ?, tokens_valid_after = ?, updated_at = ?, given_name = ?, family_name = ?, roles = ?
		WHERE realm = ? AND id = ?`,
		u.Username, u.Email, u.EmailVerified, u.Name, u.PasswordHash, u.Disabled,
		micros(u.TokensValidAfter), micros(u.UpdatedAt), u.GivenName, u.FamilyName, refsText(u.Roles), u.Realm, u.ID)
	return mustChange(res, err, userName(u.Realm, u.ID))
}

// deleteUserCodes deletes a user's codes not yet redeemed: args realm, user ID.
const deleteUserCodes = `DELETE FROM auth_codes WHERE realm = ? AND user_id = ? AND consumed_at IS NULL`

// endUserGrants ends all a user holds, in the caller's transaction, at their
// security stamp (moved there by the caller, it kills every token issued before,
// for good): their sessions end, their refresh families are revoked for reason,
// and their codes not yet redeemed are deleted. The stamp's move, and every
// session and family ended, are recorded in the change feed.
func endUserGrants(ctx context.Context, tx *stmtTx, realm, id string, at time.Time, reason string) error {
	if err := recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeUserRevoked,
		Subject: id, UserID: id, Reason: reason}); err != nil {
		return fmt.Errorf("end what %s holds: %w", userName(realm, id), err)
	}
	if err := recordUserEnds(ctx, tx, realm, id, at, reason); err != nil {
		return fmt.Errorf("end what %s holds: %w", userName(realm, id), err)
	}
	a := micros(at)
	if _, err := tx.ExecContext(ctx, revokeUserSessions, a, realm, id); err != nil {
		return fmt.Errorf("end what %s holds: %w", userName(realm, id), err)
	}
	if _, err := tx.ExecContext(ctx, revokeUserFamilies, a, reason, realm, id); err != nil {
		return fmt.Errorf("end what %s holds: %w", userName(realm, id), err)
	}
	if _, err := tx.ExecContext(ctx, deleteUserCodes, realm, id); err != nil {
		return fmt.Errorf("end what %s holds: %w", userName(realm, id), err)
	}
	return nil
}

// recordUserEnds records the ends of a user's sessions and families not yet
// revoked, before the caller ends them.
func recordUserEnds(ctx context.Context, tx *stmtTx, realm, id string, at time.Time, reason string) error {
	if err := recordEndedSessions(ctx, tx, at, reason, `realm = ? AND user_id = ?`, realm, id); err != nil {
		return err
	}
	return recordRevokedFamilies(ctx, tx, at, reason, `realm = ? AND user_id = ?`, realm, id)
}

func (s *Store) DeleteUser(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE realm = ? AND id = ?`, realm, id)
		if err := mustChange(res, err, userName(realm, id)); err != nil {
			return err
		}
		if err := recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeUserRevoked,
			Subject: id, UserID: id, Reason: storage.ReasonDeleted}); err != nil {
			return err
		}
		if err := recordUserEnds(ctx, tx, realm, id, at, storage.ReasonDeleted); err != nil {
			return err
		}
		// What the user holds goes with them: sessions, families, pending codes,
		// opaque access tokens (which would otherwise stay valid at introspection
		// for a user who is gone) and consents. Refresh tokens follow their families.
		for _, table := range []string{"sessions", "refresh_families", "auth_codes", "consents"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE realm = ? AND user_id = ?`, realm, id); err != nil {
				return fmt.Errorf("%s: deleting %s: %w", userName(realm, id), table, err)
			}
		}
		return appendEvents(ctx, tx, events)
	})
}
