#!/usr/bin/env node
// The real-stack harness: redis-server, httpbin, the test IdP (oidc-provider), oidc-authz and Envoy,
// on free loopback ports, each with its log in tests/e2e/artifacts/logs/<name>/<program>.log.
//
//   import { startStack } from './stack.mjs';
//   const stack = await startStack({ name: 'login', sessionStorage: 'redis', responseMode: 'query' });
//   ... stack.envoyUrl('/anything?hello=world') ... await stack.stop();
//
//   node tests/e2e/stack.mjs --demo     # fixed ports: Envoy 8000, oidc-authz 9191/9192, IdP 9000,
//                                       # httpbin 8080, redis 6390; Ctrl-C stops everything
//   node tests/e2e/stack.mjs --check-target   # E2E_TARGET=compose: is the running stack reachable?
//
// With E2E_TARGET=compose (or external, see target.mjs) the scenarios call attachStack() instead:
// the same fields (envoyUrl(), urls, discovery(), user, logFile()…) for a stack that already runs.
//
// Environment: OIDC_AUTHZ_BIN (default target/debug/oidc-authz), ENVOY_BIN (default .venv/bin/envoy),
// HTTPBIN_PYTHON (default /usr/bin/python3, which has Debian's python3-httpbin), REDIS_SERVER
// (default redis-server), RUST_LOG (passed through; default "info"), E2E_STARTUP_TIMEOUT_MS (30000).
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startIdp } from './idp.mjs';
import { LLNG_USER, startLemonldap } from './lemonldap.mjs';
import { rawRequest } from './client.mjs';
import { TARGET, TARGET_PROFILE, unavailableError } from './target.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
/** The policies envoy/envoy.yaml's routes name (`context_extensions: { policy }`), for oidc-authz. */
export const POLICIES = JSON.parse(fs.readFileSync(path.join(HERE, 'policies.json'), 'utf8'));
export const ARTIFACTS = path.join(HERE, 'artifacts');
const STARTUP_TIMEOUT_MS = Number(process.env.E2E_STARTUP_TIMEOUT_MS ?? 30000);

