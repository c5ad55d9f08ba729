//! The load harness: drives the front door over loopback with bounded requests and time, next
//! to the baselines measured in the same run (a bare hyper server; the raw librdkafka
//! producer).
//!
//!   cargo run --release -p gatehouse-benches --bin load -- [--requests N] [--seconds S]
//!       [--connections C] [--soak-seconds T] [--scenario all|check_gate|latency]
//!       [--open-loop-percent P] [--warmup-seconds W] [--cores shared|split]
//!       [--client-wait sleep|spin]
//!
//! `all` measures, each against the bare server or the raw producer: `check_gate`,
//! `initialize`, `download_config_specs` (as JSON and gzipped), and `log_event`.
//! First `check_gate` and `log_event` run unmeasured for W seconds each (default 3), so a
//! freshly started broker's JIT warm-up is in no scenario.
//! After the closed-loop runs, `check_gate` is driven open-loop at 70% (`P`) of the peak just
//! measured, and the bare server both at that rate and at 70% of its own peak (requests due at
//! evenly spaced times, released by a pacer; latency counts from the due time, so
//! neither a late release nor a wait for the connection is hidden);
//! `--soak-seconds` then holds that rate for T seconds, sampling the process's resident
//! memory every second.
//!
//! Kafka: the broker in GATEHOUSE_KAFKA_BROKERS, else an in-process mock cluster. The client
//! is [`gatehouse_benches::http1_client`]: it shares the cores with the server it measures, so
//! it is kept lean. `--cores split` gives it core 0 and the servers the others instead, so
//! the server's figures are its own (the bare hyper baseline is then the most likely to be
//! held back by a client with one core). With split cores, `--client-wait spin` keeps the
//! client's core busy-polling its sockets instead of sleeping between answers: over loopback
//! the server's core otherwise pays for waking the client (an inter-processor interrupt, dear
//! in a VM), which no network charges a server, and which costs a slower server more because
//! its client sleeps more often.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use evaluator::SpecKind;
use gatehouse_benches::http1_client::{post_request, Connection};
use http_body_util::Full;
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ingest::http::{serve, AppState};
use ingest::kafka_connection::connection;
use ingest::producer::EventSink;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::json;
use tokio::net::TcpListener;

const SERVER_KEY: &str = "secret-load";
const CLIENT_KEY: &str = "client-load";

/// mimalloc rather than glibc malloc: a request allocates and frees small blocks on whichever
/// worker runs it, and glibc's arenas made those frees contend (futex wakes and
/// `malloc_consolidate` in the check_gate profile; BENCHMARKS.md has the before and after).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    requests: u64,
    seconds: u64,
    connections: usize,
    soak_seconds: u64,
    scenario: Scenario,
    /// The open loop's rate, in percent of the closed-loop `check_gate` peak.
    open_loop_percent: f64,
    /// Unmeasured `check_gate` and `log_event` traffic first, seconds each.
    warmup_seconds: u64,
    placement: Placement,
    client_wait: ClientWait,
}

/// How the client waits for answers.
#[derive(Clone, Copy, PartialEq)]
enum ClientWait {
    /// In epoll, woken by the kernel when an answer arrives (like wrk or oha).
    Sleep,
    /// Busy-polling its sockets on its own core (`--cores split` only).
    Spin,
}

/// Where client and servers run.
#[derive(Clone, Copy, PartialEq)]
enum Placement {
    /// One runtime on all cores: client and server share them (and the broker's JVM).
    Shared,
    /// The client, its pacer and the mock broker on core 0; the servers on all the other
    /// cores (one worker each, the front door's librdkafka threads with them): as if the
    /// client ran elsewhere. Pin a real broker to core 0 too (BENCHMARKS.md).
    Split,
}

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    /// Everything.
    All,
    /// Only the bare server and `check_gate`, closed loop (for profiling).
    CheckGate,
    /// The bare server and `check_gate`, closed loop, then the open loop.
    Latency,
}

