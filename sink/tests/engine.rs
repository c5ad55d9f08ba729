//! The engine's promises, without Kafka: crash anywhere, replay from anywhere, and the
//! published files hold every message exactly once (read back with the parquet crate's own
//! reader; the Kafka end-to-end test reads them with pyarrow and DuckDB).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use sink::engine::{Engine, Message, SinkConfig};

const TOPIC: &str = "gatehouse.events";
const HOUR: i64 = 3_600_000;
const T0: i64 = 1_763_892_000_000; // 2025-11-23T10:00:00Z

/// Message `offset` of partition `partition`: events and exposures over three hours, one in
/// seventeen unreadable.
fn payload(partition: i32, offset: i64) -> Vec<u8> {
    if offset % 17 == 5 {
        return format!("not json {partition}/{offset}").into_bytes();
    }
    let time = T0 + (offset / 2 % 3) * HOUR + offset;
    let mut env = json!({
        "schema_version": 1, "event_id": format!("{partition}-{offset}"), "event_name": "purchase",
        "event_time_ms": time, "received_at_ms": T0 + 3 * HOUR, "key_id": "k",
        "unit_id_type": "userID", "unit_id": format!("u{}", offset % 50),
        "user": {"userID": format!("u{}", offset % 50)}, "value": offset.to_string(),
    });
    if offset % 3 == 0 {
        env["exposure"] = json!({"kind": "gate", "name": "g", "rule_id": "r", "gate_value": true});
    }
    env.to_string().into_bytes()
}

fn feed(engine: &mut Engine, partition: i32, offset: i64) -> Option<i64> {
    let bytes = payload(partition, offset);
    engine
        .on_message(Message {
            topic: TOPIC,
            partition,
            offset,
            timestamp_ms: Some(T0 + offset),
            key: None,
            payload: Some(&bytes),
        })
        .unwrap()
}

/// Every published Parquet file under `root`.
fn published_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out
}

/// How many times each (partition, offset) appears in the published files.
fn offsets_on_disk(root: &Path) -> BTreeMap<(i64, i64), usize> {
    let mut seen = BTreeMap::new();
    for path in published_files(root) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let partitions = batch
                .column_by_name("kafka_partition")
                .unwrap()
                .as_primitive::<arrow_array::types::Int32Type>()
                .clone();
            let offsets = batch
                .column_by_name("kafka_offset")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            for (p, o) in partitions.values().iter().zip(offsets.values().iter()) {
                *seen.entry((*p as i64, *o)).or_default() += 1;
            }
        }
    }
    seen
}

fn config(root: &Path, max_records: u64) -> SinkConfig {
    SinkConfig {
        max_file_records: max_records,
        max_open_files: 4,
        ..SinkConfig::new(root)
    }
}

/// A tiny deterministic generator (the cases must be reproducible from the seed).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn crashes_and_replays_from_anywhere_leave_each_message_exactly_once() {
    const N: i64 = 600;
    for seed in 1..=8u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Lcg(seed);
        let mut committed = [0i64; 2];
        let mut done = [0i64; 2];
        // Run until both partitions are fully consumed, crashing at random points.
        for _run in 0..40 {
            if done.iter().all(|d| *d >= N) {
                break;
            }
            let mut engine = Engine::new(config(dir.path(), 1 + rng.below(90))).unwrap();
            // Kafka redelivers from the commit, or (lost commit) from further back.
            let mut next = [0i64; 2];
            for p in 0..2 {
                engine.assign(TOPIC, p as i32).unwrap();
                next[p] = if rng.below(3) == 0 { 0 } else { committed[p] };
            }
            let crash_after = rng.below(400) as i64;
            let mut handled = 0;
            let mut crashed = false;
            while next.iter().any(|n| *n < N) {
                let p = rng.below(2) as usize;
                if next[p] >= N {
                    continue;
                }
                if let Some(seek) = feed(&mut engine, p as i32, next[p]) {
                    next[p] = seek;
                } else {
                    next[p] += 1;
                }
                handled += 1;
                if handled % 50 == 0 {
                    engine.tick().unwrap();
                    for c in engine.take_commits() {
                        committed[c.partition as usize] = c.offset;
                    }
                }
                if handled == crash_after {
                    crashed = true;
                    break; // kill -9: open files stay as temps, nothing else happens
                }
            }
            if crashed {
                drop(engine);
                continue;
            }
            let all = engine.assigned();
            for c in engine.revoke(&all) {
                committed[c.partition as usize] = c.offset;
            }
            done = next;
        }
        assert!(done.iter().all(|d| *d >= N), "seed {seed}: never finished");
        let seen = offsets_on_disk(dir.path());
        let expected: Vec<(i64, i64)> = (0..2).flat_map(|p| (0..N).map(move |o| (p, o))).collect();
        assert_eq!(
            seen.keys().copied().collect::<Vec<_>>(),
            expected,
            "seed {seed}"
        );
        let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dupes.is_empty(), "seed {seed}: duplicates {dupes:?}");
        assert_eq!(committed, [N, N], "seed {seed}");
        assert_eq!(
            fs::read_dir(dir.path().join("_inprogress"))
                .unwrap()
                .count(),
            0
        );
    }
}

