#!/usr/bin/env bash
# The whole test suite, runnable on a machine that has never seen the project:
# installs what the tests need (Python SDK references, the Kafka broker), checks formatting and lints,
# then runs every cargo test and prints one summary line.
#
#   scripts/test.sh            (what .ci/run calls)
#
# Needs: cargo (with rustfmt and clippy), python3, Node 20 with npm, Go, Java 17 + Maven,
# OpenSSL's headers and a headless Chromium (all but cargo, python3 and Node installed with
# apt-get when missing). Starts a real Apache Kafka
# broker for the tests and stops it at exit.
# Caches under .cache/ (override with GATEHOUSE_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${GATEHOUSE_CACHE:-$root/.cache}
mkdir -p "$cache"

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
for tool in cargo python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
cargo --version
cargo fmt --version >/dev/null || { echo "missing: rustfmt (rustup component add rustfmt)" >&2; exit 1; }
cargo clippy --version >/dev/null || { echo "missing: clippy (rustup component add clippy)" >&2; exit 1; }

step "OpenSSL headers (librdkafka's TLS and SASL)"
if ! pkg-config --exists openssl 2>/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends libssl-dev pkg-config >/dev/null
  else
    echo "missing: OpenSSL development files and pkg-config" >&2; exit 1
  fi
fi
pkg-config --modversion openssl

step "java + maven (the Apache Kafka broker)"
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null && apt-get install -y -q openjdk-17-jre-headless maven >/dev/null
  else
    echo "missing: java 17 and maven" >&2; exit 1
  fi
fi
java -version 2>&1 | head -1

step "python: the official Statsig SDKs (conformance reference)"
venv=$cache/venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  -r evaluator/tests/conformance/requirements.txt -r ingest/tests/sdk/requirements.txt \
  -r sink/tests/requirements.txt

step "node: @statsig/js-client, @statsig/js-on-device-eval-client, @statsig/statsig-node-core, statsig-node, statsig-node-lite, statsig-js, puppeteer-core (npm); headless Chromium (apt)"
command -v node >/dev/null || { echo "missing: node" >&2; exit 1; }
(cd ingest/tests/sdk/js && npm ci --no-audit --no-fund --loglevel=error)
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium-headless-shell}
if [ ! -x "$CHROMIUM" ]; then
  if command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null
  else
    echo "missing: headless Chromium (set CHROMIUM to its binary)" >&2; exit 1
  fi
fi
"$CHROMIUM" --version

step "go: Statsig's Go SDK (Go module proxy)"
if ! command -v go >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends golang-go >/dev/null
  else
    echo "missing: go" >&2; exit 1
  fi
fi
go version
(cd ingest/tests/sdk/go && go mod download)

step "conformance vectors reproduce from the SDKs"
"$venv/bin/python" evaluator/tests/conformance/gen_vectors.py --check 2> "$cache/gen_vectors.stderr" \
  || { tail -20 "$cache/gen_vectors.stderr" >&2; exit 1; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "a real Apache Kafka broker (scripts/kafka.sh)"
trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
eval "$(scripts/kafka.sh start)"
export GATEHOUSE_KAFKA_BROKERS GATEHOUSE_KAFKA_SECURE_BROKERS GATEHOUSE_KAFKA_SECURE_CONFIG \
  GATEHOUSE_KAFKA_SECURE_SCRAM_CONFIG
echo "broker at $GATEHOUSE_KAFKA_BROKERS (SASL_SSL at $GATEHOUSE_KAFKA_SECURE_BROKERS)"

step "cargo test"
log=$cache/cargo-test.log
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# A Python check against the built binary: its report joins the log (and the summary); on
# failure the tail of its stderr is shown and the run fails at the end.
python_check() {
  local name=$1
  shift
  set +e
  "$venv/bin/python" "$@" 2> "$cache/$name.stderr" | tee -a "$log"
  local check_status=${PIPESTATUS[0]}
  set -e
  [ "$check_status" -eq 0 ] || { tail -40 "$cache/$name.stderr" >&2; status=1; }
}

step "official Statsig SDKs against a running gatehouse"
cargo build --quiet -p gatehouse-ingest --bin gatehouse
python_check real_sdks ingest/tests/sdk/real_sdks.py target/debug/gatehouse \
  evaluator/tests/data/conformance_v2.json evaluator/tests/data/conformance_vectors.json

step "the official Python SDKs see gates made through the console API"
python_check console_sdk ingest/tests/sdk/console_sdk.py target/debug/gatehouse

step "the sink on the real broker: kill -9, two sinks in one group, read back by DuckDB, pyarrow, Spark and Polars"
python_check kill_test sink/tests/kill_test.py target/debug/gatehouse

step "gatehouse analyze against DuckDB and scipy over the same files"
python_check analyze_test sink/tests/analyze_test.py target/debug/gatehouse

step "the load harness, smoke run against the real broker (bounded; figures not measured here)"
cargo build --quiet -p gatehouse-benches --bin load
target/debug/load --requests 2000 --seconds 2 --warmup-seconds 1 --scenario all --cores split \
  || { echo "load harness smoke run failed" >&2; status=1; }
target/debug/load --requests 2000 --seconds 2 --warmup-seconds 1 --scenario latency --cores split \
  --client-wait spin || { echo "load harness smoke run (spinning client) failed" >&2; status=1; }

step "docker-compose.yml against the binary's flags (no Docker engine here)"
"$venv/bin/python" scripts/check_compose.py target/debug/gatehouse | tee -a "$log" || status=1

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "${passed} passed, ${failed} failed"
exit "$status"
