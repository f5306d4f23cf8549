package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// How references never dangle under READ COMMITTED (see storage.RoleStore): a
// write that adds a reference reads the role it names FOR KEY SHARE, which
// holds off a DeleteRole of it until the write commits; and DeleteRole strips
// the references both before and after it deletes the role's row. The first
// pass takes the rows that hold one already (a concurrent update of such a row
// either goes first, and the pass then sees what it wrote, or reads what the
// pass wrote); the second, whose statement starts once the DELETE got its lock,
// takes the rows written by the writes that held it off. A write that reads the
// role after the DELETE finds none and drops the reference.

const roleColumns = `realm, client_id, name, description, composites, created_at, updated_at`

func scanRole(row scanner) (storage.Role, error) {
	var r storage.Role
	err := row.Scan(&r.Realm, &r.ClientID, &r.Name, &r.Description, &r.Composites, nt(&r.CreatedAt), nt(&r.UpdatedAt))
	return r, err
}

func roleName(realm, clientID, name string) string {
	if clientID == "" {
		return fmt.Sprintf("role %q in realm %q", name, realm)
	}
	return fmt.Sprintf("role %q of client %q in realm %q", name, clientID, realm)
}

// refsJSON is a list of role references as a jsonb argument: an empty list is
// [] (never null), so that every list column holds a list.
func refsJSON(refs []storage.RoleRef) string {
	if len(refs) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(refs) // two strings per element: cannot fail
	return string(b)
}

// recordRolesChanged records a ChangeRolesChanged through q.
func recordRolesChanged(ctx context.Context, q querier, realm string, at time.Time) error {
	return recordChange(ctx, q, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeRolesChanged, Subject: realm})
}

// CreateRole stores a new role.
func (s *Store) CreateRole(ctx context.Context, r storage.Role, events ...storage.AuditEvent) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r := r
		var err error
		if r.Composites, err = existingRefs(ctx, tx, r.Realm, r.Composites, nil); err != nil {
			return err
		}
		if err := insertRole(ctx, tx, r); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", roleName(r.Realm, r.ClientID, r.Name), err)
	}
	return nil
}

// insertRole inserts r as it is and records the change. A client role's client
// is read FOR KEY SHARE, so that a DeleteClient waits for the role to be there
// and then deletes it too.
func insertRole(ctx context.Context, q querier, r storage.Role) error {
	if r.ClientID != "" {
		var one int
		err := q.QueryRow(ctx, `SELECT 1 FROM clients WHERE realm = $1 AND id = $2 FOR KEY SHARE`, r.Realm, r.ClientID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("client %q: %w", r.ClientID, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
	}
	_, err := q.Exec(ctx, `INSERT INTO roles (`+roleColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		r.Realm, r.ClientID, r.Name, r.Description, refsJSON(r.Composites), ts(r.CreatedAt), ts(r.UpdatedAt))
	if err != nil {
		return classify(err)
	}
	return recordRolesChanged(ctx, q, r.Realm, storage.Updated(r.CreatedAt, r.UpdatedAt))
}

// GetRole returns the role.
func (s *Store) GetRole(ctx context.Context, realm, clientID, name string) (storage.Role, error) {
	r, err := getRole(ctx, s.pool, realm, clientID, name, "")
	if err != nil {
		return storage.Role{}, fmt.Errorf("%s: %w", roleName(realm, clientID, name), notFound(err))
	}
	return r, nil
}

// getRole reads the role, with lock (a fixed locking clause, or "") appended.
func getRole(ctx context.Context, q querier, realm, clientID, name, lock string) (storage.Role, error) {
	return scanRole(q.QueryRow(ctx, `SELECT `+roleColumns+` FROM roles WHERE realm = $1 AND client_id = $2 AND name = $3 `+lock,
		realm, clientID, name))
}

// ListRoles returns the realm's roles, realm roles first.
func (s *Store) ListRoles(ctx context.Context, realm string) ([]storage.Role, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+roleColumns+` FROM roles WHERE realm = $1 ORDER BY client_id, name`, realm)
	if err != nil {
		return nil, fmt.Errorf("list roles of realm %q: %w", realm, err)
	}
	roles, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Role, error) { return scanRole(row) })
	if err != nil {
		return nil, fmt.Errorf("list roles of realm %q: %w", realm, err)
	}
	return roles, nil
}

// UpdateRole locks the role's row for the read (FOR NO KEY UPDATE, which lets
// writes that reference the role go on), so a concurrent update waits for this
// one and then reads what it wrote.
func (s *Store) UpdateRole(ctx context.Context, realm, clientID, name string, fn func(r *storage.Role) ([]storage.AuditEvent, error)) (storage.Role, error) {
	var out storage.Role
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		old, err := getRole(ctx, tx, realm, clientID, name, "FOR NO KEY UPDATE")
		if err != nil {
			return notFound(err)
		}
		r := old
		r.Composites = slices.Clone(old.Composites)
		events, err := fn(&r)
		if err != nil {
			return errFn{err}
		}
		r.Realm, r.ClientID, r.Name, r.CreatedAt = old.Realm, old.ClientID, old.Name, old.CreatedAt
		if r.Composites, err = existingRefs(ctx, tx, realm, r.Composites, old.Composites); err != nil {
			return err
		}
		if err := updateRole(ctx, tx, r); err != nil {
			return err
		}
		out = r
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return storage.Role{}, wrapUpdate(err, "update %s", roleName(realm, clientID, name))
	}
	return out, nil
}

