package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const signingKeyColumns = `realm, kid, alg, private_key, public_jwk, created_at, sign_from, sign_until, publish_until`

// CreateSigningKey stores a new key. The sealed private key is kept as opaque bytes.
func (s *Store) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			k.Realm, k.KID, k.Alg, k.PrivateKey, k.PublicJWK, ts(k.CreatedAt), ts(k.SignFrom), ts(k.SignUntil),
			ts(k.PublishUntil))
		if err != nil {
			return err
		}
		return recordKeysChanged(ctx, tx, k.Realm, k.KID, k.CreatedAt)
	})
	if err != nil {
		return fmt.Errorf("create signing key %q in realm %q: %w", k.KID, k.Realm, classify(err))
	}
	return nil
}

// ListSigningKeys returns all of the realm's keys, oldest first (by CreatedAt, then KID).
func (s *Store) ListSigningKeys(ctx context.Context, realm string) ([]storage.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+signingKeyColumns+` FROM signing_keys WHERE realm = $1 ORDER BY created_at, kid`, realm)
	if err != nil {
		return nil, fmt.Errorf("list signing keys of realm %q: %w", realm, err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.SigningKey, error) {
		var k storage.SigningKey
		err := row.Scan(&k.Realm, &k.KID, &k.Alg, &k.PrivateKey, &k.PublicJWK, nt(&k.CreatedAt), nt(&k.SignFrom),
			nt(&k.SignUntil), nt(&k.PublishUntil))
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list signing keys of realm %q: %w", realm, err)
	}
	return keys, nil
}

// RetireSigningKey sets when the key stops signing and stops being published.
func (s *Store) RetireSigningKey(ctx context.Context, realm, kid string, signUntil, publishUntil time.Time, events ...storage.AuditEvent) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE signing_keys SET sign_until = $3, publish_until = $4 WHERE realm = $1 AND kid = $2`,
			realm, kid, ts(signUntil), ts(publishUntil))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		if err := recordKeysChanged(ctx, tx, realm, kid, signUntil); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("retire signing key %q in realm %q: %w", kid, realm, err)
	}
	return nil
}

// PurgeSigningKeys deletes keys whose PublishUntil is set and before the given time.
func (s *Store) PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error) {
	// A NULL publish_until (no end yet) never compares true: those keys stay.
	tag, err := s.pool.Exec(ctx, `DELETE FROM signing_keys WHERE publish_until < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge signing keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// recordKeysChanged records a ChangeKeysChanged through q.
func recordKeysChanged(ctx context.Context, q querier, realm, kid string, at time.Time) error {
	return recordChange(ctx, q, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeKeysChanged, Subject: kid})
}
