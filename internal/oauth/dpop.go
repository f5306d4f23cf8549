package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// DPoP (RFC 9449) at the protocol edge: the token endpoint's shared DPoP phase,
// the server nonces it requires, and the replay check of proofs through the
// store, which every instance shares (§11.1).

// dpopNonceWindow is how often the server nonce changes: a nonce is accepted for
// one to two windows. Five minutes spares clients a use_dpop_nonce round trip
// on most requests while keeping a captured nonce short-lived.
const dpopNonceWindow = 5 * time.Minute

// newDPoPNonces returns the server nonces of every instance sharing the master
// key: the key is derived from it, so a nonce one instance issued is accepted by
// every other (RFC 9449 §9 leaves the nonce's form to the server).
func newDPoPNonces(mk *masterkey.Key) *dpop.Nonces {
	n, err := dpop.NewNonces(mk.Derive("dpop nonces"), dpopNonceWindow)
	if err != nil {
		panic(err) // Derive returns 32 bytes, NewNonces' minimum
	}
	return n
}

// dpopReplay is the store's proof table seen as the dpop package's replay cache,
// for one realm.
type dpopReplay struct {
	store interface {
		UseDPoPProof(ctx context.Context, realm, jkt, jti string, until time.Time) error
	}
	realm string
}

// UseProofJTI records the proof once; a second use is dpop.ErrReplayed.
func (r dpopReplay) UseProofJTI(ctx context.Context, jkt, jti string, until time.Time) error {
	err := r.store.UseDPoPProof(ctx, r.realm, jkt, jti, until.UTC().Truncate(time.Microsecond))
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return fmt.Errorf("%w: %w", dpop.ErrReplayed, err)
	}
	return err
}

// hasDPoP reports whether the request carries a DPoP header at all: one map
// lookup, so a request without one pays nothing more for DPoP.
func hasDPoP(r *http.Request) bool {
	_, ok := r.Header["Dpop"]
	return ok
}

// tokenProof is the token endpoint's DPoP phase (RFC 9449 §5): nil when the
// request carries no proof, else the verified proof. The proof must be for a
// POST to the token endpoint URL of the configured issuer (never one built from
// Host or forwarding headers), carry a server nonce this realm's instances issued
// (§8), and never have been used before (§11.1). The caller has already set a
// fresh DPoP-Nonce on the response (hasDPoP).
func (h *Handler) tokenProof(r *http.Request, realm storage.Realm) (*dpop.Proof, error) {
	raw, err := dpop.FromHeader(r.Header)
	if errors.Is(err, dpop.ErrNoProof) {
		return nil, nil
	}
	if err != nil {
		return nil, dpopError(err)
	}
	p, err := dpop.Verify(r.Context(), raw, dpop.Expect{
		Method: http.MethodPost,
		URL:    h.tokens.Issuer(realm.Name) + tokenPath,
		Nonces: h.nonces,
		Replay: dpopReplay{h.store, realm.Name},
		Now:    h.now(),
	})
	if err != nil {
		return nil, dpopError(err)
	}
	return &p, nil
}

// dpopError is how a refused proof is answered: use_dpop_nonce when it lacks a
// valid server nonce (§8), invalid_dpop_proof for every other refusal (§5); a
// store that could not say whether the proof was used is no verdict on it.
func dpopError(err error) error {
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return protocol.Wrap(protocol.UseDPoPNonce, "the DPoP proof must carry the nonce of the DPoP-Nonce header", err)
	case errors.Is(err, dpop.ErrInvalidProof):
		return protocol.Wrap(protocol.InvalidDPoPProof, "the DPoP proof is invalid", err)
	}
	return err
}

// errDPoPRequired is the answer to a client registered with
// dpop_bound_access_tokens that sent no proof.
func errDPoPRequired() *protocol.Error {
	return protocol.New(protocol.InvalidDPoPProof, "a DPoP proof is required")
}

// dpopUser checks an access token presented with the DPoP scheme (RFC 9449 §7.1)
// at the endpoint whose URL is htu, and returns its user and scopes, or answers
// the refusal itself with a DPoP challenge: the token must be an active user
// token bound to a key, and the request must carry a proof of that key for this
// method and URL, for this token (ath), used once. No server nonce is asked for
// here: the proof's short iat window and the replay check stand instead.
func (h *Handler) dpopUser(w http.ResponseWriter, r *http.Request, realm storage.Realm, tok, htu string) (storage.User, []string, bool) {
	issuer := h.tokens.Issuer(realm.Name)
	refuse := func(e *protocol.Error) (storage.User, []string, bool) {
		if e.Code == protocol.InvalidDPoPProof {
			e.Status = http.StatusUnauthorized // RFC 9449 §7.1: at a protected resource
		}
		h.logError(r, e)
		e.WriteDPoP(w, issuer, dpop.SigningAlgorithms)
		return storage.User{}, nil, false
	}
	// answer refuses err with a DPoP challenge when it is a verdict on the token
	// or the proof; anything else (a store failure) is answered as such.
	answer := func(err error) (storage.User, []string, bool) {
		if e := wireError(dpopError(err)); e.Code == protocol.InvalidToken || e.Code == protocol.InsufficientScope || e.Code == protocol.InvalidDPoPProof {
			return refuse(e)
		}
		h.writeError(w, r, err)
		return storage.User{}, nil, false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return refuse(protocol.NoToken())
	}
	if ident.Token(tok) != nil {
		return refuse(protocol.New(protocol.InvalidToken, "the access token is not valid"))
	}
	user, scopes, jkt, err := h.tokens.BoundTokenUser(r.Context(), realm, tok)
	if err == nil && jkt == "" {
		// A bearer token is not upgraded by a proof: it was never bound to a key.
		err = fmt.Errorf("%w: a bearer token sent with the DPoP scheme", token.ErrInvalidToken)
	}
	if err != nil {
		return answer(err)
	}
	raw, err := dpop.FromHeader(r.Header)
	if errors.Is(err, dpop.ErrNoProof) {
		return refuse(protocol.New(protocol.InvalidDPoPProof, "a DPoP proof is required"))
	}
	if err != nil {
		return answer(err)
	}
	p, err := dpop.Verify(r.Context(), raw, dpop.Expect{
		Method: r.Method, URL: htu, AccessToken: tok,
		Replay: dpopReplay{h.store, realm.Name}, Now: h.now(),
	})
	if err != nil {
		return answer(err)
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(jkt)) != 1 {
		// §7.1: the proof must be signed by the key the token is bound to.
		return refuse(protocol.New(protocol.InvalidToken, "the access token is bound to another key"))
	}
	return user, scopes, true
}
