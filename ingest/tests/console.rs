//! The console API against the real binary over loopback: keys in both API shapes, least
//! privilege, rules CRUD and validation, ETag/409 with concurrent writers, restarts and
//! kill -9 during writes (--state-dir), and two front doors sharing one compacted topic on
//! the real broker (--state-topic).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const ADMIN: &str = "console-admin-test";

/// One `gatehouse serve` process.
struct Front {
    child: Child,
    port: u16,
    args: Vec<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    body: Value,
}

impl Answer {
    /// The string `field` of each item of a list answer's `data`.
    fn listed(&self, field: &str) -> Vec<&str> {
        let items = self.body["data"].as_array().unwrap().iter();
        items.map(|item| item[field].as_str().unwrap()).collect()
    }
}

impl Front {
    async fn start(state_args: &[&str]) -> Front {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--console-key".into(),
            ADMIN.into(),
            "--server-key".into(),
            "secret-seeded".into(),
        ];
        args.extend(state_args.iter().map(|s| s.to_string()));
        let mut front = Front {
            child: spawn(&args),
            port,
            args,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        front.wait_up().await;
        front
    }

    async fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("gatehouse exited early: {status}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "gatehouse did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9, then the same command again.
    async fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn(&self.args);
        self.wait_up().await;
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.port));
        if !key.is_empty() {
            req = req.header("STATSIG-API-KEY", key);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let resp = self
            .client
            .request(req.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            etag,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, key, &[], None).await
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::POST, path, key, &[], Some(body)).await
    }

    /// PATCH with `If-Match`.
    async fn patch_if_match(&self, path: &str, etag: &str, body: Value) -> Answer {
        self.call(
            Method::PATCH,
            path,
            ADMIN,
            &[("If-Match", etag)],
            Some(body),
        )
        .await
    }

    /// `check_gate` with a server key: (status, value).
    async fn gate(&self, key: &str, gate: &str, user: Value) -> (StatusCode, Value) {
        let a = self
            .post(
                "/v1/check_gate",
                key,
                json!({"user": user, "gateName": gate}),
            )
            .await;
        (a.status, a.body["value"].clone())
    }

    /// Creates a key through the console shape; returns (id, secret).
    async fn new_key(&self, body: Value) -> (String, String) {
        let a = self.post("/console/v1/keys", ADMIN, body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        (
            a.body["data"]["id"].as_str().unwrap().to_owned(),
            a.body["data"]["key"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_remove("GATEHOUSE_KAFKA_BROKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The real broker the test command starts; a bare `cargo test` has none and skips (saying so).
fn real_broker() -> Option<String> {
    let brokers = std::env::var("GATEHOUSE_KAFKA_BROKERS").ok();
    if brokers.is_none() {
        eprintln!("GATEHOUSE_KAFKA_BROKERS unset: scripts/test.sh runs this against Apache Kafka");
    }
    brokers
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-{name}-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn state_dir_args(dir: &Path) -> Vec<String> {
    vec!["--state-dir".into(), dir.display().to_string()]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn employee_gate(name: &str) -> Value {
    json!({"name": name, "description": "staff only", "rules": [{
        "name": "staff", "passPercentage": 100,
        "conditions": [{"type": "email", "operator": "str_ends_with_any", "targetValue": ["@corp.example"]}]
    }]})
}

fn staff() -> Value {
    json!({"userID": "u1", "email": "ann@corp.example"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_both_shapes_with_least_privilege() {
    let dir = temp_dir("console-keys");
    let front = Front::start(&as_strs(&state_dir_args(&dir))).await;

    // Statsig console shape: the secret is shown once, never listed.
    let (server_id, server_key) = front
        .new_key(json!({"type": "SERVER", "description": "checkout service", "environments": ["production"]}))
        .await;
    assert!(server_key.starts_with("secret-") && server_key.len() == 47);
    let listed = front.get("/console/v1/keys", ADMIN).await;
    assert_eq!(listed.status, StatusCode::OK);
    let text = listed.body.to_string();
    assert!(!text.contains(&server_key), "a listing shows a secret");
    let entry = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == server_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["type"], "SERVER");
    assert_eq!(entry["prefix"], &server_key[..11]);
    assert_eq!(entry["environments"], json!(["production"]));
    assert_eq!(entry["status"], "active");
    assert!(entry.get("digest").is_none());
    assert_eq!(
        (&entry["key"], &entry["primaryTargetApp"]),
        (&Value::Null, &Value::Null)
    );
    // Statsig's API (and its own clients, such as its Terraform provider) names a key by its
    // secret: the answer is the same key, with the secret the caller already holds.
    let by_secret = front
        .get(&format!("/console/v1/keys/{server_key}"), ADMIN)
        .await;
    assert_eq!(by_secret.status, StatusCode::OK, "{:?}", by_secret.body);
    assert_eq!(
        (
            &by_secret.body["data"]["id"],
            &by_secret.body["data"]["key"]
        ),
        (&json!(server_id), &json!(server_key))
    );
    assert_eq!(
        front
            .get("/console/v1/keys/secret-never-issued", ADMIN)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The seeded keys are listed too, marked as such.
    assert!(text.contains("\"source\":\"flag\""));

    front
        .post("/console/v1/gates", ADMIN, employee_gate("staff_gate"))
        .await;
    assert_eq!(
        front.gate(&server_key, "staff_gate", staff()).await,
        (StatusCode::OK, json!(true))
    );
    let got = front
        .get(&format!("/console/v1/keys/{server_id}"), ADMIN)
        .await;
    assert!(got.body["data"]["last_used_at"].is_u64(), "{:?}", got.body);

    let patched = front
        .call(
            Method::PATCH,
            &format!("/console/v1/keys/{server_key}"),
            ADMIN,
            &[],
            Some(json!({"description": "checkout v2", "scopes": ["client_download_config_specs"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["message"], "Key updated successfully.");
    assert_eq!(patched.body["data"]["description"], "checkout v2");
    assert_eq!(
        (&patched.body["data"]["id"], &patched.body["data"]["key"]),
        (&json!(server_id), &json!(server_key))
    );
    let bad_scope = front
        .call(
            Method::PATCH,
            &format!("/console/v1/keys/{server_id}"),
            ADMIN,
            &[],
            Some(json!({"scopes": ["everything"]})),
        )
        .await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_scope.body["errors"][0]["property"], "scopes");
    assert_eq!(
        front
            .post("/console/v1/keys", ADMIN, json!({"type": "ROOT"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // Revocation: Statsig's 200 with the key, then 401 on the very next request, everywhere.
    let revoked = front
        .call(
            Method::DELETE,
            &format!("/console/v1/keys/{server_key}"),
            ADMIN,
            &[],
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.body["message"], "Key deleted successfully.");
    assert_eq!(
        (&revoked.body["data"]["id"], &revoked.body["data"]["status"]),
        (&json!(server_id), &json!("deactivated"))
    );
    assert_eq!(
        front.gate(&server_key, "staff_gate", staff()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let dcs = front
        .get(&format!("/v2/download_config_specs/{server_key}.json"), "")
        .await;
    assert_eq!(dcs.status, StatusCode::UNAUTHORIZED);

    // Least privilege across key types and scopes.
    let (_, read_only) = front
        .new_key(json!({"type": "CONSOLE", "scopes": ["omni_read_only"]}))
        .await;
    let (_, client) = front.new_key(json!({"type": "CLIENT"})).await;
    assert_eq!(
        front.get("/console/v1/gates", &read_only).await.status,
        StatusCode::OK
    );
    let denied = front
        .post("/console/v1/gates", &read_only, employee_gate("nope"))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(denied.body["message"].as_str().unwrap().contains("write"));
    assert_eq!(
        front.get("/console/v1/keys", &read_only).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        front.get("/console/v1/gates", &client).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        front.get("/console/v1/gates", "secret-seeded").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        front.gate(&read_only, "staff_gate", staff()).await.0,
        StatusCode::FORBIDDEN,
        "a console key is for the console only"
    );
    assert_eq!(
        front.get("/console/v1/gates", "").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        front
            .get("/console/v1/gates", "console-never-issued")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // The generic shape: X-API-Key, scopes read < write < admin.
    let call = |method: Method, path: &'static str, key: String, body: Option<Value>| {
        let front = &front;
        async move {
            front
                .call(method, path, "", &[("X-API-Key", &key)], body)
                .await
        }
    };
    let mut keys = std::collections::HashMap::new();
    for scope in ["read", "write", "admin"] {
        let made = call(
            Method::POST,
            "/api/v1/api-keys",
            ADMIN.into(),
            Some(json!({"name": format!("{scope} key"), "scopes": [scope]})),
        )
        .await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        assert!(made.body["key"].as_str().unwrap().starts_with("console-"));
        assert_eq!(made.body["name"], format!("{scope} key"));
        keys.insert(scope, made.body["key"].as_str().unwrap().to_owned());
    }
    let flag = |key: &str| {
        call(
            Method::POST,
            "/api/v1/feature-flags/staff_gate/evaluate",
            key.to_owned(),
            Some(
                json!({"user_id": "u1", "attributes": {"email": "bo@corp.example", "plan": "pro"}}),
            ),
        )
    };
    let evaluated = flag(&keys["read"]).await;
    assert_eq!(evaluated.status, StatusCode::OK, "{:?}", evaluated.body);
    assert_eq!(evaluated.body["value"], true);
    assert_eq!(evaluated.body["type"], "gate");
    let track = |key: &str| {
        call(
            Method::POST,
            "/api/v1/tracking/track",
            key.to_owned(),
            Some(json!({"user_id": "u1", "event_type": "purchase", "value": 12.5})),
        )
    };
    assert_eq!(track(&keys["read"]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(track(&keys["write"]).await.status, StatusCode::ACCEPTED);
    let write_gate = front
        .call(
            Method::POST,
            "/console/v1/gates",
            "",
            &[("X-API-Key", &keys["write"])],
            Some(employee_gate("by_write_key")),
        )
        .await;
    assert_eq!(write_gate.status, StatusCode::CREATED);
    for (scope, want) in [
        ("read", StatusCode::FORBIDDEN),
        ("write", StatusCode::FORBIDDEN),
        ("admin", StatusCode::OK),
    ] {
        let listed = call(Method::GET, "/api/v1/api-keys", keys[scope].clone(), None).await;
        assert_eq!(listed.status, want, "{scope} listing keys");
    }
    let listed = call(Method::GET, "/api/v1/api-keys", keys["admin"].clone(), None).await;
    let read_id = listed.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "read key")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = front
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{read_id}"),
            "",
            &[("X-API-Key", &keys["admin"])],
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(flag(&keys["read"]).await.status, StatusCode::UNAUTHORIZED);
    // Unknown flags and bad bodies are named.
    let missing = call(
        Method::POST,
        "/api/v1/feature-flags/no_such_flag/evaluate",
        keys["admin"].clone(),
        Some(json!({"user_id": "u"})),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let no_user = call(
        Method::POST,
        "/api/v1/feature-flags/staff_gate/evaluate",
        keys["admin"].clone(),
        Some(json!({})),
    )
    .await;
    assert_eq!(no_user.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_user.body["errors"][0]["property"], "user_id");

    // A seeded key can be revoked too, and stays revoked across a restart with the flag.
    let seeded_id = listed_seed_id(&front).await;
    let revoked = front
        .call(
            Method::DELETE,
            &format!("/console/v1/keys/{seeded_id}"),
            ADMIN,
            &[],
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(
        front.gate("secret-seeded", "staff_gate", staff()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut front = front;
    front.crash_and_restart().await;
    assert_eq!(
        front.gate("secret-seeded", "staff_gate", staff()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        front.gate(&server_key, "staff_gate", staff()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Statsig's rotation: the same key (id, grants) with a new secret shown once; the old
/// secret fails from the next request, for seeded keys too, and across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_replaces_the_secret_and_keeps_the_key() {
    let dir = temp_dir("console-rotate");
    let mut front = Front::start(&as_strs(&state_dir_args(&dir))).await;
    front
        .post("/console/v1/gates", ADMIN, employee_gate("staff_gate"))
        .await;
    let (id, old) = front
        .new_key(
            json!({"type": "SERVER", "description": "checkout", "environments": ["production"]}),
        )
        .await;
    assert_eq!(
        front.gate(&old, "staff_gate", staff()).await.0,
        StatusCode::OK
    );
    let rotated = rotate(&front, &id).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    assert_eq!(rotated.body["message"], "Key rotated successfully.");
    let data = &rotated.body["data"];
    let new = data["key"].as_str().unwrap().to_owned();
    assert!(new.starts_with("secret-") && new.len() == old.len() && new != old);
    assert_eq!(
        (
            &data["id"],
            &data["description"],
            &data["environments"],
            &data["status"]
        ),
        (
            &json!(id),
            &json!("checkout"),
            &json!(["production"]),
            &json!("active")
        )
    );
    assert_eq!(rotated.etag.as_deref(), Some("\"2\""));
    assert_eq!(
        front.gate(&old, "staff_gate", staff()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        front.gate(&new, "staff_gate", staff()).await,
        (StatusCode::OK, json!(true))
    );
    let got = front.get(&format!("/console/v1/keys/{id}"), ADMIN).await;
    assert_eq!(got.body["data"]["prefix"], &new[..11]);
    assert!(got.body["data"]["last_used_at"].is_u64(), "{:?}", got.body);
    let text = got.body.to_string()
        + &front
            .get("/console/v1/audit_logs", ADMIN)
            .await
            .body
            .to_string();
    assert!(!text.contains(&new) && !text.contains("igest"), "{text}");

    // A seeded key: its flag's secret stops working, and stays stopped after a restart
    // with the same flag.
    let seeded_id = listed_seed_id(&front).await;
    let rotated = rotate(&front, &seeded_id).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    assert_eq!(rotated.body["data"]["source"], "console");
    let seeded_new = rotated.body["data"]["key"].as_str().unwrap().to_owned();
    front.crash_and_restart().await;
    for (key, want) in [
        ("secret-seeded", StatusCode::UNAUTHORIZED),
        (seeded_new.as_str(), StatusCode::OK),
        (old.as_str(), StatusCode::UNAUTHORIZED),
        (new.as_str(), StatusCode::OK),
    ] {
        assert_eq!(
            front.gate(key, "staff_gate", staff()).await.0,
            want,
            "{key}"
        );
    }

    // Rotated again, named by its secret as Statsig's clients name keys: every earlier
    // secret stays retired, and names no key.
    assert_eq!(
        front
            .get(&format!("/console/v1/keys/{old}"), ADMIN)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let third = rotate(&front, &new).await.body["data"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for (key, want) in [
        (old.as_str(), StatusCode::UNAUTHORIZED),
        (new.as_str(), StatusCode::UNAUTHORIZED),
        (third.as_str(), StatusCode::OK),
    ] {
        assert_eq!(
            front.gate(key, "staff_gate", staff()).await.0,
            want,
            "{key}"
        );
    }

    // Statsig deactivates with PATCH; a deactivated or unknown key is not rotated.
    let deactivated = front
        .call(
            Method::PATCH,
            &format!("/console/v1/keys/{id}/deactivate"),
            ADMIN,
            &[],
            None,
        )
        .await;
    assert_eq!(deactivated.status, StatusCode::OK);
    assert_eq!(
        front.gate(&third, "staff_gate", staff()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(rotate(&front, &id).await.status, StatusCode::CONFLICT);
    assert_eq!(
        rotate(&front, "000000000000").await.status,
        StatusCode::NOT_FOUND
    );
    let (_, console_key) = front
        .new_key(json!({"type": "CONSOLE", "scopes": ["omni_read_write"]}))
        .await;
    let denied = front
        .call(
            Method::PATCH,
            &format!("/console/v1/keys/{seeded_id}/rotate"),
            &console_key,
            &[],
            None,
        )
        .await;
    assert_eq!(
        denied.status,
        StatusCode::FORBIDDEN,
        "rotating needs can_access_keys"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Statsig's documented create-gate example is taken as it stands (its conditions naming
/// other gates and segments aside: those must exist here); its metadata comes back, and a
/// gate read and written back whole, server-set fields included, is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsigs_documented_gate_body_is_accepted() {
    let dir = temp_dir("console-statsig-body");
    let front = Front::start(&as_strs(&state_dir_args(&dir))).await;
    let body = json!({"name": "a_verbose_gate", "idType": "userID", "isEnabled": true,
        "description": "helpful summary of what this gate does",
        "lastModifierName": "CONSOLE API", "lastModifierID": "5rfuqoxLIYTscuSaaCOlB8",
        "targetApps": [], "team": "team",
        "rules": [{"name": "All Conditions", "passPercentage": 100, "environment": null,
            "conditions": [{"type": "public"},
                {"type": "user_id", "targetValue": ["111", "222"], "operator": "any"},
                {"type": "email", "targetValue": ["@outlook.com", "@gmail.com"], "operator": "str_contains_any"},
                {"type": "custom_field", "targetValue": 31, "operator": "gt", "field": "age"},
                {"type": "app_version", "targetValue": "1.1.1", "operator": "version_gt"},
                {"type": "time", "targetValue": 1643070357193_u64, "operator": "after"}]}],
        "checksPerHour": 0, "tags": [], "monitoringMetrics": [{"name": "dau", "type": "user"}]});
    let created = front.post("/console/v1/gates", ADMIN, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let user = |id: &str| json!({"userID": id, "email": "a@gmail.com", "appVersion": "1.2.0", "custom": {"age": 40}});
    assert_eq!(
        front
            .gate("secret-seeded", "a_verbose_gate", user("111"))
            .await
            .1,
        json!(true)
    );
    assert_eq!(
        front
            .gate("secret-seeded", "a_verbose_gate", user("333"))
            .await
            .1,
        json!(false)
    );

    let read = front.get("/console/v1/gates/a_verbose_gate", ADMIN).await;
    assert_eq!(read.body["data"]["team"], "team");
    assert_eq!(read.body["data"]["monitoringMetrics"][0]["name"], "dau");
    assert!(read.body["data"].get("checksPerHour").is_none());
    let mut whole = read.body["data"].clone();
    whole["description"] = "edited".into();
    let written = front
        .post("/console/v1/gates/a_verbose_gate", ADMIN, whole)
        .await;
    assert_eq!(written.status, StatusCode::OK, "{:?}", written.body);
    assert_eq!(
        (
            &written.body["data"]["description"],
            &written.body["data"]["team"]
        ),
        (&json!("edited"), &json!("team"))
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_as_statsigs_do() {
    let dir = temp_dir("console-pages");
    let front = Front::start(&as_strs(&state_dir_args(&dir))).await;
    for i in 0..5 {
        let created = front
            .post(
                "/console/v1/gates",
                ADMIN,
                employee_gate(&format!("paged_{i}")),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    }
    let whole = front.get("/console/v1/gates", ADMIN).await;
    let everything = whole.body["data"].as_array().unwrap().clone();
    assert_eq!(everything.len(), 5);
    assert_eq!(
        whole.body["pagination"],
        json!({"itemsPerPage": 100, "pageNumber": 1, "totalItems": 5, "nextPage": null,
               "previousPage": null, "all": ""})
    );

    // A client following nextPage from the first page gets every gate once, in order.
    let mut seen = Vec::new();
    let mut next = Some("/console/v1/gates?limit=2".to_owned());
    let mut pages = Vec::new();
    while let Some(path) = next {
        let page = front.get(&path, ADMIN).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {:?}", page.body);
        seen.extend(page.body["data"].as_array().unwrap().iter().cloned());
        next = page.body["pagination"]["nextPage"]
            .as_str()
            .map(str::to_owned);
        pages.push(page.body["pagination"].clone());
        assert!(pages.len() <= 3, "{pages:?}");
    }
    assert_eq!(seen, everything);
    assert_eq!(
        pages[2],
        json!({"itemsPerPage": 2, "pageNumber": 3, "totalItems": 5, "nextPage": null,
               "previousPage": "/console/v1/gates?page=2&limit=2", "all": ""})
    );
    assert_eq!(pages[0]["nextPage"], "/console/v1/gates?page=2&limit=2");
    let past_the_end = front.get("/console/v1/gates?page=4&limit=2", ADMIN).await;
    assert_eq!(past_the_end.body["data"], json!([]));

    // The audit log and an entity's versions page alike, newest first; so do keys.
    let audit = front
        .get("/console/v1/audit_logs?limit=1&page=2", ADMIN)
        .await;
    assert_eq!(audit.body["data"][0]["id"], "paged_3", "{:?}", audit.body);
    assert_eq!(audit.body["pagination"]["totalItems"], 5);
    let versions = front
        .get("/console/v1/gates/paged_0/versions?limit=1", ADMIN)
        .await;
    assert_eq!(
        versions.body["pagination"]["totalItems"], 1,
        "{:?}",
        versions.body
    );
    let keys = front.get("/console/v1/keys?limit=1", ADMIN).await;
    assert_eq!(keys.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(keys.body["pagination"]["totalItems"], 2, "{:?}", keys.body);

    // Filters Statsig's lists take; one Gatehouse does not support is refused, not ignored.
    let tagged =
        json!({"name": "paged_tagged", "tags": ["beta"], "teamID": "t1", "idType": "stableID"});
    assert_eq!(
        front.post("/console/v1/gates", ADMIN, tagged).await.status,
        StatusCode::CREATED
    );
    for (query, expected) in [
        ("tags=beta", vec!["paged_tagged"]),
        ("tags=beta&tags=nope", vec!["paged_tagged"]),
        ("teamID=t1&idType=stableID", vec!["paged_tagged"]),
        ("teamID=t2", vec![]),
        ("idType=userID&limit=2&page=3", vec!["paged_4"]),
    ] {
        let listed = front
            .get(&format!("/console/v1/gates?{query}"), ADMIN)
            .await;
        assert_eq!(listed.listed("id"), expected, "{query}");
    }
    for (path, filter) in [
        ("/console/v1/gates?typeReason=STALE_NO_RULES", "typeReason"),
        ("/console/v1/audit_logs?id=paged_0", "id"),
        ("/console/v1/keys?status=active", "status"),
    ] {
        let refused = front.get(path, ADMIN).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(refused.body["errors"][0]["property"], filter, "{path}");
    }

    for bad in ["limit=0", "limit=ten", "page=0", "limit=10001"] {
        let refused = front.get(&format!("/console/v1/gates?{bad}"), ADMIN).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        let property = bad.split('=').next().unwrap();
        assert_eq!(refused.body["errors"][0]["property"], property, "{bad}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `PATCH /console/v1/keys/{id}/rotate` with the admin key.
async fn rotate(front: &Front, id: &str) -> Answer {
    let path = format!("/console/v1/keys/{id}/rotate");
    front.call(Method::PATCH, &path, ADMIN, &[], None).await
}

async fn listed_seed_id(front: &Front) -> String {
    let listed = front.get("/console/v1/keys", ADMIN).await;
    listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["source"] == "flag" && k["type"] == "SERVER")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_crud_validation_versions_and_restart() {
    let dir = temp_dir("console-rules");
    let mut front = Front::start(&as_strs(&state_dir_args(&dir))).await;
    let key = "secret-seeded";

    let before = front.get("/v1/download_config_specs", key).await;
    let time0 = before.body["time"].as_i64().unwrap();

    let created = front
        .post("/console/v1/gates", ADMIN, employee_gate("staff_gate"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["message"], "Gate created successfully.");
    assert_eq!(created.etag.as_deref(), Some("\"1\""));
    assert!(created.body["data"].get("_salt").is_none());
    assert_eq!(
        front.gate(key, "staff_gate", staff()).await,
        (StatusCode::OK, json!(true))
    );
    assert_eq!(
        front
            .gate(
                key,
                "staff_gate",
                json!({"userID": "x", "email": "x@else.example"})
            )
            .await
            .1,
        json!(false)
    );
    // download_config_specs has it, with a newer time; sinceTime clients see updates.
    let dcs = front
        .get("/v2/download_config_specs/secret-seeded.json", "")
        .await;
    let time1 = dcs.body["time"].as_i64().unwrap();
    assert!(time1 > time0);
    assert!(dcs.body["feature_gates"]["staff_gate"].is_object());
    let since = |t: i64| format!("/v1/download_config_specs?sinceTime={t}");
    assert_eq!(
        front.get(&since(time0), key).await.body["has_updates"],
        json!(true)
    );
    assert_eq!(
        front.get(&since(time1), key).await.body,
        json!({"has_updates": false})
    );

    // Validation names the field; nothing reaches the ruleset.
    for (body, property) in [
        (employee_gate("staff_gate"), None),
        (
            json!({"name": "g2", "rules": [{"name": "r", "conditions": [{"type": "email", "operator": "matches_all", "targetValue": ["x"]}]}]}),
            Some("rules[0].conditions[0].operator"),
        ),
        (
            json!({"name": "g2", "rules": [{"name": "r", "passPercentage": 150}]}),
            Some("rules[0].passPercentage"),
        ),
        (
            json!({"name": "g2", "rules": [{"name": "r", "conditions": [{"type": "shoe_size", "operator": "gt", "targetValue": 9}]}]}),
            Some("rules[0].conditions[0].type"),
        ),
        (
            json!({"name": "g2", "rules": [{"name": "r"}, {"name": "r"}]}),
            Some("rules[1].name"),
        ),
        (json!({"name": "g2", "colour": "red"}), Some("colour")),
        (json!({"description": "no name"}), Some("name")),
    ] {
        let refused = front.post("/console/v1/gates", ADMIN, body).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            refused.body
        );
        match property {
            Some(p) => assert_eq!(refused.body["errors"][0]["property"], p),
            None => {
                assert_eq!(refused.body["message"], "Name is already in use");
                assert_eq!(refused.body["errors"][0]["property"], "name");
            }
        }
    }
    assert_eq!(
        front.get(&since(time1), key).await.body,
        json!({"has_updates": false}),
        "a refused write changed the ruleset"
    );

    // ETag / If-Match: a stale version is a 409, and nothing changes.
    let read = front.get("/console/v1/gates/staff_gate", ADMIN).await;
    assert_eq!(read.etag.as_deref(), Some("\"1\""));
    let disable = |etag: &'static str| {
        front.patch_if_match(
            "/console/v1/gates/staff_gate",
            etag,
            json!({"isEnabled": false}),
        )
    };
    let first = disable("\"1\"").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.etag.as_deref(), Some("\"2\""));
    assert_eq!(disable("\"1\"").await.status, StatusCode::CONFLICT);
    assert_eq!(front.gate(key, "staff_gate", staff()).await.1, json!(false));
    let enabled = front
        .call(
            Method::PUT,
            "/console/v1/gates/staff_gate/enable",
            ADMIN,
            &[],
            None,
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK);
    assert_eq!(front.gate(key, "staff_gate", staff()).await.1, json!(true));

    // Rules: add, update, delete; overrides.
    let added = front
        .post(
            "/console/v1/gates/staff_gate/rules",
            ADMIN,
            json!({"name": "beta", "passPercentage": 100, "conditions": [{"type": "custom_field", "field": "beta", "operator": "eq", "targetValue": true}]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    // A rule's id salts its bucketing and addresses it: a second rule may not reuse one.
    let gate = front.get("/console/v1/gates/staff_gate", ADMIN).await;
    let taken = gate.body["data"]["rules"][0]["id"].clone();
    let copied = front
        .post(
            "/console/v1/gates/staff_gate/rules",
            ADMIN,
            json!({"name": "copy", "id": taken, "conditions": [{"type": "public"}]}),
        )
        .await;
    assert_eq!(copied.status, StatusCode::BAD_REQUEST, "{:?}", copied.body);
    assert_eq!(copied.body["errors"][0]["property"], "id");
    let beta = json!({"userID": "b", "custom": {"beta": true}});
    assert_eq!(
        front.gate(key, "staff_gate", beta.clone()).await.1,
        json!(true)
    );
    let updated = front
        .call(
            Method::PATCH,
            "/console/v1/gates/staff_gate/rules/beta",
            ADMIN,
            &[],
            Some(json!({"passPercentage": 0})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(
        front.gate(key, "staff_gate", beta.clone()).await.1,
        json!(false)
    );
    let overrides = front
        .post(
            "/console/v1/gates/staff_gate/overrides",
            ADMIN,
            json!({"passingUserIDs": ["b"], "failingUserIDs": ["u1"]}),
        )
        .await;
    assert_eq!(overrides.status, StatusCode::OK);
    assert_eq!(front.gate(key, "staff_gate", beta).await.1, json!(true));
    assert_eq!(front.gate(key, "staff_gate", staff()).await.1, json!(false));

    // Segments, dynamic configs, experiments in a layer.
    let segment = front
        .post(
            "/console/v1/segments",
            ADMIN,
            json!({"name": "vips", "type": "id_list", "ids": ["v1", "v2"]}),
        )
        .await;
    assert_eq!(segment.status, StatusCode::CREATED, "{:?}", segment.body);
    front
        .post(
            "/console/v1/gates",
            ADMIN,
            json!({"name": "vip_gate", "rules": [{"name": "vips", "conditions": [{"type": "passes_segment", "targetValue": "vips"}]}]}),
        )
        .await;
    assert_eq!(
        front.gate(key, "vip_gate", json!({"userID": "v2"})).await.1,
        json!(true)
    );
    assert_eq!(
        front.gate(key, "vip_gate", json!({"userID": "v3"})).await.1,
        json!(false)
    );
    let config = front
        .post(
            "/console/v1/dynamic_configs",
            ADMIN,
            json!({"name": "limits", "defaultValue": {"max": 10},
                   "rules": [{"name": "staff", "conditions": [{"type": "passes_gate", "targetValue": "vip_gate"}], "returnValue": {"max": 99}}]}),
        )
        .await;
    assert_eq!(config.status, StatusCode::CREATED, "{:?}", config.body);
    let get_config = |user: Value, name: &'static str| {
        front.post(
            "/v1/get_config",
            key,
            json!({"user": user, "configName": name}),
        )
    };
    assert_eq!(
        get_config(json!({"userID": "v1"}), "limits").await.body["value"],
        json!({"max": 99})
    );
    assert_eq!(
        get_config(json!({"userID": "zz"}), "limits").await.body["value"],
        json!({"max": 10})
    );
    let layer = front
        .post(
            "/console/v1/layers",
            ADMIN,
            json!({"name": "checkout", "parameters": [{"name": "color", "defaultValue": "gray"}]}),
        )
        .await;
    assert_eq!(layer.status, StatusCode::CREATED, "{:?}", layer.body);
    let experiment = front
        .post(
            "/console/v1/experiments",
            ADMIN,
            json!({"name": "button", "layerID": "checkout", "allocation": 50, "groups": [
                {"name": "Control", "size": 50, "parameterValues": {"color": "gray"}},
                {"name": "Test", "size": 50, "parameterValues": {"color": "green"}}]}),
        )
        .await;
    assert_eq!(
        experiment.status,
        StatusCode::CREATED,
        "{:?}",
        experiment.body
    );
    assert_eq!(experiment.body["data"]["status"], "setup");
    let bad_finish = front
        .call(
            Method::PUT,
            "/console/v1/experiments/button/finish",
            ADMIN,
            &[],
            Some(json!({"launchedGroupID": "Test"})),
        )
        .await;
    assert_eq!(bad_finish.status, StatusCode::CONFLICT);
    let started = front
        .call(
            Method::PUT,
            "/console/v1/experiments/button/start",
            ADMIN,
            &[],
            None,
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let forced = front
        .post(
            "/console/v1/experiments/button/overrides",
            ADMIN,
            json!({"userIDOverrides": [{"groupID": "Test", "ids": ["forced-user"]}]}),
        )
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{:?}", forced.body);
    let answer = get_config(json!({"userID": "forced-user"}), "button")
        .await
        .body;
    assert_eq!(answer["group_name"], "Test");
    assert_eq!(answer["value"], json!({"color": "green"}));
    let bad = front
        .post(
            "/console/v1/experiments/button/overrides",
            ADMIN,
            json!({"userIDOverrides": [{"groupID": "Nope", "ids": ["x"]}]}),
        )
        .await;
    assert_eq!(
        bad.body["errors"][0]["property"],
        "userIDOverrides[0].groupID"
    );
    let mut groups = std::collections::HashMap::new();
    for i in 0..400 {
        let user = json!({"userID": format!("user-{i}")});
        let answer = get_config(user.clone(), "button").await.body;
        let layer = front
            .post(
                "/v1/get_layer",
                key,
                json!({"user": user, "layerName": "checkout"}),
            )
            .await
            .body;
        let group = answer["group_name"]
            .as_str()
            .unwrap_or("(not in experiment)")
            .to_owned();
        // The layer delegates exactly the experiment's users, with the same value.
        if group == "(not in experiment)" {
            assert_eq!(layer["value"], json!({"color": "gray"}));
            assert_eq!(layer["allocatedExperimentName"], Value::Null);
        } else {
            assert_eq!(layer["allocatedExperimentName"], "button");
            assert_eq!(layer["value"], answer["value"]);
        }
        *groups.entry(group).or_insert(0) += 1;
    }
    // Half the layer, split evenly: ~100 / ~100 / ~200 of 400.
    for (group, lo, hi) in [
        ("Control", 60, 140),
        ("Test", 60, 140),
        ("(not in experiment)", 150, 250),
    ] {
        let n = groups.get(group).copied().unwrap_or(0);
        assert!((lo..=hi).contains(&n), "{group}: {n} of 400 ({groups:?})");
    }
    let finished = front
        .call(
            Method::PUT,
            "/console/v1/experiments/button/finish",
            ADMIN,
            &[],
            Some(json!({"launchedGroupID": "Test"})),
        )
        .await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    assert_eq!(
        get_config(json!({"userID": "user-1"}), "button").await.body["value"],
        json!({"color": "green"})
    );
    // Shipped into the layer: its parameters' defaults are the launched group's values.
    for i in 0..20 {
        let user = json!({"userID": format!("user-{i}")});
        let body = json!({"user": user, "layerName": "checkout"});
        let layer = front.post("/v1/get_layer", key, body).await.body;
        assert_eq!(layer["value"], json!({"color": "green"}), "{layer}");
    }
    let layer_doc = front.get("/console/v1/layers/checkout", ADMIN).await.body;
    assert_eq!(layer_doc["data"]["parameters"][0]["defaultValue"], "green");
    let layer_versions = front
        .get("/console/v1/layers/checkout/versions", ADMIN)
        .await;
    assert!(
        layer_versions.body.to_string().contains("\"ship\""),
        "{:?}",
        layer_versions.body
    );

    // Versions and the audit log.
    let versions = front
        .get("/console/v1/gates/staff_gate/versions", ADMIN)
        .await;
    let actions = versions.listed("action");
    assert_eq!(
        actions,
        [
            "overrides",
            "update_rule",
            "add_rule",
            "enable",
            "update",
            "create"
        ]
    );
    assert_eq!(versions.body["data"][0]["version"], 6);
    let audit = front.get("/console/v1/audit_logs?limit=3", ADMIN).await;
    assert_eq!(audit.body["data"].as_array().unwrap().len(), 3);
    assert_eq!(audit.body["data"][0]["id"], "button");
    assert_eq!(audit.body["data"][0]["action"], "finish");

    // Delete; a restart (kill -9) comes back with everything.
    front
        .post("/console/v1/gates", ADMIN, employee_gate("short_lived"))
        .await;
    assert_eq!(front.gate(key, "short_lived", staff()).await.1, json!(true));
    let deleted = front
        .call(
            Method::DELETE,
            "/console/v1/gates/short_lived",
            ADMIN,
            &[],
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(
        front.gate(key, "short_lived", staff()).await.1,
        json!(false)
    );
    assert_eq!(
        front
            .get("/console/v1/gates/short_lived", ADMIN)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let dcs_before = front
        .get("/v2/download_config_specs/secret-seeded.json", "")
        .await
        .body;
    front.crash_and_restart().await;
    let dcs_after = front
        .get("/v2/download_config_specs/secret-seeded.json", "")
        .await
        .body;
    assert_eq!(dcs_before, dcs_after);
    assert_eq!(
        front.gate(key, "vip_gate", json!({"userID": "v1"})).await.1,
        json!(true)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The group each of 600 units gets from `experiment` (`None`: not in it).
async fn assignments(front: &Front, experiment: &str) -> Vec<Option<String>> {
    let mut groups = Vec::new();
    for i in 0..600 {
        let user = json!({"userID": format!("u{i}")});
        let body = json!({"user": user, "configName": experiment});
        let answer = front
            .post("/v1/get_config", "secret-seeded", body)
            .await
            .body;
        groups.push(answer["group_name"].as_str().map(str::to_owned));
    }
    groups
}

/// Sets a running experiment's allocation and reads the groups again: every unit that was in
/// a group is in the same one, or (allocation lowered) in none.
async fn reallocate(
    front: &Front,
    experiment: &str,
    allocation: u32,
    before: &[Option<String>],
) -> Vec<Option<String>> {
    let path = format!("/console/v1/experiments/{experiment}");
    let body = json!({"allocation": allocation});
    let answer = front
        .call(Method::PATCH, &path, ADMIN, &[], Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let after = assignments(front, experiment).await;
    let moved = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.is_some() && a.is_some() && a != b)
        .count();
    assert_eq!(
        moved, 0,
        "units of {experiment} that changed group at {allocation}%"
    );
    after
}

/// A running experiment's allocation changed over the console lets units in or out and moves
/// none between groups: alone (its own allocation salt) and in a layer (its range grows or
/// shrinks in place; into a neighbour's range is a 409, as is leaving the layer, or changing
/// the group sizes or the unit type of a running experiment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_changes_move_no_unit_between_groups() {
    let dir = temp_dir("console-allocation");
    let front = Front::start(&as_strs(&state_dir_args(&dir))).await;
    let key = "secret-seeded";
    let groups = || {
        json!([{"name": "Control", "size": 50, "parameterValues": {"color": "gray"}},
               {"name": "Test", "size": 50, "parameterValues": {"color": "green"}}])
    };
    let layer = json!({"name": "l", "parameters": [{"name": "color", "defaultValue": "none"}]});
    assert_eq!(
        front.post("/console/v1/layers", ADMIN, layer).await.status,
        StatusCode::CREATED
    );
    for (name, layer) in [
        ("solo", None),
        ("ramp", Some("l")),
        ("neighbour", Some("l")),
    ] {
        let body = json!({"name": name, "layerID": layer, "allocation": 20, "groups": groups()});
        let created = front.post("/console/v1/experiments", ADMIN, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let path = format!("/console/v1/experiments/{name}/start");
        let started = front.call(Method::PUT, &path, ADMIN, &[], None).await;
        assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    }
    // ramp holds buckets 0..200 of the layer, neighbour 200..400.
    let in_experiment = |groups: &[Option<String>]| groups.iter().flatten().count();
    // Every unit in a group before is in the same group after, or (shrunk) in none.
    let solo_before = assignments(&front, "solo").await;
    let n = in_experiment(&solo_before);
    assert!((80..=160).contains(&n), "20% of 600 in solo: {n}");
    let solo_after = reallocate(&front, "solo", 40, &solo_before).await;
    let grown = in_experiment(&solo_after);
    assert!(
        solo_before
            .iter()
            .zip(&solo_after)
            .all(|(b, a)| b.is_none() || a.is_some())
            && (190..=290).contains(&grown),
        "40% of 600 in solo, everyone of the 20% still in: {grown}"
    );

    let ramp_before = assignments(&front, "ramp").await;
    let n = in_experiment(&ramp_before);
    assert!((80..=160).contains(&n), "20% of 600 in ramp: {n}");
    let path = "/console/v1/experiments/ramp";
    let body = Some(json!({"allocation": 30}));
    let blocked = front.call(Method::PATCH, path, ADMIN, &[], body).await;
    assert_eq!(blocked.status, StatusCode::CONFLICT, "{:?}", blocked.body);
    assert!(
        blocked.body["message"]
            .as_str()
            .unwrap()
            .contains("layer l"),
        "{:?}",
        blocked.body
    );
    let ramp_shrunk = reallocate(&front, "ramp", 10, &ramp_before).await;
    let n = in_experiment(&ramp_shrunk);
    assert!((30..=90).contains(&n), "10% of 600 in ramp: {n}");
    // Once neighbour has finished, ramp grows over its buckets.
    let finish = json!({"launchedGroupID": "Test"});
    let path = "/console/v1/experiments/neighbour/finish";
    let finished = front
        .call(Method::PUT, path, ADMIN, &[], Some(finish))
        .await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    let ramp_grown = reallocate(&front, "ramp", 40, &ramp_before).await;
    assert!(
        ramp_before
            .iter()
            .zip(&ramp_grown)
            .all(|(b, a)| b.is_none() || a.is_some()),
        "a unit of ramp's first 20% left it"
    );
    let layer_answer = front
        .post(
            "/v1/get_layer",
            key,
            json!({"user": {"userID": "u1"}, "layerName": "l"}),
        )
        .await;
    assert_eq!(
        layer_answer.body["allocatedExperimentName"]
            .as_str()
            .is_some(),
        ramp_grown[1].is_some(),
        "the layer delegates exactly ramp's units"
    );
    let moved = front
        .call(
            Method::PATCH,
            "/console/v1/experiments/ramp",
            ADMIN,
            &[],
            Some(json!({"layerID": null})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::CONFLICT, "{:?}", moved.body);
    // Nor may the split or the unit change under a running experiment; values may.
    for (change, expected) in [
        (
            json!({"groups": [{"name": "Control", "size": 60}, {"name": "Test", "size": 40}]}),
            StatusCode::CONFLICT,
        ),
        (json!({"idType": "stableID"}), StatusCode::CONFLICT),
        (
            json!({"groups": [{"name": "Control", "size": 50, "parameterValues": {"color": "blue"}},
                           {"name": "Test", "size": 50, "parameterValues": {"color": "green"}}]}),
            StatusCode::OK,
        ),
    ] {
        let path = "/console/v1/experiments/solo";
        let answer = front
            .call(Method::PATCH, path, ADMIN, &[], Some(change.clone()))
            .await;
        assert_eq!(answer.status, expected, "{change}: {:?}", answer.body);
    }
    assert_eq!(assignments(&front, "solo").await, solo_after);
    let _ = std::fs::remove_dir_all(dir);
}

/// A write naming a gate, segment or layer that does not exist is a 400 naming the field;
/// deleting one that other entities name is a 409 naming them: either would silently change
/// what they answer. Once the references are gone it deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_must_exist_and_named_entities_stay() {
    let dir = temp_dir("console-references");
    let specs = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evaluator/tests/data/conformance_v2.json"
    );
    let mut args = state_dir_args(&dir);
    args.extend(["--specs".to_owned(), specs.to_owned()]);
    let front = Front::start(&as_strs(&args)).await;
    let uses = |kind: &str, target: &str| json!([{"name": "r", "conditions": [{"type": kind, "targetValue": target}]}]);
    // A name no spec has is a 400 naming the field; a gate of the specs file may be named.
    let one_group = || json!([{"name": "A", "size": 100}]);
    let field = "rules[0].conditions[0].targetValue";
    for (path, body, property) in [
        (
            "gates",
            json!({"name": "x", "rules": uses("passes_gate", "stafff")}),
            field,
        ),
        (
            "gates",
            json!({"name": "x", "rules": uses("fails_segment", "nope")}),
            field,
        ),
        (
            "experiments",
            json!({"name": "x", "targetingGateID": "nope", "groups": one_group()}),
            "targetingGateID",
        ),
        (
            "experiments",
            json!({"name": "x", "layerID": "nope", "groups": one_group()}),
            "layerID",
        ),
    ] {
        let refused = front
            .post(&format!("/console/v1/{path}"), ADMIN, body)
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            refused.body
        );
        let named = &refused.body["errors"][0]["property"];
        assert_eq!(named, property, "{:?}", refused.body);
    }
    let from_file = json!({"name": "on_file_gate", "rules": uses("passes_gate", "gate_0")});
    let created = front.post("/console/v1/gates", ADMIN, from_file).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    for (path, body) in [
        ("gates", employee_gate("staff")),
        (
            "segments",
            json!({"name": "beta", "type": "id_list", "ids": ["u1"]}),
        ),
        (
            "gates",
            json!({"name": "vip", "rules": uses("passes_gate", "staff")}),
        ),
        (
            "dynamic_configs",
            json!({"name": "limits", "defaultValue": {}, "rules": uses("fails_segment", "beta")}),
        ),
        ("layers", json!({"name": "l", "parameters": []})),
        (
            "experiments",
            json!({"name": "e", "layerID": "l", "targetingGateID": "staff",
                               "groups": [{"name": "A", "size": 100}]}),
        ),
    ] {
        let created = front
            .post(&format!("/console/v1/{path}"), ADMIN, body)
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    }
    // A targeted experiment's shipped group goes to the units that pass its gate only.
    let targeted = json!({"name": "t", "targetingGateID": "staff",
                          "groups": [{"name": "A", "size": 100, "parameterValues": {"v": 1}}]});
    let created = front.post("/console/v1/experiments", ADMIN, targeted).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    for (action, body) in [
        ("start", None),
        ("finish", Some(json!({"launchedGroupID": "A"}))),
    ] {
        let path = format!("/console/v1/experiments/t/{action}");
        let done = front.call(Method::PUT, &path, ADMIN, &[], body).await;
        assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    }
    for (user, value) in [
        (staff(), json!({"v": 1})),
        (json!({"userID": "u2"}), json!({})),
    ] {
        let body = json!({"user": user, "configName": "t"});
        let answer = front.post("/v1/get_config", "secret-seeded", body).await;
        assert_eq!(answer.body["value"], value, "{user}: {:?}", answer.body);
    }
    let delete = |path: &'static str| front.call(Method::DELETE, path, ADMIN, &[], None);
    for (path, named) in [
        (
            "/console/v1/gates/staff",
            "gate vip (rules[0].conditions[0].targetValue), experiment e (targetingGateID)",
        ),
        (
            "/console/v1/segments/beta",
            "dynamic_config limits (rules[0].conditions[0].targetValue)",
        ),
        ("/console/v1/layers/l", "experiment e (layerID)"),
    ] {
        let refused = delete(path).await;
        assert_eq!(
            refused.status,
            StatusCode::CONFLICT,
            "{path}: {:?}",
            refused.body
        );
        let message = refused.body["message"].as_str().unwrap();
        assert!(message.contains(named), "{path}: {message}");
    }
    for path in [
        "/console/v1/experiments/t",
        "/console/v1/experiments/e",
        "/console/v1/gates/vip",
        "/console/v1/dynamic_configs/limits",
        "/console/v1/gates/staff",
        "/console/v1/segments/beta",
        "/console/v1/layers/l",
    ] {
        let deleted = delete(path).await;
        assert_eq!(deleted.status, StatusCode::OK, "{path}: {:?}", deleted.body);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Many writers incrementing one counter with If-Match and retry on 409: no update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_update() {
    let dir = temp_dir("console-race");
    let front = Arc::new(Front::start(&as_strs(&state_dir_args(&dir))).await);
    front
        .post(
            "/console/v1/gates",
            ADMIN,
            json!({"name": "counter", "description": "0"}),
        )
        .await;
    let (writers, increments) = (8, 10);
    let conflicts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (front, conflicts) = (front.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < increments {
                let read = front.get("/console/v1/gates/counter", ADMIN).await;
                let n: u64 = read.body["data"]["description"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let etag = read.etag.unwrap();
                let written = front
                    .call(
                        Method::PATCH,
                        "/console/v1/gates/counter",
                        ADMIN,
                        &[("If-Match", &etag)],
                        Some(json!({"description": (n + 1).to_string()})),
                    )
                    .await;
                match written.status {
                    StatusCode::OK => done += 1,
                    StatusCode::CONFLICT => {
                        conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    other => panic!("{other}: {:?}", written.body),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let read = front.get("/console/v1/gates/counter", ADMIN).await;
    assert_eq!(
        read.body["data"]["description"],
        (writers * increments).to_string()
    );
    assert_eq!(read.etag, Some(format!("\"{}\"", writers * increments + 1)));
    println!(
        "{} writers × {increments}: {} conflicts answered 409 and retried",
        writers,
        conflicts.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// kill -9 while writes are in flight: every write that was answered 2xx is there after the
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_writes_loses_nothing_acknowledged() {
    let dir = temp_dir("console-kill");
    let mut front = Front::start(&as_strs(&state_dir_args(&dir))).await;
    let port = front.port;
    let writer = tokio::spawn(async move {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let mut acknowledged = Vec::new();
        for i in 0..10_000 {
            let name = format!("gate_{i}");
            let req = Request::post(format!("http://127.0.0.1:{port}/console/v1/gates"))
                .header("STATSIG-API-KEY", ADMIN)
                .body(Full::new(Bytes::from(employee_gate(&name).to_string())))
                .unwrap();
            match client.request(req).await {
                Ok(resp) if resp.status() == StatusCode::CREATED => acknowledged.push(name),
                _ => break, // the process is gone
            }
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    front.crash_and_restart().await;
    let acknowledged = writer.await.unwrap();
    assert!(acknowledged.len() > 5, "too few writes before the kill");
    let listed = front.get("/console/v1/gates", ADMIN).await;
    let names: std::collections::HashSet<&str> = listed.listed("name").into_iter().collect();
    for name in &acknowledged {
        assert!(
            names.contains(name.as_str()),
            "{name} was acknowledged but lost"
        );
    }
    println!(
        "{} acknowledged before kill -9, all {} back after restart",
        acknowledged.len(),
        names.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Two front doors on one compacted topic of the real broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_front_doors_share_state_through_kafka() {
    let Some(brokers) = real_broker() else {
        return;
    };
    let topic = format!("gatehouse.control.test.{}", uuid_like());
    let args = ["--state-topic", &topic, "--kafka-brokers", &brokers];
    let a = Front::start(&args).await;
    let mut b = Front::start(&args).await;

    // Within one second on the other door (polled every 10 ms; the time is printed).
    async fn within_a_second<F: std::future::Future<Output = bool>>(
        what: &str,
        mut check: impl FnMut() -> F,
    ) {
        let started = Instant::now();
        while !check().await {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{what}: not seen within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!("{what}: {} ms", started.elapsed().as_millis());
    }

    let (key_id, key) = a.new_key(json!({"type": "SERVER"})).await;
    a.post("/console/v1/gates", ADMIN, employee_gate("shared_gate"))
        .await;
    within_a_second("key created on A works on B", || async {
        b.gate(&key, "shared_gate", staff()).await == (StatusCode::OK, json!(true))
    })
    .await;

    let patched = b
        .call(
            Method::PATCH,
            "/console/v1/gates/shared_gate",
            ADMIN,
            &[],
            Some(json!({"isEnabled": false})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(b.gate(&key, "shared_gate", staff()).await.1, json!(false));
    within_a_second("rule change on B served by A", || async {
        a.gate(&key, "shared_gate", staff()).await.1 == json!(false)
    })
    .await;

    // The same version written on both doors at once: exactly one wins.
    let read = a.get("/console/v1/gates/shared_gate", ADMIN).await;
    let etag = read.etag.unwrap();
    let path = "/console/v1/gates/shared_gate";
    let (on_a, on_b) = tokio::join!(
        a.patch_if_match(path, &etag, json!({"description": "from A"})),
        b.patch_if_match(path, &etag, json!({"description": "from B"}))
    );
    let mut statuses = [on_a.status, on_b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{on_a:?} {on_b:?}"
    );
    let winner = if on_a.status == StatusCode::OK {
        "from A"
    } else {
        "from B"
    };
    within_a_second("both doors agree on the winner", || async {
        let da = a.get("/console/v1/gates/shared_gate", ADMIN).await.body;
        let db = b.get("/console/v1/gates/shared_gate", ADMIN).await.body;
        da["data"]["description"] == winner && db["data"]["description"] == winner
    })
    .await;

    let rotated = rotate(&a, &key_id).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let old_key = key;
    let key = rotated.body["data"]["key"].as_str().unwrap().to_owned();
    within_a_second(
        "key rotated on A: old secret rejected, new accepted by B",
        || async {
            b.gate(&old_key, "shared_gate", staff()).await.0 == StatusCode::UNAUTHORIZED
                && b.gate(&key, "shared_gate", staff()).await.0 == StatusCode::OK
        },
    )
    .await;

    let revoked = a
        .call(
            Method::DELETE,
            &format!("/console/v1/keys/{key_id}"),
            ADMIN,
            &[],
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    within_a_second("key revoked on A rejected by B", || async {
        b.gate(&key, "shared_gate", staff()).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;

    // A restarted door replays the topic: the full state, before it listens.
    let before = a
        .get("/v2/download_config_specs/secret-seeded.json", "")
        .await
        .body;
    b.crash_and_restart().await;
    let after = b
        .get("/v2/download_config_specs/secret-seeded.json", "")
        .await
        .body;
    assert_eq!(before["feature_gates"], after["feature_gates"]);
    assert_eq!(
        b.gate(&key, "shared_gate", staff()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let gate = b.get("/console/v1/gates/shared_gate", ADMIN).await;
    assert_eq!(gate.body["data"]["description"], winner);
    assert_eq!(gate.etag.as_deref(), Some("\"3\""));
}

/// Keys bound to a target app and environments get only what they may see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_keys_see_their_app_and_environments() {
    let dir = temp_dir("console-scope");
    let front = Front::start(&as_strs(&state_dir_args(&dir))).await;
    let public_in = |envs: &[&str]| {
        json!({"name": format!("{} users", envs.join("+")), "environments": envs,
               "conditions": [{"type": "public"}]})
    };
    for gate in [
        json!({"name": "web_gate", "targetApps": ["web"],
               "rules": [public_in(&["staging"]), public_in(&["production"])]}),
        json!({"name": "ios_gate", "targetApps": ["ios"], "rules": [public_in(&["production"])]}),
        json!({"name": "everywhere", "rules": [public_in(&["production"])]}),
    ] {
        let made = front.post("/console/v1/gates", ADMIN, gate).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    }
    let (web_id, web_key) = front
        .new_key(json!({"type": "SERVER", "targetAppID": "web", "environments": ["staging"]}))
        .await;
    let (_, all_key) = front.new_key(json!({"type": "SERVER"})).await;
    let dcs = |key: String| {
        let front = &front;
        async move {
            front
                .get(&format!("/v2/download_config_specs/{key}.json"), "")
                .await
                .body
        }
    };
    let names = |body: &Value| {
        let mut n: Vec<String> = body["feature_gates"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        n.sort();
        n
    };
    let scoped = dcs(web_key.clone()).await;
    assert_eq!(names(&scoped), ["web_gate"]);
    assert_eq!(scoped["app_id"], "web");
    assert_eq!(scoped["default_environment"], "staging");
    assert_eq!(
        scoped["feature_gates"]["web_gate"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let v1 = front.get("/v1/download_config_specs", &web_key).await.body;
    assert_eq!(v1["feature_gates"].as_array().unwrap().len(), 1);
    assert_eq!(
        names(&dcs(all_key).await),
        ["everywhere", "ios_gate", "web_gate"]
    );

    // Moving the key to production changes what it gets on the next download.
    let patched = front
        .call(
            Method::PATCH,
            &format!("/console/v1/keys/{web_id}"),
            ADMIN,
            &[],
            Some(json!({"environments": ["production"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let moved = dcs(web_key).await;
    let rule = &moved["feature_gates"]["web_gate"]["rules"][0];
    assert_eq!(rule["name"], "production users", "{moved}");
    assert_eq!(moved["default_environment"], "production");

    // A client key bound to the app: initialize holds only the app's gates.
    let (_, client) = front
        .new_key(json!({"type": "CLIENT", "targetAppID": "web"}))
        .await;
    let init = front
        .post(
            "/v1/initialize",
            &client,
            json!({"user": {"userID": "u"}, "hash": "none"}),
        )
        .await;
    assert_eq!(init.status, StatusCode::OK);
    let gates: Vec<&String> = init.body["feature_gates"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(gates, ["web_gate"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A control topic with more than one partition (e.g. auto-created with broker defaults)
/// would give front doors different orders: refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_topic_with_several_partitions_is_refused() {
    let Some(brokers) = real_broker() else {
        return;
    };
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let topic = format!("gatehouse.control.four.{}", uuid_like());
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    admin
        .create_topics(
            [&NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-topic", &topic])
        .args(["--kafka-brokers", &brokers])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has 4 partitions; it needs exactly 1"),
        "{stderr}"
    );
}

/// The generic API's evaluate and track write the same Kafka events as `check_gate` and
/// `log_event` (read back from the real broker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_evaluate_and_track_reach_kafka() {
    let Some(brokers) = real_broker() else {
        return;
    };
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let dir = temp_dir("console-generic-kafka");
    let topic = format!("gatehouse.generic.test.{}", uuid_like());
    let exposures = format!("{topic}.exposures");
    let mut args = state_dir_args(&dir);
    args.extend(
        [
            "--kafka-brokers",
            &brokers,
            "--events-topic",
            &topic,
            "--exposures-topic",
            &exposures,
        ]
        .map(String::from),
    );
    let front = Front::start(&as_strs(&args)).await;
    front
        .post("/console/v1/gates", ADMIN, employee_gate("staff_gate"))
        .await;
    let made = front
        .post(
            "/api/v1/api-keys",
            ADMIN,
            json!({"name": "tracker", "scopes": ["write"]}),
        )
        .await;
    let (key, key_id) = (
        made.body["key"].as_str().unwrap().to_owned(),
        made.body["id"].as_str().unwrap().to_owned(),
    );
    let generic = |path: &'static str, body: Value| {
        let (front, key) = (&front, key.clone());
        async move {
            front
                .call(Method::POST, path, "", &[("X-API-Key", &key)], Some(body))
                .await
        }
    };
    let tracked = generic(
        "/api/v1/tracking/track",
        json!({"user_id": "u7", "event_type": "purchase", "value": 12.5, "metadata": {"sku": "a-1"}}),
    )
    .await;
    assert_eq!(tracked.status, StatusCode::ACCEPTED, "{:?}", tracked.body);
    let evaluated = generic(
        "/api/v1/feature-flags/staff_gate/evaluate",
        json!({"user_id": "u7", "attributes": {"email": "u7@corp.example"}}),
    )
    .await;
    assert_eq!(evaluated.body["value"], true);

    let read_one = |topic: String| {
        let brokers = brokers.clone();
        async move {
            let consumer: StreamConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", format!("reader-{}", uuid_like()))
                .set("auto.offset.reset", "earliest")
                .create()
                .unwrap();
            consumer.subscribe(&[&topic]).unwrap();
            let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .expect("a message within 30 s")
                .unwrap();
            events::Envelope::parse(msg.payload().unwrap()).unwrap()
        }
    };
    let event = read_one(topic.clone()).await;
    assert_eq!(event.event_name, "purchase");
    assert_eq!(event.unit_id, "u7");
    assert_eq!(event.key_id, key_id);
    assert_eq!(event.value, Some(json!(12.5)));
    assert_eq!(event.metadata["sku"], "a-1");
    let exposure = read_one(exposures).await;
    assert_eq!(exposure.event_name, "statsig::gate_exposure");
    assert_eq!(exposure.unit_id, "u7");
    assert_eq!(exposure.exposure.unwrap().name, "staff_gate");
    let _ = std::fs::remove_dir_all(dir);
}
