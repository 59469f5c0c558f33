//! Storage of trace summaries behind one trait, so the ingest service and the query API do not
//! know which database holds the data: embedded SQLite ([`sqlite::SqliteStorage`], the default)
//! or ClickHouse ([`clickhouse::ClickHouseStorage`]). Both keep daily usage rollups
//! ([`rollup`]) and answer alike; the contract tests in `tests/storage_contract.rs` run against
//! every backend. `insert` returning `Ok` means the batch is durable: the ingest service
//! acknowledges only then.

pub mod clickhouse;
pub mod rollup;
pub mod sqlite;

use serde::Serialize;
use std::future::Future;
use thiserror::Error;
use tollgate_proto::v1::TraceSummary;

/// Everything a storage backend can fail with.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The backend cannot take writes right now (busy, full, down): retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A value the backend refuses (the batch is rejected whole).
    #[error("invalid data: {0}")]
    Invalid(String),
    /// Anything else; a bug or a broken database.
    #[error("storage failure: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(ref f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                ) =>
            {
                StorageError::Unavailable(e.to_string())
            }
            other => StorageError::Internal(other.to_string()),
        }
    }
}

/// Which tenants a caller may see: all, or a fixed set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TenantScope {
    #[default]
    All,
    Only(Vec<String>),
}

/// Filters of `GET /v1/traces`.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub scope: TenantScope,
    pub tenant: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub route: Option<String>,
    pub outcome: Option<String>,
    /// Start time range, unix nanoseconds, `from` inclusive, `to` exclusive.
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub has_findings: Option<bool>,
    pub category: Option<String>,
    pub rule_id: Option<String>,
    pub min_cost_micro_usd: Option<i64>,
    pub min_latency_ms: Option<i64>,
    /// 1..=1000.
    pub limit: u32,
    /// Continue after this position (from the previous page's `next_cursor`).
    pub cursor: Option<i64>,
}

/// One page of traces, newest stored first. Positions only grow, so pages stay stable while
/// new summaries arrive: a new row never shifts the rows of a later page.
#[derive(Debug, Clone, Default)]
pub struct TracePage {
    pub traces: Vec<TraceSummary>,
    pub next_cursor: Option<i64>,
}

/// A grouping dimension of `GET /v1/usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Tenant,
    Model,
    Provider,
    Route,
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tenant" => Some(Dimension::Tenant),
            "model" => Some(Dimension::Model),
            "provider" => Some(Dimension::Provider),
            "route" => Some(Dimension::Route),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Tenant => "tenant",
            Dimension::Model => "model",
            Dimension::Provider => "provider",
            Dimension::Route => "route",
        }
    }
}

/// A time bucket of `GET /v1/usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
    /// Weeks start on Monday, 00:00 UTC.
    Week,
    /// Calendar months, UTC.
    Month,
}

impl Bucket {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Bucket::Minute),
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            "week" => Some(Bucket::Week),
            "month" => Some(Bucket::Month),
            _ => None,
        }
    }
}

/// Parameters of `GET /v1/usage`.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    pub scope: TenantScope,
    pub group_by: Vec<Dimension>,
    pub bucket: Option<Bucket>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub tenant: Option<String>,
}

/// Latency percentiles in milliseconds (null when there is no sample).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// One row of `GET /v1/usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageRow {
    /// The group's values, by dimension name (only the requested dimensions).
    pub group: std::collections::BTreeMap<String, String>,
    /// Bucket start (RFC 3339, UTC) when bucketed.
    pub bucket: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Requests whose usage was (partly) estimated.
    pub estimated_requests: u64,
    /// Micro-USD over the requests with a known cost.
    pub cost_micro_usd: i64,
    /// Requests with no known cost (no price for the model).
    pub unpriced_requests: u64,
    pub errors: u64,
    pub blocked: u64,
    pub latency_ms: Percentiles,
    pub time_to_first_token_ms: Percentiles,
}

/// Parameters of `GET /v1/findings`.
#[derive(Debug, Clone, Default)]
pub struct FindingsQuery {
    pub scope: TenantScope,
    pub tenant: Option<String>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    /// Only this category and its subcategories (`injection` matches `injection.override`).
    pub category: Option<String>,
    /// Only findings with this action (`block`, `redact`, ...).
    pub action: Option<String>,
    /// Only findings in this direction (`request` or `response`).
    pub direction: Option<String>,
    /// `category`, `rule` or `tenant`.
    pub by: Vec<String>,
    pub bucket: Option<Bucket>,
}

/// One row of `GET /v1/findings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FindingsRow {
    pub group: std::collections::BTreeMap<String, String>,
    pub bucket: Option<String>,
    pub findings: u64,
    /// Traces with at least one such finding.
    pub traces: u64,
}

/// Filters of `GET /v1/anomalies`, newest first.
#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    pub scope: TenantScope,
    pub tenant: Option<String>,
    pub metric: Option<String>,
    /// `Some(true)`: open ones; `Some(false)`: closed ones.
    pub open: Option<bool>,
    /// Anomalies whose life overlaps this range (unix ns, `from` inclusive, `to` exclusive).
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    /// 1..=1000.
    pub limit: u32,
}

