//! The console API over HTTP, in two shapes over one state ([`crate::control`]):
//!
//! - Statsig's console API under `/console/v1`: keys, gates, dynamic configs, experiments,
//!   layers and segments, with Statsig's resource and field names and `{message, data}`
//!   answers;
//! - the generic experimentation-platform API under `/api/v1`: `api-keys` (scopes `read`,
//!   `write`, `admin`), `feature-flags/{key}/evaluate` and `tracking/track`.
//!
//! Every write is checked (fields named in 400s), compiled into a candidate ruleset before
//! it is written, based on the entity version the caller read (`If-Match`, 409 when
//! stale), and acknowledged once durable and served here.

use hyper::header::{HeaderValue, ETAG, IF_MATCH};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::api;
use crate::control::specs::{self, FieldError};
use crate::control::state::{Kind, State};
use crate::control::{self, Control, WriteError};
use crate::http::{json_reply, AppState, Decoded, Reply};
use crate::keys::{self, Access, KeyKind, KeyRecord, KNOWN_SCOPES};
use crate::rules::now_ms;

/// A console error: Statsig's `{status, message, errors: [{property, errorMessage}]}`,
/// with the `error` field every Gatehouse error has.
#[derive(Debug)]
pub struct ConsoleError {
    status: StatusCode,
    message: String,
    errors: Vec<FieldError>,
}

