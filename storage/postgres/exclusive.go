package postgres

import (
	"context"
	"fmt"
)

// Exclusive holds a session-level advisory lock, keyed by the name's hash, on
// one pooled connection while fn runs: every instance on the database sees it,
// and a lost connection releases it.
func (s *Store) Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	lockCtx, cancel := context.WithTimeout(ctx, s.pool.timeout)
	defer cancel()
	conn, err := s.pool.pool.Acquire(lockCtx)
	if err != nil {
		return false, fmt.Errorf("exclusive %q: %w", name, unavailable(err))
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(lockCtx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, "latchkey:"+name).Scan(&locked); err != nil {
		return false, fmt.Errorf("exclusive %q: %w", name, unavailable(err))
	}
	if !locked {
		return false, nil
	}
	defer func() {
		// Unlock on a fresh deadline: fn may have used up ctx. Should this fail,
		// the connection is closed rather than returned to the pool holding the lock.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.pool.timeout)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, "latchkey:"+name); err != nil {
			conn.Conn().Close(unlockCtx)
		}
	}()
	return true, fn(ctx)
}
