// Scenario 5: a real Chromium (Debian's /usr/bin/chromium through playwright-core, no browser
// download) logs in through Envoy + oidc-authz + oidc-provider and lands on httpbin's JSON. With
// E2E_TARGET=compose the first variant runs against the running stack (Keycloak's login page is
// filled by login-driver.mjs). Requests to anything but loopback addresses are aborted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  stackFor, idpJwks, idpOrigin, skipFor, httpbinJson, assertUser,
} from './flows.mjs';
import { decodeJwt, isLoopbackHost } from './client.mjs';
import { browserLogin } from './login-driver.mjs';
import { ARTIFACTS, deadline } from './stack.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync',
];

const VARIANTS = [
  // [name, stack options, screenshot]
  ['form_post, IdP on the same site (127.0.0.1)', {}, 'browser-login.png'],
  // IdP at http://localhost:N, Envoy at http://127.0.0.1:M: the form_post callback is a real
  // cross-site POST, so Chromium applies SameSite to the login cookie.
  ['form_post, IdP on another site (localhost)', { idpHost: 'localhost' }, 'browser-login-cross-site.png'],
  ['query, IdP on another site (localhost)', { idpHost: 'localhost', responseMode: 'query' }, 'browser-login-cross-site-query.png'],
];

for (const [name, opts, screenshot] of VARIANTS) {
  test(`browser: Chromium logs in (${name}) and sees httpbin with a Bearer token`,
  { timeout: 90000, skip: (!fs.existsSync(CHROMIUM) && `no ${CHROMIUM}`) || skipFor({ opts }) }, async (t) => {
    const stack = await stackFor(t, `browser-${screenshot.replace(/\.png$/, '')}`, opts);
    const jwks = await idpJwks(stack);
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-authz-e2e-chromium-'));
    let context;
    // One hook, in order: close Chromium (bounded), then remove its profile. (t.after hooks run in
    // registration order, and a failing one would leave the rest undone.)
    t.after(async () => {
      if (context) await Promise.race([context.close().catch(() => {}), deadline(10000)]);
      try { fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }); } catch { /* tmp */ }
    });

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: 30000,
      viewport: { width: 1000, height: 700 },
    });
    // This workplace allows loopback targets only: anything else is aborted (and makes the test fail).
    const refused = [];
    await context.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (['http:', 'https:'].includes(u.protocol) && !isLoopbackHost(u.hostname)) {
        refused.push(u.href);
        return route.abort('blockedbyclient');
      }
      return route.continue();
    });
    const page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(20000);
    const navLog = fs.createWriteStream(stack.logFile('chromium-navigation'));
    t.after(() => navLog.end());
    const seen = [];
    page.on('request', (req) => { if (req.isNavigationRequest()) { seen.push(req.url()); navLog.write(`${req.method()} ${req.url()}\n`); } });
    page.on('response', (res) => { if (res.request().isNavigationRequest()) navLog.write(`  <- ${res.status()} ${res.url()}\n`); });

    await page.goto(stack.envoyUrl('/anything?hello=world'));
    const form = await browserLogin(page, stack.user);
    navLog.write(`login page: ${form.kind} at ${page.url()}\n`);
    assert.equal(new URL(page.url()).origin, idpOrigin(stack), `on the IdP login page: ${page.url()}`);
    if (screenshot === 'browser-login.png') await page.screenshot({ path: path.join(ARTIFACTS, `browser-login-form${stack.attached ? `-${stack.target}` : ''}.png`) });
    await Promise.all([
      page.waitForURL(stack.envoyUrl('/anything?hello=world'), { timeout: 30000 }),
      form.submit(),
    ]);
    const text = await page.evaluate(() => document.body.innerText);
    await page.screenshot({ path: path.join(ARTIFACTS, stack.attached ? screenshot.replace(/\.png$/, `-${stack.target}.png`) : screenshot), fullPage: true });

    let json;
    try {
      json = httpbinJson(text);
    } catch {
      assert.fail(`the final page is not httpbin JSON: ${text.slice(0, 500)}\n${stack.logTail('oidc-authz', 20)}`);
    }
    assert.equal(json.args.hello, 'world');
    const m = /^Bearer (\S+)$/.exec(json.headers.Authorization ?? '');
    assert.ok(m, `Bearer header at httpbin: ${JSON.stringify(json.headers)}`);
    const jwt = decodeJwt(m[1], jwks);
    assert.equal(jwt.payload.iss, stack.urls.idp);
    assert.equal(jwt.verified, true);
    assertUser(stack, jwt.payload, 'access token');

    // The browser went through the form_post callback and never saw a token in a URL.
    assert.ok(seen.some((u) => new URL(u).href.startsWith(stack.envoyUrl('/callback'))), `went through /callback: ${seen.join('\n')}`);
    for (const u of seen) assert.ok(!/access_token|id_token/.test(u), `token in URL: ${u}`);
    const cookies = await context.cookies(stack.urls.envoy);
    const session = cookies.find((c) => c.name === '__Host-session');
    assert.ok(session, `session cookie in Chromium: ${JSON.stringify(cookies.map((c) => c.name))}`);
    assert.equal(session.httpOnly, true);
    assert.equal(session.secure, true);

    // A reload is served from the session without the IdP (counted at the test IdP; on an attached
    // stack: the reload ends on the same URL with httpbin's answer).
    const before = stack.capabilities.idpStats && stack.idpStats();
    await page.reload();
    assert.equal(page.url(), stack.envoyUrl('/anything?hello=world'));
    const again = httpbinJson(await page.evaluate(() => document.body.innerText));
    assert.equal(again.args.hello, 'world');
    if (before) assert.deepEqual(stack.idpStats(), before, 'reload made no IdP request');
    assert.deepEqual(refused, [], 'requests to non-loopback addresses');
  });
}
