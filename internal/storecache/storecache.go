// Package storecache keeps realms, clients and realms' roles, which every request
// reads and which rarely change, in memory in front of the store until they are
// invalidated.
package storecache

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/latchkey/latchkey/storage"
)

// Byte budgets of each lookup's (realms', clients') answers, as table.put estimates
// them. Not-found answers have their own small budget: they are what made-up
// names produce without end, and so cannot push out the answers for names that exist.
const (
	foundBytes   = 16 << 20
	missingBytes = 1 << 20
)

// Store is a storage.Store whose GetRealm, GetClient and ListRoles answers (found
// or not found) are kept until they are invalidated, or at most ttl. Changes made through
// it take effect at once on this instance; changes made elsewhere (another
// instance, the CLI) when the change feed's follower invalidates them, and within
// ttl should that ever fail.
type Store struct {
	storage.Store
	ttl time.Duration
	now func() time.Time

	mu      sync.RWMutex
	realms  answers[string, storage.Realm]
	clients answers[clientKey, storage.Client]
	roles   answers[string, []storage.Role] // ListRoles, by realm
	// gen counts invalidations. A load that began before one may have read what the
	// invalidation was for, so its answer is not kept: kept, it would live on.
	gen uint64
}

type clientKey struct{ realm, id string }

// answers are the kept answers of one lookup. A not-found answer is a mark, never
// the store's error, which names what was asked for.
type answers[K comparable, T any] struct {
	found   table[K, T]
	missing table[K, struct{}]
	// heapBytes estimates what a key and its value hold outside the map: the bytes
	// of their strings and slices.
	heapBytes func(K, T) int
}

func newAnswers[K comparable, T any](heapBytes func(K, T) int) answers[K, T] {
	return answers[K, T]{heapBytes: heapBytes,
		found:   table[K, T]{max: foundBytes, m: map[K]entry[T]{}},
		missing: table[K, struct{}]{max: missingBytes, m: map[K]entry[struct{}]{}}}
}

func (a *answers[K, T]) clear() {
	a.found.clear()
	a.missing.clear()
}

// table is a map bounded by the bytes its entries take: past max, entries picked at
// random (map order) make room for a new one.
type table[K comparable, V any] struct {
	max, used int
	m         map[K]entry[V]
}

type entry[V any] struct {
	v     V
	at    time.Time
	bytes int
}

func (t *table[K, V]) put(k K, v V, at time.Time, heap int) {
	t.remove(k)
	e := entry[V]{v: v, at: at}
	e.bytes = int(unsafe.Sizeof(k)) + int(unsafe.Sizeof(e)) + mapSlotBytes + heap
	if e.bytes > t.max {
		return
	}
	for old := range t.m {
		if t.used+e.bytes <= t.max {
			break
		}
		t.remove(old)
	}
	t.m[k] = e
	t.used += e.bytes
}

func (t *table[K, V]) remove(k K) {
	if e, ok := t.m[k]; ok {
		t.used -= e.bytes
		delete(t.m, k)
	}
}

func (t *table[K, V]) clear() {
	clear(t.m)
	t.used = 0
}

// mapSlotBytes is a rough allowance for a map slot's share of its table beyond
// the key and the entry (control bytes, load factor).
const mapSlotBytes = 64

func realmBytes(name string, r storage.Realm) int {
	return len(name) + len(r.Name) + len(r.DisplayName) + len(r.SigningAlg)
}

func clientBytes(k clientKey, c storage.Client) int {
	n := len(k.realm) + len(k.id) + len(c.Realm) + len(c.ID) + len(c.Name) + len(c.SecretHash) + len(c.JWKS) +
		len(c.IDTokenSignedResponseAlg) + len(c.Tokens.AccessTokenFormat) + len(c.Tokens.RefreshPreset) + len(c.Tokens.RefreshTokenFormat) + len(c.BackchannelLogoutURI)
	for _, list := range [][]string{c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes, c.Audiences, c.WebOrigins, c.DefaultScopes, c.TokenExchangeAudiences} {
		for _, s := range list {
			n += int(unsafe.Sizeof(s)) + len(s)
		}
	}
	for _, r := range c.ServiceAccountRoles {
		n += int(unsafe.Sizeof(r)) + len(r.ClientID) + len(r.Name)
	}
	return n
}

func rolesBytes(realm string, roles []storage.Role) int {
	n := len(realm) + int(unsafe.Sizeof(storage.Role{}))*cap(roles)
	for _, r := range roles {
		n += len(r.Realm) + len(r.ClientID) + len(r.Name) + len(r.Description) +
			int(unsafe.Sizeof(storage.RoleRef{}))*cap(r.Composites)
		for _, c := range r.Composites {
			n += len(c.ClientID) + len(c.Name)
		}
	}
	return n
}

// New wraps st.
func New(st storage.Store, ttl time.Duration, now func() time.Time) *Store {
	return &Store{Store: st, ttl: ttl, now: now, realms: newAnswers(realmBytes), clients: newAnswers(clientBytes),
		roles: newAnswers(rolesBytes)}
}

