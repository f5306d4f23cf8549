// Package password hashes human passwords with argon2id and checks them against
// argon2id, and against the hashes other servers leave behind (argon2i, PBKDF2
// with SHA-256 or SHA-512, as a Keycloak realm export carries them), so imported
// users keep their passwords and are rehashed with argon2id at their next sign-in.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// Default is OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane): about
// 25 ms a hash on one core of our CI machine, and little memory per login.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// MinLen is the fewest characters a password may have.
const MinLen = 8

const (
	saltLen = 16
	keyLen  = 32
)

// ErrMalformed is returned for a stored hash that is not a PHC string of a
// scheme this package knows.
var ErrMalformed = errors.New("password: malformed hash")

// errMalformedArgon2id is CheckHash's ErrMalformed: it wants argon2id only.
var errMalformedArgon2id = errors.New("password: malformed argon2id hash")

// ErrTooCostly is returned for a hash whose parameters are beyond what a sign-in
// can afford (see maxCost, maxPBKDF2Work): a hash is given from outside (a seed
// file, an import), and each sign-in pays its cost.
var ErrTooCostly = errors.New("password: hash costlier than a sign-in can afford")

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of password under p with a fresh random salt.
func Hash(password string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC string, comparing in constant
// time. A hash of an unknown scheme, or one too costly to check, is an error and
// no match; nothing is computed for it.
func Verify(password, phc string) (bool, error) {
	h, err := parse(phc)
	if err != nil {
		return false, err
	}
	got, err := h.derive(password)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

// NeedsRehash says whether a hash that just verified a password should be
// replaced by Hash(password, target): it is not argon2id, or it is cheaper than
// target (an imported or older hash).
func NeedsRehash(phc string, target Params) bool {
	h, err := parse(phc)
	if err != nil {
		return true
	}
	return h.scheme != "argon2id" || h.argon.Memory < target.Memory || h.argon.Time < target.Time
}

// maxCost bounds the parameters of an argon2 hash given from outside (a seed
// file's password_hash, an import): every sign-in pays them, so a huge one would
// make each login a denial of service.
var maxCost = Params{Memory: 256 * 1024, Time: 10, Threads: 16}

// CheckHash says whether phc is an argon2id PHC string Latchkey can keep: well
// formed, at least as costly as min, and no costlier than a sign-in can afford.
func CheckHash(phc string, min Params) error {
	h, err := parse(phc)
	switch {
	case errors.Is(err, ErrMalformed) || (err == nil && h.scheme != "argon2id"):
		return errMalformedArgon2id
	case err != nil:
		return err
	case h.argon.Memory < min.Memory || h.argon.Time < min.Time:
		return fmt.Errorf("password: hash weaker than m=%d,t=%d", min.Memory, min.Time)
	}
	return nil
}

// CheckImported says whether phc is a hash Latchkey can verify: a well-formed
// PHC string of a known scheme (argon2id, argon2i, pbkdf2-sha256, pbkdf2-sha512)
// within the cost bounds. Unlike CheckHash it sets no minimum: a weak imported
// hash is still the user's password, and the first sign-in replaces it (see
// NeedsRehash).
func CheckImported(phc string) error {
	_, err := parse(phc)
	return err
}
