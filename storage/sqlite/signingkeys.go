package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const signingKeyCols = `realm, kid, alg, private_key, public_jwk, created_at, sign_from, sign_until, publish_until`

func scanSigningKey(row rowScanner) (storage.SigningKey, error) {
	var k storage.SigningKey
	err := row.Scan(&k.Realm, &k.KID, &k.Alg, &k.PrivateKey, &k.PublicJWK, timeCol{&k.CreatedAt},
		timeCol{&k.SignFrom}, timeCol{&k.SignUntil}, timeCol{&k.PublishUntil})
	return k, err
}

func keyName(realm, kid string) string { return fmt.Sprintf("signing key %q in realm %q", kid, realm) }

func (s *Store) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (`+signingKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.Realm, k.KID, k.Alg, blob(k.PrivateKey), blob(k.PublicJWK), micros(k.CreatedAt),
			micros(k.SignFrom), micros(k.SignUntil), micros(k.PublishUntil))
		if err != nil {
			return mapWriteError(err, keyName(k.Realm, k.KID))
		}
		return recordKeysChanged(ctx, tx, k.Realm, k.KID, k.CreatedAt)
	})
}

func (s *Store) ListSigningKeys(ctx context.Context, realm string) ([]storage.SigningKey, error) {
	return list(ctx, s.reader, scanSigningKey, `SELECT `+signingKeyCols+` FROM signing_keys
		WHERE realm = ? ORDER BY created_at, kid`, realm)
}

func (s *Store) RetireSigningKey(ctx context.Context, realm, kid string, signUntil, publishUntil time.Time, events ...storage.AuditEvent) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `UPDATE signing_keys SET sign_until = ?, publish_until = ? WHERE realm = ? AND kid = ?`,
			micros(signUntil), micros(publishUntil), realm, kid)
		if err := mustChange(res, err, keyName(realm, kid)); err != nil {
			return err
		}
		if err := recordKeysChanged(ctx, tx, realm, kid, signUntil); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
}

func (s *Store) PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error) {
	// A NULL publish_until (no end yet) never compares as before anything.
	return s.exec(ctx, `DELETE FROM signing_keys WHERE publish_until < ?`, micros(before))
}

// recordKeysChanged records a ChangeKeysChanged in the caller's transaction.
func recordKeysChanged(ctx context.Context, tx *stmtTx, realm, kid string, at time.Time) error {
	return recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeKeysChanged, Subject: kid})
}
