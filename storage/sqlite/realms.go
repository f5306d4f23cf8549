package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const realmCols = `name, display_name, signing_alg, access_token_ttl, created_at, updated_at`

func scanRealm(row rowScanner) (storage.Realm, error) {
	var r storage.Realm
	err := row.Scan(&r.Name, &r.DisplayName, &r.SigningAlg, &r.AccessTokenTTL,
		timeCol{&r.CreatedAt}, timeCol{&r.UpdatedAt})
	return r, err
}

func (s *Store) CreateRealm(ctx context.Context, r storage.Realm, events ...storage.AuditEvent) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		if err := createRealm(ctx, tx, r); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
}

func createRealm(ctx context.Context, tx *stmtTx, r storage.Realm) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO realms (`+realmCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Name, r.DisplayName, r.SigningAlg, int64(r.AccessTokenTTL), micros(r.CreatedAt), micros(r.UpdatedAt))
	if err != nil {
		return mapWriteError(err, fmt.Sprintf("realm %q", r.Name))
	}
	return recordRealmChange(ctx, tx, r.Name, storage.ChangeRealmChanged, storage.Updated(r.CreatedAt, r.UpdatedAt), "")
}

// recordRealmChange records a change of the realm itself in the caller's transaction.
func recordRealmChange(ctx context.Context, tx *stmtTx, realm, kind string, at time.Time, reason string) error {
	return recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: kind, Subject: realm, Reason: reason})
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

// UpdateRealm runs fn in the writer's transaction: nothing else writes between
// its read and its write.
func (s *Store) UpdateRealm(ctx context.Context, name string, fn func(r *storage.Realm) ([]storage.AuditEvent, error)) (storage.Realm, error) {
	var out storage.Realm
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		old, err := getRealm(ctx, tx, name)
		if err != nil {
			return err
		}
		r := old
		events, err := fn(&r)
		if err != nil {
			return err
		}
		r.Name, r.CreatedAt = old.Name, old.CreatedAt
		if err := updateRealm(ctx, tx, r); err != nil {
			return err
		}
		out = r
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return storage.Realm{}, err
	}
	return out, nil
}

func updateRealm(ctx context.Context, tx *stmtTx, r storage.Realm) error {
	res, err := tx.ExecContext(ctx, `UPDATE realms SET display_name = ?, signing_alg = ?, access_token_ttl = ?, updated_at = ?
		WHERE name = ?`, r.DisplayName, r.SigningAlg, int64(r.AccessTokenTTL), micros(r.UpdatedAt), r.Name)
	if err := mustChange(res, err, fmt.Sprintf("realm %q", r.Name)); err != nil {
		return err
	}
	return recordRealmChange(ctx, tx, r.Name, storage.ChangeRealmChanged, r.UpdatedAt, "")
}

func (s *Store) DeleteRealm(ctx context.Context, name string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM realms WHERE name = ?`, name)
		if err := mustChange(res, err, fmt.Sprintf("realm %q", name)); err != nil {
			return err
		}
		if err := recordRealmChange(ctx, tx, name, storage.ChangeRealmChanged, at, storage.ReasonDeleted); err != nil {
			return err
		}
		// Clients, users and signing keys went by foreign key; the rest names the
		// realm without one (see the migration). Refresh tokens follow their families.
		for _, table := range []string{"sessions", "auth_codes", "refresh_families", "denied_jwts", "client_assertions", "consents",
			"dpop_proofs", "pushed_requests", "device_grants"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE realm = ?`, name); err != nil {
				return fmt.Errorf("realm %q: deleting %s: %w", name, table, err)
			}
		}
		return appendEvents(ctx, tx, events)
	})
}

// LogoutRealm ends the realm's sessions and families, and deletes its codes not
// yet redeemed, which would otherwise start new families after the logout.
func (s *Store) LogoutRealm(ctx context.Context, realm string, at time.Time, events ...storage.AuditEvent) (sessions, families int64, err error) {
	err = s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		if _, err := getRealm(ctx, tx, realm); err != nil {
			return err
		}
		// One change for the whole realm, however many sessions and families end.
		if err := recordRealmChange(ctx, tx, realm, storage.ChangeRealmLogout, at, storage.ReasonRealmLogout); err != nil {
			return err
		}
		a := micros(at)
		if sessions, err = changed(tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?
			WHERE realm = ? AND revoked_at IS NULL`, a, realm)); err != nil {
			return fmt.Errorf("realm %q: ending sessions: %w", realm, err)
		}
		if families, err = changed(tx.ExecContext(ctx, `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
			WHERE realm = ? AND revoked_at IS NULL`, a, storage.ReasonRealmLogout, realm)); err != nil {
			return fmt.Errorf("realm %q: revoking refresh families: %w", realm, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_codes WHERE realm = ? AND consumed_at IS NULL`, realm); err != nil {
			return fmt.Errorf("realm %q: deleting codes: %w", realm, err)
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return 0, 0, err
	}
	return sessions, families, nil
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
