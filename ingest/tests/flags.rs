//! Flags of the real binary that in-process tests cannot reach: the body limits
//! (`--max-body-bytes`, `--max-decoded-body-bytes`), what slow or many clients get
//! (`--read-timeout-secs`, `--max-connections`), the browser origins (`--cors-origins`) and
//! the log format (`--log-format`) and client keys that may download the ruleset
//! (`--client-specs-key`) reach the server they configure, bad values stop it with a message
//! naming the flag, and SDK exceptions reach the log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, raw_request, wait_for_exit, wait_until_listening};

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/specs.json");

fn gatehouse(port: u16, flags: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--specs", SPECS, "--client-key", "client-flags"])
        .args(flags)
        .env_remove("GATEHOUSE_KAFKA_BROKERS") // the embedded Kafka
        .env_remove("GATEHOUSE_CORS_ORIGINS");
    command
}

/// A running server, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(flags: &[&str]) -> (Running, u16) {
    let port = free_port();
    (listening(gatehouse(port, flags), port), port)
}

/// Runs `command` (a server on `port`) until it listens.
fn listening(mut command: Command, port: u16) -> Running {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_until_listening(port, "gatehouse serve");
    running
}

/// The raw response (status line, headers, body) to one request, lowercased.
fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &[u8]) -> String {
    raw_request(port, method, path, headers, body).to_ascii_lowercase()
}

#[test]
fn body_limits_are_the_ones_given() {
    let (_server, port) = start(&[
        "--max-body-bytes",
        "4000",
        "--max-decoded-body-bytes",
        "20000",
    ]);
    let initialize = "/v1/initialize?k=client-flags";
    let padded = |len: usize| {
        let mut body = br#"{"user":{"userID":"u1"}}"#.to_vec();
        body.resize(len, b' ');
        body
    };
    assert!(request(port, "POST", initialize, &[], &padded(3900)).starts_with("http/1.1 200"));
    let over = request(port, "POST", initialize, &[], &padded(4100));
    assert!(over.starts_with("http/1.1 413"), "{over}");
    assert!(over.contains("body over 4000 bytes"), "{over}");

    let gzip = |body: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(body).unwrap();
        gz.finish().unwrap()
    };
    let header = ["content-encoding: gzip"];
    let (fits, bomb) = (gzip(&padded(19_000)), gzip(&padded(21_000)));
    assert!(fits.len() < 4000 && bomb.len() < 4000);
    assert!(request(port, "POST", initialize, &header, &fits).starts_with("http/1.1 200"));
    let over = request(port, "POST", initialize, &header, &bomb);
    assert!(over.starts_with("http/1.1 413"), "{over}");
    assert!(
        over.contains("body over 20000 bytes once decompressed"),
        "{over}"
    );
}

#[test]
fn slow_clients_are_cut_off_after_the_read_timeout() {
    let (_server, port) = start(&["--read-timeout-secs", "1"]);
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    // Half a head: the connection is closed within two timeouts.
    let mut half_head = connect();
    half_head
        .write_all(b"POST /v1/initialize HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let read = half_head.read_to_end(&mut out);
    let took = started.elapsed();
    let closed = match &read {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "still open: {read:?}");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A body that stops short: 408, a status the SDKs retry.
    let mut short_body = connect();
    short_body
        .write_all(b"POST /v1/initialize?k=client-flags HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"user\":")
        .unwrap();
    let mut answer = String::new();
    short_body.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("the body did not arrive within 1 s"),
        "{answer}"
    );

    // A kept-alive connection left idle is closed too.
    let mut idle = connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    idle.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let metrics = request(port, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("gatehouse_connections_closed_idle_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_connections_open 1\n"),
        "{metrics}"
    );
}

#[test]
fn connections_past_the_limit_wait_for_a_free_slot() {
    let (_server, port) = start(&["--max-connections", "1"]);
    // An answered request on a kept-alive connection: it has the only slot, and keeps it.
    let mut holder = TcpStream::connect(("127.0.0.1", port)).unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    holder
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut answered = Vec::new();
    while !answered.ends_with(b"\"ok\"}") {
        let mut chunk = [0u8; 512];
        let n = holder.read(&mut chunk).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answered));
        answered.extend_from_slice(&chunk[..n]);
    }
    let mut waiting = TcpStream::connect(("127.0.0.1", port)).unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut first = [0u8; 1];
    let early = waiting.read(&mut first);
    assert!(early.is_err(), "answered past the limit: {early:?}");
    drop(holder);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    waiting.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn every_closed_connection_gives_its_slot_back() {
    let (_server, port) = start(&["--max-connections", "4"]);
    // Far more connections than slots, one after another: a leaked slot would stall one.
    for _ in 0..200 {
        assert!(request(port, "GET", "/healthz", &[], b"").starts_with("http/1.1 200"));
    }
    let metrics = request(port, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("gatehouse_connections_open 1\n"),
        "{metrics}"
    );
}

#[test]
fn only_the_listed_origins_may_call_from_a_browser() {
    let (_server, port) = start(&[
        "--cors-origins",
        "https://shop.example.com,https://admin.example.com",
    ]);
    let preflight = |origin: &str| {
        request(
            port,
            "OPTIONS",
            "/v1/initialize",
            &[
                &format!("origin: {origin}"),
                "access-control-request-method: POST",
            ],
            b"",
        )
    };
    let listed = preflight("https://admin.example.com");
    assert!(listed.starts_with("http/1.1 204"), "{listed}");
    assert!(listed.contains("access-control-allow-origin: https://admin.example.com\r\n"));
    assert!(listed.contains("vary: origin\r\n"));
    let other = preflight("https://evil.example.com");
    assert!(other.starts_with("http/1.1 405"), "{other}");
    assert!(!other.contains("access-control-allow-origin"), "{other}");
    assert!(other.contains("vary: origin\r\n"), "{other}");
    let answer = request(
        port,
        "POST",
        "/v1/initialize?k=client-flags",
        &["origin: https://shop.example.com"],
        br#"{"user":{"userID":"u1"}}"#,
    );
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("access-control-allow-origin: https://shop.example.com\r\n"));

    let (_server, port) = start(&["--cors-origins", ""]);
    let answer = request(
        port,
        "POST",
        "/v1/initialize?k=client-flags",
        &["origin: https://shop.example.com"],
        br#"{"user":{"userID":"u1"}}"#,
    );
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("access-control-allow-origin"), "{answer}");
}

