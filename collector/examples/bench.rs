//! Collector benchmarks (docs/benchmarks.md):
//!
//! ```sh
//! cargo run --release -p tollgate-collector --example bench -- ingest [SECONDS] [CLIENTS] [BATCH]
//! cargo run --release -p tollgate-collector --example bench -- query [TRACES]
//! cargo run --release -p tollgate-collector --example bench -- ingest-to ADDR [SECONDS] [CLIENTS] [BATCH]
//! ```
//!
//! `ingest`: the collector in-process on loopback, CLIENTS concurrent gRPC clients sending
//! batches of BATCH realistic summaries (as the filter does) for SECONDS; prints acknowledged
//! summaries per second. `query`: loads TRACES generated summaries (30 days, 200 tenants,
//! 12 models, bursts) into a fresh SQLite store, then times `/v1/usage` and `/v1/traces` over HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a benchmark fails loudly

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tollgate_collector::config::{CollectorConfig, StorageConfig};
use tollgate_collector::storage::sqlite::SqliteStorage;
use tollgate_collector::storage::Storage;
use tollgate_proto::v1::collector_client::CollectorClient;
use tollgate_proto::v1::{
    Action, Direction, Finding, IngestRequest, Outcome, Severity, TraceSummary, Usage,
};

const MODELS: [&str; 12] = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3",
    "o4-mini",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-1",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "llama3",
];
const END: i64 = 1_795_305_600_000_000_000; // 2026-11-22T00:00:00Z

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn summary(rng: &mut Rng, i: u64, start: i64) -> TraceSummary {
    // skewed tenants: a few big ones, a long tail
    let tenant = (rng.below(200) * rng.below(200)) / 200;
    let model = MODELS[(rng.below(12) * rng.below(12) / 12) as usize];
    let input = 200 + rng.below(4000);
    let output = 20 + rng.below(800);
    let latency_ms = 200 + rng.below(4000) as i64;
    let finding = rng.below(20) == 0;
    TraceSummary {
        request_id: format!("req-{i:012}"),
        trace_id: format!("{:032x}", rng.next() as u128 * 7919),
        tenant: format!("tenant-{tenant:03}"),
        tenant_source: "header".into(),
        route: if model.starts_with("claude") {
            "anthropic"
        } else {
            "openai"
        }
        .into(),
        provider: if model.starts_with("claude") {
            "anthropic"
        } else if model.starts_with("gemini") {
            "gemini"
        } else {
            "openai"
        }
        .into(),
        operation: "chat_completions".into(),
        request_model: model.into(),
        response_model: model.into(),
        status_code: if rng.below(100) == 0 { 500 } else { 200 },
        outcome: if finding {
            Outcome::Redacted
        } else {
            Outcome::Allowed
        } as i32,
        start_unix_nanos: start,
        upstream_first_byte_unix_nanos: start + 150_000_000,
        end_unix_nanos: start + latency_ms * 1_000_000,
        stream: rng.below(2) == 0,
        time_to_first_token_nanos: 300_000_000 + rng.below(500) as i64 * 1_000_000,
        usage: Some(Usage {
            input_tokens: input,
            cached_input_tokens: input / 4,
            output_tokens: output,
            ..Usage::default()
        }),
        cost_micro_usd: (input * 2 + output * 8) as i64,
        cost_known: model != "llama3",
        findings: if finding {
            vec![Finding {
                rule_id: "pii.email".into(),
                category: "pii".into(),
                severity: Severity::Medium as i32,
                action: Action::Redact as i32,
                direction: Direction::Request as i32,
                message_index: 1,
                start: 10,
                end: 30,
            }]
        } else {
            Vec::new()
        },
        findings_total: u32::from(finding),
        request_bytes: 2048 + rng.below(30_000),
        response_bytes: 1024 + rng.below(8000),
        user_agent: "OpenAI/Python 3.54.0".into(),
        envoy_node: "gw-1".into(),
        envoy_cluster: "edge".into(),
        ..TraceSummary::default()
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    (
        text.split_whitespace().nth(1).unwrap().parse().unwrap(),
        out.len(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("ingest") => {
            let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
            let clients: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
            let batch: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
            rt.block_on(ingest(secs, clients, batch));
        }
        Some("ingest-to") => {
            // against a collector already running (e.g. pinned to another core)
            let addr: std::net::SocketAddr = args.get(1).expect("ADDR").parse().unwrap();
            let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
            let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
            let batch: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100);
            rt.block_on(load_ingest(addr, secs, clients, batch));
        }
        Some("query") => {
            let n: u64 = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000);
            rt.block_on(query(n));
        }
        Some("query-clickhouse") => {
            // against a running server: bench query-clickhouse http://127.0.0.1:8123 10000000
            let url = args.get(1).expect("URL").clone();
            let n: u64 = args
                .get(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(10_000_000);
            rt.block_on(query_clickhouse(&url, n));
        }
        _ => eprintln!("usage: bench ingest [SECONDS] [CLIENTS] [BATCH] | bench query [TRACES]"),
    }
}

async fn start(db: std::path::PathBuf) -> (tollgate_collector::Bound, CancellationToken) {
    let config = CollectorConfig {
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        storage: StorageConfig::Sqlite { path: db },
        retention_days: 0,
        ..CollectorConfig::default()
    };
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(tollgate_collector::run(config, stop.clone(), Some(tx)));
    (rx.await.unwrap(), stop)
}

async fn ingest(secs: u64, clients: usize, batch: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (bound, stop) = start(dir.path().join("bench.db")).await;
    load_ingest(bound.grpc, secs, clients, batch).await;
    stop.cancel();
}

async fn load_ingest(grpc: std::net::SocketAddr, secs: u64, clients: usize, batch: u64) {
    let acked = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (acked, busy) = (acked.clone(), busy.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = CollectorClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
            let mut i = (c as u64 + 1) * 1_000_000_000;
            while Instant::now() < deadline {
                let summaries: Vec<TraceSummary> = (0..batch)
                    .map(|_| {
                        i += 1;
                        // live traffic: summaries of calls that just ended
                        let at = END - rng.below(60_000) as i64 * 1_000_000;
                        summary(&mut rng, i, at)
                    })
                    .collect();
                match client.ingest(IngestRequest { summaries }).await {
                    Ok(r) => {
                        acked.fetch_add(u64::from(r.into_inner().accepted), Ordering::Relaxed);
                    }
                    Err(e) if e.code() == tonic::Code::Unavailable => {
                        busy.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    let n = acked.load(Ordering::Relaxed);
    println!(
        "ingest: {n} summaries acknowledged in {took:.1} s = {:.0} summaries/s ({clients} clients, batches of {batch}, {} busy replies)",
        n as f64 / took,
        busy.load(Ordering::Relaxed)
    );
}

async fn load<S: Storage>(storage: &S, n: u64, batch: u64) -> f64 {
    let mut rng = Rng(42);
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let rows: Vec<TraceSummary> = (0..batch.min(n - i))
            .map(|_| {
                i += 1;
                // bursts: a quarter of the traffic in 2 % of the time
                let at = if rng.below(4) == 0 {
                    END - (7 * 86_400 + rng.below(50_000)) as i64 * 1_000_000_000
                } else {
                    END - rng.below(30 * 86_400) as i64 * 1_000_000_000
                };
                summary(&mut rng, i, at)
            })
            .collect();
        storage.insert(rows).await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// Start time of the `i`th of `n` summaries arriving in time order over 30 days, with a burst
/// (a quarter of the traffic in 50,000 s, 2 % of the time) seven days before the end.
fn arrival(i: u64, n: u64) -> i64 {
    const DAY: f64 = 86_400e9;
    let start = END as f64 - 30.0 * DAY;
    let (burst_at, burst_len) = (23.0 * DAY, 50_000e9);
    let f = i as f64 / n.max(1) as f64;
    let before = 0.75 * burst_at / (30.0 * DAY - burst_len);
    let t = if f < before {
        f / before * burst_at
    } else if f < before + 0.25 {
        burst_at + (f - before) / 0.25 * burst_len
    } else {
        burst_at + burst_len + (f - before - 0.25) / (0.75 - before) * (7.0 * DAY - burst_len)
    };
    (start + t) as i64
}

/// Loads `n` summaries in time order (as a live stream would arrive) from `loaders`
/// concurrent tasks, each inserting batches of `batch`; returns the seconds taken.
async fn load_stream<S: Storage + Clone + 'static>(
    storage: &S,
    n: u64,
    batch: u64,
    loaders: usize,
) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..loaders {
        let (next, storage) = (next.clone(), storage.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= n {
                    break;
                }
                let mut rng = Rng(first.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                let rows: Vec<TraceSummary> = (first..(first + batch).min(n))
                    .map(|i| summary(&mut rng, i + 1, arrival(i, n)))
                    .collect();
                storage.insert(rows).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn time_api(http: std::net::SocketAddr) {
    let from = "2026-10-23T00:00:00Z";
    let cases = [
        (
            "usage by model by day, 30 days",
            format!("/v1/usage?group_by=model&bucket=day&from={from}"),
        ),
        (
            "usage by tenant, 30 days",
            format!("/v1/usage?group_by=tenant&from={from}"),
        ),
        (
            "traces, one tenant, first page of 100",
            "/v1/traces?tenant=tenant-007&limit=100".to_string(),
        ),
        (
            "traces, category pii, first page of 100",
            "/v1/traces?category=pii&limit=100".to_string(),
        ),
        (
            "traces, min latency 4000 ms, page of 100",
            "/v1/traces?min_latency_ms=4000&limit=100".to_string(),
        ),
    ];
    time_paths(http, &cases, 10).await;
}

/// Times each path `runs` times over HTTP and prints p50 and p95.
async fn time_paths(http: std::net::SocketAddr, cases: &[(&str, String)], runs: usize) {
    for (name, path) in cases {
        let mut times = Vec::new();
        for _ in 0..runs {
            let p = path.clone();
            let t = Instant::now();
            let (status, _) = tokio::task::spawn_blocking(move || get(http, &p))
                .await
                .unwrap();
            assert_eq!(status, 200, "{path}");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let p =
            |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "{name}: p50 {:.0} ms, p95 {:.0} ms ({runs} runs)",
            p(0.5),
            p(0.95)
        );
    }
}

async fn query_clickhouse(url: &str, n: u64) {
    use tollgate_collector::storage::clickhouse::{ClickHouseStorage, WriterOptions};
    // the writer's batch_rows, and how many loaders offer batches at once (BATCH_ROWS, LOADERS)
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rows, loaders) = (env("BATCH_ROWS", 100_000), env("LOADERS", 16));
    let options = WriterOptions {
        batch_rows: rows,
        queue_rows: rows * 5,
        ..WriterOptions::default()
    };
    let storage = ClickHouseStorage::connect_with(url, "tollgate_bench", options)
        .await
        .unwrap();
    let existing = storage.count().await.unwrap();
    if existing == 0 {
        let took = load_stream(&storage, n, 10_000, loaders).await;
        println!(
            "load: {n} summaries in {took:.1} s = {:.0} summaries/s ({loaders} loaders sending batches of 10,000; writer batch_rows {rows})",
            n as f64 / took
        );
    } else {
        println!("load: skipped, {existing} summaries already stored");
    }
    drop(storage);
    let dir = tempfile::tempdir().unwrap();
    let mut storage = StorageConfig::parse(&format!(
        "clickhouse://{}/tollgate_bench",
        url.trim_start_matches("http://")
    ))
    .unwrap();
    if let StorageConfig::Clickhouse { keys_path, .. } = &mut storage {
        *keys_path = dir.path().join("k.db");
    }
    let config = CollectorConfig {
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        storage,
        retention_days: 0,
        max_concurrent_batches: 1024,
        ..CollectorConfig::default()
    };
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(tollgate_collector::run(config, stop.clone(), Some(tx)));
    let bound = rx.await.unwrap();
    time_api(bound.http).await;
    // the same usage questions off day boundaries: answered from the raw rows
    time_usage_raw(bound.http).await;
    // end to end: gRPC ingest into ClickHouse (new request ids, today's times)
    load_ingest(bound.grpc, 10, 16, 1000).await;
    stop.cancel();
}

async fn time_usage_raw(http: std::net::SocketAddr) {
    let from = "2026-10-23T00:00:01Z";
    let cases = [
        (
            "usage by model by day, 30 days, raw rows",
            format!("/v1/usage?group_by=model&bucket=day&from={from}"),
        ),
        (
            "usage by tenant, 30 days, raw rows",
            format!("/v1/usage?group_by=tenant&from={from}"),
        ),
    ];
    time_paths(http, &cases, 5).await;
}

async fn query(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    {
        let storage = SqliteStorage::open(&db).unwrap();
        let took = load(&storage, n, 10_000).await;
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        println!(
            "load: {n} summaries in {took:.1} s ({:.0}/s in batches of 10,000), database {:.0} MiB",
            n as f64 / took,
            size as f64 / 1_048_576.0
        );
    }
    let (bound, stop) = start(db).await;
    time_api(bound.http).await;
    stop.cancel();
}
