package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/latchkey/latchkey/storage"
)

// deadlinePool is the connection pool as the store's queries see it: every
// statement, and the wait for a connection before it, gets the store's timeout
// as its deadline, and a database that cannot be reached or does not answer in
// time comes back as storage.ErrUnavailable. It is the one place both happen.
//
// A statement past its deadline has its connection closed under it (pgx's
// default on a cancelled context), so a transaction it was in is never
// committed: the server rolls it back when it sees the connection go.
type deadlinePool struct {
	pool    *pgxpool.Pool
	timeout time.Duration
}

func (p deadlinePool) Close() { p.pool.Close() }

// patient is the pool for background and start-up work, the sweep and the seed:
// bounded too, but by a minute at least, as a sweep of a large backlog, or a seed
// waiting for another instance's, may rightly take longer than a request may.
func (p deadlinePool) patient() deadlinePool {
	return deadlinePool{pool: p.pool, timeout: max(20*p.timeout, time.Minute)}
}

func (p deadlinePool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	tag, err := p.pool.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (p deadlinePool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return nil, unavailable(err)
	}
	return deadlineRows{Rows: rows, cancel: cancel}, nil
}

func (p deadlinePool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	return deadlineRow{row: p.pool.QueryRow(ctx, sql, args...), cancel: cancel}
}

// Begin starts a transaction whose statements each get the timeout (pgx.BeginFunc
// takes it).
func (p deadlinePool) Begin(ctx context.Context) (pgx.Tx, error) {
	bctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	tx, err := p.pool.Begin(bctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return deadlineTx{Tx: tx, timeout: p.timeout}, nil
}

// deadlineTx gives each statement of a transaction, and its commit or rollback,
// the timeout. The store uses no other method of pgx.Tx.
type deadlineTx struct {
	pgx.Tx
	timeout time.Duration
}

func (t deadlineTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	tag, err := t.Tx.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (t deadlineTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	rows, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return nil, unavailable(err)
	}
	return deadlineRows{Rows: rows, cancel: cancel}, nil
}

func (t deadlineTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	return deadlineRow{row: t.Tx.QueryRow(ctx, sql, args...), cancel: cancel}
}

func (t deadlineTx) Commit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return unavailable(t.Tx.Commit(ctx))
}

func (t deadlineTx) Rollback(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return unavailable(t.Tx.Rollback(ctx))
}

// deadlineRow ends its statement's deadline once scanned.
type deadlineRow struct {
	row    pgx.Row
	cancel context.CancelFunc
}

func (r deadlineRow) Scan(dest ...any) error {
	defer r.cancel()
	return unavailable(r.row.Scan(dest...))
}

// deadlineRows ends its statement's deadline once closed.
type deadlineRows struct {
	pgx.Rows
	cancel context.CancelFunc
}

func (r deadlineRows) Close() {
	r.Rows.Close()
	r.cancel()
}

func (r deadlineRows) Err() error { return unavailable(r.Rows.Err()) }

// unavailable marks err with storage.ErrUnavailable when it says the database
// could not be reached, went away, or did not answer in time; other errors (the
// server's answers, the caller's own cancellation) pass through.
func unavailable(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if !unavailableCode(pgErr.Code) {
			return err
		}
	} else {
		var connectErr *pgconn.ConnectError
		var netErr net.Error
		if !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err) && !errors.As(err, &connectErr) &&
			!errors.As(err, &netErr) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
			!errors.Is(err, pgconn.ErrConnClosed) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// unavailableCode reports whether a SQLSTATE says the server cannot serve now,
// rather than that the statement was wrong.
func unavailableCode(code string) bool {
	switch code {
	case "53300", // too_many_connections
		"55P03", // lock_not_available
		"57014", // query_canceled (statement_timeout)
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03": // cannot_connect_now
		return true
	}
	return strings.HasPrefix(code, "08") // connection_exception
}
