package seed

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/masterkey"
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
	// MACKey keys the MACs of plain-text seed passwords (see storage.SeedRealm),
	// derived from the master key: PasswordMACKey(mk).
	MACKey []byte
	Now    func() time.Time
	// hash and verify run argon2id: password.Hash and password.Verify, unless a
	// test counts calls.
	hash   func(pw string, p password.Params) (string, error)
	verify func(pw, hash string) (bool, error)
}

// PasswordMACKey is the key of seed password MACs under the master key.
func PasswordMACKey(mk *masterkey.Key) []byte { return mk.Derive("seed passwords") }

// Apply stores the file's realms, clients, roles and users in one transaction. Secrets and
// passwords are hashed on the way in. Re-applying the same file changes nothing: a
// client-secret hash is deterministic, and a user whose stored password hash already
// matches keeps it.
func (a *Applier) Apply(ctx context.Context, f *File) (storage.SeedResult, error) {
	now := a.Now().UTC().Truncate(time.Microsecond)
	var s storage.Seed
	for _, r := range f.Realms {
		sr := storage.SeedRealm{Realm: r.StoredRealm(now), PasswordMACs: map[string][]byte{}}
		for _, role := range r.Roles {
			sr.Roles = append(sr.Roles, role.StoredRole(r.Name, "", now))
		}
		for _, c := range r.Clients {
			sr.Clients = append(sr.Clients, a.client(r.Name, c.Client, now))
			for _, role := range c.Roles {
				sr.Roles = append(sr.Roles, role.StoredRole(r.Name, c.ID, now))
			}
		}
		macs, err := a.Store.SeedPasswordMACs(ctx, r.Name)
		if err != nil {
			return storage.SeedResult{}, fmt.Errorf("apply seed: %w", err)
		}
		for _, u := range r.Users {
			su, hashed, err := a.user(ctx, r.Name, u, macs, now)
			if err != nil {
				return storage.SeedResult{}, err
			}
			sr.Users = append(sr.Users, su)
			if u.Password != "" {
				sr.PasswordMACs[u.Username] = a.mac(r.Name, u.Username, u.Password)
			}
			if hashed {
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

// user is the stored form of a seed user. A plain-text password is hashed only
// when the declaration is new: when the MAC stored by an earlier start matches it,
// or (before there was one) the stored hash verifies it, the stored hash is kept;
// so a restart costs no argon2id per user. hashed says whether argon2id ran.
func (a *Applier) user(ctx context.Context, realm string, u registry.User, macs map[string][]byte, now time.Time) (storage.User, bool, error) {
	out := storage.User{
		Realm: realm, ID: rand.Text(), Username: u.Username, Email: u.Email,
		EmailVerified: u.EmailVerified, Name: u.Name, GivenName: u.GivenName, FamilyName: u.FamilyName,
		Roles: u.RoleRefs(), Disabled: u.Disabled, CreatedAt: now, UpdatedAt: now,
	}
	if u.PasswordHash != "" {
		out.PasswordHash = u.PasswordHash
		return out, false, nil
	}
	existing, err := a.Store.GetUserByUsername(ctx, realm, u.Username)
	switch {
	case err == nil:
		if old, ok := macs[u.Username]; ok {
			if hmac.Equal(old, a.mac(realm, u.Username, u.Password)) {
				out.PasswordHash = existing.PasswordHash
				return out, false, nil
			}
		} else if ok, _ := a.argon2Verify(u.Password, existing.PasswordHash); ok {
			out.PasswordHash = existing.PasswordHash
			return out, true, nil
		}
	case !errors.Is(err, storage.ErrNotFound):
		return out, false, fmt.Errorf("apply seed: look up user %q: %w", u.Username, err)
	}
	out.PasswordHash, err = a.argon2Hash(u.Password)
	return out, true, err
}

func (a *Applier) argon2Hash(pw string) (string, error) {
	if a.hash != nil {
		return a.hash(pw, a.Password)
	}
	return password.Hash(pw, a.Password)
}

func (a *Applier) argon2Verify(pw, hash string) (bool, error) {
	if a.verify != nil {
		return a.verify(pw, hash)
	}
	return password.Verify(pw, hash)
}

// mac is the keyed MAC of a seed user's plain-text password, bound to the realm
// and username.
func (a *Applier) mac(realm, username, pw string) []byte {
	m := hmac.New(sha256.New, a.MACKey)
	for _, s := range []string{realm, username, pw} {
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}
