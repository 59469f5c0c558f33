//! Per-step cost of one buffered exchange as the Envoy filter runs it: request analysis, response
//! analysis, the exchange record and its summary. For profiling the filter's fixed costs natively:
//! `cargo run --release -p tollgate-engine --example exchange_cost -- BODY.json [CONFIG.json]`
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
    let n = 5000u32;
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
