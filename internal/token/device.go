package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// The device authorization grant (RFC 8628): the device asks for a device code
// and a user code, the user enters the user code on the verification page and
// approves or denies, and the device polls the token endpoint until then.
const (
	// DeviceCodePrefix starts a device code; its 256 random bits are stored only as a hash.
	DeviceCodePrefix = "lk_dc_"
	// DeviceCodeTTL is how long a device and its user have to finish (RFC 8628 §3.2 expires_in).
	DeviceCodeTTL = 600 * time.Second
	// DeviceInterval is the least time between two polls at the start (RFC 8628 §3.2 interval).
	DeviceInterval = 5 * time.Second
)

// userCodeAlphabet has no vowels, so no word can be spelt, and no digits, which
// are confused with letters (RFC 8628 §6.1's example set).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLen is the user code's length without its dash: 20^8, about 34 bits,
// which the verification page's rate limit makes enough (RFC 8628 §5.1).
const userCodeLen = 8

// UserCodes makes and hashes user codes. The hash is keyed (HMAC-SHA-256 with a
// key from the master key, the same on every instance): a user code has only
// about 34 bits, which an unkeyed hash read from the store would give away.
type UserCodes struct{ key []byte }

// NewUserCodes returns UserCodes hashing with key.
func NewUserCodes(key []byte) UserCodes { return UserCodes{key: key} }

// New returns a fresh user code as shown to the user (XXXX-XXXX) and its hash.
func (u UserCodes) New() (string, []byte) {
	b := make([]byte, userCodeLen)
	for i := range b {
		// A uniform choice: bytes of the last, partial run of 20 are drawn again.
		for {
			var one [1]byte
			rand.Read(one[:])
			if int(one[0]) < 256-256%len(userCodeAlphabet) {
				b[i] = userCodeAlphabet[int(one[0])%len(userCodeAlphabet)]
				break
			}
		}
	}
	code := string(b[:4]) + "-" + string(b[4:])
	h, _ := u.Hash(code)
	return code, h
}

// Hash normalises a user code as typed (any case, with or without the dash or
// spaces) and returns its hash; ok is false when it cannot be a user code, so
// nothing unbounded reaches the store.
func (u UserCodes) Hash(typed string) (hash []byte, ok bool) {
	if len(typed) > 32 {
		return nil, false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ':
			continue
		case strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return nil, false
		}
	}
	if b.Len() != userCodeLen {
		return nil, false
	}
	m := hmac.New(sha256.New, u.key)
	m.Write([]byte(b.String()))
	return m.Sum(nil), true
}

// DeviceRequest is a device authorization request from an authenticated client
// (RFC 8628 §3.1), its scopes and audience already checked.
type DeviceRequest struct {
	Realm    storage.Realm
	Client   storage.Client
	Scopes   []string
	Audience []string
	Codes    UserCodes
	From     Caller
}

// DeviceAuthorization is the device authorization response's codes (RFC 8628 §3.2).
type DeviceAuthorization struct {
	DeviceCode, UserCode string
	ExpiresIn, Interval  time.Duration
}

// AuthorizeDevice starts a device authorization: it stores a pending device
// grant under a new device code and user code.
func (s *Service) AuthorizeDevice(ctx context.Context, req DeviceRequest) (DeviceAuthorization, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	// A user code may collide with a live one (34 bits): draw again a few times.
	for range 5 {
		device, deviceHash := newOpaque(DeviceCodePrefix)
		user, userHash := req.Codes.New()
		err := s.store.CreateDeviceGrant(ctx, storage.DeviceGrant{
			DeviceCodeHash: deviceHash, UserCodeHash: userHash, Realm: req.Realm.Name, ClientID: req.Client.ID,
			Scopes: req.Scopes, Audience: req.Audience, Status: storage.DeviceStatusPending,
			FamilyID: rand.Text(), Interval: DeviceInterval, CreatedAt: now, ExpiresAt: now.Add(DeviceCodeTTL),
			IP: req.From.IP, UserAgent: req.From.UserAgent,
		})
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return DeviceAuthorization{}, fmt.Errorf("store device grant: %w", err)
		}
		return DeviceAuthorization{DeviceCode: device, UserCode: user, ExpiresIn: DeviceCodeTTL, Interval: DeviceInterval}, nil
	}
	return DeviceAuthorization{}, errors.New("store device grant: no free user code")
}

// PendingDevice returns the realm's device grant with the user code hash, as the
// verification page shows it. storage.ErrNotFound if there is none or it expired.
func (s *Service) PendingDevice(ctx context.Context, realm string, userCodeHash []byte) (storage.DeviceGrant, error) {
	return s.store.GetDeviceGrantByUserCode(ctx, realm, userCodeHash, s.now())
}

