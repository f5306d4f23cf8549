package kcimport

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// Problem is one thing of the export that is not imported, or not as it was:
// where it is (a JSON path into the export) and what became of it.
type Problem struct {
	Path string
	Msg  string
}

// String is the problem on one line: control characters from the export are
// replaced, so a name cannot forge a line of its own.
func (p Problem) String() string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return unicode.ReplacementChar
		}
		return r
	}, p.Path+": "+p.Msg)
}

// RoleRef names a role: a realm role when ClientID is empty, else a role of that
// client.
type RoleRef = storage.RoleRef

// Role is a realm role (ClientID "") or a client role; Realm and the times are
// set when the seed is made.
type Role = storage.Role

// Client is a client as it is imported: the registry's client, checked and with
// its defaults, plus its roles' part.
type Client struct {
	registry.Client
	ServiceAccountRoles []RoleRef
	DefaultScopes       []string
}

// User is a user as it is imported. registry.User is checked without a password:
// PasswordHash holds the imported hash (a PHC string password.CheckImported
// accepts), or "" when the user has none Latchkey can verify.
type User struct {
	registry.User
	ID           string // Keycloak's ID, kept so the sub claim stays the same; "" for a new one
	index        int    // in the export's users
	PasswordHash string
	GivenName    string
	FamilyName   string
	Roles        []RoleRef
}

// Result is what the export translates to.
type Result struct {
	Realm    registry.Realm
	Roles    []Role
	Clients  []Client
	Users    []User
	Problems []Problem
}

// builtinClients are the clients every Keycloak realm has, for Keycloak's own
// consoles and APIs: nothing to import.
var builtinClients = []string{"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}

// Client scopes: those whose meaning Latchkey has (kept as scopes a client may
// ask for), those Latchkey does by itself (dropped quietly), and Keycloak's
// other built-in ones (listed: Latchkey issues no claims for them).
var (
	keptScopes     = []string{"profile", "email", "roles", "offline_access"}
	implicitScopes = []string{"web-origins", "basic", "role_list", "saml_organization"}
	builtinScopes  = []string{"acr", "address", "phone", "microprofile-jwt", "organization", "service_account"}
)

// Translate makes the seed's part of an export. It fails only when the realm
// itself cannot be imported; everything else it cannot keep is a Problem.
func Translate(e *Export) (*Result, error) {
	t := &translation{e: e, res: &Result{}, emails: map[string]string{}}
	if err := t.realm(); err != nil {
		return nil, err
	}
	t.realmExtras()
	t.clients()
	t.roles()
	t.users()
	return t.res, nil
}

type translation struct {
	e   *Export
	res *Result
	// imported holds the IDs of the clients imported; roles are kept only of
	// those. realmRoles are the realm roles' names.
	imported   map[string]bool
	realmRoles map[string]bool
	clientRole map[RoleRef]bool
	// serviceAccount maps a client ID to the index of its Client in res.Clients.
	clientIndex map[string]int
	emails      map[string]string
	// scopeNotes remembers the scopes already listed, to list each once.
	scopeNotes map[string]bool
}

func (t *translation) problem(msg string, path ...any) {
	t.res.Problems = append(t.res.Problems, Problem{Path: jsonPath(path...), Msg: msg})
}

// jsonPath renders keys and indexes as a JSONPath into the export:
// clients[2].attributes["post.logout.redirect.uris"][1].
func jsonPath(path ...any) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		case string:
			if isPlainKey(p) {
				b.WriteString("." + p)
			} else {
				k, _ := json.Marshal(p)
				fmt.Fprintf(&b, "[%s]", k)
			}
		}
	}
	return b.String()
}

