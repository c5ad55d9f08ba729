//! The live ruleset: compiled off the request path, swapped in atomically, served from one
//! `ArcSwap` load per request. The specs file is polled; a bad new version is logged and the
//! old ruleset keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use evaluator::Ruleset;

/// One ruleset version with its `download_config_specs` bodies serialized once.
#[derive(Debug)]
pub struct Compiled {
    /// The evaluator's compiled form.
    pub ruleset: Ruleset,
    /// The v1-shape body (legacy server SDKs).
    pub v1_body: Bytes,
    /// The v2-shape body (core server SDKs).
    pub v2_body: Bytes,
    /// When this version was swapped in (ms since the epoch).
    pub loaded_at_ms: u64,
}

impl Compiled {
    /// Compiles a payload; `min_time` keeps versions monotonic (a reloaded file whose `time`
    /// did not move is served with a newer one, so SDKs polling with `sinceTime` see it).
    pub fn build(bytes: &[u8], min_time: i64) -> Result<Compiled, String> {
        let mut ruleset = Ruleset::from_slice(bytes).map_err(|e| e.to_string())?;
        for warning in ruleset.warnings() {
            tracing::warn!(%warning, "spec skipped");
        }
        ruleset.time = ruleset.time.max(min_time);
        let body = |v: serde_json::Value| Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        Ok(Compiled {
            v1_body: body(ruleset.to_v1()),
            v2_body: body(ruleset.to_v2()),
            ruleset,
            loaded_at_ms: now_ms(),
        })
    }
}

/// The current ruleset, replaced whole.
#[derive(Debug, Default)]
pub struct LiveRules {
    current: ArcSwapOption<Compiled>,
}

impl LiveRules {
    /// The ruleset requests should use (None until one has loaded).
    pub fn get(&self) -> Option<Arc<Compiled>> {
        self.current.load_full()
    }

    /// Publishes a new version.
    pub fn publish(&self, compiled: Compiled) {
        tracing::info!(time = compiled.ruleset.time, "ruleset published");
        self.current.store(Some(Arc::new(compiled)));
    }

    /// Loads a specs file now (the next version's `time` is kept above the current one's).
    pub fn load_file(&self, path: &Path) -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let min_time = self.get().map_or(0, |c| c.ruleset.time + 1);
        let compiled = Compiled::build(&bytes, min_time)?;
        self.publish(compiled);
        Ok(())
    }

    /// Polls `path` every `every`; a changed file is compiled on the blocking pool and
    /// swapped in, a bad one is logged and the old version keeps serving.
    pub async fn watch(self: Arc<Self>, path: PathBuf, every: Duration) {
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| Ok((m.modified()?, m.len())))
                .ok()
        };
        let mut last = stamp(&path);
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let now = stamp(&path);
            if now.is_none() || now == last {
                continue;
            }
            last = now;
            let (rules, file) = (self.clone(), path.clone());
            match tokio::task::spawn_blocking(move || rules.load_file(&file)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "new specs rejected; keeping the old ruleset")
                }
                Err(error) => tracing::error!(%error, "specs reload panicked"),
            }
        }
    }
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
