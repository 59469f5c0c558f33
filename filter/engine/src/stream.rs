//! Response streams: usage, findings and in-place redaction, one chunk at a time.
//!
//! [`ResponseStream::feed`] takes each network chunk of an SSE response (or of Gemini's JSON-array
//! stream) and returns what to send on. Usage is merged from whatever events carry it; output
//! text is estimated as it goes so a stream cut short still has a usage figure (flagged
//! `estimated`). Output text is scanned incrementally: only a bounded tail is held back — the
//! trailing word or digit group, at most `stream_holdback_bytes` — so a card number or token split
//! across two chunks is still found whole. When redaction (or a block) applies, whole SSE events
//! are held until their text is released, then passed through byte for byte or, if they carry a
//! redacted span, re-serialised with the replacement. Without enforcement, chunks pass unchanged
//! and the scan only records. Memory is bounded by the hold-back, one event, and the events whose
//! text is still held.

use crate::analysis::{overlap_exceeds, Direction, Engine, Finding, RequestAnalysis};
use crate::detect::output::{OverlapMeter, PromptFingerprint};
use crate::detect::{Hit, RuleKind, ScanSet};
use crate::normalize::Normalizer;
use crate::policy::{Action, Decision, Redactor};
use crate::provider::{self, Operation, Provider, Role};
use crate::sse::{SseEvent, SseParser};
use crate::usage::{TokenEstimate, Usage};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

/// Text of already released output kept as left context for the next scan (a keyword before a
/// secret, the `![alt text` before an image URL): at least the longest look-back of an output
/// rule.
const CONTEXT_BYTES: usize = 256;

/// Most output text held for a match that is still growing at the end of what has arrived.
const MAX_MATCH_HOLD: usize = 16 << 10;

/// What to send on for one fed chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// Send the chunk exactly as received.
    Same,
    /// Send these bytes instead (possibly empty: everything is held back for now).
    Bytes(Vec<u8>),
}

/// Result of feeding one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOutput {
    pub emit: Emit,
    /// This chunk carried the first output text (for time-to-first-token).
    pub first_text: bool,
}

/// Everything known at the end of a stream.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    pub model: Option<String>,
    pub usage: Usage,
    pub cost_micro_usd: Option<u64>,
    pub findings: Vec<Finding>,
    pub decision: Decision,
    /// Whether findings were enforced in the stream (redaction or block applied).
    pub enforced: bool,
    pub blocked_by: Option<Arc<str>>,
    /// The provider signalled a normal end of stream.
    pub completed: bool,
    /// The provider reported an error inside the stream.
    pub upstream_error: bool,
    /// SSE events dropped for exceeding the event size limit.
    pub dropped_events: u64,
    /// Total output text bytes seen.
    pub output_text_bytes: u64,
}

#[derive(Debug)]
enum Framing {
    Sse(SseParser),
    JsonArray(JsonArraySplitter),
}

#[derive(Debug)]
struct HeldEvent {
    raw: Vec<u8>,
    event_type: String,
    id: Option<String>,
    value: Option<Value>,
    /// (pointer, absolute text start, absolute text end)
    deltas: Vec<(String, u64, u64)>,
    drop: bool,
}

#[derive(Debug, Clone)]
struct Redaction {
    start: u64,
    end: u64,
    replacement: String,
    /// The replacement has been written (at the span's first byte not yet sent).
    placed: bool,
}

/// Incremental analysis of one response stream; see the module docs.
#[derive(Debug)]
pub struct ResponseStream {
    operation: Operation,
    provider: Provider,
    framing: Framing,
    usage: Usage,
    usage_final: bool,
    model: Option<String>,
    estimate: TokenEstimate,
    input_estimate: u64,
    completed: bool,
    upstream_error: bool,
    text_total: u64,
    // scanning
    scan_set: ScanSet,
    scanning: bool,
    holdback: usize,
    pending: String,
    pending_base: u64,
    context: String,
    normalizer: Normalizer,
    hits: Vec<Hit>,
    findings: Vec<Finding>,
    strongest: Option<Action>,
    fingerprint: PromptFingerprint,
    overlap: OverlapMeter,
    // rewriting
    rewrite: bool,
    raw: Vec<u8>,
    raw_base: u64,
    held: VecDeque<HeldEvent>,
    redactions: Vec<Redaction>,
    redactor: Redactor,
    /// (original, replacement) of every redacted value, JSON-escaped, for events that repeat
    /// text already streamed as deltas.
    repeated: Vec<(Vec<u8>, Vec<u8>)>,
    max_raw: usize,
    strip_usage_chunk: bool,
    block_at: Option<u64>,
    blocked_by: Option<Arc<str>>,
    terminated: bool,
    events: Vec<SseEvent>,
}

