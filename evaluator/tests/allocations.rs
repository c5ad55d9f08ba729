//! A gate check must not touch the heap (ID-list lookups included): counted with a counting
//! global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use evaluator::{EvalContext, Ruleset, User};
use serde_json::json;

struct Counting;

thread_local! {
    /// Allocations made by this thread while counting is on (other test threads don't count).
    static ALLOCATIONS: Cell<Option<usize>> = const { Cell::new(None) };
}

fn count_allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|c| c.set(Some(0)));
    f();
    ALLOCATIONS.with(|c| c.replace(None)).unwrap_or(0)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| {
            if let Some(n) = c.get() {
                c.set(Some(n + 1));
            }
        });
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn gate_checks_do_not_allocate() {
    let mut rs = Ruleset::from_value(json!({
        "time": 1,
        "condition_map": {
            "country": {"type": "user_field", "field": "country", "operator": "any",
                        "targetValue": ["US", "CA"], "idType": "userID"},
            "version": {"type": "user_field", "field": "appVersion", "operator": "version_gte",
                        "targetValue": "1.2.0", "idType": "userID"},
            "email": {"type": "user_field", "field": "email", "operator": "str_ends_with_any",
                      "targetValue": ["@example.com"], "idType": "userID"},
            "bucket": {"type": "user_bucket", "operator": "lt", "targetValue": 500,
                       "additionalValues": {"salt": "s"}, "idType": "userID"},
            "time": {"type": "current_time", "operator": "after", "targetValue": 0, "idType": "userID"},
            "listed": {"type": "unit_id", "operator": "in_segment_list", "targetValue": "beta",
                       "idType": "userID"}
        },
        "feature_gates": {
            "three": {"type": "feature_gate", "salt": "a", "enabled": true, "defaultValue": false,
                      "idType": "userID", "entity": "feature_gate",
                      "rules": [{"id": "r", "passPercentage": 100, "returnValue": true,
                                 "idType": "userID", "conditions": ["country", "version", "email"]}]},
            "bucketed": {"type": "feature_gate", "salt": "b", "enabled": true, "defaultValue": false,
                         "idType": "userID", "entity": "feature_gate",
                         "rules": [{"id": "r", "passPercentage": 50, "returnValue": true,
                                    "idType": "userID", "conditions": ["bucket", "time"]}]},
            "in_list": {"type": "feature_gate", "salt": "c", "enabled": true, "defaultValue": false,
                        "idType": "userID", "entity": "feature_gate",
                        "rules": [{"id": "r", "passPercentage": 100, "returnValue": true,
                                   "idType": "userID", "conditions": ["listed"]}]}
        }
    }))
    .unwrap();
    let mut lists = evaluator::IdLists::default();
    lists.insert_ids("beta", ["u0", "u1"]);
    rs.set_id_lists(std::sync::Arc::new(lists));
    let user = User::from_json(&json!({
        "userID": "u1", "country": "us", "appVersion": "1.4.0", "email": "a@example.com"
    }))
    .unwrap();
    let ctx = EvalContext {
        user: &user,
        now_ms: 1_767_225_600_000,
        app_id: None,
    };
    // Warm up lazily built tables, then count.
    rs.check_gate("three", &ctx);
    rs.check_gate("bucketed", &ctx);
    rs.check_gate("in_list", &ctx);

    let mut passes = 0;
    let mut listed = 0;
    let allocations = count_allocations(|| {
        for _ in 0..1000 {
            passes += rs.check_gate("three", &ctx).bool_value as u32;
            passes += rs.check_gate("bucketed", &ctx).bool_value as u32;
            listed += rs.check_gate("in_list", &ctx).bool_value as u32;
        }
    });
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in 3000 gate checks"
    );
    assert!(passes >= 1000, "the 3-condition gate passes for this user");
    assert_eq!(listed, 1000, "the user is in the list");
}
