#!/usr/bin/env python3
"""`gatehouse analyze` against an independent computation: real exposures and events go
through a running `gatehouse up` (front door -> Kafka -> sink -> Parquet), then the report
must equal what DuckDB SQL over the same files (and scipy's distributions) say.

Usage: analyze_test.py <gatehouse binary>   (uses GATEHOUSE_KAFKA_BROKERS when set)
Prints one line per check and "N passed, M failed"; exit 1 on any failure.
"""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import duckdb
from scipy import stats

BIN = sys.argv[1]
KEY = "secret-analyze"
counts = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    counts["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


def close(a, b, rel=1e-9):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"statsig-api-key": KEY, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def wait_ready(port, proc):
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError("gatehouse up exited")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gatehouse up not ready")


def run_traffic(workdir):
    data = os.path.join(workdir, "data")
    specs_path = os.path.join(workdir, "specs.json")
    specs = json.load(open("docs/examples/specs.json"))
    json.dump(specs, open(specs_path, "w"))
    port = free_port()
    run = uuid.uuid4().hex[:8]
    args = [BIN, "up", "--listen", f"127.0.0.1:{port}", "--specs", specs_path, "--server-key", KEY,
            "--data-dir", data, "--max-file-age-secs", "1", "--specs-poll-ms", "100",
            "--exposures-topic", f"analyze-{run}-exposures", "--events-topic", f"analyze-{run}-events",
            "--group", f"analyze-{run}"]
    if os.environ.get("GATEHOUSE_KAFKA_BROKERS"):
        args += ["--kafka-brokers", os.environ["GATEHOUSE_KAFKA_BROKERS"]]
    log = open(os.path.join(workdir, "up.log"), "w")
    proc = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ, "NO_COLOR": "1"})
    wait_ready(port, proc)
    user = lambda i: {"userID": f"u{i}", "country": "US"}
    for i in range(1500):
        post(port, "/v1/get_config", {"user": user(i), "configName": "checkout_button"})
    # New experiment salt: some of the first 300 users change group, and must be excluded.
    for rule in specs["dynamic_configs"][0]["rules"]:
        rule["conditions"][0]["additionalValues"]["salt"] = "reshuffled"
    specs["time"] += 1000
    json.dump(specs, open(specs_path + ".new", "w"))
    os.replace(specs_path + ".new", specs_path)
    time.sleep(1.0)
    for i in range(300):
        post(port, "/v1/get_config", {"user": user(i), "configName": "checkout_button"})
    now = int(time.time() * 1000)
    events = []
    for i in range(1500):
        if i % 3 == 0:
            events.append({"eventName": "purchase", "value": f"{i % 50}.5", "user": user(i), "time": now + 1000})
        if i % 5 == 0:
            events.append({"eventName": "purchase", "value": "1", "user": user(i), "time": now + 2000})
        if i % 7 == 0:  # before the unit's first exposure: not counted
            events.append({"eventName": "purchase", "value": "100", "user": user(i), "time": now - 3_600_000})
        if i % 11 == 0:  # another event, and a value that is not a number
            events.append({"eventName": "view", "value": "home", "user": user(i), "time": now + 1000})
            events.append({"eventName": "purchase", "value": "n/a", "user": user(i), "time": now + 3000})
    for start in range(0, len(events), 200):
        post(port, "/v1/log_event", {"events": events[start:start + 200]})
    # An SDK resending a batch it got no answer for: its events arrive twice, under one id each.
    post(port, "/v1/log_event", {"events": events[:200]})
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    check("gatehouse up stops cleanly and publishes", code == 0, open(os.path.join(workdir, "up.log")).read()[-2000:])
    return data


def duckdb_truth(data):
    exp = f"read_parquet('{data}/exposures/*/*/*.parquet', hive_partitioning=true)"
    ev = f"read_parquet('{data}/events/*/*/*.parquet', hive_partitioning=true)"
    base = f"""
      with exp as (select unit_id, coalesce(group_name, rule_id) as g, event_time
                   from {exp} where entity_name = 'checkout_button'),
      units as (select unit_id, min(event_time) as first, count(distinct g) as ng, any_value(g) as g
                from exp group by unit_id),
      clean as (select * from units where ng = 1),
      ev as (select unit_id, event_time, value_number from {ev}
             where event_name = 'purchase' and unit_id_type = 'userID'
             qualify row_number() over (partition by event_id) = 1),
      per_unit as (select c.unit_id, c.g, (count(e.unit_id) > 0)::int as conv,
                          coalesce(sum(e.value_number), 0) as val
                   from clean c left join ev e on e.unit_id = c.unit_id and e.event_time >= c.first
                   group by c.unit_id, c.g)
    """
    groups = duckdb.sql(base + """
      select g, count(*), sum(conv), avg(conv), var_samp(conv), avg(val), var_samp(val)
      from per_unit group by g order by g""").fetchall()
    exposures = dict(duckdb.sql(f"select coalesce(group_name, rule_id), count(*) from {exp} "
                                "where entity_name = 'checkout_button' group by 1").fetchall())
    mixed = duckdb.sql(base + "select count(*) from units where ng > 1").fetchall()[0][0]
    copies = duckdb.sql(f"select count(*) - count(distinct event_id) from {ev}").fetchall()[0][0]
    return groups, exposures, mixed, copies


