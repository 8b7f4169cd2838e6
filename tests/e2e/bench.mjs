#!/usr/bin/env node
// The session-path benchmark behind `scripts/bench` (issue 10): the same Envoy 1.40 ext_authz
// filter config (envoy/envoy.yaml) in front of an nginx upstream, five ways, measured in one run:
//   proxy        Envoy without ext_authz (the proxy's own limit),
//   ceiling      Envoy + ext_authz → examples/always_ok.rs (a tonic Check that answers OK at once),
//   ceiling-bearer  the same server answering OK as oidc-authz's session path does (Authorization:
//                Bearer with a token as long as the real login's, Cookie removed): what Envoy
//                spends applying that answer is any token-injecting service's, not ours,
//   oidc         Envoy + ext_authz → oidc-authz, a valid session cookie, Redis sessions,
//   ceiling-all, oidc-all   the same two without the filter's allowed_headers (every request
//                header goes into the CheckRequest: Envoy's default for gRPC).
// wrk sends what a browser sends on a page load (BROWSER_HEADERS, 15 headers with the cookie), so
// allowed_headers has something to leave out. Rounds are interleaved (proxy, ceiling, oidc, ...)
// so the box's noise hits all alike; figures are medians of the rounds and ratios against
// `ceiling`. CPU per request comes from /proc/<pid>/stat (utime + stime) read around each wrk run.
//
// Environment: BENCH_ROUNDS (3), BENCH_SECONDS (10, per wrk run at c32), BENCH_LATENCY_SECONDS (5,
// the c1 run), BENCH_CONNECTIONS (32), OIDC_AUTHZ_BIN, ALWAYS_OK_BIN (set by scripts/bench to
// release builds), BENCH_OUT (also write the Markdown table to this file).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Proc, bins, envoyConfigFor, freePort, startStack, waitFor, ROOT } from './stack.mjs';
import { login, sessionCookie } from './flows.mjs';
import { callbackCost, describeRss, manySessions, rssKb } from './bench_sessions.mjs';

const ROUNDS = boundedInt('BENCH_ROUNDS', 3, 1, 9);
const SECONDS = boundedInt('BENCH_SECONDS', 10, 1, 60);
const LATENCY_SECONDS = boundedInt('BENCH_LATENCY_SECONDS', 5, 1, 60);
const CONNECTIONS = boundedInt('BENCH_CONNECTIONS', 32, 1, 256);
// Sessions besides the logged-in one for the `oidc-many` rows (10 000 live sessions in all, every
// one in oidc-authz's session cache after the first pass), and real logins timed for the callback.
const SESSIONS = boundedInt('BENCH_SESSIONS', 9999, 0, 100000);
const LOGINS = boundedInt('BENCH_LOGINS', 30, 0, 200);
const CLONE_SESSIONS_BIN = process.env.CLONE_SESSIONS_BIN ?? path.join(ROOT, 'target', 'release', 'examples', 'clone_sessions');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim() || 100);
const ALWAYS_OK_BIN = process.env.ALWAYS_OK_BIN ?? path.join(ROOT, 'target', 'release', 'examples', 'always_ok');

