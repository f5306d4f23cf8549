package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/latchkey/latchkey/storage"
)

// txAttempts bounds how often inTx runs a transaction PostgreSQL aborted.
const txAttempts = 3

// inTx runs fn in a transaction whose statements each get the store's deadline,
// and runs it again when PostgreSQL aborts it for a deadlock or a serialization
// failure (two revocations can lock the same families in different orders): such
// a transaction did nothing, and a second try usually goes through.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.beginFunc(ctx, s.pool, fn)
		if attempt < txAttempts && retryable(err) {
			continue
		}
		return err
	}
}

// beginFunc is pgx.BeginFunc on pool, with fn given a recordingTx: once a
// transaction that recorded changes commits, the notifier is told.
func (s *Store) beginFunc(ctx context.Context, pool deadlinePool, fn func(tx pgx.Tx) error) error {
	var recorded bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rtx := &recordingTx{Tx: tx}
		err := fn(rtx)
		recorded = rtx.recorded
		return err
	})
	if err == nil && recorded {
		s.notifier.wake()
	}
	return err
}

// retryable reports whether err says the transaction was aborted for another's sake.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") // serialization_failure, deadlock_detected
}

// errFn carries the error of an updater's fn out of its transaction, so that it
// is returned as it is, unwrapped.
type errFn struct{ err error }

func (e errFn) Error() string { return e.err.Error() }
func (e errFn) Unwrap() error { return e.err }

// wrapUpdate returns fn's own error as it is, and any other with the context format gives.
func wrapUpdate(err error, format string, args ...any) error {
	var fe errFn
	if errors.As(err, &fe) {
		return fe.err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// appendEvents stores the events through q, in order.
func appendEvents(ctx context.Context, q querier, events []storage.AuditEvent) error {
	for _, e := range events {
		if _, err := appendAudit(ctx, q, e); err != nil {
			return err
		}
	}
	return nil
}
