package postgres_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Two BFF instances sharing a database refresh one session at once: each
// Update, on either instance, sees the other's write (the row lock spans
// connections and pools), so the counter every party bumps ends at the number
// of parties.
func TestBFFSessionUpdate_LosesNothingAcrossInstances(t *testing.T) {
	stores := twoInstances(t)
	for _, n := range []int{2, 5, 100} {
		rec := storage.BFFSession{ID: fmt.Sprintf("%064d", n), SID: "sid", Subject: "alice",
			Sealed: []byte("0"), ExpiresAt: t0.Add(time.Hour)}
		if err := stores[0].BFFSessions().Put(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		errs := raceAll(n, func(i int) error {
			_, err := stores[i%2].BFFSessions().Update(t.Context(), rec.ID, t0,
				func(r storage.BFFSession) (storage.BFFSession, error) {
					count, err := strconv.Atoi(string(r.Sealed))
					r.Sealed = []byte(strconv.Itoa(count + 1))
					return r, err
				})
			return err
		})
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
			t.Errorf("%d parties on two instances: counter %s, version %d, want %d and %d", n, got.Sealed, got.Version, n, n)
		}
	}
}
