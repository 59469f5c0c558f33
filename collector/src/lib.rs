//! Tollgate's collector: receives trace summaries from the gateway filter over gRPC, stores them
//! (embedded SQLite by default, ClickHouse at scale), and serves them through a versioned query
//! API.
//!
//! Lifecycle: [`run`] starts the gRPC ingest server, the HTTP API and the retention task under one
//! `CancellationToken` and `TaskTracker`; cancelling the token stops accepting work, lets
//! in-flight batches commit (everything acknowledged is already durable), and returns within
//! `shutdown_timeout_ms`.
//!
//! # Layout
//! - [`anomaly`]: per-tenant anomaly detection and alerting.
//! - [`config`]: file, environment and flags, validated.
//! - [`storage`]: the `Storage` trait, the SQLite and ClickHouse backends, daily rollups.
//! - [`ingest`]: the `tollgate.v1.Collector` gRPC service.
//! - [`api`]: the `/v1` query API (axum) and its OpenAPI document.
//! - [`console`]: the web console's embedded files under `/ui`.
//! - [`keys`]: API keys with roles and tenant scopes.
//! - [`limits`]: per-tenant limits shared by several Envoys (Envoy's rate-limit protocol, Redis).
//! - [`metrics`]: the collector's Prometheus metrics.
//! - [`client`]: the tiny HTTP client of the `query` commands.
//! - [`time`]: RFC 3339 timestamps.

pub mod anomaly;
pub mod api;
pub mod client;
pub mod config;
pub mod console;
pub mod ingest;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod storage;
pub mod time;

use config::{CollectorConfig, StorageConfig};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use storage::sqlite::SqliteStorage;
use storage::Storage;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often old traces are deleted.
const RETENTION_PERIOD: Duration = Duration::from_secs(3600);
/// Alerts waiting for delivery; beyond that they are dropped and counted.
const ALERT_QUEUE: usize = 1024;

/// Addresses the servers actually listen on (ports may have been 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
}

/// Runs the collector until `shutdown` is cancelled. `ready` receives the bound addresses.
pub async fn run(
    config: CollectorConfig,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    config.validate()?;
    match config.storage.clone() {
        StorageConfig::Sqlite { path } => {
            let storage = SqliteStorage::open(&path)
                .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
            let keys = keys::KeyStore::open(&path)?;
            serve(config, storage, Some(Arc::new(keys)), shutdown, ready).await
        }
        StorageConfig::Clickhouse {
            url,
            database,
            keys_path,
            batch_rows,
            flush_interval_ms,
            queue_rows,
        } => {
            let options = storage::clickhouse::WriterOptions {
                batch_rows,
                flush_interval: Duration::from_millis(flush_interval_ms),
                queue_rows,
            };
            let storage =
                storage::clickhouse::ClickHouseStorage::connect_with(&url, &database, options)
                    .await
                    .map_err(|e| anyhow::anyhow!("connecting to ClickHouse at {url}: {e}"))?;
            let ttl = storage
                .set_ttl(config.retention_days)
                .await
                .map_err(|e| anyhow::anyhow!("setting the retention TTL: {e}"))?;
            tracing::info!(url = %url, database = %database, version = ?storage.features().version, retention_ttl = ttl, "ClickHouse storage");
            let keys = keys::KeyStore::open(&keys_path)?;
            serve(config, storage, Some(Arc::new(keys)), shutdown, ready).await
        }
    }
}

