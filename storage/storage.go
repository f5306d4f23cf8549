// Package storage defines what Latchkey persists: the entity types, the store
// contracts split by capability, and the sentinel errors those contracts return.
//
// Rules every implementation keeps (the conformance suite in storagetest checks them):
//   - Stores never read the clock: every timestamp is set by the caller, and every
//     expiry check takes the caller's "now" (one exception: DeletionTime).
//   - Times round-trip at microsecond precision and come back in UTC; a zero
//     time.Time means "not set" and is stored as NULL.
//   - Lists round-trip in order; an empty list may come back as nil.
//   - Secrets are never stored: only hashes (tokens, codes, client secrets,
//     passwords) and sealed bytes (private keys, retry responses), which a store
//     keeps opaque.
package storage

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Sentinel errors. Implementations wrap them with %w; callers match with errors.Is.
var (
	// ErrNotFound: no such entity (or, for codes, no live one).
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict: an entity with the same key already exists.
	ErrConflict = errors.New("storage: already exists")
	// ErrAlreadyUsed: a single-use entity (authorization code, refresh token) was used before.
	ErrAlreadyUsed = errors.New("storage: already used")
	// ErrRevoked: the entity's refresh family was revoked.
	ErrRevoked = errors.New("storage: revoked")
	// ErrUnavailable: the store could not be reached, or did not answer within its
	// timeout. Any method may return it; the call may be retried later. A write that
	// gives it is never left half-done, but whether it was done the caller cannot
	// tell: a store that received it may have made it, or may yet make it, without
	// answering in time.
	ErrUnavailable = errors.New("storage: unavailable")
)

// DefaultTimeout bounds every store call when no other timeout is configured.
const DefaultTimeout = 3 * time.Second

