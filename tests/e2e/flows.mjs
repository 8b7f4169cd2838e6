// Shared login flows and assertions for the e2e scenario tests.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client, parseForms, decodeJwt, rawRequest } from './client.mjs';
import { startStack, attachStack, logTail, trace, armWatchdog, deadline } from './stack.mjs';
import { findLoginForm, loginError } from './login-driver.mjs';
import { ATTACHED, TARGET, skipReason } from './target.mjs';

armWatchdog();

/** The harness' test IdP account (an attached stack has its own: stack.user, E2E_USER/E2E_PASSWORD). */
export const USER = { login: 'alice', password: 'wonderland' };
export { ATTACHED, TARGET };

/**
 * For node:test's `skip` option: why this scenario cannot run against E2E_TARGET, or false.
 *   skipFor({ opts: { responseMode: 'query' } })        stack options it needs
 *   skipFor({ needs: ['process control'] })             or ['test IdP'] (oidc-provider's /__stats…)
 */
export const skipFor = (what) => skipReason(what);

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
  const { jwks_uri: uri } = await stack.discovery();
  const r = await rawRequest(uri);
  assert.equal(r.status, 200, `GET ${uri}: ${r.status}`);
  return JSON.parse(r.body);
}

/** The origin of the IdP (its issuer may have a path: Keycloak's /realms/<realm>). */
export const idpOrigin = (stack) => new URL(stack.urls.idp).origin;

/** Asserts res is oidc-authz's login redirect: 302 to the IdP's authorization endpoint. */
export async function assertLoginRedirect(stack, res, what = 'expected a login redirect to the IdP') {
  assert.equal(res.status, 302, why(stack, res, what));
  const to = new URL(res.headers.location, res.url);
  const { authorization_endpoint: ep } = await stack.discovery();
  assert.equal(`${to.origin}${to.pathname}`, ep, `${what}: redirect goes to the authorization endpoint: ${to.href}`);
  assert.ok(to.searchParams.get('client_id'), `${what}: authorization request: ${to.href}`);
  return to;
}

/** The token's user is stack.user: sub (the test IdP) or preferred_username (Keycloak: sub is an id). */
export function assertUser(stack, payload, what = 'token') {
  const login = (stack.user ?? USER).login;
  assert.ok(payload.sub === login || payload.preferred_username === login,
    `${what} is for ${login}: sub ${payload.sub}, preferred_username ${payload.preferred_username}`);
}

/** The client a token was issued to: client_id (the test IdP) or azp (Keycloak). */
export const tokenClientId = (payload) => payload.client_id ?? payload.azp;

/**
 * httpbin's JSON with header and query values as plain strings: Python httpbin (the harness)
 * reports strings, go-httpbin (the compose stack) arrays of strings.
 */
export function httpbinJson(body) {
  const json = typeof body === 'string' ? JSON.parse(body) : body;
  const flat = (o, sep) => Object.fromEntries(Object.entries(o ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v.join(sep) : v]));
  return {
    ...json,
    args: flat(json.args, ','),
    headers: Object.fromEntries(Object.entries(json.headers ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v.join(k.toLowerCase() === 'cookie' ? '; ' : ', ') : v])),
  };
}

/**
 * Walks the login with a scripted client, checking each hop:
 *   GET start (Envoy) -> 302 authorization endpoint -> IdP login page -> submit its login form ->
 *   IdP -> form_post page (or a redirect with ?code=) -> callback at Envoy -> 303 back to start ->
 *   final answer.
 * The login page is found and filled by login-driver.mjs (oidc-provider's or Keycloak's; action
 * and field names come from the page). With { until: 'callback' } it stops before sending the
 * callback and returns it.
 */
