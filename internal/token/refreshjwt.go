package token

import (
	"context"
	"crypto/rand"
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

// The typ headers of refresh tokens in JWT form, as Keycloak names them. Neither is
// at+jwt, so such a token is never taken for an access token (RFC 9068 §4).
const (
	TypeRefreshJWT = "Refresh"
	TypeOfflineJWT = "Offline"
)

// refreshClaims are the claims of a refresh token in JWT form: what keycloak-js
// decodes, around the opaque refresh token (Secret) that the store knows by its
// hash. The envelope adds no authority: the token endpoint verifies its signature
// and then treats the inner token exactly as an opaque one.
type refreshClaims struct {
	Issuer          string   `json:"iss"`
	Subject         string   `json:"sub"`
	Audience        Audience `json:"aud"` // the issuer, as Keycloak does
	Expiry          int64    `json:"exp"`
	IssuedAt        int64    `json:"iat"`
	ID              string   `json:"jti"`
	AuthorizedParty string   `json:"azp"`
	SessionID       string   `json:"sid,omitempty"`
	Scope           string   `json:"scope,omitempty"`
	// Type repeats the header's typ among the claims, where Keycloak puts it and
	// keycloak-js apps read it (refreshTokenParsed.typ).
	Type   string `json:"typ"`
	Secret string `json:"rt"`
}

// wrapRefresh returns the refresh token the client is given for value, the opaque
// token of family fam with scopes, which expires at exp at the latest (see
// refreshExpiry): value itself, or a signed envelope around it when the client is
// set to refresh_token_format jwt.
func (s *Service) wrapRefresh(ctx context.Context, realm storage.Realm, client storage.Client, fam storage.Family, scopes []string, exp time.Time, value string) (string, error) {
	if client.Tokens.RefreshTokenFormat != "jwt" {
		return value, nil
	}
	// The typ says the family's kind, which decides the token's lifetime: a
	// narrowed scope without offline_access leaves an offline family offline.
	typ := TypeRefreshJWT
	if slices.Contains(fam.Scopes, "offline_access") {
		typ = TypeOfflineJWT
	}
	iss := s.Issuer(realm.Name)
	claims := refreshClaims{
		Issuer: iss, Subject: fam.UserID, Audience: Audience{iss}, Expiry: exp.Unix(), IssuedAt: s.now().Unix(),
		ID: rand.Text(), AuthorizedParty: client.ID, SessionID: fam.SessionID, Scope: strings.Join(scopes, " "),
		Type: typ, Secret: value,
	}
	alg := realm.SigningAlg
	if alg == "" {
		alg = keys.ES256
	}
	k, err := s.keys.Signer(ctx, realm.Name, alg)
	if err != nil {
		return "", err
	}
	jws, err := k.Sign(claims, typ)
	if err != nil {
		return "", fmt.Errorf("sign refresh token: %w", err)
	}
	return jws, nil
}

// unwrapRefresh returns the opaque refresh token inside tok when tok is a refresh
// token in JWT form signed by one of the realm's keys; anything else comes back as
// it is, for the caller's usual checks to refuse. Its exp is not checked here: the
// family's expiry in the store is what decides. Only a store failure is an error.
func (s *Service) unwrapRefresh(ctx context.Context, realm, tok string) (string, error) {
	if strings.HasPrefix(tok, RefreshPrefix) || strings.Count(tok, ".") != 2 {
		return tok, nil
	}
	// Only a token whose header says it is a refresh token is verified here: an
	// access token introspected (or any other JWT) is verified once, by its own path.
	if typ := unverifiedTyp(tok); typ != TypeRefreshJWT && typ != TypeOfflineJWT {
		return tok, nil
	}
	v, err := s.keys.Verify(ctx, realm, tok)
	if errors.Is(err, keys.ErrBadSignature) || errors.Is(err, keys.ErrUnknownKey) {
		return tok, nil
	}
	if err != nil {
		return "", err
	}
	if v.Typ != TypeRefreshJWT && v.Typ != TypeOfflineJWT {
		return tok, nil
	}
	var c refreshClaims
	if err := json.Unmarshal(v.Payload, &c); err != nil || c.Issuer != s.Issuer(realm) || !strings.HasPrefix(c.Secret, RefreshPrefix) {
		return tok, nil
	}
	return c.Secret, nil
}

// unverifiedTyp reads the typ of a JWS compact token's protected header without
// checking anything else; "" if there is none. It only picks a path: the token's
// signature and typ are verified on it.
func unverifiedTyp(tok string) string {
	head, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Typ
}
