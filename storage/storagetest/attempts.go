package storagetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// attemptTests are the AttemptStore's and the task stamps' part of the suite.
var attemptTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"AttemptsLockAndForget", testAttemptsLockAndForget},
	{"AttemptsCountOnceUnderRace", testAttemptsRace},
	{"AttemptsSweptWhenForgotten", testAttemptsSwept},
	{"AttemptsInFlight", testAttemptsInFlight},
	{"AttemptsAdmittedOnceUnderRace", testAttemptsAdmitRace},
	{"AttemptsThatEndLeaveNoRows", testAttemptsEndLeaveNoRows},
	{"TaskRuns", testTaskRuns},
}

var testLimit = storage.AttemptLimit{Failures: 3, BaseLock: 30 * time.Second, MaxLock: 2 * time.Minute, Forget: time.Hour}

func key(name string) storage.AttemptKey { return storage.AttemptKey{Key: name, Limit: testLimit} }

func fail(t *testing.T, s storage.Store, now time.Time, keys ...storage.AttemptKey) (bool, time.Duration) {
	t.Helper()
	counted, lock, err := s.FailAttempt(ctx(t), now, keys...)
	must(t, err)
	return counted, lock
}

func getAttempts(t *testing.T, s storage.Store, now time.Time, keys ...storage.AttemptKey) []storage.Attempts {
	t.Helper()
	got, err := s.GetAttempts(ctx(t), now, keys...)
	must(t, err)
	return got
}

// Failures count per key until the limit locks the key; a locked key counts
// nothing, for any of the keys given with it; the lock doubles with each failure
// past the limit, up to MaxLock; failures are forgotten Forget after the last;
// ClearAttempts forgets them at once. Time is the caller's.
func testAttemptsLockAndForget(t *testing.T, s storage.Store) {
	a, ip, other := key("login/a:r/user:1"), key("login/ip:192.0.2.1"), key("login/a:r/user:2")
	same(t, "unknown key", getAttempts(t, s, t0, a), []storage.Attempts{{}})
	for i := 1; i <= 2; i++ {
		if counted, lock := fail(t, s, at(time.Duration(i)*time.Second), a, ip); !counted || lock != 0 {
			t.Fatalf("failure %d: counted %v, lock %v; want counted, no lock", i, counted, lock)
		}
	}
	same(t, "after two", getAttempts(t, s, at(2*time.Second), a, ip, other),
		[]storage.Attempts{{Failures: 2, Last: at(2 * time.Second)}, {Failures: 2, Last: at(2 * time.Second)}, {}})
	if counted, lock := fail(t, s, at(3*time.Second), a, ip); !counted || lock != 30*time.Second {
		t.Fatalf("third failure: counted %v, lock %v; want counted, 30s", counted, lock)
	}
	// Locked: nothing counts, not even against the key given with it.
	if counted, lock := fail(t, s, at(13*time.Second), other, a); counted || lock != 20*time.Second {
		t.Fatalf("while locked: counted %v, lock %v; want not counted, 20s left", counted, lock)
	}
	same(t, "the other key", getAttempts(t, s, at(13*time.Second), other), []storage.Attempts{{}})
	// After the lock, one more failure locks for twice as long, then four times, capped.
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 2 * time.Minute} {
		now := at(time.Duration(10*(i+1)) * time.Minute)
		if counted, lock := fail(t, s, now, a); !counted || lock != want {
			t.Fatalf("failure %d past the limit: counted %v, lock %v; want %v", i+1, counted, lock, want)
		}
	}
	// Forgotten an hour after the last failure: counting starts again.
	last := at(30 * time.Minute)
	same(t, "just before forgetting", getAttempts(t, s, last.Add(time.Hour-time.Microsecond), a)[0].Failures, 6)
	same(t, "forgotten", getAttempts(t, s, last.Add(time.Hour), a), []storage.Attempts{{}})
	if counted, lock := fail(t, s, last.Add(time.Hour), a); !counted || lock != 0 {
		t.Fatalf("after forgetting: counted %v, lock %v; want counted, no lock", counted, lock)
	}
	// Clearing forgets one key only.
	must(t, s.ClearAttempts(ctx(t), ip.Key))
	same(t, "cleared", getAttempts(t, s, at(4*time.Second), ip), []storage.Attempts{{}})
	must(t, s.ClearAttempts(ctx(t), "never failed"))
	if _, _, err := s.FailAttempt(ctx(t), t0, key(strings.Repeat("k", storage.MaxAttemptKey+1))); err == nil {
		t.Fatal("a key over MaxAttemptKey bytes was taken")
	}
}

