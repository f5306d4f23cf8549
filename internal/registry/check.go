package registry

import (
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// Preset is a pair of refresh-token lifetimes for a kind of client.
type Preset struct {
	Idle, Absolute time.Duration
}

// Presets are the refresh lifetimes per client type; "service" issues no refresh tokens.
var Presets = map[string]Preset{
	"web":     {Idle: 24 * time.Hour, Absolute: 14 * 24 * time.Hour},
	"mobile":  {Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour},
	"spa":     {Idle: time.Hour, Absolute: 24 * time.Hour},
	"service": {},
}

// Defaults of what a realm or client does not say.
const (
	DefaultSigningAlg         = "ES256"
	DefaultAccessTokenTTL     = 5 * time.Minute
	DefaultRefreshRetryWindow = 10 * time.Second
	// MaxAccessTokenTTL is the longest access-token lifetime allowed without
	// allow_long_access_tokens.
	MaxAccessTokenTTL = time.Hour
	maxRetryWindow    = time.Minute
)

var (
	// GrantTypes are the grant types a client may be registered for: internal/grants' table.
	GrantTypes   = grants.Types()
	signingAlgs  = []string{"ES256", "EdDSA", "RS256"}
	tokenFormats = []string{"jwt", "opaque"}
)

// Errors are the problems found in one entity, in field order.
type Errors []*Error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

type checker struct{ errs Errors }

func (c *checker) fail(msg string, path ...any) {
	c.errs = append(c.errs, &Error{Path: path, Msg: msg})
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// CheckRealm fills in the realm's defaults and checks it. It returns nil or Errors.
func CheckRealm(r *Realm) error {
	var c checker
	if err := ident.Realm(r.Name); err != nil {
		c.fail(fmt.Sprintf("realm name %q %v", r.Name, err), "name")
	}
	if r.SigningAlg == "" {
		r.SigningAlg = DefaultSigningAlg
	} else if !slices.Contains(signingAlgs, r.SigningAlg) {
		c.fail(fmt.Sprintf("unknown signing_alg %q (want one of %s)", r.SigningAlg, strings.Join(signingAlgs, ", ")), "signing_alg")
	}
	if r.AccessTokenTTL == 0 {
		r.AccessTokenTTL = Duration(DefaultAccessTokenTTL)
	}
	c.checkTTL(r.AccessTokenTTL, r.AllowLongAccessTokens, "access_token_ttl")
	return c.err()
}

// CheckUser normalises the user's username and email (trimmed, lower case) and
// checks them and the password. newUser says a password (or hash) is required.
func CheckUser(u *User, newUser bool) error {
	var c checker
	u.Username = strings.ToLower(strings.TrimSpace(u.Username))
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	if err := ident.Username(u.Username); err != nil {
		c.fail(fmt.Sprintf("username %q %v", u.Username, err), "username")
	}
	if u.Email != "" {
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
			c.fail(fmt.Sprintf("%q is not an email address", u.Email), "email")
		} else if err := ident.LoginName(u.Email); err != nil {
			c.fail(fmt.Sprintf("email %q %v: users sign in with it", u.Email, err), "email")
		}
	}
	for _, f := range []struct{ name, v string }{{"name", u.Name}, {"given_name", u.GivenName}, {"family_name", u.FamilyName}} {
		if len(f.v) > MaxPersonName {
			c.fail(fmt.Sprintf("%s has over %d bytes", f.name, MaxPersonName), f.name)
		}
	}
	c.checkMappings(u.roleMappings(), []any{"realm_roles"}, []any{"client_roles"})
	switch {
	case u.PasswordHash != "" && u.Password != "":
		c.fail("give password or password_hash, not both", "password_hash")
	case u.PasswordHash != "":
		if err := password.CheckHash(u.PasswordHash, password.Default); err != nil {
			c.fail(fmt.Sprintf("%v (want an argon2id PHC string, as `latchkey password hash` prints)", err), "password_hash")
		}
	case u.Password != "" || newUser:
		if msg := CheckPassword(u.Password); msg != "" {
			c.fail(msg, "password")
		}
	}
	return c.err()
}

// MaxPersonName bounds a user's name, given_name and family_name, in bytes.
const MaxPersonName = 255

// CheckPassword says what is wrong with a new password, or "".
func CheckPassword(p string) string {
	if len(p) < password.MinLen {
		return fmt.Sprintf("password must have at least %d characters", password.MinLen)
	}
	return ""
}

// known reports whether a grant type is offered.
func known(grantType string) bool {
	_, ok := grants.Lookup(grantType)
	return ok
}

// CheckClient fills in the client's defaults (format, refresh preset and
// lifetimes, retry window) and checks it. It returns nil or Errors.
func CheckClient(cl *Client) error {
	var c checker
	if err := ident.ClientID(cl.ID); err != nil {
		c.fail(fmt.Sprintf("client id %q %v", cl.ID, err), "id")
	}
	if len(cl.GrantTypes) == 0 {
		c.fail("grant_types must name at least one of "+strings.Join(grants.Types(), ", "), "grant_types")
	}
	for i, g := range cl.GrantTypes {
		switch {
		case g == "password" || g == "implicit":
			c.fail(fmt.Sprintf("grant type %q is not offered: OAuth 2.1 removed it", g), "grant_types", i)
		case !known(g):
			c.fail(fmt.Sprintf("unknown grant type %q (want %s)", g, strings.Join(grants.Types(), ", ")), "grant_types", i)
		}
	}
	if len(cl.JWKS) > 0 {
		var set jose.JSONWebKeySet
		switch err := json.Unmarshal(cl.JWKS, &set); {
		case err != nil:
			c.fail("jwks is not a JWK Set: "+err.Error(), "jwks")
		case len(set.Keys) == 0:
			c.fail("jwks has no usable keys", "jwks")
		case slices.ContainsFunc(set.Keys, func(k jose.JSONWebKey) bool { return !k.IsPublic() }):
			c.fail("jwks must hold public keys only: remove the private parts", "jwks")
		case cl.Secret != "":
			c.fail("give a client a secret or jwks, not both", "jwks")
		}
	}
	if cl.Secret != "" && len(cl.Secret) < clientsecret.MinLen {
		// The secret itself is never echoed.
		c.fail(fmt.Sprintf("client %q: secret must have at least %d characters (make one with: openssl rand -base64 32)", cl.ID, clientsecret.MinLen), "secret")
	}
	confidential := cl.Confidential()
	if cl.PKCEOptional && !confidential {
		c.fail("public clients must use PKCE: pkce_optional is for confidential clients", "pkce_optional")
	}
	if a := cl.IDTokenSignedResponseAlg; a != "" && !slices.Contains(signingAlgs, a) {
		c.fail(fmt.Sprintf("unknown id_token_signed_response_alg %q (want one of %s)", a, strings.Join(signingAlgs, ", ")), "id_token_signed_response_alg")
	}
	has := func(g string) bool { return slices.Contains(cl.GrantTypes, g) }
	// What each grant asks of its clients, from the grants' own table: one rule at a
	// time over the table, so the messages keep their order.
	for _, g := range grants.Specs() {
		if g.Confidential && has(g.Type) && !confidential {
			c.fail(g.Type+" needs a confidential client: give it a secret or jwks", "grant_types")
		}
	}
	for _, g := range grants.Specs() {
		if req := g.RequiresAny(); len(req) > 0 && has(g.Type) && !slices.ContainsFunc(req, has) {
			c.fail(g.Type+" needs "+strings.Join(req, " or ")+": "+g.RequiresWhy, "grant_types")
		}
	}
	for _, g := range grants.Specs() {
		if g.RedirectURIs && has(g.Type) && len(cl.RedirectURIs) == 0 {
			c.fail(g.Type+" needs at least one redirect URI", "redirect_uris")
		}
	}
	for i, u := range cl.RedirectURIs {
		if msg := checkURI(u); msg != "" {
			c.fail(msg, "redirect_uris", i)
		}
	}
	for i, u := range cl.PostLogoutRedirectURIs {
		if msg := checkURI(u); msg != "" {
			c.fail(msg, "post_logout_redirect_uris", i)
		}
	}
	if cl.BackchannelLogoutURI != "" {
		if msg := checkBackchannelURI(cl.BackchannelLogoutURI); msg != "" {
			c.fail(msg, "backchannel_logout_uri")
		}
	} else if cl.BackchannelLogoutSessionRequired {
		c.fail("backchannel_logout_session_required needs a backchannel_logout_uri", "backchannel_logout_session_required")
	}
	for i, o := range cl.WebOrigins {
		if msg := checkWebOrigin(o); msg != "" {
			c.fail(msg, "web_origins", i)
		}
	}
	for i, u := range cl.Audiences {
		if msg := checkURI(u); msg != "" {
			c.fail(msg, "audiences", i)
		}
	}
	for i, s := range cl.Scopes {
		if !token.IsScopeToken(s) {
			c.fail(fmt.Sprintf("%q is not a scope token (RFC 6749 §3.3: no spaces, quotes or backslashes)", s), "scopes", i)
		}
	}
	if cl.AccessTokenTTL != 0 {
		c.checkTTL(cl.AccessTokenTTL, cl.AllowLongAccessTokens, "access_token_ttl")
	}
	if cl.AccessTokenFormat == "" {
		cl.AccessTokenFormat = "jwt"
	} else if !slices.Contains(tokenFormats, cl.AccessTokenFormat) {
		c.fail(fmt.Sprintf("unknown access_token_format %q (want jwt or opaque)", cl.AccessTokenFormat), "access_token_format")
	}
	if cl.RefreshTokenFormat == "" {
		cl.RefreshTokenFormat = "opaque"
	} else if !slices.Contains(tokenFormats, cl.RefreshTokenFormat) {
		c.fail(fmt.Sprintf("unknown refresh_token_format %q (want opaque or jwt)", cl.RefreshTokenFormat), "refresh_token_format")
	}
	if cl.RefreshPreset == "" && has(grants.DeviceCodeType) && has(grants.RefreshTokenType) {
		cl.RefreshPreset = "mobile" // a device keeps its sign-in as a mobile app does (RFC 8628)
	}
	c.checkRefresh(cl, has("refresh_token"), confidential)
	if len(cl.DefaultScopes) == 0 {
		cl.DefaultScopes = storage.Client{}.EffectiveDefaultScopes()
	}
	for i, s := range cl.DefaultScopes {
		if !token.IsScopeToken(s) {
			c.fail(fmt.Sprintf("%q is not a scope token (RFC 6749 §3.3: no spaces, quotes or backslashes)", s), "default_scopes", i)
		}
	}
	c.checkMappings(cl.ServiceAccountRoles, []any{"service_account_roles", "realm"}, []any{"service_account_roles", "client"})
	// RFC 9126 §6: a client that must push its requests uses the authorization
	// endpoint, which only the authorization_code grant does.
	if cl.RequirePushedAuthorizationRequests && !has(grants.AuthorizationCodeType) {
		c.fail("require_pushed_authorization_requests is about authorization requests: add the authorization_code grant or drop it", "require_pushed_authorization_requests")
	}
	c.checkExchangeAudiences(cl.TokenExchangeAudiences, has(grants.TokenExchangeType))
	if !cl.ServiceAccountRoles.IsZero() && !has("client_credentials") {
		c.fail("service_account_roles are the roles of client_credentials tokens: add that grant or drop them", "service_account_roles")
	}
	return c.err()
}

// Bounds of token_exchange_audiences: each value is compared with the audience
// and resource parameters of a token request, whose values are bounded too.
const (
	MaxTokenExchangeAudiences     = 100
	MaxTokenExchangeAudienceBytes = 1024
)

// checkExchangeAudiences checks the audiences a client may ask for in a token
// exchange (RFC 8693 §2.1): only for a client with the token-exchange grant,
// each one non-empty, bounded, without spaces or control characters (RFC 8693
// §2.1 audience values are client IDs or URIs, neither of which has them), and
// listed once.
func (c *checker) checkExchangeAudiences(auds []string, exchange bool) {
	if len(auds) > 0 && !exchange {
		c.fail("token_exchange_audiences are for token exchange: add the "+grants.TokenExchangeType+" grant or drop them", "token_exchange_audiences")
		return
	}
	if len(auds) > MaxTokenExchangeAudiences {
		c.fail(fmt.Sprintf("token_exchange_audiences has %d entries; at most %d", len(auds), MaxTokenExchangeAudiences), "token_exchange_audiences")
		return
	}
	for i, a := range auds {
		switch {
		case a == "":
			c.fail("an audience must not be empty", "token_exchange_audiences", i)
		case len(a) > MaxTokenExchangeAudienceBytes:
			c.fail(fmt.Sprintf("an audience has at most %d bytes", MaxTokenExchangeAudienceBytes), "token_exchange_audiences", i)
		case strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == 0x7f || r == utf8.RuneError }):
			c.fail(fmt.Sprintf("%q must not hold spaces or control characters (a client ID or a URI)", a), "token_exchange_audiences", i)
		case slices.Contains(auds[:i], a):
			c.fail(fmt.Sprintf("%q is listed twice", a), "token_exchange_audiences", i)
		}
	}
}

