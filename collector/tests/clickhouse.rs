//! The ClickHouse backend against a real `clickhouse-server` (started by the harness on loopback
//! with a temporary data directory): version detection, migrations (including the rollup
//! backfill), idempotent inserts, the batching writer and its back-pressure, retention by
//! partition. The storage contract and the parity test live in `storage_contract.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

mod common;

use common::clickhouse::ClickHouse;
use std::time::Duration;
use tollgate_collector::storage::clickhouse::{ClickHouseStorage, WriterOptions};
use tollgate_collector::storage::{Storage, StorageError, TenantScope, UsageQuery};
use tollgate_proto::v1::{Finding, Outcome, TraceSummary, Usage};

fn summary(id: &str, tenant: &str, start: i64) -> TraceSummary {
    TraceSummary {
        request_id: id.into(),
        tenant: tenant.into(),
        provider: "openai".into(),
        route: "openai".into(),
        request_model: "gpt-4o".into(),
        outcome: Outcome::Allowed as i32,
        start_unix_nanos: start,
        end_unix_nanos: start + 250_000_000,
        usage: Some(Usage {
            input_tokens: 10,
            output_tokens: 2,
            ..Usage::default()
        }),
        findings: vec![Finding {
            rule_id: "pii.card".into(),
            category: "pii".into(),
            ..Finding::default()
        }],
        findings_total: 1,
        ..TraceSummary::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_connects_migrates_inserts_idempotently_and_scopes_lookups() {
    let server = ClickHouse::start();
    let s = ClickHouseStorage::connect(&server.url(), "tollgate_test")
        .await
        .unwrap();
    let f = s.features();
    assert!(f.version.0 >= 18, "{f:?}");
    let t0 = 1_795_311_582_000_000_000;
    let batch: Vec<TraceSummary> = (0..50)
        .map(|i| {
            summary(
                &format!("r{i}"),
                if i % 2 == 0 { "acme" } else { "beta" },
                t0 + i,
            )
        })
        .collect();
    assert_eq!(s.insert(batch.clone()).await.unwrap(), 50);
    assert_eq!(
        s.insert(batch[..10].to_vec()).await.unwrap(),
        10,
        "a retried batch is accepted"
    );
    assert_eq!(s.count().await.unwrap(), 50, "and stored once");
    let got = s.get("r4".into(), TenantScope::All).await.unwrap().unwrap();
    assert_eq!(got, batch[4], "stored as received");
    assert!(s
        .get("r4".into(), TenantScope::Only(vec!["beta".into()]))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .get("r5".into(), TenantScope::Only(vec!["beta".into()]))
        .await
        .unwrap()
        .is_some());
    assert!(s
        .get("nope".into(), TenantScope::All)
        .await
        .unwrap()
        .is_none());
    // a second connection finds the schema in place (migrations run once)
    let again = ClickHouseStorage::connect(&server.url(), "tollgate_test")
        .await
        .unwrap();
    assert_eq!(again.count().await.unwrap(), 50);
    // a batch as large as the ingest limit allows (thousands of ids) is checked in chunks
    let big: Vec<TraceSummary> = (0..5000)
        .map(|i| summary(&format!("big-{i:05}"), "acme", t0 + 1_000 + i))
        .collect();
    assert_eq!(s.insert(big.clone()).await.unwrap(), 5000);
    assert_eq!(s.insert(big).await.unwrap(), 5000);
    assert_eq!(s.count().await.unwrap(), 5050);
    // names are never pasted into SQL
    assert!(
        ClickHouseStorage::connect(&server.url(), "x; DROP DATABASE default")
            .await
            .is_err()
    );
}

const DAY: i64 = 86_400_000_000_000;
/// 2026-09-01T00:00:00Z.
const SEP_1: i64 = 1_788_220_800_000_000_000;

/// A client for checking what the server holds.
fn sql(server: &ClickHouse, database: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(server.url())
        .with_validation(false)
        .with_database(database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_writer_gathers_batches_and_pushes_back_when_full() {
    let server = ClickHouse::start();
    let options = WriterOptions {
        batch_rows: 1000,
        flush_interval: Duration::from_millis(700),
        queue_rows: 100,
    };
    let s = ClickHouseStorage::connect_with(&server.url(), "tollgate_writer", options)
        .await
        .unwrap();
    let t0 = SEP_1 + 5 * DAY;
    let first: Vec<TraceSummary> = (0..80)
        .map(|i| summary(&format!("w{i:03}"), "acme", t0 + i))
        .collect();
    let a = tokio::spawn({
        let (s, rows) = (s.clone(), first.clone());
        async move { s.insert(rows).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 80 rows wait for the writer; 30 more do not fit in a queue of 100
    let full = s
        .insert(
            (0..30)
                .map(|i| summary(&format!("x{i}"), "acme", t0))
                .collect(),
        )
        .await;
    assert!(
        matches!(full, Err(StorageError::Unavailable(ref m)) if m.contains("queue is full")),
        "{full:?}"
    );
    // a retry of 20 of the waiting rows fits, joins the same insert, and is stored once
    let retry = s.insert(first[..20].to_vec()).await.unwrap();
    assert_eq!(retry, 20);
    assert_eq!(a.await.unwrap().unwrap(), 80);
    assert_eq!(s.count().await.unwrap(), 80);
    // one INSERT: the table's parts come from a single block
    let blocks: u64 = sql(&server, "tollgate_writer")
        .query("SELECT toUInt64(max(max_block_number)) FROM system.parts WHERE database = 'tollgate_writer' AND table = 'traces'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(blocks, 1, "the two batches went in one insert");
    // room is given back once answered
    assert_eq!(
        s.insert(
            (0..100)
                .map(|i| summary(&format!("y{i}"), "beta", t0))
                .collect()
        )
        .await
        .unwrap(),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_retries_racing_the_original_are_stored_once() {
    let server = ClickHouse::start();
    let options = WriterOptions {
        batch_rows: 300,
        flush_interval: Duration::from_millis(1),
        queue_rows: 100_000,
    };
    let s = ClickHouseStorage::connect_with(&server.url(), "tollgate_race", options)
        .await
        .unwrap();
    // eight senders, each the same 1000 summaries in batches of 250: inserts run two at a time
    // and many batches share ids with an insert in flight
    let rows: Vec<TraceSummary> = (0..1000)
        .map(|i| summary(&format!("r{i:04}"), "acme", SEP_1 + i))
        .collect();
    let mut tasks = Vec::new();
    for k in 0..8 {
        let (s, mut rows) = (s.clone(), rows.clone());
        rows.rotate_left(k * 125);
        tasks.push(tokio::spawn(async move {
            for chunk in rows.chunks(250) {
                assert_eq!(s.insert(chunk.to_vec()).await.unwrap(), 250);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.count().await.unwrap(), 1000);
    let usage = s.usage(UsageQuery::default()).await.unwrap();
    assert_eq!(usage[0].requests, 1000, "the rollups counted each once too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_retention_drops_whole_months_and_deletes_the_rest() {
    let server = ClickHouse::start();
    let s = ClickHouseStorage::connect(&server.url(), "tollgate_retention")
        .await
        .unwrap();
    // ten traces a day from 1 September to 9 November
    let rows: Vec<TraceSummary> = (0..70)
        .flat_map(|d| {
            (0..10).map(move |i| {
                summary(
                    &format!("d{d:02}-{i}"),
                    "acme",
                    SEP_1 + d * DAY + i * 3_600_000_000_000,
                )
            })
        })
        .collect();
    assert_eq!(s.insert(rows).await.unwrap(), 700);
    let months = |server: &ClickHouse| {
        let c = sql(server, "tollgate_retention");
        async move {
            c.query("SELECT DISTINCT partition FROM system.parts WHERE database = 'tollgate_retention' AND table = 'traces' AND active ORDER BY partition")
                .fetch_all::<String>()
                .await
                .unwrap()
        }
    };
    assert_eq!(months(&server).await, ["202609", "202610", "202611"]);
    // cutoff 5 November: September and October go whole, 4 days of November row by row
    let nov_5 = SEP_1 + 65 * DAY;
    assert_eq!(s.delete_before(nov_5).await.unwrap(), 650);
    assert_eq!(s.count().await.unwrap(), 50);
    assert_eq!(months(&server).await, ["202611"]);
    assert!(s
        .get("d64-9".into(), TenantScope::All)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .get("d65-0".into(), TenantScope::All)
        .await
        .unwrap()
        .is_some());
    // the daily rollups lost the same days
    let usage = s.usage(UsageQuery::default()).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].requests, 50);
    assert_eq!(
        s.delete_before(nov_5).await.unwrap(),
        0,
        "nothing left to delete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_migration_2_backfills_the_rollups_from_stored_traces() {
    let server = ClickHouse::start();
    let db = "tollgate_backfill";
    let s = ClickHouseStorage::connect(&server.url(), db).await.unwrap();
    let rows: Vec<TraceSummary> = (0..30)
        .map(|i| {
            let mut t = summary(
                &format!("b{i}"),
                ["acme", "beta"][i % 2],
                SEP_1 + DAY + i as i64,
            );
            t.end_unix_nanos = t.start_unix_nanos + (100 + 10 * i as i64) * 1_000_000;
            t
        })
        .collect();
    assert_eq!(s.insert(rows).await.unwrap(), 30);
    // back to a version 1 database holding traces: no rollups, no view, no finding actions
    let c = sql(&server, db);
    for q in [
        "DROP TABLE usage_day_mv",
        "DROP TABLE usage_day",
        "ALTER TABLE traces DROP COLUMN finding_actions, DROP COLUMN finding_directions",
        "DROP TABLE schema_migrations",
        "CREATE TABLE schema_migrations (version UInt32, applied_ns Int64) ENGINE = MergeTree() ORDER BY version",
        "INSERT INTO schema_migrations VALUES (1, 0)",
    ] {
        c.query(q).execute().await.unwrap();
    }
    let again = ClickHouseStorage::connect(&server.url(), db).await.unwrap();
    let versions: Vec<u32> = c
        .query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 3]);
    // whole days: answered from the rollups; off day boundaries: from the raw rows
    let by_rollup = again.usage(UsageQuery::default()).await.unwrap();
    let by_rows = again
        .usage(UsageQuery {
            from_ns: Some(SEP_1 + 1),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_rollup[0].requests, 30);
    assert_eq!(by_rows[0].requests, 30);
    assert_eq!(by_rollup[0].input_tokens, by_rows[0].input_tokens);
    let (p, q) = (
        by_rollup[0].latency_ms.p50.unwrap(),
        by_rows[0].latency_ms.p50.unwrap(),
    );
    assert!((p - q).abs() / q < 0.05, "{p} vs {q}");
}
