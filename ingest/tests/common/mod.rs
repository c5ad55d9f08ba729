//! Test harness: a front door on 127.0.0.1 with test keys, its specs in a temp file.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ingest::http::{serve, AppState, Limits};
use ingest::producer::EventSink;
use serde_json::Value;
use tokio::sync::oneshot;

pub const SERVER: &str = "secret-test-server";
pub const CLIENT: &str = "client-test-client";
pub const CLIENT_DCS: &str = "client-test-dcs";
pub const CONSOLE: &str = "console-test";

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evaluator/tests/data"
    ))
    .join(name)
}

pub struct Server {
    pub addr: SocketAddr,
    pub specs: PathBuf,
    pub state: Arc<AppState>,
    /// Holds `specs`; removed when the server is dropped.
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Server {
    pub async fn start(specs_json: &[u8]) -> Server {
        Server::start_with(specs_json, None).await
    }

    pub async fn start_with(specs_json: &[u8], events: Option<Arc<EventSink>>) -> Server {
        Server::start_with_dedupe(specs_json, events, None).await
    }

    pub async fn start_with_dedupe(
        specs_json: &[u8],
        events: Option<Arc<EventSink>>,
        dedupe: Option<ingest::dedupe::ExposureDedupe>,
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-test-")
            .tempdir()
            .unwrap();
        let specs = dir.path().join("specs.json");
        std::fs::write(&specs, specs_json).unwrap();

        let state = Arc::new(AppState {
            limits: Limits {
                max_body: 64 * 1024,
                max_decoded: 256 * 1024,
                ..Limits::default()
            },
            events,
            dedupe,
            ..AppState::default()
        });
        state.keys.insert(SERVER, [], None).unwrap();
        state.keys.insert(CLIENT, [], None).unwrap();
        state
            .keys
            .insert(
                CLIENT_DCS,
                ["client_download_config_specs".to_owned()],
                None,
            )
            .unwrap();
        state.keys.insert(CONSOLE, [], None).unwrap();
        state.rules.load_file(&specs).unwrap();
        tokio::spawn(
            state
                .rules
                .clone()
                .watch(specs.clone(), Duration::from_millis(20)),
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            specs,
            state,
            _dir: dir,
            stop: Some(stop),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (StatusCode, Bytes) {
        let (status, _, body) = self.send(method, path, headers, body).await;
        (status, body)
    }

    /// Like [`Server::call`], with the response headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let (status, bytes) = self
            .call(
                Method::POST,
                path,
                &[("statsig-api-key", key)],
                body.to_string(),
            )
            .await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A free port on 127.0.0.1, for a `gatehouse` process a test starts.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until a `gatehouse` process listens on `port` (30 s at most; `what` names it when
/// it does not).
pub fn wait_until_listening(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `child` exits and returns its status; past `within`, kills it and fails the
/// test with `what` (what should have ended it).
pub fn wait_for_exit(
    child: &mut std::process::Child,
    within: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One raw HTTP/1.1 request (`connection: close`) to a `gatehouse` process on `port`: the
/// whole answer, status line, headers and body, as text. A server that never answers fails
/// the test instead of hanging it.
pub fn raw_request(port: u16, method: &str, path: &str, headers: &[&str], body: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
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
    out
}

/// Rows in the Parquet files under `dir`, read by the parquet crate's own reader.
pub fn parquet_rows(dir: &std::path::Path) -> u64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut rows = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let reader =
                    SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
                rows += reader.metadata().file_metadata().num_rows() as u64;
            }
        }
    }
    rows
}
