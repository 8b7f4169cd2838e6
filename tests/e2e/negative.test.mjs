// Scenario 4: negative paths through the real Envoy (one stack, Redis session store), including
// client headers spelt with `_` (refused by Envoy before they can shadow ours). With
// E2E_TARGET=compose the ones that stop/start Redis or oidc-authz are skipped (no process control).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  login, sendCallback, assertUpstreamGotToken, sessionCookie, sessionSetCookies, stackFor, why,
  newClient, idpJwks, assertLoginRedirect, skipFor,
} from './flows.mjs';

const PROCESS_CONTROL = { skip: skipFor({ needs: ['process control'] }) };

const hasSessionSet = (res) => sessionSetCookies(res).some((c) => !/^[^=]+=(;|$)/.test(c) && !/max-age=0/i.test(c));

test('negative paths through real Envoy', { timeout: 120000, skip: skipFor({ opts: { sessionStorage: 'redis' } }) }, async (t) => {
  const stack = await stackFor(t, 'negative', { sessionStorage: 'redis' });
  const jwks = await idpJwks(stack);

  // A logged-in client, and the callback it used (for the replay).
  const alice = await login(stack, { client: newClient(stack, 'alice') });
  await assertUpstreamGotToken(stack, alice.final, { jwks });
  const aliceCookie = sessionCookie(alice.client.jar);
  assert.ok(aliceCookie);

  await t.test('no session: page request → 302 to the IdP', async () => {
    const c = newClient(stack, 'anon');
    const r = await c.get(stack.envoyUrl('/anything'));
    await assertLoginRedirect(stack, r);
  });

  await t.test('tampered session cookie → new login redirect (302)', async () => {
    const c = newClient(stack, 'tampered');
    c.jar = alice.client.jar.clone();
    const ck = c.jar.get(aliceCookie.name);
    const v = ck.value;
    const i = Math.floor(v.length / 2);
    ck.value = v.slice(0, i) + (v[i] === 'A' ? 'B' : 'A') + v.slice(i + 1);
    const r = await c.get(stack.envoyUrl('/anything?tampered=1'));
    await assertLoginRedirect(stack, r, 'tampered cookie');
    // Garbage and truncation too.
    for (const bad of ['garbage', v.slice(0, 10), `${v}x`]) {
      ck.value = bad;
      const r2 = await c.get(stack.envoyUrl('/anything'));
      assert.equal(r2.status, 302, why(stack, r2, `cookie value ${bad.slice(0, 20)}…`));
    }
  });

  await t.test('replayed callback (same POST again) → 4xx, no session cookie', async () => {
    const r = await sendCallback(alice.client, alice.callback);
    assert.ok(r.status >= 400 && r.status < 500, why(stack, r, 'replayed callback must be refused with 4xx'));
    assert.ok(!hasSessionSet(r), `no session cookie on a replayed callback: ${JSON.stringify(r.setCookies)}`);
    // A fresh jar replaying it gets nothing either.
    const c = newClient(stack, 'replay-fresh');
    const r2 = await sendCallback(c, alice.callback);
    assert.ok(r2.status >= 400 && r2.status < 500, why(stack, r2, 'replayed callback from a fresh jar'));
    assert.ok(!sessionCookie(c.jar), 'no session cookie');
  });

  await t.test('callback delivered to a different cookie jar → 4xx', async () => {
    // Bob starts a login; Mallory (her own login started) gets Bob's callback.
    const bob = await login(stack, { client: newClient(stack, 'bob'), until: 'callback' });
    const mallory = newClient(stack, 'mallory');
    const mr = await mallory.get(stack.envoyUrl('/anything?m=1'));
    assert.equal(mr.status, 302);
    const r = await sendCallback(mallory, bob.callback);
    assert.ok(r.status >= 400 && r.status < 500, why(stack, r, 'callback with another browser\'s state'));
    assert.ok(!sessionCookie(mallory.jar), `Mallory got no session: ${JSON.stringify(r.setCookies)}`);
    // An empty jar too.
    const empty = newClient(stack, 'empty');
    const r2 = await sendCallback(empty, bob.callback);
    assert.ok(r2.status >= 400 && r2.status < 500, why(stack, r2, 'callback without login cookie'));
    assert.ok(!sessionCookie(empty.jar));
  });

  await t.test('XHR / API request without session → 401 (no redirect)', async () => {
    const c = newClient(stack, 'xhr');
    for (const headers of [{ 'x-requested-with': 'XMLHttpRequest' }, { accept: 'application/json' }]) {
      const r = await c.get(stack.envoyUrl('/anything?xhr=1'), { headers });
      assert.equal(r.status, 401, why(stack, r, `${JSON.stringify(headers)} without session`));
      assert.ok(!r.headers.location, `no Location on 401: ${r.headers.location}`);
    }
  });

  await t.test('client-supplied Authorization: Bearer spoofed is replaced by ours', async () => {
    const r = await alice.client.get(stack.envoyUrl('/anything?spoof=1'), { headers: { authorization: 'Bearer spoofed' } });
    const { json } = await assertUpstreamGotToken(stack, r, { jwks });
    assert.ok(!JSON.stringify(json.headers).includes('spoofed'), `httpbin saw the spoofed header: ${JSON.stringify(json.headers)}`);
    // Without a session the spoofed header gets nowhere.
    const c = newClient(stack, 'spoof-anon');
    const r2 = await c.get(stack.envoyUrl('/anything?spoof=2'), { headers: { authorization: 'Bearer spoofed' } });
    assert.equal(r2.status, 302, why(stack, r2, 'spoofed bearer without session'));
  });

  await t.test('client-supplied x_user: admin (underscore) never reaches httpbin: Envoy answers 400', async () => {
    // CGI/WSGI/Rack/PHP upstreams read x_user and x-user as one variable (HTTP_X_USER), so an
    // underscore copy could shadow a header oidc-authz sets: envoy.yaml rejects such requests.
    for (const [c, label] of [[alice.client, 'with session'], [newClient(stack, 'underscore-anon'), 'without session']]) {
      const r = await c.get(stack.envoyUrl('/anything?underscore=1'), { headers: { x_user: 'admin', 'x_forwarded_email': 'admin@evil.example' } });
      assert.equal(r.status, 400, why(stack, r, `underscore header ${label}`));
      assert.ok(!r.body.includes('admin'), `httpbin never echoed the underscore headers (${label}): ${r.body.slice(0, 300)}`);
    }
    // The same session without them still works.
    const ok = await alice.client.get(stack.envoyUrl('/anything?underscore=0'));
    await assertUpstreamGotToken(stack, ok, { jwks });
  });

  await t.test('client-supplied X-Forwarded-Proto: https is not trusted (Envoy edge config)', async () => {
    const c = newClient(stack, 'xfp');
    const r = await c.get(stack.envoyUrl('/anything?xfp=1'), { headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(r.status, 302, why(stack, r));
    const redirectUri = new URL(r.headers.location).searchParams.get('redirect_uri');
    assert.equal(redirectUri, stack.envoyUrl('/callback'), 'redirect_uri keeps the real scheme (http)');
  });

  await t.test('callback body over 64 KiB → 413 from Envoy', async () => {
    const c = newClient(stack, 'big');
    const r = await c.post(stack.envoyUrl('/callback'), { code: 'x'.repeat(70 * 1024), state: 'y' });
    assert.equal(r.status, 413, why(stack, r));
  });

  await t.test('unknown/garbage callback → 4xx, no session', async () => {
    const c = newClient(stack, 'garbage-callback');
    for (const [method, url, form] of [
      ['GET', stack.envoyUrl('/callback?code=x&state=y'), undefined],
      ['GET', stack.envoyUrl('/callback'), undefined],
      ['POST', stack.envoyUrl('/callback'), { code: 'x', state: 'y' }],
      ['GET', stack.envoyUrl('/callback?error=access_denied&state=y'), undefined],
    ]) {
      const r = await c.request(url, { method, form });
      assert.ok(r.status >= 400 && r.status < 500, why(stack, r, `${method} ${url}`));
      assert.ok(!sessionCookie(c.jar), `no session cookie: ${JSON.stringify(r.setCookies)}`);
    }
  });

  await t.test('Redis down → 503 from Envoy; Redis back on the same port → same session works', PROCESS_CONTROL, async () => {
    const ok = await alice.client.get(stack.envoyUrl('/anything?before=1'));
    await assertUpstreamGotToken(stack, ok, { jwks });

    await stack.stopRedis(); // SHUTDOWN SAVE: the data comes back with the restart
    const down = await alice.client.get(stack.envoyUrl('/anything?down=1'));
    assert.equal(down.status, 503, why(stack, down, 'session lookup with Redis down'));
    assert.ok(!hasSessionSet(down), `no cookie change during the outage: ${JSON.stringify(down.setCookies)}`);
    const anon = await newClient(stack, 'outage-anon').get(stack.envoyUrl('/anything?down=2'));
    assert.ok([302, 503].includes(anon.status), why(stack, anon, 'no-session request during the outage'));

    await stack.startRedis();
    const statuses = [];
    let back;
    for (let i = 0; i < 3; i++) {
      back = await alice.client.get(stack.envoyUrl('/anything?back=1'));
      statuses.push(back.status);
      if (back.status === 200) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(statuses, [200], why(stack, back, `statuses after Redis came back: ${statuses}`));
    await assertUpstreamGotToken(stack, back, { jwks });
  });

  await t.test('oidc-authz restarted (same config, Redis store) → the same session works', PROCESS_CONTROL, async () => {
    await stack.restartAuthz();
    const r = await alice.client.get(stack.envoyUrl('/anything?authz-restarted=1'));
    await assertUpstreamGotToken(stack, r, { jwks });
  });

  await t.test('Redis restarted empty (sessions lost) → login redirect, not an error', PROCESS_CONTROL, async () => {
    await stack.stopRedis({ persist: false });
    await stack.startRedis();
    const r = await alice.client.get(stack.envoyUrl('/anything?lost=1'));
    await assertLoginRedirect(stack, r, 'session unknown after Redis lost its data');
    // And a new login works.
    const again = await login(stack, { client: newClient(stack, 'after-loss') });
    await assertUpstreamGotToken(stack, again.final, { jwks });
  });
});
