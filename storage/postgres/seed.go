package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// seedLockID names the transaction-level advisory lock ApplySeed takes
// ("lkseed" in ASCII). Any fixed number works; it only has to differ from goose's.
const seedLockID int64 = 0x6c6b73656564

// seedOutcome is what applying one seed entity did.
type seedOutcome int

const (
	seedCreated seedOutcome = iota
	seedUpdated
	seedUnchanged
)

func count(res *storage.SeedResult, o seedOutcome) {
	switch o {
	case seedCreated:
		res.Created++
	case seedUpdated:
		res.Updated++
	case seedUnchanged:
		res.Unchanged++
	}
}

// ApplySeed creates or updates the seed's realms, clients and users in one
// transaction. Instances starting together may apply the same seed at once:
// the advisory lock makes them take turns, so the second finds the first's rows
// (READ COMMITTED reads afresh after the wait) instead of failing on them.
func (s *Store) ApplySeed(ctx context.Context, seed storage.Seed) (storage.SeedResult, error) {
	var res storage.SeedResult
	err := s.beginFunc(ctx, s.pool.patient(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, seedLockID); err != nil {
			return fmt.Errorf("wait for other seeds: %w", err)
		}
		for _, sr := range seed.Realms {
			name := sr.Realm.Name
			outcome, err := seedRealm(ctx, tx, sr.Realm)
			if err != nil {
				return fmt.Errorf("realm %q: %w", name, err)
			}
			count(&res, outcome)
			for _, c := range sr.Clients {
				c.Realm = name
				outcome, why, err := seedClient(ctx, tx, c)
				if err != nil {
					return fmt.Errorf("client %q in realm %q: %w", c.ID, name, err)
				}
				count(&res, outcome)
				if why.ID != 0 {
					res.Audit = append(res.Audit, why)
				}
			}
			// Roles after clients (a client role needs its client), before the
			// users that name them; references are checked once all are there.
			for _, r := range sr.Roles {
				r.Realm = name
				outcome, err := seedRole(ctx, tx, r)
				if err != nil {
					return fmt.Errorf("%s: %w", roleName(name, r.ClientID, r.Name), err)
				}
				count(&res, outcome)
			}
			for _, u := range sr.Users {
				u.Realm = name
				outcome, why, err := seedUser(ctx, tx, u)
				if err != nil {
					return fmt.Errorf("user %q in realm %q: %w", u.Username, name, err)
				}
				count(&res, outcome)
				if why.ID != 0 {
					res.Audit = append(res.Audit, why)
				}
			}
			if err := checkSeedRefs(ctx, tx, name, sr); err != nil {
				return err
			}
			if err := putSeedPasswordMACs(ctx, tx, name, sr.PasswordMACs); err != nil {
				return fmt.Errorf("realm %q: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return storage.SeedResult{}, fmt.Errorf("apply seed: %w", err)
	}
	return res, nil
}

func seedRealm(ctx context.Context, q querier, r storage.Realm) (seedOutcome, error) {
	old, err := getRealm(ctx, q, r.Name)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return seedCreated, classify(insertRealm(ctx, q, r))
	case err != nil:
		return 0, err
	case storage.SameRealm(old, r):
		return seedUnchanged, nil
	}
	_, err = updateRealm(ctx, q, r)
	return seedUpdated, classify(err)
}

func seedRole(ctx context.Context, q querier, r storage.Role) (seedOutcome, error) {
	old, err := getRole(ctx, q, r.Realm, r.ClientID, r.Name, "")
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return seedCreated, insertRole(ctx, q, r)
	case err != nil:
		return 0, err
	case storage.SameRole(old, r):
		return seedUnchanged, nil
	}
	r.CreatedAt = old.CreatedAt
	return seedUpdated, updateRole(ctx, q, r)
}

// checkSeedRefs fails when a role reference of the seed names no role.
func checkSeedRefs(ctx context.Context, q querier, realm string, sr storage.SeedRealm) error {
	for _, c := range sr.Clients {
		if err := checkRefs(ctx, q, realm, fmt.Sprintf("client %q in realm %q", c.ID, realm), c.ServiceAccountRoles); err != nil {
			return err
		}
	}
	for _, r := range sr.Roles {
		if err := checkRefs(ctx, q, realm, roleName(realm, r.ClientID, r.Name), r.Composites); err != nil {
			return err
		}
	}
	for _, u := range sr.Users {
		if err := checkRefs(ctx, q, realm, fmt.Sprintf("user %q in realm %q", u.Username, realm), u.Roles); err != nil {
			return err
		}
	}
	return nil
}

// seedClient creates or updates the client, and returns the audit event it
// appended, if any, with its ID.
func seedClient(ctx context.Context, q querier, c storage.Client) (seedOutcome, storage.AuditEvent, error) {
	var why storage.AuditEvent
	old, err := getClient(ctx, q, c.Realm, c.ID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return seedCreated, why, classify(insertClient(ctx, q, c))
	case err != nil:
		return 0, why, err
	case storage.SameClient(old, c):
		return seedUnchanged, why, nil
	}
	// The stamp and the previous secret are state the seed does not own, but for
	// disabling the client, which moves the stamp (see disableClient).
	c.TokensValidAfter, c.PreviousSecretHash, c.PreviousSecretExpiresAt =
		old.TokensValidAfter, old.PreviousSecretHash, old.PreviousSecretExpiresAt
	reason := storage.ClientRevocation(old, &c)
	if _, err = updateClient(ctx, q, c); err != nil {
		return 0, why, classify(err)
	}
	if !old.Disabled && c.Disabled {
		if why, err = disableClient(ctx, q, c, reason); err != nil {
			return 0, why, err
		}
	}
	return seedUpdated, why, nil
}

// disableClient ends all a client holds, in the caller's transaction, at its
// security stamp, moved by the caller to its UpdatedAt (reason is "" when it
// could not move later), as UpdateClient does; and it is audited: the event is
// returned with its ID.
func disableClient(ctx context.Context, q querier, c storage.Client, reason string) (storage.AuditEvent, error) {
	why := storage.ClientDisabled(c.Realm, c.ID, c.UpdatedAt, "seed")
	if reason != "" {
		if err := endClientGrants(ctx, q, c.Realm, c.ID, c.TokensValidAfter, reason); err != nil {
			return why, err
		}
	}
	var err error
	why.ID, err = appendAudit(ctx, q, why)
	return why, err
}

// seedUser matches an existing user by username; that user keeps its ID,
// CreatedAt and security stamp, which are state, not configuration. It returns
// the audit event it appended, if any, with its ID.
func seedUser(ctx context.Context, q querier, u storage.User) (seedOutcome, storage.AuditEvent, error) {
	old, err := getUserByUsername(ctx, q, u.Realm, u.Username)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return seedCreated, storage.AuditEvent{}, classify(insertUser(ctx, q, u))
	case err != nil:
		return 0, storage.AuditEvent{}, err
	case storage.SameUser(old, u):
		return seedUnchanged, storage.AuditEvent{}, nil
	}
	u.ID, u.CreatedAt, u.TokensValidAfter = old.ID, old.CreatedAt, old.TokensValidAfter
	var why storage.AuditEvent
	reason := storage.ReasonUserDisabled
	switch {
	case !old.Disabled && u.Disabled:
		why = storage.UserDisabled(u.Realm, u.ID, u.UpdatedAt, "seed")
	case old.PasswordHash != u.PasswordHash:
		why, reason = storage.PasswordChanged(u.Realm, u.ID, u.UpdatedAt, "seed"), storage.ReasonPasswordChanged
	}
	if why.Type != "" {
		// The security stamp moves: every token issued so far is dead for good,
		// and enabling the user later brings none back.
		u.TokensValidAfter = u.UpdatedAt
	}
	if _, err := updateUser(ctx, q, u); err != nil {
		return 0, why, classify(err)
	}
	if why.Type != "" {
		if err := endUserGrants(ctx, q, u, u.UpdatedAt, reason); err != nil {
			return 0, why, err
		}
		if why.ID, err = appendAudit(ctx, q, why); err != nil {
			return 0, why, err
		}
	}
	return seedUpdated, why, nil
}

