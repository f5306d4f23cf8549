package token

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// updaterStore records the updates made through it; any other call fails the test.
type updaterStore struct {
	SessionStore
	t       *testing.T
	user    storage.User
	updates int
	events  []storage.AuditEvent
}

func (s *updaterStore) UpdateUser(ctx context.Context, realm, id string, fn func(u *storage.User) ([]storage.AuditEvent, error)) (storage.User, error) {
	s.updates++
	if realm != s.user.Realm || id != s.user.ID {
		s.t.Fatalf("UpdateUser(%q, %q), want the user's realm and ID", realm, id)
	}
	u := s.user
	ev, err := fn(&u)
	if err != nil {
		return storage.User{}, err
	}
	s.user, s.events = u, append(s.events, ev...)
	return u, nil
}

func (s *updaterStore) AppendAudit(context.Context, storage.AuditEvent) (int64, error) {
	s.t.Fatal("the audit event must come from the updater, in its transaction")
	return 0, nil
}

// Logging out everywhere is one update of the user: the stamp and its audit
// event together, the revocations left to the store's transaction.
func TestLogoutEverywhere_IsOneUpdateMovingTheStamp(t *testing.T) {
	st := &updaterStore{t: t, user: storage.User{Realm: "acme", ID: "u1", Name: "Alice", UpdatedAt: time.Unix(1, 0)}}
	now := time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.UTC)
	if err := LogoutEverywhere(t.Context(), st, "acme", "u1", now, Caller{IP: "192.0.2.1", UserAgent: "ua"}); err != nil {
		t.Fatal(err)
	}
	at := now.Truncate(time.Microsecond)
	if st.updates != 1 || !st.user.TokensValidAfter.Equal(at) || !st.user.UpdatedAt.Equal(at) || st.user.Name != "Alice" {
		t.Fatalf("%d updates, user %+v; want one, moving the stamp and UpdatedAt to %v", st.updates, st.user, at)
	}
	if len(st.events) != 1 || st.events[0].Type != "user.logout_everywhere" || st.events[0].UserID != "u1" ||
		st.events[0].Realm != "acme" || st.events[0].IP != "192.0.2.1" || !st.events[0].Time.Equal(at) {
		t.Fatalf("events %+v, want one user.logout_everywhere for u1", st.events)
	}
}
