package storage

import "time"

// AttemptRow is what a backend keeps of an AttemptStore key. The decisions on
// rows are made here, once for every backend; a backend reads the keys' rows
// and writes back the changed ones inside one atomic step.
type AttemptRow struct {
	Attempts
	Pending      int       // attempts in flight, while PendingUntil is ahead
	PendingUntil time.Time // when the places in flight come free anyway
	ForgetAt     time.Time // when the row is of no more use: Sweep deletes it
}

// InFlight is the number of attempts in flight at now.
func (r AttemptRow) InFlight(now time.Time) int {
	if now.Before(r.PendingUntil) {
		return r.Pending
	}
	return 0
}

// Idle says the row holds nothing at now, neither failures nor attempts in
// flight: a backend deletes it rather than write it back.
func (r AttemptRow) Idle(now time.Time) bool {
	return r.Failures == 0 && r.InFlight(now) == 0
}

// locked is the longest lock of the rows at now.
func locked(rows []AttemptRow, keys []AttemptKey, now time.Time) time.Duration {
	var lock time.Duration
	for i, k := range keys {
		lock = max(lock, k.Limit.Lock(rows[i].Attempts, now))
	}
	return lock
}

// DecideAdmit decides AdmitAttempt on the keys' rows (the zero row for a key
// without one). When it admits, every row is changed and must be written.
func DecideAdmit(rows []AttemptRow, keys []AttemptKey, now time.Time, hold time.Duration) (admitted bool, lock time.Duration) {
	if lock := locked(rows, keys, now); lock > 0 {
		return false, lock
	}
	for i, k := range keys {
		// Failures left before the lock, or one at a time once a lock has run out.
		if rows[i].InFlight(now) >= max(k.Limit.Failures-rows[i].At(k.Limit, now).Failures, 1) {
			return false, 0
		}
	}
	until := now.Add(hold)
	for i := range rows {
		r := &rows[i]
		if r.Failures == 0 {
			r.Last = now // a row needs a time; with no failures it says nothing
		}
		r.Pending, r.PendingUntil = r.InFlight(now)+1, until
		r.ForgetAt = latest(r.ForgetAt, until)
	}
	return true, 0
}

// DecideFail decides FailAttempt on the keys' rows; write says which changed.
func DecideFail(rows []AttemptRow, keys []AttemptKey, now time.Time) (counted bool, lock time.Duration, write []bool) {
	write = make([]bool, len(rows))
	lock = locked(rows, keys, now)
	for i, k := range keys {
		r := &rows[i]
		inFlight := r.InFlight(now)
		if inFlight > 0 {
			r.Pending, write[i] = inFlight-1, true
		}
		if lock > 0 {
			continue
		}
		r.Attempts = Attempts{Failures: r.At(k.Limit, now).Failures + 1, Last: now}
		r.ForgetAt = latest(now.Add(k.Limit.Forget), r.PendingUntil)
		write[i] = true
	}
	if lock > 0 {
		return false, lock, write
	}
	return true, locked(rows, keys, now), write
}

// DecideEnd decides EndAttempt on the keys' rows; write says which changed.
func DecideEnd(rows []AttemptRow, now time.Time, clear bool) (write []bool) {
	write = make([]bool, len(rows))
	for i := range rows {
		r := &rows[i]
		if inFlight := r.InFlight(now); inFlight > 0 {
			r.Pending, write[i] = inFlight-1, true
		}
		if clear && i == 0 && r.Failures > 0 {
			r.Failures, write[i] = 0, true
		}
	}
	return write
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
