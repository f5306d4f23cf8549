package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Sign serialises claims as a compact JWS signed by k, with typ and kid in the
// protected header.
func (k *Key) Sign(claims any, typ string) (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg), Key: jose.JSONWebKey{Key: k.private, KeyID: k.KID}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
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