fn options() -> Options {
    let mut o = Options {
        requests: 200_000,
        seconds: 20,
        connections: 32,
        soak_seconds: 0,
        scenario: Scenario::All,
        open_loop_percent: 70.0,
        warmup_seconds: 3,
        placement: Placement::Shared,
        client_wait: ClientWait::Sleep,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args[1..].chunks(2) {
        let raw = pair.get(1).map(String::as_str);
        let value = raw.and_then(|v| v.parse().ok());
        let percent = raw.and_then(|v| v.parse::<f64>().ok()).filter(|p| *p > 0.0);
        match (pair[0].as_str(), value) {
            ("--requests", Some(v)) => o.requests = v,
            ("--seconds", Some(v)) => o.seconds = v,
            ("--connections", Some(v)) => o.connections = v as usize,
            ("--soak-seconds", Some(v)) => o.soak_seconds = v,
            ("--warmup-seconds", Some(v)) => o.warmup_seconds = v,
            ("--open-loop-percent", _) if percent.is_some() => {
                o.open_loop_percent = percent.unwrap_or_default()
            }
            ("--scenario", _) if raw == Some("all") => o.scenario = Scenario::All,
            ("--scenario", _) if raw == Some("check_gate") => o.scenario = Scenario::CheckGate,
            ("--scenario", _) if raw == Some("latency") => o.scenario = Scenario::Latency,
            ("--cores", _) if raw == Some("shared") => o.placement = Placement::Shared,
            ("--cores", _) if raw == Some("split") => o.placement = Placement::Split,
            ("--client-wait", _) if raw == Some("sleep") => o.client_wait = ClientWait::Sleep,
            ("--client-wait", _) if raw == Some("spin") => o.client_wait = ClientWait::Spin,
            _ => {
                eprintln!(
                    "usage: load [--requests N] [--seconds S] [--connections C] [--soak-seconds T] \
                     [--scenario all|check_gate|latency] [--open-loop-percent P] [--warmup-seconds W] \
                     [--cores shared|split] [--client-wait sleep|spin]"
                );
                std::process::exit(2);
            }
        }
    }
    o
}

/// Results of one scenario.
struct Run {
    requests: u64,
    elapsed: Duration,
    /// CPU time the whole process (client and server) spent during the run.
    cpu: Duration,
    /// CPU time the whole machine spent (a broker's JVM included).
    machine_cpu: Duration,
    /// With `--cores split`, CPU time on the servers' cores.
    server_cpu: Option<Duration>,
    latencies_us: Vec<u32>,
    errors: u64,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Failed requests in all scenarios: a run with any exits non-zero, so a smoke run in CI
/// fails rather than printing figures of a broken server.
static FAILED_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// One round trip; a non-2xx answer counts as an error. False when the connection broke.
async fn send(connection: &mut Connection, errors: &AtomicU64) -> bool {
    let status = connection.round_trip().await;
    let ok = status.as_ref().is_ok_and(|s| (200..300).contains(s));
    if !ok {
        errors.fetch_add(1, Ordering::Relaxed);
        FAILED_REQUESTS.fetch_add(1, Ordering::Relaxed);
    }
    status.is_ok()
}

/// Closed loop: `connections` keep-alive connections send `body` to `path` until `requests`
/// are done or `seconds` pass.
async fn drive(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    o: &Options,
) -> Run {
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let (cpu_before, machine_before) = (cpu_time(), machine_cpu_time());
    let server_before = server_cores_cpu_time();
    let mut tasks = Vec::new();
    let request = post_request(path, headers, &body);
    for _ in 0..o.connections {
        let (sent, errors, limit) = (sent.clone(), errors.clone(), o.requests);
        let mut connection = Connection::open(addr, request.clone()).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while sent.fetch_add(1, Ordering::Relaxed) < limit && Instant::now() < deadline {
                let t = Instant::now();
                if !send(&mut connection, &errors).await {
                    break;
                }
                latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Run {
        requests: latencies_us.len() as u64,
        elapsed,
        cpu: cpu_time().saturating_sub(cpu_before),
        machine_cpu: machine_cpu_time().saturating_sub(machine_before),
        server_cpu: (o.placement == Placement::Split)
            .then(|| server_cores_cpu_time().saturating_sub(server_before)),
        latencies_us,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Latencies in 10 µs buckets up to 100 ms (and one overflow bucket): fixed memory however
/// long the run, so a soak measures the server's memory, not the client's.
struct Histogram {
    buckets: Vec<u64>,
}

impl Histogram {
    const BUCKET_US: u64 = 10;
    const BUCKETS: usize = 10_001;

    fn new() -> Histogram {
        Histogram {
            buckets: vec![0; Self::BUCKETS],
        }
    }

    fn record(&mut self, latency: Duration) {
        let i = (latency.as_micros() as u64 / Self::BUCKET_US).min(Self::BUCKETS as u64 - 1);
        self.buckets[i as usize] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper edge of the bucket holding quantile `p`, in ms.
    fn percentile(&self, p: f64) -> f64 {
        let target = ((self.count() as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return ((i as u64 + 1) * Self::BUCKET_US) as f64 / 1000.0;
            }
        }
        f64::INFINITY
    }
}

/// The open loop's pacer sleeps at least this long between releases.
const PACER_TICK: Duration = Duration::from_micros(250);

/// Open loop: `rate` requests per second in all, spread over `connections`, for `duration`.
/// Request `i` is due at `i / rate` and goes to connection `i % connections`; its latency
/// counts from that due time, so a late release or a wait for the connection to come free
/// (the server was slow) is charged to it. A pacer OS thread wakes at most every
/// [`PACER_TICK`] and releases every request due by then: one wake-up per request cost the
/// client several µs of CPU each and the open loop fell behind its schedule at 70% of peak.
/// (It is not tokio's timer, which rounds every wake-up up to the next 1 ms.) With
/// [`ClientWait::Spin`] the pacer is a task on the client's busy-polling worker instead,
/// yielding until each due time: a pacer thread would have to win the core from that worker
/// at every tick. `every_second` runs once a second (the soak's memory sampling).
///
/// Besides the latency, the time from a request's due time to its connection task starting
/// it (the pacer's tick and the client's own scheduling, on cores it may share with the
/// server) is recorded, and within it the pacer's own lateness, so a tail can be told apart
/// from the server's.
#[allow(clippy::too_many_arguments)]
async fn drive_at_rate(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    rate: f64,
    connections: usize,
    duration: Duration,
    wait: ClientWait,
    mut every_second: impl FnMut(),
) -> OpenLoop {
    let errors = Arc::new(AtomicU64::new(0));
    let mut releases = Vec::new();
    let mut tasks = Vec::new();
    let request = post_request(path, headers, &body);
    for _ in 0..connections {
        let (release, mut released) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        releases.push(release);
        let errors = errors.clone();
        let mut connection = Connection::open(addr, request.clone()).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let (mut latency, mut pick_up) = (Histogram::new(), Histogram::new());
            while let Some(due) = released.recv().await {
                pick_up.record(due.elapsed());
                if !send(&mut connection, &errors).await {
                    break;
                }
                latency.record(due.elapsed());
            }
            (latency, pick_up)
        }));
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now() + Duration::from_millis(50);
    let pace = async move {
        let mut late = Histogram::new();
        for i in 0.. {
            let due = started + interval.mul_f64(i as f64);
            if due >= started + duration {
                break;
            }
            match wait {
                ClientWait::Sleep => {
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait.max(PACER_TICK));
                    }
                }
                ClientWait::Spin => {
                    while Instant::now() < due {
                        tokio::task::yield_now().await;
                    }
                }
            }
            late.record(due.elapsed());
            // A task that ended on a broken connection has dropped its receiver.
            let _ = releases[i % releases.len()].send(due);
        }
        late
    };
    let pacer = match wait {
        ClientWait::Sleep => {
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || runtime.block_on(pace))
        }
        ClientWait::Spin => tokio::spawn(pace),
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < started + duration {
        ticker.tick().await;
        every_second();
    }
    let mut run = OpenLoop {
        latency: Histogram::new(),
        pick_up: Histogram::new(),
        pacer_late: Histogram::new(),
        errors: 0,
    };
    for t in tasks {
        let (latency, pick_up) = t.await.unwrap();
        run.latency.merge(&latency);
        run.pick_up.merge(&pick_up);
    }
    run.pacer_late = pacer.await.unwrap();
    run.errors = errors.load(Ordering::Relaxed);
    run
}

/// What an open-loop run measured.
struct OpenLoop {
    /// From the due time to the response's last byte.
    latency: Histogram,
    /// From the due time to the connection task starting the request.
    pick_up: Histogram,
    /// From the due time to the pacer releasing the request: the part of `pick_up` that is the
    /// client's clock, not a busy connection or worker.
    pacer_late: Histogram,
    errors: u64,
}

/// CPU time (user + system) this process has used, from /proc (clock ticks at Linux's usual
/// 100 Hz, so 10 ms resolution).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// CPU time (user, nice, system, irq, softirq) the whole machine has used, from /proc/stat:
/// with a real broker its JVM shares the cores, and this counts its work too.
fn machine_cpu_time() -> Duration {
    stat_cpu_time(|label| label == "cpu")
}

/// CPU time used on every core but core 0: with `--cores split`, the servers' cores. This
/// counts what the server costs whatever thread or interrupt spent it (its librdkafka
/// threads; the loopback's softirq work, which runs on the sending core).
fn server_cores_cpu_time() -> Duration {
    stat_cpu_time(|label| {
        let core = label
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok());
        core.is_some_and(|n| n > 0)
    })
}

/// CPU time on the /proc/stat lines whose label (`cpu` for the machine, `cpuN` for a core)
/// `counts` accepts.
fn stat_cpu_time(counts: impl Fn(&str) -> bool) -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(label, _)| counts(label))
        .flat_map(|(_, times)| {
            times
                .split_whitespace()
                .take(7)
                .enumerate()
                .filter(|(i, _)| ![3, 4].contains(i)) // idle, iowait
                .filter_map(|(_, t)| t.parse::<u64>().ok())
        })
        .sum();
    Duration::from_millis(ticks * 10)
}

