//! Throughput of the engine on realistic traffic: whole request analysis at 2 KB, 32 KB and
//! 512 KB (OpenAI chat bodies built from the benign evaluation prompts, so the text is ordinary
//! and mostly clean, as production traffic is), a recorded response stream fed in network-sized
//! chunks, and the compile step. Reported in docs/benchmarks.md; run with `make bench`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // bench code fails loudly

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use tollgate_engine::{BodyLength, Emit, Engine, ResponseStream};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prompts() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("eval/corpus/benign.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

/// An OpenAI chat body of about `size` bytes: a system prompt, then alternating user/assistant
/// turns taken from the benign prompts.
fn chat_body(size: usize, prompts: &[String]) -> Vec<u8> {
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": "You are a helpful assistant for Acme Corp. Answer concisely."}),
    ];
    let mut total = 200;
    let mut i = 0;
    while total < size {
        let p = &prompts[i % prompts.len()];
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let take = p.len().min(size - total + 1);
        let mut cut = take;
        while !p.is_char_boundary(cut) {
            cut -= 1;
        }
        messages.push(serde_json::json!({"role": role, "content": &p[..cut]}));
        total += cut + 40;
        i += 1;
    }
    serde_json::to_vec(&serde_json::json!({"model": "gpt-4o-mini", "messages": messages})).unwrap()
}

/// Turn `turns` of an agent conversation: a system prompt and a task, then per turn a tool
/// call, its result (about 3 KB of the benign prompts) and, before the last, the agent's note.
fn agent_body(turns: usize, prompts: &[String]) -> Vec<u8> {
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": "You are a coding agent for Acme Corp. Use the tools to read the repository; never push to main."}),
        serde_json::json!({"role": "user", "content": "Go through the notes and summarise each."}),
    ];
    let mut next = 0usize;
    for t in 0..turns {
        let id = format!("call_{t}");
        messages.push(serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "read_file", "arguments": format!("{{\"path\": \"notes/{t}.md\"}}")}}
        ]}));
        let mut result = String::new();
        while result.len() < 3000 {
            result.push_str(&prompts[next % prompts.len()]);
            result.push('\n');
            next += 1;
        }
        let result: String = result.chars().take(3000).collect();
        messages.push(serde_json::json!({"role": "tool", "tool_call_id": id, "content": result}));
        if t + 1 < turns {
            messages.push(serde_json::json!({"role": "assistant", "content": format!("Note {t} read; moving on to the next one.")}));
        }
    }
    serde_json::to_vec(&serde_json::json!({"model": "gpt-4o-mini", "messages": messages})).unwrap()
}

/// A chat completion stream of `events` text deltas (~4 tokens each), with a usage chunk.
fn chat_stream(events: usize, prompts: &[String]) -> Vec<u8> {
    let words: Vec<&str> = prompts
        .iter()
        .flat_map(|p| p.split_inclusive(' '))
        .collect();
    let mut out = String::new();
    for i in 0..events {
        let piece: String = words.iter().skip(i * 3).take(3).copied().collect();
        let chunk = serde_json::json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":400}}\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let engine = Engine::with_defaults().unwrap();
    let prompts = prompts();
    let route = engine.route(None, "/v1/chat/completions").unwrap();

    let mut group = c.benchmark_group("request");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);
    for (label, size) in [("2KB", 2 << 10), ("32KB", 32 << 10), ("512KB", 512 << 10)] {
        let body = chat_body(size, &prompts);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("analyze", label), &body, |b, body| {
            b.iter(|| black_box(engine.analyze_request(&route, black_box(body)).unwrap()));
        });
    }
    group.finish();

    // an agent conversation replayed turn by turn, each request resending the whole history
    // (growing to about 64 KB): with the VM's history cache, and scanning everything each time
    let turns: Vec<Vec<u8>> = (1..=20).map(|t| agent_body(t, &prompts)).collect();
    let mut group = c.benchmark_group("agent");
    group
        .measurement_time(Duration::from_secs(6))
        .sample_size(10);
    group.throughput(Throughput::Bytes(
        turns.iter().map(|b| b.len() as u64).sum(),
    ));
    group.bench_function("20_turns_history_cache", |b| {
        b.iter(|| {
            let mut cache = engine.new_scan_cache([7; 16]);
            for body in &turns {
                black_box(
                    engine
                        .analyze_request_cached(&route, body, BodyLength::Free, &mut cache)
                        .unwrap(),
                );
            }
        });
    });
    group.bench_function("20_turns_no_cache", |b| {
        b.iter(|| {
            for body in &turns {
                black_box(engine.analyze_request(&route, body).unwrap());
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("stream");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);
    let stream = chat_stream(400, &prompts);
    let req = engine
        .analyze_request(&route, &chat_body(2 << 10, &prompts))
        .unwrap();
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("chat_400_events_in_1KB_chunks", |b| {
        b.iter(|| {
            let mut s = ResponseStream::new(&engine, &req, "text/event-stream");
            let mut sent = 0usize;
            for chunk in stream.chunks(1024) {
                if let Emit::Bytes(out) = s.feed(&engine, chunk).emit {
                    sent += out.len();
                }
            }
            let (tail, summary) = s.finish(&engine, true);
            black_box((sent + tail.len(), summary.usage))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("compile");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    group.bench_function("default_config", |b| {
        b.iter(|| black_box(Engine::with_defaults().unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
