// The authorization code flow with PKCE, driven headlessly through
// oidc-provider's dev interactions: follow the authorization URL, sign in
// as `user`, consent, and return the callback URL that carries the code.
// The browser's part is done with fetch and a cookie jar.
const MAX_STEPS = 12;

export async function authorize(authorizationUrl, user = 'alice') {
  const jar = new Map();
  const cookies = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const remember = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  };
  let url = new URL(authorizationUrl);
  let form;
  for (let step = 0; step < MAX_STEPS; step++) {
    const res = await fetch(url, {
      method: form ? 'POST' : 'GET',
      headers: { cookie: cookies(), ...(form && { 'content-type': 'application/x-www-form-urlencoded' }) },
      body: form,
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    remember(res);
    form = undefined;
    const location = res.headers.get('location');
    if (location) {
      const next = new URL(location, url);
      if (next.searchParams.has('code') || next.searchParams.has('error')) return next.toString();
      url = next;
      continue;
    }
    const page = await res.text();
    if (res.status !== 200) throw new Error(`authorization: ${url} answered ${res.status}: ${page.slice(0, 300)}`);
    const action = new URL(page.match(/action="([^"]+)"/)[1], url);
    const prompt = page.match(/name="prompt" value="([^"]+)"/)[1];
    form = new URLSearchParams(prompt === 'login' ? { prompt, login: user, password: 'x' } : { prompt });
    url = action;
  }
  throw new Error(`authorization: no code after ${MAX_STEPS} steps`);
}

// As a command: node headless.mjs ISSUER RESOURCE SCOPE [USER] prints an
// access token for the `sdk` client, by code + PKCE.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { createHash, randomBytes } = await import('node:crypto');
  const [issuer, resource, scope, user] = process.argv.slice(2);
  const redirect = 'http://127.0.0.1/callback';
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const meta = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const start = new URL(meta.authorization_endpoint);
  for (const [k, v] of Object.entries({
    client_id: 'sdk', response_type: 'code', redirect_uri: redirect, scope, resource,
    code_challenge: challenge, code_challenge_method: 'S256', state: randomBytes(8).toString('hex'),
  })) start.searchParams.set(k, v);
  const callback = new URL(await authorize(start, user));
  if (!callback.searchParams.get('code')) throw new Error(`no code: ${callback}`);
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', client_id: 'sdk', code: callback.searchParams.get('code'),
      redirect_uri: redirect, code_verifier: verifier, resource,
    }),
  });
  const body = await res.json();
  if (!body.access_token) throw new Error(`token endpoint: ${JSON.stringify(body)}`);
  console.log(body.access_token);
}
