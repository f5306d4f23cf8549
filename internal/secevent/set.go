package secevent

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Event types of the revocation feed (the wire contract in the README).
const (
	TypeTokenRevoked   = "urn:latchkey:secevent:token-revoked"
	TypeSubjectRevoked = "urn:latchkey:secevent:subject-revoked"
	TypeSessionEnded   = "urn:latchkey:secevent:session-ended"
	TypeFamilyRevoked  = "urn:latchkey:secevent:family-revoked"
	TypeClientRevoked  = "urn:latchkey:secevent:client-revoked"
	TypeRealmLogout    = "urn:latchkey:secevent:realm-logout"
	TypeKeysChanged    = "urn:latchkey:secevent:keys-changed"
)

// typ is the JWS typ of a Security Event Token (RFC 8417 §2.3): never at+jwt, so
// no verifier of access tokens can take a SET for one.
const typ = "secevent+jwt"

// claims are a SET's claims (RFC 8417 §2.2): no sub and no exp at the top level.
type claims struct {
	Issuer   string         `json:"iss"`
	Audience string         `json:"aud"`
	IssuedAt int64          `json:"iat"`
	ID       string         `json:"jti"`
	Events   map[string]any `json:"events"`
}

// Payloads, one per event type. Times are NumericDate (RFC 7519 §2).
type (
	tokenRevoked struct {
		JTI   string `json:"jti"`
		Until int64  `json:"until"`
	}
	subjectRevoked struct {
		Sub           string `json:"sub"`
		RevokedBefore int64  `json:"revoked_before"`
		Reason        string `json:"reason"`
		Until         int64  `json:"until"`
	}
	sessionEnded struct {
		SID   string `json:"sid"`
		Sub   string `json:"sub"`
		Until int64  `json:"until"`
	}
	familyRevoked struct {
		FID      string `json:"fid"`
		Sub      string `json:"sub"`
		ClientID string `json:"client_id"`
		Until    int64  `json:"until"`
	}
	clientRevoked struct {
		ClientID      string `json:"client_id"`
		RevokedBefore int64  `json:"revoked_before"`
		Until         int64  `json:"until"`
	}
	realmLogout struct {
		RevokedBefore int64 `json:"revoked_before"`
		Until         int64 `json:"until"`
	}
	keysChanged struct {
		KID   string `json:"kid"`
		Until int64  `json:"until"`
	}
)

// event maps a change to the SET event a resource server gets for it, with the
// time after which it affects no token. ttl is the longest access-token lifetime
// of the realm's clients: a token issued before the change lives at most that
// long after it. Changes that revoke nothing (a client or realm changed) give
// ok false.
func event(c storage.Change, ttl time.Duration) (eventType string, payload any, until time.Time, ok bool) {
	until = c.Time.Add(ttl)
	end := numericDate(until)
	switch c.Kind {
	case storage.ChangeTokenDenied:
		return TypeTokenRevoked, tokenRevoked{JTI: c.Subject, Until: numericDate(c.Until)}, c.Until, true
	case storage.ChangeUserRevoked:
		return TypeSubjectRevoked, subjectRevoked{Sub: c.Subject, RevokedBefore: revokedBefore(c.Time),
			Reason: reason(c.Reason), Until: end}, until, true
	case storage.ChangeSessionEnded:
		return TypeSessionEnded, sessionEnded{SID: c.Subject, Sub: c.UserID, Until: end}, until, true
	case storage.ChangeFamilyRevoked:
		return TypeFamilyRevoked, familyRevoked{FID: c.Subject, Sub: c.UserID, ClientID: c.ClientID, Until: end}, until, true
	case storage.ChangeClientRevoked:
		return TypeClientRevoked, clientRevoked{ClientID: c.Subject, RevokedBefore: revokedBefore(c.Time), Until: end}, until, true
	case storage.ChangeRealmLogout:
		return TypeRealmLogout, realmLogout{RevokedBefore: revokedBefore(c.Time), Until: end}, until, true
	case storage.ChangeKeysChanged:
		return TypeKeysChanged, keysChanged{KID: c.Subject, Until: end}, until, true
	}
	return "", nil, time.Time{}, false
}

// deniedEvent is the event of a deny-list entry, as its ChangeTokenDenied gives.
func deniedEvent(d storage.DeniedJWT) (string, any) {
	return TypeTokenRevoked, tokenRevoked{JTI: d.JTI, Until: numericDate(d.ExpiresAt)}
}

// revokedBefore is the first whole second not before a stamp: iat has whole
// seconds, and a token issued in the stamp's own second counts as before it.
func revokedBefore(stamp time.Time) int64 { return stamp.Unix() + 1 }

// numericDate is t in whole seconds, rounded up: an until must not come early.
func numericDate(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// reason is a stamp's reason as the wire names it: "user disabled" is
// "disabled", "password changed" is "password_changed".
func reason(r string) string {
	r = strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(r), "user "), " ", "_")
	if r == "" {
		return "revoked"
	}
	return r
}

// newJTI is a SET's unique ID: 128 random bits.
func newJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
