//! Configuration in two stages. [`RawConfig`] is exactly what an operator writes (JSON in the
//! Envoy plugin configuration, JSON or YAML for the CLI): every field documented, defaulted, and
//! unknown fields rejected. [`crate::Engine::from_config`] compiles it once — regexes built,
//! prices parsed, routes checked — into the form every request shares. Every error names the
//! field path (`policy.rules.pii.email`, `routes[1].path_prefix`).

use crate::detect::Severity;
use crate::error::EngineError;
use crate::policy::{Action, RedactionMode};
use crate::provider::{Operation, Provider, Role};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Which requests are LLM calls. Empty (the default) means: every path that looks like a
    /// known LLM API (`/v1/chat/completions`, `/v1/messages`, `...:generateContent`, ...).
    pub routes: Vec<RawRoute>,
    pub limits: RawLimits,
    pub detectors: RawDetectors,
    pub policy: RawPolicy,
    /// Extra or overriding model prices, keyed by model name (prefix match on `-`).
    pub prices: BTreeMap<String, RawPrice>,
    /// When a body cannot be analysed (malformed, too large), reject it instead of passing it.
    pub fail_closed: bool,
    /// Add `stream_options.include_usage: true` to OpenAI streaming chat requests that lack it
    /// (and drop the extra usage-only chunk from what the client receives).
    pub inject_stream_usage: bool,
    /// Who a request belongs to (default: everyone is `anonymous`).
    pub tenant: crate::tenant::RawTenant,
    /// The per-request summary written for access logs.
    pub summary: RawSummary,
    /// Where trace summaries go (absent: nowhere).
    pub collector: Option<RawCollector>,
    /// How a request is held while its body is read (docs/configuration.md, "Request hold";
    /// ADR 0013).
    pub request_hold: RawRequestHold,
    /// The cache of scanned request messages (docs/configuration.md, "History cache"; ADR 0015).
    pub history_cache: RawHistoryCache,
    /// Requests, tokens and money each tenant may use per window (docs/limits.md; ADR 0017).
    pub tenant_limits: crate::tenant_limits::RawTenantLimits,
}

/// The cache of scanned request segments (ADR 0015). Chat and agent clients resend the whole
/// conversation on every turn; a message scanned once is looked up, not scanned again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHistoryCache {
    /// Bytes the cache may hold per VM (0 turns it off; at most 256 MiB). It holds digests and
    /// finding spans, never text: about 100 bytes a message plus 12 per finding in wasm.
    pub max_bytes: usize,
}

impl Default for RawHistoryCache {
    fn default() -> Self {
        RawHistoryCache { max_bytes: 2 << 20 }
    }
}

/// What the filter holds while it reads a request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldMode {
    /// The default: headers go on at once, the body is held until its end. Works on every
    /// proxy-wasm host (Istio `WasmPlugin`, Envoy Gateway, plain Envoy without
    /// `allow_on_headers_stop_iteration`). Tags cannot become upstream headers; a rewritten body
    /// keeps the length the upstream was told.
    #[default]
    Body,
    /// Strict: headers are held too, until the body is decided, so tags become upstream headers
    /// and a rewritten body gets its own `content-length`. Needs
    /// `allow_on_headers_stop_iteration: true` (Envoy >= 1.35); a host that does not deliver the
    /// body to a paused filter is detected and the VM falls back to `body`.
    Headers,
}

/// The request hold (ADR 0013).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRequestHold {
    /// `body` (default) or `headers` (strict).
    pub mode: HoldMode,
    /// Strict mode: a request paused in its headers that has had no body callback after this
    /// long (ms) is released, and after [`crate::hold::UNANSWERED_TO_FALL_BACK`] such releases in
    /// a row the VM stops pausing headers.
    pub release_after_ms: u64,
    /// Body mode: remove `content-length` from LLM requests as their headers pass, so that a
    /// rewritten body may change length (the request then goes upstream chunked). Off by default:
    /// redactions are written to fit the original length instead.
    pub remove_content_length: bool,
}

impl Default for RawRequestHold {
    fn default() -> Self {
        RawRequestHold {
            mode: HoldMode::Body,
            release_after_ms: 1000,
            remove_content_length: false,
        }
    }
}

/// Forwarding of trace summaries to the collector over gRPC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollector {
    /// Envoy cluster of the collector (HTTP/2), e.g. `tollgate_collector`; under Istio an
    /// outbound cluster name such as `outbound|4317||tollgate-collector.tollgate.svc.cluster.local`.
    pub cluster: String,
    /// Bearer token sent in the call's metadata (`authorization`).
    #[serde(default)]
    pub token: Option<String>,
    /// Per-call timeout (ms).
    #[serde(default = "default_collector_timeout")]
    pub timeout_ms: u64,
    /// A partial batch is sent after this long (ms).
    #[serde(default = "default_flush_interval")]
    pub flush_interval_ms: u64,
    /// Most summaries per call.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Most summaries held per worker while the collector is slow or down; beyond it the oldest
    /// are dropped (and counted).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
}

