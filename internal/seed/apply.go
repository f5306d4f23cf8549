package seed

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// Store is what applying a seed needs.
type Store interface {
	storage.SeedStore
	GetUserByUsername(ctx context.Context, realm, username string) (storage.User, error)
}

// Applier turns a validated File into stored realms, clients and users.
type Applier struct {
	Store    Store
	Secrets  *clientsecret.Hasher
	Password password.Params
	Now      func() time.Time
}

// Apply stores the file's realms, clients and users in one transaction. Secrets and
// passwords are hashed on the way in. Re-applying the same file changes nothing: a
// client-secret hash is deterministic, and a user whose stored password hash already
// matches keeps it.
func (a *Applier) Apply(ctx context.Context, f *File) (storage.SeedResult, error) {
	now := a.Now().UTC().Truncate(time.Microsecond)
	var s storage.Seed
	for _, r := range f.Realms {
		sr := storage.SeedRealm{Realm: r.StoredRealm(now)}
		for _, c := range r.Clients {
			sr.Clients = append(sr.Clients, a.client(r.Name, c, now))
		}
		for _, u := range r.Users {
			su, err := a.user(ctx, r.Name, u, now)
			if err != nil {
				return storage.SeedResult{}, err
			}
			sr.Users = append(sr.Users, su)
			if u.PasswordHash == "" {
				// argon2id takes 19 MiB a hash; collect it before the next user's, so
				// seeding many users does not raise the process's memory high-water mark.
				runtime.GC()
			}
		}
		s.Realms = append(s.Realms, sr)
	}
	res, err := a.Store.ApplySeed(ctx, s)
	if err != nil {
		return res, fmt.Errorf("apply seed: %w", err)
	}
	return res, nil
}

func (a *Applier) client(realm string, c registry.Client, now time.Time) storage.Client {
	var hash string
	if c.Secret != "" {
		hash = a.Secrets.Hash(realm, c.ID, c.Secret)
	}
	return c.StoredClient(realm, hash, now)
}

func (a *Applier) user(ctx context.Context, realm string, u registry.User, now time.Time) (storage.User, error) {
	out := storage.User{
		Realm: realm, ID: rand.Text(), Username: u.Username, Email: u.Email,
		EmailVerified: u.EmailVerified, Name: u.Name, Disabled: u.Disabled,
		CreatedAt: now, UpdatedAt: now,
	}
	if u.PasswordHash != "" {
		out.PasswordHash = u.PasswordHash
		return out, nil
	}
	existing, err := a.Store.GetUserByUsername(ctx, realm, u.Username)
	switch {
	case err == nil:
		if ok, _ := password.Verify(u.Password, existing.PasswordHash); ok {
			out.PasswordHash = existing.PasswordHash
			return out, nil
		}
	case !errors.Is(err, storage.ErrNotFound):
		return out, fmt.Errorf("apply seed: look up user %q: %w", u.Username, err)
	}
	out.PasswordHash, err = password.Hash(u.Password, a.Password)
	return out, err
}
