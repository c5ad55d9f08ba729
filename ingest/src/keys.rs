//! API keys: their kind comes from the prefix, they are stored only as SHA-256 digests in a
//! DashMap (the raw key is never kept or logged), and a revoked key fails on the next request.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

/// The three Statsig key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `secret-…`: server SDKs and the HTTP evaluation API.
    Server,
    /// `client-…`: client SDKs (initialize, event logging) and the HTTP evaluation API.
    Client,
    /// `console-…`: the console API only.
    Console,
}

impl KeyKind {
    /// The kind a raw key's prefix names.
    pub fn of(raw: &str) -> Option<KeyKind> {
        if raw.starts_with("secret-") {
            Some(KeyKind::Server)
        } else if raw.starts_with("client-") {
            Some(KeyKind::Client)
        } else if raw.starts_with("console-") {
            Some(KeyKind::Console)
        } else {
            None
        }
    }
}

/// What a request wants to do, for the access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `download_config_specs`.
    DownloadConfigSpecs,
    /// `/v1/initialize`.
    Initialize,
    /// `check_gate`, `get_config`, `get_layer`.
    Evaluate,
    /// `log_event`, `rgstr`.
    LogEvent,
    /// Console API reads.
    ConsoleRead,
    /// Console API writes (rules).
    ConsoleWrite,
    /// Creating, changing and revoking keys.
    ManageKeys,
    /// The generic API's `feature-flags/{key}/evaluate`.
    ApiEvaluate,
    /// The generic API's `tracking/track`.
    ApiTrack,
}

/// Scopes that let a console key read (Statsig's `omni_read_only`, the generic `read`) ...
const READ_SCOPES: [&str; 5] = [
    "omni_read_only",
    "omni_read_write",
    "read",
    "write",
    "admin",
];
/// ... write ...
const WRITE_SCOPES: [&str; 3] = ["omni_read_write", "write", "admin"];
/// ... and manage keys.
const KEY_SCOPES: [&str; 2] = ["can_access_keys", "admin"];

/// Every scope a key may hold: Statsig's console scopes and the generic API's three.
pub const KNOWN_SCOPES: [&str; 8] = [
    "omni_read_only",
    "omni_read_write",
    "client_download_config_specs",
    "none_hash_enabled",
    "can_access_keys",
    "read",
    "write",
    "admin",
];

/// A stored key: never the raw secret, only its digest and its grants.
#[derive(Debug)]
pub struct KeyRecord {
    /// A short, stable, non-secret id for logs and events: hex of the first 6 bytes of the
    /// digest of the key's first secret (a rotation keeps it).
    pub id: String,
    /// SHA-256 of the raw key: the lookup key.
    pub digest: [u8; 32],
    /// The key type.
    pub kind: KeyKind,
    /// Scopes: Statsig's (`client_download_config_specs`, `omni_read_write`, ...) and the
    /// generic API's (`read`, `write`, `admin`).
    pub scopes: HashSet<String>,
    /// The target app the key is bound to: evaluation then sees only that app's specs.
    pub target_app: Option<String>,
    /// The environments the key is limited to (empty: all): its DCS carries only the rules
    /// enabled for them.
    pub environments: Vec<String>,
    /// Given by a start-up flag (not by the console API).
    pub seeded: bool,
    revoked: AtomicBool,
    /// Last use, in whole minutes since the epoch: written at most once a minute per key.
    last_used_minute: AtomicU64,
}

impl KeyRecord {
    /// A key record; `id` is derived from the digest.
    pub fn new(
        digest: [u8; 32],
        kind: KeyKind,
        scopes: impl IntoIterator<Item = String>,
        target_app: Option<String>,
        seeded: bool,
    ) -> KeyRecord {
        KeyRecord {
            id: key_id(&digest),
            digest,
            kind,
            scopes: scopes.into_iter().collect(),
            target_app,
            environments: Vec::new(),
            seeded,
            revoked: AtomicBool::new(false),
            last_used_minute: AtomicU64::new(0),
        }
    }

    fn has_any(&self, scopes: &[&str]) -> bool {
        scopes.iter().any(|s| self.scopes.contains(*s))
    }

    /// Whether this key may do `access` (401 vs 403 is decided by the caller).
    pub fn allows(&self, access: Access) -> bool {
        match (self.kind, access) {
            (KeyKind::Console, Access::ConsoleRead | Access::ApiEvaluate) => {
                self.has_any(&READ_SCOPES)
            }
            (KeyKind::Console, Access::ConsoleWrite | Access::ApiTrack) => {
                self.has_any(&WRITE_SCOPES)
            }
            (KeyKind::Console, Access::ManageKeys) => self.has_any(&KEY_SCOPES),
            (KeyKind::Console, _) => false,
            (_, Access::ConsoleRead | Access::ConsoleWrite | Access::ManageKeys) => false,
            (KeyKind::Server, Access::Initialize) => false,
            (KeyKind::Server, _) => true,
            (KeyKind::Client, Access::DownloadConfigSpecs) => {
                self.scopes.contains("client_download_config_specs")
            }
            (KeyKind::Client, _) => true,
        }
    }

    /// When the key was last used (ms since the epoch, minute precision), if ever.
    pub fn last_used_ms(&self) -> Option<u64> {
        match self.last_used_minute.load(Ordering::Relaxed) {
            0 => None,
            minute => Some(minute * 60_000),
        }
    }

