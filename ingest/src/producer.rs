//! Delivery of events and exposures to Kafka (rdkafka): idempotent, `acks=all`, lz4.
//!
//! `log_event` batches are acknowledged to the SDK only after the broker acknowledged every
//! event; a batch that cannot fit the producer queue is refused whole (503) before anything
//! is produced. Exposures from the evaluation API are fire-and-forget for the request, but
//! every delivery failure is counted.

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::{Envelope, ExposureMessage};
use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{
    FutureProducer, FutureRecord, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::util::Timeout;

/// Messages the producer may hold unacknowledged; batches beyond it are refused with 503.
const QUEUE_CAPACITY: usize = 500_000;

/// How long exposures wait to fill a batch. Nobody waits on an exposure's acknowledgement,
/// and with a real broker on the same cores, 5 ms batches cost the broker 4-11 µs of CPU per
/// exposure against 1-2 µs at 50 ms (BENCHMARKS.md). `log_event` batches, which the SDK
/// waits for, keep the 5 ms of [`producer_config`].
const EXPOSURE_LINGER_MS: u32 = 50;

/// Counts failed exposure deliveries in librdkafka's delivery callback: no task or future per
/// exposure on the request path. Only failures are reported (`delivery.report.only.error`):
/// a report for every delivered exposure cost the front door about 0.5 µs of CPU per
/// `check_gate` on the thread serving them (BENCHMARKS.md), and the count of delivered ones
/// follows from the others ([`EventSink::produced`]).
struct CountFailures {
    failed: Arc<AtomicU64>,
    /// librdkafka's last client-level error that says why (authentication refused, a
    /// refused connection...), for `/readyz` to say why no broker answers.
    last_error: Mutex<Option<String>>,
}

impl ClientContext for CountFailures {
    fn error(&self, error: KafkaError, reason: &str) {
        // Logged as rdkafka's default context logs it.
        tracing::error!(target: "librdkafka", "librdkafka: {error}: {reason}");
        // "1/1 brokers are down" follows the error that says why: it never replaces one.
        let summary = error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        if !summary || last.is_none() {
            *last = Some(reason.to_owned());
        }
    }
}

impl ProducerContext for CountFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            tracing::warn!(%error, "exposure delivery failed");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A librdkafka topic handle, made once. Producing by name (all rdkafka's safe API offers)
/// copies the name into a `CString` and has librdkafka look the topic up under its client's
/// *write* lock, for every message: every worker's every exposure took the same lock.
struct TopicHandle(*mut rdsys::rd_kafka_topic_t);

// SAFETY: librdkafka's topic handles are reference-counted and locked inside; any thread
// may produce through one.
unsafe impl Send for TopicHandle {}
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    fn new(client: *mut rdsys::rd_kafka_t, name: &str) -> Result<TopicHandle, KafkaError> {
        let refused = |why: String| KafkaError::ClientCreation(format!("topic {name:?}: {why}"));
        let c_name = CString::new(name).map_err(|e| refused(e.to_string()))?;
        // SAFETY: a live client and a NUL-terminated name; NULL config means the defaults.
        let handle =
            unsafe { rdsys::rd_kafka_topic_new(client, c_name.as_ptr(), std::ptr::null_mut()) };
        if handle.is_null() {
            // SAFETY: reads this thread's last librdkafka error, set by the call above.
            let code = RDKafkaErrorCode::from(unsafe { rdsys::rd_kafka_last_error() });
            return Err(refused(code.to_string()));
        }
        Ok(TopicHandle(handle))
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: made by rd_kafka_topic_new, released once; the client outlives it
        // (`EventSink` declares this field before the producer, so it drops first).
        unsafe { rdsys::rd_kafka_topic_destroy(self.0) }
    }
}

/// Where events go, and the counters `/metrics` shows.
pub struct EventSink {
    /// `log_event` batches: each send returns a future resolved by the broker's ack.
    producer: FutureProducer,
    /// The exposures topic in `exposure_producer` (declared first: dropped before it).
    exposure_topic: TopicHandle,
    /// Exposures: fire-and-forget, failed deliveries counted by the context.
    exposure_producer: ThreadedProducer<CountFailures>,
    /// Topic for exposures.
    pub exposures_topic: String,
    /// Topic for custom events.
    pub events_topic: String,
    /// How long a `log_event` request waits for the broker's acknowledgements.
    pub ack_timeout: Duration,
    /// `log_event` events the broker acknowledged.
    events_produced: AtomicU64,
    /// `log_event` events not enqueued or not acknowledged.
    events_failed: AtomicU64,
    /// Exposures handed to librdkafka.
    exposures_enqueued: AtomicU64,
    /// Exposures whose delivery failed (counted and logged, never silent).
    exposures_failed: Arc<AtomicU64>,
    /// The highest delivered-exposure count [`EventSink::produced`] has reported.
    exposures_delivered: AtomicU64,
    /// Exposures not enqueued because the queue was full or Kafka refused them.
    pub exposures_dropped: AtomicU64,
    /// The second (since the epoch) a dropped exposure was last logged in.
    drop_logged_second: AtomicU64,
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

/// Creates `topics` unless they exist (an existing topic is kept as it is), connecting as
/// `connection` says ([`crate::kafka_connection`]).
pub async fn create_topics(
    connection: &ClientConfig,
    topics: &[rdkafka::admin::NewTopic<'_>],
) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::error::RDKafkaErrorCode;
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = connection
        .create()
        .map_err(|e| format!("Kafka admin client: {e}"))?;
    let results = admin
        .create_topics(topics, &AdminOptions::new())
        .await
        .map_err(|e| format!("creating topics: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("creating topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// The producer settings every Gatehouse producer uses (the load harness's raw-producer
/// baseline too) on top of `connection`: idempotent, `acks=all`, lz4, 5 ms linger.
pub fn producer_config(connection: &ClientConfig) -> ClientConfig {
    let mut config = connection.clone();
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", QUEUE_CAPACITY.to_string())
        .set("message.timeout.ms", "30000");
    config
}

impl EventSink {
    /// A producer for the brokers `connection` names ([`crate::kafka_connection`]).
    pub fn connect(
        connection: &ClientConfig,
        exposures_topic: &str,
        events_topic: &str,
    ) -> Result<EventSink, KafkaError> {
        let config = producer_config(connection);
        let exposures_failed = Arc::new(AtomicU64::new(0));
        let mut exposure_config = config.clone();
        exposure_config
            .set("linger.ms", EXPOSURE_LINGER_MS.to_string())
            .set("delivery.report.only.error", "true");
        let exposure_producer: ThreadedProducer<CountFailures> = exposure_config
            .create_with_context(CountFailures {
                failed: exposures_failed.clone(),
                last_error: Mutex::new(None),
            })?;
        let exposure_topic =
            TopicHandle::new(exposure_producer.client().native_ptr(), exposures_topic)?;
        Ok(EventSink {
            producer: config.create()?,
            exposure_topic,
            exposure_producer,
            exposures_topic: exposures_topic.to_owned(),
            events_topic: events_topic.to_owned(),
            ack_timeout: Duration::from_secs(10),
            events_produced: AtomicU64::new(0),
            events_failed: AtomicU64::new(0),
            exposures_enqueued: AtomicU64::new(0),
            exposures_failed,
            exposures_delivered: AtomicU64::new(0),
            exposures_dropped: AtomicU64::new(0),
            drop_logged_second: AtomicU64::new(0),
        })
    }

    /// Messages waiting in the producer (queued or in flight).
    pub fn queue_depth(&self) -> usize {
        let depth = self.producer.in_flight_count() + self.exposure_producer.in_flight_count();
        depth.max(0) as usize
    }

    /// Events and exposures the broker acknowledged: a counter, never decreasing.
    ///
    /// A delivered exposure is one enqueued that is neither waiting nor failed. Reading the
    /// enqueued count first, then the queue, then the failures can only miss an exposure
    /// moving meanwhile, never count one twice, so the figure is at most the truth and the
    /// highest one reported so far is kept; it is exact once the queue is still.
    pub fn produced(&self) -> u64 {
        let enqueued = self.exposures_enqueued.load(Ordering::Acquire);
        let waiting = self.exposure_producer.in_flight_count().max(0) as u64;
        let failed = self.exposures_failed.load(Ordering::Acquire);
        let delivered = enqueued.saturating_sub(waiting + failed);
        let delivered = delivered.max(
            self.exposures_delivered
                .fetch_max(delivered, Ordering::AcqRel),
        );
        self.events_produced.load(Ordering::Relaxed) + delivered
    }

    /// Events and exposures whose delivery failed, and `log_event` events the producer would
    /// not enqueue (counted and logged, never silent; exposures it would not enqueue are
    /// [`EventSink::exposures_dropped`]).
    pub fn failed(&self) -> u64 {
        self.events_failed.load(Ordering::Relaxed) + self.exposures_failed.load(Ordering::Relaxed)
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
                    self.events_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "event not enqueued");
                    return Err(SendError::Busy);
                }
            }
        }
        let acks = all_acknowledged(pending);
        match tokio::time::timeout(self.ack_timeout, acks).await {
            Ok(acks) => {
                self.events_produced
                    .fetch_add(acks.acknowledged, Ordering::Relaxed);
                self.events_failed.fetch_add(acks.failed, Ordering::Relaxed);
                match acks.first_error {
                    None => Ok(()),
                    Some(error) => Err(SendError::NotAcknowledged(error)),
                }
            }
            Err(_) => Err(SendError::NotAcknowledged(
                "no acknowledgement in time".into(),
            )),
        }
    }

    /// Enqueues an exposure without waiting; delivery failures and refusals are counted.
    pub fn send_exposure(&self, exposure: &ExposureMessage<'_>) {
        thread_local! {
            // librdkafka copies the payload, so one buffer per worker thread serves every
            // exposure it writes.
            static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PAYLOAD.with_borrow_mut(|payload| {
            payload.clear();
            exposure.write_to(payload);
            let key = exposure.unit_id.as_bytes();
            use rdsys::rd_kafka_vtype_t::*;
            // SAFETY: the arguments rdkafka's own `BaseProducer::send` passes, with the topic
            // by handle (alive as long as `self`) and no delivery opaque (the context's is
            // `()`, read from a null pointer); librdkafka copies key and payload (F_COPY)
            // before it returns.
            let error = unsafe {
                rdsys::rd_kafka_producev(
                    self.exposure_producer.client().native_ptr(),
                    RD_KAFKA_VTYPE_RKT,
                    self.exposure_topic.0,
                    RD_KAFKA_VTYPE_PARTITION,
                    -1i32, // unassigned: librdkafka partitions by the key
                    RD_KAFKA_VTYPE_MSGFLAGS,
                    rdsys::RD_KAFKA_MSG_F_COPY,
                    RD_KAFKA_VTYPE_VALUE,
                    payload.as_ptr() as *mut c_void,
                    payload.len(),
                    RD_KAFKA_VTYPE_KEY,
                    key.as_ptr() as *mut c_void,
                    key.len(),
                    RD_KAFKA_VTYPE_END,
                )
            };
            if error == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                self.exposures_enqueued.fetch_add(1, Ordering::Release);
            } else {
                let dropped = self.exposures_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.warn_dropped(RDKafkaErrorCode::from(error), dropped);
            }
        });
    }

    /// Logs a dropped exposure, at most once a second (every one is counted in
    /// `gatehouse_exposures_dropped_total`): a full queue or a topic the broker refuses drops
    /// every exposure, and a line for each would bury the log.
    fn warn_dropped(&self, error: RDKafkaErrorCode, dropped: u64) {
        let second = crate::rules::now_ms() / 1000;
        let last = self.drop_logged_second.load(Ordering::Relaxed);
        let claimed = last != second
            && self
                .drop_logged_second
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if claimed {
            tracing::warn!(%error, dropped_so_far = dropped, "exposure dropped (logged at most once a second)");
        }
    }

    /// librdkafka's fatal error, if a producer has hit one. An idempotent producer that lost
    /// track of its sequence numbers with the broker refuses every message from then on;
    /// only a new producer recovers, i.e. a restart of the front door.
    pub fn fatal_error(&self) -> Option<String> {
        let batches = self.producer.client().fatal_error();
        batches
            .or_else(|| self.exposure_producer.client().fatal_error())
            .map(|(code, reason)| format!("{code}: {reason}"))
    }

    /// Resolves with the fatal error once a producer has one (checked twice a second).
    pub async fn fatal(&self) -> String {
        let mut every = tokio::time::interval(Duration::from_millis(500));
        loop {
            every.tick().await;
            if let Some(error) = self.fatal_error() {
                return error;
            }
        }
    }

    /// The last error librdkafka reported for the connection (e.g. `SASL authentication
    /// error: ...`), however long ago: shown when no broker answers.
    pub fn last_client_error(&self) -> Option<String> {
        let context = self.exposure_producer.context();
        context
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        let batches = self.producer.flush(Timeout::After(timeout));
        let exposures = self.exposure_producer.flush(Timeout::After(timeout));
        if let Err(error) = batches.and(exposures) {
            tracing::error!(%error, queued = self.queue_depth(), "flush incomplete at shutdown");
        }
    }
}

/// What the broker said about a batch.
struct Acks {
    acknowledged: u64,
    failed: u64,
    first_error: Option<String>,
}

/// Awaits every delivery of a batch.
async fn all_acknowledged(pending: Vec<rdkafka::producer::DeliveryFuture>) -> Acks {
    let mut acks = Acks {
        acknowledged: 0,
        failed: 0,
        first_error: None,
    };
    for delivery in pending {
        let error = match delivery.await {
            Ok(Ok(_)) => {
                acks.acknowledged += 1;
                continue;
            }
            Ok(Err((error, _))) => error.to_string(),
            Err(_) => "producer dropped the message".to_owned(),
        };
        acks.failed += 1;
        acks.first_error.get_or_insert(error);
    }
    acks
}
