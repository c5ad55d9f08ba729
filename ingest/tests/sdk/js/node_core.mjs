// @statsig/statsig-node-core, Statsig's current Node server SDK (the Rust core behind a
// native module), unmodified, against gatehouse: it downloads the ruleset from
// /v2/download_config_specs/<key>.json and the ID lists from /v1/get_id_lists, evaluates every case locally, then logs one event
// and flushes it to /v1/log_event (this build compresses event bodies with zstd).
// Usage: node node_core.mjs BASE_URL SERVER_KEY CASES_FILE MARKER
// CASES_FILE holds [{user, names: [..]}]; prints {"initialized": bool, "answers": [[value,
// ruleID] per name, per case]} (layers: [null, ruleID]).
import { readFile } from 'node:fs/promises';
import nodeCore from '@statsig/statsig-node-core';

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
const answers = cases.map(({ user, names }) => {
  const u = new StatsigUser(user);
  return names.map((name) => {
    if (name.startsWith('layer_') && !name.includes('_exp_')) {
      return [null, statsig.__INTERNAL_getLayer(u, name, quiet).ruleID];
    }
    const raw = /^(config_|exp_|layer_)/.test(name)
      ? statsig.__INTERNAL_getExperiment(u, name, quiet)
      : statsig.__INTERNAL_getFeatureGate(u, name, quiet);
    return [raw.value, raw.ruleID];
  });
});
statsig.logEvent(new StatsigUser({ userID: 'node-core-user' }), 'sdk_check_node_core', marker, { sdk: 'node-core' });
await statsig.shutdown();
console.log(JSON.stringify({ initialized, answers }));