export const bins = {
  authz: process.env.OIDC_AUTHZ_BIN ? path.resolve(process.env.OIDC_AUTHZ_BIN) : path.join(ROOT, 'target', 'debug', 'oidc-authz'),
  envoy: process.env.ENVOY_BIN ?? path.join(ROOT, '.venv', 'bin', 'envoy'),
  python: process.env.HTTPBIN_PYTHON ?? '/usr/bin/python3',
  redis: process.env.REDIS_SERVER ?? 'redis-server',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A timer for Promise.race() deadlines that does not keep the process alive. */
export const deadline = (ms) => new Promise((r) => setTimeout(r, ms).unref());

// ---------------------------------------------------------------- child processes

const live = new Set(); // every child still running, killed on exit whatever happens

/** The last few things the harness did (for the watchdog's report when a test file hangs). */
const recent = [];
export function trace(what) {
  const w = String(what);
  recent.push(`${new Date().toISOString()} ${w.length > 240 ? `${w.slice(0, 240)}…` : w}`);
  if (recent.length > 30) recent.shift();
}

/**
 * Arms a watchdog for this test process: if it is still alive after ms (i.e. something hangs past
 * every per-test timeout), print what it was doing and which children live, kill them, exit 1.
 */
export function armWatchdog(ms = Number(process.env.E2E_FILE_DEADLINE_MS ?? 170000)) {
  setTimeout(() => {
    const handles = process._getActiveHandles?.().map((h) => h?.constructor?.name ?? typeof h) ?? [];
    const report = [
      `watchdog: this test file is still running after ${ms} ms; killing its children and exiting`,
      `children alive: ${[...live].map((p) => `${p.name}(pid ${p.pid})`).join(', ') || 'none'}`,
      `active handles: ${JSON.stringify(handles)}`,
      'recent harness activity:',
      ...recent.map((l) => `  ${l}`),
    ].join('\n');
    console.error(report);
    try {
      fs.mkdirSync(path.join(ARTIFACTS, 'logs'), { recursive: true });
      fs.appendFileSync(path.join(ARTIFACTS, 'logs', 'watchdog.log'), `${new Date().toISOString()} pid ${process.pid} ${process.argv[1]}\n${report}\n`);
    } catch { /* best effort */ }
    killAllSync();
    process.exit(1);
  }, ms).unref();
}
const HAVE_SETPRIV = spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;

function killAllSync() {
  for (const p of live) {
    try { p.child.kill('SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}
process.on('exit', killAllSync);

export class Proc {
  constructor(name, cmd, args, { logFile, env, cwd } = {}) {
    this.name = name;
    this.logFile = logFile;
    const fd = fs.openSync(logFile, 'a');
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} start: ${cmd} ${args.map((a) => JSON.stringify(a)).join(' ')}\n`);
    // setpriv --pdeathsig: the child dies with us even if we are SIGKILLed (test-runner timeout).
    const [c, a] = HAVE_SETPRIV ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
    this.child = spawn(c, a, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env }, cwd: cwd ?? ROOT });
    fs.closeSync(fd);
    this.exited = false;
    this.exitInfo = null;
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.exitInfo = { code, signal };
        live.delete(this);
        resolve(this.exitInfo);
      });
      this.child.on('error', (err) => {
        this.exited = true;
        this.exitInfo = { error: err.message };
        live.delete(this);
        resolve(this.exitInfo);
      });
    });
    live.add(this);
    trace(`spawned ${name} pid ${this.child.pid}`);
  }

  get pid() { return this.child.pid; }

  async stop({ graceMs = 5000 } = {}) {
    if (this.exited) return this.exitInfo;
    trace(`stopping ${this.name} pid ${this.pid}`);
    try { this.child.kill('SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { this.child.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
    const info = await this.exitPromise;
    clearTimeout(t);
    return info;
  }
}

export function logTail(file, lines = 40) {
  try {
    const all = fs.readFileSync(file, 'utf8').split('\n');
    return all.slice(-lines).join('\n');
  } catch (e) {
    return `(no log: ${e.message})`;
  }
}

/** Polls check() (truthy = ready) every intervalMs until timeoutMs; fails early if proc exits. */
export async function waitFor(what, check, { timeoutMs = STARTUP_TIMEOUT_MS, intervalMs = 100, proc } = {}) {
  trace(`waiting for ${what}`);
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (proc?.exited) {
      throw new Error(`${what}: ${proc.name} exited (${JSON.stringify(proc.exitInfo)}) before it was ready; `
        + `log ${proc.logFile}:\n${logTail(proc.logFile)}`);
    }
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${what}: not ready within ${timeoutMs} ms (last error: ${last?.message ?? 'none'})`
    + (proc ? `; log ${proc.logFile}:\n${logTail(proc.logFile)}` : ''));
}

export async function httpOk(url, expect = 200) {
  const r = await rawRequest(url, { timeoutMs: 2000 });
  return r.status === expect;
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { buf += d; if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
  });
}

function redisCommand(port, line) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(5000, () => done(buf || null));
    s.on('error', () => done(buf || null));
    s.on('close', () => done(buf || null));
    s.on('connect', () => s.write(`${line}\r\n`));
    s.on('data', (d) => { buf += d; });
  });
}

// ---------------------------------------------------------------- ports

const taken = new Set();
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
async function freshPort() {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (!taken.has(p)) { taken.add(p); return p; }
  }
  throw new Error('no free port');
}

// ---------------------------------------------------------------- config files

/** YAML writer for the oidc-authz config: block mappings, JSON-style (= YAML flow) scalars/lists. */
export function toYaml(obj, indent = '') {
  let out = '';
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out += `${indent}${k}:\n${toYaml(v, `${indent}  `)}`;
    } else {
      out += `${indent}${k}: ${JSON.stringify(v)}\n`;
    }
  }
  return out;
}

function mergeDeep(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object'
      ? mergeDeep(a[k], v) : v;
  }
  return out;
}

