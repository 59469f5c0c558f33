//! ClickHouse storage: connection and server-version detection, versioned schema migrations,
//! a batching writer, daily usage rollups, retention, and the query side of the `Storage` trait.
//! The backend talks HTTP with the official `clickhouse` crate (RowBinary). It is written for
//! current ClickHouse releases and kept working on Debian's 18.16: features newer servers have
//! (LowCardinality without a setting, TTL) are used only when `version()` says the server has
//! them. Every value goes through the crate's `?` binding (escaped client-side); identifiers
//! are fixed in this file. See ADR 0010.
//!
//! Writes go through one writer task per storage: `insert` queues its batch (bounded by
//! `queue_rows`; beyond that it answers `Unavailable` at once) and waits; the writer gathers
//! queued batches for up to `flush_interval` or `batch_rows` rows, skips request ids already
//! stored (one query per insert), writes one INSERT, and answers every batch only once
//! ClickHouse has acknowledged it. Transient failures are retried a few times, then answered
//! `Unavailable`; a batch the server refuses is retried alone so it cannot fail its neighbours.

use super::rollup::{self, DayKey, DayTotals, Histogram, DAY_NS};
use super::{
    action_name, direction_name, model_of, outcome_name, AnomalyQuery, Bucket, Delivery, Dimension,
    FindingsQuery, FindingsRow, Member, Percentiles, Storage, StorageError, StoredAnomaly,
    TenantScope, TracePage, TraceQuery, UsageQuery, UsageRow,
};
use crate::anomaly::Anomaly;
use crate::time::now_ns;
use clickhouse::{Client, Row};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tollgate_proto::v1::TraceSummary;

impl From<clickhouse::error::Error> for StorageError {
    fn from(e: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        match e {
            E::Network(_) | E::TimedOut => StorageError::Unavailable(e.to_string()),
            E::BadResponse(ref m) if m.contains("Code: 252") || m.contains("Code: 241") => {
                // too many parts / memory limit: back off and retry
                StorageError::Unavailable(e.to_string())
            }
            other => StorageError::Internal(other.to_string()),
        }
    }
}

/// What the connected server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub version: (u32, u32),
    /// `LowCardinality(String)` without an experimental setting (19.x).
    pub low_cardinality: bool,
    /// Table `TTL` for retention (19.6).
    pub ttl: bool,
    /// Column compression codecs (19.1).
    pub codecs: bool,
}

impl Features {
    /// From `version()` output such as `18.16.1` or `24.8.4.13`.
    pub fn from_version(v: &str) -> Features {
        let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Features {
            version,
            low_cardinality: version >= (19, 0),
            ttl: version >= (19, 6),
            codecs: version >= (19, 1),
        }
    }
}

/// One stored trace, as a ClickHouse row (borrowing from the summary it is written from).
#[derive(Debug, Clone, Row, Serialize)]
struct TraceRow<'a> {
    request_id: &'a str,
    tenant: &'a str,
    provider: &'a str,
    model: &'a str,
    route: &'a str,
    outcome: &'a str,
    start_day: u16,
    start_ns: i64,
    ingested_ns: i64,
    latency_ms: f64,
    ttft_ms: f64,
    /// Rollup histogram buckets of the two ([`Histogram::bucket`]); 255: no value.
    latency_bucket: u8,
    ttft_bucket: u8,
    status_code: u16,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    usage_estimated: u8,
    cost_micro_usd: i64,
    cost_known: u8,
    findings_total: u32,
    finding_rules: Vec<&'a str>,
    finding_categories: Vec<&'a str>,
    #[serde(with = "serde_bytes")]
    summary: &'a [u8],
    finding_actions: Vec<&'a str>,
    finding_directions: Vec<&'a str>,
}

/// The stored protobuf of a trace.
#[derive(Debug, Row, Deserialize)]
struct SummaryBlob {
    #[serde(with = "serde_bytes")]
    summary: Vec<u8>,
}

/// How the writer batches inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Most rows in one INSERT.
    pub batch_rows: usize,
    /// How long the writer gathers batches before an INSERT (ClickHouse prefers a few large
    /// inserts a second to many small ones).
    pub flush_interval: Duration,
    /// Most rows queued for the writer; an `insert` beyond that is answered `Unavailable`.
    pub queue_rows: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            batch_rows: 100_000,
            flush_interval: Duration::from_millis(200),
            queue_rows: 500_000,
        }
    }
}

/// The ClickHouse backend (cheap to clone: clones share the connection and the writer).
#[derive(Clone)]
pub struct ClickHouseStorage {
    core: Arc<Core>,
    jobs: mpsc::UnboundedSender<Job>,
    queued: Arc<Semaphore>,
    queue_rows: usize,
}

/// What the writer and the queries share.
struct Core {
    client: Client,
    database: String,
    features: Features,
    /// Last ingest position handed out: unique and increasing within this collector, so pages
    /// stay stable while rows arrive.
    last_ingested: AtomicI64,
}

/// A batch waiting for the writer, with the queue room it holds.
struct Job {
    rows: Vec<TraceSummary>,
    done: oneshot::Sender<Result<usize, StorageError>>,
    _room: OwnedSemaphorePermit,
}

/// A bound query value.
enum Param {
    S(String),
    I(i64),
    F(f64),
}

/// A WHERE clause with its bound values, in order.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Filter {
    fn eq(&mut self, column: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.clauses.push(format!("{column} = ?"));
            self.params.push(Param::S(v.clone()));
        }
    }

    fn scope(&mut self, scope: &TenantScope) {
        if let TenantScope::Only(t) = scope {
            if t.is_empty() {
                self.clauses.push("0".into());
                return;
            }
            self.clauses
                .push(format!("tenant IN {}", placeholders(t.len())));
            self.params.extend(t.iter().cloned().map(Param::S));
        }
    }

    fn range(&mut self, from: Option<i64>, to: Option<i64>) {
        if let Some(f) = from {
            self.clauses.push("start_ns >= ?".into());
            self.params.push(Param::I(f));
        }
        if let Some(t) = to {
            self.clauses.push("start_ns < ?".into());
            self.params.push(Param::I(t));
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn bind(&self, mut q: clickhouse::query::Query) -> clickhouse::query::Query {
        for p in &self.params {
            q = match p {
                Param::S(v) => q.bind(v.as_str()),
                Param::I(v) => q.bind(*v),
                Param::F(v) => q.bind(*v),
            };
        }
        q
    }
}

/// SQL for a bucket's start, as RFC 3339 text, from `start_ns`.
fn bucket_sql(b: Bucket) -> &'static str {
    match b {
        Bucket::Minute => "formatDateTime(toStartOfMinute(toDateTime(intDiv(start_ns, 1000000000), 'UTC')), '%Y-%m-%dT%H:%M:%SZ', 'UTC')",
        Bucket::Hour => "formatDateTime(toStartOfHour(toDateTime(intDiv(start_ns, 1000000000), 'UTC')), '%Y-%m-%dT%H:%M:%SZ', 'UTC')",
        Bucket::Day => "formatDateTime(toStartOfDay(toDateTime(intDiv(start_ns, 1000000000), 'UTC')), '%Y-%m-%dT%H:%M:%SZ', 'UTC')",
        Bucket::Week => "formatDateTime(toDateTime(toMonday(toDateTime(intDiv(start_ns, 1000000000), 'UTC')), 'UTC'), '%Y-%m-%dT%H:%M:%SZ', 'UTC')",
        Bucket::Month => "formatDateTime(toDateTime(toStartOfMonth(toDateTime(intDiv(start_ns, 1000000000), 'UTC')), 'UTC'), '%Y-%m-%dT%H:%M:%SZ', 'UTC')",
    }
}