#[test]
fn files_land_in_their_table_and_hour_and_say_what_they_cover() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::new(SinkConfig::new(dir.path())).unwrap();
    engine.assign(TOPIC, 0).unwrap();
    for offset in 0..40 {
        feed(&mut engine, 0, offset);
    }
    let commits = engine.revoke(&[(TOPIC.into(), 0)]);
    assert_eq!(commits[0].offset, 40);
    let mut names: Vec<String> = published_files(dir.path())
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    names.sort();
    // Events and exposures over hours 10-12; dead letters by broker time (hour 10).
    assert!(names.contains(&"dead_letters/dt=2025-11-23/hour=10/gatehouse.events-0-00000000000000000005-00000000000000000039.parquet".to_string()), "{names:#?}");
    let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(count("events/dt=2025-11-23/hour=1"), 3, "{names:#?}");
    assert_eq!(count("exposures/dt=2025-11-23/hour=1"), 2, "{names:#?}");
    assert_eq!(names.len(), 6);
    assert_eq!(engine.stats().dead_letters, 3);
    assert_eq!(engine.stats().rows_published, 40);
    // The footer says what the name says, plus where to resume.
    let path = published_files(dir.path())
        .into_iter()
        .find(|p| p.to_str().unwrap().contains("dead_letters"))
        .unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap()).unwrap();
    let kv: BTreeMap<String, String> = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .filter(|kv| kv.key.starts_with("gatehouse."))
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap()))
        .collect();
    assert_eq!(kv["gatehouse.first_offset"], "5");
    assert_eq!(kv["gatehouse.last_offset"], "39");
    assert_eq!(kv["gatehouse.kafka_partition"], "0");
}

#[test]
fn late_and_future_events_go_to_the_hour_received() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::new(SinkConfig {
        max_lateness: Duration::from_secs(3600),
        ..SinkConfig::new(dir.path())
    })
    .unwrap();
    let received = T0 + 10 * HOUR;
    for (offset, time) in [
        (0, received - 30 * 60_000),
        (1, received - 2 * HOUR),
        (2, received + 2 * HOUR),
    ] {
        let bytes = json!({"schema_version": 1, "event_id": "e", "event_name": "x", "event_time_ms": time,
            "received_at_ms": received, "key_id": "k", "unit_id_type": "userID", "unit_id": "u", "user": {}})
        .to_string();
        engine
            .on_message(Message {
                topic: TOPIC,
                partition: 0,
                offset,
                timestamp_ms: None,
                key: None,
                payload: Some(bytes.as_bytes()),
            })
            .unwrap();
    }
    engine.revoke(&[(TOPIC.into(), 0)]);
    let mut hours: Vec<String> = published_files(dir.path())
        .iter()
        .map(|p| {
            p.parent()
                .unwrap()
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    hours.sort();
    // 30 min late: its own hour (19); 2 h late and 2 h ahead: the receive hour (20).
    assert_eq!(
        hours,
        [
            "events/dt=2025-11-23/hour=19",
            "events/dt=2025-11-23/hour=20"
        ]
    );
}

#[test]
fn open_files_stay_under_the_cap_and_a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::new(config(dir.path(), 1_000_000)).unwrap();
    for offset in 0..200 {
        feed(&mut engine, 0, offset);
        assert!(engine.open_files() <= 4);
    }
    engine.revoke(&[(TOPIC.into(), 0)]);
    assert_eq!(offsets_on_disk(dir.path()).len(), 200);

    // A zombie that kept writing a partition someone else already published is refused.
    let mut zombie = Engine::new(config(dir.path(), 1_000_000)).unwrap();
    zombie.assign(TOPIC, 1).unwrap();
    let mut owner = Engine::new(config(dir.path(), 1_000_000)).unwrap();
    owner.assign(TOPIC, 1).unwrap();
    for offset in 0..10 {
        feed(&mut zombie, 1, offset * 3);
        feed(&mut owner, 1, offset * 3);
    }
    assert!(owner
        .revoke(&[(TOPIC.into(), 1)])
        .iter()
        .all(|c| c.offset == 28));
    zombie.revoke(&[(TOPIC.into(), 1)]);
    assert_eq!(
        zombie.stats().files_published,
        0,
        "the zombie published over the owner"
    );
    assert!(zombie.stats().files_discarded > 0);
    assert!(offsets_on_disk(dir.path()).values().all(|n| *n == 1));
}

#[test]
fn a_revoke_past_its_drain_time_discards_and_commits_nothing_unpublished() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::new(SinkConfig {
        revoke_drain: Duration::ZERO,
        ..SinkConfig::new(dir.path())
    })
    .unwrap();
    engine.assign(TOPIC, 0).unwrap();
    for offset in 0..30 {
        feed(&mut engine, 0, offset);
    }
    let commits = engine.revoke(&[(TOPIC.into(), 0)]);
    assert!(commits.iter().all(|c| c.offset == 0), "{commits:?}");
    assert!(published_files(dir.path()).is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("_inprogress"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn memory_stays_within_the_budget_with_many_files_open() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 1 << 20;
    let mut engine = Engine::new(SinkConfig {
        max_buffered_bytes: budget,
        ..SinkConfig::new(dir.path())
    })
    .unwrap();
    // 64 partitions x 2 tables x 3 hours (+ dead letters): ~400 files open at once.
    let mut peak = 0;
    for i in 0..40_000i64 {
        feed(&mut engine, (i % 64) as i32, i / 64);
        peak = peak.max(engine.buffered_bytes());
    }
    assert!(engine.open_files() > 300, "{}", engine.open_files());
    // Checked every 1,024 rows: at most that many messages (< 1 KB each) over the budget.
    assert!(peak <= budget + (1 << 20), "peak {peak}");
    assert!(engine.stats().row_groups_flushed_early > 0);
    let all = engine.assigned();
    engine.revoke(&all);
    let seen = offsets_on_disk(dir.path());
    assert_eq!(seen.len(), 40_000);
    assert!(seen.values().all(|n| *n == 1));
}
