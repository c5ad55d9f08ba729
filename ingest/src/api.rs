//! The Statsig endpoints: `download_config_specs` (v1 and v2), the HTTP evaluation API
//! (`check_gate`, `get_config`, `get_layer`) and client `initialize`.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use evaluator::{
    DynValue, EvalContext, Evaluation, HashAlgorithm, InitializeRequest, Outcome, SpecKind, User,
};
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_RANGE, CONTENT_TYPE,
    HOST, RANGE, VARY,
};
use hyper::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::http::{bytes_reply, json_reply, ApiError, AppState, Decoded, Reply};
use crate::id_lists::ByteRange;
use crate::keys::{Access, AuthError, KeyRecord};
use crate::logging::{envelopes_from_batch, with_exposure, Exposed, Origin, SdkMetadata};
use crate::producer::{EventSink, SendError};
use crate::rules::{now_ms, Compiled};

/// `/readyz`: ready once a ruleset has loaded and a Kafka broker answers.
pub async fn ready(state: &AppState) -> Reply {
    let not_ready = |reason: &str| {
        json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": reason}),
        )
    };
    let Some(rules) = state.rules.get() else {
        return not_ready("no ruleset loaded yet");
    };
    let Some(sink) = state.events.clone() else {
        return not_ready("no Kafka configured");
    };
    if let Some(error) = sink.fatal_error() {
        return not_ready(&format!(
            "the Kafka producer failed for good ({error}); the front door is stopping"
        ));
    }
    let reachable = {
        let sink = sink.clone();
        tokio::task::spawn_blocking(move || {
            sink.broker_reachable(std::time::Duration::from_millis(1500))
        })
        .await
        .unwrap_or(false)
    };
    if !reachable {
        return match sink.last_client_error() {
            Some(error) => not_ready(&format!("no Kafka broker reachable; last error: {error}")),
            None => not_ready("no Kafka broker reachable"),
        };
    }
    json_reply(
        StatusCode::OK,
        &json!({"ready": true, "ruleset_time": rules.ruleset.time}),
    )
}

/// The request's key, checked for `access` (401 unknown, 403 not allowed, JSON bodies).
pub(crate) fn authenticate(
    state: &AppState,
    req: &Decoded,
    path_key: Option<&str>,
    access: Access,
) -> Result<Arc<KeyRecord>, ApiError> {
    let key = req.api_key().or(path_key);
    state.keys.authenticate(key, access).map_err(|e| match e {
        AuthError::Missing => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key: send it in the statsig-api-key header",
        ),
        AuthError::Unknown => ApiError::new(StatusCode::UNAUTHORIZED, "unknown or revoked API key"),
        AuthError::Forbidden => ApiError::new(
            StatusCode::FORBIDDEN,
            match access {
                Access::DownloadConfigSpecs => {
                    "this key may not download config specs (server keys, or client keys with the client_download_config_specs scope)"
                }
                Access::Initialize => "initialize takes a client key",
                Access::Evaluate => "this key may not call the evaluation API",
                Access::LogEvent => "this key may not log events",
                Access::ConsoleRead => "the console API takes a console key with a read scope (omni_read_only, read or above)",
                Access::ConsoleWrite => "this needs a console key with a write scope (omni_read_write, write or admin)",
                Access::ManageKeys => "managing keys needs a console key with can_access_keys, or the admin scope",
                Access::ApiEvaluate => "evaluating needs a server or client key, or a key with the read scope",
                Access::ApiTrack => "tracking needs a server or client key, or a key with the write scope",
            },
        ),
    })
}

fn live_rules(state: &AppState) -> Result<Arc<Compiled>, ApiError> {
    state
        .rules
        .get()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no ruleset loaded yet"))
}

/// `sinceTime` from the query, else from a JSON body.
fn since_time(req: &Decoded, body: &Value) -> Option<i64> {
    req.param("sinceTime")
        .and_then(|s| s.parse().ok())
        .or_else(|| body.get("sinceTime").and_then(Value::as_i64))
}

