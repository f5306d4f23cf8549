package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// TaskStore is what OncePerInterval keeps its decision in.
type TaskStore interface {
	Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)
	TaskRun(ctx context.Context, name string) (time.Time, error)
	SetTaskRun(ctx context.Context, name string, at time.Time) error
}

// OncePerInterval returns a task's Run that runs run once per interval among
// every instance sharing store: inside store.Exclusive, and only when no
// instance ran it within the interval (the last run is stamped in the store and
// read inside the exclusive section, so instances whose timers fire together run
// it once between them). A tenth of the interval is allowed for timers that fire
// a little early, so the instance that ran last is not skipped on its next turn.
// ran says whether run ran here.
func OncePerInterval(store TaskStore, name string, every time.Duration, now func() time.Time,
	run func(ctx context.Context, now time.Time) error) func(ctx context.Context) (ran bool, err error) {
	return func(ctx context.Context) (bool, error) {
		ran := false
		_, err := store.Exclusive(ctx, name, func(ctx context.Context) error {
			last, err := store.TaskRun(ctx, name)
			if err != nil {
				return err
			}
			at := now()
			if !last.IsZero() && at.Sub(last) < every-every/10 {
				return nil
			}
			ran = true
			if err := run(ctx, at); err != nil {
				return err
			}
			return store.SetTaskRun(ctx, name, at)
		})
		return ran, err
	}
}

// Task is periodic upkeep: syncing the deny-list, rotating keys, purging what expired.
type Task struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context) error
}

// RunTasks runs each task every period until ctx ends, logging failures, and
// returns once all have stopped. A failed run is retried at the next tick.
func RunTasks(ctx context.Context, log *slog.Logger, tasks ...Task) {
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Go(func() {
			tick := time.NewTicker(t.Every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := t.Run(ctx); err != nil && ctx.Err() == nil {
					log.Warn("background task failed", "task", t.Name, "err", err)
				}
			}
		})
	}
	wg.Wait()
}
