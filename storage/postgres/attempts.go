package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// errNotAdmitted rolls back a transaction that changes nothing.
var errNotAdmitted = errors.New("nothing to change")

// GetAttempts reads every key's record in one statement.
func (s *Store) GetAttempts(ctx context.Context, now time.Time, keys ...storage.AttemptKey) ([]storage.Attempts, error) {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Key
	}
	rows, err := s.pool.Query(ctx, `SELECT key, failures, last_failure FROM attempts WHERE key = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("get attempts: %w", err)
	}
	found := map[string]storage.Attempts{}
	var key string
	var a storage.Attempts
	_, err = pgx.ForEachRow(rows, []any{&key, &a.Failures, nt(&a.Last)}, func() error {
		found[key] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get attempts: %w", err)
	}
	out := make([]storage.Attempts, len(keys))
	for i, k := range keys {
		out[i] = found[k.Key].At(k.Limit, now)
	}
	return out, nil
}

// sortedKeys is keys in key order without repeats: rows are locked in that
// order, so two callers never wait on each other.
func sortedKeys(keys []storage.AttemptKey) []storage.AttemptKey {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b storage.AttemptKey) int { return strings.Compare(a.Key, b.Key) })
	return slices.CompactFunc(keys, func(a, b storage.AttemptKey) bool { return a.Key == b.Key })
}

// lockAttemptRows locks the keys' rows for the transaction, making those
// missing first when create is set (a caller that loses the race to make one
// waits for the winner's commit, then locks it). found says which exist.
func lockAttemptRows(ctx context.Context, tx pgx.Tx, keys []storage.AttemptKey, now time.Time, create bool) ([]storage.AttemptRow, []bool, error) {
	rows, found := make([]storage.AttemptRow, len(keys)), make([]bool, len(keys))
	for i, k := range keys {
		if create {
			if _, err := tx.Exec(ctx, `INSERT INTO attempts (key, failures, last_failure, pending, pending_until, forget_at)
				VALUES ($1, 0, $2, 0, $2, $2) ON CONFLICT (key) DO NOTHING`, k.Key, ts(now)); err != nil {
				return nil, nil, err
			}
		}
		r := &rows[i]
		err := tx.QueryRow(ctx, `SELECT failures, last_failure, pending, pending_until, forget_at FROM attempts WHERE key = $1 FOR UPDATE`, k.Key).
			Scan(&r.Failures, nt(&r.Last), &r.Pending, nt(&r.PendingUntil), nt(&r.ForgetAt))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, nil, err
		default:
			found[i] = true
		}
	}
	return rows, found, nil
}

// putAttemptRow writes key's row, or deletes it when it holds nothing more, so
// that sign-ins that succeed leave no rows behind.
func putAttemptRow(ctx context.Context, tx pgx.Tx, key string, r storage.AttemptRow, now time.Time) error {
	if r.Idle(now) {
		_, err := tx.Exec(ctx, `DELETE FROM attempts WHERE key = $1`, key)
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE attempts SET failures = $2, last_failure = $3, pending = $4, pending_until = $5, forget_at = $6 WHERE key = $1`,
		key, r.Failures, ts(r.Last), r.Pending, ts(r.PendingUntil), ts(r.ForgetAt))
	return err
}

// AdmitAttempt makes sure each key has a row, locks them, and decides on what
// they hold; a caller not admitted rolls back, rows it made included.
func (s *Store) AdmitAttempt(ctx context.Context, now time.Time, hold time.Duration, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	if err := checkAttemptKeys(keys); err != nil {
		return false, 0, err
	}
	keys = sortedKeys(keys)
	var admitted bool
	var lock time.Duration
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, _, err := lockAttemptRows(ctx, tx, keys, now, true)
		if err != nil {
			return err
		}
		if admitted, lock = storage.DecideAdmit(rows, keys, now, hold); !admitted {
			return errNotAdmitted
		}
		for i, k := range keys {
			if err := putAttemptRow(ctx, tx, k.Key, rows[i], now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNotAdmitted) {
		return false, 0, fmt.Errorf("admit attempt: %w", err)
	}
	return admitted, lock, nil
}

func (s *Store) EndAttempt(ctx context.Context, now time.Time, clear bool, keys ...storage.AttemptKey) error {
	if len(keys) == 0 {
		return nil
	}
	first := keys[0].Key
	keys = sortedKeys(keys)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, found, err := lockAttemptRows(ctx, tx, keys, now, false)
		if err != nil {
			return err
		}
		// DecideEnd clears the first row: the caller's first key, wherever sorting put it.
		i0 := slices.IndexFunc(keys, func(k storage.AttemptKey) bool { return k.Key == first })
		rows[0], rows[i0] = rows[i0], rows[0]
		found[0], found[i0] = found[i0], found[0]
		keys = slices.Clone(keys)
		keys[0], keys[i0] = keys[i0], keys[0]
		for i, w := range storage.DecideEnd(rows, now, clear) {
			if w && found[i] {
				if err := putAttemptRow(ctx, tx, keys[i].Key, rows[i], now); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("end attempt: %w", err)
	}
	return nil
}

// FailAttempt makes sure each key has a row, locks them, and decides on what
// they hold: a caller that loses a race waits for the winner's commit and reads
// its count. One that changes nothing (a key locked, no place to give back)
// rolls back, rows it made included.
func (s *Store) FailAttempt(ctx context.Context, now time.Time, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	if err := checkAttemptKeys(keys); err != nil {
		return false, 0, err
	}
	keys = sortedKeys(keys)
	var counted bool
	var lock time.Duration
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, _, err := lockAttemptRows(ctx, tx, keys, now, true)
		if err != nil {
			return err
		}
		var write []bool
		counted, lock, write = storage.DecideFail(rows, keys, now)
		if !slices.Contains(write, true) {
			return errNotAdmitted
		}
		for i, w := range write {
			if w {
				if err := putAttemptRow(ctx, tx, keys[i].Key, rows[i], now); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNotAdmitted) {
		return false, 0, fmt.Errorf("record failed attempt: %w", err)
	}
	return counted, lock, nil
}

func (s *Store) ClearAttempts(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE attempts SET failures = 0 WHERE key = $1`, key); err != nil {
		return fmt.Errorf("clear attempts: %w", err)
	}
	return nil
}

// checkAttemptKeys refuses keys over storage.MaxAttemptKey bytes.
func checkAttemptKeys(keys []storage.AttemptKey) error {
	for _, k := range keys {
		if len(k.Key) > storage.MaxAttemptKey {
			return fmt.Errorf("attempt key of %d bytes, over %d", len(k.Key), storage.MaxAttemptKey)
		}
	}
	return nil
}

// purgeAttempts deletes the records whose failures are forgotten at now.
func purgeAttempts(ctx context.Context, q querier, now time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM attempts WHERE forget_at <= $1`, ts(now))
	if err != nil {
		return 0, fmt.Errorf("purge attempts: %w", err)
	}
	return tag.RowsAffected(), nil
}

func (s *Store) TaskRun(ctx context.Context, name string) (time.Time, error) {
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT last_run FROM task_runs WHERE name = $1`, name).Scan(nt(&at))
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("task %q: last run: %w", name, err)
	}
	return at, nil
}

func (s *Store) SetTaskRun(ctx context.Context, name string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO task_runs (name, last_run) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run`, name, ts(at)); err != nil {
		return fmt.Errorf("task %q: record run: %w", name, err)
	}
	return nil
}