/// Nearest-rank percentiles of a column (NaN = no sample), as three nullable values.
fn percentile_sql(column: &str) -> String {
    let arr = format!("arraySort(arrayFilter(x -> NOT isNaN(x), groupArray({column})))");
    ["0.5", "0.95", "0.99"]
        .iter()
        .map(|p| {
            format!(
                "if(length({arr}) = 0, NULL, arrayElement({arr}, toUInt64(greatest(1, ceil({p} * length({arr}))))))"
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Row, Deserialize)]
struct PagedBlob {
    ingested_ns: i64,
    #[serde(with = "serde_bytes")]
    summary: Vec<u8>,
}

#[derive(Debug, Row, Deserialize)]
struct UsageOut {
    keys: Vec<String>,
    bucket: String,
    requests: u64,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    estimated_requests: u64,
    cost_micro_usd: i64,
    unpriced_requests: u64,
    errors: u64,
    blocked: u64,
    lat50: Option<f64>,
    lat95: Option<f64>,
    lat99: Option<f64>,
    ttft50: Option<f64>,
    ttft95: Option<f64>,
    ttft99: Option<f64>,
}

#[derive(Debug, Row, Deserialize)]
struct RollupOut {
    day_number: i64,
    k_tenant: String,
    k_model: String,
    k_provider: String,
    k_route: String,
    requests: u64,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    estimated_requests: u64,
    cost_micro_usd: i64,
    unpriced_requests: u64,
    errors: u64,
    blocked: u64,
    latency_buckets: Vec<u8>,
    latency_counts: Vec<u64>,
    ttft_buckets: Vec<u8>,
    ttft_counts: Vec<u64>,
}

#[derive(Debug, Row, Serialize)]
struct AnomalyRow {
    id: String,
    tenant: String,
    metric: String,
    open: u8,
    started_ns: i64,
    updated_ns: i64,
    version: i64,
    body: String,
}

#[derive(Debug, Row, Serialize)]
struct DeliveryRow {
    anomaly_id: String,
    event: String,
    sink: String,
    status: String,
    attempts: u32,
    last_error: String,
    has_error: u8,
    updated_ns: i64,
    version: i64,
}

/// A delivery's newest version, as read.
#[derive(Debug, Row, Deserialize)]
struct DeliveryOut {
    anomaly_id: String,
    event: String,
    sink: String,
    status: String,
    attempts: u32,
    last_error: String,
    has_error: u8,
    updated_ns: i64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct CheckpointRow {
    name: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    saved_ns: i64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct MemberRow {
    holder: String,
    started_ns: i64,
    beat_ns: i64,
}

#[derive(Debug, Row, Deserialize)]
struct FindingsOut {
    keys: Vec<String>,
    bucket: String,
    findings: u64,
    traces: u64,
}

fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

impl ClickHouseStorage {
    /// Connects to `url` (`http://host:8123`), creates `database` if needed, migrates it and
    /// starts the writer with default options.
    pub async fn connect(url: &str, database: &str) -> Result<Self, StorageError> {
        Self::connect_with(url, database, WriterOptions::default()).await
    }

    /// [`ClickHouseStorage::connect`] with writer options.
    pub async fn connect_with(
        url: &str,
        database: &str,
        options: WriterOptions,
    ) -> Result<Self, StorageError> {
        if !valid_identifier(database) {
            return Err(StorageError::Invalid(format!(
                "database name `{database}`: letters, digits and `_`"
            )));
        }
        // RowBinaryWithNamesAndTypes (the crate's validation) is newer than 18.16
        let base = Client::default().with_url(url).with_validation(false);
        let version: String = base.query("SELECT version()").fetch_one().await?;
        let features = Features::from_version(&version);
        base.query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
            .execute()
            .await?;
        let core = Arc::new(Core {
            client: base.with_database(database),
            database: database.to_string(),
            features,
            last_ingested: AtomicI64::new(0),
        });
        core.migrate().await?;
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(core.clone(), rx, options));
        let queue_rows = options.queue_rows.clamp(1, Semaphore::MAX_PERMITS);
        Ok(ClickHouseStorage {
            core,
            jobs,
            queued: Arc::new(Semaphore::new(queue_rows)),
            queue_rows,
        })
    }

    /// What the server supports.
    pub fn features(&self) -> Features {
        self.core.features
    }

    /// The database used.
    pub fn database(&self) -> &str {
        &self.core.database
    }

    /// Sets a table TTL of `days` on traces and rollups where the server has TTL (19.6+), so
    /// ClickHouse drops old rows in its merges even when no collector runs retention. Returns
    /// whether it was set; older servers rely on [`Storage::delete_before`] alone.
    pub async fn set_ttl(&self, days: u32) -> Result<bool, StorageError> {
        if !self.core.features.ttl || days == 0 {
            return Ok(false);
        }
        for (table, column) in [("traces", "start_day"), ("usage_day", "day")] {
            self.core
                .client
                .query(&format!(
                    "ALTER TABLE {table} MODIFY TTL {column} + toIntervalDay({days})"
                ))
                .execute()
                .await?;
        }
        Ok(true)
    }
}

impl Core {
    fn string_type(&self) -> &'static str {
        if self.features.low_cardinality {
            "LowCardinality(String)"
        } else {
            "String"
        }
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        self.client
            .query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, applied_ns Int64)
                 ENGINE = MergeTree() ORDER BY version",
            )
            .execute()
            .await?;
        let applied: Vec<u32> = self
            .client
            .query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all()
            .await?;
        let lc = self.string_type();
        // one histogram column pair of the rollup: the traces' buckets summed per bucket
        let hist = |bucket: &str, name: &str| {
            let sum = format!(
                "sumMap(if({bucket} = 255, emptyArrayUInt8(), [{bucket}]), if({bucket} = 255, emptyArrayUInt64(), [toUInt64(1)]))"
            );
            format!("tupleElement({sum}, 1) AS `{name}.bucket`, tupleElement({sum}, 2) AS `{name}.count`")
        };
        let rollup_select = format!(
            "SELECT start_day AS day, tenant, model, provider, route, count() AS requests,
                sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens,
                sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens,
                toUInt64(sum(usage_estimated)) AS estimated_requests,
                sum(if(cost_known = 1, cost_micro_usd, 0)) AS cost_micro_usd,
                toUInt64(sum(1 - cost_known)) AS unpriced_requests,
                countIf(outcome = 'error') AS errors, countIf(outcome = 'blocked') AS blocked,
                {}, {}
             FROM traces GROUP BY day, tenant, model, provider, route",
            hist("latency_bucket", "latencyMap"),
            hist("ttft_bucket", "ttftMap")
        );
        let migrations: Vec<(u32, Vec<String>)> = vec![
            (
                1,
                vec![format!(
                    "CREATE TABLE IF NOT EXISTS traces (
                    request_id String,
                    tenant {lc},
                    provider {lc},
                    model {lc},
                    route {lc},
                    outcome {lc},
                    start_day Date,
                    start_ns Int64,
                    ingested_ns Int64,
                    latency_ms Float64,
                    ttft_ms Float64,
                    latency_bucket UInt8,
                    ttft_bucket UInt8,
                    status_code UInt16,
                    input_tokens UInt64,
                    cached_input_tokens UInt64,
                    output_tokens UInt64,
                    reasoning_tokens UInt64,
                    usage_estimated UInt8,
                    cost_micro_usd Int64,
                    cost_known UInt8,
                    findings_total UInt32,
                    finding_rules Array(String),
                    finding_categories Array(String),
                    summary String
                ) ENGINE = MergeTree()
                PARTITION BY toYYYYMM(start_day)
                ORDER BY (tenant, start_ns, request_id)"
                )],
            ),
            (
                // daily usage rollups, kept by a materialized view and filled from the traces
                // already stored (a collector migrates before it takes writes)
                2,
                vec![
                    format!(
                        "CREATE TABLE IF NOT EXISTS usage_day (
                        day Date,
                        tenant {lc},
                        model {lc},
                        provider {lc},
                        route {lc},
                        requests UInt64,
                        input_tokens UInt64,
                        cached_input_tokens UInt64,
                        output_tokens UInt64,
                        reasoning_tokens UInt64,
                        estimated_requests UInt64,
                        cost_micro_usd Int64,
                        unpriced_requests UInt64,
                        errors UInt64,
                        blocked UInt64,
                        latencyMap Nested(bucket UInt8, count UInt64),
                        ttftMap Nested(bucket UInt8, count UInt64)
                    ) ENGINE = SummingMergeTree()
                    PARTITION BY toYYYYMM(day)
                    ORDER BY (tenant, day, model, provider, route)"
                    ),
                    format!(
                        "CREATE MATERIALIZED VIEW IF NOT EXISTS usage_day_mv TO usage_day AS {rollup_select}"
                    ),
                    format!("INSERT INTO usage_day {rollup_select}"),
                ],
            ),
            (
                // findings' actions and directions (for the anomaly rules); anomalies, their
                // deliveries, checkpoints and members, each replaced by a newer version
                3,
                vec![
                    "ALTER TABLE traces ADD COLUMN finding_actions Array(String),
                        ADD COLUMN finding_directions Array(String)"
                        .to_string(),
                    "CREATE TABLE IF NOT EXISTS anomalies (
                        id String, tenant String, metric String, open UInt8,
                        started_ns Int64, updated_ns Int64, version Int64, body String
                    ) ENGINE = ReplacingMergeTree(version) ORDER BY id"
                        .to_string(),
                    "CREATE TABLE IF NOT EXISTS deliveries (
                        anomaly_id String, event String, sink String, status String,
                        attempts UInt32, last_error String, has_error UInt8, updated_ns Int64,
                        version Int64
                    ) ENGINE = ReplacingMergeTree(version) ORDER BY (anomaly_id, event, sink)"
                        .to_string(),
                    "CREATE TABLE IF NOT EXISTS checkpoints (
                        name String, data String, saved_ns Int64
                    ) ENGINE = ReplacingMergeTree(saved_ns) ORDER BY name"
                        .to_string(),
                    "CREATE TABLE IF NOT EXISTS members (
                        holder String, started_ns Int64, beat_ns Int64
                    ) ENGINE = ReplacingMergeTree(beat_ns) ORDER BY holder"
                        .to_string(),
                ],
            ),
        ];
        for (version, statements) in migrations {
            if applied.contains(&version) {
                continue;
            }
            for sql in statements {
                // a column added by a run that stopped before recording its version
                if let Some(column) = sql
                    .strip_prefix("ALTER TABLE traces ADD COLUMN ")
                    .and_then(|rest| rest.split_whitespace().next())
                {
                    let n: u64 = self
                        .client
                        .query("SELECT count() FROM system.columns WHERE database = ? AND table = 'traces' AND name = ?")
                        .bind(self.database.as_str())
                        .bind(column)
                        .fetch_one()
                        .await?;
                    if n > 0 {
                        continue;
                    }
                }
                self.client.query(&sql).execute().await?;
            }
            self.client
                .query("INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)")
                .bind(version)
                .bind(now_ns())
                .execute()
                .await?;
        }
        Ok(())
    }

    /// Next ingest position (unique, increasing).
    fn next_position(&self) -> i64 {
        let now = now_ns();
        self.last_ingested
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .map_or(now, |last| now.max(last.saturating_add(1)))
    }

    /// Request ids of `rows` already stored. One query per slice of ids (bounded in bytes),
    /// narrowed by the sort key to the slice's tenants and start times: a retried summary has
    /// the tenant and start time of the stored one.
    async fn stored_ids(&self, rows: &[&TraceSummary]) -> Result<HashSet<String>, StorageError> {
        let mut found = HashSet::new();
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && bytes < ID_QUERY_BYTES {
                bytes += rows.get(end).map_or(0, |s| s.request_id.len() + 4);
                end += 1;
            }
            let slice = rows.get(start..end).unwrap_or_default();
            start = end;
            let mut tenants: Vec<&str> = slice.iter().map(|s| s.tenant.as_str()).collect();
            tenants.sort_unstable();
            tenants.dedup();
            let min = slice.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
            let max = slice.iter().map(|s| s.start_unix_nanos).max().unwrap_or(0);
            let ids: Vec<&str> = slice.iter().map(|s| s.request_id.as_str()).collect();
            // the ids travel as one array value: a list of literals parses far slower
            let sql = format!(
                "SELECT request_id FROM traces
                 WHERE tenant IN {} AND start_ns >= ? AND start_ns <= ?
                   AND request_id IN (SELECT arrayJoin(?))",
                placeholders(tenants.len())
            );
            let mut q = self.client.query(&sql);
            for t in tenants {
                q = q.bind(t);
            }
            let q = q
                .bind(min)
                .bind(max)
                .bind(ids)
                .with_setting("max_query_size", (ID_QUERY_BYTES * 2 + 65_536).to_string());
            found.extend(q.fetch_all::<String>().await?);
        }
        Ok(found)
    }

    /// Stores `rows` (one INSERT), skipping ids already stored or repeated.
    async fn write(&self, rows: &[&TraceSummary]) -> Result<(), StorageError> {
        let stored = self.stored_ids(rows).await?;
        let mut insert = self.client.insert::<TraceRow<'static>>("traces").await?;
        let mut seen = HashSet::with_capacity(rows.len());
        let mut encoded = Vec::with_capacity(1024);
        for s in rows {
            if stored.contains(&s.request_id) || !seen.insert(s.request_id.as_str()) {
                continue;
            }
            encoded.clear();
            s.encode(&mut encoded)
                .map_err(|e| StorageError::Internal(e.to_string()))?;
            insert
                .write(&row_of(s, &encoded, self.next_position()))
                .await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// [`Core::write`], retrying transient failures with a short backoff.
    async fn write_retrying(&self, rows: &[&TraceSummary]) -> Result<(), StorageError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.write(rows).await {
                Err(StorageError::Unavailable(e)) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, rows = rows.len(), "ClickHouse insert failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Inserts running at once: while one streams its rows, the next one checks its ids.
const WRITES_IN_FLIGHT: usize = 2;

/// The writer: gathers queued batches into large inserts, runs up to [`WRITES_IN_FLIGHT`] of
/// them at once, and answers each batch. A batch sharing a request id with an insert in flight
/// waits for it (then finds the id stored), so two inserts never race on one id.
async fn write_loop(core: Arc<Core>, mut rx: mpsc::UnboundedReceiver<Job>, options: WriterOptions) {
    let mut writes: JoinSet<()> = JoinSet::new();
    // (hashes of) the request ids each insert in flight holds: a collision only makes a batch
    // wait for an insert it did not need to
    let mut held: HashMap<tokio::task::Id, Vec<u64>> = HashMap::new();
    let mut busy: HashSet<u64> = HashSet::new();
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut open = true;
    let release = |done: Option<Result<(tokio::task::Id, ()), tokio::task::JoinError>>,
                   held: &mut HashMap<tokio::task::Id, Vec<u64>>,
                   busy: &mut HashSet<u64>| {
        let id = match done {
            Some(Ok((id, ()))) => id,
            Some(Err(e)) => e.id(),
            None => return,
        };
        for hash in held.remove(&id).unwrap_or_default() {
            busy.remove(&hash);
        }
    };
    let clashes = |job: &Job, busy: &HashSet<u64>| {
        !busy.is_empty()
            && job
                .rows
                .iter()
                .any(|s| busy.contains(&id_hash(&s.request_id)))
    };
    loop {
        while writes.len() >= WRITES_IN_FLIGHT {
            let done = writes.join_next_with_id().await;
            release(done, &mut held, &mut busy);
        }
        let mut jobs = Vec::new();
        let mut rows = 0;
        let mut still_waiting = VecDeque::new();
        while let Some(job) = waiting.pop_front() {
            if rows < options.batch_rows && !clashes(&job, &busy) {
                rows += job.rows.len();
                jobs.push(job);
            } else {
                still_waiting.push_back(job);
            }
        }
        waiting = still_waiting;
        if jobs.is_empty() {
            if !open && waiting.is_empty() && writes.is_empty() {
                return;
            }
            tokio::select! {
                job = rx.recv(), if open => match job {
                    Some(job) => waiting.push_back(job),
                    None => open = false,
                },
                done = writes.join_next_with_id(), if !writes.is_empty() => {
                    release(done, &mut held, &mut busy);
                }
            }
            continue;
        }
        let deadline = tokio::time::Instant::now() + options.flush_interval;
        while open && rows < options.batch_rows {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) if clashes(&job, &busy) => waiting.push_back(job),
                Ok(Some(job)) => {
                    rows += job.rows.len();
                    jobs.push(job);
                }
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        let ids: Vec<u64> = jobs
            .iter()
            .flat_map(|j| j.rows.iter().map(|s| id_hash(&s.request_id)))
            .collect();
        busy.extend(ids.iter().copied());
        let handle = writes.spawn(write_jobs(core.clone(), jobs));
        held.insert(handle.id(), ids);
    }
}

/// A request id's hash (FNV-1a), for the writer's in-flight set.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes gathered batches as one insert and answers each.
async fn write_jobs(core: Arc<Core>, mut jobs: Vec<Job>) {
    let all: Vec<&TraceSummary> = jobs.iter().flat_map(|j| j.rows.iter()).collect();
    let result = core.write_retrying(&all).await;
    drop(all);
    match result {
        Ok(()) => {
            for job in jobs {
                let n = job.rows.len();
                let _ = job.done.send(Ok(n));
            }
        }
        Err(StorageError::Unavailable(e)) => {
            for job in jobs {
                let _ = job.done.send(Err(StorageError::Unavailable(e.clone())));
            }
        }
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.pop() {
                let _ = job.done.send(Err(e));
            }
        }
        Err(e) => {
            // refused: write each batch alone so only the bad one fails
            tracing::warn!(error = %e, batches = jobs.len(), "ClickHouse refused an insert; writing its batches one by one");
            for job in jobs {
                let rows: Vec<&TraceSummary> = job.rows.iter().collect();
                let result = core.write_retrying(&rows).await.map(|()| rows.len());
                let _ = job.done.send(result);
            }
        }
    }
}

impl Storage for ClickHouseStorage {
    /// Queues a batch for the writer and waits until ClickHouse has it; summaries already
    /// stored (same request id) are skipped. Returns the number accepted (all of them).
    async fn insert(&self, batch: Vec<TraceSummary>) -> Result<usize, StorageError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let room = u32::try_from(batch.len().min(self.queue_rows)).unwrap_or(u32::MAX);
        let room = self
            .queued
            .clone()
            .try_acquire_many_owned(room)
            .map_err(|_| {
                StorageError::Unavailable(format!(
                    "the ClickHouse write queue is full ({} rows); retry later",
                    self.queue_rows
                ))
            })?;
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                rows: batch,
                done,
                _room: room,
            })
            .map_err(|_| StorageError::Unavailable("the ClickHouse writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Unavailable("the ClickHouse writer has stopped".into()))?
    }

    /// Number of stored traces.
    async fn count(&self) -> Result<u64, StorageError> {
        Ok(self
            .core
            .client
            .query("SELECT count() FROM traces")
            .fetch_one()
            .await?)
    }

    /// One trace by request id, within the scope.
    async fn get(
        &self,
        request_id: String,
        scope: TenantScope,
    ) -> Result<Option<TraceSummary>, StorageError> {
        let blobs: Vec<SummaryBlob> = match scope {
            TenantScope::All => {
                self.core
                    .client
                    .query("SELECT summary FROM traces WHERE request_id = ? LIMIT 1")
                    .bind(request_id)
                    .fetch_all()
                    .await?
            }
            TenantScope::Only(tenants) => {
                if tenants.is_empty() {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT summary FROM traces WHERE request_id = ? AND tenant IN {} LIMIT 1",
                    placeholders(tenants.len())
                );
                let mut q = self.core.client.query(&sql).bind(request_id);
                for t in tenants {
                    q = q.bind(t);
                }
                q.fetch_all().await?
            }
        };
        blobs
            .into_iter()
            .next()
            .map(|b| {
                TraceSummary::decode(b.summary.as_slice())
                    .map_err(|e| StorageError::Internal(e.to_string()))
            })
            .transpose()
    }
    async fn traces(&self, q: TraceQuery) -> Result<TracePage, StorageError> {
        let mut f = Filter::default();
        f.scope(&q.scope);
        f.eq("tenant", &q.tenant);
        f.eq("provider", &q.provider);
        f.eq("model", &q.model);
        f.eq("route", &q.route);
        f.eq("outcome", &q.outcome);
        f.range(q.from_ns, q.to_ns);
        match q.has_findings {
            Some(true) => f.clauses.push("findings_total > 0".into()),
            Some(false) => f.clauses.push("findings_total = 0".into()),
            None => {}
        }
        if let Some(c) = &q.category {
            f.clauses.push(
                "arrayExists(c -> c = ? OR startsWith(c, concat(?, '.')), finding_categories)"
                    .into(),
            );
            f.params.push(Param::S(c.clone()));
            f.params.push(Param::S(c.clone()));
        }
        if let Some(r) = &q.rule_id {
            f.clauses.push("has(finding_rules, ?)".into());
            f.params.push(Param::S(r.clone()));
        }
        if let Some(c) = q.min_cost_micro_usd {
            f.clauses
                .push("cost_known = 1 AND cost_micro_usd >= ?".into());
            f.params.push(Param::I(c));
        }
        if let Some(l) = q.min_latency_ms {
            f.clauses.push("latency_ms >= ?".into());
            f.params.push(Param::F(l as f64));
        }
        if let Some(c) = q.cursor {
            f.clauses.push("ingested_ns < ?".into());
            f.params.push(Param::I(c));
        }
        let limit = q.limit.clamp(1, 1000);
        let sql = format!(
            "SELECT ingested_ns, summary FROM traces {} ORDER BY ingested_ns DESC LIMIT {}",
            f.sql(),
            limit + 1
        );
        let rows: Vec<PagedBlob> = f.bind(self.core.client.query(&sql)).fetch_all().await?;
        let mut traces = Vec::new();
        let mut last = None;
        let more = rows.len() > limit as usize;
        for r in rows.into_iter().take(limit as usize) {
            traces.push(
                TraceSummary::decode(r.summary.as_slice())
                    .map_err(|e| StorageError::Internal(e.to_string()))?,
            );
            last = Some(r.ingested_ns);
        }
        Ok(TracePage {
            traces,
            next_cursor: if more { last } else { None },
        })
    }

    async fn usage(&self, q: UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
        if rollup::answers(&q) {
            return self.usage_from_rollups(&q).await;
        }
        let mut f = Filter::default();
        f.scope(&q.scope);
        f.eq("tenant", &q.tenant);
        f.range(q.from_ns, q.to_ns);
        let dims: Vec<&str> = q
            .group_by
            .iter()
            .map(|d| match d {
                Dimension::Tenant => "tenant",
                Dimension::Model => "model",
                Dimension::Provider => "provider",
                Dimension::Route => "route",
            })
            .collect();
        let keys = format!(
            "[{}]",
            dims.iter()
                .map(|d| format!("toString({d})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let keys = if dims.is_empty() {
            "emptyArrayString()".to_string()
        } else {
            keys
        };
        let bucket = q.bucket.map_or("''", bucket_sql);
        let sql = format!(
            "SELECT {keys} AS keys, {bucket} AS bucket, count() AS requests,
                sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens,
                sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens,
                toUInt64(sum(usage_estimated)) AS estimated_requests,
                sum(if(cost_known = 1, cost_micro_usd, 0)) AS cost_micro_usd,
                toUInt64(sum(1 - cost_known)) AS unpriced_requests,
                countIf(outcome = 'error') AS errors, countIf(outcome = 'blocked') AS blocked,
                {}, {}
             FROM traces {} GROUP BY keys, bucket ORDER BY bucket, keys",
            percentile_sql("latency_ms"),
            percentile_sql("ttft_ms"),
            f.sql()
        );
        let rows: Vec<UsageOut> = f.bind(self.core.client.query(&sql)).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|r| UsageRow {
                group: q
                    .group_by
                    .iter()
                    .zip(r.keys)
                    .map(|(d, v)| (d.as_str().to_string(), v))
                    .collect::<BTreeMap<_, _>>(),
                bucket: q.bucket.map(|_| r.bucket),
                requests: r.requests,
                input_tokens: r.input_tokens,
                cached_input_tokens: r.cached_input_tokens,
                output_tokens: r.output_tokens,
                reasoning_tokens: r.reasoning_tokens,
                estimated_requests: r.estimated_requests,
                cost_micro_usd: r.cost_micro_usd,
                unpriced_requests: r.unpriced_requests,
                errors: r.errors,
                blocked: r.blocked,
                latency_ms: Percentiles {
                    p50: r.lat50,
                    p95: r.lat95,
                    p99: r.lat99,
                },
                time_to_first_token_ms: Percentiles {
                    p50: r.ttft50,
                    p95: r.ttft95,
                    p99: r.ttft99,
                },
            })
            .collect())
    }

    async fn findings(&self, q: FindingsQuery) -> Result<Vec<FindingsRow>, StorageError> {
        let mut cols = Vec::new();
        for b in &q.by {
            cols.push(match b.as_str() {
                "category" => ("category", "finding_categories[fi]"),
                "rule" => ("rule", "finding_rules[fi]"),
                "tenant" => ("tenant", "toString(tenant)"),
                other => return Err(StorageError::Invalid(format!("unknown grouping `{other}`"))),
            });
        }
        let mut f = Filter::default();
        f.scope(&q.scope);
        f.eq("tenant", &q.tenant);
        f.range(q.from_ns, q.to_ns);
        f.clauses.push("findings_total > 0".into());
        if let Some(c) = &q.category {
            f.clauses.push(
                "(finding_categories[fi] = ? OR startsWith(finding_categories[fi], concat(?, '.')))"
                    .into(),
            );
            f.params.push(Param::S(c.clone()));
            f.params.push(Param::S(c.clone()));
        }
        f.eq("finding_actions[fi]", &q.action);
        f.eq("finding_directions[fi]", &q.direction);
        let keys = if cols.is_empty() {
            "emptyArrayString()".to_string()
        } else {
            format!(
                "[{}]",
                cols.iter().map(|(_, c)| *c).collect::<Vec<_>>().join(", ")
            )
        };
        let bucket = q.bucket.map_or("''", bucket_sql);
        // one row per finding, by its index into the parallel arrays (rows stored before
        // migration 3 have no actions or directions: those read as '')
        let sql = format!(
            "SELECT {keys} AS keys, {bucket} AS bucket, count() AS findings,
                uniqExact(request_id) AS traces
             FROM traces
             ARRAY JOIN arrayEnumerate(finding_rules) AS fi
             {} GROUP BY keys, bucket ORDER BY keys, bucket",
            f.sql()
        );
        let rows: Vec<FindingsOut> = f.bind(self.core.client.query(&sql)).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|r| FindingsRow {
                group: cols
                    .iter()
                    .zip(r.keys)
                    .map(|((name, _), v)| (name.to_string(), v))
                    .collect(),
                bucket: q.bucket.map(|_| r.bucket),
                findings: r.findings,
                traces: r.traces,
            })
            .collect())
    }

    /// Deletes traces that started before `before_ns`, and rollup days before its day. Whole
    /// months go by dropping their partitions (no rewrite); what remains before the cutoff goes
    /// by a mutation, which rewrites that month's parts, so the collector's retention task asks
    /// with day-aligned cutoffs (at most one mutation a day).
    async fn delete_before(&self, before_ns: i64) -> Result<u64, StorageError> {
        let c = &self.core.client;
        let n: u64 = c
            .query("SELECT count() FROM traces WHERE start_ns < ?")
            .bind(before_ns)
            .fetch_one()
            .await?;
        let cutoff_day = day_text(before_ns.div_euclid(DAY_NS));
        let mut mutations = 0;
        if n > 0 {
            // months whose every trace is before the cutoff
            let months: Vec<u32> = c
                .query(
                    "SELECT toYYYYMM(start_day) AS month FROM traces
                     GROUP BY month HAVING max(start_ns) < ? ORDER BY month",
                )
                .bind(before_ns)
                .fetch_all()
                .await?;
            for month in &months {
                // a partition value, not an identifier: a number from the server
                c.query(&format!("ALTER TABLE traces DROP PARTITION {month}"))
                    .execute()
                    .await?;
            }
            let left: u64 = c
                .query("SELECT count() FROM traces WHERE start_ns < ?")
                .bind(before_ns)
                .fetch_one()
                .await?;
            if left > 0 {
                c.query("ALTER TABLE traces DELETE WHERE start_ns < ?")
                    .bind(before_ns)
                    .execute()
                    .await?;
                mutations += 1;
            }
        }
        let old_days: u64 = c
            .query("SELECT count() FROM usage_day WHERE day < toDate(?)")
            .bind(cutoff_day.as_str())
            .fetch_one()
            .await?;
        if old_days > 0 {
            c.query("ALTER TABLE usage_day DELETE WHERE day < toDate(?)")
                .bind(cutoff_day.as_str())
                .execute()
                .await?;
            mutations += 1;
        }
        // closed anomalies last updated before the cutoff, their deliveries, departed members
        let ended: Vec<String> = c
            .query(
                "SELECT id FROM (
                    SELECT id, argMax(open, version) AS o, argMax(updated_ns, version) AS u
                    FROM anomalies GROUP BY id
                 ) WHERE o = 0 AND u < ?",
            )
            .bind(before_ns)
            .fetch_all()
            .await?;
        for chunk in ended.chunks(EXISTS_CHUNK) {
            for (table, column) in [("anomalies", "id"), ("deliveries", "anomaly_id")] {
                let sql = format!(
                    "ALTER TABLE {table} DELETE WHERE {column} IN {}",
                    placeholders(chunk.len())
                );
                let mut q = c.query(&sql);
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                q.execute().await?;
                mutations += 1;
            }
        }
        let gone: u64 = c
            .query("SELECT count() FROM members WHERE beat_ns < ?")
            .bind(before_ns)
            .fetch_one()
            .await?;
        if gone > 0 {
            c.query("ALTER TABLE members DELETE WHERE beat_ns < ?")
                .bind(before_ns)
                .execute()
                .await?;
            mutations += 1;
        }
        if mutations > 0 {
            // mutations run in the background; wait so the answer is final
            self.wait_for_mutations().await?;
        }
        Ok(n)
    }

    async fn put_anomalies(&self, batch: Vec<Anomaly>) -> Result<(), StorageError> {
        self.put_anomalies_rows(batch).await
    }

    async fn anomalies(&self, q: AnomalyQuery) -> Result<Vec<StoredAnomaly>, StorageError> {
        self.anomaly_rows(q).await
    }

    async fn put_deliveries(&self, batch: Vec<Delivery>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut insert = self.core.client.insert::<DeliveryRow>("deliveries").await?;
        for d in batch {
            insert
                .write(&DeliveryRow {
                    has_error: u8::from(d.last_error.is_some()),
                    last_error: d.last_error.unwrap_or_default(),
                    anomaly_id: d.anomaly_id,
                    event: d.event,
                    sink: d.sink,
                    status: d.status,
                    attempts: d.attempts,
                    updated_ns: d.updated_ns,
                    version: self.core.next_position(),
                })
                .await?;
        }
        insert.end().await?;
        Ok(())
    }

    async fn save_checkpoint(&self, name: String, data: Vec<u8>) -> Result<(), StorageError> {
        let mut insert = self
            .core
            .client
            .insert::<CheckpointRow>("checkpoints")
            .await?;
        insert
            .write(&CheckpointRow {
                name,
                data,
                saved_ns: self.core.next_position(),
            })
            .await?;
        insert.end().await?;
        Ok(())
    }

    async fn load_checkpoint(&self, name: String) -> Result<Option<Vec<u8>>, StorageError> {
        let rows: Vec<CheckpointRow> = self
            .core
            .client
            .query("SELECT name, data, saved_ns FROM checkpoints WHERE name = ? ORDER BY saved_ns DESC LIMIT 1")
            .bind(name)
            .fetch_all()
            .await?;
        Ok(rows.into_iter().next().map(|r| r.data))
    }

    async fn heartbeat(&self, member: Member) -> Result<(), StorageError> {
        let mut insert = self.core.client.insert::<MemberRow>("members").await?;
        insert
            .write(&MemberRow {
                holder: member.holder,
                started_ns: member.started_ns,
                beat_ns: member.beat_ns,
            })
            .await?;
        insert.end().await?;
        Ok(())
    }

    async fn members(&self, since_ns: i64) -> Result<Vec<Member>, StorageError> {
        let rows: Vec<MemberRow> = self
            .core
            .client
            .query(
                "SELECT holder, argMax(started_ns, beat_ns) AS started, max(beat_ns) AS last_beat
                 FROM members GROUP BY holder HAVING last_beat >= ? ORDER BY started, holder",
            )
            .bind(since_ns)
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Member {
                holder: r.holder,
                started_ns: r.started_ns,
                beat_ns: r.beat_ns,
            })
            .collect())
    }
}