/** envoy/envoy.yaml with the literal ports replaced. */
export function envoyConfigFor({ listen, authz, upstream, admin }) {
  let y = fs.readFileSync(path.join(ROOT, 'envoy', 'envoy.yaml'), 'utf8');
  const swap = (from, to) => {
    const re = new RegExp(`port_value: ${from}\\b`, 'g');
    const n = (y.match(re) ?? []).length;
    if (n !== 1) throw new Error(`envoy/envoy.yaml: expected exactly one "port_value: ${from}", found ${n}`);
    y = y.replace(re, `port_value: ${to}`);
  };
  swap(8000, listen);
  swap(9191, authz);
  swap(8080, upstream);
  swap(9901, admin);
  return y;
}

/** Envoy YAML with `routes` (YAML list items, indented as the file's) before its catch-all route. */
export function withRoutes(yaml, routes) {
  if (!routes) return yaml;
  const catchAll = '              - match: { prefix: / }\n';
  if (yaml.split(catchAll).length !== 2) throw new Error('envoy/envoy.yaml: expected exactly one catch-all route');
  return yaml.replace(catchAll, `${routes.replace(/\n*$/, '\n')}${catchAll}`);
}

export const CLIENT_FOR_AUTH = {
  client_secret_basic: { client_id: 'envoy', client_secret: 'envoy-secret' },
  client_secret_post: { client_id: 'envoy-post', client_secret: 'envoy-post-secret' },
};

// ---------------------------------------------------------------- the stack

let stackCounter = 0;

/**
 * Starts the whole stack. Options:
 *   name             log folder name (tests/e2e/artifacts/logs/<name>/)
 *   sessionStorage   'memory' | 'redis'                    (memory)
 *   responseMode     'form_post' | 'query'                 (form_post)
 *   pkce             'auto' | 'never' | 'always'           (auto)
 *   clientAuth       'client_secret_basic' | 'client_secret_post'
 *   accessTokenTtl   seconds, IdP access-token lifetime    (300)
 *   extraConfig      merged into the generated oidc-authz config
 *   rustLog          oidc-authz's RUST_LOG (default: $RUST_LOG, else "info")
 *   ports            fixed ports { envoy, envoyAdmin, authz, authzAdmin, idp, httpbin, redis }
 *   redis            start redis-server even for memory storage (default: only for redis storage)
 *   idpHost          host name in the IdP issuer: '127.0.0.1' (default) or 'localhost' (cross-site)
 *   idpRedirectPaths more callback paths the IdP's clients accept (e.g. another provider's)
 *   envoyRoutes      YAML of more Envoy routes, put before the catch-all route of envoy/envoy.yaml
 *   idp              'oidc-provider' (default: the test IdP, idp.mjs) or 'lemonldap' (LemonLDAP::NG
 *                    on 127.0.0.2, lemonldap.mjs; user dwho/dwho; stats from nginx's access log)
 *   lemonldap        options for that IdP: { bypassConsent (true), idTokenForceClaims (true) }
 */
export async function startStack(opts = {}) {
  // A port picked free can be taken (e.g. as a client's source port) before its server binds it:
  // start once more on new ports then.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOnce(opts);
    } catch (err) {
      if (attempt >= 2 || opts.ports || !/in use|EADDRINUSE/i.test(err.message)) throw err;
      trace(`startStack: retrying after a port clash: ${err.message.split('\n')[0]}`);
    }
  }
}