// cached runs load unless a holds a fresh answer for k, and remembers the answer.
// Not found is always the bare storage.ErrNotFound.
func cached[K comparable, T any](s *Store, a *answers[K, T], k K, load func() (T, error)) (T, error) {
	var zero T
	now := s.now()
	s.mu.RLock()
	found, isFound := a.found.m[k]
	missing, isMissing := a.missing.m[k]
	gen := s.gen
	s.mu.RUnlock()
	switch {
	case isFound && now.Sub(found.at) < s.ttl:
		return found.v, nil
	case isMissing && now.Sub(missing.at) < s.ttl:
		return zero, storage.ErrNotFound
	}
	v, err := load()
	switch {
	case err == nil:
		s.mu.Lock()
		if s.gen == gen {
			a.missing.remove(k)
			a.found.put(k, v, now, a.heapBytes(k, v))
		}
		s.mu.Unlock()
	case errors.Is(err, storage.ErrNotFound):
		s.mu.Lock()
		if s.gen == gen {
			a.found.remove(k)
			a.missing.put(k, struct{}{}, now, a.heapBytes(k, zero))
		}
		s.mu.Unlock()
		return zero, storage.ErrNotFound
	}
	return v, err
}

// GetRealm implements storage.RealmStore.
func (s *Store) GetRealm(ctx context.Context, name string) (storage.Realm, error) {
	return cached(s, &s.realms, name, func() (storage.Realm, error) { return s.Store.GetRealm(ctx, name) })
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	return cached(s, &s.clients, clientKey{realm, id}, func() (storage.Client, error) { return s.Store.GetClient(ctx, realm, id) })
}

// ListRoles implements storage.RoleStore. The roles' Composites are shared by
// every caller: they must not change them.
func (s *Store) ListRoles(ctx context.Context, realm string) ([]storage.Role, error) {
	roles, err := cached(s, &s.roles, realm, func() ([]storage.Role, error) { return s.Store.ListRoles(ctx, realm) })
	return slices.Clone(roles), err
}

// InvalidateRoles drops what is kept of the realm's roles.
func (s *Store) InvalidateRoles(realm string) {
	s.mu.Lock()
	s.gen++
	s.roles.found.remove(realm)
	s.roles.missing.remove(realm)
	s.mu.Unlock()
}

// InvalidateRealm drops what is kept of the realm, of its clients and of its
// roles (deleting a realm deletes them).
func (s *Store) InvalidateRealm(realm string) {
	s.mu.Lock()
	s.gen++
	s.realms.found.remove(realm)
	s.realms.missing.remove(realm)
	s.roles.found.remove(realm)
	s.roles.missing.remove(realm)
	removeClientsOf(&s.clients.found, realm)
	removeClientsOf(&s.clients.missing, realm)
	s.mu.Unlock()
}

// InvalidateClient drops what is kept of the realm's client.
func (s *Store) InvalidateClient(realm, id string) {
	s.mu.Lock()
	s.gen++
	s.clients.found.remove(clientKey{realm, id})
	s.clients.missing.remove(clientKey{realm, id})
	s.mu.Unlock()
}

// Clear drops everything kept, for when changes may have been missed.
func (s *Store) Clear() {
	s.mu.Lock()
	s.gen++
	s.realms.clear()
	s.clients.clear()
	s.roles.clear()
	s.mu.Unlock()
}

func removeClientsOf[V any](t *table[clientKey, V], realm string) {
	for k := range t.m {
		if k.realm == realm {
			t.remove(k)
		}
	}
}

// The writes below go to the store, then drop the cache, so this instance sees them at once.

// CreateRealm implements storage.RealmStore.
func (s *Store) CreateRealm(ctx context.Context, r storage.Realm, events ...storage.AuditEvent) error {
	defer s.Clear()
	return s.Store.CreateRealm(ctx, r, events...)
}

// UpdateRealm implements storage.RealmStore.
func (s *Store) UpdateRealm(ctx context.Context, name string, fn func(r *storage.Realm) ([]storage.AuditEvent, error)) (storage.Realm, error) {
	defer s.Clear()
	return s.Store.UpdateRealm(ctx, name, fn)
}

// DeleteRealm implements storage.RealmStore.
func (s *Store) DeleteRealm(ctx context.Context, name string, events ...storage.AuditEvent) error {
	defer s.Clear()
	return s.Store.DeleteRealm(ctx, name, events...)
}

// CreateClient implements storage.ClientStore.
func (s *Store) CreateClient(ctx context.Context, c storage.Client, events ...storage.AuditEvent) error {
	defer s.Clear()
	return s.Store.CreateClient(ctx, c, events...)
}

// UpdateClient implements storage.ClientStore.
func (s *Store) UpdateClient(ctx context.Context, realm, id string, fn func(c *storage.Client) ([]storage.AuditEvent, error)) (storage.Client, error) {
	defer s.Clear()
	return s.Store.UpdateClient(ctx, realm, id, fn)
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	defer s.Clear()
	return s.Store.DeleteClient(ctx, realm, id, events...)
}

// CreateRole implements storage.RoleStore.
func (s *Store) CreateRole(ctx context.Context, r storage.Role, events ...storage.AuditEvent) error {
	defer s.Clear()
	return s.Store.CreateRole(ctx, r, events...)
}

// UpdateRole implements storage.RoleStore.
func (s *Store) UpdateRole(ctx context.Context, realm, clientID, name string, fn func(r *storage.Role) ([]storage.AuditEvent, error)) (storage.Role, error) {
	defer s.Clear()
	return s.Store.UpdateRole(ctx, realm, clientID, name, fn)
}

// DeleteRole implements storage.RoleStore. It drops clients too: the role
// leaves their service-account roles.
func (s *Store) DeleteRole(ctx context.Context, realm, clientID, name string, events ...storage.AuditEvent) error {
	defer s.Clear()
	return s.Store.DeleteRole(ctx, realm, clientID, name, events...)
}

// ApplySeed implements storage.SeedStore.
func (s *Store) ApplySeed(ctx context.Context, seed storage.Seed) (storage.SeedResult, error) {
	defer s.Clear()
	return s.Store.ApplySeed(ctx, seed)
}

var _ storage.Store = (*Store)(nil)
