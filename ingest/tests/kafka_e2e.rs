//! Events and exposures through the front door into Kafka, read back and compared field by
//! field. Against the real Apache Kafka broker when `GATEHOUSE_KAFKA_BROKERS` is set (the
//! test command starts one with scripts/kafka.sh), else librdkafka's in-process mock
//! cluster. Broker faults are injected with the mock cluster.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use events::{Envelope, ExposureMessage, ExposureMetadata, ExposureView};
use hyper::{Method, StatusCode};
use ingest::kafka_connection::connection;
use ingest::producer::EventSink;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::Message;
use serde_json::{json, Value};

fn specs() -> Vec<u8> {
    std::fs::read(data("conformance_v2.json")).unwrap()
}

/// A broker: the real one from the environment, or a mock kept alive by the returned guard.
fn broker() -> (
    String,
    Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
) {
    match std::env::var("GATEHOUSE_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.is_empty() => (brokers, None),
        _ => {
            let cluster = MockCluster::new(1).unwrap();
            (cluster.bootstrap_servers(), Some(cluster))
        }
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}.{}.{}.{}",
        std::process::id(),
        rand_suffix(),
        Instant::now().elapsed().as_nanos()
    )
}

/// A producer to fresh topics (`{name}.exposures`, `{name}.events`) on the test's broker.
struct Topics {
    brokers: String,
    exposures: String,
    events: String,
    sink: Arc<EventSink>,
    /// Keeps a mock cluster alive for the test.
    _mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
}

fn topics(name: &str) -> Topics {
    let (brokers, mock) = broker();
    let (exposures, events) = (
        unique(&format!("{name}.exposures")),
        unique(&format!("{name}.events")),
    );
    let sink = Arc::new(EventSink::connect(&connection(&brokers), &exposures, &events).unwrap());
    Topics {
        brokers,
        exposures,
        events,
        sink,
        _mock: mock,
    }
}

