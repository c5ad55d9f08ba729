//! How every Kafka client of the process reaches the brokers: the bootstrap list and the
//! connection settings of a `--kafka-config` file (TLS, SASL, a client id), given alike to
//! the front door's producers, its console topic and the sink's consumer, so that a cluster
//! that asks for authentication (a managed Kafka, a secured one) is reached by all of them.

use std::path::Path;

use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

/// The librdkafka settings a `--kafka-config` file may hold, by name or prefix: how to reach
/// and authenticate to the brokers. Everything else (acks, idempotence, linger, compression,
/// the consumer group, offsets) Gatehouse sets itself for the guarantees it documents, so a
/// file naming one is refused rather than overridden in silence.
const CONNECTION_SETTINGS: &[&str] = &[
    "security.protocol",
    "sasl.",
    "ssl.",
    "enable.ssl.",
    "enable.sasl.",
    "https.",
    "socket.",
    "broker.address.",
    "client.id",
    "client.rack",
    "client.dns.lookup",
    "reconnect.backoff.",
    "connections.max.idle.ms",
    "debug",
];

/// The configuration every client starts from: the bootstrap list alone.
pub fn connection(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

/// [`connection`] plus the settings of a properties file (`key=value` lines, `#` and `!`
/// comments, as Kafka's own clients and kcat read them), checked by librdkafka now so that
/// a typo stops the process at start with the file, line and setting named.
pub fn with_settings_file(brokers: &str, path: &Path) -> Result<ClientConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--kafka-config {}: {e}", path.display()))?;
    with_settings(brokers, &text).map_err(|e| format!("--kafka-config {}: {e}", path.display()))
}

/// [`connection`] plus the settings in `text` (a properties file's content).
fn with_settings(brokers: &str, text: &str) -> Result<ClientConfig, String> {
    let mut config = connection(brokers);
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let number = number + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {number}: expected key=value"));
        };
        let (key, value) = (key.trim(), value.trim_start());
        if key == "bootstrap.servers" {
            return Err(format!(
                "line {number}: bootstrap.servers: give the brokers with --kafka-brokers"
            ));
        }
        if !CONNECTION_SETTINGS
            .iter()
            .any(|allowed| key == *allowed || (allowed.ends_with('.') && key.starts_with(allowed)))
        {
            return Err(format!(
                "line {number}: {key}: not a connection setting (the file takes security.protocol, sasl.*, ssl.*, socket.*, client.id and the like; Gatehouse sets the rest itself)"
            ));
        }
        config.set(key, value);
        // Checked one by one, so that the error names this line.
        if let Err(error) = config.create_native_config() {
            return Err(match error {
                KafkaError::ClientConfig(_, description, _, _) => {
                    format!("line {number}: {description}")
                }
                other => format!("line {number}: {other}"),
            });
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A managed cluster's file (SASL over TLS) is taken as written, comments and all.
    #[test]
    fn a_sasl_ssl_file_is_taken_as_written() {
        let config = with_settings(
            "b1:9092",
            "# from the provider\n\
             security.protocol=SASL_SSL\n\
             sasl.mechanisms = PLAIN\n\
             sasl.username=gatehouse\n\
             sasl.password=p=a=s=s\n\
             ! another comment\n\n\
             ssl.endpoint.identification.algorithm=https\n\
             client.id=door-1\n",
        )
        .unwrap();
        assert_eq!(config.get("bootstrap.servers"), Some("b1:9092"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanisms"), Some("PLAIN"));
        assert_eq!(config.get("sasl.password"), Some("p=a=s=s"));
        assert_eq!(config.get("client.id"), Some("door-1"));
    }

    /// Each refusal names the line and what is wrong with it.
    #[test]
    fn a_file_that_would_change_a_guarantee_or_has_a_typo_is_refused_by_line() {
        let error = |text: &str| with_settings("b1:9092", text).unwrap_err();
        assert_eq!(
            error("security.protocol=SSL\nacks=1\n"),
            "line 2: acks: not a connection setting (the file takes security.protocol, sasl.*, ssl.*, socket.*, client.id and the like; Gatehouse sets the rest itself)"
        );
        assert!(error("enable.idempotence=false").starts_with("line 1: enable.idempotence: not"));
        assert!(error("group.id=mine").starts_with("line 1: group.id: not"));
        assert_eq!(
            error("bootstrap.servers=x:1"),
            "line 1: bootstrap.servers: give the brokers with --kafka-brokers"
        );
        assert_eq!(error("\nsasl.username"), "line 2: expected key=value");
        let typo = error("security.protocol=SASL_SSLX");
        assert!(
            typo.starts_with("line 1: ") && typo.contains("security.protocol"),
            "{typo}"
        );
        let unknown = error("ssl.no.such.setting=1");
        assert!(unknown.starts_with("line 1: "), "{unknown}");
    }
}
