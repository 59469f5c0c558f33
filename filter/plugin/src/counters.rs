//! The per-tenant limit counters (ADR 0017) in proxy-wasm shared data: one store per VM id that
//! every worker of the Envoy reads and writes, each value with a version, so the engine's
//! compare-and-swap loop counts exactly across workers. This file only translates the host's
//! answers into the engine's [`CounterStore`] terms.

use crate::host::{Host, SharedRead, SharedWrite};
use tollgate_engine::tenant_limits::{CounterStore, StoreError, WriteError};

/// The host's shared data as the engine's counter store.
pub struct SharedCounters<H: Host>(pub H);

impl<H: Host> std::fmt::Debug for SharedCounters<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedCounters")
    }
}

impl<H: Host> CounterStore for SharedCounters<H> {
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match self.0.shared_data(key) {
            SharedRead::Found(value, version) => Ok(Some((value, version))),
            SharedRead::Absent => Ok(None),
            SharedRead::Refused => Err(StoreError),
        }
    }

    fn write(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<(), WriteError> {
        match self.0.set_shared_data(key, value, version) {
            SharedWrite::Done => Ok(()),
            SharedWrite::Changed => Err(WriteError::Changed),
            SharedWrite::Refused => Err(WriteError::Failed),
        }
    }
}
