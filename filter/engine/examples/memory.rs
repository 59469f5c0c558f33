//! Resident memory of the engine: after compiling the default config, and after analysing
//! requests (the regex engines grow lazy caches as they run). `cargo run --release -p
//! tollgate-engine --example memory < body.json`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use std::io::Read;
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
fn main() {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).unwrap();
    let base = rss_kib();
    let engine = tollgate_engine::Engine::with_defaults().unwrap();
    let compiled = rss_kib();
    let route = engine.route(None, "/v1/chat/completions").unwrap();
    for _ in 0..200 {
        let _ = engine.analyze_request(&route, &body);
    }
    let used = rss_kib();
    println!(
        "rss: start {base} KiB, compiled +{} KiB, after 200 analyses +{} KiB",
        compiled - base,
        used - compiled
    );
}
