//! Tollgate's proxy-wasm filter: the engine inside Envoy (and other proxy-wasm hosts).
//!
//! A thin shell (ADR 0001): host calls in, engine calls, actions out. Every decision — which
//! requests are LLM calls, what is held and for how long, what is read, rewritten or answered
//! locally, what is counted — is made by the engine's `ExchangeFlow`; this crate reads host data,
//! calls it and applies its plan. By default request headers go on at once and only the body is
//! held, which works on every host (Istio `WasmPlugin`, Envoy Gateway, plain Envoy); the strict
//! header hold is an option with a watchdog (ADR 0013). Every failure fails open unless the
//! operator configured `fail_closed`.
//!
//! # Layout
//! - [`root`]: configuration, the shared engine, the tick (collector batches, metrics, watchdog).
//! - [`exchange`]: one request/response exchange, applying the engine's plans.
//! - [`metrics`]: Envoy counters and histograms with labels.
//! - [`counters`]: the per-tenant limit counters in the host's shared data.
//! - [`host`]: host calls without the SDK's panics, behind the [`host::Host`] trait.

pub mod counters;
pub mod exchange;
#[allow(unsafe_code)]
pub mod host;
pub mod metrics;
pub mod root;

pub use exchange::{Exchange, SUMMARY_PROPERTY};
pub use root::Root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root::new(context_id))
    });
}}
