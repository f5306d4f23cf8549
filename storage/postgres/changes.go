package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// changesChannel is the NOTIFY channel that tells the instances sharing the
// database that changes were recorded. A notification carries no payload.
const changesChannel = "latchkey_changes"

const changeColumns = `seq, time, realm, kind, subject, user_id, client_id, until, reason`

// changeInsert starts the statement that records changes: all columns but seq,
// which the table assigns.
const changeInsert = `INSERT INTO changes (time, realm, kind, subject, user_id, client_id, until, reason) `

func scanChange(row scanner) (storage.Change, error) {
	var c storage.Change
	err := row.Scan(&c.Seq, nt(&c.Time), &c.Realm, &c.Kind, &c.Subject, &c.UserID, &c.ClientID, nt(&c.Until), &c.Reason)
	return c, err
}

// recordingTx is a transaction of inTx or beginFunc that notes whether it
// recorded changes, so that other instances are told once it commits.
type recordingTx struct {
	pgx.Tx
	recorded bool
}

// noteRecorded marks q's transaction as one that recorded changes when n > 0.
// Every query that records goes through a recordingTx, or, alone on the pool,
// tells the notifier itself (see Store.recorded).
func noteRecorded(q querier, n int64) {
	if tx, ok := q.(*recordingTx); ok && n > 0 {
		tx.recorded = true
	}
}

// recordChange records c through q, the caller's transaction.
func recordChange(ctx context.Context, q querier, c storage.Change) error {
	_, err := q.Exec(ctx, changeInsert+`VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		ts(c.Time), c.Realm, c.Kind, c.Subject, c.UserID, c.ClientID, ts(c.Until), c.Reason)
	if err != nil {
		return fmt.Errorf("record %s change: %w", c.Kind, err)
	}
	noteRecorded(q, 1)
	return nil
}

// endAndRecord runs end, an UPDATE or DELETE with args that RETURNING realm,
// id, user_id, client_id (text) and revoked_at (as it was before: NULL for a row
// it ends) of the rows it touches, and in the same statement records a change of
// kind for each row it ended, at at for reason. It says how many rows it ended.
// One statement: the rows a concurrent revocation ended first are not ended, nor
// recorded, twice.
func endAndRecord(ctx context.Context, q querier, kind string, at time.Time, reason, end string, args ...any) (int64, error) {
	n := len(args)
	tag, err := q.Exec(ctx, fmt.Sprintf(`WITH ended AS (%s) `+changeInsert+`
		SELECT $%d, realm, $%d, id, user_id, client_id, NULL, $%d FROM ended WHERE revoked_at IS NULL`, end, n+1, n+2, n+3),
		append(args, ts(at), kind, reason)...)
	if err != nil {
		return 0, err
	}
	noteRecorded(q, tag.RowsAffected())
	return tag.RowsAffected(), nil
}

// ListChanges returns the changes q selects, in Seq order.
func (s *Store) ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error) {
	// Only fixed conditions are joined into the query; the caller's values are arguments.
	query, args := `SELECT `+changeColumns+` FROM changes WHERE seq > $1`, []any{q.After}
	if q.Realm != "" {
		args = append(args, q.Realm)
		query += fmt.Sprintf(` AND realm = $%d`, len(args))
	}
	if !q.Since.IsZero() {
		args = append(args, ts(q.Since))
		query += fmt.Sprintf(` AND time >= $%d`, len(args))
	}
	query += ` ORDER BY seq`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		query += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Change, error) { return scanChange(row) })
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	return changes, nil
}

// LastChangeSeq returns the highest Seq recorded, 0 if none.
func (s *Store) LastChangeSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last change: %w", err)
	}
	return seq, nil
}

// PurgeChanges deletes changes recorded before the given time.
func (s *Store) PurgeChanges(ctx context.Context, before time.Time) (int64, error) {
	return purgeChanges(ctx, s.pool, before)
}

func purgeChanges(ctx context.Context, q querier, before time.Time) (int64, error) {
	// A change without a time (a write given none) goes at the first purge.
	tag, err := q.Exec(ctx, `DELETE FROM changes WHERE time < $1 OR time IS NULL`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge changes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// notifier tells the other instances, with one NOTIFY, that changes were
// recorded. Writers only ask it to (wake, which never blocks): NOTIFY inside a
// write's transaction would take PostgreSQL's global notification lock at its
// commit, serialising the commits of every writer, the refresh rotations
// among them. Sent from here, outside any write, any number of requests made
// while one NOTIFY is on its way collapse into the next.
type notifier struct {
	pending chan struct{} // holds one request at most
	stop    chan struct{}
	done    chan struct{}
}

func newNotifier() *notifier {
	return &notifier{pending: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// wake asks for a NOTIFY soon.
func (n *notifier) wake() {
	select {
	case n.pending <- struct{}{}:
	default: // one is pending already: it will cover this one too
	}
}

// notifyBackoff bounds how long the notifier waits before trying a failed NOTIFY again.
const notifyBackoff = 5 * time.Second

// run sends a NOTIFY for every batch of requests until stop is closed, then one
// more if a request is still pending.
func (n *notifier) run(pool deadlinePool) {
	defer close(n.done)
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-n.stop:
			select {
			case <-n.pending:
				_ = notify(context.Background(), pool)
			default:
			}
			return
		case <-n.pending:
		}
		if err := notify(context.Background(), pool); err != nil {
			// Try again later: the listeners must hear of the change.
			n.wake()
			select {
			case <-n.stop:
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, notifyBackoff)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

func notify(ctx context.Context, pool deadlinePool) error {
	_, err := pool.Exec(ctx, `SELECT pg_notify($1, '')`, changesChannel)
	return err
}

// Close stops the notifier once its last request is sent.
func (n *notifier) close() {
	close(n.stop)
	<-n.done
}

// recorded tells the notifier that a statement run alone on the pool recorded
// n changes, now committed.
func (s *Store) recorded(n int64) {
	if n > 0 {
		s.notifier.wake()
	}
}

// listenBackoff bounds the wait between attempts to (re)connect the listener.
const listenBackoff = 5 * time.Second

// errStoreClosed is WatchChanges' error when the store is closed under it.
var errStoreClosed = errors.New("postgres: store is closed")

// WatchChanges listens on a connection of its own, outside the pool, so the
// pool's budget is left to requests. It reconnects, with backoff, whenever the
// connection drops, and wakes the caller after every (re)connection.
func (s *Store) WatchChanges(ctx context.Context, wake func()) error {
	s.watching.Add(1)
	defer s.watching.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.notifier.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := 50 * time.Millisecond
	for {
		err := s.listen(ctx, wake, func() { backoff = 50 * time.Millisecond })
		select {
		case <-s.notifier.stop:
			return errStoreClosed
		default:
		}
		if ctx.Err() != nil {
			return nil
		}
		_ = err // the connection dropped or could not be made: try again
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoff)
	}
}

// listen connects, LISTENs, wakes the caller and then once per notification,
// until the connection fails or ctx ends. connected is called once it listens.
func (s *Store) listen(ctx context.Context, wake, connected func()) error {
	cctx, cancel := context.WithTimeout(ctx, s.listenConfig.ConnectTimeout+s.pool.timeout)
	conn, err := pgx.ConnectConfig(cctx, s.listenConfig)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), s.pool.timeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	lctx, cancel := context.WithTimeout(ctx, s.pool.timeout)
	_, err = conn.Exec(lctx, `LISTEN `+changesChannel)
	cancel()
	if err != nil {
		return err
	}
	connected()
	wake() // changes may have come while there was no connection
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}
