package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const accessTokenCols = `hash, realm, client_id, user_id, session_id, family_id, scopes, audience,
	issued_at, expires_at, revoked_at`

func scanAccessToken(row rowScanner) (storage.AccessToken, error) {
	var t storage.AccessToken
	err := row.Scan(&t.Hash, &t.Realm, &t.ClientID, &t.UserID, &t.SessionID, &t.FamilyID,
		jsonCol{&t.Scopes}, jsonCol{&t.Audience}, timeCol{&t.IssuedAt}, timeCol{&t.ExpiresAt}, timeCol{&t.RevokedAt})
	return t, err
}

// Access token hashes are digests of secrets: they never appear in error messages.

func (s *Store) CreateAccessToken(ctx context.Context, t storage.AccessToken) error {
	_, err := s.exec(ctx, `INSERT INTO access_tokens (`+accessTokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Hash, t.Realm, t.ClientID, t.UserID, t.SessionID, t.FamilyID, jsonText(t.Scopes), jsonText(t.Audience),
		micros(t.IssuedAt), micros(t.ExpiresAt), micros(t.RevokedAt))
	return mapWriteError(err, "access token")
}

func (s *Store) GetAccessToken(ctx context.Context, hash []byte) (storage.AccessToken, error) {
	t, err := scanAccessToken(s.reader.QueryRowContext(ctx, `SELECT `+accessTokenCols+` FROM access_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("access token: %w", storage.ErrNotFound)
	}
	return t, err
}

func (s *Store) RevokeAccessToken(ctx context.Context, hash []byte, at time.Time) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		// COALESCE keeps the first revocation time.
		res, err := tx.ExecContext(ctx, `UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE hash = ?`,
			micros(at), hash)
		return mustChange(res, err, "access token")
	})
}

func (s *Store) PurgeAccessTokens(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeAccessTokens, before)
}

func purgeAccessTokens(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE expires_at < ?`, micros(before)))
}
