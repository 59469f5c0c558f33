//! Per-tenant limits shared by several Envoys (docs/limits.md, ADR 0017). The filter reserves a
//! request's largest cost with Envoy's rate-limit protocol (`ShouldRateLimit`, one descriptor per
//! limit, each with its own `hits_addend`) and settles the counters to what the call used
//! (`tollgate.v1.LimitLedger/Settle`). Counters live in Redis, one key per descriptor and fixed
//! window; a request is admitted only if every descriptor fits, and then all are counted at once
//! (one Lua script), so a refusal takes nothing and a budget is never passed by reservations.
//!
//! # Layout
//! - [`counters`]: the Redis counters: keys, the reserve and settle scripts.
//! - [`service`]: the two gRPC services over them.

pub mod counters;
pub mod service;
