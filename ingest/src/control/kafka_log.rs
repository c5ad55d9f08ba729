//! The shared control log: a one-partition, compacted Kafka topic that every front door
//! writes its console changes to and tails from the beginning (the pattern Schema Registry
//! and Kafka Connect use for their own state). One partition gives every replica the same
//! order; compaction keeps the last record per entity; `min.compaction.lag.ms` keeps at
//! least 30 days of history for the audit log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::state::{Change, CHANGE_SCHEMA_VERSION};

/// History compaction never touches: 30 days.
const MIN_COMPACTION_LAG_MS: &str = "2592000000";

/// Writes changes to the control topic.
pub struct KafkaLog {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("topic", &self.topic)
            .finish()
    }
}

impl KafkaLog {
    /// Creates the topic (one partition, compacted) unless it exists, and a producer for
    /// it: idempotent, `acks=all`, so an acknowledged change survives a broker failover.
    pub async fn connect(connection: &ClientConfig, topic: &str) -> Result<KafkaLog, String> {
        let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact")
            .set("min.compaction.lag.ms", MIN_COMPACTION_LAG_MS);
        crate::producer::create_topics(connection, &[new_topic]).await?;
        let producer: FutureProducer = connection
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "10000")
            .create()
            .map_err(|e| format!("control producer: {e}"))?;
        // Another client may have auto-created the topic with the broker's defaults: more
        // than one partition would give the front doors different orders.
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| format!("control topic metadata: {e}"))?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        if partitions != 1 {
            return Err(format!(
                "the control topic {topic} has {partitions} partitions; it needs exactly 1 (and cleanup.policy=compact): delete it or name another with --state-topic"
            ));
        }
        Ok(KafkaLog {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Appends one change; returns once the brokers acknowledged it.
    pub async fn append(&self, change: &Change) -> Result<(), String> {
        let payload = serde_json::to_vec(change).map_err(|e| e.to_string())?;
        let key = change.log_key();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("control topic write failed: {e}"))
    }
}

/// Reads the control topic from the beginning on a plain thread until `stop`, handing
/// each poll's changes, in order, to `apply` together with whether the replica has caught
/// up with the end of the topic as it was at start (before that, `live` is false).
pub fn tail(
    connection: &ClientConfig,
    topic: &str,
    stop: Arc<AtomicBool>,
    mut apply: impl FnMut(Vec<Change>, bool) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, String> {
    let consumer: BaseConsumer = connection
        .clone()
        .set(
            "group.id",
            format!("gatehouse-control-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .map_err(|e| format!("control consumer: {e}"))?;
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .map_err(|e| format!("reading the control topic's end: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    consumer
        .assign(&assignment)
        .map_err(|e| format!("control consumer: {e}"))?;
    let topic = topic.to_owned();
    std::thread::Builder::new()
        .name("control-tail".into())
        .spawn(move || {
            let mut live = high == 0;
            if live {
                apply(Vec::new(), true);
            }
            while !stop.load(Ordering::Relaxed) {
                let mut batch = Vec::new();
                let mut next_offset = None;
                let mut timeout = Duration::from_millis(100);
                while let Some(message) = consumer.poll(timeout) {
                    timeout = Duration::ZERO;
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => {
                            tracing::warn!(%error, topic, "control topic read error");
                            break;
                        }
                    };
                    next_offset = Some(message.offset() + 1);
                    match parse(message.payload()) {
                        Ok(change) => batch.push(change),
                        Err(error) => tracing::error!(
                            offset = message.offset(),
                            %error,
                            "control record skipped"
                        ),
                    }
                    if batch.len() >= 10_000 {
                        break;
                    }
                }
                let caught_up = !live && next_offset.is_some_and(|next| next >= high);
                if !batch.is_empty() || caught_up {
                    live |= caught_up;
                    apply(batch, live);
                }
            }
        })
        .map_err(|e| format!("control thread: {e}"))
}

fn parse(payload: Option<&[u8]>) -> Result<Change, String> {
    let change: Change =
        serde_json::from_slice(payload.ok_or("empty record")?).map_err(|e| e.to_string())?;
    if change.v > CHANGE_SCHEMA_VERSION {
        return Err(format!(
            "schema version {} is newer than this front door's {CHANGE_SCHEMA_VERSION}",
            change.v
        ));
    }
    Ok(change)
}