async function startStackOnce(opts) {
  const name = opts.name ?? `stack-${process.pid}-${++stackCounter}`;
  trace(`stack ${name}: start ${JSON.stringify(opts)}`);
  const logDir = path.join(ARTIFACTS, 'logs', name);
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = (prog) => path.join(logDir, `${prog}.log`);

  const sessionStorage = opts.sessionStorage ?? 'memory';
  const responseMode = opts.responseMode ?? 'form_post';
  const pkce = opts.pkce ?? 'auto';
  const clientAuth = opts.clientAuth ?? 'client_secret_basic';
  const accessTokenTtl = opts.accessTokenTtl ?? 300;
  const withRedis = opts.redis ?? sessionStorage === 'redis';
  // 'localhost' puts the IdP on another site than Envoy (http://127.0.0.1): a real cross-site
  // form_post for the browser. It still listens on 127.0.0.1.
  // LemonLDAP::NG gets a loopback address of its own: its cookies never reach the upstream.
  const idpKind = opts.idp ?? 'oidc-provider';
  const idpHost = opts.idpHost ?? (idpKind === 'lemonldap' ? '127.0.0.2' : '127.0.0.1');

  const fixed = opts.ports ?? {};
  const ports = {};
  for (const k of ['envoy', 'envoyAdmin', 'authz', 'authzAdmin', 'idp', 'httpbin', 'redis']) {
    ports[k] = fixed[k] ?? await freshPort();
  }

  const procs = {};
  let idp = null;
  let stopped = false;
  const envoyBase = `http://127.0.0.1:${ports.envoy}`;

  const stack = {
    name,
    logDir,
    ports,
    procs,
    attached: false,
    target: 'local',
    capabilities: { processControl: true, idpStats: true },
    user: idpKind === 'lemonldap' ? { ...LLNG_USER } : { login: 'alice', password: 'wonderland' },
    options: { sessionStorage, responseMode, pkce, clientAuth, accessTokenTtl },
    urls: {
      envoy: envoyBase,
      envoyAdmin: `http://127.0.0.1:${ports.envoyAdmin}`,
      authzAdmin: `http://127.0.0.1:${ports.authzAdmin}`,
      idp: `http://${idpHost}:${ports.idp}`,
      httpbin: `http://127.0.0.1:${ports.httpbin}`,
      redis: `redis://127.0.0.1:${ports.redis}/0`,
    },
    envoyUrl: (p = '/') => new URL(p, envoyBase).href,
    idpUrl: (p = '/') => new URL(p, `http://${idpHost}:${ports.idp}`).href,
    get idp() { return idp; },
    /** The IdP's discovery document (fetched once). */
    discovery: () => {
      stack.discoveryPromise ??= fetchDiscovery(stack.urls.idp);
      return stack.discoveryPromise;
    },
    idpStats: () => idp.stats(),
    resetIdpStats: () => idp.resetStats(),
    logFile,
    logTail: (prog, n) => logTail(logFile(prog), n),

    async startRedis() {
      if (procs.redis && !procs.redis.exited) return;
      procs.redis = new Proc('redis', bins.redis, [
        '--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--daemonize', 'no', '--dir', logDir, '--loglevel', 'notice',
      ], { logFile: logFile('redis') });
      await waitFor('redis', () => redisPing(ports.redis), { proc: procs.redis });
    },
    /** Stops redis-server. persist (default): SHUTDOWN SAVE, so startRedis() loads the data back. */
    async stopRedis({ persist = true } = {}) {
      if (!procs.redis || procs.redis.exited) return;
      if (persist) {
        await redisCommand(ports.redis, 'SHUTDOWN SAVE');
        await Promise.race([procs.redis.exitPromise, deadline(5000)]);
      }
      await procs.redis.stop();
      if (!persist) fs.rmSync(path.join(logDir, 'dump.rdb'), { force: true });
      // Be sure the port is closed before the test goes on.
      await waitFor('redis down', async () => !(await redisPing(ports.redis)), { timeoutMs: 5000 });
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      trace(`stack ${name}: stop`);
      for (const k of ['envoy', 'authz', 'httpbin', 'redis']) {
        if (procs[k]) await procs[k].stop();
      }
      if (idp) await Promise.race([idp.close(), deadline(12000)]);
      for (const p of Object.values(ports)) taken.delete(p);
    },
  };

  try {
    // redis
    if (withRedis) await stack.startRedis();

    // httpbin (the upstream app)
    procs.httpbin = new Proc('httpbin', bins.python,
      ['-m', 'httpbin.core', '--host', '127.0.0.1', '--port', String(ports.httpbin)],
      { logFile: logFile('httpbin') });

    if (idpKind === 'lemonldap') {
      idp = await startLemonldap({
        dir: path.join(logDir, 'lemonldap'),
        host: idpHost,
        port: ports.idp,
        rp: {
          clientId: CLIENT_FOR_AUTH[clientAuth].client_id,
          clientSecret: CLIENT_FOR_AUTH[clientAuth].client_secret,
          redirectUris: [`${envoyBase}/callback`],
          postLogoutRedirectUris: [`${envoyBase}/`],
          frontchannelLogoutUri: `${envoyBase}/frontchannel-logout`,
          accessTokenTtl,
          bypassConsent: opts.lemonldap?.bypassConsent ?? true,
          idTokenForceClaims: opts.lemonldap?.idTokenForceClaims ?? true,
        },
        logFile,
        Proc,
        waitFor,
        httpOk,
      });
    }
    // IdP (in this process; its log goes to idp.log)
    const idpLog = idp ? null : fs.createWriteStream(logFile('idp'), { flags: 'a' });
    idp ??= await startIdp({
      port: ports.idp,
      issuerHost: idpHost,
      accessTokenTtl,
      redirectUris: ['/callback', ...(opts.idpRedirectPaths ?? [])].map((p) => `${envoyBase}${p}`),
      postLogoutRedirectUris: [`${envoyBase}/`],
      backchannelLogoutUri: `${envoyBase}/backchannel-logout`,
      log: (...a) => idpLog.write(`${new Date().toISOString()} ${a.map((x) => (typeof x === 'string' ? x : (x?.stack ?? JSON.stringify(x)))).join(' ')}\n`),
    });
    const origClose = idp.close;
    idp.close = async () => { await origClose(); idpLog?.end(); };

    // oidc-authz
    const client = CLIENT_FOR_AUTH[clientAuth];
    if (!client) throw new Error(`unknown clientAuth ${clientAuth}`);
    const config = mergeDeep({
      listen: `127.0.0.1:${ports.authz}`,
      admin_listen: `127.0.0.1:${ports.authzAdmin}`,
      issuer: idp.issuer,
      client_id: client.client_id,
      client_secret: client.client_secret,
      client_auth: clientAuth,
      scopes: ['openid', 'profile', 'email'],
      redirect_uri: '/callback',
      response_mode: responseMode,
      pkce,
      preserve_query_args: true,
      login_action: 'redirect',
      session_storage: sessionStorage,
      redis: sessionStorage === 'redis' ? { url: stack.urls.redis, key_prefix: `oidc-authz:${name}:` } : undefined,
      session_cookie_name: 'session',
      // form_post on http://127.0.0.1: the login cookie must be SameSite=None; Secure.
      session_cookie_secure: 'always',
      session_secret: crypto.randomBytes(36).toString('base64url'),
      upstream_access_token_header: 'authorization:bearer',
      logout_path: '/logout',
      logout_redirect_uri: '/',
      backchannel_logout_path: '/backchannel-logout',
      // One instance and tests that restart it: no drain unless a test asks (tests/faults does).
      shutdown_drain_period: 0,
      policies: POLICIES,
    }, opts.extraConfig);
    stack.config = config;
    stack.configFile = path.join(logDir, 'oidc-authz.yaml');
    fs.writeFileSync(stack.configFile, `# generated by tests/e2e/stack.mjs for "${name}"\n${toYaml(config)}`);

    if (!fs.existsSync(bins.authz)) {
      throw new Error(`oidc-authz binary not found at ${bins.authz} (cargo build, or set OIDC_AUTHZ_BIN)`);
    }
    const spawnAuthz = () => {
      procs.authz = new Proc('oidc-authz', bins.authz, ['--config', stack.configFile], {
        logFile: logFile('oidc-authz'),
        env: { RUST_LOG: opts.rustLog ?? process.env.RUST_LOG ?? 'info', NO_COLOR: '1' },
      });
    };
    spawnAuthz();
    /**
     * Stops oidc-authz (SIGTERM) and starts it again, with `changes` merged into its config (e.g. a
     * rotated session_secret list); waits for /readyz.
     */
    stack.restartAuthz = async (changes = {}) => {
      await procs.authz.stop();
      stack.config = mergeDeep(stack.config, changes);
      fs.writeFileSync(stack.configFile, `# generated by tests/e2e/stack.mjs for "${name}"\n${toYaml(stack.config)}`);
      spawnAuthz();
      await waitFor('oidc-authz /readyz (restart)', () => httpOk(`${stack.urls.authzAdmin}/readyz`), { proc: procs.authz });
    };

    // Envoy
    const envoyYaml = path.join(logDir, 'envoy.yaml');
    fs.writeFileSync(envoyYaml, withRoutes(envoyConfigFor({
      listen: ports.envoy, authz: ports.authz, upstream: ports.httpbin, admin: ports.envoyAdmin,
    }), opts.envoyRoutes));
    procs.envoy = new Proc('envoy', bins.envoy, [
      '-c', envoyYaml, '--disable-hot-restart', '--concurrency', '1',
      '-l', process.env.ENVOY_LOG_LEVEL ?? 'warn',
    ], { logFile: logFile('envoy') });

    await Promise.all([
      waitFor('httpbin', () => httpOk(`${stack.urls.httpbin}/get`), { proc: procs.httpbin }),
      waitFor('oidc-authz /readyz', () => httpOk(`${stack.urls.authzAdmin}/readyz`), { proc: procs.authz }),
      waitFor('envoy /ready', () => httpOk(`${stack.urls.envoyAdmin}/ready`), { proc: procs.envoy }),
    ]);
  } catch (err) {
    await stack.stop();
    throw err;
  }
  trace(`stack ${name}: ready ${JSON.stringify(ports)}`);
  return stack;
}

