//! `gatehouse`: the command-line entry point.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use ingest::http::{serve, AppState, Limits};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Self-hosted, Statsig-compatible feature gates and experiments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text`, or as `json` (one object per line) for a log pipeline.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// mimalloc rather than glibc malloc: a request allocates and frees small blocks on whichever
/// worker runs it, and glibc's arenas made those frees contend (futex wakes and
/// `malloc_consolidate` in the check_gate profile; BENCHMARKS.md has the before and after).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Subcommand)]
enum Command {
    /// Run the front door (HTTP API) alone.
    Serve(ServeArgs),
    /// Run the Parquet sink alone: a Kafka consumer-group member writing the exposures and
    /// events topics to Parquet (run several with one --group to share the partitions).
    Sink {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        sink: SinkArgs,
        /// Serve the sink's Prometheus metrics (and /healthz) on this address.
        #[arg(long, env = "GATEHOUSE_SINK_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
    },
    /// Analyze one experiment or gate over the Parquet tables: units per group, sample
    /// ratio mismatch, and a metric per group with lift versus control.
    Analyze(AnalyzeArgs),
    /// The whole thing on one machine: front door + embedded Kafka + Parquet sink.
    /// Demo keys `secret-dev` / `client-dev` / `console-dev` unless keys are given.
    Up {
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        sink: SinkArgs,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Statsig-format specs file (download_config_specs JSON, v1 or v2 shape); watched for
    /// changes. `up` defaults to the demo specs (docs/examples/specs.json, written to
    /// DATA_DIR/demo/specs.json).
    #[arg(long, env = "GATEHOUSE_SPECS")]
    specs: Option<PathBuf>,
    /// Directory of ID lists (the lists `in_segment_list` conditions name): one file per
    /// list, named as the list, one unit id per line; dot-files are ignored. Watched like
    /// the specs file, and served to server SDKs (`get_id_lists`). `up` with the demo specs
    /// defaults to the demo list, written to DATA_DIR/demo/id_lists.
    #[arg(long, env = "GATEHOUSE_ID_LISTS")]
    id_lists: Option<PathBuf>,
    /// Server secret key (secret-…); repeatable.
    #[arg(
        long = "server-key",
        env = "GATEHOUSE_SERVER_KEYS",
        value_delimiter = ','
    )]
    server_keys: Vec<String>,
    /// Client key (client-…); repeatable.
    #[arg(
        long = "client-key",
        env = "GATEHOUSE_CLIENT_KEYS",
        value_delimiter = ','
    )]
    client_keys: Vec<String>,
    /// Client key (client-…) that may also download the whole ruleset, as Statsig's
    /// `client_download_config_specs` scope allows: for client SDKs that evaluate on the
    /// device (`@statsig/js-on-device-eval-client`); repeatable.
    #[arg(
        long = "client-specs-key",
        env = "GATEHOUSE_CLIENT_SPECS_KEYS",
        value_delimiter = ','
    )]
    client_specs_keys: Vec<String>,
    /// Console key (console-…); repeatable.
    #[arg(
        long = "console-key",
        env = "GATEHOUSE_CONSOLE_KEYS",
        value_delimiter = ','
    )]
    console_keys: Vec<String>,
    /// Keep the console API's state (keys, rules, audit log) in this directory: one front
    /// door. `up` defaults to <data-dir>/console.
    #[arg(long, env = "GATEHOUSE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Keep the console API's state in this compacted Kafka topic, shared by every front
    /// door that names it (needs --kafka-brokers).
    #[arg(long, env = "GATEHOUSE_STATE_TOPIC")]
    state_topic: Option<String>,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// How often the specs file and the ID lists are checked for changes, in ms.
    #[arg(long, env = "GATEHOUSE_SPECS_POLL_MS", default_value_t = 1000)]
    specs_poll_ms: u64,
    /// Send an exposure identical to one sent less than this many seconds ago (same key,
    /// unit, entity, rule, result) only once; 0: off.
    #[arg(long, env = "GATEHOUSE_EXPOSURE_DEDUPE_SECS", default_value_t = 0)]
    exposure_dedupe_secs: u64,
    /// Fingerprints the exposure dedupe remembers at most (about 100 bytes each).
    #[arg(
        long,
        env = "GATEHOUSE_EXPOSURE_DEDUPE_MAX_ENTRIES",
        default_value_t = 1_000_000
    )]
    exposure_dedupe_max_entries: usize,
    /// Largest request body accepted as sent (compressed or not), in bytes; larger: 413.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_BODY_BYTES",
        default_value_t = Limits::default().max_body
    )]
    max_body_bytes: usize,
    /// Largest request body once decompressed, in bytes (gzip and zstd bombs stop here; 413).
    #[arg(
        long,
        env = "GATEHOUSE_MAX_DECODED_BODY_BYTES",
        default_value_t = Limits::default().max_decoded
    )]
    max_decoded_body_bytes: usize,
    /// Seconds a client may be silent: a connection with no request for 1–2 times this long
    /// is closed (idle keep-alive, or a head never finished); a body not received within it
    /// gets 408.
    #[arg(
        long,
        env = "GATEHOUSE_READ_TIMEOUT_SECS",
        default_value_t = Limits::default().read_timeout.as_secs()
    )]
    read_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog until one closes.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_CONNECTIONS",
        default_value_t = Limits::default().max_connections
    )]
    max_connections: usize,
    /// Page origins browsers may call the SDK endpoints (/v1, /v2) from: `*` for any (client
    /// keys are public), a list such as https://app.example.com, or empty for none.
    #[arg(
        long,
        env = "GATEHOUSE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    cors_origins: Vec<String>,
}

