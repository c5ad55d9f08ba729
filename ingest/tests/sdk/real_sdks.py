"""Statsig's official server SDKs, unmodified, pointed at a running `gatehouse serve`.

The SDKs download the ruleset from Gatehouse (the core SDK's Python and Node builds,
`statsig-python-core` and `@statsig/statsig-node-core`, from
`/v2/download_config_specs/<key>.json`; the legacy `statsig` from
`/v1/download_config_specs/<key>.json`), evaluate locally, and must give the answers
Gatehouse's own `/v1/check_gate`, `/v1/get_config` and `/v1/get_layer` give for the same
users. Where the two SDKs are known to disagree (tests/data conformance vectors record it),
the legacy SDK is compared only on specs where it agrees with the core SDK.

`@statsig/js-on-device-eval-client` (js/on_device.mjs), with a client key that may download the
ruleset, must answer every case from Gatehouse's `/v1/download_config_specs` as from the
ruleset file served as it is.

`@statsig/js-client` initializes from `/v1/initialize` twice: under Node (js/js_client.mjs)
and as its browser build in headless Chromium on a page of another origin (js/browser.mjs:
CORS, `se=1` bodies, the preflight its `/v1/rgstr` headers cost, gzip from the browser's
CompressionStream). So does the legacy statsig-js, under Node (js/statsig_js.mjs) and in the
same page (`STATSIG-ENCODED: 1` bodies; its events by sendBeacon to `/v1/rgstr_b`). Their
values must equal the server API's, and no request may fail.

Statsig's Go SDK (github.com/statsig-io/go-sdk, go/main.go), Java SDK (com.statsig:
serversdk, java/SdkCheck.java) and legacy Node SDKs (statsig-node and its slimmed twin
statsig-node-lite, both js/statsig_node.mjs) evaluate
with the legacy algorithm, which differs from the core SDK's in places (operators Go lacks,
target apps, number handling): each must answer the same
from Gatehouse's `/v1/download_config_specs` and ID lists as from the ruleset file and lists
served as they are by a plain reference server, and its flushed event must arrive in Kafka.

ID lists: the ruleset served gains two gates on ID lists (`in_segment_list` on userIDs,
`not_in_segment_list` on stableIDs) given to `gatehouse serve --id-lists`; the three server
SDKs download the lists from Gatehouse (`get_id_lists`, `download_id_list_file`) and must
answer those gates as its API does, before and after a list is changed under the running
server.

Then each SDK logs a custom event and flushes: every event must arrive in Kafka (the broker
in GATEHOUSE_KAFKA_BROKERS, else the server's embedded one is not reachable and this part is
skipped with a note), read back with confluent-kafka.

Usage: real_sdks.py GATEHOUSE_BINARY SPECS_FILE VECTORS_FILE
Prints "N passed, M failed" and exits non-zero on any mismatch.
"""

