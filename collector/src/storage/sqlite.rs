//! The embedded default store: SQLite (bundled, no server), WAL journal, one writer thread and a
//! few reader connections used on tokio's blocking pool. Writes use group commit: the writer
//! takes every batch waiting for it, writes them in one transaction and commits once
//! (`synchronous=FULL`), then answers each; so `insert` returns only once its batch is durable,
//! and concurrent batches share one fsync instead of queueing for one each. The summary is kept as
//! the protobuf it arrived as, beside the columns queries filter and aggregate on. Schema
//! versions live in `PRAGMA user_version` and migrate forward at open.

use super::rollup::{self, DayKey, DayTotals, Histogram, DAY_NS};
use super::{
    action_name, direction_name, model_of, outcome_name, percentiles, AnomalyQuery, Bucket,
    Delivery, Dimension, FindingsQuery, FindingsRow, Member, Storage, StorageError, StoredAnomaly,
    TenantScope, TracePage, TraceQuery, UsageQuery, UsageRow,
};
use crate::anomaly::Anomaly;
use prost::Message;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tollgate_proto::v1::TraceSummary;

/// Schema migrations, in order; `PRAGMA user_version` is the number applied. Each runs in its
/// own transaction with the version bump.
const MIGRATIONS: &[Migration] = &[migration_1, migration_2, migration_3];

/// One schema step.
type Migration = fn(&rusqlite::Transaction<'_>) -> Result<(), StorageError>;

/// 1: traces and their findings.
fn migration_1(tx: &rusqlite::Transaction<'_>) -> Result<(), StorageError> {
    tx.execute_batch(SCHEMA_1)?;
    Ok(())
}

/// 3: anomalies, their deliveries, the detector's checkpoints, and the members taking part in
/// leadership.
fn migration_3(tx: &rusqlite::Transaction<'_>) -> Result<(), StorageError> {
    tx.execute_batch(
        "CREATE TABLE anomalies (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            metric TEXT NOT NULL,
            open INTEGER NOT NULL,
            started_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX anomalies_started ON anomalies(started_ns);
        CREATE INDEX anomalies_tenant ON anomalies(tenant, started_ns);
        CREATE TABLE deliveries (
            anomaly_id TEXT NOT NULL,
            event TEXT NOT NULL,
            sink TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            last_error TEXT,
            updated_ns INTEGER NOT NULL,
            PRIMARY KEY (anomaly_id, event, sink)
        ) WITHOUT ROWID;
        CREATE TABLE checkpoints (
            name TEXT PRIMARY KEY,
            data BLOB NOT NULL,
            saved_ns INTEGER NOT NULL
        );
        CREATE TABLE members (
            holder TEXT PRIMARY KEY,
            started_ns INTEGER NOT NULL,
            beat_ns INTEGER NOT NULL
        );",
    )?;
    Ok(())
}

/// 2: daily usage rollups, filled from the traces already stored.
fn migration_2(tx: &rusqlite::Transaction<'_>) -> Result<(), StorageError> {
    tx.execute_batch(
        "CREATE TABLE usage_day (
            day INTEGER NOT NULL,
            tenant TEXT NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            route TEXT NOT NULL,
            requests INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            cached_input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL,
            estimated_requests INTEGER NOT NULL,
            cost_micro_usd INTEGER NOT NULL,
            unpriced_requests INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            blocked INTEGER NOT NULL,
            latency_hist BLOB NOT NULL,
            ttft_hist BLOB NOT NULL,
            PRIMARY KEY (day, tenant, model, provider, route)
        ) WITHOUT ROWID;",
    )?;
    let mut totals: HashMap<DayKey, DayTotals> = HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT summary FROM traces")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let blob: Vec<u8> = r.get(0)?;
            let s = TraceSummary::decode(blob.as_slice())
                .map_err(|e| StorageError::Internal(e.to_string()))?;
            totals.entry(rollup::key_of(&s)).or_default().add(&s);
        }
    }
    upsert_days(tx, totals, None).map(|_| ())
}

