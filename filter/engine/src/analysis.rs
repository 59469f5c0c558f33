//! The engine: compiled config plus the three analyses the shell calls — a request body, a whole
//! response body, and (in [`crate::stream`]) a response stream. Each analysis is a pure function
//! of the config and the bytes: it returns findings, a decision, and the bytes to send instead
//! when enforcement rewrites or replaces the body. Nothing here blocks, logs or does I/O.

use crate::config::RawConfig;
use crate::detect::output::PromptFingerprint;
use crate::detect::{DetectorSettings, Detectors, Hit, RuleKind, ScanSet, Severity};
use crate::error::EngineError;
use crate::json_doc::{self, JsonNode};
use crate::json_edit::{self, Splice};
use crate::normalize::Normalizer;
use crate::policy::{block_body, risk_score, Action, Decision, Policy, Redactor};
use crate::price::{parse_usd_micro, Price, PriceTable};
use crate::provider::{self, Operation, ParsedRequest, Provider, Role, Segment};
use crate::scan_cache::ScanCache;
use crate::tenant::TenantResolver;
use crate::tenant_limits::TenantLimits;
use crate::usage::{estimate_tokens, Usage};
use serde::Serialize;
use serde_json::Value;
use std::ops::Range;
use std::sync::Arc;

/// A configured route.
#[derive(Debug, Clone)]
struct Route {
    name: Arc<str>,
    prefix: String,
    host: Option<String>,
    provider: Option<Provider>,
    operation: Option<Operation>,
}

/// The route a request took, with its provider and operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub name: Arc<str>,
    pub provider: Provider,
    pub operation: Operation,
    /// Model named by the path (Gemini, Azure deployment).
    pub path_model: Option<String>,
}

/// Which side of the call a finding is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Request,
    Response,
}

/// One finding, as reported: never the matched text, only where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule_id: Arc<str>,
    pub category: Arc<str>,
    pub severity: Severity,
    /// The rule's weight in the risk score (0..1].
    pub weight: f32,
    /// The action policy assigned (enforced unless shadow mode).
    pub action: Action,
    pub direction: Direction,
    pub role: Role,
    pub message_index: u32,
    /// Which of the request's text segments ([`crate::provider::ParsedRequest::segments`]) the
    /// span is in; 0 for free text and response streams. Not part of serialised findings.
    #[serde(skip)]
    pub segment: u32,
    /// Byte span in that segment's text (in a stream: in the whole output text).
    pub start: usize,
    pub end: usize,
}

/// A local reply that replaces the upstream call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockReply {
    pub status: u16,
    pub body: Vec<u8>,
    pub rule_id: Arc<str>,
}

/// Result of analysing a request body.
#[derive(Debug, Clone)]
pub struct RequestAnalysis {
    pub provider: Provider,
    pub operation: Operation,
    pub model: Option<String>,
    pub stream: bool,
    /// The client itself asked for `stream_options.include_usage`.
    pub client_include_usage: bool,
    pub findings: Vec<Finding>,
    pub risk_score: f32,
    pub decision: Decision,
    /// False in shadow mode: the decision is recorded, not applied.
    pub enforced: bool,
    /// Set when the request must be answered locally.
    pub block: Option<BlockReply>,
    /// The body to forward instead of the original (redactions, injected stream options).
    pub rewritten_body: Option<Vec<u8>>,
    /// Estimated input tokens from the text (fallback when the provider reports nothing).
    pub input_tokens_estimate: u64,
    /// Input tokens the request cannot exceed: one per byte of message text, plus framing.
    pub input_tokens_bound: u64,
    /// The most output tokens the request allows, when it sets a cap.
    pub max_output_tokens: Option<u64>,
    /// Drop OpenAI's usage-only chunk from the stream (the filter asked for it, not the client).
    pub strip_usage_chunk: bool,
    pub(crate) fingerprint: PromptFingerprint,
}

impl RequestAnalysis {
    /// An analysis for a request whose body was not analysed (too large, malformed, not JSON):
    /// no findings, nothing enforced; usage will come from the response alone.
    pub fn unanalysed(route: &RouteMatch) -> Self {
        RequestAnalysis {
            provider: route.provider,
            operation: route.operation,
            model: route.path_model.clone(),
            stream: route.operation == Operation::StreamGenerateContent,
            client_include_usage: false,
            findings: Vec::new(),
            risk_score: 0.0,
            decision: Decision::Allow,
            enforced: false,
            block: None,
            rewritten_body: None,
            input_tokens_estimate: 0,
            input_tokens_bound: 0,
            max_output_tokens: None,
            strip_usage_chunk: false,
            fingerprint: PromptFingerprint::default(),
        }
    }