impl ConsoleError {
    fn new(status: StatusCode, message: impl Into<String>) -> ConsoleError {
        ConsoleError {
            status,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    fn invalid(errors: Vec<FieldError>) -> ConsoleError {
        let message = errors
            .iter()
            .map(|e| {
                if e.property.is_empty() {
                    e.error.clone()
                } else {
                    format!("{}: {}", e.property, e.error)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        ConsoleError {
            status: StatusCode::BAD_REQUEST,
            message,
            errors,
        }
    }

    fn not_found(what: &str) -> ConsoleError {
        ConsoleError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    fn reply(&self) -> Reply {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"property": e.property, "errorMessage": e.error}))
            .collect();
        let mut body = json!({"status": self.status.as_u16(), "message": self.message,
                              "error": self.message, "success": false});
        if !errors.is_empty() {
            body["errors"] = errors.into();
        }
        json_reply(self.status, &body)
    }
}

impl From<crate::http::ApiError> for ConsoleError {
    fn from(e: crate::http::ApiError) -> Self {
        ConsoleError::new(e.status, e.message)
    }
}

type Answer = Result<Reply, ConsoleError>;

fn data(status: StatusCode, message: &str, data: Value) -> Reply {
    json_reply(status, &json!({"message": message, "data": data}))
}

fn no_content() -> Reply {
    let mut reply = json_reply(StatusCode::NO_CONTENT, &Value::Null);
    *reply.body_mut() = Default::default();
    reply.headers_mut().remove(hyper::header::CONTENT_TYPE);
    reply
}

/// The resource kinds of `/console/v1/{resource}`, with their names in messages.
fn resource(segment: &str) -> Option<(Kind, &'static str)> {
    Some(match segment {
        "gates" => (Kind::Gate, "Gate"),
        "dynamic_configs" => (Kind::DynamicConfig, "Dynamic config"),
        "experiments" => (Kind::Experiment, "Experiment"),
        "layers" => (Kind::Layer, "Layer"),
        "segments" => (Kind::Segment, "Segment"),
        _ => return None,
    })
}

/// `/console/v1/...`: `path` is what follows `v1`.
pub async fn console(state: &AppState, method: Method, path: &[&str], req: Decoded) -> Reply {
    let answer = async {
        let control = control_of(state)?;
        match path {
            ["keys"] => match method {
                Method::GET => list_keys(state, control, &req, false),
                Method::POST => create_key(state, control, &req, false).await,
                _ => Err(method_not_allowed()),
            },
            ["keys", id] => match method {
                Method::GET => get_key(state, control, &req, id, false),
                Method::PATCH => update_key(state, control, &req, id).await,
                Method::DELETE => revoke_key(state, control, &req, id).await,
                _ => Err(method_not_allowed()),
            },
            ["keys", id, "deactivate"] if matches!(method, Method::PUT | Method::POST) => {
                revoke_key(state, control, &req, id).await?;
                Ok(data(
                    StatusCode::OK,
                    "Key deactivated successfully.",
                    json!({"id": id}),
                ))
            }
            ["audit_logs"] if method == Method::GET => audit_log(state, control, &req, None),
            [res, rest @ ..] => {
                let (kind, label) = resource(res)
                    .ok_or_else(|| ConsoleError::new(StatusCode::NOT_FOUND, "no such endpoint"))?;
                entity_route(state, control, &method, &req, kind, label, rest).await
            }
            _ => Err(ConsoleError::new(StatusCode::NOT_FOUND, "no such endpoint")),
        }
    };
    answer.await.unwrap_or_else(|e| e.reply())
}

/// `/api/v1/...`: the generic shape; `path` is what follows `v1`.
pub async fn generic(state: &AppState, method: Method, path: &[&str], req: Decoded) -> Reply {
    let answer = async {
        match path {
            ["api-keys"] => {
                let control = control_of(state)?;
                match method {
                    Method::GET => list_keys(state, control, &req, true),
                    Method::POST => create_key(state, control, &req, true).await,
                    _ => Err(method_not_allowed()),
                }
            }
            ["api-keys", id] => {
                let control = control_of(state)?;
                match method {
                    Method::GET => get_key(state, control, &req, id, true),
                    Method::DELETE => revoke_key(state, control, &req, id).await,
                    _ => Err(method_not_allowed()),
                }
            }
            ["feature-flags", flag, "evaluate"] if method == Method::POST => {
                evaluate_flag(state, &req, flag)
            }
            ["tracking", "track"] if method == Method::POST => Ok(track(state, &req).await?),
            _ => Err(ConsoleError::new(StatusCode::NOT_FOUND, "no such endpoint")),
        }
    };
    answer.await.unwrap_or_else(|e| e.reply())
}

fn method_not_allowed() -> ConsoleError {
    ConsoleError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

fn control_of(state: &AppState) -> Result<&std::sync::Arc<Control>, ConsoleError> {
    state.control.as_ref().ok_or_else(|| {
        ConsoleError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the console API needs a state store: start with --state-dir or --state-topic",
        )
    })
}

fn auth(
    state: &AppState,
    req: &Decoded,
    access: Access,
) -> Result<std::sync::Arc<KeyRecord>, ConsoleError> {
    Ok(api::authenticate(state, req, None, access)?)
}

fn body_object(req: &Decoded) -> Result<Map<String, Value>, ConsoleError> {
    match req.json()? {
        Value::Object(map) => Ok(map),
        _ => Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        )),
    }
}

/// The `If-Match` version, if the caller sent one (`"7"`, `W/"7"` or `7`).
fn if_match(req: &Decoded) -> Result<Option<u64>, ConsoleError> {
    let Some(value) = req.headers.get(IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                "If-Match: expected a version such as \"3\"",
            )
        })
}

fn conflict(current: u64) -> ConsoleError {
    ConsoleError::new(
        StatusCode::CONFLICT,
        format!("changed by someone else (now at version {current}); read it again and retry"),
    )
}

/// Writes one change, mapping the store's refusals to 409 / 503.
async fn commit(
    control: &std::sync::Arc<Control>,
    change: control::state::Change,
) -> Result<u64, ConsoleError> {
    control.write(change).await.map_err(|e| match e {
        WriteError::Conflict { current } => conflict(current),
        WriteError::Unavailable(why) => ConsoleError::new(StatusCode::SERVICE_UNAVAILABLE, why),
    })
}

fn with_etag(mut reply: Reply, version: u64) -> Reply {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        reply.headers_mut().insert(ETAG, v);
    }
    reply
}

// ---------------------------------------------------------------------------------- keys

