//! The Kafka message schema: the one contract between the front door (producer), the sink
//! and every analytics consumer. Its own crate so the sink can depend on it without pulling
//! in the HTTP server.
//!
//! One message = one event as JSON; the message key is the event's `unit_id` so one unit's
//! events stay ordered in one partition. `schema_version` changes only with a breaking
//! change; added optional fields keep the version. Documented in `docs/events.md`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Default topic for exposures.
pub const EXPOSURES_TOPIC: &str = "gatehouse.exposures";
/// Default topic for custom events.
pub const EVENTS_TOPIC: &str = "gatehouse.events";

/// One event on a Gatehouse topic.
///
/// `docs/events.schema.json`, the JSON Schema analytics consumers validate against or
/// generate code from, is derived from this type (and [`Exposure`]) by a test that fails
/// when the file is stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Envelope {
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// Server-assigned id (UUID text): the copies of one event an SDK resent share it, so
    /// consumers drop duplicates on it. Version 8, derived from the key, the event's position
    /// in its batch and the event as sent, for logged events with the client's `time`;
    /// random (version 4) for the rest (exposures the door logs, events without a time).
    pub event_id: String,
    /// The Statsig event name (`statsig::gate_exposure`, or a custom name).
    pub event_name: String,
    /// When the event happened (client time when sent, else the receive time), ms.
    pub event_time_ms: i64,
    /// When the front door received it, ms.
    pub received_at_ms: i64,
    /// The API key's public id (never the key).
    pub key_id: String,
    /// SDK type and version as the request declared them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_type: Option<String>,
    /// SDK version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    /// The unit type the event is keyed by (`userID`, `stableID`, ...).
    pub unit_id_type: String,
    /// The unit id (also the Kafka message key); `""` when the user had none.
    pub unit_id: String,
    /// The user, without `privateAttributes`.
    #[cfg_attr(test, schemars(with = "Map<String, Value>"))]
    pub user: Value,
    /// Custom events: the event's value (string or number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The event's metadata (exposures: Statsig's string-valued metadata); `null` reads as `{}`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: Map<String, Value>,
    /// Exposures: the nested gates that decided the answer (objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_exposures: Vec<Map<String, Value>>,
    /// Exposures: the typed exposure fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,
}

/// The typed part of an exposure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Exposure {
    /// `gate`, `config` or `layer`.
    pub kind: String,
    /// The gate, config/experiment or layer name.
    pub name: String,
    /// The deciding rule.
    pub rule_id: String,
    /// The experiment group, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// Gates: the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_value: Option<bool>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

fn check_version(version: u32) -> Result<(), String> {
    if version == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(format!(
            "schema_version {version} (this build reads {SCHEMA_VERSION})"
        ))
    }
}

impl Envelope {
    /// Parses a message, refusing other schema versions and a `user` that is not an object.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, String> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        check_version(env.schema_version)?;
        if !env.user.is_object() {
            return Err("user: must be an object".into());
        }
        Ok(env)
    }

    /// The message bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A borrowed, typed view of one message for consumers that turn messages straight into