fn default_collector_timeout() -> u64 {
    1000
}
fn default_flush_interval() -> u64 {
    1000
}
fn default_batch_size() -> usize {
    100
}
fn default_queue_capacity() -> usize {
    10_000
}

/// The per-request summary (see docs/configuration.md, "Access-log summary").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSummary {
    /// Write the JSON summary of each LLM call into Envoy filter state, readable in access logs
    /// as `%FILTER_STATE(wasm.tollgate.summary:PLAIN)%`.
    pub filter_state: bool,
}

impl Default for RawSummary {
    fn default() -> Self {
        RawSummary { filter_state: true }
    }
}

/// One LLM route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Name used in metrics and summaries.
    pub name: String,
    /// Path prefix this route covers (default `/`).
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Only requests with this `:authority` / `Host` (exact, case-insensitive, port ignored).
    #[serde(default)]
    pub host: Option<String>,
    /// Provider override; detected from the path when absent.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Operation override; detected from the path when absent (required for paths that do not
    /// end like a known API).
    #[serde(default)]
    pub operation: Option<Operation>,
}

fn default_prefix() -> String {
    "/".to_string()
}

/// Size limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Largest request body analysed (bytes); larger ones pass unanalysed (or 413 if fail-closed).
    pub max_request_body_bytes: usize,
    /// Largest non-streamed response body analysed (bytes). Keep it at or below Envoy's
    /// `per_connection_buffer_limit_bytes` (1 MiB by default): the filter holds the body while
    /// it analyses it, and Envoy fails a held body that outgrows its buffer.
    pub max_response_body_bytes: usize,
    /// Output text held back in streams while redaction is on, so a secret split across chunks is
    /// still caught (bytes, 16 to 16384).
    pub stream_holdback_bytes: usize,
    /// Largest single SSE event kept for parsing (bytes).
    pub max_event_bytes: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_request_body_bytes: 1 << 20,
            max_response_body_bytes: 1 << 20,
            stream_holdback_bytes: 256,
            max_event_bytes: 1 << 20,
        }
    }
}

/// Detector switches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDetectors {
    pub injection: RawInjection,
    pub pii: RawPii,
    pub secrets: RawFamily,
    pub output: RawOutput,
    /// Rule ids to switch off.
    pub disabled_rules: Vec<String>,
}

impl Default for RawDetectors {
    fn default() -> Self {
        RawDetectors {
            injection: RawInjection::default(),
            pii: RawPii::default(),
            secrets: RawFamily {
                enabled: true,
                roles: None,
            },
            output: RawOutput::default(),
            disabled_rules: Vec::new(),
        }
    }
}

/// Roles scanned for injection unless configured: what users and tools wrote.
pub fn default_injection_roles() -> Vec<Role> {
    vec![Role::User, Role::Tool]
}

/// Roles scanned for PII and secrets unless configured: all of them.
pub fn all_roles() -> Vec<Role> {
    vec![
        Role::System,
        Role::Developer,
        Role::User,
        Role::Assistant,
        Role::Tool,
    ]
}

/// A request-side detector family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFamily {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Message roles whose text is scanned; the family's default when absent.
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
}

fn yes() -> bool {
    true
}

/// Prompt-injection and jailbreak detection: the keyword rules and the learned scorer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInjection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Message roles whose text is scanned (default: user and tool).
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
    /// The learned scorer beside the rules (ADR 0014).
    #[serde(default)]
    pub scorer: RawScorer,
}

impl Default for RawInjection {
    fn default() -> Self {
        RawInjection {
            enabled: true,
            roles: None,
            scorer: RawScorer::default(),
        }
    }
}

/// What the learned injection scorer does with its verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScorerMode {
    /// Findings `pi.model.suspect` / `pi.model.attack` count like any injection rule.
    #[default]
    Enforce,
    /// The same findings under category `shadow.injection.model`: logged, never counted in the
    /// risk score, so an operator sees what the scorer would do before trusting it.
    Shadow,
    /// Not run.
    Off,
}

/// The learned injection scorer's settings; thresholds default to the shipped model's
/// calibrated ones (docs/detection.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawScorer {
    pub mode: ScorerMode,
    /// Probability at or above which `pi.model.suspect` is reported (medium severity).
    pub threshold: Option<f32>,
    /// Probability at or above which `pi.model.attack` is reported instead (high severity).
    pub block_threshold: Option<f32>,
}

/// PII detection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPii {
    pub enabled: bool,
    /// Message roles whose text is scanned (default: all).
    pub roles: Vec<Role>,
    /// Extra patterns, reported as `pii.custom.<name>`.
    pub custom: Vec<RawCustomPattern>,
}

