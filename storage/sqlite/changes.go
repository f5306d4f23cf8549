package sqlite

import (
	"context"
	"sync"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const changeCols = `seq, time, realm, kind, subject, user_id, client_id, until, reason`

// changeInsert is the column list of a recorded change: all but seq, which the table assigns.
const changeInsert = `INSERT INTO changes (time, realm, kind, subject, user_id, client_id, until, reason) `

func scanChange(row rowScanner) (storage.Change, error) {
	var c storage.Change
	err := row.Scan(&c.Seq, timeCol{&c.Time}, &c.Realm, &c.Kind, &c.Subject, &c.UserID, &c.ClientID,
		timeCol{&c.Until}, &c.Reason)
	return c, err
}

// recordChange records c in the caller's transaction.
func recordChange(ctx context.Context, tx *stmtTx, c storage.Change) error {
	_, err := tx.ExecContext(ctx, changeInsert+`VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		micros(c.Time), c.Realm, c.Kind, c.Subject, c.UserID, c.ClientID, micros(c.Until), c.Reason)
	if err == nil {
		tx.recorded = true
	}
	return err
}

// recordEndedSessions records a ChangeSessionEnded for every session not yet
// revoked that matches where (a fixed condition, never caller input), in the
// caller's transaction, before the statement that ends them.
func recordEndedSessions(ctx context.Context, tx *stmtTx, at time.Time, reason, where string, args ...any) error {
	return recordSelected(ctx, tx, `SELECT ?, realm, ?, id, user_id, '', NULL, ? FROM sessions
		WHERE revoked_at IS NULL AND `+where, append([]any{micros(at), storage.ChangeSessionEnded, reason}, args...))
}

// recordRevokedFamilies is recordEndedSessions for refresh families (ChangeFamilyRevoked).
func recordRevokedFamilies(ctx context.Context, tx *stmtTx, at time.Time, reason, where string, args ...any) error {
	return recordSelected(ctx, tx, `SELECT ?, realm, ?, id, user_id, client_id, NULL, ? FROM refresh_families
		WHERE revoked_at IS NULL AND `+where, append([]any{micros(at), storage.ChangeFamilyRevoked, reason}, args...))
}

// recordSelected inserts the changes query (a SELECT of change columns) yields.
func recordSelected(ctx context.Context, tx *stmtTx, query string, args []any) error {
	n, err := changed(tx.ExecContext(ctx, changeInsert+query, args...))
	if n > 0 {
		tx.recorded = true
	}
	return err
}

func (s *Store) ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error) {
	// Only fixed conditions are joined into the query; the caller's values are arguments.
	query, args := `SELECT `+changeCols+` FROM changes WHERE seq > ?`, []any{q.After}
	if q.Realm != "" {
		query, args = query+` AND realm = ?`, append(args, q.Realm)
	}
	if !q.Since.IsZero() {
		query, args = query+` AND time >= ?`, append(args, micros(q.Since))
	}
	query += ` ORDER BY seq`
	if q.Limit > 0 {
		query, args = query+` LIMIT ?`, append(args, q.Limit)
	}
	return list(ctx, s.reader, scanChange, query, args...)
}

func (s *Store) LastChangeSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&seq)
	return seq, err
}

func (s *Store) PurgeChanges(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeChanges, before)
}

func purgeChanges(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	// A change without a time (a write given none) goes at the first purge.
	return changed(tx.ExecContext(ctx, `DELETE FROM changes WHERE time < ? OR time IS NULL`, micros(before)))
}

// WatchChanges wakes the caller after every commit that recorded changes. One
// SQLite file has one Latchkey process (the writer holds its lock), so watching
// this store's own commits sees them all.
func (s *Store) WatchChanges(ctx context.Context, wake func()) error {
	w := &wake
	s.watchers.add(w)
	defer s.watchers.remove(w)
	wake() // the "connection" is new: changes may have come before it
	select {
	case <-ctx.Done():
		return nil
	case <-s.closed:
		return errClosed
	}
}

// watchers are the wake functions of the running WatchChanges calls.
type watchers struct {
	mu sync.Mutex
	m  map[*func()]struct{}
}

func (ws *watchers) add(w *func()) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.m == nil {
		ws.m = map[*func()]struct{}{}
	}
	ws.m[w] = struct{}{}
}

func (ws *watchers) remove(w *func()) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.m, w)
}

// wake calls every watcher; each must not block.
func (ws *watchers) wake() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.m {
		(*w)()
	}
}
