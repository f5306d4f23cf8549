// Package storecache keeps realms and clients, which every request reads and which
// rarely change, in memory for a moment in front of the store.
package storecache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// maxEntries bounds each map, so lookups of made-up realm or client names cannot
// grow it without end: past it the map is emptied and fills again.
const maxEntries = 10000

// Store is a storage.Store whose GetRealm and GetClient answers (found or not
// found) are kept for ttl. Changes made through it take effect at once on this
// instance; changes made elsewhere (another instance, the CLI) within ttl.
type Store struct {
	storage.Store
	ttl time.Duration
	now func() time.Time

	mu      sync.RWMutex
	realms  map[string]entry[storage.Realm]
	clients map[clientKey]entry[storage.Client]
}

type entry[T any] struct {
	v   T
	err error // nil or storage.ErrNotFound
	at  time.Time
}

type clientKey struct{ realm, id string }

// New wraps st.
func New(st storage.Store, ttl time.Duration, now func() time.Time) *Store {
	return &Store{Store: st, ttl: ttl, now: now,
		realms: map[string]entry[storage.Realm]{}, clients: map[clientKey]entry[storage.Client]{}}
}

// cached runs load unless m holds a fresh answer for k, and remembers the answer.
func cached[K comparable, T any](s *Store, m map[K]entry[T], k K, load func() (T, error)) (T, error) {
	s.mu.RLock()
	e, ok := m[k]
	s.mu.RUnlock()
	if ok && s.now().Sub(e.at) < s.ttl {
		return e.v, e.err
	}
	v, err := load()
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		s.mu.Lock()
		if len(m) >= maxEntries {
			clear(m)
		}
		m[k] = entry[T]{v: v, err: err, at: s.now()}
		s.mu.Unlock()
	}
	return v, err
}

// GetRealm implements storage.RealmStore.
func (s *Store) GetRealm(ctx context.Context, name string) (storage.Realm, error) {
	return cached(s, s.realms, name, func() (storage.Realm, error) { return s.Store.GetRealm(ctx, name) })
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	return cached(s, s.clients, clientKey{realm, id}, func() (storage.Client, error) { return s.Store.GetClient(ctx, realm, id) })
}

// forget drops every cached answer.
func (s *Store) forget() {
	s.mu.Lock()
	clear(s.realms)
	clear(s.clients)
	s.mu.Unlock()
}

// The writes below go to the store, then drop the cache, so this instance sees them at once.

// CreateRealm implements storage.RealmStore.
func (s *Store) CreateRealm(ctx context.Context, r storage.Realm) error {
	defer s.forget()
	return s.Store.CreateRealm(ctx, r)
}

// UpdateRealm implements storage.RealmStore.
func (s *Store) UpdateRealm(ctx context.Context, r storage.Realm) error {
	defer s.forget()
	return s.Store.UpdateRealm(ctx, r)
}

// DeleteRealm implements storage.RealmStore.
func (s *Store) DeleteRealm(ctx context.Context, name string) error {
	defer s.forget()
	return s.Store.DeleteRealm(ctx, name)
}

// CreateClient implements storage.ClientStore.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	defer s.forget()
	return s.Store.CreateClient(ctx, c)
}

// UpdateClient implements storage.ClientStore.
func (s *Store) UpdateClient(ctx context.Context, c storage.Client) error {
	defer s.forget()
	return s.Store.UpdateClient(ctx, c)
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, realm, id string) error {
	defer s.forget()
	return s.Store.DeleteClient(ctx, realm, id)
}

// ApplySeed implements storage.SeedStore.
func (s *Store) ApplySeed(ctx context.Context, seed storage.Seed) (storage.SeedResult, error) {
	defer s.forget()
	return s.Store.ApplySeed(ctx, seed)
}

var _ storage.Store = (*Store)(nil)
