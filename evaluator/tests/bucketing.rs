//! Bucketing properties: deterministic, monotonic in the pass percentage, uniform.

use evaluator::hash::unit_hash;
use proptest::prelude::*;

proptest! {
    #[test]
    fn the_same_unit_always_gets_the_same_bucket(salt in ".{0,40}", rule in ".{0,40}", unit in ".{0,40}") {
        prop_assert_eq!(unit_hash(&[&salt, &rule, &unit]), unit_hash(&[&salt, &rule, &unit]));
    }

    #[test]
    fn raising_the_pass_percentage_never_drops_a_unit(unit in ".{0,40}", low in 0u32..10_000, extra in 0u32..10_000) {
        let bucket = unit_hash(&["salt", "rule", &unit]) % 10_000;
        let high = (low + extra).min(10_000);
        if (bucket as u32) < low {
            prop_assert!((bucket as u32) < high);
        }
    }
}

/// Chi-square over 100,000 ids and 100 equal bins (99 degrees of freedom): the critical
/// value at p = 0.001 is 148.2. The ids are fixed, so the test is deterministic.
#[test]
fn buckets_are_uniform() {
    let mut bins = [0u32; 100];
    for i in 0..100_000 {
        let id = format!("user-{i}");
        bins[(unit_hash(&["spec_salt", "rule_salt", &id]) % 10_000 / 100) as usize] += 1;
    }
    let expected = 1000.0;
    let chi2: f64 = bins
        .iter()
        .map(|&n| (n as f64 - expected).powi(2) / expected)
        .sum();
    assert!(chi2 < 148.2, "chi-square {chi2:.1} over 100 bins");

    let mut user_buckets = [0u32; 10];
    for i in 0..100_000 {
        let id = format!("user-{i}");
        user_buckets[(unit_hash(&["layer_salt", &id]) % 1000 / 100) as usize] += 1;
    }
    let chi2: f64 = user_buckets
        .iter()
        .map(|&n| (n as f64 - 10_000.0).powi(2) / 10_000.0)
        .sum();
    // 9 degrees of freedom: critical value 27.9 at p = 0.001.
    assert!(chi2 < 27.9, "user_bucket chi-square {chi2:.1}");
}