/// columns (the Parquet sink): no JSON tree is built, strings borrow from the message unless
/// escaped, and nested objects (`user`, `metadata`, `value`) stay raw JSON text. Accepts
/// exactly the messages [`Envelope::parse`] accepts (tested below).
#[derive(Debug, Deserialize)]
pub struct EnvelopeView<'a> {
    /// See [`Envelope::schema_version`].
    pub schema_version: u32,
    /// See [`Envelope::event_id`].
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    /// See [`Envelope::event_name`].
    #[serde(borrow)]
    pub event_name: Cow<'a, str>,
    /// See [`Envelope::event_time_ms`].
    pub event_time_ms: i64,
    /// See [`Envelope::received_at_ms`].
    pub received_at_ms: i64,
    /// See [`Envelope::key_id`].
    #[serde(borrow)]
    pub key_id: Cow<'a, str>,
    /// See [`Envelope::sdk_type`].
    #[serde(borrow, default)]
    pub sdk_type: Option<Cow<'a, str>>,
    /// See [`Envelope::sdk_version`].
    #[serde(borrow, default)]
    pub sdk_version: Option<Cow<'a, str>>,
    /// See [`Envelope::unit_id_type`].
    #[serde(borrow)]
    pub unit_id_type: Cow<'a, str>,
    /// See [`Envelope::unit_id`].
    #[serde(borrow)]
    pub unit_id: Cow<'a, str>,
    /// See [`Envelope::user`]: raw JSON text.
    #[serde(borrow)]
    pub user: &'a RawValue,
    /// See [`Envelope::value`]: raw JSON text.
    #[serde(borrow, default)]
    pub value: Option<&'a RawValue>,
    /// See [`Envelope::metadata`]: raw JSON text (an object).
    #[serde(borrow, default)]
    pub metadata: Option<&'a RawValue>,
    /// See [`Envelope::secondary_exposures`]; elements that are not objects are refused.
    #[serde(borrow, default)]
    pub secondary_exposures: Vec<SecondaryExposureView<'a>>,
    /// See [`Envelope::exposure`].
    #[serde(borrow, default)]
    pub exposure: Option<ExposureView<'a>>,
}

/// One nested gate of an exposure, as Statsig writes it: `{gate, gateValue, ruleID}` with
/// string values. Fields stay raw so a client's odd types never make the message unreadable.
#[derive(Debug, Default, Deserialize)]
pub struct SecondaryExposureView<'a> {
    /// The nested gate's name.
    #[serde(borrow, default)]
    pub gate: Option<&'a RawValue>,
    /// Its value: `"true"`/`"false"` (a JSON bool is accepted too).
    #[serde(rename = "gateValue", borrow, default)]
    pub gate_value: Option<&'a RawValue>,
    /// Its deciding rule.
    #[serde(rename = "ruleID", borrow, default)]
    pub rule_id: Option<&'a RawValue>,
}

impl SecondaryExposureView<'_> {
    /// The gate value as a bool (`None` when absent or neither `true` nor `"true"`/`"false"`).
    pub fn gate_value(&self) -> Option<bool> {
        match self.gate_value.map(RawValue::get) {
            Some("true" | "\"true\"") => Some(true),
            Some("false" | "\"false\"") => Some(false),
            _ => None,
        }
    }
}

/// A raw JSON value as text: strings unescaped, `null` as `None`, anything else as its JSON.
pub fn raw_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<Cow<'_, str>>(text).ok(),
        _ if text == "null" => None,
        _ => Some(Cow::Borrowed(text)),
    }
}

/// See [`Exposure`]. Borrowed both ways: the sink reads it, and [`ExposureMessage`] writes
/// it (the same bytes as [`Exposure`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExposureView<'a> {
    /// See [`Exposure::kind`].
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    /// See [`Exposure::name`].
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// See [`Exposure::rule_id`].
    #[serde(borrow)]
    pub rule_id: Cow<'a, str>,
    /// See [`Exposure::group_name`].
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<Cow<'a, str>>,
    /// See [`Exposure::gate_value`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_value: Option<bool>,
}