#[derive(clap::Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers; absent (serve, up): an embedded in-process Kafka
    /// (librdkafka's mock cluster, nothing persisted) for demos.
    #[arg(long, env = "GATEHOUSE_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// A properties file of librdkafka connection settings for every Kafka client (`key=value`
    /// lines: security.protocol, sasl.*, ssl.*, client.id, socket.*...), e.g. SASL over TLS
    /// for a managed cluster; settings Gatehouse chooses itself (acks, idempotence...) are
    /// refused. Needs --kafka-brokers.
    #[arg(long, env = "GATEHOUSE_KAFKA_CONFIG")]
    kafka_config: Option<PathBuf>,
    /// Topic for exposures.
    #[arg(long, env = "GATEHOUSE_EXPOSURES_TOPIC", default_value = events::EXPOSURES_TOPIC)]
    exposures_topic: String,
    /// Topic for custom events.
    #[arg(long, env = "GATEHOUSE_EVENTS_TOPIC", default_value = events::EVENTS_TOPIC)]
    events_topic: String,
}

impl KafkaArgs {
    /// What every Kafka client of the process starts from: `brokers` and the settings of
    /// --kafka-config.
    fn connection(&self, brokers: &str) -> Result<ClientConfig, String> {
        match &self.kafka_config {
            Some(path) => ingest::kafka_connection::with_settings_file(brokers, path),
            None => Ok(ingest::kafka_connection::connection(brokers)),
        }
    }
}

#[derive(clap::Args)]
struct SinkArgs {
    /// Root directory of the Parquet tables (exposures/, events/, dead_letters/).
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Consumer group of the sink processes.
    #[arg(long, env = "GATEHOUSE_SINK_GROUP", default_value = "gatehouse-sink")]
    group: String,
    /// Publish a file at about this size (MiB)...
    #[arg(long, env = "GATEHOUSE_SINK_MAX_FILE_MB", default_value_t = 128)]
    max_file_mb: u64,
    /// ... or at this many rows ...
    #[arg(
        long,
        env = "GATEHOUSE_SINK_MAX_FILE_RECORDS",
        default_value_t = 4_000_000
    )]
    max_file_records: u64,
    /// ... or this many seconds after it was started (the longest data stays unpublished).
    #[arg(long, env = "GATEHOUSE_SINK_MAX_FILE_AGE_SECS", default_value_t = 60)]
    max_file_age_secs: u64,
    /// Files open at once (partition × table × hour); at the cap the least recently written
    /// is published early. Keep above 2 × partitions owned × hours receiving events.
    #[arg(long, env = "GATEHOUSE_SINK_MAX_OPEN_FILES", default_value_t = 512)]
    max_open_files: usize,
    /// Memory for rows not yet on disk, all files together (MiB); above it the biggest
    /// files write their row groups out early.
    #[arg(long, env = "GATEHOUSE_SINK_MAX_BUFFERED_MB", default_value_t = 256)]
    max_buffered_mb: usize,
    /// Events up to this many hours late go to their event hour; later ones to the hour
    /// they were received.
    #[arg(long, env = "GATEHOUSE_SINK_MAX_LATENESS_HOURS", default_value_t = 72)]
    max_lateness_hours: u64,
    /// How long a silent sink keeps its partitions before the group moves them (ms).
    #[arg(
        long,
        env = "GATEHOUSE_SINK_SESSION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    session_timeout_ms: u64,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// The experiment, dynamic config or gate (its `entity_name`).
    name: String,
    /// Root directory of the Parquet tables.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// First day, YYYY-MM-DD (UTC, inclusive).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC, inclusive).
    #[arg(long)]
    to: Option<String>,
    /// Event name for the metric (conversion and value per exposed unit).
    #[arg(long)]
    event: Option<String>,
    /// Control group (default: Control, or fail for a gate, else the first group).
    #[arg(long)]
    control: Option<String>,
    /// Expected split for the sample-ratio check, e.g. Control=50,Test=50 (default: equal).
    #[arg(long, value_delimiter = ',')]
    split: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report (with a chart) to this file.
    #[arg(long)]
    html: Option<PathBuf>,
}

