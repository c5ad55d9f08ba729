//! Prometheus metrics: requests by endpoint and status, a latency histogram per endpoint,
//! open and idle-closed connections, malformed HTTP, and the ruleset's version and age.
//! Lock-free on the request path (atomics in a DashMap whose entries exist after the first
//! request of each kind).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;

use crate::http::{bytes_reply, AppState, Reply};
use crate::rules::now_ms;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: DashMap<(&'static str, u16), AtomicU64>,
    latency: DashMap<&'static str, Histogram>,
    /// Connections being served now (the gauge to hold against `--max-connections`).
    pub connections_open: AtomicU64,
    /// Connections closed for silence (`--read-timeout-secs`).
    pub connections_closed_idle: AtomicU64,
    /// Requests hyper refused before routing (not HTTP/1.x, over 100 headers, a head over
    /// its buffer): answered 400 or 431 without a body, so otherwise seen nowhere.
    pub http_malformed: AtomicU64,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, endpoint: &'static str, status: u16, took: Duration) {
        if let Some(counter) = self.requests.get(&(endpoint, status)) {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            self.requests
                .entry((endpoint, status))
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        let record = |h: &Histogram| {
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                h.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
            h.count.fetch_add(1, Ordering::Relaxed);
            h.sum_micros
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        };
        match self.latency.get(endpoint) {
            Some(h) => record(&h),
            None => record(&self.latency.entry(endpoint).or_default()),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, state: &AppState) -> Reply {
        let mut out = String::new();
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (e.key().0, e.key().1, e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for (endpoint, status, n) in rows {
            let _ = writeln!(
                out,
                "gatehouse_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# TYPE gatehouse_request_duration_seconds histogram\n");
        let mut endpoints: Vec<&'static str> = self.latency.iter().map(|e| *e.key()).collect();
        endpoints.sort();
        for endpoint in endpoints {
            let Some(h) = self.latency.get(endpoint) else {
                continue;
            };
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "gatehouse_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "gatehouse_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {count}\n\
                 gatehouse_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {sum}\n\
                 gatehouse_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# TYPE gatehouse_connections_open gauge\ngatehouse_connections_open {}\n\
             # TYPE gatehouse_connections_closed_idle_total counter\ngatehouse_connections_closed_idle_total {}\n\
             # TYPE gatehouse_http_malformed_total counter\ngatehouse_http_malformed_total {}",
            self.connections_open.load(Ordering::Relaxed),
            self.connections_closed_idle.load(Ordering::Relaxed),
            self.http_malformed.load(Ordering::Relaxed)
        );
        if let Some(sink) = &state.events {
            let _ = writeln!(
                out,
                "# TYPE gatehouse_events_produced_total counter\ngatehouse_events_produced_total {}\n\
                 # TYPE gatehouse_events_failed_total counter\ngatehouse_events_failed_total {}\n\
                 # TYPE gatehouse_exposures_dropped_total counter\ngatehouse_exposures_dropped_total {}\n\
                 # TYPE gatehouse_producer_queue_depth gauge\ngatehouse_producer_queue_depth {}",
                sink.produced(),
                sink.failed(),
                sink.exposures_dropped.load(Ordering::Relaxed),
                sink.queue_depth()
            );
        }
        if let Some(rules) = state.rules.get() {
            let age = now_ms().saturating_sub(rules.loaded_at_ms) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "# TYPE gatehouse_ruleset_time gauge\ngatehouse_ruleset_time {}\n\
                 # TYPE gatehouse_ruleset_age_seconds gauge\ngatehouse_ruleset_age_seconds {age}\n\
                 # TYPE gatehouse_id_lists gauge\ngatehouse_id_lists {}\n\
                 # TYPE gatehouse_id_list_members gauge\ngatehouse_id_list_members {}",
                rules.ruleset.time,
                rules.id_lists.files.len(),
                rules.id_lists.members()
            );
        }
        if let Some(dedupe) = &state.dedupe {
            let _ = writeln!(
                out,
                "# TYPE gatehouse_exposures_deduplicated_total counter\ngatehouse_exposures_deduplicated_total {}",
                dedupe.suppressed.load(Ordering::Relaxed)
            );
        }
        if let Some(stats) = &state.sink_stats {
            out.push_str(
                &stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .render_prometheus(),
            );
        }
        let mut reply = bytes_reply(StatusCode::OK, out.into());
        reply.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        reply
    }
}
