//! Conformance against Statsig's official SDKs.
//!
//! `tests/conformance/gen_vectors.py` evaluated the generated ruleset in `tests/data/` with
//! `statsig-python-core` (Statsig's Rust core) and the legacy `statsig` SDK for 1,200 users and
//! recorded the core SDK's answers. Every answer must match field for field, from the v1 and
//! from the v2 shape of the same ruleset.

use std::collections::BTreeMap;

use evaluator::{
    EvalContext, Evaluation, HashAlgorithm, InitializeRequest, Outcome, Ruleset, SpecKind, User,
};
use serde_json::{json, Value};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&bytes).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn exposures(list: &[evaluator::SecondaryExposure<'_>]) -> Value {
    list.iter()
        .map(|e| Value::String(format!("{}|{}|{}", e.gate, e.gate_value, e.rule_id)))
        .collect()
}

/// Our answer in the vector file's compact form (empty fields left out).
fn answer(kind: SpecKind, eval: &Evaluation<'_>) -> Value {
    let mut out = serde_json::Map::new();
    let value = match kind {
        SpecKind::Gate => Value::Bool(eval.bool_value),
        _ => eval
            .json_value
            .as_deref()
            .cloned()
            .unwrap_or_else(|| json!({})),
    };
    out.insert("value".into(), value);
    out.insert("rule_id".into(), eval.rule_id.into());
    if kind != SpecKind::Gate {
        out.insert("group_name".into(), eval.group_name.into());
    }
    out.insert(
        "secondary_exposures".into(),
        exposures(&eval.secondary_exposures),
    );
    if kind == SpecKind::Layer {
        out.insert("allocated_experiment".into(), eval.config_delegate.into());
        let undelegated = eval
            .undelegated_secondary_exposures
            .as_deref()
            .unwrap_or(&[]);
        out.insert(
            "undelegated_secondary_exposures".into(),
            exposures(undelegated),
        );
    }
    out.retain(|_, v| !(v.is_null() || *v == json!([]) || *v == json!("")));
    Value::Object(out)
}

/// The table of every spec name in the vectors; a name only config mappings have is in its
/// first target's.
fn tables(ruleset: &Ruleset) -> BTreeMap<String, SpecKind> {
    let all = [SpecKind::Gate, SpecKind::Config, SpecKind::Layer];
    let mut tables: BTreeMap<String, SpecKind> = all
        .into_iter()
        .flat_map(|kind| ruleset.names(kind).map(move |n| (n.to_owned(), kind)))
        .collect();
    for (name, mappings) in load("conformance_v2.json")["overrides"]
        .as_object()
        .unwrap()
    {
        let target = mappings[0]["new_config_name"].as_str().unwrap();
        if let Some(&kind) = tables.get(target) {
            tables.entry(name.clone()).or_insert(kind);
        }
    }
    tables
}

fn check_all(ruleset: &Ruleset, shape: &str) {
    let vectors = load("conformance_vectors.json");
    let cases = vectors["cases"].as_array().unwrap();
    let now = now_ms();
    let mut checked = 0;
    let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let tables = tables(ruleset);
    for case in cases {
        let user = User::from_json(&case["user"]).expect("vector users parse");
        let ctx = EvalContext {
            user: &user,
            now_ms: now,
            app_id: None,
        };
        let mapped = case["override_config_names"].as_object().unwrap();
        for (name, expected) in case["expected"].as_object().unwrap() {
            let kind = *tables
                .get(name)
                .unwrap_or_else(|| panic!("{name} is in no table"));
            let eval = ruleset.evaluate(kind, name, &ctx);
            let mut got = answer(kind, &eval);
            let mut expected = expected.clone();
            if !ruleset.names(kind).any(|n| n == name) {
                // Recorded from the core SDK's initialize, which has no entry for a name only
                // mappings have: its exposures are not in the vectors.
                got.as_object_mut().unwrap().remove("secondary_exposures");
            }
            // The mapping the core SDK's exposure names; its layer exposures name none.
            if let Some(mapping) = mapped.get(name).filter(|_| kind != SpecKind::Layer) {
                expected["override_config_name"] = mapping.clone();
                got["override_config_name"] = eval.override_config_name.into();
            }
            let expected = &expected;
            checked += 1;
            if &got != expected {
                let entry = failures.entry(name.clone()).or_insert_with(|| {
                    (
                        0,
                        format!(
                            "user {}\n    expected {expected}\n    got      {got}",
                            case["user"]
                        ),
                    )
                });
                entry.0 += 1;
            }
        }
    }
    assert!(checked > 100_000, "only {checked} answers checked");
    if !failures.is_empty() {
        let total: usize = failures.values().map(|f| f.0).sum();
        let mut report =
            format!("{shape}: {total} of {checked} answers differ from statsig-python-core\n");
        for (name, (count, example)) in &failures {
            report += &format!("  {name}: {count} users, e.g. {example}\n");
        }
        panic!("{report}");
    }
}

#[test]
fn v2_ruleset_matches_the_core_sdk() {
    let bytes = serde_json::to_vec(&load("conformance_v2.json")).unwrap();
    check_all(&Ruleset::from_slice(&bytes).unwrap(), "v2");
}

#[test]
fn v1_ruleset_matches_the_core_sdk() {
    let bytes = serde_json::to_vec(&load("conformance_v1.json")).unwrap();
    check_all(&Ruleset::from_slice(&bytes).unwrap(), "v1");
}

#[test]
fn reserialized_shapes_evaluate_the_same() {
    let rs = Ruleset::from_value(load("conformance_v1.json")).unwrap();
    check_all(&Ruleset::from_value(rs.to_v2()).unwrap(), "v1->v2");
    check_all(&Ruleset::from_value(rs.to_v1()).unwrap(), "v1->v1");
}

/// Renames spec names the way a hashed response does (keys, `name`, exposure gates,
/// `allocated_experiment_name`).
fn hash_names(response: &Value, hash: HashAlgorithm) -> Value {
    let mut out = response.clone();
    for table in ["feature_gates", "dynamic_configs", "layer_configs"] {
        let mut renamed = serde_json::Map::new();
        for (name, entry) in response[table].as_object().unwrap() {
            let mut entry = entry.clone();
            entry["name"] = hash.hash(name).into();
            if let Some(Value::String(e)) = entry.get("allocated_experiment_name") {
                entry["allocated_experiment_name"] = hash.hash(e).into();
            }
            for list in ["secondary_exposures", "undelegated_secondary_exposures"] {
                for e in entry
                    .get_mut(list)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    e["gate"] = hash.hash(e["gate"].as_str().unwrap()).into();
                }
            }
            renamed.insert(hash.hash(name), entry);
        }
        out[table] = Value::Object(renamed);
    }
    let mut stores = serde_json::Map::new();
    for (name, params) in response["param_stores"].as_object().into_iter().flatten() {
        let mut params = params.clone();
        for param in params.as_object_mut().unwrap().values_mut() {
            for reference in ["gate_name", "config_name", "experiment_name", "layer_name"] {
                if let Some(Value::String(target)) = param.get(reference) {
                    param[reference] = hash.hash(target).into();
                }
            }
        }
        stores.insert(hash.hash(name), params);
    }
    out["param_stores"] = Value::Object(stores);
    out["hash_used"] = hash.as_str().into();
    out
}

