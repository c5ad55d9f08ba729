//! Keys over the console API: list, create (the secret shown once), update scopes and
//! targets, rotate the secret, revoke; both the console shape and the generic `api-keys`
//! shape.

use hyper::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    auth, body_object, commit, data, if_match, no_content, with_etag, Answer, ConsoleError,
};
use crate::control::specs::FieldError;
use crate::control::state::Kind;
use crate::control::{self, Control};
use crate::http::{json_reply, AppState, Decoded, Reply};
use crate::keys::{hex, Access, KeyKind, KeyRecord, KNOWN_SCOPES};
use crate::rules::now_ms;

/// A key document as the API shows it: never its digest, and the secret only to a caller
/// that named the key by it (Statsig's `key`, null otherwise). The target apps appear under
/// the names Statsig reads them by (`targetAppID`, `secondaryTargetAppIDs`) and answers
/// them by (`primaryTargetApp`, `secondaryTargetApps`).
pub(super) fn key_view(doc: &Value, record: Option<&KeyRecord>, generic: bool) -> Value {
    let last_used = record.and_then(KeyRecord::last_used_ms);
    let mut view = json!({
        "id": doc["id"], "prefix": doc["prefix"], "type": doc["type"],
        "description": doc["description"], "scopes": doc["scopes"],
        "environments": doc["environments"], "targetAppID": doc["targetAppID"],
        "secondaryTargetAppIDs": doc["secondaryTargetAppIDs"],
        "primaryTargetApp": doc["targetAppID"], "secondaryTargetApps": doc["secondaryTargetAppIDs"],
        "status": doc["status"], "source": doc["source"], "created_at": doc["createdTime"],
        "last_used_at": last_used,
    });
    if generic {
        view["name"] = doc["description"].clone();
    } else {
        view["key"] = Value::Null;
    }
    view
}

/// The document of a key given by a start-up flag, for listing and for revoking it.
fn seed_doc(record: &KeyRecord) -> Value {
    let kind = match record.kind {
        KeyKind::Server => "SERVER",
        KeyKind::Client => "CLIENT",
        KeyKind::Console => "CONSOLE",
    };
    let mut scopes: Vec<&String> = record.scopes.iter().collect();
    scopes.sort();
    json!({"id": record.id, "digest": hex(&record.digest), "prefix": null, "type": kind,
           "description": "given by a start-up flag", "scopes": scopes, "environments": [],
           "targetAppID": record.target_app, "secondaryTargetAppIDs": [], "status": "active",
           "source": "flag", "createdTime": null})
}

fn all_keys(
    state: &AppState,
    control: &Control,
) -> Vec<(Value, Option<std::sync::Arc<KeyRecord>>)> {
    let st = control.lock_state();
    let mut out: Vec<_> = st
        .live(Kind::Key)
        .map(|(id, _, doc)| (doc.clone(), state.keys.by_id(id)))
        .collect();
    for seed in state.keys.seeded() {
        if st.get(Kind::Key, &seed.id).is_none() {
            out.push((seed_doc(&seed), Some(seed)));
        }
    }
    out
}

pub(super) fn list_keys(
    state: &AppState,
    control: &Control,
    req: &Decoded,
    generic: bool,
) -> Result<Vec<Value>, ConsoleError> {
    auth(state, req, Access::ManageKeys)?;
    let wanted = |doc: &Value| {
        let filter = |param: &str, field: &str| {
            req.param(param).is_none_or(|want| {
                doc[field] == want
                    || doc[field]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v == want))
            })
        };
        filter("primaryTargetApp", "targetAppID") && filter("environment", "environments")
    };
    Ok(all_keys(state, control)
        .iter()
        .filter(|(doc, _)| wanted(doc))
        .map(|(doc, record)| key_view(doc, record.as_deref(), generic))
        .collect())
}