impl ResponseStream {
    /// Starts the analysis of a streamed response to `req`. `content_type` tells SSE from
    /// Gemini's JSON-array stream.
    pub fn new(engine: &Engine, req: &RequestAnalysis, content_type: &str) -> Self {
        let limits = engine.limits();
        let sse = content_type
            .to_ascii_lowercase()
            .contains("text/event-stream")
            || req.operation != Operation::StreamGenerateContent;
        let framing = if sse {
            Framing::Sse(SseParser::with_limit(limits.max_event_bytes))
        } else {
            Framing::JsonArray(JsonArraySplitter::new(limits.max_event_bytes))
        };
        let out = &engine.output;
        let scanning = out.enabled;
        let policy = engine.policy();
        // hold back and rewrite only when some output rule would redact or block, for real
        let enforcing = scanning
            && !policy.shadow
            && engine.detectors().rules().iter().any(|r| {
                matches!(
                    r.kind,
                    RuleKind::Secret | RuleKind::Pii | RuleKind::Exfil | RuleKind::Leak
                ) && matches!(policy.action_for(r), Action::Redact | Action::Block)
            });
        let rewrite = sse && (enforcing || req.strip_usage_chunk);
        ResponseStream {
            operation: req.operation,
            provider: req.provider,
            framing,
            usage: Usage::default(),
            usage_final: false,
            model: req.model.clone(),
            estimate: TokenEstimate::default(),
            input_estimate: req.input_tokens_estimate,
            completed: false,
            upstream_error: false,
            text_total: 0,
            scan_set: out.set,
            scanning,
            holdback: limits.stream_holdback_bytes,
            pending: String::new(),
            pending_base: 0,
            context: String::new(),
            normalizer: Normalizer::new(),
            hits: Vec::new(),
            findings: Vec::new(),
            strongest: None,
            fingerprint: req.fingerprint.clone(),
            overlap: OverlapMeter::default(),
            rewrite,
            raw: Vec::new(),
            raw_base: 0,
            held: VecDeque::new(),
            redactions: Vec::new(),
            redactor: Redactor::new(policy.redaction),
            repeated: Vec::new(),
            max_raw: limits.max_event_bytes,
            strip_usage_chunk: req.strip_usage_chunk,
            block_at: None,
            blocked_by: None,
            terminated: false,
            events: Vec::new(),
        }
    }

    /// Whether this stream holds back and rewrites (otherwise every chunk is [`Emit::Same`]).
    pub fn rewrites(&self) -> bool {
        self.rewrite
    }

    /// Feeds the next chunk of the response body.
    pub fn feed(&mut self, engine: &Engine, chunk: &[u8]) -> StreamOutput {
        let had_text = self.text_total > 0;
        let mut out = Vec::new();
        match &mut self.framing {
            Framing::Sse(parser) => {
                if self.rewrite {
                    self.raw.extend_from_slice(chunk);
                }
                let mut events = std::mem::take(&mut self.events);
                events.clear();
                parser.feed(chunk, &mut events);
                for ev in events.drain(..) {
                    self.on_sse_event(engine, ev);
                }
                self.events = events;
                if self.raw.len() > self.max_raw {
                    // an event over the size limit (dropped by the parser) or an endless line:
                    // pass its bytes on unanalysed, in order, instead of buffering them
                    let bytes = std::mem::take(&mut self.raw);
                    self.raw_base += bytes.len() as u64;
                    self.hold(HeldEvent {
                        raw: bytes,
                        event_type: String::new(),
                        id: None,
                        value: None,
                        deltas: Vec::new(),
                        drop: false,
                    });
                }
            }
            Framing::JsonArray(splitter) => {
                let mut elements = Vec::new();
                splitter.feed(chunk, &mut elements);
                for el in elements {
                    self.on_json_element(engine, &el);
                }
            }
        }
        self.settle(engine, false);
        let emit = if self.rewrite {
            self.release_events(engine, &mut out, false);
            Emit::Bytes(out)
        } else {
            Emit::Same
        };
        StreamOutput {
            emit,
            first_text: !had_text && self.text_total > 0,
        }
    }

