package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const auditColumns = `id, time, type, realm, client_id, user_id, session_id, family_id, ip, user_agent, details`

// AppendAudit stores the event and returns the ID the identity column gave it.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error) {
	return appendAudit(ctx, s.pool, e)
}

// appendAudit stores the event through q, a pool or a transaction.
func appendAudit(ctx context.Context, q querier, e storage.AuditEvent) (int64, error) {
	var details map[string]string
	if len(e.Details) > 0 {
		details = e.Details // an empty map is stored as NULL, like no map
	}
	var id int64
	err := q.QueryRow(ctx, `
		INSERT INTO audit_events (time, type, realm, client_id, user_id, session_id, family_id, ip, user_agent, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		RETURNING id`,
		ts(e.Time), e.Type, e.Realm, e.ClientID, e.UserID, e.SessionID, e.FamilyID, e.IP, e.UserAgent, details,
	).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append audit event %q: %w", e.Type, err)
	}
	return id, nil
}

// ListAudit returns matching events, newest first (by ID). Only the filter's set
// fields become conditions, so each filter shape gets a plan that can use the
// indexes.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	var conds []string
	var args []any
	where := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Realm != "" {
		where("realm = $%d", f.Realm)
	}
	if f.Type != "" {
		where("type = $%d", f.Type)
	}
	if f.UserID != "" {
		where("user_id = $%d", f.UserID)
	}
	if f.ClientID != "" {
		where("client_id = $%d", f.ClientID)
	}
	if f.Before > 0 {
		where("id < $%d", f.Before)
	}
	if !f.Since.IsZero() {
		where("time >= $%d", ts(f.Since))
	}

	query := `SELECT ` + auditColumns + ` FROM audit_events`
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	query += ` ORDER BY id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		query += fmt.Sprintf(` LIMIT $%d`, len(args))
	}

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.AuditEvent, error) {
		var e storage.AuditEvent
		err := row.Scan(&e.ID, nt(&e.Time), &e.Type, &e.Realm, &e.ClientID, &e.UserID, &e.SessionID, &e.FamilyID,
			&e.IP, &e.UserAgent, &e.Details)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}
