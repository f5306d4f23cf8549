package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// asymmetric algorithms only: HS* and none are never accepted (RFC 8725 §3.1).
var signatureAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// remoteKeys caches the issuer's JWKS and refetches it on an unknown kid, at most
// once per refetchEvery, one fetch at a time.
type remoteKeys struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	set     jose.JSONWebKeySet
	fetched time.Time
}

const refetchEvery = 10 * time.Second

func (k *remoteKeys) key(ctx context.Context, kid string, now time.Time) (jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ks := k.set.Key(kid); len(ks) > 0 {
		return ks[0], nil
	}
	if !k.fetched.IsZero() && now.Sub(k.fetched) < refetchEvery {
		return jose.JSONWebKey{}, fmt.Errorf("unknown key %q", kid)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jose.JSONWebKey{}, fmt.Errorf("jwks: %s", resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return jose.JSONWebKey{}, err
	}
	k.set, k.fetched = set, now
	if ks := k.set.Key(kid); len(ks) > 0 {
		return ks[0], nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("unknown key %q", kid)
}

// verifyJWT checks the signature of raw against the issuer's keys, the algorithm
// pinned to the key's own alg, the typ header when wantTyp is set, and returns the
// claims.
func (h *Handler) verifyJWT(ctx context.Context, raw, wantTyp string) (map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, signatureAlgs)
	if err != nil {
		return nil, err
	}
	if len(tok.Headers) != 1 {
		return nil, errors.New("one signature expected")
	}
	hdr := tok.Headers[0]
	if wantTyp != "" {
		if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); typ != wantTyp && typ != "application/"+wantTyp {
			return nil, fmt.Errorf("typ %q", typ)
		}
	}
	key, err := h.keys.key(ctx, hdr.KeyID, h.now())
	if err != nil {
		return nil, err
	}
	if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
		return nil, fmt.Errorf("alg %s is not the key's %s", hdr.Algorithm, key.Algorithm)
	}
	if key.Use != "" && key.Use != "sig" {
		return nil, errors.New("key is not a signing key")
	}
	var claims map[string]any
	if err := tok.Claims(key.Key, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}

const skew = time.Minute

// checkStandard checks iss, aud (must contain ClientID), exp when present or
// required, and iat.
func (h *Handler) checkStandard(c map[string]any, needExp bool) error {
	if s, _ := c["iss"].(string); s != h.cfg.Issuer {
		return errors.New("wrong iss")
	}
	if !audContains(c["aud"], h.cfg.ClientID) {
		return errors.New("wrong aud")
	}
	now := h.now()
	exp, hasExp := numericDate(c["exp"])
	if needExp && !hasExp {
		return errors.New("no exp")
	}
	if hasExp && !now.Before(exp.Add(skew)) {
		return errors.New("expired")
	}
	iat, ok := numericDate(c["iat"])
	if !ok {
		return errors.New("no iat")
	}
	if iat.After(now.Add(skew)) {
		return errors.New("iat in the future")
	}
	return nil
}

func audContains(aud any, id string) bool {
	switch a := aud.(type) {
	case string:
		return a == id
	case []any:
		return slices.ContainsFunc(a, func(v any) bool { s, _ := v.(string); return s == id })
	}
	return false
}

func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// verifyIDToken checks an ID token (OIDC Core §3.1.3.7); nonce is checked when not "".
func (h *Handler) verifyIDToken(ctx context.Context, raw, nonce string) (map[string]any, error) {
	c, err := h.verifyJWT(ctx, raw, "")
	if err != nil {
		return nil, err
	}
	if err := h.checkStandard(c, true); err != nil {
		return nil, err
	}
	if sub, _ := c["sub"].(string); sub == "" {
		return nil, errors.New("no sub")
	}
	if nonce != "" {
		if n, _ := c["nonce"].(string); !equal(n, nonce) {
			return nil, errors.New("wrong nonce")
		}
	}
	return c, nil
}

const eventBackchannelLogout = "http://schemas.openid.net/event/backchannel-logout"

// logoutTokenMaxAge bounds how old a logout token's iat may be, and so how long a
// jti must be remembered.
const logoutTokenMaxAge = 10 * time.Minute

// verifyLogoutToken follows OIDC Back-Channel Logout 1.0 §2.6 and returns sid and sub.
func (h *Handler) verifyLogoutToken(ctx context.Context, raw string) (sid, sub string, err error) {
	c, err := h.verifyJWT(ctx, raw, "logout+jwt")
	if err != nil {
		return "", "", err
	}
	if err := h.checkStandard(c, false); err != nil {
		return "", "", err
	}
	if iat, _ := numericDate(c["iat"]); iat.Before(h.now().Add(-logoutTokenMaxAge)) {
		return "", "", errors.New("too old")
	}
	ev, _ := c["events"].(map[string]any)
	if _, ok := ev[eventBackchannelLogout].(map[string]any); !ok {
		return "", "", errors.New("no backchannel-logout event")
	}
	if _, ok := c["nonce"]; ok {
		return "", "", errors.New("nonce present")
	}
	sid, _ = c["sid"].(string)
	sub, _ = c["sub"].(string)
	if sid == "" && sub == "" {
		return "", "", errors.New("neither sid nor sub")
	}
	jti, _ := c["jti"].(string)
	if jti == "" {
		return "", "", errors.New("no jti")
	}
	if !h.jtis.once(jti, h.now()) {
		return "", "", errors.New("jti replayed")
	}
	return sid, sub, nil
}

// jtiCache remembers logout token jtis for logoutTokenMaxAge, bounded in count.
type jtiCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
}

func newJTICache(max int) *jtiCache { return &jtiCache{max: max, seen: map[string]time.Time{}} }

// once reports whether jti is new; a full cache refuses (fails closed) after purging.
func (c *jtiCache) once(jti string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(jti) > 256 {
		return false
	}
	if t, ok := c.seen[jti]; ok && now.Sub(t) < logoutTokenMaxAge+skew {
		return false
	}
	if len(c.seen) >= c.max {
		for k, t := range c.seen {
			if now.Sub(t) >= logoutTokenMaxAge+skew {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return false
		}
	}
	c.seen[jti] = now
	return true
}
