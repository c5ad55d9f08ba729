//! The console's state as a deterministic state machine over an ordered log of [`Change`]s.
//!
//! Every front door applies the same log (a file, or a compacted Kafka topic) in the same
//! order and so reaches the same state. A write names the entity version it was based on
//! (`base`); a change whose base is stale is a conflict on every replica alike, which is
//! what turns concurrent writers into a 409 instead of a lost update.
//!
//! Compaction keeps only the last record per entity. So that a conflicting (rejected)
//! record can never be the one compaction keeps, a replica that sees a conflict appends a
//! *restatement* of the entity's current document: restatements are authoritative, and
//! make the entity's last record the accepted state again.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version of the [`Change`] record schema.
pub const CHANGE_SCHEMA_VERSION: u32 = 1;

/// How many accepted changes the in-memory audit log keeps (the log itself keeps all).
const AUDIT_IN_MEMORY: usize = 10_000;

/// What an entity is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An API key (the document never holds the secret, only its SHA-256).
    Key,
    /// A feature gate.
    Gate,
    /// A dynamic config.
    DynamicConfig,
    /// An experiment.
    Experiment,
    /// A layer.
    Layer,
    /// A segment.
    Segment,
}

impl Kind {
    /// The name used in log keys, audit entries and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Gate => "gate",
            Kind::DynamicConfig => "dynamic_config",
            Kind::Experiment => "experiment",
            Kind::Layer => "layer",
            Kind::Segment => "segment",
        }
    }
}

/// One write, as stored in the control log. Schema version [`CHANGE_SCHEMA_VERSION`];
/// documented in docs/console.md.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Change {
    /// Schema version.
    pub v: u32,
    /// Unique per write: the writer finds its outcome by it.
    pub write_id: String,
    /// The entity's kind ...
    pub kind: Kind,
    /// ... and name (key id for keys).
    pub name: String,
    /// The entity version this write was based on (0: the entity did not exist).
    pub base: u64,
    /// The new document; `None` deletes.
    pub doc: Option<Value>,
    /// Key id of the writer.
    pub actor: String,
    /// When it was written (ms since the epoch).
    pub at_ms: u64,
    /// What the writer did: `create`, `update`, `delete`, `revoke`, `start`, ...
    pub action: String,
    /// A restatement of the current state after a conflict (see the module doc).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restate: bool,
}

impl Change {
    /// The log key: compaction keeps the last record per key.
    pub fn log_key(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// An entity's current state.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Bumped by every accepted write: the ETag.
    pub version: u64,
    /// The document; `None` once deleted (the version lives on, so a re-create is ordered).
    pub doc: Option<Value>,
    /// When and by whom it was last written.
    pub updated_at_ms: u64,
    /// Key id of the last writer.
    pub updated_by: String,
    last_write_id: String,
}

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the entity is now at this version.
    Accepted {
        /// The new version.
        version: u64,
    },
    /// The base was stale: the entity is at `current`.
    Conflict {
        /// The version the entity is at.
        current: u64,
    },
    /// Already applied (a redelivery or a restatement of what is there).
    Duplicate,
}

/// All entities, and the recent accepted changes.
#[derive(Debug, Default, Clone)]
pub struct State {
    entries: BTreeMap<(Kind, String), Entry>,
    audit: VecDeque<Change>,
    clock: u64,
}

impl State {
    /// What applying `change` would do, without doing it (the file log checks first, so
    /// that only accepted changes reach it).
    pub fn decide(&self, change: &Change) -> Outcome {
        let outcome = self.decide_by_version(change);
        // Two writers may each find the same free buckets of a layer for their experiment:
        // the first in the log gets them, the other is refused as if it were stale.
        if let (Outcome::Accepted { .. }, false) = (outcome, change.restate) {
            if self.takes_held_layer_buckets(change) {
                let current = self.get(change.kind, &change.name).map_or(0, |e| e.version);
                return Outcome::Conflict { current };
            }
        }
        outcome
    }

    /// Whether `change` makes its experiment hold buckets of its layer that another running
    /// experiment there holds.
    fn takes_held_layer_buckets(&self, change: &Change) -> bool {
        let Some(doc) = change
            .doc
            .as_ref()
            .filter(|_| change.kind == Kind::Experiment)
        else {
            return false;
        };
        if doc["status"] != "active" {
            return false;
        }
        let (Some(layer), Some(range)) = (doc["layerID"].as_str(), super::specs::layer_range(doc))
        else {
            return false;
        };
        !self.layer_buckets_free(layer, range, Some(&change.name))
    }

