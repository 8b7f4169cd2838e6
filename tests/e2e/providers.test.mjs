// Scenario: two apps on one gateway. Two providers (two clients at the test IdP: `envoy` for the
// top-level `default` provider, `envoy-post` for provider `b`), two Envoy routes each naming a
// policy (`context_extensions: { policy: ... }`): `default`, and `app-b` whose `provider:` is `b`.
// A login on one
// does not log in on the other, and a session cookie of one is worth nothing on the other's route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  login, newClient, stackFor, skipFor, why, assertUpstreamGotToken, tokenClientId, httpbinJson,
} from './flows.mjs';

// App b lives under /anything/b (httpbin echoes any path under /anything); its callback takes the
// form_post body like /callback does.
const ROUTES = `
              - match: { path: /b/callback }
                route: { cluster: httpbin }
                typed_per_filter_config:
                  envoy.filters.http.ext_authz:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                    check_settings:
                      with_request_body: { max_request_bytes: 65536, allow_partial_message: false, pack_as_bytes: true }
              - match: { prefix: /anything/b }
                route: { cluster: httpbin }
                typed_per_filter_config:
                  envoy.filters.http.ext_authz:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                    check_settings:
                      context_extensions: { policy: app-b }
`;

const OPTS = {
  idpRedirectPaths: ['/b/callback'],
  envoyRoutes: ROUTES,
  extraConfig: {
    providers: {
      b: {
        client_id: 'envoy-post',
        client_secret: 'envoy-post-secret',
        client_auth: 'client_secret_post',
        redirect_uri: '/b/callback',
        logout_path: '/b/logout',
      },
    },
    policies: { 'app-b': { provider: 'b' } },
  },
};

test('two providers: logging in on one app does not log in on the other', { timeout: 90000, skip: skipFor({ opts: OPTS }) }, async (t) => {
  const stack = await stackFor(t, 'providers-two-apps', OPTS);

  // App a (the default provider).
  const a = await login(stack, { startPath: '/anything/a' });
  assert.equal(a.authUrl.searchParams.get('client_id'), 'envoy');
  const { jwt: tokenA } = await assertUpstreamGotToken(stack, a.final);
  assert.equal(tokenClientId(tokenA.payload), 'envoy');
  assert.ok(a.client.jar.get('__Host-session'), 'session cookie of provider default');

  // Logged in on a: app b still sends the browser to the IdP, as client envoy-post.
  const onB = await a.client.get(stack.envoyUrl('/anything/b'));
  assert.equal(onB.status, 302, why(stack, onB, 'a session of provider default on the route of provider b'));
  const authB = new URL(onB.headers.location);
  assert.equal(authB.searchParams.get('client_id'), 'envoy-post');
  assert.equal(authB.searchParams.get('redirect_uri'), stack.envoyUrl('/b/callback'));

  // Provider a's session cookie under provider b's name: worth nothing there either.
  const forger = newClient(stack, 'forger');
  forger.jar.set('__Host-session-b', a.client.jar.get('__Host-session').value, stack.envoyUrl('/'), { secure: true });
  const forged = await forger.get(stack.envoyUrl('/anything/b'));
  assert.equal(forged.status, 302, why(stack, forged, 'provider default\'s cookie as provider b\'s'));

  // App b's own login, through its own callback; its token is envoy-post's.
  const b = await login(stack, { startPath: '/anything/b', callbackPath: '/b/callback' });
  assert.equal(b.authUrl.searchParams.get('client_id'), 'envoy-post');
  const { jwt: tokenB, json } = await assertUpstreamGotToken(stack, b.final);
  assert.equal(tokenClientId(tokenB.payload), 'envoy-post');
  // (The IdP's own `_session` cookie is there: cookies do not tell ports apart on 127.0.0.1.)
  assert.ok(!/(^|;\s*)(__Host-)?session(-b)?(_login)?=/.test(json.headers.Cookie ?? ''),
    `upstream b got none of oidc-authz's cookies: ${json.headers.Cookie}`);
  assert.ok(b.client.jar.get('__Host-session-b'), 'session cookie of provider b');
  // ...and b's session does not open app a.
  const bOnA = await b.client.get(stack.envoyUrl('/anything/a'));
  assert.equal(bOnA.status, 302, why(stack, bOnA, 'a session of provider b on the route of provider default'));

  // Logging out of b leaves a logged in.
  const out = await b.client.get(stack.envoyUrl('/b/logout'), { headers: { 'sec-fetch-site': 'same-origin' } });
  assert.ok([302, 303].includes(out.status), why(stack, out, 'logout of b'));
  const again = await a.client.get(stack.envoyUrl('/anything/a'));
  assert.equal(again.status, 200, why(stack, again, 'a stays logged in'));
  assert.equal(httpbinJson(again.body).url.replace(/^https?:\/\/[^/]+/, ''), '/anything/a');
});