function boundedInt(name, fallback, min, max) {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer in ${min}..${max}, got ${process.env[name]}`);
  }
  return value;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

const httpOk = async (url) => {
  try { return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok; } catch { return false; }
};

/** What Chromium 131 sends on a same-site page load, besides the cookie (added per run). */
const BROWSER_HEADERS = {
  'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
  'Accept-Language': 'en-GB,en-US;q=0.9,en;q=0.8,fr;q=0.7',
  'Accept-Encoding': 'gzip, deflate, br, zstd',
  'Cache-Control': 'max-age=0',
  'Upgrade-Insecure-Requests': '1',
  'Sec-Fetch-Site': 'same-origin',
  'Sec-Fetch-Mode': 'navigate',
  'Sec-Fetch-User': '?1',
  'Sec-Fetch-Dest': 'document',
  'Sec-Ch-Ua': '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
  'Sec-Ch-Ua-Mobile': '?0',
  'Sec-Ch-Ua-Platform': '"Linux"',
  Referer: 'http://127.0.0.1/anything/reports?year=2026&quarter=3',
};

/** envoy/envoy.yaml without the ext_authz filter's allowed_headers (Envoy then sends every header). */
function withoutAllowedHeaders(yaml) {
  const lines = yaml.split('\n');
  const start = lines.findIndex((l) => /^\s*allowed_headers:\s*$/.test(l));
  assert.ok(start >= 0, 'envoy/envoy.yaml sets allowed_headers');
  const indent = lines[start].search(/\S/);
  let end = start + 1;
  while (end < lines.length && (lines[end].search(/\S/) > indent || /^\s*- exact:/.test(lines[end]))) end++;
  const without = [...lines.slice(0, start), ...lines.slice(end)].join('\n');
  assert.ok(!without.includes('exact: cookie'), 'the whole allowed_headers list is gone');
  return without;
}

/** envoy/envoy.yaml without its ext_authz HTTP filter (the per-route settings are ignored then). */
function withoutExtAuthz(yaml) {
  const lines = yaml.split('\n');
  const start = lines.findIndex((l) => /^\s*- name: envoy\.filters\.http\.ext_authz\s*$/.test(l));
  assert.ok(start >= 0, 'envoy/envoy.yaml has an ext_authz http filter');
  const indent = lines[start].indexOf('-');
  let end = start + 1;
  while (end < lines.length && !(lines[end].indexOf('-') === indent && /^\s*- name:/.test(lines[end]))) end++;
  return [...lines.slice(0, start), ...lines.slice(end)].join('\n');
}

function startNginx(dir, port) {
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  server { listen 127.0.0.1:${port}; location / { return 200 "ok\\n"; } }
}
`);
  return new Proc('nginx', 'nginx', ['-c', conf, '-e', `${dir}/nginx-error.log`], { logFile: path.join(dir, 'nginx.log') });
}

async function startEnvoy(dir, name, yaml) {
  const [listen, admin] = [await freePort(), await freePort()];
  const file = path.join(dir, `envoy-${name}.yaml`);
  fs.writeFileSync(file, yaml({ listen, admin }));
  const proc = new Proc(`envoy-${name}`, bins.envoy, [
    '-c', file, '--disable-hot-restart', '--concurrency', '1', '-l', 'warn', '--base-id', String(listen),
  ], { logFile: path.join(dir, `envoy-${name}.log`) });
  await waitFor(`envoy ${name}`, () => httpOk(`http://127.0.0.1:${admin}/ready`), { proc });
  return { proc, url: `http://127.0.0.1:${listen}/anything` };
}

/** Runs wrk; returns { rps, p50Ms }. */
function wrk(url, { connections, seconds, cookie, script }) {
  const args = [`-t${Math.min(2, connections)}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency'];
  if (script) args.push('-s', script);
  for (const [name, value] of Object.entries(BROWSER_HEADERS)) args.push('-H', `${name}: ${value}`);
  if (cookie) args.push('-H', `Cookie: ${cookie}`);
  const run = spawnSync('timeout', ['--kill-after=5', String(seconds + 20), 'wrk', ...args, url], { encoding: 'utf8' });
  assert.equal(run.status, 0, `wrk ${url}: ${run.stderr}${run.stdout}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(run.stdout)?.[1]);
  const p50 = /\s50%\s+([\d.]+)(us|ms|s)/.exec(run.stdout);
  const p50Ms = p50 ? Number(p50[1]) * { us: 0.001, ms: 1, s: 1000 }[p50[2]] : NaN;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(run.stdout)?.[1] ?? 0);
  assert.equal(non2xx, 0, `wrk ${url}: ${non2xx} answers were not 2xx/3xx (session expired, or a failing stack)`);
  return { rps, p50Ms, requests: rps * seconds };
}

