//! The storage contract: what every backend must do, run against SQLite and against a real
//! ClickHouse server through the same `contract` function, plus a parity test comparing the
//! two backends' answers on the same generated data.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

mod common;

use tollgate_collector::anomaly::{Anomaly, AnomalyKind};
use tollgate_collector::storage::clickhouse::ClickHouseStorage;
use tollgate_collector::storage::sqlite::SqliteStorage;
use tollgate_collector::storage::{
    AnomalyQuery, Bucket, Delivery, Dimension, FindingsQuery, Member, Storage, StoredAnomaly,
    TenantScope, TraceQuery, UsageQuery,
};
use tollgate_proto::v1::{Action, Direction, Finding, Outcome, Severity, TraceSummary, Usage};

const DAY: i64 = 86_400_000_000_000;
/// 2026-11-16T00:00:00Z, a Monday.
const MONDAY: i64 = 1_794_787_200_000_000_000;

#[allow(clippy::too_many_arguments)]
fn trace(
    id: &str,
    tenant: &str,
    model: &str,
    start: i64,
    latency_ms: i64,
    tokens: (u64, u64),
    cost: Option<i64>,
    outcome: Outcome,
    findings: &[(&str, &str)],
) -> TraceSummary {
    TraceSummary {
        request_id: id.into(),
        tenant: tenant.into(),
        tenant_source: "header".into(),
        route: "openai".into(),
        provider: if model.starts_with("claude") {
            "anthropic"
        } else {
            "openai"
        }
        .into(),
        operation: "chat_completions".into(),
        request_model: model.into(),
        response_model: model.into(),
        status_code: 200,
        outcome: outcome as i32,
        start_unix_nanos: start,
        end_unix_nanos: start + latency_ms * 1_000_000,
        stream: true,
        time_to_first_token_nanos: latency_ms * 100_000,
        usage: Some(Usage {
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            ..Usage::default()
        }),
        cost_micro_usd: cost.unwrap_or(0),
        cost_known: cost.is_some(),
        findings: findings
            .iter()
            .map(|(rule, cat)| Finding {
                rule_id: (*rule).into(),
                category: (*cat).into(),
                severity: Severity::High as i32,
                action: Action::Block as i32,
                direction: Direction::Request as i32,
                message_index: 0,
                start: 0,
                end: 10,
            })
            .collect(),
        findings_total: findings.len() as u32,
        ..TraceSummary::default()
    }
}

fn dataset() -> Vec<TraceSummary> {
    vec![
        trace(
            "a1",
            "acme",
            "gpt-4o",
            MONDAY + 10,
            100,
            (100, 10),
            Some(1000),
            Outcome::Allowed,
            &[],
        ),
        trace(
            "a2",
            "acme",
            "gpt-4o",
            MONDAY + 20,
            300,
            (200, 20),
            Some(2000),
            Outcome::Redacted,
            &[("pii.card", "pii")],
        ),
        trace(
            "a3",
            "acme",
            "claude-haiku-4-5",
            MONDAY + DAY,
            200,
            (50, 5),
            None,
            Outcome::Blocked,
            &[
                ("pi.override.ignore-previous", "injection.override"),
                ("pii.email", "pii"),
            ],
        ),
        trace(
            "b1",
            "beta",
            "gpt-4o",
            MONDAY + 2 * DAY,
            1000,
            (10, 1),
            Some(10),
            Outcome::Error,
            &[],
        ),
        trace(
            "b2",
            "beta",
            "gpt-4o",
            MONDAY + 8 * DAY,
            50,
            (1, 1),
            Some(1),
            Outcome::Allowed,
            &[],
        ),
    ]
}

async fn ids(s: &impl Storage, q: TraceQuery) -> Vec<String> {
    s.traces(q)
        .await
        .unwrap()
        .traces
        .into_iter()
        .map(|t| t.request_id)
        .collect()
}

fn all() -> TraceQuery {
    TraceQuery {
        limit: 100,
        ..TraceQuery::default()
    }
}

