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
		_, err := tx.ExecContext(ctx, `INSERT INTO realms (`+realmCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			want.Name, want.DisplayName, want.SigningAlg, int64(want.AccessTokenTTL), micros(want.CreatedAt), micros(want.UpdatedAt))
		if err != nil {
			return mapWriteError(err, fmt.Sprintf("realm %q", want.Name))
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
			if err := updateClient(ctx, tx, c); err != nil {
				return err
			}
			if !have.Disabled && c.Disabled {
				why, err := disableClient(ctx, tx, c)
				if err != nil {
					return err
				}
				res.Audit = append(res.Audit, why)
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
				password_hash = ?, disabled = ?, tokens_valid_after = ?, updated_at = ? WHERE id = ?`,
				u.Email, u.EmailVerified, u.Name, u.PasswordHash, u.Disabled, micros(stamp), micros(u.UpdatedAt), have.ID)
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
	return putSeedPasswordMACs(ctx, tx, want.Name, sr.PasswordMACs)
}

// endEverything ends all a user holds, in the caller's transaction, at the time
// of the audit event that says why (their security stamp, moved there by the
// caller, kills every token issued before, for good): their sessions and refresh
// families end, and the event is written, and returned with its ID.
func endEverything(ctx context.Context, tx *stmtTx, u storage.User, why storage.AuditEvent, reason string) (storage.AuditEvent, error) {
	a := micros(why.Time)
	if _, err := tx.ExecContext(ctx, revokeUserSessions, a, u.Realm, u.ID); err != nil {
		return why, fmt.Errorf("end what %s holds: %w", userName(u.Realm, u.ID), err)
	}
	if _, err := tx.ExecContext(ctx, revokeUserFamilies, a, reason, u.Realm, u.ID); err != nil {
		return why, fmt.Errorf("end what %s holds: %w", userName(u.Realm, u.ID), err)
	}
	var err error
	why.ID, err = appendAudit(ctx, tx, why)
	return why, err
}

// disableClient ends all a client holds, in the caller's transaction, at its
// UpdatedAt: its security stamp moves there, so no token issued to it before
// comes back when it is enabled again; its refresh families end; and it is
// audited: the event is returned with its ID.
func disableClient(ctx context.Context, tx *stmtTx, c storage.Client) (storage.AuditEvent, error) {
	why := storage.ClientDisabled(c.Realm, c.ID, c.UpdatedAt, "seed")
	a := micros(c.UpdatedAt)
	if _, err := tx.ExecContext(ctx, `UPDATE clients SET tokens_valid_after = ? WHERE realm = ? AND id = ?`,
		a, c.Realm, c.ID); err != nil {
		return why, fmt.Errorf("disable %s: %w", clientName(c.Realm, c.ID), err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
		WHERE realm = ? AND client_id = ? AND revoked_at IS NULL`, a, storage.ReasonClientDisabled, c.Realm, c.ID); err != nil {
		return why, fmt.Errorf("disable %s: %w", clientName(c.Realm, c.ID), err)
	}
	var err error
	why.ID, err = appendAudit(ctx, tx, why)
	return why, err
}
