//! `tollgate-collector`: a thin shell over [`tollgate_collector::run`] — configuration from a
//! file, the environment and flags; logs; Ctrl-C / SIGTERM for a graceful stop.

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tollgate_collector::config::{CollectorConfig, StorageConfig};

/// Receives trace summaries from the Tollgate filter and serves the query API.
#[derive(Parser, Debug)]
#[command(name = "tollgate-collector", version)]
struct Args {
    /// Configuration file (YAML or JSON).
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
    /// gRPC ingest address (overrides the file and TOLLGATE_COLLECTOR_GRPC_LISTEN).
    #[arg(long)]
    grpc_listen: Option<std::net::SocketAddr>,
    /// Query API address.
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// SQLite database file.
    #[arg(long)]
    db: Option<std::path::PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            CollectorConfig::from_yaml(&text).with_context(|| path.display().to_string())?
        }
        None => CollectorConfig::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(a) = args.grpc_listen {
        config.grpc_listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http_listen = a;
    }
    if let Some(db) = args.db {
        config.storage = StorageConfig::Sqlite { path: db };
    }
    config.validate()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        tollgate_collector::run(config, shutdown, None).await
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