impl Default for RawPii {
    fn default() -> Self {
        RawPii {
            enabled: true,
            roles: all_roles(),
            custom: Vec::new(),
        }
    }
}

/// A custom PII pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomPattern {
    /// Lowercase name: letters, digits and `-`.
    pub name: String,
    /// Regex (Rust regex syntax) over the original text.
    pub pattern: String,
    #[serde(default = "medium")]
    pub severity: Severity,
}

fn medium() -> Severity {
    Severity::Medium
}

/// Response-side rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOutput {
    pub enabled: bool,
    pub secrets: bool,
    pub pii: bool,
    pub exfiltration: bool,
    /// Hosts (and their subdomains) that links and images may point to.
    pub link_allowlist: Vec<String>,
    /// Strings planted in system prompts; seeing one in an output is a leak.
    pub canaries: Vec<String>,
    /// Share of the system prompt's word 8-grams that, repeated in an output, count as leakage
    /// (0 disables).
    pub system_prompt_overlap: f32,
}

impl Default for RawOutput {
    fn default() -> Self {
        RawOutput {
            enabled: true,
            secrets: true,
            pii: true,
            exfiltration: true,
            link_allowlist: Vec::new(),
            canaries: Vec::new(),
            system_prompt_overlap: 0.25,
        }
    }
}

/// Decisions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    /// Decide and record, but never block or rewrite.
    pub shadow: bool,
    /// Risk score (0..1) at or above which a request is blocked.
    pub block_threshold: f32,
    /// Risk score at or above which a request is at least tagged.
    pub tag_threshold: f32,
    /// Action per category or category prefix (`injection`, `injection.jailbreak`, `pii`).
    pub categories: BTreeMap<String, Action>,
    /// Action per rule id; wins over categories.
    pub rules: BTreeMap<String, Action>,
    pub redaction: RedactionMode,
    /// HTTP status of a block (400-499).
    pub block_status: u16,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            shadow: false,
            block_threshold: 0.9,
            tag_threshold: 0.5,
            categories: BTreeMap::new(),
            rules: BTreeMap::new(),
            redaction: RedactionMode::Placeholder,
            block_status: 403,
        }
    }
}

/// A price entry: decimal USD per million tokens, as a string ("2.50") or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: serde_json::Value,
    pub output: serde_json::Value,
    /// Defaults to `input`.
    #[serde(default)]
    pub cached_input: Option<serde_json::Value>,
    /// Defaults to `input`.
    #[serde(default)]
    pub cache_write: Option<serde_json::Value>,
    /// Defaults to `output`.
    #[serde(default)]
    pub reasoning: Option<serde_json::Value>,
}

/// A deserialisation error as a configuration error naming the field.
fn field_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> EngineError {
    let path = e.path().to_string();
    let message = e.into_inner().to_string();
    // YAML errors repeat the path in front of the message
    let message = message
        .strip_prefix(&format!("{path}: "))
        .map_or_else(|| message.clone(), str::to_string);
    EngineError::config(
        if path == "." {
            "(root)".to_string()
        } else {
            path
        },
        message,
    )
}

