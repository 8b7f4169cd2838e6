// Scenario 7: the session lifecycle — access-token refresh (single-flight), RP-initiated logout,
// back-channel logout from the IdP. With E2E_TARGET=compose: /logout and the forged logout_token
// run; the refresh and the IdP-initiated back-channel logout need the test IdP's counters, skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  login, assertUpstreamGotToken, sessionCookie, stackFor, why, newClient, idpJwks, idpOrigin,
  assertLoginRedirect, assertUser, skipFor,
} from './flows.mjs';
import { parseForm, decodeJwt, submitForm } from './client.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('lifecycle: expired access token → one refresh for 20 parallel requests', { timeout: 60000, skip: skipFor({ needs: ['test IdP'] }) }, async (t) => {
  const TTL = 4; // short, yet long enough that 20 parallel requests on a loaded box fit in one token lifetime
  const stack = await stackFor(t, 'lifecycle-refresh', {
    accessTokenTtl: TTL,
    extraConfig: { refresh_margin: 0 },
  });
  const jwks = await idpJwks(stack);
  const flow = await login(stack);
  const first = await assertUpstreamGotToken(stack, flow.final, { jwks });
  assert.ok(first.jwt.payload.exp - first.jwt.payload.iat <= TTL, `short-lived token: ${JSON.stringify(first.jwt.payload)}`);

  // Past the expiry (exp has one-second resolution).
  const waitMs = first.jwt.payload.exp * 1000 - Date.now() + 1200;
  await sleep(Math.max(0, waitMs));
  const before = stack.idpStats();

  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => flow.client.get(stack.envoyUrl(`/anything?parallel=${i}`))));
  const statuses = results.map((r) => r.status);
  assert.deepEqual(statuses, Array(20).fill(200), why(stack, results.find((r) => r.status !== 200), `statuses: ${statuses}`));
  const tokens = new Set();
  for (const r of results) {
    const { token, jwt } = await assertUpstreamGotToken(stack, r, { jwks });
    tokens.add(token);
    assert.ok(jwt.payload.exp * 1000 > Date.now() - 1000, 'the token sent upstream was not expired');
  }
  assert.ok(!tokens.has(first.token), 'the expired token was not sent upstream');
  assert.equal(tokens.size, 1, `all 20 requests carry the same refreshed token (got ${tokens.size})`);

  const after = stack.idpStats();
  const refreshes = (after.token_by_grant_type.refresh_token ?? 0) - (before.token_by_grant_type.refresh_token ?? 0);
  assert.equal(refreshes, 1, `exactly one refresh_token grant for 20 parallel requests: ${JSON.stringify(after.token_by_grant_type)}`);
  assert.equal(after.authorization, before.authorization, 'no new login');

  // A later request (token still valid) carries the refreshed token without another refresh.
  const next = await flow.client.get(stack.envoyUrl('/anything?after=1'));
  const n = await assertUpstreamGotToken(stack, next, { jwks });
  if (n.jwt.payload.exp * 1000 > Date.now() + 500) assert.ok(tokens.has(n.token));
});