func isPlainKey(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func (t *translation) realm() error {
	e := t.e
	r := registry.Realm{Name: e.Realm, DisplayName: e.DisplayName}
	if s := seconds(e.AccessTokenLifespan); s > 0 {
		if s <= registry.MaxAccessTokenTTL {
			r.AccessTokenTTL = registry.Duration(s)
		} else {
			t.problem(fmt.Sprintf("%v is over Latchkey's %v limit for access tokens: the realm gets the default %v", s, registry.MaxAccessTokenTTL, registry.DefaultAccessTokenTTL), "accessTokenLifespan")
		}
	}
	switch a := e.DefaultSignatureAlg; a {
	case "":
		// Keycloak's default is RS256; relying parties may have pinned it.
		r.SigningAlg = "RS256"
	case "ES256", "EdDSA", "RS256":
		r.SigningAlg = a
	default:
		t.problem(fmt.Sprintf("signature algorithm %s is not offered: the realm signs with RS256", a), "defaultSignatureAlgorithm")
		r.SigningAlg = "RS256"
	}
	if err := registry.CheckRealm(&r); err != nil {
		return fmt.Errorf("realm %q cannot be imported: %w", e.Realm, err)
	}
	t.res.Realm = r
	return nil
}

// realmExtras lists what the realm has that Latchkey does not import.
func (t *translation) realmExtras() {
	e := t.e
	if e.Enabled != nil && !*e.Enabled {
		t.problem("the realm is disabled in Keycloak; the Latchkey realm serves as soon as it is imported", "enabled")
	}
	for i, idp := range e.IdentityProviders {
		t.problem(fmt.Sprintf("identity provider %q (%s) is not imported: Latchkey does not broker other identity providers", idp.label(), idp.ProviderID), "identityProviders", i)
	}
	for _, kind := range sortedKeys(e.Components) {
		for i, c := range e.Components[kind] {
			switch kind {
			case "org.keycloak.storage.UserStorageProvider":
				t.problem(fmt.Sprintf("user federation %q (%s) is not imported: its users are not in the export and cannot sign in", c.label(), c.ProviderID), "components", kind, i)
			case "org.keycloak.keys.KeyProvider":
				if i == 0 {
					t.problem("signing keys are not imported: Latchkey signs with its own, so tokens Keycloak issued do not verify against the realm", "components", kind)
				}
			}
		}
	}
	for i, f := range e.AuthenticationFlows {
		if !f.BuiltIn && f.TopLevel {
			t.problem(fmt.Sprintf("custom authentication flow %q is not imported", f.Alias), "authenticationFlows", i)
		}
	}
	for i, o := range e.Organizations {
		t.problem(fmt.Sprintf("organization %q is not imported", o.label()), "organizations", i)
	}
	if len(e.Groups) > 0 {
		t.problem(fmt.Sprintf("%d groups are not kept: each member gets its groups' roles directly", countGroups(e.Groups)), "groups")
	}
	if e.OfflineSessionIdle > 0 {
		t.problem("offline session lifetimes are not imported: refresh tokens, offline ones too, follow each client's refresh_idle and refresh_absolute (from ssoSessionIdleTimeout and ssoSessionMaxLifespan)", "offlineSessionIdleTimeout")
	}
	if e.RegistrationAllowed {
		t.problem("self-registration is not offered", "registrationAllowed")
	}
	if e.PasswordPolicy != "" {
		t.problem(fmt.Sprintf("password policy %q is not imported: Latchkey asks for %d characters at least", e.PasswordPolicy, password.MinLen), "passwordPolicy")
	}
	if len(e.SMTPServer) > 0 {
		t.problem("email server settings are not imported", "smtpServer")
	}
	for i, s := range e.ClientScopes {
		if s.Protocol == "saml" || slices.Contains(keptScopes, s.Name) || slices.Contains(implicitScopes, s.Name) || slices.Contains(builtinScopes, s.Name) {
			continue
		}
		for j, m := range s.ProtocolMappers {
			t.problem(fmt.Sprintf("protocol mapper %q (%s) of client scope %q is not imported: the scope is kept as a plain scope, without the claims it adds", m.label(), m.kind(), s.Name), "clientScopes", i, "protocolMappers", j)
		}
	}
}

func (t *translation) clients() {
	t.imported, t.clientIndex, t.scopeNotes = map[string]bool{}, map[string]int{}, map[string]bool{}
	for i, kc := range t.e.Clients {
		if slices.Contains(builtinClients, kc.ClientID) {
			continue
		}
		if t.imported[kc.ClientID] {
			t.problem(fmt.Sprintf("a second client %q is not imported", kc.ClientID), "clients", i)
			continue
		}
		if c, ok := t.client(i, kc); ok {
			t.imported[c.ID] = true
			t.clientIndex[c.ID] = len(t.res.Clients)
			t.res.Clients = append(t.res.Clients, c)
		}
	}
}

// client translates one client; ok is false when it is not imported (its
// problems say why).
func (t *translation) client(i int, kc ClientRep) (Client, bool) {
	at := func(path ...any) []any { return append([]any{"clients", i}, path...) }
	name := fmt.Sprintf("client %q", kc.ClientID)
	if kc.Protocol == "saml" {
		t.problem(name+" is a SAML client: not imported (Latchkey speaks OpenID Connect only)", at()...)
		return Client{}, false
	}
	attr := func(k string) string { return kc.Attributes[k] }
	c := Client{Client: registry.Client{ID: kc.ClientID, Name: kc.Name, Disabled: kc.Enabled != nil && !*kc.Enabled,
		ThirdParty: kc.ConsentRequired}}

	// Flows.
	standard := kc.StandardFlowEnabled == nil || *kc.StandardFlowEnabled
	if standard {
		c.GrantTypes = append(c.GrantTypes, "authorization_code")
		if attr("use.refresh.tokens") != "false" {
			c.GrantTypes = append(c.GrantTypes, "refresh_token")
		}
	}
	if kc.ServiceAccountsEnabled {
		c.GrantTypes = append(c.GrantTypes, "client_credentials")
	}
	if kc.ImplicitFlowEnabled {
		t.problem(name+": the implicit flow is not offered (OAuth 2.1 removed it)", at("implicitFlowEnabled")...)
	}
	if kc.DirectAccessGrantsEnabled {
		t.problem(name+": direct access grants (the password grant) are not offered (OAuth 2.1 removed them)", at("directAccessGrantsEnabled")...)
	}
	if attr("oauth2.device.authorization.grant.enabled") == "true" {
		c.GrantTypes = append(c.GrantTypes, grants.DeviceCodeType)
		if attr("use.refresh.tokens") != "false" && !slices.Contains(c.GrantTypes, "refresh_token") {
			c.GrantTypes = append(c.GrantTypes, "refresh_token")
		}
	}
	if attr("standard.token.exchange.enabled") == "true" {
		if kc.PublicClient {
			t.problem(name+": token exchange is not offered to public clients (RFC 8693 clients authenticate)", at("attributes", "standard.token.exchange.enabled")...)
		} else {
			// Keycloak's standard token exchange targets clients of the realm; Latchkey
			// lists them per client (token_exchange_audiences). With none listed the
			// client may exchange for tokens aimed at itself only.
			c.GrantTypes = append(c.GrantTypes, grants.TokenExchangeType)
			t.problem(name+": token exchange imported without audiences: set token_exchange_audiences for the clients it may exchange for", at("attributes", "standard.token.exchange.enabled")...)
		}
	}
	if attr("oidc.ciba.grant.enabled") == "true" {
		t.problem(name+": CIBA is not offered", at("attributes", "oidc.ciba.grant.enabled")...)
	}
	// RFC 9449 §5.2 and RFC 9126 §6, as Keycloak's client attributes name them.
	c.DPoPBoundAccessTokens = attr("dpop.bound.access.tokens") == "true"
	c.RequirePushedAuthorizationRequests = standard && attr("require.pushed.authorization.requests") == "true"
	if kc.AuthorizationServices {
		t.problem(name+": authorization services (policies, permissions, UMA) are not imported", at("authorizationServicesEnabled")...)
	}

	// Credentials.
	if !kc.PublicClient {
		if !t.credentials(&c, kc, at) {
			return Client{}, false
		}
	}
	c.RedirectURIs = t.redirectURIs(kc, at)
	if standard && len(c.RedirectURIs) == 0 && !kc.BearerOnly {
		// Only wildcards (or nothing): the flow cannot work until someone lists
		// the exact URIs; the client may still be kept for its other flows or roles.
		t.problem(name+": no exact redirect URI: the authorization code flow is not imported (list its redirect URIs through the admin API)", at("redirectUris")...)
		c.GrantTypes = slices.DeleteFunc(c.GrantTypes, func(g string) bool { return g == "authorization_code" || g == "refresh_token" })
		standard = false
	}
	if kc.BearerOnly || len(c.GrantTypes) == 0 {
		// A client with no flow is a resource server in Keycloak: it exists for
		// its roles and as an audience. It is imported disabled, so its roles
		// stay, and no token is ever issued to it.
		if !c.Confidential() {
			t.problem(name+" has no flow Latchkey offers and no credentials: not imported", at()...)
			return Client{}, false
		}
		t.problem(name+" has no flow Latchkey can offer (bearer-only, or no exact redirect URI): imported disabled, for its roles", at()...)
		c.GrantTypes, c.Disabled = []string{"client_credentials"}, true
	}

	// URIs.
	if v := attr("post.logout.redirect.uris"); v != "" {
		for j, u := range strings.Split(v, "##") {
			switch {
			case u == "+":
				c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, c.RedirectURIs...)
			case strings.Contains(u, "*"):
				t.problem(fmt.Sprintf("%s: wildcard post-logout redirect URI %q is not imported: Latchkey matches URIs exactly", name, u), at("attributes", "post.logout.redirect.uris", j)...)
			default:
				c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, u)
			}
		}
	}
	for j, o := range kc.WebOrigins {
		if o == "*" {
			t.problem(name+`: web origin "*" is not imported: list each origin, or "+"`, at("webOrigins", j)...)
			continue
		}
		c.WebOrigins = append(c.WebOrigins, strings.TrimSuffix(o, "/"))
	}
	if len(kc.WebOrigins) == 0 && standard {
		// Latchkey has no way to say "none": unset means "+".
		t.problem(name+`: no web origins: Keycloak allowed no cross-origin calls, Latchkey allows the redirect URIs' origins ("+")`, at("webOrigins")...)
	}
	if u := attr("backchannel.logout.url"); u != "" {
		c.BackchannelLogoutURI = u
		c.BackchannelLogoutSessionRequired = attr("backchannel.logout.session.required") == "true"
	}
	if kc.FrontchannelLogout && attr("frontchannel.logout.url") != "" {
		t.problem(name+": front-channel logout is not offered", at("attributes", "frontchannel.logout.url")...)
	}

	// Tokens.
	if s := seconds(atoi(attr("access.token.lifespan"))); s > 0 {
		if s <= registry.MaxAccessTokenTTL {
			c.AccessTokenTTL = registry.Duration(s)
		} else {
			t.problem(fmt.Sprintf("%s: access token lifespan %v is over Latchkey's %v limit: the realm's applies", name, s, registry.MaxAccessTokenTTL), at("attributes", "access.token.lifespan")...)
		}
	}
	if slices.Contains(c.GrantTypes, "refresh_token") {
		// Keycloak's refresh tokens are JWTs, and keycloak-js decodes them.
		c.RefreshTokenFormat = "jwt"
		idle := seconds(firstPositive(atoi(attr("client.session.idle.timeout")), t.e.SSOSessionIdleTimeout))
		max := seconds(firstPositive(atoi(attr("client.session.max.lifespan")), t.e.SSOSessionMaxLifespan))
		if idle > 0 && max >= idle {
			c.RefreshIdle, c.RefreshAbsolute = registry.Duration(idle), registry.Duration(max)
		}
	}
	if a := attr("id.token.signed.response.alg"); a != "" {
		if slices.Contains([]string{"ES256", "EdDSA", "RS256"}, a) {
			c.IDTokenSignedResponseAlg = a
		} else {
			t.problem(fmt.Sprintf("%s: ID token algorithm %s is not offered: the default applies", name, a), at("attributes", "id.token.signed.response.alg")...)
		}
	}
	switch pkce := attr("pkce.code.challenge.method"); {
	case pkce == "S256":
	case pkce == "plain":
		t.problem(name+": PKCE method plain is not offered: the client must use S256", at("attributes", "pkce.code.challenge.method")...)
	case c.Confidential() && standard:
		// Keycloak asks no PKCE of a client unless told to; Latchkey asks it of
		// every client unless told not to, which a confidential client may be.
		c.PKCEOptional = true
	case standard:
		t.problem(name+": Keycloak did not require PKCE of this public client; Latchkey does (S256)", at("attributes", "pkce.code.challenge.method")...)
	}
	for j, m := range kc.ProtocolMappers {
		t.problem(fmt.Sprintf("%s: protocol mapper %q (%s) is not imported", name, m.label(), m.kind()), at("protocolMappers", j)...)
	}
	if kc.FullScopeAllowed != nil && !*kc.FullScopeAllowed && standard {
		t.problem(name+": role scope mappings (full scope disallowed) are not imported: its tokens carry all the user's roles", at("fullScopeAllowed")...)
	}
	t.scopes(&c, kc, at)
	return t.check(c, at)
}

