package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// Client authentication methods (RFC 8414 §2, OIDC Core §9).
const (
	methodBasic = "client_secret_basic"
	methodPost  = "client_secret_post"
	methodJWT   = "private_key_jwt"
	methodNone  = "none"
)

// assertionType is the client_assertion_type of RFC 7523 §2.2.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLifetime bounds how far in the future a client assertion may expire,
// and so how long its jti must be remembered.
const maxAssertionLifetime = time.Hour

// assertionAlgs are the algorithms a client may sign its assertion with.
var assertionAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}

// authenticateClient identifies and authenticates the client of a request by
// exactly one method (RFC 6749 §2.3). Public clients pass with their client_id alone
// when allowPublic is set. Every failure is invalid_client (401).
func (h *Handler) authenticateClient(r *http.Request, form url.Values, realm storage.Realm, allowPublic bool) (storage.Client, error) {
	ctx := r.Context()
	basicID, basicSecret, hasBasic, basicErr := basicCredentials(r.Header.Get("Authorization"))
	fail := func(description string, cause error) error {
		return &protocol.Error{Code: InvalidClient, Description: description, Status: http.StatusUnauthorized, Basic: hasBasic, Cause: cause}
	}
	if basicErr != nil {
		return storage.Client{}, fail("malformed Basic credentials", nil)
	}

	methods := 0
	for _, used := range []bool{hasBasic, form.Has("client_secret"), form.Has("client_assertion")} {
		if used {
			methods++
		}
	}
	if methods > 1 {
		return storage.Client{}, fail("use exactly one client authentication method", nil)
	}

	method, clientID, secret := methodNone, form.Get("client_id"), form.Get("client_secret")
	switch {
	case hasBasic:
		if clientID != "" && clientID != basicID {
			return storage.Client{}, fail("client_id does not match the Basic credentials", nil)
		}
		method, clientID, secret = methodBasic, basicID, basicSecret
	case form.Has("client_secret"):
		method = methodPost
	case form.Has("client_assertion"):
		method = methodJWT
	}
	if method == methodJWT {
		return h.authenticateAssertion(ctx, r, form, realm, clientID)
	}
	if clientID == "" {
		return storage.Client{}, fail("client authentication is required", nil)
	}
	client, err := h.getClient(ctx, realm.Name, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		if method != methodNone {
			return storage.Client{}, h.checkSecret(r, realm, storage.Client{}, secret, fail)
		}
		return storage.Client{}, fail("unknown client or bad credentials", nil)
	}
	if err != nil {
		return storage.Client{}, err
	}
	if client.Disabled {
		return storage.Client{}, fail("client is disabled", nil)
	}
	switch {
	case method == methodNone && client.Public() && allowPublic:
		return client, nil
	case method == methodNone:
		return storage.Client{}, fail("client authentication is required", nil)
	case client.SecretHash == "":
		return storage.Client{}, fail("client has no secret", nil)
	}
	if err := h.checkSecret(r, realm, client, secret, fail); err != nil {
		return storage.Client{}, err
	}
	return client, nil
}

// getClient looks up a client by an ID a request names. An ID no client can have is
// not found without a lookup, so it reaches no cache, store or log.
func (h *Handler) getClient(ctx context.Context, realm, id string) (storage.Client, error) {
	if ident.ClientID(id) != nil {
		return storage.Client{}, storage.ErrNotFound
	}
	return h.store.GetClient(ctx, realm, id)
}

// checkSecret checks a client's secret, throttling failures per client and per
// source address (RFC 6749 §10.10): admission is decided before the secret is
// checked, counting the checks in flight. A client that does not exist (the zero
// Client) counts against the address only: a count per unknown ID would let
// anyone fill the table.
func (h *Handler) checkSecret(r *http.Request, realm storage.Realm, client storage.Client, secret string, fail func(string, error) error) error {
	ctx := r.Context()
	from := h.caller(r)
	var key string
	if client.ID != "" {
		key = realm.Name + "/" + client.ID
	}
	attempt, wait, err := h.clientLimiter.Admit(ctx, key, from.IP)
	if err != nil {
		return err
	}
	if attempt == nil {
		h.observeThrottled(false)
		return clientThrottled(wait)
	}
	defer attempt.Release(ctx)
	ok := false
	if client.ID != "" {
		var err error
		if ok, err = h.secrets.Verify(realm.Name, client.ID, secret, client.SecretHash); err != nil {
			h.log.ErrorContext(ctx, "client secret cannot be checked", "realm", realm.Name, "client_id", client.ID, "err", err)
		}
		// The secret a rotation replaced still works until the grace it was given
		// ends, so the client's instances can move to the new one in turn. Checked
		// only when the current one did not match: one MAC per request as before.
		if !ok && client.PreviousSecretHash != "" && h.now().Before(client.PreviousSecretExpiresAt) {
			if ok, err = h.secrets.Verify(realm.Name, client.ID, secret, client.PreviousSecretHash); err != nil {
				h.log.ErrorContext(ctx, "previous client secret cannot be checked", "realm", realm.Name, "client_id", client.ID, "err", err)
			}
			if ok {
				h.log.InfoContext(ctx, "client authenticated with its previous secret", "realm", realm.Name, "client_id", client.ID)
			}
		}
	}
	if ok {
		if err := attempt.Succeed(ctx); err != nil {
			h.log.ErrorContext(ctx, "client's failed authentications cannot be cleared", "realm", realm.Name, "client_id", client.ID, "err", err)
		}
		return nil
	}
	wait, counted, err := attempt.Fail(ctx)
	if err != nil {
		return err
	}
	if wait == 0 {
		return fail("unknown client or bad credentials", nil)
	}
	if !counted { // locked meanwhile, by failures on another instance
		h.observeThrottled(false)
		return clientThrottled(wait)
	}
	// Audited when a failure locks, not for each request refused after it: under
	// a flood that would be a store write per request.
	h.audit(ctx, storage.AuditEvent{Type: "client_auth.throttled", Realm: realm.Name, ClientID: client.ID,
		IP: from.IP, UserAgent: from.UserAgent, Details: map[string]string{"retry_after": strconv.Itoa(seconds(wait))}})
	h.observeThrottled(true)
	return clientThrottled(wait)
}