// DeviceDecision is the user's answer to a device grant on the verification page.
type DeviceDecision struct {
	Realm        string
	UserCodeHash []byte
	Approve      bool
	// ClientID is the client the user saw: the decision only holds for it.
	ClientID string
	User     storage.User
	Session  storage.Session
}

// ErrDeviceChanged is a decision on a device grant that is not the one the user
// was shown (another client's).
var ErrDeviceChanged = errors.New("device grant: not the one shown")

// DecideDevice records the user's decision, once: storage.ErrNotFound if the
// grant is unknown or expired, storage.ErrAlreadyUsed if it was decided before.
func (s *Service) DecideDevice(ctx context.Context, d DeviceDecision) (storage.DeviceGrant, error) {
	return s.store.DecideDeviceGrant(ctx, d.Realm, d.UserCodeHash, s.now(), func(g *storage.DeviceGrant) error {
		if g.ClientID != d.ClientID {
			return ErrDeviceChanged
		}
		g.Status = storage.DeviceStatusDenied
		if d.Approve {
			g.Status = storage.DeviceStatusApproved
		}
		g.UserID, g.SessionID = d.User.ID, d.Session.ID
		g.AuthTime = d.Session.AuthTime.UTC().Truncate(time.Microsecond)
		return nil
	})
}

// ErrInvalidDeviceCode is a device code that is unknown, another client's, or
// redeemed before: invalid_grant.
var ErrInvalidDeviceCode = fmt.Errorf("%w: device code", ErrInvalidGrant)

// DevicePoll is one poll of the token endpoint with a device code (RFC 8628 §3.4).
type DevicePoll struct {
	Realm      storage.Realm
	Client     storage.Client
	DeviceCode string
	// JKT binds the family the poll starts to a DPoP key ("" unbound).
	JKT  string
	From Caller
}

// DevicePolled is what a poll found: Result, and for PollApproved the grant that
// started and its first refresh token ("" when the client may not refresh).
type DevicePolled struct {
	Grant        storage.DeviceGrant
	Result       storage.PollResult
	RefreshToken string
}

// PollDevice polls a device grant, once, atomically across instances (the
// slow_down state is in the store). An approved grant starts here: a refresh
// family with the client's refresh settings and its first refresh token. The
// family is not bound to the browser session the user approved from: that was
// another device, whose sign-out must not sign the device out (as an
// offline_access family outlives its session); the user's sign-out everywhere,
// disabling and the client's revocation still end it.
func (s *Service) PollDevice(ctx context.Context, p DevicePoll) (DevicePolled, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	var out DevicePolled
	var fam storage.Family
	g, res, err := s.store.PollDeviceGrant(ctx, Hash(p.DeviceCode), now, func(g storage.DeviceGrant) (storage.Family, storage.RefreshToken, error) {
		if g.Realm != p.Realm.Name || g.ClientID != p.Client.ID {
			return storage.Family{}, storage.RefreshToken{}, fmt.Errorf("%w: issued to another client", ErrInvalidDeviceCode)
		}
		f, first, value := s.newGrant(p.Realm, p.Client, storage.AuthCode{
			FamilyID: g.FamilyID, UserID: g.UserID, Scopes: g.Scopes, IP: g.IP, UserAgent: g.UserAgent,
		}, g.Audience, now)
		f.JKT = p.JKT // RFC 9449 §5: bound to the key of the poll that redeems it
		out.RefreshToken, fam = value, f
		return f, first, nil
	})
	out.Grant, out.Result = g, res
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return out, fmt.Errorf("%w: unknown", ErrInvalidDeviceCode)
	case errors.Is(err, storage.ErrAlreadyUsed):
		// RFC 8628 §3.5 leaves a code used twice to invalid_grant. Unlike a replayed
		// authorization code it proves no theft: a device that lost the response
		// polls again with the same code.
		return out, fmt.Errorf("%w: already redeemed", ErrInvalidDeviceCode)
	case err != nil:
		return out, err
	}
	// Another client's code: every answer but the grant's own is withheld too.
	if g.Realm != p.Realm.Name || g.ClientID != p.Client.ID {
		return DevicePolled{}, fmt.Errorf("%w: issued to another client", ErrInvalidDeviceCode)
	}
	if res != storage.PollApproved {
		return out, nil
	}
	if !withRefresh(p.Client) {
		out.RefreshToken = ""
		return out, nil
	}
	out.RefreshToken, err = s.wrapRefresh(ctx, p.Realm, p.Client, fam, g.Scopes, refreshExpiry(fam, fam.IdleExpiresAt, storage.Session{}), out.RefreshToken)
	return out, err
}
