// A scripted HTTP client for the e2e tests: its own cookie jar, no automatic redirects (each hop is
// recorded and can be inspected), a hard timeout per request, and small HTML form helpers.
//
// Only loopback addresses are ever contacted: 127.0.0.0/8, [::1], localhost and *.localhost (RFC 6761;
// the compose stack's Keycloak is http://keycloak.localhost:8081). Names under .localhost are
// resolved to 127.0.0.1 here, without DNS or /etc/hosts, like Chromium does; any other host name is
// refused before a connection is made.
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

/** True for loopback hosts: 127.0.0.0/8, ::1 (also as [::1]), localhost and *.localhost. */
export function isLoopbackHost(hostname) {
  const h = String(hostname).toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.split('.')[0] === '127';
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return Boolean(m && m[1].split('.')[0] === '127');
  }
  return false;
}

/** dns.lookup replacement for http.request: localhost and *.localhost -> 127.0.0.1; nothing else. */
export function loopbackLookup(hostname, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  const h = String(hostname).toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) {
    if (options?.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
    return;
  }
  const err = new Error(`refusing to resolve ${hostname}: the e2e tests only contact loopback addresses`);
  err.code = 'ENOTFOUND';
  callback(err);
}

// Hosts on which Secure cookies are kept over plain http (Chromium treats them as secure contexts).
const LOOPBACK = { has: (host) => isLoopbackHost(host) };

/** RFC 6265-ish cookie jar. Keeps `Secure` cookies for loopback hosts over http (like Chromium). */
export class CookieJar {
  constructor() { this.cookies = []; }

  static parse(setCookie, url) {
    const [pair, ...attrs] = setCookie.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return null;
    const c = {
      name: pair.slice(0, eq).trim(),
      value: pair.slice(eq + 1).trim(),
      domain: url.hostname,
      hostOnly: true,
      path: null,
      secure: false,
      httpOnly: false,
      sameSite: null,
      expires: null, // ms epoch; null = session cookie
      raw: setCookie,
    };
    for (const a of attrs) {
      const i = a.indexOf('=');
      const k = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase();
      const v = i < 0 ? '' : a.slice(i + 1).trim();
      if (k === 'path' && v.startsWith('/')) c.path = v;
      else if (k === 'domain' && v) { c.domain = v.replace(/^\./, '').toLowerCase(); c.hostOnly = false; }
      else if (k === 'secure') c.secure = true;
      else if (k === 'httponly') c.httpOnly = true;
      else if (k === 'samesite') c.sameSite = v;
      else if (k === 'max-age') c.expires = Date.now() + Number(v) * 1000;
      else if (k === 'expires' && c.expires === null) {
        const t = Date.parse(v);
        if (!Number.isNaN(t)) c.expires = t;
      }
    }
    if (c.path === null) {
      const p = url.pathname;
      c.path = p.lastIndexOf('/') > 0 ? p.slice(0, p.lastIndexOf('/')) : '/';
    }
    return c;
  }

  store(setCookies, url) {
    url = new URL(url);
    for (const sc of setCookies ?? []) {
      const c = CookieJar.parse(sc, url);
      if (!c) continue;
      if (c.secure && url.protocol !== 'https:' && !LOOPBACK.has(url.hostname)) continue;
      if (c.name.startsWith('__Host-') && (!c.secure || c.path !== '/' || !c.hostOnly)) continue;
      if (c.name.startsWith('__Secure-') && !c.secure) continue;
      this.cookies = this.cookies.filter((o) => !(o.name === c.name && o.domain === c.domain && o.path === c.path));
      if (c.expires !== null && c.expires <= Date.now()) continue; // deletion
      this.cookies.push(c);
    }
  }

  matching(url) {
    url = new URL(url);
    const now = Date.now();
    this.cookies = this.cookies.filter((c) => c.expires === null || c.expires > now);
    const host = url.hostname.toLowerCase();
    return this.cookies
      .filter((c) => (c.hostOnly ? host === c.domain : host === c.domain || host.endsWith(`.${c.domain}`)))
      .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .filter((c) => !c.secure || url.protocol === 'https:' || LOOPBACK.has(host))
      .sort((a, b) => b.path.length - a.path.length);
  }

  header(url) {
    const m = this.matching(url);
    return m.length ? m.map((c) => `${c.name}=${c.value}`).join('; ') : null;
  }

