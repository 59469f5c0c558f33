//! Envoy metrics through proxy-wasm counters and histograms. Labels travel inside the stat name
//! as `;key=value` pairs; the bootstrap's `stats_config.stats_tags` (see `envoy/tollgate.yaml.tmpl`)
//! turns them into Prometheus labels, so `/stats/prometheus` shows for example
//! `tollgate_requests{provider="openai",model="gpt-4o-mini",outcome="blocked"}`.
//!
//! Host calls cost more than the arithmetic, so counter increments are summed in the VM and
//! handed to the host once per tick (the root context's timer, every second) instead of several
//! times per request; histograms are recorded as they come. Metric ids are defined once per VM
//! and cached; a host that refuses a metric costs nothing but the metric.

use crate::host::{self, MetricKind};
use std::cell::RefCell;
use std::collections::HashMap;

/// How often pending counter increments reach the host.
pub const FLUSH_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// Metric ids defined on this VM, and counter increments not yet handed to the host.
#[derive(Default)]
pub struct Metrics {
    counters: RefCell<HashMap<String, u32>>,
    histograms: RefCell<HashMap<String, u32>>,
    gauges: RefCell<HashMap<String, u32>>,
    pending: RefCell<HashMap<u32, u64>>,
    /// Reused buffer for building names.
    name: RefCell<String>,
}

impl Metrics {
    /// Adds `value` to counter `name` with `labels` (reaches the host at the next flush).
    pub fn add(&self, name: &str, labels: &[(&str, &str)], value: u64) {
        if value == 0 {
            return;
        }
        if let Some(id) = self.id(MetricKind::Counter, name, labels) {
            let mut pending = self.pending.borrow_mut();
            let slot = pending.entry(id).or_insert(0);
            *slot = slot.saturating_add(value);
        }
    }

    /// Records `value` in histogram `name` with `labels`.
    pub fn record(&self, name: &str, labels: &[(&str, &str)], value: u64) {
        if let Some(id) = self.id(MetricKind::Histogram, name, labels) {
            host::record_metric(id, value);
        }
    }

    /// Sets gauge `name` (a histogram-style record on the host side sets a gauge's value).
    pub fn set(&self, name: &str, value: u64) {
        if let Some(id) = self.id(MetricKind::Gauge, name, &[]) {
            host::record_metric(id, value);
        }
    }

    /// Hands the pending counter increments to the host.
    pub fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        for (id, value) in pending.drain() {
            host::increment_metric(id, value);
        }
    }

    fn id(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<u32> {
        let mut full = self.name.borrow_mut();
        full.clear();
        full.push_str(name);
        for (key, val) in labels {
            full.push(';');
            full.push_str(key);
            full.push('=');
            full.extend(val.chars().take(64).map(|c| {
                if c == ';' || c == '=' || c.is_whitespace() {
                    '_'
                } else {
                    c
                }
            }));
        }
        let ids = match kind {
            MetricKind::Counter => &self.counters,
            MetricKind::Histogram => &self.histograms,
            MetricKind::Gauge => &self.gauges,
        };
        // look up by &str; allocate a key only for a new metric
        if let Some(id) = ids.borrow().get(full.as_str()) {
            return Some(*id);
        }
        let id = host::define_metric(kind, &full)?;
        ids.borrow_mut().insert(full.clone(), id);
        Some(id)
    }
}
