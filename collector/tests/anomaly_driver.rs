//! The detector's driver against a real store (SQLite) on a clock the test controls: summaries
//! are stored with simulated start times, the driver is stepped as the clock moves, and the
//! anomalies, checkpoints, leadership and alert deliveries are read back. A webhook receiver
//! on loopback checks the signature; a failing one is retried and the failure recorded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate_collector::anomaly::driver::{Driver, Notice, Schedule};
use tollgate_collector::anomaly::sink::{
    signature, Notifier, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use tollgate_collector::anomaly::{AnomalyKind, DetectorSettings};
use tollgate_collector::config::SinkConfig;
use tollgate_collector::metrics::CollectorMetrics;
use tollgate_collector::storage::sqlite::SqliteStorage;
use tollgate_collector::storage::{AnomalyQuery, Storage};
use tollgate_proto::v1::{Outcome, TraceSummary, Usage};

const MINUTE: i64 = 60_000_000_000;
/// 2026-11-02T00:00:00Z.
const START: i64 = 1_793_577_600_000_000_000;
const GRACE: i64 = 30_000_000_000;

/// `n` calls of `tenant` in minute `m`, each costing `cost`.
fn minute(tenant: &str, m: i64, n: i64, cost: i64) -> Vec<TraceSummary> {
    (0..n)
        .map(|i| TraceSummary {
            request_id: format!("{tenant}-{m}-{i}"),
            tenant: tenant.into(),
            provider: "openai".into(),
            route: "openai".into(),
            request_model: "gpt-4o".into(),
            outcome: Outcome::Allowed as i32,
            start_unix_nanos: START + m * MINUTE + i * (MINUTE / n.max(1)),
            end_unix_nanos: START + m * MINUTE + i * (MINUTE / n.max(1)) + 800_000_000,
            usage: Some(Usage {
                input_tokens: 1000 + (i as u64 * 37) % 200,
                output_tokens: 200 + (i as u64 * 13) % 50,
                ..Usage::default()
            }),
            cost_micro_usd: cost + (i * 17) % 300,
            cost_known: true,
            ..TraceSummary::default()
        })
        .collect()
}

/// Steady traffic of two tenants for minutes `from..to`; `acme` costs `acme_cost` a call.
async fn traffic(s: &SqliteStorage, from: i64, to: i64, acme_cost: impl Fn(i64) -> i64) {
    for m in from..to {
        let mut batch = minute("acme", m, 40 + m % 3, acme_cost(m));
        batch.extend(minute("beta", m, 30 + m % 2, 2000));
        s.insert(batch).await.unwrap();
    }
}

fn settings() -> DetectorSettings {
    DetectorSettings {
        warmup_buckets: 30,
        ..DetectorSettings::default()
    }
}

fn schedule() -> Schedule {
    Schedule {
        grace_ns: GRACE,
        checkpoint_buckets: 10,
        history_buckets: 60,
        ..Schedule::default()
    }
}

fn driver(s: &SqliteStorage, holder: &str, started: i64) -> Driver<SqliteStorage> {
    Driver::new(
        s.clone(),
        settings(),
        schedule(),
        holder.into(),
        started,
        None,
        Arc::new(CollectorMetrics::default()),
    )
}

/// Now, when minute `m` has just been closed (its end plus the grace).
fn after(m: i64) -> i64 {
    START + (m + 1) * MINUTE + GRACE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_spike_in_the_store_is_raised_kept_across_a_restart_and_by_one_leader() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("a.db")).unwrap();
    traffic(&s, 0, 90, |_| 1000).await;
    let mut first = driver(&s, "first", START);
    // a fresh driver learns from the stored history (60 buckets back), then keeps up
    let step = first.step(after(89)).await.unwrap();
    assert!(step.leader);
    assert_eq!(step.buckets, 60);
    assert_eq!(
        first.state().unwrap().series(),
        4,
        "2 tenants, each with its model"
    );
    // a second member, started later, follows and evaluates nothing
    let mut second = driver(&s, "second", START + MINUTE);
    let step = second.step(after(89)).await.unwrap();
    assert!(!step.leader && step.buckets == 0);
    // acme's calls cost five times as much from minute 90
    traffic(&s, 90, 92, |_| 5000).await;
    first.step(after(90)).await.unwrap();
    let step = first.step(after(91)).await.unwrap();
    assert_eq!(step.buckets, 1);
    let open = s
        .anomalies(AnomalyQuery {
            open: Some(true),
            limit: 100,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    let cost = open
        .iter()
        .find(|a| a.anomaly.metric == "cost_micro_usd" && a.anomaly.model.is_none())
        .expect("the spike was raised within two buckets");
    assert_eq!(cost.anomaly.tenant, "acme");
    assert_eq!(cost.anomaly.kind, AnomalyKind::Spike);
    assert_eq!(cost.anomaly.started_ns, START + 90 * MINUTE);
    assert!(cost.anomaly.observed > 4.0 * cost.anomaly.baseline_mean);
    assert!(
        open.iter().all(|a| a.anomaly.tenant == "acme"),
        "nothing about beta: {open:?}"
    );
    // the second member saw none of it
    second.step(after(91)).await.unwrap();
    assert!(second.state().is_none());

    // the first member crashes (its last checkpoint is from minute 89); its lease runs out
    drop(first);
    traffic(&s, 92, 100, |_| 1000).await;
    // beta's cost jumps at minute 100
    for m in 100..102 {
        let mut batch = minute("acme", m, 40, 1000);
        batch.extend(minute("beta", m, 30, 10_000));
        s.insert(batch).await.unwrap();
    }
    let step = second.step(after(101)).await.unwrap();
    assert!(step.leader, "the lease ran out: the second member leads");
    assert_eq!(step.buckets, 12, "it resumed where the checkpoint left off");
    let beta = s
        .anomalies(AnomalyQuery {
            tenant: Some("beta".into()),
            metric: Some("cost_micro_usd".into()),
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    assert!(
        beta.iter()
            .any(|a| a.anomaly.open && a.anomaly.started_ns == START + 100 * MINUTE),
        "raised at once, without a new warm-up: {beta:?}"
    );
    // acme's spike closed after it ended
    let acme = s
        .anomalies(AnomalyQuery {
            tenant: Some("acme".into()),
            metric: Some("cost_micro_usd".into()),
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    // replaying minutes 90 and 91 found the same incident: one anomaly per series (tenant,
    // tenant × model), the same id as before, now closed
    let acme: Vec<_> = acme
        .into_iter()
        .filter(|a| a.anomaly.model.is_none())
        .collect();
    assert_eq!(acme.len(), 1, "{acme:?}");
    assert_eq!(acme[0].anomaly.id, cost.anomaly.id);
    assert!(!acme[0].anomaly.open, "{acme:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_stops_is_raised_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("b.db")).unwrap();
    traffic(&s, 0, 60, |_| 1000).await;
    // beta goes quiet at minute 60; acme carries on
    for m in 60..63 {
        s.insert(minute("acme", m, 40, 1000)).await.unwrap();
    }
    let mut d = driver(&s, "only", START);
    d.step(after(62)).await.unwrap();
    let drops = s
        .anomalies(AnomalyQuery {
            tenant: Some("beta".into()),
            metric: Some("requests".into()),
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    let a = &drops.first().expect("the stop was raised").anomaly;
    assert_eq!(a.kind, AnomalyKind::Drop);
    assert_eq!(a.observed, 0.0);
    assert!(a.started_ns <= START + 61 * MINUTE, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_waits_after_start_and_refusals_and_old_incidents_are_not_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("h.db")).unwrap();
    // an incident an hour ago (minutes 40-49), normal since, and a new one from minute 100
    traffic(&s, 0, 102, |m| {
        if (40..50).contains(&m) || m >= 100 {
            5000
        } else {
            1000
        }
    })
    .await;
    let metrics = Arc::new(CollectorMetrics::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let started = after(100) - 10_000_000_000;
    let mut d = Driver::new(
        s.clone(),
        DetectorSettings {
            warmup_buckets: 20,
            ..DetectorSettings::default()
        },
        Schedule {
            history_buckets: 90,
            ..schedule()
        },
        "only".into(),
        started,
        Some(tx),
        metrics.clone(),
    );
    // started 10 s ago: gateways may still hold summaries, nothing is scored yet
    let step = d.step(after(100)).await.unwrap();
    assert!(step.leader && step.buckets == 0, "{step:?}");
    // 30 s after the start it scores, history included
    let step = d.step(after(101)).await.unwrap();
    assert_eq!(step.buckets, 90);
    let stored = s
        .anomalies(AnomalyQuery {
            tenant: Some("acme".into()),
            metric: Some("cost_micro_usd".into()),
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    let starts: Vec<i64> = stored
        .iter()
        .filter(|a| a.anomaly.model.is_none())
        .map(|a| (a.anomaly.started_ns - START) / MINUTE)
        .collect();
    assert_eq!(starts, [100, 40], "both incidents are stored");
    // only the live one was sent
    let mut sent = Vec::new();
    while let Ok(n) = rx.try_recv() {
        sent.push(((n.anomaly.started_ns - START) / MINUTE, n.event));
    }
    assert!(
        !sent.is_empty() && sent.iter().all(|(m, e)| *m == 100 && *e == "opened"),
        "{sent:?}"
    );
    // ingest turning a batch away holds scoring again
    traffic(&s, 102, 104, |_| 5000).await;
    metrics.rejected("storage_unavailable");
    let held = d.step(after(103)).await.unwrap();
    assert_eq!(held.buckets, 0, "held after a refusal");
}

/// One request a receiver got: headers and body.
type Request = (axum::http::HeaderMap, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_rules_fire_from_the_store() {
    use tollgate_proto::v1::{Action, Direction, Finding};
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("r.db")).unwrap();
    let finding = |rule: &str, category: &str, action: Action, direction: Direction| Finding {
        rule_id: rule.into(),
        category: category.into(),
        action: action as i32,
        direction: direction as i32,
        ..Finding::default()
    };
    // minute 10: acme sends six blocked injections, beta four (under the burst of five) and
    // gets an API key back in a response
    let mut batch = Vec::new();
    for (i, mut t) in minute("acme", 10, 6, 1000).into_iter().enumerate() {
        t.findings = vec![finding(
            "pi.override.ignore-previous",
            "injection.override",
            Action::Block,
            Direction::Request,
        )];
        t.findings_total = 1;
        t.request_id = format!("inj-{i}");
        batch.push(t);
    }
    for (i, mut t) in minute("beta", 10, 4, 1000).into_iter().enumerate() {
        t.findings = vec![finding(
            "pi.jailbreak.dan",
            "injection.jailbreak",
            Action::Block,
            Direction::Request,
        )];
        if i == 0 {
            t.findings.push(finding(
                "secret.openai-key",
                "secret",
                Action::Redact,
                Direction::Response,
            ));
        }
        t.findings_total = u32::try_from(t.findings.len()).unwrap();
        batch.push(t);
    }
    s.insert(batch).await.unwrap();
    let mut d = driver(&s, "only", START);
    d.step(after(10)).await.unwrap();
    let all = s
        .anomalies(AnomalyQuery {
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    let mut got: Vec<(String, String, f64)> = all
        .iter()
        .map(|a| {
            (
                a.anomaly.tenant.clone(),
                a.anomaly.metric.clone(),
                a.anomaly.observed,
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("acme".to_string(), "injection_burst".to_string(), 6.0),
            ("beta".to_string(), "secret_in_response".to_string(), 1.0),
        ]
    );
    assert!(all
        .iter()
        .all(|a| a.anomaly.kind == AnomalyKind::Rule && a.anomaly.open));
}

/// What a webhook receiver got.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Request>>>);

async fn receiver(status: u16) -> (String, Received) {
    let got = Received::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let keep = keep.clone();
                async move {
                    keep.0.lock().unwrap().push((headers, body.to_vec()));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

fn notice() -> Notice {
    Notice {
        event: "opened",
        anomaly: tollgate_collector::anomaly::Anomaly {
            id: "an_test".into(),
            tenant: "acme".into(),
            model: None,
            metric: "cost_micro_usd".into(),
            kind: AnomalyKind::Spike,
            open: true,
            started_ns: START,
            updated_ns: START + 2 * MINUTE,
            ended_ns: None,
            observed: 50_000.0,
            peak: 50_000.0,
            baseline_mean: 10_000.0,
            baseline_std_dev: 800.0,
            z_score: 12.5,
            max_abs_z_score: 12.5,
            buckets: 2,
            total: 0,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_a_signed_alert_and_the_delivery_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("c.db")).unwrap();
    s.put_anomalies(vec![notice().anomaly]).await.unwrap();
    let (url, got) = receiver(204).await;
    let secret = "a-shared-secret-of-32-characters";
    let sink = SinkConfig::Webhook {
        name: "ops".into(),
        url,
        secret: secret.into(),
        timeout_ms: 2000,
    };
    let metrics = Arc::new(CollectorMetrics::default());
    let notifier = Notifier::new(
        s.clone(),
        vec![sink.clone()],
        3,
        Duration::from_millis(10),
        metrics.clone(),
    );
    let d = notifier.deliver(&sink, &notice()).await;
    assert_eq!((d.status.as_str(), d.attempts), ("delivered", 1));
    let got = got.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    // what a receiver checks: the signature over "<timestamp>.<body>", and a fresh timestamp
    let ts: i64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
    assert_eq!(
        headers[SIGNATURE_HEADER].to_str().unwrap(),
        signature(secret, ts, body)
    );
    assert_ne!(
        headers[SIGNATURE_HEADER].to_str().unwrap(),
        signature("another-secret-of-32-characters!", ts, body)
    );
    assert!((tollgate_collector::time::now_ns() / 1_000_000_000 - ts).abs() < 60);
    assert_eq!(headers[DELIVERY_HEADER].to_str().unwrap(), "an_test:opened");
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["type"], "anomaly.opened");
    assert_eq!(json["anomaly"]["tenant"], "acme");
    assert_eq!(json["anomaly"]["z_score"], 12.5);
    let stored = s
        .anomalies(AnomalyQuery {
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(stored[0].deliveries.len(), 1);
    assert_eq!(stored[0].deliveries[0].status, "delivered");
    assert!(metrics
        .render(None)
        .contains("tollgate_collector_alerts_sent_total{sink=\"ops\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_and_the_failure_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("d.db")).unwrap();
    s.put_anomalies(vec![notice().anomaly]).await.unwrap();
    let (url, got) = receiver(503).await;
    let sinks = vec![
        SinkConfig::Slack {
            name: "chat".into(),
            url,
        },
        // nothing listens there
        SinkConfig::Webhook {
            name: "gone".into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret: "a-shared-secret-of-32-characters".into(),
            timeout_ms: 500,
        },
    ];
    let metrics = Arc::new(CollectorMetrics::default());
    let notifier = Notifier::new(
        s.clone(),
        sinks.clone(),
        3,
        Duration::from_millis(10),
        metrics.clone(),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(notice()).await.unwrap();
    drop(tx);
    notifier.run(rx).await;
    // three tries each, all recorded
    assert_eq!(got.0.lock().unwrap().len(), 3);
    let slack: serde_json::Value = serde_json::from_slice(&got.0.lock().unwrap()[0].1).unwrap();
    assert!(
        slack["text"].as_str().unwrap().contains("tenant `acme`"),
        "{slack}"
    );
    let stored = s
        .anomalies(AnomalyQuery {
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    let d = &stored[0].deliveries;
    assert_eq!(d.len(), 2);
    for delivery in d {
        assert_eq!(
            (delivery.status.as_str(), delivery.attempts),
            ("failed", 3),
            "{delivery:?}"
        );
        assert!(delivery.last_error.is_some());
    }
    let chat = d.iter().find(|d| d.sink == "chat").unwrap();
    assert_eq!(chat.last_error.as_deref(), Some("HTTP 503"));
    let text = metrics.render(None);
    assert!(text.contains("tollgate_collector_alerts_failed_total{sink=\"chat\"} 1"));
    assert!(text.contains("tollgate_collector_alerts_failed_total{sink=\"gone\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_the_other_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path().join("e.db")).unwrap();
    s.put_anomalies(vec![notice().anomaly]).await.unwrap();
    // a receiver that answers only when released
    let (release, released) = tokio::sync::watch::channel(false);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let mut released = released.clone();
            async move {
                while !*released.borrow() {
                    if released.changed().await.is_err() {
                        break;
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (healthy, got) = receiver(204).await;
    let secret = "a-shared-secret-of-32-characters".to_string();
    let sinks = vec![
        SinkConfig::Webhook {
            name: "slow".into(),
            url: hanging,
            secret: secret.clone(),
            timeout_ms: 30_000,
        },
        SinkConfig::Webhook {
            name: "fast".into(),
            url: healthy,
            secret,
            timeout_ms: 2_000,
        },
    ];
    let notifier = Notifier::new(
        s.clone(),
        sinks,
        1,
        Duration::from_millis(10),
        Arc::new(CollectorMetrics::default()),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let running = tokio::spawn(notifier.run(rx));
    tx.send(notice()).await.unwrap();
    // the healthy sink gets the alert while the other one still hangs
    for _ in 0..100 {
        if !got.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        got.0.lock().unwrap().len(),
        1,
        "the healthy sink was not held up"
    );
    assert!(!running.is_finished());
    release.send(true).unwrap();
    drop(tx);
    running.await.unwrap();
    let stored = s
        .anomalies(AnomalyQuery {
            limit: 10,
            ..AnomalyQuery::default()
        })
        .await
        .unwrap();
    let mut status: Vec<(String, String)> = stored[0]
        .deliveries
        .iter()
        .map(|d| (d.sink.clone(), d.status.clone()))
        .collect();
    status.sort();
    assert_eq!(
        status,
        [
            ("fast".to_string(), "delivered".to_string()),
            ("slow".to_string(), "delivered".to_string())
        ]
    );
}
