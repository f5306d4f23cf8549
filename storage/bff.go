package storage

import (
	"context"
	"fmt"
	"time"
)

// The sessions of `latchkey bff` (issue 15): a backend-for-frontend keeps each
// browser's tokens sealed server side, and instances that share a store share
// its sessions. The store keeps the sealed bytes opaque; it never sees a token.

// Bounds of a BFFSession's fields, in bytes. A record past one is refused: the
// values come from outside (a cookie's hash, an ID token's claims) and must not
// grow the store without end.
const (
	MaxBFFSessionID      = 128      // the hex SHA-256 of the cookie's value is 64
	MaxBFFSessionSID     = 255      // the issuer's session ID (ID token sid)
	MaxBFFSessionSubject = 255      // OpenID Connect Core §2: sub is at most 255 ASCII characters
	MaxBFFSessionSealed  = 64 << 10 // sealed tokens, claims and a DPoP key
)

// BFFSession is one browser's session at a backend-for-frontend.
type BFFSession struct {
	ID        string    // the SHA-256 (hex) of the cookie's opaque value; the value itself is never stored
	SID       string    // the issuer's session ID (ID token sid); empty when the ID token had none
	Subject   string    // ID token sub
	Sealed    []byte    // AES-GCM sealed tokens and claims, opaque to the store
	ExpiresAt time.Time // absolute end of the session; required
	Version   int64     // bumped by every Update
}

// Check says whether the store can keep s: an ID, an expiry, and every field
// within its bound. Put and Update refuse a record that fails it.
func (s BFFSession) Check() error {
	switch {
	case s.ID == "":
		return fmt.Errorf("bff session: empty ID")
	case len(s.ID) > MaxBFFSessionID:
		return fmt.Errorf("bff session: ID of %d bytes, over %d", len(s.ID), MaxBFFSessionID)
	case len(s.SID) > MaxBFFSessionSID:
		return fmt.Errorf("bff session: sid of %d bytes, over %d", len(s.SID), MaxBFFSessionSID)
	case len(s.Subject) > MaxBFFSessionSubject:
		return fmt.Errorf("bff session: subject of %d bytes, over %d", len(s.Subject), MaxBFFSessionSubject)
	case len(s.Sealed) > MaxBFFSessionSealed:
		return fmt.Errorf("bff session: sealed record of %d bytes, over %d", len(s.Sealed), MaxBFFSessionSealed)
	case s.ExpiresAt.IsZero():
		return fmt.Errorf("bff session: no expiry")
	}
	return nil
}

// BFFSessionStore keeps the sessions of backends-for-frontends. Its methods are
// those of bff.SessionStore, with storage's record type and sentinel errors.
type BFFSessionStore interface {
	// Get returns the session with that ID. ErrNotFound if there is none or it
	// expired at now (ExpiresAt not after now).
	Get(ctx context.Context, id string, now time.Time) (BFFSession, error)
	// Put creates the session or replaces the one with the same ID, Version as
	// given. An error (not a sentinel) if it fails Check.
	Put(ctx context.Context, s BFFSession) error
	// Update runs fn on the live session with that ID and stores what fn returns,
	// with the ID kept and Version one more than the stored one, in one
	// transaction that holds the row: racing updates of one session take turns,
	// and none is lost. It returns what it stored. An error from fn is returned
	// as it is and nothing changes; a result that fails Check changes nothing.
	// fn may run more than once (see Updater functions). ErrNotFound if there is
	// no such session or it expired at now.
	Update(ctx context.Context, id string, now time.Time, fn func(BFFSession) (BFFSession, error)) (BFFSession, error)
	// Delete deletes the session; deleting one that does not exist is no error
	// (a logout that races another ends the session either way).
	Delete(ctx context.Context, id string) error
	// DeleteByIssuerSession deletes every session of that issuer session (sid),
	// for back-channel logout, and says how many. An empty sid deletes nothing.
	DeleteByIssuerSession(ctx context.Context, sid string) (int, error)
	// DeleteBySubject deletes every session of that subject (a logout token
	// without sid) and says how many. An empty subject deletes nothing.
	DeleteBySubject(ctx context.Context, sub string) (int, error)
	// Purge deletes sessions that expired before now and says how many.
	Purge(ctx context.Context, now time.Time) (int, error)
}

// BFFStore hands out the store's BFFSessionStore. The sessions are a store of
// their own, not methods of Store, so that their short names (Get, Put) do not
// mix with the rest.
type BFFStore interface {
	BFFSessions() BFFSessionStore
}
