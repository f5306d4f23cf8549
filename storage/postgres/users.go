package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const userColumns = `realm, id, username, email, email_verified, name, password_hash, disabled,
	tokens_valid_after, created_at, updated_at, given_name, family_name, roles`

func scanUser(row scanner) (storage.User, error) {
	var u storage.User
	err := row.Scan(&u.Realm, &u.ID, &u.Username, &u.Email, &u.EmailVerified, &u.Name, &u.PasswordHash,
		&u.Disabled, nt(&u.TokensValidAfter), nt(&u.CreatedAt), nt(&u.UpdatedAt), &u.GivenName, &u.FamilyName, &u.Roles)
	return u, err
}

// CreateUser stores a new user.
func (s *Store) CreateUser(ctx context.Context, u storage.User, events ...storage.AuditEvent) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		u := u
		var err error
		if u.Roles, err = existingRefs(ctx, tx, u.Realm, u.Roles, nil); err != nil {
			return err
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return classify(err)
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("create user %q in realm %q: %w", u.Username, u.Realm, err)
	}
	return nil
}

func insertUser(ctx context.Context, q querier, u storage.User) error {
	_, err := q.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		u.Realm, u.ID, u.Username, u.Email, u.EmailVerified, u.Name, u.PasswordHash, u.Disabled,
		ts(u.TokensValidAfter), ts(u.CreatedAt), ts(u.UpdatedAt), u.GivenName, u.FamilyName, refsJSON(u.Roles))
	return err
}

// GetUser returns the user by ID.
func (s *Store) GetUser(ctx context.Context, realm, id string) (storage.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE realm = $1 AND id = $2`, realm, id))
	if err != nil {
		return storage.User{}, fmt.Errorf("user %q in realm %q: %w", id, realm, notFound(err))
	}
	return u, nil
}

// GetUserByUsername matches the username exactly.
func (s *Store) GetUserByUsername(ctx context.Context, realm, username string) (storage.User, error) {
	u, err := getUserByUsername(ctx, s.pool, realm, username)
	if err != nil {
		return storage.User{}, fmt.Errorf("user %q in realm %q: %w", username, realm, notFound(err))
	}
	return u, nil
}

func getUserByUsername(ctx context.Context, q querier, realm, username string) (storage.User, error) {
	return scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE realm = $1 AND username = $2`, realm, username))
}

// GetUserByEmail matches the email exactly. Users without an email are never
// found by the empty one.
func (s *Store) GetUserByEmail(ctx context.Context, realm, email string) (storage.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE realm = $1 AND email = $2 AND email <> ''`, realm, email))
	if err != nil {
		return storage.User{}, fmt.Errorf("user with email %q in realm %q: %w", email, realm, notFound(err))
	}
	return u, nil
}

// ListUsers returns the realm's users that match q, ordered by username.
func (s *Store) ListUsers(ctx context.Context, realm string, q storage.UserQuery) ([]storage.User, error) {
	// Only fixed conditions are joined into the query; the caller's values are arguments.
	query, args := `SELECT `+userColumns+` FROM users WHERE realm = $1`, []any{realm}
	if q.Search != "" {
		args = append(args, containsPattern(q.Search))
		n := len(args)
		query += fmt.Sprintf(` AND (lower(username) LIKE $%d ESCAPE '\' OR lower(email) LIKE $%d ESCAPE '\' OR lower(name) LIKE $%d ESCAPE '\')`, n, n, n)
	}
	if q.After != "" {
		args = append(args, q.After)
		query += fmt.Sprintf(` AND username > $%d`, len(args))
	}
	query += ` ORDER BY username`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		query += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list users of realm %q: %w", realm, err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.User, error) { return scanUser(row) })
	if err != nil {
		return nil, fmt.Errorf("list users of realm %q: %w", realm, err)
	}
	return users, nil
}

// UpdateUser locks the user's row (SELECT ... FOR UPDATE) for the read, so a
// concurrent update waits for this one and then reads what it wrote.
func (s *Store) UpdateUser(ctx context.Context, realm, id string, fn func(u *storage.User) ([]storage.AuditEvent, error)) (storage.User, error) {
	var out storage.User
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		old, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE realm = $1 AND id = $2 FOR UPDATE`, realm, id))
		if err != nil {
			return notFound(err)
		}
		u := old
		events, err := fn(&u)
		if err != nil {
			return errFn{err}
		}
		u.Realm, u.ID, u.CreatedAt = old.Realm, old.ID, old.CreatedAt
		reason := storage.UserRevocation(old, &u)
		if u.Roles, err = existingRefs(ctx, tx, realm, u.Roles, old.Roles); err != nil {
			return err
		}
		if _, err := updateUser(ctx, tx, u); err != nil {
			return classify(err)
		}
		if reason != "" {
			if err := endUserGrants(ctx, tx, u, u.TokensValidAfter, reason); err != nil {
				return err
			}
		}
		out = u
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return storage.User{}, wrapUpdate(err, "update user %q in realm %q", id, realm)
	}
	return out, nil
}

func updateUser(ctx context.Context, q querier, u storage.User) (int64, error) {
	tag, err := q.Exec(ctx, `
		UPDATE users SET username = $3, email = $4, email_verified = $5, name = $6, password_hash = $7,
			disabled = $8, tokens_valid_after = $9, updated_at = $10, given_name = $11, family_name = $12, roles = $13
		WHERE realm = $1 AND id = $2`,
		u.Realm, u.ID, u.Username, u.Email, u.EmailVerified, u.Name, u.PasswordHash, u.Disabled,
		ts(u.TokensValidAfter), ts(u.UpdatedAt), u.GivenName, u.FamilyName, refsJSON(u.Roles))
	return tag.RowsAffected(), err
}

// DeleteUser deletes the user with their sessions, refresh families (whose
// tokens go by foreign-key cascade), codes, opaque access tokens and consents,
// in one transaction.
func (s *Store) DeleteUser(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE realm = $1 AND id = $2`, realm, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		// What the user holds goes with them: sessions, families (their tokens
		// follow), pending codes, opaque access tokens and consents. The user's
		// end, and that of every session and family still live, are recorded.
		if err := recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeUserRevoked,
			Subject: id, UserID: id, Reason: storage.ReasonDeleted}); err != nil {
			return err
		}
		if _, err := endAndRecord(ctx, tx, storage.ChangeSessionEnded, at, storage.ReasonDeleted,
			`DELETE FROM sessions WHERE realm = $1 AND user_id = $2 RETURNING realm, id, user_id, '' AS client_id, revoked_at`,
			realm, id); err != nil {
			return fmt.Errorf("deleting sessions: %w", err)
		}
		if _, err := endAndRecord(ctx, tx, storage.ChangeFamilyRevoked, at, storage.ReasonDeleted,
			`DELETE FROM refresh_families WHERE realm = $1 AND user_id = $2 RETURNING realm, id, user_id, client_id, revoked_at`,
			realm, id); err != nil {
			return fmt.Errorf("deleting refresh families: %w", err)
		}
		for _, table := range []string{"auth_codes", "consents"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE realm = $1 AND user_id = $2`, realm, id); err != nil {
				return fmt.Errorf("deleting %s: %w", table, err)
			}
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("delete user %q in realm %q: %w", id, realm, err)
	}
	return nil
}

// containsPattern is a LIKE pattern matching any text that contains s, lowered,
// with LIKE's wildcards and its escape character (a backslash) escaped: the
// query must say ESCAPE '\'.
func containsPattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}