    /// Whether no running experiment of `layer` (but `except`) holds any of the buckets
    /// `[lo, hi)`.
    pub fn layer_buckets_free(
        &self,
        layer: &str,
        [lo, hi]: [u32; 2],
        except: Option<&str>,
    ) -> bool {
        self.layer_ranges(layer, except)
            .iter()
            .all(|&[a, b]| b <= lo || hi <= a)
    }

    /// The bucket ranges of `layer` its running experiments (but `except`) hold.
    pub fn layer_ranges(&self, layer: &str, except: Option<&str>) -> Vec<[u32; 2]> {
        self.live(Kind::Experiment)
            .filter(|(name, _, d)| {
                d["layerID"] == layer && d["status"] == "active" && Some(*name) != except
            })
            .filter_map(|(_, _, d)| super::specs::layer_range(d))
            .collect()
    }

    fn decide_by_version(&self, change: &Change) -> Outcome {
        let new_version = change.base + 1;
        match self.entries.get(&(change.kind, change.name.clone())) {
            Some(e) if e.last_write_id == change.write_id => Outcome::Duplicate,
            Some(e) if change.restate => {
                if new_version < e.version || (new_version == e.version && e.doc == change.doc) {
                    Outcome::Duplicate
                } else {
                    Outcome::Accepted {
                        version: new_version,
                    }
                }
            }
            Some(e) if change.base != e.version => Outcome::Conflict { current: e.version },
            // Absent: the first record of this entity, or the one compaction kept.
            _ => Outcome::Accepted {
                version: new_version,
            },
        }
    }

    /// Applies one change from the log.
    pub fn apply(&mut self, change: &Change) -> Outcome {
        let key = (change.kind, change.name.clone());
        let outcome = self.decide(change);
        if let Outcome::Accepted { version } = outcome {
            // Stamps only move forward, so the ruleset `time` built from them does too even
            // when writers' clocks disagree; a restatement keeps the stamp it restates.
            let stamp = if change.restate {
                change.at_ms
            } else {
                change.at_ms.max(self.clock + 1)
            };
            self.clock = self.clock.max(stamp);
            self.entries.insert(
                key,
                Entry {
                    version,
                    doc: change.doc.clone(),
                    updated_at_ms: stamp,
                    updated_by: change.actor.clone(),
                    last_write_id: change.write_id.clone(),
                },
            );
            if !change.restate {
                if self.audit.len() == AUDIT_IN_MEMORY {
                    self.audit.pop_front();
                }
                self.audit.push_back(change.clone());
            }
        }
        outcome
    }

    /// The newest stamp of any entity (ms since the epoch): the console's part of the
    /// ruleset `time`.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// One entity (deleted ones included, with `doc: None`).
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Entry> {
        self.entries.get(&(kind, name.to_owned()))
    }

    /// The live (not deleted) documents of one kind, by name.
    pub fn live(&self, kind: Kind) -> impl Iterator<Item = (&str, &Entry, &Value)> {
        self.entries
            .range((kind, String::new())..)
            .take_while(move |((k, _), _)| *k == kind)
            .filter_map(|((_, name), e)| Some((name.as_str(), e, e.doc.as_ref()?)))
    }

    /// Accepted changes, oldest first (the last [`AUDIT_IN_MEMORY`]).
    pub fn audit(&self) -> impl DoubleEndedIterator<Item = &Change> {
        self.audit.iter()
    }

