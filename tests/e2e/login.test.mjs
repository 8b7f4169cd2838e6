// Scenarios 1-3: the login through real Envoy + oidc-authz + oidc-provider + httpbin, scripted
// client with its own cookie jar, every redirect followed by hand. With E2E_TARGET=compose only the
// variants matching the running stack's configuration run (form_post, PKCE auto, client_secret_basic).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  login, assertUpstreamGotToken, assertNoTokensInUrls, sessionCookie, stackFor, why, idpJwks,
  skipFor, tokenClientId,
} from './flows.mjs';

const VARIANTS = [
  // [test name, stack options, expectations]
  ['seed: form_post, PKCE auto, memory store, client_secret_basic', {}, { responseMode: 'form_post', pkce: true, clientId: 'envoy' }],
  ['response_mode=query', { responseMode: 'query' }, { responseMode: 'query', pkce: true, clientId: 'envoy' }],
  ['PKCE never', { pkce: 'never' }, { responseMode: 'form_post', pkce: false, clientId: 'envoy' }],
  ['PKCE always, query', { pkce: 'always', responseMode: 'query' }, { responseMode: 'query', pkce: true, clientId: 'envoy' }],
  ['Redis session store', { sessionStorage: 'redis' }, { responseMode: 'form_post', pkce: true, clientId: 'envoy' }],
  ['client_secret_post (client envoy-post)', { clientAuth: 'client_secret_post' }, { responseMode: 'form_post', pkce: true, clientId: 'envoy-post' }],
];

