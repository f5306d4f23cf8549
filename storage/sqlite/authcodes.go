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
	code_challenge_method, family_id, ip, user_agent, auth_time, created_at, expires_at, consumed_at`

func scanAuthCode(row rowScanner) (storage.AuthCode, error) {
	var c storage.AuthCode
	err := row.Scan(&c.Hash, &c.Realm, &c.ClientID, &c.UserID, &c.SessionID, &c.RedirectURI, jsonCol{&c.Scopes},
		&c.Nonce, &c.CodeChallenge, &c.CodeChallengeMethod, &c.FamilyID, &c.IP, &c.UserAgent,
		timeCol{&c.AuthTime}, timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt}, timeCol{&c.ConsumedAt})
	return c, err
}

func (s *Store) CreateAuthCode(ctx context.Context, c storage.AuthCode, keep int) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO auth_codes (`+authCodeCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Hash, c.Realm, c.ClientID, c.UserID, c.SessionID, c.RedirectURI, jsonText(c.Scopes),
			c.Nonce, c.CodeChallenge, c.CodeChallengeMethod, c.FamilyID, c.IP, c.UserAgent,
			micros(c.AuthTime), micros(c.CreatedAt), micros(c.ExpiresAt), micros(c.ConsumedAt))
		if err != nil {
			// The hash is a secret's digest: it has no place in an error message.
			return mapWriteError(err, "authorization code")
		}
		if c.SessionID == "" {
			return nil // "" names no session: it has no clients to record, no codes to trim
		}
		if err := recordSessionClient(ctx, tx, c); err != nil {
			return err
		}
		if keep <= 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM auth_codes WHERE hash IN (
			SELECT hash FROM auth_codes WHERE session_id = ? AND consumed_at IS NULL
			ORDER BY created_at DESC, hash LIMIT -1 OFFSET ?)`, c.SessionID, keep)
		return err
	})
}

func (s *Store) RedeemAuthCode(ctx context.Context, hash []byte, now time.Time, start storage.StartGrant) (storage.AuthCode, error) {
	var code storage.AuthCode
	var refused error
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		refused = nil // the writer may run this again, after a group it was in failed
		// The conditional UPDATE is the decision: of any number of callers, on any
		// instance, only the first finds consumed_at NULL.
		c, err := scanAuthCode(tx.QueryRowContext(ctx, `UPDATE auth_codes SET consumed_at = ?
			WHERE hash = ? AND consumed_at IS NULL AND expires_at > ?
			RETURNING `+authCodeCols, micros(now), hash, micros(now)))
		if err == nil {
			code = c
			f, first, err := start(c)
			if err != nil {
				// Refused: the code stays spent, and no grant exists.
				refused = err
				return nil
			}
			return insertFamily(ctx, tx, f, first)
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
			// A replay, even after expiry: the caller must still revoke the grant
			// the first redemption started, which exists by now.
			code = c
			return fmt.Errorf("authorization code: %w", storage.ErrAlreadyUsed)
		default:
			return fmt.Errorf("authorization code expired: %w", storage.ErrNotFound)
		}
	})
	if err == nil {
		err = refused
	}
	return code, err
}

func (s *Store) PurgeAuthCodes(ctx context.Context, now time.Time, grace time.Duration) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		var err error
		n, err = purgeAuthCodes(ctx, tx, now, grace)
		return err
	})
	return n, err
}

func purgeAuthCodes(ctx context.Context, tx *stmtTx, now time.Time, grace time.Duration) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM auth_codes
		WHERE expires_at < ? OR (consumed_at IS NULL AND expires_at < ?)`, micros(now.Add(-grace)), micros(now)))
}