// credentials sets the confidential client's secret or keys; false when it has
// none Latchkey can take.
func (t *translation) credentials(c *Client, kc ClientRep, at func(...any) []any) bool {
	name := fmt.Sprintf("client %q", kc.ClientID)
	switch kc.ClientAuthenticatorType {
	case "", "client-secret", "client-secret-jwt":
	case "client-jwt":
		if kc.Attributes["use.jwks.string"] == "true" && kc.Attributes["jwks.string"] != "" {
			c.JWKS = registry.JWKS(kc.Attributes["jwks.string"])
			return true
		}
		t.problem(name+": signed-JWT client authentication with a JWKS URL or a certificate is not imported (give its public keys as jwks through the admin API)", at("clientAuthenticatorType")...)
		return false
	default:
		t.problem(fmt.Sprintf("%s: client authentication %q is not offered: not imported", name, kc.ClientAuthenticatorType), at("clientAuthenticatorType")...)
		return false
	}
	switch s := kc.Secret; {
	case s == "" || strings.Trim(s, "*") == "":
		t.problem(name+": the export holds no secret for this confidential client (a partial export masks them; use kc.sh export): not imported", at("secret")...)
		return false
	case len(s) < clientsecret.MinLen:
		// Making a new secret here would break the client silently: it is left to
		// the operator, who must hand the new secret to the client anyway.
		t.problem(fmt.Sprintf("%s: its secret has %d characters, Latchkey wants %d at least: not imported (regenerate the secret in Keycloak and export again, or create the client through the admin API)", name, len(s), clientsecret.MinLen), at("secret")...)
		return false
	}
	c.Secret = kc.Secret
	if kc.ClientAuthenticatorType == "client-secret-jwt" {
		t.problem(name+": client_secret_jwt is not offered: the client must send its secret with client_secret_basic or client_secret_post", at("clientAuthenticatorType")...)
	}
	return true
}

