package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const authCodeColumns = `hash, realm, client_id, user_id, session_id, redirect_uri, scopes, nonce,
	code_challenge, code_challenge_method, family_id, auth_time, created_at, expires_at, consumed_at`

func scanAuthCode(row scanner) (storage.AuthCode, error) {
	var c storage.AuthCode
	err := row.Scan(&c.Hash, &c.Realm, &c.ClientID, &c.UserID, &c.SessionID, &c.RedirectURI, &c.Scopes, &c.Nonce,
		&c.CodeChallenge, &c.CodeChallengeMethod, &c.FamilyID, nt(&c.AuthTime), nt(&c.CreatedAt),
		nt(&c.ExpiresAt), nt(&c.ConsumedAt))
	return c, err
}

// CreateAuthCode stores a new code. Errors never show the hash.
func (s *Store) CreateAuthCode(ctx context.Context, c storage.AuthCode) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO auth_codes (`+authCodeColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		c.Hash, c.Realm, c.ClientID, c.UserID, c.SessionID, c.RedirectURI, list(c.Scopes), c.Nonce,
		c.CodeChallenge, c.CodeChallengeMethod, c.FamilyID, ts(c.AuthTime), ts(c.CreatedAt),
		ts(c.ExpiresAt), ts(c.ConsumedAt))
	if err != nil {
		return fmt.Errorf("create authorization code for client %q in realm %q: %w", c.ClientID, c.Realm, classify(err))
	}
	return nil
}

// ConsumeAuthCode marks a live code consumed at now, exactly once. The
// conditional UPDATE is the whole race: PostgreSQL row-locks the code, and a
// caller that waited re-checks consumed_at IS NULL against the winner's write
// and matches nothing. Only then is the code read to tell the losers why.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time) (storage.AuthCode, error) {
	code, err := scanAuthCode(s.pool.QueryRow(ctx, `
		UPDATE auth_codes SET consumed_at = $2
		WHERE hash = $1 AND consumed_at IS NULL AND expires_at > $2
		RETURNING `+authCodeColumns, hash, ts(now)))
	if err == nil {
		return code, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return storage.AuthCode{}, fmt.Errorf("consume authorization code: %w", err)
	}

	code, err = scanAuthCode(s.pool.QueryRow(ctx, `SELECT `+authCodeColumns+` FROM auth_codes WHERE hash = $1`, hash))
	if err != nil {
		return storage.AuthCode{}, fmt.Errorf("consume authorization code: %w", notFound(err))
	}
	if !code.ConsumedAt.IsZero() {
		// A replay: the caller needs the code to revoke what its first redemption issued.
		return code, fmt.Errorf("consume authorization code: %w", storage.ErrAlreadyUsed)
	}
	return storage.AuthCode{}, fmt.Errorf("consume authorization code: expired: %w", storage.ErrNotFound)
}

// PurgeAuthCodes deletes codes that expired before the given time, consumed or not.
func (s *Store) PurgeAuthCodes(ctx context.Context, before time.Time) (int64, error) {
	return purgeAuthCodes(ctx, s.pool, before)
}

func purgeAuthCodes(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM auth_codes WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge authorization codes: %w", err)
	}
	return tag.RowsAffected(), nil
}