impl ClickHouseStorage {
    /// Anomalies, deliveries, checkpoints and members: small tables of versioned rows
    /// (`ReplacingMergeTree`); reads take each key's newest version with `argMax`, which holds
    /// before and after the engine's merges.
    async fn put_anomalies_rows(&self, batch: Vec<Anomaly>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut insert = self.core.client.insert::<AnomalyRow>("anomalies").await?;
        for a in &batch {
            let body =
                serde_json::to_string(a).map_err(|e| StorageError::Internal(e.to_string()))?;
            insert
                .write(&AnomalyRow {
                    id: a.id.clone(),
                    tenant: a.tenant.clone(),
                    metric: a.metric.clone(),
                    open: u8::from(a.open),
                    started_ns: a.started_ns,
                    updated_ns: a.updated_ns,
                    version: self.core.next_position(),
                    body,
                })
                .await?;
        }
        insert.end().await?;
        Ok(())
    }

    async fn anomaly_rows(&self, q: AnomalyQuery) -> Result<Vec<StoredAnomaly>, StorageError> {
        let mut inner = Filter::default();
        inner.scope(&q.scope);
        inner.eq("tenant", &q.tenant);
        inner.eq("metric", &q.metric);
        let mut outer = Filter::default();
        if let Some(open) = q.open {
            outer.clauses.push("o = ?".into());
            outer.params.push(Param::I(i64::from(open)));
        }
        if let Some(f) = q.from_ns {
            outer.clauses.push("(o = 1 OR u >= ?)".into());
            outer.params.push(Param::I(f));
        }
        if let Some(t) = q.to_ns {
            outer.clauses.push("s < ?".into());
            outer.params.push(Param::I(t));
        }
        let sql = format!(
            "SELECT b FROM (
                SELECT id, argMax(body, version) AS b, argMax(open, version) AS o,
                    argMax(started_ns, version) AS s, argMax(updated_ns, version) AS u
                FROM anomalies {} GROUP BY id
             ) {} ORDER BY s DESC, id LIMIT {}",
            inner.sql(),
            outer.sql(),
            q.limit.clamp(1, 1000)
        );
        let mut query = self.core.client.query(&sql);
        query = inner.bind(query);
        query = outer.bind(query);
        let bodies: Vec<String> = query.fetch_all().await?;
        let anomalies = bodies
            .iter()
            .map(|b| serde_json::from_str::<Anomaly>(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageError::Internal(e.to_string()))?;
        let mut deliveries: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
        if !anomalies.is_empty() {
            let sql = format!(
                "SELECT anomaly_id, event, sink, argMax(status, version) AS status,
                    argMax(attempts, version) AS attempts, argMax(last_error, version) AS last_error,
                    argMax(has_error, version) AS has_error, argMax(updated_ns, version) AS updated_ns
                 FROM deliveries WHERE anomaly_id IN {}
                 GROUP BY anomaly_id, event, sink ORDER BY anomaly_id, event DESC, sink",
                placeholders(anomalies.len())
            );
            let mut query = self.core.client.query(&sql);
            for a in &anomalies {
                query = query.bind(a.id.as_str());
            }
            for d in query.fetch_all::<DeliveryOut>().await? {
                deliveries
                    .entry(d.anomaly_id.clone())
                    .or_default()
                    .push(Delivery {
                        anomaly_id: d.anomaly_id,
                        event: d.event,
                        sink: d.sink,
                        status: d.status,
                        attempts: d.attempts,
                        last_error: (d.has_error == 1).then_some(d.last_error),
                        updated_ns: d.updated_ns,
                    });
            }
        }
        Ok(anomalies
            .into_iter()
            .map(|anomaly| StoredAnomaly {
                deliveries: deliveries.remove(&anomaly.id).unwrap_or_default(),
                anomaly,
            })
            .collect())
    }

