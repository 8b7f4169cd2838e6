// Which stack the e2e scenarios run against: E2E_TARGET.
//
//   unset / "local"        the harness starts every program itself (stack.mjs startStack()).
//   "compose" / "external" attach to a stack that is already running (the docker compose stack of
//                          deploy/README.md, or `node stack.mjs --demo`): no process is started.
//
// Attached-stack settings (loopback URLs only, anything else is refused):
//   E2E_ENVOY_URL        Envoy base URL                       (http://localhost:8000)
//   E2E_AUTHZ_ADMIN_URL  oidc-authz admin (GET /readyz)        (http://127.0.0.1:9192)
//   E2E_ISSUER           the IdP's issuer                     (found from Envoy's login redirect)
//   E2E_USER / E2E_PASSWORD  the IdP account                  (alice / wonderland)
//
// An attached stack has a fixed configuration (TARGET_PROFILE, the one of
// deploy/compose/oidc-authz.yaml and of `stack.mjs --demo`) and no process control. Scenarios that
// need another configuration, process control or the harness' own test IdP are skipped there; the
// skip reasons come from skipReason() below.
import { isLoopbackHost } from './client.mjs';

/** The oidc-authz settings an attached stack runs with (deploy/compose/oidc-authz.yaml). */
export const TARGET_PROFILE = Object.freeze({
  responseMode: 'form_post',
  pkce: 'auto',
  clientAuth: 'client_secret_basic',
  sessionStorage: 'redis',
});

/** Stack options a scenario can ask for, with the harness default and the oidc-authz config key. */
const OPTION_KEYS = {
  responseMode: { key: 'response_mode', dflt: 'form_post' },
  pkce: { key: 'pkce', dflt: 'auto' },
  clientAuth: { key: 'client_auth', dflt: 'client_secret_basic' },
  // Not observable over HTTP: only an explicit request has to match.
  sessionStorage: { key: 'session_storage', dflt: undefined },
};
/** Stack options only a harness-started stack can honour. */
const HARNESS_ONLY = ['accessTokenTtl', 'extraConfig', 'idp', 'idpHost', 'lemonldap', 'ports', 'redis', 'idpRedirectPaths', 'envoyRoutes'];

export class TargetError extends Error {}

function loopbackUrl(varName, value) {
  let u;
  try {
    u = new URL(value);
  } catch {
    throw new TargetError(`${varName}=${value} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TargetError(`${varName}=${value}: only http(s) URLs`);
  if (!isLoopbackHost(u.hostname)) {
    throw new TargetError(`${varName}=${value}: refused, the e2e tests only target loopback addresses `
      + '(127.0.0.0/8, [::1], localhost, *.localhost)');
  }
  if (u.pathname !== '/' || u.search || u.hash) throw new TargetError(`${varName}=${value}: give the base URL only (no path, query or fragment)`);
  return u.origin;
}

/** Reads E2E_TARGET and friends from env; throws TargetError for a bad value. */
export function readTarget(env = process.env) {
  const name = (env.E2E_TARGET ?? '').trim().toLowerCase();
  if (name === '' || name === 'local') return { kind: 'local', name: 'local', attached: false };
  if (name !== 'compose' && name !== 'external') {
    throw new TargetError(`E2E_TARGET=${env.E2E_TARGET}: expected "local" (or unset), "compose" or "external"`);
  }
  const issuer = env.E2E_ISSUER ? loopbackUrlWithPath('E2E_ISSUER', env.E2E_ISSUER) : null;
  return {
    kind: 'attached',
    name,
    attached: true,
    envoyUrl: loopbackUrl('E2E_ENVOY_URL', env.E2E_ENVOY_URL || 'http://localhost:8000'),
    authzAdminUrl: loopbackUrl('E2E_AUTHZ_ADMIN_URL', env.E2E_AUTHZ_ADMIN_URL || 'http://127.0.0.1:9192'),
    issuer,
    user: { login: env.E2E_USER || 'alice', password: env.E2E_PASSWORD || 'wonderland' },
    profile: TARGET_PROFILE,
  };
}

/** Like loopbackUrl() but keeps the path (an issuer may have one: .../realms/demo). */
export function loopbackUrlWithPath(varName, value) {
  let u;
  try {
    u = new URL(value);
  } catch {
    throw new TargetError(`${varName}=${value} is not a URL`);
  }
  if (!isLoopbackHost(u.hostname)) {
    throw new TargetError(`${varName}=${value}: refused, the e2e tests only target loopback addresses `
      + '(127.0.0.0/8, [::1], localhost, *.localhost)');
  }
  return u.href.replace(/\/$/, '');
}

function loadTarget() {
  try {
    return readTarget();
  } catch (err) {
    if (!(err instanceof TargetError)) throw err;
    console.error(`oidc-authz e2e: ${err.message}`);
    process.exit(2);
  }
}

/** The target of this run (a bad E2E_* setting ends the process with a message, exit code 2). */
export const TARGET = loadTarget();
export const ATTACHED = TARGET.attached;

const NEEDS = {
  'process control': 'needs process control',
  'test IdP': "needs the harness' test IdP (oidc-provider: GET /__stats, its own logout endpoints)",
};

/**
 * Why a scenario cannot run against `target` (a string for node:test's `skip`), or false.
 *   needs  ['process control'] (stop/start Redis, restart oidc-authz) and/or ['test IdP']
 *   opts   the startStack() options the scenario asks for
 */
export function skipReason({ needs = [], opts = {} } = {}, target = TARGET) {
  if (!target.attached) return false;
  const where = `not available with E2E_TARGET=${target.name}`;
  for (const n of needs) if (!NEEDS[n]) throw new Error(`skipReason: unknown need ${n}`);
  if (needs.length) return `${NEEDS[needs[0]]}: ${where}`;
  const harnessOnly = HARNESS_ONLY.filter((k) => opts[k] !== undefined);
  if (harnessOnly.length) return `needs a stack the harness configures (${harnessOnly.join(', ')}): ${where}`;
  for (const [opt, { key, dflt }] of Object.entries(OPTION_KEYS)) {
    const want = opts[opt] ?? dflt;
    if (want !== undefined && want !== target.profile[opt]) {
      return `needs ${key}: ${want}; the E2E_TARGET=${target.name} stack runs ${key}: ${target.profile[opt]}`;
    }
  }
  const unknown = Object.keys(opts).filter((k) => !OPTION_KEYS[k] && !HARNESS_ONLY.includes(k) && k !== 'name');
  if (unknown.length) return `unknown stack options ${unknown.join(', ')}: ${where}`;
  return false;
}

/** An Error for an operation the attached target cannot do (if a scenario was not skipped). */
export function unavailableError(need, target = TARGET) {
  return new Error(`${NEEDS[need] ?? need}: not available with E2E_TARGET=${target.name} (the scenario should have been skipped)`);
}