for (const [name, opts, want] of VARIANTS) {
  test(`login: ${name}`, { timeout: 60000, skip: skipFor({ opts }) }, async (t) => {
    const slug = `login-${name.split(':')[0].replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`.replace(/-+$/, '');
    const stack = await stackFor(t, slug, opts);
    const jwks = await idpJwks(stack);

    const flow = await login(stack);
    const { authUrl, client } = flow;

    // The authorization request.
    const q = authUrl.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), want.clientId);
    assert.ok(q.get('scope')?.split(' ').includes('openid'), `scope has openid: ${q.get('scope')}`);
    assert.equal(q.get('redirect_uri'), stack.envoyUrl('/callback'));
    assert.ok(q.get('state')?.length >= 16, `state is present and long enough: ${q.get('state')}`);
    assert.ok(q.get('nonce')?.length >= 16, `nonce is present and long enough: ${q.get('nonce')}`);
    if (want.responseMode === 'form_post') assert.equal(q.get('response_mode'), 'form_post');
    else assert.ok(!q.has('response_mode') || q.get('response_mode') === 'query', `response_mode: ${q.get('response_mode')}`);
    if (want.pkce) {
      assert.ok(q.get('code_challenge')?.length >= 43, `code_challenge: ${q.get('code_challenge')}`);
      assert.equal(q.get('code_challenge_method'), 'S256');
    } else {
      assert.equal(q.get('code_challenge'), null, 'no code_challenge with pkce: never');
      assert.equal(q.get('code_challenge_method'), null);
    }
    assert.equal(flow.callback.method, want.responseMode === 'form_post' ? 'POST' : 'GET');
    // The cookie binding the login to this browser: Secure + HttpOnly; with form_post (a cross-site
    // POST from the IdP) it must be SameSite=None, or browsers drop it on the callback.
    const loginCookies = flow.first.setCookies;
    assert.ok(loginCookies.length >= 1, `the login redirect sets a login-state cookie: ${JSON.stringify(loginCookies)}`);
    for (const c of loginCookies) {
      assert.match(c, /;\s*Secure/i, `login cookie is Secure: ${c}`);
      assert.match(c, /;\s*HttpOnly/i, `login cookie is HttpOnly: ${c}`);
      if (want.responseMode === 'form_post') assert.match(c, /;\s*SameSite=None/i, `form_post login cookie is SameSite=None: ${c}`);
    }

    // The callback answers 303 (or 302) to the original URL and sets the session cookie.
    // POST (form_post) → 303 See Other, so the browser GETs the original URL; GET → 302 or 303.
    if (flow.callback.method === 'POST') assert.equal(flow.callbackRes.status, 303, why(stack, flow.callbackRes, 'callback answers 303'));
    else assert.ok([302, 303].includes(flow.callbackRes.status), why(stack, flow.callbackRes, 'callback redirects'));
    assert.equal(flow.returnUrl.href, stack.envoyUrl('/anything?hello=world'));
    const cookie = sessionCookie(client.jar);
    assert.ok(cookie, `a session cookie was set: ${JSON.stringify(flow.callbackRes.setCookies)}`);
    assert.equal(cookie.httpOnly, true, `session cookie is HttpOnly: ${cookie.raw}`);
    assert.equal(cookie.secure, true, `session cookie is Secure (session_cookie_secure: always): ${cookie.raw}`);
    assert.equal(cookie.name, '__Host-session', `Secure session cookie uses the __Host- prefix: ${cookie.raw}`);

    // httpbin got the original request with our token.
    const { json, jwt, token: firstToken } = await assertUpstreamGotToken(stack, flow.final, { jwks });
    assert.equal(json.args.hello, 'world');
    assert.equal(json.url.replace(/^https?:\/\/[^/]+/, ''), '/anything?hello=world');
    assert.equal(tokenClientId(jwt.payload), want.clientId);
    assertNoTokensInUrls(client, { code: flow.code, finalUrl: flow.final.url });

    const stats = stack.capabilities.idpStats; // the test IdP's counters (not on an attached stack)
    if (stats) {
      const s1 = stack.idpStats();
      assert.equal(s1.token_by_grant_type.authorization_code, 1, `one code exchange: ${JSON.stringify(s1)}`);
      assert.equal(s1.token_errors, 0, `no token errors: ${JSON.stringify(s1)}`);
    }

    // Scenario 3: with the session cookie, a second request reaches httpbin without any IdP hit
    // (counted at the test IdP; on an attached stack: at least no redirect and the same token).
    const before = stats && stack.idpStats();
    const again = await client.get(stack.envoyUrl('/anything?second=1'));
    const r2 = await assertUpstreamGotToken(stack, again, { jwks });
    assert.equal(r2.json.args.second, '1');
    assert.equal(r2.token, firstToken, 'same access token');
    const other = await client.get(stack.envoyUrl('/headers'));
    assert.equal(other.status, 200, why(stack, other, 'another path with the session'));
    if (stats) assert.deepEqual(stack.idpStats(), before, 'no IdP requests for requests with a session');
  });
}

test('no token, code, cookie or secret reaches oidc-authz\'s log, even at trace level', { timeout: 60000, skip: skipFor({ needs: ['process control'] }) }, async (t) => {
  const stack = await stackFor(t, 'login-log-hygiene', { rustLog: 'oidc_authz=trace,info' });
  const jwks = await idpJwks(stack);
  const flow = await login(stack);
  const { token } = await assertUpstreamGotToken(stack, flow.final, { jwks });
  const session = sessionCookie(flow.client.jar);
  await flow.client.get(stack.envoyUrl('/anything?again=1'));
  await flow.client.get(stack.envoyUrl('/logout'));
  const log = fs.readFileSync(stack.logFile('oidc-authz'), 'utf8');
  assert.match(log, /login completed/, 'the log is the one the login wrote');
  const secrets = {
    'access token': token,
    'authorization code': flow.code,
    'session cookie': session.value,
    'client secret': stack.config.client_secret,
    'session secret': String(stack.config.session_secret),
  };
  for (const [what, value] of Object.entries(secrets)) {
    assert.ok(value && value.length >= 8, `${what} is known to the test`);
    assert.ok(!log.includes(value), `the ${what} appears in oidc-authz's log`);
  }
});
