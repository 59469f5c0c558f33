//! Tollgate's inline engine: everything the gateway decides about an LLM call, as pure functions
//! over bytes and config. No proxy-wasm, no async runtime, no I/O: the Envoy plugin, the
//! `tollgate` CLI and tests all drive the same code, natively or on `wasm32-wasip1`.
//!
//! # Layout
//! - [`config`]: the operator's config (serde, strict) and its validation.
//! - [`Engine`] (in `analysis`): the compiled config; request and response analysis.
//! - [`stream`]: response streams — usage, incremental scanning, hold-back redaction.
//! - [`provider`]: OpenAI (chat, Responses, embeddings, completions), Anthropic, Gemini codecs.
//! - [`sse`]: the incremental Server-Sent Events parser.
//! - [`normalize`]: text folding for keyword rules, with an exact map back to the original bytes.
//! - [`detect`]: rule tables, PII validators, secrets, encoded payloads, output rules.
//! - [`scan_cache`]: request messages scanned once, looked up when a conversation is resent.
//! - [`json_doc`]: request bodies parsed in one pass, strings borrowed with their byte spans.
//! - [`json_edit`]: values located by JSON pointer and replaced in place, length kept or not.
//! - [`policy`]: actions, decisions, redaction text, provider-shaped block bodies.
//! - [`tenant`]: who a request belongs to (header, JWT claim, API-key hash, peer principal).
//! - [`exchange`]: the record of one call — outcome, usage, timing — and its access-log summary.
//! - [`flow`]: one exchange callback by callback — what the proxy shell reads, holds, rewrites.
//! - [`hold`]: the header-hold watchdog (strict mode on a host that ignores the pause).
//! - [`forward`]: the bounded, batching queue of trace summaries for the collector.
//! - [`civil`]: calendar dates from and to day counts (month windows, timestamps).
//! - [`usage`] and [`price`]: normalised token usage, the estimator, integer money.
//! - [`report`]: the CLI's and the browser build's JSON answers (scan, request, rules, config).
//! - [`error`]: the one error type.

pub mod analysis;
pub mod civil;
pub mod config;
pub mod detect;
pub mod error;
pub mod exchange;
pub mod flow;
pub mod forward;
pub mod hold;
pub mod json_doc;
pub mod json_edit;
pub mod normalize;
pub mod policy;
pub mod price;
pub mod provider;
pub mod report;
pub mod scan_cache;
pub mod sse;
pub mod stream;
pub mod tenant;
pub mod tenant_limits;
pub mod usage;

pub use analysis::{
    BlockReply, BodyLength, Direction, Engine, Finding, Limits, RequestAnalysis, ResponseAnalysis,
    RouteMatch,
};
pub use config::RawConfig;
pub use error::EngineError;
pub use exchange::{ExchangeRecord, MetricKind, MetricPoint, Outcome, Timing, Unanalysed};
pub use flow::{
    ExchangeFlow, GrpcCall, HeaderEdit, HeadersPlan, LocalReply, RequestBodyCall, RequestPlan,
    ResponseBodyCall, Step,
};
pub use forward::{ForwardSettings, SummaryQueue};
pub use hold::{HeadersState, HoldWatch, Release};
pub use policy::{Action, Decision};
pub use stream::{Emit, ResponseStream, StreamOutput, StreamSummary};
pub use tenant::{RequestFacts, Tenant, TenantResolver, TenantSource};
pub use usage::Usage;