// redirectURIs are the client's exact redirect URIs: relative ones resolved
// against rootUrl as Keycloak does, wildcards listed.
func (t *translation) redirectURIs(kc ClientRep, at func(...any) []any) []string {
	var out []string
	root := strings.TrimSuffix(kc.RootURL, "/")
	for j, u := range kc.RedirectURIs {
		if strings.HasPrefix(u, "/") && root != "" && !strings.Contains(root, "${") {
			u = root + u
		}
		if strings.Contains(u, "*") {
			t.problem(fmt.Sprintf("client %q: wildcard redirect URI %q is not imported: Latchkey matches redirect URIs exactly (RFC 9700 §2.1); list each one", kc.ClientID, u), at("redirectUris", j)...)
			continue
		}
		out = append(out, u)
	}
	return out
}

// scopes sets the scopes the client may ask for and its default ones, from its
// default and optional client scopes (or the realm's, when it names none).
func (t *translation) scopes(c *Client, kc ClientRep, at func(...any) []any) {
	def, opt := kc.DefaultClientScopes, kc.OptionalClientScopes
	defPath, optPath := "defaultClientScopes", "optionalClientScopes"
	if def == nil && opt == nil {
		def, opt = t.e.DefaultDefaultScopes, t.e.DefaultOptionalScopes
	}
	c.Scopes = []string{"openid"}
	add := func(list []string, path string, isDefault bool) {
		for j, s := range list {
			switch {
			case slices.Contains(implicitScopes, s):
				continue
			case slices.Contains(builtinScopes, s):
				if !t.scopeNotes[s] {
					t.scopeNotes[s] = true
					t.problem(fmt.Sprintf("client scope %q is not offered: Latchkey issues no claims for it (listed once; other clients name it too)", s), at(path, j)...)
				}
				continue
			case !slices.Contains(keptScopes, s) && !t.customScope(s):
				t.problem(fmt.Sprintf("client %q: client scope %q is not in the export's clientScopes: not offered", kc.ClientID, s), at(path, j)...)
				continue
			}
			if !slices.Contains(c.Scopes, s) {
				c.Scopes = append(c.Scopes, s)
			}
			if isDefault && s != "offline_access" && !slices.Contains(c.DefaultScopes, s) {
				c.DefaultScopes = append(c.DefaultScopes, s)
			}
		}
	}
	add(def, defPath, true)
	add(opt, optPath, false)
}