// 2, 5 and 100 callers failing at once on a fresh key (and on a key that
// already has failures) count exactly Failures times between them, as the same
// calls would one after another; the rest find it locked.
func testAttemptsRace(t *testing.T, s storage.Store) {
	for _, parties := range []int{2, 5, 100} {
		for _, prior := range []int{0, 2} {
			name := "race/" + strings.Repeat("x", parties) + "/" + string(rune('0'+prior))
			a, ip := key(name), key(name+"/ip")
			for range prior {
				fail(t, s, t0, a)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			counted, locked := 0, 0
			start := make(chan struct{})
			for range parties {
				wg.Go(func() {
					<-start
					ok, lock, err := s.FailAttempt(ctx(t), at(time.Second), a, ip)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if ok {
						counted++
					}
					if lock > 0 {
						locked++
					}
				})
			}
			close(start)
			wg.Wait()
			want := min(parties, testLimit.Failures-prior)
			if counted != want {
				t.Fatalf("%d parties, %d prior failures: %d counted, want %d", parties, prior, counted, want)
			}
			if wantLocked := parties - want + 1; parties+prior >= testLimit.Failures && locked != wantLocked {
				t.Fatalf("%d parties, %d prior failures: %d told locked, want %d", parties, prior, locked, wantLocked)
			}
			got := getAttempts(t, s, at(time.Second), a, ip)
			if got[0].Failures != prior+want || got[1].Failures != want {
				t.Fatalf("%d parties, %d prior failures: stored %+v, want %d and %d", parties, prior, got, prior+want, want)
			}
		}
	}
}

// A record is kept while its failures count and swept once they are forgotten
// at the sweep's now; a locked key's refused failures write nothing.
func testAttemptsSwept(t *testing.T, s storage.Store) {
	c := ctx(t)
	ip := key("ip")
	for i := range 3 {
		fail(t, s, t0, key("name/"+string(rune('a'+i))), ip)
	}
	// ip is locked: failures on new names add no rows.
	for i := range 10 {
		if counted, _ := fail(t, s, at(time.Second), key("other/"+string(rune('a'+i))), ip); counted {
			t.Fatal("counted while locked")
		}
	}
	counts, err := s.Count(c)
	wantCount(t, "attempt rows", counts.Attempts, err, 4)
	r, err := s.Sweep(c, at(time.Hour-time.Microsecond), 0)
	must(t, err)
	if r.Attempts != 0 {
		t.Fatalf("swept %d live records", r.Attempts)
	}
	fail(t, s, at(30*time.Minute), key("late"))
	r, err = s.Sweep(c, at(time.Hour), 0)
	must(t, err)
	if r.Attempts != 4 {
		t.Fatalf("swept %d records, want the 4 forgotten ones", r.Attempts)
	}
	counts, err = s.Count(c)
	wantCount(t, "attempt rows after the sweep", counts.Attempts, err, 1)
}

// A task's last run is zero until recorded, then what was recorded last.
func testTaskRuns(t *testing.T, s storage.Store) {
	c := ctx(t)
	got, err := s.TaskRun(c, "sweep")
	must(t, err)
	if !got.IsZero() {
		t.Fatalf("never ran: %v", got)
	}
	must(t, s.SetTaskRun(c, "sweep", at(time.Minute)))
	must(t, s.SetTaskRun(c, "sweep", at(2*time.Minute)))
	must(t, s.SetTaskRun(c, "other", at(time.Hour)))
	got, err = s.TaskRun(c, "sweep")
	must(t, err)
	same(t, "last run", got, at(2*time.Minute))
}

func admit(t *testing.T, s storage.Store, now time.Time, keys ...storage.AttemptKey) (bool, time.Duration) {
	t.Helper()
	ok, lock, err := s.AdmitAttempt(ctx(t), now, 10*time.Second, keys...)
	must(t, err)
	return ok, lock
}

// Attempts in flight count as failures to come: a key n failures short of its
// lock admits n; EndAttempt and FailAttempt give places back; places a caller
// never gave back come free after the hold; a locked key admits none; the rows
// of attempts in flight are not swept; EndAttempt with clear forgets failures.
func testAttemptsInFlight(t *testing.T, s storage.Store) {
	c := ctx(t)
	a, ip := key("a"), key("ip")
	for i := range 3 {
		if ok, lock := admit(t, s, t0, a, ip); !ok || lock != 0 {
			t.Fatalf("attempt %d of 3: admitted %v, lock %v", i+1, ok, lock)
		}
	}
	if ok, lock := admit(t, s, t0, a, ip); ok || lock != 0 {
		t.Fatalf("fourth in flight: admitted %v, lock %v; want busy (false, 0)", ok, lock)
	}
	if ok, _ := admit(t, s, t0, key("other"), ip); ok {
		t.Fatal("a key in flight three times on ip admitted a fourth through ip")
	}
	r, err := s.Sweep(c, at(time.Second), 0)
	must(t, err)
	if r.Attempts != 0 {
		t.Fatalf("swept %d rows of attempts in flight", r.Attempts)
	}
	must(t, s.EndAttempt(c, t0, false, a, ip))
	if ok, _ := admit(t, s, t0, a, ip); !ok {
		t.Fatal("not admitted after an attempt ended")
	}
	// The three fail: each gives back its place; the third locks.
	for i, want := range []time.Duration{0, 0, 30 * time.Second} {
		if counted, lock := fail(t, s, t0, a, ip); !counted || lock != want {
			t.Fatalf("failure %d: counted %v, lock %v; want %v", i+1, counted, lock, want)
		}
	}
	if ok, lock := admit(t, s, t0, a, ip); ok || lock != 30*time.Second {
		t.Fatalf("locked: admitted %v, lock %v; want the lock", ok, lock)
	}
	// After the lock, one at a time.
	after := at(30 * time.Second)
	if ok, _ := admit(t, s, after, a); !ok {
		t.Fatal("not admitted after the lock")
	}
	if ok, lock := admit(t, s, after, a); ok || lock != 0 {
		t.Fatalf("second after the lock: admitted %v, lock %v; want busy", ok, lock)
	}
	// A place never given back comes free after the hold.
	if ok, _ := admit(t, s, after.Add(10*time.Second), a); !ok {
		t.Fatal("a held place did not come free after the hold")
	}
	must(t, s.EndAttempt(c, after.Add(10*time.Second), true, a))
	same(t, "cleared by a success", getAttempts(t, s, after.Add(10*time.Second), a), []storage.Attempts{{}})
}

// 2, 5 and 100 callers admitting at once on a fresh key get exactly the
// key's limit of places between them.
func testAttemptsAdmitRace(t *testing.T, s storage.Store) {
	for _, parties := range []int{2, 5, 100} {
		k := key("admit/" + strings.Repeat("x", parties))
		var mu sync.Mutex
		admitted := 0
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range parties {
			wg.Go(func() {
				<-start
				ok, _, err := s.AdmitAttempt(ctx(t), t0, time.Minute, k, key("admit/ip"+strings.Repeat("x", parties)))
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if want := min(parties, testLimit.Failures); admitted != want {
			t.Fatalf("%d parties: %d admitted, want %d", parties, admitted, want)
		}
	}
}

// Attempts that end without failing (sign-ins that succeed) leave no rows:
// only failures, and attempts in flight, are kept.
func testAttemptsEndLeaveNoRows(t *testing.T, s storage.Store) {
	c := ctx(t)
	a, ip := key("a"), key("ip")
	for range 3 {
		admit(t, s, t0, a, ip)
	}
	for range 3 {
		must(t, s.EndAttempt(c, t0, true, a, ip))
	}
	counts, err := s.Count(c)
	wantCount(t, "rows after three successes", counts.Attempts, err, 0)
	admit(t, s, t0, a, ip)
	fail(t, s, t0, a, ip)
	counts, err = s.Count(c)
	wantCount(t, "rows after a failure", counts.Attempts, err, 2)
	admit(t, s, t0, a, ip)
	must(t, s.EndAttempt(c, t0, true, a, ip))
	counts, err = s.Count(c)
	wantCount(t, "rows after a success clears the account", counts.Attempts, err, 1) // the address keeps its failure
}
