#!/usr/bin/env node
// Test OpenID Provider for the oidc-authz end-to-end tests and the demo, built on oidc-provider@9.
//
//   node tests/e2e/idp.mjs --port 9000 [--access-token-ttl 300] [--redirect-uri URI]...
//        [--post-logout-redirect-uri URI]... [--backchannel-logout-uri URI]
//
// or, from a test:  const idp = await startIdp({ port: 0, accessTokenTtl: 2, redirectUris: [...] })
//
// Issuer http://127.0.0.1:<port>. Clients `envoy` (client_secret_basic) and `envoy-post`
// (client_secret_post). User alice / wonderland. JWT access tokens (RS256, key generated at start)
// through resource indicators with a default resource. Refresh tokens always issued.
// RP-initiated logout and back-channel logout on. Own login page (no external resources), auto
// consent. GET /__stats returns request counters; POST /__stats/reset zeroes them.
//
// Environment (used when the option is not given): IDP_PORT, IDP_ACCESS_TOKEN_TTL,
// IDP_REDIRECT_URIS, IDP_POST_LOGOUT_REDIRECT_URIS (comma-separated), IDP_BACKCHANNEL_LOGOUT_URI.
import crypto from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';

export const USERS = {
  alice: {
    password: 'wonderland',
    // groups: for the policies of envoy/envoy.yaml's routes (/staff/ yes, /admin/ no).
    claims: { sub: 'alice', name: 'Alice Liddell', email: 'alice@example.test', email_verified: true, groups: ['staff'] },
  },
};
export const CLIENTS = {
  envoy: { secret: 'envoy-secret', auth: 'client_secret_basic' },
  'envoy-post': { secret: 'envoy-post-secret', auth: 'client_secret_post' },
};
export const RESOURCE = 'urn:oidc-authz:upstream';

const splitList = (v) => (v ? String(v).split(',').map((s) => s.trim()).filter(Boolean) : []);
const uniq = (a) => [...new Set(a)];
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function newStats() {
  return {
    discovery: 0,
    authorization: 0, // GET/POST /auth (a new authorization request)
    authorization_resume: 0, // /auth/:uid (after the login page)
    token: 0,
    token_by_grant_type: {}, // { authorization_code: n, refresh_token: n }
    token_errors: 0,
    jwks: 0,
    userinfo: 0,
    end_session: 0, // GET/POST /session/end
    end_session_confirm: 0, // POST /session/end/confirm (the user confirmed the logout)
    login_page: 0,
    login_ok: 0,
    login_failed: 0,
    backchannel_logout_ok: 0,
    backchannel_logout_errors: 0,
    backchannel_logout_last_error: null,
    requests: 0,
  };
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:22em;margin:3em auto}label,input,button{display:block;width:100%;margin:.3em 0}
input{padding:.4em}button{padding:.5em;margin-top:1em}.error{color:#b00}</style></head>
<body>${body}</body></html>`;
}

function loginPage(uid, { clientId, error, login = '' }) {
  return page('Sign in', `<h1>Sign in</h1>
<p>to <b>${esc(clientId)}</b> at the oidc-authz test IdP</p>
${error ? `<p class="error" id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="login">Username</label><input id="login" name="login" value="${esc(login)}" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<button type="submit" id="submit">Sign in</button>
</form>`);
}

async function readForm(req, limit = 65536) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error('body too large');
  }
  return Object.fromEntries(new URLSearchParams(body));
}

/**
 * Starts the IdP. Returns { issuer, port, url(path), stats(), resetStats(), close(), provider }.
 */
