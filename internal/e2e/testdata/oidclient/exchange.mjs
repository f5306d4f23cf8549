// Token exchange (RFC 8693) with openid-client's genericGrantRequest, as an API
// gateway does it: the user signs in to the gateway (authorization code + PKCE),
// and the gateway exchanges the user's tokens for tokens aimed at another API,
// as the user (impersonation) and on its own behalf (delegation, with its client
// credentials token as the actor token).
//
// LK_AUDIENCE is an audience the client may exchange for, LK_OTHER_AUDIENCE one
// it may not. Steps: authorize (answered with the callback URL), signed_in,
// impersonation, delegation, id_token_subject, scope_narrowed, not_allowed,
// refresh_token_subject, then (after the subject's family is revoked)
// after_revocation.
import { attempt, claims, client, discover, emit, env, main, signIn, tokenResult } from './lib.mjs'

const exchangeType = 'urn:ietf:params:oauth:grant-type:token-exchange'
const tokenType = (t) => `urn:ietf:params:oauth:token-type:${t}`

main(async () => {
  const config = await discover()
  const verifier = client.randomPKCECodeVerifier()
  const nonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: env('LK_REDIRECT_URI'),
    scope: env('LK_SCOPE'),
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
  })
  const callback = await signIn('authorize', url)
  const user = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true })
  emit('signed_in', tokenResult(user))

  const exchange = (params) => attempt(async () => tokenResult(await client.genericGrantRequest(config, exchangeType, params)))
  const report = (step, r) => emit(step, r.error ? { error: r.error } : r.ok)
  const audience = env('LK_AUDIENCE')

  // Impersonation: the user's access token, for another audience; no actor.
  report('impersonation', await exchange({
    subject_token: user.access_token,
    subject_token_type: tokenType('access_token'),
    audience,
  }))

  // Delegation: the gateway acts for the user, and says so with its own token.
  const self = await client.clientCredentialsGrant(config)
  report('delegation', await exchange({
    subject_token: user.access_token,
    subject_token_type: tokenType('access_token'),
    actor_token: self.access_token,
    actor_token_type: tokenType('access_token'),
    audience,
  }))
  emit('actor', { actor_claims: claims(self.access_token) })

  // The user's ID token as the subject.
  report('id_token_subject', await exchange({
    subject_token: user.id_token,
    subject_token_type: tokenType('id_token'),
    audience,
  }))

  // A narrower scope.
  report('scope_narrowed', await exchange({
    subject_token: user.access_token,
    subject_token_type: tokenType('access_token'),
    scope: env('LK_NARROW_SCOPE'),
  }))

  // An audience the policy does not allow.
  report('not_allowed', await exchange({
    subject_token: user.access_token,
    subject_token_type: tokenType('access_token'),
    audience: env('LK_OTHER_AUDIENCE'),
  }))

  // A refresh token is no subject token.
  report('refresh_token_subject', await exchange({
    subject_token: user.refresh_token,
    subject_token_type: tokenType('refresh_token'),
    audience,
  }))

  // The exchanged token dies with the sign-in it came from: revoke the user's
  // refresh token (its family), then introspect a token exchanged before.
  const exchanged = await client.genericGrantRequest(config, exchangeType, {
    subject_token: user.access_token,
    subject_token_type: tokenType('access_token'),
    audience,
  })
  const before = await client.tokenIntrospection(config, exchanged.access_token)
  await client.tokenRevocation(config, user.refresh_token, { token_type_hint: 'refresh_token' })
  const after = await client.tokenIntrospection(config, exchanged.access_token)
  const again = await exchange({
    subject_token: user.access_token,
    subject_token_type: tokenType('access_token'),
    audience,
  })
  emit('after_revocation', { active_before: before.active, introspection_after: after, exchange_again: again.error ?? 'issued' })
})