/// `download_config_specs` in the v1 (`shape == 1`) or v2 shape; bodies are serialized and
/// gzipped once per ruleset version (and key scope: target app, environments), and sent
/// gzipped to SDKs that accept it. `{"has_updates":false}` (200, never an empty 204) when
/// the SDK is current.
pub fn download_config_specs(
    state: &AppState,
    req: Decoded,
    path_key: Option<String>,
    shape: u8,
) -> Reply {
    let result = (|| {
        let key = authenticate(
            state,
            &req,
            path_key.as_deref(),
            Access::DownloadConfigSpecs,
        )?;
        let rules = live_rules(state)?;
        let body = req.json().unwrap_or(Value::Null);
        if since_time(&req, &body).is_some_and(|since| since >= rules.ruleset.time) {
            return Ok(json_reply(StatusCode::OK, &json!({"has_updates": false})));
        }
        let scoped;
        let bodies = match crate::scope::Scope::of(&key) {
            // A key bound to an app or environments gets only what it may see.
            Some(scope) => {
                scoped = rules.scoped(&scope).map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("scoped specs: {e}"),
                    )
                })?;
                &*scoped
            }
            None => &rules.bodies,
        };
        let specs = if shape == 1 { &bodies.v1 } else { &bodies.v2 };
        let gzip = accepts_gzip(&req.headers);
        let mut reply = bytes_reply(
            StatusCode::OK,
            if gzip { &specs.gzip } else { &specs.json }.clone(),
        );
        let headers = reply.headers_mut();
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(reply)
    })();
    result.unwrap_or_else(|error: ApiError| error.reply())
}

/// Whether `Accept-Encoding` takes gzip (`gzip`, `x-gzip` or `*`, not at `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            ["gzip", "x-gzip", "*"]
                .iter()
                .any(|g| name.eq_ignore_ascii_case(g))
                && !refused
        })
}

/// `log_event` / `rgstr`: every event to Kafka, answered 202 `{"success":true}` only once
/// the broker acknowledged all of them; 503 with `Retry-After` (which every SDK retries)
/// when Kafka cannot take or confirm the batch; 400 for a malformed batch, of which nothing
/// is produced.
pub async fn log_event(state: &AppState, req: Decoded) -> Reply {
    let body = authenticate(state, &req, None, Access::LogEvent).and_then(|key| {
        let Value::Object(body) = req.json()? else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object",
            ));
        };
        Ok((key, body))
    });
    match body {
        Ok((key, body)) => log_batch(state, &key, &req, &body).await,
        Err(error) => error.reply(),
    }
}

/// Sends one `{events: [...]}` batch for an authenticated key (`log_event`, and the generic
/// API's `tracking/track`).
pub async fn log_batch(
    state: &AppState,
    key: &KeyRecord,
    req: &Decoded,
    body: &Map<String, Value>,
) -> Reply {
    let prepared = (|| {
        let sink = state
            .events
            .clone()
            .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no Kafka configured"))?;
        let origin = Origin::new(&key.id, req, SdkMetadata::of(body), now_ms() as i64);
        let batch = envelopes_from_batch(body, &origin)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
        Ok::<_, ApiError>((sink, batch))
    })();
    let (sink, batch) = match prepared {
        Ok(ready) => ready,
        Err(error) => return error.reply(),
    };
    match sink.send_batch(&batch).await {
        Ok(()) => json_reply(StatusCode::ACCEPTED, &json!({"success": true})),
        Err(error) => {
            let message = match error {
                SendError::Busy => "event queue full, retry later".to_owned(),
                SendError::NotAcknowledged(e) => {
                    format!("Kafka did not acknowledge the batch: {e}")
                }
            };
            tracing::warn!(%message, events = batch.len(), "log_event refused");
            let mut reply = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).reply();
            reply.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
            reply
        }
    }
}

/// `get_id_lists`: the manifest of the ID lists server SDKs download (`--id-lists`), with
/// file URLs on the host the SDK called (`X-Forwarded-Proto: https` behind a TLS proxy).
pub fn get_id_lists(state: &AppState, req: Decoded, path_key: Option<String>) -> Reply {
    let result = (|| {
        authenticate(
            state,
            &req,
            path_key.as_deref(),
            Access::DownloadConfigSpecs,
        )?;
        let rules = live_rules(state)?;
        let base = public_base(&req.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "a Host header is needed: the ID list file URLs are built from it",
            )
        })?;
        Ok(json_reply(StatusCode::OK, &rules.id_lists.manifest(&base)))
    })();
    result.unwrap_or_else(|error: ApiError| error.reply())
}

