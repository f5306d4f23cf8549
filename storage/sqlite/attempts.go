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

// errLocked rolls back a FailAttempt that found a key locked.
var errLocked = errors.New("locked")

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

func getAttempts(ctx context.Context, q querier, key string) (storage.Attempts, error) {
	var a storage.Attempts
	err := q.QueryRowContext(ctx, `SELECT failures, last_failure FROM attempts WHERE key = ?`, key).
		Scan(&a.Failures, timeCol{&a.Last})
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Attempts{}, nil
	}
	return a, err
}

// FailAttempt reads and writes in one write transaction: writes are serialised,
// in this process by the writer and across processes by the file's write lock.
func (s *Store) FailAttempt(ctx context.Context, now time.Time, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	if err := checkAttemptKeys(keys); err != nil {
		return false, 0, err
	}
	var lock time.Duration
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		lock = 0
		before := make([]storage.Attempts, len(keys))
		for i, k := range keys {
			a, err := getAttempts(ctx, tx, k.Key)
			if err != nil {
				return err
			}
			before[i] = a.At(k.Limit, now)
			lock = max(lock, k.Limit.Lock(before[i], now))
		}
		if lock > 0 {
			return errLocked
		}
		for i, k := range keys {
			a := storage.Attempts{Failures: before[i].Failures + 1, Last: now}
			if _, err := tx.ExecContext(ctx, `INSERT INTO attempts (key, failures, last_failure, forget_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure, forget_at = excluded.forget_at`,
				k.Key, a.Failures, micros(now), micros(now.Add(k.Limit.Forget))); err != nil {
				return err
			}
			lock = max(lock, k.Limit.Lock(a, now))
		}
		return nil
	})
	if errors.Is(err, errLocked) {
		return false, lock, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("record failed attempt: %w", err)
	}
	return true, lock, nil
}

func (s *Store) ClearAttempts(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM attempts WHERE key = ?`, key); err != nil {
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
