package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// maxGroup bounds how many writes share one transaction.
const maxGroup = 256

var errClosed = errors.New("sqlite: store is closed")

// A write's state: queued until the writer starts it or its caller abandons it,
// whichever comes first; then never the other.
const (
	queued int32 = iota
	started
	abandoned
)

// write is one write transaction waiting for the writer.
type write struct {
	ctx   context.Context
	fn    func(ctx context.Context, tx *stmtTx) error
	done  chan error
	err   error
	state atomic.Int32
	// single marks a write of one statement: SQLite undoes a failed statement by
	// itself, so it needs no savepoint (two fewer statements per write).
	single bool
	// rotation marks a refresh-token rotation: rotations arrive in bursts from
	// many clients at once, and are worth a short wait for company (see linger).
	rotation bool
}

// start claims the write for the writer, unless its caller gave up on it (its
// context is done, or it abandoned the write). A write run again (see
// commitGroup) is already started.
func (w *write) start() bool {
	if w.state.Load() == started {
		return true
	}
	if w.ctx.Err() != nil {
		w.abandon()
		return false
	}
	return w.state.CompareAndSwap(queued, started)
}

// abandon withdraws the write, unless the writer has started it, and says
// whether the write is withdrawn (by this call or before).
func (w *write) abandon() bool {
	return w.state.CompareAndSwap(queued, abandoned) || w.state.Load() == abandoned
}

// maxLinger bounds how long the writer waits for more rotations before committing.
const maxLinger = time.Millisecond

// writeLoop is the only user of the writer connection once the store is open. It
// takes the writes that are waiting, runs them in one transaction and commits.
func (s *Store) writeLoop() {
	defer close(s.loopDone)
	timer := time.NewTimer(maxLinger)
	timer.Stop()
	lastRotations := 0
	for {
		var first *write
		select {
		case first = <-s.writes:
		case <-s.closed:
			return
		}
		group := []*write{first}
	collect:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break collect
			}
		}
		group, lastRotations = s.linger(group, lastRotations, timer)
		s.commitGroup(group)
		s.writerStmts.preparePending(context.Background())
	}
}

// linger holds back a group that has a rotation in it while the last group had
// several, for at most maxLinger, until it has as many rotations as that group (it
// grows when more are already waiting, which the writer takes first):
// every commit costs an fsync, and the handlers of concurrent refreshes reach the
// writer one by one, after their reads and signatures. A lone write, or a lone
// refreshing client, never waits. It returns the group and its rotation count.
func (s *Store) linger(group []*write, lastRotations int, timer *time.Timer) ([]*write, int) {
	rotations := 0
	for _, w := range group {
		if w.rotation {
			rotations++
		}
	}
	if rotations == 0 || lastRotations < 2 || rotations >= lastRotations {
		return group, rotations
	}
	timer.Reset(maxLinger)
	defer timer.Stop()
	for len(group) < maxGroup && rotations < lastRotations {
		select {
		case w := <-s.writes:
			group = append(group, w)
			if w.rotation {
				rotations++
			}
		case <-timer.C:
			return group, rotations
		case <-s.closed:
			return group, rotations
		}
	}
	return group, rotations
}

// commitGroup runs a group of writes in one transaction and answers each once the
// transaction is committed.
//
// It first runs them bare: a one-statement write that fails is undone by SQLite
// alone, and nearly every write succeeds. Only when a write of several statements
// fails, and may have left some of them done, is the transaction rolled back and
// the group run again with each write in a savepoint of its own, so that it undoes
// only itself. Two statements fewer per write on the common path (SAVEPOINT and
// RELEASE); writes are closures over their arguments, so running one twice is safe.
func (s *Store) commitGroup(group []*write) {
	if !s.tryGroup(group, false) {
		s.tryGroup(group, true)
	}
}

// tryGroup runs and commits the group, answering every write, and says true; or,
// without savepoints, rolls back at the first failed write of several statements,
// answers none, and says false.
func (s *Store) tryGroup(group []*write, savepoints bool) bool {
	// The writes' own contexts must not reach the connection: a cancelled statement
	// can make SQLite roll back the whole transaction, others' writes with it. A
	// write whose caller gave up before its turn is skipped instead, and one that
	// starts is waited for by its caller (see enqueue).
	ctx := context.WithoutCancel(group[0].ctx)
	sqlTx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		for _, w := range group {
			w.done <- err
		}
		return true
	}
	tx := &stmtTx{Tx: sqlTx, db: s.writerStmts}
	for _, w := range group {
		if !w.start() {
			w.err = w.ctx.Err() // the caller's context is done: it gave up
			continue
		}
		if !savepoints && !w.single {
			if w.err = run(ctx, tx, w.fn); w.err != nil {
				tx.Rollback()
				return false
			}
			continue
		}
		if err := s.runInSavepoint(ctx, tx, w); err != nil {
			// The transaction itself is broken: no write of the group stands.
			tx.Rollback()
			for _, w := range group {
				w.done <- fmt.Errorf("sqlite: write group failed: %w", err)
			}
			return true
		}
	}
	err = tx.Commit()
	if err == nil && tx.recorded {
		s.watchers.wake()
	}
	for _, w := range group {
		if w.err == nil {
			w.err = err
		}
		w.done <- w.err
	}
	return true
}

// runInSavepoint runs one write of a group inside a savepoint, undoing it alone if
// it fails (w.err). The error returned is the transaction's own, fatal to the group.
func (s *Store) runInSavepoint(ctx context.Context, tx *stmtTx, w *write) error {
	if w.single {
		w.err = run(ctx, tx, w.fn)
		// A constraint error undoes just its statement; anything else (I/O, a full
		// disk) may have ended the transaction, and with it the group.
		if w.err != nil && sqliteCode(w.err)&0xff != sqlite3.SQLITE_CONSTRAINT {
			return w.err
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
		return err
	}
	if w.err = run(ctx, tx, w.fn); w.err != nil {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, "RELEASE w")
	return err
}

// run calls fn, turning a panic into an error so one bad write cannot stop the writer.
func run(ctx context.Context, tx *stmtTx, fn func(ctx context.Context, tx *stmtTx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: write panicked: %v", p)
		}
	}()
	return fn(ctx, tx)
}
