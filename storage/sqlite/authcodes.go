package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const authCodeCols = `hash, realm, client_id, user_id, session_id, redirect_uri, scopes, nonce, code_challenge,
	code_challenge_method, family_id, auth_time, created_at, expires_at, consumed_at`

func scanAuthCode(row rowScanner) (storage.AuthCode, error) {
	var c storage.AuthCode
	err := row.Scan(&c.Hash, &c.Realm, &c.ClientID, &c.UserID, &c.SessionID, &c.RedirectURI, jsonCol{&c.Scopes},
		&c.Nonce, &c.CodeChallenge, &c.CodeChallengeMethod, &c.FamilyID,
		timeCol{&c.AuthTime}, timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt}, timeCol{&c.ConsumedAt})
	return c, err
}

func (s *Store) CreateAuthCode(ctx context.Context, c storage.AuthCode) error {
	_, err := s.exec(ctx, `INSERT INTO auth_codes (`+authCodeCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Hash, c.Realm, c.ClientID, c.UserID, c.SessionID, c.RedirectURI, jsonText(c.Scopes),
		c.Nonce, c.CodeChallenge, c.CodeChallengeMethod, c.FamilyID,
		micros(c.AuthTime), micros(c.CreatedAt), micros(c.ExpiresAt), micros(c.ConsumedAt))
	// The hash is a secret's digest: it has no place in an error message.
	return mapWriteError(err, "authorization code")
}

func (s *Store) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time) (storage.AuthCode, error) {
	var code storage.AuthCode
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		// The conditional UPDATE is the decision: of any number of callers, on any
		// instance, only the first finds consumed_at NULL.
		c, err := scanAuthCode(tx.QueryRowContext(ctx, `UPDATE auth_codes SET consumed_at = ?
			WHERE hash = ? AND consumed_at IS NULL AND expires_at > ?
			RETURNING `+authCodeCols, micros(now), hash, micros(now)))
		if err == nil {
			code = c
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Lost, unknown or expired: say which.
		c, err = scanAuthCode(tx.QueryRowContext(ctx, `SELECT `+authCodeCols+` FROM auth_codes WHERE hash = ?`, hash))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("authorization code: %w", storage.ErrNotFound)
		case err != nil:
			return err
		case !c.ConsumedAt.IsZero():
			// A replay, even after expiry: the caller must still revoke what the
			// first redemption issued.
			code = c
			return fmt.Errorf("authorization code: %w", storage.ErrAlreadyUsed)
		default:
			return fmt.Errorf("authorization code expired: %w", storage.ErrNotFound)
		}
	})
	return code, err
}

func (s *Store) PurgeAuthCodes(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeAuthCodes, before)
}

func purgeAuthCodes(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM auth_codes WHERE expires_at < ?`, micros(before)))
}
