//! The front door over real HTTP on loopback: auth outcomes, both DCS shapes, the evaluation
//! API against the official SDK's recorded answers, initialize encodings, bad input, metrics,
//! and hot swaps under concurrent requests.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

mod common;
use common::*;

fn specs() -> Vec<u8> {
    std::fs::read(data("conformance_v2.json")).unwrap()
}

#[tokio::test]
async fn every_auth_outcome() {
    let s = Server::start(&specs()).await;
    let gate = json!({"user": {"userID": "u1"}, "gateName": "gate_0"});
    let cases = [
        ("", "/v1/check_gate", StatusCode::UNAUTHORIZED),
        ("secret-unknown", "/v1/check_gate", StatusCode::UNAUTHORIZED),
        (CONSOLE, "/v1/check_gate", StatusCode::FORBIDDEN),
        (SERVER, "/v1/check_gate", StatusCode::OK),
        (CLIENT, "/v1/check_gate", StatusCode::OK),
        (SERVER, "/v1/initialize", StatusCode::FORBIDDEN),
        (CLIENT, "/v1/initialize", StatusCode::OK),
        (CLIENT, "/v1/download_config_specs", StatusCode::FORBIDDEN),
        (CLIENT_DCS, "/v1/download_config_specs", StatusCode::OK),
        (SERVER, "/v1/download_config_specs", StatusCode::OK),
        (SERVER, "/v1/get_id_lists", StatusCode::OK),
        (CLIENT, "/v1/get_id_lists", StatusCode::FORBIDDEN),
    ];
    for (key, path, expected) in cases {
        let (status, body) = s.post_json(path, key, &gate).await;
        assert_eq!(status, expected, "{key} on {path}: {body}");
        if !status.is_success() {
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
        }
    }
    // X-API-Key works too, and the js-client's `?k=` query.
    let (status, _) = s
        .call(
            Method::POST,
            "/v1/check_gate",
            &[("X-API-Key", SERVER)],
            gate.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v1/initialize?k={CLIENT}"),
            &[],
            "{}",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn download_config_specs_in_both_shapes() {
    let s = Server::start(&specs()).await;
    let rs = evaluator::Ruleset::from_slice(&specs()).unwrap();

    let (status, v1) = s
        .call(
            Method::GET,
            &format!("/v1/download_config_specs/{SERVER}.json"),
            &[],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&v1).unwrap(), rs.to_v1());

    let (status, v2) = s
        .call(
            Method::GET,
            &format!("/v2/download_config_specs/{SERVER}.json?supports_proto=true"),
            &[],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let v2: Value = serde_json::from_slice(&v2).unwrap();
    assert_eq!(v2, rs.to_v2());
    for required in [
        "feature_gates",
        "dynamic_configs",
        "layer_configs",
        "condition_map",
        "experiment_to_layer",
        "has_updates",
        "time",
    ] {
        assert!(v2.get(required).is_some(), "v2 needs {required}");
    }

    // SDKs that accept gzip get the body compressed once per version; `q=0` refuses it.
    let v1_path = format!("/v1/download_config_specs/{SERVER}.json");
    for (accept, gzipped) in [
        ("gzip, deflate, br", true),
        ("statsig-br, GZIP;q=0.5", true),
        ("gzip;q=0, br", false),
        ("identity", false),
    ] {
        let (status, headers, body) = s
            .send(Method::GET, &v1_path, &[("accept-encoding", accept)], "")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["vary"], "accept-encoding");
        let json = if gzipped {
            assert_eq!(headers["content-encoding"], "gzip", "{accept}");
            assert!(body.len() * 4 < v1.len(), "{} of {}", body.len(), v1.len());
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
                .unwrap();
            Bytes::from(plain)
        } else {
            assert!(!headers.contains_key("content-encoding"), "{accept}");
            body
        };
        assert_eq!(json, v1, "{accept}");
    }

    let since = format!(
        "/v1/download_config_specs/{SERVER}.json?sinceTime={}",
        rs.time
    );
    let (status, body) = s.call(Method::GET, &since, &[], "").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &br#"{"has_updates":false}"#[..])
    );

    let (status, body) = s
        .post_json(
            "/v1/download_config_specs",
            SERVER,
            &json!({"sinceTime": rs.time - 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["has_updates"], true);
}

#[tokio::test]
async fn evaluation_api_gives_the_official_sdks_answers() {
    let s = Server::start(&specs()).await;
    let vectors: Value =
        serde_json::from_slice(&std::fs::read(data("conformance_vectors.json")).unwrap()).unwrap();
    let v1: Value =
        serde_json::from_slice(&std::fs::read(data("conformance_v1.json")).unwrap()).unwrap();
    let names = |table: &str| -> Vec<String> {
        v1[table]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (gates, configs, layers) = (
        names("feature_gates"),
        names("dynamic_configs"),
        names("layer_configs"),
    );
    let mut checked = 0;
    for case in vectors["cases"].as_array().unwrap().iter().take(40) {
        let expected = &case["expected"];
        let user = &case["user"];
        let (_, all) = s
            .post_json(
                "/v1/check_gate",
                SERVER,
                &json!({"user": user, "gateNames": gates}),
            )
            .await;
        for g in &gates {
            assert_eq!(all[g]["value"], expected[g]["value"], "{g} for {user}");
            assert_eq!(
                all[g]["rule_id"],
                expected[g].get("rule_id").cloned().unwrap_or(json!(""))
            );
            checked += 1;
        }
        for c in &configs {
            let (status, got) = s
                .post_json(
                    "/v1/get_config",
                    SERVER,
                    &json!({"user": user, "configName": c}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(got["value"], expected[c]["value"], "{c} for {user}");
            assert_eq!(
                got["group_name"],
                expected[c]
                    .get("group_name")
                    .cloned()
                    .unwrap_or(Value::Null)
            );
            checked += 1;
        }
        for l in &layers {
            let (_, got) = s
                .post_json(
                    "/v1/get_layer",
                    CLIENT,
                    &json!({"user": user, "layerName": l}),
                )
                .await;
            assert_eq!(got["value"], expected[l]["value"], "{l} for {user}");
            assert_eq!(
                got["allocatedExperimentName"],
                expected[l]
                    .get("allocated_experiment")
                    .cloned()
                    .unwrap_or(Value::Null)
            );
            checked += 1;
        }
    }
    assert!(checked > 3000, "{checked}");
    let (status, _) = s
        .post_json(
            "/v1/get_layer",
            SERVER,
            &json!({"user": {"userID": "u"}, "layerName": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn initialize_decodes_browser_bodies() {
    let s = Server::start(&specs()).await;
    let body = json!({"user": {"userID": "u1"}, "hash": "djb2",
                      "statsigMetadata": {"stableID": "s-1", "sdkType": "javascript-client"}});
    // Browser js-client: reversed base64 (se=1), sent as text/plain, key in the query.
    let encoded: String = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(body.to_string())
            .chars()
            .rev()
            .collect()
    };
    let (status, plain) = s
        .call(
            Method::POST,
            &format!("/v1/initialize?k={CLIENT}&se=1&st=javascript-client"),
            &[("content-type", "text/plain;charset=UTF-8")],
            encoded,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let plain: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(plain["hash_used"], "djb2");
    assert_eq!(plain["has_updates"], true);
    assert_eq!(
        plain["user"]["customIDs"]["stableID"], "s-1",
        "stableID adopted from metadata"
    );
    assert!(plain["feature_gates"][evaluator::hash::djb2("gate_0")].is_object());

    // The same request gzipped with ?gz=1 and no Content-Encoding gives the same answer.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let (status, zipped) = s
        .call(
            Method::POST,
            &format!("/v1/initialize?k={CLIENT}&gz=1"),
            &[],
            gz.finish().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&zipped).unwrap()["feature_gates"],
        plain["feature_gates"]
    );

    // Current clients get 204, which js-client reads as "no updates".
    let current = json!({"user": {"userID": "u1"}, "sinceTime": plain["time"]});
    let (status, _) = s.post_json("/v1/initialize", CLIENT, &current).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// A web page on another origin may call the SDK endpoints: preflights are answered without
/// a key, and every SDK answer (errors included) carries `Access-Control-Allow-Origin`; the
/// console does not, and neither do requests that are not from a browser.
#[tokio::test]
async fn browsers_may_call_the_sdk_endpoints_from_any_origin() {
    let s = Server::start(&specs()).await;
    let page = ("origin", "https://app.example.com");
    let (status, headers, body) = s
        .send(
            Method::OPTIONS,
            "/v1/rgstr",
            &[
                page,
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "statsig-api-key"),
            ],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-methods"], "GET, POST");
    assert_eq!(headers["access-control-allow-headers"], "statsig-api-key");

    let user = json!({"user": {"userID": "u1"}}).to_string();
    let init = format!("/v1/initialize?k={CLIENT}");
    for (path, expected) in [
        (init.as_str(), StatusCode::OK),
        ("/v1/initialize?k=client-unknown", StatusCode::UNAUTHORIZED),
    ] {
        let (status, headers, _) = s.send(Method::POST, path, &[page], user.clone()).await;
        assert_eq!(status, expected, "{path}");
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
    }
    let (_, headers, _) = s.send(Method::POST, &init, &[], user.clone()).await;
    assert!(!headers.contains_key("access-control-allow-origin"));
    let (status, headers, _) = s
        .send(
            Method::OPTIONS,
            "/console/v1/gates",
            &[page, ("access-control-request-method", "POST")],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!headers.contains_key("access-control-allow-origin"));
}

/// The evaluation answers in Statsig's shapes, keys in its order, and names sent with JSON
/// escapes read as the names they spell.
#[tokio::test]
async fn evaluation_answers_have_statsig_shapes() {
    let s = Server::start(&specs()).await;
    let rs = evaluator::Ruleset::from_slice(&specs()).unwrap();
    let user = evaluator::User::from_json(&json!({"userID": "u1"})).unwrap();
    let ctx = evaluator::EvalContext {
        user: &user,
        now_ms: 0,
        app_id: None,
    };
    let hdr = [("statsig-api-key", SERVER)];
    let post = |path: &'static str, body: &'static str| {
        let s = &s;
        async move {
            let (status, bytes) = s.call(Method::POST, path, &hdr, body).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    let gate = rs.check_gate("gate_0", &ctx);
    let expected = json!({"name": "gate_0", "value": gate.bool_value, "rule_id": gate.rule_id,
                          "group_name": gate.group_name});
    for body in [
        r#"{"user":{"userID":"u1"},"gateName":"gate_0"}"#,
        r#"{"gateName":"gate\u005f0","user":{"userID":"u\u0031","privateAttributes":{}}}"#,
    ] {
        assert_eq!(post("/v1/check_gate", body).await, expected.to_string());
    }
    let config = rs.get_config("exp_0", &ctx);
    let expected = json!({"name": "exp_0", "value": config.json_value, "group": config.rule_id,
                          "rule_id": config.rule_id, "group_name": config.group_name});
    let body = r#"{"user":{"userID":"u1"},"configName":"exp_0"}"#;
    assert_eq!(post("/v1/get_config", body).await, expected.to_string());
    let expected = json!({"name": "nope", "value": {}, "group": "", "rule_id": null,
                          "group_name": null});
    let body = r#"{"user":{"userID":"u1"},"configName":"nope"}"#;
    assert_eq!(post("/v1/get_config", body).await, expected.to_string());
    let layer = rs.get_layer("layer_0", &ctx);
    let expected = json!({"name": "layer_0", "value": layer.json_value, "ruleID": layer.rule_id,
                          "allocatedExperimentName": layer.config_delegate});
    let body = r#"{"user":{"userID":"u1"},"layerName":"layer_0"}"#;
    assert_eq!(post("/v1/get_layer", body).await, expected.to_string());
    let body = r#"{"user":{"userID":"u1"},"gateNames":["gate_0","nope"]}"#;
    let both: Value = serde_json::from_str(&post("/v1/check_gate", body).await).unwrap();
    assert_eq!(both["gate_0"]["value"], gate.bool_value);
    assert_eq!(
        both["nope"],
        json!({"name": "nope", "value": false, "rule_id": "", "group_name": null})
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error() {
    let s = Server::start(&specs()).await;
    let hdr = [("statsig-api-key", SERVER)];
    let check = |status: StatusCode, body: &Bytes, expect: StatusCode, words: &str| {
        assert_eq!(status, expect, "{}", String::from_utf8_lossy(body));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains(words), "{v}");
    };
    let (st, b) = s
        .call(Method::POST, "/v1/check_gate", &hdr, "{not json")
        .await;
    check(st, &b, StatusCode::BAD_REQUEST, "not valid JSON");
    let (st, b) = s
        .call(Method::POST, "/v1/check_gate", &hdr, r#"{"gateName":"g"}"#)
        .await;
    check(st, &b, StatusCode::BAD_REQUEST, "user");
    let (st, b) = s
        .call(
            Method::POST,
            "/v1/check_gate",
            &hdr,
            r#"{"user":{"email":5},"gateName":"g"}"#,
        )
        .await;
    check(st, &b, StatusCode::BAD_REQUEST, "user.email");
    let (st, b) = s
        .call(Method::POST, "/v1/check_gate", &hdr, r#"{"user":{}}"#)
        .await;
    check(st, &b, StatusCode::BAD_REQUEST, "gateName");
    for (body, words) in [
        ("[1]", "the body must be a JSON object"),
        (
            r#"{"user":null,"gateName":"g"}"#,
            "user: must be a JSON object",
        ),
        (
            r#"{"user":{},"gateName":5}"#,
            "gateName: missing or not a string",
        ),
        (
            r#"{"user":{},"user":{},"gateName":"g"}"#,
            "duplicate field `user`",
        ),
        (r#"{"user":{"userID":"u"#, "not valid JSON"),
    ] {
        let (st, b) = s.call(Method::POST, "/v1/check_gate", &hdr, body).await;
        check(st, &b, StatusCode::BAD_REQUEST, words);
    }
    let (st, b) = s
        .call(
            Method::POST,
            "/v1/initialize",
            &[("statsig-api-key", CLIENT)],
            r#"{"hash":"md5"}"#,
        )
        .await;
    check(st, &b, StatusCode::BAD_REQUEST, "hash");
    let (st, b) = s.call(Method::GET, "/v1/nothing", &hdr, "").await;
    check(st, &b, StatusCode::NOT_FOUND, "no such endpoint");
    // Deeper than any endpoint, under a prefix that takes any rest.
    let deep = "/console/v1/keys/a/b/c/d/e/f";
    let (st, b) = s.call(Method::GET, deep, &hdr, "").await;
    check(st, &b, StatusCode::NOT_FOUND, "no such endpoint");
    let (st, b) = s.call(Method::GET, "/v1/check_gate", &hdr, "").await;
    check(st, &b, StatusCode::METHOD_NOT_ALLOWED, "method");
    let (st, b) = s
        .call(Method::POST, "/v1/check_gate", &hdr, vec![b' '; 65 * 1024])
        .await;
    check(st, &b, StatusCode::PAYLOAD_TOO_LARGE, "body over");
    // A gzip bomb: 10 MiB of zeros, a few KiB on the wire.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 10 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 64 * 1024);
    let (st, b) = s
        .call(
            Method::POST,
            "/v1/check_gate",
            &[("statsig-api-key", SERVER), ("content-encoding", "gzip")],
            bomb,
        )
        .await;
    check(st, &b, StatusCode::PAYLOAD_TOO_LARGE, "decompressed");
    let (st, b) = s
        .call(
            Method::POST,
            "/v1/check_gate",
            &[("statsig-api-key", SERVER), ("content-encoding", "br")],
            "x",
        )
        .await;
    check(
        st,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Encoding",
    );

    let (status, metrics) = s.call(Method::GET, "/metrics", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains(r#"gatehouse_requests_total{endpoint="check_gate",status="400"} 9"#),
        "{text}"
    );
    assert!(text.contains("gatehouse_ruleset_time "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_refused_by_hyper_and_counted() {
    let s = Server::start(&specs()).await;
    let port = s.addr.port();
    let answers = tokio::task::spawn_blocking(move || {
        let too_many: Vec<String> = (0..101).map(|i| format!("x-h{i}: v")).collect();
        let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
        let mut garbage = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        garbage.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
        let mut refused = String::new();
        std::io::Read::read_to_string(&mut garbage, &mut refused).unwrap();
        [
            refused,
            raw_request(port, "POST", "/v1/check_gate", &too_many, b"{}"),
        ]
    })
    .await
    .unwrap();
    assert!(answers[0].starts_with("HTTP/1.1 400 "), "{}", answers[0]);
    assert!(answers[1].starts_with("HTTP/1.1 431 "), "{}", answers[1]);

    let (_, metrics) = s.call(Method::GET, "/metrics", &[], "").await;
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains("gatehouse_http_malformed_total 2\n"),
        "{text}"
    );
    // Neither reached a handler.
    assert!(!text.contains("check_gate"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_never_fails_a_request() {
    let gate_returning = |value: bool, time: i64| {
        json!({"time": time, "feature_gates": {"flip": {"salt": "s", "enabled": true,
            "defaultValue": false, "idType": "userID", "entity": "feature_gate",
            "rules": [{"id": format!("rule_{value}"), "passPercentage": 100, "returnValue": true,
                       "idType": "userID", "conditions": [if value { "yes" } else { "no" }]}]}},
            "condition_map": {"yes": {"type": "public", "idType": "userID"},
                              "no": {"type": "user_field", "field": "email", "operator": "any",
                                     "targetValue": ["nobody"], "idType": "userID"}}})
    };
    let s = Arc::new(Server::start(gate_returning(false, 10).to_string().as_bytes()).await);
    let req = json!({"user": {"userID": "u"}, "gateName": "flip"});

    // The load runs until every swap is written (not for a fixed count: a fast machine would
    // finish before the first swap), bounded in requests.
    let swapping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let (s, req, swapping) = (s.clone(), req.clone(), swapping.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while swapping.load(std::sync::atomic::Ordering::Relaxed) && answers.len() < 200_000 {
                let (status, body) = s.post_json("/v1/check_gate", SERVER, &req).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                answers.push((
                    body["value"].as_bool().unwrap(),
                    body["rule_id"].as_str().unwrap().to_owned(),
                ));
            }
            answers
        })
    };
    for round in 0..6i64 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let doc = gate_returning(round % 2 == 0, 20 + round);
        std::fs::write(&s.specs, doc.to_string()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    swapping.store(false, std::sync::atomic::Ordering::Relaxed);
    // An invalid file is rejected and the last good ruleset keeps serving.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, before) = s.post_json("/v1/check_gate", SERVER, &req).await;
    std::fs::write(&s.specs, b"{ not json").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, after) = s.post_json("/v1/check_gate", SERVER, &req).await;
    assert_eq!((status, &after), (StatusCode::OK, &before));

    let answers = load.await.unwrap();
    for (value, rule) in &answers {
        // The "true" ruleset passes its rule; the "false" one falls through to the default.
        let expected = if *value { "rule_true" } else { "default" };
        assert_eq!(rule, expected, "every answer is from one whole ruleset");
    }
    assert!(
        answers.iter().any(|(v, _)| *v) && answers.iter().any(|(v, _)| !*v),
        "swaps were seen"
    );
}

#[tokio::test]
async fn id_lists_are_evaluated_and_served_as_statsig_serves_them() {
    let specs = json!({"time": 7, "feature_gates": {"beta_only": {"salt": "s", "enabled": true,
        "defaultValue": false, "idType": "userID", "entity": "feature_gate",
        "rules": [{"id": "in_beta", "passPercentage": 100, "returnValue": true,
                   "idType": "userID", "conditions": ["beta"]}]}},
        "condition_map": {"beta": {"type": "unit_id", "operator": "in_segment_list",
                                   "targetValue": "beta", "idType": "userID"}}});
    let s = Server::start(specs.to_string().as_bytes()).await;
    let dir = s.specs.parent().unwrap().join("lists");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("beta"), "u1\nu2\n").unwrap();
    std::fs::write(dir.join("empty"), "").unwrap();
    s.state.rules.load_id_lists(&dir).unwrap();
    tokio::spawn(
        s.state
            .rules
            .clone()
            .watch_id_lists(dir.clone(), Duration::from_millis(20)),
    );
    let in_beta = |user: &'static str| {
        let s = &s;
        async move {
            let req = json!({"user": {"userID": user}, "gateName": "beta_only"});
            let (status, body) = s.post_json("/v1/check_gate", SERVER, &req).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["value"].as_bool().unwrap()
        }
    };
    assert!(in_beta("u1").await && in_beta("u2").await && !in_beta("u3").await);

    // The manifest, with URLs on the address called; the file holds `+` and the first 8
    // characters of base64(SHA-256(id)) per member.
    let (status, manifest) = s.post_json("/v1/get_id_lists", SERVER, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{manifest}");
    let beta = &manifest["beta"];
    let url = beta["url"].as_str().unwrap();
    let path = url
        .strip_prefix(&format!("http://{}", s.addr))
        .unwrap_or_else(|| panic!("{url} is not on {}", s.addr));
    assert_eq!(beta["name"], "beta");
    assert_eq!(manifest["empty"]["size"], 0);
    let (status, headers, body) = s
        .send(Method::GET, path, &[("statsig-api-key", SERVER)], "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, beta["size"].as_u64().unwrap());
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    let mut lines: Vec<String> = ["u1", "u2"]
        .iter()
        .map(|id| {
            let key = evaluator::hash::id_list_key(id);
            format!("+{}", std::str::from_utf8(&key).unwrap())
        })
        .collect();
    lines.sort();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!("{}\n", lines.join("\n"))
    );
    // A sync that already read part of the file gets the rest.
    let (status, headers, rest) = s
        .send(
            Method::GET,
            path,
            &[("statsig-api-key", SERVER), ("range", "bytes=10-")],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(rest, body.slice(10..));
    assert_eq!(headers["content-range"], "bytes 10-19/20");
    let (status, headers, _) = s
        .send(
            Method::GET,
            path,
            &[("statsig-api-key", SERVER), ("range", "bytes=20-")],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers["content-range"], "bytes */20");
    // The file's URL is its credential: the Go SDK sends no key there.
    let (status, keyless) = s.call(Method::GET, path, &[], "").await;
    assert_eq!((status, keyless), (StatusCode::OK, body.clone()));
    let (status, _) = s
        .call(Method::GET, "/v1/download_id_list_file/0123", &[], "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .call(Method::POST, path, &[("statsig-api-key", SERVER)], "")
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Behind a TLS proxy the URLs say https.
    let (_, behind_proxy) = s
        .call(
            Method::POST,
            "/v1/get_id_lists",
            &[("statsig-api-key", SERVER), ("x-forwarded-proto", "https")],
            "",
        )
        .await;
    let behind_proxy: Value = serde_json::from_slice(&behind_proxy).unwrap();
    assert!(behind_proxy["beta"]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));

    // A changed list is picked up: new members answer, the file gets a new ID (the old one
    // is gone: 404), and the specs' `time` stays, so SDKs do not download the specs again.
    let old_id = beta["fileID"].as_str().unwrap().to_owned();
    std::fs::write(dir.join(".beta.tmp"), "u2\nu3\n").unwrap();
    std::fs::rename(dir.join(".beta.tmp"), dir.join("beta")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !in_beta("u3").await {
        assert!(std::time::Instant::now() < deadline, "list change not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!in_beta("u1").await && in_beta("u2").await);
    let (_, manifest) = s.post_json("/v1/get_id_lists", SERVER, &json!({})).await;
    assert_ne!(manifest["beta"]["fileID"], old_id.as_str());
    assert!(manifest["beta"]["creationTime"].as_u64() > beta["creationTime"].as_u64());
    let (status, _) = s
        .call(Method::GET, path, &[("statsig-api-key", SERVER)], "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, dcs) = s
        .post_json(
            "/v1/download_config_specs",
            SERVER,
            &json!({"sinceTime": 7}),
        )
        .await;
    assert_eq!(dcs, json!({"has_updates": false}));
    // A list the server cannot read is refused; the lists before it keep serving.
    std::fs::write(dir.join("broken"), [0xff, 0xfe]).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(in_beta("u3").await);
    let (_, manifest) = s.post_json("/v1/get_id_lists", SERVER, &json!({})).await;
    assert!(manifest.get("broken").is_none(), "{manifest}");
}
