//! The Kafka message schema: the one contract between the front door (producer), the sink
//! and every analytics consumer. Its own crate so the sink can depend on it without pulling
//! in the HTTP server.
//!
//! One message = one event as JSON; the message key is the event's `unit_id` so one unit's
//! events stay ordered in one partition. `schema_version` changes only with a breaking
//! change; added optional fields keep the version. Documented in `docs/events.md`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Default topic for exposures.
pub const EXPOSURES_TOPIC: &str = "gatehouse.exposures";
/// Default topic for custom events.
pub const EVENTS_TOPIC: &str = "gatehouse.events";

/// One event on a Gatehouse topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// Server-assigned unique id (UUID v4 text): consumers drop duplicates on it.
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
    pub user: Value,
    /// Custom events: the event's value (string or number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The event's metadata (exposures: Statsig's string-valued metadata).
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Exposures: the nested gates that decided the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_exposures: Vec<Value>,
    /// Exposures: the typed exposure fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,
}

/// The typed part of an exposure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl Envelope {
    /// Parses a message, refusing other schema versions.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, String> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if env.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} (this build reads {SCHEMA_VERSION})",
                env.schema_version
            ));
        }
        Ok(env)
    }

    /// The message bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
