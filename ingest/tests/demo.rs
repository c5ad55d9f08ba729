//! `gatehouse up` with no rules or keys given, run from the repository as the README says:
//! the demo specs, keys and ID list are served, so the README's first command shows a gate,
//! a key and an ID list at work.

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{free_port, raw_request, wait_for_exit, wait_until_listening};

fn check_gate(port: u16, key: &str, user_id: &str) -> String {
    let body =
        format!(r#"{{"user":{{"userID":"{user_id}","country":"DE"}},"gateName":"new_checkout"}}"#);
    let key = format!("statsig-api-key: {key}");
    raw_request(port, "POST", "/v1/check_gate", &[&key], body.as_bytes())
}

#[test]
fn up_alone_serves_the_demo_specs_keys_and_id_list() {
    let port = free_port();
    let data = std::env::temp_dir().join(format!("gatehouse-demo-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("GATEHOUSE_KAFKA_BROKERS") // the embedded Kafka
        .env_remove("GATEHOUSE_SPECS")
        .env_remove("GATEHOUSE_ID_LISTS")
        .env_remove("GATEHOUSE_SERVER_KEYS")
        .env_remove("GATEHOUSE_CLIENT_KEYS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_listening(port, "gatehouse up");

    // alice is in docs/examples/id_lists/beta_testers; zed is not, and is no employee.
    let listed = check_gate(port, "secret-dev", "alice");
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    assert!(
        listed.contains(r#""value":true"#) && listed.contains(r#""rule_id":"beta_testers""#),
        "{listed}"
    );
    let unlisted = check_gate(port, "client-dev", "zed");
    assert!(unlisted.contains(r#""value":false"#), "{unlisted}");
    assert!(check_gate(port, "secret-unknown", "alice").starts_with("HTTP/1.1 401"));

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    wait_for_exit(
        &mut child,
        Duration::from_secs(60),
        "gatehouse up did not stop",
    );
    let _ = std::fs::remove_dir_all(&data);
}
