//! `tollgate-loadgen`: the two ends of the Envoy benchmark (docs/benchmarks.md), with nothing
//! but the standard library so both are cheap enough to leave Envoy the bottleneck.
//!
//! - `upstream`: an HTTP/1.1 server that answers every request like an LLM provider — a chat
//!   completion JSON, or (when the request body asks for `"stream":true`) an SSE stream of text
//!   deltas with a usage chunk, optionally paced.
//! - `run`: a closed-loop client: N keep-alive connections, each sending the same request as soon
//!   as the previous answer is read, for a fixed time; prints one JSON line with the request
//!   rate, latency percentiles and, for streams, time to the first text byte. With
//!   `--conversation FILE` (one request body per line: the turns of a conversation, each
//!   resending the history) each connection sends the turns in order, again and again, and
//!   writes a number unique to each round over every `@CONV@` in them, so every round is a new
//!   conversation whose history repeats only within itself, as a chat or agent client's does
//!   (a single `--body` with `@CONV@` is a new text on every request).
//!
//! # Layout
//! Everything is in this file: argument parsing, the server, the client, HTTP/1.1 framing.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().ok_or_else(|| anyhow!(USAGE))?;
    let opt = |name: &str| -> Option<String> {
        rest.iter()
            .position(|a| a == name)
            .and_then(|i| rest.get(i + 1).cloned())
    };
    let num = |name: &str, default: u64| -> Result<u64> {
        opt(name).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("{name} {v}"))
        })
    };
    match cmd.as_str() {
        "upstream" => upstream(
            u16::try_from(num("--port", 18090)?)?,
            num("--events", 20)?,
            Duration::from_micros(num("--event-delay-us", 0)?),
        ),
        "run" => {
            let bodies = match (opt("--body"), opt("--conversation")) {
                (Some(file), None) => vec![std::fs::read(file)?],
                (None, Some(file)) => std::fs::read(file)?
                    .split(|&b| b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect(),
                _ => bail!("one of --body FILE or --conversation FILE"),
            };
            let report = run(&RunConfig {
                port: u16::try_from(num("--port", 10000)?)?,
                path: opt("--path").unwrap_or_else(|| "/v1/chat/completions".to_string()),
                bodies,
                connections: num("--connections", 4)?,
                duration: Duration::from_millis(num("--millis", 5000)?),
                warmup: Duration::from_millis(num("--warmup-millis", 500)?),
                marker: opt("--first-token-marker").map(String::into_bytes),
            })?;
            println!("{report}");
            Ok(())
        }
        _ => bail!(USAGE),
    }
}

const USAGE: &str = "usage: tollgate-loadgen upstream [--port P] [--events N] [--event-delay-us U]\n       tollgate-loadgen run (--body FILE | --conversation FILE) [--port P] [--path /v1/chat/completions] [--connections C] [--millis M] [--warmup-millis W] [--first-token-marker TEXT]";

// ---------------------------------------------------------------- upstream

fn upstream(port: u16, events: u64, delay: Duration) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    eprintln!("upstream on 127.0.0.1:{port}");
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = serve_connection(conn, events, delay);
        });
    }
    Ok(())
}

const USAGE_JSON: &str = r#"{"prompt_tokens":512,"completion_tokens":64,"total_tokens":576}"#;

fn serve_connection(conn: TcpStream, events: u64, delay: Duration) -> Result<()> {
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let len = head.content_length.unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let stream = contains(&body, b"\"stream\":true") || contains(&body, b"\"stream\": true");
        if !stream {
            let reply = format!(
                r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello from the benchmark upstream."}},"finish_reason":"stop"}}],"usage":{USAGE_JSON}}}"#
            );
            write!(
                writer,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                reply.len()
            )?;
            continue;
        }
        writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )?;
        let chunk = |w: &mut TcpStream, data: &str| -> Result<()> {
            write!(w, "{:x}\r\n{data}\r\n", data.len())?;
            Ok(())
        };
        let event = |content: &str| {
            format!(
                "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
            )
        };
        chunk(&mut writer, &event(""))?;
        for i in 0..events {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let word = if i == 0 { "Hello" } else { " word" };
            chunk(&mut writer, &event(word))?;
        }
        chunk(
            &mut writer,
            &format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{USAGE_JSON}}}\n\ndata: [DONE]\n\n"),
        )?;
        writer.write_all(b"0\r\n\r\n")?;
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------- HTTP framing

struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
}

/// Reads a request or response head; `None` at a clean end of the connection.
fn read_head(r: &mut BufReader<TcpStream>) -> Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    // "HTTP/1.1 200 OK" or "POST /path HTTP/1.1"
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut head = Head {
        status,
        content_length: None,
        chunked: false,
    };
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed inside a head");
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok(Some(head));
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                head.content_length = v.parse().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                head.chunked = true;
            }
        }
    }
}

/// Reads a response body; calls `on_data` with each piece as it arrives.
fn read_body(
    r: &mut BufReader<TcpStream>,
    head: &Head,
    mut on_data: impl FnMut(&[u8]),
) -> Result<()> {
    if !head.chunked {
        let mut body = vec![0u8; head.content_length.unwrap_or(0)];
        r.read_exact(&mut body)?;
        on_data(&body);
        return Ok(());
    }
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
            .context("chunk size")?;
        let mut data = vec![0u8; size + 2];
        r.read_exact(&mut data)?;
        if size == 0 {
            return Ok(());
        }
        on_data(data.get(..size).unwrap_or_default());
    }
}

