package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const consentColumns = `realm, user_id, client_id, scopes, created_at, updated_at`

func scanConsent(row scanner) (storage.Consent, error) {
	var c storage.Consent
	err := row.Scan(&c.Realm, &c.UserID, &c.ClientID, &c.Scopes, nt(&c.CreatedAt), nt(&c.UpdatedAt))
	return c, err
}

// GetConsent returns the user's consent for the client.
func (s *Store) GetConsent(ctx context.Context, realm, userID, clientID string) (storage.Consent, error) {
	c, err := scanConsent(s.pool.QueryRow(ctx, `SELECT `+consentColumns+` FROM consents
		WHERE realm = $1 AND user_id = $2 AND client_id = $3`, realm, userID, clientID))
	if err != nil {
		return storage.Consent{}, fmt.Errorf("consent of user %q to client %q in realm %q: %w", userID, clientID, realm, notFound(err))
	}
	return c, nil
}

// SaveConsent creates the consent or replaces its scopes and UpdatedAt; an
// existing one keeps its created_at.
func (s *Store) SaveConsent(ctx context.Context, c storage.Consent) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO consents (`+consentColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (realm, user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`,
		c.Realm, c.UserID, c.ClientID, list(c.Scopes), ts(c.CreatedAt), ts(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("save consent of user %q to client %q in realm %q: %w", c.UserID, c.ClientID, c.Realm, err)
	}
	return nil
}

// DeleteConsent deletes the user's consent for the client.
func (s *Store) DeleteConsent(ctx context.Context, realm, userID, clientID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM consents WHERE realm = $1 AND user_id = $2 AND client_id = $3`,
		realm, userID, clientID)
	if err != nil {
		return fmt.Errorf("delete consent of user %q to client %q in realm %q: %w", userID, clientID, realm, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete consent of user %q to client %q in realm %q: %w", userID, clientID, realm, storage.ErrNotFound)
	}
	return nil
}

// ListUserConsents returns the user's consents ordered by client ID.
func (s *Store) ListUserConsents(ctx context.Context, realm, userID string) ([]storage.Consent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+consentColumns+` FROM consents
		WHERE realm = $1 AND user_id = $2 ORDER BY client_id`, realm, userID)
	if err != nil {
		return nil, fmt.Errorf("list consents of user %q in realm %q: %w", userID, realm, err)
	}
	consents, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Consent, error) { return scanConsent(row) })
	if err != nil {
		return nil, fmt.Errorf("list consents of user %q in realm %q: %w", userID, realm, err)
	}
	return consents, nil
}
