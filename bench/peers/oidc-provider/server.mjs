// A benchmark peer: panva's oidc-provider configured like Latchkey's bench seed
// (bench/seed.yaml), so `latchkey bench` can drive both with the same flags.
//
// Environment:
//   PORT                 listen port on 127.0.0.1 (default 3000)
//   ROTATE_REFRESH_TOKEN 1 (default): every refresh rotates, like Latchkey;
//                        0: the refresh token is reused, to measure the cheaper mode
//   REFRESH_TOKENS       how many refresh tokens to mint for client "rp" at start (default 1000)
//   REFRESH_TOKENS_FILE  where to write them, one per line (default: not written)
//   STORE_MAX_ENTRIES    capacity of the in-memory store (default 5000000, see below)
//   LOG_ERRORS           1: print why each refused request was refused
//
// Not for anything but benchmarks: the secrets below are public and the store is memory.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';
// The provider's own in-memory adapter, used as is. Its default backing store
// is a development LRU capped at 1000 entries, which evicts live tokens within
// the first second of a benchmark (the introspection pool alone holds 1000, and
// refresh chains broke with "refresh token not found"), so we hand the same
// adapter the same LRU class with room for every token a full run issues.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const host = '127.0.0.1';
const port = intFromEnv('PORT', 3000);
const rotate = (process.env.ROTATE_REFRESH_TOKEN ?? '1') !== '0';
const refreshCount = intFromEnv('REFRESH_TOKENS', 1000);
const refreshFile = process.env.REFRESH_TOKENS_FILE;
const storeMaxEntries = intFromEnv('STORE_MAX_ENTRIES', 5_000_000);

// Latchkey's defaults: 5-minute access and ID tokens, 14-day refresh tokens
// (the "web" preset's absolute limit).
const ACCESS_TTL = 5 * 60;
const REFRESH_TTL = 14 * 24 * 60 * 60;

// The API the JWT access tokens are for. oidc-provider issues JWT access tokens
// only for a resource server (RFC 8707 resource indicator); clients that do not
// name one get this one by default.
const API = 'urn:latchkey:bench:api';
const API_SCOPE = 'api:read';

// Clients and the one user; must match bench/seed.yaml and bench/compare.sh.
const USER = { sub: 'bench-user', username: 'bench', email: 'bench@example.com', name: 'Bench User' };
const REDIRECT_URI = 'http://127.0.0.1:9999/cb';
const clients = [
  ccClient('cc-es256', 'bench-secret-cc-es256-0123456789abcdefghijklmnop'),
  ccClient('cc-eddsa', 'bench-secret-cc-eddsa-0123456789abcdefghijklmnop'),
  ccClient('cc-opaque', 'bench-secret-cc-opaque-0123456789abcdefghijklmnop'),
  {
    client_id: 'rp',
    client_secret: 'bench-secret-rp-0123456789abcdefghijklmnop',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
    scope: 'openid profile email offline_access api:read',
    // ES256 ID tokens, as Latchkey's "rp" asks for: both sides sign the same algorithms.
    id_token_signed_response_alg: 'ES256',
  },
];

function ccClient(id, secret) {
  return {
    client_id: id,
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: API_SCOPE,
  };
}

// How each client's access tokens look, as oidc-provider's resource server
// settings: format, and for JWTs the signing algorithm.
function resourceServerFor(client) {
  const base = { scope: API_SCOPE, audience: API, accessTokenTTL: ACCESS_TTL };
  switch (client.clientId) {
    case 'cc-opaque':
      return { ...base, accessTokenFormat: 'opaque' };
    case 'cc-eddsa':
      return { ...base, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'EdDSA' } } };
    default: // cc-es256 and rp: ES256 JWTs, like Latchkey's realm "bench"
      return { ...base, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
  }
}

