// Shared login flows and assertions for the e2e scenario tests.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client, parseForm, decodeJwt, rawRequest } from './client.mjs';
import { startStack, logTail, trace, armWatchdog, deadline } from './stack.mjs';

armWatchdog();

export const USER = { login: 'alice', password: 'wonderland' };

/** Session cookie names oidc-authz may use (Secure → __Host- prefix). */
export const SESSION_COOKIES = ['__Host-session', 'session'];

export function sessionCookie(jar) {
  return SESSION_COOKIES.map((n) => jar.get(n)).find(Boolean) ?? null;
}

export function sessionSetCookies(res) {
  return res.setCookies.filter((c) => SESSION_COOKIES.some((n) => c.startsWith(`${n}=`)));
}

/** Describes a response for assertion messages (status, location, set-cookie, start of body). */
export function describe(res) {
  if (!res) return '(no response)';
  return `${res.status} ${res.url}\n  location: ${res.headers?.location ?? '-'}\n  set-cookie: ${JSON.stringify(res.setCookies ?? [])}`
    + `\n  www-authenticate: ${res.headers?.['www-authenticate'] ?? '-'}\n  body: ${String(res.body ?? '').slice(0, 300)}`;
}

/** A message for a failed assertion: the response plus the tail of the oidc-authz and Envoy logs. */
export function why(stack, res, what = '') {
  return `${what}\n${describe(res)}\n--- oidc-authz.log (tail) ---\n${stack.logTail('oidc-authz', 25)}`
    + `\n--- envoy.log (tail) ---\n${stack.logTail('envoy', 8)}`;
}

export function newClient(stack, label = 'client') {
  const logFile = stack.logFile(`http-${label}`);
  return new Client({
    trace: (line) => trace(`[${label}] ${line}`),
    log: (line) => {
      trace(`[${label}] ${line}`);
      fs.appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
    },
  });
}

export async function idpJwks(stack) {
  const r = await rawRequest(stack.idpUrl('/jwks'));
  return JSON.parse(r.body);
}

/**
 * Walks the login with a scripted client, checking each hop:
 *   GET start (Envoy) -> 302 IdP /auth -> login page -> POST credentials -> IdP -> form_post page
 *   (or 303 with ?code=) -> callback at Envoy -> 303 back to start -> final answer.
 * With { until: 'callback' } it stops before sending the callback and returns it.
 */
export async function login(stack, { client = newClient(stack), startPath = '/anything?hello=world', until, user = USER } = {}) {
  const start = stack.envoyUrl(startPath);
  const first = await client.get(start);
  assert.equal(first.status, 302, why(stack, first, `GET ${startPath} without session: expected 302 to the IdP`));
  const authUrl = new URL(first.headers.location, start);
  assert.equal(authUrl.origin, stack.urls.idp, `redirect goes to the IdP: ${authUrl.href}`);
  assert.equal(authUrl.pathname, '/auth', `redirect goes to the authorization endpoint: ${authUrl.href}`);

  let r = await client.get(authUrl);
  r = await client.follow(r);
  assert.equal(r.status, 200, `IdP login page: ${describe(r)}`);
  const loginForm = parseForm(r.body, r.url);
  assert.ok(loginForm && 'login' in loginForm.inputs && 'password' in loginForm.inputs, `login form: ${r.body.slice(0, 500)}`);

  r = await client.post(loginForm.action, { login: user.login, password: user.password });
  assert.equal(r.status, 303, `login POST: ${describe(r)}`);
  // Follow within the IdP only; stop at the redirect that leaves it (query response mode).
  r = await client.follow(r, { stopAt: (u) => u.origin !== stack.urls.idp });

  let callback;
  if (r.status === 200) {
    const f = parseForm(r.body, r.url);
    assert.ok(f, `form_post page has a form: ${r.body.slice(0, 500)}`);
    assert.equal(f.method, 'POST');
    callback = { method: 'POST', url: f.action, form: f.inputs };
  } else {
    assert.ok(r.status === 302 || r.status === 303, `IdP answer after login: ${describe(r)}`);
    callback = { method: 'GET', url: new URL(r.headers.location, r.url).href };
  }
  const cbUrl = new URL(callback.url);
  assert.equal(cbUrl.origin, stack.urls.envoy, `callback goes to Envoy: ${cbUrl.href}`);
  assert.equal(cbUrl.pathname, '/callback');
  const code = callback.form?.code ?? cbUrl.searchParams.get('code');
  assert.ok(code, 'the IdP returned a code');

  const result = { client, first, authUrl, loginForm, callback, code };
  if (until === 'callback') return result;

  result.callbackRes = await sendCallback(client, callback);
  const cb = result.callbackRes;
  assert.ok(cb.status === 302 || cb.status === 303, why(stack, cb, 'callback: expected a redirect back to the original URL'));
  result.returnUrl = new URL(cb.headers.location, callback.url);
  result.final = await client.follow(cb);
  return result;
}

export function sendCallback(client, callback) {
  return callback.method === 'POST'
    ? client.post(callback.url, callback.form)
    : client.get(callback.url);
}

/** Parses httpbin's JSON answer; checks the upstream got our Bearer JWT issued by the IdP. */
export async function assertUpstreamGotToken(stack, res, { jwks } = {}) {
  assert.equal(res.status, 200, why(stack, res, 'expected httpbin to answer 200 through Envoy'));
  const json = JSON.parse(res.body);
  const authz = json.headers?.Authorization;
  assert.ok(authz, `httpbin saw an Authorization header: ${JSON.stringify(json.headers)}`);
  const m = /^Bearer (\S+)$/.exec(authz);
  assert.ok(m, `Authorization is exactly "Bearer <token>": ${authz}`);
  const jwt = decodeJwt(m[1], jwks ?? await idpJwks(stack));
  assert.equal(jwt.payload.iss, stack.urls.idp, 'access token issued by the IdP');
  assert.equal(jwt.verified, true, 'access token signature verifies with the IdP JWKS');
  assert.equal(jwt.payload.sub, 'alice');
  // Our own cookies are credentials for oidc-authz only: the upstream must not receive them.
  const cookie = json.headers?.Cookie ?? '';
  assert.ok(!/(^|;\s*)(__Host-)?session(_login)?=/.test(cookie), `upstream received our cookies: ${cookie}`);
  return { json, token: m[1], jwt };
}

/** No URL visited (nor Location) carries tokens; the final URL does not carry the code. */
export function assertNoTokensInUrls(client, { code, finalUrl }) {
  for (const u of client.visited()) {
    assert.ok(!/[?&#](access_token|id_token|refresh_token)=/.test(u) && !/access_token|id_token/.test(u),
      `a visited URL carries a token: ${u}`);
  }
  if (code && finalUrl) assert.ok(!finalUrl.includes(code), `final URL carries the code: ${finalUrl}`);
}

/** Retries fn (bounded) until it returns truthy. */
export async function eventually(fn, { timeoutMs = 5000, intervalMs = 100 } = {}) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return last;
}

/** startStack() with a test-named log folder; dumps the log tails on failure by the caller. */
export async function stackFor(t, name, opts = {}) {
  const stack = await startStack({ name, ...opts });
  t.after?.(async () => {
    try {
      await Promise.race([stack.stop(), deadline(30000)]);
    } catch (e) {
      console.error(`stack ${name}: stop failed: ${e.message}`);
    }
  });
  return stack;
}

export { logTail, path };
