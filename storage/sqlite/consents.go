package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/latchkey/latchkey/storage"
)

const consentCols = `realm, user_id, client_id, scopes, created_at, updated_at`

func scanConsent(row rowScanner) (storage.Consent, error) {
	var c storage.Consent
	err := row.Scan(&c.Realm, &c.UserID, &c.ClientID, jsonCol{&c.Scopes}, timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt})
	return c, err
}

func consentName(realm, userID, clientID string) string {
	return fmt.Sprintf("consent of user %q to client %q in realm %q", userID, clientID, realm)
}

func (s *Store) GetConsent(ctx context.Context, realm, userID, clientID string) (storage.Consent, error) {
	c, err := scanConsent(s.reader.QueryRowContext(ctx, `SELECT `+consentCols+` FROM consents
		WHERE realm = ? AND user_id = ? AND client_id = ?`, realm, userID, clientID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%s: %w", consentName(realm, userID, clientID), storage.ErrNotFound)
	}
	return c, err
}

func (s *Store) SaveConsent(ctx context.Context, c storage.Consent) error {
	// An existing consent keeps its created_at: only what was granted, and when, changes.
	_, err := s.exec(ctx, `INSERT INTO consents (`+consentCols+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (realm, user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`,
		c.Realm, c.UserID, c.ClientID, jsonText(c.Scopes), micros(c.CreatedAt), micros(c.UpdatedAt))
	return mapWriteError(err, consentName(c.Realm, c.UserID, c.ClientID))
}

func (s *Store) DeleteConsent(ctx context.Context, realm, userID, clientID string) error {
	n, err := s.exec(ctx, `DELETE FROM consents WHERE realm = ? AND user_id = ? AND client_id = ?`, realm, userID, clientID)
	if err != nil {
		return fmt.Errorf("%s: %w", consentName(realm, userID, clientID), err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", consentName(realm, userID, clientID), storage.ErrNotFound)
	}
	return nil
}

func (s *Store) ListUserConsents(ctx context.Context, realm, userID string) ([]storage.Consent, error) {
	return list(ctx, s.reader, scanConsent, `SELECT `+consentCols+` FROM consents
		WHERE realm = ? AND user_id = ? ORDER BY client_id`, realm, userID)
}
