// Package registry is the one model of realms, clients and users that the seed
// file and the admin API share: their representation (YAML and JSON field names),
// their defaults, and their validation, with errors that name the field.
package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkey/latchkey/storage"
)

// Realm is a realm's configuration.
type Realm struct {
	Name           string   `yaml:"name" json:"name"`
	DisplayName    string   `yaml:"display_name" json:"display_name,omitempty"`
	SigningAlg     string   `yaml:"signing_alg" json:"signing_alg,omitempty"`
	AccessTokenTTL Duration `yaml:"access_token_ttl" json:"access_token_ttl,omitempty"`
	// AllowLongAccessTokens lets access_token_ttl exceed one hour.
	AllowLongAccessTokens bool `yaml:"allow_long_access_tokens" json:"allow_long_access_tokens,omitempty"`
}

// Client is a client's configuration. Secret is write-only: it is hashed on the
// way in and never read back.
type Client struct {
	ID                       string    `yaml:"id" json:"id"`
	Name                     string    `yaml:"name" json:"name,omitempty"`
	Secret                   string    `yaml:"secret" json:"secret,omitempty"`
	JWKS                     JWKS      `yaml:"jwks" json:"jwks,omitempty"` // public keys for private_key_jwt
	RedirectURIs             []string  `yaml:"redirect_uris" json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs   []string  `yaml:"post_logout_redirect_uris" json:"post_logout_redirect_uris,omitempty"`
	GrantTypes               []string  `yaml:"grant_types" json:"grant_types"`
	Scopes                   []string  `yaml:"scopes" json:"scopes,omitempty"`
	Audiences                []string  `yaml:"audiences" json:"audiences,omitempty"`
	ThirdParty               bool      `yaml:"third_party" json:"third_party,omitempty"`
	Disabled                 bool      `yaml:"disabled" json:"disabled,omitempty"`
	PKCEOptional             bool      `yaml:"pkce_optional" json:"pkce_optional,omitempty"`                               // confidential clients only
	IDTokenSignedResponseAlg string    `yaml:"id_token_signed_response_alg" json:"id_token_signed_response_alg,omitempty"` // RS256 (default), ES256 or EdDSA
	AccessTokenTTL           Duration  `yaml:"access_token_ttl" json:"access_token_ttl,omitempty"`
	AllowLongAccessTokens    bool      `yaml:"allow_long_access_tokens" json:"allow_long_access_tokens,omitempty"`
	AccessTokenFormat        string    `yaml:"access_token_format" json:"access_token_format,omitempty"`
	RefreshPreset            string    `yaml:"refresh_preset" json:"refresh_preset,omitempty"`
	RefreshIdle              Duration  `yaml:"refresh_idle" json:"refresh_idle,omitempty"`
	RefreshAbsolute          Duration  `yaml:"refresh_absolute" json:"refresh_absolute,omitempty"`
	RefreshRetryWindow       *Duration `yaml:"refresh_retry_window" json:"refresh_retry_window,omitempty"` // nil: the default; 0s turns it off
	// RefreshTokenFormat is opaque (default, lk_rt_…) or jwt: the same secret in a
	// signed envelope, for client libraries (keycloak-js) that decode refresh tokens.
	RefreshTokenFormat string `yaml:"refresh_token_format" json:"refresh_token_format,omitempty"`
	// BackchannelLogoutURI is where the client takes logout tokens (OpenID Connect
	// Back-Channel Logout 1.0 §2.2): https, or plain http on a loopback address
	// in dev mode (see CheckPlainHTTP).
	BackchannelLogoutURI string `yaml:"backchannel_logout_uri" json:"backchannel_logout_uri,omitempty"`
	// BackchannelLogoutSessionRequired: the client wants sid in logout tokens.
	BackchannelLogoutSessionRequired bool `yaml:"backchannel_logout_session_required" json:"backchannel_logout_session_required,omitempty"`
	// WebOrigins are the origins (scheme://host[:port]) whose pages may call the
	// realm's token, userinfo, revocation, logout and account endpoints with
	// credentials (CORS), as Keycloak's webOrigins. "+" stands for the origins
	// of the redirect URIs; unset means just that.
	WebOrigins []string `yaml:"web_origins" json:"web_origins,omitempty"`
	// ServiceAccountRoles are the roles of the client's own tokens (the
	// client_credentials grant), as Keycloak's service-account role mappings.
	ServiceAccountRoles RoleMappings `yaml:"service_account_roles" json:"service_account_roles,omitzero"`
	// DefaultScopes are added when a request asks only for openid, as Keycloak's
	// default client scopes; unset means profile, email and roles.
	DefaultScopes []string `yaml:"default_scopes" json:"default_scopes,omitempty"`
	// LeanAccessTokens keeps profile and email claims out of access tokens.
	LeanAccessTokens bool `yaml:"lean_access_tokens" json:"lean_access_tokens,omitempty"`
	// DPoPBoundAccessTokens makes the client send a DPoP proof at the token
	// endpoint, so its tokens are bound to its key (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool `yaml:"dpop_bound_access_tokens" json:"dpop_bound_access_tokens,omitempty"`
	// RequirePushedAuthorizationRequests makes the authorization endpoint take
	// the client's requests only through PAR (RFC 9126 §6).
	RequirePushedAuthorizationRequests bool `yaml:"require_pushed_authorization_requests" json:"require_pushed_authorization_requests,omitempty"`
	// TokenExchangeAudiences are the audiences (client IDs or resource URIs) the
	// client may ask for in a token exchange (RFC 8693 §2.1); it needs the
	// token-exchange grant type.
	TokenExchangeAudiences []string `yaml:"token_exchange_audiences" json:"token_exchange_audiences,omitempty"`
}

// Confidential reports whether the client has credentials (RFC 6749 §2.1).
func (c *Client) Confidential() bool { return c.Secret != "" || len(c.JWKS) > 0 }

// User is a user's profile, and on the way in their password. Password and
// PasswordHash are write-only.
type User struct {
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"password,omitempty"`
	// PasswordHash is an argon2id hash in PHC form (as `latchkey password hash`
	// prints), instead of Password: kept as it is, so nothing is hashed.
	PasswordHash  string `yaml:"password_hash" json:"password_hash,omitempty"`
	Email         string `yaml:"email" json:"email,omitempty"`
	EmailVerified bool   `yaml:"email_verified" json:"email_verified,omitempty"`
	Name          string `yaml:"name" json:"name,omitempty"`
	GivenName     string `yaml:"given_name" json:"given_name,omitempty"`   // OIDC given_name; Keycloak's firstName
	FamilyName    string `yaml:"family_name" json:"family_name,omitempty"` // OIDC family_name; Keycloak's lastName
	Disabled      bool   `yaml:"disabled" json:"disabled,omitempty"`
	// RealmRoles and ClientRoles (by client ID) are the user's direct role
	// mappings; composite roles bring more.
	RealmRoles  []string            `yaml:"realm_roles" json:"realm_roles,omitempty"`
	ClientRoles map[string][]string `yaml:"client_roles" json:"client_roles,omitempty"`
}