/// A key document as the API shows it (never the secret, nor its digest).
fn key_view(doc: &Value, record: Option<&KeyRecord>, generic: bool) -> Value {
    let last_used = record.and_then(KeyRecord::last_used_ms);
    let mut view = json!({
        "id": doc["id"], "prefix": doc["prefix"], "type": doc["type"],
        "description": doc["description"], "scopes": doc["scopes"],
        "environments": doc["environments"], "targetAppID": doc["targetAppID"],
        "secondaryTargetAppIDs": doc["secondaryTargetAppIDs"], "status": doc["status"],
        "source": doc["source"], "created_at": doc["createdTime"], "last_used_at": last_used,
    });
    if generic {
        view["name"] = doc["description"].clone();
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

fn list_keys(state: &AppState, control: &Control, req: &Decoded, generic: bool) -> Answer {
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
    let keys: Vec<Value> = all_keys(state, control)
        .iter()
        .filter(|(doc, _)| wanted(doc))
        .map(|(doc, record)| key_view(doc, record.as_deref(), generic))
        .collect();
    Ok(if generic {
        json_reply(StatusCode::OK, &json!({"api_keys": keys}))
    } else {
        data(StatusCode::OK, "Keys listed successfully.", keys.into())
    })
}

fn find_key(
    state: &AppState,
    control: &Control,
    id: &str,
) -> Result<(Value, Option<std::sync::Arc<KeyRecord>>, u64), ConsoleError> {
    if let Some(entry) = control.lock_state().get(Kind::Key, id) {
        if let Some(doc) = &entry.doc {
            return Ok((doc.clone(), state.keys.by_id(id), entry.version));
        }
    }
    let seed = state
        .keys
        .seeded()
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ConsoleError::not_found("Key"))?;
    Ok((seed_doc(&seed), Some(seed), 0))
}

fn get_key(state: &AppState, control: &Control, req: &Decoded, id: &str, generic: bool) -> Answer {
    auth(state, req, Access::ManageKeys)?;
    let (doc, record, version) = find_key(state, control, id)?;
    let view = key_view(&doc, record.as_deref(), generic);
    Ok(with_etag(
        if generic {
            json_reply(StatusCode::OK, &view)
        } else {
            data(StatusCode::OK, "Key read successfully.", view)
        },
        version,
    ))
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

async fn create_key(
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
    let digest = keys::digest(&raw);
    let id = keys::key_id(&digest);
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
    let mut doc = json!({"id": id, "digest": hex(&digest), "prefix": &raw[..raw.len() - 36],
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
    Ok(with_etag(
        if generic {
            json_reply(StatusCode::CREATED, &view)
        } else {
            data(StatusCode::CREATED, "Key created successfully.", view)
        },
        version,
    ))
}

async fn update_key(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    id: &str,
) -> Answer {
    let actor = auth(state, req, Access::ManageKeys)?;
    let body = body_object(req)?;
    let (mut doc, record, version) = find_key(state, control, id)?;
    if body.contains_key("type") {
        return Err(ConsoleError::invalid(vec![FieldError {
            property: "type".into(),
            error: "a key's type cannot change; create a new key".into(),
        }]));
    }
    if doc["status"] != "active" {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            "the key is deactivated",
        ));
    }
    let base = if_match(req)?.unwrap_or(version);
    key_grants(&body, &mut doc, false)?;
    let version = commit(
        control,
        control::change(Kind::Key, id, base, Some(doc.clone()), &actor.id, "update"),
    )
    .await?;
    Ok(with_etag(
        data(
            StatusCode::OK,
            "Key updated successfully.",
            key_view(&doc, record.as_deref(), false),
        ),
        version,
    ))
}

async fn revoke_key(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    id: &str,
) -> Answer {
    let actor = auth(state, req, Access::ManageKeys)?;
    let (mut doc, _, version) = find_key(state, control, id)?;
    if doc["status"] != "active" {
        return Ok(no_content());
    }
    doc["status"] = "deactivated".into();
    let base = if_match(req)?.unwrap_or(version);
    commit(
        control,
        control::change(Kind::Key, id, base, Some(doc), &actor.id, "revoke"),
    )
    .await?;
    Ok(no_content())
}

// ------------------------------------------------------------------------------ entities

fn entity_view(entry: &control::state::Entry, doc: &Value) -> Value {
    let mut view = specs::public_view(doc);
    view["version"] = entry.version.into();
    view["lastModifiedTime"] = entry.updated_at_ms.into();
    view["lastModifierID"] = entry.updated_by.clone().into();
    view
}

fn read_entity(control: &Control, kind: Kind, id: &str) -> Result<(Value, u64), ConsoleError> {
    let state = control.lock_state();
    let entry = state.get(kind, id).filter(|e| e.doc.is_some());
    let entry = entry.ok_or_else(|| ConsoleError::not_found(kind.as_str()))?;
    Ok((entry.doc.clone().unwrap_or_default(), entry.version))
}

async fn entity_route(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    method: &Method,
    req: &Decoded,
    kind: Kind,
    label: &str,
    rest: &[&str],
) -> Answer {
    let read = || auth(state, req, Access::ConsoleRead);
    let write = || auth(state, req, Access::ConsoleWrite);
    match (method.clone(), rest) {
        (Method::GET, []) => {
            read()?;
            let st = control.lock_state();
            let list: Vec<Value> = st.live(kind).map(|(_, e, d)| entity_view(e, d)).collect();
            Ok(data(
                StatusCode::OK,
                &format!("{label}s listed successfully."),
                list.into(),
            ))
        }
        (Method::POST, []) => {
            let actor = write()?;
            let body = body_object(req)?;
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ConsoleError::invalid(vec![FieldError {
                        property: "name".into(),
                        error: "required".into(),
                    }])
                })?
                .to_owned();
            let base = match control.lock_state().get(kind, &name) {
                Some(e) if e.doc.is_some() => {
                    return Err(ConsoleError {
                        status: StatusCode::BAD_REQUEST,
                        message: "Name is already in use".into(),
                        errors: vec![FieldError {
                            property: "name".into(),
                            error: "already in use".into(),
                        }],
                    })
                }
                Some(e) => e.version,
                None => 0,
            };
            let doc = specs::normalize(kind, &name, &Value::Object(body), None)
                .map_err(ConsoleError::invalid)?;
            let done = Done::new(
                "create",
                StatusCode::CREATED,
                format!("{label} created successfully."),
            );
            write_entity(control, kind, &name, base, Some(doc), &actor.id, done).await
        }
        (Method::GET, [id]) => {
            read()?;
            let st = control.lock_state();
            let entry = st
                .get(kind, id)
                .filter(|e| e.doc.is_some())
                .ok_or_else(|| ConsoleError::not_found(label))?;
            let view = entity_view(entry, entry.doc.as_ref().unwrap_or(&Value::Null));
            Ok(with_etag(
                data(StatusCode::OK, &format!("{label} read successfully."), view),
                entry.version,
            ))
        }
        (Method::POST | Method::PUT | Method::PATCH, [id]) => {
            let done = Done::new(
                "update",
                StatusCode::OK,
                format!("{label} updated successfully."),
            );
            modify(control, req, &write()?, kind, id, done, |old| {
                let mut body = body_object(req)?;
                drop_read_only(&mut body);
                if *method == Method::PATCH {
                    // Partial update: the fields sent replace the stored ones.
                    let mut merged = specs::public_view(&old)
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    drop_read_only(&mut merged);
                    merged.extend(body);
                    body = merged;
                }
                specs::normalize(kind, id, &Value::Object(body), Some(&old))
                    .map(Some)
                    .map_err(ConsoleError::invalid)
            })
            .await
        }
        (Method::DELETE, [id]) => {
            let done = Done::new(
                "delete",
                StatusCode::OK,
                format!("{label} deleted successfully."),
            );
            modify(control, req, &write()?, kind, id, done, |_| Ok(None)).await
        }
        (Method::GET, [id, "versions"]) => {
            read()?;
            if control.lock_state().get(kind, id).is_none() {
                return Err(ConsoleError::not_found(label));
            }
            audit_log(state, control, req, Some((kind, id)))
        }
        (Method::PUT | Method::POST, [id, action @ ("enable" | "disable")])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig) =>
        {
            let done = Done::new(
                action,
                StatusCode::OK,
                format!("{label} updated successfully."),
            );
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                doc["isEnabled"] = (*action == "enable").into();
                Ok(Some(doc))
            })
            .await
        }
        (Method::PUT | Method::POST, [id, action @ ("start" | "finish" | "abandon")])
            if kind == Kind::Experiment =>
        {
            let done = Done::new(
                action,
                StatusCode::OK,
                "Experiment updated successfully.".into(),
            );
            modify(control, req, &write()?, kind, id, done, |doc| {
                experiment_transition(control, doc, action, req).map(Some)
            })
            .await
        }
        (Method::POST, [id, "rules"])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Segment) =>
        {
            let done = Done::new(
                "add_rule",
                StatusCode::CREATED,
                "Rule added successfully.".into(),
            );
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                let rule = specs::one_rule(&req.json()?, "rule", &[], kind == Kind::DynamicConfig)
                    .map_err(ConsoleError::invalid)?;
                let rules = doc["rules"].as_array_mut().ok_or_else(|| {
                    ConsoleError::new(
                        StatusCode::BAD_REQUEST,
                        "this segment has no rules (id_list)",
                    )
                })?;
                if rules.iter().any(|r| r["name"] == rule["name"]) {
                    return Err(ConsoleError::invalid(vec![FieldError {
                        property: "name".into(),
                        error: "duplicate rule name".into(),
                    }]));
                }
                rules.push(rule);
                Ok(Some(doc))
            })
            .await
        }
        (Method::PATCH | Method::DELETE, [id, "rules", rule_id])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Segment) =>
        {
            let delete = *method == Method::DELETE;
            let action = if delete { "delete_rule" } else { "update_rule" };
            let done = Done::new(action, StatusCode::OK, "Rule updated successfully.".into());
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                let rules = doc["rules"]
                    .as_array_mut()
                    .ok_or_else(|| ConsoleError::not_found("Rule"))?;
                let index = rules
                    .iter()
                    .position(|r| r["id"] == *rule_id || r["name"] == *rule_id)
                    .ok_or_else(|| ConsoleError::not_found("Rule"))?;
                if delete {
                    rules.remove(index);
                } else {
                    let mut merged = rules[index].as_object().cloned().unwrap_or_default();
                    merged.extend(body_object(req)?);
                    merged.insert("id".into(), rules[index]["id"].clone());
                    let with_value = kind == Kind::DynamicConfig;
                    rules[index] = specs::one_rule(&Value::Object(merged), "rule", &[], with_value)
                        .map_err(ConsoleError::invalid)?;
                }
                Ok(Some(doc))
            })
            .await
        }
        (Method::GET, [id, "overrides"])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Experiment) =>
        {
            read()?;
            let (doc, version) = read_entity(control, kind, id)?;
            let overrides = doc["overrides"].clone();
            Ok(with_etag(
                data(StatusCode::OK, "Overrides read successfully.", overrides),
                version,
            ))
        }
        (Method::POST | Method::PUT, [id, "overrides"])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Experiment) =>
        {
            let done = Done::new(
                "overrides",
                StatusCode::OK,
                "Overrides updated successfully.".into(),
            );
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                doc["overrides"] = if kind == Kind::Experiment {
                    experiment_overrides(&doc, &body_object(req)?)?
                } else {
                    pass_fail_overrides(&body_object(req)?)?
                };
                Ok(Some(doc))
            })
            .await
        }
        _ => Err(ConsoleError::new(StatusCode::NOT_FOUND, "no such endpoint")),
    }
}

