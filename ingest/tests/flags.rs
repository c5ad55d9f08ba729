//! Flags of the real binary that in-process tests cannot reach: the body limits
//! (`--max-body-bytes`, `--max-decoded-body-bytes`) and the browser origins (`--cors-origins`)
//! reach the server they configure, and bad values stop it with a message naming the flag.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = gatehouse(port, flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gatehouse serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (running, port)
}

/// The raw response (status line, headers, body) to one request.
fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out.to_ascii_lowercase()
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
fn bad_values_stop_the_server_naming_the_flag() {
    for (flags, message) in [
        (
            &["--cors-origins", "shop.example.com"][..],
            "--cors-origins",
        ),
        (&["--cors-origins", "*,https://a.example"], "--cors-origins"),
        (&["--max-body-bytes", "0"], "--max-body-bytes"),
    ] {
        let mut child = gatehouse(0, flags)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{flags:?}: the server started");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
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
