//! Test harness shared by the collector's integration tests.

pub mod clickhouse;
pub mod redis;
