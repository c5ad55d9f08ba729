//! The generic experimentation-platform API's evaluation and tracking endpoints
//! (`feature-flags/{key}/evaluate`, `tracking/track`).

use hyper::StatusCode;
use serde_json::{json, Map, Value};

use super::{auth, body_object, Answer, ConsoleError};
use crate::api;
use crate::control::specs::FieldError;
use crate::http::{json_reply, AppState, Decoded};
use crate::keys::Access;

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
pub(super) fn evaluate_flag(state: &AppState, req: &Decoded, flag: &str) -> Answer {
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
pub(super) async fn track(state: &AppState, req: &Decoded) -> Answer {
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
