// LemonLDAP::NG (Debian's lemonldap-ng 2.16: a Perl portal with an OpenID Provider, served by
// nginx over FastCGI) as a second real IdP for the e2e suite, configured from scratch in a folder of
// the test: no manual step, nothing under /etc or /var/lib is changed.
//
//   const llng = await startLemonldap({ dir, host: '127.0.0.2', port, rp: {...}, logFile });
//   llng.issuer, llng.stats(), llng.resetStats(), await llng.close()
//
// What it takes (see also README, "IdP notes"):
// - copies of /etc/lemonldap-ng/lemonldap-ng.ini and of the package's demo configuration
//   (/var/lib/lemonldap-ng/conf/lmConf-1.json, users dwho/dwho, rtyler/rtyler) with every path
//   under `dir`, the OpenID Provider on, an RSA signing key made here, and one RP `envoy`;
// - llng-fastcgi-server refuses to run as root: as root it runs as www-data (-u/-g) and `dir` is
//   given to www-data; otherwise it runs as the current user;
// - nginx passes `$http_host` (not `$host`) as HTTP_HOST, or the portal loses the port and builds
//   wrong URLs;
// - the IdP listens on its own loopback address (127.0.0.2), so its cookies (cookies ignore ports)
//   never reach the application on 127.0.0.1.
// Request counts (stats()) are read from nginx's access log.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

export const LLNG = {
  fastcgiServer: '/usr/sbin/llng-fastcgi-server',
  ini: '/etc/lemonldap-ng/lemonldap-ng.ini',
  demoConf: '/var/lib/lemonldap-ng/conf/lmConf-1.json',
  portalRoot: '/usr/share/lemonldap-ng/portal/htdocs',
  nginx: '/usr/sbin/nginx',
};
export const LLNG_USER = { login: 'dwho', password: 'dwho' };

/** Why LemonLDAP::NG cannot run here, or null. */
export function lemonldapMissing() {
  for (const [what, file] of Object.entries(LLNG)) {
    if (!fs.existsSync(file)) return `${what} not found at ${file} (scripts/install-deps installs lemonldap-ng)`;
  }
  return null;
}

const asRoot = () => process.getuid?.() === 0;

/** lemonldap-ng.ini with the configuration, its cache and the logger pointed into `dir`. */
function iniFor(dir) {
  let ini = fs.readFileSync(LLNG.ini, 'utf8');
  ini = ini.replace(/^dirName\s*=.*$/m, `dirName = ${path.join(dir, 'conf')}`);
  ini = ini.replace(/'cache_root'\s*=>\s*'[^']*'/g, `'cache_root' => '${path.join(dir, 'cache')}'`);
  ini = ini.replace(/^logLevel\s*=.*$/m, `logLevel = ${process.env.LLNG_LOG_LEVEL ?? 'notice'}`);
  // Log to stderr (the FastCGI server's log file), not syslog.
  ini = ini.replace(/^\[all\]$/m, '[all]\nlogger = Lemonldap::NG::Common::Logger::Std');
  return ini;
}

