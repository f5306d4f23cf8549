package password

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// maxPBKDF2Work bounds a PBKDF2 hash's iterations times its output blocks (each
// block runs every iteration again): 2,000,000 is about half a second of one core,
// above Keycloak's defaults (27,500 or 600,000 for pbkdf2-sha256, 210,000 for
// pbkdf2-sha512, one block each) and far below what a hostile hash could ask.
const maxPBKDF2Work = 2_000_000

// Bounds on the byte lengths of salts and derived keys: a stored key shorter than
// 16 bytes is too weak to compare against, and nothing legitimate is longer than
// these.
const (
	minKeyLen  = 16
	maxKeyLen  = 128
	maxSaltLen = 128
)

// parsed is a PHC string taken apart.
type parsed struct {
	scheme string // argon2id, argon2i, pbkdf2-sha256 or pbkdf2-sha512
	argon  Params // argon2 schemes
	iter   int    // pbkdf2 schemes
	salt   []byte
	key    []byte
}

// derive computes the key of password under h's scheme, parameters and salt.
func (h parsed) derive(password string) ([]byte, error) {
	switch h.scheme {
	case "argon2id":
		return argon2.IDKey([]byte(password), h.salt, h.argon.Time, h.argon.Memory, h.argon.Threads, uint32(len(h.key))), nil
	case "argon2i":
		return argon2.Key([]byte(password), h.salt, h.argon.Time, h.argon.Memory, h.argon.Threads, uint32(len(h.key))), nil
	}
	// Keycloak pads passwords shorter than 14 characters with NULs before PBKDF2
	// (for FIPS providers). The password is the HMAC key, and HMAC pads a key
	// shorter than the hash's block size with zeros anyway (RFC 2104 §2), so the
	// padded and unpadded passwords give the same key: none is added here.
	key, err := pbkdf2.Key(pbkdf2Hash(h.scheme), password, h.salt, h.iter, len(h.key))
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	return key, nil
}

func pbkdf2Hash(scheme string) func() hash.Hash {
	if scheme == "pbkdf2-sha512" {
		return sha512.New
	}
	return sha256.New
}

// parse takes a PHC string apart and checks it against the bounds:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//	$argon2i$v=19$m=...,t=...,p=...$<salt>$<key>
//	$pbkdf2-sha256$i=27500,l=32$<salt>$<key>
//	$pbkdf2-sha512$i=210000,l=64$<salt>$<key>
//
// with salt and key in base64 without padding (the PHC string format); l is the
// key's length in bytes.
func parse(phc string) (parsed, error) {
	parts := strings.Split(phc, "$")
	if len(parts) < 5 || parts[0] != "" {
		return parsed{}, ErrMalformed
	}
	h := parsed{scheme: parts[1]}
	var version, params string
	switch {
	case (h.scheme == "argon2id" || h.scheme == "argon2i") && len(parts) == 6:
		version, params = parts[2], parts[3]
	case (h.scheme == "pbkdf2-sha256" || h.scheme == "pbkdf2-sha512") && len(parts) == 5:
		params = parts[2]
	case len(parts) == 5 || len(parts) == 6:
		return parsed{}, fmt.Errorf("%w: unknown scheme %q", ErrMalformed, h.scheme)
	default:
		return parsed{}, ErrMalformed
	}
	var err1, err2 error
	h.salt, err1 = b64.DecodeString(parts[len(parts)-2])
	h.key, err2 = b64.DecodeString(parts[len(parts)-1])
	if err1 != nil || err2 != nil || len(h.salt) == 0 || len(h.salt) > maxSaltLen ||
		len(h.key) < minKeyLen || len(h.key) > maxKeyLen {
		return parsed{}, ErrMalformed
	}
	if version != "" || h.scheme == "argon2id" || h.scheme == "argon2i" {
		return h, h.parseArgon2(version, params)
	}
	return h, h.parsePBKDF2(params)
}

func (h *parsed) parseArgon2(version, params string) error {
	// Only version 0x13 (19) exists in golang.org/x/crypto/argon2; an older 0x10
	// hash cannot be checked.
	if version != fmt.Sprintf("v=%d", argon2.Version) {
		return fmt.Errorf("%w: argon2 version %q (want v=%d)", ErrMalformed, version, argon2.Version)
	}
	kv, ok := keyValues(params, "m", "t", "p")
	if !ok {
		return ErrMalformed
	}
	m, t, p := kv["m"], kv["t"], kv["p"]
	switch {
	case m == 0 || t == 0 || p == 0 || m < 8*p: // RFC 9106 §3.1: m >= 8p
		return ErrMalformed
	case m > uint64(maxCost.Memory) || t > uint64(maxCost.Time) || p > uint64(maxCost.Threads):
		return fmt.Errorf("%w: m=%d,t=%d,p=%d is over m=%d,t=%d,p=%d", ErrTooCostly, m, t, p, maxCost.Memory, maxCost.Time, maxCost.Threads)
	}
	h.argon = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p)}
	return nil
}

// parsePBKDF2 reads "i=N,l=L": the iteration count and the key length in bytes,
// which must be the stored key's.
func (h *parsed) parsePBKDF2(params string) error {
	kv, ok := keyValues(params, "i", "l")
	if !ok || kv["i"] == 0 || kv["l"] != uint64(len(h.key)) {
		return ErrMalformed
	}
	size := sha256.Size
	if h.scheme == "pbkdf2-sha512" {
		size = sha512.Size
	}
	blocks := (len(h.key) + size - 1) / size
	if work := kv["i"] * uint64(blocks); work > maxPBKDF2Work {
		return fmt.Errorf("%w: %d iterations of %d blocks is over %d", ErrTooCostly, kv["i"], blocks, maxPBKDF2Work)
	}
	h.iter = int(kv["i"])
	return nil
}

// keyValues parses "a=1,b=2" holding exactly the names given, each a decimal
// number without sign or leading zeros, up to 2^32.
func keyValues(s string, names ...string) (map[string]uint64, bool) {
	out := make(map[string]uint64, len(names))
	fields := strings.Split(s, ",")
	if len(fields) != len(names) {
		return nil, false
	}
	for i, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k != names[i] || v == "" || (len(v) > 1 && v[0] == '0') {
			return nil, false
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, false
		}
		out[k] = n
	}
	return out, true
}
