package token

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/storage"
)

// TypeIDToken is the typ header of ID tokens: never at+jwt, so an ID token is never
// taken for an access token, nor the other way round.
const TypeIDToken = "JWT"

// IDTokenInput is what an ID token is made from.
type IDTokenInput struct {
	Realm       storage.Realm
	Client      storage.Client
	User        storage.User
	SessionID   string
	AuthTime    time.Time
	Nonce       string
	Scopes      []string
	AccessToken string // for at_hash
}

// IssueIDToken signs an ID token (OIDC Core §2) with the client's
// id_token_signed_response_alg, RS256 by default (§15.1 requires every OP to offer it).
func (s *Service) IssueIDToken(ctx context.Context, in IDTokenInput) (string, error) {
	alg := in.Client.IDTokenSignedResponseAlg
	if alg == "" {
		alg = keys.RS256
	}
	k, err := s.keys.Signer(ctx, in.Realm.Name, alg)
	if err != nil {
		return "", err
	}
	now := s.now()
	claims := map[string]any{
		"iss": s.Issuer(in.Realm.Name), "sub": in.User.ID, "aud": in.Client.ID,
		"exp": now.Add(TTL(in.Realm, in.Client)).Unix(), "iat": now.Unix(), "azp": in.Client.ID,
	}
	if !in.AuthTime.IsZero() {
		// Unknown on the refresh of a family born outside a browser session (a
		// device's): left out, as OIDC Core §2 allows, rather than a year-1 time.
		claims["auth_time"] = in.AuthTime.Unix()
	}
	if in.Nonce != "" {
		claims["nonce"] = in.Nonce
	}
	if in.SessionID != "" {
		claims["sid"] = in.SessionID
	}
	if in.AccessToken != "" {
		claims["at_hash"] = halfHash(alg, in.AccessToken)
	}
	for k, v := range UserClaims(in.User, in.Scopes) {
		if k != "sub" {
			claims[k] = v
		}
	}
	return k.Sign(claims, TypeIDToken)
}

// halfHash is at_hash (OIDC Core §3.1.3.6): the left half of the access token's
// hash under the hash of the ID token's alg (SHA-512 for Ed25519).
func halfHash(alg, s string) string {
	var sum []byte
	if alg == keys.EdDSA {
		h := sha512.Sum512([]byte(s))
		sum = h[:]
	} else {
		h := sha256.Sum256([]byte(s))
		sum = h[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// UserClaims are the user's claims the scopes allow (OIDC Core §5.4).
func UserClaims(u storage.User, scopes []string) map[string]any {
	c := map[string]any{"sub": u.ID}
	if slices.Contains(scopes, "profile") {
		c["preferred_username"] = u.Username
		if name := DisplayName(u); name != "" {
			c["name"] = name
		}
		if u.GivenName != "" {
			c["given_name"] = u.GivenName
		}
		if u.FamilyName != "" {
			c["family_name"] = u.FamilyName
		}
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = u.EmailVerified
	}
	return c
}

// Userinfo errors (RFC 6750 §3.1).
var (
	ErrInvalidToken      = errors.New("invalid_token")
	ErrInsufficientScope = errors.New("insufficient_scope")
)

// UserInfo returns the claims of the user an access token stands for. A token that is
// not an active user access token of the realm is ErrInvalidToken; one without the
// openid scope is ErrInsufficientScope.
func (s *Service) UserInfo(ctx context.Context, realm storage.Realm, tok string) (map[string]any, error) {
	user, scopes, err := s.TokenUser(ctx, realm, tok)
	if err != nil {
		return nil, err
	}
	return UserClaims(user, scopes), nil
}

// TokenUser returns the user a Bearer access token stands for and the token's
// scopes, with UserInfo's checks: ErrInvalidToken for anything but an active user
// access token of the realm, ErrInsufficientScope without the openid scope. A
// DPoP-bound token is ErrInvalidToken here: without a proof of its key it is worth
// nothing (RFC 9449 §7.1), so it is no bearer credential.
func (s *Service) TokenUser(ctx context.Context, realm storage.Realm, tok string) (storage.User, []string, error) {
	user, scopes, jkt, err := s.BoundTokenUser(ctx, realm, tok)
	if err == nil && jkt != "" {
		return storage.User{}, nil, fmt.Errorf("%w: a DPoP-bound token sent as a bearer token", ErrInvalidToken)
	}
	return user, scopes, err
}

// BoundTokenUser is TokenUser for any access token, bound or not, also returning
// the thumbprint of the DPoP key it is bound to ("" for a bearer token): the
// caller checks the proof of that key.
func (s *Service) BoundTokenUser(ctx context.Context, realm storage.Realm, tok string) (storage.User, []string, string, error) {
	in, err := s.introspectAccess(ctx, realm, tok)
	if err != nil {
		return storage.User{}, nil, "", err
	}
	if !in.Active || in.Sub == in.ClientID {
		return storage.User{}, nil, "", ErrInvalidToken // inactive, or a client's own token: no user
	}
	scopes := strings.Fields(in.Scope)
	if !slices.Contains(scopes, "openid") {
		return storage.User{}, nil, "", ErrInsufficientScope
	}
	user, err := s.store.GetUser(ctx, realm.Name, in.Sub)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, nil, "", ErrInvalidToken
	}
	if err != nil {
		return storage.User{}, nil, "", fmt.Errorf("userinfo: %w", err)
	}
	var jkt string
	if in.Cnf != nil {
		jkt = in.Cnf.JKT
	}
	return user, scopes, jkt, nil
}

// IDTokenClaims are what logout needs from an id_token_hint, and what a token
// exchange needs from an ID token presented as its subject or actor.
type IDTokenClaims struct {
	Subject         string   `json:"sub"`
	Audience        Audience `json:"aud"`
	SessionID       string   `json:"sid"`
	Issuer          string   `json:"iss"`
	AuthorizedParty string   `json:"azp"`
	Expiry          int64    `json:"exp"`
	IssuedAt        int64    `json:"iat"`
	AuthTime        int64    `json:"auth_time"`
	// Set when the profile and email scopes put them there (UserClaims).
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
}

// VerifyIDTokenHint checks an ID token the realm issued, expired or not (OIDC
// RP-Initiated Logout §2 accepts expired hints), and returns its claims.
func (s *Service) VerifyIDTokenHint(ctx context.Context, realm storage.Realm, tok string) (IDTokenClaims, bool) {
	c, ok, _ := s.verifyIDToken(ctx, realm.Name, tok)
	return c, ok
}

// verifyIDToken is VerifyIDTokenHint, telling a store failure (an error) from a
// token that is no ID token of the realm (false).
func (s *Service) verifyIDToken(ctx context.Context, realm, tok string) (IDTokenClaims, bool, error) {
	v, err := s.keys.Verify(ctx, realm, tok)
	if errors.Is(err, keys.ErrBadSignature) || errors.Is(err, keys.ErrUnknownKey) {
		return IDTokenClaims{}, false, nil
	}
	if err != nil {
		return IDTokenClaims{}, false, err
	}
	if v.Typ != TypeIDToken {
		return IDTokenClaims{}, false, nil
	}
	var c IDTokenClaims
	if json.Unmarshal(v.Payload, &c) != nil || c.Issuer != s.Issuer(realm) || c.Subject == "" || len(c.Audience) == 0 {
		return IDTokenClaims{}, false, nil
	}
	return c, true, nil
}
