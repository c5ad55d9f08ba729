// @statsig/js-client's browser build, unmodified, in headless Chromium against gatehouse
// (see run_users.mjs). The page comes from an origin of its own (another port), so every
// SDK call is a cross-origin fetch that the browser completes only with gatehouse's CORS
// answers; and in a browser the SDK encodes initialize bodies (`se=1`) and sends its own
// headers with /v1/rgstr, which costs a preflight. One more client forces gzip on its
// events (`gz=1`, the browser's CompressionStream). Then statsig-js, the legacy client SDK,
// from its web build (see legacy_users.mjs): `STATSIG-ENCODED: 1` initialize bodies, and its
// events sent by navigator.sendBeacon to /v1/rgstr_b at shutdown, as in browsers without
// fetch keepalive.
// Usage: node browser.mjs BASE_URL CLIENT_KEY USERS_JSON MARKER
// CHROMIUM names the browser binary (default /usr/bin/chromium-headless-shell).
// Prints {"answers": [...], "initialized": bool, "failedRequests": ["METHOD URL: why"],
// "requestKinds": {"se": requests with se=1, "gz": with gz=1, "encoded": with
// STATSIG-ENCODED: 1, "beacon": to /v1/rgstr_b}}.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import puppeteer from 'puppeteer-core';

const [base, key, usersJson, marker] = process.argv.slice(2);
const { users, gates, configs, paramStores } = JSON.parse(usersJson);
const here = new URL('.', import.meta.url);
const page = `<!doctype html>
<script src="/statsig-js-client.min.js"></script>
<script src="/statsig-prod-web-sdk.js"></script>
<script type="module">
  import { runUsers } from '/run_users.mjs';
  import { runLegacyUsers } from '/legacy_users.mjs';
  window.runUsers = runUsers;
  window.runLegacyUsers = runLegacyUsers;
</script>`;
const files = {
  '/': ['text/html', page],
  '/statsig-js-client.min.js': ['text/javascript', await readFile(
    new URL('node_modules/@statsig/js-client/build/statsig-js-client.min.js', here))],
  '/run_users.mjs': ['text/javascript', await readFile(new URL('run_users.mjs', here))],
  '/statsig-prod-web-sdk.js': ['text/javascript', await readFile(
    new URL('node_modules/statsig-js/build/statsig-prod-web-sdk.js', here))],
  '/legacy_users.mjs': ['text/javascript', await readFile(new URL('legacy_users.mjs', here))],
};
const pages = http.createServer((req, res) => {
  const file = files[req.url];
  res.writeHead(file ? 200 : 404, file ? { 'content-type': file[0] } : {});
  res.end(file?.[1]);
});
await new Promise((listening) => pages.listen(0, '127.0.0.1', listening));

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium-headless-shell',
  args: ['--no-sandbox'], // CI runs as root, where Chromium's sandbox refuses to start
});
try {
  const tab = await browser.newPage();
  const failedRequests = [];
  const requestKinds = { se: 0, gz: 0, encoded: 0, beacon: 0 };
  tab.on('requestfailed', (r) => failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  tab.on('request', (r) => {
    const url = new URL(r.url());
    for (const flag of ['se', 'gz']) requestKinds[flag] += url.searchParams.get(flag) === '1' ? 1 : 0;
    requestKinds.encoded += r.headers()['statsig-encoded'] === '1' ? 1 : 0;
    requestKinds.beacon += url.pathname === '/v1/rgstr_b' ? 1 : 0;
  });
  tab.on('console', (m) => m.type() === 'error' && console.error(`page: ${m.text()}`));
  await tab.goto(`http://127.0.0.1:${pages.address().port}/`);
  await tab.waitForFunction(() => window.runUsers && window.runLegacyUsers && window.Statsig && window.statsig);
  const result = await tab.evaluate(async (run) => {
    const { StatsigClient } = window.Statsig;
    const sdk = { sdk: 'browser' };
    const all = await window.runUsers(StatsigClient, {
      ...run, event: { eventName: 'sdk_check_browser', value: run.marker, metadata: sdk },
    });
    const gzipped = await window.runUsers(StatsigClient, {
      ...run, users: run.users.slice(0, 1), gates: [], configs: [], paramStores: {},
      event: { eventName: 'sdk_check_browser_gzip', value: run.marker, metadata: sdk },
      options: { logEventCompressionMode: 'f' },
    });
    const legacy = await window.runLegacyUsers(window.statsig, {
      ...run, event: { eventName: 'sdk_check_statsig_js_beacon', value: run.marker, metadata: { sdk: 'statsig-js' } },
      options: { disableNetworkKeepalive: true },
    });
    return {
      answers: [...all.answers, ...legacy.answers],
      initialized: all.initialized && gzipped.initialized && legacy.initialized,
    };
  }, { base, key, users, gates, configs, paramStores, marker });
  // A beacon leaves as the page lets it go: wait for the last one to be answered.
  await new Promise((done) => setTimeout(done, 500));
  console.log(JSON.stringify({ ...result, failedRequests, requestKinds }));
} finally {
  await browser.close();
  pages.close();
}
