package sqlite

import (
	"context"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const deniedJWTCols = `realm, jti, expires_at, created_at, reason`

func scanDeniedJWT(row rowScanner) (storage.DeniedJWT, error) {
	var d storage.DeniedJWT
	err := row.Scan(&d.Realm, &d.JTI, timeCol{&d.ExpiresAt}, timeCol{&d.CreatedAt}, &d.Reason)
	return d, err
}

func (s *Store) DenyJWT(ctx context.Context, d storage.DeniedJWT) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		// DO NOTHING keeps the first entry, and only a new one is recorded.
		n, err := changed(tx.ExecContext(ctx, `INSERT INTO denied_jwts (`+deniedJWTCols+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (realm, jti) DO NOTHING`,
			d.Realm, d.JTI, micros(d.ExpiresAt), micros(d.CreatedAt), d.Reason))
		if err != nil || n == 0 {
			return err
		}
		return recordChange(ctx, tx, storage.Change{Time: d.CreatedAt, Realm: d.Realm, Kind: storage.ChangeTokenDenied,
			Subject: d.JTI, Until: d.ExpiresAt, Reason: d.Reason})
	})
}

func (s *Store) IsJWTDenied(ctx context.Context, realm, jti string) (bool, error) {
	var denied bool
	err := s.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM denied_jwts WHERE realm = ? AND jti = ?)`,
		realm, jti).Scan(&denied)
	return denied, err
}

func (s *Store) ListDeniedJWTs(ctx context.Context, realm string, now time.Time) ([]storage.DeniedJWT, error) {
	return list(ctx, s.reader, scanDeniedJWT, `SELECT `+deniedJWTCols+` FROM denied_jwts
		WHERE realm = ? AND expires_at > ? ORDER BY jti`, realm, micros(now))
}

func (s *Store) PurgeDeniedJWTs(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeDeniedJWTs, before)
}

func purgeDeniedJWTs(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM denied_jwts WHERE expires_at < ?`, micros(before)))
}
