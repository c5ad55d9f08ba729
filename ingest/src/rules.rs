//! The live ruleset: compiled off the request path, swapped in atomically, served from one
//! `ArcSwap` load per request. The specs file is polled; a bad new version is logged and the
//! old ruleset keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use evaluator::Ruleset;
use serde_json::{Map, Value};

use crate::id_lists::IdListSet;
use crate::scope::Scope;

/// One ruleset version with its `download_config_specs` bodies serialized once.
#[derive(Debug)]
pub struct Compiled {
    /// The evaluator's compiled form.
    pub ruleset: Ruleset,
    /// The bodies for keys without a scope.
    pub bodies: SpecsBodies,
    /// When this version was swapped in (ms since the epoch).
    pub loaded_at_ms: u64,
    /// The ID lists this version evaluates with and serves (`--id-lists`).
    pub id_lists: Arc<IdListSet>,
    /// Bodies for scoped keys (target app, environments), built on first use.
    scoped: dashmap::DashMap<Scope, Arc<SpecsBodies>>,
}

/// The v1 and v2 `download_config_specs` bodies of one ruleset.
#[derive(Debug)]
pub struct SpecsBodies {
    /// v1 shape (legacy server SDKs).
    pub v1: SpecsBody,
    /// v2 shape (core server SDKs).
    pub v2: SpecsBody,
}

impl SpecsBodies {
    fn of(ruleset: &Ruleset) -> SpecsBodies {
        SpecsBodies {
            v1: SpecsBody::new(&ruleset.to_v1()),
            v2: SpecsBody::new(&ruleset.to_v2()),
        }
    }
}

/// One serialized body and its gzip form. Every server SDK asks for gzip, and a 100 kB
/// body shrinks about tenfold; compressing per request would cost more than the answer.
#[derive(Debug)]
pub struct SpecsBody {
    /// The JSON.
    pub json: Bytes,
    /// The JSON, gzipped.
    pub gzip: Bytes,
}

impl SpecsBody {
    fn new(payload: &Value) -> SpecsBody {
        use std::io::Write;
        let json = serde_json::to_vec(payload).unwrap_or_default();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let gzip = gz.write_all(&json).and_then(|()| gz.finish());
        SpecsBody {
            // Writing to a Vec cannot fail.
            gzip: Bytes::from(gzip.unwrap_or_default()),
            json: Bytes::from(json),
        }
    }
}

impl Compiled {
    /// Compiles a payload; `min_time` keeps versions monotonic (a reloaded file whose `time`
    /// did not move is served with a newer one, so SDKs polling with `sinceTime` see it).
    pub fn build(
        bytes: &[u8],
        min_time: i64,
        id_lists: Arc<IdListSet>,
    ) -> Result<Compiled, String> {
        let mut ruleset = Ruleset::from_slice(bytes).map_err(|e| e.to_string())?;
        for warning in ruleset.warnings() {
            tracing::warn!(%warning, "spec skipped");
        }
        ruleset.time = ruleset.time.max(min_time);
        ruleset.set_id_lists(id_lists.lists.clone());
        Ok(Compiled {
            bodies: SpecsBodies::of(&ruleset),
            ruleset,
            loaded_at_ms: now_ms(),
            id_lists,
            scoped: Default::default(),
        })
    }

    /// The DCS bodies a scoped key gets, built once per version and scope.
    pub fn scoped(&self, scope: &Scope) -> Result<Arc<SpecsBodies>, String> {
        if let Some(bodies) = self.scoped.get(scope) {
            return Ok(bodies.clone());
        }
        let payload = scope.filter(self.ruleset.to_v1());
        let mut ruleset =
            Ruleset::from_slice(&serde_json::to_vec(&payload).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        ruleset.time = self.ruleset.time;
        let bodies = Arc::new(SpecsBodies::of(&ruleset));
        self.scoped.insert(scope.clone(), bodies.clone());
        Ok(bodies)
    }
}

/// Specs managed through the console API, in the v1 `download_config_specs` shape; they
/// replace same-named specs of the specs file.
#[derive(Debug, Default, Clone)]
pub struct Overlay {
    /// Gates and segments.
    pub feature_gates: Vec<Value>,
    /// Dynamic configs and experiments.
    pub dynamic_configs: Vec<Value>,
    /// Layers.
    pub layer_configs: Vec<Value>,
    /// Layer name → its experiments.
    pub layers: Map<String, Value>,
    /// The console state's clock: the ruleset `time` is at least this.
    pub time: u64,
}

impl Overlay {
    /// The specs file's payload (v1 shape) with the overlay's specs in place.
    fn merge_into(&self, mut base: Value) -> Value {
        // (`time` comes from the compile's minimum.)
        let Some(payload) = base.as_object_mut() else {
            return base;
        };
        for (list, specs) in [
            ("feature_gates", &self.feature_gates),
            ("dynamic_configs", &self.dynamic_configs),
            ("layer_configs", &self.layer_configs),
        ] {
            let entry = payload
                .entry(list)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(existing) = entry {
                let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_owned);
                let replaced: std::collections::HashSet<String> =
                    specs.iter().filter_map(name).collect();
                existing.retain(|s| name(s).is_none_or(|n| !replaced.contains(&n)));
                existing.extend(specs.iter().cloned());
            }
        }
        let layers = payload
            .entry("layers")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(layers) = layers {
            layers.extend(self.layers.clone());
        }
        base
    }
}

/// The specs file as read, and in the v1 shape the overlay merges into.
#[derive(Debug)]
struct SpecsFile {
    bytes: Vec<u8>,
    v1: Value,
}

