//! The console's state: keys and rules managed over HTTP, kept as a log of changes that
//! every front door replays ([`state`]), stored in a local file ([`file_log`], one front
//! door) or a compacted Kafka topic ([`kafka_log`], many). Accepted changes reach the
//! request path through the key store and the live ruleset ([`specs`] turns console
//! documents into Statsig specs); the write path waits until its own change is applied,
//! so a 2xx means durable *and* served here.

pub mod file_log;
pub mod kafka_log;
pub mod specs;
pub mod state;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::keys::{KeyKind, KeyRecord, KeyStore};
use crate::rules::{now_ms, LiveRules};
use file_log::FileLog;
use kafka_log::KafkaLog;
use state::{Change, Kind, Outcome, State, CHANGE_SCHEMA_VERSION};

/// How long a write waits for its change to come back from the Kafka log.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The entity changed since the version the write was based on (409).
    Conflict {
        /// The version it is at now.
        current: u64,
    },
    /// The log could not take the change (503); nothing was acknowledged.
    Unavailable(String),
}

enum Backend {
    File(Mutex<FileLog>),
    Kafka(KafkaLog),
}

/// The console state of this front door, and the way to change it.
pub struct Control {
    state: Mutex<State>,
    backend: Backend,
    keys: Arc<KeyStore>,
    rules: Arc<LiveRules>,
    /// Writes of this front door waiting for their change to come back from Kafka.
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl Control {
    /// The single-node store under `dir`: replays it, then serves its state.
    pub fn open_dir(
        dir: &Path,
        keys: Arc<KeyStore>,
        rules: Arc<LiveRules>,
    ) -> Result<Arc<Control>, String> {
        let (log, changes) = FileLog::open(dir)?;
        let control = Arc::new(Control::new(Backend::File(Mutex::new(log)), keys, rules));
        {
            let mut state = control.lock_state();
            for change in &changes {
                state.apply(change);
            }
            control.sync_all(&state)?;
        }
        tracing::info!(dir = %dir.display(), changes = changes.len(), "console state loaded");
        Ok(control)
    }

    /// The shared store: the compacted topic `topic`, tailed until `stop`. Returns once this
    /// front door has replayed the topic to its end.
    pub async fn open_kafka(
        connection: &rdkafka::ClientConfig,
        topic: &str,
        keys: Arc<KeyStore>,
        rules: Arc<LiveRules>,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Control>, String> {
        let log = KafkaLog::connect(connection, topic).await?;
        let control = Arc::new(Control::new(Backend::Kafka(log), keys, rules));
        let (ready_tx, ready_rx) = oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let tailing = control.clone();
        let runtime = tokio::runtime::Handle::current();
        kafka_log::tail(connection, topic, stop, move |batch, live| {
            let restatements = tailing.apply_batch(&batch, live, ready_tx.is_some());
            if let Some(tx) = ready_tx.take_if(|_| live) {
                let _ = tx.send(());
            }
            for restatement in restatements {
                let control = tailing.clone();
                runtime.spawn(async move {
                    if let Backend::Kafka(log) = &control.backend {
                        if let Err(error) = log.append(&restatement).await {
                            tracing::error!(%error, "restatement not written");
                        }
                    }
                });
            }
        })?;
        tokio::time::timeout(Duration::from_secs(60), ready_rx)
            .await
            .map_err(|_| format!("the control topic {topic} was not replayed within 60 s"))?
            .map_err(|_| "the control topic reader stopped".to_owned())?;
        tracing::info!(topic, "console state replayed from Kafka");
        Ok(control)
    }

    fn new(backend: Backend, keys: Arc<KeyStore>, rules: Arc<LiveRules>) -> Control {
        Control {
            state: Mutex::new(State::default()),
            backend,
            keys,
            rules,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Applies changes read from Kafka; returns the restatements to write for conflicts.
    /// Until the replica is live nothing is served from the state and no restatement is
    /// written (the live replicas wrote them the first time).
    fn apply_batch(&self, batch: &[Change], live: bool, first_live: bool) -> Vec<Change> {
        let mut state = self.lock_state();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut restatements = Vec::new();
        for change in batch {
            let outcome = state.apply(change);
            if let (Outcome::Conflict { .. }, true) = (outcome, live) {
                restatements.extend(state.restatement(change.kind, &change.name, new_id()));
            }
            outcomes.push((change.write_id.clone(), outcome));
        }
        if live {
            let synced = if first_live {
                self.sync_all(&state)
            } else {
                self.sync_changed(&state, batch)
            };
            if let Err(error) = synced {
                tracing::error!(%error, "console state could not be served");
            }
        }
        drop(state);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (write_id, outcome) in outcomes {
            if let Some(waiter) = pending.remove(&write_id) {
                let _ = waiter.send(outcome);
            }
        }
        restatements
    }

    /// Reads the state (console reads; never on the SDK request path).
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key store the console's keys are served from.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The live ruleset the console's rules are served through.
    pub fn rules(&self) -> &LiveRules {
        &self.rules
    }

    /// Makes a change durable and serves it, or says why not. Returns the entity's new
    /// version.
    pub async fn write(self: &Arc<Self>, change: Change) -> Result<u64, WriteError> {
        match &self.backend {
            Backend::File(_) => {
                let control = self.clone();
                tokio::task::spawn_blocking(move || control.write_file(&change))
                    .await
                    .map_err(|e| WriteError::Unavailable(format!("write task failed: {e}")))?
            }
            Backend::Kafka(log) => {
                let (tx, rx) = oneshot::channel();
                let write_id = change.write_id.clone();
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(write_id.clone(), tx);
                let unpend = || {
                    self.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&write_id);
                };
                if let Err(error) = log.append(&change).await {
                    unpend();
                    return Err(WriteError::Unavailable(error));
                }
                match tokio::time::timeout(WRITE_TIMEOUT, rx).await {
                    Ok(Ok(outcome)) => outcome_result(outcome, &self.lock_state(), &change),
                    _ => {
                        unpend();
                        Err(WriteError::Unavailable(
                            "the change was written but not read back in time; check before retrying"
                                .into(),
                        ))
                    }
                }
            }
        }
    }

    fn write_file(&self, change: &Change) -> Result<u64, WriteError> {
        let Backend::File(log) = &self.backend else {
            unreachable!("write_file is only called for the file backend")
        };
        let mut state = self.lock_state();
        let outcome = state.decide(change);
        if let Outcome::Accepted { .. } = outcome {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(change)
                .map_err(WriteError::Unavailable)?;
            state.apply(change);
            if let Err(error) = self.sync_changed(&state, std::slice::from_ref(change)) {
                tracing::error!(%error, "console change stored but not served");
            }
        }
        outcome_result(outcome, &state, change)
    }

    fn sync_all(&self, state: &State) -> Result<(), String> {
        self.sync_keys(state);
        self.rules.set_overlay(specs::overlay(state))
    }

    fn sync_changed(&self, state: &State, changes: &[Change]) -> Result<(), String> {
        if changes.iter().any(|c| c.kind == Kind::Key) {
            self.sync_keys(state);
        }
        if changes.iter().any(|c| c.kind != Kind::Key) {
            self.rules.set_overlay(specs::overlay(state))?;
        }
        Ok(())
    }

    /// Puts every console key into the key store, and revokes the deactivated ones and the
    /// secrets rotated away (seeded keys included: a revocation outlives the flag that
    /// seeded the key).
    fn sync_keys(&self, state: &State) {
        for (_, _, doc) in state.live(Kind::Key) {
            match key_record(doc) {
                Some((record, true)) => self.keys.put(record),
                Some((record, false)) => {
                    self.keys.revoke_digest(&record.digest);
                }
                None => tracing::error!(doc = %doc, "unreadable key document skipped"),
            }
            for retired in doc["retiredDigests"].as_array().into_iter().flatten() {
                match retired.as_str().and_then(parse_digest) {
                    Some(digest) => {
                        self.keys.revoke_digest(&digest);
                    }
                    None => tracing::error!(doc = %doc, "unreadable retired key digest skipped"),
                }
            }
        }
    }
}

fn outcome_result(outcome: Outcome, state: &State, change: &Change) -> Result<u64, WriteError> {
    match outcome {
        Outcome::Accepted { version } => Ok(version),
        Outcome::Conflict { current } => Err(WriteError::Conflict { current }),
        Outcome::Duplicate => Ok(state
            .get(change.kind, &change.name)
            .map_or(0, |e| e.version)),
    }
}

/// A SHA-256 digest from its 64 hex digits.
fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// A key document as a key-store record, and whether it is active. The record keeps the
/// document's id, which outlives a rotation of the secret it was derived from.
pub fn key_record(doc: &Value) -> Option<(KeyRecord, bool)> {
    let digest = parse_digest(doc.get("digest")?.as_str()?)?;
    let kind = match doc.get("type")?.as_str()? {
        "SERVER" => KeyKind::Server,
        "CLIENT" => KeyKind::Client,
        "CONSOLE" => KeyKind::Console,
        _ => return None,
    };
    let scopes = doc
        .get("scopes")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let app = doc
        .get("targetAppID")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let seeded = doc.get("source").and_then(Value::as_str) == Some("flag");
    let active = doc.get("status").and_then(Value::as_str) == Some("active");
    let mut record = KeyRecord::new(digest, kind, scopes, app, seeded);
    if let Some(id) = doc.get("id").and_then(Value::as_str) {
        record.id = id.to_owned();
    }
    record.environments = doc
        .get("environments")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Some((record, active))
}

/// A fresh unique id (write ids, rule ids, salts).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A change to `kind/name` by `actor`, based on `base`.
pub fn change(
    kind: Kind,
    name: &str,
    base: u64,
    doc: Option<Value>,
    actor: &str,
    action: &str,
) -> Change {
    Change {
        v: CHANGE_SCHEMA_VERSION,
        write_id: new_id(),
        kind,
        name: name.to_owned(),
        base,
        doc,
        actor: actor.to_owned(),
        at_ms: now_ms(),
        action: action.to_owned(),
        restate: false,
    }
}
