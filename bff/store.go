package bff

import (
	"context"
	"errors"
	"sync"
	"time"
)

// SessionStore keeps sealed session records; the BFF never stores a token unsealed.
type SessionStore interface {
	// Get returns the record with that ID; ErrSessionNotFound when none or expired at now.
	Get(ctx context.Context, id string, now time.Time) (SessionRecord, error)
	// Put creates or replaces the record.
	Put(ctx context.Context, rec SessionRecord) error
	// Update runs fn on the current record and stores what fn returns, atomically
	// (one transaction / one lock); fn returning an error changes nothing.
	Update(ctx context.Context, id string, now time.Time, fn func(SessionRecord) (SessionRecord, error)) (SessionRecord, error)
	Delete(ctx context.Context, id string) error
	// DeleteByIssuerSession ends every record of that OIDC session (sid), for back-channel logout;
	// DeleteBySubject every record of that sub (a logout token without sid). Both return how many.
	DeleteByIssuerSession(ctx context.Context, sid string) (int, error)
	DeleteBySubject(ctx context.Context, sub string) (int, error)
	// Purge deletes records expired before now.
	Purge(ctx context.Context, now time.Time) (int, error)
}

// SessionRecord is one BFF session as a store keeps it.
type SessionRecord struct {
	ID        string    // the SHA-256 (hex) of the cookie's opaque value; the value itself is never stored
	SID       string    // the issuer's session ID (ID token sid)
	Subject   string    // ID token sub
	Sealed    []byte    // AES-GCM sealed tokens + claims (access, refresh, ID token, expiries, DPoP private key JWK)
	ExpiresAt time.Time // absolute end of the BFF session
	Version   int64     // bumped by every Update (optimistic checks are the store's business)
}

// ErrSessionNotFound is returned by a SessionStore for an unknown or expired session.
var ErrSessionNotFound = errors.New("bff: session not found")

// ErrTooManySessions is returned by the memory store's Put when it is full.
var ErrTooManySessions = errors.New("bff: too many sessions")

// DefaultMaxMemorySessions bounds NewMemorySessions.
const DefaultMaxMemorySessions = 100_000

// NewMemorySessions returns an in-process SessionStore holding at most
// DefaultMaxMemorySessions records; past that, Put of a new record purges the
// expired ones and, if still full, fails with ErrTooManySessions.
func NewMemorySessions() SessionStore { return newMemorySessions(DefaultMaxMemorySessions) }

func newMemorySessions(max int) *memorySessions {
	return &memorySessions{max: max, recs: map[string]SessionRecord{}, locks: map[string]*idLock{}}
}

type memorySessions struct {
	mu    sync.Mutex
	max   int
	recs  map[string]SessionRecord
	locks map[string]*idLock // one per session being updated
}

// idLock serialises Updates of one session, so that fn (a network refresh) runs
// without holding the store-wide lock.
type idLock struct {
	mu    sync.Mutex
	users int
}

var _ SessionStore = (*memorySessions)(nil)

func (m *memorySessions) Get(_ context.Context, id string, now time.Time) (SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[id]
	if !ok || !now.Before(rec.ExpiresAt) {
		return SessionRecord{}, ErrSessionNotFound
	}
	return cloneRecord(rec), nil
}

func (m *memorySessions) Put(_ context.Context, rec SessionRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[rec.ID]; !ok && len(m.recs) >= m.max {
		m.purgeLocked(time.Now())
		if len(m.recs) >= m.max {
			return ErrTooManySessions
		}
	}
	m.recs[rec.ID] = cloneRecord(rec)
	return nil
}

func (m *memorySessions) Update(_ context.Context, id string, now time.Time, fn func(SessionRecord) (SessionRecord, error)) (SessionRecord, error) {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &idLock{}
		m.locks[id] = l
	}
	l.users++
	m.mu.Unlock()
	l.mu.Lock()
	defer func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.locks, id)
		}
		m.mu.Unlock()
	}()

	m.mu.Lock()
	cur, ok := m.recs[id]
	m.mu.Unlock()
	if !ok || !now.Before(cur.ExpiresAt) {
		return SessionRecord{}, ErrSessionNotFound
	}
	next, err := fn(cloneRecord(cur))
	if err != nil {
		return SessionRecord{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[id]; !ok {
		return SessionRecord{}, ErrSessionNotFound // deleted (logout) while fn ran: stays deleted
	}
	next.ID = id
	next.Version = cur.Version + 1
	m.recs[id] = cloneRecord(next)
	return cloneRecord(next), nil
}

func (m *memorySessions) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, id)
	return nil
}

func (m *memorySessions) DeleteByIssuerSession(_ context.Context, sid string) (int, error) {
	return m.deleteWhere(func(r SessionRecord) bool { return sid != "" && r.SID == sid }), nil
}

func (m *memorySessions) DeleteBySubject(_ context.Context, sub string) (int, error) {
	return m.deleteWhere(func(r SessionRecord) bool { return sub != "" && r.Subject == sub }), nil
}

func (m *memorySessions) Purge(_ context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.purgeLocked(now), nil
}

func (m *memorySessions) purgeLocked(now time.Time) int {
	n := 0
	for id, r := range m.recs {
		if r.ExpiresAt.Before(now) {
			delete(m.recs, id)
			n++
		}
	}
	return n
}

func (m *memorySessions) deleteWhere(match func(SessionRecord) bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, r := range m.recs {
		if match(r) {
			delete(m.recs, id)
			n++
		}
	}
	return n
}

func cloneRecord(r SessionRecord) SessionRecord {
	r.Sealed = append([]byte(nil), r.Sealed...)
	return r
}