fn id_list(value: &Value) -> Option<&Vec<Value>> {
    value.as_array().filter(|l| l.iter().all(Value::is_string))
}

/// Gate and config overrides: `{passingUserIDs, failingUserIDs}`.
fn pass_fail_overrides(body: &Map<String, Value>) -> Result<Value, ConsoleError> {
    let mut overrides = json!({"passingUserIDs": [], "failingUserIDs": []});
    for (field, ids) in body {
        match (field.as_str(), id_list(ids)) {
            ("passingUserIDs" | "failingUserIDs", Some(list)) => {
                overrides[field] = list.clone().into()
            }
            _ => {
                return Err(ConsoleError::invalid(vec![FieldError {
                    property: field.clone(),
                    error: "passingUserIDs and failingUserIDs: lists of user ids".into(),
                }]))
            }
        }
    }
    Ok(overrides)
}

/// Experiment overrides: `{userIDOverrides: [{groupID: group name, ids: [...]}]}`.
fn experiment_overrides(doc: &Value, body: &Map<String, Value>) -> Result<Value, ConsoleError> {
    let invalid = |property: String, error: &str| {
        ConsoleError::invalid(vec![FieldError {
            property,
            error: error.into(),
        }])
    };
    if let Some(field) = body.keys().find(|k| *k != "userIDOverrides") {
        return Err(invalid(field.clone(), "unknown field"));
    }
    let list = match body.get("userIDOverrides") {
        Some(Value::Array(list)) => list,
        _ => {
            return Err(invalid(
                "userIDOverrides".into(),
                "a list of {groupID, ids}",
            ))
        }
    };
    for (i, entry) in list.iter().enumerate() {
        let group = entry["groupID"].as_str().unwrap_or_default();
        if !doc["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["name"] == group))
        {
            let error = "the name of one of the experiment's groups";
            return Err(invalid(format!("userIDOverrides[{i}].groupID"), error));
        }
        if id_list(&entry["ids"]).is_none() {
            return Err(invalid(
                format!("userIDOverrides[{i}].ids"),
                "a list of user ids",
            ));
        }
    }
    Ok(json!({"userIDOverrides": list}))
}

/// `start` (setup → active; a layered experiment takes a free share of its layer),
/// `finish` (active → decision_made, body `{"launchedGroupID": group name}`), `abandon`.
fn experiment_transition(
    control: &Control,
    mut doc: Value,
    action: &str,
    req: &Decoded,
) -> Result<Value, ConsoleError> {
    let status = doc["status"].as_str().unwrap_or("setup").to_owned();
    let refuse = |why: String| ConsoleError::new(StatusCode::CONFLICT, why);
    match action {
        "start" => {
            if status != "setup" {
                return Err(refuse(format!(
                    "only an experiment in setup can start; this one is {status}"
                )));
            }
            if let Some(layer) = doc["layerID"].as_str() {
                let state = control.lock_state();
                if state
                    .get(Kind::Layer, layer)
                    .is_none_or(|e| e.doc.is_none())
                {
                    return Err(ConsoleError::invalid(vec![FieldError {
                        property: "layerID".into(),
                        error: format!("no layer named {layer}"),
                    }]));
                }
                let taken: Vec<[u32; 2]> = state
                    .live(Kind::Experiment)
                    .filter(|(_, _, d)| d["layerID"] == layer && d["status"] == "active")
                    .filter_map(|(_, _, d)| specs::layer_range(d))
                    .collect();
                let size = (doc["allocation"].as_f64().unwrap_or(100.0) * 10.0).round() as u32;
                let range = specs::free_range(&taken, size).ok_or_else(|| {
                    refuse(format!(
                        "layer {layer} has no free {}% left",
                        size as f64 / 10.0
                    ))
                })?;
                doc["_layerBuckets"] = json!(range);
            }
            doc["status"] = "active".into();
        }
        "finish" => {
            if status != "active" {
                return Err(refuse(format!(
                    "only an active experiment can finish; this one is {status}"
                )));
            }
            let body = body_object(req)?;
            let group = body
                .get("launchedGroupID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !doc["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["name"] == group))
            {
                return Err(ConsoleError::invalid(vec![FieldError {
                    property: "launchedGroupID".into(),
                    error: "the name of one of the experiment's groups".into(),
                }]));
            }
            doc["status"] = "decision_made".into();
            doc["launchedGroupID"] = group.into();
        }
        _ => {
            if matches!(status.as_str(), "decision_made" | "abandoned") {
                return Err(refuse(format!("the experiment is already {status}")));
            }
            doc["status"] = "abandoned".into();
        }
    }
    Ok(doc)
}

