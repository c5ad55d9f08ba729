"""Record how Statsig's official server SDKs evaluate a generated ruleset.

Runs the current core SDK (`statsig-python-core`, fed the dcs-v2 ruleset from a local HTTP
server, the way it fetches from Statsig's CDN) and the legacy `statsig` SDK (fed the dcs-v1
ruleset the same way), evaluates every spec for every generated user, and writes:

  evaluator/tests/data/conformance_v1.json   the ruleset, v1 shape
  evaluator/tests/data/conformance_v2.json   the same ruleset, v2 shape
  evaluator/tests/data/conformance_vectors.json   the answers

Answers are the core SDK's (Gatehouse follows it); where the legacy SDK answers differently the
legacy answer is recorded beside it so the divergence is visible. Usage:

  python evaluator/tests/conformance/gen_vectors.py [--out DIR] [--check]
  (needs: pip install -r requirements.txt)

--check regenerates into a temporary folder and fails unless the committed files are
reproduced exactly: CI runs it so the vectors can never drift from what the SDKs answer.
"""

import argparse
import filecmp
import gzip
import http.server
import json
import os
import sys
import tempfile
import threading
import time
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(__file__))
import ruleset  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
SECRET = "secret-conformance"
FULL_INIT_USERS = 60  # users whose whole client-initialize response is recorded


class Specs(http.server.BaseHTTPRequestHandler):
    v1 = v2 = None
    logged = []  # events the logging SDK flushed

    def do_GET(self):
        if self.path.startswith("/logging/v2/"):
            # The logging SDK's copy: its exposure dedupe window (60 s by default, reset by a
            # timer) spans the whole run, so which repeated users are deduplicated does not
            # depend on how fast the run goes.
            payload = dict(Specs.v2, sdk_configs={"exposure_dedupe_ttl_ms": 86_400_000})
        else:
            payload = Specs.v2 if self.path.startswith("/v2/") else Specs.v1
        self._reply(200, json.dumps(payload).encode())

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if "log_event" in self.path:
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            Specs.logged.extend(json.loads(body).get("events", []))
        if "get_id_lists" in self.path:
            self._reply(200, b"{}")
        else:
            self._reply(202, b'{"success":true}')

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def compact(answer):
    """Leave out empty fields: the vector file stays small and an absent field reads as empty."""
    return {k: v for k, v in answer.items() if v not in (None, [], "")}


def exposures(entries):
    return [f"{e['gate']}|{e['gateValue']}|{e['ruleID']}" for e in entries or []]


def names(specs, table):
    """The names of one table's specs, then the names only config mappings have."""
    return [s["name"] for s in specs[table]] + [n for n, t in ruleset.unlisted_names(specs).items() if t == table]


def core_user(user):
    import statsig_python_core as core

    return core.StatsigUser(
        user_id=user.get("userID"), email=user.get("email"), ip=user.get("ip"), country=user.get("country"),
        locale=user.get("locale"), app_version=user.get("appVersion"), user_agent=user.get("userAgent"),
        custom=user.get("custom"), custom_ids=user.get("customIDs"),
        private_attributes=user.get("privateAttributes"), statsig_environment=user.get("statsigEnvironment"))


def core_answers(statsig, user, specs):
    cu = core_user(user)
    init = json.loads(statsig.get_client_initialize_response(cu, hash="none"))
    out = {}
    for name in names(specs, "feature_gates"):
        raw = statsig._INTERNAL_get_feature_gate(cu, name, None)
        entry = init["feature_gates"].get(name, {})
        out[name] = {"value": raw["value"], "rule_id": raw["ruleID"],
                     "secondary_exposures": exposures(entry.get("secondary_exposures"))}
    for name in names(specs, "dynamic_configs"):
        raw = statsig._INTERNAL_get_experiment(cu, name, None)
        entry = init["dynamic_configs"].get(name, {})
        # An unsupported config has no value; the SDK's get_dynamic_config reads it as {}.
        out[name] = {"value": raw.get("value", {}), "rule_id": raw["ruleID"], "group_name": raw.get("groupName"),
                     "secondary_exposures": exposures(entry.get("secondary_exposures"))}
    for name in names(specs, "layer_configs"):
        raw = statsig._INTERNAL_get_layer(cu, name, None)
        entry = init["layer_configs"].get(name, {})
        out[name] = {"value": raw["value"], "rule_id": raw["ruleID"], "group_name": raw.get("groupName"),
                     "allocated_experiment": raw.get("allocatedExperimentName") or None,
                     "secondary_exposures": exposures(entry.get("secondary_exposures")),
                     "undelegated_secondary_exposures": exposures(entry.get("undelegated_secondary_exposures"))}
    for volatile in ("sdkInfo", "generator"):
        init.pop(volatile, None)
    return out, init


def mapping_exposures(statsig, user, specs):
    """The `overrideConfigName` of the exposure the core SDK logs for each spec named with
    `mapped` (None: the exposure has none), read from the events it flushes. A spec whose
    exposure was deduplicated (an earlier user with the same ids, anywhere in the run: the
    logging SDK's dedupe window is set to a day) is left out."""
    cu = core_user(user)
    Specs.logged.clear()
    for name in names(specs, "feature_gates"):
        if "mapped" in name:
            statsig.check_gate(cu, name)
    for name in names(specs, "dynamic_configs"):
        if "mapped" in name:
            statsig.get_experiment(cu, name)
    for name in names(specs, "layer_configs"):
        if "mapped" in name:
            statsig.get_layer(cu, name).get("button", "")
    statsig.flush_events().wait()
    out = {}
    for event in Specs.logged:
        meta = event.get("metadata") or {}
        name = meta.get("gate") or meta.get("config")
        if event["eventName"].startswith("statsig::") and name and "mapped" in name:
            out.setdefault(name, meta.get("overrideConfigName"))
    return out


