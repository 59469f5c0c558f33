//! The collector as a running service: gRPC ingest (auth, validation, limits, the server keeps
//! serving after bad calls) and the HTTP query API (filters, errors naming the parameter, auth,
//! the OpenAPI document), over a real socket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

use serde_json::Value;
use std::io::{Read, Write};
use tokio_util::sync::CancellationToken;
use tollgate_collector::config::{CollectorConfig, StorageConfig};
use tollgate_proto::v1::collector_client::CollectorClient;
use tollgate_proto::v1::{IngestRequest, Outcome, TraceSummary, Usage};

const TOKEN: &str = "ingest-token-0123456789";
const ADMIN: &str = "admin-key-0123456789abcdef";

struct Running {
    grpc: String,
    http: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        storage: StorageConfig::Sqlite {
            path: dir.path().join("c.db"),
        },
        ingest_tokens: vec![TOKEN.into()],
        admin_key: Some(ADMIN.into()),
        max_message_bytes: 64 * 1024,
        ..CollectorConfig::default()
    };
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(tollgate_collector::run(config, stop.clone(), Some(tx)));
    let bound = rx.await.unwrap();
    Running {
        grpc: format!("http://{}", bound.grpc),
        http: bound.http,
        stop,
        task,
        db: dir.path().join("c.db"),
        _dir: dir,
    }
}

fn summary(id: &str, tenant: &str) -> TraceSummary {
    TraceSummary {
        request_id: id.into(),
        tenant: tenant.into(),
        provider: "openai".into(),
        route: "openai".into(),
        operation: "chat_completions".into(),
        request_model: "gpt-4o-mini".into(),
        outcome: Outcome::Allowed as i32,
        status_code: 200,
        start_unix_nanos: 1_795_311_582_000_000_000,
        end_unix_nanos: 1_795_311_582_250_000_000,
        usage: Some(Usage {
            input_tokens: 21,
            output_tokens: 17,
            ..Usage::default()
        }),
        cost_micro_usd: 13,
        cost_known: true,
        ..TraceSummary::default()
    }
}

fn with_token(msg: IngestRequest, token: Option<&str>) -> tonic::Request<IngestRequest> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

