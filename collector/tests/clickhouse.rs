//! The ClickHouse backend against a real `clickhouse-server` (started by the harness on loopback
//! with a temporary data directory): version detection, migrations, idempotent inserts and
//! scoped lookups. The full storage contract follows with the query side (issue 5).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

mod common;

use common::clickhouse::ClickHouse;
use tollgate_collector::storage::clickhouse::ClickHouseStorage;
use tollgate_collector::storage::{Storage, TenantScope};
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