// ---------------------------------------------------------------- client

struct RunConfig {
    port: u16,
    path: String,
    /// The request bodies each connection sends in turn (one, or a conversation's turns).
    bodies: Vec<Vec<u8>>,
    connections: u64,
    duration: Duration,
    warmup: Duration,
    marker: Option<Vec<u8>>,
}

#[derive(Default)]
struct Samples {
    latency_us: Vec<u32>,
    first_token_us: Vec<u32>,
    errors: u64,
}

/// Where a conversation's turns say which conversation they belong to.
const CONVERSATION_MARK: &[u8] = b"@CONV@";

/// The HTTP request for `body`, with `round` written over every [`CONVERSATION_MARK`].
fn http_request(path: &str, body: &[u8], round: u64) -> Vec<u8> {
    let id = format!("{round:06}");
    let mut text = Vec::with_capacity(body.len() + 64);
    let mut rest = body;
    while let Some(at) = rest
        .windows(CONVERSATION_MARK.len())
        .position(|w| w == CONVERSATION_MARK)
    {
        text.extend_from_slice(rest.get(..at).unwrap_or_default());
        text.extend_from_slice(id.as_bytes());
        rest = rest.get(at + CONVERSATION_MARK.len()..).unwrap_or_default();
    }
    text.extend_from_slice(rest);
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        text.len()
    )
    .into_bytes();
    r.extend_from_slice(&text);
    r
}

fn run(cfg: &RunConfig) -> Result<String> {
    let bodies = Arc::new(cfg.bodies.clone());
    // one body without a mark: the same request every time, built once
    let single = match cfg.bodies.as_slice() {
        [only]
            if !only
                .windows(CONVERSATION_MARK.len())
                .any(|w| w == CONVERSATION_MARK) =>
        {
            Some(http_request(&cfg.path, only, 0))
        }
        _ => None,
    };
    let single = Arc::new(single);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for connection in 0..cfg.connections {
        let (bodies, single, measuring, stop) = (
            bodies.clone(),
            single.clone(),
            measuring.clone(),
            stop.clone(),
        );
        let (port, marker, path) = (cfg.port, cfg.marker.clone(), cfg.path.clone());
        workers.push(std::thread::spawn(move || -> Result<Samples> {
            let conn = TcpStream::connect(("127.0.0.1", port))?;
            conn.set_nodelay(true)?;
            let mut writer = conn.try_clone()?;
            let mut reader = BufReader::new(conn);
            let mut s = Samples::default();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // a conversation's turns, in order; each round is a new conversation
                let turn = (sent % bodies.len() as u64) as usize;
                let round = connection * 100_000 + sent / bodies.len() as u64;
                let built;
                let request = match single.as_ref() {
                    Some(r) => r,
                    None => {
                        built = http_request(&path, bodies.get(turn).map_or(&[][..], |b| b), round);
                        &built
                    }
                };
                sent += 1;
                let start = Instant::now();
                writer.write_all(request)?;
                let head = read_head(&mut reader)?.ok_or_else(|| anyhow!("closed"))?;
                let mut first: Option<Duration> = None;
                let mut tail: Vec<u8> = Vec::new();
                read_body(&mut reader, &head, |data| {
                    if let (Some(m), None) = (&marker, first) {
                        tail.extend_from_slice(data);
                        if contains(&tail, m) {
                            first = Some(start.elapsed());
                        }
                    }
                })?;
                let took = start.elapsed();
                if measuring.load(Ordering::Relaxed) {
                    if head.status != 200 {
                        s.errors += 1;
                    }
                    s.latency_us
                        .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                    if let Some(f) = first {
                        s.first_token_us
                            .push(u32::try_from(f.as_micros()).unwrap_or(u32::MAX));
                    }
                }
            }
            Ok(s)
        }));
    }
    std::thread::sleep(cfg.warmup);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(cfg.duration);
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Samples::default();
    for w in workers {
        let s = w.join().map_err(|_| anyhow!("worker panicked"))??;
        all.latency_us.extend(s.latency_us);
        all.first_token_us.extend(s.first_token_us);
        all.errors += s.errors;
    }
    all.latency_us.sort_unstable();
    all.first_token_us.sort_unstable();
    let pct = |v: &[u32], p: f64| -> u32 {
        if v.is_empty() {
            return 0;
        }
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v.get(i).copied().unwrap_or(0)
    };
    let n = all.latency_us.len();
    Ok(format!(
        r#"{{"requests":{n},"errors":{},"seconds":{elapsed:.3},"rps":{:.1},"p50_us":{},"p90_us":{},"p99_us":{},"first_token_p50_us":{}}}"#,
        all.errors,
        n as f64 / elapsed,
        pct(&all.latency_us, 0.5),
        pct(&all.latency_us, 0.9),
        pct(&all.latency_us, 0.99),
        pct(&all.first_token_us, 0.5),
    ))
}
