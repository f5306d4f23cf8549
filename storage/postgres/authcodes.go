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
	code_challenge, code_challenge_method, family_id, ip, user_agent, auth_time, created_at, expires_at, consumed_at`

func scanAuthCode(row scanner) (storage.AuthCode, error) {
	var c storage.AuthCode
	err := row.Scan(&c.Hash, &c.Realm, &c.ClientID, &c.UserID, &c.SessionID, &c.RedirectURI, &c.Scopes, &c.Nonce,
		&c.CodeChallenge, &c.CodeChallengeMethod, &c.FamilyID, &c.IP, &c.UserAgent, nt(&c.AuthTime), nt(&c.CreatedAt),
		nt(&c.ExpiresAt), nt(&c.ConsumedAt))
	return c, err
}

// CreateAuthCode stores a new code and trims its session's unredeemed codes to
// keep, in one transaction. Errors never show the hash.
func (s *Store) CreateAuthCode(ctx context.Context, c storage.AuthCode, keep int) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO auth_codes (`+authCodeColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			c.Hash, c.Realm, c.ClientID, c.UserID, c.SessionID, c.RedirectURI, list(c.Scopes), c.Nonce,
			c.CodeChallenge, c.CodeChallengeMethod, c.FamilyID, c.IP, c.UserAgent, ts(c.AuthTime), ts(c.CreatedAt),
			ts(c.ExpiresAt), ts(c.ConsumedAt))
		if err != nil || c.SessionID == "" {
			return err // "" names no session: it has no clients to record, no codes to trim
		}
		if err := recordSessionClient(ctx, tx, c); err != nil || keep <= 0 {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM auth_codes WHERE hash IN (
			SELECT hash FROM auth_codes WHERE session_id = $1 AND consumed_at IS NULL
			ORDER BY created_at DESC, hash OFFSET $2)`, c.SessionID, keep)
		return err
	})
	if err != nil {
		return fmt.Errorf("create authorization code for client %q in realm %q: %w", c.ClientID, c.Realm, classify(err))
	}
	return nil
}

// RedeemAuthCode marks a live code consumed at now, exactly once, and stores the
// grant start makes of it in the same transaction. The conditional UPDATE is the
// whole race: PostgreSQL row-locks the code, and a caller that waited re-checks
// consumed_at IS NULL against the winner's committed write, family included, and
// matches nothing. Only then is the code read to tell the losers why.
func (s *Store) RedeemAuthCode(ctx context.Context, hash []byte, now time.Time, start storage.StartGrant) (storage.AuthCode, error) {
	var code storage.AuthCode
	var refused error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		refused = nil
		c, err := scanAuthCode(tx.QueryRow(ctx, `
			UPDATE auth_codes SET consumed_at = $2
			WHERE hash = $1 AND consumed_at IS NULL AND expires_at > $2
			RETURNING `+authCodeColumns, hash, ts(now)))
		if err != nil {
			return err
		}
		code = c
		f, first, err := start(c)
		if err != nil {
			// Refused: the code stays spent, and no grant exists.
			refused = err
			return nil
		}
		return insertFamily(ctx, tx, f, first)
	})
	switch {
	case err == nil:
		return code, refused
	case !errors.Is(err, pgx.ErrNoRows):
		return storage.AuthCode{}, fmt.Errorf("redeem authorization code: %w", classify(err))
	}

	code, err = scanAuthCode(s.pool.QueryRow(ctx, `SELECT `+authCodeColumns+` FROM auth_codes WHERE hash = $1`, hash))
	if err != nil {
		return storage.AuthCode{}, fmt.Errorf("redeem authorization code: %w", notFound(err))
	}
	if !code.ConsumedAt.IsZero() {
		// A replay: the caller needs the code to revoke the grant its first
		// redemption started, which is committed by now.
		return code, fmt.Errorf("redeem authorization code: %w", storage.ErrAlreadyUsed)
	}
	return storage.AuthCode{}, fmt.Errorf("redeem authorization code: expired: %w", storage.ErrNotFound)
}

// PurgeAuthCodes deletes codes that expired before now-grace, and those never
// consumed as soon as they expired.
func (s *Store) PurgeAuthCodes(ctx context.Context, now time.Time, grace time.Duration) (int64, error) {
	return purgeAuthCodes(ctx, s.pool, now, grace)
}

func purgeAuthCodes(ctx context.Context, q querier, now time.Time, grace time.Duration) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM auth_codes
		WHERE expires_at < $1 OR (consumed_at IS NULL AND expires_at < $2)`, ts(now.Add(-grace)), ts(now))
	if err != nil {
		return 0, fmt.Errorf("purge authorization codes: %w", err)
	}
	return tag.RowsAffected(), nil
}
