package e2e

import (
	"fmt"
	"sync"
	"testing"
)

// RFC 6749 §4.1.2: a code used more than once is refused, and the tokens issued
// from it are revoked. Whatever the interleaving of the racing redemptions, the
// winner's access token must end up inactive and its refresh token refused.
func TestCodeRace_ReplayRevokesTheWinnerWhateverTheInterleaving(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		b := newBrowser(t)
		for _, c := range []struct{ parties, trials int }{{2, 200}, {5, 100}, {100, 10}} {
			t.Run(fmt.Sprintf("%d-way", c.parties), func(t *testing.T) {
				for trial := range c.trials {
					raceOneCode(t, s, b, c.parties, trial)
				}
			})
		}
	})
}

// raceOneCode redeems one fresh code with parties requests at once and checks
// that exactly one wins and that nothing it got survives.
func raceOneCode(t *testing.T, s *server, b *browser, parties, trial int) {
	t.Helper()
	code := b.code(s, "web")
	results := make([]response, parties)
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	for i := range parties {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			results[i] = s.redeem(t, webBasic, code)
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()

	var winner *response
	for i, r := range results {
		switch {
		case r.status == 200:
			if winner != nil {
				t.Fatalf("trial %d: two redemptions of one code succeeded", trial)
			}
			winner = &results[i]
		case !r.invalidGrant():
			t.Fatalf("trial %d: a losing redemption got %d %s; want 400 invalid_grant", trial, r.status, r.raw)
		}
	}
	if winner == nil {
		t.Fatalf("trial %d: no redemption of a fresh code succeeded", trial)
	}
	if in := s.introspect(t, svcBasic, winner.str("access_token")); in.status != 200 || in.body["active"] != false {
		t.Fatalf("trial %d (%d-way): the winner's access token survived the replay: %d %s", trial, parties, in.status, in.raw)
	}
	if r := s.refresh(t, webBasic, winner.str("refresh_token")); !r.invalidGrant() {
		t.Fatalf("trial %d (%d-way): the winner's refresh token survived the replay: %d %s", trial, parties, r.status, r.raw)
	}
}
