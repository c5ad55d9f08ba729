//! Sink throughput: messages from Kafka to published, committed Parquet, next to the ceiling
//! measured in the same run (the same messages through the same engine straight to Parquet,
//! no Kafka), for a few row-group sizes.
//!
//!   cargo run --release -p gatehouse-benches --bin sink_load -- [--messages N] [--seconds S]
//!
//! Kafka: the broker in GATEHOUSE_KAFKA_BROKERS, else an in-process mock cluster. Bounded by
//! messages and time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_benches::sink_messages::messages;
use parquet::file::reader::{FileReader, SerializedFileReader};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sink::engine::{Engine, Message, SinkConfig};

const PARTITIONS: i32 = 4;

struct Options {
    messages: usize,
    seconds: u64,
}

fn options() -> Options {
    let mut o = Options {
        messages: 1_000_000,
        seconds: 120,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args[1..].chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--messages", Some(v)) => o.messages = v,
            ("--seconds", Some(v)) => o.seconds = v as u64,
            _ => {
                eprintln!("usage: sink_load [--messages N] [--seconds S]");
                std::process::exit(2);
            }
        }
    }
    o
}

fn config(dir: &Path, row_group_mb: usize) -> SinkConfig {
    SinkConfig {
        row_group_bytes: row_group_mb << 20,
        max_file_age: Duration::from_secs(1),
        ..SinkConfig::new(dir)
    }
}

/// The ceiling: the engine alone (parse, Arrow builders, Parquet encode, publish).
fn ceiling(msgs: &[Vec<u8>], dir: &Path, row_group_mb: usize) -> (Duration, u64, u64) {
    let start = Instant::now();
    let mut engine = Engine::new(config(dir, row_group_mb)).expect("engine");
    for (i, payload) in msgs.iter().enumerate() {
        engine
            .on_message(Message {
                topic: "bench",
                partition: i as i32 % PARTITIONS,
                offset: i as i64 / PARTITIONS as i64,
                timestamp_ms: None,
                key: None,
                payload: Some(payload),
            })
            .expect("write");
    }
    let all = engine.assigned();
    engine.revoke(&all);
    let stats = engine.stats();
    (
        start.elapsed(),
        stats.bytes_published,
        stats.files_published,
    )
}

/// Rows in the published files under `dir` (footers only; cached per file).
fn published_rows(dir: &Path, seen: &mut HashMap<PathBuf, u64>) -> u64 {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") && !seen.contains_key(&path)
            {
                let rows = fs::File::open(&path)
                    .ok()
                    .and_then(|f| SerializedFileReader::new(f).ok())
                    .map_or(0, |r| r.metadata().file_metadata().num_rows() as u64);
                seen.insert(path, rows);
            }
        }
    }
    seen.values().sum()
}