/// A key found by the `{id}` of a request path.
struct FoundKey {
    /// The key's id (what the path named, or the key its secret belongs to).
    id: String,
    doc: Value,
    record: Option<std::sync::Arc<KeyRecord>>,
    version: u64,
    /// The secret, when the path named the key by it as Statsig's API does
    /// (`/console/v1/keys/secret-…`): the caller has it, so answers may carry it back.
    secret: Option<String>,
}

impl FoundKey {
    /// The key's view, with the secret when the caller named the key by it.
    fn view(&self, generic: bool) -> Value {
        let mut view = key_view(&self.doc, self.record.as_deref(), generic);
        if let (Some(secret), false) = (&self.secret, generic) {
            view["key"] = secret.as_str().into();
        }
        view
    }

    /// A deactivated key is read, never changed: 409.
    fn ensure_active(&self) -> Result<(), ConsoleError> {
        if self.doc["status"] == "active" {
            Ok(())
        } else {
            Err(ConsoleError::new(
                StatusCode::CONFLICT,
                "the key is deactivated",
            ))
        }
    }

    /// Stores the changed document as `action` by `actor` (`If-Match` honoured) and takes
    /// its new version.
    async fn store(
        &mut self,
        control: &std::sync::Arc<Control>,
        req: &Decoded,
        actor: &str,
        action: &str,
    ) -> Result<(), ConsoleError> {
        let base = if_match(req)?.unwrap_or(self.version);
        let doc = Some(self.doc.clone());
        self.version = commit(
            control,
            control::change(Kind::Key, &self.id, base, doc, actor, action),
        )
        .await?;
        Ok(())
    }
}

/// The key a path names: by its id, or by its current secret (Statsig addresses keys by
/// the secret; a secret rotated away names nothing).
fn find_key(state: &AppState, control: &Control, named: &str) -> Result<FoundKey, ConsoleError> {
    let secret = KeyKind::of(named).map(|_| named.to_owned());
    let digest = secret.as_deref().map(|s| hex(&crate::keys::digest(s)));
    let st = control.lock_state();
    let stored = st.live(Kind::Key).find(|(id, _, doc)| match &digest {
        Some(digest) => doc["digest"] == digest.as_str(),
        None => *id == named,
    });
    if let Some((id, entry, doc)) = stored {
        return Ok(FoundKey {
            id: id.to_owned(),
            doc: doc.clone(),
            record: state.keys.by_id(id),
            version: entry.version,
            secret,
        });
    }
    let seed = state
        .keys
        .seeded()
        .into_iter()
        .find(|r| match &digest {
            Some(digest) => hex(&r.digest) == *digest,
            None => r.id == named,
        })
        .filter(|r| st.get(Kind::Key, &r.id).is_none())
        .ok_or_else(|| ConsoleError::not_found("Key"))?;
    Ok(FoundKey {
        id: seed.id.clone(),
        doc: seed_doc(&seed),
        record: Some(seed),
        version: 0,
        secret,
    })
}

pub(super) fn get_key(
    state: &AppState,
    control: &Control,
    req: &Decoded,
    id: &str,
    generic: bool,
) -> Answer {
    auth(state, req, Access::ManageKeys)?;
    let found = find_key(state, control, id)?;
    Ok(key_answer(
        generic,
        StatusCode::OK,
        "Key read successfully.",
        found.view(generic),
        found.version,
    ))
}

/// One key in the caller's shape (the generic API's bare object, or the console's
/// `{message, data}`), with its version as the `ETag`.
fn key_answer(
    generic: bool,
    status: StatusCode,
    message: &str,
    view: Value,
    version: u64,
) -> Reply {
    let reply = if generic {
        json_reply(status, &view)
    } else {
        data(status, message, view)
    };
    with_etag(reply, version)
}

