//! Turning SDK traffic into schema envelopes: `log_event` batches, and the exposures the
//! evaluation API logs on the caller's behalf.

use evaluator::{Evaluation, SpecKind, User};
use events::{Envelope, Exposure, SCHEMA_VERSION};
use serde_json::{json, Map, Value};

use crate::http::Decoded;

/// Who sent a request, for every envelope built from it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The key's public id.
    pub key_id: String,
    /// SDK type, from `statsigMetadata.sdkType`, the `STATSIG-SDK-TYPE` header or `st`.
    pub sdk_type: Option<String>,
    /// SDK version, likewise (`sv`).
    pub sdk_version: Option<String>,
    /// Receive time, ms.
    pub received_at_ms: i64,
}

impl Origin {
    /// Reads the SDK identity from the body's `statsigMetadata`, the headers or the query.
    pub fn new(key_id: &str, req: &Decoded, body: &Map<String, Value>, now_ms: i64) -> Origin {
        let meta = |field: &str| {
            body.get("statsigMetadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Origin {
            key_id: key_id.to_owned(),
            sdk_type: meta("sdkType")
                .or_else(|| header("statsig-sdk-type"))
                .or_else(|| req.param("st").map(str::to_owned)),
            sdk_version: meta("sdkVersion")
                .or_else(|| header("statsig-sdk-version"))
                .or_else(|| req.param("sv").map(str::to_owned)),
            received_at_ms: now_ms,
        }
    }
}

fn without_private(user: &Value) -> Value {
    let mut user = user.clone();
    if let Some(obj) = user.as_object_mut() {
        obj.remove("privateAttributes");
    }
    user
}

/// The unit an event is keyed by: `userID`, else the first custom id (stableID first).
fn event_unit(user: &Value) -> (String, String) {
    if let Some(id) = user
        .get("userID")
        .and_then(id_text)
        .filter(|s| !s.is_empty())
    {
        return ("userID".into(), id);
    }
    let ids = user.get("customIDs").and_then(Value::as_object);
    let stable = ids.and_then(|m| m.get_key_value("stableID"));
    let first = ids.and_then(|m| m.iter().next());
    match stable.or(first) {
        Some((k, v)) => (k.clone(), id_text(v).unwrap_or_default()),
        None => ("userID".into(), String::new()),
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn event_time(v: Option<&Value>, fallback: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(fallback),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .or_else(|| date_to_ms(s))
            .unwrap_or(fallback),
        _ => fallback,
    }
}

/// An ISO date as ms, parsed the way the evaluator parses user dates.
fn date_to_ms(s: &str) -> Option<i64> {
    evaluator::DynValue::new(Value::String(s.to_owned())).timestamp
}

/// A new envelope for a user that is already loggable (no `privateAttributes`).
fn new_envelope(origin: &Origin, name: String, time: i64, user: Value) -> Envelope {
    let (unit_id_type, unit_id) = event_unit(&user);
    Envelope {
        schema_version: SCHEMA_VERSION,
        event_id: uuid::Uuid::new_v4().to_string(),
        event_name: name,
        event_time_ms: time,
        received_at_ms: origin.received_at_ms,
        key_id: origin.key_id.clone(),
        sdk_type: origin.sdk_type.clone(),
        sdk_version: origin.sdk_version.clone(),
        unit_id_type,
        unit_id,
        user,
        value: None,
        metadata: Map::new(),
        secondary_exposures: Vec::new(),
        exposure: None,
    }
}

/// Validates a whole `log_event`/`rgstr` body into envelopes (all or nothing: one bad event
/// rejects the batch before anything is produced).
pub fn envelopes_from_batch(
    body: &Map<String, Value>,
    origin: &Origin,
) -> Result<Vec<Envelope>, String> {
    let events = match body.get("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err("events: must be a list".into()),
        None => return Err("events: missing".into()),
    };
    let batch_user = body.get("user");
    let mut out = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        let Some(ev) = ev.as_object() else {
            return Err(format!("events[{i}]: must be an object"));
        };
        let name = match ev.get("eventName") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => return Err(format!("events[{i}].eventName: missing or not a string")),
        };
        let user = match ev.get("user").or(batch_user) {
            Some(u @ Value::Object(_)) => u.clone(),
            None | Some(Value::Null) => json!({}),
            Some(_) => return Err(format!("events[{i}].user: must be an object")),
        };
        if let Err(e) = User::from_json(&user) {
            return Err(format!("events[{i}].{e}"));
        }
        let mut env = new_envelope(
            origin,
            name,
            event_time(ev.get("time"), origin.received_at_ms),
            without_private(&user),
        );
        env.value = match ev.get("value") {
            None | Some(Value::Null) => None,
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Some(v.clone()),
            Some(_) => return Err(format!("events[{i}].value: must be a string or a number")),
        };
        env.metadata = match ev.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(format!("events[{i}].metadata: must be an object")),
        };
        env.secondary_exposures = match ev.get("secondaryExposures") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(sec)) => sec
                .iter()
                .map(|e| e.as_object().cloned())
                .collect::<Option<_>>()
                .ok_or_else(|| format!("events[{i}].secondaryExposures: must be objects"))?,
            Some(_) => return Err(format!("events[{i}].secondaryExposures: must be a list")),
        };
        env.exposure = sdk_exposure(&env.event_name, &env.metadata);
        out.push(env);
    }
    Ok(out)
}

