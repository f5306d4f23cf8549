package storagetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

// Exclusive runs one caller per name at a time: while one runs, the others (2, 5
// or 100 of them) return at once without running; another name is not held up;
// fn's error comes back; once it returns, the name is free again.
func testExclusive(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, parties := range []int{2, 5, 100} {
		inside := make(chan struct{})
		release := make(chan struct{})
		var ran atomic.Int32
		first := make(chan error, 1)
		go func() {
			_, err := s.Exclusive(c, "task", func(context.Context) error {
				ran.Add(1)
				close(inside)
				<-release
				return nil
			})
			first <- err
		}()
		<-inside
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		t.Cleanup(free) // a failure below must not leave the first caller waiting
		var wg sync.WaitGroup
		var skipped atomic.Int32
		for range parties - 1 {
			wg.Go(func() {
				ok, err := s.Exclusive(c, "task", func(context.Context) error { ran.Add(1); return nil })
				if err != nil {
					t.Error(err)
				}
				if !ok {
					skipped.Add(1)
				}
			})
		}
		wg.Wait()
		other, err := s.Exclusive(c, "other task", func(context.Context) error { return nil })
		if err != nil || !other {
			t.Fatalf("another name was held up: %v, %v", other, err)
		}
		free()
		must(t, <-first)
		if got := ran.Load(); got != 1 || skipped.Load() != int32(parties-1) {
			t.Fatalf("%d parties: fn ran %d times, %d skipped; want once, %d skipped", parties, got, skipped.Load(), parties-1)
		}
	}
	boom := errors.New("boom")
	ok, err := s.Exclusive(c, "task", func(context.Context) error { return boom })
	if !ok || !errors.Is(err, boom) {
		t.Fatalf("after release: ran %v, err %v; want ran, boom", ok, err)
	}
	if ok, err = s.Exclusive(c, "task", func(context.Context) error { return nil }); !ok || err != nil {
		t.Fatalf("a failed run kept the name: %v, %v", ok, err)
	}
}
