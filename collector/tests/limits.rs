//! Shared limits as a running service over a real `redis-server`: Envoy's rate-limit protocol
//! admits exactly the limit under concurrent calls, all of a request's counters or none, the
//! ledger settles counters of its domain only, and every bad call or dead store gets a clear
//! status (the filter then applies its `on_unreachable` policy).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

mod common;

use common::redis::Redis;
use tokio_util::sync::CancellationToken;
use tollgate_collector::config::{CollectorConfig, LimitsConfig, StorageConfig};
use tollgate_proto::rls::rate_limit_descriptor::{Entry, RateLimitOverride};
use tollgate_proto::rls::rate_limit_response::Code;
use tollgate_proto::rls::rate_limit_service_client::RateLimitServiceClient;
use tollgate_proto::rls::{
    RateLimitDescriptor, RateLimitRequest, RateLimitResponse, RateLimitUnit,
};
use tollgate_proto::v1::limit_ledger_client::LimitLedgerClient;
use tollgate_proto::v1::{SettleRequest, Settlement};
use tonic::metadata::MetadataValue;

const TOKEN: &str = "ingest-token-0123456789";

struct Running {
    grpc: String,
    http: std::net::SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn collector(redis: Option<String>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        storage: StorageConfig::Sqlite {
            path: dir.path().join("c.db"),
        },
        ingest_tokens: vec![TOKEN.into()],
        limits: LimitsConfig { redis },
        ..CollectorConfig::default()
    };
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(tollgate_collector::run(config, stop.clone(), Some(tx)));
    let bound = rx.await.unwrap();
    Running {
        grpc: format!("http://{}", bound.grpc),
        http: bound.http,
        stop,
        _dir: dir,
    }
}

fn descriptor(
    tenant: &str,
    limit_id: &str,
    limit: u64,
    unit: RateLimitUnit,
    hits: u64,
) -> RateLimitDescriptor {
    let entry = |k: &str, v: &str| Entry {
        key: k.into(),
        value: v.into(),
    };
    RateLimitDescriptor {
        entries: vec![
            entry("tenant", tenant),
            entry("limit", limit_id),
            entry("tollgate_limit", &limit.to_string()),
        ],
        limit: Some(RateLimitOverride {
            requests_per_unit: u32::try_from(limit).unwrap_or(u32::MAX),
            unit: unit as i32,
        }),
        hits_addend: Some(hits),
    }
}

/// One request a minute for tenant `t`.
fn one_a_minute() -> Vec<RateLimitDescriptor> {
    vec![descriptor(
        "t",
        "requests/minute",
        1,
        RateLimitUnit::Minute,
        1,
    )]
}

/// Waits, if needed, until the current UTC minute has 15 s left, so a test's calls share one
/// window.
async fn early_in_a_minute() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let left = 60_000 - (ms % 60_000) as u64;
    if left < 15_000 {
        tokio::time::sleep(std::time::Duration::from_millis(left + 200)).await;
    }
}

/// A GET of the collector's HTTP API, its body as JSON.
async fn get_json(url: String) -> serde_json::Value {
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap(),
    );
    req
}

