// Package kcimport reads a Keycloak realm export (the JSON of `kc.sh export` or
// the admin console's realm export) and translates what Latchkey can keep of it
// into the realm, clients, roles and users of a seed, listing everything it
// cannot keep, one problem a line, each with the JSON path it comes from.
package kcimport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxSize is the largest export read, in bytes: a realm of a hundred thousand
// users is well under it; anything larger is refused, not read into memory.
const MaxSize = 256 << 20

// Export is the part of Keycloak's RealmRepresentation the import reads. Fields
// it does not declare are ignored by the decoder, but every one that holds
// something Latchkey would lose is declared so it can be listed.
type Export struct {
	Realm                   string                `json:"realm"`
	DisplayName             string                `json:"displayName"`
	Enabled                 *bool                 `json:"enabled"`
	AccessTokenLifespan     int                   `json:"accessTokenLifespan"` // seconds
	SSOSessionIdleTimeout   int                   `json:"ssoSessionIdleTimeout"`
	SSOSessionMaxLifespan   int                   `json:"ssoSessionMaxLifespan"`
	OfflineSessionIdle      int                   `json:"offlineSessionIdleTimeout"`
	DefaultSignatureAlg     string                `json:"defaultSignatureAlgorithm"`
	Roles                   RolesRep              `json:"roles"`
	Groups                  []GroupRep            `json:"groups"`
	DefaultRole             *RoleRep              `json:"defaultRole"`
	Clients                 []ClientRep           `json:"clients"`
	ClientScopes            []ClientScopeRep      `json:"clientScopes"`
	DefaultDefaultScopes    []string              `json:"defaultDefaultClientScopes"`
	DefaultOptionalScopes   []string              `json:"defaultOptionalClientScopes"`
	Users                   []UserRep             `json:"users"`
	IdentityProviders       []NamedRep            `json:"identityProviders"`
	IdentityProviderMappers []NamedRep            `json:"identityProviderMappers"`
	Components              map[string][]NamedRep `json:"components"`
	RequiredActions         []RequiredAction      `json:"requiredActions"`
	AuthenticationFlows     []FlowRep             `json:"authenticationFlows"`
	Organizations           []NamedRep            `json:"organizations"`
	RegistrationAllowed     bool                  `json:"registrationAllowed"`
	ResetPasswordAllowed    bool                  `json:"resetPasswordAllowed"`
	OTPPolicyType           string                `json:"otpPolicyType"`
	SMTPServer              map[string]any        `json:"smtpServer"`
	EventsListeners         []string              `json:"eventsListeners"`
	InternationalizationOn  bool                  `json:"internationalizationEnabled"`
	PasswordPolicy          string                `json:"passwordPolicy"`
	BruteForceProtected     bool                  `json:"bruteForceProtected"`
}

// RolesRep holds a realm's roles: realm roles, and client roles by client ID.
type RolesRep struct {
	Realm  []RoleRep            `json:"realm"`
	Client map[string][]RoleRep `json:"client"`
}

// RoleRep is a role; Composites name the roles it includes.
type RoleRep struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Composite   bool                `json:"composite"`
	Composites  *CompositesRep      `json:"composites"`
	Attributes  map[string][]string `json:"attributes"`
}

// CompositesRep names roles: realm roles, and client roles by client ID.
type CompositesRep struct {
	Realm  []string            `json:"realm"`
	Client map[string][]string `json:"client"`
}

// GroupRep is a group; its roles go to its members and its subgroups' members.
type GroupRep struct {
	Name        string              `json:"name"`
	Path        string              `json:"path"`
	RealmRoles  []string            `json:"realmRoles"`
	ClientRoles map[string][]string `json:"clientRoles"`
	SubGroups   []GroupRep          `json:"subGroups"`
	Attributes  map[string][]string `json:"attributes"`
}

