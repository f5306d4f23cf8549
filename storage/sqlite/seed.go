package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/latchkey/latchkey/storage"
)

// ApplySeed works in one write transaction: any error rolls the whole seed back.
func (s *Store) ApplySeed(ctx context.Context, seed storage.Seed) (storage.SeedResult, error) {
	var res storage.SeedResult
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res = storage.SeedResult{} // counts describe a committed seed only
		for _, sr := range seed.Realms {
			if err := seedRealm(ctx, tx, sr, &res); err != nil {
				return fmt.Errorf("seed realm %q: %w", sr.Realm.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return storage.SeedResult{}, err
	}
	return res, nil
}

func seedRealm(ctx context.Context, tx *stmtTx, sr storage.SeedRealm, res *storage.SeedResult) error {
	want := sr.Realm
	have, err := getRealm(ctx, tx, want.Name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if err := createRealm(ctx, tx, want); err != nil {
			return err
		}
		res.Created++
	case err != nil:
		return err
	case storage.SameRealm(have, want):
		res.Unchanged++
	default:
		if err := updateRealm(ctx, tx, want); err != nil {
			return err
		}
		res.Updated++
	}

	for _, c := range sr.Clients {
		c.Realm = want.Name
		have, err := getClient(ctx, tx, c.Realm, c.ID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if err := createClient(ctx, tx, c); err != nil {
				return err
			}
			res.Created++
		case err != nil:
			return err
		case storage.SameClient(have, c):
			res.Unchanged++
		default:
			// The stamp and the previous secret are state the seed does not own,
			// but for disabling the client, which moves the stamp (see disableClient).
			c.TokensValidAfter, c.PreviousSecretHash, c.PreviousSecretExpiresAt =
				have.TokensValidAfter, have.PreviousSecretHash, have.PreviousSecretExpiresAt
			reason := storage.ClientRevocation(have, &c)
			if err := updateClient(ctx, tx, c); err != nil {
				return err
			}
			if !have.Disabled && c.Disabled {
				why, err := disableClient(ctx, tx, c, reason)
				if err != nil {
					return err
				}
				res.Audit = append(res.Audit, why)
			}
			res.Updated++
		}
	}

	// Roles after clients (a client role needs its client), before the users
	// that name them; references are checked once all are there.
	for _, r := range sr.Roles {
		r.Realm = want.Name
		have, err := getRole(ctx, tx, r.Realm, r.ClientID, r.Name)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if err := createRole(ctx, tx, r); err != nil {
				return err
			}
			res.Created++
		case err != nil:
			return err
		case storage.SameRole(have, r):
			res.Unchanged++
		default:
			r.CreatedAt = have.CreatedAt
			if err := updateRole(ctx, tx, r); err != nil {
				return err
			}
			res.Updated++
		}
	}

	for _, u := range sr.Users {
		u.Realm = want.Name
		have, err := getUserByUsername(ctx, tx, u.Realm, u.Username)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if err := createUser(ctx, tx, u); err != nil {
				return err
			}
			res.Created++
		case err != nil:
			return err
		case storage.SameUser(have, u):
			res.Unchanged++
		default:
			// The user is the one already there: its ID, CreatedAt and security
			// stamp are state the seed does not own, but for disabling it or
			// changing its password, which move the stamp (see endEverything).
			var why storage.AuditEvent
			reason, stamp := "", have.TokensValidAfter
			switch {
			case !have.Disabled && u.Disabled:
				why, reason = storage.UserDisabled(have.Realm, have.ID, u.UpdatedAt, "seed"), storage.ReasonUserDisabled
			case have.PasswordHash != u.PasswordHash:
				why, reason = storage.PasswordChanged(have.Realm, have.ID, u.UpdatedAt, "seed"), storage.ReasonPasswordChanged
			}
			if reason != "" {
				stamp = u.UpdatedAt
			}
			_, err := tx.ExecContext(ctx, `UPDATE users SET email = ?, email_verified = ?, name = ?,
				password_hash = ?, disabled = ?, tokens_valid_after = ?, updated_at = ?,
				given_name = ?, family_name = ?, roles = ? WHERE id = ?`,
				u.Email, u.EmailVerified, u.Name, u.PasswordHash, u.Disabled, micros(stamp), micros(u.UpdatedAt),
				u.GivenName, u.FamilyName, refsText(u.Roles), have.ID)
			if err != nil {
				return mapWriteError(err, userName(have.Realm, have.ID))
			}
			if reason != "" {
				if why, err = endEverything(ctx, tx, have, why, reason); err != nil {
					return err
				}
				res.Audit = append(res.Audit, why)
			}
			res.Updated++
		}
	}
	if err := checkSeedRefs(ctx, tx, want.Name, sr); err != nil {
		return err
	}
	return putSeedPasswordMACs(ctx, tx, want.Name, sr.PasswordMACs)
}

// checkSeedRefs fails when a role reference of the seed names no role.
func checkSeedRefs(ctx context.Context, tx *stmtTx, realm string, sr storage.SeedRealm) error {
	for _, c := range sr.Clients {
		if err := checkRefs(ctx, tx, realm, clientName(realm, c.ID), c.ServiceAccountRoles); err != nil {
			return err
		}
	}
	for _, r := range sr.Roles {
		if err := checkRefs(ctx, tx, realm, roleName(realm, r.ClientID, r.Name), r.Composites); err != nil {
			return err
		}
	}
	for _, u := range sr.Users {
		if err := checkRefs(ctx, tx, realm, fmt.Sprintf("user %q in realm %q", u.Username, realm), u.Roles); err != nil {
			return err
		}
	}
	return nil
}

// endEverything ends all a user holds, in the caller's transaction, at the time
// of the audit event that says why (their security stamp, moved there by the
// caller, kills every token issued before, for good), as UpdateUser does; and the
// event is written, and returned with its ID.
func endEverything(ctx context.Context, tx *stmtTx, u storage.User, why storage.AuditEvent, reason string) (storage.AuditEvent, error) {
	if err := endUserGrants(ctx, tx, u.Realm, u.ID, why.Time, reason); err != nil {
		return why, err
	}
	var err error
	why.ID, err = appendAudit(ctx, tx, why)
	return why, err
}

// disableClient ends all a client holds, in the caller's transaction, at its
// security stamp, moved by the caller to its UpdatedAt (reason is "" when it
// could not move later), as UpdateClient does; and it is audited: the event is
// returned with its ID.
func disableClient(ctx context.Context, tx *stmtTx, c storage.Client, reason string) (storage.AuditEvent, error) {
	why := storage.ClientDisabled(c.Realm, c.ID, c.UpdatedAt, "seed")
	if reason != "" {
		if err := endClientGrants(ctx, tx, c.Realm, c.ID, c.TokensValidAfter, reason); err != nil {
			return why, err
		}
	}
	var err error
	why.ID, err = appendAudit(ctx, tx, why)
	return why, err
}