    fn touch(&self) {
        let minute = now_minute();
        // One relaxed load per request; a store only when the minute changed.
        if self.last_used_minute.load(Ordering::Relaxed) != minute {
            self.last_used_minute.store(minute, Ordering::Relaxed);
        }
    }
}

fn now_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0)
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No key in the request (401).
    Missing,
    /// Unknown or revoked (401).
    Unknown,
    /// Known, but not allowed to do this (403).
    Forbidden,
}

/// All keys, looked up by digest on every request.
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: DashMap<[u8; 32], Arc<KeyRecord>>,
}

impl KeyStore {
    /// Adds a key given at start-up; its kind must match its prefix.
    pub fn insert(
        &self,
        raw: &str,
        scopes: impl IntoIterator<Item = String>,
        target_app: Option<String>,
    ) -> Result<Arc<KeyRecord>, String> {
        let kind = KeyKind::of(raw)
            .ok_or_else(|| "a key must start with secret-, client- or console-".to_owned())?;
        let record = Arc::new(KeyRecord::new(digest(raw), kind, scopes, target_app, true));
        self.keys.insert(record.digest, record.clone());
        Ok(record)
    }

    /// Adds or replaces a key (the console API's keys); the last-use time carries over.
    pub fn put(&self, record: KeyRecord) {
        if let Some(old) = self.keys.get(&record.digest) {
            record.last_used_minute.store(
                old.last_used_minute.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        self.keys.insert(record.digest, Arc::new(record));
    }

    /// Revokes a key by digest: the next request with it gets 401.
    pub fn revoke_digest(&self, digest: &[u8; 32]) -> bool {
        match self.keys.remove(digest) {
            Some((_, record)) => {
                record.revoked.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Revokes a raw key.
    pub fn revoke(&self, raw: &str) -> bool {
        self.revoke_digest(&digest(raw))
    }

    /// The key with this id, if active.
    pub fn by_id(&self, id: &str) -> Option<Arc<KeyRecord>> {
        self.keys
            .iter()
            .find(|r| r.value().id == id)
            .map(|r| r.value().clone())
    }

    /// The keys given by start-up flags that are still active.
    pub fn seeded(&self) -> Vec<Arc<KeyRecord>> {
        let mut seeds: Vec<_> = self
            .keys
            .iter()
            .filter(|r| r.value().seeded)
            .map(|r| r.value().clone())
            .collect();
        seeds.sort_by(|a, b| a.id.cmp(&b.id));
        seeds
    }

    /// Checks a raw key for an access.
    pub fn authenticate(
        &self,
        raw: Option<&str>,
        access: Access,
    ) -> Result<Arc<KeyRecord>, AuthError> {
        let raw = raw.filter(|k| !k.is_empty()).ok_or(AuthError::Missing)?;
        let record = self
            .keys
            .get(&digest(raw))
            .map(|r| r.value().clone())
            .filter(|r| !r.revoked.load(Ordering::Relaxed))
            .ok_or(AuthError::Unknown)?;
        record.touch();
        if record.allows(access) {
            Ok(record)
        } else {
            Err(AuthError::Forbidden)
        }
    }
}

/// SHA-256 of a raw key.
pub fn digest(raw: &str) -> [u8; 32] {
    Sha256::digest(raw.as_bytes()).into()
}

/// The public id of a key: hex of its digest's first 6 bytes.
pub fn key_id(digest: &[u8; 32]) -> String {
    hex(&digest[..6])
}

/// Lowercase hex of `bytes` (key ids and digests, ID list file ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_grants() {
        let store = KeyStore::default();
        store.insert("secret-a", [], None).unwrap();
        store.insert("client-b", [], None).unwrap();
        store
            .insert(
                "client-c",
                ["client_download_config_specs".to_owned()],
                None,
            )
            .unwrap();
        store.insert("console-d", [], None).unwrap();
        assert!(store.insert("nope", [], None).is_err());

        let auth = |k: &str, a| store.authenticate(Some(k), a).map(|r| r.kind);
        assert_eq!(
            auth("secret-a", Access::DownloadConfigSpecs),
            Ok(KeyKind::Server)
        );
        assert_eq!(
            auth("secret-a", Access::Initialize),
            Err(AuthError::Forbidden)
        );
        assert_eq!(
            auth("client-b", Access::DownloadConfigSpecs),
            Err(AuthError::Forbidden)
        );
        assert_eq!(
            auth("client-c", Access::DownloadConfigSpecs),
            Ok(KeyKind::Client)
        );
        assert_eq!(auth("client-b", Access::Evaluate), Ok(KeyKind::Client));
        assert_eq!(
            auth("console-d", Access::Evaluate),
            Err(AuthError::Forbidden)
        );
        assert_eq!(
            auth("secret-zzz", Access::Evaluate),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            store.authenticate(None, Access::Evaluate).map(|_| ()),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn revocation_is_immediate_and_raw_keys_are_not_stored() {
        let store = KeyStore::default();
        let record = store.insert("secret-a", [], None).unwrap();
        assert!(!format!("{record:?}").contains("secret-a"));
        assert!(store
            .authenticate(Some("secret-a"), Access::Evaluate)
            .is_ok());
        assert!(record.last_used_ms().is_some());
        assert!(store.revoke("secret-a"));
        assert_eq!(
            store
                .authenticate(Some("secret-a"), Access::Evaluate)
                .map(|_| ()),
            Err(AuthError::Unknown)
        );
    }
}