// customScope says whether the realm defines an OpenID Connect client scope of
// that name which is a scope token.
func (t *translation) customScope(name string) bool {
	for _, s := range t.e.ClientScopes {
		if s.Name == name && s.Protocol != "saml" && !strings.ContainsAny(name, " \"\\") {
			return true
		}
	}
	return false
}

// check runs the registry's checks on the client, the ones the seed file and the
// admin API run; an entry of a list that fails them is dropped (and listed), and
// any other failure leaves the client out.
func (t *translation) check(c Client, at func(...any) []any) (Client, bool) {
	name := fmt.Sprintf("client %q", c.ID)
	for range 2 {
		cl := c.Client
		err := registry.CheckClient(&cl)
		if err == nil && registry.CheckPlainHTTP(&cl, false) != nil {
			// Allowed on a dev server only; the import does not know where it goes.
			t.problem(fmt.Sprintf("%s: plain-http back-channel logout URI %q is not imported: use https", name, cl.BackchannelLogoutURI), at("attributes", "backchannel.logout.url")...)
			cl.BackchannelLogoutURI, cl.BackchannelLogoutSessionRequired = "", false
		}
		if err == nil {
			c.Client = cl
			return c, true
		}
		var errs registry.Errors
		if !errors.As(err, &errs) {
			t.problem(fmt.Sprintf("%s is not imported: %v", name, err), at()...)
			return Client{}, false
		}
		drop := map[string]map[int]bool{}
		var fatal []string
		for _, fe := range errs {
			if len(fe.Path) == 2 {
				field, _ := fe.Path[0].(string)
				j, isIndex := fe.Path[1].(int)
				if src := listSource[field]; src != nil && isIndex {
					if drop[field] == nil {
						drop[field] = map[int]bool{}
					}
					drop[field][j] = true
					t.problem(fmt.Sprintf("%s: %s: not imported", name, fe.Msg), at(src...)...)
					continue
				}
			}
			fatal = append(fatal, fe.Error())
		}
		if len(fatal) > 0 {
			t.problem(fmt.Sprintf("%s is not imported: %s", name, strings.Join(fatal, "; ")), at()...)
			return Client{}, false
		}
		c.RedirectURIs = without(c.RedirectURIs, drop["redirect_uris"])
		c.PostLogoutRedirectURIs = without(c.PostLogoutRedirectURIs, drop["post_logout_redirect_uris"])
		c.WebOrigins = without(c.WebOrigins, drop["web_origins"])
	}
	t.problem(name+" is not imported: it fails the registry's checks", at()...)
	return Client{}, false
}

// listSource maps the registry's list fields to the export's.
var listSource = map[string][]any{
	"redirect_uris":             {"redirectUris"},
	"post_logout_redirect_uris": {"attributes", "post.logout.redirect.uris"},
	"web_origins":               {"webOrigins"},
}

func without(list []string, drop map[int]bool) []string {
	var out []string
	for i, s := range list {
		if !drop[i] {
			out = append(out, s)
		}
	}
	return out
}

