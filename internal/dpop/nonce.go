package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Nonces issues and checks DPoP server nonces (RFC 9449 §8, §9) without
// state: the nonce of a time window is an HMAC of the window's number under
// a key, and a nonce is accepted during its window and the next one. Every
// instance built with the same key and window issues and accepts the same
// nonces, so a nonce got from one instance works at another.
type Nonces struct {
	key    []byte
	window time.Duration
}

// MinNonceKeyLength is the shortest key NewNonces accepts (256 bits).
const MinNonceKeyLength = 32

var errStaleNonce = errors.New("nonce unknown or expired")

// NewNonces returns Nonces under key, changing every window; a nonce then
// lives between one and two windows.
func NewNonces(key []byte, window time.Duration) (*Nonces, error) {
	if len(key) < MinNonceKeyLength {
		return nil, fmt.Errorf("dpop: nonce key of %d bytes, need %d", len(key), MinNonceKeyLength)
	}
	if window < time.Second {
		return nil, fmt.Errorf("dpop: nonce window %v under a second", window)
	}
	return &Nonces{key: append([]byte(nil), key...), window: window}, nil
}

// Issue returns the nonce to send in DPoP-Nonce at now.
func (n *Nonces) Issue(now time.Time) string {
	return n.at(n.windowOf(now))
}

// Check returns nil when nonce was issued in now's window or the one before.
func (n *Nonces) Check(nonce string, now time.Time) error {
	w := n.windowOf(now)
	cur, prev := n.at(w), n.at(w-1)
	// Both are compared, in constant time, whatever the first gives.
	okCur := hmac.Equal([]byte(nonce), []byte(cur))
	okPrev := hmac.Equal([]byte(nonce), []byte(prev))
	if !okCur && !okPrev {
		return errStaleNonce
	}
	return nil
}

func (n *Nonces) windowOf(now time.Time) int64 {
	return now.UnixNano() / int64(n.window)
}

func (n *Nonces) at(window int64) string {
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("latchkey dpop nonce\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(window))
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
