package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const familyCols = `id, realm, client_id, user_id, session_id, scopes, audience, created_at, last_used_at,
	idle_expires_at, absolute_expires_at, revoked_at, revoke_reason, ip, user_agent, jkt`

func scanFamily(row rowScanner) (storage.Family, error) {
	var f storage.Family
	err := row.Scan(&f.ID, &f.Realm, &f.ClientID, &f.UserID, &f.SessionID, jsonCol{&f.Scopes}, jsonCol{&f.Audience},
		timeCol{&f.CreatedAt}, timeCol{&f.LastUsedAt}, timeCol{&f.IdleExpiresAt}, timeCol{&f.AbsoluteExpiresAt},
		timeCol{&f.RevokedAt}, &f.RevokeReason, &f.IP, &f.UserAgent, &f.JKT)
	return f, err
}

const refreshCols = `hash, family_id, scopes, issued_at, used_at, successor_hash, sealed`

func scanRefreshToken(row rowScanner) (storage.RefreshToken, error) {
	var t storage.RefreshToken
	err := row.Scan(&t.Hash, &t.FamilyID, jsonCol{&t.Scopes}, timeCol{&t.IssuedAt}, timeCol{&t.UsedAt},
		&t.SuccessorHash, &t.Sealed)
	return t, err
}

func familyName(id string) string { return fmt.Sprintf("refresh family %q", id) }

func (s *Store) CreateFamily(ctx context.Context, f storage.Family, first storage.RefreshToken) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		return insertFamily(ctx, tx, f, first)
	})
}

// insertFamily stores a family and its first token, inside the caller's transaction.
func insertFamily(ctx context.Context, tx *stmtTx, f storage.Family, first storage.RefreshToken) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO refresh_families (`+familyCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.Realm, f.ClientID, f.UserID, f.SessionID, jsonText(f.Scopes), jsonText(f.Audience),
		micros(f.CreatedAt), micros(f.LastUsedAt), micros(f.IdleExpiresAt), micros(f.AbsoluteExpiresAt),
		micros(f.RevokedAt), f.RevokeReason, f.IP, f.UserAgent, f.JKT)
	if err != nil {
		return mapWriteError(err, familyName(f.ID))
	}
	first.FamilyID = f.ID
	return insertRefreshToken(ctx, tx, first)
}

func insertRefreshToken(ctx context.Context, tx *stmtTx, t storage.RefreshToken) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (`+refreshCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.Hash, t.FamilyID, jsonText(t.Scopes), micros(t.IssuedAt), micros(t.UsedAt),
		blob(t.SuccessorHash), blob(t.Sealed))
	// The hash is a secret's digest: it has no place in an error message.
	return mapWriteError(err, "refresh token in "+familyName(t.FamilyID))
}

func (s *Store) GetFamily(ctx context.Context, id string) (storage.Family, error) {
	f, err := scanFamily(s.reader.QueryRowContext(ctx, `SELECT `+familyCols+` FROM refresh_families WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("%s: %w", familyName(id), storage.ErrNotFound)
	}
	return f, err
}

func (s *Store) GetRefreshToken(ctx context.Context, hash []byte) (storage.RefreshToken, error) {
	return getRefreshToken(ctx, s.reader, hash)
}

func getRefreshToken(ctx context.Context, q querier, hash []byte) (storage.RefreshToken, error) {
	t, err := scanRefreshToken(q.QueryRowContext(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("refresh token: %w", storage.ErrNotFound)
	}
	return t, err
}

// RotateRefreshToken returns the parent as it now stands, whether this call
// rotated it or another did first.
func (s *Store) RotateRefreshToken(ctx context.Context, parentHash []byte, child storage.RefreshToken, sealed []byte, use storage.FamilyUse) (storage.RefreshToken, error) {
	var parent storage.RefreshToken
	err := s.enqueue(&write{ctx: ctx, done: make(chan error, 1), rotation: true, fn: func(ctx context.Context, tx *stmtTx) error {
		// The conditional UPDATE is the decision, even though this IMMEDIATE
		// transaction already holds the write lock: only a parent still unused, of a
		// family not revoked, is marked, by exactly one caller.
		parent = storage.RefreshToken{Hash: parentHash, UsedAt: use.At, SuccessorHash: child.Hash, Sealed: sealed}
		err := tx.QueryRowContext(ctx, `UPDATE refresh_tokens SET used_at = ?, successor_hash = ?, sealed = ?
			WHERE hash = ? AND used_at IS NULL
			  AND (SELECT revoked_at FROM refresh_families WHERE id = refresh_tokens.family_id) IS NULL
			RETURNING family_id, scopes, issued_at`, micros(use.At), blob(child.Hash), blob(sealed), parentHash,
		).Scan(&parent.FamilyID, jsonCol{&parent.Scopes}, timeCol{&parent.IssuedAt})
		if errors.Is(err, sql.ErrNoRows) {
			return notRotated(ctx, tx, parentHash, &parent)
		}
		if err != nil {
			return err
		}
		child.FamilyID = parent.FamilyID
		if err := insertRefreshToken(ctx, tx, child); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE refresh_families SET last_used_at = ?, idle_expires_at = ?, ip = ?, user_agent = ?
			WHERE id = ?`, micros(use.At), micros(use.IdleExpiresAt), use.IP, use.UserAgent, parent.FamilyID)
		return err
	}})
	return parent, err
}