/// The grants a create or update body sets (fields absent keep `base`'s).
fn key_grants(
    body: &Map<String, Value>,
    base: &mut Value,
    generic: bool,
) -> Result<(), ConsoleError> {
    let invalid = |field: &str, error: &str| {
        ConsoleError::invalid(vec![FieldError {
            property: field.into(),
            error: error.into(),
        }])
    };
    let strings = |field: &str| -> Result<Option<Vec<String>>, ConsoleError> {
        match body.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| invalid(field, "must be a list of strings")),
            Some(_) => Err(invalid(field, "must be a list of strings")),
        }
    };
    let description_field = if generic { "name" } else { "description" };
    match body.get(description_field) {
        None => {}
        Some(Value::String(s)) => base["description"] = s.clone().into(),
        Some(_) => return Err(invalid(description_field, "must be a string")),
    }
    if let Some(scopes) = strings("scopes")? {
        let allowed: &[&str] = if generic {
            &["read", "write", "admin"]
        } else {
            &KNOWN_SCOPES
        };
        if let Some(bad) = scopes.iter().find(|s| !allowed.contains(&s.as_str())) {
            return Err(invalid(
                "scopes",
                &format!("unknown scope {bad:?}; known: {}", allowed.join(", ")),
            ));
        }
        base["scopes"] = json!(scopes);
    }
    for field in ["environments", "secondaryTargetAppIDs"] {
        if let Some(list) = strings(field)? {
            base[field] = json!(list);
        }
    }
    match body.get("targetAppID") {
        None => {}
        Some(v @ (Value::String(_) | Value::Null)) => base["targetAppID"] = v.clone(),
        Some(_) => return Err(invalid("targetAppID", "must be a string or null")),
    }
    for field in body.keys() {
        let known = [
            description_field,
            "scopes",
            "environments",
            "secondaryTargetAppIDs",
            "targetAppID",
            "type",
        ];
        if !known.contains(&field.as_str()) {
            return Err(invalid(field, "unknown field"));
        }
    }
    Ok(())
}

/// A new random key: the prefix of its type, then 40 base-62 characters (238 bits from the
/// operating system's generator, through UUID v4).
fn new_secret(kind: KeyKind) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let prefix = match kind {
        KeyKind::Server => "secret-",
        KeyKind::Client => "client-",
        KeyKind::Console => "console-",
    };
    let mut random = u128::from_le_bytes(*uuid::Uuid::new_v4().as_bytes());
    let mut more = u128::from_le_bytes(*uuid::Uuid::new_v4().as_bytes());
    let mut out = String::from(prefix);
    for i in 0..40 {
        let source = if i < 20 { &mut random } else { &mut more };
        out.push(ALPHABET[(*source % 62) as usize] as char);
        *source /= 62;
    }
    out
}

/// The start of a secret that listings show to tell keys apart (the type and 4 characters).
fn visible_prefix(raw: &str) -> &str {
    &raw[..raw.len() - 36]
}

pub(super) async fn create_key(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    generic: bool,
) -> Answer {
    let actor = auth(state, req, Access::ManageKeys)?;
    let body = body_object(req)?;
    let kind = if generic {
        KeyKind::Console
    } else {
        match body
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("SERVER") => KeyKind::Server,
            Some("CLIENT") => KeyKind::Client,
            Some("CONSOLE") => KeyKind::Console,
            _ => {
                return Err(ConsoleError::invalid(vec![FieldError {
                    property: "type".into(),
                    error: "required: SERVER, CLIENT or CONSOLE".into(),
                }]))
            }
        }
    };
    let raw = new_secret(kind);
    let digest = crate::keys::digest(&raw);
    let id = crate::keys::key_id(&digest);
    let default_scopes: Vec<&str> = match (generic, kind) {
        (true, _) => vec!["read"],
        (false, KeyKind::Console) => vec!["omni_read_only"],
        (false, _) => vec![],
    };
    let type_name = match kind {
        KeyKind::Server => "SERVER",
        KeyKind::Client => "CLIENT",
        KeyKind::Console => "CONSOLE",
    };
    let mut doc = json!({"id": id, "digest": hex(&digest), "prefix": visible_prefix(&raw),
        "type": type_name, "description": "", "scopes": default_scopes, "environments": [],
        "targetAppID": null, "secondaryTargetAppIDs": [], "status": "active", "source": "console",
        "createdTime": now_ms(), "createdBy": actor.id});
    key_grants(&body, &mut doc, generic)?;
    let version = commit(
        control,
        control::change(Kind::Key, &id, 0, Some(doc.clone()), &actor.id, "create"),
    )
    .await?;
    let mut view = key_view(&doc, None, generic);
    view["key"] = raw.into();
    let created = "Key created successfully.";
    Ok(key_answer(
        generic,
        StatusCode::CREATED,
        created,
        view,
        version,
    ))
}