/// An exposure message written from borrowed parts: the front door logs one per evaluation
/// request, and building an owned [`Envelope`] (maps of owned strings) for it cost more than
/// the evaluation. [`ExposureMessage::write_to`] writes exactly the bytes of the equivalent
/// [`Envelope`] (tested below), so readers see one schema.
#[derive(Debug)]
pub struct ExposureMessage<'a> {
    /// See [`Envelope::schema_version`] (always [`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// See [`Envelope::event_id`].
    pub event_id: &'a str,
    /// See [`Envelope::event_name`].
    pub event_name: &'a str,
    /// See [`Envelope::event_time_ms`].
    pub event_time_ms: i64,
    /// See [`Envelope::received_at_ms`].
    pub received_at_ms: i64,
    /// See [`Envelope::key_id`].
    pub key_id: &'a str,
    /// See [`Envelope::sdk_type`].
    pub sdk_type: Option<&'a str>,
    /// See [`Envelope::sdk_version`].
    pub sdk_version: Option<&'a str>,
    /// See [`Envelope::unit_id_type`].
    pub unit_id_type: &'a str,
    /// See [`Envelope::unit_id`].
    pub unit_id: &'a str,
    /// See [`Envelope::user`] (already without `privateAttributes`): the JSON text of an
    /// object, written as is, so the front door renders a request's user once for all its
    /// exposures.
    pub user: &'a str,
    /// See [`Envelope::metadata`].
    pub metadata: ExposureMetadata<'a>,
    /// See [`Envelope::secondary_exposures`].
    pub secondary_exposures: &'a [SecondaryExposure<'a>],
    /// See [`Envelope::exposure`].
    pub exposure: ExposureView<'a>,
}

/// Statsig's exposure metadata, in the order its SDKs write it; absent fields are left out
/// (gates: `gate, gateValue, ruleID`; configs: `config, rulePassed, ruleID`; layers:
/// `config, allocatedExperiment, parameterName, isExplicitParameter, ruleID`; then
/// `configVersion` when the spec has one, and `overrideConfigName` when a config mapping
/// answered).
#[derive(Debug, Default)]
pub struct ExposureMetadata<'a> {
    /// The gate's name (gate exposures).
    pub gate: Option<&'a str>,
    /// The config, experiment or layer name.
    pub config: Option<&'a str>,
    /// `"true"`/`"false"` (gates).
    pub gate_value: Option<&'a str>,
    /// `"true"`/`"false"` (configs).
    pub rule_passed: Option<&'a str>,
    /// The experiment a layer delegated to (`""` when none).
    pub allocated_experiment: Option<&'a str>,
    /// Layers: the parameter read (`""` for a whole-layer read).
    pub parameter_name: Option<&'a str>,
    /// Layers: `"true"`/`"false"`.
    pub is_explicit_parameter: Option<&'a str>,
    /// The deciding rule.
    pub rule_id: &'a str,
    /// The spec's version, as text.
    pub config_version: Option<i64>,
    /// The spec a config mapping answered with.
    pub override_config_name: Option<&'a str>,
}

/// One nested gate of an exposure, written as Statsig writes it (string values).
#[derive(Debug)]
pub struct SecondaryExposure<'a> {
    /// The nested gate.
    pub gate: &'a str,
    /// `"true"`/`"false"`.
    pub gate_value: &'a str,
    /// Its deciding rule.
    pub rule_id: &'a str,
}

/// An object key as [`JsonWriter::key`] takes it: `"name":`, quoted at compile time (the
/// schema's keys are plain ASCII, so there is nothing to escape).
macro_rules! key {
    ($name:literal) => {
        concat!("\"", $name, "\":").as_bytes()
    };
}