/// One delivery of one anomaly event to one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Delivery {
    pub anomaly_id: String,
    /// `opened` or `closed`.
    pub event: String,
    /// The sink's name from the configuration.
    pub sink: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_ns: i64,
}

/// An anomaly with its deliveries, as served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAnomaly {
    #[serde(flatten)]
    pub anomaly: crate::anomaly::Anomaly,
    pub deliveries: Vec<Delivery>,
}

/// A collector process taking part in leadership (see [`Storage::heartbeat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub holder: String,
    pub started_ns: i64,
    pub beat_ns: i64,
}

/// The storage contract; see the module docs.
pub trait Storage: Send + Sync + 'static {
    /// Stores a batch atomically; `Ok` means durable. A summary whose `request_id` is already
    /// stored is ignored (the filter retries batches), and counted as accepted.
    fn insert(
        &self,
        batch: Vec<TraceSummary>,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;
    /// One trace by request id, within the scope.
    fn get(
        &self,
        request_id: String,
        scope: TenantScope,
    ) -> impl Future<Output = Result<Option<TraceSummary>, StorageError>> + Send;
    fn traces(
        &self,
        query: TraceQuery,
    ) -> impl Future<Output = Result<TracePage, StorageError>> + Send;
    fn usage(
        &self,
        query: UsageQuery,
    ) -> impl Future<Output = Result<Vec<UsageRow>, StorageError>> + Send;
    fn findings(
        &self,
        query: FindingsQuery,
    ) -> impl Future<Output = Result<Vec<FindingsRow>, StorageError>> + Send;
    /// Deletes traces that started before `before_ns` (returns how many), and with them closed
    /// anomalies last updated before it (with their deliveries) and members gone since.
    fn delete_before(
        &self,
        before_ns: i64,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;
    /// Number of stored traces.
    fn count(&self) -> impl Future<Output = Result<u64, StorageError>> + Send;
    /// Stores anomalies, replacing any with the same id.
    fn put_anomalies(
        &self,
        batch: Vec<crate::anomaly::Anomaly>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Anomalies matching `query`, newest start first, with their deliveries.
    fn anomalies(
        &self,
        query: AnomalyQuery,
    ) -> impl Future<Output = Result<Vec<StoredAnomaly>, StorageError>> + Send;
    /// Records deliveries, replacing any of the same anomaly, event and sink.
    fn put_deliveries(
        &self,
        batch: Vec<Delivery>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Saves a named checkpoint (the detector's state), replacing the previous one.
    fn save_checkpoint(
        &self,
        name: String,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    fn load_checkpoint(
        &self,
        name: String,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send;
    /// Records that `holder` (started at `started_ns`) is alive at `now_ns`.
    fn heartbeat(&self, member: Member) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Members whose last beat is at or after `since_ns`.
    fn members(
        &self,
        since_ns: i64,
    ) -> impl Future<Output = Result<Vec<Member>, StorageError>> + Send;
}

/// The model a trace is reported under: the answering model, else the requested one.
pub fn model_of(s: &TraceSummary) -> &str {
    if !s.response_model.is_empty() {
        &s.response_model
    } else if !s.request_model.is_empty() {
        &s.request_model
    } else {
        "unknown"
    }
}

/// The outcome's lowercase name.
pub fn outcome_name(code: i32) -> &'static str {
    use tollgate_proto::v1::Outcome;
    match Outcome::try_from(code).unwrap_or(Outcome::Unspecified) {
        Outcome::Unspecified => "unspecified",
        Outcome::Allowed => "allowed",
        Outcome::Tagged => "tagged",
        Outcome::Redacted => "redacted",
        Outcome::Blocked => "blocked",
        Outcome::Unanalysed => "unanalysed",
        Outcome::Error => "error",
        Outcome::RateLimited => "rate_limited",
    }
}

/// A finding action's lowercase name.
pub fn action_name(code: i32) -> &'static str {
    use tollgate_proto::v1::Action;
    match Action::try_from(code).unwrap_or(Action::Unspecified) {
        Action::Unspecified => "unspecified",
        Action::Log => "log",
        Action::Tag => "tag",
        Action::Redact => "redact",
        Action::Block => "block",
    }
}

/// A finding direction's lowercase name.
pub fn direction_name(code: i32) -> &'static str {
    use tollgate_proto::v1::Direction;
    match Direction::try_from(code).unwrap_or(Direction::Unspecified) {
        Direction::Unspecified => "unspecified",
        Direction::Request => "request",
        Direction::Response => "response",
    }
}

/// Percentiles of sorted samples (nearest rank).
pub fn percentiles(sorted: &[f64]) -> Percentiles {
    let at = |p: f64| -> Option<f64> {
        if sorted.is_empty() {
            return None;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted.get(rank - 1).copied()
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}
