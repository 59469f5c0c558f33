//! The detector: a pure state machine fed one closed time bucket at a time. For every series
//! (a tenant, and a tenant × model) it keeps a [`Baseline`] per [`Metric`], scores the bucket's
//! value against it, and opens, updates and closes anomalies; findings rules (a burst of
//! blocked injections, a secret in a response) open anomalies of their own. It knows no clock
//! and no storage: the driver hands it buckets in order, so tests replay simulated weeks in
//! milliseconds and a restarted collector replays the buckets it missed.

use super::baseline::Baseline;
use super::{Anomaly, AnomalyEvent, AnomalyKind, DetectorSettings, Metric, RuleKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Which traffic a series covers: one tenant, all its models (`model: None`) or one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub tenant: String,
    pub model: Option<String>,
}

/// What one bucket held for one series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BucketValues {
    pub requests: u64,
    pub cost_micro_usd: i64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub errors: u64,
    pub blocked: u64,
    pub latency_p95_ms: Option<f64>,
}

impl BucketValues {
    /// The metric's value, or `None` when the bucket says nothing about it (rates and latency
    /// of a bucket with too few requests). Counts of an idle bucket are zeros.
    fn value(&self, metric: Metric, min_rate_requests: u64) -> Option<f64> {
        let rate = |n: u64| {
            (self.requests >= min_rate_requests.max(1)).then(|| n as f64 / self.requests as f64)
        };
        match metric {
            Metric::CostMicroUsd => Some(self.cost_micro_usd as f64),
            Metric::InputTokens => Some(self.input_tokens as f64),
            Metric::OutputTokens => Some(self.output_tokens as f64),
            Metric::Requests => Some(self.requests as f64),
            Metric::ErrorRate => rate(self.errors),
            Metric::BlockRate => rate(self.blocked),
            Metric::LatencyP95Ms => self
                .latency_p95_ms
                .filter(|_| self.requests >= min_rate_requests.max(1)),
        }
    }
}

/// Findings of one tenant in one bucket that a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleObservation {
    pub tenant: String,
    pub rule: RuleKind,
    pub count: u64,
}

/// An anomaly being tracked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Open {
    anomaly: Anomaly,
    /// Normal buckets in a row since the last deviating one.
    calm: u32,
    /// The baseline before the incident: restored when values come back to it, so the mean's
    /// slow creep during a long incident does not make the recovery look like a drop.
    before: Baseline,
}

/// Deviating buckets in a row, before an anomaly opens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Streak {
    len: u32,
    /// +1 above the baseline, -1 below.
    sign: i8,
    /// The first bucket's start.
    start: i64,
    /// The largest |z| so far, and the value there.
    max_z: f64,
    peak: f64,
    /// The baseline before the first bucket.
    before: Baseline,
}

/// One metric of one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct MetricState {
    baseline: Baseline,
    /// Deviating buckets in a row before an anomaly opens (boxed, like the two below: most
    /// metrics of most series have none, and memory per series is what scale costs).
    streak: Option<Box<Streak>>,
    /// The baseline before an incident whose new level was learnt (it closed while values
    /// stayed away), and until when it is kept (a day): values coming back to it restore it
    /// instead of raising a drop (or spike) against the learnt level.
    previous: Option<Box<(Baseline, i64)>>,
    /// Boxed: most metrics of most series have none, and an anomaly is large.
    open: Option<Box<Open>>,
}

/// One series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SeriesState {
    /// One per [`Metric::ALL`], in that order.
    metrics: [MetricState; 7],
    /// Buckets in a row without a request.
    idle: u32,
}

/// A findings rule for one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RuleState {
    open: Open,
}

/// The detector's whole state (what a checkpoint saves).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    /// Start of the last bucket evaluated (unix ns).
    pub last_bucket_ns: Option<i64>,
    /// The bucket length and per-model setting the state was built with.
    bucket_ns: i64,
    per_model: bool,
    #[serde(with = "pairs")]
    series: BTreeMap<SeriesKey, SeriesState>,
    #[serde(with = "pairs")]
    rules: BTreeMap<(String, RuleKind), RuleState>,
}

