//! Shared by the harnesses in `src/bin/` and the criterion benches: the load harness's HTTP
//! client, and the sink's sample messages.

pub mod http1_client;

pub mod sink_messages {
    //! Kafka messages shaped like the front door's, for the sink benchmarks.

    use events::{Envelope, Exposure, SCHEMA_VERSION};
    use serde_json::{json, Map};

    /// Messages shaped like the front door's: half gate exposures (with a nested gate), half
    /// custom events with a value and metadata; 10,000 users with a few attributes.
    pub fn messages(n: usize) -> Vec<Vec<u8>> {
        let now = 1_795_000_000_000i64;
        (0..n)
            .map(|i| {
                let unit = format!("user-{}", i % 10_000);
                let country = ["US", "DE", "FR", "BR"][i % 4];
                let user = json!({"userID": unit, "email": format!("{unit}@example.com"),
                    "country": country, "appVersion": "3.2.1",
                    "statsigEnvironment": {"tier": "production"}, "custom": {"plan": "pro"}});
                let exposure = i % 2 == 0;
                let mut metadata = Map::new();
                if exposure {
                    metadata.insert("gate".into(), "new_checkout".into());
                    metadata.insert("gateValue".into(), (i % 4 == 0).to_string().into());
                    metadata.insert("ruleID".into(), "half_of_us_users".into());
                } else {
                    metadata.insert("page".into(), "cart".into());
                }
                Envelope {
                    schema_version: SCHEMA_VERSION,
                    event_id: uuid_like(i as u64),
                    event_name: if exposure {
                        "statsig::gate_exposure"
                    } else {
                        "purchase"
                    }
                    .into(),
                    event_time_ms: now + i as i64,
                    received_at_ms: now + i as i64 + 3,
                    key_id: "4f2a9c0e1b7d".into(),
                    sdk_type: Some("py-server".into()),
                    sdk_version: Some("0.24.0".into()),
                    unit_id_type: "userID".into(),
                    unit_id: unit,
                    user,
                    value: (!exposure).then(|| json!(format!("{}.99", i % 100))),
                    metadata,
                    secondary_exposures: if exposure {
                        vec![Map::from_iter([
                            ("gate".to_owned(), json!("employees")),
                            ("gateValue".to_owned(), json!("false")),
                            ("ruleID".to_owned(), json!("default")),
                        ])]
                    } else {
                        Vec::new()
                    },
                    exposure: exposure.then(|| Exposure {
                        kind: "gate".into(),
                        name: "new_checkout".into(),
                        rule_id: "half_of_us_users".into(),
                        group_name: None,
                        gate_value: Some(i % 4 == 0),
                    }),
                }
                .to_bytes()
            })
            .collect()
    }

    /// A random-looking UUID v4 text (deterministic): event ids do not compress like counters.
    fn uuid_like(i: u64) -> String {
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
            z ^ (z >> 31)
        };
        let (a, b) = (mix(i), mix(i ^ 0x9e3779b97f4a7c15));
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}
