package oauth

import "github.com/latchkey/latchkey/internal/grants"

// Observer is told what the protocol edge answered, for metrics. Every argument
// comes from a fixed set: never a user, client, address or token.
type Observer interface {
	// TokenRequest is a token endpoint answer: the grant type (authorization_code,
	// refresh_token, client_credentials, none or unsupported) and the outcome
	// (success or the error code answered).
	TokenRequest(grant, outcome string)
	// Introspected is an introspection answer.
	Introspected(active bool)
	// Login is a login form answer: success, failure or throttled.
	Login(result string)
	// Lockout is a failure that locked: login or client_auth.
	Lockout(limiter string)
	// ClientAuthThrottled is a client authentication refused with 429.
	ClientAuthThrottled()
}

// grantLabel is the grant type as counted: one of the grants' table, none or
// unsupported, whatever was sent.
func grantLabel(grantType string) string {
	if _, ok := grants.Lookup(grantType); ok {
		return grantType
	}
	if grantType == "" {
		return "none"
	}
	return "unsupported"
}

// outcome is what writeError answers err with: its error code, or success.
func outcome(err error) string {
	if err == nil {
		return "success" // first: counting a success allocates nothing
	}
	return string(wireError(err).Code)
}
