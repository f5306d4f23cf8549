// The device authorization grant (RFC 8628) as a TV app does it with
// openid-client: initiateDeviceAuthorization, then pollDeviceAuthorizationGrant
// while the user approves (or denies) the code in a browser, then a refresh and
// userinfo with the tokens it got.
//
// With LK_DPOP=1 the device holds a DPoP key (RFC 9449): it polls, refreshes
// and calls userinfo with proofs, and its refresh token is bound to the key.
//
// Steps: device_authorization; poll, once for each answer of the token endpoint
// to the library's polling (so the test sees authorization_pending before it
// approves); then tokens, refreshed (and with DPoP refresh_without_proof) and
// userinfo, or poll_error.
import { attempt, client, discover, emit, env, main, tokenResult } from './lib.mjs'

main(async () => {
  const config = await discover()
  const server = config.serverMetadata()
  const DPoP = env('LK_DPOP', '0') === '1' ? client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256')) : undefined
  const keyJKT = await DPoP?.calculateThumbprint()
  const da = await client.initiateDeviceAuthorization(config, { scope: env('LK_SCOPE') })
  emit('device_authorization', {
    device_authorization_endpoint: server.device_authorization_endpoint,
    user_code: da.user_code,
    verification_uri: da.verification_uri,
    verification_uri_complete: da.verification_uri_complete,
    expires_in: da.expires_in,
    interval: da.interval,
    device_code_prefix: da.device_code.slice(0, 6),
  })

  // Watch the library's polls (not drive them): every answer of the token
  // endpoint while polling is reported with its status and OAuth error code.
  let polling = true
  config[client.customFetch] = async (url, options) => {
    const res = await fetch(url, options)
    if (polling && url === server.token_endpoint) {
      const body = res.status === 200 ? {} : await res.clone().json().catch(() => ({}))
      emit('poll', { status: res.status, error: body.error })
    }
    return res
  }
  const polled = await attempt(() => client.pollDeviceAuthorizationGrant(config, da, undefined, { DPoP }))
  polling = false
  if (polled.error) {
    emit('poll_error', { error: polled.error })
    return
  }
  const tokens = polled.ok
  emit('tokens', { ...tokenResult(tokens), key_jkt: keyJKT })

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP })
  emit('refreshed', { ...tokenResult(refreshed), key_jkt: keyJKT })
  if (DPoP) {
    const r = await attempt(() => client.refreshTokenGrant(config, refreshed.refresh_token))
    emit('refresh_without_proof', r.error ? { error: r.error } : tokenResult(r.ok))
  }

  const info = await client.fetchUserInfo(config, refreshed.access_token, tokens.claims().sub, { DPoP })
  emit('userinfo', { userinfo: info })
})
