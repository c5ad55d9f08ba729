// statsig-node, Statsig's legacy Node server SDK (TypeScript, its own evaluator), or its slimmed
// twin statsig-node-lite, unmodified, against gatehouse: it downloads the ruleset from
// /v1/download_config_specs/<key>.json and the ID lists from /v1/get_id_lists, evaluates every
// case locally, then logs one event and flushes it to /v1/log_event.
// Usage: node statsig_node.mjs PACKAGE BASE_URL SERVER_KEY CASES_FILE MARKER
// PACKAGE is statsig-node or statsig-node-lite; CASES_FILE holds [{user, names: [..]}]; prints
// {"initialized": bool, "answers": [...]}: per case null (a user the SDK refuses: no id at
// all) or, per name, [value, ruleID] (layers: [null, ruleID]), the shape go/main.go prints.
import { readFile } from 'node:fs/promises';
import { answerCases } from './cases.mjs';

const [sdk, base, key, casesFile, marker] = process.argv.slice(2);
const statsigNode = await import(sdk);
const statsig = statsigNode.default ?? statsigNode;
const cases = JSON.parse(await readFile(casesFile, 'utf8'));
const silent = () => {};
const quiet = { disableExposureLogging: true };
const details = await statsig.initialize(key, {
  api: `${base}/v1`,
  idListsSyncIntervalMs: 1000,
  disableDiagnostics: true,
  logger: { logLevel: 'none', debug: silent, info: silent, warn: silent, error: silent },
});
// statsig-node says whether it loaded the specs; the lite SDK resolves to nothing either way.
const initialized = details?.success ?? statsig.getFeatureGateList().length > 0;
// The SDK refuses users with no id at all, as the Go and legacy Python SDKs do.
const identifiable = (user) => Boolean(user.userID) || Object.keys(user.customIDs ?? {}).length > 0;
const answers = answerCases(cases, {
  layer: (user, name) => statsig.getLayerWithExposureLoggingDisabledSync(user, name).getRuleID(),
  config: (user, name) => {
    const config = statsig.getExperimentWithExposureLoggingDisabledSync(user, name);
    return [config.value, config.getRuleID()];
  },
  gate: (user, name) => {
    // The lite SDK has no options argument, and its plain getFeatureGate is async.
    const gate = statsig.getFeatureGateWithExposureLoggingDisabledSync?.(user, name)
      ?? statsig.getFeatureGate(user, name, quiet);
    return [gate.value, gate.ruleID];
  },
}, identifiable);
statsig.logEvent({ userID: `${sdk}-user` }, `sdk_check_${sdk.replaceAll('-', '_')}`, marker, { sdk });
// The lite SDK has no shutdownAsync: flush, then stop its timers.
await (statsig.shutdownAsync?.() ?? statsig.flush().then(() => statsig.shutdown()));
console.log(JSON.stringify({ initialized, answers }));
