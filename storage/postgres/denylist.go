package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// DenyJWT adds an entry; adding one twice keeps the first.
func (s *Store) DenyJWT(ctx context.Context, d storage.DeniedJWT) error {
	// DO NOTHING keeps the first entry, and only a new one is recorded, in the
	// same statement.
	tag, err := s.pool.Exec(ctx, `
		WITH denied AS (
			INSERT INTO denied_jwts (realm, jti, expires_at, created_at, reason) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (realm, jti) DO NOTHING
			RETURNING realm, jti, expires_at, created_at, reason)
		`+changeInsert+`SELECT created_at, realm, $6, jti, '', '', expires_at, reason FROM denied`,
		d.Realm, d.JTI, ts(d.ExpiresAt), ts(d.CreatedAt), d.Reason, storage.ChangeTokenDenied)
	if err != nil {
		return fmt.Errorf("deny JWT %q in realm %q: %w", d.JTI, d.Realm, err)
	}
	s.recorded(tag.RowsAffected())
	return nil
}

// IsJWTDenied reports whether the realm's jti is on the list.
func (s *Store) IsJWTDenied(ctx context.Context, realm, jti string) (bool, error) {
	var denied bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM denied_jwts WHERE realm = $1 AND jti = $2)`,
		realm, jti).Scan(&denied)
	if err != nil {
		return false, fmt.Errorf("check deny-list for JWT %q in realm %q: %w", jti, realm, err)
	}
	return denied, nil
}

// ListDeniedJWTs returns the realm's entries not yet expired at now, ordered by JTI.
func (s *Store) ListDeniedJWTs(ctx context.Context, realm string, now time.Time) ([]storage.DeniedJWT, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT realm, jti, expires_at, created_at, reason FROM denied_jwts
		WHERE realm = $1 AND expires_at > $2
		ORDER BY jti`, realm, ts(now))
	if err != nil {
		return nil, fmt.Errorf("list deny-list of realm %q: %w", realm, err)
	}
	denied, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.DeniedJWT, error) {
		var d storage.DeniedJWT
		err := row.Scan(&d.Realm, &d.JTI, nt(&d.ExpiresAt), nt(&d.CreatedAt), &d.Reason)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list deny-list of realm %q: %w", realm, err)
	}
	return denied, nil
}

// PurgeDeniedJWTs deletes entries that expired before the given time.
func (s *Store) PurgeDeniedJWTs(ctx context.Context, before time.Time) (int64, error) {
	return purgeDeniedJWTs(ctx, s.pool, before)
}

func purgeDeniedJWTs(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM denied_jwts WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge deny-list: %w", err)
	}
	return tag.RowsAffected(), nil
}
