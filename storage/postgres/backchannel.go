package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// recordSessionClient notes, in the caller's transaction, that c's session was
// used with c's client.
func recordSessionClient(ctx context.Context, q querier, c storage.AuthCode) error {
	_, err := q.Exec(ctx, `INSERT INTO session_clients (session_id, realm, client_id, recorded_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, realm, client_id) DO UPDATE SET recorded_at = excluded.recorded_at`,
		c.SessionID, c.Realm, c.ClientID, ts(c.CreatedAt))
	return err
}

// SessionClients implements storage.BackchannelStore.
func (s *Store) SessionClients(ctx context.Context, sessionID string) ([]storage.SessionClient, error) {
	rows, err := s.pool.Query(ctx, `SELECT realm, client_id FROM session_clients WHERE session_id = $1 ORDER BY realm, client_id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("clients of session %q: %w", sessionID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.SessionClient, error) {
		var c storage.SessionClient
		return c, row.Scan(&c.Realm, &c.ClientID)
	})
	if err != nil {
		return nil, fmt.Errorf("clients of session %q: %w", sessionID, err)
	}
	return out, nil
}

// PurgeSessionClients implements storage.BackchannelStore.
func (s *Store) PurgeSessionClients(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM session_clients WHERE recorded_at < $1
		AND NOT EXISTS (SELECT 1 FROM sessions WHERE sessions.id = session_clients.session_id)`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge session clients: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ListSessionsRevokedAt implements storage.BackchannelStore.
func (s *Store) ListSessionsRevokedAt(ctx context.Context, realm string, at time.Time) ([]storage.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE realm = $1 AND revoked_at = $2 ORDER BY id`, realm, ts(at))
	if err != nil {
		return nil, fmt.Errorf("sessions of realm %q revoked at %v: %w", realm, at, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, fmt.Errorf("sessions of realm %q revoked at %v: %w", realm, at, err)
	}
	return out, nil
}

// BackchannelCursor implements storage.BackchannelStore.
func (s *Store) BackchannelCursor(ctx context.Context) (int64, bool, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT seq FROM backchannel_cursor WHERE id = 1`).Scan(&seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("back-channel logout cursor: %w", err)
	}
	return seq, true, nil
}

// SetBackchannelCursor implements storage.BackchannelStore.
func (s *Store) SetBackchannelCursor(ctx context.Context, seq int64) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO backchannel_cursor (id, seq) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET seq = excluded.seq`, seq); err != nil {
		return fmt.Errorf("set back-channel logout cursor: %w", err)
	}
	return nil
}
