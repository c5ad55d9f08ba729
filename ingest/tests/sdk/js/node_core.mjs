// @statsig/statsig-node-core, Statsig's current Node server SDK (the Rust core behind a
// native module), unmodified, against gatehouse: it downloads the ruleset from
// /v2/download_config_specs/<key>.json and the ID lists from /v1/get_id_lists, evaluates every case locally, then logs one event
// and flushes it to /v1/log_event (this build compresses event bodies with zstd).
// Usage: node node_core.mjs BASE_URL SERVER_KEY CASES_FILE MARKER
// CASES_FILE holds [{user, names: [..]}]; prints {"initialized": bool, "answers": [[value,
// ruleID] per name, per case]} (layers: [null, ruleID]).
import { readFile } from 'node:fs/promises';
import nodeCore from '@statsig/statsig-node-core';
import { answerCases } from './cases.mjs';

const { Statsig, StatsigUser } = nodeCore;

const [base, key, casesFile, marker] = process.argv.slice(2);
const cases = JSON.parse(await readFile(casesFile, 'utf8'));
const statsig = new Statsig(key, {
  specsUrl: `${base}/v2/download_config_specs`,
  logEventUrl: `${base}/v1/log_event`,
  enableIdLists: true,
  idListsUrl: `${base}/v1/get_id_lists`,
  outputLogLevel: 'none',
  waitForCountryLookupInit: true,
  waitForUserAgentInit: true,
});
const initialized = (await statsig.initialize()).isSuccess;
const quiet = { disableExposureLogging: true };
const pair = (raw) => [raw.value, raw.ruleID];
const answers = answerCases(cases, {
  layer: (user, name) => statsig.__INTERNAL_getLayer(new StatsigUser(user), name, quiet).ruleID,
  config: (user, name) => pair(statsig.__INTERNAL_getExperiment(new StatsigUser(user), name, quiet)),
  gate: (user, name) => pair(statsig.__INTERNAL_getFeatureGate(new StatsigUser(user), name, quiet)),
});
statsig.logEvent(new StatsigUser({ userID: 'node-core-user' }), 'sdk_check_node_core', marker, { sdk: 'node-core' });
await statsig.shutdown();
console.log(JSON.stringify({ initialized, answers }));
