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
}

/// A stored key: never the raw secret, only its digest-derived id and its grants.
#[derive(Debug)]
pub struct KeyRecord {
    /// A short, stable, non-secret id (hex of the digest's first 6 bytes) for logs and events.
    pub id: String,
    /// The key type.
    pub kind: KeyKind,
    /// Console-style scopes, e.g. `client_download_config_specs`.
    pub scopes: HashSet<String>,
    /// The target app the key is bound to: evaluation then sees only that app's specs.
    pub target_app: Option<String>,
    revoked: AtomicBool,
    /// Last use, in whole minutes since the epoch: written at most once a minute per key.
    last_used_minute: AtomicU64,
}

impl KeyRecord {
    /// Whether this key may do `access` (401 vs 403 is decided by the caller).
    pub fn allows(&self, access: Access) -> bool {
        match (self.kind, access) {
            (KeyKind::Console, _) => false,
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
    /// Adds a key; its kind must match its prefix.
    pub fn insert(
        &self,
        raw: &str,
        scopes: impl IntoIterator<Item = String>,
        target_app: Option<String>,
    ) -> Result<Arc<KeyRecord>, String> {
        let kind = KeyKind::of(raw)
            .ok_or_else(|| "a key must start with secret-, client- or console-".to_owned())?;
        let digest = digest(raw);
        let record = Arc::new(KeyRecord {
            id: digest[..6].iter().map(|b| format!("{b:02x}")).collect(),
            kind,
            scopes: scopes.into_iter().collect(),
            target_app,
            revoked: AtomicBool::new(false),
            last_used_minute: AtomicU64::new(0),
        });
        self.keys.insert(digest, record.clone());
        Ok(record)
    }

    /// Revokes a key: the next request with it gets 401.
    pub fn revoke(&self, raw: &str) -> bool {
        match self.keys.remove(&digest(raw)) {
            Some((_, record)) => {
                record.revoked.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
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

fn digest(raw: &str) -> [u8; 32] {
    Sha256::digest(raw.as_bytes()).into()
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