const SCHEMA_1: &str = "CREATE TABLE traces (
        pos INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        route TEXT NOT NULL,
        outcome TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        latency_ms REAL,
        ttft_ms REAL,
        status_code INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        cached_input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        usage_estimated INTEGER NOT NULL,
        cost_micro_usd INTEGER NOT NULL,
        cost_known INTEGER NOT NULL,
        findings_total INTEGER NOT NULL,
        summary BLOB NOT NULL
    );
    CREATE INDEX traces_tenant_start ON traces(tenant, start_ns);
    CREATE INDEX traces_start ON traces(start_ns);
    CREATE TABLE findings (
        pos INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        category TEXT NOT NULL,
        action TEXT NOT NULL,
        direction TEXT NOT NULL
    );
    CREATE INDEX findings_pos ON findings(pos);
    CREATE INDEX findings_rule ON findings(rule_id, start_ns);
    CREATE INDEX findings_category ON findings(category, start_ns);
    CREATE INDEX findings_tenant ON findings(tenant, start_ns);";

/// Reader connections kept open.
const READERS: usize = 3;

/// The SQLite backend.
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: std::sync::mpsc::Sender<WriteJob>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
}

/// Work for the writer thread.
enum WriteJob {
    /// A batch to store; the reply says how many were accepted, once committed.
    Insert(
        Vec<TraceSummary>,
        tokio::sync::oneshot::Sender<Result<usize, StorageError>>,
    ),
    /// Anything else that writes, run alone.
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Most rollup rows the writer keeps in memory.
const ROLLUP_CACHE_ROWS: usize = 100_000;

/// Most summaries committed together.
const GROUP_COMMIT_ROWS: usize = 50_000;

/// The writer thread: group commit over whatever is waiting.
fn writer_loop(mut conn: Connection, jobs: std::sync::mpsc::Receiver<WriteJob>) {
    // the writer is the only writer: rollup rows it wrote stay valid until a `Run` job runs
    let mut cache: HashMap<DayKey, DayTotals> = HashMap::new();
    while let Ok(first) = jobs.recv() {
        let mut pending = vec![first];
        let mut rows = 0;
        while rows < GROUP_COMMIT_ROWS {
            match jobs.try_recv() {
                Ok(job) => {
                    if let WriteJob::Insert(b, _) = &job {
                        rows += b.len();
                    }
                    pending.push(job);
                }
                Err(_) => break,
            }
        }
        let mut inserts = Vec::new();
        for job in pending {
            match job {
                WriteJob::Insert(batch, reply) => inserts.push((batch, reply)),
                WriteJob::Run(f) => {
                    f(&mut conn);
                    cache.clear();
                }
            }
        }
        if inserts.is_empty() {
            continue;
        }
        let batches: Vec<&[TraceSummary]> = inserts.iter().map(|(b, _)| b.as_slice()).collect();
        if cache.len() > ROLLUP_CACHE_ROWS {
            cache.clear();
        }
        match insert_batches(&mut conn, &batches, &mut cache) {
            Ok(()) => {
                for (batch, reply) in inserts {
                    let _ = reply.send(Ok(batch.len()));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let unavailable = matches!(e, StorageError::Unavailable(_));
                for (_, reply) in inserts {
                    let _ = reply.send(Err(if unavailable {
                        StorageError::Unavailable(msg.clone())
                    } else {
                        StorageError::Internal(msg.clone())
                    }));
                }
            }
        }
    }
}

fn configure(conn: &Connection) -> Result<(), StorageError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // measured (collector/examples/bench.rs): page reads through pread and frequent WAL
    // checkpoints dominated ingest; a bigger page cache, mmap reads and rarer checkpoints
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "mmap_size", 268_435_456)?;
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    Ok(())
}