/// This process's resident memory (client and server together), in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn bare_hyper() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).ok();
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = server_http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn front_door(brokers: String) -> (std::net::SocketAddr, Arc<AppState>) {
    let specs = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../evaluator/tests/data/conformance_v2.json"
    ))
    .unwrap();
    let sink = EventSink::connect(&connection(&brokers), "load.exposures", "load.events").unwrap();
    let state = Arc::new(AppState {
        events: Some(Arc::new(sink)),
        ..AppState::default()
    });
    state.keys.insert(SERVER_KEY, [], None).unwrap();
    state.keys.insert(CLIENT_KEY, [], None).unwrap();
    state
        .rules
        .publish(ingest::rules::Compiled::build(&specs, 0, Default::default()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state.clone(), std::future::pending()));
    (addr, state)
}

/// The librdkafka ceiling: `n` pre-serialized events of `size` bytes, produced and flushed
/// with the front door's producer settings, no HTTP.
fn raw_producer(brokers: &str, n: usize, payload: &[u8]) -> f64 {
    let producer: FutureProducer = ingest::producer::producer_config(&connection(brokers))
        .create()
        .unwrap();
    let started = Instant::now();
    for i in 0..n {
        let key = format!("u{}", i % 10_000);
        loop {
            match producer.send_result(FutureRecord::to("load.raw").key(&key).payload(payload)) {
                Ok(_) => break,
                Err(_) => producer.poll(Duration::from_millis(1)),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    n as f64 / started.elapsed().as_secs_f64()
}

fn print(name: &str, run: &Run, baseline: Option<f64>, unit_per_request: u64) {
    let rate = run.per_second() * unit_per_request as f64;
    let ratio = baseline
        .map(|b| format!("{:.0}%", 100.0 * rate / b))
        .unwrap_or_else(|| "—".into());
    let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / run.requests.max(1) as f64;
    let (cpu_us, machine_us) = (per_request(run.cpu), per_request(run.machine_cpu));
    let server_us = run
        .server_cpu
        .map_or("—".into(), |cpu| format!("{:.1}", per_request(cpu)));
    println!(
        "| {name} | {} | {:.0} | {ratio} | {:.2} | {:.2} | {cpu_us:.1} | {machine_us:.1} | {server_us} | {} |",
        run.requests,
        rate,
        run.percentile(0.5),
        run.percentile(0.99),
        run.errors
    );
}

fn main() {
    let o = options();
    let split = o.placement == Placement::Split;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(!split || cores > 1, "--cores split needs two cores or more");
    let spin = o.client_wait == ClientWait::Spin;
    assert!(
        split || !spin,
        "--client-wait spin needs --cores split: spinning on shared cores takes the server's CPU"
    );
    if split {
        // Threads inherit it: the client runtime's workers, the pacer, the mock broker's.
        pin_to_cores(0..1);
    }
    let mut client = tokio::runtime::Builder::new_multi_thread();
    if split {
        client.worker_threads(1);
    }
    let server = split.then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores - 1)
            .on_thread_start(move || pin_to_cores(1..cores))
            .enable_all()
            .build()
            .unwrap()
    });
    let client = client.enable_all().build().unwrap();
    if spin {
        client.spawn(busy_poll());
    }
    client.block_on(run(o, server.as_ref().map(|r| r.handle().clone())));
    let failed = FAILED_REQUESTS.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("load: {failed} requests failed (non-2xx or a broken connection)");
        std::process::exit(1);
    }
}