// roles imports the realm roles and the roles of the clients imported.
func (t *translation) roles() {
	e := t.e
	t.realmRoles, t.clientRole = map[string]bool{}, map[RoleRef]bool{}
	for _, r := range e.Roles.Realm {
		t.realmRoles[r.Name] = true
	}
	for _, id := range sortedKeys(e.Roles.Client) {
		if !t.imported[id] {
			continue
		}
		for _, r := range e.Roles.Client[id] {
			t.clientRole[RoleRef{ClientID: id, Name: r.Name}] = true
		}
	}
	for i, r := range e.Roles.Realm {
		if msg := checkRoleName(r.Name); msg != "" {
			t.problem(msg+": not imported", "roles", "realm", i)
			delete(t.realmRoles, r.Name)
			continue
		}
		if slices.ContainsFunc(t.res.Roles, func(o Role) bool { return o.ClientID == "" && o.Name == r.Name }) {
			t.problem(fmt.Sprintf("a second realm role %q is not imported", r.Name), "roles", "realm", i)
			continue
		}
		t.res.Roles = append(t.res.Roles, Role{Name: r.Name, Description: r.Description,
			Composites: t.refs(r.Composites, fmt.Sprintf("role %q", r.Name), "roles", "realm", i, "composites")})
	}
	for _, id := range sortedKeys(e.Roles.Client) {
		switch {
		case slices.Contains(builtinClients, id):
			continue // Keycloak's own permissions (manage-users, view-profile, ...)
		case !t.imported[id]:
			if len(e.Roles.Client[id]) > 0 {
				t.problem(fmt.Sprintf("the %d roles of client %q are not imported: the client is not", len(e.Roles.Client[id]), id), "roles", "client", id)
			}
			continue
		}
		for i, r := range e.Roles.Client[id] {
			if msg := checkRoleName(r.Name); msg != "" {
				t.problem(msg+": not imported", "roles", "client", id, i)
				delete(t.clientRole, RoleRef{ClientID: id, Name: r.Name})
				continue
			}
			if slices.ContainsFunc(t.res.Roles, func(o Role) bool { return o.ClientID == id && o.Name == r.Name }) {
				t.problem(fmt.Sprintf("a second role %q of client %q is not imported", r.Name, id), "roles", "client", id, i)
				continue
			}
			t.res.Roles = append(t.res.Roles, Role{ClientID: id, Name: r.Name, Description: r.Description,
				Composites: t.refs(r.Composites, fmt.Sprintf("role %q of client %q", r.Name, id), "roles", "client", id, i, "composites")})
		}
	}
}

// checkRoleName says what is wrong with a role's name, or "": the registry's
// rule (ident.Role), so a name is safe as a path segment of the admin API and a
// claim value.
func checkRoleName(n string) string {
	if err := ident.Role(n); err != nil {
		return fmt.Sprintf("role name %q: %v", n, err)
	}
	return ""
}

// refs turns role names into references to the roles imported; a name of a role
// not imported is listed (those of Keycloak's built-in clients once per owner).
func (t *translation) refs(c *CompositesRep, owner string, path ...any) []RoleRef {
	if c == nil {
		return nil
	}
	return t.roleRefs(c.Realm, c.Client, owner, [2]string{"realm", "client"}, path...)
}

// mappingKeys are the keys of a user's or group's role mappings in the export.
var mappingKeys = [2]string{"realmRoles", "clientRoles"}

// roleRefs turns the names of realm roles and client roles (keys says under
// which keys of the export they are) into references.
func (t *translation) roleRefs(realm []string, clients map[string][]string, owner string, keys [2]string, path ...any) []RoleRef {
	var out []RoleRef
	at := func(p ...any) []any { return append(slices.Clone(path), p...) }
	for j, n := range realm {
		if !t.realmRoles[n] {
			t.problem(fmt.Sprintf("%s: unknown realm role %q not kept", owner, n), at(keys[0], j)...)
			continue
		}
		out = appendRef(out, RoleRef{Name: n})
	}
	for _, id := range sortedKeys(clients) {
		if slices.Contains(builtinClients, id) {
			t.problem(fmt.Sprintf("%s: roles of Keycloak's built-in client %q (%s) not kept", owner, id, strings.Join(clients[id], ", ")), at(keys[1], id)...)
			continue
		}
		for j, n := range clients[id] {
			ref := RoleRef{ClientID: id, Name: n}
			if !t.clientRole[ref] {
				t.problem(fmt.Sprintf("%s: role %q of client %q is not imported: not kept", owner, n, id), at(keys[1], id, j)...)
				continue
			}
			out = appendRef(out, ref)
		}
	}
	return out
}

func appendRef(list []RoleRef, r RoleRef) []RoleRef {
	if slices.Contains(list, r) {
		return list
	}
	return append(list, r)
}

func (t *translation) users() {
	groups := map[string]GroupRep{} // by path, with the roles of its ancestors
	flattenGroups(t.e.Groups, "", nil, nil, groups)
	seen := map[string]bool{}
	for i, u := range t.e.Users {
		if u.ServiceAccountClientID != "" {
			t.serviceAccount(i, u)
			continue
		}
		if out, ok := t.user(i, u, groups); ok {
			if seen[out.Username] {
				t.problem(fmt.Sprintf("a second user %q is not imported", out.Username), "users", i)
				continue
			}
			seen[out.Username] = true
			t.res.Users = append(t.res.Users, out)
		}
	}
}