fn analyze(args: AnalyzeArgs) -> Result<(), String> {
    let split = if args.split.is_empty() {
        None
    } else {
        let parse = |pair: &String| {
            let (group, weight) = pair.split_once('=')?;
            Some((
                group.to_owned(),
                weight.parse::<f64>().ok().filter(|w| *w > 0.0)?,
            ))
        };
        Some(
            args.split
                .iter()
                .map(|p| parse(p).ok_or(format!("--split {p:?}: expected GROUP=WEIGHT")))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    for day in [&args.from, &args.to].into_iter().flatten() {
        if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
            return Err(format!("{day:?}: expected a date YYYY-MM-DD"));
        }
    }
    let report = sink::analyze::analyze(&sink::analyze::AnalyzeOptions {
        root: args.data_dir,
        entity: args.name,
        from: args.from,
        to: args.to,
        event: args.event,
        control: args.control,
        split,
    })?;
    if let Some(path) = &args.html {
        std::fs::write(path, sink::analyze::render_html(&report))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", sink::analyze::render_text(&report));
    }
    Ok(())
}

impl SinkArgs {
    fn config(&self) -> sink::SinkConfig {
        sink::SinkConfig {
            max_file_bytes: self.max_file_mb << 20,
            max_file_records: self.max_file_records,
            max_file_age: Duration::from_secs(self.max_file_age_secs),
            max_open_files: self.max_open_files.max(1),
            max_buffered_bytes: self.max_buffered_mb.max(1) << 20,
            max_lateness: Duration::from_secs(self.max_lateness_hours * 3600),
            ..sink::SinkConfig::new(&self.data_dir)
        }
    }

    /// Starts the sink on its own thread; it stops, publishing its open files, when `stop`
    /// is set.
    fn spawn(
        &self,
        connection: &ClientConfig,
        kafka: &KafkaArgs,
        stop: Arc<AtomicBool>,
        stats: Arc<Mutex<sink::Stats>>,
    ) -> std::thread::JoinHandle<Result<sink::Stats, String>> {
        let options = sink::ConsumerOptions {
            connection: connection.clone(),
            group_id: self.group.clone(),
            topics: vec![kafka.exposures_topic.clone(), kafka.events_topic.clone()],
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            stats,
        };
        let config = self.config();
        std::thread::Builder::new()
            .name("sink".into())
            .spawn(move || sink::run(&options, config, &stop))
            .expect("spawning the sink thread")
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // Logs go to stderr: stdout carries data (`analyze --json`). Colours only on a terminal:
    // escape codes in a log file or pipeline are noise.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Command::Serve(args) => serve_front_door(args, None).await,
        Command::Sink {
            kafka,
            sink,
            metrics_listen,
        } => run_sink(kafka, sink, metrics_listen).await,
        Command::Up { serve, sink } => serve_front_door(serve, Some(sink)).await,
        Command::Analyze(args) => analyze(args),
    };
    if let Err(error) = result {
        tracing::error!("{error}");
        std::process::exit(1);
    }
}

/// Creates the two topics with the broker's default partitions and replication, unless
/// they exist.
async fn ensure_topics(connection: &ClientConfig, kafka: &KafkaArgs) -> Result<(), String> {
    let topics = [&kafka.exposures_topic, &kafka.events_topic]
        .map(|name| NewTopic::new(name, -1, TopicReplication::Fixed(-1)));
    ingest::producer::create_topics(connection, &topics).await
}

/// The embedded Kafka (librdkafka's in-process mock cluster) with both topics created.
fn embedded_kafka(
    kafka: &KafkaArgs,
) -> Result<MockCluster<'static, DefaultProducerContext>, String> {
    let cluster = MockCluster::new(1).map_err(|e| format!("embedded Kafka: {e}"))?;
    for topic in [&kafka.exposures_topic, &kafka.events_topic] {
        cluster
            .create_topic(topic, 4, 1)
            .map_err(|e| format!("embedded Kafka topic {topic}: {e}"))?;
    }
    tracing::warn!(
        brokers = %cluster.bootstrap_servers(),
        "no --kafka-brokers: using an embedded in-memory Kafka (not persisted)"
    );
    Ok(cluster)
}

