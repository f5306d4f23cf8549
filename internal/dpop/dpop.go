package dpop

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var (
	// ErrInvalidProof is wrapped by every refusal of a proof: the edge answers
	// invalid_dpop_proof (RFC 9449 §5, §7.1).
	ErrInvalidProof = errors.New("dpop: invalid proof")
	// ErrUseNonce is wrapped when a server nonce is required and the proof
	// carries none, or one that is not (or no longer) valid: the edge answers
	// use_dpop_nonce with a fresh DPoP-Nonce header (RFC 9449 §8, §9).
	ErrUseNonce = errors.New("dpop: use server nonce")
	// ErrNoProof is returned by FromHeader when the request carries no DPoP
	// header; whether that is an error is the caller's decision.
	ErrNoProof = errors.New("dpop: no proof")
	// ErrReplayed is what a ReplayCache returns (wrapped) when the jti was
	// already used for that key.
	ErrReplayed = errors.New("dpop: proof already used")
)

// Limits on what is read from the outside before any work is done on it.
const (
	// MaxProofLength bounds the DPoP header value; an RSA-4096 proof is
	// about 2.5 KB.
	MaxProofLength = 8 << 10
	// MaxJTILength bounds the jti kept by the replay cache.
	MaxJTILength = 256
	// DefaultMaxAge is how old a proof's iat may be when Expect.MaxAge is 0.
	DefaultMaxAge = 60 * time.Second
	// DefaultLeeway is the clock skew tolerated when Expect.Leeway is 0.
	DefaultLeeway = 10 * time.Second

	minRSABits = 2048
	maxRSABits = 8192
)

// SigningAlgorithms are the JWS algorithms accepted for proofs, in the order
// advertised as dpop_signing_alg_values_supported (RFC 9449 §5.1). All are
// asymmetric: "none" and the HMAC algorithms can never be accepted (§4.3 5).
var SigningAlgorithms = []string{"ES256", "ES384", "RS256", "PS256", "EdDSA"}

func allowedAlgorithms() []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, len(SigningAlgorithms))
	for i, a := range SigningAlgorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return algs
}

// ReplayCache remembers the proofs already used. UseProofJTI records jti for
// the key with thumbprint jkt until the given time; it returns an error
// wrapping ErrReplayed when that pair was already recorded and has not
// expired, and any other error when it cannot tell (the proof is then not
// accepted). Implementations shared by all instances make replay protection
// hold across a cluster (RFC 9449 §11.1).
type ReplayCache interface {
	UseProofJTI(ctx context.Context, jkt, jti string, until time.Time) error
}

// Expect is what the server knows about the request a proof came with.
type Expect struct {
	// Method is the HTTP method of the request (htm, §4.3 8).
	Method string
	// URL is the target URI of the request as the server is configured to be
	// reached (from the issuer, never from Host or forwarding headers); its
	// query and fragment are ignored (htu, §4.3 9).
	URL string
	// AccessToken, when not empty, is the access token presented with the
	// proof: the proof must carry ath = base64url(SHA-256(token)) (§4.3 12).
	AccessToken string
	// Nonce, when not empty, is the server nonce the proof must carry.
	Nonce string
	// Nonces, when not nil, requires the proof to carry a nonce these issued
	// and that is still valid (§8, §9). Use either Nonce or Nonces.
	Nonces *Nonces
	// Replay records the proof's jti; it is required.
	Replay ReplayCache
	// Now is the current time; it is required (time is injected).
	Now time.Time
	// MaxAge is how old iat may be (DefaultMaxAge when 0); Leeway is the
	// clock skew tolerated either side (DefaultLeeway when 0).
	MaxAge, Leeway time.Duration
}

// Proof is what a verified proof tells the caller.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof key, base64url:
	// the value of cnf.jkt for tokens bound to this key (§6).
	JKT string
	// Key is the proof's public key.
	Key jose.JSONWebKey
	// JTI and IssuedAt are the proof's jti and iat.
	JTI      string
	IssuedAt time.Time
}

