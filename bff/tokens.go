package bff

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// tokenResponse is RFC 6749 §5.1 (and §5.2's error fields).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	RequestURI   string `json:"request_uri"` // PAR (RFC 9126 §2.2)
}

// oauthError is an error answer from the issuer; Code is the RFC 6749 §5.2 code.
type oauthError struct {
	Status int
	Code   string
}

func (e *oauthError) Error() string {
	return fmt.Sprintf("bff: issuer answered %d %s", e.Status, e.Code)
}

func isInvalidGrant(err error) bool {
	var oe *oauthError
	return errors.As(err, &oe) && oe.Code == "invalid_grant"
}

func (h *Handler) dpopEnabled() bool { return slices.Contains(h.meta.DPoPAlgs, string(jose.ES256)) }

// post sends a client-authenticated form (client_secret_basic, RFC 6749 §2.3.1: the
// ID and secret form-encoded first) to endpoint, with a DPoP proof when key is set,
// retrying once with the server's nonce on use_dpop_nonce (RFC 9449 §8).
func (h *Handler) post(ctx context.Context, endpoint string, form url.Values, key *jose.JSONWebKey) (tokenResponse, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return tokenResponse{}, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(url.QueryEscape(h.cfg.ClientID), url.QueryEscape(h.cfg.ClientSecret))
		if key != nil {
			proof, err := h.proof(key, http.MethodPost, endpoint, "", h.issuerNonce())
			if err != nil {
				return tokenResponse{}, err
			}
			req.Header.Set("DPoP", proof)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			return tokenResponse{}, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return tokenResponse{}, err
		}
		if n := resp.Header.Get("DPoP-Nonce"); n != "" && key != nil {
			h.setIssuerNonce(n)
		}
		var tr tokenResponse
		_ = json.Unmarshal(body, &tr)
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return tr, nil
		}
		if tr.Error == "use_dpop_nonce" && key != nil && attempt == 0 {
			continue
		}
		if tr.Error == "" {
			tr.Error = "server_error"
		}
		return tokenResponse{}, &oauthError{Status: resp.StatusCode, Code: tr.Error}
	}
}

func (h *Handler) issuerNonce() string {
	h.nonceMu.Lock()
	defer h.nonceMu.Unlock()
	return h.nonce
}

func (h *Handler) setIssuerNonce(n string) {
	h.nonceMu.Lock()
	h.nonce = n
	h.nonceMu.Unlock()
}

// newDPoPKey makes the session's ES256 key (one per session, RFC 9449 §2).
func newDPoPKey() (*jose.JSONWebKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &jose.JSONWebKey{Key: k, Algorithm: string(jose.ES256), Use: "sig"}, nil
}

// proof signs a DPoP proof JWT (RFC 9449 §4.2) for method and target (query and
// fragment dropped, §4.3); ath binds it to an access token (§4.3) when at is set.
func (h *Handler) proof(key *jose.JSONWebKey, method, target, at, nonce string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	pub := key.Public()
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", pub)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.Key}, opts)
	if err != nil {
		return "", err
	}
	claims := map[string]any{"jti": randomText(16), "htm": method, "htu": u.String(), "iat": h.now().Unix()}
	if at != "" {
		sum := sha256.Sum256([]byte(at))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		claims["nonce"] = nonce
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

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func expiry(now time.Time, expiresIn int64) int64 {
	if expiresIn <= 0 {
		expiresIn = 300 // RFC 6749 §5.1 leaves it optional; assume the short default
	}
	return now.Add(time.Duration(expiresIn) * time.Second).Unix()
}
