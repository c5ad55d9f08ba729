// The answers the SDK checks print, shared by node_core.mjs, statsig_node.mjs and
// on_device.mjs: for each case, [value, ruleID] per name (layers: [null, ruleID]), or null
// for a user the SDK refuses. A name's kind follows real_sdks.py: `layer_…` without `_exp_`
// is a layer, `config_…`, `exp_…` and other `layer_…` names are configs, the rest gates.
export function answerCases(cases, read, accepts = () => true) {
  return cases.map(({ user, names }) => (accepts(user) ? names.map((name) => answer(read, user, name)) : null));
}

// `read` has `layer(user, name)` → ruleID, and `config` / `gate(user, name)` → [value, ruleID].
function answer(read, user, name) {
  if (name.startsWith('layer_') && !name.includes('_exp_')) {
    return [null, read.layer(user, name)];
  }
  return /^(config_|exp_|layer_)/.test(name) ? read.config(user, name) : read.gate(user, name);
}
