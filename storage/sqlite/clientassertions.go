package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

func (s *Store) UseClientAssertion(ctx context.Context, realm, clientID, jti string, expiresAt time.Time) error {
	// The insert is the decision: writes are serialised, and of any number of
	// callers, in any process, only the first adds the row; the rest change nothing.
	n, err := s.exec(ctx, `INSERT INTO client_assertions (realm, client_id, jti, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (realm, client_id, jti) DO NOTHING`, realm, clientID, jti, micros(expiresAt))
	if err != nil {
		return fmt.Errorf("%s: use assertion %q: %w", clientName(realm, clientID), jti, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: assertion %q: %w", clientName(realm, clientID), jti, storage.ErrAlreadyUsed)
	}
	return nil
}

func (s *Store) PurgeClientAssertions(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeClientAssertions, before)
}

func purgeClientAssertions(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM client_assertions WHERE expires_at < ?`, micros(before)))
}
