package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

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
