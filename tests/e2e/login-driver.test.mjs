// Unit tests (no stack): the login driver and form parser on saved Keycloak 26 pages
// (fixtures/), the cookie jar with Keycloak's cookies, the loopback guard, and E2E_TARGET parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseForms, parseForm, formData, CookieJar, isLoopbackHost, rawRequest,
} from './client.mjs';
import { findLoginForm, loginError, LOGIN_PAGES } from './login-driver.mjs';
import { readTarget, skipReason, TargetError, TARGET_PROFILE } from './target.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const fixture = (f) => fs.readFileSync(path.join(HERE, 'fixtures', f), 'utf8');
const KC_PAGE_URL = 'http://keycloak.localhost:8081/realms/demo/protocol/openid-connect/auth?client_id=envoy&response_type=code';

test('Keycloak 26 login page (keycloak.v2): action, method and fields come from the HTML', () => {
  const html = fixture('keycloak-login.html');
  // The only form is #kc-form-login: the one in a <script> string is not markup.
  const forms = parseForms(html, KC_PAGE_URL);
  assert.deepEqual(forms.map((f) => f.id), ['kc-form-login']);

  const f = findLoginForm(html, KC_PAGE_URL);
  assert.ok(f, 'login form found');
  assert.equal(f.kind, 'keycloak');
  assert.equal(f.method, 'POST');
  const action = new URL(f.action);
  assert.equal(`${action.origin}${action.pathname}`, 'http://keycloak.localhost:8081/realms/demo/login-actions/authenticate');
  // &amp; in the attribute decoded: the query parameters are separate.
  assert.equal(action.searchParams.get('session_code'), 'J6oJ0b4c0tTz8Vd1rU3hN2cFqk9sXwYpL5mAeGiR7vE');
  assert.equal(action.searchParams.get('execution'), '7f3a1c2e-9b8d-4e6f-a5c4-3d2b1a0f9e8d');
  assert.equal(action.searchParams.get('client_id'), 'envoy');
  assert.equal(action.searchParams.get('tab_id'), 'Qm2v0cRr1Xk');
  assert.ok(action.searchParams.get('client_data'));
  assert.equal(f.usernameField, 'username');
  assert.equal(f.passwordField, 'password');
  assert.equal(f.submitter.id, 'kc-login');
  assert.equal(f.submitter.name, 'login');

  // What a browser sends on clicking "Sign In": the fields, the hidden credentialId, login=
  // (a <button> without value); not the type=button password-visibility toggle.
  assert.deepEqual(f.data({ login: 'alice', password: 'wonderland' }), {
    username: 'alice', password: 'wonderland', credentialId: '', login: '',
  });
  // form.submit() semantics (no submitter) for the same form.
  assert.deepEqual(f.form.inputs, { username: '', password: '', credentialId: '' });
});

test('Keycloak login page, older "keycloak" theme: submit is <input type=submit name=login>', () => {
  const html = `<div id="kc-form-wrapper">
    <form id="kc-form-login" onsubmit="login.disabled = true; return true;" action="http://keycloak.localhost:8081/realms/demo/login-actions/authenticate?session_code=abc&amp;execution=e1&amp;client_id=envoy&amp;tab_id=t1" method="post">
      <div class="form-group"><label for="username" class="pf-c-form__label pf-c-form__label-text">Username or email</label>
        <input tabindex="1" id="username" class="pf-c-form-control" name="username" value="" type="text" autofocus autocomplete="off" aria-invalid="" /></div>
      <div class="form-group"><label for="password" class="pf-c-form__label pf-c-form__label-text">Password</label>
        <input tabindex="2" id="password" class="pf-c-form-control" name="password" type="password" autocomplete="off" aria-invalid="" /></div>
      <div class="form-group login-pf-settings"><div id="kc-form-options"></div></div>
      <div id="kc-form-buttons" class="form-group">
        <input type="hidden" id="id-hidden-input" name="credentialId" />
        <input tabindex="4" class="pf-c-button pf-m-primary pf-m-block btn-lg" name="login" id="kc-login" type="submit" value="Sign In"/>
      </div>
    </form></div>`;
  const f = findLoginForm(html, KC_PAGE_URL);
  assert.equal(f.kind, 'keycloak');
  // name="login" is the submit button here, not the user field.
  assert.equal(f.usernameField, 'username');
  assert.deepEqual(f.data({ login: 'alice', password: 'pw' }), {
    username: 'alice', password: 'pw', credentialId: '', login: 'Sign In',
  });
  assert.equal(new URL(f.action).searchParams.get('execution'), 'e1');
});