/// Maps with structured keys, saved as lists of pairs (JSON keys must be strings).
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

impl DetectorState {
    /// The state as bytes, for a checkpoint (exact: floats keep every bit).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(self).map_err(|e| e.to_string())
    }

    /// A state from [`DetectorState::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<DetectorState, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }

    /// Series tracked.
    pub fn series(&self) -> usize {
        self.series.len()
    }

    /// Anomalies open now.
    pub fn open(&self) -> Vec<&Anomaly> {
        let metric = self.series.values().flat_map(|s| {
            s.metrics
                .iter()
                .filter_map(|m| m.open.as_ref().map(|o| &o.anomaly))
        });
        metric
            .chain(self.rules.values().map(|r| &r.open.anomaly))
            .collect()
    }
}

/// Scores buckets and keeps the state.
#[derive(Debug, Clone)]
pub struct Detector {
    settings: DetectorSettings,
    alpha: f64,
    state: DetectorState,
}

/// How long the baseline from before a learnt incident is remembered (a day).
const REMEMBER_NS: i64 = 86_400_000_000_000;

/// Share of the usual weight a deviating bucket gets in its baseline's mean.
const DEVIATING_WEIGHT: f64 = 0.1;

impl Detector {
    pub fn new(settings: DetectorSettings) -> Detector {
        Detector::resume(settings, DetectorState::default())
    }

    /// Continues from a saved state. A state built with another bucket length starts afresh
    /// (its baselines count other units); tenant × model series go when `per_model` is off.
    pub fn resume(settings: DetectorSettings, mut state: DetectorState) -> Detector {
        if state.bucket_ns != settings.bucket_ns {
            if state.last_bucket_ns.is_some() {
                tracing::warn!(
                    saved = state.bucket_ns,
                    configured = settings.bucket_ns,
                    "the bucket length changed: the detector starts afresh"
                );
            }
            state = DetectorState::default();
        }
        if !settings.per_model {
            state.series.retain(|k, _| k.model.is_none());
        }
        state.bucket_ns = settings.bucket_ns;
        state.per_model = settings.per_model;
        Detector {
            alpha: Baseline::alpha(settings.half_life_buckets),
            settings,
            state,
        }
    }

    pub fn state(&self) -> &DetectorState {
        &self.state
    }

    pub fn settings(&self) -> &DetectorSettings {
        &self.settings
    }

    /// Evaluates the bucket starting at `bucket_ns` (buckets must come in order; one already
    /// evaluated is ignored). `series` holds the bucket's values of every series with traffic;
    /// series tracked but absent count as idle (zeros). Returns what changed.
    pub fn evaluate(
        &mut self,
        bucket_ns: i64,
        series: &BTreeMap<SeriesKey, BucketValues>,
        rules: &[RuleObservation],
    ) -> Vec<AnomalyEvent> {
        if self
            .state
            .last_bucket_ns
            .is_some_and(|last| bucket_ns <= last)
        {
            return Vec::new();
        }
        self.state.last_bucket_ns = Some(bucket_ns);
        let mut events = Vec::new();
        // new series start with this bucket
        for key in series.keys() {
            if key.model.is_some() && !self.settings.per_model {
                continue;
            }
            self.state.series.entry(key.clone()).or_default();
        }
        let settings = &self.settings;
        let alpha = self.alpha;
        let bucket_end = bucket_ns.saturating_add(settings.bucket_ns);
        self.state.series.retain(|key, state| {
            let values = series.get(key).copied().unwrap_or_default();
            if values.requests == 0 {
                state.idle = state.idle.saturating_add(1);
            } else {
                state.idle = 0;
            }
            // the series' usual volume, before this bucket
            let requests = state
                .metrics
                .get(Metric::Requests.index())
                .map_or(0.0, |m| m.baseline.mean);
            for metric in Metric::ALL {
                let Some(m) = state.metrics.get_mut(metric.index()) else {
                    continue;
                };
                let event = match values.value(metric, settings.min_rate_requests) {
                    Some(x) => score(
                        settings,
                        alpha,
                        key,
                        metric,
                        m,
                        x,
                        (requests, values.requests),
                        bucket_ns,
                        bucket_end,
                    ),
                    // nothing to judge (too few calls for a rate): an open anomaly cools down
                    None => quiet(settings, m, bucket_end),
                };
                events.extend(event);
            }
            // forget a series idle long enough, once nothing about it is open
            state.idle < settings.forget_after_buckets
                || state.metrics.iter().any(|m| m.open.is_some())
        });
        self.rules(bucket_ns, bucket_end, rules, &mut events);
        events
    }

