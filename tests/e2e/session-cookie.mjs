// Logs in to a running stack (the demo, or the compose stack) as the test user with the scripted
// client and writes the session cookie as one `name=value` line to FILE, for `scripts/load`:
//   E2E_TARGET=external node tests/e2e/session-cookie.mjs /tmp/cookie && scripts/load /tmp/cookie
// Same environment as the e2e suite's attached mode (E2E_ENVOY_URL, E2E_USER, E2E_PASSWORD...).
import fs from 'node:fs';
import { attachStack } from './stack.mjs';
import { login, sessionCookie } from './flows.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node tests/e2e/session-cookie.mjs FILE');
  process.exit(2);
}
const stack = await attachStack({ name: 'session-cookie' });
const flow = await login(stack);
const cookie = sessionCookie(flow.client.jar);
if (!cookie) {
  console.error('no session cookie after the login; see tests/e2e/artifacts/logs/session-cookie/');
  process.exit(1);
}
fs.writeFileSync(file, `${cookie.name}=${cookie.value}\n`, { mode: 0o600 });
console.error(`session cookie written to ${file}`);
process.exit(0);
