package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const accessTokenColumns = `hash, realm, client_id, user_id, session_id, family_id, scopes, audience,
	issued_at, expires_at, revoked_at`

// CreateAccessToken stores a new opaque access token. Errors never show the hash.
func (s *Store) CreateAccessToken(ctx context.Context, t storage.AccessToken) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO access_tokens (`+accessTokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		t.Hash, t.Realm, t.ClientID, t.UserID, t.SessionID, t.FamilyID, list(t.Scopes), list(t.Audience),
		ts(t.IssuedAt), ts(t.ExpiresAt), ts(t.RevokedAt))
	if err != nil {
		return fmt.Errorf("create access token for client %q in realm %q: %w", t.ClientID, t.Realm, classify(err))
	}
	return nil
}

// GetAccessToken returns the token, live or not.
func (s *Store) GetAccessToken(ctx context.Context, hash []byte) (storage.AccessToken, error) {
	var t storage.AccessToken
	err := s.pool.QueryRow(ctx, `SELECT `+accessTokenColumns+` FROM access_tokens WHERE hash = $1`, hash).Scan(
		&t.Hash, &t.Realm, &t.ClientID, &t.UserID, &t.SessionID, &t.FamilyID, &t.Scopes, &t.Audience,
		nt(&t.IssuedAt), nt(&t.ExpiresAt), nt(&t.RevokedAt))
	if err != nil {
		return storage.AccessToken{}, fmt.Errorf("access token: %w", notFound(err))
	}
	return t, nil
}

// RevokeAccessToken revokes the token; revoking twice keeps the first time.
func (s *Store) RevokeAccessToken(ctx context.Context, hash []byte, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE hash = $1`,
		hash, ts(at))
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke access token: %w", storage.ErrNotFound)
	}
	return nil
}

// PurgeAccessTokens deletes tokens that expired before the given time.
func (s *Store) PurgeAccessTokens(ctx context.Context, before time.Time) (int64, error) {
	return purgeAccessTokens(ctx, s.pool, before)
}

func purgeAccessTokens(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM access_tokens WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge access tokens: %w", err)
	}
	return tag.RowsAffected(), nil
}