    /// Headers for the upstream when the decision is at least `tag`: the risk score and the ids
    /// of the rules found.
    pub fn tag_headers(&self) -> Vec<(&'static str, String)> {
        if self.decision < Decision::Tag || self.findings.is_empty() {
            return Vec::new();
        }
        let mut ids: Vec<&str> = self.findings.iter().map(|f| &*f.rule_id).collect();
        ids.sort_unstable();
        ids.dedup();
        vec![
            ("x-tollgate-risk", format!("{:.3}", self.risk_score)),
            ("x-tollgate-findings", ids.join(",")),
        ]
    }
}

/// Result of analysing a whole response body.
#[derive(Debug, Clone)]
pub struct ResponseAnalysis {
    pub model: Option<String>,
    pub usage: Usage,
    /// Micro-USD; `None` when the model has no known price.
    pub cost_micro_usd: Option<u64>,
    pub findings: Vec<Finding>,
    pub decision: Decision,
    pub enforced: bool,
    /// Replacement body (redacted output, or the block error body).
    pub rewritten_body: Option<Vec<u8>>,
    pub blocked_by: Option<Arc<str>>,
}

/// Request-side scanning switches.
#[derive(Debug, Clone)]
struct Families {
    injection: bool,
    injection_roles: Vec<Role>,
    pii: bool,
    pii_roles: Vec<Role>,
    secrets: bool,
    secret_roles: Vec<Role>,
}

/// Response-side switches.
#[derive(Debug, Clone)]
pub(crate) struct OutputRules {
    pub enabled: bool,
    pub set: ScanSet,
    pub canaries: Vec<String>,
    pub overlap: f32,
}

/// Size limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_request_body_bytes: usize,
    pub max_response_body_bytes: usize,
    pub stream_holdback_bytes: usize,
    pub max_event_bytes: usize,
}

/// The compiled configuration and every analysis. Build once, share (it is `Send + Sync`).
#[derive(Debug)]
pub struct Engine {
    routes: Vec<Route>,
    pub(crate) detectors: Detectors,
    pub(crate) policy: Policy,
    prices: PriceTable,
    families: Families,
    pub(crate) output: OutputRules,
    limits: Limits,
    fail_closed: bool,
    inject_stream_usage: bool,
    tenants: TenantResolver,
    summary_filter_state: bool,
    collector: Option<crate::config::RawCollector>,
    request_hold: crate::config::RawRequestHold,
    /// SHA-256 of everything that decides what a scan finds (the detector configuration and
    /// this build's version): part of every [`ScanCache`] key.
    scan_digest: [u8; 32],
    history_cache_bytes: usize,
    tenant_limits: TenantLimits,
}

impl Engine {
    /// Parses and compiles a JSON config (empty means defaults).
    pub fn from_json(bytes: &[u8]) -> Result<Self, EngineError> {
        Engine::from_config(&RawConfig::from_json(bytes)?)
    }

    /// The engine with the default config.
    pub fn with_defaults() -> Result<Self, EngineError> {
        Engine::from_config(&RawConfig::default())
    }

