//! Optional exposure dedupe (off by default, `--exposure-dedupe-secs`): an exposure with the
//! same key, unit, entity, rule and result as one sent less than a window ago is not sent
//! again, as Statsig's forward proxy offers, to cut Kafka volume from chatty SDKs.
//!
//! It costs one DashMap write per exposure (the only write on the evaluation path, hence
//! opt-in). Memory is bounded: past `max_entries` fingerprints, exposures are sent
//! undeduplicated until the periodic sweep frees expired ones.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use events::ExposureMessage;

/// Remembers recent exposure fingerprints.
#[derive(Debug)]
pub struct ExposureDedupe {
    window_ms: u64,
    max_entries: usize,
    hasher: ahash::RandomState,
    /// Fingerprint → when its window ends (ms since the epoch).
    seen: DashMap<u64, u64, ahash::RandomState>,
    entries: AtomicUsize,
    /// Exposures not sent because an identical one was sent within the window.
    pub suppressed: AtomicU64,
}

impl ExposureDedupe {
    /// A dedupe with a `window` and at most `max_entries` fingerprints.
    pub fn new(window: Duration, max_entries: usize) -> ExposureDedupe {
        ExposureDedupe {
            window_ms: window.as_millis() as u64,
            max_entries,
            hasher: ahash::RandomState::new(),
            seen: DashMap::with_hasher(ahash::RandomState::new()),
            entries: AtomicUsize::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether `exposure` should be sent: false when an identical exposure was sent less
    /// than a window before `now_ms`.
    pub fn should_send(&self, exposure: &ExposureMessage<'_>, now_ms: u64) -> bool {
        let until = now_ms + self.window_ms;
        match self.seen.entry(self.fingerprint(exposure)) {
            Entry::Occupied(seen) if now_ms < *seen.get() => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                false
            }
            Entry::Occupied(mut seen) => {
                seen.insert(until);
                true
            }
            Entry::Vacant(slot) => {
                if self.entries.load(Ordering::Relaxed) < self.max_entries {
                    self.entries.fetch_add(1, Ordering::Relaxed);
                    slot.insert(until);
                }
                true
            }
        }
    }

    /// Forgets fingerprints whose window has ended (run every window).
    pub fn sweep(&self, now_ms: u64) {
        self.seen.retain(|_, until| *until > now_ms);
        self.entries.store(self.seen.len(), Ordering::Relaxed);
    }

    /// The window.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    fn fingerprint(&self, message: &ExposureMessage<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        (message.key_id, message.unit_id_type, message.unit_id).hash(&mut h);
        let e = &message.exposure;
        (&e.kind, &e.name, &e.rule_id, &e.group_name, e.gate_value).hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{ExposureMetadata, ExposureView, SCHEMA_VERSION};

    fn should_send(d: &ExposureDedupe, unit: &str, rule: &str, now_ms: u64) -> bool {
        let user = "{}";
        d.should_send(
            &ExposureMessage {
                schema_version: SCHEMA_VERSION,
                event_id: "e",
                event_name: "statsig::gate_exposure",
                event_time_ms: 0,
                received_at_ms: 0,
                key_id: "k",
                sdk_type: None,
                sdk_version: None,
                unit_id_type: "userID",
                unit_id: unit,
                user,
                metadata: ExposureMetadata::default(),
                secondary_exposures: &[],
                exposure: ExposureView {
                    kind: "gate".into(),
                    name: "g".into(),
                    rule_id: rule.into(),
                    group_name: None,
                    gate_value: Some(true),
                },
            },
            now_ms,
        )
    }

    #[test]
    fn one_per_window_per_unit_and_result_and_bounded() {
        let d = ExposureDedupe::new(Duration::from_secs(60), 3);
        assert!(should_send(&d, "u1", "r", 1_000));
        assert!(!should_send(&d, "u1", "r", 2_000));
        assert!(should_send(&d, "u2", "r", 2_000));
        assert!(should_send(&d, "u1", "other", 2_000));
        assert!(should_send(&d, "u1", "r", 61_000), "the window ended");
        // At the cap (3 entries) new fingerprints are sent but not remembered.
        assert!(should_send(&d, "u3", "r", 61_000));
        assert!(should_send(&d, "u3", "r", 61_001));
        assert_eq!(d.suppressed.load(Ordering::Relaxed), 1);
        d.sweep(70_000);
        assert_eq!(d.seen.len(), 1); // only u1/r (until 121,000) is left
        assert!(!should_send(&d, "u1", "r", 100_000));
    }
}
