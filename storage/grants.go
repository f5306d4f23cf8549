package storage

import (
	"context"
	"fmt"
	"time"
)

// The state of the grants of issue 14 (DPoP, PAR, the device authorization
// grant). Every instance on a store shares it, so a proof, a request_uri or a
// device code is used once however many instances serve the realm.

// DPoPProofStore remembers the proofs of possession (RFC 9449) a key was used
// with, so none is accepted twice (§11.1).
type DPoPProofStore interface {
	// UseDPoPProof records the proof's jti for the realm and key thumbprint (jkt)
	// until until, exactly once across all callers and instances. ErrAlreadyUsed if
	// it was recorded before (an entry that expired but is not yet purged counts).
	UseDPoPProof(ctx context.Context, realm, jkt, jti string, until time.Time) error
	// PurgeDPoPProofs deletes entries that expired before the given time and says how many.
	PurgeDPoPProofs(ctx context.Context, before time.Time) (int64, error)
}

// PushedRequest is an authorization request pushed to the PAR endpoint (RFC
// 9126), stored by the hash of the request_uri it was given.
type PushedRequest struct {
	Hash     []byte // SHA-256 of the request_uri
	Realm    string
	ClientID string
	// Params are the authorization request's parameters, JSON, as the caller
	// encodes them; the store keeps them opaque.
	Params    []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// PushedRequestStore keeps pushed authorization requests until they are used.
type PushedRequestStore interface {
	// CreatePushedRequest stores a new pushed request. ErrConflict if the hash is taken.
	CreatePushedRequest(ctx context.Context, p PushedRequest) error
	// UsePushedRequest returns the request and marks it used, in one step, exactly
	// once across all callers and instances (a request_uri is single use, RFC 9126
	// §4). ErrNotFound if it is unknown or expired at now; ErrAlreadyUsed if it was
	// used before (even if it has expired since).
	UsePushedRequest(ctx context.Context, hash []byte, now time.Time) (PushedRequest, error)
	// PurgePushedRequests deletes requests that expired before the given time,
	// used or not, and says how many.
	PurgePushedRequests(ctx context.Context, before time.Time) (int64, error)
}

// The states of a device grant.
const (
	DeviceStatusPending  = "pending"  // waiting for the user
	DeviceStatusApproved = "approved" // the user approved; the next poll starts the grant
	DeviceStatusDenied   = "denied"   // the user refused
	DeviceStatusRedeemed = "redeemed" // a poll started the grant (FamilyID)
)

// DeviceGrant is a device authorization (RFC 8628 §3.1-3.2), stored by the hash
// of its device code, and found by the hash of its user code.
type DeviceGrant struct {
	DeviceCodeHash []byte
	// UserCodeHash is a keyed hash of the normalised user code: lookups go by it.
	UserCodeHash []byte
	Realm        string
	ClientID     string
	Scopes       []string
	Audience     []string
	Status       string // one of the DeviceStatus* values
	// UserID, SessionID and AuthTime are of the user who decided, once decided.
	UserID    string
	SessionID string
	AuthTime  time.Time
	// FamilyID names the refresh family (the grant) a redemption starts.
	FamilyID string
	// Interval is the least time between two polls (RFC 8628 §3.2); a poll that
	// comes sooner makes it 5 s longer (§3.5).
	Interval     time.Duration
	LastPolledAt time.Time
	CreatedAt    time.Time
	ExpiresAt    time.Time
	// IP and UserAgent are of the device that asked: the grant's device.
	IP        string
	UserAgent string
}

// PollResult is what a poll of a device grant found.
type PollResult int

// The results of PollDeviceGrant; each maps to one answer of the token endpoint
// (RFC 8628 §3.5).
const (
	PollPending  PollResult = iota + 1 // authorization_pending
	PollSlowDown                       // slow_down: polled sooner than Interval allows
	PollDenied                         // access_denied
	PollExpired                        // expired_token
	PollApproved                       // the grant started: issue its tokens
)

// String names the result as the token endpoint's error code does.
func (r PollResult) String() string {
	switch r {
	case PollPending:
		return "authorization_pending"
	case PollSlowDown:
		return "slow_down"
	case PollDenied:
		return "access_denied"
	case PollExpired:
		return "expired_token"
	case PollApproved:
		return "approved"
	}
	return "unknown"
}

// SlowDownStep is how much longer a device's polling interval grows each time
// it polls too soon (RFC 8628 §3.5).
const SlowDownStep = 5 * time.Second

// StartDeviceGrant decides, inside PollDeviceGrant's transaction, whether an
// approved device grant starts: it returns the family (with ID g.FamilyID) and
// its first refresh token, or an error to refuse. It must not call the store. It
// is StartGrant for device grants: it gets the DeviceGrant, which has the
// audience and the deciding user an AuthCode would not carry.
type StartDeviceGrant func(g DeviceGrant) (Family, RefreshToken, error)

// DeviceGrantStore keeps device authorizations (RFC 8628) and their polling
// state, shared by every instance.
type DeviceGrantStore interface {
	// CreateDeviceGrant stores a new device grant. ErrConflict if its device code
	// hash or its user code hash is taken by a grant not yet purged.
	CreateDeviceGrant(ctx context.Context, g DeviceGrant) error
	// GetDeviceGrantByUserCode returns the realm's grant with that user code, in
	// whatever state. ErrNotFound if there is none or it expired at now.
	GetDeviceGrantByUserCode(ctx context.Context, realm string, userCodeHash []byte, now time.Time) (DeviceGrant, error)
	// DecideDeviceGrant runs fn on the realm's grant with that user code and
	// stores the Status, UserID, SessionID and AuthTime fn leaves there, in one
	// transaction: only one decision is ever made. fn must set Status to
	// DeviceStatusApproved or DeviceStatusDenied (anything else is an error and
	// nothing changes); an error from fn is returned as it is and nothing changes;
	// fn may run more than once (see Updater functions). ErrNotFound if there is no
	// such grant or it expired at now; ErrAlreadyUsed if it was decided before.
	DecideDeviceGrant(ctx context.Context, realm string, userCodeHash []byte, now time.Time, fn func(g *DeviceGrant) error) (DeviceGrant, error)
	// PollDeviceGrant is one poll of the device code, as one atomic step across
	// all callers and instances. It returns the grant as the poll leaves it and
	// what it found, in this order:
	//   - ErrNotFound if the device code is unknown;
	//   - ErrAlreadyUsed, with the grant, if a poll redeemed it before (even if it
	//     has expired since): the caller treats it as a replayed code;
	//   - PollExpired if it expired at now;
	//   - PollSlowDown if the last poll was less than Interval before now: Interval
	//     grows by SlowDownStep;
	//   - PollPending, PollDenied as its status says;
	//   - for an approved grant, start is called, the family and first token it
	//     returns are stored (first.FamilyID set to the family's ID) and the status
	//     becomes redeemed, all in the transaction: PollApproved, exactly once. If
	//     start refuses, its error is returned and nothing changes.
	// Every poll but an unknown, redeemed or expired one records now as LastPolledAt.
	PollDeviceGrant(ctx context.Context, deviceCodeHash []byte, now time.Time, start StartDeviceGrant) (DeviceGrant, PollResult, error)
	// PurgeDeviceGrants deletes grants that expired before the given time, in
	// whatever state, and says how many.
	PurgeDeviceGrants(ctx context.Context, before time.Time) (int64, error)
}

// Poll applies one poll at now to g as PollDeviceGrant describes, short of
// starting the grant: it says what the poll found and, for an approved grant,
// that the caller must start it (g is then already marked redeemed). It is
// ErrAlreadyUsed for a grant redeemed before, and leaves g unchanged for an
// expired one. Stores call it inside their transaction, so every backend
// decides alike.
func Poll(g *DeviceGrant, now time.Time) (res PollResult, start bool, err error) {
	switch {
	case g.Status == DeviceStatusRedeemed:
		return 0, false, fmt.Errorf("device grant: %w", ErrAlreadyUsed)
	case !now.Before(g.ExpiresAt):
		return PollExpired, false, nil
	}
	last := g.LastPolledAt
	g.LastPolledAt = now
	if !last.IsZero() && now.Sub(last) < g.Interval {
		g.Interval += SlowDownStep // RFC 8628 §3.5
		return PollSlowDown, false, nil
	}
	switch g.Status {
	case DeviceStatusPending:
		return PollPending, false, nil
	case DeviceStatusDenied:
		return PollDenied, false, nil
	case DeviceStatusApproved:
		g.Status = DeviceStatusRedeemed
		return PollApproved, true, nil
	}
	return 0, false, fmt.Errorf("device grant: unknown status %q", g.Status)
}