pub(super) async fn update_key(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    id: &str,
) -> Answer {
    let actor = auth(state, req, Access::ManageKeys)?;
    let body = body_object(req)?;
    let mut found = find_key(state, control, id)?;
    if body.contains_key("type") {
        return Err(ConsoleError::invalid(vec![FieldError {
            property: "type".into(),
            error: "a key's type cannot change; create a new key".into(),
        }]));
    }
    found.ensure_active()?;
    key_grants(&body, &mut found.doc, false)?;
    found.store(control, req, &actor.id, "update").await?;
    let updated = "Key updated successfully.";
    Ok(key_answer(
        false,
        StatusCode::OK,
        updated,
        found.view(false),
        found.version,
    ))
}

/// Revokes a key (`DELETE …/keys/{id}`, `…/deactivate`, the generic API's DELETE): the next
/// request with it gets 401 on every front door; revoking a revoked key changes nothing.
/// Answers as Statsig does, 200 with the key and `message`, or the generic API's 204 when
/// `message` is None (Statsig's own clients read a JSON body from every answer).
pub(super) async fn revoke_key(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    id: &str,
    message: Option<&str>,
) -> Answer {
    let actor = auth(state, req, Access::ManageKeys)?;
    let mut found = find_key(state, control, id)?;
    if found.doc["status"] == "active" {
        found.doc["status"] = "deactivated".into();
        found.store(control, req, &actor.id, "revoke").await?;
    }
    Ok(match message {
        None => no_content(),
        Some(message) => key_answer(
            false,
            StatusCode::OK,
            message,
            found.view(false),
            found.version,
        ),
    })
}

/// Replaces a key's secret (Statsig's `PATCH /console/v1/keys/{id}/rotate`): the same id and
/// grants, a new secret shown once. The old secret is kept as a retired digest, which every
/// front door revokes as it applies the change: 401 from its next request, as a revocation.
pub(super) async fn rotate_key(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    id: &str,
) -> Answer {
    let actor = auth(state, req, Access::ManageKeys)?;
    let mut found = find_key(state, control, id)?;
    found.ensure_active()?;
    let doc = &mut found.doc;
    let (record, _) = control::key_record(doc)
        .ok_or_else(|| ConsoleError::new(StatusCode::INTERNAL_SERVER_ERROR, "unreadable key"))?;
    let raw = new_secret(record.kind);
    let mut retired = match doc["retiredDigests"].take() {
        Value::Array(digests) => digests,
        _ => Vec::new(),
    };
    retired.push(doc["digest"].take());
    doc["retiredDigests"] = retired.into();
    doc["digest"] = hex(&crate::keys::digest(&raw)).into();
    doc["prefix"] = visible_prefix(&raw).into();
    // The new secret is the console's, whatever gave the first one.
    doc["source"] = "console".into();
    found.store(control, req, &actor.id, "rotate").await?;
    let mut view = key_view(&found.doc, None, false);
    view["key"] = raw.into();
    let rotated = "Key rotated successfully.";
    Ok(key_answer(
        false,
        StatusCode::OK,
        rotated,
        view,
        found.version,
    ))
}
