package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/latchkey/latchkey/storage"
)

const realmCols = `name, display_name, signing_alg, access_token_ttl, created_at, updated_at`

func scanRealm(row rowScanner) (storage.Realm, error) {
	var r storage.Realm
	err := row.Scan(&r.Name, &r.DisplayName, &r.SigningAlg, &r.AccessTokenTTL,
		timeCol{&r.CreatedAt}, timeCol{&r.UpdatedAt})
	return r, err
}

func (s *Store) CreateRealm(ctx context.Context, r storage.Realm) error {
	_, err := s.exec(ctx, `INSERT INTO realms (`+realmCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Name, r.DisplayName, r.SigningAlg, int64(r.AccessTokenTTL), micros(r.CreatedAt), micros(r.UpdatedAt))
	return mapWriteError(err, fmt.Sprintf("realm %q", r.Name))
}

func (s *Store) GetRealm(ctx context.Context, name string) (storage.Realm, error) {
	return getRealm(ctx, s.reader, name)
}

func getRealm(ctx context.Context, q querier, name string) (storage.Realm, error) {
	r, err := scanRealm(q.QueryRowContext(ctx, `SELECT `+realmCols+` FROM realms WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("realm %q: %w", name, storage.ErrNotFound)
	}
	return r, err
}

func (s *Store) ListRealms(ctx context.Context) ([]storage.Realm, error) {
	return list(ctx, s.reader, scanRealm, `SELECT `+realmCols+` FROM realms ORDER BY name`)
}

func (s *Store) UpdateRealm(ctx context.Context, r storage.Realm) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error { return updateRealm(ctx, tx, r) })
}

func updateRealm(ctx context.Context, tx *stmtTx, r storage.Realm) error {
	res, err := tx.ExecContext(ctx, `UPDATE realms SET display_name = ?, signing_alg = ?, access_token_ttl = ?, updated_at = ?
		WHERE name = ?`, r.DisplayName, r.SigningAlg, int64(r.AccessTokenTTL), micros(r.UpdatedAt), r.Name)
	return mustChange(res, err, fmt.Sprintf("realm %q", r.Name))
}

func (s *Store) DeleteRealm(ctx context.Context, name string) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM realms WHERE name = ?`, name)
		if err := mustChange(res, err, fmt.Sprintf("realm %q", name)); err != nil {
			return err
		}
		// Clients, users and signing keys went by foreign key; the rest names the
		// realm without one (see the migration). Refresh tokens follow their families.
		for _, table := range []string{"sessions", "auth_codes", "refresh_families", "denied_jwts", "client_assertions", "consents"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE realm = ?`, name); err != nil {
				return fmt.Errorf("realm %q: deleting %s: %w", name, table, err)
			}
		}
		return nil
	})
}

// mustChange turns "no row changed" into ErrNotFound.
func mustChange(res sql.Result, err error, what string) error {
	if err != nil {
		return mapWriteError(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	}
	return nil
}