impl ExposureMessage<'_> {
    /// Appends the message bytes to `out` (a buffer the caller reuses): the bytes of the
    /// equivalent [`Envelope`] (tested below), written by hand
    /// because serde's per-byte string escaper was most of an exposure's cost, and the
    /// names, ids and rule ids it writes almost never need escaping.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut w = JsonWriter(out);
        w.0.extend_from_slice(b"{\"schema_version\":");
        w.number(self.schema_version);
        w.str_field(key!("event_id"), self.event_id);
        w.str_field(key!("event_name"), self.event_name);
        w.key(key!("event_time_ms"));
        w.number(self.event_time_ms);
        w.key(key!("received_at_ms"));
        w.number(self.received_at_ms);
        w.str_field(key!("key_id"), self.key_id);
        if let Some(sdk_type) = self.sdk_type {
            w.str_field(key!("sdk_type"), sdk_type);
        }
        if let Some(sdk_version) = self.sdk_version {
            w.str_field(key!("sdk_version"), sdk_version);
        }
        w.str_field(key!("unit_id_type"), self.unit_id_type);
        w.str_field(key!("unit_id"), self.unit_id);
        w.key(key!("user"));
        w.0.extend_from_slice(self.user.as_bytes());
        w.key(key!("metadata"));
        self.metadata.write(&mut w);
        if !self.secondary_exposures.is_empty() {
            w.key(key!("secondary_exposures"));
            for (i, e) in self.secondary_exposures.iter().enumerate() {
                w.0.push(if i == 0 { b'[' } else { b',' });
                w.0.extend_from_slice(b"{\"gate\":");
                w.string(e.gate);
                w.str_field(key!("gateValue"), e.gate_value);
                w.str_field(key!("ruleID"), e.rule_id);
                w.0.push(b'}');
            }
            w.0.push(b']');
        }
        w.key(key!("exposure"));
        let x = &self.exposure;
        w.0.extend_from_slice(b"{\"kind\":");
        w.string(&x.kind);
        w.str_field(key!("name"), &x.name);
        w.str_field(key!("rule_id"), &x.rule_id);
        if let Some(group) = &x.group_name {
            w.str_field(key!("group_name"), group);
        }
        if let Some(value) = x.gate_value {
            w.key(key!("gate_value"));
            w.0.extend_from_slice(if value { b"true" } else { b"false" });
        }
        w.0.extend_from_slice(b"}}");
    }
}

impl ExposureMetadata<'_> {
    fn write(&self, w: &mut JsonWriter<'_>) {
        w.0.push(b'{');
        let optional = [
            (key!("gate"), self.gate),
            (key!("config"), self.config),
            (key!("gateValue"), self.gate_value),
            (key!("rulePassed"), self.rule_passed),
            (key!("allocatedExperiment"), self.allocated_experiment),
            (key!("parameterName"), self.parameter_name),
            (key!("isExplicitParameter"), self.is_explicit_parameter),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                w.str_field(key, value);
            }
        }
        w.str_field(key!("ruleID"), self.rule_id);
        if let Some(version) = self.config_version {
            // Statsig sends the version as text.
            w.key(key!("configVersion"));
            w.0.push(b'"');
            w.number(version);
            w.0.push(b'"');
        }
        if let Some(mapped) = self.override_config_name {
            w.str_field(key!("overrideConfigName"), mapped);
        }
        w.0.push(b'}');
    }
}

/// Appends JSON to a buffer: structure by hand, strings escaped exactly as serde_json
/// escapes them (copied straight when nothing needs escaping).
struct JsonWriter<'o>(&'o mut Vec<u8>);

impl JsonWriter<'_> {
    fn string(&mut self, s: &str) {
        if needs_no_escape(s.as_bytes()) {
            self.0.reserve(s.len() + 2);
            self.0.push(b'"');
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(b'"');
        } else {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.0, s);
        }
    }

    /// `,"key":` after an open object's first field, `"key":` as its first; `quoted` is
    /// `"key":` (from [`key!`]).
    fn key(&mut self, quoted: &[u8]) {
        if self.0.last() != Some(&b'{') {
            self.0.push(b',');
        }
        self.0.extend_from_slice(quoted);
    }

    fn str_field(&mut self, quoted_key: &[u8], value: &str) {
        self.key(quoted_key);
        self.string(value);
    }

    fn number(&mut self, n: impl Into<i64>) {
        self.0
            .extend_from_slice(itoa::Buffer::new().format(n.into()).as_bytes());
    }
}

/// Whether JSON needs no escape in `s` (no control character, quote or backslash). Every
/// byte is checked without an early exit, so the loop runs on whole vector registers: the
/// strings here are short and almost never need escaping.
fn needs_no_escape(s: &[u8]) -> bool {
    s.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    })
}

