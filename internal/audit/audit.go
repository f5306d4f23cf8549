// Package audit sends every stored audit event to the log as well: one info-level
// line per event, so a log pipeline sees security events without reading the store.
//
// Audit events hold no secrets (no tokens, codes, passwords or client secrets), and
// the line goes through the server's redacting handler all the same.
package audit

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Message is the message of every audit log line.
const Message = "audit"

// Logged returns st with AppendAudit also logging each event it stored, so every
// writer that appends through it is logged in this one place.
func Logged(st storage.Store, log *slog.Logger) storage.Store {
	return &loggedStore{Store: st, log: log}
}

type loggedStore struct {
	storage.Store
	log *slog.Logger
}

// AppendAudit stores e and, once it is stored, logs it with the ID it got.
func (s *loggedStore) AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error) {
	id, err := s.Store.AppendAudit(ctx, e)
	if err != nil {
		return id, err
	}
	e.ID = id
	Log(ctx, s.log, e)
	return id, nil
}

// ApplySeed applies the seed and, once it is committed, logs the audit events the
// seed appended in its transaction.
func (s *loggedStore) ApplySeed(ctx context.Context, seed storage.Seed) (storage.SeedResult, error) {
	res, err := s.Store.ApplySeed(ctx, seed)
	for _, e := range res.Audit {
		Log(ctx, s.log, e)
	}
	return res, err
}

// The store methods below append the events they are given (or that an updater
// returns) in the transaction of their change; once it is committed, they are
// logged here too. Their IDs are the store's and not known here: the lines have
// none.

func (s *loggedStore) logged(ctx context.Context, err error, events []storage.AuditEvent) error {
	if err == nil {
		for _, e := range events {
			Log(ctx, s.log, e)
		}
	}
	return err
}

// lastRun wraps an updater so that the events of its last run (a store may run it
// more than once) are kept in *events.
func lastRun[T any](fn func(*T) ([]storage.AuditEvent, error), events *[]storage.AuditEvent) func(*T) ([]storage.AuditEvent, error) {
	return func(v *T) ([]storage.AuditEvent, error) {
		ev, err := fn(v)
		*events = ev
		return ev, err
	}
}

func (s *loggedStore) CreateRealm(ctx context.Context, r storage.Realm, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.CreateRealm(ctx, r, events...), events)
}

func (s *loggedStore) UpdateRealm(ctx context.Context, name string, fn func(r *storage.Realm) ([]storage.AuditEvent, error)) (storage.Realm, error) {
	var events []storage.AuditEvent
	r, err := s.Store.UpdateRealm(ctx, name, lastRun(fn, &events))
	return r, s.logged(ctx, err, events)
}

func (s *loggedStore) DeleteRealm(ctx context.Context, name string, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.DeleteRealm(ctx, name, events...), events)
}

func (s *loggedStore) LogoutRealm(ctx context.Context, realm string, at time.Time, events ...storage.AuditEvent) (int64, int64, error) {
	sessions, families, err := s.Store.LogoutRealm(ctx, realm, at, events...)
	return sessions, families, s.logged(ctx, err, events)
}

func (s *loggedStore) CreateClient(ctx context.Context, c storage.Client, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.CreateClient(ctx, c, events...), events)
}

func (s *loggedStore) UpdateClient(ctx context.Context, realm, id string, fn func(c *storage.Client) ([]storage.AuditEvent, error)) (storage.Client, error) {
	var events []storage.AuditEvent
	c, err := s.Store.UpdateClient(ctx, realm, id, lastRun(fn, &events))
	return c, s.logged(ctx, err, events)
}

func (s *loggedStore) DeleteClient(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.DeleteClient(ctx, realm, id, events...), events)
}

func (s *loggedStore) CreateUser(ctx context.Context, u storage.User, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.CreateUser(ctx, u, events...), events)
}

func (s *loggedStore) UpdateUser(ctx context.Context, realm, id string, fn func(u *storage.User) ([]storage.AuditEvent, error)) (storage.User, error) {
	var events []storage.AuditEvent
	u, err := s.Store.UpdateUser(ctx, realm, id, lastRun(fn, &events))
	return u, s.logged(ctx, err, events)
}

func (s *loggedStore) DeleteUser(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.DeleteUser(ctx, realm, id, events...), events)
}

func (s *loggedStore) CreateRole(ctx context.Context, r storage.Role, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.CreateRole(ctx, r, events...), events)
}

func (s *loggedStore) UpdateRole(ctx context.Context, realm, clientID, name string, fn func(r *storage.Role) ([]storage.AuditEvent, error)) (storage.Role, error) {
	var events []storage.AuditEvent
	r, err := s.Store.UpdateRole(ctx, realm, clientID, name, lastRun(fn, &events))
	return r, s.logged(ctx, err, events)
}

func (s *loggedStore) DeleteRole(ctx context.Context, realm, clientID, name string, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.DeleteRole(ctx, realm, clientID, name, events...), events)
}

func (s *loggedStore) RetireSigningKey(ctx context.Context, realm, kid string, signUntil, publishUntil time.Time, events ...storage.AuditEvent) error {
	return s.logged(ctx, s.Store.RetireSigningKey(ctx, realm, kid, signUntil, publishUntil, events...), events)
}

// Log writes e as one info-level line: the event's ID and time, its type, realm,
// client, user, session, family, IP and user agent (each only when set) and its
// details as a group (event_id only when known).
func Log(ctx context.Context, log *slog.Logger, e storage.AuditEvent) {
	attrs := make([]slog.Attr, 0, 11)
	if e.ID != 0 {
		attrs = append(attrs, slog.Int64("event_id", e.ID))
	}
	attrs = append(attrs, slog.Time("event_time", e.Time), slog.String("type", e.Type))
	for _, f := range []struct{ key, value string }{
		{"realm", e.Realm}, {"client_id", e.ClientID}, {"user_id", e.UserID}, {"session_id", e.SessionID},
		{"family_id", e.FamilyID}, {"ip", e.IP}, {"user_agent", e.UserAgent},
	} {
		if f.value != "" {
			attrs = append(attrs, slog.String(f.key, f.value))
		}
	}
	if len(e.Details) > 0 {
		details := make([]any, 0, len(e.Details))
		for _, k := range slices.Sorted(maps.Keys(e.Details)) {
			details = append(details, slog.String(k, e.Details[k]))
		}
		attrs = append(attrs, slog.Group("details", details...))
	}
	log.LogAttrs(ctx, slog.LevelInfo, Message, attrs...)
}
