// Package password hashes and checks human passwords with argon2id.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

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

// ErrMalformed is returned for a stored hash that is not an argon2id PHC string.
var ErrMalformed = errors.New("password: malformed argon2id hash")

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

// Verify reports whether password matches the PHC string, comparing in constant time.
func Verify(password, phc string) (bool, error) {
	p, salt, key, err := parse(phc)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// maxCost bounds the parameters of a hash given from outside (a seed file's
// password_hash): every sign-in pays them, so a huge one would make each login
// a denial of service.
var maxCost = Params{Memory: 256 * 1024, Time: 10, Threads: 16}

// CheckHash says whether phc is an argon2id PHC string Latchkey can keep: well
// formed, at least as costly as min, and no costlier than a sign-in can afford.
func CheckHash(phc string, min Params) error {
	p, _, _, err := parse(phc)
	switch {
	case err != nil:
		return err
	case p.Memory < min.Memory || p.Time < min.Time:
		return fmt.Errorf("password: hash weaker than m=%d,t=%d", min.Memory, min.Time)
	case p.Memory > maxCost.Memory || p.Time > maxCost.Time || p.Threads > maxCost.Threads:
		return fmt.Errorf("password: hash costlier than m=%d,t=%d,p=%d", maxCost.Memory, maxCost.Time, maxCost.Threads)
	}
	return nil
}

func parse(phc string) (Params, []byte, []byte, error) {
	// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformed
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return Params{}, nil, nil, ErrMalformed
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return Params{}, nil, nil, ErrMalformed
	}
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(key) < 16 {
		return Params{}, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}
