//! Any bytes as a ruleset: parsing, compiling, evaluating every spec and re-serializing must
//! never panic.
#![no_main]

use evaluator::{EvalContext, Ruleset, SpecKind, User};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rs) = Ruleset::from_slice(data) else { return };
    let user = User::from_json(&serde_json::json!({"userID": "u", "email": "a@b.c"})).unwrap();
    let ctx = EvalContext { user: &user, now_ms: 0, app_id: None };
    for kind in [SpecKind::Gate, SpecKind::Config, SpecKind::Layer] {
        let names: Vec<String> = rs.names(kind).map(str::to_owned).collect();
        for name in names {
            let _ = rs.evaluate(kind, &name, &ctx);
        }
    }
    let _ = Ruleset::from_value(rs.to_v1());
    let _ = Ruleset::from_value(rs.to_v2());
});