    fn rules(
        &mut self,
        bucket_ns: i64,
        bucket_end: i64,
        seen: &[RuleObservation],
        events: &mut Vec<AnomalyEvent>,
    ) {
        let settings = &self.settings;
        let mut fired: BTreeMap<(String, RuleKind), u64> = BTreeMap::new();
        for o in seen {
            let threshold = match o.rule {
                RuleKind::InjectionBurst => settings.injection_burst,
                RuleKind::SecretInResponse => u64::from(settings.secret_in_response),
            };
            if threshold > 0 && o.count >= threshold {
                *fired.entry((o.tenant.clone(), o.rule)).or_insert(0) += o.count;
            }
        }
        for ((tenant, rule), count) in &fired {
            let key = (tenant.clone(), *rule);
            match self.state.rules.get_mut(&key) {
                Some(r) => {
                    let a = &mut r.open.anomaly;
                    a.observed = *count as f64;
                    a.peak = a.peak.max(*count as f64);
                    a.buckets = a.buckets.saturating_add(1);
                    a.updated_ns = bucket_end;
                    a.total = a.total.saturating_add(*count);
                    r.open.calm = 0;
                    events.push(AnomalyEvent::Updated(a.clone()));
                }
                None => {
                    let anomaly = Anomaly {
                        id: anomaly_id(tenant, None, rule.as_str(), bucket_ns),
                        tenant: tenant.clone(),
                        model: None,
                        metric: rule.as_str().to_string(),
                        kind: AnomalyKind::Rule,
                        open: true,
                        started_ns: bucket_ns,
                        updated_ns: bucket_end,
                        ended_ns: None,
                        observed: *count as f64,
                        peak: *count as f64,
                        baseline_mean: 0.0,
                        baseline_std_dev: 0.0,
                        z_score: 0.0,
                        max_abs_z_score: 0.0,
                        buckets: 1,
                        total: *count,
                    };
                    events.push(AnomalyEvent::Opened(anomaly.clone()));
                    self.state.rules.insert(
                        key,
                        RuleState {
                            open: Open {
                                anomaly,
                                calm: 0,
                                before: Baseline::default(),
                            },
                        },
                    );
                }
            }
        }
        let cooldown = settings.cooldown_buckets;
        self.state.rules.retain(|key, r| {
            if fired.contains_key(key) {
                return true;
            }
            r.open.calm = r.open.calm.saturating_add(1);
            if r.open.calm >= cooldown {
                let mut a = r.open.anomaly.clone();
                a.open = false;
                a.ended_ns = Some(bucket_end);
                a.updated_ns = bucket_end;
                events.push(AnomalyEvent::Closed(a));
                return false;
            }
            true
        });
    }
}