    /// Compiles a parsed config.
    pub fn from_config(raw: &RawConfig) -> Result<Self, EngineError> {
        raw.validate()?;
        let d = &raw.detectors;
        let settings = DetectorSettings {
            custom_pii: d
                .pii
                .custom
                .iter()
                .map(|c| crate::detect::CustomPattern {
                    name: c.name.clone(),
                    pattern: c.pattern.clone(),
                    severity: c.severity,
                })
                .collect(),
            disabled_rules: d.disabled_rules.clone(),
            link_allowlist: d.output.link_allowlist.clone(),
            scorer: d.injection.scorer.clone(),
        };
        let detectors = Detectors::compile(&settings)?;
        let known = |id: &str| detectors.rules().iter().any(|r| &*r.id == id);
        for id in &d.disabled_rules {
            if !known(id) && !pii_or_secret_builtin(id) {
                return Err(EngineError::config(
                    format!("detectors.disabled_rules: {id}"),
                    "unknown rule id",
                ));
            }
        }
        for id in raw.policy.rules.keys() {
            if !known(id) {
                return Err(EngineError::config(
                    format!("policy.rules.{id}"),
                    "unknown rule id (see `tollgate rules`)",
                ));
            }
        }
        for cat in raw.policy.categories.keys() {
            let fits = detectors
                .rules()
                .iter()
                .any(|r| &*r.category == cat || r.category.starts_with(&format!("{cat}.")));
            if !fits {
                return Err(EngineError::config(
                    format!("policy.categories.{cat}"),
                    "unknown category",
                ));
            }
        }
        let p = &raw.policy;
        let policy = Policy::new(
            p.shadow,
            p.block_threshold,
            p.tag_threshold,
            p.categories.clone(),
            p.rules.clone(),
            p.redaction,
            p.block_status,
        );
        let mut prices = PriceTable::builtin();
        for (model, rp) in &raw.prices {
            let field = |name: &str, v: &Value| -> Result<u64, EngineError> {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
                parse_usd_micro(&text).ok_or_else(|| {
                    EngineError::config(
                        format!("prices.{model}.{name}"),
                        "expected a decimal USD amount per million tokens, like \"2.50\"",
                    )
                })
            };
            let input = field("input", &rp.input)?;
            let output = field("output", &rp.output)?;
            let price = Price {
                input,
                output,
                cached_input: rp
                    .cached_input
                    .as_ref()
                    .map(|v| field("cached_input", v))
                    .transpose()?
                    .unwrap_or(input),
                cache_write: rp
                    .cache_write
                    .as_ref()
                    .map(|v| field("cache_write", v))
                    .transpose()?
                    .unwrap_or(input),
                reasoning: rp
                    .reasoning
                    .as_ref()
                    .map(|v| field("reasoning", v))
                    .transpose()?
                    .unwrap_or(output),
            };
            prices.insert(model, price);
        }
        let route_names: Vec<&str> = if raw.routes.is_empty() {
            crate::provider::Provider::ALL
                .iter()
                .map(|p| p.as_str())
                .collect()
        } else {
            raw.routes.iter().map(|r| r.name.as_str()).collect()
        };
        let tenant_limits = TenantLimits::new(&raw.tenant_limits, &route_names)?;
        let routes = raw
            .routes
            .iter()
            .map(|r| Route {
                name: Arc::from(r.name.as_str()),
                prefix: r.path_prefix.clone(),
                host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
                provider: r.provider,
                operation: r.operation,
            })
            .collect();
        let o = &d.output;
        Ok(Engine {
            routes,
            detectors,
            policy,
            prices,
            families: Families {
                injection: d.injection.enabled,
                injection_roles: d
                    .injection
                    .roles
                    .clone()
                    .unwrap_or_else(crate::config::default_injection_roles),
                pii: d.pii.enabled,
                pii_roles: d.pii.roles.clone(),
                secrets: d.secrets.enabled,
                secret_roles: d
                    .secrets
                    .roles
                    .clone()
                    .unwrap_or_else(crate::config::all_roles),
            },
            output: OutputRules {
                enabled: o.enabled,
                set: ScanSet {
                    injection: false,
                    pii: o.enabled && o.pii,
                    secrets: o.enabled && o.secrets,
                    exfil: o.enabled && o.exfiltration,
                },
                canaries: o.canaries.clone(),
                overlap: o.system_prompt_overlap,
            },
            limits: Limits {
                max_request_body_bytes: raw.limits.max_request_body_bytes,
                max_response_body_bytes: raw.limits.max_response_body_bytes,
                stream_holdback_bytes: raw.limits.stream_holdback_bytes,
                max_event_bytes: raw.limits.max_event_bytes,
            },
            fail_closed: raw.fail_closed,
            inject_stream_usage: raw.inject_stream_usage,
            tenants: TenantResolver::new(&raw.tenant)?,
            summary_filter_state: raw.summary.filter_state,
            collector: raw.collector.clone(),
            request_hold: raw.request_hold.clone(),
            scan_digest: scan_digest(raw),
            history_cache_bytes: raw.history_cache.max_bytes,
            tenant_limits,
        })
    }

    /// The per-tenant limits (empty when none are configured).
    pub fn tenant_limits(&self) -> &TenantLimits {
        &self.tenant_limits
    }

    /// A new cache of scanned request segments, sized as configured, its digests keyed with
    /// `secret` (random, from the shell: ADR 0015).
    pub fn new_scan_cache(&self, secret: [u8; 16]) -> ScanCache {
        ScanCache::new(self.history_cache_bytes, secret)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }

    /// How requests are held while their bodies are read (ADR 0013).
    pub fn request_hold(&self) -> &crate::config::RawRequestHold {
        &self.request_hold
    }

    /// Whether OpenAI streaming chat requests get `stream_options.include_usage` added.
    pub fn injects_stream_usage(&self) -> bool {
        self.inject_stream_usage
    }

    /// The tenant rules.
    pub fn tenants(&self) -> &TenantResolver {
        &self.tenants
    }

    /// Where trace summaries go, if anywhere.
    pub fn collector(&self) -> Option<&crate::config::RawCollector> {
        self.collector.as_ref()
    }

