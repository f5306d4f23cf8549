package kcimport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/storage"
)

// UserLookup finds a user of the realm by username: ErrNotFound if there is none.
type UserLookup func(ctx context.Context, realm, username string) (storage.User, error)

// SeedOptions say how a Result becomes a seed.
type SeedOptions struct {
	Secrets *clientsecret.Hasher // hashes confidential clients' secrets
	Now     time.Time
	// Lookup finds the users already stored, whose passwords the import keeps
	// unless ReplacePasswords (see Seed).
	Lookup           UserLookup
	ReplacePasswords bool
}

// Seed is the storage seed of the result, for storage.SeedStore.ApplySeed.
// Secrets are hashed as the seed file's are. A user already stored whose password
// hash is not the export's keeps theirs, and a Problem says so, unless
// ReplacePasswords: the user may have signed in since an earlier import (and had
// their hash replaced with argon2id) or changed their password in Latchkey, and
// replacing it would end all they hold. A user the export gives no usable
// password keeps theirs too.
func (r *Result) Seed(ctx context.Context, o SeedOptions) (storage.Seed, []Problem, error) {
	realm := r.Realm.Name
	now := o.Now.UTC().Truncate(time.Microsecond)
	sr := storage.SeedRealm{Realm: r.Realm.StoredRealm(now)}
	for _, c := range r.Clients {
		var hash string
		if c.Secret != "" {
			hash = o.Secrets.Hash(realm, c.ID, c.Secret)
		}
		sc := c.StoredClient(realm, hash, now)
		sc.ServiceAccountRoles, sc.DefaultScopes = c.ServiceAccountRoles, c.DefaultScopes
		sr.Clients = append(sr.Clients, sc)
	}
	for _, ro := range r.Roles {
		ro.Realm, ro.CreatedAt, ro.UpdatedAt = realm, now, now
		sr.Roles = append(sr.Roles, ro)
	}
	var problems []Problem
	for _, u := range r.Users {
		su := storage.User{Realm: realm, ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified,
			Name: u.Name, GivenName: u.GivenName, FamilyName: u.FamilyName, PasswordHash: u.PasswordHash,
			Disabled: u.Disabled, Roles: u.Roles, CreatedAt: now, UpdatedAt: now}
		if su.ID == "" {
			su.ID = rand.Text()
		}
		if o.Lookup != nil {
			old, err := o.Lookup(ctx, realm, u.Username)
			switch {
			case errors.Is(err, storage.ErrNotFound):
			case err != nil:
				return storage.Seed{}, nil, fmt.Errorf("look up user %q: %w", u.Username, err)
			case old.PasswordHash == su.PasswordHash || old.PasswordHash == "":
			case su.PasswordHash == "":
				su.PasswordHash = old.PasswordHash
			case !o.ReplacePasswords:
				su.PasswordHash = old.PasswordHash
				problems = append(problems, Problem{Path: jsonPath("users", u.index, "credentials"),
					Msg: fmt.Sprintf("user %q already has another password in Latchkey: kept (--replace-passwords replaces it, and ends their sessions and tokens)", u.Username)})
			}
		}
		sr.Users = append(sr.Users, su)
	}
	return storage.Seed{Realms: []storage.SeedRealm{sr}}, problems, nil
}
