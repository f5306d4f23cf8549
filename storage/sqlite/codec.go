package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// How Go values map to columns, both ways.

// micros is t as unix microseconds, or NULL for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// timeCol scans unix microseconds (or NULL) into a UTC time (or the zero time).
type timeCol struct{ dst *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.dst = time.Time{}
	case int64:
		*c.dst = time.UnixMicro(x).UTC()
	default:
		return fmt.Errorf("time column holds %T, want integer", v)
	}
	return nil
}

// blob is b, or NULL when empty, so that nil comes back nil.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// jsonText encodes a list or map. Marshalling []string or map[string]string
// cannot fail, so the error is dropped; nil encodes as "null" and so comes back nil.
func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonCol scans JSON text into the value dst points to.
type jsonCol struct{ dst any }

func (c jsonCol) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		return fmt.Errorf("JSON column holds %T, want text", v)
	}
	return json.Unmarshal(b, c.dst)
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// querier is what the reader pool and a write transaction have in common.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, q querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// inTx runs fn in a write transaction and returns once that transaction is
// committed, or fn's error (fn's writes then undone). fn is given the context to
// use for its statements.
//
// Writes are committed in groups: every write waiting when the writer connection
// comes free goes into the next transaction; a failing write undoes only itself
// (see commitGroup), and all of them share one commit, and so one
// fsync (synchronous=FULL). A write is answered only after that commit: durability
// is the same as a transaction each, at a fraction of the fsyncs under load.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx *stmtTx) error) error {
	return s.enqueue(&write{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// enqueue hands a write to the writer and waits for its answer. The write must
// start within the store's timeout: one that cannot (the writer is stuck behind a
// lock another process holds, or behind a queue) is abandoned, never made later,
// and its caller gets storage.ErrUnavailable at once. One that has started is
// waited for, since it is then made or not as a whole, and the caller must hear which.
func (s *Store) enqueue(w *write) error {
	ctx, cancel := context.WithTimeout(w.ctx, s.timeout)
	defer cancel()
	w.ctx = ctx
	select {
	case s.writes <- w:
	case <-s.closed:
		return errClosed
	case <-ctx.Done():
		return unavailable(ctx.Err())
	}
	select {
	case err := <-w.done:
		return unavailable(err)
	case <-ctx.Done():
		if w.abandon() {
			return unavailable(ctx.Err())
		}
		return unavailable(<-w.done)
	}
}

// exec runs one writing statement and returns how many rows it changed. It runs
// in a transaction of its own so that, like every write, it takes the write lock
// up front (BEGIN IMMEDIATE), waiting out the busy timeout if another process has it.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.enqueue(&write{ctx: ctx, done: make(chan error, 1), single: true,
		fn: func(ctx context.Context, tx *stmtTx) error {
			res, err := tx.ExecContext(ctx, query, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}})
	return n, err
}

// changed says how many rows a statement changed.
func changed(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
