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

// Log writes e as one info-level line: the event's ID and time, its type, realm,
// client, user, session, family, IP and user agent (each only when set) and its
// details as a group.
func Log(ctx context.Context, log *slog.Logger, e storage.AuditEvent) {
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs, slog.Int64("event_id", e.ID), slog.Time("event_time", e.Time), slog.String("type", e.Type))
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
