//! Delivery of events and exposures to Kafka (rdkafka): idempotent, `acks=all`, lz4.
//!
//! `log_event` batches are acknowledged to the SDK only after the broker acknowledged every
//! event; a batch that cannot fit the producer queue is refused whole (503) before anything
//! is produced. Exposures from the evaluation API are fire-and-forget for the request, but
//! every delivery failure is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use events::Envelope;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

/// Messages the producer may hold unacknowledged; batches beyond it are refused with 503.
const QUEUE_CAPACITY: usize = 500_000;

/// Where events go, and the counters `/metrics` shows.
pub struct EventSink {
    producer: FutureProducer,
    /// Topic for exposures.
    pub exposures_topic: String,
    /// Topic for custom events.
    pub events_topic: String,
    /// How long a `log_event` request waits for the broker's acknowledgements.
    pub ack_timeout: Duration,
    /// Events the broker acknowledged.
    pub produced: AtomicU64,
    /// Events whose delivery failed (counted and logged, never silent).
    pub failed: AtomicU64,
    /// Exposures not enqueued because the queue was full or Kafka refused them.
    pub exposures_dropped: AtomicU64,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("exposures_topic", &self.exposures_topic)
            .field("events_topic", &self.events_topic)
            .finish_non_exhaustive()
    }
}

/// Why a batch was not accepted.
#[derive(Debug)]
pub enum SendError {
    /// The producer queue cannot take the batch now: retry later (503 + Retry-After).
    Busy,
    /// Kafka did not acknowledge every event in time (503).
    NotAcknowledged(String),
}

impl EventSink {
    /// A producer for `brokers` (a bootstrap list).
    pub fn connect(
        brokers: &str,
        exposures_topic: &str,
        events_topic: &str,
    ) -> Result<EventSink, KafkaError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", QUEUE_CAPACITY.to_string())
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(EventSink {
            producer,
            exposures_topic: exposures_topic.to_owned(),
            events_topic: events_topic.to_owned(),
            ack_timeout: Duration::from_secs(10),
            produced: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            exposures_dropped: AtomicU64::new(0),
        })
    }

    /// Messages waiting in the producer (queued or in flight).
    pub fn queue_depth(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }

    fn topic_of(&self, env: &Envelope) -> &str {
        if env.exposure.is_some() {
            &self.exposures_topic
        } else {
            &self.events_topic
        }
    }

    /// Produces a whole batch and waits until the broker acknowledged every event.
    pub async fn send_batch(&self, batch: &[Envelope]) -> Result<(), SendError> {
        if self.queue_depth() + batch.len() > QUEUE_CAPACITY {
            return Err(SendError::Busy);
        }
        let mut pending = Vec::with_capacity(batch.len());
        for env in batch {
            let payload = env.to_bytes();
            let record = FutureRecord::to(self.topic_of(env))
                .key(env.unit_id.as_str())
                .payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((error, _)) => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "event not enqueued");
                    return Err(SendError::Busy);
                }
            }
        }
        let acks = futures_all(pending);
        match tokio::time::timeout(self.ack_timeout, acks).await {
            Ok(Ok(n)) => {
                self.produced.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(error)) => Err(SendError::NotAcknowledged(error)),
            Err(_) => Err(SendError::NotAcknowledged(
                "no acknowledgement in time".into(),
            )),
        }
    }

    /// Enqueues an exposure without waiting; failures are counted.
    pub fn send_exposure(self: &Arc<Self>, env: &Envelope) {
        let payload = env.to_bytes();
        let record = FutureRecord::to(&self.exposures_topic)
            .key(env.unit_id.as_str())
            .payload(&payload);
        match self.producer.send_result(record) {
            Ok(delivery) => {
                let sink = self.clone();
                tokio::spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => sink.produced.fetch_add(1, Ordering::Relaxed),
                        _ => sink.failed.fetch_add(1, Ordering::Relaxed),
                    };
                });
            }
            Err((error, _)) => {
                self.exposures_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "exposure dropped");
            }
        }
    }

    /// Whether a broker answers a metadata request within `timeout` (blocking: call it on the
    /// blocking pool).
    pub fn broker_reachable(&self, timeout: Duration) -> bool {
        self.producer
            .client()
            .fetch_metadata(None, Timeout::After(timeout))
            .is_ok()
    }

    /// Flushes everything queued (graceful shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(Timeout::After(timeout)) {
            tracing::error!(%error, queued = self.queue_depth(), "flush incomplete at shutdown");
        }
    }
}

/// Awaits every delivery; the first failure is the batch's error.
async fn futures_all(pending: Vec<rdkafka::producer::DeliveryFuture>) -> Result<u64, String> {
    let mut acknowledged = 0;
    let mut first_error = None;
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => acknowledged += 1,
            Ok(Err((error, _))) => {
                first_error.get_or_insert_with(|| error.to_string());
            }
            Err(_) => {
                first_error.get_or_insert_with(|| "producer dropped the message".to_owned());
            }
        }
    }
    match first_error {
        None => Ok(acknowledged),
        Some(error) => Err(error),
    }
}
