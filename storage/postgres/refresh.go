package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const familyColumns = `id, realm, client_id, user_id, session_id, scopes, audience, created_at, last_used_at,
	idle_expires_at, absolute_expires_at, revoked_at, revoke_reason, ip, user_agent, jkt`

func scanFamily(row scanner) (storage.Family, error) {
	var f storage.Family
	err := row.Scan(&f.ID, &f.Realm, &f.ClientID, &f.UserID, &f.SessionID, &f.Scopes, &f.Audience,
		nt(&f.CreatedAt), nt(&f.LastUsedAt), nt(&f.IdleExpiresAt), nt(&f.AbsoluteExpiresAt), nt(&f.RevokedAt),
		&f.RevokeReason, &f.IP, &f.UserAgent, &f.JKT)
	return f, err
}

const refreshTokenColumns = `hash, family_id, scopes, issued_at, used_at, successor_hash, sealed`

func scanRefreshToken(row scanner) (storage.RefreshToken, error) {
	var t storage.RefreshToken
	err := row.Scan(&t.Hash, &t.FamilyID, &t.Scopes, nt(&t.IssuedAt), nt(&t.UsedAt), &t.SuccessorHash, &t.Sealed)
	return t, err
}

func insertRefreshToken(ctx context.Context, q querier, t storage.RefreshToken) error {
	_, err := q.Exec(ctx, `INSERT INTO refresh_tokens (`+refreshTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.Hash, t.FamilyID, list(t.Scopes), ts(t.IssuedAt), ts(t.UsedAt), t.SuccessorHash, t.Sealed)
	return err
}

func getRefreshToken(ctx context.Context, q querier, hash []byte) (storage.RefreshToken, error) {
	return scanRefreshToken(q.QueryRow(ctx, `SELECT `+refreshTokenColumns+` FROM refresh_tokens WHERE hash = $1`, hash))
}

// CreateFamily stores a family with its first token in one transaction.
func (s *Store) CreateFamily(ctx context.Context, f storage.Family, first storage.RefreshToken) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return insertFamily(ctx, tx, f, first)
	})
	if err != nil {
		return fmt.Errorf("create refresh family %q: %w", f.ID, classify(err))
	}
	return nil
}

// insertFamily stores a family and its first token, inside the caller's transaction.
func insertFamily(ctx context.Context, q querier, f storage.Family, first storage.RefreshToken) error {
	_, err := q.Exec(ctx, `INSERT INTO refresh_families (`+familyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		f.ID, f.Realm, f.ClientID, f.UserID, f.SessionID, list(f.Scopes), list(f.Audience),
		ts(f.CreatedAt), ts(f.LastUsedAt), ts(f.IdleExpiresAt), ts(f.AbsoluteExpiresAt), ts(f.RevokedAt),
		f.RevokeReason, f.IP, f.UserAgent, f.JKT)
	if err != nil {
		return err
	}
	first.FamilyID = f.ID
	return insertRefreshToken(ctx, q, first)
}

// GetFamily returns the family, live or not.
func (s *Store) GetFamily(ctx context.Context, id string) (storage.Family, error) {
	f, err := scanFamily(s.pool.QueryRow(ctx, `SELECT `+familyColumns+` FROM refresh_families WHERE id = $1`, id))
	if err != nil {
		return storage.Family{}, fmt.Errorf("refresh family %q: %w", id, notFound(err))
	}
	return f, nil
}

// GetRefreshToken returns the token, used or not. Errors never show the hash.
func (s *Store) GetRefreshToken(ctx context.Context, hash []byte) (storage.RefreshToken, error) {
	t, err := getRefreshToken(ctx, s.pool, hash)
	if err != nil {
		return storage.RefreshToken{}, fmt.Errorf("refresh token: %w", notFound(err))
	}
	return t, nil
}

// RotateRefreshToken marks the parent used with child as its successor, stores
// the child and records the use on the family, all in one transaction.
//
// The transaction first locks the parent's family row. RevokeFamily updates
// that same row, so a revocation either committed before (and the lock read
// sees revoked_at) or waits until the rotation is done; and rotations within
// one family take turns. The conditional UPDATE then lets exactly one caller
// mark the parent used: the others, waking after the winner committed, find
// used_at set and match no row.
func (s *Store) RotateRefreshToken(ctx context.Context, parentHash []byte, child storage.RefreshToken, sealed []byte, use storage.FamilyUse) (storage.RefreshToken, error) {
	var parent storage.RefreshToken
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var familyID string
		var revokedAt time.Time
		err := tx.QueryRow(ctx, `
			SELECT f.id, f.revoked_at
			FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
			WHERE t.hash = $1
			FOR NO KEY UPDATE OF f`, parentHash).Scan(&familyID, nt(&revokedAt))
		if err != nil {
			return notFound(err)
		}
		if !revokedAt.IsZero() {
			// Checked before reuse: a revoked family answers nothing, not even a retry.
			if parent, err = getRefreshToken(ctx, tx, parentHash); err != nil {
				return err
			}
			return storage.ErrRevoked
		}

		parent, err = scanRefreshToken(tx.QueryRow(ctx, `
			UPDATE refresh_tokens SET used_at = $2, successor_hash = $3, sealed = $4
			WHERE hash = $1 AND used_at IS NULL
			RETURNING `+refreshTokenColumns, parentHash, ts(use.At), child.Hash, sealed))
		if errors.Is(err, pgx.ErrNoRows) {
			// Used before: tell the caller by which successor, for an honest retry.
			if parent, err = getRefreshToken(ctx, tx, parentHash); err != nil {
				return err
			}
			return storage.ErrAlreadyUsed
		}
		if err != nil {
			return err
		}

		child.FamilyID = familyID
		if err := insertRefreshToken(ctx, tx, child); err != nil {
			return classify(err)
		}
		_, err = tx.Exec(ctx, `
			UPDATE refresh_families SET last_used_at = $2, idle_expires_at = $3, ip = $4, user_agent = $5
			WHERE id = $1`, familyID, ts(use.At), ts(use.IdleExpiresAt), use.IP, use.UserAgent)
		return err
	})
	switch {
	case errors.Is(err, storage.ErrRevoked), errors.Is(err, storage.ErrAlreadyUsed):
		return parent, fmt.Errorf("rotate refresh token: %w", err)
	case err != nil:
		return storage.RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	return parent, nil
}