/// Reads `want` messages from `topic` (from the start), keyed by event id.
async fn consume(brokers: &str, topic: &str, want: usize) -> Vec<(String, Envelope)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("test-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
            let env =
                Envelope::parse(msg.payload().unwrap_or_default()).expect("schema-valid message");
            out.push((key, env));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_event_and_exposures_arrive_in_kafka() {
    let Topics {
        brokers,
        exposures,
        events,
        sink,
        _mock,
    } = topics("test");
    let s = Server::start_with(&specs(), Some(sink.clone())).await;

    let batch = json!({
        "events": [
            {"eventName": "purchase", "value": 9.99, "time": 1_767_225_600_000_i64,
             "metadata": {"sku": "a-1"},
             "user": {"userID": "u1", "email": "a@b.c", "privateAttributes": {"ssn": "x"}}},
            {"eventName": "page_view", "value": "home", "user": {"customIDs": {"stableID": "s-9"}}},
            {"eventName": "statsig::gate_exposure", "user": {"userID": "u2"},
             "metadata": {"gate": "gate_0", "gateValue": "true", "ruleID": "r1"},
             "secondaryExposures": [{"gate": "g", "gateValue": "false", "ruleID": "x"}]}
        ],
        "statsigMetadata": {"sdkType": "py-server", "sdkVersion": "0.72.1"}
    });
    // Gzipped, as the server SDKs send it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch.to_string().as_bytes()).unwrap();
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/log_event",
            &[("statsig-api-key", SERVER), ("content-encoding", "gzip")],
            gz.finish().unwrap(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"success": true})
    );

    // js-client's rgstr: key in the query, gz=1 without Content-Encoding.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        json!({"events": [{"eventName": "click", "user": {"userID": "u3"}}],
                        "statsigMetadata": {"sdkType": "javascript-client"}})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v1/rgstr?k={CLIENT}&ec=1&gz=1"),
            &[],
            gz.finish().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // statsig-js's beacon at page close: text/plain, key in the query, no other header.
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v1/rgstr_b?k={CLIENT}"),
            &[("content-type", "text/plain;charset=UTF-8")],
            json!({"events": [{"eventName": "page_close", "user": {"userID": "u4"}}],
                   "statsigMetadata": {"sdkType": "js-client"}, "clientTime": "1767225600000"})
            .to_string()
            .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The evaluation API logs an exposure; exposureLoggingDisabled suppresses it.
    let user = json!({"userID": "u7", "email": "admin7@example.com"});
    let (_, answer) = s
        .post_json(
            "/v1/check_gate",
            SERVER,
            &json!({"user": user, "gateName": "gate_0"}),
        )
        .await;
    let (_, _) = s
        .post_json(
            "/v1/check_gate",
            SERVER,
            &json!({"user": user, "gateName": "gate_1",
                   "statsigMetadata": {"exposureLoggingDisabled": true}}),
        )
        .await;

    let custom = consume(&brokers, &events, 4).await;
    assert_eq!(custom.len(), 4, "custom events read back");
    let by_name: HashMap<&str, &(String, Envelope)> = custom
        .iter()
        .map(|c| (c.1.event_name.as_str(), c))
        .collect();
    let (key, purchase) = by_name["purchase"];
    assert_eq!(key, "u1");
    assert_eq!(purchase.value, Some(json!(9.99)));
    assert_eq!(purchase.event_time_ms, 1_767_225_600_000);
    assert_eq!(purchase.metadata["sku"], "a-1");
    assert_eq!(
        purchase.user,
        json!({"userID": "u1", "email": "a@b.c"}),
        "privateAttributes never logged"
    );
    assert_eq!(purchase.sdk_type.as_deref(), Some("py-server"));
    assert_eq!(
        purchase.key_id,
        s.state
            .keys
            .authenticate(Some(SERVER), ingest::keys::Access::Evaluate)
            .unwrap()
            .id
    );
    let (key, view) = by_name["page_view"];
    assert_eq!(
        (key.as_str(), view.unit_id_type.as_str()),
        ("s-9", "stableID")
    );
    let (_, click) = by_name["click"];
    assert_eq!(click.sdk_type.as_deref(), Some("javascript-client"));
    let (key, close) = by_name["page_close"];
    assert_eq!(
        (key.as_str(), close.sdk_type.as_deref()),
        ("u4", Some("js-client"))
    );
    let ids: std::collections::HashSet<_> = custom.iter().map(|c| c.1.event_id.clone()).collect();
    assert_eq!(ids.len(), 4, "server-assigned ids are unique");

    let exposures_read = consume(&brokers, &exposures, 2).await;
    assert_eq!(
        exposures_read.len(),
        2,
        "the SDK's exposure and the API's exposure"
    );
    let api = exposures_read
        .iter()
        .find(|e| {
            !e.1.key_id.is_empty() && e.1.exposure.as_ref().unwrap().name == "gate_0" && e.0 == "u7"
        })
        .expect("API exposure");
    let exposure = api.1.exposure.as_ref().unwrap();
    assert_eq!(exposure.kind, "gate");
    assert_eq!(exposure.rule_id, answer["rule_id"].as_str().unwrap());
    assert_eq!(exposure.gate_value, answer["value"].as_bool());
    assert_eq!(api.1.event_name, "statsig::gate_exposure");
    assert_eq!(api.1.metadata["gateValue"], answer["value"].to_string());
    let sdk = exposures_read
        .iter()
        .find(|e| e.0 == "u2")
        .expect("SDK exposure");
    assert_eq!(sdk.1.secondary_exposures.len(), 1);
    assert_eq!(sdk.1.exposure.as_ref().unwrap().rule_id, "r1");
}