    /// Waits (up to 30 s) until no mutation of this database is pending.
    async fn wait_for_mutations(&self) -> Result<(), StorageError> {
        for _ in 0..600 {
            let pending: u64 = self
                .core
                .client
                .query("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0")
                .bind(self.core.database.as_str())
                .fetch_one()
                .await?;
            if pending == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(StorageError::Unavailable(
            "ClickHouse mutations still running after 30 s".into(),
        ))
    }

    /// Usage from the daily rollups (see [`rollup`]): summed per day and key by the server,
    /// grouped and bucketed like the SQLite backend does.
    async fn usage_from_rollups(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
        let mut f = Filter::default();
        f.scope(&q.scope);
        f.eq("tenant", &q.tenant);
        let (from_day, to_day) = rollup::day_range(q);
        if let Some(d) = from_day {
            f.clauses.push("day >= toDate(?)".into());
            f.params.push(Param::S(day_text(d)));
        }
        if let Some(d) = to_day {
            f.clauses.push("day < toDate(?)".into());
            f.params.push(Param::S(day_text(d)));
        }
        // grouped by day and the asked dimensions only (the others come back empty), so the
        // server merges the histograms and few rows travel; aliases differ from column names,
        // which the WHERE clause would otherwise see
        let dim = |d: Dimension, column: &str| {
            if q.group_by.contains(&d) {
                format!("toString({column})")
            } else {
                "''".to_string()
            }
        };
        let sql = format!(
            "SELECT toInt64(toUInt32(day)) AS day_number, {} AS k_tenant, {} AS k_model,
                {} AS k_provider, {} AS k_route, sum(requests) AS requests,
                sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens,
                sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens,
                sum(estimated_requests) AS estimated_requests, sum(cost_micro_usd) AS cost_micro_usd,
                sum(unpriced_requests) AS unpriced_requests, sum(errors) AS errors,
                sum(blocked) AS blocked,
                tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 1) AS latency_buckets,
                tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 2) AS latency_counts,
                tupleElement(sumMap(ttftMap.bucket, ttftMap.count), 1) AS ttft_buckets,
                tupleElement(sumMap(ttftMap.bucket, ttftMap.count), 2) AS ttft_counts
             FROM usage_day {} GROUP BY day_number, k_tenant, k_model, k_provider, k_route",
            dim(Dimension::Tenant, "tenant"),
            dim(Dimension::Model, "model"),
            dim(Dimension::Provider, "provider"),
            dim(Dimension::Route, "route"),
            f.sql()
        );
        let rows: Vec<RollupOut> = f.bind(self.core.client.query(&sql)).fetch_all().await?;
        let histogram = |buckets: &[u8], counts: &[u64]| {
            let mut h = Histogram::default();
            for (b, n) in buckets.iter().zip(counts) {
                h.add_count(*b, *n);
            }
            h
        };
        Ok(rollup::usage_rows(
            q,
            rows.into_iter().map(|r| {
                let totals = DayTotals {
                    requests: r.requests,
                    input_tokens: r.input_tokens,
                    cached_input_tokens: r.cached_input_tokens,
                    output_tokens: r.output_tokens,
                    reasoning_tokens: r.reasoning_tokens,
                    estimated_requests: r.estimated_requests,
                    cost_micro_usd: r.cost_micro_usd,
                    unpriced_requests: r.unpriced_requests,
                    errors: r.errors,
                    blocked: r.blocked,
                    latency: histogram(&r.latency_buckets, &r.latency_counts),
                    ttft: histogram(&r.ttft_buckets, &r.ttft_counts),
                };
                let key = DayKey {
                    day: r.day_number,
                    tenant: r.k_tenant,
                    model: r.k_model,
                    provider: r.k_provider,
                    route: r.k_route,
                };
                (key, totals)
            }),
        ))
    }
}

