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
	"slices"
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

// Token-type identifiers of RFC 8693 §3, for token exchange (subject_token_type,
// actor_token_type, requested_token_type, issued_token_type).
const (
	TokenTypeAccess  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT     = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeRefresh = "urn:ietf:params:oauth:token-type:refresh_token"
)

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
	// The device authorization grant's state (RFC 8628), shared by every instance.
	CreateDeviceGrant(ctx context.Context, g storage.DeviceGrant) error
	GetDeviceGrantByUserCode(ctx context.Context, realm string, userCodeHash []byte, now time.Time) (storage.DeviceGrant, error)
	DecideDeviceGrant(ctx context.Context, realm string, userCodeHash []byte, now time.Time, fn func(g *storage.DeviceGrant) error) (storage.DeviceGrant, error)
	PollDeviceGrant(ctx context.Context, deviceCodeHash []byte, now time.Time, start storage.StartDeviceGrant) (storage.DeviceGrant, storage.PollResult, error)
	// ListRoles is read through the cache (internal/storecache), and only for a
	// token that carries roles.
	ListRoles(ctx context.Context, realm string) ([]storage.Role, error)
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
	Realm  storage.Realm
	Client storage.Client
	UserID string // empty for client credentials: the client is the subject
	// User is the user UserID names, as the caller just read it, for the claims the
	// scopes allow (profile, email, roles); nil leaves them out.
	User      *storage.User
	SessionID string
	AuthTime  time.Time
	FamilyID  string
	Scopes    []string
	Audience  []string
	// JKT binds the access token to a DPoP key: the RFC 7638 thumbprint that goes
	// into cnf.jkt (RFC 9449 §6.1); "" issues a bearer token.
	JKT string
	// Act is the actor of a delegated token exchange (RFC 8693 §4.1); nil when
	// there is none.
	Act *Actor
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
	// Confirmation binds the token to a DPoP key (RFC 9449 §6.1, RFC 7800 §3.1).
	Confirmation *Confirmation `json:"cnf,omitempty"`
	// Act names who acts for the subject after a delegated token exchange
	// (RFC 8693 §4.1).
	Act *Actor `json:"act,omitempty"`

	// Keycloak's claims, which client libraries (keycloak-js) and APIs read from the
	// access token: the profile and email claims per granted scope, unless the
	// client keeps its access tokens lean; the effective roles with the roles scope
	// (for client credentials, the client's service-account roles).
	SubjectClaims
}

// Confirmation is the cnf claim of a DPoP-bound token: the SHA-256 JWK
// thumbprint of its key (RFC 9449 §6.1).
type Confirmation struct {
	JKT string `json:"jkt"`
}

// Actor is the act claim (RFC 8693 §4.1): the party acting for the subject, with
// the actor before it nested in Act when the token was exchanged more than once.
type Actor struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id,omitempty"`
	Act      *Actor `json:"act,omitempty"`
}

// SubjectClaims are what an access token says about its subject besides its ID.
type SubjectClaims struct {
	PreferredUsername string               `json:"preferred_username,omitempty"`
	Name              string               `json:"name,omitempty"`
	GivenName         string               `json:"given_name,omitempty"`
	FamilyName        string               `json:"family_name,omitempty"`
	Email             string               `json:"email,omitempty"`
	EmailVerified     *bool                `json:"email_verified,omitempty"`
	RealmAccess       *RoleClaim           `json:"realm_access,omitempty"`
	ResourceAccess    map[string]RoleClaim `json:"resource_access,omitempty"`
}

// RoleClaim is Keycloak's shape of a list of roles: {"roles": [...]}.
type RoleClaim struct {
	Roles []string `json:"roles"`
}

// ServiceAccountPrefix starts the preferred_username of a client's own tokens
// (client credentials), as Keycloak names a client's service account.
const ServiceAccountPrefix = "service-account-"

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
		Act: g.Act,
	}
	if g.JKT != "" {
		claims.Confirmation = &Confirmation{JKT: g.JKT}
	}
	if !g.AuthTime.IsZero() {
		claims.AuthTime = g.AuthTime.Unix()
	}
	var err error
	if claims.SubjectClaims, err = s.subjectClaims(ctx, g); err != nil {
		return Issued{}, err
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

// subjectClaims are the grant's profile, email and role claims. The realm's roles
// are read (through the cache) only when the token carries roles and the subject
// has some, so a token without the roles scope costs no read at all.
func (s *Service) subjectClaims(ctx context.Context, g Grant) (SubjectClaims, error) {
	var c SubjectClaims
	lean := g.Client.LeanAccessTokens
	var refs []storage.RoleRef
	switch {
	case g.UserID == "":
		// Client credentials: Keycloak's service account, whose roles the token
		// always carries (the client asked for its own authority).
		if !lean {
			c.PreferredUsername = ServiceAccountPrefix + g.Client.ID
		}
		if len(g.Client.ServiceAccountRoles) == 0 {
			return c, nil
		}
		refs = g.Client.ServiceAccountRoles
	case g.User == nil:
		return c, nil
	default:
		u := g.User
		if !lean && slices.Contains(g.Scopes, "profile") {
			c.PreferredUsername, c.Name, c.GivenName, c.FamilyName = u.Username, DisplayName(*u), u.GivenName, u.FamilyName
		}
		if !lean && slices.Contains(g.Scopes, "email") && u.Email != "" {
			verified := u.EmailVerified
			c.Email, c.EmailVerified = u.Email, &verified
		}
		if !slices.Contains(g.Scopes, "roles") {
			return c, nil
		}
		refs = u.Roles
	}
	var all []storage.Role
	if len(refs) > 0 {
		var err error
		if all, err = s.store.ListRoles(ctx, g.Realm.Name); err != nil {
			return c, fmt.Errorf("roles: %w", err)
		}
	}
	realm, clients := EffectiveRoles(all, refs)
	// realm_access is there, if empty, whenever roles are: Keycloak's always is, and
	// code reads realm_access.roles without a check.
	c.RealmAccess = &RoleClaim{Roles: realm}
	if c.RealmAccess.Roles == nil {
		c.RealmAccess.Roles = []string{}
	}
	for client, names := range clients {
		if c.ResourceAccess == nil {
			c.ResourceAccess = make(map[string]RoleClaim, len(clients))
		}
		c.ResourceAccess[client] = RoleClaim{Roles: names}
	}
	return c, nil
}

// DisplayName is the name claim (OIDC Core §5.1): the user's name, or else given
// and family names joined, as Keycloak makes it from firstName and lastName.
func DisplayName(u storage.User) string {
	if u.Name != "" {
		return u.Name
	}
	return strings.TrimSpace(u.GivenName + " " + u.FamilyName)
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
