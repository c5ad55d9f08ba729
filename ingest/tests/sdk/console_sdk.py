"""The official Python SDKs see a gate created through the console API after their next sync.

Runs `gatehouse serve` with a --state-dir (no specs file), initializes the legacy `statsig`
SDK and `statsig-python-core` against it with a 1-second sync, creates, then edits, then
deletes a gate through the console API, and checks what each SDK answers after a sync.
Prints one "N passed, M failed" line; exit status 1 on any failure.

usage: console_sdk.py path/to/gatehouse
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SECRET = "secret-console-sdk"
ADMIN = "console-console-sdk"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def console(base, method, path, body=None):
    req = urllib.request.Request(f"{base}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"STATSIG-API-KEY": ADMIN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def wait_until(check, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def main():
    binary = sys.argv[1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = tempfile.mkdtemp(prefix="gatehouse-console-sdk-")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", state,
                             "--server-key", SECRET, "--console-key", ADMIN],
                            stdout=subprocess.DEVNULL, stderr=log)
    passed = failed = 0

    def check(name, ok):
        nonlocal passed, failed
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        passed, failed = passed + ok, failed + (not ok)

    try:
        assert wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 30)
        import statsig_python_core as core
        from statsig import StatsigOptions, StatsigUser, statsig

        core_sdk = core.Statsig(SECRET, core.StatsigOptions(
            specs_url=f"{base}/v2/download_config_specs", log_event_url=f"{base}/v1/log_event",
            specs_sync_interval_ms=1000, output_log_level="none"))
        core_sdk.initialize().wait()
        statsig.initialize(SECRET, StatsigOptions(api=f"{base}/v1", disable_diagnostics=True,
                                                  rulesets_sync_interval=1, idlists_sync_interval=3600))
        staff = dict(user_id="ann", email="ann@corp.example")
        answers = {
            "statsig-python-core": lambda: core_sdk.check_gate(core.StatsigUser(**staff), "sdk_gate"),
            "statsig (legacy)": lambda: statsig.check_gate(StatsigUser(**staff), "sdk_gate"),
        }
        for sdk, answer in answers.items():
            check(f"{sdk}: no sdk_gate before it is created", answer() is False)

        status, _ = console(base, "POST", "/console/v1/gates", {
            "name": "sdk_gate", "rules": [{"name": "staff", "passPercentage": 100, "conditions": [
                {"type": "email", "operator": "str_ends_with_any", "targetValue": ["@corp.example"]}]}]})
        check("gate created through the console API (201)", status == 201)
        for sdk, answer in answers.items():
            check(f"{sdk}: passes the new gate after a sync", wait_until(lambda: answer() is True, 15))

        status, _ = console(base, "PUT", "/console/v1/gates/sdk_gate/disable")
        check("gate disabled through the console API", status == 200)
        for sdk, answer in answers.items():
            check(f"{sdk}: sees it disabled after a sync", wait_until(lambda: answer() is False, 15))
        statsig.shutdown()
        core_sdk.shutdown().wait()
    except Exception as error:  # a crash is a failure, reported with the server's log
        check(f"no exception ({error!r})", False)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(state, ignore_errors=True)
        if failed:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
    print(f"console_sdk: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