    /// Forwarding settings for the summary queue, when a collector is configured.
    pub fn forward_settings(&self) -> Option<crate::forward::ForwardSettings> {
        self.collector
            .as_ref()
            .map(|c| crate::forward::ForwardSettings {
                batch_size: c.batch_size,
                capacity: c.queue_capacity,
                flush_interval_ns: c.flush_interval_ms.saturating_mul(1_000_000),
                initial_backoff_ns: 200_000_000,
                max_backoff_ns: 10_000_000_000,
            })
    }

    /// Whether the access-log summary goes into filter state.
    pub fn summary_in_filter_state(&self) -> bool {
        self.summary_filter_state
    }

    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Which route (if any) a request belongs to. Requests on no route are not LLM calls and are
    /// never analysed.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<RouteMatch> {
        let detected = provider::detect(path);
        if self.routes.is_empty() {
            let d = detected?;
            return Some(RouteMatch {
                name: Arc::from(d.provider.as_str()),
                provider: d.provider,
                operation: d.operation,
                path_model: d.path_model,
            });
        }
        let host = host.map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        for r in &self.routes {
            if !path.starts_with(&r.prefix) {
                continue;
            }
            if let Some(want) = &r.host {
                if host.as_deref() != Some(want.as_str()) {
                    continue;
                }
            }
            let operation = match (r.operation, &detected) {
                (Some(op), _) => op,
                (None, Some(d)) => d.operation,
                (None, None) => continue,
            };
            let provider = r
                .provider
                .or(detected.as_ref().map(|d| d.provider))
                .unwrap_or_else(|| operation.default_provider());
            return Some(RouteMatch {
                name: r.name.clone(),
                provider,
                operation,
                path_model: detected.and_then(|d| d.path_model),
            });
        }
        None
    }

    fn request_set(&self, role: Role) -> ScanSet {
        let f = &self.families;
        ScanSet {
            injection: f.injection && f.injection_roles.contains(&role),
            pii: f.pii && f.pii_roles.contains(&role),
            secrets: f.secrets && f.secret_roles.contains(&role),
            exfil: false,
        }
    }

    /// Analyses a request body. `Err` means the body could not be read as the provider's JSON;
    /// the caller fails open (or closed, per [`Engine::fail_closed`]).
    pub fn analyze_request(
        &self,
        route: &RouteMatch,
        body: &[u8],
    ) -> Result<RequestAnalysis, EngineError> {
        self.analyze_request_within(route, body, BodyLength::Free)
    }

    /// [`Engine::analyze_request`] for a body whose rewrite must keep `length` (ADR 0013): with
    /// [`BodyLength::Keep`] a rewritten body has exactly the original's length.
    pub fn analyze_request_within(
        &self,
        route: &RouteMatch,
        body: &[u8],
        length: BodyLength,
    ) -> Result<RequestAnalysis, EngineError> {
        self.analyze_request_cached(route, body, length, &mut ScanCache::off())
    }

    /// [`Engine::analyze_request_within`], looking each long segment up in `cache` before
    /// scanning it and storing what a scan found (ADR 0015). The analysis is exactly the one
    /// without a cache.
    pub fn analyze_request_cached(
        &self,
        route: &RouteMatch,
        body: &[u8],
        length: BodyLength,
        cache: &mut ScanCache,
    ) -> Result<RequestAnalysis, EngineError> {
        if body.len() > self.limits.max_request_body_bytes {
            return Err(EngineError::TooLarge {
                size: body.len(),
                limit: self.limits.max_request_body_bytes,
            });
        }
        let doc = json_doc::parse(body).map_err(|e| EngineError::malformed("request", e))?;
        if !matches!(doc.root, JsonNode::Object { .. }) {
            return Err(EngineError::malformed(
                "request",
                "top level is not a JSON object",
            ));
        }
        let parsed = provider::parse_request_value(route.operation, &doc.root);
        // spans are exact unless a key repeats (then the locating pass decides, ADR 0016)
        let by_span = !doc.duplicate_keys;
        drop(doc);
        let mut normalizer = Normalizer::new();
        let mut hits: Vec<(usize, Hit)> = Vec::new();
        let mut scratch = Vec::new();
        let mut text_tokens = 0u64;
        for (si, seg) in parsed.segments.iter().enumerate() {
            let set = self.request_set(seg.role);
            let key = cache
                .worth_caching(seg.text.len())
                .then(|| cache.key(&self.scan_digest, set, &seg.text));
            if let Some((found, tokens)) = key.as_ref().and_then(|k| cache.get(k)) {
                hits.extend(found.iter().map(|h| (si, *h)));
                text_tokens += tokens;
                continue;
            }
            let tokens = estimate_tokens(&seg.text);
            text_tokens += tokens;
            scratch.clear();
            if set != ScanSet::NONE {
                self.detectors
                    .scan(&seg.text, set, &mut normalizer, &mut scratch);
            }
            hits.extend(scratch.iter().map(|h| (si, *h)));
            if let Some(key) = key {
                cache.insert(key, &scratch, tokens);
            }
        }
        let (findings, strongest) = self.findings(&hits, &parsed.segments, Direction::Request);
        let risk = risk_score(
            hits.iter()
                .filter_map(|(_, h)| self.detectors.rule(h.rule))
                .filter(|r| r.kind == RuleKind::Injection)
                .map(|r| (&*r.id, r.weight)),
        );
        let decision = self.policy.decide(strongest, risk);
        let enforced = !self.policy.shadow;
        let mut analysis = RequestAnalysis {
            provider: route.provider,
            operation: route.operation,
            model: parsed.model.clone().or_else(|| route.path_model.clone()),
            stream: parsed.stream,
            client_include_usage: parsed.include_usage,
            findings,
            risk_score: risk,
            decision,
            enforced,
            block: None,
            rewritten_body: None,
            input_tokens_estimate: estimate_input(&parsed, text_tokens),
            input_tokens_bound: estimate_input(
                &parsed,
                parsed.segments.iter().map(|s| s.text.len() as u64).sum(),
            ),
            max_output_tokens: parsed.max_output_tokens,
            strip_usage_chunk: false,
            fingerprint: if self.output.enabled && self.output.overlap > 0.0 {
                PromptFingerprint::new(&parsed.system_prompt())
            } else {
                PromptFingerprint::default()
            },
        };
        if enforced && decision == Decision::Block {
            analysis.block = Some(self.block_reply(route, &analysis.findings));
            return Ok(analysis);
        }
        let redact = enforced && decision >= Decision::Redact;
        let inject = self.inject_stream_usage
            && route.operation == Operation::ChatCompletions
            && parsed.stream
            && !parsed.include_usage;
        if !redact && !inject {
            return Ok(analysis);
        }
        let texts = if redact {
            self.redacted_texts(&parsed.segments, &hits, length == BodyLength::Keep)
        } else {
            Vec::new()
        };
        match splice_request(body, &parsed.segments, &texts, inject, length, by_span) {
            Some((new_body, injected)) => {
                analysis.strip_usage_chunk = injected;
                if new_body != body {
                    analysis.rewritten_body = Some(new_body);
                }
            }
            None if length == BodyLength::Keep => {
                // the redaction cannot be written within the length the upstream expects: the
                // text must not reach it, so the request is answered here (ADR 0013)
                let redacting: Vec<Finding> = analysis
                    .findings
                    .iter()
                    .filter(|f| f.action == Action::Redact)
                    .cloned()
                    .collect();
                analysis.block = Some(self.block_reply(route, &redacting));
            }
            None => {
                // not locatable in the original bytes (rare: a repeated key on the way):
                // re-serialise the document as serde_json reads it
                let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
                    return Ok(analysis);
                };
                for (si, text) in texts {
                    if let Some(slot) = parsed
                        .segments
                        .get(si)
                        .and_then(|seg| value.pointer_mut(&seg.pointer))
                    {
                        *slot = Value::String(text);
                    }
                }
                analysis.rewritten_body = serde_json::to_vec(&value).ok();
            }
        }
        Ok(analysis)
    }

    /// The local reply for a request blocked over `findings`.
    pub(crate) fn block_reply(&self, route: &RouteMatch, findings: &[Finding]) -> BlockReply {
        let (rule_id, category) = self.blocking_rule(findings);
        BlockReply {
            status: self.policy.block_status,
            body: block_body(
                route.provider,
                self.policy.block_status,
                &rule_id,
                &category,
            ),
            rule_id,
        }
    }

    /// The rule named in a block: the strongest blocking finding, or the highest-weight
    /// injection rule when the risk score alone crossed the threshold.
    fn blocking_rule(&self, findings: &[Finding]) -> (Arc<str>, Arc<str>) {
        let pick = strongest(findings.iter().filter(|f| f.action == Action::Block))
            .or_else(|| strongest(findings.iter()));
        match pick {
            Some(f) => (f.rule_id.clone(), f.category.clone()),
            None => (Arc::from("policy.risk-score"), Arc::from("injection")),
        }
    }

    fn findings(
        &self,
        hits: &[(usize, Hit)],
        segments: &[Segment],
        direction: Direction,
    ) -> (Vec<Finding>, Option<Action>) {
        let mut strongest: Option<Action> = None;
        let mut out = Vec::with_capacity(hits.len());
        for (si, h) in hits {
            let (Some(rule), Some(seg)) = (self.detectors.rule(h.rule), segments.get(*si)) else {
                continue;
            };
            let action = self.policy.action_for(rule);
            strongest = strongest.max(Some(action));
            out.push(Finding {
                rule_id: rule.id.clone(),
                category: rule.category.clone(),
                severity: rule.severity,
                weight: rule.weight,
                action,
                direction,
                role: seg.role,
                message_index: seg.message_index,
                segment: u32::try_from(*si).unwrap_or(u32::MAX),
                start: h.start,
                end: h.end,
            });
        }
        (out, strongest)
    }

    /// The new text of every segment with a redacted span: `(segment index, text)`. With
    /// `fit`, each replacement is no longer than the value it replaces (ADR 0013).
    fn redacted_texts(
        &self,
        segments: &[Segment],
        hits: &[(usize, Hit)],
        fit: bool,
    ) -> Vec<(usize, String)> {
        let mut redactor = if fit {
            Redactor::fitting(self.policy.redaction)
        } else {
            Redactor::new(self.policy.redaction)
        };
        let mut out = Vec::new();
        // hits grouped by segment once (they arrive in segment order; sorting keeps it linear
        // in practice and correct otherwise)
        let mut ordered: Vec<&(usize, Hit)> = hits.iter().collect();
        ordered.sort_by_key(|(si, _)| *si);
        for group in ordered.chunk_by(|a, b| a.0 == b.0) {
            let Some((si, seg)) = group
                .first()
                .and_then(|(si, _)| segments.get(*si).map(|seg| (*si, seg)))
            else {
                continue;
            };
            let mut spans: Vec<(usize, usize, &str)> = group
                .iter()
                .filter_map(|(_, h)| self.detectors.rule(h.rule).map(|r| (h, r)))
                .filter(|(_, r)| self.policy.action_for(r) == Action::Redact)
                .map(|(h, r)| (h.start, h.end, &*r.label))
                .collect();
            if spans.is_empty() {
                continue;
            }
            out.push((si, redactor.apply(&seg.text, &mut spans)));
        }
        out
    }

    /// Replaces redacted spans in the JSON strings they came from. Returns whether anything
    /// changed.
    fn redact_value(&self, value: &mut Value, segments: &[Segment], hits: &[(usize, Hit)]) -> bool {
        let mut changed = false;
        for (si, text) in self.redacted_texts(segments, hits, false) {
            if let Some(slot) = segments
                .get(si)
                .and_then(|seg| value.pointer_mut(&seg.pointer))
            {
                *slot = Value::String(text);
                changed = true;
            }
        }
        changed
    }

    /// Analyses a whole (non-streamed) response body for the request `req`.
    pub fn analyze_response(
        &self,
        req: &RequestAnalysis,
        body: &[u8],
    ) -> Result<ResponseAnalysis, EngineError> {
        if body.len() > self.limits.max_response_body_bytes {
            return Err(EngineError::TooLarge {
                size: body.len(),
                limit: self.limits.max_response_body_bytes,
            });
        }
        let mut value: Value =
            serde_json::from_slice(body).map_err(|e| EngineError::malformed("response", e))?;
        let parsed = provider::parse_response_value(req.operation, &value);
        let model = parsed.model.clone().or_else(|| req.model.clone());
        let usage = match parsed.usage {
            Some(u) => u,
            None => Usage {
                input_tokens: req.input_tokens_estimate,
                output_tokens: parsed
                    .segments
                    .iter()
                    .map(|s| estimate_tokens(&s.text))
                    .sum(),
                estimated: true,
                ..Usage::default()
            },
        };
        let cost = model.as_deref().and_then(|m| self.prices.cost(m, &usage));
        let mut hits: Vec<(usize, Hit)> = Vec::new();
        if self.output.enabled {
            let mut normalizer = Normalizer::new();
            let mut scratch = Vec::new();
            for (si, seg) in parsed.segments.iter().enumerate() {
                scratch.clear();
                self.detectors
                    .scan(&seg.text, self.output.set, &mut normalizer, &mut scratch);
                self.leak_hits(&seg.text, &req.fingerprint, &mut scratch);
                hits.extend(scratch.iter().map(|h| (si, *h)));
            }
        }
        let (findings, strongest) = self.findings(&hits, &parsed.segments, Direction::Response);
        let decision = self.policy.decide(strongest, 0.0);
        let enforced = !self.policy.shadow;
        let mut analysis = ResponseAnalysis {
            model,
            usage,
            cost_micro_usd: cost,
            findings,
            decision,
            enforced,
            rewritten_body: None,
            blocked_by: None,
        };
        if enforced && decision == Decision::Block {
            let (rule_id, category) = self.blocking_rule(&analysis.findings);
            analysis.rewritten_body = Some(block_body(
                req.provider,
                self.policy.block_status,
                &rule_id,
                &category,
            ));
            analysis.blocked_by = Some(rule_id);
        } else if enforced
            && decision == Decision::Redact
            && self.redact_value(&mut value, &parsed.segments, &hits)
        {
            analysis.rewritten_body = serde_json::to_vec(&value).ok();
        }
        Ok(analysis)
    }

    /// Usage of a non-streamed response too large to analyse, from the last bytes of its body
    /// (`tail`; providers serialise `usage` / `usageMetadata` at the end). When the tail holds no
    /// usage object, input is the request's estimate and output is estimated from `total_bytes`;
    /// either way nothing is rewritten or scanned.
    pub fn usage_from_tail(
        &self,
        req: &RequestAnalysis,
        tail: &[u8],
        total_bytes: u64,
    ) -> (Usage, Option<u64>) {
        let reported = ["\"usageMetadata\"", "\"usage\""].iter().find_map(|key| {
            let at = memchr::memmem::rfind(tail, key.as_bytes())?;
            let rest = tail.get(at + key.len()..)?;
            let start = rest
                .iter()
                .position(|b| !b.is_ascii_whitespace() && *b != b':')?;
            let object: Value = serde_json::Deserializer::from_slice(rest.get(start..)?)
                .into_iter::<Value>()
                .next()?
                .ok()?;
            let mut wrapper = serde_json::Map::new();
            wrapper.insert(key.trim_matches('"').to_string(), object);
            provider::parse_response_value(req.operation, &Value::Object(wrapper)).usage
        });
        let usage = reported.unwrap_or(Usage {
            input_tokens: req.input_tokens_estimate,
            // about four bytes of JSON per output token: a rough bound, flagged as an estimate
            output_tokens: total_bytes / 4,
            estimated: true,
            ..Usage::default()
        });
        let cost = req
            .model
            .as_deref()
            .and_then(|m| self.prices.cost(m, &usage));
        (usage, cost)
    }

    /// Canary and system-prompt overlap hits in an output text.
    pub(crate) fn leak_hits(
        &self,
        text: &str,
        fingerprint: &PromptFingerprint,
        out: &mut Vec<Hit>,
    ) {
        for canary in &self.output.canaries {
            let mut from = 0;
            while let Some(pos) = text.get(from..).and_then(|t| t.find(canary.as_str())) {
                let start = from + pos;
                out.push(Hit {
                    rule: self.detectors.leak_canary,
                    start,
                    end: start + canary.len(),
                });
                from = start + canary.len();
            }
        }
        if !fingerprint.is_empty() {
            let (seen, span) = fingerprint.overlap(text);
            if let Some((s, e)) = span {
                if overlap_exceeds(seen, fingerprint.len(), self.output.overlap) {
                    out.push(Hit {
                        rule: self.detectors.leak_overlap,
                        start: s,
                        end: e,
                    });
                }
            }
        }
    }

    /// Scans free text as one user message (what `tollgate scan` does): findings, risk score and
    /// decision.
    pub fn scan_text(&self, text: &str) -> (Vec<Finding>, f32, Decision) {
        let seg = Segment {
            span: None,
            role: Role::User,
            message_index: 0,
            pointer: String::new(),
            text: text.to_string(),
        };
        let mut hits = Vec::new();
        self.detectors.scan(
            text,
            self.request_set(Role::User),
            &mut Normalizer::new(),
            &mut hits,
        );
        let tagged: Vec<(usize, Hit)> = hits.into_iter().map(|h| (0, h)).collect();
        let segs = [seg];
        let (findings, strongest) = self.findings(&tagged, &segs, Direction::Request);
        let risk = risk_score(
            findings
                .iter()
                .filter(|f| f.category.starts_with("injection."))
                .map(|f| (&*f.rule_id, f.weight)),
        );
        (findings, risk, self.policy.decide(strongest, risk))
    }

    /// Cost of `usage` on `model` in micro-USD, `None` when the model has no known price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.prices.cost(model, usage)
    }
}