    /// The restatement a replica appends after seeing a conflict on `kind/name`.
    pub fn restatement(&self, kind: Kind, name: &str, write_id: String) -> Option<Change> {
        let e = self.get(kind, name)?;
        Some(Change {
            v: CHANGE_SCHEMA_VERSION,
            write_id,
            kind,
            name: name.to_owned(),
            base: e.version - 1,
            doc: e.doc.clone(),
            actor: e.updated_by.clone(),
            at_ms: e.updated_at_ms,
            action: "restate".into(),
            restate: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(id: &str, base: u64, doc: Value) -> Change {
        Change {
            v: CHANGE_SCHEMA_VERSION,
            write_id: id.into(),
            kind: Kind::Gate,
            name: "g".into(),
            base,
            doc: Some(doc),
            actor: "k".into(),
            at_ms: 1,
            action: "update".into(),
            restate: false,
        }
    }

    #[test]
    fn stale_base_is_a_conflict_everywhere() {
        let mut s = State::default();
        assert_eq!(
            s.apply(&change("a", 0, json!(1))),
            Outcome::Accepted { version: 1 }
        );
        assert_eq!(
            s.apply(&change("b", 1, json!(2))),
            Outcome::Accepted { version: 2 }
        );
        // Written concurrently with "b", from version 1.
        assert_eq!(
            s.apply(&change("c", 1, json!(3))),
            Outcome::Conflict { current: 2 }
        );
        assert_eq!(s.apply(&change("b", 1, json!(2))), Outcome::Duplicate);
        assert_eq!(s.get(Kind::Gate, "g").unwrap().doc, Some(json!(2)));
        assert_eq!(s.audit().count(), 2);
    }

    #[test]
    fn a_layers_buckets_go_to_the_first_experiment_in_the_log() {
        let running = |name: &str, range: [u32; 2]| Change {
            kind: Kind::Experiment,
            name: name.into(),
            ..change(
                &format!("{name}{range:?}"),
                0,
                json!({"layerID": "l", "status": "active", "_layerBuckets": range}),
            )
        };
        let mut s = State::default();
        assert_eq!(
            s.apply(&running("a", [0, 300])),
            Outcome::Accepted { version: 1 }
        );
        // Started concurrently with "a" on the same free range.
        assert_eq!(
            s.apply(&running("b", [0, 200])),
            Outcome::Conflict { current: 0 }
        );
        assert_eq!(
            s.apply(&running("b", [300, 500])),
            Outcome::Accepted { version: 1 }
        );
        assert_eq!(s.layer_ranges("l", Some("a")), vec![[300, 500]]);
        // Growing "a" into "b"'s range is refused; in another layer it is not.
        let grown = Change {
            base: 1,
            ..running("a", [0, 400])
        };
        assert_eq!(s.apply(&grown), Outcome::Conflict { current: 1 });
        let mut elsewhere = grown.clone();
        elsewhere.write_id = "elsewhere".into();
        elsewhere.doc =
            Some(json!({"layerID": "m", "status": "active", "_layerBuckets": [0, 400]}));
        assert_eq!(s.apply(&elsewhere), Outcome::Accepted { version: 2 });
    }

    /// After compaction a fresh replica may see only the rejected record, then the
    /// restatement: it must end where the live replicas are.
    #[test]
    fn restatement_repairs_what_compaction_kept() {
        let mut live = State::default();
        let (a0, b1, c1) = (
            change("a", 0, json!(1)),
            change("b", 1, json!(2)),
            change("c", 1, json!(3)),
        );
        for c in [&a0, &b1, &c1] {
            live.apply(c);
        }
        let restate = live.restatement(Kind::Gate, "g", "r".into()).unwrap();
        assert_eq!(live.apply(&restate), Outcome::Duplicate);

        let mut fresh = State::default();
        fresh.apply(&c1); // compaction kept the rejected record ...
        assert_eq!(
            fresh.apply(&restate),
            Outcome::Accepted { version: 2 } // ... and the restatement wins.
        );
        let versions = |s: &State| s.get(Kind::Gate, "g").map(|e| (e.version, e.doc.clone()));
        assert_eq!(versions(&fresh), versions(&live));
    }

    #[test]
    fn deletes_keep_the_version_and_live_skips_them() {
        let mut s = State::default();
        s.apply(&change("a", 0, json!(1)));
        let mut delete = change("d", 1, json!(null));
        delete.doc = None;
        assert_eq!(s.apply(&delete), Outcome::Accepted { version: 2 });
        assert_eq!(s.live(Kind::Gate).count(), 0);
        assert_eq!(
            s.apply(&change("again", 0, json!(5))),
            Outcome::Conflict { current: 2 }
        );
        assert_eq!(
            s.apply(&change("again", 2, json!(5))),
            Outcome::Accepted { version: 3 }
        );
        assert_eq!(s.live(Kind::Gate).count(), 1);
        assert_eq!(s.live(Kind::Key).count(), 0);
    }
}