    /// Ends the stream. `complete` is false when the client went away or the upstream failed;
    /// the usage is then completed by estimate. Returns the bytes still to send (held back) and
    /// the summary.
    pub fn finish(&mut self, engine: &Engine, complete: bool) -> (Vec<u8>, StreamSummary) {
        let mut events = Vec::new();
        match &mut self.framing {
            Framing::Sse(parser) => parser.finish(&mut events),
            Framing::JsonArray(_) => {}
        }
        for ev in events {
            self.on_sse_event(engine, ev);
        }
        self.settle(engine, true);
        let mut out = Vec::new();
        if self.rewrite {
            self.release_events(engine, &mut out, true);
            if !self.terminated {
                out.append(&mut self.raw);
            }
        }
        self.overlap.finish(&self.fingerprint);
        let (seen, span) = self.overlap.result();
        if let Some((s, e)) = span {
            if overlap_exceeds(seen, self.fingerprint.len(), engine.output.overlap) {
                let hit = Hit {
                    rule: engine.detectors.leak_overlap,
                    start: s,
                    end: e,
                };
                self.record(engine, hit, None, false);
            }
        }
        let mut usage = self.usage;
        if !self.usage_final || !complete && !self.completed {
            if usage.input_tokens == 0 {
                usage.input_tokens = self.input_estimate;
            }
            usage.output_tokens = usage.output_tokens.max(self.estimate.total());
            usage.estimated = true;
        }
        let cost = self.model.as_deref().and_then(|m| engine.cost(m, &usage));
        let dropped = match &self.framing {
            Framing::Sse(p) => p.dropped_events(),
            Framing::JsonArray(j) => j.dropped,
        };
        let summary = StreamSummary {
            model: self.model.clone(),
            usage,
            cost_micro_usd: cost,
            findings: std::mem::take(&mut self.findings),
            decision: engine.policy().decide(self.strongest, 0.0),
            enforced: self.rewrite,
            blocked_by: self.blocked_by.clone(),
            completed: self.completed,
            upstream_error: self.upstream_error,
            dropped_events: dropped,
            output_text_bytes: self.text_total,
        };
        (out, summary)
    }

