// LemonLDAP::NG as the IdP (Debian's lemonldap-ng 2.16 on 127.0.0.2, started and configured by
// lemonldap.mjs; user dwho/dwho) with a real Chromium: login in query and form_post mode, the
// session reused without the IdP, a refresh with a short access-token lifetime, RP-initiated
// logout through LemonLDAP::NG's confirmation page, a refused consent (error=consent_required →
// our 403 page) and front-channel logout (a logout at the IdP ends our session through the iframe
// it renders). Skipped when lemonldap-ng or Chromium is not installed, and with E2E_TARGET=compose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { stackFor, skipFor, httpbinJson, eventually } from './flows.mjs';
import { decodeJwt, isLoopbackHost, rawRequest } from './client.mjs';
import { browserLogin } from './login-driver.mjs';
import { ARTIFACTS, deadline } from './stack.mjs';
import { lemonldapMissing } from './lemonldap.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync',
];
const CLAIMS_CONFIG = {
  upstream_headers_claims: ['email', 'name'],
  upstream_headers_names: ['x-user-email', 'x-user-name'],
  upstream_id_token_header: 'x-id-token',
  frontchannel_logout_path: '/frontchannel-logout',
  // LemonLDAP::NG 2.16 sends the user's id as `sid` (and no `sid` claim in the ID token).
  frontchannel_logout_sid_claim: 'sub',
};
const skip = (opts) => (!fs.existsSync(CHROMIUM) && `no ${CHROMIUM}`)
  || lemonldapMissing()
  || skipFor({ opts });

/** A Chromium with its own profile, closed (bounded) after the test; only loopback requests. */
async function browser(t, stack) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-authz-e2e-llng-'));
  let context;
  t.after(async () => {
    if (context) await Promise.race([context.close().catch(() => {}), deadline(10000)]);
    try { fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }); } catch { /* tmp */ }
  });
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30000, viewport: { width: 1000, height: 700 },
  });
  const refused = [];
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (['http:', 'https:'].includes(u.protocol) && !isLoopbackHost(u.hostname)) {
      refused.push(u.href);
      return route.abort('blockedbyclient');
    }
    return route.continue();
  });
  t.after(() => assert.deepEqual(refused, [], 'requests to non-loopback addresses'));
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(20000);
  const navLog = fs.createWriteStream(stack.logFile('chromium-navigation'));
  t.after(() => navLog.end());
  const seen = [];
  page.on('request', (req) => {
    seen.push(req.url());
    navLog.write(`${req.method()} ${req.url()}${req.isNavigationRequest() ? ' (navigation)' : ''}\n`);
  });
  page.on('response', (res) => navLog.write(`  <- ${res.status()} ${res.url()}\n`));
  return { context, page, seen, log: (line) => navLog.write(`${line}\n`) };
}

/** Logs in at LemonLDAP::NG from `target` and returns httpbin's JSON of the page we land on. */
async function browserLoginAt(stack, { page }, target = '/anything?hello=world') {
  await page.goto(stack.envoyUrl(target));
  const form = await browserLogin(page, stack.user);
  assert.equal(form.kind, 'lemonldap');
  assert.equal(new URL(page.url()).origin, stack.urls.idp, `on the IdP login page: ${page.url()}`);
  await Promise.all([page.waitForURL(stack.envoyUrl(target), { timeout: 30000 }), form.submit()]);
  return pageJson(stack, page);
}

async function pageJson(stack, page) {
  const text = await page.evaluate(() => document.body.innerText);
  try {
    return httpbinJson(text);
  } catch {
    return assert.fail(`not httpbin JSON at ${page.url()}: ${text.slice(0, 400)}\n${stack.logTail('oidc-authz', 20)}`);
  }
}

function bearer(json) {
  const m = /^Bearer (\S+)$/.exec(json.headers.Authorization ?? '');
  assert.ok(m, `Bearer header at httpbin: ${JSON.stringify(json.headers)}`);
  return m[1];
}

async function jwks(stack) {
  const meta = await stack.discovery();
  const r = await rawRequest(meta.jwks_uri, { timeoutMs: 10000 });
  assert.equal(r.status, 200, `GET ${meta.jwks_uri}`);
  return JSON.parse(r.body);
}

for (const responseMode of ['query', 'form_post']) {
  test(`lemonldap: Chromium logs in (${responseMode}); the session is reused without the IdP; claims reach the upstream`,
  { timeout: 90000, skip: skip({ responseMode, idp: 'lemonldap' }) }, async (t) => {
    const stack = await stackFor(t, `lemonldap-login-${responseMode}`, {
      idp: 'lemonldap', responseMode, extraConfig: CLAIMS_CONFIG,
    });
    const b = await browser(t, stack);
    const json = await browserLoginAt(stack, b);
    assert.equal(json.args.hello, 'world');
    const jwt = decodeJwt(bearer(json), await jwks(stack));
    assert.equal(jwt.verified, true, 'access token verifies with the IdP JWKS');
    assert.equal(jwt.payload.iss, stack.urls.idp);
    assert.equal(json.headers['X-User-Email'], 'dwho@badwolf.org', `claims: ${JSON.stringify(json.headers)}`);
    assert.equal(json.headers['X-User-Name'], 'Doctor Who');
    const idToken = decodeJwt(json.headers['X-Id-Token'], await jwks(stack));
    b.log(`ID token claims: ${JSON.stringify(idToken.payload)}`);
    // The IdP's cookies live on 127.0.0.2: none reaches the upstream on 127.0.0.1.
    assert.ok(!/lemonldap/.test(json.headers.Cookie ?? ''), `IdP cookie upstream: ${json.headers.Cookie}`);
    const callback = b.seen.find((u) => u.startsWith(stack.envoyUrl('/callback')));
    assert.ok(callback, 'went through /callback');
    if (responseMode === 'query') assert.match(callback, /[?&]code=/);
    else assert.doesNotMatch(callback, /code=/);
    await b.page.screenshot({ path: path.join(ARTIFACTS, `lemonldap-login-${responseMode}.png`) });

    stack.resetIdpStats();
    await b.page.reload();
    assert.equal(bearer(await pageJson(stack, b.page)), bearer(json), 'same token');
    assert.equal(stack.idpStats().requests, 0, 'a reload makes no IdP request');
  });
}

