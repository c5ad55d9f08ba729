// One pass of @statsig/js-client, unmodified, against gatehouse, shared by the Node run
// (js_client.mjs) and the browser page (browser.mjs): for each user, initialize from
// /v1/initialize and read every gate, config and parameter (`paramStores`: {store: [param]});
// the first user's client logs one event through /v1/rgstr; each client flushes and shuts down.
// Returns {answers: [{user, gates: {name: value}, configs: {name: value},
//                     params: {store: {param: value}}}], initialized}.
export async function runUsers(StatsigClient, { base, key, users, gates, configs, paramStores = {}, event, options }) {
  const answers = [];
  let initialized = true;
  for (const [i, user] of users.entries()) {
    const client = new StatsigClient(key, user, {
      networkConfig: { api: `${base}/v1` },
      loggingEnabled: 'always',
      ...options,
    });
    const details = await client.initializeAsync();
    // NetworkNotModified: the server confirmed the values the SDK cached (a 204 to sinceTime).
    initialized = initialized && details.success && ['Network', 'NetworkNotModified'].includes(details.source);
    const out = { user, gates: {}, configs: {}, params: {} };
    for (const g of gates) out.gates[g] = client.getFeatureGate(g).value;
    for (const c of configs) out.configs[c] = client.getDynamicConfig(c).value;
    for (const [store, params] of Object.entries(paramStores)) {
      const getter = client.getParameterStore(store);
      out.params[store] = {};
      for (const p of params) out.params[store][p] = getter.get(p) ?? null;
    }
    if (i === 0 && event) client.logEvent(event);
    await client.flush();
    await client.shutdown();
    answers.push(out);
  }
  return { answers, initialized };
}
