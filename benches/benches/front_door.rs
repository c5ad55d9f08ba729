//! The front door's request handling without the network: a decoded `check_gate` request
//! through auth, body parsing, evaluation, the exposure (into an in-process mock Kafka) and
//! the answer's bytes. The load harness measures the same path over loopback HTTP, where
//! TCP and hyper on both sides make most of the cost and the shared machine's noise hides
//! changes of a few percent; this isolates the part Gatehouse's own code controls.
//!
//!   cargo bench -p gatehouse-benches --bench front_door

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ingest::http::{AppState, Decoded};
use ingest::producer::EventSink;

/// As in the server binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &str = "secret-bench";

fn bench(c: &mut Criterion) {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let sink = EventSink::connect(
        &ingest::kafka_connection::connection(&cluster.bootstrap_servers()),
        "b.exposures",
        "b.events",
    )
    .unwrap();
    let state = Arc::new(AppState {
        events: Some(Arc::new(sink)),
        ..AppState::default()
    });
    state.keys.insert(KEY, [], None).unwrap();
    let specs = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evaluator/tests/data/conformance_v2.json"
    ))
    .unwrap();
    state
        .rules
        .publish(ingest::rules::Compiled::build(&specs, 0, Default::default()).unwrap());
    let mut headers = hyper::HeaderMap::new();
    headers.insert("statsig-api-key", KEY.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    // The load harness's request body.
    let gate = Bytes::from_static(
        br#"{"user":{"userID":"user-1","email":"a@example.com","country":"US"},"gateName":"gate_0"}"#,
    );
    let config = Bytes::from_static(
        br#"{"user":{"userID":"user-1","email":"a@example.com","country":"US"},"configName":"exp_0","statsigMetadata":{"sdkType":"py-server","sdkVersion":"0.1"}}"#,
    );
    let mut group = c.benchmark_group("front_door");
    for (name, endpoint, body) in [
        ("check_gate", "check_gate", gate),
        ("get_config", "get_config", config),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || Decoded {
                    headers: headers.clone(),
                    query: Vec::new(),
                    body: body.clone(),
                },
                |req| {
                    let reply = ingest::api::evaluate(&state, req, endpoint);
                    assert!(reply.status().is_success());
                    reply
                },
                BatchSize::SmallInput,
            )
        });
    }
    // A `log_event` body (the load harness's 100 events) validated into envelopes: the
    // door's own work per batch before librdkafka, event ids included.
    let batch = serde_json::json!({"events": vec![serde_json::json!({"eventName": "purchase",
        "value": 9.99, "time": 1_767_225_600_000_i64, "metadata": {"sku": "a-1", "currency": "EUR"},
        "user": {"userID": "user-1"}}); 100]});
    let batch = batch.as_object().unwrap();
    let origin = ingest::logging::Origin {
        key_id: "k",
        sdk_type: Some("load"),
        sdk_version: None,
        received_at_ms: 1_767_225_600_000,
    };
    group.bench_function("log_event_envelopes_100", |b| {
        b.iter(|| ingest::logging::envelopes_from_batch(batch, &origin).unwrap())
    });
    group.finish();
    let sink = state.events.as_ref().unwrap();
    let dropped = sink.exposures_dropped.load(Ordering::Relaxed);
    eprintln!("exposures dropped (queue full): {dropped}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