/// The smallest spread a baseline is credited with: the noise that counting alone makes at
/// the series' usual volume (`requests` is its mean requests per bucket). Request counts are
/// Poisson (√mean); sums over requests (cost, tokens) vary at least as a Poisson count of
/// equal requests (mean / √requests); rates as a binomial share (√(p(1-p)/requests)). So a
/// quiet series needs a larger change to be anomalous than a busy one, and near-constant
/// traffic does not make every small wobble a many-sigma event.
fn spread_floor(metric: Metric, mean: f64, requests: f64, bucket_requests: u64) -> f64 {
    let n = requests.max(1.0);
    match metric {
        Metric::Requests => mean.abs().sqrt().max(1.0),
        Metric::CostMicroUsd | Metric::InputTokens | Metric::OutputTokens => {
            (mean.abs() / n.sqrt()).max(1.0)
        }
        // a rate is as noisy as this bucket's own number of calls makes it
        Metric::ErrorRate | Metric::BlockRate => {
            let p = mean.clamp(0.001, 0.999);
            let calls = (bucket_requests as f64).max(1.0);
            (p * (1.0 - p) / calls).sqrt().max(0.005)
        }
        Metric::LatencyP95Ms => (0.1 * mean.abs()).max(1.0),
    }
}

/// Whether `x` is far enough from `mean`, whatever the z-score: at least `min_ratio` times it
/// (a spike) or at most `1 / min_ratio` of it (a drop); rates must also move by ten
/// percentage points (rare events come in clumps), request counts by three.
fn big_enough(settings: &DetectorSettings, metric: Metric, mean: f64, x: f64) -> bool {
    let ratio = settings.min_ratio.max(1.0);
    let far = if x >= mean {
        x >= mean * ratio
    } else {
        x <= mean / ratio
    };
    let delta = (x - mean).abs();
    far && match metric {
        Metric::ErrorRate | Metric::BlockRate => delta >= 0.1,
        Metric::Requests => delta >= 3.0,
        _ => true,
    }
}