impl RawConfig {
    /// Parses JSON, naming the offending field on error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EngineError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(RawConfig::default());
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(&mut de).map_err(field_error)
    }

    /// Parses YAML (the same fields; a document with nothing in it means the defaults), naming
    /// the offending field and its YAML line on error.
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<Self, EngineError> {
        let value: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| EngineError::config("(root)", format!("invalid YAML: {e}")))?;
        if value.is_null() {
            return Ok(RawConfig::default());
        }
        serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text))
            .map_err(field_error)
    }

    /// Checks values serde cannot (ranges, names); compile-time checks (regexes, prices) come
    /// from [`crate::Engine::from_config`].
    pub fn validate(&self) -> Result<(), EngineError> {
        let l = &self.limits;
        if l.max_request_body_bytes == 0 {
            return Err(EngineError::config(
                "limits.max_request_body_bytes",
                "must be greater than 0",
            ));
        }
        if l.max_response_body_bytes == 0 {
            return Err(EngineError::config(
                "limits.max_response_body_bytes",
                "must be greater than 0",
            ));
        }
        if !(16..=16384).contains(&l.stream_holdback_bytes) {
            return Err(EngineError::config(
                "limits.stream_holdback_bytes",
                "must be between 16 and 16384",
            ));
        }
        if l.max_event_bytes < 1024 {
            return Err(EngineError::config(
                "limits.max_event_bytes",
                "must be at least 1024",
            ));
        }
        if self.history_cache.max_bytes > 256 << 20 {
            return Err(EngineError::config(
                "history_cache.max_bytes",
                "must be at most 268435456 (256 MiB)",
            ));
        }
        let scorer = &self.detectors.injection.scorer;
        for (field, value) in [
            ("threshold", scorer.threshold),
            ("block_threshold", scorer.block_threshold),
        ] {
            if value.is_some_and(|v| !(v > 0.0 && v <= 1.0)) {
                return Err(EngineError::config(
                    format!("detectors.injection.scorer.{field}"),
                    "must be above 0 and at most 1",
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(EngineError::config(
                    format!("routes[{i}].name"),
                    "must not be empty",
                ));
            }
            if !r.path_prefix.starts_with('/') {
                return Err(EngineError::config(
                    format!("routes[{i}].path_prefix"),
                    "must start with '/'",
                ));
            }
        }
        for (i, c) in self.detectors.pii.custom.iter().enumerate() {
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(EngineError::config(
                    format!("detectors.pii.custom[{i}].name"),
                    "use lowercase letters, digits and '-'",
                ));
            }
        }
        let o = &self.detectors.output;
        if !(0.0..=1.0).contains(&o.system_prompt_overlap) {
            return Err(EngineError::config(
                "detectors.output.system_prompt_overlap",
                "must be between 0 and 1",
            ));
        }
        for (i, c) in o.canaries.iter().enumerate() {
            if c.trim().len() < 6 {
                return Err(EngineError::config(
                    format!("detectors.output.canaries[{i}]"),
                    "must be at least 6 characters",
                ));
            }
        }
        if !(10..=60_000).contains(&self.request_hold.release_after_ms) {
            return Err(EngineError::config(
                "request_hold.release_after_ms",
                "must be between 10 and 60000",
            ));
        }
        if let Some(c) = &self.collector {
            if c.cluster.trim().is_empty() {
                return Err(EngineError::config(
                    "collector.cluster",
                    "must not be empty",
                ));
            }
            if !(10..=60_000).contains(&c.timeout_ms) {
                return Err(EngineError::config(
                    "collector.timeout_ms",
                    "must be between 10 and 60000",
                ));
            }
            if !(10..=60_000).contains(&c.flush_interval_ms) {
                return Err(EngineError::config(
                    "collector.flush_interval_ms",
                    "must be between 10 and 60000",
                ));
            }
            if !(1..=10_000).contains(&c.batch_size) {
                return Err(EngineError::config(
                    "collector.batch_size",
                    "must be between 1 and 10000",
                ));
            }
            if c.queue_capacity < c.batch_size || c.queue_capacity > 1_000_000 {
                return Err(EngineError::config(
                    "collector.queue_capacity",
                    "must be at least batch_size and at most 1000000",
                ));
            }
        }
        let p = &self.policy;
        if !(0.0..=1.0).contains(&p.block_threshold) || p.block_threshold == 0.0 {
            return Err(EngineError::config(
                "policy.block_threshold",
                "must be in (0, 1]",
            ));
        }
        if !(0.0..=1.0).contains(&p.tag_threshold) || p.tag_threshold == 0.0 {
            return Err(EngineError::config(
                "policy.tag_threshold",
                "must be in (0, 1]",
            ));
        }
        if !(400..=499).contains(&p.block_status) {
            return Err(EngineError::config(
                "policy.block_status",
                "must be a 4xx status",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match RawConfig::from_json(json.as_bytes()).and_then(|c| c.validate().map(|_| c)) {
            Ok(_) => panic!("accepted {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_config_is_the_default() {
        let c = RawConfig::from_json(b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(c.validate().is_ok());
        let c = RawConfig::from_json(b"{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.limits.max_request_body_bytes, 1 << 20);
        assert_eq!(c.detectors.injection.roles, None);
        let c = RawConfig::from_json(
            br#"{"detectors": {"injection": {"enabled": false}, "secrets": {"roles": ["user"]}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.detectors.injection.enabled);
        assert_eq!(c.detectors.secrets.roles, Some(vec![Role::User]));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"{"limits": {"max_request_body_bytes": "big"}}"#)
            .contains("limits.max_request_body_bytes"));
        assert!(err(r#"{"policy": {"rules": {"pii.email": "explode"}}}"#)
            .contains("policy.rules.pii.email"));
        assert!(
            err(r#"{"routes": [{"name": "a", "path_prefix": "/v1", "provider": "nope"}]}"#)
                .contains("routes[0].provider")
        );
        assert!(err(
            r#"{"detectors": {"injection": {"enabled": true, "roles": ["user"], "extra": 1}}}"#
        )
        .contains("detectors.injection"));
        assert!(err(r#"{"limits": {"stream_holdback_bytes": 1}}"#)
            .contains("limits.stream_holdback_bytes"));
        assert!(err(r#"{"typo": 1}"#).contains("typo"));
        assert!(err(r#"{"routes": [{"name": "x", "path_prefix": "v1"}]}"#)
            .contains("routes[0].path_prefix"));
    }
}
