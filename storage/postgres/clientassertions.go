package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// UseClientAssertion records the client's jti until expiresAt, exactly once. The
// insert is the whole race: callers that lose wait on the winner's uncommitted
// row, then find the conflict and insert nothing.
func (s *Store) UseClientAssertion(ctx context.Context, realm, clientID, jti string, expiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO client_assertions (realm, client_id, jti, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (realm, client_id, jti) DO NOTHING`,
		realm, clientID, jti, ts(expiresAt))
	if err != nil {
		return fmt.Errorf("use assertion %q of client %q in realm %q: %w", jti, clientID, realm, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("use assertion %q of client %q in realm %q: %w", jti, clientID, realm, storage.ErrAlreadyUsed)
	}
	return nil
}

// PurgeClientAssertions deletes entries that expired before the given time.
func (s *Store) PurgeClientAssertions(ctx context.Context, before time.Time) (int64, error) {
	return purgeClientAssertions(ctx, s.pool, before)
}

func purgeClientAssertions(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM client_assertions WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge client assertions: %w", err)
	}
	return tag.RowsAffected(), nil
}