import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SECRET = "secret-real-sdk-test"
CLIENT = "client-real-sdk-test"
# A client key that may download the ruleset (client_download_config_specs), for on-device
# evaluation.
CLIENT_SPECS = "client-real-sdk-on-device"
JS_USERS = 25
PARAM_STORE_USERS = 30
JS_DIR = os.path.join(os.path.dirname(__file__), "js")
GO_DIR = os.path.join(os.path.dirname(__file__), "go")
JAVA_DIR = os.path.join(os.path.dirname(__file__), "java")
USERS = 150
EVENTS_SCHEMA = os.path.join(os.path.dirname(__file__), "../../../docs/events.schema.json")
# Gates on ID lists, added to the served ruleset (name -> (operator, list, id type)).
ID_LIST_GATES = {"idlist_user": ("in_segment_list", "beta_users", "userID"),
                 "idlist_stable": ("not_in_segment_list", "stable_blocklist", "stableID")}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"statsig-api-key": SECRET, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_ready(base, proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gatehouse exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit("gatehouse did not become ready in 30 s")


def js_users(cases):
    """Users with a stableID: js-client invents one otherwise, and stableID-keyed specs would
    then legitimately differ from a server call without it."""
    return [c["user"] for c in cases if (c["user"].get("customIDs") or {}).get("stableID")][:JS_USERS]


def js_client(base, cases, marker, script, label):
    """@statsig/js-client or statsig-js (run by `script`: under Node, or both in a browser)
    initializes from /v1/initialize; its values must equal the server API's."""
    users = js_users(cases)
    v1 = json.load(open(os.path.join(os.path.dirname(__file__), "../../../evaluator/tests/data/conformance_v1.json")))
    gates = [s["name"] for s in v1["feature_gates"] if s["entity"] not in ("segment", "holdout")]
    configs = [s["name"] for s in v1["dynamic_configs"]]
    stores = v1.get("param_stores", {})
    param_stores = {name: list(store["parameters"]) for name, store in stores.items()}
    out = subprocess.run(["node", os.path.join(JS_DIR, script), base, CLIENT,
                          json.dumps({"users": users, "gates": gates, "configs": configs,
                                      "paramStores": param_stores}), marker],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        print(out.stderr[-4000:])
        return 0, 1
    result = json.loads(out.stdout.strip().splitlines()[-1])
    passed = failed = 0
    print(f"{label} initialized from gatehouse /v1/initialize: {result['initialized']}")
    if not result["initialized"]:
        failed += 1
    for request in result.get("failedRequests", []):
        failed += 1
        print(f"{label}: request failed: {request}")
    if "requestKinds" in result:  # the browser: its own encodings, preflights and beacons were used
        with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
            preflights = sum(float(line.split()[-1]) for line in resp.read().decode().splitlines()
                             if line.startswith('gatehouse_requests_total{endpoint="preflight",status="204"}'))
        used = {**result["requestKinds"], "preflight": preflights}
        print(f"{label} requests with se=1, gz=1, STATSIG-ENCODED: 1, beacons to rgstr_b, "
              f"and CORS preflights answered: {used}")
        ok = all(n > 0 for n in used.values())
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    for answer in result["answers"]:
        user = answer["user"]
        ours = post(base, "/v1/check_gate", {"user": user, "gateNames": gates})
        for g in gates:
            if answer["gates"][g] == ours[g]["value"]:
                passed += 1
            else:
                failed += 1
                print(f"MISMATCH {label} gate {g} user={json.dumps(user)}: js={answer['gates'][g]} gatehouse={ours[g]['value']}")
        config_values = {c: post(base, "/v1/get_config", {"user": user, "configName": c})["value"]
                         for c in configs}
        for c in configs:
            if answer["configs"][c] == config_values[c]:
                passed += 1
            else:
                failed += 1
                print(f"MISMATCH {label} config {c} user={json.dumps(user)}: js={answer['configs'][c]} "
                      f"gatehouse={config_values[c]}")
        # Parameter stores (js-client only: the legacy statsig-js has none), resolved from
        # the same user's answers of the server API.
        for store, params in answer.get("params", {}).items():
            for name, got in params.items():
                want = param_value(stores[store]["parameters"][name], base, user, ours, config_values)
                if got == want:
                    passed += 1
                else:
                    failed += 1
                    print(f"MISMATCH {label} parameter {store}.{name} user={json.dumps(user)}: js={got} "
                          f"gatehouse={want}")
    return passed, failed


def user_kwargs(user):
    """A user's fields as the Python SDKs' StatsigUser takes them (but the environment, which
    the two SDKs name differently)."""
    return dict(user_id=user.get("userID"), email=user.get("email"), ip=user.get("ip"),
                country=user.get("country"), locale=user.get("locale"),
                app_version=user.get("appVersion"), user_agent=user.get("userAgent"),
                custom=user.get("custom"), custom_ids=user.get("customIDs"),
                private_attributes=user.get("privateAttributes"))


def core_param_stores(base, cases, core_sdk, core):
    """The parameter stores statsig-python-core puts in its own client initialize response,
    from the ruleset it downloaded from us, equal those of our /v1/initialize (djb2 names)."""
    passed = failed = 0
    for case in cases[:PARAM_STORE_USERS]:
        user = case["user"]
        cu = core.StatsigUser(**user_kwargs(user), statsig_environment=user.get("statsigEnvironment"))
        theirs = json.loads(core_sdk.get_client_initialize_response(cu, hash="djb2"))["param_stores"]
        req = urllib.request.Request(base + "/v1/initialize", data=json.dumps({"user": user, "hash": "djb2"}).encode(),
                                     headers={"statsig-api-key": CLIENT, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            ours = json.loads(resp.read())["param_stores"]
        if theirs == ours and ours:
            passed += 1
        else:
            failed += 1
            print(f"MISMATCH core param_stores user={json.dumps(user)}: sdk={theirs} gatehouse={ours}")
    print(f"core SDK's parameter stores from our DCS equal our /v1/initialize's: {passed} of {passed + failed} users")
    return passed, failed


def param_value(param, base, user, gates, config_values):
    """What a parameter of a store resolves to for `user`, by the server API's answers:
    `gates` from check_gate, `config_values` from get_config, layers asked here."""
    kind = param["ref_type"]
    if kind == "static":
        return param["value"]
    if kind == "gate":
        return param["pass_value"] if gates[param["gate_name"]]["value"] else param["fail_value"]
    if kind == "layer":
        value = post(base, "/v1/get_layer", {"user": user, "layerName": param["layer_name"]})["value"]
    else:
        value = config_values[param.get("config_name") or param["experiment_name"]]
    return value.get(param["param_name"])


def id_list_gate(name):
    """One of the ID_LIST_GATES as a v1 spec (conditions inline)."""
    operator, list_name, id_type = ID_LIST_GATES[name]
    condition = {"type": "unit_id", "operator": operator, "targetValue": list_name, "idType": id_type,
                 "field": None, "additionalValues": {}}
    return {"name": name, "type": "feature_gate", "entity": "feature_gate", "salt": f"salt_{name}",
            "enabled": True, "defaultValue": False, "idType": id_type, "version": 1,
            "rules": [{"name": f"rule_{name}", "id": f"rule_{name}", "salt": f"rule_{name}", "passPercentage": 100,
                       "returnValue": True, "idType": id_type, "conditions": [condition], "groupName": None}]}


def with_id_list_gates(specs_path, out_dir):
    """The v2 ruleset at `specs_path` plus the ID_LIST_GATES, written under `out_dir`; and the
    v1 ruleset beside it (conformance_v1.json, the generator's own file) plus the same gates."""
    specs = json.load(open(specs_path))
    v1 = json.load(open(os.path.join(os.path.dirname(specs_path), "conformance_v1.json")))
    for name in ID_LIST_GATES:
        spec = id_list_gate(name)
        v1["feature_gates"].append(json.loads(json.dumps(spec)))
        condition = f"cond_{name}"
        specs["condition_map"][condition] = spec["rules"][0]["conditions"][0]
        spec["rules"][0]["conditions"] = [condition]
        specs["feature_gates"][spec.pop("name")] = spec
    path = os.path.join(out_dir, "specs.json")
    json.dump(specs, open(path, "w"))
    return path, v1


def reference_server(v1, lists_dir):
    """A plain server of Statsig's formats: `v1` as written, and the lists in `lists_dir` as
    list files of `+` and base64(SHA-256(id))[:8], with their manifest. Returns its base URL."""
    files = {}
    for name in sorted(os.listdir(lists_dir)):
        if not name.startswith("."):
            ids = open(os.path.join(lists_dir, name)).read().split()
            keys = sorted({base64.b64encode(hashlib.sha256(i.encode()).digest()).decode()[:8] for i in ids})
            files[name] = "".join(f"+{k}\n" for k in keys).encode()

    class Reference(http.server.BaseHTTPRequestHandler):
        # Keep-alive, as SDK HTTP clients expect (OkHttp reuses a connection an HTTP/1.0
        # server has closed, and fails).
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1]
            if self.path.startswith("/v1/download_id_list_file/") and name in files:
                self._reply(files[name])
            else:
                self._reply(json.dumps(v1).encode())

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            if "get_id_lists" in self.path:
                base = f"http://{self.headers['host']}"
                self._reply(json.dumps({name: {"name": name, "size": len(body), "creationTime": 1, "fileID": name,
                                               "url": f"{base}/v1/download_id_list_file/{name}"}
                                        for name, body in files.items()}).encode())
            elif "download_config_specs" in self.path:
                self._reply(json.dumps(v1).encode())
            else:
                self._reply(b'{"success":true}', 202)

        def _reply(self, body, status=200):
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Reference)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def built(command, cwd, what):
    """Runs a build step; exits naming `what` when it fails."""
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"building the {what} check failed:\n{out.stdout[-2000:]}{out.stderr[-4000:]}")
    return out


def go_command(work):
    """The Go SDK check (go/main.go), built under `work`."""
    binary = os.path.join(work, "sdk-go")
    built(["go", "build", "-o", binary, "."], GO_DIR, "Go SDK")
    return [binary]


def java_command(work):
    """The Java SDK check (java/SdkCheck.java), compiled under `work` against the SDK Maven
    resolves."""
    out_dir = os.path.join(work, "java")
    os.mkdir(out_dir)
    classpath_file = os.path.join(out_dir, "classpath.txt")
    built(["mvn", "-q", "-f", "pom.xml", "dependency:build-classpath", f"-Dmdep.outputFile={classpath_file}"],
          JAVA_DIR, "Java SDK")
    classpath = open(classpath_file).read().strip()
    built(["javac", "-d", out_dir, "-cp", classpath, "SdkCheck.java"], JAVA_DIR, "Java SDK")
    return ["java", "-cp", f"{out_dir}{os.pathsep}{classpath}", "SdkCheck"]


def sdk_runs(command, bases, cases, marker, key=SECRET):
    """An SDK check that evaluates on its own (`command`: go/, java/, js/statsig_node.mjs,
    js/on_device.mjs) run on every case from each server in `bases`, with `key`."""
    results = []
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump([{"user": c["user"], "names": names_of(c)} for c in cases], f)
        f.flush()
        for base in bases:
            out = subprocess.run([*command, base, key, f.name, marker], capture_output=True, text=True,
                                 timeout=300)
            if out.returncode != 0:
                sys.exit(f"{command[-1]} failed:\n{out.stderr[-4000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def write_id_lists(lists_dir, cases, shift):
    """Every third user's userID (from `shift`) in beta_users, every fourth stableID in
    stable_blocklist, and an empty list; written under dot-names and renamed into place."""
    user_ids = [c["user"].get("userID") for c in cases if c["user"].get("userID")]
    stable_ids = [(c["user"].get("customIDs") or {}).get("stableID") for c in cases]
    lists = {"beta_users": user_ids[shift::3], "stable_blocklist": [s for s in stable_ids if s][shift::4], "empty": []}
    for name, ids in lists.items():
        tmp = os.path.join(lists_dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write("".join(f"{i}\n" for i in ids))
        os.replace(tmp, os.path.join(lists_dir, name))


def node_core(base, cases, marker):
    """statsig-node-core evaluates every case from our v2 ruleset (js/node_core.mjs)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump([{"user": c["user"], "names": names_of(c)} for c in cases], f)
        f.flush()
        out = subprocess.run(["node", os.path.join(JS_DIR, "node_core.mjs"), base, SECRET, f.name, marker],
                             capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"statsig-node-core failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def unit_id(user, id_type):
    """The user's id of `id_type` ("" when it has none)."""
    if id_type == "userID":
        return user.get("userID") or ""
    return (user.get("customIDs") or {}).get(id_type) or ""


def names_of(case):
    """The specs a case is checked on: the recorded ones and the ID-list gates."""
    return list(case["expected"]) + list(ID_LIST_GATES)


def legacy_sdk_check(label, command, base, v1, lists_dir, cases, marker):
    """A legacy-algorithm SDK answers alike from gatehouse and from the reference server, and on
    the ID-list gates as gatehouse's API does for users with the gate's unit id (elsewhere its
    algorithm may differ from the core's)."""
    ours_run, reference_run = sdk_runs(command, [base, reference_server(v1, lists_dir)], cases, marker)
    print(f"{label} initialized from gatehouse /v1/download_config_specs: {ours_run['initialized']}, "
          f"from the reference server: {reference_run['initialized']}")
    passed = failed = same_as_api = compared = 0
    for case, ours, reference in zip(cases, ours_run["answers"], reference_run["answers"]):
        if reference is None:
            continue  # a user the SDK's User type cannot hold, or one it refuses
        for name, from_us, from_reference in zip(names_of(case), ours, reference):
            if from_us == from_reference:
                passed += 1
            else:
                failed += 1
                if failed <= 10:
                    print(f"MISMATCH {label} {name} user={json.dumps(case['user'])}: from gatehouse={from_us} "
                          f"from the reference={from_reference}")
    for case, answers in zip(cases, ours_run["answers"]):
        for name, (value, rule_id) in zip(names_of(case), answers or []):
            # A user without the gate's unit id is where the legacy algorithms differ (Java
            # fails not_in_segment_list for it; the core SDK compares "").
            if name in ID_LIST_GATES and unit_id(case["user"], ID_LIST_GATES[name][2]):
                ours = post(base, "/v1/check_gate", {"user": case["user"], "gateName": name})
                compared += 1
                same_as_api += (value, rule_id) == (ours["value"], ours["rule_id"])
    print(f"{label}: {passed} of {passed + failed} answers alike from gatehouse and the reference server; "
          f"on the ID-list gates, for users with the unit id, {same_as_api} of {compared} equal gatehouse's API")
    ok = ours_run["initialized"] and reference_run["initialized"] and same_as_api == compared and compared > 0
    return passed + ok, failed + (not ok)


def on_device_check(base, v1, lists_dir, cases, marker):
    """@statsig/js-on-device-eval-client, with a client key holding client_download_config_specs,
    downloads the whole ruleset from gatehouse and must answer every case as it does from the
    ruleset served as it is. Its own evaluator differs from the core SDK's (docs/sdks.md), so it
    is not compared with Gatehouse's API."""
    command = ["node", os.path.join(JS_DIR, "on_device.mjs")]
    ours, reference = sdk_runs(command, [base, reference_server(v1, lists_dir)], cases, marker, CLIENT_SPECS)
    alike = sum(a == b for case_ours, case_ref in zip(ours["answers"], reference["answers"])
                for a, b in zip(case_ours, case_ref))
    total = sum(len(names_of(c)) for c in cases)
    print(f"js-on-device-eval-client initialized from gatehouse /v1/download_config_specs: {ours['initialized']}, "
          f"from the reference server: {reference['initialized']}; {alike} of {total} answers alike")
    failed = (total - alike) + (not ours["initialized"]) + (not reference["initialized"])
    return alike + ours["initialized"] + reference["initialized"], failed


def changed_id_lists(base, cases, lists_dir, core_sdk, core, statsig, marker):
    """Rewrites the lists under the running server; once it answers from the new lists, the
    running core and legacy SDKs (syncing lists every second) and a new node-core process must
    answer the ID-list gates as it does, for every user."""
    from statsig import StatsigUser

    def ours():
        return [[post(base, "/v1/check_gate", {"user": c["user"], "gateName": g})["value"]
                 for g in ID_LIST_GATES] for c in cases]

    before = ours()
    write_id_lists(lists_dir, cases, 1)
    deadline = time.time() + 15
    while ours() == before and time.time() < deadline:
        time.sleep(0.2)
    # The lists are renamed into place one by one: let the server see the last one too.
    time.sleep(1)
    after = ours()
    flipped = sum(a != b for rb, ra in zip(before, after) for b, a in zip(rb, ra))
    print(f"ID lists changed under the running server: {flipped} gate answers flipped")
    if flipped == 0:
        return 0, 1

    def theirs():
        answers = {"core": [], "legacy": []}
        for c in cases:
            user = c["user"]
            kwargs = dict(user_id=user.get("userID"), custom_ids=user.get("customIDs"))
            cu = core.StatsigUser(**kwargs)
            answers["core"].append([core_sdk.check_gate(cu, g, core.FeatureGateEvaluationOptions(
                disable_exposure_logging=True)) for g in ID_LIST_GATES])
            try:
                lu = StatsigUser(**kwargs)
                answers["legacy"].append([statsig.get_feature_gate(lu, g, log_exposure=False).value
                                          for g in ID_LIST_GATES])
            except Exception:
                answers["legacy"].append(None)  # the legacy SDK refuses users without any id
        return answers

    deadline = time.time() + 15
    while time.time() < deadline:
        answers = theirs()
        if all(a is None or a == b for sdk in answers.values() for a, b in zip(sdk, after)):
            break
        time.sleep(0.5)
    node = node_core(base, cases, marker)
    answers["node-core"] = [[node["answers"][i][names_of(c).index(g)][0] for g in ID_LIST_GATES]
                            for i, c in enumerate(cases)]
    passed = failed = 0
    for sdk, per_user in answers.items():
        compared = [(case, t, m) for case, t, m in zip(cases, per_user, after) if t is not None]
        wrong = [(case, t, m) for case, t, m in compared if t != m]
        for case, theirs_now, mine in wrong[:5]:
            print(f"MISMATCH after the list change {sdk} user={json.dumps(case['user'])}: "
                  f"sdk={theirs_now} gatehouse={mine}")
        print(f"{sdk} after the list change: {len(compared) - len(wrong)} of {len(compared)} users answer as gatehouse")
        passed, failed = passed + len(compared) - len(wrong), failed + len(wrong)
    return passed, failed


def read_topic(brokers, topic, done, timeout_s=60):
    """Messages of `topic` from the start, parsed, until `done(messages)` or the timeout, or
    once messages stop coming for 3 s with `done` None (the whole topic)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"sdk-test-{os.getpid()}-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages = []
    deadline = time.time() + timeout_s
    last = time.time()
    try:
        while time.time() < deadline and not (done(messages) if done else messages and time.time() - last > 3):
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                messages.append(json.loads(msg.value()))
                last = time.time()
    finally:
        consumer.close()
    return messages


def schema_violations(messages):
    """Messages that break the published schema (docs/events.schema.json), with why."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json.load(open(EVENTS_SCHEMA)))
    return [(m, error.message) for m in messages for error in list(validator.iter_errors(m))[:1]]


def main():
    binary, specs, vectors_path = sys.argv[1:4]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    brokers = os.environ.get("GATEHOUSE_KAFKA_BROKERS")
    events_topic = f"sdk-test.events.{os.getpid()}.{int(time.time())}"
    work = tempfile.mkdtemp(prefix="gatehouse-sdk-")
    specs, v1 = with_id_list_gates(specs, work)
    lists_dir = os.path.join(work, "lists")
    os.mkdir(lists_dir)
    with open(vectors_path) as f:
        cases = json.load(f)["cases"][:USERS]
    write_id_lists(lists_dir, cases, 0)
    cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--specs", specs, "--server-key", SECRET,
           "--client-key", CLIENT, "--client-specs-key", CLIENT_SPECS, "--id-lists", lists_dir, "--specs-poll-ms", "200",
           "--events-topic", events_topic, "--exposures-topic", events_topic + ".exposures"]
    if brokers:
        cmd += ["--kafka-brokers", brokers]
    # Logs go to a file (a pipe nobody reads would block the server once full).
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    passed = failed = 0
    try:
        wait_ready(base, proc)
        import statsig_python_core as core
        from statsig import StatsigOptions, StatsigUser, statsig

        core_sdk = core.Statsig(SECRET, core.StatsigOptions(
            specs_url=f"{base}/v2/download_config_specs", log_event_url=f"{base}/v1/log_event",
            enable_id_lists=True, id_lists_url=f"{base}/v1/get_id_lists", id_lists_sync_interval_ms=1000,
            output_log_level="none", wait_for_country_lookup_init=True, wait_for_user_agent_init=True))
        details = core_sdk.initialize_with_details().result()
        statsig.initialize(SECRET, StatsigOptions(api=f"{base}/v1", disable_diagnostics=True,
                                                  rulesets_sync_interval=3600, idlists_sync_interval=1))
        marker = f"run-{os.getpid()}-{time.time()}"
        node = node_core(base, cases, marker)
        print(f"statsig-node-core initialized from gatehouse /v2/download_config_specs: {node['initialized']}")
        if not node["initialized"]:
            failed += 1
        for case, node_answers in zip(cases, node["answers"]):
            user = case["user"]
            node_answers = dict(zip(names_of(case), node_answers))
            legacy_differs = case.get("legacy_differs", {})
            kwargs = user_kwargs(user)
            cu = core.StatsigUser(**kwargs, statsig_environment=user.get("statsigEnvironment"))
            try:
                lu = StatsigUser(**kwargs, _statsig_environment=user.get("statsigEnvironment"))
            except Exception:
                lu = None  # the legacy SDK refuses users without any id
            for name in names_of(case):
                if name.startswith("layer_") and "_exp_" not in name:
                    ours = post(base, "/v1/get_layer", {"user": user, "layerName": name})
                    answers = [("core", core_sdk._INTERNAL_get_layer(cu, name, None)["ruleID"], ours["ruleID"]),
                               ("node-core", node_answers[name][1], ours["ruleID"])]
                    if lu is not None and "error" not in legacy_differs and name not in legacy_differs:
                        answers.append(("legacy", statsig.get_layer_with_exposure_logging_disabled(lu, name).rule_id,
                                        ours["ruleID"]))
                elif name.startswith(("config_", "exp_", "layer_")):
                    ours = post(base, "/v1/get_config", {"user": user, "configName": name})
                    raw = core_sdk._INTERNAL_get_experiment(cu, name, None)
                    # An unsupported config has no value: python-core's raw answer leaves it out,
                    # node-core's reads null; both mean the {} our API answers.
                    node_value, node_rule = node_answers[name]
                    answers = [("core", (raw.get("value", {}), raw["ruleID"]), (ours["value"], ours["group"])),
                               ("node-core", ({} if node_value is None else node_value, node_rule),
                                (ours["value"], ours["group"]))]
                    if lu is not None and "error" not in legacy_differs and name not in legacy_differs:
                        cfg = statsig.get_experiment_with_exposure_logging_disabled(lu, name)
                        answers.append(("legacy", (cfg.value, cfg.rule_id), (ours["value"], ours["group"])))
                else:
                    ours = post(base, "/v1/check_gate", {"user": user, "gateName": name})
                    raw = core_sdk._INTERNAL_get_feature_gate(cu, name, None)
                    answers = [("core", (raw["value"], raw["ruleID"]), (ours["value"], ours["rule_id"])),
                               ("node-core", tuple(node_answers[name]), (ours["value"], ours["rule_id"]))]
                    if lu is not None and "error" not in legacy_differs and name not in legacy_differs:
                        gate = statsig.get_feature_gate(lu, name, log_exposure=False)
                        answers.append(("legacy", (gate.value, gate.rule_id), (ours["value"], ours["rule_id"])))
                for sdk, theirs, mine in answers:
                    if theirs == mine:
                        passed += 1
                    else:
                        failed += 1
                        if failed <= 10:
                            print(f"MISMATCH {sdk} {name} user={json.dumps(user)}: sdk={theirs} gatehouse={mine}")
        print(f"core SDK initialized from gatehouse: {details.init_success} ({details.source})")
        stores_passed, stores_failed = core_param_stores(base, cases, core_sdk, core)
        passed, failed = passed + stores_passed, failed + stores_failed
        legacy_node = ["node", os.path.join(JS_DIR, "statsig_node.mjs")]
        for label, command in (("Go SDK", go_command(work)), ("Java SDK", java_command(work)),
                               ("statsig-node", [*legacy_node, "statsig-node"]),
                               ("statsig-node-lite", [*legacy_node, "statsig-node-lite"])):
            sdk_passed, sdk_failed = legacy_sdk_check(label, command, base, v1, lists_dir, cases, marker)
            passed, failed = passed + sdk_passed, failed + sdk_failed
        device_passed, device_failed = on_device_check(base, v1, lists_dir, cases, marker)
        passed, failed = passed + device_passed, failed + device_failed
        lists_passed, lists_failed = changed_id_lists(base, cases, lists_dir, core_sdk, core, statsig, marker)
        passed, failed = passed + lists_passed, failed + lists_failed
        for script, label in (("js_client.mjs", "js-client (Node)"), ("statsig_js.mjs", "statsig-js (Node)"),
                              ("browser.mjs", "js-client and statsig-js (headless Chromium, cross-origin)")):
            js_passed, js_failed = js_client(base, cases, marker, script, label)
            passed, failed = passed + js_passed, failed + js_failed
        core_sdk.log_event(core.StatsigUser(user_id="core-user"), "sdk_check_core", marker, {"sdk": "core"})
        statsig.log_event(__import__("statsig").StatsigEvent(
            StatsigUser(user_id="legacy-user"), "sdk_check_legacy", value=marker, metadata={"sdk": "legacy"}))
        core_sdk.shutdown().wait()
        statsig.shutdown()
        if brokers:
            js_events = ("sdk_check_js", "sdk_check_browser", "sdk_check_browser_gzip")
            legacy_js_events = ("sdk_check_statsig_js", "sdk_check_statsig_js_beacon")
            names = {"sdk_check_core", "sdk_check_legacy", "sdk_check_node_core", "sdk_check_go", "sdk_check_java",
                     "sdk_check_statsig_node", "sdk_check_statsig_node_lite", "sdk_check_on_device",
                     *js_events, *legacy_js_events}
            events = read_topic(brokers, events_topic, lambda seen: names <= {e["event_name"] for e in seen})
            arrived = {e["event_name"]: e for e in events if e["event_name"] in names}
            js_user = js_users(cases)[0]
            js_unit = js_user.get("userID") or js_user["customIDs"]["stableID"]
            for name, user_id, sdk_type in (("sdk_check_core", "core-user", "statsig-server-core-python"),
                                            ("sdk_check_go", "go-user", "go-sdk"),
                                            ("sdk_check_java", "java-user", "java-server"),
                                            ("sdk_check_legacy", "legacy-user", "py-server"),
                                            ("sdk_check_node_core", "node-core-user", "statsig-server-core-node"),
                                            ("sdk_check_statsig_node", "statsig-node-user", "statsig-node"),
                                            ("sdk_check_statsig_node_lite", "statsig-node-lite-user",
                                             "statsig-node-lite"),
                                            ("sdk_check_on_device", "on-device-user", "js-on-device-eval-client"),
                                            *((name, js_unit, "javascript-client") for name in js_events),
                                            *((name, js_unit, "js-client") for name in legacy_js_events)):
                event = arrived.get(name)
                ok = (event is not None and event["value"] == marker and event["unit_id"] == user_id
                      and event["sdk_type"] == sdk_type and event["schema_version"] == 1)
                print(f"{name} flushed by the SDK arrived in Kafka: {ok}")
                if not ok:
                    print(f"  {name} as read from Kafka: {json.dumps(event)}")
                passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
            # Exposures: those the front door wrote for the API calls above and those the
            # client SDKs sent; with every event read, all must match the published schema.
            exposures = read_topic(brokers, events_topic + ".exposures", None)
            sdk_sent = sum(1 for e in exposures if e.get("sdk_type") == "javascript-client")
            broken = schema_violations(events + exposures)
            ok = not broken and len(exposures) >= 5000 and sdk_sent > 0
            print(f"{len(events)} events and {len(exposures)} exposures ({sdk_sent} sent by js-client) match "
                  f"docs/events.schema.json: {ok}")
            for message, why in broken[:3]:
                print(f"  schema: {why}: {json.dumps(message)[:500]}")
            passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        else:
            print("GATEHOUSE_KAFKA_BROKERS unset: SDK event delivery not checked")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()
