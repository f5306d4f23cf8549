// Package masterkey loads Latchkey's master key and derives purpose-bound keys from it.
package masterkey

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
)

// Size is the master key's length in bytes.
const Size = 32

// Key is the master key. It never prints itself.
type Key struct {
	secret [Size]byte
}

// Parse reads a key written as base64 (standard or URL alphabet, padded or not) or hex.
func Parse(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){
		hex.DecodeString,
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == Size {
			k := &Key{}
			copy(k.secret[:], b)
			return k, nil
		}
	}
	return nil, errors.New("master key must be 32 bytes written as base64 or hex (make one with: openssl rand -base64 32)")
}

// Load reads a key file.
func Load(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreate reads the key file at path, or writes a new random key there (mode
// 0600) when there is none, and says whether it did.
func LoadOrCreate(path string) (k *Key, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	k = &Key{}
	if _, err := rand.Read(k.secret[:]); err != nil {
		return nil, false, fmt.Errorf("generate master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("write master key file: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(k.secret[:]) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("write master key file: %w", werr)
	}
	return k, true, nil
}

// Derive returns a 32-byte key for one purpose (HKDF-SHA256, RFC 5869), so that no two
// uses share key material.
func (k *Key) Derive(purpose string) []byte {
	out, err := hkdf.Key(sha256.New, k.secret[:], nil, "latchkey "+purpose, 32)
	if err != nil { // only for lengths HKDF cannot produce
		panic("masterkey: " + err.Error())
	}
	return out
}

// ID is a short public fingerprint of the key: stored beside what it protects, it
// says which master key is needed to check or open it.
func (k *Key) ID() string {
	m := hmac.New(sha256.New, k.Derive("key id"))
	return hex.EncodeToString(m.Sum(nil)[:4])
}

// String and LogValue keep the key out of logs and error messages.
func (k *Key) String() string { return "masterkey(" + k.ID() + ")" }

// LogValue implements slog.LogValuer.
func (k *Key) LogValue() slog.Value { return slog.StringValue(k.String()) }
