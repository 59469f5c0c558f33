//! Acknowledged means durable: the collector binary is killed with SIGKILL in the middle of a
//! load, restarted on the same database, and every summary whose batch was acknowledged is
//! there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_proto::v1::collector_client::CollectorClient;
use tollgate_proto::v1::{IngestRequest, Outcome, TraceSummary};

const TOKEN: &str = "durability-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(db: &std::path::Path, grpc: u16, http: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate-collector"))
        .args([
            "--grpc-listen",
            &format!("127.0.0.1:{grpc}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--db",
            db.to_str().unwrap(),
        ])
        .env("TOLLGATE_COLLECTOR_INGEST_TOKENS", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "collector did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn summary(id: String) -> TraceSummary {
    TraceSummary {
        request_id: id,
        tenant: "acme".into(),
        provider: "openai".into(),
        outcome: Outcome::Allowed as i32,
        start_unix_nanos: 1_795_311_582_000_000_000,
        ..TraceSummary::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let (grpc, http) = (free_port(), free_port());
    let mut child = spawn(&db, grpc, http);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut senders = Vec::new();
    for worker in 0..4 {
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            let Ok(mut client) = CollectorClient::connect(format!("http://127.0.0.1:{grpc}")).await
            else {
                return;
            };
            for batch in 0.. {
                let ids: Vec<String> = (0..50).map(|i| format!("w{worker}-b{batch}-{i}")).collect();
                let mut req = tonic::Request::new(IngestRequest {
                    summaries: ids.iter().cloned().map(summary).collect(),
                });
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
                match client.ingest(req).await {
                    Ok(_) => acked.lock().unwrap().extend(ids),
                    Err(_) => return, // the collector is gone
                }
            }
        }));
    }
    // let the load run, then kill without warning
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 500,
        "the load ran ({} acknowledged)",
        acked.len()
    );

    // restart on the same database: everything acknowledged is there
    let mut child = spawn(&db, grpc, http);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn.prepare("SELECT request_id FROM traces").unwrap();
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged summaries lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
