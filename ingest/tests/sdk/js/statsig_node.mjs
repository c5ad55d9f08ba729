// statsig-node, Statsig's legacy Node server SDK (TypeScript, its own evaluator), unmodified,
// against gatehouse: it downloads the ruleset from /v1/download_config_specs/<key>.json and
// the ID lists from /v1/get_id_lists, evaluates every case locally, then logs one event and
// flushes it to /v1/log_event.
// Usage: node statsig_node.mjs BASE_URL SERVER_KEY CASES_FILE MARKER
// CASES_FILE holds [{user, names: [..]}]; prints {"initialized": bool, "answers": [...]}: per
// case null (a user the SDK refuses: no id at all) or, per name, [value, ruleID] (layers:
// [null, ruleID]), the shape go/main.go prints.
import { readFile } from 'node:fs/promises';
import statsigNode from 'statsig-node';
import { answerCases } from './cases.mjs';

const statsig = statsigNode.default ?? statsigNode;
const [base, key, casesFile, marker] = process.argv.slice(2);
const cases = JSON.parse(await readFile(casesFile, 'utf8'));
const silent = () => {};
const quiet = { disableExposureLogging: true };
const details = await statsig.initialize(key, {
  api: `${base}/v1`,
  idListsSyncIntervalMs: 1000,
  disableDiagnostics: true,
  logger: { logLevel: 'none', debug: silent, info: silent, warn: silent, error: silent },
});
// The SDK refuses users with no id at all, as the Go and legacy Python SDKs do.
const identifiable = (user) => Boolean(user.userID) || Object.keys(user.customIDs ?? {}).length > 0;
const answers = answerCases(cases, {
  layer: (user, name) => statsig.getLayer(user, name, quiet).getRuleID(),
  config: (user, name) => {
    const config = statsig.getExperiment(user, name, quiet);
    return [config.value, config.getRuleID()];
  },
  gate: (user, name) => {
    const gate = statsig.getFeatureGate(user, name, quiet);
    return [gate.value, gate.ruleID];
  },
}, identifiable);
statsig.logEvent({ userID: 'statsig-node-user' }, 'sdk_check_statsig_node', marker, { sdk: 'statsig-node' });
await statsig.shutdownAsync();
console.log(JSON.stringify({ initialized: details.success, answers }));