// notRotated says why a parent was not rotated (ErrNotFound, ErrRevoked or
// ErrAlreadyUsed), leaving it in *parent as it stands.
func notRotated(ctx context.Context, tx *stmtTx, parentHash []byte, parent *storage.RefreshToken) error {
	var err error
	*parent, err = getRefreshToken(ctx, tx, parentHash)
	if err != nil {
		return err
	}
	var revoked bool
	err = tx.QueryRowContext(ctx, `SELECT revoked_at IS NOT NULL FROM refresh_families WHERE id = ?`,
		parent.FamilyID).Scan(&revoked)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", familyName(parent.FamilyID), err)
	case revoked:
		return fmt.Errorf("%s: %w", familyName(parent.FamilyID), storage.ErrRevoked)
	}
	return fmt.Errorf("refresh token in %s: %w", familyName(parent.FamilyID), storage.ErrAlreadyUsed)
}

func (s *Store) RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		// One row: the family's tokens are dead because it is. The right-hand sides
		// see the old revoked_at, so a second revocation keeps the first time and
		// reason, and is not recorded again.
		if err := recordRevokedFamilies(ctx, tx, at, reason, `id = ?`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE refresh_families
			SET revoked_at = COALESCE(revoked_at, ?),
			    revoke_reason = CASE WHEN revoked_at IS NULL THEN ? ELSE revoke_reason END
			WHERE id = ?`, micros(at), reason, id)
		return mustChange(res, err, familyName(id))
	})
}

func (s *Store) ListUserFamilies(ctx context.Context, realm, userID string, now time.Time) ([]storage.Family, error) {
	return list(ctx, s.reader, scanFamily, `SELECT `+familyCols+` FROM refresh_families
		WHERE realm = ? AND user_id = ? AND revoked_at IS NULL AND idle_expires_at > ? AND absolute_expires_at > ?
		ORDER BY created_at, id`, realm, userID, micros(now), micros(now))
}

func (s *Store) RevokeUserFamilies(ctx context.Context, realm, userID string, at time.Time, reason string) (int64, error) {
	return s.revokeFamilies(ctx, at, reason, revokeUserFamilies, `realm = ? AND user_id = ?`, realm, userID)
}

// revokeFamilies records, then runs, update (args at, reason, then args), which
// revokes the families not yet revoked that match where (args).
func (s *Store) revokeFamilies(ctx context.Context, at time.Time, reason, update, where string, args ...any) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		if err := recordRevokedFamilies(ctx, tx, at, reason, where, args...); err != nil {
			return err
		}
		var err error
		n, err = changed(tx.ExecContext(ctx, update, append([]any{micros(at), reason}, args...)...))
		return err
	})
	return n, err
}

// revokeUserFamilies revokes a user's live families: args at, reason, realm, user ID.
const revokeUserFamilies = `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
	WHERE realm = ? AND user_id = ? AND revoked_at IS NULL`

func (s *Store) RevokeSessionFamilies(ctx context.Context, sessionID string, at time.Time, reason string) (int64, error) {
	if sessionID == "" {
		// "" marks families born outside a browser session; it names no session.
		return 0, nil
	}
	return s.revokeFamilies(ctx, at, reason, `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
		WHERE session_id = ? AND revoked_at IS NULL`, `session_id = ?`, sessionID)
}

func (s *Store) PurgeFamilies(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeFamilies, before)
}

func purgeFamilies(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	b := micros(before)
	// Tokens go by foreign key; the count is of families only, as SQLite counts
	// only the rows a statement deletes directly.
	return changed(tx.ExecContext(ctx, `DELETE FROM refresh_families
		WHERE idle_expires_at < ? OR absolute_expires_at < ? OR revoked_at < ?`, b, b, b))
}
