package bff

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// sealedSession is what a SessionRecord's Sealed holds, encrypted: the tokens never
// reach a store, a log or a browser in clear.
type sealedSession struct {
	AccessToken     string          `json:"at"`
	TokenType       string          `json:"tt"`
	AccessExpiresAt int64           `json:"ate"`
	RefreshToken    string          `json:"rt,omitempty"`
	IDToken         string          `json:"it,omitempty"`
	Claims          map[string]any  `json:"c"`
	DPoPKey         json.RawMessage `json:"dk,omitempty"` // private ES256 JWK
}

// loginState travels in the short-lived login cookie between /bff/login and /bff/callback.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
	Expires  int64  `json:"e"`
}

var errSeal = errors.New("bff: sealed value does not open")

// seal encrypts v with AES-256-GCM; purpose is the additional data, so a value sealed
// for one use (or one session ID) cannot be replayed as another.
func (h *Handler) seal(purpose string, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, h.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return h.aead.Seal(nonce, nonce, plain, []byte(purpose)), nil
}

func (h *Handler) open(purpose string, sealed []byte, v any) error {
	n := h.aead.NonceSize()
	if len(sealed) < n {
		return errSeal
	}
	plain, err := h.aead.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
	if err != nil {
		return errSeal
	}
	return json.Unmarshal(plain, v)
}

func (h *Handler) sealString(purpose string, v any) (string, error) {
	b, err := h.seal(purpose, v)
	return base64.RawURLEncoding.EncodeToString(b), err
}

func (h *Handler) openString(purpose, s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return errSeal
	}
	return h.open(purpose, b, v)
}

// randomText returns n random bytes, base64url.
func randomText(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionID is the store key for a cookie value: its SHA-256, so a store leak gives
// no usable cookie.
func sessionID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

func (s *sealedSession) accessExpiry() time.Time { return time.Unix(s.AccessExpiresAt, 0) }