/// The two user fields analysts filter on most, read from the raw user without a tree.
#[derive(Debug, Default, Deserialize)]
pub struct UserKeysView<'a> {
    /// `userID` (a string, or a number some clients send): raw JSON text.
    #[serde(rename = "userID", borrow, default)]
    pub user_id: Option<&'a RawValue>,
    /// `statsigEnvironment`.
    #[serde(rename = "statsigEnvironment", borrow, default)]
    pub environment: Option<EnvironmentView<'a>>,
}

/// `statsigEnvironment` of a user.
#[derive(Debug, Default, Deserialize)]
pub struct EnvironmentView<'a> {
    /// `tier` (`production`, `staging`, ...).
    #[serde(borrow, default)]
    pub tier: Option<Cow<'a, str>>,
}

impl<'a> EnvelopeView<'a> {
    /// Parses a message, refusing other schema versions (the same rule as [`Envelope::parse`]).
    pub fn parse(bytes: &'a [u8]) -> Result<EnvelopeView<'a>, String> {
        let view: EnvelopeView<'a> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        check_version(view.schema_version)?;
        if !view.user.get().starts_with('{') {
            return Err("user: must be an object".into());
        }
        if view.metadata.is_some_and(|m| !m.get().starts_with('{')) {
            return Err("metadata: must be an object".into());
        }
        Ok(view)
    }

    /// `user.userID` and `user.statsigEnvironment` (absent ones as `None`).
    pub fn user_keys(&self) -> UserKeysView<'a> {
        serde_json::from_str(self.user.get()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `docs/events.schema.json` is what this build writes; `GATEHOUSE_UPDATE_SCHEMA=1 cargo
    /// test -p gatehouse-events` rewrites it after a change to [`Envelope`].
    #[test]
    fn the_published_json_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.schema.json");
        let mut schema = serde_json::to_value(schemars::schema_for!(Envelope)).unwrap();
        schema["title"] = json!(format!(
            "Gatehouse Kafka message, schema_version {SCHEMA_VERSION}"
        ));
        schema["description"] = json!(
            "One event on a Gatehouse Kafka topic (default gatehouse.exposures and \
             gatehouse.events): one JSON object per message, the message key its unit_id. \
             Documented in docs/events.md; generated from the gatehouse-events crate."
        );
        schema["properties"]["schema_version"]["const"] = json!(SCHEMA_VERSION);
        // Rustdoc links read as plain code spans outside rustdoc.
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let text = text.replace("[`", "`").replace("`]", "`");
        if std::env::var_os("GATEHOUSE_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let published = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            published == text,
            "{path} is stale: run GATEHOUSE_UPDATE_SCHEMA=1 cargo test -p gatehouse-events"
        );
    }

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let env = Envelope {
            schema_version: SCHEMA_VERSION,
            event_id: "0b1e2c9a-0000-4000-8000-000000000000".into(),
            event_name: "purchase".into(),
            event_time_ms: 1,
            received_at_ms: 2,
            key_id: "abc".into(),
            sdk_type: Some("py-server".into()),
            sdk_version: None,
            unit_id_type: "userID".into(),
            unit_id: "u1".into(),
            user: json!({"userID": "u1"}),
            value: Some(json!(9.5)),
            metadata: Map::new(),
            secondary_exposures: vec![],
            exposure: None,
        };
        assert_eq!(Envelope::parse(&env.to_bytes()).unwrap(), env);
        let mut other = serde_json::to_value(&env).unwrap();
        other["schema_version"] = json!(2);
        assert!(Envelope::parse(other.to_string().as_bytes())
            .unwrap_err()
            .contains("schema_version 2"));
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut cases: Vec<String> = (0u8..0x80).map(|b| format!("ab{}cd", b as char)).collect();
        cases.extend(
            [
                "",
                "n\u{e9}",
                "\u{7f}",
                "\u{2028}",
                "0123456789abcdef0123456789abcdef\"",
            ]
            .map(String::from),
        );
        for case in cases {
            let mut out = Vec::new();
            JsonWriter(&mut out).string(&case);
            assert_eq!(out, serde_json::to_vec(&case).unwrap(), "{case:?}");
        }
    }

