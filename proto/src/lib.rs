//! Tollgate's wire protocol, package `tollgate.v1` (`tollgate/v1/collector.proto` is the source
//! of truth): the trace summary the gateway filter sends and the collector stores, and the
//! `Collector` ingest service. The messages build for `wasm32-wasip1` (the filter encodes them);
//! the tonic client and server code needs the `grpc` feature.
//!
//! # Layout
//! - [`v1`]: the generated types (`TraceSummary`, `IngestRequest`, ...) and, with `grpc`,
//!   `v1::collector_client` / `v1::collector_server`.
//! - [`codec`] (with `grpc`): prost encoding that reports malformed input as `INVALID_ARGUMENT`.

#[cfg(feature = "grpc")]
pub mod codec;

/// Generated from `tollgate/v1/collector.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/tollgate.v1.rs"));
}

/// The ingest method's full gRPC path (what the filter's `dispatch_grpc_call` needs).
pub const INGEST_SERVICE: &str = "tollgate.v1.Collector";
/// The ingest method's name.
pub const INGEST_METHOD: &str = "Ingest";