/// A GET over a plain socket: (status, body).
fn get(addr: std::net::SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = key
        .map(|k| format!("authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, body.to_string());
    }
    // de-chunk
    let mut rest = body;
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    (status, out)
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    get_as(addr, path, ADMIN).await
}

async fn get_as(addr: std::net::SocketAddr, path: &str, key: &str) -> (u16, Value) {
    let (path, key) = (path.to_string(), key.to_string());
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, &path, Some(&key)))
        .await
        .unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_authenticates_validates_limits_and_keeps_serving() {
    let c = start().await;
    let mut client = CollectorClient::connect(c.grpc.clone()).await.unwrap();
    let batch = || IngestRequest {
        summaries: vec![summary("r1", "acme"), summary("r2", "beta")],
    };
    let e = client.ingest(with_token(batch(), None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let e = client
        .ingest(with_token(batch(), Some("wrong-token-0123456789")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let mut bad = batch();
    bad.summaries[1].request_id.clear();
    let e = client
        .ingest(with_token(bad, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("summaries[1].request_id"),
        "{}",
        e.message()
    );
    let mut big = batch();
    big.summaries[0].user_agent = "x".repeat(100 * 1024);
    let e = client
        .ingest(with_token(big, Some(TOKEN)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{e:?}"
    );
    // nothing of the refused batches was stored, and the server still works
    let (_, v) = get_json(c.http, "/v1/traces").await;
    assert_eq!(v["traces"].as_array().unwrap().len(), 0);
    let ok = client
        .ingest(with_token(batch(), Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(ok.into_inner().accepted, 2);
    let (status, v) = get_json(c.http, "/v1/traces?tenant=acme").await;
    assert_eq!(status, 200);
    let t = &v["traces"][0];
    assert_eq!(
        (t["request_id"].as_str(), t["model"].as_str()),
        (Some("r1"), Some("gpt-4o-mini"))
    );
    assert_eq!(t["usage"]["input_tokens"], 21);
    assert_eq!(t["cost_micro_usd"], 13);
    assert_eq!(t["latency_ms"], 250.0);
    assert_eq!(t["start"], "2026-11-22T01:39:42Z");
    c.stop.cancel();
    c.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_errors_auth_and_openapi() {
    let c = start().await;
    let mut client = CollectorClient::connect(c.grpc.clone()).await.unwrap();
    client
        .ingest(with_token(
            IngestRequest {
                summaries: vec![summary("r1", "acme"), summary("r2", "beta")],
            },
            Some(TOKEN),
        ))
        .await
        .unwrap();
    let http = c.http;
    // auth
    let (status, body) = tokio::task::spawn_blocking(move || get(http, "/v1/traces", None))
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("\"status\":401"), "{body}");
    let (status, _) =
        tokio::task::spawn_blocking(move || get(http, "/v1/traces", Some("not-the-key-000000000")))
            .await
            .unwrap();
    assert_eq!(status, 401);
    // problems name the parameter
    for (path, param) in [
        ("/v1/traces?limit=5000", "limit"),
        ("/v1/traces?from=yesterday", "from"),
        ("/v1/traces?outcome=maybe", "outcome"),
        ("/v1/traces?has_findings=yes", "has_findings"),
        ("/v1/traces?cursor=abc", "cursor"),
        ("/v1/traces?colour=red", "colour"),
        ("/v1/usage?group_by=planet", "group_by"),
        ("/v1/usage?bucket=fortnight", "bucket"),
        ("/v1/findings?by=mood", "by"),
        ("/v1/findings?direction=sideways&colour=red", "colour"),
        ("/v1/anomalies?state=maybe", "state"),
        ("/v1/anomalies?limit=0", "limit"),
    ] {
        let (status, v) = get_json(http, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(v["param"], param, "{path}: {v}");
    }
    let (status, v) = get_json(http, "/v1/traces/nope").await;
    assert_eq!(status, 404);
    assert_eq!(v["status"], 404);
    let (status, v) = get_json(http, "/v1/traces/r2").await;
    assert_eq!((status, v["tenant"].as_str()), (200, Some("beta")));
    let (_, v) = get_json(http, "/v1/usage?group_by=tenant&bucket=day").await;
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);
    assert_eq!(v["rows"][0]["bucket"], "2026-11-22T00:00:00Z");
    // the OpenAPI document is served without a key and names every route
    let (status, body) = tokio::task::spawn_blocking(move || get(http, "/v1/openapi.json", None))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    for p in [
        "/v1/traces",
        "/v1/traces/{request_id}",
        "/v1/usage",
        "/v1/findings",
        "/v1/anomalies",
    ] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
    let (status, body) = tokio::task::spawn_blocking(move || get(http, "/metrics", None))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("tollgate_collector_ingested_total 2"),
        "{body}"
    );
    c.stop.cancel();
    c.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_gate_endpoints_and_tenant_keys_see_only_their_tenants_everywhere() {
    use tollgate_collector::keys::{KeyStore, Role};
    use tollgate_proto::v1::{Action, Direction, Finding, Severity};
    let c = start().await;
    let mut client = CollectorClient::connect(c.grpc.clone()).await.unwrap();
    let with_finding = |id: &str, tenant: &str| {
        let mut s = summary(id, tenant);
        s.findings = vec![Finding {
            rule_id: "pii.email".into(),
            category: "pii".into(),
            severity: Severity::Medium as i32,
            action: Action::Log as i32,
            direction: Direction::Request as i32,
            ..Finding::default()
        }];
        s.findings_total = 1;
        s
    };
    client
        .ingest(with_token(
            IngestRequest {
                summaries: vec![with_finding("r1", "acme"), with_finding("r2", "beta")],
            },
            Some(TOKEN),
        ))
        .await
        .unwrap();
    let store = KeyStore::open(&c.db).unwrap();
    let (_, viewer) = store
        .create("dash", Role::Viewer, &["acme".into()])
        .unwrap();
    let (_, operator) = store
        .create("ops", Role::Operator, &["acme".into()])
        .unwrap();
    let (revoked_id, revoked) = store.create("old", Role::Admin, &[]).unwrap();
    store.revoke(&revoked_id).unwrap();
    let h = c.http;
    let tenants = |v: &Value, list: &str, at: &str| -> Vec<String> {
        let mut t: Vec<String> = v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.pointer(at).and_then(Value::as_str).unwrap().to_string())
            .collect();
        t.sort();
        t
    };

    // viewer: aggregates only, and only acme's
    let (s, v) = get_as(h, "/v1/usage?group_by=tenant", &viewer).await;
    assert_eq!(
        (s, tenants(&v, "rows", "/group/tenant")),
        (200, vec!["acme".to_string()])
    );
    let (s, v) = get_as(h, "/v1/usage?group_by=tenant&tenant=beta", &viewer).await;
    assert_eq!(
        (s, v["rows"].as_array().unwrap().len()),
        (200, 0),
        "asking for another tenant gives nothing"
    );
    let (s, v) = get_as(h, "/v1/findings?by=tenant", &viewer).await;
    assert_eq!(
        (s, tenants(&v, "rows", "/group/tenant")),
        (200, vec!["acme".to_string()])
    );
    for path in ["/v1/traces", "/v1/traces/r1", "/v1/keys"] {
        assert_eq!(get_as(h, path, &viewer).await.0, 403, "viewer: {path}");
    }

    // operator: traces too, still only acme's
    let (s, v) = get_as(h, "/v1/traces", &operator).await;
    assert_eq!(
        (s, tenants(&v, "traces", "/tenant")),
        (200, vec!["acme".to_string()])
    );
    assert_eq!(get_as(h, "/v1/traces/r1", &operator).await.0, 200);
    assert_eq!(
        get_as(h, "/v1/traces/r2", &operator).await.0,
        404,
        "another tenant's trace does not exist for it"
    );
    let (s, v) = get_as(h, "/v1/usage", &operator).await;
    assert_eq!((s, v["rows"][0]["requests"].as_u64()), (200, Some(1)));
    let (s, v) = get_as(h, "/v1/findings?by=rule", &operator).await;
    assert_eq!((s, v["rows"][0]["findings"].as_u64()), (200, Some(1)));
    assert_eq!(get_as(h, "/v1/keys", &operator).await.0, 403);

    // anomalies: a viewer sees its tenants' only
    {
        use tollgate_collector::anomaly::{Anomaly, AnomalyKind};
        use tollgate_collector::storage::sqlite::SqliteStorage;
        use tollgate_collector::storage::Storage;
        let store = SqliteStorage::open(&c.db).unwrap();
        let anomaly = |id: &str, tenant: &str| Anomaly {
            id: id.into(),
            tenant: tenant.into(),
            model: None,
            metric: "cost_micro_usd".into(),
            kind: AnomalyKind::Spike,
            open: true,
            started_ns: 1_795_305_600_000_000_000,
            updated_ns: 1_795_305_720_000_000_000,
            ended_ns: None,
            observed: 50_000.0,
            peak: 50_000.0,
            baseline_mean: 10_000.0,
            baseline_std_dev: 900.0,
            z_score: 11.0,
            max_abs_z_score: 11.0,
            buckets: 2,
            total: 0,
        };
        store
            .put_anomalies(vec![anomaly("an_a", "acme"), anomaly("an_b", "beta")])
            .await
            .unwrap();
    }
    let (s, v) = get_as(h, "/v1/anomalies", &viewer).await;
    assert_eq!(
        (s, tenants(&v, "anomalies", "/tenant")),
        (200, vec!["acme".to_string()])
    );
    assert_eq!(v["anomalies"][0]["state"], "open");
    assert_eq!(v["anomalies"][0]["started_at"], "2026-11-22T00:00:00Z");
    assert_eq!(v["anomalies"][0]["z_score"], 11.0);
    let (s, v) = get_json(h, "/v1/anomalies?state=open&metric=cost_micro_usd").await;
    assert_eq!(
        (s, tenants(&v, "anomalies", "/tenant")),
        (200, vec!["acme".to_string(), "beta".to_string()])
    );
    let (_, v) = get_json(h, "/v1/anomalies?state=closed").await;
    assert!(v["anomalies"].as_array().unwrap().is_empty());

    // admin (bootstrap): everything; keys are listed without secrets; revoked keys are refused
    let (s, v) = get_json(h, "/v1/traces").await;
    assert_eq!(
        (s, tenants(&v, "traces", "/tenant")),
        (200, vec!["acme".to_string(), "beta".to_string()])
    );
    let (s, v) = get_json(h, "/v1/keys").await;
    assert_eq!((s, v["keys"].as_array().unwrap().len()), (200, 3));
    assert!(
        !v.to_string().contains(&viewer[9..]),
        "no secret in the listing"
    );
    assert_eq!(get_as(h, "/v1/usage", &revoked).await.0, 401);
    c.stop.cancel();
    c.task.await.unwrap().unwrap();
}

#[test]
fn cli_creates_keys_and_queries_a_running_collector() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let bin = env!("CARGO_BIN_EXE_tollgate-collector");
    let out = std::process::Command::new(bin)
        .args([
            "keys",
            "create",
            "--name",
            "cli",
            "--role",
            "operator",
            "--db",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("tgk_"))
        .unwrap()
        .to_string();
    let listed = std::process::Command::new(bin)
        .args(["keys", "list", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("operator") && listed.contains("cli") && !listed.contains(&key[9..]));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = |_: ()| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (grpc, http) = (port(()), port(()));
    let mut server = std::process::Command::new(bin)
        .args([
            "--grpc-listen",
            &format!("127.0.0.1:{grpc}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--db",
            db.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    rt.block_on(async {
        let mut client = CollectorClient::connect(format!("http://127.0.0.1:{grpc}"))
            .await
            .unwrap();
        client
            .ingest(with_token(
                IngestRequest {
                    summaries: vec![summary("r1", "acme"), summary("r2", "beta")],
                },
                None,
            ))
            .await
            .unwrap();
    });
    let q = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .arg("query")
            .args(args)
            .args(["--url", &format!("http://127.0.0.1:{http}"), "--key", &key])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let table = q(&["usage", "--by", "model", "--bucket", "day"]);
    assert!(
        table.starts_with("bucket")
            && table.contains("gpt-4o-mini")
            && table.contains("2026-11-22T00:00:00Z"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&q(&["traces", "--format", "json"])).unwrap();
    assert_eq!(json["traces"].as_array().unwrap().len(), 2);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Sends raw bytes as the gRPC message (what a broken or hostile client might send).
#[derive(Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_invalid_argument_and_the_server_keeps_serving() {
    let c = start().await;
    let channel = tonic::transport::Endpoint::from_shared(c.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    for garbage in [
        vec![0xff, 0xff, 0xff, 0xff, 0x0f],
        b"not protobuf at all".to_vec(),
        vec![0x0a, 0x80],
    ] {
        grpc.ready().await.unwrap();
        let mut req = tonic::Request::new(garbage);
        req.metadata_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        let e = grpc
            .unary::<_, Vec<u8>, _>(
                req,
                "/tollgate.v1.Collector/Ingest".parse().unwrap(),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    }
    // still serving, nothing stored from the garbage
    let mut client = CollectorClient::new(channel);
    let ok = client
        .ingest(with_token(
            IngestRequest {
                summaries: vec![summary("r1", "acme")],
            },
            Some(TOKEN),
        ))
        .await
        .unwrap();
    assert_eq!(ok.into_inner().accepted, 1);
    let (_, v) = get_json(c.http, "/v1/traces").await;
    assert_eq!(v["traces"].as_array().unwrap().len(), 1);
    c.stop.cancel();
    c.task.await.unwrap().unwrap();
}
