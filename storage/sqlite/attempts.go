package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// GetAttempts reads every key's record in one statement (the limiters ask for
// one or two keys, on every attempt).
func (s *Store) GetAttempts(ctx context.Context, now time.Time, keys ...storage.AttemptKey) ([]storage.Attempts, error) {
	out := make([]storage.Attempts, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k.Key
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT key, failures, last_failure FROM attempts WHERE key IN (?`+
		strings.Repeat(", ?", len(keys)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("get attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var a storage.Attempts
		if err := rows.Scan(&key, &a.Failures, timeCol{&a.Last}); err != nil {
			return nil, fmt.Errorf("get attempts: %w", err)
		}
		for i, k := range keys {
			if k.Key == key {
				out[i] = a.At(k.Limit, now)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get attempts: %w", err)
	}
	return out, nil
}

// attemptRow reads key's row through q; found is false when it has none.
func attemptRow(ctx context.Context, q querier, key string) (r storage.AttemptRow, found bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT failures, last_failure, pending, pending_until, forget_at FROM attempts WHERE key = ?`, key).
		Scan(&r.Failures, timeCol{&r.Last}, &r.Pending, timeCol{&r.PendingUntil}, timeCol{&r.ForgetAt})
	if errors.Is(err, sql.ErrNoRows) {
		return storage.AttemptRow{}, false, nil
	}
	return r, err == nil, err
}

// putAttemptRow writes key's row, or deletes it when it holds nothing more, so
// that sign-ins that succeed leave no rows behind.
func putAttemptRow(ctx context.Context, tx *stmtTx, key string, r storage.AttemptRow, now time.Time) error {
	if r.Idle(now) {
		_, err := tx.ExecContext(ctx, `DELETE FROM attempts WHERE key = ?`, key)
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO attempts (key, failures, last_failure, pending, pending_until, forget_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure,
			pending = excluded.pending, pending_until = excluded.pending_until, forget_at = excluded.forget_at`,
		key, r.Failures, r.Last.UnixMicro(), r.Pending, r.PendingUntil.UnixMicro(), r.ForgetAt.UnixMicro())
	return err
}

// attemptRows reads the keys' rows in a write transaction: writes are
// serialised, in this process by the writer and across processes by the file's
// write lock, so what is decided on them holds until the transaction ends.
func attemptRows(ctx context.Context, tx *stmtTx, keys []storage.AttemptKey) ([]storage.AttemptRow, []bool, error) {
	rows, found := make([]storage.AttemptRow, len(keys)), make([]bool, len(keys))
	for i, k := range keys {
		var err error
		if rows[i], found[i], err = attemptRow(ctx, tx, k.Key); err != nil {
			return nil, nil, err
		}
	}
	return rows, found, nil
}

func (s *Store) AdmitAttempt(ctx context.Context, now time.Time, hold time.Duration, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	if err := checkAttemptKeys(keys); err != nil {
		return false, 0, err
	}
	var admitted bool
	var lock time.Duration
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		rows, _, err := attemptRows(ctx, tx, keys)
		if err != nil {
			return err
		}
		if admitted, lock = storage.DecideAdmit(rows, keys, now, hold); !admitted {
			return nil
		}
		for i, k := range keys {
			if err := putAttemptRow(ctx, tx, k.Key, rows[i], now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("admit attempt: %w", err)
	}
	return admitted, lock, nil
}

func (s *Store) EndAttempt(ctx context.Context, now time.Time, clear bool, keys ...storage.AttemptKey) error {
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		rows, found, err := attemptRows(ctx, tx, keys)
		if err != nil {
			return err
		}
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

func (s *Store) FailAttempt(ctx context.Context, now time.Time, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	if err := checkAttemptKeys(keys); err != nil {
		return false, 0, err
	}
	var counted bool
	var lock time.Duration
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		rows, _, err := attemptRows(ctx, tx, keys)
		if err != nil {
			return err
		}
		var write []bool
		counted, lock, write = storage.DecideFail(rows, keys, now)
		for i, w := range write {
			if w {
				if err := putAttemptRow(ctx, tx, keys[i].Key, rows[i], now); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("record failed attempt: %w", err)
	}
	return counted, lock, nil
}

func (s *Store) ClearAttempts(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `UPDATE attempts SET failures = 0 WHERE key = ?`, key); err != nil {
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
func purgeAttempts(ctx context.Context, tx *stmtTx, now time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM attempts WHERE forget_at <= ?`, micros(now)))
}

func (s *Store) TaskRun(ctx context.Context, name string) (time.Time, error) {
	var at time.Time
	err := s.reader.QueryRowContext(ctx, `SELECT last_run FROM task_runs WHERE name = ?`, name).Scan(timeCol{&at})
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("task %q: last run: %w", name, err)
	}
	return at, nil
}

func (s *Store) SetTaskRun(ctx context.Context, name string, at time.Time) error {
	if _, err := s.exec(ctx, `INSERT INTO task_runs (name, last_run) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run`, name, micros(at)); err != nil {
		return fmt.Errorf("task %q: record run: %w", name, err)
	}
	return nil
}
