package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// stmtDB is a connection pool that prepares each query once and reuses the
// statement: SQLite's parser was a quarter of a refresh's CPU when every query was
// parsed anew. It has the methods of *sql.DB the store uses.
//
// It is also where a read gets its deadline: with a timeout set, each query must
// be answered within it, or its error is storage.ErrUnavailable.
type stmtDB struct {
	*sql.DB
	timeout time.Duration // 0: no deadline of its own
	mu      sync.RWMutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool // writer queries to prepare once the connection is free
}

func newStmtDB(db *sql.DB) *stmtDB {
	return &stmtDB{DB: db, stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// prepared returns the statement for query if it has been prepared; otherwise it
// notes the query for preparePending.
func (d *stmtDB) prepared(query string) *sql.Stmt {
	d.mu.RLock()
	st := d.stmts[query]
	d.mu.RUnlock()
	if st == nil {
		d.mu.Lock()
		d.pending[query] = true
		d.mu.Unlock()
	}
	return st
}

// preparePending prepares the queries noted by prepared. The writer's only
// connection is busy inside a transaction while writes run, so its statements are
// prepared between transactions, here.
func (d *stmtDB) preparePending(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for q := range d.pending {
		if st, err := d.DB.PrepareContext(ctx, q); err == nil {
			d.stmts[q] = st
		}
		delete(d.pending, q)
	}
}

// stmt returns the prepared statement for query, preparing it the first time.
func (d *stmtDB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	d.mu.RLock()
	st := d.stmts[query]
	d.mu.RUnlock()
	if st != nil {
		return st, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st := d.stmts[query]; st != nil {
		return st, nil
	}
	st, err := d.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	d.stmts[query] = st
	return st, nil
}

// deadline gives ctx the pool's timeout.
func (d *stmtDB) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d.timeout)
}

func (d *stmtDB) QueryContext(ctx context.Context, query string, args ...any) (rows, error) {
	ctx, cancel := d.deadline(ctx)
	st, err := d.stmt(ctx, query)
	if err != nil {
		cancel()
		return rows{}, unavailable(err)
	}
	r, err := st.QueryContext(ctx, args...)
	if err != nil {
		cancel()
		return rows{}, unavailable(err)
	}
	return rows{Rows: r, cancel: cancel}, nil
}

func (d *stmtDB) QueryRowContext(ctx context.Context, query string, args ...any) row {
	ctx, cancel := d.deadline(ctx)
	st, err := d.stmt(ctx, query)
	if err != nil {
		// Reports the same error through Scan.
		return row{Row: d.DB.QueryRowContext(ctx, query, args...), cancel: cancel}
	}
	return row{Row: st.QueryRowContext(ctx, args...), cancel: cancel}
}

func (d *stmtDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := d.deadline(ctx)
	defer cancel()
	st, err := d.stmt(ctx, query)
	if err != nil {
		return nil, unavailable(err)
	}
	res, err := st.ExecContext(ctx, args...)
	return res, unavailable(err)
}

// row is a *sql.Row whose deadline ends once it is scanned.
type row struct {
	*sql.Row
	cancel context.CancelFunc // nil: no deadline of its own
}

func (r row) Scan(dest ...any) error {
	if r.cancel != nil {
		defer r.cancel()
	}
	return unavailable(r.Row.Scan(dest...))
}

// rows is a *sql.Rows whose deadline ends once it is closed.
type rows struct {
	*sql.Rows
	cancel context.CancelFunc // nil: no deadline of its own
}

func (r rows) Close() error {
	if r.cancel != nil {
		defer r.cancel()
	}
	return r.Rows.Close()
}

func (r rows) Err() error { return unavailable(r.Rows.Err()) }

// stmtTx is a write transaction that runs its queries through the writer's
// prepared statements once they exist (see preparePending). It has the methods of
// *sql.Tx the store uses.
type stmtTx struct {
	*sql.Tx
	db *stmtDB
	// recorded says a write of the transaction recorded changes (see
	// recordChange), so watchers are woken once it commits.
	recorded bool
}

func (t *stmtTx) QueryContext(ctx context.Context, query string, args ...any) (rows, error) {
	var r *sql.Rows
	var err error
	if st := t.db.prepared(query); st != nil {
		r, err = t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	} else {
		r, err = t.Tx.QueryContext(ctx, query, args...)
	}
	return rows{Rows: r}, err
}

func (t *stmtTx) QueryRowContext(ctx context.Context, query string, args ...any) row {
	if st := t.db.prepared(query); st != nil {
		return row{Row: t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)}
	}
	return row{Row: t.Tx.QueryRowContext(ctx, query, args...)}
}

func (t *stmtTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.db.prepared(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}
