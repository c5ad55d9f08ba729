//! Turning SDK traffic into schema envelopes: `log_event` batches, and the exposures the
//! evaluation API logs on the caller's behalf.

use std::borrow::Cow;

use evaluator::{Evaluation, SpecKind, User};
use events::{
    Envelope, Exposure, ExposureMessage, ExposureMetadata, ExposureView, SecondaryExposure,
    SCHEMA_VERSION,
};
use hyper::header::HeaderName;
use serde_json::{json, Map, Value};

use crate::http::Decoded;

/// Who sent a request, for every envelope built from it (borrowed from the request).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The key's public id.
    pub key_id: &'a str,
    /// SDK type, from `statsigMetadata.sdkType`, the `STATSIG-SDK-TYPE` header or `st`.
    pub sdk_type: Option<&'a str>,
    /// SDK version, likewise (`sv`).
    pub sdk_version: Option<&'a str>,
    /// Receive time, ms.
    pub received_at_ms: i64,
}

impl<'a> Origin<'a> {
    /// The SDK identity from the body's `statsigMetadata`, else the headers or the query.
    pub fn new(
        key_id: &'a str,
        req: &'a Decoded,
        metadata: SdkMetadata<'a>,
        now_ms: i64,
    ) -> Origin<'a> {
        // Static names, as for the API key: a `&str` name is parsed on every lookup, and
        // most evaluation requests carry no metadata, so these run per request.
        static SDK_TYPE: HeaderName = HeaderName::from_static("statsig-sdk-type");
        static SDK_VERSION: HeaderName = HeaderName::from_static("statsig-sdk-version");
        let header = |name: &HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
        Origin {
            key_id,
            sdk_type: metadata
                .sdk_type
                .or_else(|| header(&SDK_TYPE))
                .or_else(|| req.param("st")),
            sdk_version: metadata
                .sdk_version
                .or_else(|| header(&SDK_VERSION))
                .or_else(|| req.param("sv")),
            received_at_ms: now_ms,
        }
    }
}

/// The SDK identity a body's `statsigMetadata` declares (`sdkType`, `sdkVersion`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SdkMetadata<'a> {
    /// `statsigMetadata.sdkType`.
    pub sdk_type: Option<&'a str>,
    /// `statsigMetadata.sdkVersion`.
    pub sdk_version: Option<&'a str>,
}

impl<'a> SdkMetadata<'a> {
    /// Reads it from a body parsed as a tree (`log_event` batches).
    pub fn of(body: &'a Map<String, Value>) -> Self {
        let meta = |field: &str| {
            body.get("statsigMetadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
        };
        SdkMetadata {
            sdk_type: meta("sdkType"),
            sdk_version: meta("sdkVersion"),
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
fn event_unit(user: &Value) -> (&str, Cow<'_, str>) {
    if let Some(id) = user
        .get("userID")
        .and_then(id_text)
        .filter(|s| !s.is_empty())
    {
        return ("userID", id);
    }
    let ids = user.get("customIDs").and_then(Value::as_object);
    let stable = ids.and_then(|m| m.get_key_value("stableID"));
    let first = ids.and_then(|m| m.iter().next());
    match stable.or(first) {
        Some((k, v)) => (k, id_text(v).unwrap_or_default()),
        None => ("userID", Cow::Borrowed("")),
    }
}

fn id_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// The client's time of an event (ms), when it sent one that reads as a time.
fn client_time(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.parse::<i64>().ok().or_else(|| date_to_ms(s)),
        _ => None,
    }
}

/// The id of the `index`th event of a batch. An event with the client's time gets a UUID
/// (version 8) derived from a 128-bit hash of the key's id, its position in the batch, the
/// event as sent and, when it has no user of its own, the batch's user: an SDK resending a
/// batch after a 503 or a lost answer resends the same events in the same order, so any front
/// door gives the copies the same ids and consumers can drop them. Without a client time a
/// resend cannot be told from a second, identical event, so such an event gets a random (v4)
/// id. The hash is XXH3 (a fixed specification: the same on every door and version; SHA-256
/// cost 0.5 µs an event here). `scratch` is a buffer reused across the batch.
fn event_id(
    origin: &Origin<'_>,
    index: usize,
    event: &Map<String, Value>,
    batch_user: Option<&Value>,
    has_client_time: bool,
    scratch: &mut Vec<u8>,
) -> String {
    if !has_client_time {
        return uuid::Uuid::new_v4().to_string();
    }
    scratch.clear();
    scratch.extend_from_slice(b"gatehouse event id 1\0");
    encode_str(origin.key_id, scratch);
    scratch.extend_from_slice(&(index as u64).to_le_bytes());
    encode_object(event, scratch);
    if let (false, Some(user)) = (event.contains_key("user"), batch_user) {
        encode(user, scratch);
    }
    let hash = twox_hash::XxHash3_128::oneshot(scratch);
    uuid::Uuid::new_v8(hash.to_le_bytes()).to_string()
}

/// Appends an unambiguous encoding of `value` to `out`, for [`event_id`] to hash: a tag byte
/// per value, lengths before strings and containers, numbers as their bits, keys in the order
/// sent. Cheaper than writing the JSON text (no escaping, no float formatting): half the
/// time of it in a profile of `front_door/log_event_envelopes_100`.
fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => {
                out.push(2);
                out.extend_from_slice(&u.to_le_bytes());
            }
            (None, Some(i)) => {
                out.push(3);
                out.extend_from_slice(&i.to_le_bytes());
            }
            (None, None) => {
                out.push(4);
                let float = n.as_f64().unwrap_or(f64::NAN);
                out.extend_from_slice(&float.to_bits().to_le_bytes());
            }
        },
        Value::String(s) => {
            out.push(5);
            encode_str(s, out);
        }
        Value::Array(items) => {
            out.push(6);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode(item, out);
            }
        }
        // serde_json's parser bounds the nesting, and with it this recursion.
        Value::Object(map) => encode_object(map, out),
    }
}

