// The configs the stack runs on: envoy/envoy.yaml validates with the real Envoy (also the
// port-rewritten copy the tests use), and oidc-authz --check-config accepts the harness' configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, bins, envoyConfigFor, toYaml, CLIENT_FOR_AUTH, POLICIES } from './stack.mjs';

const ENVOY_YAML = path.join(ROOT, 'envoy', 'envoy.yaml');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-authz-e2e-config-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

test('envoy/envoy.yaml passes envoy --mode validate', { timeout: 60000, skip: !fs.existsSync(bins.envoy) && `no ${bins.envoy}` }, () => {
  const r = run(bins.envoy, ['--mode', 'validate', '-c', ENVOY_YAML, '--disable-hot-restart']);
  assert.equal(r.code, 0, r.out.slice(-2000));
});

test('envoy/envoy.yaml: ports 8000/9191/8080/9901 appear once; the rewritten copy validates', { timeout: 60000, skip: !fs.existsSync(bins.envoy) && `no ${bins.envoy}` }, () => {
  const y = fs.readFileSync(ENVOY_YAML, 'utf8');
  for (const p of [8000, 9191, 8080, 9901]) {
    assert.equal((y.match(new RegExp(`port_value: ${p}\\b`, 'g')) ?? []).length, 1, `port_value: ${p} once`);
  }
  for (const setting of ['timeout: 10s', 'failure_mode_allow: false', 'transport_api_version: V3', 'http2_protocol_options', 'max_request_bytes: 65536', 'pack_as_bytes: true', 'allow_partial_message: false']) {
    assert.ok(y.includes(setting), `envoy.yaml has ${setting}`);
  }
  const copy = path.join(tmp, 'envoy.yaml');
  fs.writeFileSync(copy, envoyConfigFor({ listen: 18000, authz: 19191, upstream: 18080, admin: 19901 }));
  const r = run(bins.envoy, ['--mode', 'validate', '-c', copy, '--disable-hot-restart']);
  assert.equal(r.code, 0, r.out.slice(-2000));
});

test('oidc-authz --check-config accepts the configs the harness generates, refuses a bad one', { timeout: 60000, skip: !fs.existsSync(bins.authz) && `no ${bins.authz}` }, () => {
  const base = {
    listen: '127.0.0.1:19191',
    admin_listen: '127.0.0.1:19192',
    issuer: 'http://127.0.0.1:19000',
    scopes: ['openid', 'profile', 'email'],
    redirect_uri: '/callback',
    session_cookie_secure: 'always',
    session_secret: 'x'.repeat(48),
    policies: POLICIES,
  };
  const variants = [
    { ...base, ...CLIENT_FOR_AUTH.client_secret_basic, client_auth: 'client_secret_basic', response_mode: 'form_post', pkce: 'auto', session_storage: 'memory' },
    { ...base, ...CLIENT_FOR_AUTH.client_secret_post, client_auth: 'client_secret_post', response_mode: 'query', pkce: 'never', session_storage: 'redis', redis: { url: 'redis://127.0.0.1:6390/0', key_prefix: 'oidc-authz:' } },
  ];
  variants.forEach((cfg, i) => {
    const f = path.join(tmp, `ok-${i}.yaml`);
    fs.writeFileSync(f, toYaml(cfg));
    const r = run(bins.authz, ['--config', f, '--check-config']);
    assert.equal(r.code, 0, `${f}:\n${toYaml(cfg)}\n${r.out}`);
  });
  const bad = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(bad, toYaml({ ...variants[0], response_mode: 'fragment', session_secret: 'short' }));
  const r = run(bins.authz, ['--config', bad, '--check-config']);
  assert.notEqual(r.code, 0, `a bad config must be refused: ${r.out}`);
  assert.match(r.out, /response_mode|session_secret/, `the error names the bad key: ${r.out}`);
});