/// `download_id_list_file/{fileID}`: one ID list file, or the part of it a `Range:
/// bytes=N-` asks for (206), never compressed: SDKs count the bytes they have read by
/// `Content-Length`. No key is needed (the Go SDK sends none): the unguessable `fileID`,
/// which only the manifest gives, is the credential, as for Statsig's CDN URLs.
pub fn download_id_list_file(state: &AppState, req: Decoded, file_id: &str) -> Reply {
    let result = (|| {
        let rules = live_rules(state)?;
        let file = rules.id_lists.file(file_id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such ID list file: the list changed; fetch get_id_lists again",
            )
        })?;
        let len = file.body.len();
        let range = req.headers.get(RANGE).and_then(|v| v.to_str().ok());
        let (status, body, content_range) = match ByteRange::of(range, len) {
            ByteRange::Whole => (StatusCode::OK, file.body.clone(), None),
            ByteRange::Part(start, end) => (
                StatusCode::PARTIAL_CONTENT,
                file.body.slice(start..end),
                Some(format!("bytes {start}-{}/{len}", end - 1)),
            ),
            ByteRange::Unsatisfiable => {
                let mut reply = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("the range starts past the file's {len} bytes"),
                )
                .reply();
                reply.headers_mut().insert(
                    CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
                );
                return Ok(reply);
            }
        };
        let mut reply = bytes_reply(status, body);
        let headers = reply.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(content_range) = content_range {
            headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&content_range).expect("ascii"),
            );
        }
        Ok(reply)
    })();
    result.unwrap_or_else(|error: ApiError| error.reply())
}

/// `scheme://host` of this request as the client addressed it (None without a usable
/// `Host`).
fn public_base(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(HOST)?.to_str().ok()?;
    let plausible = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| {
            let first = proto.split(',').next().unwrap_or("").trim();
            first.eq_ignore_ascii_case("https")
        });
    plausible.then(|| format!("{}://{host}", if https { "https" } else { "http" }))
}

/// `sdk_exception`: an SDK reporting an error it hit (js-client posts here; the server SDKs'
/// URL is fixed to Statsig's). Accepted with 202 whatever it holds, as Statsig does; sent
/// with a known key, it is logged as a warning, since an SDK failing on what this server
/// answered is what its operator most needs to hear about.
pub fn sdk_exception(state: &AppState, req: Decoded) -> Reply {
    if let Ok(key) = authenticate(state, &req, None, Access::LogEvent) {
        let body = req.json().unwrap_or(Value::Null);
        let field = |name: &str| match body.get(name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => clipped(text),
            Some(other) => clipped(&other.to_string()),
        };
        let sdk_type = req
            .headers
            .get("statsig-sdk-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::warn!(
            key_id = %key.id,
            sdk_type = clipped(sdk_type),
            tag = field("tag"),
            exception = field("exception"),
            info = field("info"),
            "SDK reported an exception"
        );
    }
    json_reply(StatusCode::ACCEPTED, &json!({"success": true}))
}

/// At most 500 bytes of `text` (cut on a character boundary), for a log line.
fn clipped(text: &str) -> String {
    let mut end = text.len().min(500);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// `check_gate`, `get_config`, `get_layer` and `initialize`.
pub fn evaluate(state: &AppState, req: Decoded, endpoint: &'static str) -> Reply {
    let access = if endpoint == "initialize" {
        Access::Initialize
    } else {
        Access::Evaluate
    };
    let result = (|| {
        let key = authenticate(state, &req, None, access)?;
        if endpoint != "initialize" {
            let body = EvaluationRequest::parse(&req.body)?;
            let answer = evaluate_body(state, &key, &req, &body, endpoint)?;
            return Ok(bytes_reply(StatusCode::OK, Bytes::from(answer)));
        }
        let Value::Object(body) = req.json()? else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object",
            ));
        };
        initialize(state, &key, &body)
    })();
    result.unwrap_or_else(|error: ApiError| error.reply())
}

