//! Tollgate's proxy-wasm filter: the engine inside Envoy (and other proxy-wasm hosts).
//!
//! A thin shell (ADR 0001): host calls in, engine calls, actions out. The root context compiles
//! the plugin configuration once in `on_configure` (a bad config is rejected with a log line
//! naming the field) and shares the compiled engine with every request through an `Rc`. Each
//! request context routes by path and authority; requests on no LLM route pass untouched. On an
//! LLM route the request body is buffered up to the configured limit and analysed once; the
//! decision is applied as a local reply (block), a replaced body (redact) or headers for the
//! upstream (tag). Streamed responses are never paused: each chunk goes on at once, rewritten
//! only where in-stream redaction needs it. Every failure fails open unless the operator
//! configured `fail_closed`.
//!
//! # Layout
//! - [`Root`]: configuration and the shared engine.
//! - [`Exchange`]: one request/response exchange.
//! - [`metrics`]: Envoy counters and histograms with labels.
//! - [`host`]: host properties read and written without the SDK's panics.

#[allow(unsafe_code)]
pub mod host;
pub mod metrics;

use metrics::Metrics;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};
use tollgate_engine::{
    Emit, Engine, EngineError, ExchangeRecord, RequestAnalysis, RequestFacts, ResponseStream,
    RouteMatch, StreamSummary, SummaryQueue,
};

/// Filter-state name of the per-request summary (Envoy stores it as `wasm.tollgate.summary`).
pub const SUMMARY_PROPERTY: &str = "tollgate.summary";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { engine: None, metrics: Rc::new(Metrics::default()), forwarder: None, last_metrics_flush: 0, reported: (0, 0) })
    });
}}

/// The root context: holds the compiled engine.
pub struct Root {
    engine: Option<Rc<Engine>>,
    metrics: Rc<Metrics>,
    /// Trace summaries on their way to the collector (when one is configured).
    forwarder: Option<Rc<Forwarder>>,
    /// Host time of the last metrics flush.
    last_metrics_flush: u64,
    /// Dropped and delivered summaries already counted in metrics.
    reported: (u64, u64),
}

/// This worker's queue of trace summaries and what the collector needs to know about it.
pub struct Forwarder {
    queue: RefCell<SummaryQueue>,
    cluster: String,
    token: Option<String>,
    timeout: Duration,
    node: String,
    envoy_cluster: String,
}

impl Context for Root {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, _response_size: usize) {
        let now = now_nanos(self);
        let Some(f) = &self.forwarder else { return };
        let ok = status_code == 0;
        let sent = f.queue.borrow().in_flight();
        f.queue.borrow_mut().on_result(ok, now);
        if sent {
            let outcome = if ok { "ok" } else { "failed" };
            self.metrics
                .add("tollgate.collector.batches", &[("result", outcome)], 1);
        }
        if !ok {
            log::debug!("tollgate: collector call failed with gRPC status {status_code}");
        }
    }
}

impl Root {
    /// Sends the batch of summaries that is due, if any.
    fn forward(&mut self, now: u64) {
        let Some(f) = self.forwarder.clone() else {
            return;
        };
        let Some(body) = f.queue.borrow_mut().due_batch(now) else {
            return;
        };
        let auth = f.token.as_ref().map(|t| format!("Bearer {t}"));
        let metadata: Vec<(&str, &[u8])> = auth
            .as_deref()
            .map(|a| vec![("authorization", a.as_bytes())])
            .unwrap_or_default();
        let sent = self.dispatch_grpc_call(
            &f.cluster,
            tollgate_proto::INGEST_SERVICE,
            tollgate_proto::INGEST_METHOD,
            metadata,
            Some(&body),
            f.timeout,
        );
        if let Err(status) = sent {
            log::debug!("tollgate: collector call not sent: {status:?}");
            f.queue.borrow_mut().on_result(false, now);
            self.metrics
                .add("tollgate.collector.batches", &[("result", "not_sent")], 1);
        }
    }
}

