// @statsig/js-on-device-eval-client, Statsig's client SDK that evaluates on the device,
// unmodified, under Node against gatehouse: with a client key holding the
// client_download_config_specs scope it downloads the whole ruleset from
// /v1/download_config_specs (key in `?k=`), evaluates every case locally, then logs one event
// and flushes it to /v1/rgstr.
// Usage: node on_device.mjs BASE_URL CLIENT_KEY CASES_FILE MARKER
// CASES_FILE holds [{user, names: [..]}]; prints {"initialized": bool, "answers": [[value,
// ruleID] per name, per case]} (layers: [null, ruleID]), the shape go/main.go prints.
import { readFile } from 'node:fs/promises';
import { StatsigOnDeviceEvalClient } from '@statsig/js-on-device-eval-client';
import { answerCases } from './cases.mjs';

const [base, key, casesFile, marker] = process.argv.slice(2);
const cases = JSON.parse(await readFile(casesFile, 'utf8'));
const client = new StatsigOnDeviceEvalClient(key, {
  networkConfig: { api: `${base}/v1` },
  loggingEnabled: 'always',
});
const details = await client.initializeAsync();
const quiet = { disableExposureLog: true };
const pair = (spec) => [spec.value, spec.ruleID];
const answers = answerCases(cases, {
  layer: (user, name) => client.getLayer(name, user, quiet).ruleID,
  config: (user, name) => pair(client.getDynamicConfig(name, user, quiet)),
  gate: (user, name) => pair(client.getFeatureGate(name, user, quiet)),
});
client.logEvent({ eventName: 'sdk_check_on_device', value: marker, metadata: { sdk: 'on-device' } }, { userID: 'on-device-user' });
await client.flush();
await client.shutdown();
console.log(JSON.stringify({ initialized: details.success && details.source === 'Network', answers }));