/// What a successful write is recorded as and answered with.
struct Done<'a> {
    action: &'a str,
    status: StatusCode,
    message: String,
}

impl Done<'_> {
    fn new(action: &str, status: StatusCode, message: String) -> Done<'_> {
        Done {
            action,
            status,
            message,
        }
    }
}

/// Fields the API shows but that only their own endpoints change.
fn drop_read_only(body: &mut Map<String, Value>) {
    for field in [
        "version",
        "lastModifiedTime",
        "lastModifierID",
        "isActive",
        "status",
        "launchedGroupID",
        "overrides",
    ] {
        body.remove(field);
    }
}

/// Reads an entity, lets `edit` turn its document into the new one (`None` deletes), and
/// writes that based on the version read, or on the caller's `If-Match`.
async fn modify(
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    actor: &std::sync::Arc<KeyRecord>,
    kind: Kind,
    id: &str,
    done: Done<'_>,
    edit: impl FnOnce(Value) -> Result<Option<Value>, ConsoleError>,
) -> Answer {
    let (doc, version) = read_entity(control, kind, id)?;
    let doc = edit(doc)?;
    let base = if_match(req)?.unwrap_or(version);
    write_entity(control, kind, id, base, doc, &actor.id, done).await
}

/// Compiles the ruleset as it would be with the change, then writes it.
async fn write_entity(
    control: &std::sync::Arc<Control>,
    kind: Kind,
    name: &str,
    base: u64,
    doc: Option<Value>,
    actor: &str,
    done: Done<'_>,
) -> Answer {
    let change = control::change(kind, name, base, doc, actor, done.action);
    check_compiles(control, &change)?;
    let version = commit(control, change.clone()).await?;
    let view = match &change.doc {
        Some(doc) => {
            let st = control.lock_state();
            match st.get(kind, name) {
                Some(entry) => entity_view(entry, doc),
                None => specs::public_view(doc),
            }
        }
        None => json!({"id": name}),
    };
    Ok(with_etag(data(done.status, &done.message, view), version))
}

