// A real authorization server for the tests: oidc-provider 9 (a certified
// OpenID provider) on a loopback port, with client credentials, the
// authorization code flow with PKCE (driven headlessly through its dev
// interactions, see headless.mjs), and resource indicators (RFC 8707) that
// issue JWT access tokens (RFC 9068) whose `aud` is the resource asked for.
//
// Usage: node provider.mjs KEYS_FILE [--port N] [--rotate]
//   KEYS_FILE  the private JWKS, made on first use; --rotate puts a new key
//              first (the provider signs with the first and still publishes
//              the others). KEYS_FILE.pem and KEYS_FILE.pub.pem get the
//              signing key, for tests that forge tokens with it.
// Prints one JSON line once it listens: {"issuer", "kid"}.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

export const SCOPES = ['timeseries:read', 'timeseries:write', 'analytics:run'];
export const REDIRECT = 'http://127.0.0.1/callback';

const args = process.argv.slice(2);
const file = args[0];
const port = Number(args[args.indexOf('--port') + 1] || 0) || 0;
const rotate = args.includes('--rotate');
if (!file) {
  console.error('usage: node provider.mjs KEYS_FILE [--port N] [--rotate]');
  process.exit(2);
}

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}
let keys = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).keys : [];
if (keys.length === 0 || rotate) keys = [newKey(), ...keys];
writeFileSync(file, JSON.stringify({ keys }));
const signing = createPrivateKey({ key: keys[0], format: 'jwk' });
writeFileSync(`${file}.pem`, signing.export({ format: 'pem', type: 'pkcs8' }));
writeFileSync(`${file}.pub.pem`, createPublicKey(signing).export({ format: 'pem', type: 'spki' }));

const server = createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys },
  clients: [
    // A service: every scope by client credentials.
    {
      client_id: 'agent',
      client_secret: 'agent-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPES.join(' '),
    },
    // A dashboard that may only read.
    {
      client_id: 'reader',
      client_secret: 'reader-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'timeseries:read',
    },
    // A public native client (the SDK, an IDE): code + PKCE.
    {
      client_id: 'sdk',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [REDIRECT],
    },
  ],
  scopes: ['openid', ...SCOPES],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf ?? undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: SCOPES.join(' '),
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
});
// Its development-only warnings would fill the test output.
provider.on('server_error', (_ctx, err) => console.error('provider error:', err));
server.on('request', provider.callback());
console.log(JSON.stringify({ issuer, kid: keys[0].kid }));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