export async function startIdp(opts = {}) {
  const env = process.env;
  const host = opts.host ?? '127.0.0.1';
  const wantedPort = Number(opts.port ?? env.IDP_PORT ?? 9000);
  const accessTokenTtl = Number(opts.accessTokenTtl ?? env.IDP_ACCESS_TOKEN_TTL ?? 300);
  const log = opts.log ?? ((...a) => console.error('[idp]', ...a));

  // Listen first (port 0 = any free port), so the issuer knows its port before Provider is built.
  let handler = (req, res) => { res.statusCode = 503; res.end('starting'); };
  const server = http.createServer((req, res) => handler(req, res));
  server.listen(wantedPort, host);
  await once(server, 'listening');
  const port = server.address().port;
  // issuerHost: the host name in the issuer (e.g. "localhost" while listening on 127.0.0.1, to make
  // the IdP another site than an Envoy on http://127.0.0.1).
  const issuer = `http://${opts.issuerHost ?? host}:${port}`;

  const redirectUris = uniq([
    'http://127.0.0.1:8000/callback',
    ...(opts.redirectUris ?? splitList(env.IDP_REDIRECT_URIS)),
  ]);
  const postLogoutRedirectUris = uniq([
    'http://127.0.0.1:8000/',
    ...(opts.postLogoutRedirectUris ?? splitList(env.IDP_POST_LOGOUT_REDIRECT_URIS)),
  ]);
  const backchannelLogoutUri = opts.backchannelLogoutUri
    ?? env.IDP_BACKCHANNEL_LOGOUT_URI ?? 'http://127.0.0.1:8000/backchannel-logout';

  const clients = Object.entries(CLIENTS).map(([clientId, c]) => ({
    client_id: clientId,
    client_secret: c.secret,
    token_endpoint_auth_method: c.auth,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    backchannel_logout_uri: backchannelLogoutUri,
    backchannel_logout_session_required: opts.backchannelLogoutSessionRequired ?? true,
  }));

  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };

  let stats = newStats();

  const configuration = {
    clients,
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['name', 'groups'],
      email: ['email', 'email_verified'],
    },
    // Profile claims go into the ID token: the userinfo endpoint refuses the JWT access tokens.
    conformIdTokenClaims: false,
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    pkce: { required: () => false },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        // Auto-submits the confirmation ("logout=yes"); scripted clients POST the form themselves.
        logoutSource: async (ctx, form) => {
          const withYes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
          ctx.body = page('Signing out', `<h1>Signing out…</h1>${withYes}
<noscript><button type="submit" form="op.logoutForm">Sign out</button></noscript>
<script>document.forms[0].submit()</script>`);
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out', '<h1>Signed out</h1><p id="signed-out">You are signed out.</p>');
        },
      },
      backchannelLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api',
          audience: RESOURCE,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    findAccount: async (ctx, id) => {
      const user = USERS[id];
      if (!user) return undefined;
      return { accountId: id, claims: async () => ({ ...user.claims }) };
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Auto consent for the test clients: a grant that covers what is asked for.
    loadExistingGrant: async (ctx) => {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant) {
        grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      }
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      for (const [indicator, rs] of Object.entries(oidc.resourceServers ?? {})) {
        grant.addResourceScope(indicator, rs.scope);
      }
      await grant.save();
      return grant;
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
      RefreshToken: 86400,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Error</h1><pre id="error">${esc(JSON.stringify(out, null, 2))}</pre>`);
    },
    // oidc-provider's own fetch refuses special-use addresses (SSRF protection), loopback included:
    // the back-channel logout POST goes to 127.0.0.1 here, so drop its dispatcher.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
  };

  const provider = new Provider(issuer, configuration);

  provider.on('backchannel.success', () => { stats.backchannel_logout_ok += 1; });
  provider.on('backchannel.error', (ctx, err, client) => {
    stats.backchannel_logout_errors += 1;
    stats.backchannel_logout_last_error = `${client?.clientId}: ${err?.message}`;
    log('back-channel logout error', client?.clientId, err?.message);
  });
  provider.on('server_error', (ctx, err) => log('server_error', err));
  provider.on('grant.error', (ctx, err) => log('grant.error', err?.message, err?.error_description ?? ''));
  provider.on('authorization.error', (ctx, err) => log('authorization.error', err?.message, err?.error_description ?? ''));
  provider.on('end_session.error', (ctx, err) => log('end_session.error', err?.message, err?.error_description ?? ''));

  // Counters + request log.
  provider.use(async (ctx, next) => {
    const path = ctx.path;
    const started = Date.now();
    if (path === '/__stats') return next();
    stats.requests += 1;
    if (path === '/.well-known/openid-configuration') stats.discovery += 1;
    else if (path === '/auth') stats.authorization += 1;
    else if (path.startsWith('/auth/')) stats.authorization_resume += 1;
    else if (path === '/jwks') stats.jwks += 1;
    else if (path === '/me') stats.userinfo += 1;
    else if (path === '/session/end') stats.end_session += 1;
    else if (path === '/session/end/confirm') stats.end_session_confirm += 1;
    try {
      await next();
    } finally {
      if (path === '/token') {
        stats.token += 1;
        const gt = ctx.oidc?.params?.grant_type ?? 'unknown';
        stats.token_by_grant_type[gt] = (stats.token_by_grant_type[gt] ?? 0) + 1;
        if (ctx.status >= 400) stats.token_errors += 1;
      }
      log(`${ctx.method} ${path} -> ${ctx.status} (${Date.now() - started} ms)`);
    }
  });

  // Test helpers + the login page.
  provider.use(async (ctx, next) => {
    if (ctx.path === '/__stats') {
      if (ctx.method === 'POST') stats = newStats();
      ctx.type = 'json';
      ctx.body = JSON.stringify(stats);
      return;
    }
    const m = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
    if (!m) return next();
    ctx.set('cache-control', 'no-store');
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Error</h1><p id="error">${esc(err.message)}</p>`);
      return;
    }
    const { uid, prompt, params } = details;
    if (m[1] !== uid) {
      ctx.status = 400;
      ctx.body = 'interaction mismatch';
      return;
    }
    if (prompt.name === 'login' && !m[2] && ctx.method === 'GET') {
      stats.login_page += 1;
      ctx.type = 'html';
      ctx.body = loginPage(uid, { clientId: params.client_id });
      return;
    }
    if (prompt.name === 'login' && m[2] && ctx.method === 'POST') {
      const form = await readForm(ctx.req);
      const user = USERS[form.login];
      if (!user || !crypto.timingSafeEqual(
        crypto.createHash('sha256').update(String(form.password ?? '')).digest(),
        crypto.createHash('sha256').update(user.password).digest(),
      )) {
        stats.login_failed += 1;
        ctx.status = 401;
        ctx.type = 'html';
        ctx.body = loginPage(uid, { clientId: params.client_id, error: 'Invalid username or password.', login: form.login ?? '' });
        return;
      }
      stats.login_ok += 1;
      const to = await provider.interactionResult(ctx.req, ctx.res,
        { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
    if (prompt.name === 'consent') {
      // Auto consent (normally loadExistingGrant already covers the request).
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      const to = await provider.interactionResult(ctx.req, ctx.res,
        { consent: { grantId } }, { mergeWithLastSubmission: true });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
    ctx.status = 400;
    ctx.body = `unexpected interaction: ${prompt.name} ${ctx.method}`;
  });

  const cb = provider.callback();
  handler = cb;

  return {
    issuer,
    port,
    host,
    provider,
    url: (path = '/') => new URL(path, issuer).href,
    stats: () => structuredClone(stats),
    resetStats: () => { stats = newStats(); },
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    }),
  };
}