/// A write is refused (400) when the evaluator would not compile it or would skip a spec
/// because of it.
fn check_compiles(control: &Control, change: &control::state::Change) -> Result<(), ConsoleError> {
    let mut candidate: State = control.lock_state().clone();
    if let control::state::Outcome::Conflict { current } = candidate.apply(change) {
        return Err(conflict(current));
    }
    let compiled = control
        .rules()
        .try_overlay(&specs::overlay(&candidate))
        .map_err(|e| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("the ruleset would not compile: {e}"),
            )
        })?;
    if let Some(warning) = compiled
        .ruleset
        .warnings()
        .iter()
        .find(|w| w.contains(&change.name))
    {
        return Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!("refused: {warning}"),
        ));
    }
    Ok(())
}

/// Accepted changes, newest first: the whole audit log, or one entity's versions.
fn audit_log(
    state: &AppState,
    control: &Control,
    req: &Decoded,
    entity: Option<(Kind, &str)>,
) -> Answer {
    auth(state, req, Access::ConsoleRead)?;
    let limit = req
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100usize)
        .min(10_000);
    let st = control.lock_state();
    let entries: Vec<Value> = st
        .audit()
        .rev()
        .filter(|c| entity.is_none_or(|(k, n)| c.kind == k && c.name == n))
        .take(limit)
        .map(|c| {
            // Key documents hold a digest: show the key's public view instead.
            let doc = match (c.kind, &c.doc) {
                (Kind::Key, Some(doc)) => key_view(doc, None, false),
                (_, Some(doc)) => specs::public_view(doc),
                (_, None) => Value::Null,
            };
            json!({"kind": c.kind.as_str(), "id": c.name, "action": c.action, "version": c.base + 1,
                   "actor": c.actor, "time": c.at_ms, "data": doc})
        })
        .collect();
    Ok(data(
        StatusCode::OK,
        "Audit logs listed successfully.",
        entries.into(),
    ))
}