/// End to end: the messages are produced first (not timed), then a sink consumes them; the
/// clock stops when every row is in a published file.
fn end_to_end(
    msgs: &[Vec<u8>],
    brokers: &str,
    topic: &str,
    dir: &Path,
    limit: Duration,
) -> Option<Duration> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    for (i, payload) in msgs.iter().enumerate() {
        let key = (i % 10_000).to_string();
        let mut record = BaseRecord::to(topic).payload(payload).key(&key);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");

    let stop = Arc::new(AtomicBool::new(false));
    let options = sink::ConsumerOptions {
        connection: ingest::kafka_connection::connection(brokers),
        group_id: format!("{topic}-group"),
        topics: vec![topic.to_owned()],
        session_timeout: Duration::from_secs(10),
        stats: Default::default(),
    };
    let start = Instant::now();
    let worker = {
        let stop = stop.clone();
        let config = config(dir, 16);
        std::thread::spawn(move || sink::run(&options, config, &stop))
    };
    let mut seen = HashMap::new();
    let mut done = None;
    while start.elapsed() < limit {
        if published_rows(dir, &mut seen) >= msgs.len() as u64 {
            done = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = worker.join();
    done
}

fn main() {
    let o = options();
    let msgs = messages(o.messages);
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    println!(
        "{} messages, {:.0} bytes each on average",
        msgs.len(),
        bytes as f64 / msgs.len() as f64
    );
    let rate = |d: Duration| msgs.len() as f64 / d.as_secs_f64();
    let mut ceiling_rate = 0.0;
    for row_group_mb in [4, 16, 64] {
        let dir = tempdir("ceiling");
        let (took, file_bytes, files) = ceiling(&msgs, &dir, row_group_mb);
        println!(
            "ceiling (engine alone), row groups ≤ {row_group_mb:>2} MiB: {:>9.0} msg/s  {:>5.1} bytes/row on disk ({files} files, {:.1}x smaller than the JSON)",
            rate(took),
            file_bytes as f64 / msgs.len() as f64,
            bytes as f64 / file_bytes as f64
        );
        if row_group_mb == 16 {
            ceiling_rate = rate(took);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    many_partitions(&msgs);
    if std::env::var_os("SINK_LOAD_CEILING_ONLY").is_some() {
        return;
    }
    // Fresh topics per run (a broker auto-creates them with its default partition count):
    // one for a 2,000-message run that measures the fixed latency (group join, the
    // age-based publish of the last files), one for the full run.
    let topics = [
        format!("sinkbench-{}-fixed", std::process::id()),
        format!("sinkbench-{}", std::process::id()),
    ];
    let mut _cluster = None;
    let brokers = match std::env::var("GATEHOUSE_KAFKA_BROKERS") {
        Ok(b) => b,
        Err(_) => {
            let cluster = MockCluster::new(1).expect("mock cluster");
            for topic in &topics {
                cluster
                    .create_topic(topic, PARTITIONS, 1)
                    .expect("mock topic");
            }
            let b = cluster.bootstrap_servers();
            _cluster = Some(cluster);
            b
        }
    };
    let kind = if _cluster.is_some() {
        "mock cluster"
    } else {
        "broker"
    };
    let limit = Duration::from_secs(o.seconds);
    let small = &msgs[..msgs.len().min(2_000)];
    let dir = tempdir("fixed");
    let fixed = end_to_end(small, &brokers, &topics[0], &dir, limit);
    let _ = fs::remove_dir_all(&dir);
    let dir = tempdir("e2e");
    match (end_to_end(&msgs, &brokers, &topics[1], &dir, limit), fixed) {
        (Some(took), Some(fixed)) => {
            println!(
                "end to end (Kafka {kind} -> published Parquet), 16 MiB: {:>9.0} msg/s = {:.0}% of the ceiling ({:.1} s)",
                rate(took),
                100.0 * rate(took) / ceiling_rate,
                took.as_secs_f64()
            );
            let steady = took.saturating_sub(fixed);
            println!(
                "  of which fixed latency {:.1} s (2,000 messages end to end: group join, last files' age); without it {:>9.0} msg/s = {:.0}% of the ceiling",
                fixed.as_secs_f64(),
                rate(steady),
                100.0 * rate(steady) / ceiling_rate
            );
        }
        _ => println!("end to end: not done within {} s", o.seconds),
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Counts live heap bytes and their peak, so memory figures are exact (RSS keeps freed
/// pages and would hide them).
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Memory with many files open at once: 64 partitions × 2 tables × 4 event hours = 512 open
/// files, under different memory budgets; the peak of live heap bytes above the level
/// before (the message corpus).
fn many_partitions(msgs: &[Vec<u8>]) {
    // Re-time the messages over four hours: each message goes to (partition, table, hour).
    let n = msgs.len().min(1_000_000);
    for budget_mib in [32, 256, 4096] {
        let dir = tempdir("many");
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let start = Instant::now();
        let mut engine = Engine::new(SinkConfig {
            max_buffered_bytes: budget_mib << 20,
            ..config(&dir, 16)
        })
        .expect("engine");
        for (i, payload) in msgs[..n].iter().enumerate() {
            let text = std::str::from_utf8(payload).expect("utf-8");
            // Within each block of 8 messages of a partition: both tables × 4 hours.
            let hour_shift = ((i / 2) % 4) as i64 * 3_600_000;
            let shifted = shift_event_time(text, hour_shift);
            engine
                .on_message(Message {
                    topic: "bench",
                    partition: ((i / 8) % 64) as i32,
                    offset: ((i / 512) * 8 + i % 8) as i64,
                    timestamp_ms: None,
                    key: None,
                    payload: Some(shifted.as_bytes()),
                })
                .expect("write");
        }
        let all = engine.assigned();
        engine.revoke(&all);
        let peak = PEAK.load(Relaxed);
        println!(
            "512 open files ({n} msgs), buffer budget {budget_mib:>4} MiB: peak heap +{:>5} MiB, {} files, {} early row groups, {:.0} msg/s",
            peak.saturating_sub(before) >> 20,
            engine.stats().files_published,
            engine.stats().row_groups_flushed_early,
            n as f64 / start.elapsed().as_secs_f64()
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The message with its `event_time_ms` moved back by `shift` ms.
fn shift_event_time(text: &str, shift: i64) -> String {
    let key = "\"event_time_ms\":";
    let start = text.find(key).expect("event_time_ms") + key.len();
    let end = start + text[start..].find(',').expect("field end");
    let time: i64 = text[start..end].parse().expect("number");
    format!("{}{}{}", &text[..start], time - shift, &text[end..])
}

fn tempdir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gatehouse-sink-load-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}