/// Runs the front door until SIGTERM/SIGINT; with `sink` (`up`), a sink beside it, stopped
/// after the front door has drained and flushed so that the last events reach Parquet.
async fn serve_front_door(mut args: ServeArgs, sink: Option<SinkArgs>) -> Result<(), String> {
    let demo = sink.is_some();
    let cors = ingest::cors::CorsOrigins::parse(&args.cors_origins)?;
    for (flag, value) in [
        ("--max-body-bytes", args.max_body_bytes),
        ("--max-decoded-body-bytes", args.max_decoded_body_bytes),
        ("--read-timeout-secs", args.read_timeout_secs as usize),
        ("--max-connections", args.max_connections),
    ] {
        if value == 0 {
            return Err(format!("{flag} must be above 0"));
        }
    }
    let limits = Limits {
        max_body: args.max_body_bytes,
        max_decoded: args.max_decoded_body_bytes,
        read_timeout: Duration::from_secs(args.read_timeout_secs),
        max_connections: args.max_connections,
    };
    // The embedded Kafka lives as long as the server.
    let mut _embedded = None;
    let connection = match &args.kafka.kafka_brokers {
        Some(brokers) => {
            let connection = args.kafka.connection(brokers)?;
            // `up` on a real cluster: the sink subscribes before the first event would
            // auto-create the topics, so create them (broker defaults) first.
            if demo {
                ensure_topics(&connection, &args.kafka).await?;
            }
            connection
        }
        None if args.kafka.kafka_config.is_some() => {
            return Err("--kafka-config needs --kafka-brokers: the embedded Kafka takes no connection settings".into());
        }
        None => {
            let cluster = embedded_kafka(&args.kafka)?;
            let connection = ingest::kafka_connection::connection(&cluster.bootstrap_servers());
            _embedded = Some(cluster);
            connection
        }
    };
    if let (Some(sink), None, None) = (&sink, &args.state_dir, &args.state_topic) {
        args.state_dir = Some(sink.data_dir.join("console"));
    }
    let has_state = args.state_dir.is_some() || args.state_topic.is_some();
    let specs = match (args.specs.take(), &sink) {
        (Some(specs), _) => Some(specs),
        (None, Some(sink)) => {
            let (specs, id_lists) = demo_files(&sink.data_dir)?;
            tracing::info!(specs = %specs.display(), "serving the demo specs: edit them to see a hot swap");
            // The demo specs' `new_checkout` lets in the demo ID list's beta testers.
            args.id_lists.get_or_insert(id_lists);
            Some(specs)
        }
        (None, None) if has_state => None,
        (None, None) => {
            return Err(
                "--specs (or GATEHOUSE_SPECS) is required, unless rules come from the console (--state-dir or --state-topic)".into(),
            )
        }
    };
    if demo && args.server_keys.is_empty() && args.client_keys.is_empty() {
        tracing::warn!("no keys given: using the demo keys secret-dev, client-dev and console-dev");
        args.server_keys.push("secret-dev".into());
        args.console_keys.push("console-dev".into());
        args.client_keys.push("client-dev".into());
    }
    let events = ingest::producer::EventSink::connect(
        &connection,
        &args.kafka.exposures_topic,
        &args.kafka.events_topic,
    )
    .map_err(|e| format!("Kafka producer: {e}"))?;
    let sink_stats = Arc::new(Mutex::new(sink::Stats::default()));
    let dedupe = (args.exposure_dedupe_secs > 0).then(|| {
        ingest::dedupe::ExposureDedupe::new(
            Duration::from_secs(args.exposure_dedupe_secs),
            args.exposure_dedupe_max_entries,
        )
    });
    let keys = Arc::new(ingest::keys::KeyStore::default());
    // A console key given at start-up is the bootstrap administrator.
    for (list, flag, expected, scopes) in [
        (&args.server_keys, "--server-key", "secret-", &[][..]),
        (&args.client_keys, "--client-key", "client-", &[]),
        (
            &args.client_specs_keys,
            "--client-specs-key",
            "client-",
            &["client_download_config_specs"],
        ),
        (
            &args.console_keys,
            "--console-key",
            "console-",
            &["omni_read_write", "can_access_keys"],
        ),
    ] {
        for key in list.iter().filter(|k| !k.is_empty()) {
            if !key.starts_with(expected) {
                return Err(format!("{flag}: a key must start with {expected}"));
            }
            let record = keys.insert(key, scopes.iter().map(|s| s.to_string()), None)?;
            tracing::info!(key_id = %record.id, kind = ?record.kind, "key loaded");
        }
    }
    let rules = Arc::new(ingest::rules::LiveRules::default());
    if let Some(dir) = &args.id_lists {
        rules.load_id_lists(dir)?;
    }
    if let Some(specs) = &specs {
        rules.load_file(specs)?;
    }
    let stop_control = Arc::new(AtomicBool::new(false));
    let control = match (&args.state_dir, &args.state_topic) {
        (Some(_), Some(_)) => return Err("give --state-dir or --state-topic, not both".into()),
        (Some(dir), None) => Some(ingest::control::Control::open_dir(
            dir,
            keys.clone(),
            rules.clone(),
        )?),
        (None, Some(topic)) => {
            if _embedded.is_some() {
                return Err("--state-topic needs a real Kafka (--kafka-brokers)".into());
            }
            Some(
                ingest::control::Control::open_kafka(
                    &connection,
                    topic,
                    keys.clone(),
                    rules.clone(),
                    stop_control.clone(),
                )
                .await?,
            )
        }
        (None, None) => None,
    };
    let state = Arc::new(AppState {
        keys,
        rules,
        control,
        events: Some(Arc::new(events)),
        sink_stats: demo.then(|| sink_stats.clone()),
        dedupe,
        limits,
        cors,
        ..AppState::default()
    });
    if let Some(dedupe) = &state.dedupe {
        let (state, window) = (state.clone(), dedupe.window());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(window);
            loop {
                every.tick().await;
                if let Some(dedupe) = &state.dedupe {
                    dedupe.sweep(ingest::rules::now_ms());
                }
            }
        });
    }
    if let Some(specs) = specs {
        tokio::spawn(
            state
                .rules
                .clone()
                .watch(specs, Duration::from_millis(args.specs_poll_ms)),
        );
    }
    if let Some(dir) = args.id_lists.take() {
        tokio::spawn(
            state
                .rules
                .clone()
                .watch_id_lists(dir, Duration::from_millis(args.specs_poll_ms)),
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(addr = %args.listen, "front door listening");

    // `up`: the sink reads what the front door writes, from the same (maybe embedded) Kafka.
    let stop_sink = Arc::new(AtomicBool::new(false));
    let sink = sink.map(|sink| {
        tracing::info!(dir = %sink.data_dir.display(), "sink writing Parquet");
        sink.spawn(&connection, &args.kafka, stop_sink.clone(), sink_stats)
    });

    // A producer's fatal error stops the door as a signal does, and the exit status says
    // so: nothing it acknowledges could reach Kafka any more, and a restart recovers.
    let producer_failed = {
        let events = state.events.clone();
        async move {
            match events {
                Some(events) => {
                    let error = events.fatal().await;
                    tracing::error!(%error, "the Kafka producer failed for good; stopping");
                }
                None => std::future::pending().await,
            }
        }
    };
    let stop = async {
        tokio::select! {
            () = shutdown_signal() => {}
            () = producer_failed => {}
        }
    };
    serve(listener, state.clone(), stop).await;
    stop_control.store(true, Ordering::Relaxed);
    let mut failed = None;
    if let Some(events) = &state.events {
        let events = events.clone();
        failed = events.fatal_error();
        let _ = tokio::task::spawn_blocking(move || events.flush(Duration::from_secs(30))).await;
    }
    tracing::info!("front door stopped");
    let sink_outcome = match sink {
        Some(sink) => {
            // The sink reads on to the end of its partitions before it publishes and stops.
            stop_sink.store(true, Ordering::Relaxed);
            sink_outcome(tokio::task::spawn_blocking(move || sink.join()).await)
        }
        None => Ok(()),
    };
    match failed {
        Some(error) => Err(format!("the Kafka producer failed for good: {error}")),
        None => sink_outcome,
    }
}

/// `/metrics` (the sink's counters, Prometheus text) and `/healthz` for `gatehouse sink`.
async fn serve_sink_metrics(listener: tokio::net::TcpListener, stats: Arc<Mutex<sink::Stats>>) {
    use http_body_util::Full;
    use hyper::{body::Bytes, Response, StatusCode};
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                ingest::http::after_accept_error(&error).await;
                continue;
            }
        };
        let stats = stats.clone();
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let body = match request.uri().path() {
                    "/metrics" => Some(
                        stats
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .render_prometheus(),
                    ),
                    "/healthz" => Some("ok\n".to_owned()),
                    _ => None,
                };
                let response = match body {
                    Some(body) => Response::new(Full::new(Bytes::from(body))),
                    None => {
                        let mut r = Response::new(Full::new(Bytes::from_static(
                            b"{\"error\":\"not found\"}",
                        )));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    }
                };
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

