package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const realmColumns = `name, display_name, signing_alg, access_token_ttl, created_at, updated_at`

func scanRealm(row scanner) (storage.Realm, error) {
	var r storage.Realm
	var ttl int64
	err := row.Scan(&r.Name, &r.DisplayName, &r.SigningAlg, &ttl, nt(&r.CreatedAt), nt(&r.UpdatedAt))
	r.AccessTokenTTL = time.Duration(ttl)
	return r, err
}

// CreateRealm stores a new realm.
func (s *Store) CreateRealm(ctx context.Context, r storage.Realm, events ...storage.AuditEvent) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := insertRealm(ctx, tx, r); err != nil {
			return classify(err)
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("create realm %q: %w", r.Name, err)
	}
	return nil
}

func insertRealm(ctx context.Context, q querier, r storage.Realm) error {
	_, err := q.Exec(ctx, `INSERT INTO realms (`+realmColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.Name, r.DisplayName, r.SigningAlg, int64(r.AccessTokenTTL), ts(r.CreatedAt), ts(r.UpdatedAt))
	if err != nil {
		return err
	}
	return recordRealmChange(ctx, q, r.Name, storage.ChangeRealmChanged, storage.Updated(r.CreatedAt, r.UpdatedAt), "")
}

// recordRealmChange records a change of the realm itself through q.
func recordRealmChange(ctx context.Context, q querier, realm, kind string, at time.Time, reason string) error {
	return recordChange(ctx, q, storage.Change{Time: at, Realm: realm, Kind: kind, Subject: realm, Reason: reason})
}

// GetRealm returns the realm.
func (s *Store) GetRealm(ctx context.Context, name string) (storage.Realm, error) {
	r, err := getRealm(ctx, s.pool, name)
	if err != nil {
		return storage.Realm{}, fmt.Errorf("realm %q: %w", name, notFound(err))
	}
	return r, nil
}

func getRealm(ctx context.Context, q querier, name string) (storage.Realm, error) {
	return scanRealm(q.QueryRow(ctx, `SELECT `+realmColumns+` FROM realms WHERE name = $1`, name))
}

// ListRealms returns every realm, ordered by name.
func (s *Store) ListRealms(ctx context.Context) ([]storage.Realm, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+realmColumns+` FROM realms ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list realms: %w", err)
	}
	realms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Realm, error) { return scanRealm(row) })
	if err != nil {
		return nil, fmt.Errorf("list realms: %w", err)
	}
	return realms, nil
}

// UpdateRealm locks the realm's row (SELECT ... FOR UPDATE) for the read, so a
// concurrent update waits for this one and then reads what it wrote.
func (s *Store) UpdateRealm(ctx context.Context, name string, fn func(r *storage.Realm) ([]storage.AuditEvent, error)) (storage.Realm, error) {
	var out storage.Realm
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		old, err := scanRealm(tx.QueryRow(ctx, `SELECT `+realmColumns+` FROM realms WHERE name = $1 FOR UPDATE`, name))
		if err != nil {
			return notFound(err)
		}
		r := old
		events, err := fn(&r)
		if err != nil {
			return errFn{err}
		}
		r.Name, r.CreatedAt = old.Name, old.CreatedAt
		if _, err := updateRealm(ctx, tx, r); err != nil {
			return err
		}
		out = r
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return storage.Realm{}, wrapUpdate(err, "update realm %q", name)
	}
	return out, nil
}

func updateRealm(ctx context.Context, q querier, r storage.Realm) (int64, error) {
	tag, err := q.Exec(ctx, `
		UPDATE realms SET display_name = $2, signing_alg = $3, access_token_ttl = $4, updated_at = $5
		WHERE name = $1`,
		r.Name, r.DisplayName, r.SigningAlg, int64(r.AccessTokenTTL), ts(r.UpdatedAt))
	if err != nil || tag.RowsAffected() == 0 {
		return 0, err
	}
	return tag.RowsAffected(), recordRealmChange(ctx, q, r.Name, storage.ChangeRealmChanged, r.UpdatedAt, "")
}

// DeleteRealm deletes the realm and everything in it. Clients, users and keys
// go by foreign-key cascade; the rest has no foreign key and is deleted here,
// in the same transaction. The audit trail is kept.
func (s *Store) DeleteRealm(ctx context.Context, name string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM realms WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		if err := recordRealmChange(ctx, tx, name, storage.ChangeRealmChanged, at, storage.ReasonDeleted); err != nil {
			return err
		}
		for _, table := range []string{"sessions", "auth_codes", "refresh_families", "denied_jwts", "client_assertions", "consents",
			"dpop_proofs", "pushed_requests", "device_grants"} {
			// table comes from the fixed list above, never from input.
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE realm = $1`, name); err != nil {
				return err
			}
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("delete realm %q: %w", name, err)
	}
	return nil
}

// LogoutRealm ends the realm's sessions and families, and deletes its codes not
// yet redeemed, which would otherwise start new families after the logout. It
// takes the realm's row lock (FOR SHARE), so the realm cannot be deleted under it.
func (s *Store) LogoutRealm(ctx context.Context, realm string, at time.Time, events ...storage.AuditEvent) (sessions, families int64, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM realms WHERE name = $1 FOR SHARE`, realm).Scan(&one); err != nil {
			return notFound(err)
		}
		// One change for the whole realm, however many sessions and families end.
		if err := recordRealmChange(ctx, tx, realm, storage.ChangeRealmLogout, at, storage.ReasonRealmLogout); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE realm = $1 AND revoked_at IS NULL`, realm, ts(at))
		if err != nil {
			return fmt.Errorf("ending sessions: %w", err)
		}
		sessions = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3
			WHERE realm = $1 AND revoked_at IS NULL`, realm, ts(at), storage.ReasonRealmLogout)
		if err != nil {
			return fmt.Errorf("revoking refresh families: %w", err)
		}
		families = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM auth_codes WHERE realm = $1 AND consumed_at IS NULL`, realm); err != nil {
			return fmt.Errorf("deleting codes: %w", err)
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("log out realm %q: %w", realm, err)
	}
	return sessions, families, nil
}
