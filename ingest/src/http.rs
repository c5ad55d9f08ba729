//! The hyper server: connection handling, graceful shutdown, routing, request decoding
//! (compression, Statsig encoding, size limits) and JSON errors.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::rules::LiveRules;

/// Request and connection limits: what one client can hold of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body accepted as sent (compressed or not).
    pub max_body: usize,
    /// Largest body after decompression (gzip/zstd bombs stop here).
    pub max_decoded: usize,
    /// How long a client may be silent: a connection with no request started and none in
    /// flight for this long is closed (a kept-alive connection left idle, or a head never
    /// finished), and a body not received within it gets 408, which SDKs retry.
    pub read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 1 << 20,
            max_decoded: 16 << 20,
            read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// Everything a request handler reads: shared, read-mostly.
#[derive(Debug, Default)]
pub struct AppState {
    /// API keys.
    pub keys: Arc<KeyStore>,
    /// The live ruleset.
    pub rules: Arc<LiveRules>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    /// Body limits.
    pub limits: Limits,
    /// Page origins browsers may call the SDK endpoints from.
    pub cors: crate::cors::CorsOrigins,
    /// Kafka delivery of events and exposures (None: not configured; log_event answers 503).
    pub events: Option<Arc<crate::producer::EventSink>>,
    /// Exposure dedupe (`--exposure-dedupe-secs`; None: off).
    pub dedupe: Option<crate::dedupe::ExposureDedupe>,
    /// The console API's state (None: no --state-dir / --state-topic; the console answers 503).
    pub control: Option<Arc<crate::control::Control>>,
    /// `gatehouse up`: the in-process sink's counters, added to `/metrics`.
    pub sink_stats: Option<Arc<std::sync::Mutex<sink::Stats>>>,
}

/// The response type every handler returns.
pub type Reply = Response<Full<Bytes>>;

/// A JSON response.
pub fn json_reply(status: StatusCode, body: &Value) -> Reply {
    bytes_reply(
        status,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

/// A JSON response from bytes already serialized.
pub fn bytes_reply(status: StatusCode, body: Bytes) -> Reply {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON error naming the problem: `{"error": "...", "status": N}`.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"error": message, "status": status.as_u16(), "success": false}),
    )
}

/// A refused request, turned into an [`error_reply`] at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong, for the caller.
    pub message: String,
}

impl ApiError {
    /// An error with its status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The JSON error response.
    pub fn reply(&self) -> Reply {
        error_reply(self.status, &self.message)
    }
}

