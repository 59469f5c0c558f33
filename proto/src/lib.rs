//! Tollgate's wire protocol, package `tollgate.v1` (`tollgate/v1/collector.proto` is the source
//! of truth): the trace summary the gateway filter sends and the collector stores, and the
//! `Collector` ingest service. The messages build for `wasm32-wasip1` (the filter encodes them);
//! the tonic client and server code needs the `grpc` feature.
//!
//! # Layout
//! - [`v1`]: the generated types (`TraceSummary`, `IngestRequest`, ...) and, with `grpc`,
//!   `v1::collector_client` / `v1::collector_server` (and the `LimitLedger` service).
//! - [`rls`]: Envoy's rate-limit protocol (`envoy.service.ratelimit.v3`), which the filter asks
//!   and the collector answers for limits shared by several Envoys.
//! - [`codec`] (with `grpc`): prost encoding that reports malformed input as `INVALID_ARGUMENT`.

#[cfg(feature = "grpc")]
pub mod codec;

/// Generated from `tollgate/v1/collector.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/tollgate.v1.rs"));
}

/// Generated from `envoy/service/ratelimit/v3/rls.proto`: Envoy's global rate-limit protocol
/// (the part Tollgate speaks, wire-compatible with Envoy's own files).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod rls {
    include!(concat!(env!("OUT_DIR"), "/envoy.service.ratelimit.v3.rs"));
}

/// The rate-limit service's gRPC name and method (for `dispatch_grpc_call`).
pub const RLS_SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// The rate-limit check.
pub const RLS_METHOD: &str = "ShouldRateLimit";
/// The settlement service of Tollgate's collector and its method.
pub const LEDGER_SERVICE: &str = "tollgate.v1.LimitLedger";
/// The settlement method.
pub const LEDGER_METHOD: &str = "Settle";

/// The ingest method's full gRPC path (what the filter's `dispatch_grpc_call` needs).
pub const INGEST_SERVICE: &str = "tollgate.v1.Collector";
/// The ingest method's name.
pub const INGEST_METHOD: &str = "Ingest";
