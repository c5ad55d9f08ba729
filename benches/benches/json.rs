//! serde_json against simd-json on the JSON Gatehouse parses: the ruleset (at load and on
//! every hot swap), a `check_gate` request body (per request) and an exposure message (per
//! message in the sink). Answers whether simd-json pays where serde_json is used today.
//!
//!   cargo bench -p gatehouse-benches --bench json
//!
//! simd-json parses in place, so each of its iterations starts by copying the input into a
//! scratch buffer, as the server would have to (request bodies and Kafka payloads arrive in
//! buffers it does not own). Figures are in BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use events::Envelope;
use gatehouse_benches::sink_messages::messages;

fn bench(c: &mut Criterion) {
    let ruleset = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evaluator/tests/data/conformance_v2.json"
    ))
    .unwrap();
    let request = br#"{"user":{"userID":"user-1","email":"a@example.com","country":"US","appVersion":"1.4.2","custom":{"plan":"gold","level":7},"customIDs":{"stableID":"s-1"}},"gateName":"gate_0","statsigMetadata":{"sdkType":"py-server","sdkVersion":"0.1.0"}}"#.to_vec();
    let exposure = messages(2).swap_remove(0);
    let inputs: [(&str, &[u8]); 3] = [
        ("ruleset", &ruleset),
        ("check_gate body", &request),
        ("exposure message", &exposure),
    ];
    for (name, input) in inputs {
        let mut group = c.benchmark_group(format!("json/{name}"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function("serde_json -> serde_json::Value", |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                    input,
                )))
            })
        });
        let mut scratch = Vec::with_capacity(input.len());
        group.bench_function("simd-json -> serde_json::Value", |b| {
            b.iter(|| {
                scratch.clear();
                scratch.extend_from_slice(black_box(input));
                black_box(simd_json::serde::from_slice::<serde_json::Value>(&mut scratch).ok())
            })
        });
        group.bench_function("simd-json -> its own borrowed value", |b| {
            b.iter(|| {
                scratch.clear();
                scratch.extend_from_slice(black_box(input));
                black_box(simd_json::to_borrowed_value(&mut scratch).is_ok())
            })
        });
        if name == "exposure message" {
            group.bench_function("serde_json -> events::Envelope", |b| {
                b.iter(|| black_box(serde_json::from_slice::<Envelope>(black_box(input))))
            });
            group.bench_function("simd-json -> events::Envelope", |b| {
                b.iter(|| {
                    scratch.clear();
                    scratch.extend_from_slice(black_box(input));
                    black_box(simd_json::serde::from_slice::<Envelope>(&mut scratch).ok())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