// --------------------------------------------------------------------------- generic API

/// The generic user: `user_id` plus `attributes`; Statsig's top-level fields are taken
/// from the attributes by name, the rest become `custom`.
fn generic_user(body: &Map<String, Value>) -> Result<Value, ConsoleError> {
    let user_id = match body.get("user_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(ConsoleError::invalid(vec![FieldError {
                property: "user_id".into(),
                error: "required: a string".into(),
            }]))
        }
    };
    let mut user = json!({"userID": user_id});
    let mut custom = Map::new();
    match body.get("attributes") {
        None | Some(Value::Null) => {}
        Some(Value::Object(attributes)) => {
            for (name, value) in attributes {
                const TOP: [&str; 7] = [
                    "email",
                    "ip",
                    "userAgent",
                    "country",
                    "locale",
                    "appVersion",
                    "customIDs",
                ];
                if TOP.contains(&name.as_str()) {
                    user[name] = value.clone();
                } else {
                    custom.insert(name.clone(), value.clone());
                }
            }
        }
        Some(_) => {
            return Err(ConsoleError::invalid(vec![FieldError {
                property: "attributes".into(),
                error: "must be a JSON object".into(),
            }]))
        }
    }
    user["custom"] = Value::Object(custom);
    Ok(user)
}

/// `POST /api/v1/feature-flags/{key}/evaluate`: a gate (`value` true/false) or a dynamic
/// config / experiment (`value` its JSON), with the exposure logged as `check_gate` /
/// `get_config` do.
fn evaluate_flag(state: &AppState, req: &Decoded, flag: &str) -> Answer {
    let key = auth(state, req, Access::ApiEvaluate)?;
    let body = body_object(req)?;
    let user = generic_user(&body)?;
    let is_gate =
        api::flag_kind(state, flag)?.ok_or_else(|| ConsoleError::not_found("Feature flag"))?;
    let internal =
        |e: serde_json::Error| ConsoleError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let user = serde_json::value::to_raw_value(&user).map_err(internal)?;
    let name = serde_json::value::to_raw_value(flag).map_err(internal)?;
    let mut request = api::EvaluationRequest {
        user: Some(&user),
        ..Default::default()
    };
    let endpoint = if is_gate {
        request.gate_name = Some(&name);
        "check_gate"
    } else {
        request.config_name = Some(&name);
        "get_config"
    };
    let answer = api::evaluate_body(state, &key, req, &request, endpoint)?;
    let answer: Value = serde_json::from_slice(&answer).map_err(internal)?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"key": flag, "type": if is_gate { "gate" } else { "config" }, "value": answer["value"],
                "rule_id": answer["rule_id"], "group_name": answer["group_name"]}),
    ))
}

/// `POST /api/v1/tracking/track`: one custom event, `{user_id, event_type, value?,
/// metadata?, timestamp?, attributes?}`, into the same Kafka topic as `log_event`'s.
async fn track(state: &AppState, req: &Decoded) -> Answer {
    let key = auth(state, req, Access::ApiTrack)?;
    let body = body_object(req)?;
    let user = generic_user(&body)?;
    let event_type = body
        .get("event_type")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ConsoleError::invalid(vec![FieldError {
                property: "event_type".into(),
                error: "required: a string".into(),
            }])
        })?;
    let mut event = json!({"eventName": event_type, "user": user});
    for (from, to) in [
        ("value", "value"),
        ("metadata", "metadata"),
        ("timestamp", "time"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            event[to] = v.clone();
        }
    }
    let batch: Map<String, Value> = [("events".to_owned(), json!([event]))]
        .into_iter()
        .collect();
    Ok(api::log_batch(state, &key, req, &batch).await)
}
