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
//! - [`metrics`]: Envoy counters with labels.

pub mod metrics;

use metrics::Metrics;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use tollgate_engine::{
    Decision, Emit, Engine, EngineError, Finding, RequestAnalysis, ResponseStream, RouteMatch,
    Usage,
};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { engine: None, metrics: Rc::new(Metrics::default()) }) });
}}

/// The root context: holds the compiled engine.
pub struct Root {
    engine: Option<Rc<Engine>>,
    metrics: Rc<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match Engine::from_json(&config) {
            Ok(engine) => {
                log::info!(
                    "tollgate: configuration loaded ({} rules, {} priced models)",
                    engine.detectors().rules().len(),
                    engine.prices().len()
                );
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
        Some(Box::new(Exchange::new(
            context_id,
            engine,
            self.metrics.clone(),
        )))
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
}

/// One request/response exchange on a worker.
pub struct Exchange {
    id: u32,
    engine: Rc<Engine>,
    metrics: Rc<Metrics>,
    /// Usage, cost and model of the response, once known.
    usage: Option<(Usage, Option<u64>, Option<String>)>,
    /// Findings on the response side.
    response_findings: Vec<Finding>,
    /// Strongest response-side decision.
    response_decision: Decision,
    route: Option<RouteMatch>,
    analysis: Option<RequestAnalysis>,
    /// Why the request body was not analysed, when it was not.
    unanalysed: Option<&'static str>,
    response: ResponseMode,
    replied: bool,
}

impl Exchange {
    fn new(id: u32, engine: Rc<Engine>, metrics: Rc<Metrics>) -> Self {
        Exchange {
            id,
            engine,
            metrics,
            usage: None,
            response_findings: Vec::new(),
            response_decision: Decision::Allow,
            route: None,
            analysis: None,
            unanalysed: None,
            response: ResponseMode::Pass,
            replied: false,
        }
    }

    /// Records the exchange in Envoy's metrics (once, at the end).
    fn record_metrics(&self) {
        let Some(route) = &self.route else { return };
        let provider = route.provider.as_str();
        let model = self
            .usage
            .as_ref()
            .and_then(|u| u.2.clone())
            .or_else(|| self.analysis.as_ref().and_then(|a| a.model.clone()))
            .unwrap_or_else(|| "unknown".to_string());
        let request_decision = self.analysis.as_ref().map_or(Decision::Allow, |a| {
            if a.enforced {
                a.decision
            } else {
                Decision::Log
            }
        });
        let decision = request_decision.max(self.response_decision);
        let outcome = match (self.unanalysed, decision) {
            (Some(_), _) => "unanalysed",
            (None, Decision::Block) => "blocked",
            (None, Decision::Redact) => "redacted",
            (None, Decision::Tag) => "tagged",
            _ => "allowed",
        };
        let m = &self.metrics;
        m.add(
            "tollgate.requests",
            &[
                ("provider", provider),
                ("model", &model),
                ("outcome", outcome),
            ],
            1,
        );
        if let Some(reason) = self.unanalysed {
            m.add("tollgate.unanalysed", &[("reason", reason)], 1);
        }
        let request_findings = self.analysis.iter().flat_map(|a| a.findings.iter());
        for f in request_findings.chain(self.response_findings.iter()) {
            m.add(
                "tollgate.findings",
                &[("category", &f.category), ("action", f.action.as_str())],
                1,
            );
        }
        if let Some((usage, cost, _)) = &self.usage {
            let labels = [("provider", provider), ("model", model.as_str())];
            m.add("gen_ai.usage.input_tokens", &labels, usage.input_tokens);
            m.add("gen_ai.usage.output_tokens", &labels, usage.output_tokens);
            if usage.estimated {
                m.add("tollgate.usage_estimated", &labels, 1);
            }
            if let Some(cost) = cost {
                m.add("tollgate.cost_micro_usd", &labels, *cost);
            }
        }
    }

    /// Answers locally with the provider's error shape.
    fn reply(&mut self, status: u16, body: &[u8], rule: &str) {
        self.replied = true;
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
        let body = tollgate_engine::policy::block_body(provider, status, reason, "unanalysed");
        self.reply(status, &body, reason);
        Action::Pause
    }

    fn analyse_request(&mut self, body: &[u8]) -> Action {
        let Some(route) = self.route.clone() else {
            return Action::Continue;
        };
        match self.engine.analyze_request(&route, body) {
            Ok(analysis) => {
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
                self.unanalysed = Some("malformed");
                if self.engine.fail_closed() {
                    return self.fail_closed(400, "unanalysed.malformed");
                }
                Action::Continue
            }
        }
    }

    fn too_large(&mut self) -> Action {
        self.unanalysed = Some("too_large");
        if self.engine.fail_closed() {
            return self.fail_closed(413, "unanalysed.too_large");
        }
        Action::Continue
    }
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let authority = self.get_http_request_header(":authority");
        self.route = self.engine.route(authority.as_deref(), &path);
        if self.route.is_none() || end_of_stream {
            return Action::Continue;
        }
        if self
            .get_http_request_header(":method")
            .is_some_and(|m| !m.eq_ignore_ascii_case("POST"))
        {
            self.route = None;
            return Action::Continue;
        }
        let limit = self.engine.limits().max_request_body_bytes;
        let declared = self
            .get_http_request_header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return self.too_large();
        }
        // hold the headers until the body is analysed: it may be replaced, or tags added
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.route.is_none()
            || self.unanalysed.is_some()
            || self.analysis.is_some()
            || self.replied
        {
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
        let Some(analysis) = &self.analysis else {
            return Action::Continue;
        };
        if self.replied || end_of_stream {
            return Action::Continue;
        }
        let content_type = self
            .get_http_response_header("content-type")
            .unwrap_or_default();
        let sse = content_type
            .to_ascii_lowercase()
            .contains("text/event-stream");
        if sse || analysis.stream {
            let stream = ResponseStream::new(&self.engine, analysis, &content_type);
            if stream.rewrites() {
                self.set_http_response_header("content-length", None);
            }
            self.response = ResponseMode::Streamed(Box::new(stream));
        } else {
            // the body may be replaced once analysed; its length is not known yet
            self.set_http_response_header("content-length", None);
            self.response = ResponseMode::Buffered;
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
                let mut out = match stream.feed(&self.engine, &chunk).emit {
                    Emit::Same => None,
                    Emit::Bytes(bytes) => Some(bytes),
                };
                if end_of_stream {
                    let (tail, summary) = stream.finish(&self.engine, true);
                    self.usage =
                        Some((summary.usage, summary.cost_micro_usd, summary.model.clone()));
                    self.response_decision = summary.decision;
                    self.response_findings = summary.findings.clone();
                    log::debug!(
                        "tollgate[{}]: stream done: {} in / {} out tokens, estimated={}",
                        self.id,
                        summary.usage.input_tokens,
                        summary.usage.output_tokens,
                        summary.usage.estimated
                    );
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
                Action::Continue
            }
            ResponseMode::Buffered => {
                if !end_of_stream {
                    if body_size > self.engine.limits().max_response_body_bytes {
                        return Action::Continue;
                    }
                    self.response = ResponseMode::Buffered;
                    return Action::Pause;
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
                        self.usage =
                            Some((result.usage, result.cost_micro_usd, result.model.clone()));
                        self.response_decision = if result.enforced {
                            result.decision
                        } else {
                            Decision::Log
                        };
                        self.response_findings = result.findings;
                    }
                    Err(e) => log::debug!("tollgate[{}]: response not analysed: {e}", self.id),
                }
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
            self.usage = Some((summary.usage, summary.cost_micro_usd, summary.model.clone()));
            self.response_findings = summary.findings;
        }
        self.record_metrics();
    }
}