/// Exposures SDKs log themselves (`statsig::gate_exposure` & co.) get the typed fields too.
fn sdk_exposure(name: &str, metadata: &Map<String, Value>) -> Option<Exposure> {
    let text = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_owned);
    let (kind, entity) = match name {
        "statsig::gate_exposure" => ("gate", text("gate")),
        "statsig::config_exposure" => ("config", text("config")),
        "statsig::layer_exposure" => ("layer", text("config")),
        _ => return None,
    };
    Some(Exposure {
        kind: kind.into(),
        name: entity.unwrap_or_default(),
        rule_id: text("ruleID").unwrap_or_default(),
        group_name: None,
        gate_value: (kind == "gate").then(|| text("gateValue").as_deref() == Some("true")),
    })
}

/// The exposure the evaluation API logs for one answer, in Statsig's event shape.
/// `loggable_user` is `Ruleset::loggable_user` of the request's user, computed once per request.
pub fn exposure_for(
    kind: SpecKind,
    name: &str,
    eval: &Evaluation<'_>,
    loggable_user: &Value,
    user: &User,
    origin: &Origin,
) -> Envelope {
    let mut env = new_envelope(
        origin,
        String::new(),
        origin.received_at_ms,
        loggable_user.clone(),
    );
    // Keyed by the spec's unit type, as Statsig bucketed it.
    if !eval.id_type.is_empty() {
        let lower = eval.id_type.to_lowercase();
        env.unit_id_type = eval.id_type.to_owned();
        env.unit_id = user.unit_id_str(eval.id_type, &lower).to_owned();
    }
    let mut meta = Map::new();
    let (event_name, kind_name) = match kind {
        SpecKind::Gate => {
            meta.insert("gate".into(), name.into());
            meta.insert("gateValue".into(), eval.bool_value.to_string().into());
            ("statsig::gate_exposure", "gate")
        }
        SpecKind::Config => {
            meta.insert("config".into(), name.into());
            meta.insert("rulePassed".into(), eval.bool_value.to_string().into());
            ("statsig::config_exposure", "config")
        }
        SpecKind::Layer => {
            meta.insert("config".into(), name.into());
            meta.insert(
                "allocatedExperiment".into(),
                eval.config_delegate.unwrap_or("").into(),
            );
            meta.insert("parameterName".into(), "".into());
            meta.insert("isExplicitParameter".into(), "false".into());
            ("statsig::layer_exposure", "layer")
        }
    };
    meta.insert("ruleID".into(), eval.rule_id.into());
    if let Some(version) = eval.version {
        meta.insert("configVersion".into(), version.to_string().into());
    }
    env.event_name = event_name.into();
    env.metadata = meta;
    env.secondary_exposures = eval
        .secondary_exposures
        .iter()
        .map(|e| {
            Map::from_iter([
                ("gate".to_owned(), e.gate.into()),
                ("gateValue".to_owned(), e.gate_value.to_string().into()),
                ("ruleID".to_owned(), e.rule_id.into()),
            ])
        })
        .collect();
    env.exposure = Some(Exposure {
        kind: kind_name.into(),
        name: name.into(),
        rule_id: eval.rule_id.into(),
        group_name: eval.group_name.map(str::to_owned),
        gate_value: (kind == SpecKind::Gate).then_some(eval.bool_value),
    });
    env
}
