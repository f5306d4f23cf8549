package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testKey is a client's DPoP key: its algorithm, a signer of JWS signing
// input, and its JWK (public and private forms).
type testKey struct {
	alg     string
	sign    func(input []byte) []byte
	public  jose.JSONWebKey
	private jose.JSONWebKey
}

var (
	keysOnce sync.Once
	keys     map[string]testKey
)

// testKeys makes one key per algorithm, once: RSA generation is slow.
func testKeys(tb testing.TB) map[string]testKey {
	tb.Helper()
	keysOnce.Do(func() {
		keys = map[string]testKey{}
		ec := func(alg string, curve elliptic.Curve, h crypto.Hash, size int) {
			k, err := ecdsa.GenerateKey(curve, rand.Reader)
			if err != nil {
				panic(err)
			}
			keys[alg] = testKey{alg: alg, public: jose.JSONWebKey{Key: &k.PublicKey}, private: jose.JSONWebKey{Key: k},
				sign: func(in []byte) []byte {
					hh := h.New()
					hh.Write(in)
					r, s, err := ecdsa.Sign(rand.Reader, k, hh.Sum(nil))
					if err != nil {
						panic(err)
					}
					out := make([]byte, 2*size)
					r.FillBytes(out[:size])
					s.FillBytes(out[size:])
					return out
				}}
		}
		ec("ES256", elliptic.P256(), crypto.SHA256, 32)
		ec("ES384", elliptic.P384(), crypto.SHA384, 48)
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys["RS256"] = testKey{alg: "RS256", public: jose.JSONWebKey{Key: &rk.PublicKey}, private: jose.JSONWebKey{Key: rk},
			sign: func(in []byte) []byte {
				d := sha256.Sum256(in)
				sig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, d[:])
				if err != nil {
					panic(err)
				}
				return sig
			}}
		keys["PS256"] = testKey{alg: "PS256", public: jose.JSONWebKey{Key: &rk.PublicKey}, private: jose.JSONWebKey{Key: rk},
			sign: func(in []byte) []byte {
				d := sha256.Sum256(in)
				sig, err := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
				if err != nil {
					panic(err)
				}
				return sig
			}}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		keys["EdDSA"] = testKey{alg: "EdDSA", public: jose.JSONWebKey{Key: pub}, private: jose.JSONWebKey{Key: priv},
			sign: func(in []byte) []byte { return ed25519.Sign(priv, in) }}
	})
	return keys
}

func jwkMap(tb testing.TB, k jose.JSONWebKey) map[string]any {
	tb.Helper()
	b, err := k.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

const (
	testURL    = "https://id.example.com/realms/main/token"
	testMethod = "POST"
	testToken  = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
)

var testNow = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)

// proofParts are a proof's header and claims before signing, for tests to
// change.
type proofParts struct {
	header map[string]any
	claims map[string]any
}

var jtiSeq struct {
	sync.Mutex
	n int
}

func newParts(tb testing.TB, k testKey) proofParts {
	tb.Helper()
	jtiSeq.Lock()
	jtiSeq.n++
	jti := fmt.Sprintf("jti-%d", jtiSeq.n)
	jtiSeq.Unlock()
	return proofParts{
		header: map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": jwkMap(tb, k.public)},
		claims: map[string]any{"jti": jti, "htm": testMethod, "htu": testURL, "iat": testNow.Unix()},
	}
}

// mint serialises and signs parts with k; a nil signer gives an empty
// signature (alg none).
func mint(tb testing.TB, p proofParts, sign func([]byte) []byte) string {
	tb.Helper()
	h, err := json.Marshal(p.header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(p.claims)
	if err != nil {
		tb.Fatal(err)
	}
	input := b64(h) + "." + b64(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func hs256(key []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

// memReplay is an in-memory, bounded ReplayCache for tests only.
type memReplay struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	seen  map[string]time.Time
	calls int
	err   error // returned instead of recording, when set
}

func newMemReplay() *memReplay {
	return &memReplay{max: 1024, now: func() time.Time { return testNow }, seen: map[string]time.Time{}}
}

func (m *memReplay) UseProofJTI(_ context.Context, jkt, jti string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.err != nil {
		return m.err
	}
	now := m.now()
	key := jkt + "\x00" + jti
	if exp, ok := m.seen[key]; ok && now.Before(exp) {
		return fmt.Errorf("memReplay: %w", ErrReplayed)
	}
	if len(m.seen) >= m.max {
		for k, exp := range m.seen {
			if !now.Before(exp) {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= m.max {
			return fmt.Errorf("memReplay: full")
		}
	}
	m.seen[key] = until
	return nil
}

func expect(replay ReplayCache) Expect {
	return Expect{Method: testMethod, URL: testURL, Replay: replay, Now: testNow}
}
