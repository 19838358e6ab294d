// The TypeScript SDK client (`@modelcontextprotocol/client` 2.4) finds its
// way in by itself: it starts with no token, follows the 401 to the
// protected-resource metadata and the authorization server, signs in by
// code + PKCE (driven headlessly, headless.mjs), and calls a read tool.
// Its token is read-only (the scope the 401 named), so ingest must end in
// a 403 `insufficient_scope` naming timeseries:write.
//
// Usage: node sdk_client.mjs MCP_URL
import {
  Client,
  InsufficientScopeError,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { authorize } from './headless.mjs';

const REDIRECT = 'http://127.0.0.1/callback';
const [url] = process.argv.slice(2);

function check(condition, message) {
  if (!condition) {
    console.error(`sdk-client: ${message}`);
    process.exit(1);
  }
}

// What a host application implements; the browser part is headless.
class HeadlessProvider {
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: 'sdk-oauth-check',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return { client_id: 'sdk' };
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.authorizationUrl = authorizationUrl;
    this.callback = await authorize(authorizationUrl, 'carol');
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

const provider = new HeadlessProvider();
const transport = () =>
  new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, onInsufficientScope: 'throw' });
const client = () => new Client({ name: 'sdk-oauth-check', version: '1.0.0' });

try {
  await client().connect(transport());
  check(false, 'connected without a token');
} catch (e) {
  check(e instanceof UnauthorizedError, `expected UnauthorizedError, got ${e}`);
}
check(provider.callback, 'the SDK never reached the authorization endpoint');
const asked = new URL(provider.authorizationUrl);
check(asked.searchParams.get('resource') === url, `resource indicator: ${asked}`);
check(asked.searchParams.get('code_challenge_method') === 'S256', `PKCE: ${asked}`);
const first = transport();
await first.finishAuth(new URL(provider.callback).searchParams);
check(provider.saved?.access_token, 'no access token after the code exchange');

const signedIn = client();
await signedIn.connect(transport());
const tools = (await signedIn.listTools()).tools.map((t) => t.name);
check(tools.includes('list_series') && !tools.includes('ingest_timeseries'), `read-only listing: ${tools}`);
const listed = await signedIn.callTool({ name: 'list_series', arguments: {} });
check(!listed.isError, `list_series: ${JSON.stringify(listed)}`);

try {
  await signedIn.callTool({
    name: 'ingest_timeseries',
    arguments: { series: 'sdk.oauth', points: [{ time: '2026-01-01T00:00:00Z', value: 1 }] },
  });
  check(false, 'ingest with a read-only token was not refused');
} catch (e) {
  check(e instanceof InsufficientScopeError, `expected InsufficientScopeError, got ${e}`);
  check(String(e.requiredScope).includes('timeseries:write'), `required scope: ${e.requiredScope}`);
}
await signedIn.close();
console.log(`sdk-client: OK (scope "${provider.saved.scope}", ${tools.length} tools listed)`);
