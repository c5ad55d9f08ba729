#!/usr/bin/env python3
"""The sink's core promise on a real Apache Kafka broker: kill -9 it at random points, run
two sinks in one group across rebalances, and prove with independent readers (DuckDB and
pyarrow) that the Parquet files hold every produced message exactly once, and that Apache
Spark (3.5, the line most clusters run) and Polars read every table as pyarrow does, value
for value.

Usage: kill_test.py <gatehouse binary>   (GATEHOUSE_KAFKA_BROKERS must point at the broker)
Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.
"""

import glob
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import datetime

import duckdb
import polars
import pyarrow.dataset as ds
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

BIN = sys.argv[1]
BROKERS = os.environ["GATEHOUSE_KAFKA_BROKERS"]
SEED = int(os.environ.get("SINK_TEST_SEED", time.time_ns() % 1_000_000))
rng = random.Random(SEED)
HOUR_MS = 3_600_000
counts = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    counts["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topics(run):
    topics = [f"sinktest-{run}-exposures", f"sinktest-{run}-events"]
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for future in admin.create_topics([NewTopic(t, 4, 1) for t in topics]).values():
        future.result(30)
    return topics


def produce(topics, start, count, expected):
    """Messages start..start+count: exposures and events over five event hours (late
    ones included), one in 97 unreadable. Records what each should become."""
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 5})
    now = int(time.time() * 1000)
    for i in range(start, start + count):
        exposure = i % 2 == 0
        topic = topics[0] if exposure else topics[1]
        if i % 97 == 0:
            payload = f"not json {i}".encode()
            expected["dead"].add(payload)
        else:
            event_id = str(uuid.uuid4())
            env = {
                "schema_version": 1, "event_id": event_id,
                "event_name": "statsig::gate_exposure" if exposure else "purchase",
                "event_time_ms": now - (i % 5) * HOUR_MS, "received_at_ms": now, "key_id": "k",
                "unit_id_type": "userID", "unit_id": f"u{i % 1000}",
                "user": {"userID": f"u{i % 1000}"}, "metadata": {},
            }
            if exposure:
                env["exposure"] = {"kind": "gate", "name": "g", "rule_id": "r", "gate_value": i % 4 == 0}
            else:
                env["value"] = str(i)
            payload = json.dumps(env).encode()
            expected["exposures" if exposure else "events"].add(event_id)
        producer.produce(topic, key=f"u{i % 1000}", value=payload)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    assert left == 0, f"{left} messages not delivered"


class Sink:
    def __init__(self, name, data, group, topics, logdir):
        self.name, self.data, self.group, self.topics = name, data, group, topics
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.proc = None

    def start(self, *extra):
        log = open(self.logpath, "a")
        self.proc = subprocess.Popen(
            [BIN, "sink", *extra, "--kafka-brokers", BROKERS, "--exposures-topic", self.topics[0],
             "--events-topic", self.topics[1], "--data-dir", self.data, "--group", self.group,
             "--max-file-records", "700", "--max-file-age-secs", "1",
             "--session-timeout-ms", "6000"],
            stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"})

    def assignments(self):
        if not os.path.exists(self.logpath):
            return 0
        return open(self.logpath).read().count("partition assigned")

    def wait_assigned(self, before, timeout=30):
        """Waits until this run has been given partitions (after a kill the group first
        waits out the dead member's session)."""
        deadline = time.time() + timeout
        while self.assignments() == before and time.time() < deadline:
            time.sleep(0.1)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        """SIGTERM: publishes open files and commits; must exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def parquet(data, table):
    return f"read_parquet('{data}/{table}/*/*/*.parquet', hive_partitioning=true)"


def rows_on_disk(data):
    total = 0
    for table in ("exposures", "events", "dead_letters"):
        if glob.glob(f"{data}/{table}/*/*/*.parquet"):
            total += duckdb.sql(f"select count(*) from {parquet(data, table)}").fetchall()[0][0]
    return total


def wait_for(data, n, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if rows_on_disk(data) >= n:
            return True
        time.sleep(0.5)
    return False


_spark = []


def spark():
    """One local Spark session for the run, bound to loopback, started on first use."""
    if not _spark:
        from pyspark.sql import SparkSession

        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # PySpark hands timestamps to Python in the process's local zone: make that UTC.
        os.environ["TZ"] = "UTC"
        time.tzset()
        session = (SparkSession.builder.master("local[1]").appName("gatehouse-sink-test")
                   .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1").config("spark.sql.session.timeZone", "UTC")
                   .getOrCreate())
        session.sparkContext.setLogLevel("ERROR")
        _spark.append(session)
    return _spark[0]


def plain(value):
    """A value as every reader can be compared on: instants as naive UTC, partition dates as
    text (pyarrow reads `dt` as a string, Spark and Polars as a date), Spark's rows as dicts."""
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "asDict"):
        return plain(value.asDict())
    return value