/// Keeps the client's one worker out of `epoll_wait`'s sleep: a yielding task makes the
/// runtime poll its reactor without blocking, over and over, so an answer finds the client
/// awake.
async fn busy_poll() {
    loop {
        tokio::task::yield_now().await;
    }
}

/// Pins the calling thread (and the threads it starts from now on) to `cores`.
fn pin_to_cores(cores: std::ops::Range<usize>) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity read and
    // write only that set, which lives for the whole call.
    let status = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for core in cores.clone() {
            libc::CPU_SET(core, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    let error = std::io::Error::last_os_error();
    assert_eq!(status, 0, "pinning to cores {cores:?}: {error}");
}

/// Starts a server: on the server runtime when there is one, so its listener and connections
/// live on that runtime's reactor and workers.
async fn start<T: Send + 'static>(
    server: &Option<tokio::runtime::Handle>,
    setup: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match server {
        Some(runtime) => runtime.spawn(setup).await.unwrap(),
        None => setup.await,
    }
}

async fn run(o: Options, server: Option<tokio::runtime::Handle>) {
    let mut _mock = None;
    let brokers = match std::env::var("GATEHOUSE_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ => {
            let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
            let b = cluster.bootstrap_servers();
            _mock = Some(cluster);
            b
        }
    };
    println!(
        "requests ≤ {} per scenario, ≤ {} s, {} connections, Kafka {brokers}, cores {}",
        o.requests,
        o.seconds,
        o.connections,
        match o.placement {
            Placement::Shared => "shared by client and servers",
            Placement::Split => "split: client on core 0, servers on the others",
        }
    );
    if o.client_wait == ClientWait::Spin {
        println!("the client busy-polls its core (--client-wait spin)");
    }
    println!(
        "| scenario | requests | per second | vs baseline | p50 ms | p99 ms | CPU µs/request | machine CPU µs/request | server cores CPU µs/request | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");

    let (addr, state) = start(&server, front_door(brokers.clone())).await;
    let bare_addr = start(&server, bare_hyper()).await;
    let gate = Bytes::from(json!({"user": {"userID": "user-1", "email": "a@example.com", "country": "US"}, "gateName": "gate_0"}).to_string());
    warm_up(addr, &gate, &o).await;
    let bare = drive(bare_addr, "/", &[], Bytes::from_static(b"{}"), &o).await;
    print("bare hyper (baseline)", &bare, None, 1);
    let check = drive(
        addr,
        "/v1/check_gate",
        &[("statsig-api-key", SERVER_KEY)],
        gate,
        &o,
    )
    .await;
    print(
        "check_gate + exposure to Kafka",
        &check,
        Some(bare.per_second()),
        1,
    );
    match o.scenario {
        Scenario::CheckGate => return,
        Scenario::Latency => {}
        Scenario::All => batches(addr, &state, &brokers, bare.per_second(), &o).await,
    }
    open_loop(addr, bare_addr, check.per_second(), bare.per_second(), &o).await;
}