export async function login(stack, { client = newClient(stack), startPath = '/anything?hello=world', callbackPath = '/callback', until, user = stack.user ?? USER } = {}) {
  const meta = await stack.discovery();
  const idp = idpOrigin(stack);
  const leavesIdp = (u) => u.origin !== idp;
  const start = stack.envoyUrl(startPath);
  const first = await client.get(start);
  assert.equal(first.status, 302, why(stack, first, `GET ${startPath} without session: expected 302 to the IdP`));
  const authUrl = new URL(first.headers.location, start);
  assert.equal(`${authUrl.origin}${authUrl.pathname}`, meta.authorization_endpoint,
    `redirect goes to the IdP's authorization endpoint: ${authUrl.href}`);

  let r = await client.get(authUrl);
  r = await client.follow(r, { stopAt: leavesIdp });
  assert.equal(r.status, 200, `IdP login page: ${describe(r)}`);
  const loginForm = findLoginForm(r.body, r.url);
  assert.ok(loginForm, `a login form on the IdP page ${r.url}: ${r.body.slice(0, 500)}`);
  client.log?.(`login page: ${loginForm.kind}, ${loginForm.method} ${loginForm.action} `
    + `(fields ${loginForm.usernameField}, ${loginForm.passwordField})`);

  const body = loginForm.data(user);
  r = loginForm.method === 'POST'
    ? await client.post(loginForm.action, body)
    : await client.get(Object.assign(new URL(loginForm.action), { search: new URLSearchParams(body).toString() }));
  // The login page again (Keycloak: 200, the test IdP: 401): wrong E2E_USER / E2E_PASSWORD.
  assert.ok(!findLoginForm(r.body, r.url), `the IdP refused the login of ${user.login} (${r.status}): ${loginError(r.body) ?? r.body.slice(0, 300)}`);
  assert.ok([200, 302, 303].includes(r.status), `login submit: ${describe(r)}`);
  // Follow within the IdP only; stop at the redirect that leaves it (query response mode).
  r = await client.follow(r, { stopAt: leavesIdp });

  let callback;
  if (r.status === 200) {
    // form_post: an auto-submitting form (its action and hidden inputs, whatever the IdP).
    const forms = parseForms(r.body, r.url);
    const f = forms.find((x) => new URL(x.action).origin === stack.urls.envoy) ?? forms[0];
    assert.ok(f, `form_post page has a form: ${r.body.slice(0, 500)}`);
    assert.equal(f.method, 'POST');
    callback = { method: 'POST', url: f.action, form: f.inputs };
  } else {
    assert.ok(r.status === 302 || r.status === 303, `IdP answer after login: ${describe(r)}`);
    callback = { method: 'GET', url: new URL(r.headers.location, r.url).href };
  }
  const cbUrl = new URL(callback.url);
  assert.equal(cbUrl.origin, stack.urls.envoy, `callback goes to Envoy: ${cbUrl.href}`);
  assert.equal(cbUrl.pathname, callbackPath);
  const code = callback.form?.code ?? cbUrl.searchParams.get('code');
  assert.ok(code, `the IdP returned a code: ${JSON.stringify(callback)}`);

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
  const json = httpbinJson(res.body);
  const authz = json.headers?.Authorization;
  assert.ok(authz, `httpbin saw an Authorization header: ${JSON.stringify(json.headers)}`);
  const m = /^Bearer (\S+)$/.exec(authz);
  assert.ok(m, `Authorization is exactly "Bearer <token>": ${authz}`);
  const jwt = decodeJwt(m[1], jwks ?? await idpJwks(stack));
  assert.equal(jwt.payload.iss, stack.urls.idp, 'access token issued by the IdP');
  assert.equal(jwt.verified, true, 'access token signature verifies with the IdP JWKS');
  assertUser(stack, jwt.payload, 'access token');
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

/**
 * startStack() with a test-named log folder; dumps the log tails on failure by the caller.
 * With E2E_TARGET=compose: the running stack (attachStack()), if it can honour opts (declare the
 * test with { skip: skipFor({ opts }) } so that a scenario that cannot run is skipped, not failed).
 */
export async function stackFor(t, name, opts = {}) {
  if (ATTACHED) {
    const reason = skipReason({ opts });
    if (reason) throw new Error(`${name}: ${reason} (declare the test with { skip: skipFor({ opts }) })`);
    return attachStack({ name });
  }
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
