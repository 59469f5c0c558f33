//! A minimal HTTP/1.1 client for the command line's `query` commands: one GET to the collector's
//! own API (`http://` only), JSON back. Enough for a CLI; programs should use a real client.

use anyhow::{anyhow, bail, Context};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// GETs `path` from `base` (`http://host:port`) with an optional bearer key.
pub fn get_json(base: &str, path: &str, key: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs are supported: {base}"))?
        .trim_end_matches('/');
    let mut stream =
        TcpStream::connect(hostport).with_context(|| format!("connecting to {hostport}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let auth = key
        .map(|k| format!("authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {hostport}\r\naccept: application/json\r\n{auth}connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed status line"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        body.to_string()
    };
    let value: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("HTTP {status}: not JSON"))?;
    if status >= 400 {
        let detail = value
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or("error");
        bail!("HTTP {status}: {detail}");
    }
    Ok(value)
}

fn dechunk(mut rest: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
        if n == 0 {
            break;
        }
        out.push_str(tail.get(..n).ok_or_else(|| anyhow!("short chunk"))?);
        rest = tail.get(n + 2..).unwrap_or_default();
    }
    Ok(out)
}
