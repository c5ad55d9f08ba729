//! `gatehouse up` with no rules or keys given: the demo specs, keys and ID list are served,
//! so the README's first command shows a gate, a key and an ID list at work, from whatever
//! directory it runs in (the demo files are built into the binary).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, raw_request, wait_for_exit, wait_until_listening};

fn check_gate(port: u16, key: &str, user_id: &str) -> String {
    let body =
        format!(r#"{{"user":{{"userID":"{user_id}","country":"DE"}},"gateName":"new_checkout"}}"#);
    let key = format!("statsig-api-key: {key}");
    raw_request(port, "POST", "/v1/check_gate", &[&key], body.as_bytes())
}

#[test]
fn up_alone_serves_the_demo_specs_keys_and_id_list_from_any_directory() {
    let port = free_port();
    // Not the repository: an installed binary or a container has no docs/examples beside it.
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "up",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            "data",
        ])
        .current_dir(cwd.path())
        .env_remove("GATEHOUSE_KAFKA_BROKERS") // the embedded Kafka
        .env_remove("GATEHOUSE_SPECS")
        .env_remove("GATEHOUSE_ID_LISTS")
        .env_remove("GATEHOUSE_SERVER_KEYS")
        .env_remove("GATEHOUSE_CLIENT_KEYS")
        .env_remove("GATEHOUSE_DATA_DIR")
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

    // The demo files were written under the data directory, and that copy is the one
    // watched: adding zed to it lets zed in.
    let demo = cwd.path().join("data/demo");
    let specs = std::fs::read_to_string(demo.join("specs.json")).unwrap();
    assert!(specs.contains("new_checkout"));
    let list = demo.join("id_lists/beta_testers");
    let mut members = std::fs::read_to_string(&list).unwrap();
    members.push_str("zed\n");
    std::fs::write(&list, members).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check_gate(port, "client-dev", "zed").contains(r#""value":true"#) {
        assert!(
            Instant::now() < deadline,
            "the edited demo list was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    wait_for_exit(
        &mut child,
        Duration::from_secs(60),
        "gatehouse up did not stop",
    );
}