#[test]
fn logs_are_json_lines_when_asked_and_never_coloured_in_a_pipe() {
    for format in ["json", "text"] {
        let mut child = gatehouse(0, &["--log-format", format])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let _running = Running(child);
        let first = std::io::BufRead::lines(std::io::BufReader::new(stderr))
            .next()
            .unwrap()
            .unwrap();
        assert!(!first.contains('\x1b'), "{first}");
        if format == "json" {
            let line: serde_json::Value = serde_json::from_str(&first).unwrap();
            assert!(line["level"].is_string(), "{first}");
            assert!(line["fields"]["message"].is_string(), "{first}");
        } else {
            assert!(serde_json::from_str::<serde_json::Value>(&first).is_err());
        }
    }
}

#[test]
fn exceptions_reported_with_a_known_key_are_logged() {
    let port = free_port();
    let mut child = gatehouse(port, &["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _running = Running(child);
    let (lines, logged) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else {
                continue;
            };
            if line["fields"]["message"] == "SDK reported an exception" && lines.send(line).is_err()
            {
                return;
            }
        }
    });
    wait_until_listening(port, "gatehouse serve");
    let report = |key: &str, tag: &str| {
        let body =
            serde_json::json!({"tag": tag, "exception": "TypeError", "info": "x".repeat(900)});
        let answer = request(
            port,
            "POST",
            "/v1/sdk_exception",
            &[
                &format!("statsig-api-key: {key}"),
                "statsig-sdk-type: javascript-client",
            ],
            body.to_string().as_bytes(),
        );
        assert!(answer.starts_with("http/1.1 202"), "{answer}");
    };
    report("client-unknown", "from_a_stranger");
    report("client-flags", "from_our_sdk");
    let line = logged.recv_timeout(Duration::from_secs(10)).unwrap();
    let fields = &line["fields"];
    assert_eq!(line["level"], "WARN");
    assert_eq!(
        fields["tag"], "from_our_sdk",
        "unknown keys are not logged: {line}"
    );
    assert_eq!(fields["exception"], "TypeError");
    assert_eq!(fields["sdk_type"], "javascript-client");
    assert_eq!(fields["info"].as_str().unwrap().len(), 500, "clipped");
    assert!(fields["key_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[test]
fn only_a_client_specs_key_downloads_the_ruleset_among_client_keys() {
    let (_server, port) = start(&["--client-specs-key", "client-on-device"]);
    let dcs = |key: &str| {
        request(
            port,
            "GET",
            &format!("/v1/download_config_specs?k={key}"),
            &[],
            b"",
        )
    };
    let allowed = dcs("client-on-device");
    assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
    assert!(allowed.contains("\"feature_gates\""), "{allowed}");
    let refused = dcs("client-flags");
    assert!(refused.starts_with("http/1.1 403"), "{refused}");
    // It is a client key in every other way: initialize, not the server-only endpoints.
    let initialize = "/v1/initialize?k=client-on-device";
    let body = br#"{"user":{"userID":"u1"}}"#;
    assert!(request(port, "POST", initialize, &[], body).starts_with("http/1.1 200"));

    let port = free_port();
    let mut command = gatehouse(port, &[]);
    command.env("GATEHOUSE_CLIENT_SPECS_KEYS", "client-env-a,client-env-b");
    let _server = listening(command, port);
    for key in ["client-env-a", "client-env-b"] {
        let path = format!("/v1/download_config_specs?k={key}");
        assert!(request(port, "GET", &path, &[], b"").starts_with("http/1.1 200"));
    }
}

#[test]
fn bad_values_stop_the_server_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let kafka_config = dir.path().join("kafka.properties");
    std::fs::write(&kafka_config, "security.protocol=SSL\nacks=1\n").unwrap();
    let kafka_config = kafka_config.to_str().unwrap();
    for (flags, message) in [
        (
            &[
                "--kafka-brokers",
                "127.0.0.1:1",
                "--kafka-config",
                kafka_config,
            ][..],
            "kafka.properties: line 2: acks: not a connection setting",
        ),
        (
            &[
                "--kafka-brokers",
                "127.0.0.1:1",
                "--kafka-config",
                "/no/such/file",
            ],
            "--kafka-config /no/such/file: No such file",
        ),
        (
            &["--kafka-config", kafka_config],
            "--kafka-config needs --kafka-brokers",
        ),
        (
            &["--cors-origins", "shop.example.com"][..],
            "--cors-origins",
        ),
        (&["--cors-origins", "*,https://a.example"], "--cors-origins"),
        (&["--max-body-bytes", "0"], "--max-body-bytes"),
        (&["--read-timeout-secs", "0"], "--read-timeout-secs"),
        (&["--max-connections", "0"], "--max-connections"),
        (
            &["--client-specs-key", "secret-x"],
            "--client-specs-key: a key must start with client-",
        ),
    ] {
        let mut child = gatehouse(0, flags)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = format!("{flags:?}: the server started");
        let status = wait_for_exit(&mut child, Duration::from_secs(20), &started);
        assert!(!status.success(), "{flags:?}");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}
