//! Any bytes as a user object: parsing must never panic.
#![no_main]

use evaluator::User;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = User::from_json(&value);
    }
});
