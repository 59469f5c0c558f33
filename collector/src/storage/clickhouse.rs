//! ClickHouse storage (issue 5, in progress): connection and server-version detection, versioned
//! schema migrations, idempotent batch inserts, and lookups. The backend talks HTTP with the
//! official `clickhouse` crate (RowBinary). It is written for current ClickHouse releases and
//! kept working on Debian's 18.16: features newer servers have (LowCardinality without a
//! setting, TTL, column codecs) are used only when `version()` says the server has them. Every
//! value goes through the crate's `?` binding (escaped client-side); identifiers are fixed in
//! this file. The query side of the `Storage` trait follows (see ADR 0010).

use super::{
    model_of, outcome_name, Bucket, Dimension, FindingsQuery, FindingsRow, Percentiles, Storage,
    StorageError, TenantScope, TracePage, TraceQuery, UsageQuery, UsageRow,
};
use clickhouse::{Client, Row};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
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

/// One stored trace, as a ClickHouse row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct TraceRow {
    request_id: String,
    tenant: String,
    provider: String,
    model: String,
    route: String,
    outcome: String,
    start_day: u16,
    start_ns: i64,
    ingested_ns: i64,
    latency_ms: f64,
    ttft_ms: f64,
    status_code: u16,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    usage_estimated: u8,
    cost_micro_usd: i64,
    cost_known: u8,
    findings_total: u32,
    finding_rules: Vec<String>,
    finding_categories: Vec<String>,
    #[serde(with = "serde_bytes")]
    summary: Vec<u8>,
}

/// The stored protobuf of a trace.
#[derive(Debug, Row, Deserialize)]
struct SummaryBlob {
    #[serde(with = "serde_bytes")]
    summary: Vec<u8>,
}

/// The ClickHouse backend.
#[derive(Clone)]
pub struct ClickHouseStorage {
    client: Client,
    database: String,
    features: Features,
    /// Last ingest position handed out: unique and increasing within this collector, so pages
    /// stay stable while rows arrive.
    last_ingested: Arc<AtomicI64>,
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
    /// Connects to `url` (`http://host:8123`), creates `database` if needed and migrates it.
    pub async fn connect(url: &str, database: &str) -> Result<Self, StorageError> {
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
        let client = base.with_database(database);
        let storage = ClickHouseStorage {
            client,
            database: database.to_string(),
            features,
            last_ingested: Arc::new(AtomicI64::new(0)),
        };
        storage.migrate().await?;
        Ok(storage)
    }

    /// What the server supports.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The database used.
    pub fn database(&self) -> &str {
        &self.database
    }

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
        let migrations: Vec<(u32, String)> = vec![(
            1,
            format!(
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
            ),
        )];
        for (version, sql) in migrations {
            if applied.contains(&version) {
                continue;
            }
            self.client.query(&sql).execute().await?;
            self.client
                .query("INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)")
                .bind(version)
                .bind(now_ns())
                .execute()
                .await?;
        }
        Ok(())
    }
}