/// Accepts connections on `listener` until `shutdown` resolves, then stops accepting and waits
/// for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(state.limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let accept = async {
            // A slot first: past the limit, connections wait in the kernel's backlog.
            let slot = slots.clone().acquire_owned().await;
            (slot, listener.accept().await)
        };
        let (slot, stream, peer) = tokio::select! {
            (slot, accepted) = accept => match accepted {
                Ok((stream, peer)) => (slot, stream, peer),
                Err(error) => {
                    after_accept_error(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers go out in one write; Nagle would only hold the next one back for an ACK.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let connection = Arc::new(Connection {
            state: state.clone(),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        });
        let service = service_fn({
            let connection = connection.clone();
            move |req| {
                connection.started.fetch_add(1, Ordering::Relaxed);
                let connection = connection.clone();
                async move {
                    let reply = handle(&connection.state, req, peer).await;
                    connection.finished.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(reply)
                }
            }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let metrics = &connection.state.metrics;
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            connection.serve_until_idle(conn).await;
            let metrics = &connection.state.metrics;
            metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Logs a failed `accept` and waits a little: the usual cause (out of file descriptors)
/// persists, and retrying at once would spin a core.
pub async fn after_accept_error(error: &std::io::Error) {
    tracing::warn!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One connection's requests, counted so that an idle or stalled connection can be closed
/// without a timer per request.
struct Connection {
    state: Arc<AppState>,
    started: AtomicU64,
    finished: AtomicU64,
}

impl Connection {
    /// Runs `conn` to its end, or drops it (closing the socket) once a whole read timeout has
    /// passed with no request started and none in flight: a kept-alive connection left idle,
    /// or a client that never finishes sending a head. Either is closed 1–2 timeouts after
    /// its last request.
    async fn serve_until_idle(&self, conn: impl Future<Output = Result<(), hyper::Error>>) {
        tokio::pin!(conn);
        let mut started_before = u64::MAX;
        loop {
            tokio::select! {
                biased;
                result = &mut conn => {
                    if let Err(error) = result {
                        // hyper answered a head it could not parse itself (400 or 431, no
                        // body, connection closed): no handler saw it, so count it here.
                        if error.is_parse() || error.is_parse_too_large() {
                            let metrics = &self.state.metrics;
                            metrics.http_malformed.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep(self.state.limits.read_timeout) => {
                    let started = self.started.load(Ordering::Relaxed);
                    let in_flight = self.finished.load(Ordering::Relaxed) != started;
                    if started == started_before && !in_flight {
                        tracing::debug!("closing an idle connection");
                        let metrics = &self.state.metrics;
                        metrics.connections_closed_idle.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    started_before = started;
                }
            }
        }
    }
}

/// One request: route, run, count.
async fn handle(state: &AppState, req: Request<Incoming>, _peer: SocketAddr) -> Reply {
    let started = Instant::now();
    let cors = state.cors.headers_for(&req);
    let (endpoint, mut reply) = match &cors {
        Some(c) if c.allow_origin.is_some() && crate::cors::is_preflight(&req) => {
            ("preflight", crate::cors::preflight(&req))
        }
        _ => route(state, req).await,
    };
    if let Some(cors) = cors {
        cors.apply(&mut reply);
    }
    state
        .metrics
        .observe(endpoint, reply.status().as_u16(), started.elapsed());
    reply
}

/// The most path segments routed: no endpoint has more, so a longer path is a 404.
const MAX_SEGMENTS: usize = 8;

async fn route(state: &AppState, req: Request<Incoming>) -> (&'static str, Reply) {
    // A clone of the URI shares its bytes (no allocation), so the path can be borrowed while
    // the request moves on to the handler.
    let uri = req.uri().clone();
    let method = req.method().clone();
    let only = |allowed: &[Method]| allowed.contains(&method);
    let not_allowed = || error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");

    let mut segments = [""; MAX_SEGMENTS + 1];
    let mut count = 0;
    for segment in uri.path().trim_matches('/').split('/').take(segments.len()) {
        segments[count] = segment;
        count += 1;
    }
    // A path longer than any endpoint routes as no segments at all, which no arm but the
    // last (404) matches.
    let routed = if count > MAX_SEGMENTS {
        &[][..]
    } else {
        &segments[..count]
    };
    match routed {
        ["healthz"] => (
            "healthz",
            json_reply(StatusCode::OK, &json!({"status": "ok"})),
        ),
        ["readyz"] => ("readyz", api::ready(state).await),
        ["metrics"] => ("metrics", state.metrics.render(state)),
        ["v1", "download_config_specs", rest @ ..] if rest.len() <= 1 => {
            if !only(&[Method::GET, Method::POST]) {
                return ("dcs_v1", not_allowed());
            }
            let key = rest.first().map(|k| k.trim_end_matches(".json").to_owned());
            (
                "dcs_v1",
                with_body(state, req, |r| api::download_config_specs(state, r, key, 1)).await,
            )
        }
        ["v2", "download_config_specs", file] => {
            if !only(&[Method::GET]) {
                return ("dcs_v2", not_allowed());
            }
            let key = Some(file.trim_end_matches(".json").to_owned());
            (
                "dcs_v2",
                with_body(state, req, |r| api::download_config_specs(state, r, key, 2)).await,
            )
        }
        // `rgstr_b`: the legacy statsig-js client's `navigator.sendBeacon` at page close (a
        // text/plain body, the key in `?k=`).
        ["v1", endpoint @ ("log_event" | "rgstr" | "rgstr_b")] => {
            let endpoint: &'static str = match *endpoint {
                "rgstr" => "rgstr",
                "rgstr_b" => "rgstr_b",
                _ => "log_event",
            };
            if !only(&[Method::POST]) {
                return (endpoint, not_allowed());
            }
            // Boxed, as the console's handlers below: a request's future is as large as the
            // largest of these arms, and hyper moves it for every request (boxing these three
            // took it from 4.4 to 3.3 kB; an evaluation request does not need them).
            let reply = match decode(state.limits, req).await {
                Ok(decoded) => Box::pin(api::log_event(state, decoded)).await,
                Err(error) => error.reply(),
            };
            (endpoint, reply)
        }
        ["console", "v1", rest @ ..] => {
            let rest: Vec<&str> = rest.to_vec();
            let reply = match decode(state.limits, req).await {
                Ok(decoded) => {
                    Box::pin(crate::console::console(state, method, &rest, decoded)).await
                }
                Err(error) => error.reply(),
            };
            ("console", reply)
        }
        ["api", "v1", rest @ ..] => {
            let rest: Vec<&str> = rest.to_vec();
            let reply = match decode(state.limits, req).await {
                Ok(decoded) => {
                    Box::pin(crate::console::generic(state, method, &rest, decoded)).await
                }
                Err(error) => error.reply(),
            };
            ("api", reply)
        }
        ["v1", "sdk_exception"] => (
            "sdk_exception",
            with_body(state, req, |r| api::sdk_exception(state, r)).await,
        ),
        ["v1", "download_id_list_file", file_id] => {
            if !only(&[Method::GET]) {
                return ("id_list_file", not_allowed());
            }
            (
                "id_list_file",
                with_body(state, req, |r| {
                    api::download_id_list_file(state, r, file_id)
                })
                .await,
            )
        }
        ["v1", "get_id_lists", rest @ ..] if rest.len() <= 1 => {
            let key = rest.first().map(|k| k.trim_end_matches(".json").to_owned());
            (
                "get_id_lists",
                with_body(state, req, |r| api::get_id_lists(state, r, key)).await,
            )
        }
        ["v1", name @ ("check_gate" | "get_config" | "get_layer" | "initialize")] => {
            let endpoint: &'static str = match *name {
                "check_gate" => "check_gate",
                "get_config" => "get_config",
                "get_layer" => "get_layer",
                _ => "initialize",
            };
            if !only(&[Method::POST]) {
                return (endpoint, not_allowed());
            }
            (
                endpoint,
                with_body(state, req, |r| api::evaluate(state, r, endpoint)).await,
            )
        }
        _ => (
            "unknown",
            error_reply(StatusCode::NOT_FOUND, "no such endpoint"),
        ),
    }
}

/// A decoded request: headers and query for auth, the body as bytes.
pub struct Decoded {
    /// Request headers.
    pub headers: hyper::HeaderMap,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The body, decompressed and decoded.
    pub body: Bytes,
}

impl Decoded {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The API key: `statsig-api-key` or `X-API-Key` header, else the `k` query parameter.
    pub fn api_key(&self) -> Option<&str> {
        // Static names: a `&str` name is parsed and lowercased on every lookup.
        static NAMES: [HeaderName; 2] = [
            HeaderName::from_static("statsig-api-key"),
            HeaderName::from_static("x-api-key"),
        ];
        NAMES
            .iter()
            .find_map(|h| self.headers.get(h).and_then(|v| v.to_str().ok()))
            .or_else(|| self.param("k"))
    }

    /// The body as JSON (an empty body reads as `{}`).
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body is not valid JSON: {e}"),
            )
        })
    }
}

async fn with_body(
    state: &AppState,
    req: Request<Incoming>,
    handler: impl FnOnce(Decoded) -> Reply,
) -> Reply {
    match decode(state.limits, req).await {
        Ok(decoded) => handler(decoded),
        Err(error) => error.reply(),
    }
}

/// Reads the body within limits and undoes gzip (`Content-Encoding: gzip` or `?gz=1`), zstd,
/// and Statsig's `se=1` / `STATSIG-ENCODED: 1` encoding (reversed base64).
async fn decode(limits: Limits, req: Request<Incoming>) -> Result<Decoded, ApiError> {
    let (parts, body) = req.into_parts();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body over {} bytes", limits.max_body),
        )
    };
    let mut collect = std::pin::pin!(Limited::new(body, limits.max_body).collect());
    // Most bodies arrive with the head: only one still on its way arms a timer.
    let first_poll = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first_poll {
        Poll::Ready(collected) => Ok(collected),
        Poll::Pending => tokio::time::timeout(limits.read_timeout, collect).await,
    };
    let raw = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(error)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the body: {error}"),
            ))
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    limits.read_timeout.as_secs_f64()
                ),
            ))
        }
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let encoding = BodyEncoding {
        content_encoding: header(CONTENT_ENCODING.as_str()).unwrap_or(""),
        gz_param: query.iter().any(|(k, v)| k == "gz" && v == "1"),
        statsig_encoded: query.iter().any(|(k, v)| k == "se" && v == "1")
            || header("statsig-encoded") == Some("1"),
    };
    let body = decode_body(raw, &encoding, limits.max_decoded)?;
    Ok(Decoded {
        headers: parts.headers,
        query,
        body,
    })
}

