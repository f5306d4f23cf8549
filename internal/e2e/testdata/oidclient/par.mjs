// Pushed authorization requests (RFC 9126) and signed request objects (JAR, RFC
// 9101) with openid-client: buildAuthorizationUrlWithPAR, buildAuthorizationUrlWithJAR
// and the two together, each through to tokens with authorizationCodeGrant.
//
// LK_MODE: par (a client with a secret, LK_CLIENT_SECRET), jar or par_jar (a
// client authenticating with private_key_jwt, whose private key LK_CLIENT_JWK
// also signs the request object). Steps: authorize (answered with the callback
// URL), tokens, userinfo.
import { client, discover, emit, env, main, signIn, tokenResult } from './lib.mjs'

main(async () => {
  const mode = env('LK_MODE')
  let config
  let signingKey
  if (mode === 'par') {
    config = await discover()
  } else {
    const jwk = JSON.parse(env('LK_CLIENT_JWK'))
    const key = await crypto.subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d }, { name: 'ECDSA', namedCurve: jwk.crv }, false, ['sign'])
    signingKey = { key, kid: jwk.kid }
    config = await discover(client.PrivateKeyJwt(signingKey))
  }
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const params = {
    redirect_uri: env('LK_REDIRECT_URI'),
    scope: env('LK_SCOPE'),
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  }
  let url
  switch (mode) {
    case 'par':
      url = await client.buildAuthorizationUrlWithPAR(config, params)
      break
    case 'jar':
      url = await client.buildAuthorizationUrlWithJAR(config, params, signingKey)
      break
    case 'par_jar': {
      const jar = await client.buildAuthorizationUrlWithJAR(config, params, signingKey)
      url = await client.buildAuthorizationUrlWithPAR(config, jar.searchParams)
      break
    }
    default:
      throw new Error(`LK_MODE ${mode}?`)
  }
  const callback = await signIn('authorize', url)
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  emit('tokens', tokenResult(tokens))
  emit('userinfo', { userinfo: await client.fetchUserInfo(config, tokens.access_token, tokens.claims().sub) })
})
