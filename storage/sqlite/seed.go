package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

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
			// stamp are state the seed does not own.
			_, err := tx.ExecContext(ctx, `UPDATE users SET email = ?, email_verified = ?, name = ?,
				password_hash = ?, disabled = ?, updated_at = ? WHERE id = ?`,
				u.Email, u.EmailVerified, u.Name, u.PasswordHash, u.Disabled, micros(u.UpdatedAt), have.ID)
			if err != nil {
				return mapWriteError(err, userName(have.Realm, have.ID))
			}
			if !have.Disabled && u.Disabled {
				if err := disableUser(ctx, tx, have, u.UpdatedAt); err != nil {
					return err
				}
			}
			res.Updated++
		}
	}
	return nil
}

// disableUser does what turning a user from enabled to disabled means, in the
// caller's transaction: the security stamp moves to at, so every token issued
// before is dead for good (enabling the user later brings none back); their
// sessions and refresh families end; and the change is audited.
func disableUser(ctx context.Context, tx *stmtTx, u storage.User, at time.Time) error {
	a := micros(at)
	for _, stmt := range []struct {
		query string
		args  []any
	}{
		{`UPDATE users SET tokens_valid_after = ? WHERE id = ?`, []any{a, u.ID}},
		{`UPDATE sessions SET revoked_at = ? WHERE realm = ? AND user_id = ? AND revoked_at IS NULL`, []any{a, u.Realm, u.ID}},
		{`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
			WHERE realm = ? AND user_id = ? AND revoked_at IS NULL`, []any{a, storage.ReasonUserDisabled, u.Realm, u.ID}},
	} {
		if _, err := tx.ExecContext(ctx, stmt.query, stmt.args...); err != nil {
			return fmt.Errorf("disable %s: %w", userName(u.Realm, u.ID), err)
		}
	}
	_, err := appendAudit(ctx, tx, storage.UserDisabled(u.Realm, u.ID, at, "seed"))
	return err
}