// endUserGrants ends all a user holds, in the caller's transaction, at their
// security stamp (moved there by the caller): their sessions end, their refresh
// families are revoked for reason, and their codes not yet redeemed are deleted.
// The seed and UpdateUser share it.
func endUserGrants(ctx context.Context, q querier, u storage.User, at time.Time, reason string) error {
	// The stamp's move, and every session and family ended, are recorded.
	if err := recordChange(ctx, q, storage.Change{Time: at, Realm: u.Realm, Kind: storage.ChangeUserRevoked,
		Subject: u.ID, UserID: u.ID, Reason: reason}); err != nil {
		return err
	}
	if _, err := endAndRecord(ctx, q, storage.ChangeSessionEnded, at, reason, revokeUserSessions, u.Realm, u.ID, ts(at)); err != nil {
		return fmt.Errorf("end sessions of user %q in realm %q: %w", u.ID, u.Realm, err)
	}
	if _, err := endAndRecord(ctx, q, storage.ChangeFamilyRevoked, at, reason, revokeUserFamilies, u.Realm, u.ID, ts(at), reason); err != nil {
		return fmt.Errorf("revoke refresh families of user %q in realm %q: %w", u.ID, u.Realm, err)
	}
	if _, err := q.Exec(ctx, deleteUserCodes, u.Realm, u.ID); err != nil {
		return fmt.Errorf("delete codes of user %q in realm %q: %w", u.ID, u.Realm, err)
	}
	return nil
}

// deleteUserCodes deletes a user's codes not yet redeemed: args realm, user ID.
const deleteUserCodes = `DELETE FROM auth_codes WHERE realm = $1 AND user_id = $2 AND consumed_at IS NULL`
