package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const roleCols = `realm, client_id, name, description, composites, created_at, updated_at`

func scanRole(row rowScanner) (storage.Role, error) {
	var r storage.Role
	err := row.Scan(&r.Realm, &r.ClientID, &r.Name, &r.Description, jsonCol{&r.Composites},
		timeCol{&r.CreatedAt}, timeCol{&r.UpdatedAt})
	return r, err
}

func roleName(realm, clientID, name string) string {
	if clientID == "" {
		return fmt.Sprintf("role %q in realm %q", name, realm)
	}
	return fmt.Sprintf("role %q of client %q in realm %q", name, clientID, realm)
}

// refsText encodes a list of role references; an empty one as [] (never null),
// so that the columns searched by stripRefs always hold a list.
func refsText(refs []storage.RoleRef) string {
	if len(refs) == 0 {
		return "[]"
	}
	return jsonText(refs)
}

// recordRolesChanged records a ChangeRolesChanged in the caller's transaction.
func recordRolesChanged(ctx context.Context, tx *stmtTx, realm string, at time.Time) error {
	return recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeRolesChanged, Subject: realm})
}

func (s *Store) CreateRole(ctx context.Context, r storage.Role, events ...storage.AuditEvent) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		var err error
		if r.Composites, err = existingRefs(ctx, tx, r.Realm, r.Composites, nil); err != nil {
			return err
		}
		if err := createRole(ctx, tx, r); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
}