/** Length of the access token oidc-authz injects for this session, read from httpbin's echo. */
async function accessTokenLength(stack, cookieHeader) {
  const echo = await fetch(`${stack.urls.envoy}/anything`, { headers: { cookie: cookieHeader }, redirect: 'manual' });
  assert.equal(echo.status, 200, 'the session cookie is accepted by the stack\'s own Envoy');
  const bearer = /^Bearer (.+)$/.exec((await echo.json()).headers.Authorization ?? '');
  assert.ok(bearer, 'httpbin saw an Authorization: Bearer header');
  return bearer[1].length;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

async function main() {
  for (const bin of [bins.authz, ALWAYS_OK_BIN]) assert.ok(fs.existsSync(bin), `${bin} is missing (scripts/bench builds it)`);
  // Tokens that outlive the run: no refresh (let alone 10 000 of one refresh token) mid-bench.
  const stack = await startStack({ name: 'bench', sessionStorage: 'redis', rustLog: 'warn', accessTokenTtl: 3600 });
  const dir = stack.logDir;
  const extra = [];
  try {
    const nginxPort = await freePort();
    const okPort = await freePort();
    extra.push(startNginx(dir, nginxPort));
    extra.push(new Proc('always-ok', ALWAYS_OK_BIN, [`127.0.0.1:${okPort}`], { logFile: path.join(dir, 'always-ok.log') }));
    const upstream = nginxPort;
    await waitFor('nginx', () => httpOk(`http://127.0.0.1:${nginxPort}/`), { proc: extra[0] });

    const flow = await login(stack);
    const cookie = sessionCookie(flow.client.jar);
    assert.ok(cookie, 'a session cookie after the login');
    const cookieHeader = `${cookie.name}=${cookie.value}`;
    const tokenBytes = await accessTokenLength(stack, cookieHeader);
    const bearerPort = await freePort();
    extra.push(new Proc('always-ok-bearer', ALWAYS_OK_BIN, [`127.0.0.1:${bearerPort}`, String(tokenBytes)], { logFile: path.join(dir, 'always-ok-bearer.log') }));

    const shipped = (authz) => ({ listen, admin }) => envoyConfigFor({ listen, admin, authz, upstream });
    const targets = {
      proxy: { ...(await startEnvoy(dir, 'proxy', ({ listen, admin }) => withoutExtAuthz(shipped(okPort)({ listen, admin })))), server: null },
      ceiling: { ...(await startEnvoy(dir, 'ceiling', shipped(okPort))), server: extra[1] },
      'ceiling-bearer': { ...(await startEnvoy(dir, 'ceiling-bearer', shipped(bearerPort))), server: extra[2] },
      oidc: { ...(await startEnvoy(dir, 'oidc', shipped(stack.ports.authz))), server: stack.procs.authz },
      'ceiling-all': { ...(await startEnvoy(dir, 'ceiling-all', (ports) => withoutAllowedHeaders(shipped(okPort)(ports)))), server: extra[1] },
      'oidc-all': { ...(await startEnvoy(dir, 'oidc-all', (ports) => withoutAllowedHeaders(shipped(stack.ports.authz)(ports)))), server: stack.procs.authz },
    };
    let script = null;
    let rssOneSession = null;
    if (SESSIONS > 0) {
      rssOneSession = rssKb(stack.procs.authz.pid);
      script = manySessions({ bin: CLONE_SESSIONS_BIN, configFile: stack.configFile, dir, cookie, count: SESSIONS });
      targets['oidc-many'] = { ...targets.oidc, script };
    }
    for (const name of ['ceiling-bearer', 'oidc', 'oidc-all']) {
      const check = await fetch(targets[name].url, { headers: { ...BROWSER_HEADERS, cookie: cookieHeader }, redirect: 'manual' });
      assert.equal(check.status, 200, `${name}: the session cookie is accepted through Envoy (200, not a login redirect)`);
    }

    const results = Object.fromEntries(Object.keys(targets).map((k) => [k, { rps: [], p50: [], serverUs: [], envoyUs: [], redisUs: [] }]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [name, target] of Object.entries(targets)) {
        const pids = { server: target.server?.pid, envoy: target.proc.pid, redis: stack.procs.redis.pid };
        const before = Object.fromEntries(Object.entries(pids).filter(([, p]) => p).map(([k, p]) => [k, cpuSeconds(p)]));
        const load = wrk(target.url, { connections: CONNECTIONS, seconds: SECONDS, cookie: target.script ? null : cookieHeader, script: target.script });
        const us = (k) => (pids[k] ? ((cpuSeconds(pids[k]) - before[k]) * 1e6) / load.requests : NaN);
        const latency = wrk(target.url, { connections: 1, seconds: LATENCY_SECONDS, cookie: target.script ? null : cookieHeader, script: target.script });
        const r = results[name];
        r.rps.push(load.rps); r.p50.push(latency.p50Ms);
        r.serverUs.push(us('server')); r.envoyUs.push(us('envoy'));
        r.redisUs.push(name.startsWith('oidc') ? us('redis') : NaN);
        console.error(`round ${round} ${name}: ${load.rps.toFixed(0)} req/s at c${CONNECTIONS}, p50 ${latency.p50Ms.toFixed(3)} ms at c1`);
      }
    }
    const notes = [];
    if (SESSIONS > 0) {
      const rss = rssKb(stack.procs.authz.pid);
      notes.push(`oidc-authz RSS: ${describeRss(rss)} after the rounds with ${SESSIONS + 1} live sessions (session_cache_size 10000); ${describeRss(rssOneSession)} before them (one session)`);
    }
    if (LOGINS > 0) {
      const cost = await callbackCost(stack, LOGINS);
      notes.push(`login (${cost.logins} real logins at oidc-provider, one after another): oidc-authz's ${cost.checksPerLogin.toFixed(0)} Checks per login (start, callback, first page) took ${cost.checkMs.toFixed(2)} ms, of which ${cost.idpMs.toFixed(2)} ms waiting for the IdP (token, JWKS, userinfo): ${cost.beyondIdpMs.toFixed(2)} ms beyond the IdP's own time`);
    }
    const table = [render(results), ...notes].join('\n');
    console.log(table);
    if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, `${table}\n`);
  } finally {
    for (const p of extra) await p.stop();
    await stack.stop();
  }
}