/// Where the ruleset comes from: the specs file, the console's overlay and the ID lists.
#[derive(Debug, Default)]
struct Sources {
    file: Option<SpecsFile>,
    overlay: Overlay,
    id_lists: Arc<IdListSet>,
}

/// The current ruleset, replaced whole.
#[derive(Debug, Default)]
pub struct LiveRules {
    current: ArcSwapOption<Compiled>,
    sources: Mutex<Sources>,
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

    /// Loads a specs file now.
    pub fn load_file(&self, path: &Path) -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v1 = Ruleset::from_slice(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .to_v1();
        let file = SpecsFile { bytes, v1 };
        let mut sources = self.lock_sources();
        let min_time = self.next_time(&sources.overlay);
        let compiled = compile(Some(&file), &sources.overlay, &sources.id_lists, min_time)?;
        sources.file = Some(file);
        self.publish(compiled);
        Ok(())
    }

    /// Loads the ID lists in `dir` now (published with the next ruleset when none has loaded
    /// yet). The specs did not change, so neither does `time`: SDKs sync lists on their own
    /// schedule and need not download the specs again.
    pub fn load_id_lists(&self, dir: &Path) -> Result<(), String> {
        // Reading and hashing millions of ids takes seconds: not under the lock that console
        // writes take. (Only the watcher loads lists, so no other load races this one.)
        let previous = self.lock_sources().id_lists.clone();
        let lists = Arc::new(IdListSet::load(dir, &previous)?);
        let mut sources = self.lock_sources();
        let published = match self.get() {
            Some(current) => Some(compile(
                sources.file.as_ref(),
                &sources.overlay,
                &lists,
                current.ruleset.time,
            )?),
            None => None,
        };
        tracing::info!(
            lists = lists.files.len(),
            members = lists.members(),
            "ID lists loaded"
        );
        sources.id_lists = lists;
        if let Some(compiled) = published {
            self.publish(compiled);
        }
        Ok(())
    }

    /// Compiles what the ruleset would be with `overlay` in place of the current one,
    /// without publishing it: the console validates a write with it.
    pub fn try_overlay(&self, overlay: &Overlay) -> Result<Compiled, String> {
        let sources = self.lock_sources();
        let min_time = self.next_time(overlay);
        compile(sources.file.as_ref(), overlay, &sources.id_lists, min_time)
    }

    /// Replaces the console's overlay and publishes the result.
    pub fn set_overlay(&self, overlay: Overlay) -> Result<(), String> {
        let mut sources = self.lock_sources();
        let min_time = self.next_time(&overlay);
        let compiled = compile(sources.file.as_ref(), &overlay, &sources.id_lists, min_time)?;
        sources.overlay = overlay;
        self.publish(compiled);
        Ok(())
    }

    fn lock_sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The least `time` of a version with changed specs: above the current one's, so SDKs
    /// polling with `sinceTime` see every change (never 0: SDKs send `sinceTime=0` before
    /// their first download).
    fn next_time(&self, overlay: &Overlay) -> i64 {
        self.get()
            .map_or(1, |c| c.ruleset.time + 1)
            .max(overlay.time as i64)
    }

    /// Polls the specs file every `every`; a changed file is compiled on the blocking pool
    /// and swapped in, a bad one is logged and the old version keeps serving.
    pub async fn watch(self: Arc<Self>, path: PathBuf, every: Duration) {
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| Ok((m.modified()?, m.len())))
                .ok()
        };
        poll(path, every, stamp, move |p| self.load_file(p), "specs").await
    }

    /// Polls the ID lists directory every `every`, as [`LiveRules::watch`] the specs file.
    pub async fn watch_id_lists(self: Arc<Self>, dir: PathBuf, every: Duration) {
        let load = move |d: &Path| self.load_id_lists(d);
        poll(dir, every, crate::id_lists::dir_stamp, load, "ID lists").await
    }
}

/// Calls `load` on the blocking pool whenever `stamp(path)` changes; errors are logged (the
/// previous version keeps serving).
async fn poll<S: PartialEq>(
    path: PathBuf,
    every: Duration,
    stamp: impl Fn(&Path) -> Option<S>,
    load: impl Fn(&Path) -> Result<(), String> + Send + Sync + 'static,
    what: &'static str,
) {
    let load = Arc::new(load);
    let mut last = stamp(&path);
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let now = stamp(&path);
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        let (load, path) = (load.clone(), path.clone());
        match tokio::task::spawn_blocking(move || load(&path)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "new {what} rejected; keeping the old ruleset")
            }
            Err(error) => tracing::error!(%error, "{what} reload panicked"),
        }
    }
}

/// Compiles the ruleset the sources make, its `time` at least `min_time`.
fn compile(
    file: Option<&SpecsFile>,
    overlay: &Overlay,
    lists: &Arc<IdListSet>,
    min_time: i64,
) -> Result<Compiled, String> {
    let no_overlay = overlay.feature_gates.is_empty()
        && overlay.dynamic_configs.is_empty()
        && overlay.layer_configs.is_empty();
    match file {
        // The file as it is: exactly the specs (and fields) it holds.
        Some(file) if no_overlay => Compiled::build(&file.bytes, min_time, lists.clone()),
        _ => {
            let base = file.map(|f| f.v1.clone()).unwrap_or_else(|| {
                serde_json::json!({"feature_gates": [], "dynamic_configs": [],
                    "layer_configs": [], "layers": {}, "has_updates": true, "time": 0})
            });
            let payload =
                serde_json::to_vec(&overlay.merge_into(base)).map_err(|e| e.to_string())?;
            Compiled::build(&payload, min_time, lists.clone())
        }
    }
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    ms_since_epoch(SystemTime::now())
}

/// `time` in ms since the epoch (0 before it).
pub fn ms_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