/// `check_gate` and `log_event` traffic for `--warmup-seconds` each, not measured: a freshly
/// started broker JIT-compiles its produce path under the first load (5-6 µs of broker CPU
/// per exposure in the first seconds against 1-2 µs once warm), which belongs to no
/// scenario.
async fn warm_up(addr: std::net::SocketAddr, gate: &Bytes, o: &Options) {
    if o.warmup_seconds == 0 {
        return;
    }
    let warm = Options {
        requests: u64::MAX,
        seconds: o.warmup_seconds,
        ..*o
    };
    let key = [("statsig-api-key", SERVER_KEY)];
    drive(addr, "/v1/check_gate", &key, gate.clone(), &warm).await;
    drive(addr, "/v1/log_event", &key, log_event_batch(), &warm).await;
}

/// A `log_event` body of 100 events.
fn log_event_batch() -> Bytes {
    let event = json!({"eventName": "purchase", "value": 9.99, "time": 1_767_225_600_000_i64,
                       "metadata": {"sku": "a-1", "currency": "EUR"}, "user": {"userID": "user-1"}});
    Bytes::from(
        json!({"events": vec![event; 100], "statsigMetadata": {"sdkType": "load"}}).to_string(),
    )
}

/// `initialize` and `log_event` closed loop, and the raw producer's ceiling.
async fn batches(
    addr: std::net::SocketAddr,
    state: &AppState,
    brokers: &str,
    bare_per_second: f64,
    o: &Options,
) {
    let init = Bytes::from(
        json!({"user": {"userID": "user-1", "customIDs": {"stableID": "s-1"}}, "hash": "djb2"})
            .to_string(),
    );
    let init_run = drive(
        addr,
        "/v1/initialize",
        &[("statsig-api-key", CLIENT_KEY)],
        init,
        o,
    )
    .await;
    // The ruleset's body, served as serialized (and gzipped) at publish time.
    let specs = state.rules.get().unwrap();
    let spec_count: usize = [SpecKind::Gate, SpecKind::Config, SpecKind::Layer]
        .into_iter()
        .map(|kind| specs.ruleset.names(kind).count())
        .sum();
    let name = format!("initialize ({spec_count} specs)");
    print(&name, &init_run, Some(bare_per_second), 1);
    for (accept, size) in [
        ("identity", specs.bodies.v1.json.len()),
        ("gzip", specs.bodies.v1.gzip.len()),
    ] {
        let headers = [("statsig-api-key", SERVER_KEY), ("accept-encoding", accept)];
        let body = Bytes::from_static(b"{}");
        let run = drive(addr, "/v1/download_config_specs", &headers, body, o).await;
        let name = format!("download_config_specs v1, {accept} ({} kB)", size / 1000);
        print(&name, &run, Some(bare_per_second), 1);
    }

    let batch = log_event_batch();
    let events_opts = Options {
        requests: o.requests / 100,
        ..*o
    };
    let log = drive(
        addr,
        "/v1/log_event",
        &[("statsig-api-key", SERVER_KEY)],
        batch,
        &events_opts,
    )
    .await;
    // The envelope a logged event becomes, for a same-size raw producer run.
    let sample = serde_json::to_vec(&json!({"schema_version": 1, "event_id": "00000000-0000-4000-8000-000000000000",
        "event_name": "purchase", "event_time_ms": 1_767_225_600_000_i64, "received_at_ms": 1_767_225_600_000_i64,
        "key_id": "0123456789ab", "sdk_type": "load", "unit_id_type": "userID", "unit_id": "user-1",
        "user": {"userID": "user-1"}, "value": 9.99, "metadata": {"sku": "a-1", "currency": "EUR"}})).unwrap();
    let raw_n = (o.requests as usize).min(500_000);
    let b = brokers.to_owned();
    let ceiling = tokio::task::spawn_blocking(move || raw_producer(&b, raw_n, &sample))
        .await
        .unwrap();
    println!(
        "| raw librdkafka producer (baseline), events | {raw_n} | {ceiling:.0} | — | — | — | — | — | — | 0 |"
    );
    print(
        "log_event, 100-event batches, events",
        &log,
        Some(ceiling),
        100,
    );
    let sink = state.events.as_ref().unwrap();
    println!(
        "\nproduced {} failed {} exposures dropped {}",
        sink.produced(),
        sink.failed(),
        sink.exposures_dropped.load(Ordering::Relaxed)
    );
}

