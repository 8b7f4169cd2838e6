// Policies through real Envoy (envoy/envoy.yaml's per-route context_extensions) + oidc-authz +
// oidc-provider + httpbin: a group route the test user is in (/staff/) and one it is not in
// (/admin/: the 403 page, screenshot in artifacts/policy-403.png), the API route (/api/) reached
// with the access token of a real login (a JWT: the test IdP has resource indicators) and refused
// with a forged, an expired and a wrong-audience token, and the public route (/public/).
// The oidc-authz side is tests/e2e/policies.json (merged into the stack's config).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  login, assertUpstreamGotToken, stackFor, why, httpbinJson, skipFor, ATTACHED,
} from './flows.mjs';
import { rawRequest, isLoopbackHost } from './client.mjs';
import { browserLogin } from './login-driver.mjs';
import { ARTIFACTS, deadline } from './stack.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const INVALID_TOKEN = 'Bearer realm="oidc-authz", error="invalid_token"';

const api = (stack, token, pathname = '/api/anything') => rawRequest(stack.envoyUrl(pathname), {
  headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
});

test('policies: the API route takes the access token of a real login, refuses forged, expired and wrong-audience tokens',
  { timeout: 90000, skip: ATTACHED && 'the compose stack has no policies' }, async (t) => {
  // Short-lived access tokens and no leeway, so that a real token expires within the test.
  const stack = await stackFor(t, 'policies-api', {
    accessTokenTtl: 6,
    // `api`: the resource scope the test IdP grants for its resource (policies.json requires it).
    extraConfig: {
      leeway: 0, upstream_id_token_header: 'x-id-token', refresh_margin: 0,
      scopes: ['openid', 'profile', 'email', 'api'],
    },
  });
  const flow = await login(stack, { startPath: '/anything' });
  const { token, jwt, json } = await assertUpstreamGotToken(stack, flow.final);
  assert.equal(jwt.header.typ, 'at+jwt', 'the IdP issues RFC 9068 access tokens');
  const idToken = json.headers['X-Id-Token'];
  assert.ok(idToken, `the ID token reached the upstream: ${JSON.stringify(json.headers)}`);

  const ok = await api(stack, token);
  assert.equal(ok.status, 200, why(stack, ok, `a real access token (scope ${jwt.payload.scope}, aud ${jwt.payload.aud})`));
  const seen = httpbinJson(ok.body).headers;
  assert.equal(seen.Authorization, `Bearer ${token}`, 'the token reaches the API unchanged');
  assert.equal(seen['X-User'], 'alice');

  const none = await api(stack, undefined);
  assert.equal(none.status, 401, why(stack, none, 'no token'));
  assert.equal(none.headers['www-authenticate'], 'Bearer realm="oidc-authz"');
  assert.equal(none.headers.location, undefined, 'an API never gets a redirect');

  const [header, payload] = token.split('.');
  const forged = `${header}.${payload}.${Buffer.alloc(256, 7).toString('base64url')}`;
  const forgedAnswer = await api(stack, forged);
  assert.equal(forgedAnswer.status, 401, why(stack, forgedAnswer, 'forged signature'));
  assert.equal(forgedAnswer.headers['www-authenticate'], INVALID_TOKEN);

  const wrongAudience = await api(stack, idToken);
  assert.equal(wrongAudience.status, 401, why(stack, wrongAudience, 'an ID token (aud: the client) as a bearer token'));
  assert.equal(wrongAudience.headers['www-authenticate'], INVALID_TOKEN);

  const expiresInMs = jwt.payload.exp * 1000 - Date.now();
  await new Promise((r) => setTimeout(r, Math.max(0, expiresInMs) + 1500));
  const expired = await api(stack, token);
  assert.equal(expired.status, 401, why(stack, expired, 'the same token after its exp'));
  assert.equal(expired.headers['www-authenticate'], INVALID_TOKEN);
});

test('policies: the public route passes without a session and sends no identity upstream',
  { timeout: 60000, skip: ATTACHED && 'the compose stack has no policies' }, async (t) => {
  const stack = await stackFor(t, 'policies-public');
  const res = await rawRequest(stack.envoyUrl('/public/anything'), {
    headers: { accept: 'text/html', authorization: 'Bearer spoofed', 'x-user': 'admin' },
  });
  assert.equal(res.status, 200, why(stack, res, 'public page without a session'));
  const seen = httpbinJson(res.body).headers;
  assert.equal(seen.Authorization, undefined, `no Authorization upstream: ${JSON.stringify(seen)}`);
  assert.equal(res.headers['set-cookie'], undefined, 'no login started');
});

test('policies: Chromium passes the group route and gets the 403 page on the other, never a new login',
  { timeout: 90000, skip: (!fs.existsSync(CHROMIUM) && `no ${CHROMIUM}`) || (ATTACHED && 'the compose stack has no policies') || skipFor({}) }, async (t) => {
  const stack = await stackFor(t, 'policies-browser');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-authz-e2e-chromium-'));
  let context;
  t.after(async () => {
    if (context) await Promise.race([context.close().catch(() => {}), deadline(10000)]);
    try { fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }); } catch { /* tmp */ }
  });
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
    viewport: { width: 900, height: 400 },
  });
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (['http:', 'https:'].includes(u.protocol) && !isLoopbackHost(u.hostname)) return route.abort('blockedbyclient');
    return route.continue();
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(20000);

  await page.goto(stack.envoyUrl('/staff/anything'));
  const form = await browserLogin(page, stack.user);
  await Promise.all([page.waitForURL(stack.envoyUrl('/staff/anything'), { timeout: 30000 }), form.submit()]);
  const staff = httpbinJson(await page.evaluate(() => document.body.innerText));
  assert.match(staff.headers.Authorization ?? '', /^Bearer /, 'a member of staff passes with the token');

  const answer = await page.goto(stack.envoyUrl('/admin/anything'));
  assert.equal(answer.status(), 403, `not in admins: ${stack.logTail('oidc-authz', 10)}`);
  assert.equal(page.url(), stack.envoyUrl('/admin/anything'), 'no redirect to the IdP');
  const text = await page.evaluate(() => document.body.innerText);
  assert.match(text, /signed in as alice@example\.test, and this account is not allowed here/);
  assert.ok(await page.$('a[href="/logout"]'), 'a sign-out link');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'policy-403.png'), fullPage: true });

  // The session is intact: the group route still passes.
  const again = await page.goto(stack.envoyUrl('/staff/anything'));
  assert.equal(again.status(), 200);
});