// observeThrottled counts a client authentication refused with 429, and the
// lockout the failure started, if it did.
func (h *Handler) observeThrottled(locked bool) {
	if h.obs == nil {
		return
	}
	h.obs.ClientAuthThrottled()
	if locked {
		h.obs.Lockout("client_auth")
	}
}

// clientThrottled is the answer to a client that must wait before it
// authenticates again: invalid_client, as the credentials are not checked, with
// 429 and Retry-After.
func clientThrottled(wait time.Duration) error {
	return &protocol.Error{Code: InvalidClient, Description: "too many failed client authentications; retry later",
		Status: http.StatusTooManyRequests, RetryAfter: wait}
}

// assertionClaims are the claims of a client assertion (RFC 7523 §3).
type assertionClaims struct {
	Issuer    string         `json:"iss"`
	Subject   string         `json:"sub"`
	Audience  token.Audience `json:"aud"`
	Expiry    int64          `json:"exp"`
	NotBefore int64          `json:"nbf"`
	IssuedAt  int64          `json:"iat"`
	ID        string         `json:"jti"`
}

// authenticateAssertion checks a private_key_jwt client assertion: signed by one of
// the client's registered keys with that key's algorithm, issued by and about the
// client, for this server, unexpired, and never seen before.
func (h *Handler) authenticateAssertion(ctx context.Context, r *http.Request, form url.Values, realm storage.Realm, clientID string) (storage.Client, error) {
	fail := func(description string) error {
		return &protocol.Error{Code: InvalidClient, Description: description, Status: http.StatusUnauthorized}
	}
	if form.Get("client_assertion_type") != assertionType {
		return storage.Client{}, fail("client_assertion_type must be " + assertionType)
	}
	jws, err := jose.ParseSignedCompact(form.Get("client_assertion"), assertionAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return storage.Client{}, fail("malformed client assertion")
	}
	var unverified assertionClaims
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified) != nil || unverified.Issuer == "" {
		return storage.Client{}, fail("malformed client assertion")
	}
	if clientID == "" {
		clientID = unverified.Issuer
	}
	client, err := h.getClient(ctx, realm.Name, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, fail("unknown client or bad assertion")
	}
	if err != nil {
		return storage.Client{}, err
	}
	if client.Disabled || len(client.JWKS) == 0 {
		return storage.Client{}, fail("client cannot use private_key_jwt")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(client.JWKS, &set); err != nil {
		return storage.Client{}, err
	}
	header := jws.Signatures[0].Header
	var payload []byte
	for _, k := range set.Keys {
		if header.KeyID != "" && k.KeyID != header.KeyID {
			continue
		}
		if !slices.Contains(algsFor(k), header.Algorithm) {
			continue // the algorithm is pinned to the key (RFC 8725 §3.1)
		}
		if p, err := jws.Verify(k.Key); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		return storage.Client{}, fail("client assertion signature does not verify")
	}
	var c assertionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return storage.Client{}, fail("malformed client assertion")
	}
	now := h.now()
	issuer := h.tokens.Issuer(realm.Name)
	audOK := slices.ContainsFunc(c.Audience, func(a string) bool {
		return a == issuer || a == issuer+tokenPath || a == h.baseURL+r.URL.Path
	})
	exp := time.Unix(c.Expiry, 0)
	switch {
	case c.Issuer != client.ID || c.Subject != client.ID:
		return storage.Client{}, fail("client assertion iss and sub must be the client_id")
	case !audOK:
		return storage.Client{}, fail("client assertion aud must be the issuer or the token endpoint")
	case c.Expiry == 0 || !now.Before(exp):
		return storage.Client{}, fail("client assertion expired")
	case exp.Sub(now) > maxAssertionLifetime:
		return storage.Client{}, fail("client assertion lives too long")
	case c.NotBefore != 0 && time.Unix(c.NotBefore, 0).After(now.Add(token.Leeway)):
		return storage.Client{}, fail("client assertion not yet valid")
	case c.ID == "":
		return storage.Client{}, fail("client assertion has no jti")
	}
	err = h.store.UseClientAssertion(ctx, realm.Name, client.ID, c.ID, exp.UTC().Truncate(time.Microsecond))
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return storage.Client{}, fail("client assertion replayed")
	}
	if err != nil {
		return storage.Client{}, err
	}
	return client, nil
}

// algsFor returns the algorithms a client key may sign with: its own alg when the
// JWK names one, else those its type allows.
func algsFor(k jose.JSONWebKey) []string {
	if k.Algorithm != "" {
		return []string{k.Algorithm}
	}
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey:
		switch key.Curve.Params().BitSize {
		case 256:
			return []string{"ES256"}
		case 384:
			return []string{"ES384"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	case *rsa.PublicKey:
		return []string{"RS256", "PS256"}
	}
	return nil
}