def legacy_answers(user, specs):
    from statsig import StatsigUser
    from statsig.utils import HashingAlgorithm
    from statsig import statsig

    try:
        lu = StatsigUser(
            user_id=user.get("userID"), email=user.get("email"), ip=user.get("ip"), country=user.get("country"),
            locale=user.get("locale"), app_version=user.get("appVersion"), user_agent=user.get("userAgent"),
            custom=user.get("custom"), custom_ids=user.get("customIDs"),
            private_attributes=user.get("privateAttributes"), _statsig_environment=user.get("statsigEnvironment"))
    except Exception as e:  # the legacy SDK refuses users without any id
        return {"error": type(e).__name__}
    init = statsig.get_client_initialize_response(lu, hash=HashingAlgorithm.NONE) or {}
    out = {}
    for name in names(specs, "feature_gates"):
        gate = statsig.get_feature_gate(lu, name, log_exposure=False)
        entry = init.get("feature_gates", {}).get(name, {})
        out[name] = {"value": gate.value, "rule_id": gate.rule_id,
                     "secondary_exposures": exposures(entry.get("secondary_exposures"))}
    for name in names(specs, "dynamic_configs"):
        cfg = statsig.get_experiment_with_exposure_logging_disabled(lu, name)
        entry = init.get("dynamic_configs", {}).get(name, {})
        out[name] = {"value": cfg.value, "rule_id": cfg.rule_id, "group_name": cfg.group_name,
                     "secondary_exposures": exposures(entry.get("secondary_exposures"))}
    for name in names(specs, "layer_configs"):
        layer = statsig.get_layer_with_exposure_logging_disabled(lu, name)
        entry = init.get("layer_configs", {}).get(name, {})
        out[name] = {"value": layer._Layer__value, "rule_id": layer.rule_id, "group_name": layer.group_name,
                     "allocated_experiment": entry.get("allocated_experiment_name") or None,
                     "secondary_exposures": exposures(entry.get("secondary_exposures")),
                     "undelegated_secondary_exposures": exposures(entry.get("undelegated_secondary_exposures"))}
    return out


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--out", default=DATA, help="folder for the three JSON files")
    args.add_argument("--check", action="store_true", help="regenerate and compare with --out")
    opts = args.parse_args()
    if opts.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(tmp)
            names = ["conformance_v1.json", "conformance_v2.json", "conformance_vectors.json"]
            _, mismatch, errors = filecmp.cmpfiles(opts.out, tmp, names, shallow=False)
            if mismatch or errors:
                sys.exit(f"conformance vectors differ from a fresh recording: {mismatch + errors}")
            print("conformance vectors reproduced exactly")
    else:
        generate(opts.out)


def generate(out_dir):
    import statsig_python_core as core
    from statsig import StatsigOptions, statsig

    v1 = ruleset.build()
    v2 = ruleset.to_v2(v1)
    Specs.v1, Specs.v2 = v1, v2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Specs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    core_sdk = core.Statsig(SECRET, core.StatsigOptions(
        specs_url=f"{base}/v2/download_config_specs", log_event_url=f"{base}/v1/log_event",
        disable_all_logging=True, wait_for_country_lookup_init=True, wait_for_user_agent_init=True,
        output_log_level="none"))
    core_sdk.initialize().wait()
    logging_sdk = core.Statsig(SECRET, core.StatsigOptions(
        specs_url=f"{base}/logging/v2/download_config_specs", log_event_url=f"{base}/v1/log_event",
        output_log_level="none", event_logging_flush_interval_ms=3_600_000))
    logging_sdk.initialize().wait()
    statsig.initialize(SECRET, StatsigOptions(api=f"{base}/v1", disable_diagnostics=True,
                                                      rulesets_sync_interval=3600, idlists_sync_interval=3600))

    started = time.time()
    cases, divergent = [], 0
    for i, user in enumerate(ruleset.users()):
        expected, init = core_answers(core_sdk, user, v1)
        legacy = legacy_answers(user, v1)
        expected = {k: compact(v) for k, v in expected.items()}
        legacy = {k: (v if k == "error" else compact(v)) for k, v in legacy.items()}
        diff = {k: v for k, v in legacy.items() if k != "error" and v != expected.get(k)}
        if "error" in legacy:
            diff["error"] = legacy["error"]
        divergent += len(diff)
        case = {"user": user, "expected": expected, "override_config_names": mapping_exposures(logging_sdk, user, v1)}
        if diff:
            case["legacy_differs"] = diff
        if i < FULL_INIT_USERS:
            case["initialize"] = init
        cases.append(case)

    core_sdk.shutdown().wait()
    logging_sdk.shutdown().wait()
    statsig.shutdown()
    server.shutdown()

    os.makedirs(out_dir, exist_ok=True)
    for name, doc in (("conformance_v1.json", v1), ("conformance_v2.json", v2)):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
    with open(os.path.join(out_dir, "conformance_vectors.json"), "w") as f:
        json.dump({
            "generated_by": {"statsig-python-core": version("statsig-python-core"), "statsig": version("statsig")},
            "now_note": "current_time conditions only use 2020 and 2100 targets, so answers do not age",
            "cases": cases,
        }, f, separators=(",", ":"), sort_keys=True)
    print(f"{len(cases)} users, {sum(len(c['expected']) for c in cases)} answers, "
          f"{divergent} where the legacy SDK differs, {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
