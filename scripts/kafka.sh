#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft) on 127.0.0.1 for the tests, without Docker:
# the broker's jars come from Maven Central (scripts/kafka/pom.xml pins the version that
# docker-compose.yml uses too) and are cached under .cache/kafka/libs.
#
#   scripts/kafka.sh start   # prints GATEHOUSE_KAFKA_BROKERS=127.0.0.1:<port> and the
#                            # secured listener's GATEHOUSE_KAFKA_SECURE_BROKERS, with
#                            # client properties files for its two mechanisms:
#                            # GATEHOUSE_KAFKA_SECURE_CONFIG (PLAIN) and
#                            # GATEHOUSE_KAFKA_SECURE_SCRAM_CONFIG (SCRAM-SHA-256)
#   scripts/kafka.sh stop
#
# The broker also listens with SASL_SSL (PLAIN and SCRAM-SHA-256, a self-signed certificate
# made at start with keytool) on the port after the controller's, as managed Kafka services
# do, for the tests of --kafka-config.
#
# Env: GATEHOUSE_KAFKA_PORT (default 19092; the controller takes the next port, SASL_SSL
#      the one after), GATEHOUSE_CACHE (default .cache).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${GATEHOUSE_CACHE:-$PWD/.cache}/kafka
port=${GATEHOUSE_KAFKA_PORT:-19092}
controller=$((port + 1))
secure=$((port + 2))
run=$cache/run
pidfile=$run/broker.pid

fetch() {
  if [ ! -f "$cache/libs/.complete" ]; then
    command -v mvn >/dev/null || { echo "kafka.sh: needs Maven (mvn) and Java 17" >&2; exit 1; }
    rm -rf "$cache/libs"
    mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$cache/libs" -DincludeScope=runtime >&2
    touch "$cache/libs/.complete"
  fi
}

start() {
  fetch
  stop >/dev/null 2>&1 || true
  rm -rf "$run" && mkdir -p "$run/data"
  # The secured listener's certificate (for 127.0.0.1) and a password for its SASL user,
  # both new at every start.
  local secret
  secret=$(head -c 18 /dev/urandom | base64 | tr -d '+/=')
  keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 30 -dname CN=127.0.0.1 \
    -ext SAN=IP:127.0.0.1,DNS:localhost -keystore "$run/broker.p12" -storetype PKCS12 \
    -storepass "$secret" -keypass "$secret" > "$run/keytool.log" 2>&1 \
    && keytool -exportcert -rfc -alias broker -keystore "$run/broker.p12" -storepass "$secret" \
      -file "$run/ca.pem" >> "$run/keytool.log" 2>&1 \
    || { echo "kafka.sh: keytool (Java 17) could not make the certificate:" >&2; cat "$run/keytool.log" >&2; exit 1; }
  for mechanism in PLAIN SCRAM-SHA-256; do
    cat > "$run/client-${mechanism}.properties" <<CLIENT
# librdkafka settings for the broker's SASL_SSL listener (gatehouse --kafka-config)
security.protocol=SASL_SSL
sasl.mechanisms=${mechanism}
sasl.username=gatehouse
sasl.password=${secret}
ssl.ca.location=${run}/ca.pem
CLIENT
  done
  cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller},SASL_SSL://127.0.0.1:${secure}
advertised.listeners=PLAINTEXT://127.0.0.1:${port},SASL_SSL://127.0.0.1:${secure}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_gatehouse="${secret}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.location=${run}/broker.p12
ssl.keystore.type=PKCS12
ssl.keystore.password=${secret}
ssl.key.password=${secret}
inter.broker.listener.name=PLAINTEXT
log.dirs=${run}/data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  cat > "$run/log4j.properties" <<'LOG'
log4j.rootLogger=WARN, out
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
LOG
  local java_cmd=(java -Xms256m -Xmx512m -Dlog4j.configuration="file:$run/log4j.properties" -cp "$cache/libs/*")
  # The SCRAM user's credential lives in the cluster's metadata, written at format.
  "${java_cmd[@]}" kafka.tools.StorageTool format -t "$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid)" \
    -c "$run/server.properties" --add-scram "SCRAM-SHA-256=[name=gatehouse,password=${secret}]" \
    > "$run/format.log" 2>&1
  nohup "${java_cmd[@]}" kafka.Kafka "$run/server.properties" \
    > "$run/broker.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka.sh: the broker exited; see $run/broker.log" >&2
      tail -20 "$run/broker.log" >&2
      exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null \
      && (exec 3<>"/dev/tcp/127.0.0.1/${secure}") 2>/dev/null; then
      echo "GATEHOUSE_KAFKA_BROKERS=127.0.0.1:${port}"
      echo "GATEHOUSE_KAFKA_SECURE_BROKERS=127.0.0.1:${secure}"
      echo "GATEHOUSE_KAFKA_SECURE_CONFIG=${run}/client-PLAIN.properties"
      echo "GATEHOUSE_KAFKA_SECURE_SCRAM_CONFIG=${run}/client-SCRAM-SHA-256.properties"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: the broker did not open 127.0.0.1:${port} and :${secure} within 60 s" >&2
  exit 1
}

stop() {
  if [ -f "$pidfile" ]; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: scripts/kafka.sh start|stop" >&2; exit 2 ;;
esac