// FromHeader returns the single DPoP header value of a request: ErrNoProof
// when there is none, ErrInvalidProof when there are several (§4.3 1).
func FromHeader(h http.Header) (string, error) {
	vals := h.Values("DPoP")
	switch len(vals) {
	case 0:
		return "", ErrNoProof
	case 1:
		return vals[0], nil
	default:
		return "", fmt.Errorf("%w: %d DPoP headers", ErrInvalidProof, len(vals))
	}
}

type header struct {
	Typ string          `json:"typ"`
	Alg string          `json:"alg"`
	JWK json.RawMessage `json:"jwk"`
}

type claims struct {
	JTI   string          `json:"jti"`
	HTM   string          `json:"htm"`
	HTU   string          `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	ATH   string          `json:"ath"`
	Nonce *string         `json:"nonce"`
}

// Members of a JWK that only a private (or symmetric) key has (RFC 7518 §6.2.2,
// §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidProof}, args...)...)
}

// Verify checks one DPoP proof against the request it came with, following
// RFC 9449 §4.3, and records its jti in e.Replay. The checks that need no
// store run first, so a refused proof never reaches the replay cache.
func Verify(ctx context.Context, proof string, e Expect) (Proof, error) {
	if e.Replay == nil || e.Now.IsZero() {
		return Proof{}, errors.New("dpop: Verify needs Expect.Replay and Expect.Now")
	}
	maxAge, leeway := e.MaxAge, e.Leeway
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if leeway <= 0 {
		leeway = DefaultLeeway
	}

	// §4.3 2: a single well-formed JWT, in compact form only. Its alphabet is
	// base64url and two dots, so a combined header ("a, b") is refused here.
	if proof == "" {
		return Proof{}, invalid("empty")
	}
	if len(proof) > MaxProofLength {
		return Proof{}, invalid("longer than %d bytes", MaxProofLength)
	}
	if strings.Count(proof, ".") != 2 || strings.Trim(proof, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
		return Proof{}, invalid("not a compact JWS")
	}

	// Read the protected header ourselves first: typ, alg and the jwk
	// members are checked on the raw JSON, not on go-jose's view of it.
	rawHeader, err := base64.RawURLEncoding.DecodeString(proof[:strings.IndexByte(proof, '.')])
	if err != nil {
		return Proof{}, invalid("header: %v", err)
	}
	var h header
	if err := json.Unmarshal(rawHeader, &h); err != nil {
		return Proof{}, invalid("header: %v", err)
	}
	// §4.3 4.
	if h.Typ != "dpop+jwt" {
		return Proof{}, invalid("typ %q is not dpop+jwt", h.Typ)
	}
	// §4.3 5.
	if !algAllowed(h.Alg) {
		return Proof{}, invalid("alg %q not accepted", h.Alg)
	}
	// §4.3 7: the key must be public.
	if len(h.JWK) == 0 {
		return Proof{}, invalid("no jwk header")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(h.JWK, &members); err != nil {
		return Proof{}, invalid("jwk: %v", err)
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return Proof{}, invalid("jwk has private member %q", m)
		}
	}

	jws, err := jose.ParseSignedCompact(proof, allowedAlgorithms())
	if err != nil {
		return Proof{}, invalid("parse: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return Proof{}, invalid("%d signatures", len(jws.Signatures))
	}
	jwk := jws.Signatures[0].Protected.JSONWebKey
	if jwk == nil || !jwk.IsPublic() || !jwk.Valid() {
		return Proof{}, invalid("jwk is not a valid public key")
	}
	if err := checkKey(jwk); err != nil {
		return Proof{}, err
	}
	// §4.3 6.
	payload, err := jws.Verify(jwk)
	if err != nil {
		return Proof{}, invalid("signature: %v", err)
	}

	// §4.3 3: the claims of §4.2.
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Proof{}, invalid("claims: %v", err)
	}
	if c.JTI == "" || len(c.JTI) > MaxJTILength {
		return Proof{}, invalid("jti missing or longer than %d", MaxJTILength)
	}
	if c.HTM == "" || c.HTU == "" || len(c.IAT) == 0 {
		return Proof{}, invalid("htm, htu or iat missing")
	}
	// §4.3 8: methods are case-sensitive (RFC 9110 §9.1).
	if c.HTM != e.Method {
		return Proof{}, invalid("htm %q does not match %q", c.HTM, e.Method)
	}
	// §4.3 9.
	if err := matchHTU(c.HTU, e.URL); err != nil {
		return Proof{}, err
	}
	// §4.3 11: iat within [now-maxAge-leeway, now+leeway].
	iat, err := numericDate(c.IAT)
	if err != nil {
		return Proof{}, err
	}
	if iat.After(e.Now.Add(leeway)) {
		return Proof{}, invalid("iat in the future")
	}
	if iat.Before(e.Now.Add(-maxAge - leeway)) {
		return Proof{}, invalid("iat too old")
	}
	// §4.3 12: ath binds the proof to the presented access token.
	if e.AccessToken != "" {
		sum := sha256.Sum256([]byte(e.AccessToken))
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(want)) != 1 {
			return Proof{}, invalid("ath missing or does not match the access token")
		}
	}
	// §4.3 10, §8, §9: the server nonce.
	if e.Nonce != "" || e.Nonces != nil {
		if c.Nonce == nil || *c.Nonce == "" {
			return Proof{}, fmt.Errorf("%w: nonce missing", ErrUseNonce)
		}
		if e.Nonce != "" && subtle.ConstantTimeCompare([]byte(*c.Nonce), []byte(e.Nonce)) != 1 {
			return Proof{}, fmt.Errorf("%w: nonce does not match", ErrUseNonce)
		}
		if e.Nonces != nil {
			if err := e.Nonces.Check(*c.Nonce, e.Now); err != nil {
				return Proof{}, fmt.Errorf("%w: %v", ErrUseNonce, err)
			}
		}
	}

	jkt, err := Thumbprint(*jwk)
	if err != nil {
		return Proof{}, invalid("thumbprint: %v", err)
	}
	// §11.1: a proof is used once. It is remembered for as long as its iat
	// would be accepted, after which the iat check refuses it anyway.
	until := iat.Add(maxAge + 2*leeway)
	if err := e.Replay.UseProofJTI(ctx, jkt, c.JTI, until); err != nil {
		if errors.Is(err, ErrReplayed) {
			return Proof{}, fmt.Errorf("%w: %w", ErrInvalidProof, err)
		}
		return Proof{}, fmt.Errorf("dpop: replay cache: %w", err)
	}
	return Proof{JKT: jkt, Key: *jwk, JTI: c.JTI, IssuedAt: iat}, nil
}

func algAllowed(alg string) bool {
	for _, a := range SigningAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// checkKey refuses keys too weak or too costly to verify with: RSA outside
// 2048–8192 bits (RFC 7518 §3.3 asks for at least 2048).
func checkKey(jwk *jose.JSONWebKey) error {
	if k, ok := jwk.Key.(*rsa.PublicKey); ok {
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return invalid("RSA key of %d bits", bits)
		}
	}
	return nil
}

// numericDate reads a NumericDate (RFC 7519 §2): a JSON number, not a
// string holding one, possibly with a fraction.
func numericDate(raw json.RawMessage) (time.Time, error) {
	// raw is one valid JSON value; a number is the only kind that starts so.
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return time.Time{}, invalid("iat is not a number")
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, invalid("iat is not a date")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// Thumbprint returns the RFC 7638 thumbprint of a public key with SHA-256,
// base64url without padding: the value of cnf.jkt (RFC 9449 §6.1).
func Thumbprint(jwk jose.JSONWebKey) (string, error) {
	if jwk.Key == nil {
		return "", errors.New("dpop: thumbprint of an empty key")
	}
	pub := jwk.Public()
	if pub.Key == nil {
		return "", errors.New("dpop: thumbprint of an unknown key type")
	}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
