package rs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
)

// DefaultDPoPReplayCacheSize is how many DPoP proofs a Validator remembers when
// Options.DPoPReplayCacheSize is 0: about 5 MB when full (at most about 8 MB),
// enough for about 1,200 DPoP requests a second, as a proof is remembered for
// 80 s. An entry has a fixed size whatever the jti.
const DefaultDPoPReplayCacheSize = 100_000

var (
	// errInvalidProof: the DPoP proof is missing or fails RFC 9449 §4.3; the
	// refusal is 401 invalid_dpop_proof (§7.1).
	errInvalidProof = errors.New("invalid DPoP proof")
	// errBoundAsBearer: a DPoP-bound token was sent with the Bearer scheme.
	errBoundAsBearer = invalid("the token is bound to a DPoP key: send it with the DPoP scheme and a proof")
	// errReplayCacheFull: the replay cache holds only live proofs; a new one cannot
	// be remembered, so it is not accepted (ErrUnavailable, 503).
	errReplayCacheFull = errors.New("the DPoP replay cache is full")
)

// dpopAlgs is the algs parameter of DPoP challenges (RFC 9449 §7.1).
var dpopAlgs = strings.Join(dpop.SigningAlgorithms, " ")

// checkDPoP checks the DPoP proof of a request whose Authorization header used
// the DPoP scheme with tok, already validated as c: RFC 9449 §4.3 (typ, alg,
// signature, htm, htu, iat, ath, jti not seen before) and, for a bound token, §7.1:
// the proof's key is the one whose thumbprint the token carries in cnf.jkt.
//
// A token without cnf is accepted under the DPoP scheme too, with a valid proof:
// §7.2 forbids only the other way round (a bound token as a bearer token), and the
// same token would be accepted with the Bearer scheme and no proof at all.
func (v *Validator) checkDPoP(r *http.Request, tok string, c *Claims) error {
	proof, err := dpop.FromHeader(r.Header)
	if errors.Is(err, dpop.ErrNoProof) {
		return fmt.Errorf("%w: a DPoP proof is required with the DPoP scheme", errInvalidProof)
	}
	if err != nil {
		return fmt.Errorf("%w: more than one DPoP header", errInvalidProof)
	}
	want := ""
	if c.Confirmation != nil {
		want = c.Confirmation.JKT
	}
	now := v.o.Now()
	_, err = dpop.Verify(r.Context(), proof, dpop.Expect{
		Method:      r.Method,
		URL:         v.requestURL(r),
		AccessToken: tok,
		Replay:      boundReplay{cache: v.replay, jkt: want, now: now},
		Now:         now,
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errWrongKey):
		// RFC 9449 §7.1, Figure 16: the binding failed, so the token is invalid.
		return invalid("invalid DPoP key binding: the proof is not signed with the token's key")
	case errors.Is(err, errReplayCacheFull):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case errors.Is(err, dpop.ErrReplayed):
		return fmt.Errorf("%w: the proof was already used", errInvalidProof)
	case errors.Is(err, dpop.ErrInvalidProof):
		return fmt.Errorf("%w: %s", errInvalidProof, strings.TrimPrefix(err.Error(), dpop.ErrInvalidProof.Error()+": "))
	default:
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
}

// requestURL is the URL the client used, as htu names it (RFC 9449 §4.2): the
// configured ExternalURL with the request's path, or else the request's own
// scheme (https when it came over TLS) and Host.
func (v *Validator) requestURL(r *http.Request) string {
	path := r.URL.EscapedPath()
	if v.o.ExternalURL != "" {
		return v.o.ExternalURL + path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// checkExternalURL reads Options.ExternalURL: an absolute http(s) URL with no
// query, fragment or user info; returned without a trailing slash.
func checkExternalURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("rs: ExternalURL %q is not an http:// or https:// URL without query or fragment", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}

// errWrongKey: the proof is good but signed with another key than the token's.
var errWrongKey = errors.New("the proof's key is not the token's")

// boundReplay records a proof's jti only when its key is the one the token is
// bound to (any key when jkt is empty): a caller holding a bound token but not its
// key cannot fill the replay cache.
type boundReplay struct {
	cache *replayCache
	jkt   string
	now   time.Time
}

func (b boundReplay) UseProofJTI(_ context.Context, jkt, jti string, until time.Time) error {
	if b.jkt != "" && jkt != b.jkt {
		return errWrongKey
	}
	return b.cache.use(jkt, jti, until, b.now)
}

// replayCache remembers the proofs used (RFC 9449 §11.1), by a 128-bit hash of
// the key's thumbprint and the jti so every entry has the same small size, until
// each could no longer pass the iat check. It holds at most max entries; when all
// are live, a new proof is refused rather than an old one forgotten, which would
// let that one be replayed.
type replayCache struct {
	max int

	mu    sync.Mutex
	seen  map[replayKey]struct{}
	queue []replayEntry // in the order of their until, oldest first
	head  int
}

type replayKey [16]byte

type replayEntry struct {
	key   replayKey
	until int64 // Unix nanoseconds: a time.Time would triple the entry
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: make(map[replayKey]struct{})}
}

// use records jkt and jti until the given time; dpop.ErrReplayed if they are
// already recorded, errReplayCacheFull if there is no room.
func (c *replayCache) use(jkt, jti string, untilTime, now time.Time) error {
	sum := sha256.Sum256([]byte(jkt + "\x00" + jti))
	var k replayKey
	copy(k[:], sum[:])
	until := untilTime.UnixNano()

	c.mu.Lock()
	defer c.mu.Unlock()
	// Entries are queued in the order of their until (each is kept at least as
	// long as the one before), so the expired ones are at the front. The iat check
	// refuses a proof once its until has passed, so it need not be remembered.
	for c.head < len(c.queue) && c.queue[c.head].until <= now.UnixNano() {
		delete(c.seen, c.queue[c.head].key)
		c.queue[c.head] = replayEntry{}
		c.head++
	}
	if c.head > len(c.queue)/2 {
		c.queue = append(c.queue[:0], c.queue[c.head:]...)
		c.head = 0
	}
	if _, ok := c.seen[k]; ok {
		return dpop.ErrReplayed
	}
	if len(c.seen) >= c.max {
		return errReplayCacheFull
	}
	if n := len(c.queue); n > c.head && until < c.queue[n-1].until {
		until = c.queue[n-1].until
	}
	c.seen[k] = struct{}{}
	c.queue = append(c.queue, replayEntry{k, until})
	return nil
}