/// A `check_gate` / `get_config` / `get_layer` body, borrowed from the request bytes. The
/// user stays JSON text: it is parsed once into the evaluator's `User` and copied once
/// (without `privateAttributes`) into the exposures, with no tree of the body in between.
#[derive(Debug, Default, Deserialize)]
pub struct EvaluationRequest<'a> {
    /// `user` (a JSON `null` is kept, to be refused as not an object).
    #[serde(borrow, default, deserialize_with = "present")]
    pub user: Option<&'a RawValue>,
    /// `gateName`.
    #[serde(rename = "gateName", borrow, default)]
    pub gate_name: Option<&'a RawValue>,
    /// `gateNames`: several gates in one `check_gate`.
    #[serde(rename = "gateNames", borrow, default)]
    pub gate_names: Option<&'a RawValue>,
    /// `configName`.
    #[serde(rename = "configName", borrow, default)]
    pub config_name: Option<&'a RawValue>,
    /// `layerName`.
    #[serde(rename = "layerName", borrow, default)]
    pub layer_name: Option<&'a RawValue>,
    /// `statsigMetadata`: the SDK's identity and `exposureLoggingDisabled`.
    #[serde(rename = "statsigMetadata", borrow, default)]
    pub metadata: Option<&'a RawValue>,
}

/// A present field, `null` included (serde reads a `null` `Option` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl<'a> EvaluationRequest<'a> {
    /// Reads a body (an empty one reads as `{}`), naming what is wrong with a bad one.
    pub fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        let invalid = |e: String| format!("body is not valid JSON: {e}");
        let message = if body.trim_ascii_start().first() != Some(&b'{') {
            // Checked first: serde would read a JSON array into the struct, field by field.
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => "the body must be a JSON object".to_owned(),
                Err(e) => invalid(e.to_string()),
            }
        } else {
            // UTF-8 checked once for the whole body: parsed from bytes, serde_json checks
            // every string it reads (and every borrowed field) again.
            match std::str::from_utf8(body).map(serde_json::from_str) {
                Ok(Ok(request)) => return Ok(request),
                Ok(Err(e)) if e.is_syntax() || e.is_eof() => invalid(e.to_string()),
                Ok(Err(e)) => format!("body: {e}"),
                Err(e) => invalid(e.to_string()),
            }
        };
        Err(ApiError::new(StatusCode::BAD_REQUEST, message))
    }
}

/// What a request's `statsigMetadata` says, read leniently (fields of other types are
/// ignored, as the SDKs' own servers do).
#[derive(Debug, Default, Deserialize)]
struct RequestMetadata<'a> {
    #[serde(rename = "sdkType", borrow, default)]
    sdk_type: Option<&'a RawValue>,
    #[serde(rename = "sdkVersion", borrow, default)]
    sdk_version: Option<&'a RawValue>,
    #[serde(rename = "exposureLoggingDisabled", borrow, default)]
    exposure_logging_disabled: Option<&'a RawValue>,
}

impl<'a> RequestMetadata<'a> {
    fn read(raw: Option<&'a RawValue>) -> Self {
        raw
            // Only an object: serde would read an array's elements into the fields in order.
            .filter(|m| m.get().starts_with('{'))
            .and_then(|m| serde_json::from_str(m.get()).ok())
            .unwrap_or_default()
    }

    fn logging_disabled(&self) -> bool {
        self.exposure_logging_disabled
            .is_some_and(|v| v.get() == "true")
    }
}

/// A JSON string's text, borrowed when it holds no escapes; None for any other JSON value.
fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
        Some(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        None => None,
    }
}