// Fresh signing keys at every start: ES256 and EdDSA for access tokens, RS256
// for ID tokens (the default ID token algorithm of both servers).
function signingKeys() {
  const jwk = (type, options, alg) => {
    const { privateKey } = crypto.generateKeyPairSync(type, options);
    return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `${alg}-${crypto.randomUUID()}` };
  };
  return [
    jwk('rsa', { modulusLength: 2048 }, 'RS256'), // first: the default for ID tokens
    jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
    jwk('ed25519', {}, 'EdDSA'),
  ];
}

function intFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    process.exit(1);
  }
  return n;
}

// One store for every model, as the default adapter has. (Passing MemoryAdapter
// itself would make the provider swap in its 1000-entry store.)
const store = new LRU({ maxSize: storeMaxEntries });

const provider = new Provider(`http://${host}:${port}`, {
  adapter: (model) => new MemoryAdapter(model, store),
  clients,
  jwks: { keys: signingKeys() },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount(ctx, sub) {
    if (sub !== USER.sub) return undefined;
    return {
      accountId: sub,
      claims: () => ({
        sub,
        preferred_username: USER.username,
        name: USER.name,
        email: USER.email,
        email_verified: true,
      }),
    };
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', API_SCOPE],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  features: {
    devInteractions: { enabled: false }, // no browser sign-in in a benchmark
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf ?? API,
      getResourceServerInfo: (ctx, resource, client) => resourceServerFor(client),
      // Refresh grants: keep issuing the refresh token's resource (a JWT for the
      // API), as Latchkey does, rather than an opaque token for userinfo.
      useGrantedResource: () => true,
    },
  },
  rotateRefreshToken: rotate,
  ttl: {
    AccessToken: ACCESS_TTL,
    ClientCredentials: ACCESS_TTL,
    IdToken: ACCESS_TTL,
    RefreshToken: REFRESH_TTL,
    Grant: REFRESH_TTL,
  },
});

// LOG_ERRORS=1 prints why requests were refused (oidc-provider keeps the detail
// off the wire); off by default, as logging would be part of what is measured.
if (process.env.LOG_ERRORS === '1') {
  for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'server_error']) {
    provider.on(event, (ctx, err) => console.error(`${event}: ${err.error ?? err.name}: ${err.error_detail ?? err.error_description ?? err.message}`));
  }
}

// Refresh tokens for "rp", as if the user had signed in N times: a grant and a
// first refresh token each, made through the provider's own models so they
// are exactly what the token endpoint would have issued after a code exchange.
async function mintRefreshTokens(n) {
  const client = await provider.Client.find('rp');
  const scope = 'openid profile email offline_access api:read';
  const tokens = [];
  const authTime = Math.floor(Date.now() / 1000);
  for (let i = 0; i < n; i += 1) {
    const grant = new provider.Grant({ accountId: USER.sub, clientId: client.clientId });
    grant.addOIDCScope('openid profile email offline_access');
    grant.addResourceScope(API, API_SCOPE);
    const grantId = await grant.save();
    const rt = new provider.RefreshToken({
      accountId: USER.sub,
      authTime,
      client,
      expiresWithSession: false,
      grantId,
      gty: 'authorization_code',
      resource: API,
      rotations: 0,
      scope,
    });
    tokens.push(await rt.save());
  }
  return tokens;
}

const server = http.createServer(provider.callback());
server.keepAliveTimeout = 65_000; // outlive the load generator's idle connections
server.listen(port, host, async () => {
  try {
    if (refreshFile) {
      const tokens = await mintRefreshTokens(refreshCount);
      // Write then rename, so a reader polling for the file never sees half of it.
      fs.writeFileSync(`${refreshFile}.tmp`, tokens.map((t) => `${t}\n`).join(''), { mode: 0o600 });
      fs.renameSync(`${refreshFile}.tmp`, refreshFile);
    }
    console.log(`oidc-provider ${provider.issuer} ready (pid ${process.pid}, rotateRefreshToken=${rotate}, `
      + `refresh tokens ${refreshFile ? `${refreshCount} in ${refreshFile}` : 'not minted'})`);
  } catch (err) {
    console.error('start failed:', err);
    process.exit(1);
  }
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
