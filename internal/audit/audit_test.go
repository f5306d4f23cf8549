package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/logging"
	"github.com/latchkey/latchkey/storage"
)

type fakeStore struct {
	storage.Store
	err error
}

func (f fakeStore) AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error) {
	return 42, f.err
}

func TestLoggedAppendLogsTheStoredEvent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logging.NewRedactingHandler(slog.NewJSONHandler(&buf, nil)))
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	st := Logged(fakeStore{}, log)
	id, err := st.AppendAudit(context.Background(), storage.AuditEvent{Time: at, Type: "login.failed", Realm: "acme",
		ClientID: "web", UserID: "u1", IP: "127.0.0.1", Details: map[string]string{"username": "alice"}})
	if err != nil || id != 42 {
		t.Fatalf("AppendAudit = %d, %v", id, err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, buf.String())
	}
	want := map[string]any{"level": "INFO", "msg": "audit", "event_id": 42.0, "event_time": "2026-12-03T08:00:00Z",
		"type": "login.failed", "realm": "acme", "client_id": "web", "user_id": "u1", "ip": "127.0.0.1"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v", k, line[k], v)
		}
	}
	if d, _ := line["details"].(map[string]any); d["username"] != "alice" {
		t.Errorf("details = %v", line["details"])
	}
	if _, ok := line["session_id"]; ok {
		t.Errorf("an empty field was logged: %s", buf.String())
	}
}

func TestLoggedAppendLogsNothingWhenNotStored(t *testing.T) {
	var buf bytes.Buffer
	st := Logged(fakeStore{err: context.DeadlineExceeded}, slog.New(slog.NewJSONHandler(&buf, nil)))
	if _, err := st.AppendAudit(context.Background(), storage.AuditEvent{Type: "x"}); err == nil {
		t.Fatal("the store's error was lost")
	}
	if buf.Len() != 0 {
		t.Fatalf("logged an event that was not stored: %s", buf.String())
	}
}

func (f fakeStore) ApplySeed(ctx context.Context, s storage.Seed) (storage.SeedResult, error) {
	return storage.SeedResult{Updated: 1, Audit: []storage.AuditEvent{{ID: 7, Type: "user.disabled", Realm: "acme"}}}, f.err
}

func TestLoggedApplySeedLogsTheSeedsEvents(t *testing.T) {
	var buf bytes.Buffer
	st := Logged(fakeStore{}, slog.New(slog.NewJSONHandler(&buf, nil)))
	if _, err := st.ApplySeed(context.Background(), storage.Seed{}); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["type"] != "user.disabled" || line["event_id"] != 7.0 {
		t.Fatalf("line = %v, %v: %s", line, err, buf.String())
	}
}

// updaterStore runs UpdateUser's updater twice, as a store retrying its
// transaction may, and fails when told to.
type updaterStore struct {
	storage.Store
	err error
}

func (f updaterStore) UpdateUser(ctx context.Context, realm, id string, fn func(u *storage.User) ([]storage.AuditEvent, error)) (storage.User, error) {
	u := storage.User{Realm: realm, ID: id}
	for range 2 {
		if _, err := fn(&u); err != nil {
			return storage.User{}, err
		}
	}
	return u, f.err
}

func (f updaterStore) DeleteUser(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	return f.err
}

// The events a change carries into its transaction are logged once it commits:
// an updater's from its last run only, and none when the change failed.
func TestLoggedChangesLogTheirEvents(t *testing.T) {
	var buf bytes.Buffer
	st := Logged(updaterStore{}, slog.New(slog.NewJSONHandler(&buf, nil)))
	runs := 0
	_, err := st.UpdateUser(context.Background(), "acme", "u1", func(u *storage.User) ([]storage.AuditEvent, error) {
		runs++
		return []storage.AuditEvent{{Type: "user.disabled", Realm: "acme", UserID: u.ID, Details: map[string]string{"run": fmt.Sprint(runs)}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(context.Background(), "acme", "u1", storage.AuditEvent{Type: "user.deleted", Realm: "acme", UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["type"] != "user.disabled" || first["user_id"] != "u1" || first["details"].(map[string]any)["run"] != "2" {
		t.Errorf("updater's event: %s", lines[0])
	}
	if _, ok := first["event_id"]; ok {
		t.Errorf("an unknown event ID was logged: %s", lines[0])
	}
	if second["type"] != "user.deleted" {
		t.Errorf("delete's event: %s", lines[1])
	}

	buf.Reset()
	failing := Logged(updaterStore{err: storage.ErrConflict}, slog.New(slog.NewJSONHandler(&buf, nil)))
	failing.UpdateUser(context.Background(), "acme", "u1", func(u *storage.User) ([]storage.AuditEvent, error) {
		return []storage.AuditEvent{{Type: "user.disabled"}}, nil
	})
	failing.DeleteUser(context.Background(), "acme", "u1", storage.AuditEvent{Type: "user.deleted"})
	if buf.Len() != 0 {
		t.Fatalf("logged the events of failed changes: %s", buf.String())
	}
}
