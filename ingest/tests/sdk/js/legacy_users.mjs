// One pass of statsig-js, Statsig's legacy JavaScript client SDK (still under statsig-react),
// unmodified, against gatehouse, shared by the Node run (statsig_js.mjs) and the browser page
// (browser.mjs), through the SDK's usual entry point, the `statsig` singleton: for each user,
// initialize from /v1/initialize and read every gate and config; the first user logs one
// event; each shutdown flushes the events (to /v1/rgstr, or with `disableNetworkKeepalive` in
// a browser by navigator.sendBeacon to /v1/rgstr_b, as in browsers without fetch keepalive).
// Returns {answers: [{user, gates: {name: value}, configs: {name: value}}], initialized}.
export async function runLegacyUsers(statsig, { base, key, users, gates, configs, event, options }) {
  const answers = [];
  let initialized = true;
  for (const [i, user] of users.entries()) {
    let success = false;
    await statsig.initialize(key, user, {
      api: `${base}/v1`,
      initCompletionCallback: (_ms, ok) => { success = ok; },
      ...options,
    });
    const out = { user, gates: {}, configs: {} };
    for (const g of gates) out.gates[g] = statsig.checkGateWithExposureLoggingDisabled(g);
    for (const c of configs) {
      const config = statsig.getConfigWithExposureLoggingDisabled(c);
      success = success && config.getEvaluationDetails().reason === 'Network';
      out.configs[c] = config.value;
    }
    initialized = initialized && success;
    if (i === 0 && event) statsig.logEvent(event.eventName, event.value, event.metadata);
    statsig.shutdown();
    answers.push(out);
  }
  return { answers, initialized };
}
