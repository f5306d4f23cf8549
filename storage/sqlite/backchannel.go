package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// recordSessionClient notes, in the caller's transaction, that c's session was
// used with c's client.
func recordSessionClient(ctx context.Context, tx *stmtTx, c storage.AuthCode) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO session_clients (session_id, realm, client_id, recorded_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (session_id, realm, client_id) DO UPDATE SET recorded_at = excluded.recorded_at`,
		c.SessionID, c.Realm, c.ClientID, micros(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("record the session's client %q: %w", c.ClientID, err)
	}
	return nil
}

func (s *Store) SessionClients(ctx context.Context, sessionID string) ([]storage.SessionClient, error) {
	out, err := list(ctx, s.reader, func(r rowScanner) (storage.SessionClient, error) {
		var c storage.SessionClient
		return c, r.Scan(&c.Realm, &c.ClientID)
	}, `SELECT realm, client_id FROM session_clients WHERE session_id = ? ORDER BY realm, client_id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("clients of session %q: %w", sessionID, err)
	}
	return out, nil
}

func (s *Store) PurgeSessionClients(ctx context.Context, before time.Time) (int64, error) {
	return s.exec(ctx, `DELETE FROM session_clients WHERE recorded_at < ?
		AND NOT EXISTS (SELECT 1 FROM sessions WHERE sessions.id = session_clients.session_id)`, micros(before))
}

func (s *Store) ListSessionsRevokedAt(ctx context.Context, realm string, at time.Time) ([]storage.Session, error) {
	out, err := list(ctx, s.reader, scanSession, `SELECT `+sessionCols+` FROM sessions
		WHERE realm = ? AND revoked_at = ? ORDER BY id`, realm, micros(at))
	if err != nil {
		return nil, fmt.Errorf("sessions of realm %q revoked at %v: %w", realm, at, err)
	}
	return out, nil
}

func (s *Store) BackchannelCursor(ctx context.Context) (int64, bool, error) {
	var seq int64
	err := s.reader.QueryRowContext(ctx, `SELECT seq FROM backchannel_cursor WHERE id = 1`).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("back-channel logout cursor: %w", err)
	}
	return seq, true, nil
}

func (s *Store) SetBackchannelCursor(ctx context.Context, seq int64) error {
	if _, err := s.exec(ctx, `INSERT INTO backchannel_cursor (id, seq) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET seq = excluded.seq`, seq); err != nil {
		return fmt.Errorf("set back-channel logout cursor: %w", err)
	}
	return nil
}