def spark_rows(directory):
    return [row.asDict() for row in spark().read.parquet(directory).collect()]


def polars_rows(directory):
    return polars.read_parquet(f"{directory}/**/*.parquet", hive_partitioning=True).to_dicts()


def read_as_pyarrow(label, data):
    """Spark and Polars read each table's files (Hive partitions discovered) to the same rows
    as pyarrow, every column."""
    def in_order(rows):
        return sorted((plain(r) for r in rows), key=lambda r: (r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]))

    for table in ("exposures", "events", "dead_letters"):
        directory = f"{data}/{table}"
        ours = in_order(ds.dataset(directory, format="parquet", partitioning="hive").to_table().to_pylist())
        for reader, read in (("Spark", spark_rows), ("Polars", polars_rows)):
            theirs = in_order(read(directory))
            first_difference = next((f"{a} != {b}" for a, b in zip(theirs, ours) if a != b), "")
            columns = [list(rows[0]) if rows else [] for rows in (theirs, ours)]
            check(f"{label}: {reader} reads {table} as pyarrow does ({len(ours)} rows)",
                  theirs == ours and columns[0] == columns[1],
                  f"{len(theirs)} rows, columns {columns}; {first_difference[:1500]}")


def verify(label, data, expected):
    n = sum(len(v) for v in expected.values())
    for table in ("exposures", "events"):
        ids = duckdb.sql(f"select event_id from {parquet(data, table)}").fetchall()
        ids = [r[0] for r in ids]
        check(f"{label}: {table} hold each produced event once ({len(expected[table])})",
              len(ids) == len(set(ids)) and set(ids) == expected[table],
              f"{len(ids)} rows, {len(set(ids))} distinct, {len(expected[table] - set(ids))} missing")
        # An independent second reader, over the same Hive layout.
        rows = ds.dataset(f"{data}/{table}", format="parquet", partitioning="hive").count_rows()
        check(f"{label}: pyarrow reads the same {table} row count", rows == len(expected[table]),
              f"{rows}")
    dead = [r[0] for r in duckdb.sql(f"select payload from {parquet(data, 'dead_letters')}").fetchall()]
    check(f"{label}: unreadable messages are dead letters, once each ({len(expected['dead'])})",
          len(dead) == len(set(dead)) and set(dead) == expected["dead"], f"{len(dead)} rows")
    union = " union all ".join(
        f"select kafka_topic, kafka_partition, kafka_offset from {parquet(data, t)}"
        for t in ("exposures", "events", "dead_letters"))
    distinct, total = duckdb.sql(
        f"select count(distinct (kafka_topic, kafka_partition, kafka_offset)), count(*) from ({union})"
    ).fetchall()[0]
    check(f"{label}: every Kafka offset once ({n})", distinct == total == n, f"{distinct}/{total}")
    hours = duckdb.sql(f"select count(distinct hour) from {parquet(data, 'events')}").fetchall()[0][0]
    check(f"{label}: late events are filed under their own hours", hours >= 2, f"{hours} hours")
    temps = os.listdir(os.path.join(data, "_inprogress"))
    check(f"{label}: no temp file left after a clean stop", temps == [], f"{temps}")
    read_as_pyarrow(label, data)


