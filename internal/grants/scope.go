package grants

import (
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// Scopes checks a requested scope against what the client may have: its scopes,
// and its default scopes, which a client may always be granted (Keycloak's default
// client scopes). No scope requested means all of the client's scopes (RFC 6749
// §3.3 lets the server pick a default). The authorization endpoint checks the same.
func Scopes(requested string, client storage.Client) ([]string, error) {
	if requested == "" {
		return slices.Clone(client.Scopes), nil
	}
	defaults := client.EffectiveDefaultScopes()
	allowed := func(s string) bool { return slices.Contains(client.Scopes, s) || slices.Contains(defaults, s) }
	var out []string
	for _, s := range strings.Split(requested, " ") {
		if s == "" {
			continue // tolerate doubled spaces
		}
		if !token.IsScopeToken(s) {
			return nil, protocol.New(protocol.InvalidScope, "malformed scope")
		}
		if !allowed(s) {
			return nil, protocol.New(protocol.InvalidScope, "a requested scope is not allowed for this client")
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, protocol.New(protocol.InvalidScope, "malformed scope")
	}
	return out, nil
}

// Audience picks the token's audience: the requested resources (RFC 8707), each of
// which the client must be allowed; else the client's configured audiences; else the
// realm's issuer as the default resource (RFC 9068 §3). Never the client ID: that is
// an ID token's audience, and a client library that forgets to check typ would
// otherwise take an access token for an ID token.
func Audience(resources []string, client storage.Client, issuer string) ([]string, error) {
	if len(resources) == 0 {
		if len(client.Audiences) > 0 {
			return slices.Clone(client.Audiences), nil
		}
		return []string{issuer}, nil
	}
	var out []string
	for _, res := range resources {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			return nil, protocol.New(protocol.InvalidTarget, "resource must be an absolute URI without a fragment")
		}
		if !slices.Contains(client.Audiences, res) {
			return nil, protocol.New(protocol.InvalidTarget, "a requested resource is not allowed for this client")
		}
		if !slices.Contains(out, res) {
			out = append(out, res)
		}
	}
	return out, nil
}
