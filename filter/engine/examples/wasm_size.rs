//! A minimal program that links the whole engine (config compile, request analysis, stream
//! analysis), built for `wasm32-wasip1` to measure the engine's contribution to a `.wasm`:
//! `cargo build -p tollgate-engine --example wasm_size --target wasm32-wasip1 --release`.
//! It also runs natively: it analyses the chat request JSON on stdin and prints the decision.

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