test('lifecycle: GET /logout → IdP end_session with id_token_hint; old cookie then → login', { timeout: 60000 }, async (t) => {
  const stack = await stackFor(t, 'lifecycle-logout');
  const jwks = await idpJwks(stack);
  const flow = await login(stack);
  await assertUpstreamGotToken(stack, flow.final, { jwks });
  const c = flow.client;
  const oldJar = c.jar.clone(); // the cookie as it was before logout

  // A cross-site link only gets a confirmation page (no cookie change, session kept).
  const cross = await c.get(stack.envoyUrl('/logout'), { headers: { 'sec-fetch-site': 'cross-site' } });
  assert.equal(cross.status, 200, why(stack, cross, 'cross-site GET /logout → confirmation page'));
  assert.match(cross.headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  assert.match(cross.body, /<form method="post" action="\/logout">/);
  assert.deepEqual(cross.setCookies, []);
  await assertUpstreamGotToken(stack, await c.get(stack.envoyUrl('/anything?after-cross-site-logout=1')), { jwks });

  // A click on a same-origin link logs out.
  const r = await c.get(stack.envoyUrl('/logout'), { headers: { 'sec-fetch-site': 'same-origin' } });
  assert.ok([302, 303].includes(r.status), why(stack, r, 'GET /logout redirects'));
  const to = new URL(r.headers.location, r.url);
  const meta = await stack.discovery();
  assert.equal(`${to.origin}${to.pathname}`, meta.end_session_endpoint, `to the end_session endpoint: ${to.href}`);
  const hint = to.searchParams.get('id_token_hint');
  assert.ok(hint, `id_token_hint present: ${to.href}`);
  const idt = decodeJwt(hint, jwks);
  assert.equal(idt.payload.iss, stack.urls.idp);
  assertUser(stack, idt.payload, 'id_token_hint');
  assert.equal(idt.verified, true);
  const plr = to.searchParams.get('post_logout_redirect_uri');
  assert.equal(plr, stack.envoyUrl('/'), 'post_logout_redirect_uri = logout_redirect_uri resolved');
  const killed = r.setCookies.some((sc) => sc.startsWith(`${sessionCookie(oldJar).name}=`));
  assert.ok(killed, `/logout clears the session cookie: ${JSON.stringify(r.setCookies)}`);

  // The pre-logout cookie is dead on the server side right away (before the IdP is even visited,
  // so before its back-channel logout could do it).
  const early = newClient(stack, 'old-cookie-early');
  early.jar = oldJar.clone();
  const e = await early.get(stack.envoyUrl('/anything?right-after-logout=1'));
  await assertLoginRedirect(stack, e, 'the pre-logout cookie right after GET /logout');
  const stats = stack.capabilities.idpStats;
  const bcBefore = stats && stack.idpStats().backchannel_logout_ok;

  // At the IdP, like a browser: the test IdP answers with an auto-submitting confirmation form,
  // Keycloak (valid id_token_hint) logs out and redirects at once, or shows a confirmation page
  // (its button is clicked). Then back to post_logout_redirect_uri.
  const leavesIdp = (u) => u.origin !== idpOrigin(stack);
  let done = await c.follow(await c.get(to), { stopAt: leavesIdp });
  for (let i = 0; i < 3 && done.status === 200; i++) {
    const form = parseForm(done.body, done.url);
    assert.ok(form, `end_session page without a form: ${done.status} ${done.body.slice(0, 300)}`);
    done = await c.follow(await submitForm(c, form, { submitter: true }), { stopAt: leavesIdp });
  }
  assert.ok([302, 303].includes(done.status), `end_session: ${done.status} ${done.body.slice(0, 300)}`);
  const back = new URL(done.headers.location, done.url);
  if (stack.attached) assert.equal(`${back.origin}${back.pathname}`, stack.envoyUrl('/'), `back to / after logout: ${back.href}`);
  else assert.equal(back.href, stack.envoyUrl('/'));
  if (stats) {
    const s = stack.idpStats();
    assert.equal(s.end_session_confirm, 1);
    // The IdP also sent its back-channel logout for this session; oidc-authz must answer it OK.
    assert.equal(s.backchannel_logout_errors, 0, `back-channel logout errors: ${s.backchannel_logout_last_error}`);
    assert.equal(s.backchannel_logout_ok, bcBefore + 1, 'the IdP sent a back-channel logout too');
  }

  // The old session cookie is dead on the server side.
  const old = newClient(stack, 'old-cookie');
  old.jar = oldJar;
  const after = await old.get(stack.envoyUrl('/anything?after-logout=1'));
  await assertLoginRedirect(stack, after, 'the pre-logout cookie after logout');
  // And the browser that logged out needs a new login too.
  const again = await c.get(stack.envoyUrl('/anything'));
  await assertLoginRedirect(stack, again, 'after logout');
});

test('lifecycle: back-channel logout from the IdP kills the session on the next Check', { timeout: 60000, skip: skipFor({ needs: ['test IdP'] }) }, async (t) => {
  const stack = await stackFor(t, 'lifecycle-backchannel', { sessionStorage: 'redis' });
  const jwks = await idpJwks(stack);
  const flow = await login(stack);
  await assertUpstreamGotToken(stack, flow.final, { jwks });
  const c = flow.client;
  const ok = await c.get(stack.envoyUrl('/anything?before=1'));
  assert.equal(ok.status, 200);

  // The user logs out at the IdP directly (no id_token_hint): the IdP POSTs a logout_token to the
  // client's backchannel_logout_uri (Envoy → oidc-authz /backchannel-logout).
  const page = await c.get(stack.idpUrl('/session/end'));
  assert.equal(page.status, 200, `end_session page: ${page.status}`);
  const form = parseForm(page.body, page.url);
  const done = await c.post(form.action, form.inputs);
  assert.ok(done.status < 400, `end_session confirm: ${done.status} ${done.body.slice(0, 300)}`);
  const s = stack.idpStats();
  assert.equal(s.backchannel_logout_ok, 1,
    why(stack, null, `the IdP's back-channel logout POST succeeded: ${JSON.stringify({ ok: s.backchannel_logout_ok, errors: s.backchannel_logout_errors, last: s.backchannel_logout_last_error })}`));

  const after = await c.get(stack.envoyUrl('/anything?after=1'));
  await assertLoginRedirect(stack, after, 'session after back-channel logout');
});

test('lifecycle: back-channel logout endpoint refuses a forged logout_token', { timeout: 60000 }, async (t) => {
  const stack = await stackFor(t, 'lifecycle-backchannel-forged');
  const flow = await login(stack);
  assert.equal(flow.final.status, 200);
  const forgedPayload = Buffer.from(JSON.stringify({
    iss: stack.urls.idp, aud: 'envoy', sub: stack.user.login, iat: Math.floor(Date.now() / 1000), jti: 'x',
    events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
  })).toString('base64url');
  const forged = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${forgedPayload}.`;
  const anon = newClient(stack, 'forger');
  const r = await anon.post(stack.envoyUrl('/backchannel-logout'), { logout_token: forged });
  assert.ok(r.status >= 400 && r.status < 500, why(stack, r, 'forged logout_token must be refused (4xx)'));
  const still = await flow.client.get(stack.envoyUrl('/anything?still=1'));
  assert.equal(still.status, 200, why(stack, still, 'the session survives a forged logout_token'));
});

test('lifecycle: rotating session keys keeps users logged in (Redis store, oidc-authz restarted)', { timeout: 90000, skip: skipFor({ needs: ['process control'] }) }, async (t) => {
  const stack = await stackFor(t, 'lifecycle-key-rotation', { sessionStorage: 'redis' });
  const jwks = await idpJwks(stack);
  const oldKey = stack.config.session_secret;
  const newKey = `rotated-${oldKey}`;
  const returning = await login(stack);
  const away = await login(stack, { client: newClient(stack, 'away') });
  const cookieBefore = sessionCookie(returning.client.jar).value;

  // New key first, old key still accepted: both users stay in; the returning one gets a cookie
  // under the new key (and its session is re-sealed under it).
  await stack.restartAuthz({ session_secret: [newKey, oldKey] });
  const during = await returning.client.get(stack.envoyUrl('/anything?rotating=1'));
  await assertUpstreamGotToken(stack, during, { jwks });
  assert.notEqual(sessionCookie(returning.client.jar).value, cookieBefore, 'cookie re-issued under the new key');

  // Old key removed: the returning user is still in, the one who stayed away logs in again
  // (a login redirect, never an error).
  await stack.restartAuthz({ session_secret: [newKey] });
  const after = await returning.client.get(stack.envoyUrl('/anything?rotated=1'));
  await assertUpstreamGotToken(stack, after, { jwks });
  const stale = await away.client.get(stack.envoyUrl('/anything?stale=1'));
  await assertLoginRedirect(stack, stale, 'a session under a removed key');
});
