// The login driver: recognises the IdP's login page and fills it, for the scripted client (from the
// HTML) and for Chromium (by selector). Known pages:
//
//   keycloak       Keycloak's login.ftl (keycloak.v2 theme, the default of Keycloak 26, and the older
//                  "keycloak" theme): <form id="kc-form-login" action="https://…/login-actions/
//                  authenticate?session_code=…&execution=…&client_id=…&tab_id=…" method="post">,
//                  inputs username (#username) and password (#password), a hidden credentialId,
//                  submit #kc-login (name="login"; a <button> in v2, an <input type=submit> in v1).
//                  Keycloak also sets AUTH_SESSION_ID and KC_RESTART, which the cookie jar keeps.
//   oidc-provider  this repo's test IdP (idp.mjs): <form action="/interaction/<uid>/login">, inputs
//                  login and password, <button type="submit">.
//   lemonldap      LemonLDAP::NG's portal (lemonldap.mjs): <form id="lformDemo" class="login">, inputs
//                  user and password, <button type="submit">.
//   generic        any other form with exactly one password field and a text field before it.
//
// The scripted client takes the action, method and field names from the page (no IdP's URL layout is
// assumed) and sends what a browser sends when the submit button is clicked.
import { parseForms, formData, submitButtons } from './client.mjs';

/** Selectors per known login page, in detection order (Keycloak first: its v1 submit is name="login"). */
export const LOGIN_PAGES = [
  {
    kind: 'keycloak',
    form: 'form#kc-form-login',
    username: '#username',
    password: '#password',
    submit: '#kc-login',
  },
  {
    // LemonLDAP::NG's portal (bootstrap theme): <form id="lform<module>" class="login …">, inputs
    // user and password, a <button type="submit">.
    kind: 'lemonldap',
    form: 'form.login:has(input[name="user"]):has(input[name="password"])',
    username: 'input[name="user"]',
    password: 'input[name="password"]',
    submit: 'button[type="submit"]',
  },
  {
    kind: 'oidc-provider',
    form: 'form:has(input[name="login"]:not([type="submit"])):has(input[type="password"])',
    username: 'input[name="login"]:not([type="submit"])',
    password: 'input[name="password"]',
    submit: 'button[type="submit"], input[type="submit"]',
  },
];

const TEXTY = new Set(['text', 'email', 'tel', 'search', '']);
const USERNAME_NAMES = ['username', 'login', 'email', 'user', 'user_name', 'j_username'];

/**
 * Finds the login form in an IdP page. Returns null when the page has none, else
 *   { kind, form, action, method, usernameField, passwordField, submitter, data(user) }
 * where data({login, password}) is the urlencoded body a browser sends on clicking the submit button.
 */
export function findLoginForm(html, baseUrl) {
  const forms = parseForms(html, baseUrl).filter((f) => f.controls.some((c) => c.type === 'password' && c.name));
  const form = forms.find((f) => f.id === 'kc-form-login') ?? forms[0];
  if (!form) return null;
  const named = form.controls.filter((c) => c.name && !c.disabled);
  const password = named.find((c) => c.type === 'password');
  const texts = named.filter((c) => c.tag === 'input' && TEXTY.has(c.type));
  const username = USERNAME_NAMES.map((n) => texts.find((c) => c.name === n)).find(Boolean)
    ?? texts.filter((c) => form.controls.indexOf(c) < form.controls.indexOf(password)).pop()
    ?? null;
  if (!username) return null;
  const buttons = submitButtons(form);
  const submitter = buttons.find((c) => c.id === 'kc-login') ?? buttons[0] ?? null;
  const kind = form.id === 'kc-form-login' ? 'keycloak'
    : username.name === 'login' && password.name === 'password' ? 'oidc-provider' : 'generic';
  return {
    kind,
    form,
    action: form.action,
    method: form.method,
    usernameField: username.name,
    passwordField: password.name,
    submitter,
    data: (user) => formData(form, {
      values: { [username.name]: user.login, [password.name]: user.password },
      submitter,
    }),
  };
}

/** A short description of an IdP page's error message (Keycloak's #input-error / oidc-provider's #error). */
export function loginError(html) {
  const m = /<(?:span|div|p|pre)\b[^>]*\b(?:id="(?:input-error[^"]*|error)"|class="[^"]*(?:kc-feedback-text|pf-m-error|error)[^"]*")[^>]*>([\s\S]*?)<\/(?:span|div|p|pre)>/i.exec(String(html));
  return m ? m[1].replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim() : null;
}

/**
 * Chromium (playwright-core): waits for one of the known login pages, fills it and clicks submit.
 * Returns the page kind. Does not wait for the navigation the click starts.
 */
export async function browserLogin(page, user, { timeout = 20000 } = {}) {
  await page.waitForSelector(LOGIN_PAGES.map((p) => p.form).join(', '), { timeout });
  for (const p of LOGIN_PAGES) {
    if (!(await page.$(p.form))) continue;
    await page.fill(`${p.form} ${p.username}`, user.login);
    await page.fill(`${p.form} ${p.password}`, user.password);
    return { kind: p.kind, submit: () => page.click(`${p.form} :is(${p.submit})`) };
  }
  throw new Error(`no known login form on ${page.url()}`);
}
