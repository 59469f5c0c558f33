//! A minimal program that links the whole engine (config compile, request analysis, stream
//! analysis), built for `wasm32-wasip1` to measure the engine's contribution to a `.wasm`:
//! `cargo build -p tollgate-engine --example wasm_size --target wasm32-wasip1 --release`.
//! It also runs natively: it analyses the chat request JSON on stdin and prints the decision;
//! with `--bench N` it prints the mean time of N analyses instead; with `--scan` it reads one
//! JSON string per line and prints, per line, the rule ids and spans found, the decision and the
//! learned scorer's log-odds (the wasm smoke test compares this with the native build).

use std::io::Read;

fn main() {
    let mut body = Vec::new();
    if std::io::stdin().read_to_end(&mut body).is_err() {
        return;
    }
    let Ok(engine) = tollgate_engine::Engine::with_defaults() else {
        return;
    };
    let Some(route) = engine.route(None, "/v1/chat/completions") else {
        return;
    };
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--scan") {
        for line in String::from_utf8_lossy(&body).lines() {
            let Ok(text) = serde_json::from_str::<String>(line) else {
                println!("bad line");
                continue;
            };
            let (findings, risk, decision) = engine.scan_text(&text);
            let mut ids: Vec<String> = findings
                .iter()
                .map(|f| format!("{}@{}-{}", f.rule_id, f.start, f.end))
                .collect();
            ids.sort();
            let logit = engine
                .detectors()
                .injection_score(&text)
                .map_or("-".to_string(), |s| format!("{:08x}", s.logit.to_bits()));
            println!("{} {risk} {logit} {}", decision.as_str(), ids.join(","));
        }
        return;
    }
    // `wasm_size --bench N`: time N analyses of the body (for the simd128 comparison)
    if let [_, flag, n] = args.as_slice() {
        if flag == "--bench" {
            let n: u32 = n.parse().unwrap_or(1000);
            let start = std::time::Instant::now();
            for _ in 0..n {
                let _ = std::hint::black_box(engine.analyze_request(&route, &body));
            }
            let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1));
            println!("{per:.1} us per analysis of {} bytes", body.len());
            return;
        }
    }
    match engine.analyze_request(&route, &body) {
        Ok(a) => {
            let mut stream = tollgate_engine::ResponseStream::new(&engine, &a, "text/event-stream");
            let _ = stream.feed(&engine, b"data: [DONE]\n\n");
            let (_, summary) = stream.finish(&engine, true);
            println!(
                "{} {} {}",
                a.decision.as_str(),
                a.findings.len(),
                summary.usage.total_tokens()
            );
        }
        Err(e) => println!("error: {e}"),
    }
}