// updateRole stores r's description, composites and UpdatedAt, and records the change.
func updateRole(ctx context.Context, q querier, r storage.Role) error {
	tag, err := q.Exec(ctx, `UPDATE roles SET description = $4, composites = $5, updated_at = $6
		WHERE realm = $1 AND client_id = $2 AND name = $3`,
		r.Realm, r.ClientID, r.Name, r.Description, refsJSON(r.Composites), ts(r.UpdatedAt))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return recordRolesChanged(ctx, q, r.Realm, r.UpdatedAt)
}

// DeleteRole deletes the role and the references to it (see the top of the file).
func (s *Store) DeleteRole(ctx context.Context, realm, clientID, name string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := stripRefs(ctx, tx, realm, clientID, name, at); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM roles WHERE realm = $1 AND client_id = $2 AND name = $3`, realm, clientID, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		if err := stripRefs(ctx, tx, realm, clientID, name, at); err != nil {
			return err
		}
		if err := recordRolesChanged(ctx, tx, realm, at); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", roleName(realm, clientID, name), err)
	}
	return nil
}

// deleteClientRoles deletes the client's roles and every reference to one of
// them, in the caller's transaction (DeleteClient), as DeleteRole does.
func deleteClientRoles(ctx context.Context, q querier, realm, clientID string, at time.Time) error {
	if err := stripRefs(ctx, q, realm, clientID, "", at); err != nil {
		return err
	}
	tag, err := q.Exec(ctx, `DELETE FROM roles WHERE realm = $1 AND client_id = $2`, realm, clientID)
	if err != nil {
		return fmt.Errorf("deleting roles: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	if err := stripRefs(ctx, q, realm, clientID, "", at); err != nil {
		return err
	}
	return recordRolesChanged(ctx, q, realm, at)
}

// stripRefs removes from the realm's users, clients (recording a
// ChangeClientChanged for each client changed) and role composites the
// references to the role clientID/name, or, name "", to every role of the client
// clientID (which is then not "").
func stripRefs(ctx context.Context, q querier, realm, clientID, name string, at time.Time) error {
	// Rows are found by containment (the users' GIN index): {"name": x} also
	// matches client roles named x, which the filter then keeps.
	needle := map[string]string{}
	if clientID != "" {
		needle["client_id"] = clientID
	}
	if name != "" {
		needle["name"] = name
	}
	contains, _ := json.Marshal([]map[string]string{needle})
	kept := func(col string) string {
		return `(SELECT coalesce(jsonb_agg(e ORDER BY i), '[]'::jsonb) FROM jsonb_array_elements(` + col + `) WITH ORDINALITY AS t(e, i)
			WHERE NOT (coalesce(e->>'client_id', '') = $3 AND ($4 = '' OR e->>'name' = $4)))`
	}
	args := []any{realm, string(contains), clientID, name}
	if _, err := q.Exec(ctx, `UPDATE users SET roles = `+kept("roles")+` WHERE realm = $1 AND roles @> $2::jsonb`, args...); err != nil {
		return fmt.Errorf("strip users' roles: %w", err)
	}
	if _, err := q.Exec(ctx, `UPDATE roles SET composites = `+kept("composites")+` WHERE realm = $1 AND composites @> $2::jsonb`, args...); err != nil {
		return fmt.Errorf("strip composites: %w", err)
	}
	// The clients whose service-account roles change are recorded as changed
	// (caches keep clients), in the same statement.
	tag, err := q.Exec(ctx, `WITH changed AS (
			UPDATE clients SET service_account_roles = `+kept("service_account_roles")+`
			WHERE realm = $1 AND service_account_roles @> $2::jsonb
			AND jsonb_array_length(service_account_roles) <> jsonb_array_length(`+kept("service_account_roles")+`)
			RETURNING realm, id)
		`+changeInsert+` SELECT $5, realm, $6, id, '', id, NULL, '' FROM changed`,
		append(args, ts(at), storage.ChangeClientChanged)...)
	if err != nil {
		return fmt.Errorf("strip clients' service-account roles: %w", err)
	}
	noteRecorded(q, tag.RowsAffected())
	return nil
}

// existingRefs returns refs without the references, not among old, that name no
// role of the realm; the roles of those it adds it reads FOR KEY SHARE (see the
// top of the file). Those among old were checked when they were added, and a
// role deleted since took them away.
func existingRefs(ctx context.Context, q querier, realm string, refs, old []storage.RoleRef) ([]storage.RoleRef, error) {
	var clients, names []string
	for _, r := range refs {
		if !slices.Contains(old, r) {
			clients, names = append(clients, r.ClientID), append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return refs, nil
	}
	rows, err := q.Query(ctx, `SELECT client_id, name FROM roles
		WHERE realm = $1 AND (client_id, name) IN (SELECT * FROM unnest($2::text[], $3::text[]))
		FOR KEY SHARE`, realm, clients, names)
	if err != nil {
		return nil, fmt.Errorf("read roles referenced: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.RoleRef, error) {
		var r storage.RoleRef
		err := row.Scan(&r.ClientID, &r.Name)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read roles referenced: %w", err)
	}
	out := refs[:0:0]
	for _, r := range refs {
		if slices.Contains(old, r) || slices.Contains(found, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// checkRefs fails with storage.ErrNotFound when one of refs names no role of
// the realm (ApplySeed, which validated its references, fails rather than drop
// one; what says where the reference was).
func checkRefs(ctx context.Context, q querier, realm, what string, refs []storage.RoleRef) error {
	kept, err := existingRefs(ctx, q, realm, refs, nil)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if !slices.Contains(kept, r) {
			return fmt.Errorf("%s: %s: %w", what, roleName(realm, r.ClientID, r.Name), storage.ErrNotFound)
		}
	}
	return nil
}