    fn on_sse_event(&mut self, engine: &Engine, ev: SseEvent) {
        let raw = if self.rewrite {
            let upto = usize::try_from(ev.end_offset.saturating_sub(self.raw_base))
                .unwrap_or(usize::MAX)
                .min(self.raw.len());
            let bytes: Vec<u8> = self.raw.drain(..upto).collect();
            self.raw_base += bytes.len() as u64;
            bytes
        } else {
            Vec::new()
        };
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.completed = true;
            self.hold(HeldEvent {
                raw,
                event_type: ev.event,
                id: ev.id,
                value: None,
                deltas: Vec::new(),
                drop: false,
            });
            return;
        }
        let value: Option<Value> = serde_json::from_str(data).ok();
        let info = match &value {
            Some(v) => provider::parse_stream_value(self.operation, &ev.event, v),
            None => Default::default(),
        };
        let deltas = self.absorb(engine, &info);
        let drop = self.strip_usage_chunk && info.usage_only;
        let keep_value = if deltas.is_empty() { None } else { value };
        self.hold(HeldEvent {
            raw,
            event_type: ev.event,
            id: ev.id,
            value: keep_value,
            deltas,
            drop,
        });
    }

    fn on_json_element(&mut self, engine: &Engine, bytes: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            let info = provider::parse_stream_value(self.operation, "", &v);
            self.absorb(engine, &info);
        }
    }

    fn hold(&mut self, ev: HeldEvent) {
        if self.rewrite {
            self.held.push_back(ev);
        }
    }

    /// Takes usage, model, flags and text from one event; returns the text deltas' positions.
    fn absorb(
        &mut self,
        engine: &Engine,
        info: &provider::StreamEventInfo,
    ) -> Vec<(String, u64, u64)> {
        if let Some(m) = &info.model {
            self.model = Some(m.clone());
        }
        if let Some(patch) = &info.usage {
            patch.apply(&mut self.usage);
        }
        self.usage_final |= info.final_usage;
        self.completed |= info.done;
        self.upstream_error |= info.error;
        let mut positions = Vec::with_capacity(info.deltas.len());
        for (pointer, text) in &info.deltas {
            let start = self.text_total;
            self.text_total += text.len() as u64;
            positions.push((pointer.clone(), start, self.text_total));
            self.estimate.feed(text);
            if self.scanning {
                self.pending.push_str(text);
            } else {
                self.pending_base = self.text_total;
            }
        }
        if self.scanning && self.pending.len() > 4 * self.holdback + CONTEXT_BYTES {
            self.settle(engine, false);
        }
        positions
    }

    /// Scans the held text and releases what can no longer be part of a match (all of it when
    /// `last`).
    fn settle(&mut self, engine: &Engine, last: bool) {
        if !self.scanning || self.pending.is_empty() {
            return;
        }
        let mut buf = std::mem::take(&mut self.context);
        let ctx_len = buf.len();
        buf.push_str(&self.pending);
        let len = buf.len();
        self.hits.clear();
        engine
            .detectors
            .scan(&buf, self.scan_set, &mut self.normalizer, &mut self.hits);
        engine.leak_hits(&buf, &PromptFingerprint::default(), &mut self.hits);
        self.hits.retain(|h| h.end > ctx_len);
        // where to release up to
        let mut release = if last {
            len
        } else {
            trailing_run_start(&buf, self.holdback)
        };
        if !last {
            // a match still growing at the end (a PEM block, a long token) is held whole, up to
            // MAX_MATCH_HOLD bytes, so that it is redacted before any of it is sent
            // and so is a credential's opening literal (`-----BEGIN`, `ghp_`...) near the end,
            // before enough of it has arrived to match at all
            if let Some(at) = engine
                .detectors
                .first_secret_trigger(&buf, len.saturating_sub(self.holdback).max(ctx_len))
            {
                release = release.min(at);
            }
            let floor = len.saturating_sub(MAX_MATCH_HOLD.max(self.holdback));
            for h in &self.hits {
                if h.end >= len {
                    release = release.min(h.start.max(floor));
                }
            }
            release = release.max(ctx_len);
            let mut hits = self.hits.clone();
            hits.sort_by_key(|h| h.start);
            for h in &hits {
                if h.end < len && h.start < release && h.end > release {
                    release = h.end;
                }
            }
            while release > ctx_len && !buf.is_char_boundary(release) {
                release -= 1;
            }
        }
        let base = self.pending_base as i64 - ctx_len as i64;
        let hits = std::mem::take(&mut self.hits);
        for h in &hits {
            if h.end <= release && (last || h.end < len) {
                let value = buf.get(h.start..h.end).map(str::to_string);
                let abs = Hit {
                    rule: h.rule,
                    start: (base + h.start as i64).max(0) as usize,
                    end: (base + h.end as i64).max(0) as usize,
                };
                self.record(engine, abs, value, true);
            }
        }
        self.hits = hits;
        let released = buf.get(ctx_len..release).unwrap_or("");
        self.overlap
            .feed(&self.fingerprint, released, self.pending_base);
        self.pending_base += released.len() as u64;
        self.pending = buf.get(release..).unwrap_or("").to_string();
        let keep_from = release.saturating_sub(CONTEXT_BYTES);
        let mut k = keep_from;
        while k < release && !buf.is_char_boundary(k) {
            k += 1;
        }
        self.context = buf.get(k..release).unwrap_or("").to_string();
    }

    /// Records a finding; with `enforce`, also schedules its redaction or block (findings made
    /// only at the end of the stream, after everything was sent, are recorded, not enforced).
    fn record(&mut self, engine: &Engine, hit: Hit, value: Option<String>, enforce: bool) {
        let Some(rule) = engine.detectors.rule(hit.rule) else {
            return;
        };
        let action = engine.policy().action_for(rule);
        self.strongest = self.strongest.max(Some(action));
        self.findings.push(Finding {
            rule_id: rule.id.clone(),
            category: rule.category.clone(),
            severity: rule.severity,
            weight: rule.weight,
            action,
            direction: Direction::Response,
            role: Role::Assistant,
            message_index: 0,
            segment: 0,
            start: hit.start,
            end: hit.end,
        });
        if !self.rewrite || !enforce {
            return;
        }
        match action {
            Action::Redact => {
                let replacement = self
                    .redactor
                    .replacement(&rule.label, value.as_deref().unwrap_or(""));
                if let Some(original) = value.filter(|v| !v.is_empty()) {
                    // events that repeat the whole text (Responses' `.done` and `completed`)
                    // get the same replacement, as JSON string content
                    let escaped = |t: &str| {
                        serde_json::to_string(t).ok().and_then(|q| {
                            q.get(1..q.len().saturating_sub(1))
                                .map(|x| x.as_bytes().to_vec())
                        })
                    };
                    if let (Some(from), Some(to)) = (escaped(&original), escaped(&replacement)) {
                        if !self.repeated.iter().any(|(f, _)| *f == from) {
                            self.repeated.push((from, to));
                        }
                    }
                }
                self.redactions.push(Redaction {
                    start: hit.start as u64,
                    end: hit.end as u64,
                    replacement,
                    placed: false,
                });
            }
            Action::Block => {
                let at = hit.start as u64;
                if self.block_at.is_none_or(|b| at < b) {
                    self.block_at = Some(at);
                    self.blocked_by = Some(rule.id.clone());
                }
            }
            _ => {}
        }
    }

    fn release_events(&mut self, engine: &Engine, out: &mut Vec<u8>, last: bool) {
        let released_upto = self.pending_base;
        while let Some(front) = self.held.front() {
            let ready = last || front.deltas.iter().all(|(_, _, end)| *end <= released_upto);
            if !ready {
                break;
            }
            let Some(ev) = self.held.pop_front() else {
                break;
            };
            if self.terminated || ev.drop {
                continue;
            }
            if let Some(block_at) = self.block_at {
                if ev.deltas.iter().any(|(_, _, end)| *end > block_at) {
                    self.terminated = true;
                    out.extend_from_slice(&self.block_event(engine));
                    continue;
                }
            }
            let touched = ev
                .deltas
                .iter()
                .any(|(_, a, b)| self.redactions.iter().any(|r| r.start < *b && *a < r.end));
            if touched {
                out.extend_from_slice(&self.rewrite_event(ev));
            } else if ev.deltas.is_empty() && !self.repeated.is_empty() {
                out.extend_from_slice(&replace_all(&ev.raw, &self.repeated));
            } else {
                out.extend_from_slice(&ev.raw);
            }
        }
        let min_open = self
            .held
            .iter()
            .flat_map(|e| e.deltas.iter().map(|d| d.1))
            .min()
            .unwrap_or(released_upto);
        self.redactions.retain(|r| r.end > min_open);
    }

    fn rewrite_event(&mut self, mut ev: HeldEvent) -> Vec<u8> {
        let Some(mut value) = ev.value.take() else {
            return ev.raw;
        };
        for (pointer, a, b) in &ev.deltas {
            let Some(Value::String(text)) = value.pointer(pointer) else {
                continue;
            };
            let mut new = String::with_capacity(text.len());
            let mut pos = *a;
            let mut spans: Vec<&mut Redaction> = self
                .redactions
                .iter_mut()
                .filter(|r| r.start < *b && *a < r.end)
                .collect();
            spans.sort_by_key(|r| r.start);
            for r in spans {
                let s = r.start.max(pos);
                let lo = usize::try_from(pos - a).unwrap_or(0);
                let hi = usize::try_from(s - a).unwrap_or(0);
                new.push_str(text.get(lo..hi).unwrap_or(""));
                // written once, where the span's first unsent byte is (its head may have been
                // sent before the match was recognised)
                if !r.placed {
                    new.push_str(&r.replacement);
                    r.placed = true;
                }
                pos = r.end.min(*b).max(pos);
            }
            let lo = usize::try_from(pos - a).unwrap_or(0);
            new.push_str(text.get(lo..).unwrap_or(""));
            if let Some(slot) = value.pointer_mut(pointer) {
                *slot = Value::String(new);
            }
        }
        let mut out = Vec::new();
        if !ev.event_type.is_empty() {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(ev.event_type.as_bytes());
            out.push(b'\n');
        }
        if let Some(id) = &ev.id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&serde_json::to_vec(&value).unwrap_or_default());
        out.extend_from_slice(b"\n\n");
        out
    }

    /// The provider-shaped error event that ends a blocked stream.
    fn block_event(&self, engine: &Engine) -> Vec<u8> {
        let rule = self.blocked_by.as_deref().unwrap_or("policy");
        let body =
            crate::policy::block_body(self.provider, engine.policy().block_status, rule, "output");
        let body = String::from_utf8_lossy(&body).into_owned();
        match self.operation {
            Operation::Messages => format!("event: error\ndata: {body}\n\n").into_bytes(),
            Operation::Responses => {
                let msg = format!("Response stopped by Tollgate policy: rule {rule}");
                let v = serde_json::json!({"type": "error", "code": "tollgate_policy_violation", "message": msg, "param": null});
                format!("event: error\ndata: {v}\n\n").into_bytes()
            }
            Operation::ChatCompletions | Operation::Completions => {
                format!("data: {body}\n\ndata: [DONE]\n\n").into_bytes()
            }
            _ => format!("data: {body}\n\n").into_bytes(),
        }
    }
}

