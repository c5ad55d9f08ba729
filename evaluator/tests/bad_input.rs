//! Bad rulesets and users give clear errors or fail-closed specs, never a panic.

use evaluator::{EvalContext, Outcome, Ruleset, SpecKind, User};
use serde_json::json;

#[test]
fn malformed_payloads_are_errors() {
    for bad in [
        &b""[..],
        b"not json",
        b"[1,2]",
        b"{\"time\": null}",
        b"{\"time\": 1, \"feature_gates\": 5}",
        b"{\"time\": 1, \"feature_gates\": [], \"dynamic_configs\": {}}",
    ] {
        let err = Ruleset::from_slice(bad).unwrap_err();
        assert!(err.to_string().starts_with("invalid ruleset: "), "{err}");
    }
}

#[test]
fn wrong_types_inside_specs_skip_the_spec_and_say_why() {
    let rs = Ruleset::from_value(json!({
        "time": 1,
        "feature_gates": {
            "no_rules": {"salt": "s"},
            "bad_rule": {"salt": "s", "rules": [{"id": 5, "passPercentage": 1, "conditions": []}]},
            "not_object": 7,
            "fine": {"salt": "s", "rules": [], "defaultValue": true}
        }
    }))
    .unwrap();
    assert_eq!(rs.names(SpecKind::Gate).collect::<Vec<_>>(), ["fine"]);
    assert_eq!(rs.warnings().len(), 3, "{:?}", rs.warnings());
}

#[test]
fn hostile_conditions_fail_closed() {
    let huge: Vec<String> = (0..200_000).map(|i| format!("id{i}")).collect();
    let rs = Ruleset::from_value(json!({
        "time": 1,
        "condition_map": {
            "huge": {"type": "user_field", "field": "userID", "operator": "any", "targetValue": huge},
            "redos": {"type": "user_field", "field": "email", "operator": "str_matches",
                      "targetValue": "^(a+)+$"},
            "badre": {"type": "user_field", "field": "email", "operator": "str_matches",
                      "targetValue": "(?<"},
            "weird": {"type": "user_field", "field": null, "operator": null, "targetValue": {"a": [1]}},
            "cycle": {"type": "pass_gate", "targetValue": "loop"}
        },
        "feature_gates": {
            "huge": {"salt": "s", "rules": [{"id": "r", "passPercentage": 100, "returnValue": true, "conditions": ["huge"]}]},
            "redos": {"salt": "s", "rules": [{"id": "r", "passPercentage": 100, "returnValue": true, "conditions": ["redos"]}]},
            "badre": {"salt": "s", "rules": [{"id": "r", "passPercentage": 100, "returnValue": true, "conditions": ["badre"]}]},
            "weird": {"salt": "s", "rules": [{"id": "r", "passPercentage": 100, "returnValue": true, "conditions": ["weird"]}]},
            "loop": {"salt": "s", "rules": [{"id": "r", "passPercentage": 100, "returnValue": true, "conditions": ["cycle"]}]},
            "missing_condition": {"salt": "s", "rules": [{"id": "r", "passPercentage": 100, "returnValue": true, "conditions": ["nope"]}]}
        }
    }))
    .unwrap();
    let user =
        User::from_json(&json!({"userID": "id199999", "email": format!("{}!", "a".repeat(5000))}))
            .unwrap();
    let ctx = EvalContext {
        user: &user,
        now_ms: 0,
        app_id: None,
    };
    assert!(rs.check_gate("huge", &ctx).bool_value);
    assert!(
        !rs.check_gate("redos", &ctx).bool_value,
        "backtracking is bounded"
    );
    assert!(!rs.check_gate("badre", &ctx).bool_value);
    assert_eq!(rs.check_gate("weird", &ctx).outcome, Outcome::Unsupported);
    assert_eq!(
        rs.check_gate("loop", &ctx).outcome,
        Outcome::Unsupported,
        "a cycle is cut"
    );
    assert_eq!(
        rs.check_gate("missing_condition", &ctx).outcome,
        Outcome::Unsupported
    );
    assert_eq!(rs.check_gate("absent", &ctx).outcome, Outcome::Unrecognized);
}

#[test]
fn bad_users_are_errors() {
    for bad in [
        json!(null),
        json!([]),
        json!({"userID": true}),
        json!({"custom": "x"}),
        json!({"customIDs": {"a": []}}),
        json!({"statsigEnvironment": 1}),
    ] {
        assert!(User::from_json(&bad).is_err(), "{bad}");
    }
}
