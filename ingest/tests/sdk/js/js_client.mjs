// @statsig/js-client, unmodified, against gatehouse: initialize from /v1/initialize, read
// every gate and config for each user, log one event through /v1/rgstr, flush.
// Usage: node js_client.mjs BASE_URL CLIENT_KEY USERS_JSON MARKER
// Prints {"answers": [{user, gates: {name: value}, configs: {name: value}}], "initialized": bool}.
import { StatsigClient } from '@statsig/js-client';

const [base, key, usersJson, marker] = process.argv.slice(2);
const { users, gates, configs } = JSON.parse(usersJson);
const answers = [];
let initialized = true;
for (const [i, user] of users.entries()) {
  const client = new StatsigClient(key, user, {
    networkConfig: { api: `${base}/v1` },
    loggingEnabled: 'always',
    disableStatsigEncoding: false,
  });
  const details = await client.initializeAsync();
  initialized = initialized && details.success && details.source === 'Network';
  const out = { user, gates: {}, configs: {} };
  for (const g of gates) out.gates[g] = client.getFeatureGate(g).value;
  for (const c of configs) out.configs[c] = client.getDynamicConfig(c).value;
  if (i === 0) client.logEvent({ eventName: 'sdk_check_js', value: marker, metadata: { sdk: 'js' } });
  await client.flush();
  await client.shutdown();
  answers.push(out);
}
console.log(JSON.stringify({ answers, initialized }));