async fn ask(
    grpc: &str,
    descriptors: Vec<RateLimitDescriptor>,
) -> Result<RateLimitResponse, tonic::Status> {
    let mut client = RateLimitServiceClient::connect(grpc.to_string())
        .await
        .unwrap();
    client
        .should_rate_limit(authed(RateLimitRequest {
            domain: "tollgate".into(),
            descriptors,
            hits_addend: 0,
        }))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_admit_exactly_the_limit_all_or_nothing_and_settle() {
    let redis = Redis::start();
    let c = collector(Some(redis.url())).await;
    early_in_a_minute().await;
    // 30 at once against 10 a minute (two collectors' worth of callers would see the same)
    let calls: Vec<_> = (0..30)
        .map(|_| {
            let grpc = c.grpc.clone();
            tokio::spawn(async move {
                ask(
                    &grpc,
                    vec![descriptor(
                        "team-a",
                        "requests/minute",
                        10,
                        RateLimitUnit::Minute,
                        1,
                    )],
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        let r = call.await.unwrap().unwrap();
        assert_eq!(r.statuses.len(), 1);
        if r.overall_code == Code::Ok as i32 {
            ok += 1;
        } else {
            assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
            assert_eq!(r.statuses[0].limit_remaining, 0);
            let reset = r.statuses[0].duration_until_reset.unwrap();
            assert!((0..=60).contains(&reset.seconds), "{reset:?}");
        }
    }
    assert_eq!(ok, 10);

    // two limits: both must fit; the one that does not takes nothing from the other
    let both = |hits| {
        vec![
            descriptor("team-t", "requests/minute", 100, RateLimitUnit::Minute, 1),
            descriptor(
                "team-t",
                "total_tokens/minute",
                5000,
                RateLimitUnit::Minute,
                hits,
            ),
        ]
    };
    let mut counters = Vec::new();
    for _ in 0..4 {
        let r = ask(&c.grpc, both(1050)).await.unwrap();
        assert_eq!(r.overall_code, Code::Ok as i32);
        counters = r
            .statuses
            .iter()
            .map(|s| s.current_limit.as_ref().unwrap().name.clone())
            .collect();
    }
    let r = ask(&c.grpc, both(1050)).await.unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].code, Code::Ok as i32);
    assert_eq!(
        r.statuses[0].limit_remaining, 96,
        "the refusal counted no request"
    );
    assert_eq!(r.statuses[1].code, Code::OverLimit as i32);
    assert_eq!(r.statuses[1].limit_remaining, 800);
    // the four used 50 tokens each: settling gives the rest back
    let ledger = LimitLedgerClient::connect(c.grpc.clone()).await.unwrap();
    let settle = |domain: &str, delta: i64| {
        let mut ledger = ledger.clone();
        let request = authed(SettleRequest {
            domain: domain.into(),
            settlements: vec![Settlement {
                counter: counters[1].clone(),
                delta,
            }],
        });
        async move { ledger.settle(request).await }
    };
    for _ in 0..4 {
        settle("tollgate", 50 - 1050).await.unwrap();
    }
    let r = ask(&c.grpc, both(1050)).await.unwrap();
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(r.statuses[1].limit_remaining, 5000 - 200 - 1050);
    // never below zero
    settle("tollgate", -1_000_000).await.unwrap();
    let r = ask(&c.grpc, both(0)).await.unwrap();
    assert_eq!(r.statuses[1].limit_remaining, 5000);
    // a counter of another domain is not the caller's to change
    let err = settle("other", -1).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("settlements[0].counter"), "{err:?}");
    c.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_and_missing_or_dead_stores_get_clear_statuses() {
    let mut redis = Redis::start();
    let c = collector(Some(redis.url())).await;
    // no token
    let mut client = RateLimitServiceClient::connect(c.grpc.clone())
        .await
        .unwrap();
    let err = client
        .should_rate_limit(RateLimitRequest {
            domain: "tollgate".into(),
            descriptors: one_a_minute(),
            hits_addend: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // a descriptor without a limit names itself
    let mut d = descriptor("t", "requests/minute", 1, RateLimitUnit::Minute, 1);
    d.limit = None;
    let err = ask(
        &c.grpc,
        vec![
            descriptor("t", "requests/minute", 1, RateLimitUnit::Minute, 1),
            d,
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("descriptors[1]"), "{err:?}");
    let err = ask(
        &c.grpc,
        vec![descriptor("t", "x/year", 1, RateLimitUnit::Year, 1)],
    )
    .await
    .unwrap_err();
    assert!(err.message().contains("unit"), "{err:?}");
    // Redis gone: UNAVAILABLE (the filter falls back or refuses, as configured)
    redis.kill();
    let err = ask(&c.grpc, one_a_minute()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    c.stop.cancel();
    // no Redis configured at all
    let c = collector(None).await;
    let err = ask(&c.grpc, one_a_minute()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("limits.redis"), "{err:?}");
    c.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_counters_start_from_the_stored_spend_and_budgets_report_every_limit() {
    use tollgate_proto::v1::collector_client::CollectorClient;
    use tollgate_proto::v1::{IngestRequest, Outcome, TraceSummary};
    let redis = Redis::start();
    let c = collector(Some(redis.url())).await;
    // the tenant already spent 60 micro-USD today, stored before any reservation
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap();
    let spent = |id: &str, cost| TraceSummary {
        request_id: id.into(),
        tenant: "spender".into(),
        provider: "openai".into(),
        route: "openai".into(),
        request_model: "gpt-4o-mini".into(),
        outcome: Outcome::Allowed as i32,
        status_code: 200,
        start_unix_nanos: now - 1_000_000,
        end_unix_nanos: now,
        cost_micro_usd: cost,
        cost_known: true,
        ..TraceSummary::default()
    };
    let mut ingest = CollectorClient::connect(c.grpc.clone()).await.unwrap();
    ingest
        .ingest(authed(IngestRequest {
            summaries: vec![spent("s1", 25), spent("s2", 35)],
        }))
        .await
        .unwrap();
    let money = |hits| {
        vec![
            descriptor("spender", "requests/day", 1000, RateLimitUnit::Day, 1),
            descriptor(
                "spender",
                "cost_micro_usd/day",
                100,
                RateLimitUnit::Day,
                hits,
            ),
        ]
    };
    let r = ask(&c.grpc, money(10)).await.unwrap();
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(r.statuses[1].limit_remaining, 100 - 60 - 10);
    // seeded once: later spend is the counters' own business
    let r = ask(&c.grpc, money(31)).await.unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[1].limit_remaining, 30);

    // the budget API lists both limits of the tenant
    let c_http = c.http;
    let body: serde_json::Value =
        get_json(format!("http://{c_http}/v1/budgets?tenant=spender")).await;
    assert_eq!(body["enabled"], true);
    let rows = body["budgets"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    let money_row = rows
        .iter()
        .find(|r| r["limit"] == "cost_micro_usd/day")
        .unwrap();
    assert_eq!(money_row["used"], 70);
    assert_eq!(money_row["limit_value"], 100);
    assert_eq!(money_row["remaining"], 30);
    assert_eq!(money_row["domain"], "tollgate");
    assert!(money_row["resets_at"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00Z"));
    let requests_row = rows.iter().find(|r| r["limit"] == "requests/day").unwrap();
    assert_eq!(requests_row["used"], 1);
    // another tenant's budgets are not in the answer
    let other: serde_json::Value =
        get_json(format!("http://{c_http}/v1/budgets?tenant=nobody")).await;
    assert_eq!(other["budgets"].as_array().unwrap().len(), 0);
    // Redis loses its data: the money counter starts again from the stored spend
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();
    let r = ask(&c.grpc, money(10)).await.unwrap();
    assert_eq!(r.statuses[1].limit_remaining, 100 - 60 - 10);
    let bad = reqwest::get(format!("http://{c_http}/v1/budgets?tenants=x"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    c.stop.cancel();
    // without Redis the API says so
    let c = collector(None).await;
    let body: serde_json::Value = get_json(format!("http://{}/v1/budgets", c.http)).await;
    assert_eq!(body, serde_json::json!({"enabled": false, "budgets": []}));
    c.stop.cancel();
}