// serviceAccount gives the service-account user's roles to its client.
func (t *translation) serviceAccount(i int, u UserRep) {
	k, ok := t.clientIndex[u.ServiceAccountClientID]
	if !ok {
		return // the client is not imported, and listed already
	}
	c := &t.res.Clients[k]
	c.ServiceAccountRoles = t.roleRefs(u.RealmRoles, u.ClientRoles,
		fmt.Sprintf("service account of client %q", c.ID), mappingKeys, "users", i)
}

func (t *translation) user(i int, kc UserRep, groups map[string]GroupRep) (User, bool) {
	at := func(p ...any) []any { return append([]any{"users", i}, p...) }
	name := fmt.Sprintf("user %q", kc.Username)
	u := User{User: registry.User{Username: kc.Username, Email: kc.Email, EmailVerified: kc.EmailVerified,
		Name: strings.TrimSpace(kc.FirstName + " " + kc.LastName), Disabled: kc.Enabled != nil && !*kc.Enabled},
		GivenName: kc.FirstName, FamilyName: kc.LastName, index: i}
	for _, f := range []struct {
		v    *string
		path string
	}{{&u.GivenName, "firstName"}, {&u.FamilyName, "lastName"}, {&u.Name, "firstName"}} {
		if len(*f.v) > maxPersonName {
			t.problem(fmt.Sprintf("%s: a name over %d bytes is not imported", name, maxPersonName), at(f.path)...)
			*f.v = ""
		}
	}
	if err := registry.CheckUser(&u.User, false); err != nil {
		t.problem(fmt.Sprintf("%s is not imported: %v", name, err), at()...)
		return User{}, false
	}
	if u.Email != "" {
		if other, dup := t.emails[u.Email]; dup {
			t.problem(fmt.Sprintf("%s: email %s is %q's already; Latchkey keeps emails unique: imported without it", name, u.Email, other), at("email")...)
			u.Email, u.EmailVerified = "", false
		} else {
			t.emails[u.Email] = u.Username
		}
	}
	if validID(kc.ID) {
		u.ID = kc.ID
	}

	for j, cr := range kc.Credentials {
		if cr.Type != "password" {
			t.problem(fmt.Sprintf("%s: %s credential %q is not imported", name, credentialKind(cr.Type), cr.UserLabel), at("credentials", j)...)
			continue
		}
		if u.PasswordHash != "" {
			t.problem(name+": a second password credential is not imported", at("credentials", j)...)
			continue
		}
		phc, err := PHC(cr)
		if err == nil {
			err = password.CheckImported(phc)
		}
		if err != nil {
			t.problem(fmt.Sprintf("%s: password not imported: %v; the user cannot sign in until a password is set", name, err), at("credentials", j)...)
			continue
		}
		u.PasswordHash = phc
	}
	switch {
	case kc.FederationLink != "":
		t.problem(fmt.Sprintf("%s comes from user federation %s: its password is not in the export, it cannot sign in until one is set", name, kc.FederationLink), at("federationLink")...)
	case u.PasswordHash == "" && !slices.ContainsFunc(kc.Credentials, func(c CredentialRep) bool { return c.Type == "password" }):
		t.problem(name+" has no password: it cannot sign in until one is set (latchkey admin, or the admin API)", at("credentials")...)
	}
	for j, fi := range kc.FederatedIdentities {
		t.problem(fmt.Sprintf("%s: link to identity provider %v is not imported", name, fi["identityProvider"]), at("federatedIdentities", j)...)
	}
	for j, a := range kc.RequiredActions {
		t.problem(fmt.Sprintf("%s: required action %s is not imported: Latchkey will not ask for it", name, a), at("requiredActions", j)...)
	}
	if len(kc.Attributes) > 0 {
		t.problem(fmt.Sprintf("%s: attributes (%s) are not imported", name, strings.Join(sortedKeys(kc.Attributes), ", ")), at("attributes")...)
	}

	u.Roles = t.roleRefs(kc.RealmRoles, kc.ClientRoles, name, mappingKeys, at()...)
	for j, p := range kc.Groups {
		g, ok := groups[p]
		if !ok {
			t.problem(fmt.Sprintf("%s: unknown group %s", name, p), at("groups", j)...)
			continue
		}
		for _, r := range t.roleRefs(g.RealmRoles, g.ClientRoles, fmt.Sprintf("%s, group %s", name, p), mappingKeys, at("groups", j)...) {
			u.Roles = appendRef(u.Roles, r)
		}
	}
	return u, true
}

// maxPersonName bounds a user's name, given and family names, in bytes, as
// Latchkey's registry does.
const maxPersonName = 255