/// One `check_gate` / `get_config` / `get_layer` for an authenticated key, exposures
/// logged unless the request turns them off; the answer's JSON bytes in Statsig's shape.
pub fn evaluate_body(
    state: &AppState,
    key: &KeyRecord,
    req: &Decoded,
    body: &EvaluationRequest<'_>,
    endpoint: &'static str,
) -> Result<Vec<u8>, ApiError> {
    let rules = live_rules(state)?;
    let user_text = body
        .user
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "user: missing"))?;
    let user = User::from_json_str(user_text.get())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let app = key.target_app.as_deref().map(DynValue::from_text);
    let now = now_ms();
    let ctx = EvalContext {
        user: &user,
        now_ms: now as i64,
        app_id: app.as_ref(),
    };
    let rs = &rules.ruleset;
    let metadata = RequestMetadata::read(body.metadata);
    let log_exposures = !metadata.logging_disabled();
    let (sdk_type, sdk_version) = (
        metadata.sdk_type.and_then(json_str),
        metadata.sdk_version.and_then(json_str),
    );
    let sdk = SdkMetadata {
        sdk_type: sdk_type.as_deref(),
        sdk_version: sdk_version.as_deref(),
    };
    let origin = Origin::new(&key.id, req, sdk, now as i64);
    let loggable_user = std::cell::OnceCell::new();
    let log = |exposed: Exposed, spec: &str, e: &Evaluation<'_>, sink: &EventSink| {
        if e.outcome != Outcome::Unrecognized {
            let loggable = loggable_user.get_or_init(|| rs.loggable_user_text(user_text));
            with_exposure(exposed, spec, e, loggable, &user, &origin, |exposure| {
                let dedupe = state.dedupe.as_ref();
                if dedupe.is_none_or(|d| d.should_send(exposure, now)) {
                    sink.send_exposure(exposure);
                }
            });
        }
    };
    let expose = |kind: SpecKind, spec: &str, e: &Evaluation<'_>| {
        if let (true, Some(sink)) = (log_exposures, &state.events) {
            // First the experiments its conditions read, in the order the core SDK logs them.
            for &experiment in &e.experiments_read {
                let read = rs.get_config(experiment, &ctx);
                log(Exposed::ExperimentGroupRead, experiment, &read, sink);
            }
            log(Exposed::Answer(kind), spec, e, sink);
        }
    };
    fn name<'b>(field: &str, raw: Option<&'b RawValue>) -> Result<Cow<'b, str>, ApiError> {
        raw.and_then(json_str).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{field}: missing or not a string"),
            )
        })
    }
    let answer = match endpoint {
        "check_gate" => match body.gate_names.map(|n| serde_json::from_str(n.get())) {
            Some(Ok(Value::Array(names))) => {
                let mut out = Map::new();
                for n in &names {
                    let n = n.as_str().ok_or_else(|| {
                        ApiError::new(StatusCode::BAD_REQUEST, "gateNames: must be strings")
                    })?;
                    let e = rs.check_gate(n, &ctx);
                    expose(SpecKind::Gate, n, &e);
                    out.insert(n.to_owned(), json!(GateAnswer::new(n, &e)));
                }
                serde_json::to_vec(&out)
            }
            _ => {
                let n = name("gateName", body.gate_name)?;
                let e = rs.check_gate(&n, &ctx);
                expose(SpecKind::Gate, &n, &e);
                serde_json::to_vec(&GateAnswer::new(&n, &e))
            }
        },
        "get_config" => {
            let n = name("configName", body.config_name)?;
            let e = rs.get_config(&n, &ctx);
            expose(SpecKind::Config, &n, &e);
            serde_json::to_vec(&ConfigAnswer {
                name: &n,
                value: e
                    .json_value
                    .as_deref()
                    .unwrap_or(&Value::Object(Map::new())),
                group: e.rule_id,
                rule_id: (e.outcome == Outcome::Recognized).then_some(e.rule_id),
                group_name: e.group_name,
            })
        }
        _ => {
            let n = name("layerName", body.layer_name)?;
            let e = rs.get_layer(&n, &ctx);
            expose(SpecKind::Layer, &n, &e);
            if e.outcome == Outcome::Unrecognized {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no layer named {n}"),
                ));
            }
            serde_json::to_vec(&LayerAnswer {
                name: &n,
                value: e
                    .json_value
                    .as_deref()
                    .unwrap_or(&Value::Object(Map::new())),
                rule_id: e.rule_id,
                allocated_experiment_name: e.config_delegate,
            })
        }
    };
    answer.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `check_gate`'s answer.
#[derive(Serialize)]
struct GateAnswer<'a> {
    name: &'a str,
    value: bool,
    rule_id: &'a str,
    group_name: Option<&'a str>,
}

impl<'a> GateAnswer<'a> {
    fn new(name: &'a str, e: &Evaluation<'a>) -> Self {
        GateAnswer {
            name,
            value: e.bool_value,
            rule_id: e.rule_id,
            group_name: e.group_name,
        }
    }
}

/// `get_config`'s answer (`rule_id` null for an unknown or unsupported config).
#[derive(Serialize)]
struct ConfigAnswer<'a> {
    name: &'a str,
    value: &'a Value,
    group: &'a str,
    rule_id: Option<&'a str>,
    group_name: Option<&'a str>,
}

/// `get_layer`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayerAnswer<'a> {
    name: &'a str,
    value: &'a Value,
    #[serde(rename = "ruleID")]
    rule_id: &'a str,
    allocated_experiment_name: Option<&'a str>,
}