/// How a request body was encoded on the way in.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyEncoding<'a> {
    /// The `Content-Encoding` header (`gzip`, `zstd`, `identity` or empty).
    pub content_encoding: &'a str,
    /// js-client's `?gz=1`: gzip without a header.
    pub gz_param: bool,
    /// js-client's `?se=1` / legacy `STATSIG-ENCODED: 1`: reversed base64.
    pub statsig_encoded: bool,
}

/// Undoes the body's encodings, stopping at `max_decoded` bytes (gzip/zstd bombs).
pub fn decode_body(
    raw: Bytes,
    encoding: &BodyEncoding<'_>,
    max_decoded: usize,
) -> Result<Bytes, ApiError> {
    let content_encoding = encoding.content_encoding.to_ascii_lowercase();
    let mut body = match content_encoding.as_str() {
        "gzip" => inflate(flate2::read::GzDecoder::new(&raw[..]), max_decoded, "gzip")?,
        "" if encoding.gz_param => {
            inflate(flate2::read::GzDecoder::new(&raw[..]), max_decoded, "gzip")?
        }
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(&raw[..]).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("bad zstd body: {e}"))
            })?;
            inflate(decoder, max_decoded, "zstd")?
        }
        "" | "identity" => raw,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding: {other}"),
            ))
        }
    };
    if encoding.statsig_encoded {
        body = statsig_decode(&body)?;
    }
    Ok(body)
}

fn inflate(mut reader: impl Read, max: usize, what: &str) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    match reader.by_ref().take(max as u64 + 1).read_to_end(&mut out) {
        Ok(n) if n > max => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body over {max} bytes once decompressed"),
        )),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad {what} body: {e}"),
        )),
    }
}

/// js-client's browser encoding: `reverse(base64(json))`.
fn statsig_decode(body: &[u8]) -> Result<Bytes, ApiError> {
    let reversed: Vec<u8> = body.iter().rev().copied().collect();
    base64::engine::general_purpose::STANDARD
        .decode(reversed)
        .map(Bytes::from)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad se=1 body: {e}")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn statsig_encoding_round_trips() {
        let encoded: String = base64::engine::general_purpose::STANDARD
            .encode(br#"{"a":1}"#)
            .chars()
            .rev()
            .collect();
        assert_eq!(
            &statsig_decode(encoded.as_bytes()).unwrap()[..],
            br#"{"a":1}"#
        );
    }
}
