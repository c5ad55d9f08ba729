// @statsig/js-client's browser build, unmodified, in headless Chromium against gatehouse
// (see run_users.mjs). The page comes from an origin of its own (another port), so every
// SDK call is a cross-origin fetch that the browser completes only with gatehouse's CORS
// answers; and in a browser the SDK encodes initialize bodies (`se=1`) and sends its own
// headers with /v1/rgstr, which costs a preflight. One more client forces gzip on its
// events (`gz=1`, the browser's CompressionStream).
// Usage: node browser.mjs BASE_URL CLIENT_KEY USERS_JSON MARKER
// CHROMIUM names the browser binary (default /usr/bin/chromium-headless-shell).
// Prints {"answers": [...], "initialized": bool, "failedRequests": ["METHOD URL: why"],
// "bodyEncodings": {"se": requests with se=1, "gz": requests with gz=1}}.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import puppeteer from 'puppeteer-core';

const [base, key, usersJson, marker] = process.argv.slice(2);
const { users, gates, configs } = JSON.parse(usersJson);
const here = new URL('.', import.meta.url);
const page = `<!doctype html>
<script src="/statsig-js-client.min.js"></script>
<script type="module">
  import { runUsers } from '/run_users.mjs';
  window.runUsers = runUsers;
</script>`;
const files = {
  '/': ['text/html', page],
  '/statsig-js-client.min.js': ['text/javascript', await readFile(
    new URL('node_modules/@statsig/js-client/build/statsig-js-client.min.js', here))],
  '/run_users.mjs': ['text/javascript', await readFile(new URL('run_users.mjs', here))],
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
  const bodyEncodings = { se: 0, gz: 0 }; // SDK requests with `se=1` / `gz=1`
  tab.on('requestfailed', (r) => failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  tab.on('request', (r) => {
    const params = new URL(r.url()).searchParams;
    for (const flag of ['se', 'gz']) bodyEncodings[flag] += params.get(flag) === '1' ? 1 : 0;
  });
  tab.on('console', (m) => m.type() === 'error' && console.error(`page: ${m.text()}`));
  await tab.goto(`http://127.0.0.1:${pages.address().port}/`);
  await tab.waitForFunction(() => window.runUsers && window.Statsig);
  const result = await tab.evaluate(async (run) => {
    const { StatsigClient } = window.Statsig;
    const sdk = { sdk: 'browser' };
    const all = await window.runUsers(StatsigClient, {
      ...run, event: { eventName: 'sdk_check_browser', value: run.marker, metadata: sdk },
    });
    const gzipped = await window.runUsers(StatsigClient, {
      ...run, users: run.users.slice(0, 1), gates: [], configs: [],
      event: { eventName: 'sdk_check_browser_gzip', value: run.marker, metadata: sdk },
      options: { logEventCompressionMode: 'f' },
    });
    return { answers: all.answers, initialized: all.initialized && gzipped.initialized };
  }, { base, key, users, gates, configs, marker });
  console.log(JSON.stringify({ ...result, failedRequests, bodyEncodings }));
} finally {
  await browser.close();
  pages.close();
}