test('lemonldap: a short-lived access token is refreshed at the IdP, once',
{ timeout: 90000, skip: skip({ idp: 'lemonldap', accessTokenTtl: 3 }) }, async (t) => {
  const stack = await stackFor(t, 'lemonldap-refresh', {
    idp: 'lemonldap', accessTokenTtl: 3, extraConfig: { refresh_margin: 1 },
  });
  const b = await browser(t, stack);
  const first = bearer(await browserLoginAt(stack, b));
  stack.resetIdpStats();
  await new Promise((r) => setTimeout(r, 2500));
  await b.page.reload();
  const second = bearer(await pageJson(stack, b.page));
  assert.notEqual(second, first, 'a new access token');
  assert.equal(decodeJwt(second, await jwks(stack)).verified, true);
  assert.equal(stack.idpStats().token, 1, `one token request: ${JSON.stringify(stack.idpStats())}`);
  await b.page.reload();
  assert.equal(bearer(await pageJson(stack, b.page)), second, 'the refreshed token is kept');
});

test('lemonldap: RP-initiated logout goes through its confirmation page and ends the session',
{ timeout: 90000, skip: skip({ idp: 'lemonldap' }) }, async (t) => {
  const stack = await stackFor(t, 'lemonldap-logout', { idp: 'lemonldap' });
  const b = await browser(t, stack);
  await browserLoginAt(stack, b);
  await b.page.goto(stack.envoyUrl('/logout'));
  // LemonLDAP::NG asks "Do you want to logout?" (its confirm form).
  assert.equal(new URL(b.page.url()).origin, stack.urls.idp, `at the IdP: ${b.page.url()}`);
  await b.page.waitForSelector('form.confirm button.positive');
  const [confirmed] = await Promise.all([
    b.page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/oauth2/logout'),
    b.page.click('form.confirm button.positive'),
  ]);
  assert.equal(confirmed.status(), 200, 'the IdP logged out (its page lists the RPs it logs out)');
  // Both sessions are gone: our page starts a new login, and the IdP shows its login form.
  await b.page.goto(stack.envoyUrl('/anything'));
  const form = await browserLogin(b.page, stack.user);
  assert.equal(form.kind, 'lemonldap', `a new login at the IdP: ${b.page.url()}`);
});

test('lemonldap: a refused consent ends at our 403 page',
{ timeout: 90000, skip: skip({ idp: 'lemonldap', lemonldap: { bypassConsent: false } }) }, async (t) => {
  const stack = await stackFor(t, 'lemonldap-consent', { idp: 'lemonldap', lemonldap: { bypassConsent: false } });
  const b = await browser(t, stack);
  await b.page.goto(stack.envoyUrl('/anything'));
  const form = await browserLogin(b.page, stack.user);
  await form.submit();
  await b.page.waitForSelector('form.confirm #refuse');
  const [response] = await Promise.all([
    b.page.waitForResponse((r) => r.url().startsWith(stack.envoyUrl('/callback')), { timeout: 20000 }),
    b.page.click('form.confirm #refuse'),
  ]);
  assert.match(response.url(), /[?&]error=consent_required/);
  assert.equal(response.status(), 403);
  assert.match(await response.text(), /did not allow this login/);
  await b.page.goto(stack.envoyUrl('/anything'));
  assert.equal(new URL(b.page.url()).origin, stack.urls.idp, 'no session: back to the IdP');
});

test('lemonldap: a logout at the IdP ends our session through front-channel logout',
{ timeout: 90000, skip: skip({ idp: 'lemonldap' }) }, async (t) => {
  const stack = await stackFor(t, 'lemonldap-frontchannel', { idp: 'lemonldap', extraConfig: CLAIMS_CONFIG });
  const b = await browser(t, stack);
  await browserLoginAt(stack, b);
  const frontchannel = b.page.waitForResponse((r) => r.url().startsWith(stack.envoyUrl('/frontchannel-logout')), { timeout: 20000 });
  // The IdP's own logout (its portal, not ours): it renders an iframe for each RP of the session.
  await b.page.goto(new URL('/?logout=1', stack.urls.idp).href);
  const response = await frontchannel;
  const url = new URL(response.url());
  b.log(`front-channel logout: ${response.status()} ${url.pathname} iss=${url.searchParams.get('iss')}`);
  assert.equal(url.searchParams.get('iss'), stack.urls.idp);
  assert.equal(response.status(), 200, `front-channel logout answer: ${await response.text()}`);
  assert.equal(response.headers()['cache-control'], 'no-cache, no-store');
  // Our session is gone: the next page load starts a login.
  const r = await eventually(async () => {
    const res = await rawRequest(stack.envoyUrl('/anything'), {
      headers: { accept: 'text/html', cookie: (await b.context.cookies(stack.urls.envoy)).map((c) => `${c.name}=${c.value}`).join('; ') },
    });
    return res.status === 302 ? res : null;
  });
  assert.ok(r, `session still alive after the IdP's logout\n${stack.logTail('oidc-authz', 20)}`);
});