/** The demo configuration with paths under `dir`, the OP on and the RP `envoy`. */
function confFor(dir, { origin, issuer, rp }) {
  const conf = JSON.parse(fs.readFileSync(LLNG.demoConf, 'utf8'));
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const under = (name) => path.join(dir, name);
  Object.assign(conf, {
    cfgNum: 1,
    portal: `${origin}/`,
    domain: new URL(origin).hostname,
    securedCookie: 0,
    globalStorageOptions: { ...conf.globalStorageOptions, Directory: under('sessions'), LockDirectory: under('sessions/lock') },
    persistentStorageOptions: { ...conf.persistentStorageOptions, Directory: under('psessions'), LockDirectory: under('psessions/lock') },
    // No session caches (local and per worker, 15 s by default): the portal's logout must see
    // `_oidcConnectedRP`, which the token request (often another FastCGI worker) added to the
    // session after the login had cached it; without it the logout renders no front-channel iframe.
    localSessionStorage: '',
    localSessionStorageOptions: {},
    handlerInternalCache: 0,
    notificationStorageOptions: { ...conf.notificationStorageOptions, dirName: under('notifications') },
    issuerDBOpenIDConnectActivation: 1,
    oidcServiceMetaDataIssuer: issuer,
    oidcServicePrivateKeySig: privateKey.export({ type: 'pkcs1', format: 'pem' }),
    oidcServicePublicKeySig: publicKey.export({ type: 'spki', format: 'pem' }),
    oidcServiceKeyIdSig: crypto.randomBytes(8).toString('hex'),
    oidcServiceAllowAuthorizationCodeFlow: 1,
    oidcRPMetaDataExportedVars: {
      envoy: { email: 'mail', name: 'cn', preferred_username: 'uid' },
    },
    oidcRPMetaDataOptions: {
      envoy: {
        oidcRPMetaDataOptionsClientID: rp.clientId,
        oidcRPMetaDataOptionsClientSecret: rp.clientSecret,
        oidcRPMetaDataOptionsPublic: 0,
        oidcRPMetaDataOptionsRedirectUris: rp.redirectUris.join(' '),
        oidcRPMetaDataOptionsPostLogoutRedirectUris: rp.postLogoutRedirectUris.join(' '),
        oidcRPMetaDataOptionsIDTokenSignAlg: 'RS256',
        oidcRPMetaDataOptionsBypassConsent: rp.bypassConsent ? 1 : 0,
        oidcRPMetaDataOptionsRequirePKCE: 1,
        oidcRPMetaDataOptionsRefreshToken: 1,
        // JWT access tokens (RS256), so the upstream can check them; opaque otherwise.
        oidcRPMetaDataOptionsAccessTokenJWT: 1,
        oidcRPMetaDataOptionsAccessTokenSignAlg: 'RS256',
        oidcRPMetaDataOptionsIDTokenForceClaims: rp.idTokenForceClaims ? 1 : 0,
        oidcRPMetaDataOptionsAccessTokenExpiration: rp.accessTokenTtl,
        oidcRPMetaDataOptionsIDTokenExpiration: 3600,
        ...(rp.frontchannelLogoutUri ? {
          oidcRPMetaDataOptionsLogoutUrl: rp.frontchannelLogoutUri,
          oidcRPMetaDataOptionsLogoutType: 'front',
          oidcRPMetaDataOptionsLogoutSessionRequired: 1,
        } : {}),
      },
    },
  });
  return conf;
}

function nginxConfFor(dir, { host, port, socket }) {
  const user = asRoot() ? 'user www-data www-data;\n' : '';
  return `${user}worker_processes 1;
daemon off;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'nginx-error.log')} warn;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log ${path.join(dir, 'access.log')};
  client_body_temp_path ${path.join(dir, 'tmp/body')};
  fastcgi_temp_path ${path.join(dir, 'tmp/fastcgi')};
  proxy_temp_path ${path.join(dir, 'tmp/proxy')};
  uwsgi_temp_path ${path.join(dir, 'tmp/uwsgi')};
  scgi_temp_path ${path.join(dir, 'tmp/scgi')};
  server {
    listen ${host}:${port};
    server_name _;
    root ${LLNG.portalRoot}/;
    if ($uri !~ ^/((static|javascript|favicon).*|.*\\.psgi)) {
      rewrite ^/(.*)$ /index.psgi/$1 break;
    }
    location ~ ^(?<sc>/.*\\.psgi)(?:$|/) {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass unix:${socket};
      # $http_host keeps the port; $host would drop it and the portal would build wrong URLs.
      fastcgi_param HTTP_HOST $http_host;
      fastcgi_param LLTYPE psgi;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_split_path_info ^(.*\\.psgi)(/.*)$;
      fastcgi_param PATH_INFO $fastcgi_path_info;
    }
    location /static/ { alias ${LLNG.portalRoot}/static/; }
    location /javascript/ { alias /usr/share/javascript/; }
  }
}
`;
}