test("Keycloak login page after a wrong password: the driver reports Keycloak's message", () => {
  const html = fixture('keycloak-login.html').replace('<div id="input-error-container-username">',
    '<div id="input-error-container-username"><div class="pf-v5-c-helper-text" aria-live="polite"><div class="pf-v5-c-helper-text__item pf-m-error" id="input-error-username">'
    + '<span class="pf-v5-c-helper-text__item-text">Invalid username or password.</span></div></div>');
  assert.ok(findLoginForm(html, KC_PAGE_URL), 'still a login page');
  assert.match(loginError(html), /Invalid username or password\./);
});

test("the test IdP's (oidc-provider) login page markup is recognised too", () => {
  // idp.mjs loginPage(): relative action, inputs login/password, <button type="submit">.
  const html = `<h1>Sign in</h1><form method="post" action="/interaction/uid123/login" autocomplete="off">
<label for="login">Username</label><input id="login" name="login" value="" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<button type="submit" id="submit">Sign in</button></form>`;
  const f = findLoginForm(html, 'http://127.0.0.1:9000/interaction/uid123');
  assert.equal(f.kind, 'oidc-provider');
  assert.equal(f.action, 'http://127.0.0.1:9000/interaction/uid123/login');
  assert.deepEqual(f.data({ login: 'alice', password: 'wonderland' }), { login: 'alice', password: 'wonderland' });
});

test('the Chromium selectors tell the two pages apart', () => {
  assert.deepEqual(LOGIN_PAGES.map((p) => p.kind), ['keycloak', 'lemonldap', 'oidc-provider']);
  const kc = LOGIN_PAGES[0];
  assert.equal(kc.form, 'form#kc-form-login');
  assert.equal(kc.username, '#username');
  assert.equal(kc.password, '#password');
  assert.equal(kc.submit, '#kc-login');
  // The oidc-provider selector excludes Keycloak v1's <input type=submit name=login>.
  assert.match(LOGIN_PAGES[2].username, /:not\(\[type="submit"\]\)/);
});

test("Keycloak's form_post page: action and hidden inputs, not the NOSCRIPT submit", () => {
  const html = fixture('keycloak-form-post.html');
  const f = parseForm(html, 'http://keycloak.localhost:8081/realms/demo/login-actions/authenticate?session_code=x');
  assert.equal(f.method, 'POST');
  assert.equal(f.action, 'http://localhost:8000/callback');
  assert.deepEqual(f.inputs, {
    state: 'b3Jp-Z2luYWwtc3RhdGUtMDEyMzQ1Njc4OWFi',
    session_state: '5d1c7a52-3f0e-4f6b-9a1e-2c8d4b7e6f10',
    iss: 'http://keycloak.localhost:8081/realms/demo',
    code: '0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a.5d1c7a52-3f0e-4f6b-9a1e-2c8d4b7e6f10.7c2f1e0d-9a8b-4c7d-8e6f-5a4b3c2d1e0f',
  });
  assert.equal(findLoginForm(html, 'http://keycloak.localhost:8081/'), null, 'not a login page');
});