/** Run-to-run spread of one target against the ceiling: the per-round ratio and p50 gap, min–max. */
function spread(results, name) {
  const rounds = results[name].rps.map((rps, i) => ({ ratio: rps / results.ceiling.rps[i], gap: (results[name].p50[i] - results.ceiling.p50[i]) * 1000 }));
  const range = (xs, d) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
  return `spread over ${rounds.length} rounds, ${name}: × ceiling ${range(rounds.map((r) => r.ratio), 2)}, p50 − ceiling ${range(rounds.map((r) => r.gap), 0)} µs`;
}

function render(results) {
  const ceiling = median(results.ceiling.rps);
  const ceilingP50 = median(results.ceiling.p50);
  const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const label = {
    proxy: 'Envoy alone (no ext_authz)',
    ceiling: 'Envoy + ext_authz → always-OK tonic server (ceiling)',
    'ceiling-bearer': 'the always-OK server answering as oidc-authz does (bearer token, cookie removed)',
    oidc: 'Envoy + ext_authz → oidc-authz, valid session, Redis',
    'ceiling-all': 'the ceiling without allowed_headers (every header sent)',
    'oidc-all': 'oidc-authz without allowed_headers (every header sent)',
    'oidc-many': `oidc-authz, ${SESSIONS + 1} sessions in turn (wrk Lua), Redis`,
  };
  const gain = (name) => fmt(median(results[name].rps) / median(results[`${name}-all`].rps), 2);
  const rows = Object.entries(results).map(([name, r]) => `| ${label[name]} | ${fmt(median(r.rps))} | ${fmt(median(r.rps) / ceiling, 2)} | ${fmt(median(r.p50), 3)} | ${name === 'proxy' ? '–' : fmt((median(r.p50) - ceilingP50) * 1000, 0)} | ${fmt(median(r.serverUs))} | ${fmt(median(r.envoyUs))} | ${fmt(median(r.redisUs))} |`);
  return [
    `wrk -c${CONNECTIONS} ${SECONDS}s and -c1 ${LATENCY_SECONDS}s per round, ${ROUNDS} interleaved rounds, medians; nginx upstream; Envoy --concurrency 1; ${Object.keys(BROWSER_HEADERS).length + 1} browser request headers`,
    '',
    '| target | req/s | × ceiling | p50 at c1 (ms) | p50 − ceiling (µs) | authz server CPU µs/req | Envoy CPU µs/req | redis CPU µs/req |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `allowed_headers (shipped) vs every header: ceiling ${gain('ceiling')}×, oidc-authz ${gain('oidc')}× the req/s`,
    `oidc-authz against the always-OK server answering as it does: ${fmt(median(results.oidc.rps) / median(results['ceiling-bearer'].rps), 2)}× the req/s`,
    ...['oidc', 'oidc-many'].filter((name) => results[name]).map((name) => spread(results, name)),
  ].join('\n');
}

await main();
process.exit(0);