#[tokio::test]
async fn a_bad_batch_produces_nothing() {
    let (brokers, _guard) = broker();
    let sink =
        Arc::new(EventSink::connect(&connection(&brokers), &unique("x"), &unique("y")).unwrap());
    let s = Server::start_with(&specs(), Some(sink.clone())).await;
    let bad = json!({"events": [{"eventName": "ok", "user": {"userID": "u"}}, {"value": 1}]});
    let (status, body) = s.post_json("/v1/log_event", SERVER, &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("events[1].eventName"),
        "{body}"
    );
    assert_eq!(sink.queue_depth(), 0);
    assert_eq!(sink.produced(), 0);
    let (status, _) = s
        .post_json("/v1/log_event", CONSOLE, &json!({"events": []}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A gate exposure of `unit_id` with `user` (JSON text), for tests that produce directly.
fn gate_exposure<'a>(unit_id: &'a str, user: &'a str) -> ExposureMessage<'a> {
    ExposureMessage {
        schema_version: events::SCHEMA_VERSION,
        event_id: "0b1e2c9a-0000-4000-8000-000000000000",
        event_name: "statsig::gate_exposure",
        event_time_ms: 1,
        received_at_ms: 1,
        key_id: "k",
        sdk_type: None,
        sdk_version: None,
        unit_id_type: "userID",
        unit_id,
        user,
        metadata: ExposureMetadata {
            gate: Some("g"),
            gate_value: Some("true"),
            rule_id: "r",
            ..Default::default()
        },
        secondary_exposures: &[],
        exposure: ExposureView {
            kind: "gate".into(),
            name: "g".into(),
            rule_id: "r".into(),
            group_name: None,
            gate_value: Some(true),
        },
    }
}

/// An exposure the producer refuses (here: larger than Kafka's message limit, from a user
/// with a 1.1 MB attribute) is counted, and the next one is delivered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_exposure_is_counted() {
    let Topics {
        brokers,
        exposures,
        sink,
        _mock,
        ..
    } = topics("test.refused");
    let dropped = || {
        sink.exposures_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let blob = "a".repeat(1_100_000);
    let big_user = json!({"userID": "big", "custom": {"blob": blob}}).to_string();
    sink.send_exposure(&gate_exposure("big", &big_user));
    assert_eq!(dropped(), 1);
    sink.send_exposure(&gate_exposure("small", r#"{"userID":"small"}"#));
    sink.flush(Duration::from_secs(10));
    let got = consume(&brokers, &exposures, 1).await;
    assert_eq!(
        (got[0].1.unit_id.as_str(), &got[0].1.user),
        ("small", &json!({"userID": "small"}))
    );
    assert_eq!(dropped(), 1);
    assert_eq!(sink.produced(), 1);
}

/// Exposures ask librdkafka for failure reports only: one the broker refuses is counted as
/// failed and not as produced, and the ones it takes are counted as produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_exposure_delivery_is_counted_failed() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = MockCluster::new(1).unwrap();
    let topic = unique("test.failed.exposures");
    let sink = EventSink::connect(&connection(&cluster.bootstrap_servers()), &topic, "ev").unwrap();
    sink.send_exposure(&gate_exposure("u1", r#"{"userID":"u1"}"#));
    sink.flush(Duration::from_secs(10));
    assert_eq!((sink.produced(), sink.failed()), (1, 0));
    // A permanent error on the next produce request fails the message in it (not a
    // topic-level one such as an authorization failure: librdkafka would then refuse the
    // next exposures at once, until its metadata is refreshed).
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    sink.send_exposure(&gate_exposure("u2", r#"{"userID":"u2"}"#));
    sink.flush(Duration::from_secs(10));
    assert_eq!((sink.produced(), sink.failed()), (1, 1));
    sink.send_exposure(&gate_exposure("u3", r#"{"userID":"u3"}"#));
    sink.flush(Duration::from_secs(10));
    assert_eq!((sink.produced(), sink.failed()), (2, 1));
    assert_eq!(sink.queue_depth(), 0);
}

/// A librdkafka fatal error: an idempotent producer that lost track of its sequence numbers
/// refuses everything from then on. Here the mock broker answers a sequence error to the
/// produce request at the head of the line, which is how a real broker's state comes apart
/// from the producer's.
fn break_the_producers_sequence(cluster: &MockCluster<'_, impl rdkafka::ClientContext>) {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
}

/// After a fatal producer error `/readyz` says so, and `fatal()` resolves (which stops
/// `gatehouse serve`: next test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_fails_readiness() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = unique("test.fatal.exposures");
    let sink = Arc::new(
        EventSink::connect(&connection(&cluster.bootstrap_servers()), &topic, "ev").unwrap(),
    );
    let s = Server::start_with(&specs(), Some(sink.clone())).await;
    assert_eq!(
        s.call(Method::GET, "/readyz", &[], "").await.0,
        StatusCode::OK
    );
    sink.send_exposure(&gate_exposure("u1", r#"{"userID":"u1"}"#));
    sink.flush(Duration::from_secs(10));
    assert_eq!(sink.fatal_error(), None);

    break_the_producers_sequence(&cluster);
    sink.send_exposure(&gate_exposure("u2", r#"{"userID":"u2"}"#));
    let error = tokio::time::timeout(Duration::from_secs(10), sink.fatal())
        .await
        .expect("a fatal error within 10 s");
    assert!(error.contains("sequence"), "{error}");
    let (status, body) = s.call(Method::GET, "/readyz", &[], "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("failed for good"), "{body}");
}

/// `gatehouse serve` whose producer fails for good keeps answering until it has drained,
/// logs why, and exits 1 for its supervisor to restart it.
#[test]
fn a_fatal_producer_error_stops_the_binary_with_status_1() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let cluster = MockCluster::new(1).unwrap();
    let port = free_port();
    let mut door = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--specs",
            "docs/examples/specs.json",
            "--server-key",
            "secret-fatal",
        ])
        .args(["--kafka-brokers", &cluster.bootstrap_servers()])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("GATEHOUSE_STATE_TOPIC")
        .env_remove("GATEHOUSE_STATE_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(port, "gatehouse serve");
    let gate = || {
        let body = br#"{"user":{"userID":"u1"},"gateName":"new_checkout"}"#;
        let key = ["statsig-api-key: secret-fatal"];
        raw_request(port, "POST", "/v1/check_gate", &key, body)
    };
    let produced = || {
        let metrics = raw_request(port, "GET", "/metrics", &[], b"");
        metrics.contains("\ngatehouse_events_produced_total 1\n")
    };
    assert!(gate().starts_with("HTTP/1.1 200"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !produced() {
        assert!(
            Instant::now() < deadline,
            "the first exposure was not delivered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    break_the_producers_sequence(&cluster);
    assert!(gate().starts_with("HTTP/1.1 200"), "evaluation answers on");
    let status = wait_for_exit(
        &mut door,
        Duration::from_secs(15),
        "gatehouse did not stop after a fatal producer error",
    );
    let mut log = String::new();
    door.stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("the Kafka producer failed for good"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_gives_503_with_retry_after() {
    let cluster = MockCluster::new(1).unwrap();
    let mut sink =
        EventSink::connect(&connection(&cluster.bootstrap_servers()), "exp", "ev").unwrap();
    sink.ack_timeout = Duration::from_secs(2);
    let s = Server::start_with(&specs(), Some(Arc::new(sink))).await;
    let (status, _) = s.call(Method::GET, "/readyz", &[], "").await;
    assert_eq!(status, StatusCode::OK, "ready with a ruleset and a broker");
    cluster.broker_down(1).unwrap();
    let (status, body) = s.call(Method::GET, "/readyz", &[], "").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let started = Instant::now();
    let (status, bytes) = s
        .call(
            Method::POST,
            "/v1/log_event",
            &[("statsig-api-key", SERVER)],
            json!({"events": [{"eventName": "e", "user": {"userID": "u"}}]}).to_string(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["success"], false);
    // Evaluation keeps answering while Kafka is down.
    let (status, _) = s
        .post_json(
            "/v1/check_gate",
            SERVER,
            &json!({"user": {"userID": "u"}, "gateName": "gate_0"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// The messages now on `topic`, over all its partitions.
fn messages_on(brokers: &str, topic: &str) -> usize {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout).unwrap();
            (high - low) as usize
        })
        .sum()
}

/// What the issue's server-assigned ids are for: a batch answered 503 in an outage is resent
/// by the SDK, and the first attempt, still in the producer's queue, reaches Kafka too once the
/// broker is back. Every copy of an event carries the same `event_id`, so consumers can drop
/// the copies; the two identical events of the batch stay two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_resent_after_an_outage_arrives_with_one_id_per_event() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let (exposures, events) = (unique("resent.exposures"), unique("resent.events"));
    let mut sink = EventSink::connect(&connection(&brokers), &exposures, &events).unwrap();
    sink.ack_timeout = Duration::from_secs(2);
    let s = Server::start_with(&specs(), Some(Arc::new(sink))).await;
    let event = json!({"eventName": "buy", "time": 1_767_225_600_000i64, "value": 3,
                       "user": {"userID": "u1"}});
    let batch = json!({"events": [event, event]}).to_string();
    let send = || {
        s.call(
            Method::POST,
            "/v1/log_event",
            &[("statsig-api-key", SERVER)],
            batch.clone(),
        )
    };

    cluster.broker_down(1).unwrap();
    let (status, _) = send().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    cluster.broker_up(1).unwrap();
    // The SDK's retries, bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = send().await;
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            Instant::now() < deadline,
            "log_event still refused after the broker came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.state
        .events
        .as_ref()
        .unwrap()
        .flush(Duration::from_secs(30));

    let on_topic = messages_on(&brokers, &events);
    assert!(
        on_topic >= 4,
        "the first attempt's copies arrived too: {on_topic} messages"
    );
    let got = consume(&brokers, &events, on_topic).await;
    assert_eq!(got.len(), on_topic);
    let mut copies: HashMap<&str, Vec<&Envelope>> = HashMap::new();
    for (_, env) in &got {
        copies.entry(env.event_id.as_str()).or_default().push(env);
    }
    assert_eq!(
        copies.len(),
        2,
        "two events, each under one id: {:?}",
        copies.keys()
    );
    for envs in copies.values() {
        for env in envs {
            assert_eq!(
                (&env.event_name, env.event_time_ms, &env.value, &env.unit_id),
                (
                    &"buy".to_owned(),
                    1_767_225_600_000,
                    &Some(json!(3)),
                    &"u1".to_owned()
                )
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposure_dedupe_sends_one_per_window_when_enabled() {
    let Topics {
        brokers,
        exposures,
        sink,
        _mock,
        ..
    } = topics("test.dedupe");
    let dedupe = ingest::dedupe::ExposureDedupe::new(Duration::from_secs(600), 1000);
    let s = Server::start_with_dedupe(&specs(), Some(sink.clone()), Some(dedupe)).await;
    for user in ["u1", "u1", "u1", "u2", "u1"] {
        let (status, _) = s
            .post_json(
                "/v1/check_gate",
                SERVER,
                &json!({"user": {"userID": user}, "gateName": "gate_0"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    sink.flush(Duration::from_secs(10));
    // Two distinct (unit, result) pairs: two exposures delivered, three suppressed.
    assert_eq!(sink.produced(), 2);
    let got = consume(&brokers, &exposures, 2).await;
    let units: Vec<&str> = got.iter().map(|(_, e)| e.unit_id.as_str()).collect();
    assert_eq!(units.len(), 2, "{units:?}");
    assert!(units.contains(&"u1") && units.contains(&"u2"));
    let suppressed = s
        .state
        .dedupe
        .as_ref()
        .unwrap()
        .suppressed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(suppressed, 3);
}

/// A condition reading the user's group in another experiment logs that experiment's config
/// exposure before the answer's own, as Statsig's core SDK does (its get_experiment), and
/// innermost first along a chain; nothing when the request turns exposures off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_group_reads_log_the_experiments_exposures_first() {
    let Topics {
        brokers,
        exposures,
        sink,
        _mock,
        ..
    } = topics("test.group");
    let s = Server::start_with(&specs(), Some(sink.clone())).await;
    let quiet = json!({"exposureLoggingDisabled": true});
    let config = |user: &Value, name: &str| {
        let body = json!({"user": user, "configName": name, "statsigMetadata": quiet});
        let s = &s;
        async move { s.post_json("/v1/get_config", SERVER, &body).await.1 }
    };
    // gate_exp_group_chain reads exp_group_targeted's group, whose targeting reads exp_0's: pick
    // a user in exp_group_targeted's Test group, for whom the chain can pass.
    let mut user = Value::Null;
    for i in 0..500 {
        let candidate = json!({"userID": format!("chain-{i}")});
        if config(&candidate, "exp_group_targeted").await["group_name"] == "Test" {
            user = candidate;
            break;
        }
    }
    assert!(!user.is_null(), "a user in exp_group_targeted's Test group");
    let (exp_0, targeted) = (
        config(&user, "exp_0").await,
        config(&user, "exp_group_targeted").await,
    );

    let gate = |metadata: Value| {
        let body =
            json!({"user": user, "gateName": "gate_exp_group_chain", "statsigMetadata": metadata});
        let s = &s;
        async move { s.post_json("/v1/check_gate", SERVER, &body).await }
    };
    let (status, _) = gate(quiet.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = gate(json!({})).await;
    assert_eq!(status, StatusCode::OK);
    sink.flush(Duration::from_secs(10));
    assert_eq!(
        sink.produced(),
        3,
        "three exposures, none from the request that turned them off"
    );

    // One user, one partition: read back in the order produced.
    let got = consume(&brokers, &exposures, 3).await;
    let seen: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|(_, e)| {
            let x = e.exposure.as_ref().unwrap();
            (e.event_name.as_str(), x.name.as_str(), x.rule_id.as_str())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "statsig::config_exposure",
                "exp_0",
                exp_0["rule_id"].as_str().unwrap()
            ),
            (
                "statsig::config_exposure",
                "exp_group_targeted",
                targeted["rule_id"].as_str().unwrap()
            ),
            (
                "statsig::gate_exposure",
                "gate_exp_group_chain",
                answer["rule_id"].as_str().unwrap()
            ),
        ]
    );
    let read = &got[1].1;
    assert_eq!(
        read.metadata.get("rulePassed"),
        None,
        "the core SDK's read carries no rulePassed"
    );
    assert_eq!(
        read.exposure.as_ref().unwrap().group_name.as_deref(),
        Some("Test")
    );
    assert_eq!(
        got[2].1.secondary_exposures.len(),
        1,
        "the chain's nested gate; the experiments read are not secondary exposures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_mappings_name_their_target_in_the_exposure() {
    let Topics {
        brokers,
        exposures,
        sink,
        _mock,
        ..
    } = topics("test.mapping");
    let s = Server::start_with(&specs(), Some(sink.clone())).await;
    // The conformance ruleset maps these names for users on the gold plan (cm_plan).
    let user = json!({"userID": "mapped-1", "custom": {"plan": "gold"}});
    let ask = |path: &'static str, field: &'static str, name: &'static str, log: bool| {
        let metadata = json!({"exposureLoggingDisabled": !log});
        let body = json!({"user": user, field: name, "statsigMetadata": metadata});
        let s = &s;
        async move {
            let (status, answer) = s.post_json(path, SERVER, &body).await;
            assert_eq!(status, StatusCode::OK, "{name}: {answer}");
            answer
        }
    };
    for (path, field, name, target) in [
        ("/v1/check_gate", "gateName", "mapped_gate_0", "gate_5"),
        ("/v1/get_config", "configName", "config_mapped", "config_3"),
        ("/v1/get_layer", "layerName", "layer_mapped", "layer_1"),
    ] {
        let mapped = ask(path, field, name, true).await;
        let direct = ask(path, field, target, false).await;
        assert_eq!(mapped["name"], name);
        assert_eq!(
            (&mapped["value"], &mapped["rule_id"]),
            (&direct["value"], &direct["rule_id"]),
            "{name} answers as {target}"
        );
    }
    let ghost = ask("/v1/check_gate", "gateName", "mapped_gate_ghost", true).await;
    assert_ne!(
        ghost["rule_id"], "",
        "a name only mappings have answers through them"
    );
    sink.flush(Duration::from_secs(10));

    // One user, one partition: read back in the order produced.
    let got = consume(&brokers, &exposures, 4).await;
    let seen: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|(_, e)| {
            let mapped = e.metadata.get("overrideConfigName").and_then(Value::as_str);
            (e.exposure.as_ref().unwrap().name.as_str(), mapped)
        })
        .collect();
    // Which of its two mappings answered depends on the user's hash: ask the evaluator.
    let rs = evaluator::Ruleset::from_slice(&specs()).unwrap();
    let parsed = evaluator::User::from_json(&user).unwrap();
    let ctx = evaluator::EvalContext {
        user: &parsed,
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
        app_id: None,
    };
    let ghost_target = rs
        .check_gate("mapped_gate_ghost", &ctx)
        .override_config_name;
    assert_eq!(
        seen,
        [
            ("mapped_gate_0", Some("gate_5")),
            ("config_mapped", Some("config_3")),
            ("layer_mapped", None),
            ("mapped_gate_ghost", ghost_target),
        ],
        "layer exposures name no mapping, as the core SDK logs them"
    );
}
