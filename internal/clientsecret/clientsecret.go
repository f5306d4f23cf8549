// Package clientsecret generates OAuth client secrets and keeps them as keyed hashes.
//
// A client secret is stored as HMAC-SHA256 under a key derived from the master key,
// not as argon2id: a stolen database alone cannot be brute-forced without the master
// key, and checking a secret stays a sub-microsecond operation on the token endpoint.
package clientsecret

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey/internal/masterkey"
)

const scheme = "hmac-sha256"

// ErrOtherKey is returned for a stored hash made under another master key.
var ErrOtherKey = errors.New("clientsecret: hash was made under another master key")

// ErrMalformed is returned for a stored value that is not a client-secret hash.
var ErrMalformed = errors.New("clientsecret: malformed hash")

// Hasher hashes and checks client secrets under one master key.
type Hasher struct {
	key   []byte
	keyID string
}

// NewHasher returns a Hasher keyed by the master key.
func NewHasher(mk *masterkey.Key) *Hasher {
	return &Hasher{key: mk.Derive("client secrets"), keyID: mk.ID()}
}

// MinLen is the fewest characters a configured client secret may have. Generate
// makes longer ones.
const MinLen = 32

// Generate returns a new random secret of 260 bits (52 base32 characters).
func Generate() string {
	return rand.Text() + rand.Text() // 2 × 130 bits of base32
}

// Hash returns the stored form of a client's secret: "hmac-sha256$<key id>$<mac>".
// The realm and client ID are bound into the MAC, so one client's hash cannot be
// copied onto another.
func (h *Hasher) Hash(realm, clientID, secret string) string {
	return scheme + "$" + h.keyID + "$" + base64.RawStdEncoding.EncodeToString(h.mac(realm, clientID, secret))
}

// Verify reports whether secret is the client's, in constant time.
func (h *Hasher) Verify(realm, clientID, secret, stored string) (bool, error) {
	parts := strings.Split(stored, "$")
	if len(parts) != 3 || parts[0] != scheme {
		return false, ErrMalformed
	}
	if parts[1] != h.keyID {
		return false, fmt.Errorf("%w (key %s, current key %s)", ErrOtherKey, parts[1], h.keyID)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[2])
	if err != nil {
		return false, ErrMalformed
	}
	return subtle.ConstantTimeCompare(h.mac(realm, clientID, secret), want) == 1, nil
}

func (h *Hasher) mac(realm, clientID, secret string) []byte {
	// Length-prefixed so that ("a", "bc") and ("ab", "c") differ.
	buf := make([]byte, 0, 12+len(realm)+len(clientID)+len(secret))
	for _, s := range []string{realm, clientID, secret} {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	m := hmac.New(sha256.New, h.key)
	m.Write(buf)
	return m.Sum(nil)
}