def welch(t, c):
    """(absolute, ci, relative, rel ci, p, df) from (n, mean, var) pairs, with scipy."""
    (nt, mt, vt), (nc, mc, vc) = t, c
    a, b = vt / nt, vc / nc
    se = math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (nt - 1) + b * b / (nc - 1))
    q = stats.t.ppf(0.975, df)
    diff = mt - mc
    rel = diff / mc
    se_rel = math.sqrt(a / mc ** 2 + mt ** 2 * b / mc ** 4)
    return diff, [diff - q * se, diff + q * se], rel, [rel - q * se_rel, rel + q * se_rel], \
        2 * stats.t.sf(abs(diff / se), df), df


def main():
    with tempfile.TemporaryDirectory() as workdir:
        try:
            data = run_traffic(workdir)
            out = subprocess.run([BIN, "analyze", "checkout_button", "--data-dir", data, "--event", "purchase",
                                  "--json", "--html", os.path.join(workdir, "report.html")],
                                 capture_output=True, text=True, check=True).stdout
            report = json.loads(out)
            groups, exposures, mixed, copies = duckdb_truth(data)
            check("the resent batch's 200 events are on disk twice, under their first ids", copies == 200, copies)
            names = [g[0] for g in groups]
            check("groups are Control and Test", names == ["Control", "Test"], names)
            check("mixed units counted and excluded", report["mixed_units"] == mixed and mixed > 0,
                  f"{report['mixed_units']} vs {mixed}")
            for g, row in zip(report["groups"], groups):
                check(f"{g['name']}: exposures and units equal DuckDB's",
                      g["exposures"] == exposures[g["name"]] and g["units"] == row[1],
                      f"{g} vs {row} / {exposures}")
            n = sum(r[1] for r in groups)
            chi = sum((r[1] - n / 2) ** 2 / (n / 2) for r in groups)
            check("SRM chi-square and p equal scipy's",
                  close(report["srm"]["chi_square"], chi) and close(report["srm"]["p_value"], stats.chi2.sf(chi, 1), 1e-7),
                  f"{report['srm']} vs {chi}")
            metric = {g["name"]: g for g in report["metric"]["groups"]}
            for row in groups:
                m = metric[row[0]]
                check(f"{row[0]}: converted, conversion and value per unit equal DuckDB's",
                      m["converted"] == row[2] and close(m["conversion"]["mean"], row[3])
                      and close(m["conversion"]["variance"], row[4]) and close(m["value"]["mean"], row[5])
                      and close(m["value"]["variance"], row[6]), f"{m} vs {row}")
            control, test = groups[0], groups[1]
            for field, cols in (("conversion_vs_control", (3, 4)), ("value_vs_control", (5, 6))):
                mine = metric["Test"][field]
                truth = welch((test[1], test[cols[0]], test[cols[1]]), (control[1], control[cols[0]], control[cols[1]]))
                ok = (close(mine["absolute"], truth[0]) and all(close(a, b, 1e-7) for a, b in zip(mine["absolute_ci95"], truth[1]))
                      and close(mine["relative"], truth[2]) and all(close(a, b, 1e-7) for a, b in zip(mine["relative_ci95"], truth[3]))
                      and close(mine["p_value"], truth[4], 1e-6) and close(mine["df"], truth[5]))
                check(f"Test {field}: lift, 95% intervals, Welch p equal scipy's", ok, f"{mine} vs {truth}")
            html = open(os.path.join(workdir, "report.html")).read()
            check("--html writes a self-contained report with a chart",
                  "<svg" in html and "checkout_button" in html and "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", ""))
            text = subprocess.run([BIN, "analyze", "checkout_button", "--data-dir", data, "--event", "purchase"],
                                  capture_output=True, text=True, check=True).stdout
            check("the terminal table names the groups and the SRM verdict",
                  "Control" in text and "Test" in text and "sample ratio" in text, text)
            bad = subprocess.run([BIN, "analyze", "no_such_experiment", "--data-dir", data], capture_output=True, text=True)
            check("an unknown experiment is a clear error", bad.returncode == 1 and "no exposures" in bad.stderr, bad.stderr)
        except Exception as e:
            check("the harness ran", False, repr(e))
            log = os.path.join(workdir, "up.log")
            if os.path.exists(log):
                print(open(log).read()[-3000:], file=sys.stderr)
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()