  get(name) { return this.cookies.find((c) => c.name === name); }

  set(name, value, url, attrs = {}) {
    url = new URL(url);
    this.cookies = this.cookies.filter((c) => c.name !== name);
    this.cookies.push({ name, value, domain: url.hostname, hostOnly: true, path: '/', secure: false, httpOnly: false, sameSite: null, expires: null, raw: '', ...attrs });
  }

  clone() {
    const j = new CookieJar();
    j.cookies = this.cookies.map((c) => ({ ...c }));
    return j;
  }
}

/** One request, no redirects followed. Resolves to { status, headers, setCookies, body, url }. */
export function rawRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 15000 } = {}) {
  url = new URL(url);
  if (url.protocol !== 'http:') return Promise.reject(new Error(`refusing ${url.href}: the e2e client speaks plain http only`));
  if (!isLoopbackHost(url.hostname)) {
    return Promise.reject(new Error(`refusing a request to ${url.href}: the e2e tests only contact loopback addresses`));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: timeoutMs, lookup: loopbackLookup }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        resolve({
          status: res.statusCode,
          headers: res.headers,
          setCookies: res.headers['set-cookie'] ?? [],
          body: Buffer.concat(chunks).toString('utf8'),
          url: url.href,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url.href}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A "browser": cookie jar + history of every request (method, url, status, location). */
export class Client {
  constructor({ jar = new CookieJar(), userAgent = 'oidc-authz-e2e/1', log, trace } = {}) {
    this.jar = jar;
    this.trace = trace;
    this.userAgent = userAgent;
    this.history = [];
    this.log = log;
  }

  async request(url, { method = 'GET', headers = {}, form, body, timeoutMs } = {}) {
    url = new URL(url);
    const h = { 'user-agent': this.userAgent, accept: 'text/html,application/xhtml+xml,*/*;q=0.8', ...headers };
    const cookie = this.jar.header(url);
    if (cookie && !Object.keys(h).some((k) => k.toLowerCase() === 'cookie')) h.cookie = cookie;
    if (form !== undefined) {
      body = new URLSearchParams(form).toString();
      h['content-type'] = 'application/x-www-form-urlencoded';
    }
    if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
    this.trace?.(`sending ${method} ${url.href}`);
    const res = await rawRequest(url, { method, headers: h, body, timeoutMs });
    this.jar.store(res.setCookies, url);
    const entry = { method, url: url.href, status: res.status, location: res.headers.location ?? null };
    this.history.push(entry);
    this.log?.(`${method} ${url.href} -> ${res.status}${entry.location ? ` ${entry.location}` : ''}`);
    return res;
  }

  get(url, opts = {}) { return this.request(url, { ...opts, method: 'GET' }); }

  post(url, form, opts = {}) { return this.request(url, { ...opts, method: 'POST', form }); }

  /** Follows redirects (GET) until a non-3xx answer; at most maxHops. */
  async follow(res, { maxHops = 10, stopAt } = {}) {
    for (let i = 0; i < maxHops; i++) {
      if (res.status < 300 || res.status >= 400 || !res.headers.location) return res;
      const next = new URL(res.headers.location, res.url);
      if (stopAt && stopAt(next)) return res;
      res = await this.get(next);
    }
    throw new Error(`too many redirects (last: ${res.url})`);
  }

  visited() { return this.history.map((h) => h.url).concat(this.history.map((h) => h.location).filter(Boolean)); }
}

// ---------------------------------------------------------------- HTML forms

const TAG = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s"'>\/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*\/?>/g;
const ATTR = /([^\s"'>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;

function parseAttrs(s) {
  const a = {};
  for (const m of s.matchAll(ATTR)) {
    const k = m[1].toLowerCase();
    if (!(k in a)) a[k] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return a;
}

const NOT_SENT_BY_DEFAULT = new Set(['submit', 'image', 'reset', 'button', 'file']);
const SUBMIT_TYPES = new Set(['submit', 'image']);

/**
 * Parses every <form> of an HTML page, like a browser builds its form list (comments, <script>,
 * <style> ignored; a <form> inside an open form ignored; controls outside a form attached through
 * their form="id" attribute). Each form:
 *   { id, name, action (absolute), method ('GET'|'POST'), inputs, controls }
 * inputs   what form.submit() sends (the auto-submitting form_post and logout pages): every named,
 *          enabled control except buttons and unchecked checkboxes/radios, {name: value}
 * controls every control: { tag, type, name, value, id, checked, disabled, attrs }
 */
export function parseForms(html, baseUrl) {
  const text = String(html)
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<(script|style)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, '');
  const forms = [];
  const orphans = [];
  let open = null;
  for (const m of text.matchAll(TAG)) {
    const [, close, rawTag, rawAttrs] = m;
    const tag = rawTag.toLowerCase();
    if (tag === 'form') {
      if (close) { open = null; continue; }
      if (open) continue; // nested <form>: browsers ignore it
      const a = parseAttrs(rawAttrs);
      open = {
        id: a.id ?? null,
        name: a.name ?? null,
        action: new URL(a.action ? a.action : baseUrl, baseUrl).href,
        method: (a.method ?? 'get').toUpperCase() === 'POST' ? 'POST' : 'GET',
        controls: [],
      };
      forms.push(open);
      continue;
    }
    if (close || !['input', 'button', 'textarea'].includes(tag)) continue;
    const a = parseAttrs(rawAttrs);
    let value = a.value ?? '';
    if (tag === 'textarea') {
      const endIdx = text.toLowerCase().indexOf('</textarea', m.index + m[0].length);
      value = decodeEntities(text.slice(m.index + m[0].length, endIdx < 0 ? undefined : endIdx));
    }
    const type = tag === 'input' ? (a.type ?? 'text').toLowerCase()
      : tag === 'button' ? (a.type ?? 'submit').toLowerCase() : 'textarea';
    if (tag === 'input' && (type === 'checkbox' || type === 'radio') && a.value === undefined) value = 'on';
    const control = {
      tag, type, name: a.name ?? null, value, id: a.id ?? null,
      checked: 'checked' in a, disabled: 'disabled' in a, attrs: a,
    };
    if (a.form) orphans.push([a.form, control]);
    else if (open) open.controls.push(control);
  }
  for (const [formId, control] of orphans) forms.find((f) => f.id === formId)?.controls.push(control);
  for (const f of forms) f.inputs = formData(f);
  return forms;
}

/** Parses the first <form> of an HTML page (see parseForms), or null. */
export function parseForm(html, baseUrl) {
  return parseForms(html, baseUrl)[0] ?? null;
}

/** The submit controls of a form (<input type=submit|image>, <button> without type or type=submit). */
export function submitButtons(form) {
  return form.controls.filter((c) => !c.disabled && SUBMIT_TYPES.has(c.type));
}

/**
 * The data a browser sends for a form: the successful controls, values overridden by `values`,
 * plus the submitter's name=value when a named button is clicked (submitter: a control, or true
 * for the first submit button; none for a script's form.submit()).
 */
export function formData(form, { values = {}, submitter } = {}) {
  const out = {};
  for (const c of form.controls) {
    if (!c.name || c.disabled || NOT_SENT_BY_DEFAULT.has(c.type)) continue;
    if ((c.type === 'checkbox' || c.type === 'radio') && !c.checked) continue;
    out[c.name] = c.value;
  }
  Object.assign(out, values);
  const s = submitter === true ? submitButtons(form)[0] : submitter;
  if (s?.name) out[s.name] = s.value;
  return out;
}

/** Submits a form like a browser (GET: data in the query; POST: urlencoded body). */
export function submitForm(client, form, opts = {}) {
  const data = formData(form, opts);
  if (form.method === 'POST') return client.post(form.action, data);
  const u = new URL(form.action);
  u.search = new URLSearchParams(data).toString();
  return client.get(u);
}

export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|#39|apos);/gi, (all, e) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos' || l === '#39') return "'";
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    if (l.startsWith('#')) return String.fromCodePoint(parseInt(l.slice(1), 10));
    return all;
  });
}

export function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** Decodes a compact JWS and, given a JWKS, verifies its RS256 signature. */
export function decodeJwt(token, jwks) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error(`not a compact JWS: ${parts.length} parts`);
  const header = b64urlJson(parts[0]);
  const payload = b64urlJson(parts[1]);
  let verified = null;
  if (jwks) {
    const jwk = jwks.keys.find((k) => k.kid === header.kid) ?? (jwks.keys.length === 1 ? jwks.keys[0] : null);
    if (!jwk) throw new Error(`no key ${header.kid} in the JWKS`);
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    verified = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2], 'base64url'));
  }
  return { header, payload, verified };
}