func (c *checker) checkRefresh(cl *Client, refresh, confidential bool) {
	if cl.RefreshPreset == "" {
		switch {
		case !refresh:
			cl.RefreshPreset = "service"
		case slices.Contains(cl.GrantTypes, grants.DeviceCodeType):
			// Devices keep their grant as long as mobile apps do (issue 14).
			cl.RefreshPreset = "mobile"
		case !confidential:
			cl.RefreshPreset = "spa"
		default:
			cl.RefreshPreset = "web"
		}
	}
	preset, ok := Presets[cl.RefreshPreset]
	switch {
	case !ok:
		c.fail(fmt.Sprintf("unknown refresh_preset %q (want web, mobile, spa or service)", cl.RefreshPreset), "refresh_preset")
		return
	case cl.RefreshPreset == "service" && refresh:
		c.fail("the service preset issues no refresh tokens: drop refresh_token or pick web, mobile or spa", "refresh_preset")
	}
	if cl.RefreshPreset == "service" {
		if cl.RefreshIdle != 0 || cl.RefreshAbsolute != 0 {
			c.fail("refresh lifetimes make no sense without the refresh_token grant", "refresh_idle")
		}
		return
	}
	if cl.RefreshIdle == 0 {
		cl.RefreshIdle = Duration(preset.Idle)
	}
	if cl.RefreshAbsolute == 0 {
		cl.RefreshAbsolute = Duration(preset.Absolute)
	}
	switch {
	case cl.RefreshIdle < 0:
		c.fail("refresh_idle must be positive", "refresh_idle")
	case cl.RefreshAbsolute < 0:
		c.fail("refresh_absolute must be positive", "refresh_absolute")
	case cl.RefreshIdle > cl.RefreshAbsolute:
		c.fail(fmt.Sprintf("refresh_idle %v is longer than refresh_absolute %v", time.Duration(cl.RefreshIdle), time.Duration(cl.RefreshAbsolute)), "refresh_idle")
	}
	if cl.RefreshRetryWindow == nil {
		d := Duration(DefaultRefreshRetryWindow)
		cl.RefreshRetryWindow = &d
	} else if *cl.RefreshRetryWindow < 0 || *cl.RefreshRetryWindow > Duration(maxRetryWindow) {
		c.fail(fmt.Sprintf("refresh_retry_window must be between 0s (off) and %v", maxRetryWindow), "refresh_retry_window")
	}
}

