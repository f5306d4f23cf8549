package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const sessionColumns = `id, realm, user_id, secret_hash, auth_time, created_at, last_seen_at,
	idle_expires_at, expires_at, revoked_at, ip, user_agent`

func scanSession(row scanner) (storage.Session, error) {
	var s storage.Session
	err := row.Scan(&s.ID, &s.Realm, &s.UserID, &s.SecretHash, nt(&s.AuthTime), nt(&s.CreatedAt),
		nt(&s.LastSeenAt), nt(&s.IdleExpiresAt), nt(&s.ExpiresAt), nt(&s.RevokedAt), &s.IP, &s.UserAgent)
	return s, err
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		sess.ID, sess.Realm, sess.UserID, sess.SecretHash, ts(sess.AuthTime), ts(sess.CreatedAt),
		ts(sess.LastSeenAt), ts(sess.IdleExpiresAt), ts(sess.ExpiresAt), ts(sess.RevokedAt), sess.IP, sess.UserAgent)
	if err != nil {
		return fmt.Errorf("create session %q: %w", sess.ID, classify(err))
	}
	return nil
}

// GetSession returns the session, live or not.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return storage.Session{}, fmt.Errorf("session %q: %w", id, notFound(err))
	}
	return sess, nil
}

// TouchSession records use of the session and slides its idle expiry.
func (s *Store) TouchSession(ctx context.Context, id string, seenAt, idleExpiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 WHERE id = $1`,
		id, ts(seenAt), ts(idleExpiresAt))
	if err != nil {
		return fmt.Errorf("touch session %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("touch session %q: %w", id, storage.ErrNotFound)
	}
	return nil
}

// RevokeSession ends the session; revoking twice keeps the first time.
// Only a session not yet revoked is ended and recorded; then one that is not
// ended is told from one that does not exist.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	n, err := endAndRecord(ctx, s.pool, storage.ChangeSessionEnded, at, "", `UPDATE sessions SET revoked_at = $2
		WHERE id = $1 AND revoked_at IS NULL RETURNING realm, id, user_id, '' AS client_id, NULL::timestamptz AS revoked_at`,
		id, ts(at))
	if err != nil {
		return fmt.Errorf("revoke session %q: %w", id, err)
	}
	s.recorded(n)
	if n > 0 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("revoke session %q: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("revoke session %q: %w", id, storage.ErrNotFound)
	}
	return nil
}

// ListUserSessions returns the user's sessions live at now, oldest first.
func (s *Store) ListUserSessions(ctx context.Context, realm, userID string, now time.Time) ([]storage.Session, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+sessionColumns+` FROM sessions
		WHERE realm = $1 AND user_id = $2 AND revoked_at IS NULL AND idle_expires_at > $3 AND expires_at > $3
		ORDER BY created_at, id`, realm, userID, ts(now))
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %q in realm %q: %w", userID, realm, err)
	}
	sessions, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %q in realm %q: %w", userID, realm, err)
	}
	return sessions, nil
}

// revokeUserSessions ends a user's live sessions, for endAndRecord: args realm, user ID, at.
const revokeUserSessions = `UPDATE sessions SET revoked_at = $3 WHERE realm = $1 AND user_id = $2 AND revoked_at IS NULL
	RETURNING realm, id, user_id, '' AS client_id, NULL::timestamptz AS revoked_at`

// RevokeUserSessions ends every unrevoked session of the user and says how many.
func (s *Store) RevokeUserSessions(ctx context.Context, realm, userID string, at time.Time) (int64, error) {
	n, err := endAndRecord(ctx, s.pool, storage.ChangeSessionEnded, at, "", revokeUserSessions, realm, userID, ts(at))
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of user %q in realm %q: %w", userID, realm, err)
	}
	s.recorded(n)
	return n, nil
}

// PurgeSessions deletes sessions that expired or were revoked before the given time.
func (s *Store) PurgeSessions(ctx context.Context, before time.Time) (int64, error) {
	return purgeSessions(ctx, s.pool, before)
}

// purgeSessions keeps an expired session while a refresh family born in it is
// kept (unrevoked, unexpired at before; see purgeFamilies): an offline family
// outlives its session's expiry but still ends with the session's logout, which
// needs the row. The non-empty session_id lets the subquery use the partial
// index refresh_families_session.
func purgeSessions(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `
		DELETE FROM sessions s
		WHERE s.revoked_at < $1
		   OR ((s.idle_expires_at < $1 OR s.expires_at < $1) AND NOT EXISTS (
			SELECT 1 FROM refresh_families f
			WHERE f.session_id = s.id AND f.session_id <> '' AND f.revoked_at IS NULL
			  AND f.idle_expires_at >= $1 AND f.absolute_expires_at >= $1))`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
