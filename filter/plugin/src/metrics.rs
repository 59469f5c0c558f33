//! Envoy metrics through proxy-wasm counters and histograms. Labels travel inside the stat name as
//! `;key=value` pairs; the bootstrap's `stats_config.stats_tags` (see `envoy/tollgate.yaml.tmpl`)
//! turns them into Prometheus labels, so `/stats/prometheus` shows for example
//! `tollgate_requests{provider="openai",model="gpt-4o-mini",outcome="blocked"}`. Metric ids are
//! defined once per VM and cached; a host that refuses a metric costs nothing but the metric.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::cell::RefCell;
use std::collections::HashMap;

/// Metric ids defined on this VM, by full name.
#[derive(Default)]
pub struct Metrics {
    ids: RefCell<HashMap<String, u32>>,
}

impl Metrics {
    /// Adds `value` to counter `name` with `labels`.
    pub fn add(&self, name: &str, labels: &[(&str, &str)], value: u64) {
        if value == 0 {
            return;
        }
        if let Some(id) = self.id(MetricType::Counter, name, labels) {
            let _ = hostcalls::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// Records `value` in histogram `name` with `labels`.
    pub fn record(&self, name: &str, labels: &[(&str, &str)], value: u64) {
        if let Some(id) = self.id(MetricType::Histogram, name, labels) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn id(&self, kind: MetricType, name: &str, labels: &[(&str, &str)]) -> Option<u32> {
        let mut full = String::with_capacity(name.len() + 64);
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
        let cached = self.ids.borrow().get(&full).copied();
        match cached {
            Some(id) => Some(id),
            None => {
                let id = hostcalls::define_metric(kind, &full).ok()?;
                self.ids.borrow_mut().insert(full, id);
                Some(id)
            }
        }
    }
}
