// temporary exploration: size of a session record and RSS with N cached sessions
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Proc, bins, envoyConfigFor, freePort, startStack, waitFor, ROOT } from './stack.mjs';
import { login, sessionCookie } from './flows.mjs';
const N = Number(process.env.N ?? 10000);
const stack = await startStack({ name: 'rssprobe', sessionStorage: 'redis', rustLog: 'warn' });
try {
  const flow = await login(stack);
  const cookie = sessionCookie(flow.client.jar);
  const rc = (...a) => spawnSync('redis-cli', ['-p', String(stack.ports.redis), ...a], { encoding: 'utf8' }).stdout.trim();
  const keys = rc('--scan', '--pattern', '*session:*').split('\n');
  for (const k of keys) console.log(k, rc('STRLEN', k));
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${stack.procs.authz.pid}/status`, 'utf8'))[1]);
  console.log('rss before (kB)', rss());
  const out = spawnSync(`${ROOT}/target/release/examples/clone_sessions`, [stack.configFile, cookie.value, String(N)], { encoding: 'utf8', maxBuffer: 1e8 });
  if (out.status !== 0) throw new Error(out.stderr);
  const cookies = out.stdout.trim().split('\n');
  console.log('cookies', cookies.length);
  const envoyUrl = stack.urls.envoy ?? `http://127.0.0.1:${stack.ports.envoy}`;
  let i = 0; let ok = 0;
  const worker = async () => { while (i < cookies.length) { const c = cookies[i++]; const r = await fetch(`${envoyUrl}/anything`, { headers: { cookie: `${cookie.name}=${c}` }, redirect: 'manual' }); if (r.status === 200) ok++; await r.arrayBuffer(); } };
  await Promise.all(Array.from({ length: 16 }, worker));
  console.log('ok', ok, 'rss after (kB)', rss());
  const m = await (await fetch(`http://127.0.0.1:${stack.ports.authzAdmin}/metrics`)).text();
  console.log(m.split('\n').filter((l) => /store_command.*count|cache/.test(l)).slice(0, 10).join('\n'));
} finally { await stack.stop(); }
