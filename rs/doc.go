// Package rs protects a Go HTTP API with access tokens from a Latchkey realm: it
// validates RFC 9068 JWT access tokens locally, opaque ones by RFC 7662
// introspection, and follows the realm's signed revocation feed so a revoked token,
// user, session or grant stops working within about a second, without a call to the
// authorization server per request.
//
// A JWT is accepted when its signature verifies with the issuer's key named by its
// kid, with the header's alg equal to that key's own (none, HS* and any other alg are
// refused); its typ is at+jwt (so ID tokens and security event tokens are not access
// tokens); iss is the issuer; aud contains the API's audience; exp, nbf and iat hold
// within a small leeway; and no event of the feed has revoked it. The issuer's JWKS
// is read at start and refetched, once for all waiting requests and at most every
// few seconds, when a token names a kid it does not hold, or when the feed says the
// keys changed. Verified tokens are remembered (a bounded cache) until they expire.
//
// Until the feed has first caught up with the issuer, requests wait for it (up to
// Options.SyncWait) and are then refused with 503: the validator fails closed unless
// Options.AcceptBeforeSync is set. When the feed drops, what it said so far still
// applies; it reconnects with its cursor and catches up on what it missed.
//
// Routes may require scopes (Require), roles (RequireRoles) or both (RequireAll).
// Roles are read from the token as Keycloak and Latchkey issue them with the roles
// scope: realm_access.roles and resource_access.CLIENT.roles; a token without a
// required one is refused with 403 insufficient_scope, its error_description naming
// the missing role.
//
// Tokens bound to a DPoP key (RFC 9449: cnf.jkt) are accepted only with the DPoP
// authentication scheme and a proof signed with that key, for this request's
// method and URL (Options.ExternalURL), fresh, and not used before (an in-memory
// replay cache, bounded); sent as bearer tokens they are refused. See
// Authenticate.
//
// Only the standard library, go-jose and Latchkey's internal/dpop (which imports
// nothing else) are imported.
package rs