def kill_loop(workdir):
    """One sink, killed with SIGKILL five times at random points while messages arrive."""
    data = os.path.join(workdir, "kill")
    topics = create_topics(f"kill-{SEED}-{uuid.uuid4().hex[:6]}")
    expected = {"exposures": set(), "events": set(), "dead": set()}
    produce(topics, 0, 15_000, expected)
    sink = Sink("kill-sink", data, f"kill-{uuid.uuid4().hex[:6]}", topics, workdir)
    # Messages keep arriving during the kills (500 a second), so kills find files open.
    def trickle():
        for start in range(15_000, 30_000, 500):
            produce(topics, start, 500, expected)
            time.sleep(1.0)
    producer = threading.Thread(target=trickle)
    producer.start()
    for round_ in range(5):
        before = sink.assignments()
        sink.start()
        sink.wait_assigned(before)
        time.sleep(rng.uniform(0.2, 2.5))
        sink.kill9()
    producer.join()
    port = free_port()
    before = sink.assignments()
    sink.start("--metrics-listen", f"127.0.0.1:{port}")
    n = sum(len(v) for v in expected.values())
    done = wait_for(data, n, 240)
    check("kill -9 x5: the restarted sink catches up", done, f"{rows_on_disk(data)}/{n} rows")
    sink.wait_assigned(before)  # the group first waits out the killed member's session
    time.sleep(1.5)  # the counters are published every second
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    gauge = lambda name: int((re.search(rf"^gatehouse_sink_{name} (\d+)$", metrics, re.M) or [0, -1])[1])
    # The only member holds all 8 partitions; earlier runs may have published everything.
    check("kill -9 x5: /metrics reports the partitions held and at most N rows published",
          gauge("partitions") == 8 and 0 <= gauge("rows_published_total") <= n, metrics[:800])
    check("kill -9 x5: SIGTERM stops it cleanly", sink.stop() == 0)
    log = open(sink.logpath).read()
    orphans = sum(int(m) for m in re.findall(r"removed_temps=(\d+)", log))
    check("kill -9 x5: kills hit files in progress (restarts removed their temps)", orphans > 0,
          "every kill landed while idle: the test proved nothing")
    verify("kill -9 x5", data, expected)


def group_of_two(workdir):
    """Two sinks in one group: one killed, one stopped and restarted, partitions moving."""
    data = os.path.join(workdir, "group")
    topics = create_topics(f"group-{SEED}-{uuid.uuid4().hex[:6]}")
    group = f"group-{uuid.uuid4().hex[:6]}"
    expected = {"exposures": set(), "events": set(), "dead": set()}
    produce(topics, 0, 10_000, expected)
    a = Sink("sink-a", data, group, topics, workdir)
    b = Sink("sink-b", data, group, topics, workdir)
    a.start()
    b.start()
    time.sleep(rng.uniform(2.0, 5.0))
    produce(topics, 10_000, 10_000, expected)
    a.kill9()  # its partitions move to b after the session timeout
    time.sleep(rng.uniform(1.0, 3.0))
    a.start()
    time.sleep(rng.uniform(1.0, 4.0))
    check("group: a graceful stop during rebalances exits 0", b.stop() == 0)
    produce(topics, 20_000, 10_000, expected)
    b.start()
    n = sum(len(v) for v in expected.values())
    done = wait_for(data, n, 240)
    check("group: the two sinks catch up", done, f"{rows_on_disk(data)}/{n} rows")
    check("group: both stop cleanly", a.stop() == 0 and b.stop() == 0)
    for s in (a, b):
        assigned = open(s.logpath).read().count("partition assigned")
        check(f"group: {s.name} owned partitions at some point", assigned > 0, open(s.logpath).read()[-2000:])
    verify("group", data, expected)


def main():
    print(f"sink kill test (seed {SEED}, SINK_TEST_SEED to repeat)", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            kill_loop(workdir)
            group_of_two(workdir)
        except Exception as e:  # a crash of the harness is a failure, with its logs
            check("the harness ran", False, repr(e))
            for log in glob.glob(f"{workdir}/*.log"):
                print(f"--- {log}\n" + open(log).read()[-3000:], file=sys.stderr)
        finally:
            if _spark:
                _spark[0].stop()
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()