/// The strongest finding: severity, then a rule before the learned scorer, then weight; the
/// earliest one among equals.
fn strongest<'a>(findings: impl Iterator<Item = &'a Finding>) -> Option<&'a Finding> {
    // among equals a rule, which names what it saw, goes before the learned scorer's verdict
    let rank = |f: &Finding| {
        (
            f.severity,
            !f.category.ends_with("injection.model"),
            f.weight,
        )
    };
    findings.fold(None, |best: Option<&'a Finding>, f| match best {
        Some(b) if rank(b) >= rank(f) => Some(b),
        _ => Some(f),
    })
}

/// Whether `seen` of `total` prompt n-grams reach the configured share.
pub(crate) fn overlap_exceeds(seen: usize, total: usize, share: f32) -> bool {
    if share <= 0.0 || total == 0 || seen == 0 {
        return false;
    }
    (seen as f32) >= (total as f32 * share).ceil().max(1.0)
}

fn pii_or_secret_builtin(id: &str) -> bool {
    crate::detect::pii::PII_TYPES.iter().any(|t| t.id == id)
        || crate::detect::secret_rules().iter().any(|r| r.id == id)
        || crate::detect::injection_rules().iter().any(|r| r.id == id)
}

/// Input token estimate: the text's (`text_tokens`, the sum of [`estimate_tokens`] over the
/// segments) plus a few tokens of framing per message.
fn estimate_input(parsed: &ParsedRequest, text_tokens: u64) -> u64 {
    let messages = parsed
        .segments
        .iter()
        .map(|s| s.message_index)
        .max()
        .map_or(0, |m| u64::from(m) + 1);
    text_tokens + messages * 4 + 3
}

