package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtDB is a connection pool that prepares each query once and reuses the
// statement: SQLite's parser was a quarter of a refresh's CPU when every query was
// parsed anew. It has the methods of *sql.DB the store uses.
type stmtDB struct {
	*sql.DB
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

func (d *stmtDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := d.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (d *stmtDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := d.stmt(ctx, query)
	if err != nil {
		return d.DB.QueryRowContext(ctx, query, args...) // reports the same error through Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (d *stmtDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := d.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// stmtTx is a write transaction that runs its queries through the writer's
// prepared statements once they exist (see preparePending). It has the methods of
// *sql.Tx the store uses.
type stmtTx struct {
	*sql.Tx
	db *stmtDB
}

func (t *stmtTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.db.prepared(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *stmtTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.db.prepared(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func (t *stmtTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.db.prepared(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}
