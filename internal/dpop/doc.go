// Package dpop owns the verification of DPoP proofs (RFC 9449): the checks of
// §4.2–4.3 on one proof JWT against the request it came with, the RFC 7638 key
// thumbprint that binds tokens to the proof key (cnf.jkt), the replay check of
// the proof's jti through a ReplayCache it does not implement, and stateless
// server nonces (§8, §9) any instance sharing the key accepts.
//
// It knows nothing of HTTP handlers, tokens or storage: callers give it the
// proof, the method and URL of the request as the server sees it, and the
// access token when one is presented. Errors wrap ErrInvalidProof or
// ErrUseNonce; the mapping to the invalid_dpop_proof and use_dpop_nonce error
// codes belongs to the protocol edge. It imports only the standard library and
// go-jose so the public rs package may use it.
package dpop
