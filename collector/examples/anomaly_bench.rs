//! What anomaly detection costs at scale (docs/benchmarks.md):
//!
//! ```text
//! cargo run --release -p tollgate-collector --example anomaly_bench [TENANTS]
//! ```
//!
//! 1. The detector alone: TENANTS tenants (default 100,000), each with two models (three series
//!    per tenant), fed one-minute buckets; time per bucket and per series, memory per series
//!    (process RSS before and after, and the checkpoint's size).
//! 2. The driver on SQLite: one minute holding one call of each tenant, the time the driver
//!    takes to read that bucket from the store and evaluate it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // a benchmark fails loudly

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tollgate_collector::anomaly::detector::{BucketValues, Detector, SeriesKey};
use tollgate_collector::anomaly::driver::{Driver, Schedule};
use tollgate_collector::anomaly::DetectorSettings;
use tollgate_collector::metrics::CollectorMetrics;
use tollgate_collector::storage::sqlite::SqliteStorage;
use tollgate_collector::storage::Storage;
use tollgate_proto::v1::{Outcome, TraceSummary, Usage};

const MINUTE: i64 = 60_000_000_000;
const START: i64 = 1_793_577_600_000_000_000;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn values(i: u64, b: i64) -> BucketValues {
    let n = 20 + (i + b as u64) % 7;
    BucketValues {
        requests: n,
        cost_micro_usd: (n * 5000) as i64,
        input_tokens: n * 1000,
        output_tokens: n * 250,
        errors: (i + b as u64) % 2,
        blocked: 0,
        latency_p95_ms: Some(900.0 + ((i * 7 + b as u64) % 50) as f64),
    }
}

fn main() {
    let tenants: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let models = ["gpt-4o", "claude-haiku-4-5"];
    let mut buckets: Vec<BTreeMap<SeriesKey, BucketValues>> = Vec::new();
    for b in 0..3i64 {
        let mut m = BTreeMap::new();
        for i in 0..tenants {
            let tenant = format!("tenant-{i:06}");
            m.insert(
                SeriesKey {
                    tenant: tenant.clone(),
                    model: None,
                },
                values(i, b),
            );
            for model in models {
                m.insert(
                    SeriesKey {
                        tenant: tenant.clone(),
                        model: Some(model.into()),
                    },
                    values(i + 1, b),
                );
            }
        }
        buckets.push(m);
    }
    let before = rss_bytes();
    let mut detector = Detector::new(DetectorSettings::default());
    let mut times = Vec::new();
    for b in 0..30i64 {
        let input = &buckets[(b % 3) as usize];
        let t = Instant::now();
        let events = detector.evaluate(START + b * MINUTE, input, &[]);
        times.push(t.elapsed().as_secs_f64());
        assert!(events.is_empty());
    }
    let after = rss_bytes();
    let series = detector.state().series() as f64;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let checkpoint = detector.state().to_bytes().unwrap().len();
    println!(
        "detector: {tenants} tenants, {series} series: {:.0} ms per bucket (median of 30), {:.2} µs per series",
        median * 1e3,
        median * 1e6 / series
    );
    println!(
        "memory: {:.0} bytes per series (RSS {:.1} → {:.1} MiB); checkpoint {:.1} MiB ({:.0} bytes per series)",
        (after.saturating_sub(before)) as f64 / series,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        checkpoint as f64 / 1048576.0,
        checkpoint as f64 / series
    );
    let t = Instant::now();
    let bytes = detector.state().to_bytes().unwrap();
    let _ = tollgate_collector::anomaly::detector::DetectorState::from_bytes(&bytes).unwrap();
    println!(
        "checkpoint save + load (encode, decode): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(buckets);
    drop(detector);

    // the driver reading one bucket with a call from every tenant out of SQLite
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("bench.db")).unwrap();
        let calls: Vec<TraceSummary> = (0..tenants)
            .map(|i| TraceSummary {
                request_id: format!("r{i}"),
                tenant: format!("tenant-{i:06}"),
                provider: "openai".into(),
                route: "openai".into(),
                request_model: models[(i % 2) as usize].into(),
                outcome: Outcome::Allowed as i32,
                start_unix_nanos: START + (i as i64 * 997) % MINUTE,
                end_unix_nanos: START + (i as i64 * 997) % MINUTE + 900_000_000,
                usage: Some(Usage {
                    input_tokens: 1000,
                    output_tokens: 200,
                    ..Usage::default()
                }),
                cost_micro_usd: 4000,
                cost_known: true,
                ..TraceSummary::default()
            })
            .collect();
        for chunk in calls.chunks(10_000) {
            store.insert(chunk.to_vec()).await.unwrap();
        }
        let mut driver = Driver::new(
            store.clone(),
            DetectorSettings::default(),
            Schedule {
                history_buckets: 1,
                ..Schedule::default()
            },
            "bench".into(),
            START,
            None,
            Arc::new(CollectorMetrics::default()),
        );
        let t = Instant::now();
        let step = driver
            .step(START + MINUTE + Schedule::default().grace_ns)
            .await
            .unwrap();
        let took = t.elapsed().as_secs_f64();
        assert_eq!(step.buckets, 1);
        println!(
            "driver on SQLite: one minute with {tenants} calls from {tenants} tenants read and evaluated in {:.0} ms = {:.1} µs per ingested summary",
            took * 1e3,
            took * 1e6 / tenants as f64
        );
    });
}
