//! Per-step cost of one buffered exchange as the Envoy filter runs it: request analysis, response
//! analysis, the exchange record and its summary. For profiling the filter's fixed costs natively:
//! `cargo run --release -p tollgate-engine --example exchange_cost -- BODY.json [CONFIG.json]`
//!
//! With a `.jsonl` file of request bodies (a conversation, one turn per line, as
//! `tests/bench/envoy_compare.py` replays it), each replay writes its own number for `@CONV@`
//! and the turns go through one history cache, as in a worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use std::time::Instant;
use tollgate_engine::{Engine, ExchangeRecord, Tenant, TenantSource};

const RESPONSE: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":512,"completion_tokens":64,"total_tokens":576}}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let body = std::fs::read(args.next().expect("BODY.json")).unwrap();
    let config = args
        .next()
        .map(|p| std::fs::read(p).unwrap())
        .unwrap_or_default();
    let engine = Engine::from_json(&config).unwrap();
    let route = engine.route(None, "/v1/chat/completions").unwrap();
    if let Ok(text) = std::str::from_utf8(&body) {
        if text.starts_with('{') && text.trim_end().contains("}\n{") {
            return replay(&engine, &route, text);
        }
    }
    let n: u32 = std::env::var("TOLLGATE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let (mut req_t, mut resp_t, mut rec_t) = (0f64, 0f64, 0f64);
    for _ in 0..n {
        let t = Instant::now();
        let a = engine.analyze_request(&route, &body).unwrap();
        req_t += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let r = engine.analyze_response(&a, RESPONSE).unwrap();
        resp_t += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let tenant = Tenant {
            id: "anonymous".into(),
            source: TenantSource::Default,
        };
        let mut rec = ExchangeRecord::new(&route, tenant, 0);
        rec.request(&a);
        rec.response(r);
        std::hint::black_box(rec.summary_json());
        rec_t += t.elapsed().as_secs_f64();
    }
    let us = |x: f64| x * 1e6 / f64::from(n);
    println!(
        "{} bytes: request {:.1} µs, response {:.1} µs, record + summary {:.1} µs",
        body.len(),
        us(req_t),
        us(resp_t),
        us(rec_t)
    );
}

/// Replays the conversation in `turns` (one body per line) through one history cache.
fn replay(engine: &Engine, route: &tollgate_engine::RouteMatch, turns: &str) {
    let mut cache = engine.new_scan_cache([7; 16]);
    let replays: u32 = std::env::var("TOLLGATE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let t = Instant::now();
    let (mut requests, mut bytes) = (0u32, 0usize);
    for r in 0..replays {
        for turn in turns.lines().filter(|l| !l.is_empty()) {
            let body = turn.replace("@CONV@", &r.to_string());
            let a = engine
                .analyze_request_cached(
                    route,
                    body.as_bytes(),
                    tollgate_engine::BodyLength::Free,
                    &mut cache,
                )
                .unwrap();
            std::hint::black_box(a);
            requests += 1;
            bytes += body.len();
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!("{:?}", cache.stats());
    println!(
        "{requests} requests ({bytes} bytes) with the history cache: {:.1} µs a request, {:.1} MiB/s",
        s * 1e6 / f64::from(requests),
        bytes as f64 / s / (1 << 20) as f64
    );
}