func (c *checker) checkTTL(d Duration, allowLong bool, path ...any) {
	switch {
	case d <= 0:
		c.fail("access_token_ttl must be positive", path...)
	case time.Duration(d) > MaxAccessTokenTTL && !allowLong:
		c.fail(fmt.Sprintf("access_token_ttl %v is over %v; access tokens should be short-lived (set allow_long_access_tokens: true to force it)", time.Duration(d), MaxAccessTokenTTL), path...)
	}
}

// checkURI returns what is wrong with a registered URI, or "".
func checkURI(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs():
		return fmt.Sprintf("%q is not an absolute URI", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("%q must not have a fragment (RFC 6749 §3.1.2)", s)
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		return fmt.Sprintf("%q has no host", s)
	}
	return ""
}

// checkWebOrigin returns what is wrong with a web origin, or "". An origin is
// compared, as a string, with the Origin header a browser sends (RFC 6454 §6.1:
// lower-case scheme and host, no default port, no path), so one written any
// other way could never match and is refused rather than silently useless. "*"
// is refused: the endpoints allow credentials, and the Fetch standard forbids
// a wildcard with them; allowing every origin would be a CSRF hole anyway.
func checkWebOrigin(s string) string {
	if s == "+" {
		return ""
	}
	if s == "*" {
		return `"*" is not allowed: these endpoints allow credentials, so list each origin (or "+" for the redirect URIs' origins)`
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Sprintf("%q is not an origin (want scheme://host[:port], e.g. https://app.example.com)", s)
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "?#") || u.Opaque != "":
		return fmt.Sprintf("%q is not an origin: drop everything after the host and port", s)
	case u.Port() == map[string]string{"http": "80", "https": "443"}[u.Scheme]:
		return fmt.Sprintf("%q names the default port: browsers send the origin without it", s)
	case s != u.Scheme+"://"+u.Host || s != strings.ToLower(s):
		return fmt.Sprintf("%q must be written in lower case, as browsers send it", s)
	}
	return ""
}