/// The contract every backend passes.
async fn contract(s: impl Storage + Clone) {
    // insert is atomic and idempotent per request id
    assert_eq!(s.insert(dataset()).await.unwrap(), 5);
    assert_eq!(
        s.insert(vec![dataset()[0].clone()]).await.unwrap(),
        1,
        "a retried summary is accepted"
    );
    assert_eq!(s.count().await.unwrap(), 5, "and stored once");

    // get, with scope
    let t = s.get("a3".into(), TenantScope::All).await.unwrap().unwrap();
    assert_eq!(t, dataset()[2], "stored as received");
    assert!(s
        .get("a3".into(), TenantScope::Only(vec!["beta".into()]))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .get("nope".into(), TenantScope::All)
        .await
        .unwrap()
        .is_none());

    // newest stored first; every filter
    assert_eq!(ids(&s, all()).await, ["b2", "b1", "a3", "a2", "a1"]);
    let q = |f: fn(&mut TraceQuery)| {
        let mut q = all();
        f(&mut q);
        q
    };
    assert_eq!(
        ids(&s, q(|q| q.tenant = Some("beta".into()))).await,
        ["b2", "b1"]
    );
    assert_eq!(
        ids(&s, q(|q| q.scope = TenantScope::Only(vec!["beta".into()]))).await,
        ["b2", "b1"]
    );
    assert_eq!(
        ids(&s, q(|q| q.scope = TenantScope::Only(vec![]))).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&s, q(|q| q.provider = Some("anthropic".into()))).await,
        ["a3"]
    );
    assert_eq!(
        ids(&s, q(|q| q.model = Some("gpt-4o".into()))).await,
        ["b2", "b1", "a2", "a1"]
    );
    assert_eq!(
        ids(&s, q(|q| q.outcome = Some("blocked".into()))).await,
        ["a3"]
    );
    assert_eq!(
        ids(&s, q(|q| q.route = Some("openai".into()))).await.len(),
        5
    );
    assert_eq!(
        ids(
            &s,
            q(|q| {
                q.from_ns = Some(MONDAY + DAY);
                q.to_ns = Some(MONDAY + 8 * DAY);
            })
        )
        .await,
        ["b1", "a3"]
    );
    assert_eq!(
        ids(&s, q(|q| q.has_findings = Some(true))).await,
        ["a3", "a2"]
    );
    assert_eq!(
        ids(&s, q(|q| q.has_findings = Some(false))).await,
        ["b2", "b1", "a1"]
    );
    assert_eq!(
        ids(&s, q(|q| q.category = Some("injection".into()))).await,
        ["a3"],
        "a prefix category"
    );
    assert_eq!(
        ids(&s, q(|q| q.category = Some("pii".into()))).await,
        ["a3", "a2"]
    );
    assert_eq!(
        ids(&s, q(|q| q.category = Some("inj".into()))).await,
        Vec::<String>::new(),
        "not a word prefix"
    );
    assert_eq!(
        ids(&s, q(|q| q.rule_id = Some("pii.card".into()))).await,
        ["a2"]
    );
    assert_eq!(
        ids(&s, q(|q| q.min_cost_micro_usd = Some(1000))).await,
        ["a2", "a1"]
    );
    assert_eq!(
        ids(&s, q(|q| q.min_latency_ms = Some(300))).await,
        ["b1", "a2"]
    );

    // cursor paging is stable while new rows arrive
    let mut page = s
        .traces(TraceQuery {
            limit: 2,
            ..TraceQuery::default()
        })
        .await
        .unwrap();
    let mut seen: Vec<String> = page.traces.iter().map(|t| t.request_id.clone()).collect();
    s.insert(vec![trace(
        "c1",
        "acme",
        "gpt-4o",
        MONDAY + 30,
        10,
        (1, 1),
        Some(1),
        Outcome::Allowed,
        &[],
    )])
    .await
    .unwrap();
    while let Some(cursor) = page.next_cursor {
        page = s
            .traces(TraceQuery {
                limit: 2,
                cursor: Some(cursor),
                ..TraceQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.traces.iter().map(|t| t.request_id.clone()));
    }
    assert_eq!(
        seen,
        ["b2", "b1", "a3", "a2", "a1"],
        "no row skipped or repeated"
    );
    assert_eq!(
        ids(&s, all()).await[0],
        "c1",
        "the new row is on the first page"
    );

    // usage by tenant and model, bucketed by day and week
    let rows = s
        .usage(UsageQuery {
            group_by: vec![Dimension::Tenant],
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let acme = rows.iter().find(|r| r.group["tenant"] == "acme").unwrap();
    assert_eq!(
        (acme.requests, acme.input_tokens, acme.output_tokens),
        (4, 351, 36)
    );
    assert_eq!(
        (acme.cost_micro_usd, acme.unpriced_requests, acme.blocked),
        (3001, 1, 1)
    );
    // percentiles may be approximate (histograms, sketches): within 5 %
    let near = |got: Option<f64>, want: f64| {
        let got = got.unwrap();
        assert!((got - want).abs() / want <= 0.05, "{got} vs {want}");
    };
    near(acme.latency_ms.p50, 100.0);
    near(acme.latency_ms.p99, 300.0);
    near(acme.time_to_first_token_ms.p50, 10.0);
    // any time range gives the same sums, whichever way the backend answers it
    let unaligned = s
        .usage(UsageQuery {
            group_by: vec![Dimension::Tenant],
            from_ns: Some(1),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    let strip = |rows: &[tollgate_collector::storage::UsageRow]| -> Vec<(String, u64, u64, i64)> {
        rows.iter()
            .map(|r| {
                (
                    r.group["tenant"].clone(),
                    r.requests,
                    r.input_tokens,
                    r.cost_micro_usd,
                )
            })
            .collect()
    };
    let mut a = strip(&rows);
    let mut b = strip(&unaligned);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let beta = rows.iter().find(|r| r.group["tenant"] == "beta").unwrap();
    assert_eq!((beta.requests, beta.errors), (2, 1));
    let days = s
        .usage(UsageQuery {
            group_by: vec![Dimension::Model],
            bucket: Some(Bucket::Day),
            tenant: Some("acme".into()),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    let labels: Vec<(String, String, u64)> = days
        .iter()
        .map(|r| {
            (
                r.bucket.clone().unwrap(),
                r.group["model"].clone(),
                r.requests,
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("2026-11-16T00:00:00Z".to_string(), "gpt-4o".to_string(), 3),
            (
                "2026-11-17T00:00:00Z".to_string(),
                "claude-haiku-4-5".to_string(),
                1
            ),
        ]
    );
    let weeks = s
        .usage(UsageQuery {
            bucket: Some(Bucket::Week),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    let weeks: Vec<(String, u64)> = weeks
        .iter()
        .map(|r| (r.bucket.clone().unwrap(), r.requests))
        .collect();
    assert_eq!(
        weeks,
        [
            ("2026-11-16T00:00:00Z".to_string(), 5),
            ("2026-11-23T00:00:00Z".to_string(), 1)
        ],
        "weeks start on Monday"
    );
    let months = s
        .usage(UsageQuery {
            bucket: Some(Bucket::Month),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(months[0].bucket.as_deref(), Some("2026-11-01T00:00:00Z"));
    let scoped = s
        .usage(UsageQuery {
            scope: TenantScope::Only(vec!["beta".into()]),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(scoped.len(), 1);
    assert_eq!(
        scoped[0].requests, 2,
        "a scoped caller sees only its tenants"
    );

    // findings by category
    let f = s
        .findings(FindingsQuery {
            by: vec!["category".into()],
            ..FindingsQuery::default()
        })
        .await
        .unwrap();
    let counts: Vec<(String, u64, u64)> = f
        .iter()
        .map(|r| (r.group["category"].clone(), r.findings, r.traces))
        .collect();
    assert_eq!(
        counts,
        [
            ("injection.override".to_string(), 1, 1),
            ("pii".to_string(), 2, 2)
        ]
    );
    let by_rule_tenant = s
        .findings(FindingsQuery {
            by: vec!["rule".into(), "tenant".into()],
            scope: TenantScope::Only(vec!["beta".into()]),
            ..FindingsQuery::default()
        })
        .await
        .unwrap();
    assert!(by_rule_tenant.is_empty());

    // findings filtered by category (with subcategories), action and direction
    let injections = |action: &str, direction: &str| FindingsQuery {
        by: vec!["category".into()],
        category: Some("injection".into()),
        action: Some(action.into()),
        direction: Some(direction.into()),
        ..FindingsQuery::default()
    };
    let f = s.findings(injections("block", "request")).await.unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].group["category"].as_str(), f[0].findings),
        ("injection.override", 1)
    );
    for (action, direction) in [("block", "response"), ("redact", "request")] {
        let f = s.findings(injections(action, direction)).await.unwrap();
        assert!(f.is_empty(), "{action} {direction}: {f:?}");
    }

    anomalies_contract(&s).await;

    // retention: traces, and closed anomalies and members left behind
    assert_eq!(s.delete_before(MONDAY + DAY).await.unwrap(), 3);
    let left = s
        .anomalies(AnomalyQuery {
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        anomaly_ids(left),
        ["a3", "a2"],
        "a1 closed before the cutoff; a2 is open"
    );
    assert!(s.members(0).await.unwrap().is_empty());
    assert_eq!(ids(&s, all()).await, ["b2", "b1", "a3"]);
    assert!(s
        .findings(FindingsQuery {
            by: vec!["rule".into()],
            ..FindingsQuery::default()
        })
        .await
        .unwrap()
        .iter()
        .all(|r| r.group["rule"] != "pii.card"));
}

#[tokio::test]
async fn sqlite_passes_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("t.db")).unwrap();
    contract(s).await;
}

#[tokio::test]
async fn sqlite_survives_a_reopen_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let s = SqliteStorage::open(&path).unwrap();
        s.insert(dataset()).await.unwrap();
    }
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.count().await.unwrap(), 5);
}

#[tokio::test]
async fn sqlite_migrates_a_version_1_database_and_backfills_the_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let usage = |s: SqliteStorage| async move {
        let rows = s
            .usage(UsageQuery {
                group_by: vec![Dimension::Tenant],
                ..UsageQuery::default()
            })
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.group["tenant"].clone(), r.requests, r.output_tokens))
            .collect::<Vec<_>>()
    };
    let before = {
        let s = SqliteStorage::open(&path).unwrap();
        s.insert(dataset()).await.unwrap();
        usage(s).await
    };
    {
        // what a version-1 collector left behind
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE usage_day; DROP TABLE anomalies; DROP TABLE deliveries;
             DROP TABLE checkpoints; DROP TABLE members; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(usage(s).await, before);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_passes_the_storage_contract() {
    let server = common::clickhouse::ClickHouse::start();
    let s = ClickHouseStorage::connect(&server.url(), "tollgate_contract")
        .await
        .unwrap();
    contract(s).await;
}

fn anomaly(id: &str, tenant: &str, metric: &str, start: i64, open: bool) -> Anomaly {
    Anomaly {
        id: id.into(),
        tenant: tenant.into(),
        model: None,
        metric: metric.into(),
        kind: AnomalyKind::Spike,
        open,
        started_ns: start,
        updated_ns: start + 120_000_000_000,
        ended_ns: (!open).then_some(start + 120_000_000_000),
        observed: 5.0,
        peak: 5.5,
        baseline_mean: 1.0,
        baseline_std_dev: 0.25,
        z_score: 16.0,
        max_abs_z_score: 18.0,
        buckets: 2,
        total: 0,
    }
}

fn anomaly_ids(rows: Vec<StoredAnomaly>) -> Vec<String> {
    rows.into_iter().map(|r| r.anomaly.id).collect()
}

/// Anomalies, deliveries, checkpoints and leadership members.
async fn anomalies_contract(s: &impl Storage) {
    let query = |f: fn(&mut AnomalyQuery)| {
        let mut q = AnomalyQuery {
            limit: 100,
            ..AnomalyQuery::default()
        };
        f(&mut q);
        q
    };
    s.put_anomalies(vec![
        anomaly("a1", "acme", "cost_micro_usd", MONDAY, true),
        anomaly("a2", "beta", "requests", MONDAY + DAY, true),
        anomaly("a3", "acme", "requests", MONDAY + 2 * DAY, false),
    ])
    .await
    .unwrap();
    let all = s.anomalies(query(|_| {})).await.unwrap();
    assert_eq!(anomaly_ids(all), ["a3", "a2", "a1"]);
    // a newer version replaces the stored one
    let mut closed = anomaly("a1", "acme", "cost_micro_usd", MONDAY, false);
    closed.buckets = 9;
    s.put_anomalies(vec![closed.clone()]).await.unwrap();
    let all = s.anomalies(query(|_| {})).await.unwrap();
    assert_eq!(all.len(), 3, "replaced, not added");
    assert_eq!(all[2].anomaly, closed);
    for (q, want) in [
        (query(|q| q.open = Some(true)), vec!["a2"]),
        (query(|q| q.open = Some(false)), vec!["a3", "a1"]),
        (query(|q| q.tenant = Some("acme".into())), vec!["a3", "a1"]),
        (
            query(|q| q.metric = Some("requests".into())),
            vec!["a3", "a2"],
        ),
        (
            query(|q| q.scope = TenantScope::Only(vec!["beta".into()])),
            vec!["a2"],
        ),
        (
            // lives overlapping [Tuesday, Wednesday)
            query(|q| {
                q.from_ns = Some(MONDAY + DAY);
                q.to_ns = Some(MONDAY + 2 * DAY);
            }),
            vec!["a2"],
        ),
        (query(|q| q.limit = 1), vec!["a3"]),
    ] {
        assert_eq!(
            anomaly_ids(s.anomalies(q.clone()).await.unwrap()),
            want,
            "{q:?}"
        );
    }
    // deliveries: recorded, replaced by the newer status, served with their anomaly
    let delivery = |status: &str, attempts, error: Option<&str>| Delivery {
        anomaly_id: "a2".into(),
        event: "opened".into(),
        sink: "ops-webhook".into(),
        status: status.into(),
        attempts,
        last_error: error.map(str::to_string),
        updated_ns: MONDAY + DAY,
    };
    s.put_deliveries(vec![delivery("pending", 1, Some("connection refused"))])
        .await
        .unwrap();
    let a2 = s
        .anomalies(query(|q| q.tenant = Some("beta".into())))
        .await
        .unwrap();
    assert_eq!(
        a2[0].deliveries,
        [delivery("pending", 1, Some("connection refused"))]
    );
    s.put_deliveries(vec![delivery("delivered", 2, None)])
        .await
        .unwrap();
    let a2 = s
        .anomalies(query(|q| q.tenant = Some("beta".into())))
        .await
        .unwrap();
    assert_eq!(a2[0].deliveries, [delivery("delivered", 2, None)]);
    // checkpoints: the last one saved
    assert_eq!(s.load_checkpoint("detector".into()).await.unwrap(), None);
    s.save_checkpoint("detector".into(), vec![1, 2, 3])
        .await
        .unwrap();
    s.save_checkpoint("detector".into(), vec![4, 5, 0, 6])
        .await
        .unwrap();
    assert_eq!(
        s.load_checkpoint("detector".into()).await.unwrap(),
        Some(vec![4, 5, 0, 6])
    );
    // members: the latest beat of each live one, oldest member first
    for (holder, started, beat) in [("b", 20, 100), ("a", 10, 50), ("b", 20, 130), ("c", 5, 40)] {
        s.heartbeat(Member {
            holder: holder.into(),
            started_ns: started,
            beat_ns: beat,
        })
        .await
        .unwrap();
    }
    let live = s.members(45).await.unwrap();
    let live: Vec<(&str, i64, i64)> = live
        .iter()
        .map(|m| (m.holder.as_str(), m.started_ns, m.beat_ns))
        .collect();
    assert_eq!(live, [("a", 10, 50), ("b", 20, 130)]);
}

/// Parity: the same generated traffic loaded into SQLite and ClickHouse gives the same answers
/// to every query the API makes, percentiles included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_clickhouse_answer_alike() {
    let server = common::clickhouse::ClickHouse::start();
    let ch = ClickHouseStorage::connect(&server.url(), "tollgate_parity")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sq = SqliteStorage::open(dir.path().join("p.db")).unwrap();
    // generated traffic: 3 tenants, 3 models, 40 days, a finding every 7th call
    let models = ["gpt-4o", "gpt-4o-mini", "claude-haiku-4-5"];
    let mut data = Vec::new();
    for i in 0..600i64 {
        let findings: &[(&str, &str)] = if i % 7 == 0 {
            &[("pii.email", "pii")]
        } else {
            &[]
        };
        data.push(trace(
            &format!("g{i:04}"),
            ["acme", "beta", "gamma"][(i % 3) as usize],
            models[(i % 5 % 3) as usize],
            MONDAY - 20 * DAY + i * (DAY / 15),
            50 + (i * 37) % 900,
            (100 + (i as u64 % 50), 10 + (i as u64 % 7)),
            if i % 11 == 0 { None } else { Some(i * 3) },
            if i % 13 == 0 {
                Outcome::Error
            } else {
                Outcome::Allowed
            },
            findings,
        ));
    }
    for chunk in data.chunks(100) {
        sq.insert(chunk.to_vec()).await.unwrap();
        ch.insert(chunk.to_vec()).await.unwrap();
    }
    // traces: every page of every filter, same ids in the same order
    let queries: Vec<TraceQuery> = vec![
        all(),
        TraceQuery {
            tenant: Some("beta".into()),
            limit: 50,
            ..TraceQuery::default()
        },
        TraceQuery {
            category: Some("pii".into()),
            limit: 20,
            ..TraceQuery::default()
        },
        TraceQuery {
            min_latency_ms: Some(700),
            limit: 1000,
            ..TraceQuery::default()
        },
        TraceQuery {
            from_ns: Some(MONDAY),
            to_ns: Some(MONDAY + 10 * DAY),
            limit: 1000,
            ..TraceQuery::default()
        },
        TraceQuery {
            scope: TenantScope::Only(vec!["gamma".into()]),
            outcome: Some("error".into()),
            limit: 1000,
            ..TraceQuery::default()
        },
    ];
    for q in queries {
        let a = every_page(&sq, &q).await;
        let b = every_page(&ch, &q).await;
        assert_eq!(a, b, "{q:?}");
    }
    // usage: every grouping and bucket
    for q in [
        (vec![], None, None),
        (vec![Dimension::Tenant], None, None),
        (
            vec![Dimension::Model, Dimension::Tenant],
            Some(Bucket::Day),
            None,
        ),
        (vec![Dimension::Provider], Some(Bucket::Week), None),
        (vec![Dimension::Route], Some(Bucket::Month), None),
        (vec![Dimension::Tenant], Some(Bucket::Hour), Some(MONDAY)),
        (vec![Dimension::Model], None, Some(MONDAY + 1)),
        (
            vec![Dimension::Model],
            Some(Bucket::Day),
            Some(MONDAY - 5 * DAY),
        ),
    ]
    .into_iter()
    .map(|(group_by, bucket, from)| UsageQuery {
        group_by,
        bucket,
        from_ns: from,
        ..UsageQuery::default()
    })
    .chain([
        // whole days with every filter the rollups take
        UsageQuery {
            group_by: vec![Dimension::Tenant, Dimension::Route],
            bucket: Some(Bucket::Week),
            tenant: Some("beta".into()),
            from_ns: Some(MONDAY - 14 * DAY),
            to_ns: Some(MONDAY + 7 * DAY),
            ..UsageQuery::default()
        },
        UsageQuery {
            scope: TenantScope::Only(vec!["acme".into(), "gamma".into()]),
            from_ns: Some(MONDAY - 14 * DAY),
            ..UsageQuery::default()
        },
    ]) {
        // the same rows, percentiles included: both read the same daily rollups for whole
        // days and compute nearest-rank percentiles over the raw rows otherwise
        let a = sq.usage(q.clone()).await.unwrap();
        let b = ch.usage(q.clone()).await.unwrap();
        assert!(!a.is_empty(), "{q:?}");
        assert_eq!(a, b, "{q:?}");
    }
    // findings
    for by in [vec!["category"], vec!["rule", "tenant"]] {
        let q = FindingsQuery {
            by: by.iter().map(|s| s.to_string()).collect(),
            bucket: Some(Bucket::Day),
            ..FindingsQuery::default()
        };
        assert_eq!(
            sq.findings(q.clone()).await.unwrap(),
            ch.findings(q.clone()).await.unwrap(),
            "{by:?}"
        );
    }
    // one trace
    for id in ["g0000", "g0299", "g0599"] {
        assert_eq!(
            sq.get(id.into(), TenantScope::All).await.unwrap(),
            ch.get(id.into(), TenantScope::All).await.unwrap()
        );
    }
}

/// Request ids of every page of `q`, following the cursors.
async fn every_page(store: &impl Storage, q: &TraceQuery) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let p = store
            .traces(TraceQuery {
                cursor,
                ..q.clone()
            })
            .await
            .unwrap();
        ids.extend(p.traces.into_iter().map(|t| t.request_id));
        cursor = p.next_cursor;
        if cursor.is_none() {
            return ids;
        }
    }
}