// Duration is a Go duration string ("5m", "24h", "0s") in YAML and JSON.
type Duration time.Duration

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write it like 5m, 24h or 0s)", s)
	}
	return Duration(v), nil
}

// String implements fmt.Stringer.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return &Error{Line: n.Line, Msg: fmt.Sprintf("%q is not a duration (write it like 5m, 24h or 0s)", n.Value)}
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string like \"5m\", \"24h\" or \"0s\"")
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// JWKS is a client's JWK Set, written as a mapping in YAML, an object in JSON, and
// kept as JSON.
type JWKS []byte

// UnmarshalYAML implements yaml.Unmarshaler.
func (j *JWKS) UnmarshalYAML(n *yaml.Node) error {
	var v map[string]any
	if err := n.Decode(&v); err != nil {
		return &Error{Line: n.Line, Msg: "jwks must be a JWK Set: a mapping with a keys list"}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return &Error{Line: n.Line, Msg: "jwks must be a JWK Set: " + err.Error()}
	}
	*j = b
	return nil
}

// MarshalJSON implements json.Marshaler.
func (j JWKS) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (j *JWKS) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*j = nil
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("jwks must be a JWK Set: an object with a keys list")
	}
	*j = append(JWKS(nil), b...)
	return nil
}

// Error is a problem with one field. Path locates it from the entity checked:
// keys (string) and list indexes (int), e.g. {"redirect_uris", 0}.
type Error struct {
	Path []any
	Msg  string
	Line int // set only by the YAML decoder hooks
}

// Field renders Path as a field path: redirect_uris[0].
func (e *Error) Field() string { return FieldPath(e.Path...) }

func (e *Error) Error() string {
	if f := e.Field(); f != "" {
		return f + ": " + e.Msg
	}
	return e.Msg
}

// FieldPath renders keys and indexes as a field path: clients[2].redirect_uris[0].
func FieldPath(path ...any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, p)
		}
	}
	return b.String()
}

// StoredRealm is the realm as stored, created or updated at now.
func (r *Realm) StoredRealm(now time.Time) storage.Realm {
	return storage.Realm{Name: r.Name, DisplayName: r.DisplayName, SigningAlg: r.SigningAlg,
		AccessTokenTTL: time.Duration(r.AccessTokenTTL), CreatedAt: now, UpdatedAt: now}
}