// checkBackchannelURI returns what is wrong with a back-channel logout URI, or
// "". Latchkey POSTs logout tokens there itself, so it must be https, or plain
// http to a loopback address (allowed in dev mode only: see CheckPlainHTTP), and
// carry no fragment (Back-Channel Logout 1.0 §2.2).
func checkBackchannelURI(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return fmt.Sprintf("%q is not an absolute http(s) URI", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("%q must not have a fragment", s)
	case u.User != nil:
		return fmt.Sprintf("%q must not carry credentials", s)
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return ""
	case u.Scheme == "http":
		return fmt.Sprintf("%q must be https (plain http only to a loopback address, in dev mode)", s)
	}
	return fmt.Sprintf("%q must be an https URI", s)
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckPlainHTTP refuses a plain-http backchannel_logout_uri unless allowed: a
// server in dev mode, or given the insecure-http setting, allows it (to a
// loopback address, which CheckClient ensures). It returns nil or Errors.
func CheckPlainHTTP(cl *Client, allowed bool) error {
	var c checker
	if !allowed && strings.HasPrefix(strings.ToLower(cl.BackchannelLogoutURI), "http:") {
		c.fail(fmt.Sprintf("%q is plain http: allowed only in dev mode (or with --insecure-http); use https", cl.BackchannelLogoutURI), "backchannel_logout_uri")
	}
	return c.err()
}
