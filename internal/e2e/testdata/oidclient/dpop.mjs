// DPoP (RFC 9449) with openid-client's getDPoPHandle: a service's client
// credentials tokens and an app's authorization code, refresh and userinfo, each
// bound to a key the client holds. The library answers the server's nonce
// challenge itself; the test sees every answer of the token endpoint through a
// watching fetch.
//
// LK_SVC_ID/LK_SVC_SECRET: a confidential client with dpop_bound_access_tokens.
// LK_APP_ID: a public client (authorization code + refresh). Steps:
// client_credentials, svc_introspection, api, api_as_bearer, svc_without_proof, replay, authorize
// (answered with the callback URL), code, userinfo, userinfo_as_bearer,
// userinfo_other_key, refreshed, refresh_other_key, refresh_without_proof,
// refresh_after_refusals.
import { attempt, client, discover, emit, env, main, signIn, tokenResult } from './lib.mjs'

// watch reports what the token endpoint answered to each request the library
// sent, and keeps the last DPoP request so it can be replayed.
function watch(config) {
  const server = config.serverMetadata()
  const w = { exchanges: [], last: null }
  config[client.customFetch] = async (url, options) => {
    const res = await fetch(url, options)
    if (url === server.token_endpoint) {
      const headers = new Headers(options.headers)
      const body = res.status === 200 ? {} : await res.clone().json().catch(() => ({}))
      w.exchanges.push({ status: res.status, error: body.error, sent_proof: headers.has('dpop'), got_nonce: res.headers.has('dpop-nonce') })
      if (headers.has('dpop')) w.last = { url, method: options.method, headers, body: options.body }
    }
    return res
  }
  w.take = () => w.exchanges.splice(0)
  return w
}

const withLog = (w, result) => ({ ...result, exchanges: w.take() })
// outcome runs a grant that may be refused; success reports the key it was
// bound to.
const outcome = async (w, handle, fn) => {
  const r = await attempt(fn)
  return withLog(w, r.error ? { error: r.error } : { ...tokenResult(r.ok), key_jkt: await handle?.calculateThumbprint() })
}

main(async () => {
  // A service: client credentials, DPoP required of it.
  const svc = await discover(client.ClientSecretBasic(env('LK_SVC_SECRET')), {}, env('LK_SVC_ID'))
  const svcWatch = watch(svc)
  const svcKey = await client.randomDPoPKeyPair('ES256')
  const svcDPoP = client.getDPoPHandle(svc, svcKey)
  const cc = await client.clientCredentialsGrant(svc, { scope: env('LK_SVC_SCOPE') }, { DPoP: svcDPoP })
  emit('client_credentials', withLog(svcWatch, { ...tokenResult(cc), key_jkt: await svcDPoP.calculateThumbprint() }))
  emit('svc_introspection', { introspection: await client.tokenIntrospection(svc, cc.access_token) })

  // An API behind `latchkey gate` (LK_API_URL), called with fetchProtectedResource:
  // with a proof of the key, and as a plain bearer token. The stand-in upstream
  // echoes what the gate passed on; only whether a header came is reported.
  const call = async (opts) => {
    const r = await attempt(() => client.fetchProtectedResource(svc, cc.access_token, new URL(env('LK_API_URL') + '/readings'), 'POST',
      '{"kwh": 1}', new Headers({ 'content-type': 'application/json' }), opts))
    if (r.error) return { error: r.error }
    const up = await r.ok.json().catch(() => ({}))
    return { status: r.ok.status, upstream: { sub: up.sub, client_id: up.client_id, scope: up.scope, got_authorization: !!up.authorization, got_dpop: !!up.dpop } }
  }
  emit('api', await call({ DPoP: svcDPoP }))
  emit('api_as_bearer', await call(undefined))
  emit('svc_without_proof', await outcome(svcWatch, null, () => client.clientCredentialsGrant(svc, { scope: env('LK_SVC_SCOPE') })))

  // The library's last proof, sent again as it was (same jti): a replay.
  await client.clientCredentialsGrant(svc, { scope: env('LK_SVC_SCOPE') }, { DPoP: svcDPoP })
  svcWatch.take()
  const last = svcWatch.last
  const replayed = await fetch(last.url, { method: last.method, headers: last.headers, body: last.body })
  const replayBody = await replayed.json().catch(() => ({}))
  emit('replay', { status: replayed.status, error: replayBody.error, got_token: 'access_token' in replayBody })

  // An app: a public client signs the user in with its DPoP key.
  const app = await discover(client.None(), {}, env('LK_APP_ID'))
  const appWatch = watch(app)
  const appDPoP = client.getDPoPHandle(app, await client.randomDPoPKeyPair('ES256'))
  const otherDPoP = client.getDPoPHandle(app, await client.randomDPoPKeyPair('ES256'))
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const callback = await signIn('authorize', client.buildAuthorizationUrl(app, {
    redirect_uri: env('LK_REDIRECT_URI'),
    scope: env('LK_SCOPE'),
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  }))
  const code = await client.authorizationCodeGrant(app, callback, { pkceCodeVerifier: verifier, expectedState: state }, undefined, { DPoP: appDPoP })
  emit('code', withLog(appWatch, { ...tokenResult(code), key_jkt: await appDPoP.calculateThumbprint() }))
  const sub = code.claims().sub

  emit('userinfo', { userinfo: await client.fetchUserInfo(app, code.access_token, sub, { DPoP: appDPoP }) })
  const bearer = await attempt(() => client.fetchUserInfo(app, code.access_token, sub))
  emit('userinfo_as_bearer', bearer.error ? { error: bearer.error } : { userinfo: bearer.ok })
  const otherKey = await attempt(() => client.fetchUserInfo(app, code.access_token, sub, { DPoP: otherDPoP }))
  emit('userinfo_other_key', otherKey.error ? { error: otherKey.error } : { userinfo: otherKey.ok })

  const refreshed = await client.refreshTokenGrant(app, code.refresh_token, undefined, { DPoP: appDPoP })
  emit('refreshed', withLog(appWatch, { ...tokenResult(refreshed), key_jkt: await appDPoP.calculateThumbprint() }))

  // The refresh token is bound to the key: another key, or none, is refused,
  // and nothing rotates, so the right key still works after.
  emit('refresh_other_key', await outcome(appWatch, otherDPoP, () => client.refreshTokenGrant(app, refreshed.refresh_token, undefined, { DPoP: otherDPoP })))
  emit('refresh_without_proof', await outcome(appWatch, null, () => client.refreshTokenGrant(app, refreshed.refresh_token)))
  emit('refresh_after_refusals', await outcome(appWatch, appDPoP, () => client.refreshTokenGrant(app, refreshed.refresh_token, undefined, { DPoP: appDPoP })))
})
