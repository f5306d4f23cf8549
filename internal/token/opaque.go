package token

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// An opaque access token is sealed, not stored: "lk_at_" followed by, in base64url,
// a version byte, a random nonce and the token's claims encrypted and authenticated
// under the realm's token key (keys.Manager.TokenAEAD). Clients and resource servers
// can read nothing from it and must introspect it; only Latchkey can open it, and
// what opens is exactly what Latchkey sealed.
//
// A stored token cost a database insert and a share of a durable commit per token,
// and an indexed read per introspection. A sealed one costs a microsecond of
// encryption, and revocation works as for JWTs: the token's jti goes on the
// deny-list until it expires, and the client, user, session and family it stands on
// are checked on every introspection.
//
// The token carries its issuer as associated data of the seal rather than in the
// sealed claims: it costs no bytes, and only an instance whose issuer for the realm
// is the same opens it, so another base URL on the same database and master key
// refuses it, as it refuses the JWTs (version 1 sealed no issuer).
const opaqueVersion = 2

// opaqueAAD binds the prefix, the version and the issuer into the seal.
func opaqueAAD(issuer string) []byte {
	return []byte(AccessPrefix + "v2 " + issuer)
}

// sealAccess returns the opaque access token carrying c.
func (s *Service) sealAccess(realm string, c AccessClaims) (string, error) {
	c.Issuer = "" // the associated data carries it
	plain, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	aead := s.keys.TokenAEAD(realm)
	raw := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	raw[0] = opaqueVersion
	rand.Read(raw[1:]) // crypto/rand.Read never fails
	raw = aead.Seal(raw, raw[1:], plain, opaqueAAD(s.Issuer(realm)))
	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(AccessPrefix)+enc.EncodedLen(len(raw)))
	out = append(out, AccessPrefix...)
	return string(enc.AppendEncode(out, raw)), nil
}

// openAccess returns the claims sealed in an opaque access token of the realm, or
// nil if tok is not one: malformed, altered, or sealed for another realm or issuer.
func (s *Service) openAccess(realm, tok string) *AccessClaims {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, AccessPrefix))
	if err != nil {
		return nil
	}
	aead := s.keys.TokenAEAD(realm)
	if len(raw) < 1+aead.NonceSize()+aead.Overhead() || raw[0] != opaqueVersion {
		return nil
	}
	nonce := raw[1 : 1+aead.NonceSize()]
	issuer := s.Issuer(realm)
	plain, err := aead.Open(nil, nonce, raw[1+aead.NonceSize():], opaqueAAD(issuer))
	if err != nil {
		return nil
	}
	c := &AccessClaims{}
	if json.Unmarshal(plain, c) != nil || c.ID == "" || c.ClientID == "" || c.Subject == "" {
		return nil
	}
	c.Issuer = issuer
	return c
}