impl RootContext for Root {
    fn on_tick(&mut self) {
        let now = now_nanos(self);
        self.forward(now);
        if now.saturating_sub(self.last_metrics_flush)
            >= u64::try_from(metrics::FLUSH_PERIOD.as_nanos()).unwrap_or(u64::MAX)
        {
            self.last_metrics_flush = now;
            if let Some(f) = &self.forwarder {
                let q = f.queue.borrow();
                self.metrics
                    .set("tollgate.collector.queued", q.len() as u64);
                // counters: add what changed since the last report
                let (dropped, delivered) = (q.dropped(), q.delivered());
                let (was_dropped, was_delivered) = self.reported;
                self.metrics.add(
                    "tollgate.collector.dropped",
                    &[],
                    dropped.saturating_sub(was_dropped),
                );
                self.metrics.add(
                    "tollgate.collector.delivered",
                    &[],
                    delivered.saturating_sub(was_delivered),
                );
                drop(q);
                self.reported = (dropped, delivered);
            }
            self.metrics.flush();
            self.metrics
                .set("tollgate.vm_memory_bytes", host::vm_memory_bytes());
        }
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match Engine::from_json(&config) {
            Ok(engine) => {
                log::info!(
                    "tollgate: configuration loaded ({} rules, {} priced models)",
                    engine.detectors().rules().len(),
                    engine.prices().len()
                );
                self.forwarder = engine
                    .collector()
                    .zip(engine.forward_settings())
                    .map(|(c, s)| {
                        let text = |path: &[&str]| {
                            host::get_property(path)
                                .and_then(|b| String::from_utf8(b).ok())
                                .unwrap_or_default()
                        };
                        Rc::new(Forwarder {
                            queue: RefCell::new(SummaryQueue::new(s)),
                            cluster: c.cluster.clone(),
                            token: c.token.clone(),
                            timeout: Duration::from_millis(c.timeout_ms),
                            node: text(&["node", "id"]),
                            envoy_cluster: text(&["node", "cluster"]),
                        })
                    });
                // the tick sends due batches and, every second, flushes metrics
                let tick = if self.forwarder.is_some() {
                    Duration::from_millis(100)
                } else {
                    metrics::FLUSH_PERIOD
                };
                self.set_tick_period(tick);
                self.engine = Some(Rc::new(engine));
                true
            }
            Err(e) => {
                log::error!("tollgate: configuration rejected: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let engine = self.engine.clone()?;
        let mut exchange = Exchange::new(context_id, engine, self.metrics.clone());
        exchange.forwarder = self.forwarder.clone();
        Some(Box::new(exchange))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// How the response body is handled.
enum ResponseMode {
    /// Not analysed: passes untouched.
    Pass,
    /// Buffered whole, analysed at its end.
    Buffered,
    /// Streamed: each chunk analysed (and possibly rewritten) as it passes.
    Streamed(Box<ResponseStream>),
    /// Too large to buffer: passes untouched; its last bytes are kept for the usage object.
    Tail { tail: Vec<u8>, total: u64 },
}

/// Bytes of an over-limit response kept to find its usage object (serialised last).
const TAIL_BYTES: usize = 16 * 1024;

/// Appends `chunk` to `tail`, keeping only the last [`TAIL_BYTES`].
fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    tail.extend_from_slice(chunk);
    if tail.len() > TAIL_BYTES {
        let cut = tail.len() - TAIL_BYTES;
        tail.drain(..cut);
    }
}

/// One request/response exchange on a worker.
pub struct Exchange {
    id: u32,
    engine: Rc<Engine>,
    metrics: Rc<Metrics>,
    route: Option<RouteMatch>,
    analysis: Option<RequestAnalysis>,
    /// What is known of the call so far (LLM routes only).
    record: Option<ExchangeRecord>,
    /// The summary was written to filter state.
    summarised: bool,
    response: ResponseMode,
    replied: bool,
    forwarder: Option<Rc<Forwarder>>,
}

/// The request as the engine's tenant rules see it: its headers (read once) and host properties.
struct HostFacts<'a>(&'a [(String, String)]);

/// A header from a map the host returned (names are lowercase in Envoy).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl RequestFacts for HostFacts<'_> {
    fn header(&self, name: &str) -> Option<String> {
        header(self.0, name).map(str::to_string)
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        host::get_property(path)
    }
}

/// Nanoseconds since the unix epoch by the host clock.
fn now_nanos(ctx: &dyn Context) -> u64 {
    ctx.get_current_time()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// An integer host property (Envoy serialises them as 8 little-endian bytes).
fn int_property(path: &[&str]) -> Option<u64> {
    let bytes: [u8; 8] = host::get_property(path)?.try_into().ok()?;
    u64::try_from(i64::from_le_bytes(bytes)).ok()
}

impl Exchange {
    fn new(id: u32, engine: Rc<Engine>, metrics: Rc<Metrics>) -> Self {
        Exchange {
            id,
            engine,
            metrics,
            route: None,
            analysis: None,
            record: None,
            summarised: false,
            response: ResponseMode::Pass,
            replied: false,
            forwarder: None,
        }
    }

    fn unanalysed(&mut self, reason: &'static str) {
        if let Some(rec) = &mut self.record {
            rec.unanalysed = Some(reason);
        }
    }

    fn is_unanalysed(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.unanalysed.is_some())
    }

    /// Marks the end of the exchange and writes its summary to filter state (once).
    fn finish_record(&mut self) {
        if self.summarised {
            return;
        }
        let now = now_nanos(self);
        let Some(rec) = &mut self.record else { return };
        rec.timing.end = Some(now);
        if !self.engine.summary_in_filter_state() {
            return;
        }
        self.summarised = true;
        let json = rec.summary_json();
        if !host::set_property(&[SUMMARY_PROPERTY], json.as_bytes()) {
            log::debug!("tollgate[{}]: the host refused the summary", self.id);
        }
    }

    /// Records the exchange in Envoy's metrics (once, at the end).
    fn record_metrics(&self) {
        let Some(rec) = &self.record else { return };
        let provider = rec.provider.as_str();
        let model = rec.model();
        let m = &self.metrics;
        let labels = [("provider", provider), ("model", model)];
        m.add(
            "tollgate.requests",
            &[
                ("provider", provider),
                ("model", model),
                ("outcome", rec.outcome().as_str()),
            ],
            1,
        );
        if let Some(reason) = rec.unanalysed {
            m.add("tollgate.unanalysed", &[("reason", reason)], 1);
        }
        for f in &rec.findings {
            m.add(
                "tollgate.findings",
                &[("category", &f.category), ("action", f.action.as_str())],
                1,
            );
        }
        if let Some(usage) = &rec.usage {
            m.add("gen_ai.usage.input_tokens", &labels, usage.input_tokens);
            m.add("gen_ai.usage.output_tokens", &labels, usage.output_tokens);
            if usage.estimated {
                m.add("tollgate.usage_estimated", &labels, 1);
            }
        }
        if let Some(cost) = rec.cost_micro_usd {
            m.add("tollgate.cost_micro_usd", &labels, cost);
        }
        if let Some(ms) = rec.ttft_ms() {
            m.record("gen_ai.server.time_to_first_token_ms", &labels, ms as u64);
        }
        if let Some(ms) = rec.duration_ms() {
            m.record("gen_ai.server.request.duration_ms", &labels, ms as u64);
        }
    }

    /// Answers locally with the provider's error shape.
    fn reply(&mut self, status: u16, body: &[u8], rule: &str) {
        self.replied = true;
        if let Some(rec) = &mut self.record {
            rec.status = Some(status);
        }
        self.send_http_response(
            u32::from(status),
            vec![
                ("content-type", "application/json"),
                ("x-tollgate-rule", rule),
            ],
            Some(body),
        );
    }

    /// Rejects an unanalysable request when the operator configured fail-closed.
    fn fail_closed(&mut self, status: u16, reason: &'static str) -> Action {
        let provider = self
            .route
            .as_ref()
            .map_or(tollgate_engine::provider::Provider::Openai, |r| r.provider);
        let rule = if reason == "too_large" {
            "unanalysed.too_large"
        } else {
            "unanalysed.malformed"
        };
        if let Some(rec) = &mut self.record {
            rec.rejected_unanalysed(reason, rule);
        }
        let body = tollgate_engine::policy::block_body(provider, status, rule, "unanalysed");
        self.reply(status, &body, rule);
        Action::Pause
    }

    fn analyse_request(&mut self, body: &[u8]) -> Action {
        let Some(route) = self.route.clone() else {
            return Action::Continue;
        };
        if let Some(rec) = &mut self.record {
            rec.request_bytes = body.len() as u64;
        }
        match self.engine.analyze_request(&route, body) {
            Ok(analysis) => {
                if let Some(rec) = &mut self.record {
                    rec.request(&analysis);
                }
                if let Some(block) = &analysis.block {
                    let (status, body, rule) =
                        (block.status, block.body.clone(), block.rule_id.clone());
                    log::info!("tollgate[{}]: blocked by {rule}", self.id);
                    self.analysis = Some(analysis);
                    self.reply(status, &body, &rule);
                    return Action::Pause;
                }
                if let Some(new_body) = &analysis.rewritten_body {
                    self.set_http_request_body(0, body.len(), new_body);
                    self.set_http_request_header(
                        "content-length",
                        Some(&new_body.len().to_string()),
                    );
                }
                for (name, value) in analysis.tag_headers() {
                    self.set_http_request_header(name, Some(&value));
                }
                self.analysis = Some(analysis);
                Action::Continue
            }
            Err(EngineError::TooLarge { .. }) => self.too_large(),
            Err(e) => {
                log::debug!("tollgate[{}]: request not analysed: {e}", self.id);
                self.unanalysed("malformed");
                if self.engine.fail_closed() {
                    return self.fail_closed(400, "malformed");
                }
                Action::Continue
            }
        }
    }

    fn too_large(&mut self) -> Action {
        self.unanalysed("too_large");
        if self.engine.fail_closed() {
            return self.fail_closed(413, "too_large");
        }
        Action::Continue
    }

    /// Lets a response too large to analyse through, keeping its last bytes (where providers
    /// put the usage object) until it ends.
    fn follow_tail(
        &mut self,
        mut tail: Vec<u8>,
        total: u64,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let start = body_size.saturating_sub(TAIL_BYTES);
        let chunk = self
            .get_http_response_body(start, body_size - start)
            .unwrap_or_default();
        keep_tail(&mut tail, &chunk);
        let total = total.saturating_add(body_size as u64);
        if end_of_stream {
            self.tail_done(&tail, total);
        } else {
            self.response = ResponseMode::Tail { tail, total };
        }
        Action::Continue
    }

    /// Takes in the end of a response too large to analyse.
    fn tail_done(&mut self, tail: &[u8], total: u64) {
        let Some(analysis) = &self.analysis else {
            return;
        };
        let (usage, cost) = self.engine.usage_from_tail(analysis, tail, total);
        if let Some(rec) = &mut self.record {
            rec.response_unanalysed = Some("too_large");
            rec.usage = Some(usage);
            rec.cost_micro_usd = cost;
            rec.response_bytes = total;
        }
        log::debug!(
            "tollgate[{}]: response of {total} bytes not analysed",
            self.id
        );
        self.finish_record();
    }

    /// Takes in the end of a streamed response (complete, or cut short).
    fn stream_done(&mut self, summary: StreamSummary) {
        log::debug!(
            "tollgate[{}]: stream done: {} in / {} out tokens, estimated={}",
            self.id,
            summary.usage.input_tokens,
            summary.usage.output_tokens,
            summary.usage.estimated
        );
        if let Some(rec) = &mut self.record {
            rec.stream_summary(summary);
        }
    }
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // one host call for all headers: each call costs more than the lookups
        let headers = self.get_http_request_headers();
        let path = header(&headers, ":path").unwrap_or_default();
        self.route = self.engine.route(header(&headers, ":authority"), path);
        let Some(route) = self.route.clone() else {
            return Action::Continue;
        };
        if header(&headers, ":method").is_some_and(|m| !m.eq_ignore_ascii_case("POST")) {
            self.route = None;
            return Action::Continue;
        }
        let start = now_nanos(self);
        let tenant = self.engine.tenants().resolve(&HostFacts(&headers));
        let mut record = ExchangeRecord::new(&route, tenant, start);
        record.set_request_headers(
            header(&headers, "x-request-id"),
            header(&headers, "traceparent"),
            header(&headers, "user-agent"),
        );
        self.record = Some(record);
        if header(&headers, "accept-encoding").is_some() {
            // ask for an uncompressed answer: a compressed one can be neither read nor redacted
            self.set_http_request_header("accept-encoding", None);
        }
        if end_of_stream {
            self.unanalysed("empty");
            return Action::Continue;
        }
        let limit = self.engine.limits().max_request_body_bytes;
        let declared =
            header(&headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(n) = declared {
            if let Some(rec) = &mut self.record {
                rec.request_bytes = n as u64;
            }
            if n > limit {
                return self.too_large();
            }
        }
        // hold the headers until the body is analysed: it may be replaced, or tags added
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.route.is_none() || self.is_unanalysed() || self.analysis.is_some() || self.replied {
            return Action::Continue;
        }
        if body_size > self.engine.limits().max_request_body_bytes {
            return self.too_large();
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.analyse_request(&body)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.record.is_none() || self.replied {
            return Action::Continue;
        }
        let now = now_nanos(self);
        let headers = self.get_http_response_headers();
        let status = header(&headers, ":status").and_then(|s| s.parse::<u16>().ok());
        if let Some(rec) = &mut self.record {
            rec.response_headers(status, now);
        }
        if end_of_stream {
            self.finish_record();
            return Action::Continue;
        }
        if self.analysis.is_none() {
            // the request was not analysed: usage and output rules still apply to the answer
            match &self.route {
                Some(route) => self.analysis = Some(RequestAnalysis::unanalysed(route)),
                None => return Action::Continue,
            }
        }
        let Some(analysis) = &self.analysis else {
            return Action::Continue;
        };
        if header(&headers, "content-encoding")
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            // compressed despite the request (the filter removed accept-encoding): unreadable
            if let Some(rec) = &mut self.record {
                rec.response_unanalysed = Some("encoded");
            }
            return Action::Continue;
        }
        let content_type = header(&headers, "content-type").unwrap_or_default();
        let sse = content_type
            .to_ascii_lowercase()
            .contains("text/event-stream");
        if sse || analysis.stream {
            let stream = ResponseStream::new(&self.engine, analysis, content_type);
            let rewrites = stream.rewrites();
            self.response = ResponseMode::Streamed(Box::new(stream));
            if rewrites {
                self.set_http_response_header("content-length", None);
            }
        } else if header(&headers, "content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .is_some_and(|n| n > self.engine.limits().max_response_body_bytes)
        {
            // declared too large to hold: never buffered (Envoy would fail a held body that
            // outgrows its buffer, and one read can bring megabytes); usage from its tail
            self.response = ResponseMode::Tail {
                tail: Vec::new(),
                total: 0,
            };
        } else {
            // the body may be replaced once analysed; its length is not known yet
            self.response = ResponseMode::Buffered;
            self.set_http_response_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match std::mem::replace(&mut self.response, ResponseMode::Pass) {
            ResponseMode::Pass => Action::Continue,
            ResponseMode::Streamed(mut stream) => {
                let chunk = self
                    .get_http_response_body(0, body_size)
                    .unwrap_or_default();
                let fed = stream.feed(&self.engine, &chunk);
                if fed.first_text {
                    let now = now_nanos(self);
                    if let Some(rec) = &mut self.record {
                        rec.timing.first_token.get_or_insert(now);
                    }
                }
                if let Some(rec) = &mut self.record {
                    rec.response_bytes = rec.response_bytes.saturating_add(body_size as u64);
                }
                let mut out = match fed.emit {
                    Emit::Same => None,
                    Emit::Bytes(bytes) => Some(bytes),
                };
                if end_of_stream {
                    let (tail, summary) = stream.finish(&self.engine, true);
                    self.stream_done(summary);
                    if !tail.is_empty() {
                        let mut bytes = out.unwrap_or_else(|| chunk.clone());
                        bytes.extend_from_slice(&tail);
                        out = Some(bytes);
                    }
                } else {
                    self.response = ResponseMode::Streamed(stream);
                }
                if let Some(bytes) = out {
                    self.set_http_response_body(0, body_size, &bytes);
                }
                if end_of_stream {
                    self.finish_record();
                }
                Action::Continue
            }
            ResponseMode::Tail { tail, total } => {
                self.follow_tail(tail, total, body_size, end_of_stream)
            }
            ResponseMode::Buffered => {
                if body_size > self.engine.limits().max_response_body_bytes {
                    // too large to hold: let it go (what was held too), keep its end for usage
                    return self.follow_tail(Vec::new(), 0, body_size, end_of_stream);
                }
                if !end_of_stream {
                    self.response = ResponseMode::Buffered;
                    return Action::Pause;
                }
                if let Some(rec) = &mut self.record {
                    rec.response_bytes = body_size as u64;
                }
                let Some(analysis) = &self.analysis else {
                    return Action::Continue;
                };
                let body = self
                    .get_http_response_body(0, body_size)
                    .unwrap_or_default();
                match self.engine.analyze_response(analysis, &body) {
                    Ok(result) => {
                        if let Some(new_body) = &result.rewritten_body {
                            self.set_http_response_body(0, body_size, new_body);
                        }
                        if let Some(rec) = &mut self.record {
                            rec.response(result);
                        }
                    }
                    Err(e) => {
                        log::debug!("tollgate[{}]: response not analysed: {e}", self.id);
                        if let Some(rec) = &mut self.record {
                            rec.response_unanalysed = Some("malformed");
                        }
                    }
                }
                self.finish_record();
                Action::Continue
            }
        }
    }

    fn on_log(&mut self) {
        // a stream still open here was cut short (client gone, upstream failed): estimate
        if let ResponseMode::Streamed(mut stream) =
            std::mem::replace(&mut self.response, ResponseMode::Pass)
        {
            let (_, summary) = stream.finish(&self.engine, false);
            self.stream_done(summary);
        }
        let code = int_property(&["response", "code"]).and_then(|c| u16::try_from(c).ok());
        if let Some(rec) = &mut self.record {
            rec.status = rec.status.or(code);
        }
        self.finish_record();
        self.record_metrics();
        if let (Some(f), Some(rec)) = (&self.forwarder, &self.record) {
            f.queue
                .borrow_mut()
                .push(rec.to_trace_summary(&f.node, &f.envoy_cluster));
        }
    }
}
