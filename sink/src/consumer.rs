//! The Kafka side: one consumer-group member feeding the [`Engine`], committing what it
//! published, and publishing (or discarding) a partition's open files before giving it up.
//!
//! It runs on one plain thread: every step is file I/O or a blocking librdkafka call, and
//! the engine needs no more than one core's worth of work per process (run several
//! processes in one group to use more).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message as _;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::engine::{Commit, Engine, Message, SinkConfig, Stats};

/// How the sink joins Kafka.
#[derive(Clone)]
pub struct ConsumerOptions {
    /// The bootstrap servers and connection settings (TLS, SASL), as the front door's
    /// clients have them; the sink adds its consumer's own.
    pub connection: ClientConfig,
    /// Consumer group: sink processes sharing it share the partitions.
    pub group_id: String,
    /// Topics to read (the front door's exposures and events topics).
    pub topics: Vec<String>,
    /// How long a silent member keeps its partitions (a killed sink's partitions move
    /// after this).
    pub session_timeout: Duration,
    /// Where the counters are published every second (for `/metrics`).
    pub stats: Arc<Mutex<Stats>>,
}

struct SinkContext {
    engine: Mutex<Engine>,
    /// An error raised inside a rebalance callback, for the main loop to act on.
    fatal: Mutex<Option<String>>,
}

impl SinkContext {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for SinkContext {}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl);
            let commits = self.engine().revoke(&partitions);
            tracing::info!(
                partitions = partitions.len(),
                "partitions revoked: open files published"
            );
            commit(consumer, &commits, CommitMode::Sync);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut engine = self.engine();
            for (topic, partition) in partitions_of(tpl) {
                if let Err(e) = engine.assign(&topic, partition) {
                    *self.fatal.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("assigning {topic}/{partition}: {e}"));
                }
            }
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>, commits: &[Commit], mode: CommitMode) {
    if commits.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for c in commits {
        if let Err(e) = tpl.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.offset)) {
            tracing::warn!("commit list: {e}");
        }
    }
    // A failed commit only means a longer replay after a restart: the files decide.
    if let Err(e) = consumer.commit(&tpl, mode) {
        tracing::warn!("offset commit failed (the files still say where to resume): {e}");
    }
}

/// Polls one message (up to 100 ms) and files it.
fn poll_once(consumer: &BaseConsumer<SinkContext>) -> Result<(), String> {
    match consumer.poll(Duration::from_millis(100)) {
        Some(Ok(record)) => {
            let message = Message {
                topic: record.topic(),
                partition: record.partition(),
                offset: record.offset(),
                timestamp_ms: record.timestamp().to_millis(),
                key: record.key(),
                payload: record.payload(),
            };
            let mut engine = consumer.context().engine();
            match engine.on_message(message) {
                Ok(None) => {}
                Ok(Some(resume)) => {
                    drop(engine);
                    tracing::info!(
                        topic = message.topic,
                        partition = message.partition,
                        from = message.offset,
                        to = resume,
                        "skipping what the files hold"
                    );
                    if let Err(e) = consumer.seek(
                        message.topic,
                        message.partition,
                        Offset::Offset(resume),
                        Duration::from_secs(5),
                    ) {
                        tracing::warn!("seek failed (messages are skipped instead): {e}");
                    }
                }
                Err(e) => {
                    engine.abandon();
                    return Err(format!("sink stopped: {e}"));
                }
            }
        }
        Some(Err(e)) => tracing::warn!("Kafka: {e}"),
        None => {}
    }
    Ok(())
}

/// On stop, reads on up to the end each assigned partition had at that moment (bounded by
/// [`DRAIN_LIMIT`], which includes waiting for a first assignment), so that what the front
/// door had written before a shutdown is in the files the sink publishes.
fn drain(consumer: &BaseConsumer<SinkContext>) -> Result<(), String> {
    let deadline = Instant::now() + DRAIN_LIMIT;
    // Stopped before the group gave this member anything (a just-started `up`): wait for
    // the assignment, or the messages already written would wait for the next run.
    while consumer.context().engine().assigned().is_empty() && Instant::now() < deadline {
        poll_once(consumer)?;
    }
    let assigned = consumer.context().engine().assigned();
    let ends: Vec<(String, i32, i64)> = assigned
        .into_iter()
        .filter_map(|(topic, partition)| {
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(5))
                .ok()?;
            Some((topic, partition, high))
        })
        .collect();
    let behind = || {
        let mut engine = consumer.context().engine();
        ends.iter()
            .any(|(t, p, high)| engine.position(t, *p).is_some_and(|pos| pos < *high))
    };
    while behind() {
        if Instant::now() >= deadline {
            tracing::warn!("stop: drain time exceeded; the rest stays in Kafka for the next run");
            break;
        }
        poll_once(consumer)?;
    }
    Ok(())
}

/// How long a stopping sink keeps reading to the end of its partitions.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Runs one sink process until `stop` is set or a fatal error; on stop, every open file is
/// published and committed. Returns the counters.
pub fn run(
    options: &ConsumerOptions,
    config: SinkConfig,
    stop: &AtomicBool,
) -> Result<Stats, String> {
    let engine = Engine::new(config).map_err(|e| format!("sink directory: {e}"))?;
    let context = SinkContext {
        engine: Mutex::new(engine),
        fatal: Mutex::new(None),
    };
    let consumer: BaseConsumer<SinkContext> = options
        .connection
        .clone()
        .set("group.id", &options.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            options.session_timeout.as_millis().to_string(),
        )
        .set("enable.partition.eof", "false")
        // Topics created after the sink started are picked up within seconds.
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create_with_context(context)
        .map_err(|e| format!("Kafka consumer: {e}"))?;
    let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("subscribing to {topics:?}: {e}"))?;
    tracing::info!(group = %options.group_id, ?topics, "sink consuming");

    let mut last_tick = Instant::now();
    let mut last_log = Instant::now();
    let mut logged = Stats::default();
    while !stop.load(Ordering::Relaxed) {
        if let Some(fatal) = consumer
            .context()
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            consumer.context().engine().abandon();
            return Err(fatal);
        }
        poll_once(&consumer)?;
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let mut engine = consumer.context().engine();
            if let Err(e) = engine.tick() {
                engine.abandon();
                return Err(format!("sink stopped: {e}"));
            }
            let commits = engine.take_commits();
            *options.stats.lock().unwrap_or_else(|e| e.into_inner()) = engine.stats();
            drop(engine);
            commit(&consumer, &commits, CommitMode::Async);
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            let stats = consumer.context().engine().stats();
            if stats != logged {
                tracing::info!(?stats, "sink progress");
                logged = stats;
            }
        }
    }
    drain(&consumer)?;
    let mut engine = consumer.context().engine();
    let assigned = engine.assigned();
    let commits = engine.revoke(&assigned);
    let stats = engine.stats();
    *options.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats.clone();
    drop(engine);
    commit(&consumer, &commits, CommitMode::Sync);
    tracing::info!(?stats, "sink stopped: open files published");
    Ok(stats)
}
