//! Evaluator micro-benchmarks: the per-request costs of the front door, side by side with
//! Statsig's own Rust core when built with `--features statsig-rust`.
//!
//!   cargo bench -p gatehouse-benches --bench evaluator [--features statsig-rust]
//!
//! Figures and the exact commands are in BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use evaluator::{EvalContext, HashAlgorithm, InitializeRequest, Ruleset, User};
use serde_json::{json, Value};

/// The generated conformance ruleset (61 gates, 24 configs/experiments, 3 layers) plus 12
/// simple gates, for 100 specs, and one gate of exactly three conditions named `three`.
fn ruleset_json() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evaluator/tests/data/conformance_v2.json"
    );
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["condition_map"]["bench_country"] = json!({"type": "user_field", "field": "country",
        "operator": "any", "targetValue": ["US", "CA", "GB", "FR", "DE"], "idType": "userID"});
    doc["condition_map"]["bench_version"] = json!({"type": "user_field", "field": "appVersion",
        "operator": "version_gte", "targetValue": "1.2.0", "idType": "userID"});
    doc["condition_map"]["bench_email"] = json!({"type": "user_field", "field": "email",
        "operator": "str_ends_with_any", "targetValue": ["@example.com", "@statsig.com"],
        "idType": "userID"});
    for i in 0..12 {
        let name = if i == 0 {
            "three".to_owned()
        } else {
            format!("bench_gate_{i}")
        };
        doc["feature_gates"][name] = json!({
            "type": "feature_gate", "salt": format!("salt{i}"), "enabled": true,
            "defaultValue": false, "idType": "userID", "entity": "feature_gate",
            "rules": [{"id": format!("r{i}"), "name": "r", "passPercentage": 50,
                       "returnValue": true, "idType": "userID", "salt": format!("r{i}"),
                       "conditions": ["bench_country", "bench_version", "bench_email"]}]
        });
    }
    doc
}

fn user_json() -> Value {
    json!({"userID": "user-123", "country": "US", "appVersion": "1.4.2", "email": "a@example.com",
           "customIDs": {"companyID": "c1"}, "custom": {"plan": "gold", "level": 7}})
}

fn gatehouse(c: &mut Criterion, doc: &Value) {
    let rs = Ruleset::from_value(doc.clone()).unwrap();
    let user_json = user_json();
    let user = User::from_json(&user_json).unwrap();
    let ctx = EvalContext {
        user: &user,
        now_ms: 1_767_225_600_000,
        app_id: None,
    };
    let mut group = c.benchmark_group("gatehouse");
    group.bench_function("gate_check_3_conditions", |b| {
        b.iter(|| black_box(rs.check_gate(black_box("three"), &ctx).bool_value))
    });
    group.bench_function("experiment_assignment", |b| {
        b.iter(|| black_box(rs.get_config(black_box("exp_0"), &ctx).rule_id))
    });
    group.bench_function("layer_evaluation", |b| {
        b.iter(|| black_box(rs.get_layer(black_box("layer_1"), &ctx).rule_id))
    });
    for hash in [HashAlgorithm::Djb2, HashAlgorithm::None] {
        group.bench_function(
            BenchmarkId::new("initialize_100_specs", hash.as_str()),
            |b| {
                b.iter(|| {
                    let body = rs.client_initialize(&InitializeRequest {
                        ctx,
                        user_json: &user_json,
                        hash,
                        target_app: None,
                    });
                    black_box(body.len())
                })
            },
        );
    }
    let names: Vec<(evaluator::SpecKind, String)> = [
        evaluator::SpecKind::Gate,
        evaluator::SpecKind::Config,
        evaluator::SpecKind::Layer,
    ]
    .into_iter()
    .flat_map(|k| {
        rs.names(k)
            .map(move |n| (k, n.to_owned()))
            .collect::<Vec<_>>()
    })
    .collect();
    group.bench_function("evaluate_100_specs", |b| {
        b.iter(|| {
            for (kind, name) in &names {
                black_box(rs.evaluate(*kind, name, &ctx).bool_value);
            }
        })
    });
    group.bench_function("bucket_hash", |b| {
        b.iter(|| {
            black_box(evaluator::hash::unit_hash(black_box(&[
                "salt0", "r0", "user-123",
            ])))
        })
    });
    group.bench_function("parse_user", |b| {
        b.iter(|| black_box(User::from_json(black_box(&user_json)).unwrap()))
    });
    group.finish();
}

#[cfg(feature = "statsig-rust")]
fn statsig_core(c: &mut Criterion, doc: &Value) {
    use statsig_rust::{
        ClientInitResponseOptions, ExperimentEvaluationOptions, FeatureGateEvaluationOptions,
        HashAlgorithm as SHash, LayerEvaluationOptions, Statsig, StatsigBootstrapSpecsAdapter,
        StatsigOptions, StatsigUserBuilder,
    };
    use std::sync::Arc;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let adapter = Arc::new(StatsigBootstrapSpecsAdapter::new(doc.to_string()));
    let options = StatsigOptions {
        specs_adapter: Some(adapter),
        disable_network: Some(true),
        disable_all_logging: Some(true),
        ..StatsigOptions::new()
    };
    let statsig = Statsig::new("secret-bench", Some(Arc::new(options)));
    runtime.block_on(statsig.initialize()).unwrap();
    let user = StatsigUserBuilder::new_with_user_id("user-123")
        .country(Some("US".into()))
        .app_version(Some("1.4.2".into()))
        .email(Some("a@example.com".into()))
        .custom_ids(Some([("companyID", "c1")]))
        .build();
    let no_gate_log = FeatureGateEvaluationOptions {
        disable_exposure_logging: true,
    };
    let no_exp_log = ExperimentEvaluationOptions {
        disable_exposure_logging: true,
        ..Default::default()
    };
    let no_layer_log = LayerEvaluationOptions {
        disable_exposure_logging: true,
        ..Default::default()
    };

    let mut group = c.benchmark_group("statsig_rust");
    group.bench_function("gate_check_3_conditions", |b| {
        b.iter(|| {
            black_box(statsig.check_gate_with_options(
                &user,
                black_box("three"),
                no_gate_log.clone(),
            ))
        })
    });
    group.bench_function("experiment_assignment", |b| {
        b.iter(|| {
            black_box(
                statsig
                    .get_experiment_with_options(&user, black_box("exp_0"), no_exp_log.clone())
                    .rule_id,
            )
        })
    });
    group.bench_function("layer_evaluation", |b| {
        b.iter(|| {
            black_box(
                statsig
                    .get_layer_with_options(&user, black_box("layer_1"), no_layer_log.clone())
                    .rule_id,
            )
        })
    });
    for (name, hash) in [("djb2", SHash::Djb2), ("none", SHash::None)] {
        let opts = ClientInitResponseOptions {
            hash_algorithm: Some(hash),
            ..Default::default()
        };
        group.bench_function(BenchmarkId::new("initialize_100_specs", name), |b| {
            b.iter(|| {
                black_box(
                    statsig
                        .get_client_init_response_with_options_as_string(&user, &opts)
                        .len(),
                )
            })
        });
    }
    group.finish();
    runtime.block_on(statsig.shutdown()).ok();
}

fn bench(c: &mut Criterion) {
    let doc = ruleset_json();
    gatehouse(c, &doc);
    #[cfg(feature = "statsig-rust")]
    statsig_core(c, &doc);
}

criterion_group!(benches, bench);
criterion_main!(benches);
