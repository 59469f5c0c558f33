//! Daily usage rollups for the SQLite store. Usage over weeks of traces is the common question,
//! and answering it from raw rows means reading every one (SQLite needs seconds for a million).
//! So each committed trace also updates one row per (UTC day, tenant, model, provider, route):
//! sums, counts, and latency / time-to-first-token histograms on a logarithmic scale (10%
//! wide buckets from 0.1 ms), from which percentiles are read to within about 5%. Usage queries
//! whose time range falls on day boundaries, bucketed by day, week, month or not at all, read the
//! rollups; others read the raw rows.

use super::{model_of, outcome_name, Bucket, Dimension, Percentiles, UsageQuery, UsageRow};
use std::collections::{BTreeMap, HashMap};
use tollgate_proto::v1::TraceSummary;

/// Nanoseconds per day.
pub const DAY_NS: i64 = 86_400_000_000_000;
/// Histogram buckets.
const BUCKETS: usize = 200;
/// Smallest bucket's lower bound (ms) and the ratio between bucket bounds.
const BASE_MS: f64 = 0.1;
const RATIO: f64 = 1.1;

/// A latency histogram (counts per logarithmic bucket).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: HashMap<u8, u32>,
}

impl Histogram {
    /// The bucket of a value in milliseconds.
    pub fn bucket(ms: f64) -> u8 {
        if ms <= BASE_MS {
            return 0;
        }
        let i = ((ms / BASE_MS).ln() / RATIO.ln()).floor();
        i.clamp(0.0, (BUCKETS - 1) as f64) as u8
    }

    /// The value a bucket stands for: its geometric middle.
    fn value(bucket: u8) -> f64 {
        BASE_MS * RATIO.powf(f64::from(bucket) + 0.5)
    }

    pub fn add(&mut self, ms: f64) {
        *self.counts.entry(Self::bucket(ms)).or_insert(0) += 1;
    }

    /// Adds `n` values that fell in `bucket`.
    pub fn add_count(&mut self, bucket: u8, n: u64) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let c = self.counts.entry(bucket).or_insert(0);
        *c = c.saturating_add(n);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.counts {
            *self.counts.entry(*b).or_insert(0) += n;
        }
    }

    /// p50 / p95 / p99 (nearest rank over bucket values).
    pub fn percentiles(&self) -> Percentiles {
        let total: u64 = self.counts.values().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return Percentiles::default();
        }
        let mut buckets: Vec<(u8, u32)> = self.counts.iter().map(|(b, n)| (*b, *n)).collect();
        buckets.sort_unstable();
        let at = |p: f64| -> Option<f64> {
            let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0u64;
            for (b, n) in &buckets {
                seen += u64::from(*n);
                if seen >= rank {
                    return Some((Self::value(*b) * 1000.0).round() / 1000.0);
                }
            }
            None
        };
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }

    /// Sparse encoding: (bucket u8, count u32 LE) pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut pairs: Vec<(&u8, &u32)> = self.counts.iter().collect();
        pairs.sort_unstable();
        let mut out = Vec::with_capacity(pairs.len() * 5);
        for (b, n) in pairs {
            out.push(*b);
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Histogram {
        let mut h = Histogram::default();
        for chunk in bytes.chunks_exact(5) {
            if let (Some(&b), Some(n)) = (chunk.first(), chunk.get(1..5)) {
                let n = u32::from_le_bytes(n.try_into().unwrap_or([0; 4]));
                *h.counts.entry(b).or_insert(0) += n;
            }
        }
        h
    }
}

/// The key of a rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DayKey {
    pub day: i64,
    pub tenant: String,
    pub model: String,
    pub provider: String,
    pub route: String,
}

/// One rollup row's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayTotals {
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub estimated_requests: u64,
    pub cost_micro_usd: i64,
    pub unpriced_requests: u64,
    pub errors: u64,
    pub blocked: u64,
    pub latency: Histogram,
    pub ttft: Histogram,
}

impl DayTotals {
    /// Adds one trace.
    pub fn add(&mut self, s: &TraceSummary) {
        let u = s.usage.unwrap_or_default();
        self.requests += 1;
        self.input_tokens += u.input_tokens;
        self.cached_input_tokens += u.cached_input_tokens;
        self.output_tokens += u.output_tokens;
        self.reasoning_tokens += u.reasoning_tokens;
        self.estimated_requests += u64::from(u.estimated);
        if s.cost_known {
            self.cost_micro_usd = self.cost_micro_usd.saturating_add(s.cost_micro_usd);
        } else {
            self.unpriced_requests += 1;
        }
        match outcome_name(s.outcome) {
            "error" => self.errors += 1,
            "blocked" => self.blocked += 1,
            _ => {}
        }
        if s.end_unix_nanos > 0 && s.end_unix_nanos >= s.start_unix_nanos {
            self.latency
                .add((s.end_unix_nanos - s.start_unix_nanos) as f64 / 1e6);
        }
        if s.time_to_first_token_nanos > 0 {
            self.ttft.add(s.time_to_first_token_nanos as f64 / 1e6);
        }
    }