// createRole inserts r as it is and records the change.
func createRole(ctx context.Context, tx *stmtTx, r storage.Role) error {
	if r.ClientID != "" {
		if _, err := getClient(ctx, tx, r.Realm, r.ClientID); err != nil {
			return fmt.Errorf("%s: %w", roleName(r.Realm, r.ClientID, r.Name), err)
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO roles (`+roleCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.Realm, r.ClientID, r.Name, r.Description, refsText(r.Composites), micros(r.CreatedAt), micros(r.UpdatedAt))
	if err != nil {
		return mapWriteError(err, roleName(r.Realm, r.ClientID, r.Name))
	}
	return recordRolesChanged(ctx, tx, r.Realm, storage.Updated(r.CreatedAt, r.UpdatedAt))
}

func (s *Store) GetRole(ctx context.Context, realm, clientID, name string) (storage.Role, error) {
	return getRole(ctx, s.reader, realm, clientID, name)
}

func getRole(ctx context.Context, q querier, realm, clientID, name string) (storage.Role, error) {
	r, err := scanRole(q.QueryRowContext(ctx, `SELECT `+roleCols+` FROM roles WHERE realm = ? AND client_id = ? AND name = ?`,
		realm, clientID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%s: %w", roleName(realm, clientID, name), storage.ErrNotFound)
	}
	return r, err
}

func (s *Store) ListRoles(ctx context.Context, realm string) ([]storage.Role, error) {
	return list(ctx, s.reader, scanRole, `SELECT `+roleCols+` FROM roles WHERE realm = ? ORDER BY client_id, name`, realm)
}

// UpdateRole runs fn in the writer's transaction: nothing else writes between
// its read and its write.
func (s *Store) UpdateRole(ctx context.Context, realm, clientID, name string, fn func(r *storage.Role) ([]storage.AuditEvent, error)) (storage.Role, error) {
	var out storage.Role
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		old, err := getRole(ctx, tx, realm, clientID, name)
		if err != nil {
			return err
		}
		r := old
		r.Composites = slices.Clone(old.Composites)
		events, err := fn(&r)
		if err != nil {
			return err
		}
		r.Realm, r.ClientID, r.Name, r.CreatedAt = old.Realm, old.ClientID, old.Name, old.CreatedAt
		if r.Composites, err = existingRefs(ctx, tx, r.Realm, r.Composites, old.Composites); err != nil {
			return err
		}
		if err := updateRole(ctx, tx, r); err != nil {
			return err
		}
		out = r
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return storage.Role{}, err
	}
	return out, nil
}

// updateRole stores r's description, composites and UpdatedAt, and records the change.
func updateRole(ctx context.Context, tx *stmtTx, r storage.Role) error {
	res, err := tx.ExecContext(ctx, `UPDATE roles SET description = ?, composites = ?, updated_at = ?
		WHERE realm = ? AND client_id = ? AND name = ?`,
		r.Description, refsText(r.Composites), micros(r.UpdatedAt), r.Realm, r.ClientID, r.Name)
	if err := mustChange(res, err, roleName(r.Realm, r.ClientID, r.Name)); err != nil {
		return err
	}
	return recordRolesChanged(ctx, tx, r.Realm, r.UpdatedAt)
}

func (s *Store) DeleteRole(ctx context.Context, realm, clientID, name string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE realm = ? AND client_id = ? AND name = ?`, realm, clientID, name)
		if err := mustChange(res, err, roleName(realm, clientID, name)); err != nil {
			return err
		}
		gone := storage.RoleRef{ClientID: clientID, Name: name}
		if err := stripRefs(ctx, tx, realm, at, `"name":`+jsonText(name), func(r storage.RoleRef) bool { return r == gone }); err != nil {
			return fmt.Errorf("%s: %w", roleName(realm, clientID, name), err)
		}
		if err := recordRolesChanged(ctx, tx, realm, at); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
}

// deleteClientRoles deletes the client's roles and every reference to one of
// them, in the caller's transaction (DeleteClient).
func deleteClientRoles(ctx context.Context, tx *stmtTx, realm, clientID string, at time.Time) error {
	n, err := changed(tx.ExecContext(ctx, `DELETE FROM roles WHERE realm = ? AND client_id = ?`, realm, clientID))
	if err != nil {
		return fmt.Errorf("deleting roles: %w", err)
	}
	if n == 0 {
		return nil // and so there is no reference to one
	}
	if err := stripRefs(ctx, tx, realm, at, `"client_id":`+jsonText(clientID),
		func(r storage.RoleRef) bool { return r.ClientID == clientID }); err != nil {
		return fmt.Errorf("deleting references to its roles: %w", err)
	}
	return recordRolesChanged(ctx, tx, realm, at)
}

// stripRefs removes the references gone says are gone from the realm's users,
// clients (recording a ChangeClientChanged for each client changed) and role
// composites. needle is a piece of JSON that every list holding such a
// reference contains, to skip the rows that hold none.
func stripRefs(ctx context.Context, tx *stmtTx, realm string, at time.Time, needle string, gone func(storage.RoleRef) bool) error {
	users, err := refHolders(ctx, tx, `SELECT id, '', roles FROM users WHERE realm = ? AND instr(roles, ?) > 0`, realm, needle)
	if err != nil {
		return err
	}
	for _, h := range users {
		if kept, ok := without(h.refs, gone); ok {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET roles = ? WHERE realm = ? AND id = ?`, refsText(kept), realm, h.key); err != nil {
				return err
			}
		}
	}
	clients, err := refHolders(ctx, tx, `SELECT id, '', service_account_roles FROM clients
		WHERE realm = ? AND instr(service_account_roles, ?) > 0`, realm, needle)
	if err != nil {
		return err
	}
	for _, h := range clients {
		if kept, ok := without(h.refs, gone); ok {
			if _, err := tx.ExecContext(ctx, `UPDATE clients SET service_account_roles = ? WHERE realm = ? AND id = ?`,
				refsText(kept), realm, h.key); err != nil {
				return err
			}
			if err := recordClientChanged(ctx, tx, realm, h.key, at); err != nil {
				return err
			}
		}
	}
	roles, err := refHolders(ctx, tx, `SELECT client_id, name, composites FROM roles WHERE realm = ? AND instr(composites, ?) > 0`, realm, needle)
	if err != nil {
		return err
	}
	for _, h := range roles {
		if kept, ok := without(h.refs, gone); ok {
			if _, err := tx.ExecContext(ctx, `UPDATE roles SET composites = ? WHERE realm = ? AND client_id = ? AND name = ?`,
				refsText(kept), realm, h.key, h.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// refHolder is a row holding role references: a user or client (key is its ID)
// or a role (key is its client ID).
type refHolder struct {
	key, name string
	refs      []storage.RoleRef
}

func refHolders(ctx context.Context, tx *stmtTx, query string, args ...any) ([]refHolder, error) {
	return list(ctx, tx, func(row rowScanner) (refHolder, error) {
		var h refHolder
		err := row.Scan(&h.key, &h.name, jsonCol{&h.refs})
		return h, err
	}, query, args...)
}

// without returns refs without those gone says are gone, and whether there were any.
func without(refs []storage.RoleRef, gone func(storage.RoleRef) bool) ([]storage.RoleRef, bool) {
	kept := slices.DeleteFunc(slices.Clone(refs), gone)
	return kept, len(kept) != len(refs)
}

// existingRefs returns refs without the references, not among old, that name no
// role of the realm: references a write adds must name roles that exist (see
// storage.RoleStore); those it keeps were checked when they were added, and a
// role deleted since took them away.
func existingRefs(ctx context.Context, tx *stmtTx, realm string, refs, old []storage.RoleRef) ([]storage.RoleRef, error) {
	out := refs[:0:0]
	for _, r := range refs {
		if !slices.Contains(old, r) {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM roles WHERE realm = ? AND client_id = ? AND name = ?`,
				realm, r.ClientID, r.Name).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", roleName(realm, r.ClientID, r.Name), err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// checkRefs fails with storage.ErrNotFound when one of refs names no role of
// the realm (ApplySeed, which validated its references, fails rather than drop
// one; what names it says where the reference was).
func checkRefs(ctx context.Context, tx *stmtTx, realm, what string, refs []storage.RoleRef) error {
	kept, err := existingRefs(ctx, tx, realm, refs, nil)
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
