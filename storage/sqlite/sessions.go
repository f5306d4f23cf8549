package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const sessionCols = `id, realm, user_id, secret_hash, auth_time, created_at, last_seen_at, idle_expires_at,
	expires_at, revoked_at, ip, user_agent`

func scanSession(row rowScanner) (storage.Session, error) {
	var s storage.Session
	err := row.Scan(&s.ID, &s.Realm, &s.UserID, &s.SecretHash, timeCol{&s.AuthTime}, timeCol{&s.CreatedAt},
		timeCol{&s.LastSeenAt}, timeCol{&s.IdleExpiresAt}, timeCol{&s.ExpiresAt}, timeCol{&s.RevokedAt},
		&s.IP, &s.UserAgent)
	return s, err
}

func sessionName(id string) string { return fmt.Sprintf("session %q", id) }

func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	_, err := s.exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ss.ID, ss.Realm, ss.UserID, blob(ss.SecretHash), micros(ss.AuthTime), micros(ss.CreatedAt),
		micros(ss.LastSeenAt), micros(ss.IdleExpiresAt), micros(ss.ExpiresAt), micros(ss.RevokedAt),
		ss.IP, ss.UserAgent)
	return mapWriteError(err, sessionName(ss.ID))
}

func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	ss, err := scanSession(s.reader.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ss, fmt.Errorf("%s: %w", sessionName(id), storage.ErrNotFound)
	}
	return ss, err
}

func (s *Store) TouchSession(ctx context.Context, id string, seenAt, idleExpiresAt time.Time) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ?, idle_expires_at = ? WHERE id = ?`,
			micros(seenAt), micros(idleExpiresAt), id)
		return mustChange(res, err, sessionName(id))
	})
}

func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		// Recorded only if not yet revoked; COALESCE keeps the first revocation time.
		if err := recordEndedSessions(ctx, tx, at, "", `id = ?`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`,
			micros(at), id)
		return mustChange(res, err, sessionName(id))
	})
}

func (s *Store) ListUserSessions(ctx context.Context, realm, userID string, now time.Time) ([]storage.Session, error) {
	// A NULL expiry compares as unknown and so is not live, as in Session.Live.
	return list(ctx, s.reader, scanSession, `SELECT `+sessionCols+` FROM sessions
		WHERE realm = ? AND user_id = ? AND revoked_at IS NULL AND idle_expires_at > ? AND expires_at > ?
		ORDER BY created_at, id`, realm, userID, micros(now), micros(now))
}

func (s *Store) RevokeUserSessions(ctx context.Context, realm, userID string, at time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		if err := recordEndedSessions(ctx, tx, at, "", `realm = ? AND user_id = ?`, realm, userID); err != nil {
			return err
		}
		var err error
		n, err = changed(tx.ExecContext(ctx, revokeUserSessions, micros(at), realm, userID))
		return err
	})
	return n, err
}

// revokeUserSessions ends a user's live sessions: args at, realm, user ID.
const revokeUserSessions = `UPDATE sessions SET revoked_at = ? WHERE realm = ? AND user_id = ? AND revoked_at IS NULL`

func (s *Store) PurgeSessions(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeSessions, before)
}

// purgeSessions keeps an expired session while a refresh family born in it is
// kept (unrevoked, unexpired at before; see purgeFamilies): an offline family
// outlives its session's expiry but still ends with the session's logout, which
// needs the row. The subquery uses refresh_families_session.
func purgeSessions(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	b := micros(before)
	return changed(tx.ExecContext(ctx, `DELETE FROM sessions
		WHERE revoked_at < ?
		   OR ((idle_expires_at < ? OR expires_at < ?) AND NOT EXISTS (
			SELECT 1 FROM refresh_families f
			WHERE f.session_id = sessions.id AND f.revoked_at IS NULL
			  AND f.idle_expires_at >= ? AND f.absolute_expires_at >= ?))`, b, b, b, b, b))
}
