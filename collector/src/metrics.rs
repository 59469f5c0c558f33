//! The collector's own metrics, in Prometheus text format at `GET /metrics`: summaries ingested,
//! batches rejected by reason, batch commit latency, API requests and their latency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Counters shared by the ingest service and the API.
#[derive(Default)]
pub struct CollectorMetrics {
    ingested: AtomicU64,
    batches: AtomicU64,
    commit_micros: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    api: Mutex<BTreeMap<(String, u16), (u64, u64)>>,
    /// Anomalies opened, by metric.
    anomalies: Mutex<BTreeMap<String, u64>>,
    /// Alert deliveries, by sink and outcome (`sent` / `failed`).
    alerts: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Buckets the detector evaluated.
    buckets: AtomicU64,
    /// When ingest last turned a batch away for want of capacity or storage (unix ns): the
    /// gateways retry, so buckets around then are not complete yet.
    last_refusal_ns: std::sync::atomic::AtomicI64,
}

impl CollectorMetrics {
    /// A batch of `n` summaries was committed in `took`.
    pub fn committed(&self, n: usize, took: Duration) {
        self.ingested.fetch_add(n as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.commit_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// When ingest last turned a batch away to be retried (0: never).
    pub fn last_refusal_ns(&self) -> i64 {
        self.last_refusal_ns.load(Ordering::Relaxed)
    }

    /// A batch was refused.
    pub fn rejected(&self, reason: &'static str) {
        if matches!(reason, "busy" | "storage_unavailable" | "internal") {
            self.last_refusal_ns
                .store(crate::time::now_ns(), Ordering::Relaxed);
        }
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(reason).or_insert(0) += 1;
        }
    }

    /// An API request to `route` answered `status` in `took`.
    pub fn api(&self, route: &str, status: u16, took: Duration) {
        if let Ok(mut m) = self.api.lock() {
            let e = m.entry((route.to_string(), status)).or_insert((0, 0));
            e.0 += 1;
            e.1 += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        }
    }

    /// An anomaly on `metric` was opened.
    pub fn anomaly_opened(&self, metric: &str) {
        if let Ok(mut m) = self.anomalies.lock() {
            *m.entry(metric.to_string()).or_insert(0) += 1;
        }
    }

    /// An alert to `sink` was delivered (`sent`) or given up (`failed`).
    pub fn alert(&self, sink: &str, outcome: &'static str) {
        if let Ok(mut m) = self.alerts.lock() {
            *m.entry((sink.to_string(), outcome)).or_insert(0) += 1;
        }
    }

    /// The detector evaluated a bucket.
    pub fn bucket_evaluated(&self) {
        self.buckets.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, stored: Option<u64>) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line("# TYPE tollgate_collector_ingested_total counter".into());
        line(format!(
            "tollgate_collector_ingested_total {}",
            self.ingested.load(Ordering::Relaxed)
        ));
        line("# TYPE tollgate_collector_batches_total counter".into());
        line(format!(
            "tollgate_collector_batches_total {}",
            self.batches.load(Ordering::Relaxed)
        ));
        line("# TYPE tollgate_collector_commit_seconds_total counter".into());
        line(format!(
            "tollgate_collector_commit_seconds_total {:.6}",
            self.commit_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        line("# TYPE tollgate_collector_rejected_total counter".into());
        if let Ok(m) = self.rejected.lock() {
            for (reason, n) in m.iter() {
                line(format!(
                    "tollgate_collector_rejected_total{{reason=\"{reason}\"}} {n}"
                ));
            }
        }
        line("# TYPE tollgate_collector_api_requests_total counter".into());
        line("# TYPE tollgate_collector_api_seconds_total counter".into());
        if let Ok(m) = self.api.lock() {
            for ((route, status), (n, micros)) in m.iter() {
                line(format!(
                    "tollgate_collector_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                ));
                line(format!(
                    "tollgate_collector_api_seconds_total{{route=\"{route}\",status=\"{status}\"}} {:.6}",
                    *micros as f64 / 1e6
                ));
            }
        }
        line("# TYPE tollgate_collector_anomalies_raised_total counter".into());
        if let Ok(m) = self.anomalies.lock() {
            for (metric, n) in m.iter() {
                line(format!(
                    "tollgate_collector_anomalies_raised_total{{metric=\"{metric}\"}} {n}"
                ));
            }
        }
        line("# TYPE tollgate_collector_alerts_sent_total counter".into());
        line("# TYPE tollgate_collector_alerts_failed_total counter".into());
        if let Ok(m) = self.alerts.lock() {
            for ((sink, outcome), n) in m.iter() {
                line(format!(
                    "tollgate_collector_alerts_{outcome}_total{{sink=\"{sink}\"}} {n}"
                ));
            }
        }
        line("# TYPE tollgate_collector_anomaly_buckets_total counter".into());
        line(format!(
            "tollgate_collector_anomaly_buckets_total {}",
            self.buckets.load(Ordering::Relaxed)
        ));
        if let Some(n) = stored {
            line("# TYPE tollgate_collector_stored_traces gauge".into());
            line(format!("tollgate_collector_stored_traces {n}"));
        }
        out
    }
}
