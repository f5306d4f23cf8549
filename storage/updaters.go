package storage

import "time"

// The rules UpdateClient and UpdateUser apply to what fn left, the same in every
// backend: written once here so that the backends differ only in their SQL.

// ClientRevocation settles the security stamp of c, updated by fn from old, and
// says why its tokens must be revoked at c.TokensValidAfter, or "" when the stamp
// did not move later. Disabling a client moves its stamp to the new UpdatedAt
// unless fn moved it itself. A stamp never moves back: that would bring tokens
// revoked for good back to life, so an earlier one is replaced by the old.
func ClientRevocation(old Client, c *Client) string {
	if !old.Disabled && c.Disabled && c.TokensValidAfter.Equal(old.TokensValidAfter) {
		c.TokensValidAfter = c.UpdatedAt
	}
	if !stampMoved(old.TokensValidAfter, &c.TokensValidAfter) {
		return ""
	}
	if c.Disabled {
		return ReasonClientDisabled
	}
	return ReasonClientTokensRevoked
}

// UserRevocation is ClientRevocation for users: the reason is ReasonUserDisabled
// if the user is now disabled, else ReasonPasswordChanged if the password hash
// changed, else ReasonLogoutEverywhere.
func UserRevocation(old User, u *User) string {
	if !old.Disabled && u.Disabled && u.TokensValidAfter.Equal(old.TokensValidAfter) {
		u.TokensValidAfter = u.UpdatedAt
	}
	if !stampMoved(old.TokensValidAfter, &u.TokensValidAfter) {
		return ""
	}
	switch {
	case u.Disabled:
		return ReasonUserDisabled
	case u.PasswordHash != old.PasswordHash:
		return ReasonPasswordChanged
	}
	return ReasonLogoutEverywhere
}

// stampMoved keeps *stamp from moving before old, cuts it to the microsecond
// both stores keep, and says whether it is now later than old.
func stampMoved(old time.Time, stamp *time.Time) bool {
	if !stamp.IsZero() {
		*stamp = stamp.UTC().Truncate(time.Microsecond)
	}
	if !stamp.After(old) {
		*stamp = old
		return false
	}
	return true
}

// Updated is the time of a write that sets created and updated: updated if set,
// else created (the Time of the change it records).
func Updated(created, updated time.Time) time.Time {
	if updated.IsZero() {
		return created
	}
	return updated
}

// DeletionTime is the Time of the changes a deletion records: that of its latest
// audit event. A deletion is given no time of its own, so without an event the
// clock's is taken: the one time a store reads it, since a change must have a
// time to be kept by and to kill the tokens issued before it.
func DeletionTime(events []AuditEvent) time.Time {
	var t time.Time
	for _, e := range events {
		if e.Time.After(t) {
			t = e.Time
		}
	}
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