    /// Adds another row's totals.
    pub fn merge(&mut self, o: &DayTotals) {
        self.requests += o.requests;
        self.input_tokens += o.input_tokens;
        self.cached_input_tokens += o.cached_input_tokens;
        self.output_tokens += o.output_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.estimated_requests += o.estimated_requests;
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(o.cost_micro_usd);
        self.unpriced_requests += o.unpriced_requests;
        self.errors += o.errors;
        self.blocked += o.blocked;
        self.latency.merge(&o.latency);
        self.ttft.merge(&o.ttft);
    }

    /// As a usage row (group and bucket filled by the caller).
    pub fn to_row(&self) -> UsageRow {
        UsageRow {
            requests: self.requests,
            input_tokens: self.input_tokens,
            cached_input_tokens: self.cached_input_tokens,
            output_tokens: self.output_tokens,
            reasoning_tokens: self.reasoning_tokens,
            estimated_requests: self.estimated_requests,
            cost_micro_usd: self.cost_micro_usd,
            unpriced_requests: self.unpriced_requests,
            errors: self.errors,
            blocked: self.blocked,
            latency_ms: self.latency.percentiles(),
            time_to_first_token_ms: self.ttft.percentiles(),
            ..UsageRow::default()
        }
    }
}

/// Whether the daily rollups can answer `q` exactly (apart from percentile resolution): its
/// range falls on day boundaries and it is bucketed by day, week, month or not at all.
pub fn answers(q: &UsageQuery) -> bool {
    let whole_days = |t: Option<i64>| t.is_none_or(|t| t.rem_euclid(DAY_NS) == 0);
    matches!(
        q.bucket,
        None | Some(Bucket::Day | Bucket::Week | Bucket::Month)
    ) && whole_days(q.from_ns)
        && whole_days(q.to_ns)
}

/// The day range (`from` inclusive, `to` exclusive, days since the epoch) of a query the
/// rollups answer.
pub fn day_range(q: &UsageQuery) -> (Option<i64>, Option<i64>) {
    (
        q.from_ns.map(|f| f.div_euclid(DAY_NS)),
        q.to_ns.map(|t| t.div_euclid(DAY_NS)),
    )
}

/// Usage rows for `q` from rollup rows (already filtered by tenant scope and day range):
/// grouped by `q.group_by`, bucketed by `q.bucket`, ordered by bucket then group.
pub fn usage_rows(
    q: &UsageQuery,
    rows: impl IntoIterator<Item = (DayKey, DayTotals)>,
) -> Vec<UsageRow> {
    let mut groups: BTreeMap<(Option<String>, Vec<String>), DayTotals> = BTreeMap::new();
    for (key, totals) in rows {
        let dims: Vec<String> = q
            .group_by
            .iter()
            .map(|d| match d {
                Dimension::Tenant => key.tenant.clone(),
                Dimension::Model => key.model.clone(),
                Dimension::Provider => key.provider.clone(),
                Dimension::Route => key.route.clone(),
            })
            .collect();
        let day = key.day;
        let bucket = q.bucket.map(|b| {
            let start_day = match b {
                Bucket::Week => day - (day + 3).rem_euclid(7),
                _ => day,
            };
            let label = crate::time::format_nanos(start_day.saturating_mul(DAY_NS));
            match b {
                Bucket::Month => format!("{}-01T00:00:00Z", label.get(..7).unwrap_or("")),
                _ => label,
            }
        });
        groups.entry((bucket, dims)).or_default().merge(&totals);
    }
    groups
        .into_iter()
        .map(|((bucket, dims), t)| {
            let mut row = t.to_row();
            row.bucket = bucket;
            row.group = q
                .group_by
                .iter()
                .zip(dims)
                .map(|(d, v)| (d.as_str().to_string(), v))
                .collect();
            row
        })
        .collect()
}

/// The rollup key of a trace.
pub fn key_of(s: &TraceSummary) -> DayKey {
    DayKey {
        day: s.start_unix_nanos.div_euclid(DAY_NS),
        tenant: s.tenant.clone(),
        model: model_of(s).to_string(),
        provider: s.provider.clone(),
        route: s.route.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_within_five_percent() {
        let mut h = Histogram::default();
        let values: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 3.7).collect();
        for v in &values {
            h.add(*v);
        }
        let h = Histogram::decode(&h.encode());
        let p = h.percentiles();
        for (got, want) in [(p.p50, 1850.0), (p.p95, 3515.0), (p.p99, 3663.0)] {
            let got = got.unwrap();
            assert!((got - want).abs() / want < 0.05, "{got} vs {want}");
        }
        assert_eq!(Histogram::default().percentiles(), Percentiles::default());
    }
}
