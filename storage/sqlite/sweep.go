package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// purgeFunc deletes one kind's rows that expired or were revoked before the
// given time, and says how many.
type purgeFunc func(ctx context.Context, tx *stmtTx, before time.Time) (int64, error)

// purge runs one purge in a write transaction of its own.
func (s *Store) purge(ctx context.Context, p purgeFunc, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		var err error
		n, err = p(ctx, tx, before)
		return err
	})
	return n, err
}

// Sweep runs every purge in one write transaction. It never skips: sweeps, like
// all writes, take turns on the writer connection (and, across processes, on
// the file's write lock), so a second one waits and then finds little to do.
func (s *Store) Sweep(ctx context.Context, now time.Time, grace time.Duration) (storage.SweepResult, error) {
	var r storage.SweepResult
	before := now.Add(-grace)
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		n, err := purgeAuthCodes(ctx, tx, now, grace)
		if err != nil {
			return fmt.Errorf("purge authorization codes: %w", err)
		}
		r.AuthCodes = n
		if r.Attempts, err = purgeAttempts(ctx, tx, now); err != nil {
			return fmt.Errorf("purge attempts: %w", err)
		}
		// Refresh tokens go with their families, by foreign key.
		for _, p := range []struct {
			what  string
			n     *int64
			purge purgeFunc
		}{
			{"refresh families", &r.Families, purgeFamilies},
			{"sessions", &r.Sessions, purgeSessions},
			{"deny-list", &r.DeniedJWTs, purgeDeniedJWTs},
			{"client assertions", &r.ClientAssertions, purgeClientAssertions},
			{"DPoP proofs", &r.DPoPProofs, purgeDPoPProofs},
			{"pushed requests", &r.PushedRequests, purgePushedRequests},
			{"device grants", &r.DeviceGrants, purgeDeviceGrants},
			{"BFF sessions", &r.BFFSessions, purgeBFFSessions},
		} {
			n, err := p.purge(ctx, tx, before)
			if err != nil {
				return fmt.Errorf("purge %s: %w", p.what, err)
			}
			*p.n = n
		}
		if r.Changes, err = purgeChanges(ctx, tx, now.Add(-storage.ChangeRetention)); err != nil {
			return fmt.Errorf("purge changes: %w", err)
		}
		return nil
	})
	if err != nil {
		return storage.SweepResult{}, fmt.Errorf("sweep: %w", err)
	}
	return r, nil
}

// Count returns the number of stored rows of each kind. One statement reads
// one snapshot, so the numbers agree with each other.
func (s *Store) Count(ctx context.Context) (storage.Counts, error) {
	var c storage.Counts
	err := s.reader.QueryRowContext(ctx, `
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
