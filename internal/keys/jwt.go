package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Sign serialises claims as a compact JWS (RFC 7515) signed by k, with alg, kid and
// typ in the protected header.
//
// It is written out here rather than through go-jose's signer, which rebuilt the
// signer, the header and several buffers for every token: on the token endpoint's
// hot path that cost 156 allocations and ~13 KiB per ES256 token (see BENCHMARKS.md).
// go-jose still parses and verifies everything Latchkey does not make itself.
func (k *Key) Sign(claims any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	header := k.header(typ)
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(header)+2+enc.EncodedLen(len(payload))+enc.EncodedLen(512))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := k.signature(buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// header returns the encoded protected header for typ, made once per key and typ.
func (k *Key) header(typ string) string {
	if h, ok := k.headers.Load(typ); ok {
		return h.(string)
	}
	b, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		KID string `json:"kid"`
		Typ string `json:"typ"`
	}{k.Alg, k.KID, typ})
	h := base64.RawURLEncoding.EncodeToString(b)
	k.headers.Store(typ, h)
	return h
}

// signature signs the JWS signing input with the key's algorithm (RFC 7518 §3).
func (k *Key) signature(input []byte) ([]byte, error) {
	switch priv := k.private.(type) {
	case *ecdsa.PrivateKey: // ES256: R || S, 32 bytes each (RFC 7518 §3.4)
		h := sha256.Sum256(input)
		// A nil random source makes Go sign deterministically (RFC 6979): the nonce is
		// derived from the key and the message, so no RNG failure can leak the key,
		// and it skips the hedged mode's extra SHA-512 DRBG work (≈14% of a signature).
		der, err := priv.Sign(nil, h[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		return rawECDSA(der, 32)
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, input), nil
	case *rsa.PrivateKey:
		h := sha256.Sum256(input)
		return rsa.SignPKCS1v15(nil, priv, crypto.SHA256, h[:])
	}
	return nil, fmt.Errorf("keys: cannot sign with a %T", k.private)
}

// rawECDSA turns an ASN.1 ECDSA signature into the fixed-size R || S that JWS uses.
func rawECDSA(der []byte, size int) ([]byte, error) {
	var seq, r, s cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) {
		return nil, errors.New("keys: malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	for i, v := range [][]byte{r, s} {
		v = bytes.TrimLeft(v, "\x00")
		if len(v) > size {
			return nil, errors.New("keys: malformed ECDSA signature")
		}
		copy(out[(i+1)*size-len(v):], v)
	}
	return out, nil
}

// ErrBadSignature covers every way a JWS can fail to verify: not a JWS, an
// algorithm Latchkey does not sign with (none, HS256...), a header alg that is not
// the key's own, a wrong signature.
var ErrBadSignature = errors.New("keys: token signature does not verify")

// Verified is a JWS whose signature checked out against one of the realm's keys.
type Verified struct {
	Typ     string // the protected header's typ
	KID     string
	Payload []byte
}

// Verify checks a compact JWS against the realm's published keys. The algorithm is
// pinned to the key's own: the header's alg must equal it (RFC 8725 §3.1).
func (m *Manager) Verify(ctx context.Context, realm, token string) (Verified, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if len(jws.Signatures) != 1 {
		return Verified{}, ErrBadSignature
	}
	h := jws.Signatures[0].Protected
	k, err := m.Lookup(ctx, realm, h.KeyID)
	if err != nil {
		return Verified{}, err
	}
	if h.Algorithm != k.Alg {
		return Verified{}, fmt.Errorf("%w: header alg %s is not the key's %s", ErrBadSignature, h.Algorithm, k.Alg)
	}
	payload, err := jws.Verify(k.public.Key)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	return Verified{Typ: typ, KID: h.KeyID, Payload: payload}, nil
}
