package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// sweepLockKey names the transaction-level advisory lock that lets one instance
// sweep at a time: the ASCII of "lk-sweep", distinct from goose's migration lock.
// Advisory locks are per database, so deployments sharing a server do not
// contend for it.
const sweepLockKey int64 = 0x6c6b_2d73_7765_6570

// Sweep runs every purge in one transaction. The instance that gets the
// advisory lock sweeps; the others find it taken and return Skipped at once,
// rather than wait to delete what the first is already deleting. The lock goes
// with the transaction, on commit, rollback or a lost connection.
func (s *Store) Sweep(ctx context.Context, now time.Time, grace time.Duration) (storage.SweepResult, error) {
	var r storage.SweepResult
	before := now.Add(-grace)
	err := pgx.BeginFunc(ctx, s.pool.patient(), func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sweepLockKey).Scan(&locked); err != nil {
			return fmt.Errorf("take the sweep lock: %w", err)
		}
		if !locked {
			r.Skipped = true
			return nil
		}
		n, err := purgeAuthCodes(ctx, tx, now, grace)
		if err != nil {
			return err
		}
		r.AuthCodes = n
		if r.Attempts, err = purgeAttempts(ctx, tx, now); err != nil {
			return err
		}
		// Refresh tokens go with their families, by foreign-key cascade.
		for _, p := range []struct {
			n     *int64
			purge func(context.Context, querier, time.Time) (int64, error)
		}{
			{&r.Families, purgeFamilies},
			{&r.Sessions, purgeSessions},
			{&r.DeniedJWTs, purgeDeniedJWTs},
			{&r.ClientAssertions, purgeClientAssertions},
			{&r.DPoPProofs, purgeDPoPProofs},
			{&r.PushedRequests, purgePushedRequests},
			{&r.DeviceGrants, purgeDeviceGrants},
			{&r.BFFSessions, purgeBFFSessions},
		} {
			n, err := p.purge(ctx, tx, before)
			if err != nil {
				return err
			}
			*p.n = n
		}
		r.Changes, err = purgeChanges(ctx, tx, now.Add(-storage.ChangeRetention))
		return err
	})
	if err != nil {
		return storage.SweepResult{}, fmt.Errorf("sweep: %w", err)
	}
	return r, nil
}

// Count returns the number of stored rows of each kind, all from one snapshot.
func (s *Store) Count(ctx context.Context) (storage.Counts, error) {
	var c storage.Counts
	err := s.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM refresh_families),
			(SELECT count(*) FROM refresh_tokens),
			(SELECT count(*) FROM sessions),
			(SELECT count(*) FROM auth_codes),
			(SELECT count(*) FROM denied_jwts),
			(SELECT count(*) FROM client_assertions),
			(SELECT count(*) FROM attempts),
			(SELECT count(*) FROM dpop_proofs),
			(SELECT count(*) FROM pushed_requests),
			(SELECT count(*) FROM device_grants),
			(SELECT count(*) FROM bff_sessions)`,
	).Scan(&c.Families, &c.RefreshTokens, &c.Sessions, &c.AuthCodes, &c.DeniedJWTs, &c.ClientAssertions, &c.Attempts,
		&c.DPoPProofs, &c.PushedRequests, &c.DeviceGrants, &c.BFFSessions)
	if err != nil {
		return storage.Counts{}, fmt.Errorf("count stored rows: %w", err)
	}
	return c, nil
}