/// Runs the collector over an opened storage backend.
pub async fn serve<S: Storage + Clone>(
    config: CollectorConfig,
    storage: S,
    keys: Option<Arc<keys::KeyStore>>,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    if config.ingest_tokens.is_empty() {
        tracing::warn!("no ingest_tokens configured: anyone who reaches the gRPC port can ingest");
    }
    let stored_keys = keys.as_ref().is_some_and(|k| k.any().unwrap_or(false));
    if config.admin_key.is_none() && !stored_keys {
        tracing::warn!("no admin_key and no API keys: the query API is open");
    }
    let metrics = Arc::new(metrics::CollectorMetrics::default());
    let tracker = TaskTracker::new();

    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_listen).await?;
    let http_listener = tokio::net::TcpListener::bind(config.http_listen).await?;
    let bound = Bound {
        grpc: grpc_listener.local_addr()?,
        http: http_listener.local_addr()?,
    };

    // gRPC ingest (+ health)
    let service = ingest::IngestService::new(
        storage.clone(),
        &config.ingest_tokens,
        config.max_concurrent_batches,
        metrics.clone(),
    );
    let server = tollgate_proto::v1::collector_server::CollectorServer::new(service)
        .max_decoding_message_size(config.max_message_bytes);
    let counters = match &config.limits.redis {
        Some(url) => Some(limits::counters::Counters::new(url)?),
        None => None,
    };
    if counters.is_some() {
        tracing::info!("shared limits on (Redis)");
    }
    let limit_service = limits::service::LimitService::new(
        counters.clone(),
        ingest::BearerTokens::new(&config.ingest_tokens),
        storage.clone(),
    );
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<tollgate_proto::v1::collector_server::CollectorServer<ingest::IngestService<S>>>()
        .await;
    let grpc_shutdown = shutdown.clone();
    let incoming = tokio_stream_listener(grpc_listener);
    tracker.spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(server)
            .add_service(
                tollgate_proto::rls::rate_limit_service_server::RateLimitServiceServer::new(
                    limit_service.clone(),
                ),
            )
            .add_service(
                tollgate_proto::v1::limit_ledger_server::LimitLedgerServer::new(limit_service),
            )
            .serve_with_incoming_shutdown(incoming, grpc_shutdown.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });

    // HTTP query API
    let state = Arc::new(api::ApiState {
        storage: storage.clone(),
        admin_key: config
            .admin_key
            .as_ref()
            .map(|k| Sha256::digest(k.as_bytes()).into()),
        keys,
        metrics: metrics.clone(),
        counters,
    });
    let app = api::router(state);
    let http_shutdown = shutdown.clone();
    tracker.spawn(async move {
        let result = axum::serve(http_listener, app)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    // anomaly detection and alerts
    if config.anomaly.enabled {
        let a = &config.anomaly;
        let notices = if a.sinks.is_empty() {
            None
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel(ALERT_QUEUE);
            let notifier = anomaly::sink::Notifier::new(
                storage.clone(),
                a.sinks.clone(),
                a.delivery_attempts,
                Duration::from_millis(a.retry_backoff_ms),
                metrics.clone(),
            );
            tracker.spawn(notifier.run(rx));
            Some(tx)
        };
        let started = time::now_ns();
        let holder = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let settings = a.settings();
        let schedule = anomaly::driver::Schedule {
            grace_ns: i64::try_from(a.grace_seconds.saturating_mul(1_000_000_000))
                .unwrap_or(i64::MAX),
            checkpoint_buckets: a.checkpoint_buckets,
            history_buckets: a.history_buckets,
            hold_ns: i64::try_from(a.hold_seconds.saturating_mul(1_000_000_000))
                .unwrap_or(i64::MAX),
            ..anomaly::driver::Schedule::default()
        };
        // a tick a few times per bucket, between 1 and 10 seconds
        let tick = Duration::from_secs((a.bucket_seconds / 4).clamp(1, 10));
        tracing::info!(holder = %holder, bucket_seconds = a.bucket_seconds, sinks = a.sinks.len(), "anomaly detection on");
        let driver = anomaly::driver::Driver::new(
            storage.clone(),
            settings,
            schedule,
            holder,
            started,
            notices,
            metrics.clone(),
        );
        tracker.spawn(anomaly::driver::run(
            driver,
            Arc::new(anomaly::driver::SystemClock),
            tick,
            shutdown.clone(),
        ));
    }

    // retention
    if config.retention_days > 0 {
        let storage = storage.clone();
        let stop = shutdown.clone();
        let keep = Duration::from_secs(u64::from(config.retention_days) * 86_400);
        tracker.spawn(async move {
            loop {
                // whole UTC days: a trace goes once its day is older than the retention
                let cutoff = std::time::SystemTime::now()
                    .checked_sub(keep)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                let cutoff = cutoff - cutoff.rem_euclid(storage::rollup::DAY_NS);
                match storage.delete_before(cutoff).await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "retention"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retention failed"),
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(RETENTION_PERIOD) => {}
                }
            }
        });
    }
    tracker.close();
    tracing::info!(grpc = %bound.grpc, http = %bound.http, "collector listening");
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    let limit = Duration::from_millis(config.shutdown_timeout_ms);
    if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
        tracing::warn!(
            timeout_ms = config.shutdown_timeout_ms,
            "shutdown timed out"
        );
    }
    Ok(())
}

/// A stream of accepted connections for tonic.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}
