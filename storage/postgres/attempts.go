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

// errLocked rolls back a FailAttempt that found a key locked.
var errLocked = errors.New("locked")

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

// FailAttempt makes sure each key has a row, then locks the rows (in key order,
// so that two callers never wait on each other) and decides on what they hold:
// a caller that loses a race waits for the winner's commit and reads its count.
// A caller that finds a key locked rolls back, rows it made included.
func (s *Store) FailAttempt(ctx context.Context, now time.Time, keys ...storage.AttemptKey) (bool, time.Duration, error) {
	if err := checkAttemptKeys(keys); err != nil {
		return false, 0, err
	}
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b storage.AttemptKey) int { return strings.Compare(a.Key, b.Key) })
	keys = slices.CompactFunc(keys, func(a, b storage.AttemptKey) bool { return a.Key == b.Key })
	var lock time.Duration
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		lock = 0
		before := make([]storage.Attempts, len(keys))
		for i, k := range keys {
			if _, err := tx.Exec(ctx, `INSERT INTO attempts (key, failures, last_failure, forget_at) VALUES ($1, 0, $2, $2)
				ON CONFLICT (key) DO NOTHING`, k.Key, ts(now)); err != nil {
				return err
			}
			var a storage.Attempts
			if err := tx.QueryRow(ctx, `SELECT failures, last_failure FROM attempts WHERE key = $1 FOR UPDATE`, k.Key).
				Scan(&a.Failures, nt(&a.Last)); err != nil {
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
			if _, err := tx.Exec(ctx, `UPDATE attempts SET failures = $2, last_failure = $3, forget_at = $4 WHERE key = $1`,
				k.Key, a.Failures, ts(now), ts(now.Add(k.Limit.Forget))); err != nil {
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
	if _, err := s.pool.Exec(ctx, `DELETE FROM attempts WHERE key = $1`, key); err != nil {
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
