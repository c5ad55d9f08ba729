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
use crate::control::specs::FieldError;
use crate::control::state::Kind;
use crate::control::{self, Control, WriteError};
use crate::http::{json_reply, AppState, Decoded, Reply};
use crate::keys::{Access, KeyRecord};

mod entities;
mod generic;
mod keys;

use entities::{audit_log, entity_route};
use generic::{evaluate_flag, track};
use keys::{create_key, get_key, key_view, list_keys, revoke_key, rotate_key, update_key};

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

/// The query parameters of a list other than `page` and `limit`: its filters. One this list
/// does not support is a 400 naming it, not ignored: a script that filters a list before
/// acting on each item (deleting the stale gates, say) would otherwise act on all of them.
fn list_filters<'r>(
    req: &'r Decoded,
    supported: &[&str],
) -> Result<Vec<(&'r str, &'r str)>, ConsoleError> {
    let mut filters = Vec::new();
    for (name, value) in &req.query {
        if name == "page" || name == "limit" {
            continue;
        }
        if !supported.contains(&name.as_str()) {
            let accepted = ["page", "limit"].iter().chain(supported).copied();
            return Err(ConsoleError::invalid(vec![FieldError {
                property: name.clone(),
                error: format!(
                    "not a filter of this list (it takes {})",
                    accepted.collect::<Vec<_>>().join(", ")
                ),
            }]));
        }
        filters.push((name.as_str(), value.as_str()));
    }
    Ok(filters)
}

/// The most items one page of a list holds (`?limit=`).
const MAX_PAGE_SIZE: usize = 10_000;

/// Statsig's list answer: one page of the `total` `items` (`?page=` from 1, `?limit=` items
/// a page, default 100, as Statsig's console API) and its `pagination`. `nextPage` and
/// `previousPage` are this list's path with the neighbouring page's query, or null, so a
/// client that follows them until `nextPage` is null gets every item once. Only the page's
/// items are taken from the iterator: a lazy one renders no more than a page.
fn paged(
    req: &Decoded,
    path: &[&str],
    message: &str,
    total: usize,
    items: impl Iterator<Item = Value>,
) -> Answer {
    let number = |name: &str, default: usize, max: usize| match req.param(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ConsoleError::invalid(vec![FieldError {
                    property: name.into(),
                    error: format!("must be a whole number from 1 to {max}, not {text:?}"),
                }])
            }),
    };
    let limit = number("limit", 100, MAX_PAGE_SIZE)?;
    let page = number("page", 1, usize::MAX / MAX_PAGE_SIZE)?;
    let start = ((page - 1) * limit).min(total);
    let end = (start + limit).min(total);
    let link = |page: usize| format!("/console/v1/{}?page={page}&limit={limit}", path.join("/"));
    let pagination = json!({
        "itemsPerPage": limit,
        "pageNumber": page,
        "totalItems": total,
        "nextPage": (end < total).then(|| link(page + 1)),
        "previousPage": (page > 1).then(|| link(page - 1)),
        "all": "",
    });
    let data: Vec<Value> = items.skip(start).take(end - start).collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"message": message, "data": data, "pagination": pagination}),
    ))
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
                Method::GET => {
                    list_filters(&req, &["primaryTargetApp", "environment"])?;
                    let keys = list_keys(state, control, &req, false)?;
                    paged(
                        &req,
                        path,
                        "Keys listed successfully.",
                        keys.len(),
                        keys.into_iter(),
                    )
                }
                Method::POST => create_key(state, control, &req, false).await,
                _ => Err(method_not_allowed()),
            },
            ["keys", id] => match method {
                Method::GET => get_key(state, control, &req, id, false),
                Method::PATCH => update_key(state, control, &req, id).await,
                Method::DELETE => {
                    let deleted = Some("Key deleted successfully.");
                    revoke_key(state, control, &req, id, deleted).await
                }
                _ => Err(method_not_allowed()),
            },
            ["keys", id, "rotate"]
                if matches!(method, Method::PATCH | Method::PUT | Method::POST) =>
            {
                rotate_key(state, control, &req, id).await
            }
            ["keys", id, "deactivate"]
                if matches!(method, Method::PATCH | Method::PUT | Method::POST) =>
            {
                let deactivated = Some("Key deactivated successfully.");
                revoke_key(state, control, &req, id, deactivated).await
            }
            ["audit_logs"] if method == Method::GET => audit_log(
                state,
                control,
                &req,
                path,
                None,
                "Audit logs listed successfully.",
            ),
            _ => entity_route(state, control, &method, &req, path).await,
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
                    Method::GET => {
                        let keys = list_keys(state, control, &req, true)?;
                        Ok(json_reply(StatusCode::OK, &json!({"api_keys": keys})))
                    }
                    Method::POST => create_key(state, control, &req, true).await,
                    _ => Err(method_not_allowed()),
                }
            }
            ["api-keys", id] => {
                let control = control_of(state)?;
                match method {
                    Method::GET => get_key(state, control, &req, id, true),
                    Method::DELETE => revoke_key(state, control, &req, id, None).await,
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