// flattenGroups maps each group's path to it, with its ancestors' roles added:
// a member of a subgroup has its parents' roles in Keycloak.
func flattenGroups(gs []GroupRep, parent string, realm []string, client map[string][]string, out map[string]GroupRep) {
	for _, g := range gs {
		p := g.Path
		if p == "" {
			p = parent + "/" + g.Name
		}
		flat := GroupRep{RealmRoles: append(slices.Clone(realm), g.RealmRoles...), ClientRoles: map[string][]string{}}
		for id, rs := range client {
			flat.ClientRoles[id] = slices.Clone(rs)
		}
		for id, rs := range g.ClientRoles {
			flat.ClientRoles[id] = append(flat.ClientRoles[id], rs...)
		}
		out[p] = flat
		flattenGroups(g.SubGroups, p, flat.RealmRoles, flat.ClientRoles, out)
	}
}

func countGroups(gs []GroupRep) int {
	n := len(gs)
	for _, g := range gs {
		n += countGroups(g.SubGroups)
	}
	return n
}

func credentialKind(typ string) string {
	switch typ {
	case "otp", "totp", "hotp":
		return "one-time password (OTP)"
	case "webauthn", "webauthn-passwordless":
		return "WebAuthn"
	}
	return typ
}

// passwordData is what a Keycloak password credential's secretData and
// credentialData hold.
type passwordData struct {
	Value                string              `json:"value"`
	Salt                 string              `json:"salt"`
	HashIterations       int                 `json:"hashIterations"`
	Algorithm            string              `json:"algorithm"`
	AdditionalParameters map[string][]string `json:"additionalParameters"`
}

// PHC writes a Keycloak password credential as the PHC string password.Verify
// reads: pbkdf2-sha256 and pbkdf2-sha512 as $pbkdf2-sha512$i=N,l=KEYLEN$SALT$HASH
// (Keycloak takes the key length from the stored hash's, so l is that), argon2
// (Keycloak's additionalParameters type, version, memory, parallelism and
// hashLength; hashIterations as t) as $argon2id$v=19$m=..,t=..,p=..$SALT$HASH.
func PHC(cr CredentialRep) (string, error) {
	var d passwordData
	if cr.SecretData != "" || cr.CredentialData != "" {
		if err := json.Unmarshal([]byte(cr.SecretData), &d); err != nil {
			// The decoder's message may quote a byte of the secret: not kept.
			return "", errors.New("secretData is not JSON")
		}
		if err := json.Unmarshal([]byte(cr.CredentialData), &d); err != nil {
			return "", errors.New("credentialData is not JSON")
		}
	} else {
		d = passwordData{Value: cr.HashedSaltedValue, Salt: cr.Salt, HashIterations: cr.HashIterations, Algorithm: cr.Algorithm}
	}
	value, err1 := base64.StdEncoding.DecodeString(d.Value)
	salt, err2 := base64.StdEncoding.DecodeString(d.Salt)
	if err1 != nil || err2 != nil || len(value) == 0 || len(salt) == 0 {
		return "", errors.New("the hash or its salt is not base64")
	}
	b64 := base64.RawStdEncoding.EncodeToString
	param := func(k string) string {
		if v := d.AdditionalParameters[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch d.Algorithm {
	case "pbkdf2-sha256", "pbkdf2-sha512":
		if d.HashIterations <= 0 {
			return "", fmt.Errorf("%s with %d iterations", d.Algorithm, d.HashIterations)
		}
		return fmt.Sprintf("$%s$i=%d,l=%d$%s$%s", d.Algorithm, d.HashIterations, len(value), b64(salt), b64(value)), nil
	case "argon2":
		variant := map[string]string{"id": "argon2id", "i": "argon2i"}[param("type")]
		if variant == "" {
			return "", fmt.Errorf("argon2 type %q is not offered (want id or i)", param("type"))
		}
		if v := param("version"); v != "1.3" {
			return "", fmt.Errorf("argon2 version %q is not offered (want 1.3)", v)
		}
		if l := param("hashLength"); l != "" && l != strconv.Itoa(len(value)) {
			return "", fmt.Errorf("argon2 hashLength %s is not the hash's length %d", l, len(value))
		}
		m, p := atoi(param("memory")), atoi(param("parallelism"))
		if m <= 0 || p <= 0 || d.HashIterations <= 0 {
			return "", errors.New("argon2 memory, parallelism or iterations missing")
		}
		return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", variant, m, d.HashIterations, p, b64(salt), b64(value)), nil
	case "":
		return "", errors.New("no algorithm")
	}
	return "", fmt.Errorf("algorithm %q is not offered (want pbkdf2-sha256, pbkdf2-sha512 or argon2)", d.Algorithm)
}

// validID says whether a Keycloak user ID can be kept as the user's ID (and so
// as the sub of their tokens): a UUID, or any short plain identifier.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func seconds(n int) time.Duration { return time.Duration(max(n, 0)) * time.Second }

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

func firstPositive(ns ...int) int {
	for _, n := range ns {
		if n > 0 {
			return n
		}
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