fn encode_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(7);
    out.extend_from_slice(&(map.len() as u64).to_le_bytes());
    for (key, value) in map {
        encode_str(key, out);
        encode(value, out);
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// An ISO date as ms, parsed the way the evaluator parses user dates.
fn date_to_ms(s: &str) -> Option<i64> {
    evaluator::DynValue::new(Value::String(s.to_owned())).timestamp()
}

/// A new envelope for a user that is already loggable (no `privateAttributes`).
fn new_envelope(
    origin: &Origin<'_>,
    event_id: String,
    name: String,
    time: i64,
    user: Value,
) -> Envelope {
    let (unit_id_type, unit_id) = event_unit(&user);
    let (unit_id_type, unit_id) = (unit_id_type.to_owned(), unit_id.into_owned());
    Envelope {
        schema_version: SCHEMA_VERSION,
        event_id,
        event_name: name,
        event_time_ms: time,
        received_at_ms: origin.received_at_ms,
        key_id: origin.key_id.to_owned(),
        sdk_type: origin.sdk_type.map(str::to_owned),
        sdk_version: origin.sdk_version.map(str::to_owned),
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
    origin: &Origin<'_>,
) -> Result<Vec<Envelope>, String> {
    let events = match body.get("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err("events: must be a list".into()),
        None => return Err("events: missing".into()),
    };
    let batch_user = body.get("user");
    let mut out = Vec::with_capacity(events.len());
    let mut scratch = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        let Some(ev) = ev.as_object() else {
            return Err(format!("events[{i}]: must be an object"));
        };
        let name = match ev.get("eventName") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            Some(Value::String(_)) => return Err(format!("events[{i}].eventName: empty")),
            Some(_) => return Err(format!("events[{i}].eventName: must be a string")),
            None => return Err(format!("events[{i}].eventName: missing")),
        };
        let user = match ev.get("user").or(batch_user) {
            Some(u @ Value::Object(_)) => u.clone(),
            None | Some(Value::Null) => json!({}),
            Some(_) => return Err(format!("events[{i}].user: must be an object")),
        };
        if let Err(e) = User::from_json(&user) {
            return Err(format!("events[{i}].{e}"));
        }
        let time = client_time(ev.get("time"));
        let mut env = new_envelope(
            origin,
            event_id(origin, i, ev, batch_user, time.is_some(), &mut scratch),
            name,
            time.unwrap_or(origin.received_at_ms),
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

/// What an exposure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposed {
    /// The gate, config or layer a request asked for.
    Answer(SpecKind),
    /// An experiment whose group an `experiment_group` condition read: a config exposure
    /// without `rulePassed`, as Statsig's core SDK logs for the get_experiment it makes.
    ExperimentGroupRead,
}

/// The exposure the evaluation API logs for one answer, in Statsig's event shape, handed to
/// `send`. Built from borrowed parts (an exposure per request is the front door's hot path):
/// only the event id and, when there are nested gates, their list are made for it.
/// `loggable_user` is `Ruleset::loggable_user` of the request's user, computed once per request.
pub fn with_exposure<R>(
    exposed: Exposed,
    name: &str,
    eval: &Evaluation<'_>,
    loggable_user: &str,
    user: &User,
    origin: &Origin<'_>,
    send: impl FnOnce(&ExposureMessage<'_>) -> R,
) -> R {
    let mut event_id = uuid::Uuid::encode_buffer();
    let event_id = uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut event_id);
    // Keyed by the spec's unit type, as Statsig bucketed it; else by the user's first id.
    let fallback: Value;
    let (unit_id_type, unit_id) = if eval.id_type.is_empty() {
        // Rare (a spec without an idType): the user's first id, read from the logged text.
        fallback = serde_json::from_str(loggable_user).unwrap_or_default();
        event_unit(&fallback)
    } else {
        // `userID` (nearly every spec) needs no lowercased copy.
        let lower = if eval.id_type.eq_ignore_ascii_case("userid") {
            Cow::Borrowed("userid")
        } else {
            Cow::Owned(eval.id_type.to_lowercase())
        };
        (
            eval.id_type,
            Cow::Borrowed(user.unit_id_str(eval.id_type, &lower)),
        )
    };
    let flag = |b: bool| if b { "true" } else { "false" };
    let kind = match exposed {
        Exposed::Answer(kind) => kind,
        Exposed::ExperimentGroupRead => SpecKind::Config,
    };
    let (event_name, metadata) = match kind {
        SpecKind::Gate => (
            "statsig::gate_exposure",
            ExposureMetadata {
                gate: Some(name),
                gate_value: Some(flag(eval.bool_value)),
                ..ExposureMetadata::default()
            },
        ),
        SpecKind::Config => (
            "statsig::config_exposure",
            ExposureMetadata {
                config: Some(name),
                rule_passed: (exposed == Exposed::Answer(SpecKind::Config))
                    .then(|| flag(eval.bool_value)),
                ..ExposureMetadata::default()
            },
        ),
        SpecKind::Layer => (
            "statsig::layer_exposure",
            ExposureMetadata {
                config: Some(name),
                allocated_experiment: Some(eval.config_delegate.unwrap_or("")),
                parameter_name: Some(""),
                is_explicit_parameter: Some("false"),
                ..ExposureMetadata::default()
            },
        ),
    };
    let secondary: Vec<SecondaryExposure<'_>> = eval
        .secondary_exposures
        .iter()
        .map(|e| SecondaryExposure {
            gate: e.gate,
            gate_value: flag(e.gate_value),
            rule_id: e.rule_id,
        })
        .collect();
    send(&ExposureMessage {
        schema_version: SCHEMA_VERSION,
        event_id,
        event_name,
        event_time_ms: origin.received_at_ms,
        received_at_ms: origin.received_at_ms,
        key_id: origin.key_id,
        sdk_type: origin.sdk_type,
        sdk_version: origin.sdk_version,
        unit_id_type,
        unit_id: &unit_id,
        user: loggable_user,
        metadata: ExposureMetadata {
            rule_id: eval.rule_id,
            config_version: eval.version,
            // statsig-python-core 0.24.0 names the mapping in gate and config exposures, not
            // in layer exposures (recorded in the conformance vectors).
            override_config_name: eval
                .override_config_name
                .filter(|_| !matches!(exposed, Exposed::Answer(SpecKind::Layer))),
            ..metadata
        },
        secondary_exposures: &secondary,
        exposure: ExposureView {
            kind: Cow::Borrowed(match kind {
                SpecKind::Gate => "gate",
                SpecKind::Config => "config",
                SpecKind::Layer => "layer",
            }),
            name: Cow::Borrowed(name),
            rule_id: Cow::Borrowed(eval.rule_id),
            group_name: eval.group_name.map(Cow::Borrowed),
            gate_value: (kind == SpecKind::Gate).then_some(eval.bool_value),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_identity_comes_from_metadata_then_headers_then_the_query() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("STATSIG-SDK-TYPE", "py-server".parse().unwrap());
        let req = Decoded {
            headers,
            query: vec![("st".into(), "js".into()), ("sv".into(), "3.1".into())],
            body: Default::default(),
        };
        let origin = Origin::new("k", &req, SdkMetadata::default(), 0);
        assert_eq!(
            (origin.sdk_type, origin.sdk_version),
            (Some("py-server"), Some("3.1"))
        );
        let declared = SdkMetadata {
            sdk_type: Some("node"),
            sdk_version: None,
        };
        let origin = Origin::new("k", &req, declared, 0);
        assert_eq!(origin.sdk_type, Some("node"));
    }

    /// A batch's origin without SDK headers.
    fn origin(key_id: &str) -> Origin<'_> {
        Origin {
            key_id,
            sdk_type: None,
            sdk_version: None,
            received_at_ms: 5,
        }
    }

    fn ids(key_id: &str, body: Value) -> Vec<uuid::Uuid> {
        let body = body.as_object().unwrap().clone();
        envelopes_from_batch(&body, &origin(key_id))
            .unwrap()
            .iter()
            .map(|env| env.event_id.parse().unwrap())
            .collect()
    }

    /// A resent batch gets the ids it got the first time, whichever door takes it; nothing
    /// else that differs shares an id.
    #[test]
    fn a_resent_batch_gets_the_same_event_ids_and_nothing_else_does() {
        let event = |name: &str, time: Value| json!({"eventName": name, "time": time});
        let batch =
            |user: &str, events: Vec<Value>| json!({"user": {"userID": user}, "events": events});
        let sent = batch(
            "u1",
            vec![event("buy", json!(1000)), event("buy", json!(1000))],
        );
        let first = ids("key-a", sent.clone());
        assert_eq!(ids("key-a", sent.clone()), first, "resent: the same ids");
        assert!(first.iter().all(|id| id.get_version_num() == 8));
        // The same event twice in one batch is two events.
        assert_ne!(first[0], first[1]);
        let differs = [
            ids("key-b", sent.clone())[0],
            ids("key-a", batch("u2", vec![event("buy", json!(1000))]))[0],
            ids("key-a", batch("u1", vec![event("buy", json!(1001))]))[0],
            ids("key-a", batch("u1", vec![event("sell", json!(1000))]))[0],
        ];
        assert!(differs.iter().all(|id| *id != first[0]), "{differs:?}");
        // No client time: a resend is indistinguishable from a second event, so never merged.
        let untimed = json!({"events": [{"eventName": "buy", "user": {"userID": "u1"}}]});
        let (a, b) = (ids("key-a", untimed.clone()), ids("key-a", untimed));
        assert_ne!(a, b);
        assert_eq!(a[0].get_version_num(), 4);
    }

    /// A rejected batch says which event's name is wrong and how.
    #[test]
    fn a_bad_event_name_is_named_with_what_is_wrong() {
        let error = |name: Value| {
            let mut event = json!({"user": {"userID": "u"}});
            if !name.is_null() {
                event["eventName"] = name;
            }
            let body = json!({"events": [{"eventName": "ok"}, event]});
            envelopes_from_batch(body.as_object().unwrap(), &origin("k")).unwrap_err()
        };
        assert_eq!(error(Value::Null), "events[1].eventName: missing");
        assert_eq!(error(json!("")), "events[1].eventName: empty");
        assert_eq!(error(json!(7)), "events[1].eventName: must be a string");
    }

    use evaluator::{EvalContext, Ruleset};
    use serde_json::json;

    /// Each kind's exposure, written from borrowed parts, carries what the evaluation said in
    /// Statsig's metadata shape and reads back through the schema.
    #[test]
    fn exposures_carry_the_evaluation_in_statsig_shape() {
        let rs = Ruleset::from_slice(include_bytes!(
            "../../evaluator/tests/data/conformance_v2.json"
        ))
        .unwrap();
        let user_json = json!({"userID": "u-7", "email": "a@example.com",
                               "customIDs": {"stableID": "s-7"},
                               "privateAttributes": {"secret": "x"}});
        let user = User::from_json(&user_json).unwrap();
        let ctx = EvalContext {
            user: &user,
            now_ms: 1_767_225_600_000,
            app_id: None,
        };
        let text = serde_json::value::to_raw_value(&user_json).unwrap();
        let loggable = rs.loggable_user_text(&text);
        let origin = Origin {
            key_id: "key-1",
            sdk_type: Some("py"),
            sdk_version: None,
            received_at_ms: 5,
        };
        let gold_json = json!({"userID": "u-8", "custom": {"plan": "gold"}});
        let gold_user = User::from_json(&gold_json).unwrap();
        let gold = EvalContext {
            user: &gold_user,
            ..ctx
        };
        let cases = [
            (SpecKind::Gate, "nested_0", rs.check_gate("nested_0", &ctx)),
            (
                SpecKind::Config,
                "config_0",
                rs.get_config("config_0", &ctx),
            ),
            (SpecKind::Layer, "layer_0", rs.get_layer("layer_0", &ctx)),
            // gold plan: config mappings apply (overrideConfigName, none for layers).
            (
                SpecKind::Gate,
                "mapped_gate_0",
                rs.check_gate("mapped_gate_0", &gold),
            ),
            (
                SpecKind::Config,
                "config_mapped",
                rs.get_config("config_mapped", &gold),
            ),
            (
                SpecKind::Layer,
                "layer_mapped",
                rs.get_layer("layer_mapped", &gold),
            ),
        ];
        assert_eq!(cases[3].2.override_config_name, Some("gate_5"));
        assert_eq!(cases[5].2.override_config_name, Some("layer_1"));
        assert!(
            !cases[0].2.secondary_exposures.is_empty(),
            "a gate with nested gates: {:?}",
            cases[0].2
        );
        for (kind, name, eval) in &cases {
            let bytes = with_exposure(
                Exposed::Answer(*kind),
                name,
                eval,
                &loggable,
                &user,
                &origin,
                |m| {
                    let mut out = Vec::new();
                    m.write_to(&mut out);
                    out
                },
            );
            let env = Envelope::parse(&bytes).unwrap();
            let text = |b: bool| b.to_string();
            let version = eval.version.map(|v| v.to_string());
            let mut expected = match kind {
                SpecKind::Gate => json!({"gate": name, "gateValue": text(eval.bool_value)}),
                SpecKind::Config => json!({"config": name, "rulePassed": text(eval.bool_value)}),
                SpecKind::Layer => json!({"config": name,
                    "allocatedExperiment": eval.config_delegate.unwrap_or(""),
                    "parameterName": "", "isExplicitParameter": "false"}),
            };
            expected["ruleID"] = eval.rule_id.into();
            if let Some(v) = version {
                expected["configVersion"] = v.into();
            }
            if let Some(mapped) = eval
                .override_config_name
                .filter(|_| *kind != SpecKind::Layer)
            {
                expected["overrideConfigName"] = mapped.into();
            }
            assert_eq!(Value::Object(env.metadata.clone()), expected, "{name}");
            let metadata_order: Vec<_> = env.metadata.keys().collect();
            let expected_order: Vec<_> = expected.as_object().unwrap().keys().collect();
            assert_eq!(
                metadata_order, expected_order,
                "{name}: Statsig's key order"
            );
            assert_eq!(
                env.event_name,
                format!(
                    "statsig::{}_exposure",
                    ["gate", "config", "layer"][*kind as usize]
                )
            );
            let secondary: Vec<_> = eval
                .secondary_exposures
                .iter()
                .map(|e| json!({"gate": e.gate, "gateValue": text(e.gate_value), "ruleID": e.rule_id}))
                .collect();
            assert_eq!(
                Value::from(env.secondary_exposures.clone()),
                Value::from(secondary)
            );
            let exposure = env.exposure.unwrap();
            assert_eq!(exposure.name, *name);
            assert_eq!(exposure.rule_id, eval.rule_id);
            assert_eq!(exposure.group_name.as_deref(), eval.group_name);
            assert_eq!(
                exposure.gate_value,
                (*kind == SpecKind::Gate).then_some(eval.bool_value)
            );
            assert_eq!(env.user, rs.loggable_user(&user_json));
            assert!(env.user.get("privateAttributes").is_none());
            assert_eq!(
                (env.key_id.as_str(), env.sdk_type.as_deref()),
                ("key-1", Some("py"))
            );
            assert_eq!((env.event_time_ms, env.received_at_ms), (5, 5));
            assert_eq!(env.unit_id_type, eval.id_type);
            assert_eq!(
                env.unit_id,
                if eval.id_type == "stableID" {
                    "s-7"
                } else {
                    "u-7"
                }
            );
            assert_eq!(env.event_id.len(), 36);
        }
    }
}