    #[test]
    fn the_borrowed_exposure_writes_the_bytes_of_the_owned_envelope() {
        let user = json!({"userID": "u\"1", "custom": {"plan": "pro"}});
        let user_text = user.to_string();
        let secondary = [
            SecondaryExposure {
                gate: "holdout",
                gate_value: "false",
                rule_id: "r0",
            },
            SecondaryExposure {
                gate: "n\u{e9}\n",
                gate_value: "true",
                rule_id: "r\\1",
            },
        ];
        struct Case<'a> {
            kind: &'a str,
            metadata: ExposureMetadata<'a>,
            expected_metadata: Value,
            group: Option<&'a str>,
            gate_value: Option<bool>,
        }
        let cases = [
            Case {
                kind: "gate",
                metadata: ExposureMetadata {
                    gate: Some("g"),
                    gate_value: Some("true"),
                    rule_id: "rule",
                    config_version: Some(7),
                    override_config_name: Some("new\"g"),
                    ..Default::default()
                },
                expected_metadata: json!({"gate": "g", "gateValue": "true", "ruleID": "rule",
                                          "configVersion": "7", "overrideConfigName": "new\"g"}),
                group: None,
                gate_value: Some(true),
            },
            Case {
                kind: "config",
                metadata: ExposureMetadata {
                    config: Some("c\"q"),
                    rule_passed: Some("false"),
                    rule_id: "rule",
                    ..Default::default()
                },
                expected_metadata: json!({"config": "c\"q", "rulePassed": "false", "ruleID": "rule"}),
                group: Some("Con\ttrol\u{1}"),
                gate_value: None,
            },
            Case {
                kind: "layer",
                metadata: ExposureMetadata {
                    config: Some("l"),
                    allocated_experiment: Some(""),
                    parameter_name: Some(""),
                    is_explicit_parameter: Some("false"),
                    rule_id: "rule",
                    ..Default::default()
                },
                expected_metadata: json!({"config": "l", "allocatedExperiment": "",
                    "parameterName": "", "isExplicitParameter": "false", "ruleID": "rule"}),
                group: None,
                gate_value: None,
            },
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let Case {
                kind,
                metadata,
                expected_metadata,
                group,
                gate_value,
            } = case;
            let message = ExposureMessage {
                schema_version: SCHEMA_VERSION,
                event_id: "0b1e2c9a-0000-4000-8000-000000000000",
                event_name: "statsig::gate_exposure",
                event_time_ms: 1,
                received_at_ms: 2,
                key_id: "abc",
                sdk_type: (i != 1).then_some("py-server"),
                sdk_version: (i == 0).then_some("1.0"),
                unit_id_type: "userID",
                unit_id: "u\"1",
                user: &user_text,
                metadata,
                secondary_exposures: if i == 2 { &[] } else { &secondary },
                exposure: ExposureView {
                    kind: kind.into(),
                    name: "g".into(),
                    rule_id: "rule".into(),
                    group_name: group.map(Into::into),
                    gate_value,
                },
            };
            let owned = Envelope {
                schema_version: SCHEMA_VERSION,
                event_id: message.event_id.into(),
                event_name: message.event_name.into(),
                event_time_ms: 1,
                received_at_ms: 2,
                key_id: "abc".into(),
                sdk_type: message.sdk_type.map(Into::into),
                sdk_version: message.sdk_version.map(Into::into),
                unit_id_type: "userID".into(),
                unit_id: "u\"1".into(),
                user: user.clone(),
                value: None,
                metadata: expected_metadata.as_object().unwrap().clone(),
                secondary_exposures: message
                    .secondary_exposures
                    .iter()
                    .map(|e| {
                        let e = json!({"gate": e.gate, "gateValue": e.gate_value,
                                       "ruleID": e.rule_id});
                        e.as_object().unwrap().clone()
                    })
                    .collect(),
                exposure: Some(Exposure {
                    kind: kind.into(),
                    name: "g".into(),
                    rule_id: "rule".into(),
                    group_name: group.map(Into::into),
                    gate_value,
                }),
            };
            let mut bytes = Vec::new();
            message.write_to(&mut bytes);
            assert_eq!(
                String::from_utf8(bytes.clone()).unwrap(),
                String::from_utf8(owned.to_bytes()).unwrap()
            );
            assert_eq!(Envelope::parse(&bytes).unwrap(), owned);
            assert!(EnvelopeView::parse(&bytes).is_ok());
        }
    }

    #[test]
    fn the_view_accepts_what_the_owned_parse_accepts_and_reads_the_same() {
        let valid = json!({
            "schema_version": 1, "event_id": "e\u{e9}", "event_name": "statsig::gate_exposure",
            "event_time_ms": 5, "received_at_ms": 6, "key_id": "k", "sdk_type": "js",
            "unit_id_type": "userID", "unit_id": "u\"1",
            "user": {"userID": 42, "statsigEnvironment": {"tier": "staging"}},
            "metadata": {"gate": "g"},
            "secondary_exposures": [{"gate": "n", "gateValue": "false", "ruleID": "r"},
                                    {"gate": "m", "gateValue": true}],
            "exposure": {"kind": "gate", "name": "g", "rule_id": "r", "gate_value": true}
        });
        let variant = |path: &str, v: Value| {
            let mut m = valid.clone();
            match v {
                Value::Null if path.starts_with('-') => {
                    m.as_object_mut().unwrap().remove(&path[1..]);
                }
                v => m[path] = v,
            }
            m.to_string()
        };
        let cases = [
            valid.to_string(),
            variant("metadata", Value::Null),
            variant("-metadata", Value::Null),
            variant("-secondary_exposures", Value::Null),
            variant("-sdk_type", Value::Null),
            variant("value", json!("9.5")),
            variant("schema_version", json!(2)),
            variant("user", json!("u")),
            variant("user", Value::Null),
            variant("metadata", json!([1])),
            variant("secondary_exposures", json!(["g"])),
            variant("-event_id", Value::Null),
            variant("event_time_ms", json!("5")),
            variant("exposure", json!({"kind": "gate"})),
            "{not json".into(),
        ];
        for case in &cases {
            let owned = Envelope::parse(case.as_bytes());
            let view = EnvelopeView::parse(case.as_bytes());
            assert_eq!(owned.is_ok(), view.is_ok(), "{case}: {owned:?} vs {view:?}");
            let (Ok(owned), Ok(view)) = (owned, view) else {
                continue;
            };
            assert_eq!(owned.event_id, view.event_id);
            assert_eq!(owned.unit_id, view.unit_id);
            assert_eq!(owned.sdk_type.as_deref(), view.sdk_type.as_deref());
            let user: Value = serde_json::from_str(view.user.get()).unwrap();
            assert_eq!(owned.user, user);
            let metadata = view
                .metadata
                .map_or(Map::new(), |m| serde_json::from_str(m.get()).unwrap());
            assert_eq!(owned.metadata, metadata);
            assert_eq!(
                owned.secondary_exposures.len(),
                view.secondary_exposures.len()
            );
            assert_eq!(owned.exposure.is_some(), view.exposure.is_some());
        }
        let view_bytes = valid.to_string();
        let view = EnvelopeView::parse(view_bytes.as_bytes()).unwrap();
        assert_eq!(view.event_id, "e\u{e9}");
        let keys = view.user_keys();
        assert_eq!(keys.user_id.and_then(raw_text).as_deref(), Some("42"));
        assert_eq!(keys.environment.unwrap().tier.as_deref(), Some("staging"));
        let gates: Vec<_> = view
            .secondary_exposures
            .iter()
            .map(|e| e.gate_value())
            .collect();
        assert_eq!(gates, [Some(false), Some(true)]);
        assert_eq!(
            view.secondary_exposures[0]
                .gate
                .and_then(raw_text)
                .as_deref(),
            Some("n")
        );
    }
}
