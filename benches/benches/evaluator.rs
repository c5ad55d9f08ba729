//! Evaluator micro-benchmarks: the per-request costs of the front door.
//!
//! `cargo bench -p gatehouse-benches --bench evaluator`. Figures go to BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use evaluator::{EvalContext, Ruleset, User};
use serde_json::json;

/// A gate with one rule of three conditions (the "3-condition gate check").
fn three_condition_gate() -> serde_json::Value {
    json!({
        "time": 1, "has_updates": true, "layer_configs": {}, "dynamic_configs": {},
        "experiment_to_layer": {},
        "condition_map": {
            "c1": {"type": "user_field", "field": "country", "operator": "any",
                   "targetValue": ["US", "CA", "GB", "FR", "DE"], "idType": "userID"},
            "c2": {"type": "user_field", "field": "appVersion", "operator": "version_gte",
                   "targetValue": "1.2.0", "idType": "userID"},
            "c3": {"type": "user_field", "field": "email", "operator": "str_ends_with_any",
                   "targetValue": ["@example.com", "@statsig.com"], "idType": "userID"}
        },
        "feature_gates": {"three": {
            "type": "feature_gate", "salt": "4a9c1c9e", "enabled": true, "defaultValue": false,
            "idType": "userID", "entity": "feature_gate",
            "rules": [{"id": "r1", "name": "r1", "passPercentage": 50, "returnValue": true,
                       "idType": "userID", "conditions": ["c1", "c2", "c3"]}]
        }}
    })
}

fn bench(c: &mut Criterion) {
    let user = User::from_json(&json!({
        "userID": "user-123", "country": "US", "appVersion": "1.4.2", "email": "a@example.com"
    }))
    .unwrap();
    let ctx = EvalContext {
        user: &user,
        now_ms: 1_767_225_600_000,
        app_id: None,
    };

    let gate = Ruleset::from_value(three_condition_gate()).unwrap();
    c.bench_function("gate_check_3_conditions", |b| {
        b.iter(|| black_box(gate.check_gate(black_box("three"), &ctx).bool_value))
    });

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evaluator/tests/data/conformance_v2.json"
    );
    let generated = Ruleset::from_slice(&std::fs::read(path).unwrap()).unwrap();
    c.bench_function("experiment_assignment", |b| {
        b.iter(|| black_box(generated.get_config(black_box("exp_0"), &ctx).rule_id))
    });
    c.bench_function("layer_evaluation", |b| {
        b.iter(|| black_box(generated.get_layer(black_box("layer_0"), &ctx).rule_id))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