test('form parser: entities, quoting styles, checkboxes, disabled, form= attribute, nested forms', () => {
  const html = `<form id=a action='/x?a=1&amp;b=&quot;2&quot;' method=POST>
    <input name=u value=unquoted><input name="c1" type="checkbox"><input name="c2" type="checkbox" checked>
    <input name="r" type="radio" value="1"><input name="r" type="radio" value="2" checked>
    <input name="d" value="x" disabled><textarea name="t">a &lt;b&gt;</textarea>
    <form action="/ignored"><input name="inner" value="1"></form>
    <input name="after" value="ignored: the inner </form> closed a">
  </form>
  <button form="a" name="ext" value="v" type="submit">outside</button>
  <form action=""><input type="image" name="img"></form>`;
  const [a, b] = parseForms(html, 'http://127.0.0.1:8000/page?q=1');
  assert.equal(a.action, 'http://127.0.0.1:8000/x?a=1&b=%222%22');
  assert.equal(a.method, 'POST');
  assert.deepEqual(a.inputs, { u: 'unquoted', c2: 'on', r: '2', t: 'a <b>', inner: '1' });
  assert.deepEqual(formData(a, { submitter: true }), { u: 'unquoted', c2: 'on', r: '2', t: 'a <b>', inner: '1', ext: 'v' });
  assert.equal(b.action, 'http://127.0.0.1:8000/page?q=1', 'empty action = the document URL');
  assert.equal(b.method, 'GET');
  assert.deepEqual(b.inputs, {});
});

test("cookie jar keeps Keycloak's AUTH_SESSION_ID / KC_RESTART for the login POST (http on *.localhost)", () => {
  const jar = new CookieJar();
  jar.store([
    'AUTH_SESSION_ID=Zm9vLmtleWNsb2FrLTE.node-1; Version=1; Path=/realms/demo/; SameSite=None; Secure; HttpOnly',
    'KC_RESTART=eyJhbGciOiJIUzUxMiJ9.e30.sig; Version=1; Path=/realms/demo/; HttpOnly',
    'KC_AUTH_SESSION_HASH="c2Vzc2lvbmhhc2g"; Version=1; Max-Age=60; Path=/realms/demo/; SameSite=Strict; Secure',
  ], KC_PAGE_URL);
  const header = jar.header('http://keycloak.localhost:8081/realms/demo/login-actions/authenticate?session_code=x');
  assert.match(header, /AUTH_SESSION_ID=Zm9vLmtleWNsb2FrLTE\.node-1/);
  assert.match(header, /KC_RESTART=eyJ/);
  assert.match(header, /KC_AUTH_SESSION_HASH=/);
  assert.equal(jar.header('http://localhost:8000/callback'), null, 'not sent to Envoy');
  assert.equal(jar.header('http://keycloak.localhost:8081/admin/'), null, 'not outside the realm path');
});

test('loopback guard: only 127/8, ::1, localhost and *.localhost', async () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '[::1]', '::1', 'localhost', 'keycloak.localhost', 'KEYCLOAK.LOCALHOST.']) {
    assert.equal(isLoopbackHost(h), true, h);
  }
  for (const h of ['10.0.0.1', '192.168.1.2', '0.0.0.0', '[::]', 'example.com', 'localhost.example.com', 'keycloak', '128.0.0.1']) {
    assert.equal(isLoopbackHost(h), false, h);
  }
  await assert.rejects(rawRequest('http://example.com/'), /only contact loopback/);
  await assert.rejects(rawRequest('http://10.0.0.1:8000/'), /only contact loopback/);
});