/// Whether the live ruleset has a gate (`true`) or a config (`false`) named `name`.
pub fn flag_kind(state: &AppState, name: &str) -> Result<Option<bool>, ApiError> {
    let rules = live_rules(state)?;
    let has = |kind| rules.ruleset.names(kind).any(|n| n == name);
    Ok(if has(SpecKind::Gate) {
        Some(true)
    } else if has(SpecKind::Config) {
        Some(false)
    } else {
        None
    })
}

/// The user of an `initialize` request (none reads as `{}`); it must be an object.
fn initialize_user(body: &Map<String, Value>) -> Result<Value, ApiError> {
    match body.get("user") {
        Some(user @ Value::Object(_)) => Ok(user.clone()),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "user: must be a JSON object",
        )),
        None => Ok(json!({})),
    }
}

/// Client `initialize`: every spec evaluated for one user, names hashed.
fn initialize(
    state: &AppState,
    key: &KeyRecord,
    body: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    let rules = live_rules(state)?;
    let mut user_json = initialize_user(body)?;
    adopt_stable_id(&mut user_json, body);
    let user = User::from_json(&user_json)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let app = key.target_app.as_deref().map(DynValue::from_text);
    let ctx = EvalContext {
        user: &user,
        now_ms: now_ms() as i64,
        app_id: app.as_ref(),
    };
    let rs = &rules.ruleset;
    let hash = match body.get("hash").and_then(Value::as_str) {
        None => HashAlgorithm::Djb2,
        Some(h) => HashAlgorithm::parse(h).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "hash: must be djb2, sha256 or none",
            )
        })?,
    };
    if body
        .get("sinceTime")
        .and_then(Value::as_i64)
        .is_some_and(|t| t >= rs.time)
    {
        let mut reply = bytes_reply(StatusCode::NO_CONTENT, Bytes::new());
        reply.headers_mut().remove(hyper::header::CONTENT_TYPE);
        return Ok(reply);
    }
    let bytes = rs.client_initialize(&InitializeRequest {
        ctx,
        user_json: &user_json,
        hash,
        target_app: key.target_app.as_deref(),
    });
    Ok(bytes_reply(StatusCode::OK, Bytes::from(bytes)))
}

/// js-client sends the stable id only in `statsigMetadata.stableID`; stableID-based specs
/// need it in `customIDs`.
fn adopt_stable_id(user: &mut Value, body: &Map<String, Value>) {
    let Some(stable) = body
        .get("statsigMetadata")
        .and_then(|m| m.get("stableID"))
        .and_then(Value::as_str)
    else {
        return;
    };
    let ids = user
        .as_object_mut()
        .map(|u| u.entry("customIDs").or_insert_with(|| json!({})));
    if let Some(Value::Object(ids)) = ids {
        ids.entry("stableID").or_insert_with(|| stable.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_utf8_is_refused_by_name() {
        let message = |body: &[u8]| EvaluationRequest::parse(body).unwrap_err().message;
        // In a field the request reads, and in one it skips.
        for body in [&b"{\"gateName\":\"g\xff\"}"[..], b"{\"other\":\"\xc3\"}"] {
            let text = message(body);
            assert!(
                text.starts_with("body is not valid JSON: invalid utf-8"),
                "{text}"
            );
        }
        assert!(EvaluationRequest::parse("{\"gateName\":\"caf\u{e9}\"}".as_bytes()).is_ok());
    }

    #[test]
    fn request_metadata_is_read_leniently() {
        let read = |text: &str| {
            let raw = RawValue::from_string(text.to_owned()).unwrap();
            let m = RequestMetadata::read(Some(&raw));
            let sdk_type = m.sdk_type.and_then(json_str).map(Cow::into_owned);
            let sdk_version = m.sdk_version.and_then(json_str).map(Cow::into_owned);
            (sdk_type, sdk_version, m.logging_disabled())
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            read(r#"{"sdkType":"py","sdkVersion":"1.2","exposureLoggingDisabled":true}"#),
            (some("py"), some("1.2"), true)
        );
        assert_eq!(
            read(r#"{"sdkType":"a\"b","sdkVersion":3,"exposureLoggingDisabled":"true"}"#),
            (some("a\"b"), None, false)
        );
        assert_eq!(read(r#"["js", "1.0", true]"#), (None, None, false));
        assert_eq!(read(r#""js""#), (None, None, false));
        assert!(
            !RequestMetadata::read(None).logging_disabled(),
            "absent: exposures are logged"
        );
    }
}
