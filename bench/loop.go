package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// tally counts the requests of one phase (warm-up or measured).
type tally struct {
	latency  Histogram
	requests atomic.Int64
	ok       atomic.Int64
	mu       sync.Mutex
	errors   map[string]int64
}

func newTally() *tally { return &tally{errors: map[string]int64{}} }

// record counts one request that started at start; f is nil when it succeeded.
func (t *tally) record(start time.Time, f *failure) {
	t.latency.Record(time.Since(start))
	t.requests.Add(1)
	if f == nil {
		t.ok.Add(1)
		return
	}
	t.mu.Lock()
	t.errors[f.kind]++
	t.mu.Unlock()
}

// turn is one step of one worker.
type turn struct {
	ctx    context.Context // for requests: outlives the run, so requests in flight at the end finish
	stop   <-chan struct{} // closed when the run's time is up: stop waiting for anything else
	worker int
	// at is when the step was due in an open loop, so its first request's latency
	// includes any time spent waiting behind a slow server (no coordinated
	// omission); zero in a closed loop.
	at    time.Time
	tally *tally
}

// start returns the time the first request of the step is measured from.
func (t *turn) start() time.Time {
	if t.at.IsZero() {
		return time.Now()
	}
	return t.at
}

// scenario is one kind of load.
type scenario interface {
	// prepare readies the scenario before the clock starts.
	prepare(ctx context.Context) error
	// step does one unit of work, recording each request in t.tally. It returns
	// false when the worker has nothing more to do.
	step(t *turn) bool
}

// drive runs connections workers on sc from t0: warm-up until measureFrom, then the
// measured phase until end, recording into warm and measured. A closed loop (rate 0)
// starts each step as soon as the worker's previous one is done; an open loop
// schedules steps rate per second in all, whether or not the server keeps up.
func drive(ctx context.Context, sc scenario, connections int, rate float64, t0, measureFrom, end time.Time, warm, measured *tally) {
	stopCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	stop := stopCtx.Done()
	var next atomic.Int64 // open loop: the next step's number
	var wg sync.WaitGroup
	for w := range connections {
		wg.Go(func() {
			for {
				t := &turn{ctx: ctx, stop: stop, worker: w}
				if rate > 0 {
					n := next.Add(1) - 1
					t.at = t0.Add(time.Duration(float64(n) * float64(time.Second) / rate))
					if !t.at.Before(end) || !sleepUntil(t.at, stop) {
						return
					}
				}
				// Steps count in the phase they are sent in, and an open loop that fell
				// behind drops what it could not send before the end, so rps is what the
				// server sustained, not what was asked.
				now := time.Now()
				if !now.Before(end) || ctx.Err() != nil {
					return
				}
				t.tally = warm
				if !now.Before(measureFrom) {
					t.tally = measured
				}
				if !sc.step(t) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// sleepUntil waits for t; false if stop came first.
func sleepUntil(t time.Time, stop <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-stop:
		return false
	}
}