test('E2E_TARGET: local by default; compose/external attach with loopback URLs only', () => {
  assert.equal(readTarget({}).attached, false);
  assert.equal(readTarget({ E2E_TARGET: 'local' }).attached, false);
  const t = readTarget({ E2E_TARGET: 'compose' });
  assert.equal(t.attached, true);
  assert.equal(t.envoyUrl, 'http://localhost:8000');
  assert.equal(t.authzAdminUrl, 'http://127.0.0.1:9192');
  assert.deepEqual(t.user, { login: 'alice', password: 'wonderland' });
  const e = readTarget({
    E2E_TARGET: 'external', E2E_ENVOY_URL: 'http://127.0.0.1:18000/', E2E_AUTHZ_ADMIN_URL: 'http://[::1]:19192',
    E2E_USER: 'bob', E2E_PASSWORD: 'pw', E2E_ISSUER: 'http://keycloak.localhost:8081/realms/demo',
  });
  assert.equal(e.envoyUrl, 'http://127.0.0.1:18000');
  assert.equal(e.authzAdminUrl, 'http://[::1]:19192');
  assert.equal(e.issuer, 'http://keycloak.localhost:8081/realms/demo');
  assert.deepEqual(e.user, { login: 'bob', password: 'pw' });
  for (const env of [
    { E2E_TARGET: 'compose', E2E_ENVOY_URL: 'http://192.168.1.10:8000' },
    { E2E_TARGET: 'compose', E2E_AUTHZ_ADMIN_URL: 'http://example.com:9192' },
    { E2E_TARGET: 'compose', E2E_ISSUER: 'https://idp.example.com/realms/demo' },
    { E2E_TARGET: 'compose', E2E_ENVOY_URL: 'http://localhost:8000/app' },
    { E2E_TARGET: 'staging' },
  ]) {
    assert.throws(() => readTarget(env), TargetError, JSON.stringify(env));
  }
  assert.throws(() => readTarget({ E2E_TARGET: 'compose', E2E_ENVOY_URL: 'http://10.1.1.1:8000' }), /only target loopback/);
});

test('skip reasons under an attached target; none locally', () => {
  const compose = readTarget({ E2E_TARGET: 'compose' });
  const local = readTarget({});
  assert.equal(skipReason({ needs: ['process control'] }, local), false);
  assert.equal(skipReason({ needs: ['process control'] }, compose), 'needs process control: not available with E2E_TARGET=compose');
  assert.match(skipReason({ needs: ['test IdP'] }, compose), /test IdP.*not available with E2E_TARGET=compose/);
  // Scenarios matching the compose configuration run.
  assert.equal(skipReason({ opts: {} }, compose), false);
  assert.equal(skipReason({ opts: { sessionStorage: 'redis' } }, compose), false);
  // Others are skipped with the reason.
  assert.match(skipReason({ opts: { responseMode: 'query' } }, compose), /response_mode: query.*runs response_mode: form_post/);
  assert.match(skipReason({ opts: { pkce: 'never' } }, compose), /pkce: never/);
  assert.match(skipReason({ opts: { clientAuth: 'client_secret_post' } }, compose), /client_auth/);
  assert.match(skipReason({ opts: { sessionStorage: 'memory' } }, compose), /session_storage: memory/);
  assert.match(skipReason({ opts: { idpHost: 'localhost' } }, compose), /harness configures \(idpHost\)/);
  assert.match(skipReason({ opts: { accessTokenTtl: 4 } }, compose), /harness configures/);
});

test("the attached-target profile is deploy/compose/oidc-authz.yaml's configuration", () => {
  const y = fs.readFileSync(path.join(HERE, '..', '..', 'deploy', 'compose', 'oidc-authz.yaml'), 'utf8');
  const value = (k) => new RegExp(`^${k}:\\s*([^\\s#]+)`, 'm').exec(y)?.[1];
  assert.equal(value('response_mode'), TARGET_PROFILE.responseMode);
  assert.equal(value('pkce'), TARGET_PROFILE.pkce);
  assert.equal(value('client_auth'), TARGET_PROFILE.clientAuth);
  assert.equal(value('session_storage'), TARGET_PROFILE.sessionStorage);
  assert.equal(value('session_cookie_name'), 'session', 'the scenarios expect the cookie __Host-session');
  assert.equal(value('session_cookie_secure'), 'always');
  assert.equal(value('client_id'), 'envoy');
  assert.equal(value('upstream_access_token_header'), '"authorization:bearer"');
  assert.equal(value('logout_path'), '/logout');
  assert.ok(isLoopbackHost(new URL(value('issuer')).hostname), 'the compose issuer is a loopback name for the host');
});
