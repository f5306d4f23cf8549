package storage

import (
	"bytes"
	"slices"
)

// SameRealm reports whether two realms have the same configuration
// (timestamps are not configuration).
func SameRealm(a, b Realm) bool {
	return a.Name == b.Name && a.DisplayName == b.DisplayName &&
		a.SigningAlg == b.SigningAlg && a.AccessTokenTTL == b.AccessTokenTTL
}

// SameClient reports whether two clients have the same configuration
// (timestamps are not configuration; nil and empty lists are the same).
func SameClient(a, b Client) bool {
	return a.Realm == b.Realm && a.ID == b.ID && a.Name == b.Name &&
		a.SecretHash == b.SecretHash && bytes.Equal(a.JWKS, b.JWKS) &&
		slices.Equal(a.RedirectURIs, b.RedirectURIs) &&
		slices.Equal(a.PostLogoutRedirectURIs, b.PostLogoutRedirectURIs) &&
		slices.Equal(a.GrantTypes, b.GrantTypes) &&
		slices.Equal(a.Scopes, b.Scopes) &&
		slices.Equal(a.Audiences, b.Audiences) &&
		slices.Equal(a.WebOrigins, b.WebOrigins) &&
		a.ThirdParty == b.ThirdParty && a.Disabled == b.Disabled &&
		a.PKCEOptional == b.PKCEOptional && a.IDTokenSignedResponseAlg == b.IDTokenSignedResponseAlg &&
		a.BackchannelLogoutURI == b.BackchannelLogoutURI &&
		a.BackchannelLogoutSessionRequired == b.BackchannelLogoutSessionRequired &&
		a.Tokens == b.Tokens &&
		slices.Equal(a.ServiceAccountRoles, b.ServiceAccountRoles) &&
		slices.Equal(a.DefaultScopes, b.DefaultScopes) &&
		a.LeanAccessTokens == b.LeanAccessTokens &&
		a.DPoPBoundAccessTokens == b.DPoPBoundAccessTokens &&
		a.RequirePushedAuthorizationRequests == b.RequirePushedAuthorizationRequests &&
		slices.Equal(a.TokenExchangeAudiences, b.TokenExchangeAudiences)
}

// SameUser reports whether two users have the same configuration. The ID,
// timestamps and security stamp are state, not configuration.
func SameUser(a, b User) bool {
	return a.Realm == b.Realm && a.Username == b.Username && a.Email == b.Email &&
		a.EmailVerified == b.EmailVerified && a.Name == b.Name &&
		a.GivenName == b.GivenName && a.FamilyName == b.FamilyName &&
		slices.Equal(a.Roles, b.Roles) &&
		a.PasswordHash == b.PasswordHash && a.Disabled == b.Disabled
}

// SameRole reports whether two roles have the same configuration
// (timestamps are not configuration; nil and empty lists are the same).
func SameRole(a, b Role) bool {
	return a.Realm == b.Realm && a.ClientID == b.ClientID && a.Name == b.Name &&
		a.Description == b.Description && slices.Equal(a.Composites, b.Composites)
}