// ClientRep is a client.
type ClientRep struct {
	ClientID                  string            `json:"clientId"`
	Name                      string            `json:"name"`
	Enabled                   *bool             `json:"enabled"`
	Protocol                  string            `json:"protocol"`
	PublicClient              bool              `json:"publicClient"`
	BearerOnly                bool              `json:"bearerOnly"`
	ClientAuthenticatorType   string            `json:"clientAuthenticatorType"`
	Secret                    string            `json:"secret"`
	RootURL                   string            `json:"rootUrl"`
	BaseURL                   string            `json:"baseUrl"`
	RedirectURIs              []string          `json:"redirectUris"`
	WebOrigins                []string          `json:"webOrigins"`
	StandardFlowEnabled       *bool             `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       bool              `json:"implicitFlowEnabled"`
	DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
	ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
	ConsentRequired           bool              `json:"consentRequired"`
	FrontchannelLogout        bool              `json:"frontchannelLogout"`
	FullScopeAllowed          *bool             `json:"fullScopeAllowed"`
	Attributes                map[string]string `json:"attributes"`
	DefaultClientScopes       []string          `json:"defaultClientScopes"`
	OptionalClientScopes      []string          `json:"optionalClientScopes"`
	ProtocolMappers           []NamedRep        `json:"protocolMappers"`
	AuthorizationServices     bool              `json:"authorizationServicesEnabled"`
}

// ClientScopeRep is a client scope.
type ClientScopeRep struct {
	Name            string            `json:"name"`
	Protocol        string            `json:"protocol"`
	Attributes      map[string]string `json:"attributes"`
	ProtocolMappers []NamedRep        `json:"protocolMappers"`
}

// UserRep is a user.
type UserRep struct {
	ID                     string              `json:"id"`
	Username               string              `json:"username"`
	Enabled                *bool               `json:"enabled"`
	Email                  string              `json:"email"`
	EmailVerified          bool                `json:"emailVerified"`
	FirstName              string              `json:"firstName"`
	LastName               string              `json:"lastName"`
	Credentials            []CredentialRep     `json:"credentials"`
	RealmRoles             []string            `json:"realmRoles"`
	ClientRoles            map[string][]string `json:"clientRoles"`
	Groups                 []string            `json:"groups"`
	RequiredActions        []string            `json:"requiredActions"`
	ServiceAccountClientID string              `json:"serviceAccountClientId"`
	FederationLink         string              `json:"federationLink"`
	FederatedIdentities    []map[string]any    `json:"federatedIdentities"`
	Attributes             map[string][]string `json:"attributes"`
}

// CredentialRep is a credential; for a password, SecretData and CredentialData
// are JSON documents in strings.
type CredentialRep struct {
	Type           string `json:"type"`
	UserLabel      string `json:"userLabel"`
	SecretData     string `json:"secretData"`
	CredentialData string `json:"credentialData"`
	// Keycloak before 12 kept a password credential's fields flat.
	HashedSaltedValue string `json:"hashedSaltedValue"`
	Salt              string `json:"salt"`
	HashIterations    int    `json:"hashIterations"`
	Algorithm         string `json:"algorithm"`
}

// NamedRep is anything listed by its name (or alias, or ID) only.
type NamedRep struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Alias        string `json:"alias"`
	ProviderID   string `json:"providerId"`
	ProviderType string `json:"providerType"`
	// ProtocolMapper is a protocol mapper's kind (oidc-audience-mapper, ...).
	ProtocolMapper string `json:"protocolMapper"`
	Enabled        *bool  `json:"enabled"`
}

// label is what a NamedRep is called in a problem.
func (n NamedRep) label() string {
	switch {
	case n.Alias != "":
		return n.Alias
	case n.Name != "":
		return n.Name
	}
	return n.ID
}

// kind is what kind of provider or mapper a NamedRep is.
func (n NamedRep) kind() string {
	if n.ProtocolMapper != "" {
		return n.ProtocolMapper
	}
	return n.ProviderID
}

// RequiredAction is a realm's required action (a step users may be made to take).
type RequiredAction struct {
	Alias   string `json:"alias"`
	Enabled bool   `json:"enabled"`
}

// FlowRep is an authentication flow.
type FlowRep struct {
	Alias      string `json:"alias"`
	BuiltIn    bool   `json:"builtIn"`
	TopLevel   bool   `json:"topLevel"`
	ProviderID string `json:"providerId"`
}

// Parse reads one realm export from r: at most MaxSize bytes, one JSON object.
func Parse(r io.Reader) (*Export, error) { return parse(r, MaxSize) }

func parse(r io.Reader, limit int64) (*Export, error) {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	var e Export
	if err := dec.Decode(&e); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("realm export is larger than %d bytes", limit)
		}
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("realm export is not JSON: %v (at byte %d)", syn, syn.Offset)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("realm export: %s: want %v, not JSON %s", typ.Field, typ.Type, typ.Value)
		case errors.Is(err, io.EOF):
			return nil, errors.New("realm export is empty")
		}
		return nil, fmt.Errorf("realm export: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if lr.N <= 0 {
			return nil, fmt.Errorf("realm export is larger than %d bytes", limit)
		}
		return nil, errors.New("realm export: more than one JSON value (want one realm; export each realm to its own file)")
	}
	if e.Realm == "" {
		return nil, errors.New(`realm export: no "realm" name: is this a realm export (kc.sh export --realm NAME)?`)
	}
	return &e, nil
}