impl Storage for ClickHouseStorage {
    /// Stores a batch; summaries already stored (same request id) are skipped. Returns the
    /// number accepted (all of them).
    async fn insert(&self, batch: Vec<TraceSummary>) -> Result<usize, StorageError> {
        if batch.is_empty() {
            return Ok(0);
        }
        // which of these are already there (a retried batch)? asked in chunks that stay under
        // the server's query size limit, each bounded by the sort key (tenant, start time)
        let mut existing: Vec<String> = Vec::new();
        for chunk in batch.chunks(EXISTS_CHUNK) {
            let mut tenants: Vec<&str> = chunk.iter().map(|s| s.tenant.as_str()).collect();
            tenants.sort_unstable();
            tenants.dedup();
            let min = chunk.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
            let max = chunk.iter().map(|s| s.start_unix_nanos).max().unwrap_or(0);
            // `IN (?, ?, ...)`, one bound value each (18.16 has no array form of IN)
            let sql = format!(
                "SELECT request_id FROM traces
                 WHERE tenant IN {} AND start_ns >= ? AND start_ns <= ? AND request_id IN {}",
                placeholders(tenants.len()),
                placeholders(chunk.len())
            );
            let mut q = self.client.query(&sql);
            for t in tenants {
                q = q.bind(t);
            }
            q = q.bind(min).bind(max);
            for s in chunk {
                q = q.bind(s.request_id.as_str());
            }
            existing.extend(q.fetch_all::<String>().await?);
        }
        let existing: std::collections::HashSet<String> = existing.into_iter().collect();
        let n = batch.len();
        let mut insert = self.client.insert::<TraceRow>("traces").await?;
        let mut seen = std::collections::HashSet::new();
        for s in &batch {
            if existing.contains(&s.request_id) || !seen.insert(s.request_id.clone()) {
                continue;
            }
            let now = now_ns();
            let pos = self
                .last_ingested
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                    Some(now.max(last.saturating_add(1)))
                })
                .map_or(now, |last| now.max(last.saturating_add(1)));
            insert.write(&row_of(s, pos)).await?;
        }
        insert.end().await?;
        Ok(n)
    }

    /// Number of stored traces.
    async fn count(&self) -> Result<u64, StorageError> {
        Ok(self
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
                self.client
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
                let mut q = self.client.query(&sql).bind(request_id);
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
        let rows: Vec<PagedBlob> = f.bind(self.client.query(&sql)).fetch_all().await?;
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
        let rows: Vec<UsageOut> = f.bind(self.client.query(&sql)).fetch_all().await?;
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
                "category" => ("category", "finding_category"),
                "rule" => ("rule", "finding_rule"),
                "tenant" => ("tenant", "toString(tenant)"),
                other => return Err(StorageError::Invalid(format!("unknown grouping `{other}`"))),
            });
        }
        let mut f = Filter::default();
        f.scope(&q.scope);
        f.eq("tenant", &q.tenant);
        f.range(q.from_ns, q.to_ns);
        f.clauses.push("findings_total > 0".into());
        let keys = if cols.is_empty() {
            "emptyArrayString()".to_string()
        } else {
            format!(
                "[{}]",
                cols.iter().map(|(_, c)| *c).collect::<Vec<_>>().join(", ")
            )
        };
        let bucket = q.bucket.map_or("''", bucket_sql);
        // one row per finding: the two arrays are joined in step
        let sql = format!(
            "SELECT {keys} AS keys, {bucket} AS bucket, count() AS findings,
                uniqExact(request_id) AS traces
             FROM traces
             ARRAY JOIN finding_rules AS finding_rule, finding_categories AS finding_category
             {} GROUP BY keys, bucket ORDER BY keys, bucket",
            f.sql()
        );
        let rows: Vec<FindingsOut> = f.bind(self.client.query(&sql)).fetch_all().await?;
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

    async fn delete_before(&self, before_ns: i64) -> Result<u64, StorageError> {
        let n: u64 = self
            .client
            .query("SELECT count() FROM traces WHERE start_ns < ?")
            .bind(before_ns)
            .fetch_one()
            .await?;
        if n > 0 {
            // a mutation (asynchronous in ClickHouse); wait for it so the answer is final
            self.client
                .query("ALTER TABLE traces DELETE WHERE start_ns < ?")
                .bind(before_ns)
                .execute()
                .await?;
            for _ in 0..600 {
                let pending: u64 = self
                    .client
                    .query("SELECT count() FROM system.mutations WHERE database = ? AND table = 'traces' AND is_done = 0")
                    .bind(self.database.as_str())
                    .fetch_one()
                    .await?;
                if pending == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Ok(n)
    }
}

/// Request ids looked up per query before an insert (well under the 256 KiB query limit).
const EXISTS_CHUNK: usize = 1000;

/// `(?, ?, ...)` with `n` placeholders (never empty: `(NULL)` matches nothing).
fn placeholders(n: usize) -> String {
    if n == 0 {
        return "(NULL)".to_string();
    }
    format!("({})", vec!["?"; n].join(", "))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn row_of(s: &TraceSummary, ingested_ns: i64) -> TraceRow {
    let u = s.usage.unwrap_or_default();
    let day = s.start_unix_nanos.div_euclid(86_400_000_000_000);
    TraceRow {
        request_id: s.request_id.clone(),
        tenant: s.tenant.clone(),
        provider: s.provider.clone(),
        model: model_of(s).to_string(),
        route: s.route.clone(),
        outcome: outcome_name(s.outcome).to_string(),
        start_day: u16::try_from(day.max(0)).unwrap_or(u16::MAX),
        start_ns: s.start_unix_nanos,
        ingested_ns,
        latency_ms: if s.end_unix_nanos > 0 && s.end_unix_nanos >= s.start_unix_nanos {
            (s.end_unix_nanos - s.start_unix_nanos) as f64 / 1e6
        } else {
            f64::NAN
        },
        ttft_ms: if s.time_to_first_token_nanos > 0 {
            s.time_to_first_token_nanos as f64 / 1e6
        } else {
            f64::NAN
        },
        status_code: u16::try_from(s.status_code).unwrap_or(u16::MAX),
        input_tokens: u.input_tokens,
        cached_input_tokens: u.cached_input_tokens,
        output_tokens: u.output_tokens,
        reasoning_tokens: u.reasoning_tokens,
        usage_estimated: u8::from(u.estimated),
        cost_micro_usd: s.cost_micro_usd,
        cost_known: u8::from(s.cost_known),
        findings_total: s.findings_total,
        finding_rules: s.findings.iter().map(|f| f.rule_id.clone()).collect(),
        finding_categories: s.findings.iter().map(|f| f.category.clone()).collect(),
        summary: s.encode_to_vec(),
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
