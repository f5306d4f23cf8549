package server

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage/sqlite"
)

// A task wrapped by OncePerInterval runs at most once per interval, by the
// clock it is given: a second call within the interval skips, however many
// callers fire together (2, 5 or 100), and the next interval runs it again.
func TestOncePerInterval(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var runs atomic.Int32
	task := OncePerInterval(st, "sweep", 10*time.Minute, clock, func(context.Context, time.Time) error {
		runs.Add(1)
		return nil
	})
	for _, parties := range []int{2, 5, 100} {
		runs.Store(0)
		var wg sync.WaitGroup
		for range parties {
			wg.Go(func() {
				if _, err := task(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := runs.Load(); got != 1 {
			t.Fatalf("%d callers in one interval: ran %d times, want once", parties, got)
		}
		advance(8 * time.Minute)
		if ran, err := task(t.Context()); ran || err != nil {
			t.Fatalf("8 minutes later: ran %v, %v; want skipped", ran, err)
		}
		advance(2 * time.Minute)
		runs.Store(0)
		if ran, err := task(t.Context()); !ran || err != nil || runs.Load() != 1 {
			t.Fatalf("an interval later: ran %v, %v; want run", ran, err)
		}
		advance(10 * time.Minute)
	}
}