// RealmOf is the representation of a stored realm.
func RealmOf(r storage.Realm) Realm {
	return Realm{Name: r.Name, DisplayName: r.DisplayName, SigningAlg: r.SigningAlg,
		AccessTokenTTL: Duration(r.AccessTokenTTL), AllowLongAccessTokens: r.AccessTokenTTL > MaxAccessTokenTTL}
}

// StoredClient is the client as stored in realm, created or updated at now, with
// secretHash as its secret's hash (the caller hashes c.Secret: the hash is keyed).
func (c *Client) StoredClient(realm, secretHash string, now time.Time) storage.Client {
	out := storage.Client{
		Realm: realm, ID: c.ID, Name: c.Name, SecretHash: secretHash, JWKS: c.JWKS,
		RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		GrantTypes: c.GrantTypes, Scopes: c.Scopes, Audiences: c.Audiences,
		ThirdParty: c.ThirdParty, Disabled: c.Disabled,
		PKCEOptional: c.PKCEOptional, IDTokenSignedResponseAlg: c.IDTokenSignedResponseAlg,
		BackchannelLogoutURI:               c.BackchannelLogoutURI,
		BackchannelLogoutSessionRequired:   c.BackchannelLogoutSessionRequired,
		WebOrigins:                         c.WebOrigins,
		ServiceAccountRoles:                c.ServiceAccountRoles.Refs(),
		DefaultScopes:                      c.DefaultScopes,
		LeanAccessTokens:                   c.LeanAccessTokens,
		DPoPBoundAccessTokens:              c.DPoPBoundAccessTokens,
		RequirePushedAuthorizationRequests: c.RequirePushedAuthorizationRequests,
		TokenExchangeAudiences:             c.TokenExchangeAudiences,
		Tokens: storage.TokenSettings{
			AccessTokenTTL:     time.Duration(c.AccessTokenTTL),
			AccessTokenFormat:  c.AccessTokenFormat,
			RefreshPreset:      c.RefreshPreset,
			RefreshIdle:        time.Duration(c.RefreshIdle),
			RefreshAbsolute:    time.Duration(c.RefreshAbsolute),
			RefreshTokenFormat: c.RefreshTokenFormat,
		},
		CreatedAt: now, UpdatedAt: now,
	}
	if c.RefreshRetryWindow != nil {
		out.Tokens.RefreshRetryWindow = time.Duration(*c.RefreshRetryWindow)
	}
	return out
}

// ClientOf is the representation of a stored client, without its secret.
func ClientOf(c storage.Client) Client {
	retry := Duration(c.Tokens.RefreshRetryWindow)
	out := Client{
		ID: c.ID, Name: c.Name, JWKS: JWKS(c.JWKS),
		RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		GrantTypes: c.GrantTypes, Scopes: c.Scopes, Audiences: c.Audiences,
		ThirdParty: c.ThirdParty, Disabled: c.Disabled, PKCEOptional: c.PKCEOptional,
		IDTokenSignedResponseAlg:           c.IDTokenSignedResponseAlg,
		BackchannelLogoutURI:               c.BackchannelLogoutURI,
		BackchannelLogoutSessionRequired:   c.BackchannelLogoutSessionRequired,
		WebOrigins:                         c.WebOrigins,
		AccessTokenTTL:                     Duration(c.Tokens.AccessTokenTTL),
		AllowLongAccessTokens:              c.Tokens.AccessTokenTTL > MaxAccessTokenTTL,
		AccessTokenFormat:                  c.Tokens.AccessTokenFormat,
		RefreshPreset:                      c.Tokens.RefreshPreset,
		RefreshIdle:                        Duration(c.Tokens.RefreshIdle),
		RefreshAbsolute:                    Duration(c.Tokens.RefreshAbsolute),
		RefreshTokenFormat:                 c.Tokens.RefreshTokenFormat,
		ServiceAccountRoles:                RoleMappingsOf(c.ServiceAccountRoles),
		DefaultScopes:                      c.EffectiveDefaultScopes(),
		LeanAccessTokens:                   c.LeanAccessTokens,
		DPoPBoundAccessTokens:              c.DPoPBoundAccessTokens,
		RequirePushedAuthorizationRequests: c.RequirePushedAuthorizationRequests,
		TokenExchangeAudiences:             c.TokenExchangeAudiences,
	}
	if c.Tokens.RefreshPreset != "service" {
		out.RefreshRetryWindow = &retry
	}
	return out
}

// UserOf is the representation of a stored user, without their password.
func UserOf(u storage.User) User {
	out := User{Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name,
		GivenName: u.GivenName, FamilyName: u.FamilyName, Disabled: u.Disabled}
	out.SetRoles(u.Roles)
	return out
}