/// What decides a scan's findings besides the text and its scan set: the detector
/// configuration and the build (its rule tables and model).
fn scan_digest(raw: &RawConfig) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(format!("{:?}", raw.detectors).as_bytes());
    h.finalize().into()
}

/// Whether a rewritten request body may change length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// The shell sets `content-length` (or the request is chunked): any length.
    Free,
    /// The upstream already has the original `content-length`: exactly that many bytes.
    Keep,
}

/// The request body with segment `texts` written in place and, with `inject`,
/// `stream_options.include_usage: true` added; the flag says whether the injection made it in
/// (under [`BodyLength::Keep`] it is dropped when it does not fit). `None` when a segment cannot
/// be located, or the redactions alone do not fit.
fn splice_request(
    body: &[u8],
    segments: &[Segment],
    texts: &[(usize, String)],
    inject: bool,
    length: BodyLength,
    by_span: bool,
) -> Option<(Vec<u8>, bool)> {
    let mut splices = Vec::with_capacity(texts.len() + 1);
    let spans: Option<Vec<Range<usize>>> = if by_span {
        texts
            .iter()
            .map(|(si, _)| segments.get(*si).and_then(|seg| seg.span.clone()))
            .collect()
    } else {
        None
    };
    let ranges = match spans {
        Some(spans) => spans,
        None => {
            let pointers: Vec<&str> = texts
                .iter()
                .filter_map(|(si, _)| segments.get(*si).map(|seg| seg.pointer.as_str()))
                .collect();
            // one pass for every redacted string (a body can hold thousands of them)
            let found = json_edit::locate_all(body, &pointers).ok()?;
            texts
                .iter()
                .map(|(si, _)| Some(found.get(&segments.get(*si)?.pointer)?.clone()))
                .collect::<Option<Vec<_>>>()?
        }
    };
    for ((_, text), range) in texts.iter().zip(ranges) {
        splices.push(Splice {
            range,
            bytes: serde_json::to_vec(text).ok()?,
        });
    }
    let keep = length == BodyLength::Keep;
    if inject {
        if let Some(s) = include_usage_splice(body) {
            let mut with = splices.clone();
            with.push(s);
            if let Ok(out) = json_edit::apply(body, &mut with, keep) {
                return Some((out, true));
            }
        }
    }
    json_edit::apply(body, &mut splices, keep)
        .ok()
        .map(|out| (out, false))
}

/// The edit that sets `stream_options.include_usage` to `true`.
fn include_usage_splice(body: &[u8]) -> Option<Splice> {
    const OPTIONS: &str = "/stream_options";
    const INCLUDE: &str = "/stream_options/include_usage";
    let found = json_edit::locate_all(body, &[OPTIONS, INCLUDE]).ok()?;
    if let Some(range) = found.get(INCLUDE) {
        return Some(Splice {
            range: range.clone(),
            bytes: b"true".to_vec(),
        });
    }
    match found.get(OPTIONS) {
        Some(range) if body.get(range.start) == Some(&b'{') => {
            json_edit::first_member(body, range.start, r#""include_usage":true"#)
        }
        Some(range) => Some(Splice {
            range: range.clone(),
            bytes: br#"{"include_usage":true}"#.to_vec(),
        }),
        None => json_edit::first_member(
            body,
            json_edit::document_start(body),
            r#""stream_options":{"include_usage":true}"#,
        ),
    }
}

/// What the engine parsed from a request, for callers that want it without analysis.
pub fn parse_request(operation: Operation, body: &[u8]) -> Result<ParsedRequest, EngineError> {
    provider::parse_request(operation, body)
}