/// `YYYY-MM-DD` of a day since the epoch.
fn day_text(day: i64) -> String {
    let t = crate::time::format_nanos(day.saturating_mul(DAY_NS));
    t.get(..10).unwrap_or("1970-01-01").to_string()
}

/// Ids per `IN (...)` list of a mutation (well under the server's query size limit).
const EXISTS_CHUNK: usize = 1000;
/// Bytes of request ids per duplicate-check query (the query size limit is raised to fit).
const ID_QUERY_BYTES: usize = 4 << 20;
/// Tries of one insert when ClickHouse is unavailable or busy.
const WRITE_ATTEMPTS: u32 = 3;

/// `(?, ?, ...)` with `n` placeholders (never empty: `(NULL)` matches nothing).
fn placeholders(n: usize) -> String {
    if n == 0 {
        return "(NULL)".to_string();
    }
    format!("({})", vec!["?"; n].join(", "))
}

fn row_of<'a>(s: &'a TraceSummary, encoded: &'a [u8], ingested_ns: i64) -> TraceRow<'a> {
    let u = s.usage.unwrap_or_default();
    let day = s.start_unix_nanos.div_euclid(DAY_NS);
    let latency_ms = if s.end_unix_nanos > 0 && s.end_unix_nanos >= s.start_unix_nanos {
        (s.end_unix_nanos - s.start_unix_nanos) as f64 / 1e6
    } else {
        f64::NAN
    };
    let ttft_ms = if s.time_to_first_token_nanos > 0 {
        s.time_to_first_token_nanos as f64 / 1e6
    } else {
        f64::NAN
    };
    let bucket = |ms: f64| {
        if ms.is_nan() {
            255
        } else {
            Histogram::bucket(ms)
        }
    };
    TraceRow {
        request_id: &s.request_id,
        tenant: &s.tenant,
        provider: &s.provider,
        model: model_of(s),
        route: &s.route,
        outcome: outcome_name(s.outcome),
        start_day: u16::try_from(day.max(0)).unwrap_or(u16::MAX),
        start_ns: s.start_unix_nanos,
        ingested_ns,
        latency_ms,
        ttft_ms,
        latency_bucket: bucket(latency_ms),
        ttft_bucket: bucket(ttft_ms),
        status_code: u16::try_from(s.status_code).unwrap_or(u16::MAX),
        input_tokens: u.input_tokens,
        cached_input_tokens: u.cached_input_tokens,
        output_tokens: u.output_tokens,
        reasoning_tokens: u.reasoning_tokens,
        usage_estimated: u8::from(u.estimated),
        cost_micro_usd: s.cost_micro_usd,
        cost_known: u8::from(s.cost_known),
        findings_total: s.findings_total,
        finding_rules: s.findings.iter().map(|f| f.rule_id.as_str()).collect(),
        finding_categories: s.findings.iter().map(|f| f.category.as_str()).collect(),
        summary: encoded,
        finding_actions: s.findings.iter().map(|f| action_name(f.action)).collect(),
        finding_directions: s
            .findings
            .iter()
            .map(|f| direction_name(f.direction))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_by_version() {
        let old = Features::from_version("18.16.1");
        assert_eq!(old.version, (18, 16));
        assert!(!old.low_cardinality && !old.ttl && !old.codecs);
        let new = Features::from_version("24.8.4.13");
        assert!(new.low_cardinality && new.ttl && new.codecs);
        assert!(!valid_identifier("tollgate; DROP TABLE x"));
        assert!(valid_identifier("tollgate_test_1"));
    }
}
