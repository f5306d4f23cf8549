package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey/storage"
)

const auditCols = `id, time, type, realm, client_id, user_id, session_id, family_id, ip, user_agent, details`

func scanAuditEvent(row rowScanner) (storage.AuditEvent, error) {
	var e storage.AuditEvent
	err := row.Scan(&e.ID, timeCol{&e.Time}, &e.Type, &e.Realm, &e.ClientID, &e.UserID, &e.SessionID, &e.FamilyID,
		&e.IP, &e.UserAgent, jsonCol{&e.Details})
	return e, err
}

func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error) {
	var id int64
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		var err error
		id, err = appendAudit(ctx, tx, e)
		return err
	})
	return id, err
}

// appendAudit stores the event within tx and returns the ID it got.
func appendAudit(ctx context.Context, tx *stmtTx, e storage.AuditEvent) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO audit_events
		(time, type, realm, client_id, user_id, session_id, family_id, ip, user_agent, details)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		micros(e.Time), e.Type, e.Realm, e.ClientID, e.UserID, e.SessionID, e.FamilyID, e.IP, e.UserAgent,
		jsonText(e.Details))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// appendEvents stores the events within tx, in order.
func appendEvents(ctx context.Context, tx *stmtTx, events []storage.AuditEvent) error {
	for _, e := range events {
		if _, err := appendAudit(ctx, tx, e); err != nil {
			return fmt.Errorf("append audit event %q: %w", e.Type, err)
		}
	}
	return nil
}

func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	// Only fixed conditions are joined into the query; the caller's values are arguments.
	var where []string
	var args []any
	if f.Realm != "" {
		where, args = append(where, "realm = ?"), append(args, f.Realm)
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	if f.UserID != "" {
		where, args = append(where, "user_id = ?"), append(args, f.UserID)
	}
	if f.ClientID != "" {
		where, args = append(where, "client_id = ?"), append(args, f.ClientID)
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, micros(f.Since))
	}
	q := `SELECT ` + auditCols + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return list(ctx, s.reader, scanAuditEvent, q, args...)
}