impl SqliteStorage {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Internal(format!("{}: {e}", dir.display())))?;
        }
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(std::time::Duration::from_secs(5))?;
            r.pragma_update(None, "cache_size", -65_536)?;
            r.pragma_update(None, "mmap_size", 268_435_456)?;
            readers.push(Mutex::new(r));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(|e| StorageError::Internal(format!("writer thread: {e}")))?;
        Ok(SqliteStorage {
            inner: Arc::new(Inner {
                path,
                writer: tx,
                readers,
                next_reader: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer thread, between group commits.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = WriteJob::Run(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        self.inner
            .writer
            .send(job)
            .map_err(|_| StorageError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Internal("writer dropped the job".into()))?
    }

    /// Runs `f` on a reader connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner
                .next_reader
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let slot = inner
                .readers
                .get(i % inner.readers.len().max(1))
                .ok_or_else(|| StorageError::Internal("no reader".into()))?;
            let conn = slot
                .lock()
                .map_err(|_| StorageError::Internal("reader lock poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StorageError::Internal(e.to_string()))?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(StorageError::Internal(format!(
            "database schema version {version} is newer than this collector ({known})"
        )));
    }
    for (i, step) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        step(&tx)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn ms_between(start: i64, end: i64) -> Option<f64> {
    (end > 0 && end >= start).then(|| (end - start) as f64 / 1e6)
}

fn insert_batches(
    conn: &mut Connection,
    batches: &[&[TraceSummary]],
    cache: &mut HashMap<DayKey, DayTotals>,
) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    let mut days: HashMap<DayKey, DayTotals> = HashMap::new();
    {
        let mut trace = tx.prepare_cached(
            "INSERT OR IGNORE INTO traces (request_id, tenant, provider, model, route, outcome,
                start_ns, latency_ms, ttft_ms, status_code, input_tokens, cached_input_tokens,
                output_tokens, reasoning_tokens, usage_estimated, cost_micro_usd, cost_known,
                findings_total, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )?;
        let mut finding = tx.prepare_cached(
            "INSERT INTO findings (pos, tenant, start_ns, rule_id, category, action, direction)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for s in batches.iter().flat_map(|b| b.iter()) {
            let u = s.usage.unwrap_or_default();
            let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let changed = trace.execute(params![
                s.request_id,
                s.tenant,
                s.provider,
                model_of(s),
                s.route,
                outcome_name(s.outcome),
                s.start_unix_nanos,
                ms_between(s.start_unix_nanos, s.end_unix_nanos),
                (s.time_to_first_token_nanos > 0).then(|| s.time_to_first_token_nanos as f64 / 1e6),
                s.status_code,
                as_i64(u.input_tokens),
                as_i64(u.cached_input_tokens),
                as_i64(u.output_tokens),
                as_i64(u.reasoning_tokens),
                u.estimated,
                s.cost_micro_usd,
                s.cost_known,
                s.findings_total,
                s.encode_to_vec(),
            ])?;
            if changed == 0 {
                continue; // already stored (a retried batch)
            }
            days.entry(rollup::key_of(s)).or_default().add(s);
            let pos = tx.last_insert_rowid();
            for f in &s.findings {
                finding.execute(params![
                    pos,
                    s.tenant,
                    s.start_unix_nanos,
                    f.rule_id,
                    f.category,
                    action_name(f.action),
                    direction_name(f.direction),
                ])?;
            }
        }
    }
    let written = upsert_days(&tx, days, Some(cache))?;
    tx.commit()?;
    // only what was committed joins the cache
    cache.extend(written);
    Ok(())
}

/// Adds `totals` into the daily rollup rows (read — from `cache` when it has the row — merge,
/// write back); returns the rows as written.
fn upsert_days(
    tx: &rusqlite::Transaction<'_>,
    totals: HashMap<DayKey, DayTotals>,
    cache: Option<&HashMap<DayKey, DayTotals>>,
) -> Result<Vec<(DayKey, DayTotals)>, StorageError> {
    let mut written = Vec::with_capacity(totals.len());
    let mut read = tx.prepare_cached(
        "SELECT requests, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens,
                estimated_requests, cost_micro_usd, unpriced_requests, errors, blocked,
                latency_hist, ttft_hist
         FROM usage_day WHERE day = ?1 AND tenant = ?2 AND model = ?3 AND provider = ?4 AND route = ?5",
    )?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO usage_day (day, tenant, model, provider, route, requests,
            input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, estimated_requests,
            cost_micro_usd, unpriced_requests, errors, blocked, latency_hist, ttft_hist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?;
    for (k, mut t) in totals {
        if let Some(old) = cache.and_then(|c| c.get(&k)) {
            t.merge(old);
            write_day(&mut write, &k, &t)?;
            written.push((k, t));
            continue;
        }
        let stored = read
            .query_row(
                params![k.day, k.tenant, k.model, k.provider, k.route],
                |r| {
                    let u = |i: usize| -> rusqlite::Result<u64> {
                        Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
                    };
                    Ok(DayTotals {
                        requests: u(0)?,
                        input_tokens: u(1)?,
                        cached_input_tokens: u(2)?,
                        output_tokens: u(3)?,
                        reasoning_tokens: u(4)?,
                        estimated_requests: u(5)?,
                        cost_micro_usd: r.get(6)?,
                        unpriced_requests: u(7)?,
                        errors: u(8)?,
                        blocked: u(9)?,
                        latency: Histogram::decode(&r.get::<_, Vec<u8>>(10)?),
                        ttft: Histogram::decode(&r.get::<_, Vec<u8>>(11)?),
                    })
                },
            )
            .optional()?;
        if let Some(old) = stored {
            t.merge(&old);
        }
        write_day(&mut write, &k, &t)?;
        written.push((k, t));
    }
    Ok(written)
}

fn write_day(
    write: &mut rusqlite::CachedStatement<'_>,
    k: &DayKey,
    t: &DayTotals,
) -> Result<(), StorageError> {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    write.execute(params![
        k.day,
        k.tenant,
        k.model,
        k.provider,
        k.route,
        as_i64(t.requests),
        as_i64(t.input_tokens),
        as_i64(t.cached_input_tokens),
        as_i64(t.output_tokens),
        as_i64(t.reasoning_tokens),
        as_i64(t.estimated_requests),
        t.cost_micro_usd,
        as_i64(t.unpriced_requests),
        as_i64(t.errors),
        as_i64(t.blocked),
        t.latency.encode(),
        t.ttft.encode(),
    ])?;
    Ok(())
}

/// A WHERE clause under construction, with its parameters (values never go into the SQL text).
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<SqlValue>,
}

impl Where {
    fn eq(&mut self, column: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.clauses.push(format!("{column} = ?"));
            self.params.push(SqlValue::Text(v.clone()));
        }
    }

    fn scope(&mut self, column: &str, scope: &TenantScope) {
        if let TenantScope::Only(tenants) = scope {
            if tenants.is_empty() {
                self.clauses.push("0".to_string());
                return;
            }
            let marks = vec!["?"; tenants.len()].join(", ");
            self.clauses.push(format!("{column} IN ({marks})"));
            self.params
                .extend(tenants.iter().map(|t| SqlValue::Text(t.clone())));
        }
    }

    fn range(&mut self, column: &str, from: Option<i64>, to: Option<i64>) {
        if let Some(f) = from {
            self.clauses.push(format!("{column} >= ?"));
            self.params.push(SqlValue::Integer(f));
        }
        if let Some(t) = to {
            self.clauses.push(format!("{column} < ?"));
            self.params.push(SqlValue::Integer(t));
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// SQL for a bucket's start (unix seconds) from a `start_ns` column.
fn bucket_seconds(bucket: Bucket, column: &str) -> String {
    match bucket {
        Bucket::Minute => format!("(({column} / 60000000000) * 60)"),
        Bucket::Hour => format!("(({column} / 3600000000000) * 3600)"),
        Bucket::Day => format!("(({column} / 86400000000000) * 86400)"),
        // 1970-01-01 was a Thursday: shift by 3 days so weeks start on Monday
        Bucket::Week => format!("(((({column} / 86400000000000) + 3) / 7 * 7 - 3) * 86400)"),
        Bucket::Month => format!(
            "CAST(strftime('%s', strftime('%Y-%m-01', {column} / 1000000000, 'unixepoch')) AS INTEGER)"
        ),
    }
}

fn dimension_column(d: Dimension) -> &'static str {
    match d {
        Dimension::Tenant => "tenant",
        Dimension::Model => "model",
        Dimension::Provider => "provider",
        Dimension::Route => "route",
    }
}

fn query_traces(conn: &Connection, q: &TraceQuery) -> Result<TracePage, StorageError> {
    let mut w = Where::default();
    w.scope("tenant", &q.scope);
    w.eq("tenant", &q.tenant);
    w.eq("provider", &q.provider);
    w.eq("model", &q.model);
    w.eq("route", &q.route);
    w.eq("outcome", &q.outcome);
    w.range("start_ns", q.from_ns, q.to_ns);
    match q.has_findings {
        Some(true) => w.clauses.push("findings_total > 0".into()),
        Some(false) => w.clauses.push("findings_total = 0".into()),
        None => {}
    }
    if let Some(c) = &q.category {
        // a category matches itself and its subcategories (`injection` covers `injection.override`)
        w.clauses.push(
            "pos IN (SELECT pos FROM findings WHERE category = ? OR substr(category, 1, length(?) + 1) = ? || '.')"
                .into(),
        );
        for _ in 0..3 {
            w.params.push(SqlValue::Text(c.clone()));
        }
    }
    if let Some(r) = &q.rule_id {
        w.clauses
            .push("pos IN (SELECT pos FROM findings WHERE rule_id = ?)".into());
        w.params.push(SqlValue::Text(r.clone()));
    }
    if let Some(c) = q.min_cost_micro_usd {
        w.clauses
            .push("cost_known = 1 AND cost_micro_usd >= ?".into());
        w.params.push(SqlValue::Integer(c));
    }
    if let Some(l) = q.min_latency_ms {
        w.clauses.push("latency_ms >= ?".into());
        w.params.push(SqlValue::Real(l as f64));
    }
    if let Some(c) = q.cursor {
        w.clauses.push("pos < ?".into());
        w.params.push(SqlValue::Integer(c));
    }
    let limit = q.limit.clamp(1, 1000);
    let sql = format!(
        "SELECT pos, summary FROM traces {} ORDER BY pos DESC LIMIT {}",
        w.sql(),
        limit + 1
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(w.params.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut traces = Vec::new();
    let mut last = None;
    let mut more = false;
    for row in rows {
        let (pos, blob) = row?;
        if traces.len() == usize::try_from(limit).unwrap_or(1000) {
            more = true;
            break;
        }
        let s = TraceSummary::decode(blob.as_slice())
            .map_err(|e| StorageError::Internal(format!("stored summary {pos}: {e}")))?;
        traces.push(s);
        last = Some(pos);
    }
    Ok(TracePage {
        traces,
        next_cursor: if more { last } else { None },
    })
}

type GroupKey = (Vec<String>, Option<String>);

/// Usage from the daily rollups (see [`rollup`]).
fn usage_from_rollups(conn: &Connection, q: &UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
    let mut w = Where::default();
    w.scope("tenant", &q.scope);
    w.eq("tenant", &q.tenant);
    let (from_day, to_day) = rollup::day_range(q);
    w.range("day", from_day, to_day);
    let sql = format!(
        "SELECT day, tenant, model, provider, route, requests, input_tokens, cached_input_tokens,
                output_tokens, reasoning_tokens, estimated_requests, cost_micro_usd,
                unpriced_requests, errors, blocked, latency_hist, ttft_hist
         FROM usage_day {}",
        w.sql()
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(w.params.iter()))?;
    let mut days = Vec::new();
    while let Some(r) = rows.next()? {
        let u = |i: usize| -> rusqlite::Result<u64> {
            Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
        };
        let key = DayKey {
            day: r.get(0)?,
            tenant: r.get(1)?,
            model: r.get(2)?,
            provider: r.get(3)?,
            route: r.get(4)?,
        };
        let t = DayTotals {
            requests: u(5)?,
            input_tokens: u(6)?,
            cached_input_tokens: u(7)?,
            output_tokens: u(8)?,
            reasoning_tokens: u(9)?,
            estimated_requests: u(10)?,
            cost_micro_usd: r.get(11)?,
            unpriced_requests: u(12)?,
            errors: u(13)?,
            blocked: u(14)?,
            latency: Histogram::decode(&r.get::<_, Vec<u8>>(15)?),
            ttft: Histogram::decode(&r.get::<_, Vec<u8>>(16)?),
        };
        days.push((key, t));
    }
    Ok(rollup::usage_rows(q, days))
}

fn query_usage(conn: &Connection, q: &UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
    if rollup::answers(q) {
        return usage_from_rollups(conn, q);
    }
    let mut w = Where::default();
    w.scope("tenant", &q.scope);
    w.eq("tenant", &q.tenant);
    w.range("start_ns", q.from_ns, q.to_ns);
    let dims: Vec<&str> = q.group_by.iter().map(|d| dimension_column(*d)).collect();
    let bucket = q.bucket.map(|b| {
        format!(
            "strftime('%Y-%m-%dT%H:%M:%SZ', {}, 'unixepoch')",
            bucket_seconds(b, "start_ns")
        )
    });
    let mut select: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    select.push(bucket.clone().unwrap_or_else(|| "NULL".into()));
    let group = {
        let mut g: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        if bucket.is_some() {
            g.push(format!("{}", dims.len() + 1));
        }
        if g.is_empty() {
            String::new()
        } else {
            format!("GROUP BY {}", g.join(", "))
        }
    };
    let n = dims.len();
    let key_of = |r: &rusqlite::Row<'_>| -> rusqlite::Result<GroupKey> {
        let mut k = Vec::with_capacity(n);
        for i in 0..n {
            k.push(r.get::<_, String>(i)?);
        }
        Ok((k, r.get::<_, Option<String>>(n)?))
    };
    let sql = format!(
        "SELECT {}, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens),
                SUM(reasoning_tokens), SUM(usage_estimated), SUM(CASE WHEN cost_known THEN cost_micro_usd ELSE 0 END),
                SUM(1 - cost_known), SUM(outcome = 'error'), SUM(outcome = 'blocked')
         FROM traces {} {} ORDER BY {}",
        select.join(", "),
        w.sql(),
        group,
        // time first, then the groups
        std::iter::once(select.len())
            .chain(1..select.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut rows: Vec<(GroupKey, UsageRow)> = Vec::new();
    {
        let mut stmt = conn.prepare(&sql)?;
        let mut it = stmt.query(params_from_iter(w.params.iter()))?;
        while let Some(r) = it.next()? {
            let key = key_of(r)?;
            let u = |i: usize| -> rusqlite::Result<u64> {
                Ok(u64::try_from(r.get::<_, Option<i64>>(n + i)?.unwrap_or(0)).unwrap_or(0))
            };
            let requests = u(1)?;
            if requests == 0 {
                continue; // an empty, ungrouped aggregate
            }
            let row = UsageRow {
                group: q
                    .group_by
                    .iter()
                    .zip(key.0.iter())
                    .map(|(d, v)| (d.as_str().to_string(), v.clone()))
                    .collect::<BTreeMap<_, _>>(),
                bucket: key.1.clone(),
                requests,
                input_tokens: u(2)?,
                cached_input_tokens: u(3)?,
                output_tokens: u(4)?,
                reasoning_tokens: u(5)?,
                estimated_requests: u(6)?,
                cost_micro_usd: r.get::<_, Option<i64>>(n + 7)?.unwrap_or(0),
                unpriced_requests: u(8)?,
                errors: u(9)?,
                blocked: u(10)?,
                ..UsageRow::default()
            };
            rows.push((key, row));
        }
    }
    // latency and time-to-first-token percentiles, one ordered pass each
    for (column, is_ttft) in [("latency_ms", false), ("ttft_ms", true)] {
        let mut samples: HashMap<GroupKey, Vec<f64>> = HashMap::new();
        let mut wc = Where {
            clauses: w.clauses.clone(),
            params: w.params.clone(),
        };
        wc.clauses.push(format!("{column} IS NOT NULL"));
        let sql = format!(
            "SELECT {}, {column} FROM traces {} ORDER BY {column}",
            select.join(", "),
            wc.sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut it = stmt.query(params_from_iter(wc.params.iter()))?;
        while let Some(r) = it.next()? {
            let key = key_of(r)?;
            let v: f64 = r.get(n + 1)?;
            samples.entry(key).or_default().push(v);
        }
        for (key, row) in &mut rows {
            if let Some(s) = samples.get(key) {
                let p = percentiles(s);
                if is_ttft {
                    row.time_to_first_token_ms = p;
                } else {
                    row.latency_ms = p;
                }
            }
        }
    }
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

fn query_findings(conn: &Connection, q: &FindingsQuery) -> Result<Vec<FindingsRow>, StorageError> {
    let mut w = Where::default();
    w.scope("tenant", &q.scope);
    w.eq("tenant", &q.tenant);
    w.range("start_ns", q.from_ns, q.to_ns);
    w.eq("action", &q.action);
    w.eq("direction", &q.direction);
    if let Some(c) = &q.category {
        w.clauses
            .push("(category = ? OR substr(category, 1, length(?) + 1) = ? || '.')".into());
        for _ in 0..3 {
            w.params.push(SqlValue::Text(c.clone()));
        }
    }
    let mut cols: Vec<(&str, &str)> = Vec::new();
    for b in &q.by {
        match b.as_str() {
            "category" => cols.push(("category", "category")),
            "rule" => cols.push(("rule", "rule_id")),
            "tenant" => cols.push(("tenant", "tenant")),
            other => return Err(StorageError::Invalid(format!("unknown grouping `{other}`"))),
        }
    }
    let bucket = q.bucket.map(|b| {
        format!(
            "strftime('%Y-%m-%dT%H:%M:%SZ', {}, 'unixepoch')",
            bucket_seconds(b, "start_ns")
        )
    });
    let mut select: Vec<String> = cols.iter().map(|(_, c)| c.to_string()).collect();
    select.push(bucket.unwrap_or_else(|| "NULL".into()));
    let n = cols.len();
    let group: Vec<String> = (1..=select.len()).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {}, COUNT(*), COUNT(DISTINCT pos) FROM findings {} GROUP BY {} ORDER BY {}",
        select.join(", "),
        w.sql(),
        group.join(", "),
        group.join(", ")
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut it = stmt.query(params_from_iter(w.params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = it.next()? {
        let mut group = BTreeMap::new();
        for (i, (name, _)) in cols.iter().enumerate() {
            group.insert(name.to_string(), r.get::<_, String>(i)?);
        }
        out.push(FindingsRow {
            group,
            bucket: r.get(n)?,
            findings: u64::try_from(r.get::<_, i64>(n + 1)?).unwrap_or(0),
            traces: u64::try_from(r.get::<_, i64>(n + 2)?).unwrap_or(0),
        });
    }
    Ok(out)
}

impl Storage for SqliteStorage {
    async fn insert(&self, batch: Vec<TraceSummary>) -> Result<usize, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .writer
            .send(WriteJob::Insert(batch, tx))
            .map_err(|_| StorageError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Internal("writer dropped the batch".into()))?
    }

    async fn get(
        &self,
        request_id: String,
        scope: TenantScope,
    ) -> Result<Option<TraceSummary>, StorageError> {
        self.read(move |conn| {
            let mut w = Where::default();
            w.clauses.push("request_id = ?".into());
            w.params.push(SqlValue::Text(request_id));
            w.scope("tenant", &scope);
            let sql = format!("SELECT summary FROM traces {}", w.sql());
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(w.params.iter()))?;
            match rows.next()? {
                Some(r) => {
                    let blob: Vec<u8> = r.get(0)?;
                    TraceSummary::decode(blob.as_slice())
                        .map(Some)
                        .map_err(|e| StorageError::Internal(e.to_string()))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn traces(&self, query: TraceQuery) -> Result<TracePage, StorageError> {
        self.read(move |conn| query_traces(conn, &query)).await
    }

    async fn usage(&self, query: UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
        self.read(move |conn| query_usage(conn, &query)).await
    }

    async fn findings(&self, query: FindingsQuery) -> Result<Vec<FindingsRow>, StorageError> {
        self.read(move |conn| query_findings(conn, &query)).await
    }

    async fn delete_before(&self, before_ns: i64) -> Result<u64, StorageError> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM findings WHERE start_ns < ?1",
                params![before_ns],
            )?;
            let n = tx.execute("DELETE FROM traces WHERE start_ns < ?1", params![before_ns])?;
            // whole days before the cutoff's day
            tx.execute(
                "DELETE FROM usage_day WHERE day < ?1",
                params![before_ns.div_euclid(DAY_NS)],
            )?;
            // closed anomalies last updated before the cutoff, their deliveries, departed members
            tx.execute(
                "DELETE FROM deliveries WHERE anomaly_id IN
                    (SELECT id FROM anomalies WHERE open = 0 AND updated_ns < ?1)",
                params![before_ns],
            )?;
            tx.execute(
                "DELETE FROM anomalies WHERE open = 0 AND updated_ns < ?1",
                params![before_ns],
            )?;
            tx.execute("DELETE FROM members WHERE beat_ns < ?1", params![before_ns])?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn count(&self) -> Result<u64, StorageError> {
        self.read(|conn| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM traces", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn put_anomalies(&self, batch: Vec<Anomaly>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO anomalies (id, tenant, metric, open, started_ns, updated_ns, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for a in &batch {
                    let body = serde_json::to_string(a)
                        .map_err(|e| StorageError::Internal(e.to_string()))?;
                    put.execute(params![
                        a.id,
                        a.tenant,
                        a.metric,
                        a.open,
                        a.started_ns,
                        a.updated_ns,
                        body
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn anomalies(&self, q: AnomalyQuery) -> Result<Vec<StoredAnomaly>, StorageError> {
        self.read(move |conn| {
            let mut w = Where::default();
            w.scope("tenant", &q.scope);
            w.eq("tenant", &q.tenant);
            w.eq("metric", &q.metric);
            if let Some(open) = q.open {
                w.clauses.push("open = ?".into());
                w.params.push(SqlValue::Integer(i64::from(open)));
            }
            // overlapping the range: started before its end, last updated after its start
            if let Some(f) = q.from_ns {
                w.clauses.push("(open = 1 OR updated_ns >= ?)".into());
                w.params.push(SqlValue::Integer(f));
            }
            if let Some(t) = q.to_ns {
                w.clauses.push("started_ns < ?".into());
                w.params.push(SqlValue::Integer(t));
            }
            let sql = format!(
                "SELECT body FROM anomalies {} ORDER BY started_ns DESC, id LIMIT {}",
                w.sql(),
                q.limit.clamp(1, 1000)
            );
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(w.params.iter()))?;
            let mut out = Vec::new();
            let mut deliveries = conn.prepare_cached(
                "SELECT anomaly_id, event, sink, status, attempts, last_error, updated_ns
                 FROM deliveries WHERE anomaly_id = ?1 ORDER BY event DESC, sink",
            )?;
            while let Some(r) = rows.next()? {
                let body: String = r.get(0)?;
                let anomaly: Anomaly = serde_json::from_str(&body)
                    .map_err(|e| StorageError::Internal(e.to_string()))?;
                let d = deliveries
                    .query_map(params![anomaly.id], |r| {
                        Ok(Delivery {
                            anomaly_id: r.get(0)?,
                            event: r.get(1)?,
                            sink: r.get(2)?,
                            status: r.get(3)?,
                            attempts: r.get(4)?,
                            last_error: r.get(5)?,
                            updated_ns: r.get(6)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(StoredAnomaly {
                    anomaly,
                    deliveries: d,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_deliveries(&self, batch: Vec<Delivery>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO deliveries
                     (anomaly_id, event, sink, status, attempts, last_error, updated_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for d in &batch {
                    put.execute(params![
                        d.anomaly_id,
                        d.event,
                        d.sink,
                        d.status,
                        d.attempts,
                        d.last_error,
                        d.updated_ns
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn save_checkpoint(&self, name: String, data: Vec<u8>) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (name, data, saved_ns) VALUES (?1, ?2, ?3)",
                params![name, data, crate::time::now_ns()],
            )?;
            Ok(())
        })
        .await
    }

    async fn load_checkpoint(&self, name: String) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT data FROM checkpoints WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn heartbeat(&self, member: Member) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO members (holder, started_ns, beat_ns) VALUES (?1, ?2, ?3)",
                params![member.holder, member.started_ns, member.beat_ns],
            )?;
            Ok(())
        })
        .await
    }

    async fn members(&self, since_ns: i64) -> Result<Vec<Member>, StorageError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT holder, started_ns, beat_ns FROM members WHERE beat_ns >= ?1
                 ORDER BY started_ns, holder",
            )?;
            let rows = stmt
                .query_map(params![since_ns], |r| {
                    Ok(Member {
                        holder: r.get(0)?,
                        started_ns: r.get(1)?,
                        beat_ns: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