/// `bytes` with every occurrence of each `(from, to)` pair replaced, longest `from` first.
fn replace_all(bytes: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut ordered: Vec<&(Vec<u8>, Vec<u8>)> = pairs.iter().collect();
    ordered.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    for (from, to) in ordered {
        if from.is_empty() || memchr::memmem::find(&out, from).is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(out.len());
        let mut last = 0;
        for at in memchr::memmem::find_iter(&out, from) {
            if at < last {
                continue;
            }
            next.extend_from_slice(out.get(last..at).unwrap_or_default());
            next.extend_from_slice(to);
            last = at + from.len();
        }
        next.extend_from_slice(out.get(last..).unwrap_or_default());
        out = next;
    }
    out
}

/// Start of the trailing run that may still grow into a match: the last non-space token, with
/// spaces and dashes between digit groups counted in (card and phone numbers), at most `max`
/// bytes back.
fn trailing_run_start(buf: &str, max: usize) -> usize {
    let floor = buf.len().saturating_sub(max);
    let bytes = buf.as_bytes();
    let mut i = buf.len();
    while i > floor {
        let Some(&b) = bytes.get(i - 1) else { break };
        // a space or dash after a digit group, an upper-case group or ')' may be inside a card,
        // IBAN or phone number that is still arriving
        let prev_group = i >= 2
            && bytes
                .get(i - 2)
                .is_some_and(|p| p.is_ascii_digit() || p.is_ascii_uppercase() || *p == b')');
        let keep = if b == b' ' || b == b'-' {
            prev_group
        } else {
            !b.is_ascii_whitespace()
        };
        if !keep {
            break;
        }
        i -= 1;
    }
    while i < buf.len() && !buf.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Splits a streamed top-level JSON array (`[{...},{...}]`) into its elements as they complete.
#[derive(Debug)]
pub struct JsonArraySplitter {
    depth: u32,
    in_string: bool,
    escape: bool,
    current: Vec<u8>,
    max: usize,
    oversized: bool,
    dropped: u64,
}

impl JsonArraySplitter {
    pub fn new(max_element_bytes: usize) -> Self {
        JsonArraySplitter {
            depth: 0,
            in_string: false,
            escape: false,
            current: Vec::new(),
            max: max_element_bytes,
            oversized: false,
            dropped: 0,
        }
    }

    /// Feeds bytes; appends each completed element.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Vec<u8>>) {
        for &b in chunk {
            if self.depth >= 2
                || (self.depth == 1
                    && !matches!(b, b'[' | b']' | b',' | b' ' | b'\n' | b'\r' | b'\t'))
            {
                if self.current.len() < self.max {
                    self.current.push(b);
                } else {
                    self.oversized = true;
                }
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' if self.depth >= 1 => self.in_string = true,
                b'[' | b'{' => {
                    if self.depth == 1 && self.current.is_empty() {
                        self.current.push(b);
                    }
                    self.depth += 1;
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 1 {
                        let el = std::mem::take(&mut self.current);
                        if std::mem::replace(&mut self.oversized, false) {
                            self.dropped += 1;
                        } else if !el.is_empty() {
                            out.push(el);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_runs() {
        assert_eq!(trailing_run_start("hello world", 100), 6);
        assert_eq!(trailing_run_start("card 4111 1111 ", 100), 5);
        assert_eq!(trailing_run_start("done. ", 100), 6);
        assert_eq!(trailing_run_start("abcdefghij", 4), 6);
    }

    #[test]
    fn json_array_elements() {
        let stream = br#"[{"a": "x]}"},
{"b": [1, {"c": 2}]}
]"#;
        for split in 0..stream.len() {
            let mut s = JsonArraySplitter::new(1024);
            let mut out = Vec::new();
            s.feed(&stream[..split], &mut out);
            s.feed(&stream[split..], &mut out);
            let got: Vec<String> = out
                .iter()
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect();
            assert_eq!(
                got,
                vec![
                    r#"{"a": "x]}"}"#.to_string(),
                    r#"{"b": [1, {"c": 2}]}"#.to_string()
                ],
                "split {split}"
            );
        }
    }
}