#[test]
fn initialize_matches_the_core_sdk() {
    let rs = Ruleset::from_value(load("conformance_v2.json")).unwrap();
    let vectors = load("conformance_vectors.json");
    let now = now_ms();
    let mut compared = 0;
    for case in vectors["cases"].as_array().unwrap() {
        let Some(recorded) = case.get("initialize") else {
            continue;
        };
        let user = User::from_json(&case["user"]).unwrap();
        for hash in [
            HashAlgorithm::None,
            HashAlgorithm::Djb2,
            HashAlgorithm::Sha256,
        ] {
            let body = rs.client_initialize(&InitializeRequest {
                ctx: EvalContext {
                    user: &user,
                    now_ms: now,
                    app_id: None,
                },
                user_json: &case["user"],
                hash,
                target_app: None,
            });
            let ours: Value = serde_json::from_slice(&body).expect("initialize is valid JSON");
            let expected = hash_names(recorded, hash);
            for key in [
                "feature_gates",
                "dynamic_configs",
                "layer_configs",
                "evaluated_keys",
                "param_stores",
                "time",
                "has_updates",
                "hash_used",
            ] {
                assert_eq!(ours[key], expected[key], "{key} for user {}", case["user"]);
            }
            compared += 1;
        }
    }
    assert!(compared >= 150, "only {compared} responses compared");
}

/// An initialize reuses one user's leaf conditions and pass-percentage draws across specs;
/// every entry must still be what evaluating that spec alone answers, for every user.
#[test]
fn initialize_entries_equal_single_evaluations_for_every_user() {
    let rs = Ruleset::from_value(load("conformance_v2.json")).unwrap();
    let vectors = load("conformance_vectors.json");
    let now = now_ms();
    let mut compared = 0;
    for case in vectors["cases"].as_array().unwrap() {
        let user = User::from_json(&case["user"]).unwrap();
        let ctx = EvalContext {
            user: &user,
            now_ms: now,
            app_id: None,
        };
        let body = rs.client_initialize(&InitializeRequest {
            ctx,
            user_json: &case["user"],
            hash: HashAlgorithm::None,
            target_app: None,
        });
        let response: Value = serde_json::from_slice(&body).unwrap();
        for kind in [SpecKind::Gate, SpecKind::Config, SpecKind::Layer] {
            for (name, entry) in response[kind.key()].as_object().unwrap() {
                let alone = rs.evaluate(kind, name, &ctx);
                let value = match kind {
                    SpecKind::Gate => Value::Bool(alone.bool_value),
                    // Initialize writes an unsupported spec's missing value as null.
                    _ if alone.outcome == Outcome::Unsupported => Value::Null,
                    _ => alone
                        .json_value
                        .as_deref()
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                };
                let exposures: Value = alone
                    .secondary_exposures
                    .iter()
                    .map(|e| {
                        json!({"gate": e.gate, "gateValue": e.gate_value.to_string(),
                               "ruleID": e.rule_id})
                    })
                    .collect();
                let context = format!("{name} for user {}", case["user"]);
                assert_eq!(entry["value"], value, "value of {context}");
                assert_eq!(entry["rule_id"], alone.rule_id, "rule id of {context}");
                assert_eq!(
                    entry["secondary_exposures"], exposures,
                    "secondary exposures of {context}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 100_000, "only {compared} entries compared");
}