type SinkJoin = Result<std::thread::Result<Result<sink::Stats, String>>, tokio::task::JoinError>;

fn sink_outcome(joined: SinkJoin) -> Result<(), String> {
    match joined {
        Ok(Ok(result)) => result.map(|_| ()),
        _ => Err("the sink thread panicked".into()),
    }
}

/// `gatehouse sink`: consumes until SIGTERM/SIGINT, then publishes its open files.
async fn run_sink(
    kafka: KafkaArgs,
    sink: SinkArgs,
    metrics_listen: Option<SocketAddr>,
) -> Result<(), String> {
    let brokers = kafka
        .kafka_brokers
        .as_deref()
        .ok_or("the sink needs --kafka-brokers (GATEHOUSE_KAFKA_BROKERS)")?;
    let connection = kafka.connection(brokers)?;
    let stats = Arc::new(Mutex::new(sink::Stats::default()));
    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, "sink metrics on /metrics");
        tokio::spawn(serve_sink_metrics(listener, stats.clone()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handle = sink.spawn(&connection, &kafka, stop.clone(), stats);
    let mut handle = tokio::task::spawn_blocking(move || handle.join());
    tokio::select! {
        // Ended on its own: a fatal error.
        joined = &mut handle => return sink_outcome(joined),
        _ = shutdown_signal() => {}
    }
    stop.store(true, Ordering::Relaxed);
    sink_outcome(handle.await)
}

/// The demo specs `up` serves when no --specs is given, built in so that `up` runs from any
/// directory: an installed binary, a container, a checkout's subfolder.
const DEMO_SPECS: &str = include_str!("../../docs/examples/specs.json");

/// The demo ID list the demo specs' `new_checkout` gate names.
const DEMO_BETA_TESTERS: &str = include_str!("../../docs/examples/id_lists/beta_testers");

/// Writes the demo specs and ID list under `data_dir/demo` unless they are there already
/// (they are the user's to edit, and are watched like any specs), and returns their paths:
/// the specs file and the ID lists directory.
fn demo_files(data_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let demo = data_dir.join("demo");
    let specs = demo.join("specs.json");
    let id_lists = demo.join("id_lists");
    for (path, text) in [
        (&specs, DEMO_SPECS),
        (&id_lists.join("beta_testers"), DEMO_BETA_TESTERS),
    ] {
        if !path.exists() {
            let dir = path.parent().expect("a file under data_dir");
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(path, text))
                .map_err(|e| format!("writing the demo {}: {e}", path.display()))?;
        }
    }
    Ok((specs, id_lists))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
