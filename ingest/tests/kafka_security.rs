//! `--kafka-config` against the real broker's SASL_SSL listener (scripts/kafka.sh starts it
//! with a self-signed certificate and a user for PLAIN and SCRAM-SHA-256): `gatehouse up`
//! given the settings file reaches it with every Kafka client it has (the topics' admin, the
//! producer, the console's state topic, the sink's consumer), SCRAM works as PLAIN does, and
//! with a wrong password the door is never ready and says why.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, parquet_rows, rand_suffix, raw_request, wait_for_exit};

/// The broker's secured listener and its client settings file; a bare `cargo test` has none
/// and skips (saying so).
fn secure_broker() -> Option<(String, PathBuf)> {
    let brokers = std::env::var("GATEHOUSE_KAFKA_SECURE_BROKERS").ok();
    let config = std::env::var("GATEHOUSE_KAFKA_SECURE_CONFIG").ok();
    if brokers.is_none() || config.is_none() {
        eprintln!(
            "GATEHOUSE_KAFKA_SECURE_BROKERS unset: scripts/test.sh runs this against Apache Kafka"
        );
    }
    Some((brokers?, config?.into()))
}

/// A `gatehouse` process, killed when dropped (a failed assertion leaves none behind).
struct Door(Child);

impl Drop for Door {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gatehouse up` on the secured listener, its topics, console state topic and sink group
/// new to this run.
fn up(port: u16, brokers: &str, config: &std::path::Path, data: &std::path::Path) -> Door {
    let run = format!("secure.{}.{}", std::process::id(), rand_suffix());
    let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--kafka-brokers", brokers, "--kafka-config"])
        .arg(config)
        .args(["--exposures-topic", &format!("{run}.exposures")])
        .args(["--events-topic", &format!("{run}.events")])
        .args(["--state-topic", &format!("{run}.control")])
        .args(["--group", &format!("{run}.sink")])
        .args(["--server-key", "secret-sec", "--console-key", "console-sec"])
        .args(["--max-file-age-secs", "1", "--data-dir"])
        .arg(data)
        .env_remove("GATEHOUSE_KAFKA_BROKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Door(child)
}

fn get(port: u16, path: &str) -> String {
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => raw_request(port, "GET", path, &[], b""),
        Err(_) => String::new(),
    }
}

/// Polls `/readyz` until `within` has passed or it answers 200; true if it did.
fn ready_within(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if get(port, "/readyz").starts_with("HTTP/1.1 200") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `gatehouse serve` on the secured listener with the settings file `config`.
fn serve(port: u16, brokers: &str, config: &std::path::Path) -> Door {
    let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--kafka-brokers", brokers, "--kafka-config"])
        .arg(config)
        .args(["--server-key", "secret-sec", "--specs"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/examples/specs.json"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Door(child)
}

fn post(port: u16, path: &str, key: &str, body: &str) -> String {
    let key = format!("statsig-api-key: {key}");
    raw_request(port, "POST", path, &[&key], body.as_bytes())
}

#[test]
fn every_kafka_client_reaches_a_sasl_ssl_broker_through_the_settings_file() {
    let Some((brokers, config)) = secure_broker() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut door = up(port, &brokers, &config, data.path());
    // Ready: the producer reached the broker (and `up` created its topics, and the console
    // replayed its state topic, before it listened).
    assert!(
        ready_within(port, Duration::from_secs(60)),
        "not ready on the SASL_SSL listener"
    );

    // A gate made through the console comes back through the state topic.
    let gate = r#"{"name":"sec_gate","rules":[{"name":"all","passPercentage":100,"conditions":[{"type":"public"}]}]}"#;
    let made = post(port, "/console/v1/gates", "console-sec", gate);
    assert!(made.starts_with("HTTP/1.1 201"), "{made}");
    let check = r#"{"user":{"userID":"u1"},"gateName":"sec_gate"}"#;
    let answer = post(port, "/v1/check_gate", "secret-sec", check);
    assert!(answer.contains(r#""value":true"#), "{answer}");

    // An event the broker acknowledged (202) reaches Parquet through the sink's consumer.
    let event = r#"{"events":[{"eventName":"buy","user":{"userID":"u1"}}]}"#;
    let logged = post(port, "/v1/log_event", "secret-sec", event);
    assert!(logged.starts_with("HTTP/1.1 202"), "{logged}");
    let events = data.path().join("events");
    let deadline = Instant::now() + Duration::from_secs(60);
    while parquet_rows(&events) < 1 {
        assert!(Instant::now() < deadline, "the event never reached Parquet");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &door.0.id().to_string()])
        .status();
    let status = wait_for_exit(&mut door.0, Duration::from_secs(60), "up did not stop");
    assert!(status.success(), "{status}");
    assert_eq!(parquet_rows(&events), 1);
    assert_eq!(
        parquet_rows(&data.path().join("exposures")),
        1,
        "the check_gate's exposure"
    );
}

#[test]
fn a_wrong_password_leaves_the_front_door_unready() {
    let Some((brokers, config)) = secure_broker() else {
        return;
    };
    let settings = std::fs::read_to_string(&config).unwrap();
    assert!(settings.contains("sasl.password="), "{settings}");
    let wrong: String = settings
        .lines()
        .map(|line| match line.starts_with("sasl.password=") {
            true => "sasl.password=not-the-password\n".to_owned(),
            false => format!("{line}\n"),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let wrong_config = dir.path().join("wrong.properties");
    std::fs::write(&wrong_config, wrong).unwrap();
    let port = free_port();
    let _door = serve(port, &brokers, &wrong_config);
    common::wait_until_listening(port, "gatehouse serve");
    // With the right password the same door is ready within a second or two (above).
    assert!(!ready_within(port, Duration::from_secs(5)));
    let readyz = get(port, "/readyz");
    assert!(
        readyz.contains("no Kafka broker reachable; last error: ")
            && readyz.contains("Authentication failed"),
        "{readyz}"
    );
}

#[test]
fn scram_sha_256_authenticates_as_plain_does() {
    let Some((brokers, _)) = secure_broker() else {
        return;
    };
    let Ok(config) = std::env::var("GATEHOUSE_KAFKA_SECURE_SCRAM_CONFIG") else {
        eprintln!("GATEHOUSE_KAFKA_SECURE_SCRAM_CONFIG unset: scripts/test.sh runs this against Apache Kafka");
        return;
    };
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("sasl.mechanisms=SCRAM-SHA-256"));
    let port = free_port();
    let _door = serve(port, &brokers, config.as_ref());
    common::wait_until_listening(port, "gatehouse serve");
    assert!(
        ready_within(port, Duration::from_secs(60)),
        "{}",
        get(port, "/readyz")
    );
    let event = r#"{"events":[{"eventName":"scram","user":{"userID":"u1"}}]}"#;
    let logged = post(port, "/v1/log_event", "secret-sec", event);
    assert!(logged.starts_with("HTTP/1.1 202"), "{logged}");
}
