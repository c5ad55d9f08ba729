//! `gatehouse`: the command-line entry point.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ingest::http::{serve, AppState};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Self-hosted, Statsig-compatible feature gates and experiments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the front door (HTTP API) alone.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Statsig-format specs file (download_config_specs JSON, v1 or v2 shape); watched for changes.
    #[arg(long, env = "GATEHOUSE_SPECS")]
    specs: PathBuf,
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
    /// Console key (console-…); repeatable.
    #[arg(
        long = "console-key",
        env = "GATEHOUSE_CONSOLE_KEYS",
        value_delimiter = ','
    )]
    console_keys: Vec<String>,
    /// Kafka bootstrap servers; absent: an embedded in-process Kafka (librdkafka's mock
    /// cluster, nothing persisted) for demos.
    #[arg(long, env = "GATEHOUSE_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Topic for exposures.
    #[arg(long, env = "GATEHOUSE_EXPOSURES_TOPIC", default_value = events::EXPOSURES_TOPIC)]
    exposures_topic: String,
    /// Topic for custom events.
    #[arg(long, env = "GATEHOUSE_EVENTS_TOPIC", default_value = events::EVENTS_TOPIC)]
    events_topic: String,
    /// How often the specs file is checked for changes, in ms.
    #[arg(long, env = "GATEHOUSE_SPECS_POLL_MS", default_value_t = 1000)]
    specs_poll_ms: u64,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let Command::Serve(args) = Cli::parse().command;
    if let Err(error) = run(args).await {
        tracing::error!("{error}");
        std::process::exit(1);
    }
}

async fn run(args: ServeArgs) -> Result<(), String> {
    // The embedded Kafka lives as long as the server.
    let mut _embedded = None;
    let brokers = match &args.kafka_brokers {
        Some(brokers) => brokers.clone(),
        None => {
            let cluster = rdkafka::mocking::MockCluster::new(1)
                .map_err(|e| format!("embedded Kafka: {e}"))?;
            let brokers = cluster.bootstrap_servers();
            tracing::warn!(%brokers, "no --kafka-brokers: using an embedded in-memory Kafka (not persisted)");
            _embedded = Some(cluster);
            brokers
        }
    };
    let sink =
        ingest::producer::EventSink::connect(&brokers, &args.exposures_topic, &args.events_topic)
            .map_err(|e| format!("Kafka producer: {e}"))?;
    let state = Arc::new(AppState {
        events: Some(Arc::new(sink)),
        ..AppState::default()
    });
    for (keys, expected) in [
        (&args.server_keys, "secret-"),
        (&args.client_keys, "client-"),
        (&args.console_keys, "console-"),
    ] {
        for key in keys.iter().filter(|k| !k.is_empty()) {
            if !key.starts_with(expected) {
                return Err(format!(
                    "a key given as {expected}… must start with {expected}"
                ));
            }
            let record = state.keys.insert(key, [], None)?;
            tracing::info!(key_id = %record.id, kind = ?record.kind, "key loaded");
        }
    }
    state.rules.load_file(&args.specs)?;
    tokio::spawn(state.rules.clone().watch(
        args.specs.clone(),
        Duration::from_millis(args.specs_poll_ms),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(addr = %args.listen, "front door listening");
    serve(listener, state.clone(), shutdown_signal()).await;
    if let Some(sink) = &state.events {
        let sink = sink.clone();
        let _ = tokio::task::spawn_blocking(move || sink.flush(Duration::from_secs(30))).await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}