// RevokeFamily revokes the family, and with it every token in it, in one
// UPDATE that also records it. Revoking twice keeps the first time and reason,
// and records nothing: only a family not yet revoked matches, and when none
// does, one revoked before is told from one that does not exist.
func (s *Store) RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error {
	n, err := endAndRecord(ctx, s.pool, storage.ChangeFamilyRevoked, at, reason, `UPDATE refresh_families
		SET revoked_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL
		RETURNING `+familyEnded, id, ts(at), reason)
	if err != nil {
		return fmt.Errorf("revoke refresh family %q: %w", id, err)
	}
	s.recorded(n)
	if n > 0 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM refresh_families WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("revoke refresh family %q: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("revoke refresh family %q: %w", id, storage.ErrNotFound)
	}
	return nil
}

// familyEnded is what an UPDATE that revokes families returns for endAndRecord.
const familyEnded = `realm, id, user_id, client_id, NULL::timestamptz AS revoked_at`

// ListUserFamilies returns the user's families live at now, oldest first.
func (s *Store) ListUserFamilies(ctx context.Context, realm, userID string, now time.Time) ([]storage.Family, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+familyColumns+` FROM refresh_families
		WHERE realm = $1 AND user_id = $2 AND revoked_at IS NULL AND idle_expires_at > $3 AND absolute_expires_at > $3
		ORDER BY created_at, id`, realm, userID, ts(now))
	if err != nil {
		return nil, fmt.Errorf("list refresh families of user %q in realm %q: %w", userID, realm, err)
	}
	families, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Family, error) { return scanFamily(row) })
	if err != nil {
		return nil, fmt.Errorf("list refresh families of user %q in realm %q: %w", userID, realm, err)
	}
	return families, nil
}

// revokeUserFamilies revokes a user's live families, for endAndRecord: args
// realm, user ID, at, reason.
const revokeUserFamilies = `UPDATE refresh_families SET revoked_at = $3, revoke_reason = $4
	WHERE realm = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING ` + familyEnded

// RevokeUserFamilies revokes every unrevoked family of the user and says how many.
func (s *Store) RevokeUserFamilies(ctx context.Context, realm, userID string, at time.Time, reason string) (int64, error) {
	n, err := endAndRecord(ctx, s.pool, storage.ChangeFamilyRevoked, at, reason, revokeUserFamilies, realm, userID, ts(at), reason)
	if err != nil {
		return 0, fmt.Errorf("revoke refresh families of user %q in realm %q: %w", userID, realm, err)
	}
	s.recorded(n)
	return n, nil
}

// RevokeSessionFamilies revokes every unrevoked family born in the session and says how many.
func (s *Store) RevokeSessionFamilies(ctx context.Context, sessionID string, at time.Time, reason string) (int64, error) {
	// Families born outside a browser session share the empty session ID; they
	// are no one session's. Saying so in SQL also lets the partial index serve.
	n, err := endAndRecord(ctx, s.pool, storage.ChangeFamilyRevoked, at, reason, `
		UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3
		WHERE session_id = $1 AND session_id <> '' AND revoked_at IS NULL RETURNING `+familyEnded, sessionID, ts(at), reason)
	if err != nil {
		return 0, fmt.Errorf("revoke refresh families of session %q: %w", sessionID, err)
	}
	s.recorded(n)
	return n, nil
}

// PurgeFamilies deletes families, with their tokens (by foreign-key cascade),
// that expired or were revoked before the given time.
func (s *Store) PurgeFamilies(ctx context.Context, before time.Time) (int64, error) {
	return purgeFamilies(ctx, s.pool, before)
}

func purgeFamilies(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `
		DELETE FROM refresh_families
		WHERE idle_expires_at < $1 OR absolute_expires_at < $1 OR revoked_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge refresh families: %w", err)
	}
	return tag.RowsAffected(), nil
}