function parseArgs(argv) {
  const o = { redirectUris: [], postLogoutRedirectUris: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(v());
    else if (a === '--host') o.host = v();
    else if (a === '--issuer-host') o.issuerHost = v();
    else if (a === '--access-token-ttl') o.accessTokenTtl = Number(v());
    else if (a === '--redirect-uri') o.redirectUris.push(v());
    else if (a === '--post-logout-redirect-uri') o.postLogoutRedirectUris.push(v());
    else if (a === '--backchannel-logout-uri') o.backchannelLogoutUri = v();
    else if (a === '-h' || a === '--help') {
      console.log('usage: node idp.mjs [--port N] [--access-token-ttl S] [--redirect-uri URI]... '
        + '[--post-logout-redirect-uri URI]... [--backchannel-logout-uri URI]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!o.redirectUris.length) delete o.redirectUris;
  if (!o.postLogoutRedirectUris.length) delete o.postLogoutRedirectUris;
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const idp = await startIdp(parseArgs(process.argv.slice(2)));
  console.error(`[idp] issuer ${idp.issuer} ready (users: alice / wonderland; clients: envoy, envoy-post)`);
  const stop = async (sig) => {
    console.error(`[idp] ${sig}: stopping`);
    await Promise.race([idp.close(), new Promise((r) => setTimeout(r, 2000).unref())]);
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