// Store is everything Latchkey persists, in one backend.
type Store interface {
	RealmStore
	ClientStore
	UserStore
	SessionStore
	AuthCodeStore
	RefreshStore
	DenyListStore
	SigningKeyStore
	AuditStore
	SeedStore
	ClientAssertionStore
	ConsentStore
	SweepStore
	ChangeFeedStore
	BackchannelStore
	AttemptStore
	RoleStore
	DPoPProofStore
	PushedRequestStore
	DeviceGrantStore
	BFFStore

	// Ready reports whether the store is reachable and its schema is the one this
	// binary expects.
	Ready(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// Realm is an isolated tenant: its own issuer, clients, users and keys.
type Realm struct {
	Name           string // the path segment in /realms/{name}; unique
	DisplayName    string
	SigningAlg     string        // access-token signing algorithm: ES256, EdDSA or RS256
	AccessTokenTTL time.Duration // default access-token lifetime for the realm's clients
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Updater functions. UpdateRealm, UpdateClient and UpdateUser read the entity, run
// fn on a copy of it and store what fn leaves there, with the audit events fn
// returns, all in one transaction: no concurrent update is lost between the read
// and the write. An error from fn is returned as it is and nothing changes. fn may
// run more than once (a backend may retry its transaction), so it must decide from
// its argument alone, and it must not call the store.
//
// Every method below that takes events appends them to the audit trail in the
// same transaction as its change (an event's ID is assigned by the store).

// RealmStore keeps realms.
type RealmStore interface {
	// CreateRealm stores a new realm. ErrConflict if the name is taken.
	CreateRealm(ctx context.Context, r Realm, events ...AuditEvent) error
	// GetRealm returns the realm. ErrNotFound if there is none.
	GetRealm(ctx context.Context, name string) (Realm, error)
	// ListRealms returns every realm, ordered by name.
	ListRealms(ctx context.Context) ([]Realm, error)
	// UpdateRealm runs fn on the realm (see Updater functions) and stores every field
	// but Name and CreatedAt. ErrNotFound if there is none.
	UpdateRealm(ctx context.Context, name string, fn func(r *Realm) ([]AuditEvent, error)) (Realm, error)
	// DeleteRealm deletes the realm and everything in it. ErrNotFound if there is none.
	DeleteRealm(ctx context.Context, name string, events ...AuditEvent) error
	// LogoutRealm ends every browser session and revokes every refresh family of the
	// realm (ReasonRealmLogout) at at, and says how many of each it ended.
	// ErrNotFound if there is no such realm.
	LogoutRealm(ctx context.Context, realm string, at time.Time, events ...AuditEvent) (sessions, families int64, err error)
}

// TokenSettings are a client's token lifetimes and formats, fully resolved
// (presets already applied by the caller).
type TokenSettings struct {
	AccessTokenTTL     time.Duration // 0: the realm's AccessTokenTTL
	AccessTokenFormat  string        // "jwt" or "opaque"
	RefreshPreset      string        // web, mobile, spa or service: where the refresh values came from
	RefreshIdle        time.Duration // sliding lifetime of a refresh family
	RefreshAbsolute    time.Duration // hard lifetime of a refresh family, never extended
	RefreshRetryWindow time.Duration // 0: no idempotent retries
	RefreshTokenFormat string        // "opaque" (lk_rt_…) or "jwt" (a signed envelope around the same secret)
}

// Client is an OAuth client registered in a realm.
type Client struct {
	Realm      string
	ID         string // unique within the realm
	Name       string
	SecretHash string // keyed hash of the client secret; empty for a public client
	// JWKS holds the client's public keys for private_key_jwt (RFC 7523) as a JWK Set
	// in JSON; empty when the client does not authenticate that way.
	JWKS                   []byte
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	Scopes                 []string // the scopes the client may ask for
	Audiences              []string // RFC 8707 resources the client may ask tokens for
	ThirdParty             bool     // third-party clients get a consent screen
	// WebOrigins are the origins (scheme://host[:port]) whose pages may call the
	// realm's token, userinfo, revocation, logout and account endpoints with
	// credentials (CORS), as Keycloak's webOrigins; "+" stands for the origins of
	// the redirect URIs, and an empty list means just that.
	WebOrigins []string
	Disabled   bool
	// PKCEOptional lets a confidential client skip PKCE; public clients never may.
	PKCEOptional bool
	// IDTokenSignedResponseAlg is the alg of the client's ID tokens; empty means RS256.
	IDTokenSignedResponseAlg string
	// BackchannelLogoutURI is where the client takes logout tokens (OpenID Connect
	// Back-Channel Logout 1.0 §2.2); empty when it takes none.
	BackchannelLogoutURI string
	// BackchannelLogoutSessionRequired says the client wants the sid claim in its
	// logout tokens (Back-Channel Logout §2.2).
	BackchannelLogoutSessionRequired bool
	Tokens                           TokenSettings
	// ServiceAccountRoles are the roles of the client's own tokens (client
	// credentials grant), as Keycloak's service-account role mappings.
	ServiceAccountRoles []RoleRef
	// DefaultScopes are added when an authorization request asks only for
	// openid; nil or empty means profile, email and roles (see
	// EffectiveDefaultScopes).
	DefaultScopes []string
	// LeanAccessTokens keeps profile and email claims out of the client's
	// access tokens (they stay in ID tokens and userinfo).
	LeanAccessTokens bool
	// DPoPBoundAccessTokens makes the client send a DPoP proof at the token
	// endpoint, so every token it gets is bound to a key (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool
	// RequirePushedAuthorizationRequests makes the authorization endpoint take
	// the client's requests only through PAR (RFC 9126 §6).
	RequirePushedAuthorizationRequests bool
	// TokenExchangeAudiences are the audiences the client may ask for in a token
	// exchange (RFC 8693 §2.1); empty: none but itself.
	TokenExchangeAudiences []string
	CreatedAt              time.Time
	UpdatedAt              time.Time
	// TokensValidAfter is the client's security stamp: every token issued to it
	// before is dead. State, not configuration: disabling the client moves it, and
	// so does revoking all its tokens.
	TokensValidAfter time.Time
	// PreviousSecretHash is the hash of the secret a rotation replaced, accepted
	// until PreviousSecretExpiresAt (a grace period the rotation asked for); empty
	// when there is none.
	PreviousSecretHash      string
	PreviousSecretExpiresAt time.Time
}

// EffectiveDefaultScopes returns the client's DefaultScopes, or, when it has
// none, Keycloak's default client scopes: profile, email and roles.
func (c Client) EffectiveDefaultScopes() []string {
	if len(c.DefaultScopes) == 0 {
		return []string{"profile", "email", "roles"}
	}
	return slices.Clone(c.DefaultScopes)
}

// Public reports whether the client has no credentials (RFC 6749 §2.1).
func (c Client) Public() bool { return c.SecretHash == "" && len(c.JWKS) == 0 }

// ClientStore keeps clients.
type ClientStore interface {
	// CreateClient stores a new client. ErrConflict if the realm already has one with
	// that ID; ErrNotFound if the realm does not exist.
	CreateClient(ctx context.Context, c Client, events ...AuditEvent) error
	// GetClient returns the client. ErrNotFound if there is none.
	GetClient(ctx context.Context, realm, id string) (Client, error)
	// ListClients returns the realm's clients ordered by ID.
	ListClients(ctx context.Context, realm string) ([]Client, error)
	// UpdateClient runs fn on the client (see Updater functions) and stores every
	// field but Realm, ID and CreatedAt. When fn turns the client from enabled to
	// disabled and leaves TokensValidAfter where it was, TokensValidAfter moves to
	// the new UpdatedAt. Whenever TokensValidAfter moves later, in the same
	// transaction every unrevoked refresh family of the client is revoked at the new
	// stamp (ReasonClientDisabled if it was disabled, else ReasonClientTokensRevoked)
	// and its authorization codes not yet redeemed are deleted. ErrNotFound if there
	// is none.
	UpdateClient(ctx context.Context, realm, id string, fn func(c *Client) ([]AuditEvent, error)) (Client, error)
	// DeleteClient deletes the client with everything issued to it: refresh families
	// and their tokens, authorization codes, pushed requests, device grants, and the
	// consents users gave it; and its client roles with every reference to them, as
	// DeleteRole does. ErrNotFound if there is none.
	DeleteClient(ctx context.Context, realm, id string, events ...AuditEvent) error
}

// User is a person who signs in to a realm.
type User struct {
	Realm         string
	ID            string // unique across all realms; never reused
	Username      string // unique within the realm; callers normalise it (lower case)
	Email         string // unique within the realm when not empty; callers normalise it
	EmailVerified bool
	Name          string
	GivenName     string // OIDC given_name (Keycloak firstName)
	FamilyName    string // OIDC family_name (Keycloak lastName)
	PasswordHash  string // PHC string: argon2id, or a hash imported from Keycloak (pbkdf2-sha256/-sha512, argon2) until the next sign-in rehashes it
	// Roles are the user's direct role mappings; the composites among them
	// bring the roles they include.
	Roles    []RoleRef
	Disabled bool
	// TokensValidAfter is the user's security stamp: every token issued before it is dead.
	TokensValidAfter time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// UserStore keeps users.
type UserStore interface {
	// CreateUser stores a new user. ErrConflict if the ID, or the username or a
	// non-empty email within the realm, is taken; ErrNotFound if the realm does not exist.
	CreateUser(ctx context.Context, u User, events ...AuditEvent) error
	// GetUser returns the user by ID. ErrNotFound if there is none in that realm.
	GetUser(ctx context.Context, realm, id string) (User, error)
	// GetUserByUsername matches the username exactly. ErrNotFound if there is none.
	GetUserByUsername(ctx context.Context, realm, username string) (User, error)
	// GetUserByEmail matches the email exactly. ErrNotFound if there is none.
	GetUserByEmail(ctx context.Context, realm, email string) (User, error)
	// ListUsers returns the realm's users that match q, ordered by username.
	ListUsers(ctx context.Context, realm string, q UserQuery) ([]User, error)
	// UpdateUser runs fn on the user (see Updater functions) and stores every field
	// but Realm, ID and CreatedAt. When fn turns the user from enabled to disabled
	// and leaves TokensValidAfter where it was, TokensValidAfter moves to the new
	// UpdatedAt. Whenever TokensValidAfter moves later, in the same transaction every
	// unrevoked session and refresh family of the user is revoked at the new stamp
	// (ReasonUserDisabled if they were disabled, else ReasonPasswordChanged if the
	// password hash changed, else ReasonLogoutEverywhere) and their authorization
	// codes not yet redeemed are deleted. So a change that ends a user's tokens is
	// never seen without its revocations. ErrNotFound if there is none; ErrConflict
	// if the new username or email is taken.
	UpdateUser(ctx context.Context, realm, id string, fn func(u *User) ([]AuditEvent, error)) (User, error)
	// DeleteUser deletes the user with everything they hold: sessions, refresh
	// families, authorization codes, opaque access tokens and consents. ErrNotFound if
	// there is none.
	DeleteUser(ctx context.Context, realm, id string, events ...AuditEvent) error
}

// UserQuery selects and pages users; zero fields match everything.
type UserQuery struct {
	// Search matches users whose username, email or name contains it, ignoring case.
	Search string
	After  string // only users whose username sorts after this one (a page's cursor)
	Limit  int    // at most this many; 0: no limit
}

// Session is a browser session (the OIDC "sid").
type Session struct {
	ID            string // the sid; not secret
	Realm         string
	UserID        string
	SecretHash    []byte // hash of the secret half of the session cookie
	AuthTime      time.Time
	CreatedAt     time.Time
	LastSeenAt    time.Time
	IdleExpiresAt time.Time
	ExpiresAt     time.Time // absolute limit
	RevokedAt     time.Time
	IP            string
	UserAgent     string
}

// Live reports whether the session may still be used at now.
func (s Session) Live(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.IdleExpiresAt) && now.Before(s.ExpiresAt)
}

// SessionStore keeps browser sessions.
type SessionStore interface {
	// CreateSession stores a new session. ErrConflict if the ID is taken.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session, live or not. ErrNotFound if there is none.
	GetSession(ctx context.Context, id string) (Session, error)
	// TouchSession records use of the session and slides its idle expiry.
	// ErrNotFound if there is none.
	TouchSession(ctx context.Context, id string, seenAt, idleExpiresAt time.Time) error
	// RevokeSession ends the session; revoking twice keeps the first time.
	// ErrNotFound if there is none.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// ListUserSessions returns the user's sessions live at now, oldest first.
	ListUserSessions(ctx context.Context, realm, userID string, now time.Time) ([]Session, error)
	// RevokeUserSessions ends every unrevoked session of the user and says how many.
	RevokeUserSessions(ctx context.Context, realm, userID string, at time.Time) (int64, error)
	// PurgeSessions deletes sessions that were revoked, or expired (idle or
	// absolute), before the given time, and says how many. An expired session
	// stays while a refresh family born in it is unrevoked and unexpired at that
	// time: an offline family outlives its session's expiry, and a logout of the
	// session must still find it.
	PurgeSessions(ctx context.Context, before time.Time) (int64, error)
}

// AuthCode is an authorization code, stored by the hash of its value.
type AuthCode struct {
	Hash                []byte
	Realm               string
	ClientID            string
	UserID              string
	SessionID           string
	RedirectURI         string
	Scopes              []string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	// FamilyID names the refresh family (the grant) that tokens issued from the code
	// belong to, so a replayed code can revoke them.
	FamilyID string
	// IP and UserAgent are of the browser the code was issued to: the grant's device.
	IP         string
	UserAgent  string
	AuthTime   time.Time
	CreatedAt  time.Time
	ExpiresAt  time.Time
	ConsumedAt time.Time
}

// StartGrant decides, inside RedeemAuthCode's transaction, whether a code just
// consumed starts its grant: it returns the family (with ID c.FamilyID) and its
// first refresh token, or an error to refuse the redemption. It must not call the
// store: it runs while the store holds the code.
type StartGrant func(c AuthCode) (Family, RefreshToken, error)

// AuthCodeStore keeps authorization codes.
type AuthCodeStore interface {
	// CreateAuthCode stores a new code. ErrConflict if the hash is taken. In the same
	// transaction it records that the code's session (when it names one) was used
	// with the code's client (see SessionClients), and, when the session then holds
	// more than keep codes not yet consumed, deletes the oldest of those, so one
	// browser cannot pile them up (keep <= 0: no bound).
	CreateAuthCode(ctx context.Context, c AuthCode, keep int) error
	// RedeemAuthCode marks a live code consumed at now, exactly once across all
	// callers and instances, and, in the same transaction, stores the family and
	// first token that start returns for it (first.FamilyID is set to the family's
	// ID). So a grant exists from the moment its code is spent, and a replay that
	// revokes it can never come too early. The code stays consumed when start
	// refuses it; start's error is returned as it is, with the code. A code consumed
	// before comes back with ErrAlreadyUsed (so the caller can revoke its grant) and
	// start is not called; an unknown code, or one expired at now, gives ErrNotFound.
	// ErrConflict if the family ID or token hash is taken (nothing is changed then).
	RedeemAuthCode(ctx context.Context, hash []byte, now time.Time, start StartGrant) (AuthCode, error)
	// PurgeAuthCodes deletes codes that expired before now-grace, consumed or not,
	// and codes never consumed as soon as they expired before now: only a spent code
	// is worth keeping, to tell a replay from garbage. It says how many.
	PurgeAuthCodes(ctx context.Context, now time.Time, grace time.Duration) (int64, error)
}

// Family is a refresh-token family: every refresh token descended from one grant.
type Family struct {
	ID                string
	Realm             string
	ClientID          string
	UserID            string
	SessionID         string // empty when not born in a browser session
	Scopes            []string
	Audience          []string
	CreatedAt         time.Time
	LastUsedAt        time.Time
	IdleExpiresAt     time.Time // slides on every rotation
	AbsoluteExpiresAt time.Time // never moves
	RevokedAt         time.Time
	RevokeReason      string
	IP                string // of the last use
	UserAgent         string // of the last use
	// JKT is the RFC 7638 thumbprint of the DPoP key the family's refresh tokens
	// are bound to (RFC 9449 §5); "" when they are not bound.
	JKT string
}

// Live reports whether refresh tokens of the family may still be used at now.
func (f Family) Live(now time.Time) bool {
	return f.RevokedAt.IsZero() && now.Before(f.IdleExpiresAt) && now.Before(f.AbsoluteExpiresAt)
}

// RefreshToken is one member of a family, stored by the hash of its value.
type RefreshToken struct {
	Hash     []byte
	FamilyID string
	Scopes   []string // may be narrower than the family's (RFC 6749 §6)
	IssuedAt time.Time
	// Set when the token is rotated:
	UsedAt        time.Time
	SuccessorHash []byte
	// Sealed is the successor's token response, sealed under a key derived from
	// this token, so an honest retry within the window can be answered again.
	Sealed []byte
}

// FamilyUse is what a rotation records on the family.
type FamilyUse struct {
	At            time.Time
	IdleExpiresAt time.Time
	IP            string
	UserAgent     string
}

// RefreshStore keeps refresh families and their tokens.
type RefreshStore interface {
	// CreateFamily stores a family with its first token in one transaction.
	// first.FamilyID is set to f.ID. ErrConflict if the family ID or token hash is taken.
	CreateFamily(ctx context.Context, f Family, first RefreshToken) error
	// GetFamily returns the family, live or not. ErrNotFound if there is none.
	GetFamily(ctx context.Context, id string) (Family, error)
	// GetRefreshToken returns the token, used or not. ErrNotFound if there is none.
	GetRefreshToken(ctx context.Context, hash []byte) (RefreshToken, error)
	// RotateRefreshToken, in one transaction, marks the parent used at use.At with
	// child as its successor and sealed as its retry response, stores child in the
	// parent's family (child.FamilyID is set to it), and records use on the family.
	// Of any number of concurrent callers for one parent, on any instance, exactly one
	// succeeds. The others get the parent as it now stands (UsedAt, SuccessorHash,
	// Sealed) together with ErrAlreadyUsed. ErrNotFound for an unknown parent;
	// ErrRevoked if the family is revoked (checked before ErrAlreadyUsed).
	RotateRefreshToken(ctx context.Context, parentHash []byte, child RefreshToken, sealed []byte, use FamilyUse) (RefreshToken, error)
	// RevokeFamily revokes the family, and with it every token in it, in one
	// operation. Revoking twice keeps the first time and reason. ErrNotFound if there is none.
	RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error
	// ListUserFamilies returns the user's families live at now, oldest first.
	ListUserFamilies(ctx context.Context, realm, userID string, now time.Time) ([]Family, error)
	// RevokeUserFamilies revokes every unrevoked family of the user and says how many.
	RevokeUserFamilies(ctx context.Context, realm, userID string, at time.Time, reason string) (int64, error)
	// RevokeSessionFamilies revokes every unrevoked family born in the session and says how many.
	RevokeSessionFamilies(ctx context.Context, sessionID string, at time.Time, reason string) (int64, error)
	// PurgeFamilies deletes families, with their tokens, that expired (idle or
	// absolute) or were revoked before the given time, and says how many families.
	PurgeFamilies(ctx context.Context, before time.Time) (int64, error)
}

// DeniedJWT is a deny-list entry for an access token revoked before its expiry: a
// JWT or an opaque (sealed) one, both named by their jti.
type DeniedJWT struct {
	Realm     string
	JTI       string
	ExpiresAt time.Time // the token's own exp: after it the entry is useless
	CreatedAt time.Time
	Reason    string
}

// DenyListStore keeps revoked JWT IDs until the tokens would have expired anyway.
type DenyListStore interface {
	// DenyJWT adds an entry; adding one twice keeps the first.
	DenyJWT(ctx context.Context, d DeniedJWT) error
	// IsJWTDenied reports whether the realm's jti is on the list.
	IsJWTDenied(ctx context.Context, realm, jti string) (bool, error)
	// ListDeniedJWTs returns the realm's entries not yet expired at now, ordered by JTI.
	ListDeniedJWTs(ctx context.Context, realm string, now time.Time) ([]DeniedJWT, error)
	// PurgeDeniedJWTs deletes entries that expired before the given time and says how many.
	PurgeDeniedJWTs(ctx context.Context, before time.Time) (int64, error)
}

// SigningKey is a realm's signing key.
type SigningKey struct {
	Realm      string
	KID        string // unique within the realm
	Alg        string
	PrivateKey []byte // sealed private key; the store keeps it opaque
	PublicJWK  []byte // the public JWK as JSON
	CreatedAt  time.Time
	// The key is published from CreatedAt, signs from SignFrom until SignUntil (zero:
	// no end yet), and stays published until PublishUntil (zero: no end yet).
	SignFrom     time.Time
	SignUntil    time.Time
	PublishUntil time.Time
}

// SigningKeyStore keeps signing keys.
type SigningKeyStore interface {
	// CreateSigningKey stores a new key. ErrConflict if the realm has that KID;
	// ErrNotFound if the realm does not exist.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns all of the realm's keys, oldest first (by CreatedAt, then KID).
	ListSigningKeys(ctx context.Context, realm string) ([]SigningKey, error)
	// RetireSigningKey sets when the key stops signing and stops being published.
	// ErrNotFound if there is none.
	RetireSigningKey(ctx context.Context, realm, kid string, signUntil, publishUntil time.Time, events ...AuditEvent) error
	// PurgeSigningKeys deletes keys whose PublishUntil is set and before the given
	// time, and says how many.
	PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error)
}

// AuditEvent is a security-relevant event. It never holds a secret.
type AuditEvent struct {
	ID        int64 // assigned by the store, increasing
	Time      time.Time
	Type      string // e.g. "refresh_token.reuse_detected"
	Realm     string
	ClientID  string
	UserID    string
	SessionID string
	FamilyID  string
	IP        string
	UserAgent string
	Details   map[string]string
}

// Revoke reasons of the refresh families a user had when they were disabled, or
// when their password was changed, and of those of a client disabled.
const (
	ReasonUserDisabled        = "user disabled"
	ReasonPasswordChanged     = "password changed"
	ReasonLogoutEverywhere    = "logout everywhere"
	ReasonClientDisabled      = "client disabled"
	ReasonClientTokensRevoked = "client tokens revoked"
	ReasonRealmLogout         = "realm logout"
	// ReasonDeleted is the Reason of the changes a deletion records (see Change).
	ReasonDeleted = "deleted"
)

// ClientDisabled is the audit event of a client turned from enabled to disabled,
// written as UserDisabled is.
func ClientDisabled(realm, clientID string, at time.Time, by string) AuditEvent {
	return AuditEvent{Time: at, Type: "client.disabled", Realm: realm, ClientID: clientID, Details: map[string]string{"by": by}}
}

// UserDisabled is the audit event of a user turned from enabled to disabled: realm
// and user, and what did it ("seed"). A store method that disables a user appends it
// in the same transaction as the change, so neither is ever without the other.
func UserDisabled(realm, userID string, at time.Time, by string) AuditEvent {
	return AuditEvent{Time: at, Type: "user.disabled", Realm: realm, UserID: userID, Details: map[string]string{"by": by}}
}

// PasswordChanged is the audit event of a user's password changed, as UserDisabled.
func PasswordChanged(realm, userID string, at time.Time, by string) AuditEvent {
	return AuditEvent{Time: at, Type: "user.password_changed", Realm: realm, UserID: userID, Details: map[string]string{"by": by}}
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	Realm    string
	Type     string
	UserID   string
	ClientID string
	Since    time.Time // events at or after
	Before   int64     // only events with a smaller ID (a page's cursor); 0: no bound
	Limit    int       // 0: no limit
}

// AuditStore keeps the audit trail.
type AuditStore interface {
	// AppendAudit stores the event and returns the ID it got.
	AppendAudit(ctx context.Context, e AuditEvent) (int64, error)
	// ListAudit returns matching events, newest first (by ID).
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// Seed is a declarative set of realms, clients and users.
type Seed struct {
	Realms []SeedRealm
}

// SeedRealm is one realm of a Seed with its clients and users.
type SeedRealm struct {
	Realm   Realm
	Clients []Client // Realm fields are set to the realm's name
	Users   []User   // Realm fields are set to the realm's name
	Roles   []Role   // realm and client roles; Realm fields are set to the realm's name
	// PasswordMACs maps the username of each user whose password the seed gives in
	// plain text to a keyed MAC of that password, so a later start can tell a
	// declaration it applied before without hashing the password again.
	PasswordMACs map[string][]byte
}

// SeedResult counts what applying a Seed did, over realms, clients and users.
type SeedResult struct {
	Created   int
	Updated   int
	Unchanged int
	// Audit holds the audit events the seed appended in its transaction, with
	// their IDs (a user or a client disabled, a password changed).
	Audit []AuditEvent
}

// SeedStore applies a Seed.
type SeedStore interface {
	// ApplySeed creates or updates every realm (by name), client (by realm and ID),
	// role (by realm, client ID and name) and user (by realm and username) of the
	// seed, all in one transaction: on any error nothing is changed. Roles are
	// applied after clients (a client role needs its client) and before users; a
	// role reference (user, client or composite) that names no role once the seed's
	// roles are applied fails the seed with ErrNotFound. An entity whose configuration already matches (see
	// SameRealm, SameClient, SameUser) is left untouched, timestamps included; an
	// existing user keeps its ID, CreatedAt and TokensValidAfter. An existing user the
	// seed turns from enabled to disabled, or gives another password hash, loses
	// everything issued before, in the same transaction, at the seed user's
	// UpdatedAt: TokensValidAfter moves there, their sessions and refresh families
	// are revoked (ReasonUserDisabled or ReasonPasswordChanged), and a UserDisabled
	// or PasswordChanged audit event (by "seed") is written. Likewise a client the
	// seed turns from enabled to disabled: its TokensValidAfter moves, its refresh
	// families are revoked (ReasonClientDisabled), and a ClientDisabled event is
	// written. Entities the seed does not name are left alone.
	// In the same transaction it stores each realm's PasswordMACs, replacing the
	// realm's earlier ones for those usernames.
	ApplySeed(ctx context.Context, s Seed) (SeedResult, error)
	// SeedPasswordMACs returns the password MACs the seeds applied so far stored for
	// the realm, by username (empty when there are none).
	SeedPasswordMACs(ctx context.Context, realm string) (map[string][]byte, error)
}

// ClientAssertionStore remembers the IDs of client assertions (private_key_jwt,
// RFC 7523 §3) until they expire, so none can be replayed.
type ClientAssertionStore interface {
	// UseClientAssertion records the assertion's jti for the client until expiresAt,
	// exactly once across all callers and instances. ErrAlreadyUsed if the client
	// used that jti before (an entry that expired but is not yet purged counts).
	UseClientAssertion(ctx context.Context, realm, clientID, jti string, expiresAt time.Time) error
	// PurgeClientAssertions deletes entries that expired before the given time and says how many.
	PurgeClientAssertions(ctx context.Context, before time.Time) (int64, error)
}

// Consent is a user's standing permission for a client to have some scopes.
type Consent struct {
	Realm     string
	UserID    string
	ClientID  string
	Scopes    []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ConsentStore keeps the consents users gave to third-party clients.
type ConsentStore interface {
	// GetConsent returns the user's consent for the client. ErrNotFound if there is none.
	GetConsent(ctx context.Context, realm, userID, clientID string) (Consent, error)
	// SaveConsent creates the consent or replaces its scopes and UpdatedAt (an existing
	// one keeps its CreatedAt).
	SaveConsent(ctx context.Context, c Consent) error
	// DeleteConsent deletes it. ErrNotFound if there is none.
	DeleteConsent(ctx context.Context, realm, userID, clientID string) error
	// ListUserConsents returns the user's consents ordered by client ID.
	ListUserConsents(ctx context.Context, realm, userID string) ([]Consent, error)
}

// SweepResult counts the rows a sweep deleted, by kind.
type SweepResult struct {
	Skipped          bool // another instance was sweeping; nothing was done
	Families         int64
	Sessions         int64
	AuthCodes        int64
	DeniedJWTs       int64
	ClientAssertions int64
	Changes          int64 // change-feed entries older than ChangeRetention
	Attempts         int64
	DPoPProofs       int64
	PushedRequests   int64
	DeviceGrants     int64
	BFFSessions      int64
}

// ChangeRetention is how long the change feed keeps an entry: Sweep purges older
// ones. A consumer that falls further behind must reload what it caches.
const ChangeRetention = 24 * time.Hour

// Counts are the numbers of stored rows, by kind, for tests and metrics.
type Counts struct {
	Families         int64
	RefreshTokens    int64
	Sessions         int64
	AuthCodes        int64
	DeniedJWTs       int64
	ClientAssertions int64
	Attempts         int64
	DPoPProofs       int64
	PushedRequests   int64
	DeviceGrants     int64
	BFFSessions      int64
}

// SweepStore keeps storage proportional to what is live.
type SweepStore interface {
	// Sweep deletes every family (with its tokens), session, authorization code,
	// deny-list entry, client assertion, DPoP proof, pushed request, device
	// grant and BFF session that expired or was revoked before now-grace, every attempt record forgotten at now (see AttemptStore), codes
	// never consumed once expired at now (the same rules as the Purge* methods), and
	// changes recorded before now-ChangeRetention. When several instances share the
	// store only one sweeps at a time, and a backend may answer the others Skipped
	// at once (PostgreSQL does; SQLite's single writer simply runs them one after
	// another).
	Sweep(ctx context.Context, now time.Time, grace time.Duration) (SweepResult, error)
	// Count returns the number of stored rows of each kind.
	Count(ctx context.Context) (Counts, error)
	// TaskRun returns when the task name last ran, as SetTaskRun recorded it; the
	// zero time if it never did. With Exclusive it lets a periodic task run once per
	// interval across instances.
	TaskRun(ctx context.Context, name string) (time.Time, error)
	// SetTaskRun records that the task name ran at at.
	SetTaskRun(ctx context.Context, name string, at time.Time) error
	// Exclusive runs fn unless another caller, on this instance or any other
	// sharing the store, is running fn under the same name; then it returns false
	// at once without running it. So a periodic task that every instance runs
	// (key rotation) is done by one of them, which must decide inside fn, from
	// what it reads there, whether it is still due. fn's error is returned.
	Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (ran bool, err error)
}

// SessionClient is a client a browser session was used with: one that got an
// authorization code in it.
type SessionClient struct {
	Realm    string
	ClientID string
}

// BackchannelStore keeps what back-channel logout (OpenID Connect Back-Channel
// Logout 1.0) needs to tell clients that a session ended: the clients of each
// session, and how far the delivery has read the change feed.
type BackchannelStore interface {
	// SessionClients returns the clients the session was used with, ordered by
	// realm and client ID. They outlive the session (a deleted user's sessions
	// go at once) until PurgeSessionClients.
	SessionClients(ctx context.Context, sessionID string) ([]SessionClient, error)
	// PurgeSessionClients deletes the records of sessions that no longer exist,
	// recorded before the given time, and says how many.
	PurgeSessionClients(ctx context.Context, before time.Time) (int64, error)
	// ListSessionsRevokedAt returns the realm's sessions revoked at exactly at,
	// ordered by ID: those a LogoutRealm at that time ended (its change names no
	// session). Sessions already swept are not there.
	ListSessionsRevokedAt(ctx context.Context, realm string, at time.Time) ([]Session, error)
	// BackchannelCursor returns the Seq of the last change the delivery has
	// handled; ok is false when none was ever set.
	BackchannelCursor(ctx context.Context) (seq int64, ok bool, err error)
	// SetBackchannelCursor stores it.
	SetBackchannelCursor(ctx context.Context, seq int64) error
}

// MaxAttemptKey bounds the length in bytes of an AttemptStore key; a longer
// key is refused. Callers bound (or hash) what they build keys from.
const MaxAttemptKey = 256

// AttemptLimit is the rule of a kind of attempt key (an account, a client, an
// address): after Failures failures the key is locked until its last failure +
// BaseLock*2^(failures-Failures), capped at MaxLock; its failures are forgotten
// together once its last failure is Forget old. Forget must not be shorter than
// MaxLock, so forgetting never cuts a lock short.
type AttemptLimit struct {
	Failures int
	BaseLock time.Duration
	MaxLock  time.Duration
	Forget   time.Duration
}

// Attempts is what the store keeps of a key: its failures and the last one.
type Attempts struct {
	Failures int
	Last     time.Time
}

// At is a as it counts at now: none once forgotten.
func (a Attempts) At(l AttemptLimit, now time.Time) Attempts {
	if a.Failures == 0 || now.Sub(a.Last) >= l.Forget {
		return Attempts{}
	}
	return a
}

// Lock is what is left at now of the lock a's failures put on the key (0: none).
func (l AttemptLimit) Lock(a Attempts, now time.Time) time.Duration {
	a = a.At(l, now)
	if a.Failures < l.Failures || a.Failures == 0 {
		return 0
	}
	d := l.BaseLock
	for extra := a.Failures - l.Failures; extra > 0 && d < l.MaxLock; extra-- {
		d *= 2
	}
	return max(a.Last.Add(min(d, l.MaxLock)).Sub(now), 0)
}

// AttemptKey is a key with the rule it is kept by.
type AttemptKey struct {
	Key   string // at most MaxAttemptKey bytes
	Limit AttemptLimit
}

// AttemptStore keeps the failure counts behind the login and client
// authentication limits, shared by every instance on the store, so that N
// instances together allow what one allows. Sweep deletes the rows whose
// failures are forgotten and whose attempts in flight have ended.
type AttemptStore interface {
	// GetAttempts returns each key's record as it counts at now (see
	// Attempts.At), in the order given; a key without one gets the zero Attempts.
	// It writes nothing.
	GetAttempts(ctx context.Context, now time.Time, keys ...AttemptKey) ([]Attempts, error)
	// AdmitAttempt puts an attempt in flight on every key at once, as one atomic
	// step among all callers on the store, before the attempt's check is made.
	// Attempts in flight count as failures to come: a key n failures short of its
	// lock takes n at once, and one at a time once a lock has run out. It returns
	// true when admitted; false and the lock when a key is locked at now; false and
	// 0 when the attempts in flight hold all a key has left (ask again when one
	// ends). An admitted attempt holds its place until FailAttempt or EndAttempt
	// gives it back, or until now+hold (so a crashed caller's places come free).
	AdmitAttempt(ctx context.Context, now time.Time, hold time.Duration, keys ...AttemptKey) (admitted bool, lock time.Duration, err error)
	// EndAttempt gives back the places AdmitAttempt gave an attempt that did not
	// fail; with clear set it also forgets the first key's failures (a success).
	EndAttempt(ctx context.Context, now time.Time, clear bool, keys ...AttemptKey) error
	// FailAttempt records one failure at now against every key at once, as one
	// atomic step among all callers on the store: unless one of the keys is
	// locked at now, when it records nothing and returns false and that lock.
	// Otherwise it returns true and the longest lock the keys now have (0: none).
	// Either way it gives back a place in flight on each key that has one.
	FailAttempt(ctx context.Context, now time.Time, keys ...AttemptKey) (counted bool, lock time.Duration, err error)
	// ClearAttempts forgets the key's failures (a success, an administrator's
	// unlock); attempts in flight keep their places.
	ClearAttempts(ctx context.Context, key string) error
}

// RoleRef names a role: a realm role when ClientID is empty, else a role of that client.
type RoleRef struct {
	ClientID string `json:"client_id,omitempty"`
	Name     string `json:"name"`
}

// Role is a realm role (ClientID "") or a client role. A composite role includes
// the roles it names, transitively.
type Role struct {
	Realm       string
	ClientID    string // "" for a realm role
	Name        string // unique per realm (realm roles) or per client (client roles)
	Description string
	Composites  []RoleRef
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Ref is the reference that names r.
func (r Role) Ref() RoleRef { return RoleRef{ClientID: r.ClientID, Name: r.Name} }

// RoleStore keeps roles.
//
// References to roles (User.Roles, Client.ServiceAccountRoles, Role.Composites)
// name roles of the same realm, and never dangle: DeleteRole (and DeleteClient,
// for a client's roles) removes them, and a write that adds a reference to a role
// that does not exist (one deleted concurrently; callers validate the rest)
// drops it, as a DeleteRole coming after would have. Lists of references keep
// their order.
type RoleStore interface {
	// CreateRole stores a new role. ErrConflict if it exists; ErrNotFound if the realm
	// (or, for a client role, the client) does not exist.
	CreateRole(ctx context.Context, r Role, events ...AuditEvent) error
	// GetRole returns the role. ErrNotFound if there is none.
	GetRole(ctx context.Context, realm, clientID, name string) (Role, error)
	// ListRoles returns every realm and client role of the realm, ordered by
	// ClientID then Name (realm roles first).
	ListRoles(ctx context.Context, realm string) ([]Role, error)
	// UpdateRole runs fn on the role (see Updater functions) and stores Description,
	// Composites and UpdatedAt. ErrNotFound if there is none.
	UpdateRole(ctx context.Context, realm, clientID, name string, fn func(r *Role) ([]AuditEvent, error)) (Role, error)
	// DeleteRole deletes the role and, in the same transaction, every reference to it:
	// users' Roles, clients' ServiceAccountRoles and other roles' Composites. ErrNotFound.
	DeleteRole(ctx context.Context, realm, clientID, name string, events ...AuditEvent) error
}

// Change is an entry of the change feed: a revocation, or a change to a realm, a
// client or the signing keys, which other instances (and, through the revocation
// feed, resource servers) must learn of. Stores record changes themselves, in the
// transaction of the write that makes them, so a caller cannot forget one: every
// method that denies a token, moves a user's or client's stamp, deletes a user,
// ends a session, revokes a family, changes or deletes a client or realm, logs a
// realm out, creates or retires a signing key, or writes a role records the
// changes below. (A client whose ServiceAccountRoles lose a deleted role records
// a ChangeClientChanged; a user whose Roles do records nothing, since nothing
// caches users.)
type Change struct {
	Seq   int64     // assigned by the store, increasing (see ListChanges on gaps)
	Time  time.Time // when: the write's own time (a stamp, a revocation's at)
	Realm string
	Kind  string // one of the Change* kinds
	// Subject names what changed: the jti (ChangeTokenDenied), the user ID
	// (ChangeUserRevoked), the session ID (ChangeSessionEnded), the family ID
	// (ChangeFamilyRevoked), the client ID (ChangeClientChanged, ChangeClientRevoked),
	// the realm name (ChangeRealmChanged, ChangeRealmLogout, ChangeRolesChanged), the
	// key ID (ChangeKeysChanged).
	Subject  string
	UserID   string    // the user of an ended session or revoked family
	ClientID string    // the client of a revoked family
	Until    time.Time // ChangeTokenDenied: the token's exp; otherwise zero
	Reason   string    // why, for revocations: a storage Reason*, "disabled", "deleted", ...
}

// Kinds of change.
const (
	// ChangeTokenDenied: the access token with jti Subject is revoked until Until.
	ChangeTokenDenied = "token.denied"
	// ChangeUserRevoked: the user's stamp moved to Time (disabled, password changed,
	// signed out everywhere) or the user was deleted: every token of theirs issued
	// before Time is dead.
	ChangeUserRevoked = "user.revoked"
	// ChangeSessionEnded: the browser session Subject ended (one row per session,
	// also when a user's sessions end together).
	ChangeSessionEnded = "session.ended"
	// ChangeFamilyRevoked: the refresh family Subject was revoked (one row per
	// family, also when reuse was detected inside a rotation).
	ChangeFamilyRevoked = "family.revoked"
	// ChangeClientChanged: the client was created, updated or deleted.
	ChangeClientChanged = "client.changed"
	// ChangeClientRevoked: the client's stamp moved to Time (disabled, tokens
	// revoked) or it was deleted: every token issued to it before Time is dead.
	ChangeClientRevoked = "client.revoked"
	// ChangeRealmChanged: the realm was created, updated or deleted.
	ChangeRealmChanged = "realm.changed"
	// ChangeRealmLogout: every session and family of the realm ended at Time.
	ChangeRealmLogout = "realm.logout"
	// ChangeKeysChanged: the signing key Subject was created or retired.
	ChangeKeysChanged = "keys.changed"
	// ChangeRolesChanged: a role of the realm Subject was created, updated or
	// deleted (with the references to it), or a client's roles went with the
	// client: caches drop the realm's roles.
	ChangeRolesChanged = "roles.changed"
)

// ChangeQuery selects changes. Zero fields select everything.
type ChangeQuery struct {
	After int64     // only changes with Seq > After
	Realm string    // only the realm's
	Since time.Time // only changes with Time at or after Since
	Limit int       // at most this many; 0: no limit
}

// ChangeFeedStore keeps the change feed.
type ChangeFeedStore interface {
	// ListChanges returns the changes q selects, in Seq order. Seq increases in the
	// order changes are recorded, but on a store shared by several instances a
	// change may become visible after higher ones, for as long as its transaction
	// is in flight (at most the store's timeout): a reader that meets a gap must
	// read it again until it fills or that time has passed (a transaction that
	// rolled back leaves a gap for good).
	ListChanges(ctx context.Context, q ChangeQuery) ([]Change, error)
	// LastChangeSeq returns the highest Seq recorded, 0 if none.
	LastChangeSeq(ctx context.Context) (int64, error)
	// WatchChanges calls wake whenever changes may have been recorded, by this
	// instance or by any other sharing the store, and once after every
	// (re)connection to the store, since changes may have been missed meanwhile. It
	// returns when ctx ends. A wake-up carries no data: the caller catches up with
	// ListChanges. wake must not block.
	WatchChanges(ctx context.Context, wake func()) error
	// PurgeChanges deletes changes recorded (Time) before the given time and says how many.
	PurgeChanges(ctx context.Context, before time.Time) (int64, error)
}
