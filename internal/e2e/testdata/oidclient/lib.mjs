// Shared by the openid-client scripts of internal/e2e/oidclient_test.go.
//
// A script talks to the Go test in JSON lines: each step it reaches is one line
// on stdout ({"step": "...", ...}); where the test must play the user (sign in,
// approve a device), the script prints the step and reads the test's answer, one
// line, from stdin. Settings come from the environment (LK_ISSUER, LK_CLIENT_ID,
// LK_CLIENT_SECRET, LK_REDIRECT_URI, LK_SCOPE, LK_CLIENT_JWK).
//
// Token values are printed only under "tokens", which the Go test uses and never
// puts in a failure message; everything else is safe to show.
import * as readline from 'node:readline'
import * as client from 'openid-client'

export { client }

export function env(name, fallback) {
  const v = process.env[name]
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback
    throw new Error(`${name} is not set`)
  }
  return v
}

export function emit(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + '\n')
}

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()

// answer reads the Go test's answer to the step just printed.
export async function answer() {
  const { value, done } = await lines.next()
  if (done) throw new Error('the test closed stdin')
  return value
}

// discover reads the issuer's discovery document, as an app would, for the client
// of LK_CLIENT_ID with the authentication given (default: client_secret_basic
// with LK_CLIENT_SECRET, or none without one). The test server speaks plain HTTP
// on loopback.
export async function discover(auth, metadata = {}, clientId = env('LK_CLIENT_ID')) {
  if (auth === undefined) {
    const secret = process.env.LK_CLIENT_SECRET
    auth = secret ? client.ClientSecretBasic(secret) : client.None()
  }
  return client.discovery(new URL(env('LK_ISSUER')), clientId, metadata, auth, {
    execute: [client.allowInsecureRequests],
  })
}

// claims decodes a JWT's payload (no verification: the Go test verifies the
// signatures it needs to); null for an opaque token.
export function claims(jwt) {
  if (typeof jwt !== 'string') return null
  const parts = jwt.split('.')
  if (parts.length !== 3) return null
  try {
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString())
  } catch {
    return null
  }
}

// tokenResult is what the test asserts on from a token endpoint response, as
// openid-client returned it.
export function tokenResult(r) {
  return {
    token_type: r.token_type,
    expires_in: r.expires_in,
    expires_in_helper: r.expiresIn(),
    scope: r.scope,
    issued_token_type: r.issued_token_type,
    has_refresh_token: typeof r.refresh_token === 'string',
    has_id_token: typeof r.id_token === 'string',
    access_token_claims: claims(r.access_token),
    id_token_claims: r.id_token ? r.claims() : null,
    tokens: { access_token: r.access_token, refresh_token: r.refresh_token, id_token: r.id_token },
  }
}

// errorResult says what openid-client reported, without anything secret: the
// class, its code and message, the message of the error it wraps (a check the
// library made: its messages are fixed strings; the wrapped error's own cause,
// which may hold the response body, is left out), and an OAuth error
// response's error, description and status.
export function errorResult(e) {
  const out = { name: e?.name, code: e?.code, message: e?.message }
  if (e?.cause instanceof Error) out.cause = e.cause.message
  if (e instanceof client.ResponseBodyError) {
    Object.assign(out, { error: e.error, error_description: e.error_description, status: e.status })
  } else if (e instanceof client.WWWAuthenticateChallengeError) {
    const c = e.cause?.[0]
    Object.assign(out, { status: e.status, scheme: c?.scheme, error: c?.parameters?.error, error_description: c?.parameters?.error_description })
  } else if (e instanceof client.AuthorizationResponseError) {
    Object.assign(out, { error: e.error, error_description: e.error_description })
  }
  return out
}

// attempt runs fn and returns {ok: value} or {error: errorResult}.
export async function attempt(fn) {
  try {
    return { ok: await fn() }
  } catch (e) {
    return { error: errorResult(e) }
  }
}

// signIn sends the user to url (the test plays the browser and answers with the
// URL the browser landed on at the redirect URI) and returns that URL.
export async function signIn(step, url) {
  emit(step, { url: url.href })
  return new URL(await answer())
}

// main runs a script: an uncaught failure is one last line {"step": "failed"}
// and exit status 1.
export function main(fn) {
  fn().then(
    () => process.exit(0),
    (e) => {
      emit('failed', { error: errorResult(e), stack: e?.stack })
      process.exit(1)
    },
  )
}