/** The FastCGI server's workers (children of its process manager), to stop them with it. */
function childrenOf(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Starts nginx and llng-fastcgi-server for an OP at http://<host>:<port>. `Proc`, `waitFor` and
 * `httpOk` come from the harness (stack.mjs) so the processes are tracked and killed like the others.
 */
export async function startLemonldap({ dir, host, port, rp, logFile, Proc, waitFor, httpOk }) {
  const missing = lemonldapMissing();
  if (missing) throw new Error(missing);
  const origin = `http://${host}:${port}`;
  const issuer = origin;
  for (const sub of ['conf', 'cache', 'sessions/lock', 'psessions/lock', 'notifications', 'tmp']) {
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
  }
  fs.writeFileSync(path.join(dir, 'lemonldap-ng.ini'), iniFor(dir));
  fs.writeFileSync(path.join(dir, 'conf', 'lmConf-1.json'), JSON.stringify(confFor(dir, { origin, issuer, rp }), null, 2));
  const socket = path.join(dir, 'llng-fastcgi.sock');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConfFor(dir, { host, port, socket }));
  if (asRoot()) {
    const chown = spawnSync('chown', ['-R', 'www-data:www-data', dir]);
    if (chown.status !== 0) throw new Error(`chown www-data ${dir}: ${chown.stderr}`);
  }

  const fastcgi = new Proc('llng-fastcgi-server', LLNG.fastcgiServer, [
    '--foreground', '-n', '2', '-s', socket, '-p', path.join(dir, 'llng-fastcgi.pid'),
    ...(asRoot() ? ['-u', 'www-data', '-g', 'www-data'] : []),
  ], {
    logFile: logFile('lemonldap'),
    env: {
      LLNG_DEFAULTCONFFILE: path.join(dir, 'lemonldap-ng.ini'),
      LLNG_DEFAULTLOGGER: 'Lemonldap::NG::Common::Logger::Std',
    },
  });
  const nginx = new Proc('nginx', LLNG.nginx, ['-e', path.join(dir, 'nginx-error.log'), '-c', path.join(dir, 'nginx.conf'), '-p', dir], {
    logFile: logFile('nginx'),
  });
  const accessLog = path.join(dir, 'access.log');
  let statsFrom = 0;
  const llng = {
    issuer,
    origin,
    user: LLNG_USER,
    procs: { fastcgi, nginx },
    /** Requests nginx served since the last resetStats(), by OIDC endpoint. */
    stats() {
      let lines = [];
      try { lines = fs.readFileSync(accessLog, 'utf8').split('\n').slice(statsFrom).filter(Boolean); } catch { /* none yet */ }
      const count = (re) => lines.filter((l) => re.test(l)).length;
      return {
        requests: lines.length,
        authorization: count(/"(GET|POST) \/oauth2\/authorize/),
        token: count(/"POST \/oauth2\/token/),
        jwks: count(/"GET \/oauth2\/jwks/),
        end_session: count(/"(GET|POST) \/oauth2\/logout/),
      };
    },
    resetStats() {
      try { statsFrom = fs.readFileSync(accessLog, 'utf8').split('\n').filter(Boolean).length; } catch { statsFrom = 0; }
    },
    async close() {
      const workers = childrenOf(fastcgi.pid);
      await nginx.stop();
      await fastcgi.stop();
      for (const pid of workers) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone with the manager */ }
      }
    },
  };
  try {
    // The first request compiles the portal (a few hundred ms once the page cache is warm).
    await waitFor('lemonldap-ng discovery', () => httpOk(`${origin}/.well-known/openid-configuration`), { proc: fastcgi });
  } catch (err) {
    await llng.close();
    throw err;
  }
  return llng;
}
