package sqlite

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Two BFF instances on one SQLite file refresh one session at once: each
// Update reads inside its write transaction, which holds the file's write lock,
// so it sees the other store's writes and the counter every party bumps ends at
// the number of parties.
func TestBFFSessionUpdate_LosesNothingAcrossStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	stores := [2]*Store{openTestStore(t, path), openTestStore(t, path)}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, n := range []int{2, 5, 100} {
		rec := storage.BFFSession{ID: fmt.Sprintf("%064d", n), SID: "sid", Subject: "alice",
			Sealed: []byte("0"), ExpiresAt: t0.Add(time.Hour)}
		if err := stores[0].BFFSessions().Put(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = stores[i%2].BFFSessions().Update(t.Context(), rec.ID, t0,
					func(r storage.BFFSession) (storage.BFFSession, error) {
						count, err := strconv.Atoi(string(r.Sealed))
						r.Sealed = []byte(strconv.Itoa(count + 1))
						return r, err
					})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%d parties: party %d: %v", n, i, err)
			}
		}
		got, err := stores[1].BFFSessions().Get(t.Context(), rec.ID, t0)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Sealed) != strconv.Itoa(n) || got.Version != int64(n) {
			t.Errorf("%d parties on two stores: counter %s, version %d, want %d and %d", n, got.Sealed, got.Version, n, n)
		}
	}
}
