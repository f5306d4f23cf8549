// Package token is the token lifecycle core: issuing access tokens, introspecting
// and revoking them, and the JWT deny-list. It knows nothing of HTTP; time is injected.
package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/storage"
)

// Prefixes of Latchkey's opaque tokens, so logs, scanners and introspection can tell
// them apart at a glance.
const (
	AccessPrefix  = "lk_at_"
	RefreshPrefix = "lk_rt_"
	CodePrefix    = "lk_ac_"
)

// TypeAccessJWT is the typ header of JWT access tokens (RFC 9068 §2.1).
const TypeAccessJWT = "at+jwt"

// DefaultAccessTokenTTL applies when neither the client nor the realm sets one.
const DefaultAccessTokenTTL = 5 * time.Minute

// Leeway is the clock skew tolerated on iat and nbf; exp is never stretched.
const Leeway = 30 * time.Second

// Store is what the token service reads and writes.
type Store interface {
	GetClient(ctx context.Context, realm, id string) (storage.Client, error)
	GetUser(ctx context.Context, realm, id string) (storage.User, error)
	GetSession(ctx context.Context, id string) (storage.Session, error)
	TouchSession(ctx context.Context, id string, seenAt, idleExpiresAt time.Time) error
	GetFamily(ctx context.Context, id string) (storage.Family, error)
	GetRefreshToken(ctx context.Context, hash []byte) (storage.RefreshToken, error)
	RotateRefreshToken(ctx context.Context, parentHash []byte, child storage.RefreshToken, sealed []byte, use storage.FamilyUse) (storage.RefreshToken, error)
	CreateAuthCode(ctx context.Context, c storage.AuthCode, keep int) error
	RedeemAuthCode(ctx context.Context, hash []byte, now time.Time, start storage.StartGrant) (storage.AuthCode, error)
	RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error
	DenyJWT(ctx context.Context, d storage.DeniedJWT) error
	ListDeniedJWTs(ctx context.Context, realm string, now time.Time) ([]storage.DeniedJWT, error)
	AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error)
}

// Service issues, introspects and revokes tokens.
type Service struct {
	store    Store
	keys     *keys.Manager
	deny     *DenyList
	verified *verifiedCache
	baseURL  string
	now      func() time.Time
	obs      Observer // nil: nothing is counted
}

// Observer is told which tokens the service hands out and how refresh tokens are
// spent, for metrics. Every argument comes from a fixed set.
type Observer interface {
	// Issued is a token handed out: access_jwt, access_opaque, refresh or id.
	Issued(kind string)
	// Rotated is a refresh token spent for its successor.
	Rotated()
	// RetryServed is a spent refresh token answered again within its retry window.
	RetryServed()
}

// NewService returns a Service. The issuer of realm R is baseURL/realms/R.
func NewService(store Store, km *keys.Manager, deny *DenyList, baseURL string, now func() time.Time) *Service {
	return &Service{store: store, keys: km, deny: deny, verified: newVerifiedCache(), baseURL: strings.TrimSuffix(baseURL, "/"), now: now}
}

// Observe sets the observer; without one nothing is counted. Call it before the
// service is used.
func (s *Service) Observe(o Observer) { s.obs = o }

// Delivered tells the observer which tokens resp hands out to c.
func (s *Service) Delivered(c storage.Client, resp Response) {
	if s.obs == nil {
		return
	}
	if resp.AccessToken != "" {
		kind := "access_jwt"
		if c.Tokens.AccessTokenFormat == "opaque" {
			kind = "access_opaque"
		}
		s.obs.Issued(kind)
	}
	if resp.RefreshToken != "" {
		s.obs.Issued("refresh")
	}
	if resp.IDToken != "" {
		s.obs.Issued("id")
	}
}

// Issuer returns the issuer URL of a realm.
func (s *Service) Issuer(realm string) string { return s.baseURL + "/realms/" + realm }

// Grant is what an access token is issued for.
type Grant struct {
	Realm     storage.Realm
	Client    storage.Client
	UserID    string // empty for client credentials: the client is the subject
	SessionID string
	AuthTime  time.Time
	FamilyID  string
	Scopes    []string
	Audience  []string
}

// Issued is an access token as the token endpoint returns it.
type Issued struct {
	Value     string
	ExpiresIn time.Duration
	Scope     string
}

// AccessClaims are a JWT access token's claims (RFC 9068 §2.2).
type AccessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  Audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	// FamilyID names the grant (refresh family) the token came from, so ending the
	// grant (code replay, refresh-token theft, revocation) ends the token at
	// introspection too.
	FamilyID string `json:"fid,omitempty"`
}

// Audience is the aud claim: a single string when there is one, else an array (RFC 7519 §4.1.3).
type Audience []string

// MarshalJSON implements json.Marshaler.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// TTL is the access-token lifetime for a client in a realm.
func TTL(r storage.Realm, c storage.Client) time.Duration {
	switch {
	case c.Tokens.AccessTokenTTL > 0:
		return c.Tokens.AccessTokenTTL
	case r.AccessTokenTTL > 0:
		return r.AccessTokenTTL
	}
	return DefaultAccessTokenTTL
}

// IssueAccessToken issues an access token for the grant: a signed JWT, or an opaque
// (sealed) token when the client is set to opaque.
func (s *Service) IssueAccessToken(ctx context.Context, g Grant) (Issued, error) {
	now := s.now()
	ttl := TTL(g.Realm, g.Client)
	scope := strings.Join(g.Scopes, " ")
	subject := g.UserID
	if subject == "" {
		subject = g.Client.ID
	}
	claims := AccessClaims{
		Issuer: s.Issuer(g.Realm.Name), Subject: subject, Audience: g.Audience,
		Expiry: now.Add(ttl).Unix(), IssuedAt: now.Unix(), ID: rand.Text(),
		ClientID: g.Client.ID, Scope: scope, SessionID: g.SessionID, FamilyID: g.FamilyID,
	}
	if !g.AuthTime.IsZero() {
		claims.AuthTime = g.AuthTime.Unix()
	}
	if g.Client.Tokens.AccessTokenFormat == "opaque" {
		value, err := s.sealAccess(g.Realm.Name, claims)
		if err != nil {
			return Issued{}, fmt.Errorf("seal access token: %w", err)
		}
		return Issued{Value: value, ExpiresIn: ttl, Scope: scope}, nil
	}

	alg := g.Realm.SigningAlg
	if alg == "" {
		alg = keys.ES256
	}
	k, err := s.keys.Signer(ctx, g.Realm.Name, alg)
	if err != nil {
		return Issued{}, err
	}
	jws, err := k.Sign(claims, TypeAccessJWT)
	if err != nil {
		return Issued{}, fmt.Errorf("sign access token: %w", err)
	}
	return Issued{Value: jws, ExpiresIn: ttl, Scope: scope}, nil
}

// newOpaque returns a new opaque token (prefix + 256 random bits) and its hash.
func newOpaque(prefix string) (string, []byte) {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails
	v := prefix + base64.RawURLEncoding.EncodeToString(b)
	return v, Hash(v)
}

// Hash is how opaque tokens are stored: SHA-256, enough for 256 random bits.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// ErrNotOwner is returned when a client tries to revoke another client's token.
var ErrNotOwner = errors.New("token: issued to another client")

// NewRefreshToken returns a new refresh-token value and the hash it is stored by.
func NewRefreshToken() (string, []byte) { return newOpaque(RefreshPrefix) }