// ---------------------------------------------------------------- attach (E2E_TARGET=compose)

async function fetchDiscovery(issuer) {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const r = await rawRequest(url, { timeoutMs: 10000 });
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status}`);
  const meta = JSON.parse(r.body);
  if (meta.issuer !== issuer) throw new Error(`${url}: issuer is ${meta.issuer}, expected ${issuer}`);
  return meta;
}

/**
 * Finds the IdP behind an attached stack: the authorization endpoint is where Envoy sends a browser
 * without a session; the issuer is the longest prefix of its path whose discovery document names
 * exactly that authorization endpoint (oidc-provider: /auth under the issuer; Keycloak:
 * /realms/<realm>/protocol/openid-connect/auth).
 */
async function discoverIssuer(envoyBase) {
  const start = new URL('/anything?e2e-discover-issuer=1', envoyBase).href;
  const r = await rawRequest(start, { headers: { accept: 'text/html' }, timeoutMs: 10000 });
  if (r.status !== 302 || !r.headers.location) {
    throw new Error(`GET ${start} without a session: expected 302 to the IdP, got ${r.status} ${r.headers.location ?? ''} ${r.body.slice(0, 200)}`);
  }
  const auth = new URL(r.headers.location, start);
  const endpoint = `${auth.origin}${auth.pathname}`;
  const segs = auth.pathname.split('/').filter(Boolean);
  const tried = [];
  for (let n = segs.length - 1; n >= 0; n--) {
    const issuer = `${auth.origin}${n ? `/${segs.slice(0, n).join('/')}` : ''}`;
    tried.push(issuer);
    try {
      const meta = await fetchDiscovery(issuer);
      if (meta.authorization_endpoint === endpoint) return meta;
    } catch { /* not this prefix */ }
  }
  throw new Error(`no discovery document names ${endpoint} (tried the issuers ${tried.join(', ')}); set E2E_ISSUER`);
}

let attachInfo = null;
/** Readiness of the attached stack and its IdP's discovery document (once per process, bounded). */
function attached() {
  attachInfo ??= (async () => {
    trace(`attach: ${JSON.stringify({ ...TARGET, user: { login: TARGET.user.login } })}`);
    await waitFor(`oidc-authz ${TARGET.authzAdminUrl}/readyz (E2E_TARGET=${TARGET.name})`,
      () => httpOk(`${TARGET.authzAdminUrl}/readyz`), { intervalMs: 500 });
    const meta = TARGET.issuer ? await fetchDiscovery(TARGET.issuer) : await discoverIssuer(TARGET.envoyUrl);
    return { meta };
  })();
  return attachInfo;
}

/**
 * The running stack named by E2E_TARGET (no process is started or stopped). Same fields as a
 * startStack() stack for everything that is plain HTTP; process control and the test IdP's
 * /__stats throw (the scenarios that need them are skipped, see target.mjs skipReason()).
 */
export async function attachStack({ name = `attached-${process.pid}` } = {}) {
  if (!TARGET.attached) throw new Error('attachStack() needs E2E_TARGET=compose (or external)');
  const { meta } = await attached();
  const logDir = path.join(ARTIFACTS, 'logs', name);
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = (prog) => path.join(logDir, `${prog}.log`);
  const envoyBase = TARGET.envoyUrl;
  const notHere = (need) => () => { throw unavailableError(need); };
  return {
    name,
    logDir,
    attached: true,
    target: TARGET.name,
    capabilities: { processControl: false, idpStats: false },
    user: { ...TARGET.user },
    options: { ...TARGET_PROFILE },
    urls: { envoy: envoyBase, authzAdmin: TARGET.authzAdminUrl, idp: meta.issuer },
    envoyUrl: (p = '/') => new URL(p, envoyBase).href,
    idpUrl: (p = '/') => new URL(p, meta.issuer).href,
    discovery: async () => meta,
    logFile,
    logTail: (prog) => `(${prog} runs outside the harness with E2E_TARGET=${TARGET.name}: see its own logs, `
      + `e.g. docker compose logs ${prog === 'oidc-authz' ? 'oidc-authz' : prog})`,
    idpStats: notHere('test IdP'),
    resetIdpStats: notHere('test IdP'),
    startRedis: notHere('process control'),
    stopRedis: notHere('process control'),
    restartAuthz: notHere('process control'),
    async stop() { /* not ours */ },
  };
}

// ---------------------------------------------------------------- demo

async function demo() {
  const stack = await startStack({
    name: 'demo',
    sessionStorage: 'redis',
    ports: { envoy: 8000, envoyAdmin: 9901, authz: 9191, authzAdmin: 9192, idp: 9000, httpbin: 8080, redis: 6390 },
  });
  console.log(`oidc-authz demo is up (logs: ${path.relative(process.cwd(), stack.logDir)}/):
  Envoy        ${stack.urls.envoy}   (admin ${stack.urls.envoyAdmin})
  oidc-authz   grpc 127.0.0.1:${stack.ports.authz}, admin ${stack.urls.authzAdmin}
  IdP          ${stack.urls.idp}   (oidc-provider; stats at /__stats)
  httpbin      ${stack.urls.httpbin}
  redis        ${stack.urls.redis}

