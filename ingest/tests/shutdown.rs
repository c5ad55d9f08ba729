//! Graceful shutdown of the real binary: `gatehouse up` gets SIGTERM while a request is half
//! received and exposures are still queued; the request is answered, and every exposure
//! the front door logged is in the Parquet files when the process exits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{free_port, parquet_rows, raw_request, wait_for_exit, wait_until_listening};

fn request(port: u16, path: &str, body: &str) -> String {
    raw_request(
        port,
        "POST",
        path,
        &["statsig-api-key: secret-dev"],
        body.as_bytes(),
    )
}

#[test]
fn sigterm_answers_in_flight_requests_and_flushes_every_exposure_to_parquet() {
    let data = tempfile_dir();
    let port = free_port();
    let specs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/specs.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "up",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--specs",
            specs,
        ])
        .args(["--server-key", "secret-dev", "--data-dir"])
        .arg(&data)
        .env_remove("GATEHOUSE_KAFKA_BROKERS") // the embedded Kafka
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_listening(port, "gatehouse up");

    let gate = |i: u32| {
        format!(r#"{{"user":{{"userID":"u{i}","country":"US"}},"gateName":"new_checkout"}}"#)
    };
    for i in 0..300 {
        assert!(request(port, "/v1/check_gate", &gate(i)).starts_with("HTTP/1.1 200"));
    }
    // A request whose body is still arriving when the signal comes.
    let body = gate(300);
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        slow,
        "POST /v1/check_gate HTTP/1.1\r\nhost: x\r\nstatsig-api-key: secret-dev\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));
    slow.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = slow.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "in-flight request: {answer:?}"
    );

    let status = wait_for_exit(
        &mut child,
        Duration::from_secs(60),
        "gatehouse up did not stop",
    );
    assert!(status.success(), "{status}");
    assert_eq!(parquet_rows(&data.join("exposures")), 301);
    let _ = std::fs::remove_dir_all(&data);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-shutdown-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
