package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/latchkey/latchkey/internal/masterkey"
)

// sealer encrypts private keys at rest with AES-256-GCM under a key derived from the
// master key. A sealed key is "v1:<master key id>:" followed by nonce and ciphertext;
// the realm, kid and alg are bound in as additional data, so a sealed key cannot be
// moved to another row.
type sealer struct {
	aead  cipher.AEAD
	keyID string
}

func newSealer(mk *masterkey.Key) *sealer {
	block, err := aes.NewCipher(mk.Derive("signing keys"))
	if err != nil { // only for a key of the wrong size, which Derive never returns
		panic("keys: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("keys: " + err.Error())
	}
	return &sealer{aead: aead, keyID: mk.ID()}
}

func (s *sealer) prefix() []byte { return []byte("v1:" + s.keyID + ":") }

func (s *sealer) seal(plain, aad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // crypto/rand.Read never fails
	out := append(s.prefix(), nonce...)
	return s.aead.Seal(out, nonce, plain, aad)
}

func (s *sealer) open(sealed, aad []byte) ([]byte, error) {
	p := s.prefix()
	if !bytes.HasPrefix(sealed, p) {
		if parts := bytes.SplitN(sealed, []byte(":"), 3); len(parts) == 3 && string(parts[0]) == "v1" {
			return nil, fmt.Errorf("sealed under master key %s, but the current master key is %s", parts[1], s.keyID)
		}
		return nil, errors.New("not a sealed key")
	}
	rest := sealed[len(p):]
	if len(rest) < s.aead.NonceSize() {
		return nil, errors.New("sealed key is truncated")
	}
	plain, err := s.aead.Open(nil, rest[:s.aead.NonceSize()], rest[s.aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("sealed key does not open: damaged, or moved from another row")
	}
	return plain, nil
}