Open http://127.0.0.1:8000/anything?hello=world — log in as alice / wonderland
(Ctrl-C stops everything)`);
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  let stopping = false;
  const shutdown = async (sig) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${sig}: stopping the demo stack`);
    const force = setTimeout(() => { killAllSync(); process.exit(1); }, 15000);
    await stack.stop();
    clearTimeout(force);
    process.exit(0);
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  // A child that dies takes the demo down with it (and says which).
  for (const p of Object.values(stack.procs)) {
    p.exitPromise.then((info) => {
      if (!stopping) {
        console.error(`${p.name} exited unexpectedly (${JSON.stringify(info)}); log ${p.logFile}:\n${logTail(p.logFile, 20)}`);
        shutdown('child exit');
      }
    });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--check-target')) {
    // Says which target the tests will use; for an attached one, checks it answers (bounded).
    if (!TARGET.attached) {
      console.log('e2e target: local (the harness starts every program itself)');
    } else {
      attachStack({ name: 'check-target' }).then((s) => {
        console.log(`e2e target: E2E_TARGET=${TARGET.name}, attached to the running stack:\n`
          + `  Envoy        ${s.urls.envoy}\n  oidc-authz   ${s.urls.authzAdmin}/readyz: 200\n`
          + `  IdP issuer   ${s.urls.idp}\n  user         ${s.user.login}\n`
          + `  assumed oidc-authz config: ${JSON.stringify(s.options)}`);
        process.exit(0);
      }, (err) => {
        console.error(`e2e target E2E_TARGET=${TARGET.name} is not usable: ${err.message}`);
        process.exit(1);
      });
    }
  } else if (process.argv.includes('--demo')) {
    for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { killAllSync(); process.exit(1); });
    demo().catch((err) => {
      console.error(`demo failed: ${err.message}`);
      killAllSync();
      process.exit(1);
    });
  } else {
    console.error('usage: node tests/e2e/stack.mjs --demo | --check-target');
    process.exit(2);
  }
}