/// Latency at a fixed share of the `check_gate` peak, next to the bare server twice: at the
/// same rate, and at the same share of its own peak (at the same rate it has CPU to spare, so
/// the second shows what this client and these cores give any server at that load); then the
/// soak.
async fn open_loop(
    addr: std::net::SocketAddr,
    bare_addr: std::net::SocketAddr,
    peak: f64,
    bare_peak: f64,
    o: &Options,
) {
    let share = o.open_loop_percent / 100.0;
    let rate = share * peak;
    let window = Duration::from_secs(o.seconds);
    let gate_body = Bytes::from(json!({"user": {"userID": "user-1", "email": "a@example.com", "country": "US"}, "gateName": "gate_0"}).to_string());
    println!(
        "\nopen loop at {}% of each server's closed-loop peak, {} s:\n",
        o.open_loop_percent, o.seconds
    );
    println!(
        "| scenario | rate/s | requests | p50 ms | p99 ms | p99.9 ms | client pick-up p50 / p99 ms | pacer late p99 ms | CPU µs/request | server cores CPU µs/request | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let gate_key = &[("statsig-api-key", SERVER_KEY)][..];
    for (name, target, path, headers, rate) in [
        (
            "bare hyper, same rate (baseline)",
            bare_addr,
            "/",
            &[][..],
            rate,
        ),
        (
            "check_gate + exposure to Kafka",
            addr,
            "/v1/check_gate",
            gate_key,
            rate,
        ),
        (
            "bare hyper, same share of its peak (baseline)",
            bare_addr,
            "/",
            &[][..],
            share * bare_peak,
        ),
    ] {
        let (cpu_before, server_before) = (cpu_time(), server_cores_cpu_time());
        let run = drive_at_rate(
            target,
            path,
            headers,
            gate_body.clone(),
            rate,
            o.connections,
            window,
            o.client_wait,
            || {},
        )
        .await;
        let (h, pick_up) = (&run.latency, &run.pick_up);
        let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / h.count().max(1) as f64;
        let cpu_us = per_request(cpu_time().saturating_sub(cpu_before));
        let server_us = match o.placement {
            Placement::Split => {
                format!(
                    "{:.1}",
                    per_request(server_cores_cpu_time().saturating_sub(server_before))
                )
            }
            Placement::Shared => "—".into(),
        };
        println!(
            "| {name} | {rate:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} | {:.2} | {cpu_us:.1} | {server_us} | {} |",
            h.count(),
            h.percentile(0.5),
            h.percentile(0.99),
            h.percentile(0.999),
            pick_up.percentile(0.5),
            pick_up.percentile(0.99),
            run.pacer_late.percentile(0.99),
            run.errors
        );
    }
    if o.soak_seconds > 0 {
        let mut samples = Vec::new();
        let soak = drive_at_rate(
            addr,
            "/v1/check_gate",
            &[("statsig-api-key", SERVER_KEY)],
            gate_body.clone(),
            rate,
            o.connections,
            Duration::from_secs(o.soak_seconds),
            o.client_wait,
            || samples.push(rss_mib()),
        )
        .await;
        let minute = samples.len().min(60);
        let (first, last) = (samples[minute - 1], *samples.last().unwrap());
        let peak = samples.iter().cloned().fold(0.0, f64::max);
        println!(
            "\nsoak: check_gate at {rate:.0}/s for {} s: {} requests, {} errors, p99 {:.2} ms; \
             RSS (client + server) after 1 min {first:.1} MiB, at the end {last:.1} MiB, peak {peak:.1} MiB",
            o.soak_seconds,
            soak.latency.count(),
            soak.errors,
            soak.latency.percentile(0.99)
        );
    }
}
