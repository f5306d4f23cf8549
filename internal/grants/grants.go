// Package grants owns the token endpoint's grant types: one Grant contract, one
// file per grant, the table of what each grant asks of the clients registered for
// it, and the Registry the token endpoint dispatches on. Discovery, client
// validation (internal/registry) and the metrics' label set read the same table,
// so a grant type is offered, accepted and counted in one place.
//
// The phases every grant shares — reading the form, authenticating the client,
// the client-may-use-this-grant and public-client rules, delivery and counting —
// are the token endpoint's (internal/oauth), done once; a Grant only turns an
// authenticated request into a token response.
package grants

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// The grant types offered.
const (
	AuthorizationCodeType = "authorization_code"
	ClientCredentialsType = "client_credentials"
	RefreshTokenType      = "refresh_token"
	// DeviceCodeType is the device authorization grant (RFC 8628 §3.4).
	DeviceCodeType = "urn:ietf:params:oauth:grant-type:device_code"
	// TokenExchangeType is token exchange (RFC 8693 §2.1).
	TokenExchangeType = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Spec is what a grant type asks of the clients registered for it.
type Spec struct {
	Type string
	// Confidential: only a client that authenticates may use it (RFC 6749 §4.4).
	Confidential bool
	// RedirectURIs: the client needs at least one registered redirect URI.
	RedirectURIs bool
	// Requires names other grant types, separated by spaces, of which the client
	// must also have one (see RequiresAny), and RequiresWhy says why, for the
	// validation message.
	Requires, RequiresWhy string
	// CoreCounts: the token core counts what the grant delivers itself (a refresh
	// retried within its window hands out nothing new), so the endpoint must not.
	CoreCounts bool
}

// specs is the table of grant types offered, in the order discovery lists them.
// Immutable: read only through Specs, Types and Lookup.
var specs = [...]Spec{
	{Type: AuthorizationCodeType, RedirectURIs: true},
	{Type: ClientCredentialsType, Confidential: true},
	{Type: RefreshTokenType, Requires: AuthorizationCodeType + " " + DeviceCodeType,
		RequiresWhy: "refresh tokens come from a user's grant", CoreCounts: true},
	// RFC 8628: public clients (a TV app) or confidential ones, no redirect URI.
	{Type: DeviceCodeType},
	// RFC 8693: only a client that authenticates may trade tokens.
	{Type: TokenExchangeType, Confidential: true},
}

// RequiresAny returns the grant types of which a client with this one must also
// have one; nil when it needs none.
func (s Spec) RequiresAny() []string { return strings.Fields(s.Requires) }

// Specs returns the table of grant types offered.
func Specs() []Spec { return slices.Clone(specs[:]) }

// Types returns the grant types offered, in the order discovery lists them.
func Types() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Type
	}
	return out
}

// Lookup returns the spec of a grant type offered.
func Lookup(grantType string) (Spec, bool) {
	for _, s := range specs {
		if s.Type == grantType {
			return s, true
		}
	}
	return Spec{}, false
}

// Request is a token request that passed the shared phases: its form was read,
// its client authenticated and allowed the grant.
type Request struct {
	Realm  storage.Realm
	Client storage.Client
	Form   url.Values
	// HTTP is the request itself, only for Deps.Caller: a grant that records who
	// asked resolves it, and one that does not (client_credentials) pays nothing.
	HTTP *http.Request
	// DPoP is the request's verified DPoP proof (RFC 9449 §4.3), checked by the
	// token endpoint's shared DPoP phase; nil when no proof was sent.
	DPoP *dpop.Proof
}

// JKT is the thumbprint of the request's DPoP key, to bind what the grant issues
// to (RFC 9449 §5); "" when the request carries no proof.
func (r Request) JKT() string {
	if r.DPoP == nil {
		return ""
	}
	return r.DPoP.JKT
}

// TokenType is the token_type of the response: "DPoP" for a request with a proof
// (RFC 9449 §5), else "Bearer".
func (r Request) TokenType() string {
	if r.DPoP != nil {
		return "DPoP"
	}
	return "Bearer"
}

// Grant turns an authenticated token request into a token response. Refusals are
// *protocol.Error or the core's sentinel errors, which the token endpoint maps.
type Grant interface {
	Type() string
	Token(ctx context.Context, req Request) (token.Response, error)
}

// Store is what the grants read and write beside the token service.
type Store interface {
	GetUser(ctx context.Context, realm, id string) (storage.User, error)
	GetSession(ctx context.Context, id string) (storage.Session, error)
	RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error
}

// Deps are what the grants are built from.
type Deps struct {
	Tokens *token.Service
	Store  Store
	Now    func() time.Time
	// Caller resolves who sent a request (the client address from trusted
	// proxies only, the user agent), for audit events.
	Caller func(*http.Request) token.Caller
}

// Registry is the grants the token endpoint dispatches on. Built once at wiring,
// never changed.
type Registry struct {
	byType map[string]Grant
	types  []string
}

// Default returns the registry of every grant type in the table.
func Default(d Deps) *Registry {
	r, err := NewRegistry(AuthorizationCode(d), ClientCredentials(d), RefreshToken(d), DeviceCode(d), TokenExchange(d))
	if err != nil {
		panic(err) // the table and the grants above are written together
	}
	return r
}

// NewRegistry returns a registry of gs, each of a type in the table, once.
func NewRegistry(gs ...Grant) (*Registry, error) {
	r := &Registry{byType: make(map[string]Grant, len(gs))}
	for _, g := range gs {
		if _, ok := Lookup(g.Type()); !ok {
			return nil, fmt.Errorf("grants: %q has no spec", g.Type())
		}
		if _, dup := r.byType[g.Type()]; dup {
			return nil, fmt.Errorf("grants: %q registered twice", g.Type())
		}
		r.byType[g.Type()] = g
	}
	for _, s := range specs {
		if _, ok := r.byType[s.Type]; ok {
			r.types = append(r.types, s.Type)
		}
	}
	return r, nil
}

// Get returns the grant of a type, and its spec.
func (r *Registry) Get(grantType string) (Grant, Spec, bool) {
	g, ok := r.byType[grantType]
	if !ok {
		return nil, Spec{}, false
	}
	s, _ := Lookup(grantType)
	return g, s, true
}

// Types returns the grant types served, in the table's order: discovery's
// grant_types_supported.
func (r *Registry) Types() []string { return slices.Clone(r.types) }
