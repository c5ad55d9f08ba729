//! Where Statsig's two official server SDKs answer differently, Gatehouse follows the core SDK
//! (`statsig-python-core` / `statsig-rust`). Each case is named here with both answers; the
//! conformance vectors record the legacy SDK's answer beside the core one (`legacy_differs`).

use evaluator::{EvalContext, Outcome, Ruleset, User};
use serde_json::{json, Value};

/// One gate whose single rule holds `condition`, plus a plain gate `other` to nest.
fn gate_with(condition: Value) -> Ruleset {
    let spec = |cond: &str| {
        json!({"type": "feature_gate", "salt": "s", "enabled": true, "defaultValue": false,
               "idType": "userID", "entity": "feature_gate",
               "rules": [{"id": "rule", "passPercentage": 100, "returnValue": true,
                          "idType": "userID", "conditions": [cond]}]})
    };
    Ruleset::from_value(json!({
        "time": 1,
        "condition_map": {"c": condition, "public": {"type": "public", "idType": "userID"}},
        "feature_gates": {"gate": spec("c"), "other": spec("public")}
    }))
    .unwrap()
}

fn check(rs: &Ruleset, user: Value) -> (bool, String, Outcome) {
    let user = User::from_json(&user).unwrap();
    let ctx = EvalContext {
        user: &user,
        now_ms: 1_767_225_600_000,
        app_id: None,
    };
    let e = rs.check_gate("gate", &ctx);
    (e.bool_value, e.rule_id.to_owned(), e.outcome)
}

#[test]
fn multi_pass_gate_is_unsupported_in_the_core_sdk() {
    // Legacy `statsig`: passes when any listed gate passes (rule id "rule").
    // Core: the condition type is unknown, the spec is unsupported: false with rule id "".
    let rs =
        gate_with(json!({"type": "multi_pass_gate", "targetValue": ["other"], "idType": "userID"}));
    assert_eq!(
        check(&rs, json!({"userID": "u"})),
        (false, String::new(), Outcome::Unsupported)
    );
}

#[test]
fn empty_string_target_matches_a_missing_field_in_the_core_sdk() {
    // Legacy: a missing field never matches str_contains_any. Core: the missing value
    // compares as "", which contains "".
    let rs = gate_with(
        json!({"type": "user_field", "field": "nickname", "operator": "str_contains_any",
                              "targetValue": [""], "idType": "userID"}),
    );
    assert_eq!(
        check(&rs, json!({"userID": "u"})),
        (true, "rule".into(), Outcome::Recognized)
    );
}

#[test]
fn non_numeric_strings_fail_numeric_operators_quietly_in_the_core_sdk() {
    // Legacy: float("abc") raises and the answer is rule id "error". Core: the condition fails.
    let rs = gate_with(
        json!({"type": "user_field", "field": "email", "operator": "gt",
                              "targetValue": 10, "idType": "userID"}),
    );
    assert_eq!(
        check(&rs, json!({"userID": "u", "email": "abc"})),
        (false, "default".into(), Outcome::Recognized)
    );
}

#[test]
fn unix_seconds_count_as_seconds_in_the_core_sdk() {
    // Legacy compares the raw number; core takes user times under 10^12 as seconds.
    let rs = gate_with(
        json!({"type": "user_field", "field": "signup", "operator": "on",
                              "targetValue": 1_704_067_200_000_i64, "idType": "userID"}),
    );
    let user = json!({"userID": "u", "custom": {"signup": 1_704_067_200}});
    assert_eq!(check(&rs, user), (true, "rule".into(), Outcome::Recognized));
}

#[test]
fn missing_environment_falls_back_to_the_default_environment() {
    // Both SDKs apply the payload's `default_environment` when the user has no tier; the
    // core SDK also does so for rules that were written against other tiers.
    let rs = Ruleset::from_value(json!({
        "time": 1, "default_environment": "production",
        "condition_map": {"env": {"type": "environment_field", "field": "tier", "operator": "any",
                                  "targetValue": ["production"], "idType": "userID"}},
        "feature_gates": {"gate": {"type": "feature_gate", "salt": "s", "enabled": true,
            "defaultValue": false, "idType": "userID", "entity": "feature_gate",
            "rules": [{"id": "rule", "passPercentage": 100, "returnValue": true,
                       "idType": "userID", "conditions": ["env"]}]}}
    }))
    .unwrap();
    assert!(check(&rs, json!({"userID": "u"})).0);
    assert!(
        !check(
            &rs,
            json!({"userID": "u", "statsigEnvironment": {"tier": "staging"}})
        )
        .0
    );
}

#[test]
fn the_core_sdk_walks_the_rules_of_a_disabled_v2_spec() {
    // v1 SDKs answer a disabled spec with its default and rule id "disabled" without reading
    // its rules. Core walks whatever rules a v2 payload carries (Statsig's own v2 payloads
    // strip them), so a v2 payload with rules on a disabled gate still evaluates them. Loading
    // a v1 payload strips the rules, so both shapes agree on Statsig-generated data.
    let gate = |enabled| {
        json!({"type": "feature_gate", "salt": "s", "enabled": enabled, "defaultValue": false,
               "idType": "userID", "entity": "feature_gate",
               "rules": [{"id": "rule", "passPercentage": 100, "returnValue": true,
                          "idType": "userID", "conditions": ["p"]}]})
    };
    let v2 = Ruleset::from_value(json!({
        "time": 1, "condition_map": {"p": {"type": "public", "idType": "userID"}},
        "feature_gates": {"gate": gate(false)}
    }))
    .unwrap();
    assert_eq!(check(&v2, json!({"userID": "u"})).1, "rule");
    let mut v1_gate = gate(false);
    v1_gate["name"] = "gate".into();
    v1_gate["rules"][0]["conditions"] = json!([{"type": "public", "idType": "userID"}]);
    let v1 = Ruleset::from_value(json!({"time": 1, "feature_gates": [v1_gate],
                                        "dynamic_configs": [], "layer_configs": []}))
    .unwrap();
    assert_eq!(
        check(&v1, json!({"userID": "u"})),
        (false, "disabled".into(), Outcome::Recognized)
    );
}

#[test]
fn the_vectors_record_where_the_legacy_sdk_differs() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/conformance_vectors.json"
    );
    let vectors: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let differing = vectors["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.get("legacy_differs"))
        .flat_map(|d| d.as_object().unwrap().keys())
        .filter(|k| *k == "multi_gate")
        .count();
    assert!(
        differing > 0,
        "the multi_pass_gate divergence should show in the vectors"
    );
}
