package rs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Errors Validate wraps, so callers can tell a bad token from a check that could not
// be made.
var (
	// ErrInvalidToken: the token is not an access token this API accepts (RFC 6750
	// §3.1 invalid_token).
	ErrInvalidToken = errors.New("rs: invalid token")
	// ErrUnavailable: the token could not be checked now (keys or introspection
	// unreachable, revocation feed not yet in sync); the request may be retried.
	ErrUnavailable = errors.New("rs: token cannot be checked now")
)

// Defaults of Options.
const (
	DefaultLeeway        = 30 * time.Second
	DefaultSyncWait      = 5 * time.Second
	DefaultCacheSize     = 10000
	DefaultIntrospectTTL = 5 * time.Second
	minKeysRefetch       = 10 * time.Second // an unknown kid refetches the JWKS at most this often
	maxLeeway            = 5 * time.Minute
	maxToken             = 16 << 10 // as the server bounds tokens (internal/ident.MaxToken): roles make them larger
	opaqueAccessPrefix   = "lk_at_" // Latchkey's opaque access tokens (internal/token.AccessPrefix)
	latchkeyPrefix       = "lk_"    // every Latchkey opaque token: lk_at_, lk_rt_ (refresh), lk_ac_ (code)
)

// Options configure a Validator.
type Options struct {
	// Issuer is the authorization server's issuer URL (a Latchkey realm:
	// https://HOST/realms/REALM). Required; a token's iss must equal it.
	Issuer string
	// Audience is this API's identifier; a token's aud must contain it. Required.
	Audience string
	// ClientID and ClientSecret are this API's own confidential client at the issuer,
	// used (HTTP Basic) at the revocation feed and at introspection for opaque
	// tokens. Required unless DisableFeed is set; without them opaque tokens are
	// refused.
	ClientID, ClientSecret string

	// DisableFeed turns the revocation feed off: a token then stays good until its
	// exp whatever happens at the issuer. For issuers without the feed.
	DisableFeed bool
	// AcceptBeforeSync accepts tokens before the feed has first caught up (its first
	// "synced"), when a token revoked earlier cannot yet be told apart. By default a
	// request waits up to SyncWait for the feed and is then refused with 503: the
	// Validator fails closed.
	AcceptBeforeSync bool
	// SyncWait is how long a request waits for the feed's first sync (default 5 s).
	SyncWait time.Duration

	// Leeway is the clock skew tolerated on exp, nbf and iat (default 30 s, at most
	// 5 minutes).
	Leeway time.Duration
	// CacheSize bounds the tokens remembered as verified, and separately the opaque
	// tokens remembered from introspection (default 10000 each; negative: none).
	CacheSize int
	// IntrospectTTL is how long an introspection answer is reused, never past the
	// token's exp (default 5 s).
	IntrospectTTL time.Duration

	// Keys replaces the issuer's JWKS (for tests, or keys configured by hand). With
	// Keys set, DisableFeed and no ClientID, New does not contact the issuer.
	Keys KeySet
	// HTTPClient makes every request to the issuer (default: a client with a 10 s
	// timeout; the feed's stream uses its Transport without the timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger gets the feed's connection problems (default: discarded). Tokens are
	// never logged.
	Logger *slog.Logger
	// Realm is the realm of the WWW-Authenticate challenge (default Audience).
	Realm string

	// ExternalURL is this API's base URL as its clients reach it, such as
	// https://api.example.com (a path prefix may follow). A DPoP proof's htu must
	// be it followed by the request's path (RFC 9449 §4.3). When empty, the URL is
	// read from the request: https if it came over TLS, else http, and its Host
	// header. That default is right for a server clients reach directly, and it
	// fails closed behind a proxy that terminates TLS or changes the host (every
	// proof is refused), but it also lets the client choose the host a proof is
	// checked against, so a proof made for another server with the same path is
	// not told apart by htu (its ath, jti and iat still are checked). Set it
	// whenever the URL is known; forwarding headers (X-Forwarded-*, Forwarded)
	// are never read, as any client could set them.
	ExternalURL string
	// DPoPReplayCacheSize bounds the DPoP proofs remembered so none is used twice
	// (default DefaultDPoPReplayCacheSize, about 50 bytes each). A proof is
	// remembered for 80 s, so size it for the DPoP requests of 80 s at the peak;
	// when the cache is full of live ones, new proofs get 503 until room is made,
	// rather than an old one being forgotten and made replayable. One instance's
	// cache does not see another's proofs: a proof used here may be used
	// once more at each other instance within its minute (RFC 9449 §11.1).
	DPoPReplayCacheSize int
}

// Validator checks access tokens for one API: locally for JWTs, by introspection
// for opaque tokens, and against the issuer's revocation feed.
type Validator struct {
	o          Options
	keys       KeySet
	remote     *remoteKeySet // nil when Options.Keys is set
	verified   *cache
	introspect *cache
	endpoints  endpoints
	rev        *revocations
	feed       *feed // nil when disabled
	replay     *replayCache
	cancel     context.CancelFunc
	done       chan struct{}
	closeOnce  sync.Once
}

