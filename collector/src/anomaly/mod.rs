//! Per-tenant anomaly detection and alerting. Every closed time bucket (default one minute),
//! the driver asks the store what each tenant (and each tenant × model) did in it — cost,
//! tokens, requests, error and block rates, p95 latency — and what findings the rules look at;
//! the [`detector`] scores each value against an exponentially weighted baseline (mean and
//! variance with a half-life) and opens an anomaly when the z-score passes the threshold for
//! `consecutive` buckets, updates it while it lasts and closes it after `cooldown_buckets`
//! normal ones. Anomalies are stored and served by `GET /v1/anomalies`; the [`sink`]s deliver
//! openings and closings to webhooks and Slack. See ADR 0012 and docs/anomalies.md.
//!
//! # Layout
//! - [`baseline`]: the exponentially weighted mean and variance.
//! - [`detector`]: the pure state machine, one bucket at a time.
//! - [`driver`]: the task that closes buckets on a clock, reads the store, keeps the state,
//!   and takes the lead among replicas.
//! - [`sink`]: webhook (HMAC-signed) and Slack delivery with retries.

pub mod baseline;
pub mod detector;
pub mod driver;
pub mod sink;

use serde::{Deserialize, Serialize};

/// A metric watched per series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    CostMicroUsd,
    InputTokens,
    OutputTokens,
    Requests,
    ErrorRate,
    BlockRate,
    LatencyP95Ms,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::CostMicroUsd,
        Metric::InputTokens,
        Metric::OutputTokens,
        Metric::Requests,
        Metric::ErrorRate,
        Metric::BlockRate,
        Metric::LatencyP95Ms,
    ];

    /// Position in [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::CostMicroUsd => "cost_micro_usd",
            Metric::InputTokens => "input_tokens",
            Metric::OutputTokens => "output_tokens",
            Metric::Requests => "requests",
            Metric::ErrorRate => "error_rate",
            Metric::BlockRate => "block_rate",
            Metric::LatencyP95Ms => "latency_p95_ms",
        }
    }
}

/// A findings rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Blocked prompt injections from one tenant in one bucket, at least `injection_burst`.
    InjectionBurst,
    /// Any secret found in a response.
    SecretInResponse,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::InjectionBurst => "injection_burst",
            RuleKind::SecretInResponse => "secret_in_response",
        }
    }
}

/// What kind of departure an anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Above the baseline.
    Spike,
    /// Below it (a tenant whose traffic stops).
    Drop,
    /// A findings rule fired.
    Rule,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::Drop => "drop",
            AnomalyKind::Rule => "rule",
        }
    }

    pub fn parse(s: &str) -> Option<AnomalyKind> {
        match s {
            "spike" => Some(AnomalyKind::Spike),
            "drop" => Some(AnomalyKind::Drop),
            "rule" => Some(AnomalyKind::Rule),
            _ => None,
        }
    }
}

/// One anomaly, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Stable: derived from tenant, model, metric and start.
    pub id: String,
    pub tenant: String,
    /// Set for a tenant × model series.
    pub model: Option<String>,
    /// A [`Metric`] name or a [`RuleKind`] name.
    pub metric: String,
    pub kind: AnomalyKind,
    /// Still going on.
    pub open: bool,
    /// Start of its first bucket (unix ns).
    pub started_ns: i64,
    /// End of the last bucket that updated it.
    pub updated_ns: i64,
    pub ended_ns: Option<i64>,
    /// The latest value (for rules: the latest bucket's count).
    pub observed: f64,
    /// The value at the largest |z| (rules: the largest count).
    pub peak: f64,
    /// The baseline the latest value was scored against.
    pub baseline_mean: f64,
    pub baseline_std_dev: f64,
    pub z_score: f64,
    pub max_abs_z_score: f64,
    /// Buckets it has lasted (deviating ones).
    pub buckets: u32,
    /// Rules: findings counted over its life.
    pub total: u64,
}

/// A change the detector reports.
#[derive(Debug, Clone, PartialEq)]
pub enum AnomalyEvent {
    Opened(Anomaly),
    Updated(Anomaly),
    Closed(Anomaly),
}

impl AnomalyEvent {
    pub fn anomaly(&self) -> &Anomaly {
        match self {
            AnomalyEvent::Opened(a) | AnomalyEvent::Updated(a) | AnomalyEvent::Closed(a) => a,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            AnomalyEvent::Opened(_) => "opened",
            AnomalyEvent::Updated(_) => "updated",
            AnomalyEvent::Closed(_) => "closed",
        }
    }
}

/// The detector's parameters (from the `anomaly` configuration section).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSettings {
    /// Bucket length (ns).
    pub bucket_ns: i64,
    /// Half-life of the baselines, in buckets.
    pub half_life_buckets: f64,
    /// |z| at or above which a bucket deviates.
    pub threshold: f64,
    /// Deviating buckets in a row before an anomaly opens.
    pub consecutive: u32,
    /// Smallest change that can be anomalous, as a factor of the baseline mean: a spike is at
    /// least this many times the mean, a drop at most the mean divided by it.
    pub min_ratio: f64,
    /// Buckets a baseline needs before it can raise anything.
    pub warmup_buckets: u32,
    /// Normal buckets in a row that close an anomaly.
    pub cooldown_buckets: u32,
    /// Mean requests per bucket below which a series is tracked but not judged: its buckets
    /// are too sparse to tell noise from change (use longer buckets for quiet tenants).
    pub min_requests: f64,
    /// Fewest requests in a bucket for its error / block rate and p95 latency to count.
    pub min_rate_requests: u64,
    /// Watch tenant × model series as well as tenants.
    pub per_model: bool,
    /// Raise drops (traffic stopping), not only spikes.
    pub detect_drops: bool,
    /// Forget a series idle this many buckets.
    pub forget_after_buckets: u32,
    /// Blocked injections per tenant per bucket that make a burst (0: off).
    pub injection_burst: u64,
    /// Raise an anomaly for any secret found in a response.
    pub secret_in_response: bool,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            bucket_ns: 60_000_000_000,
            half_life_buckets: 15.0,
            threshold: 3.0,
            consecutive: 2,
            min_ratio: 2.0,
            warmup_buckets: 60,
            cooldown_buckets: 5,
            min_requests: 20.0,
            min_rate_requests: 50,
            per_model: true,
            detect_drops: true,
            forget_after_buckets: 10_080,
            injection_burst: 5,
            secret_in_response: true,
        }
    }
}