/// Scores one value of one metric, updates its baseline and anomaly; returns what changed.
#[allow(clippy::too_many_arguments)]
fn score(
    settings: &DetectorSettings,
    alpha: f64,
    key: &SeriesKey,
    metric: Metric,
    m: &mut MetricState,
    x: f64,
    (requests, bucket_requests): (f64, u64),
    bucket_ns: i64,
    bucket_end: i64,
) -> Option<AnomalyEvent> {
    let normal_for = |b: &Baseline| {
        let spread = b
            .std_dev()
            .max(spread_floor(metric, b.mean, requests, bucket_requests));
        ((x - b.mean) / spread).abs() < settings.threshold
            || !big_enough(settings, metric, b.mean, x)
    };
    if let Some((before, until)) = m.previous.as_deref().copied() {
        if bucket_ns > until {
            m.previous = None;
        } else if m.open.is_none() && normal_for(&before) && !normal_for(&m.baseline) {
            // back to the level before the incident: that baseline holds again
            m.baseline = before;
            m.previous = None;
            m.streak = None;
            m.baseline.update(x, alpha);
            return None;
        }
    }
    let mean = m.baseline.mean;
    let std_dev = m.baseline.std_dev();
    let spread = std_dev.max(spread_floor(metric, mean, requests, bucket_requests));
    let z = (x - mean) / spread;
    // too few samples, or too sparse a series to judge bucket by bucket
    let warm = m.baseline.samples >= settings.warmup_buckets
        && requests >= settings.min_requests.max(f64::MIN_POSITIVE);
    let deviates = warm
        && z.abs() >= settings.threshold
        && big_enough(settings, metric, mean, x)
        && (settings.detect_drops || z > 0.0);
    let sign: i8 = if z >= 0.0 { 1 } else { -1 };
    let mut event = None;
    let mut restored = false;
    if let Some(open) = &mut m.open {
        let a = &mut open.anomaly;
        let same_way = (a.kind == AnomalyKind::Spike) == (sign > 0);
        a.observed = x;
        a.updated_ns = bucket_end;
        a.z_score = z;
        a.baseline_mean = mean;
        a.baseline_std_dev = std_dev;
        if deviates && same_way {
            open.calm = 0;
            a.buckets = a.buckets.saturating_add(1);
            if z.abs() > a.max_abs_z_score {
                a.max_abs_z_score = z.abs();
                a.peak = x;
            }
            event = Some(AnomalyEvent::Updated(a.clone()));
        } else {
            open.calm = open.calm.saturating_add(1);
            if open.calm >= settings.cooldown_buckets {
                let mut closed = a.clone();
                closed.open = false;
                closed.ended_ns = Some(bucket_end);
                // back to where it was before: the pre-incident baseline holds again; else
                // the new level was learnt, and the old baseline is kept for a while
                let before = open.before;
                if normal_for(&before) {
                    m.baseline = before;
                    restored = true;
                } else {
                    m.previous = Some(Box::new((before, bucket_ns.saturating_add(REMEMBER_NS))));
                }
                event = Some(AnomalyEvent::Closed(closed));
                m.open = None;
            }
        }
    } else if deviates {
        let baseline = m.baseline;
        let streak = match &mut m.streak {
            Some(st) if st.sign == sign => {
                st.len += 1;
                st
            }
            other => other.insert(Box::new(Streak {
                len: 1,
                sign,
                start: bucket_ns,
                max_z: 0.0,
                peak: x,
                before: baseline,
            })),
        };
        if z.abs() > streak.max_z {
            streak.max_z = z.abs();
            streak.peak = x;
        }
        if streak.len >= settings.consecutive.max(1) {
            let st = **streak;
            let anomaly = Anomaly {
                id: anomaly_id(&key.tenant, key.model.as_deref(), metric.as_str(), st.start),
                tenant: key.tenant.clone(),
                model: key.model.clone(),
                metric: metric.as_str().to_string(),
                kind: if sign > 0 {
                    AnomalyKind::Spike
                } else {
                    AnomalyKind::Drop
                },
                open: true,
                started_ns: st.start,
                updated_ns: bucket_end,
                ended_ns: None,
                observed: x,
                peak: st.peak,
                baseline_mean: mean,
                baseline_std_dev: std_dev,
                z_score: z,
                max_abs_z_score: st.max_z,
                buckets: st.len,
                total: 0,
            };
            event = Some(AnomalyEvent::Opened(anomaly.clone()));
            m.open = Some(Box::new(Open {
                anomaly,
                calm: 0,
                before: st.before,
            }));
            m.streak = None;
        }
    } else {
        m.streak = None;
    }
    // normal buckets update mean and spread at the usual pace; a deviating one moves only the
    // mean, slowly, so an incident neither becomes normal at once nor widens the spread it is
    // judged by, while a lasting change of level is still learnt, ten times slower
    if deviates && !restored {
        m.baseline.shift_mean(x, alpha * DEVIATING_WEIGHT);
    } else {
        m.baseline.update(x, alpha);
    }
    event
}

/// A bucket with nothing to judge for an open anomaly (a rate with too few calls): it counts
/// towards the cool-down, so the anomaly closes once the metric stops being seen.
fn quiet(
    settings: &DetectorSettings,
    m: &mut MetricState,
    bucket_end: i64,
) -> Option<AnomalyEvent> {
    let open = m.open.as_mut()?;
    open.calm = open.calm.saturating_add(1);
    if open.calm < settings.cooldown_buckets {
        return None;
    }
    let mut closed = open.anomaly.clone();
    closed.open = false;
    closed.ended_ns = Some(bucket_end);
    closed.updated_ns = bucket_end;
    m.open = None;
    Some(AnomalyEvent::Closed(closed))
}

/// A stable id: the same incident gets the same id from any replica and after a restart.
pub fn anomaly_id(tenant: &str, model: Option<&str>, metric: &str, start_ns: i64) -> String {
    let mut h = Sha256::new();
    for part in [tenant, model.unwrap_or(""), metric] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(start_ns.to_be_bytes());
    let digest = h.finalize();
    let mut id = String::from("an_");
    for b in digest.iter().take(12) {
        id.push_str(&format!("{b:02x}"));
    }
    id
}