// endpoints are the issuer's, from its discovery document.
type endpoints struct {
	Issuer           string `json:"issuer"`
	JWKS             string `json:"jwks_uri"`
	Introspection    string `json:"introspection_endpoint"`
	RevocationEvents string `json:"revocation_events_endpoint"`
}

// New returns a Validator. Unless Options.Keys is set with DisableFeed, it reads the
// issuer's discovery document (ISSUER/.well-known/openid-configuration) and its JWKS
// now, and fails if it cannot; it then follows the revocation feed in the
// background until Close.
func New(ctx context.Context, o Options) (*Validator, error) {
	if o.Issuer == "" || o.Audience == "" {
		return nil, errors.New("rs: Issuer and Audience are required")
	}
	if !o.DisableFeed && (o.ClientID == "" || o.ClientSecret == "") {
		return nil, errors.New("rs: ClientID and ClientSecret are required for the revocation feed (or set DisableFeed)")
	}
	if o.Leeway == 0 {
		o.Leeway = DefaultLeeway
	}
	if o.Leeway < 0 || o.Leeway > maxLeeway {
		return nil, fmt.Errorf("rs: Leeway %s is not between 0 and %s", o.Leeway, maxLeeway)
	}
	if o.SyncWait <= 0 {
		o.SyncWait = DefaultSyncWait
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.IntrospectTTL <= 0 {
		o.IntrospectTTL = DefaultIntrospectTTL
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Realm == "" {
		o.Realm = o.Audience
	}
	if o.ExternalURL != "" {
		var err error
		if o.ExternalURL, err = checkExternalURL(o.ExternalURL); err != nil {
			return nil, err
		}
	}
	if o.DPoPReplayCacheSize == 0 {
		o.DPoPReplayCacheSize = DefaultDPoPReplayCacheSize
	}
	if o.DPoPReplayCacheSize < 0 {
		return nil, errors.New("rs: DPoPReplayCacheSize is negative (replay protection cannot be turned off)")
	}
	v := &Validator{
		o: o, keys: o.Keys, verified: newCache(o.CacheSize), introspect: newCache(o.CacheSize),
		rev: newRevocations(o.Leeway), done: make(chan struct{}), replay: newReplayCache(o.DPoPReplayCacheSize),
	}
	if o.Keys == nil || !o.DisableFeed || o.ClientID != "" {
		if err := getJSON(ctx, o.HTTPClient, strings.TrimSuffix(o.Issuer, "/")+"/.well-known/openid-configuration", &v.endpoints); err != nil {
			return nil, fmt.Errorf("rs: discovery: %w", err)
		}
		// OpenID Connect Discovery §4.3: the document's issuer must be the one asked.
		if v.endpoints.Issuer != o.Issuer {
			return nil, fmt.Errorf("rs: discovery names issuer %q, not %q", v.endpoints.Issuer, o.Issuer)
		}
	}
	if v.keys == nil {
		if v.endpoints.JWKS == "" {
			return nil, errors.New("rs: discovery has no jwks_uri")
		}
		v.remote = newRemoteKeySet(v.endpoints.JWKS, o.HTTPClient, o.Now, minKeysRefetch)
		if err := v.remote.refresh(ctx, true); err != nil {
			return nil, err
		}
		v.keys = v.remote
	}
	ctx, v.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if o.DisableFeed {
		close(v.done)
		return v, nil
	}
	if v.endpoints.RevocationEvents == "" {
		v.cancel()
		return nil, errors.New("rs: the issuer advertises no revocation_events_endpoint (set DisableFeed to go without)")
	}
	v.feed = newFeed(v, v.endpoints.RevocationEvents)
	go func() { defer close(v.done); v.feed.run(ctx) }()
	return v, nil
}

// Close stops following the revocation feed.
func (v *Validator) Close() {
	v.closeOnce.Do(func() { v.cancel(); <-v.done })
}

// Synced is closed once the revocation feed has first caught up (at once when the
// feed is disabled).
func (v *Validator) Synced() <-chan struct{} {
	if v.feed == nil {
		return closed
	}
	return v.feed.synced
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// invalid is an ErrInvalidToken saying why, in words safe to send to the client.
func invalid(why string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, why) }

// Validate checks an access token presented as a bearer token (RFC 6750) and
// returns its claims. A token bound to a DPoP key (cnf.jkt) is refused: it is good
// only with a proof of that key, which Authenticate and the middleware check
// (RFC 9449 §7.2). The error wraps ErrInvalidToken or ErrUnavailable.
func (v *Validator) Validate(ctx context.Context, tok string) (*Claims, error) {
	c, err := v.validate(ctx, tok)
	if err == nil && c.Confirmation != nil {
		return nil, errBoundAsBearer
	}
	return c, err
}

// validate checks an access token whatever it is bound to.
func (v *Validator) validate(ctx context.Context, tok string) (*Claims, error) {
	if tok == "" || len(tok) > maxToken {
		return nil, invalid("malformed token")
	}
	if err := v.waitSynced(ctx); err != nil {
		return nil, err
	}
	var c *Claims
	var err error
	switch {
	case strings.HasPrefix(tok, opaqueAccessPrefix):
		c, err = v.introspected(ctx, tok)
	case strings.HasPrefix(tok, latchkeyPrefix):
		// A refresh token or a code is never a bearer credential.
		return nil, invalid("not an access token")
	default:
		c, err = v.verifiedJWT(ctx, tok)
	}
	if err != nil {
		return nil, err
	}
	if v.rev.revoked(c, v.o.Now()) {
		return nil, invalid("token revoked")
	}
	return c, nil
}

// waitSynced holds a request until the feed has first caught up, unless the
// Validator accepts tokens before that.
func (v *Validator) waitSynced(ctx context.Context) error {
	if v.feed == nil || v.o.AcceptBeforeSync {
		return nil
	}
	select {
	case <-v.feed.synced:
		return nil
	default:
	}
	t := time.NewTimer(v.o.SyncWait)
	defer t.Stop()
	select {
	case <-v.feed.synced:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	return fmt.Errorf("%w: the revocation feed has not caught up yet", ErrUnavailable)
}

// verifiedJWT checks a JWT access token, or finds it among those already checked.
func (v *Validator) verifiedJWT(ctx context.Context, tok string) (*Claims, error) {
	now := v.o.Now()
	k := tokenKey(tok)
	if e, ok := v.verified.get(k, now); ok {
		// The feed's keys-changed clears the cache, but a check under way then may
		// still have put its token back: a key no longer published ends its tokens.
		if v.remote == nil {
			return e.claims, nil
		}
		if _, ok := v.remote.published(e.claims.KeyID); ok {
			return e.claims, nil
		}
		return nil, invalid("unknown key")
	}
	payload, typ, kid, err := verifyJWS(ctx, v.keys, tok)
	if err != nil {
		return nil, err
	}
	// RFC 9068 §4: typ must say access token, so an ID token (typ JWT) or a security
	// event token never passes as one.
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, invalid("not an access token (typ)")
	}
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil || w.Active != nil {
		return nil, invalid("malformed claims")
	}
	c, err := w.claims(kid)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(c, now); err != nil {
		return nil, err
	}
	// Remembered until it expires: the time checks are the only ones that change.
	v.verified.put(k, cacheEntry{claims: c, until: c.Expiry.Add(v.o.Leeway)})
	return c, nil
}

// checkClaims applies RFC 9068 §4's rules to a token's claims.
func (v *Validator) checkClaims(c *Claims, now time.Time) error {
	if c.Subject == "" || c.ID == "" || c.ClientID == "" || c.Expiry.Unix() == 0 || c.IssuedAt.Unix() == 0 {
		return invalid("missing claims") // RFC 9068 §2.2: iss exp aud sub client_id iat jti are required
	}
	if c.Issuer != v.o.Issuer {
		return invalid("wrong issuer")
	}
	if !slices.Contains(c.Audience, v.o.Audience) {
		return invalid("wrong audience")
	}
	if !now.Before(c.Expiry.Add(v.o.Leeway)) {
		return invalid("token expired")
	}
	if !c.NotBefore.IsZero() && now.Add(v.o.Leeway).Before(c.NotBefore) {
		return invalid("token not yet valid")
	}
	if now.Add(v.o.Leeway).Before(c.IssuedAt) {
		return invalid("token issued in the future")
	}
	return nil
}

// signingAlgs are the JWS algorithms accepted at all: asymmetric only, so no HMAC
// with a public key as its secret, and never none (RFC 8725 §3.1, §3.2).
var signingAlgs = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// verifyJWS checks a compact JWS against the key its kid names, with the algorithm
// pinned to that key's own alg, and returns the payload and the header's typ and kid.
func verifyJWS(ctx context.Context, keys KeySet, tok string) (payload []byte, typ, kid string, err error) {
	jws, err := jose.ParseSignedCompact(tok, signingAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "", "", invalid("malformed or unsupported JWS")
	}
	h := jws.Signatures[0].Protected
	if h.KeyID == "" {
		return nil, "", "", invalid("no kid")
	}
	k, err := keys.Key(ctx, h.KeyID)
	if errors.Is(err, ErrUnknownKey) {
		return nil, "", "", invalid("unknown key")
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// RFC 8725 §3.1: the key says its algorithm; a header naming any other is refused.
	if k.Algorithm == "" || h.Algorithm != k.Algorithm {
		return nil, "", "", invalid("algorithm is not the key's")
	}
	payload, err = jws.Verify(k.Key)
	if err != nil {
		return nil, "", "", invalid("bad signature")
	}
	typ, _ = h.ExtraHeaders[jose.HeaderType].(string)
	return payload, typ, h.KeyID, nil
}
