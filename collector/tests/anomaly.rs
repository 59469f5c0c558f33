//! The detector on seeded synthetic traffic over simulated weeks: one-minute buckets fed
//! directly (the detector has no clock), with daily cycles and Poisson noise. A quiet week
//! raises nothing; a 5× cost spike, a stopped tenant, an injection burst and a secret in a
//! response are raised within two buckets; a restored state detects at once (no new warm-up).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

use std::collections::BTreeMap;
use tollgate_collector::anomaly::detector::{
    BucketValues, Detector, DetectorState, RuleObservation, SeriesKey,
};
use tollgate_collector::anomaly::{AnomalyEvent, AnomalyKind, DetectorSettings, RuleKind};

const MINUTE: i64 = 60_000_000_000;
const DAY_BUCKETS: i64 = 1440;
/// 2026-11-02T00:00:00Z, a Monday.
const START: i64 = 1_793_577_600_000_000_000;

/// A small seeded generator (xorshift) with the draws the traffic needs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Poisson(λ) by multiplying uniforms (λ stays under a few hundred here).
    fn poisson(&mut self, lambda: f64) -> u64 {
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.unit();
        while p > limit {
            k += 1;
            p *= self.unit();
        }
        k
    }

    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| self.unit() < p).count() as u64
    }
}

/// How a tenant behaves: requests per minute at the daily peak, and a cost multiplier.
#[derive(Clone, Copy)]
struct Profile {
    peak_per_minute: f64,
    cost_factor: f64,
    stopped: bool,
}

impl Profile {
    fn normal(peak: f64) -> Profile {
        Profile {
            peak_per_minute: peak,
            cost_factor: 1.0,
            stopped: false,
        }
    }
}

/// One minute of one tenant split over two models: daily cycle (the quietest hour at a fifth
/// of the peak), Poisson arrivals, per-request cost and tokens with noise, 1% errors, 2% blocks.
fn minute(
    rng: &mut Rng,
    tenant: &str,
    bucket: i64,
    p: Profile,
) -> BTreeMap<SeriesKey, BucketValues> {
    let phase = (bucket % DAY_BUCKETS) as f64 / DAY_BUCKETS as f64;
    let level = 0.6 - 0.4 * (2.0 * std::f64::consts::PI * phase).cos();
    let mut out = BTreeMap::new();
    if p.stopped {
        return out;
    }
    let mut total = BucketValues::default();
    let mut latencies = Vec::new();
    for (model, share) in [("gpt-4o", 0.7), ("claude-haiku-4-5", 0.3)] {
        let n = rng.poisson(p.peak_per_minute * level * share);
        let mut v = BucketValues {
            requests: n,
            ..BucketValues::default()
        };
        let mut model_latencies = Vec::new();
        for _ in 0..n {
            let input = 500 + (rng.unit() * 1500.0) as u64;
            let output = 100 + (rng.unit() * 400.0) as u64;
            v.input_tokens += input;
            v.output_tokens += output;
            v.cost_micro_usd += ((input * 2 + output * 8) as f64 * p.cost_factor) as i64;
            model_latencies.push(400.0 + rng.unit() * 800.0);
        }
        v.errors = rng.binomial(n, 0.01);
        v.blocked = rng.binomial(n, 0.02);
        model_latencies.sort_by(f64::total_cmp);
        v.latency_p95_ms = p95(&model_latencies);
        latencies.extend(model_latencies);
        total.requests += v.requests;
        total.input_tokens += v.input_tokens;
        total.output_tokens += v.output_tokens;
        total.cost_micro_usd += v.cost_micro_usd;
        total.errors += v.errors;
        total.blocked += v.blocked;
        out.insert(
            SeriesKey {
                tenant: tenant.into(),
                model: Some(model.into()),
            },
            v,
        );
    }
    latencies.sort_by(f64::total_cmp);
    total.latency_p95_ms = p95(&latencies);
    out.insert(
        SeriesKey {
            tenant: tenant.into(),
            model: None,
        },
        total,
    );
    out
}

fn p95(sorted: &[f64]) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((0.95 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Traffic of several tenants for `buckets` minutes from `from`, each tenant's profile chosen
/// per bucket; returns every event with the bucket index it came at.
fn run(
    detector: &mut Detector,
    rng: &mut Rng,
    from: i64,
    buckets: i64,
    profile: impl Fn(&str, i64) -> Profile,
) -> Vec<(i64, AnomalyEvent)> {
    let tenants = [("acme", 60.0), ("beta", 12.0), ("gamma", 200.0)];
    let mut events = Vec::new();
    for b in from..from + buckets {
        let mut all = BTreeMap::new();
        for (tenant, peak) in tenants {
            let p = profile(tenant, b);
            let p = Profile {
                peak_per_minute: peak * p.peak_per_minute,
                ..p
            };
            all.extend(minute(rng, tenant, b, p));
        }
        for e in detector.evaluate(START + b * MINUTE, &all, &[]) {
            events.push((b, e));
        }
    }
    events
}

fn warmed(seed: u64) -> (Detector, Rng) {
    let mut detector = Detector::new(DetectorSettings::default());
    let mut rng = Rng(seed);
    let events = run(&mut detector, &mut rng, 0, 7 * DAY_BUCKETS, |_, _| {
        Profile::normal(1.0)
    });
    assert!(
        events.is_empty(),
        "a quiet week raised {} events, first {:?}",
        events.len(),
        events.first()
    );
    (detector, rng)
}

#[test]
fn a_stable_week_with_daily_cycles_raises_nothing() {
    // three seeds, three tenants from 12 to 200 requests a minute at peak, two models each:
    // 9 series × 7 metrics × 10,080 buckets per seed without one anomaly
    for seed in [1, 2, 3] {
        let (detector, _) = warmed(seed);
        assert_eq!(detector.state().series(), 9);
        assert!(detector.state().open().is_empty());
    }
}

#[test]
fn a_five_fold_cost_spike_is_raised_within_two_buckets_updated_and_closed() {
    let (mut detector, mut rng) = warmed(7);
    let spike_at = 7 * DAY_BUCKETS + 600; // Monday 10:00, busy hours
    let events = run(
        &mut detector,
        &mut rng,
        7 * DAY_BUCKETS,
        700,
        |tenant, b| {
            let mut p = Profile::normal(1.0);
            if tenant == "acme" && (spike_at..spike_at + 20).contains(&b) {
                p.cost_factor = 5.0;
            }
            p
        },
    );
    let opened: Vec<_> = events
        .iter()
        .filter_map(|(b, e)| match e {
            AnomalyEvent::Opened(a) => Some((*b, a)),
            _ => None,
        })
        .collect();
    let (at, a) = opened
        .iter()
        .find(|(_, a)| a.metric == "cost_micro_usd" && a.model.is_none())
        .expect("the cost spike was raised");
    assert_eq!(a.tenant, "acme");
    assert_eq!(a.kind, AnomalyKind::Spike);
    assert!(
        *at <= spike_at + 1,
        "raised at bucket {at}, spike at {spike_at}"
    );
    assert_eq!(a.started_ns, START + spike_at * MINUTE);
    assert!(
        a.z_score >= 3.0 && a.observed > 3.0 * a.baseline_mean,
        "{a:?}"
    );
    // nothing about the other tenants, nor about metrics the spike did not move
    assert!(
        opened.iter().all(|(_, a)| a.tenant == "acme"
            && a.metric == "cost_micro_usd"
            && a.kind == AnomalyKind::Spike),
        "{opened:?}"
    );
    // one anomaly per series for the whole incident: updated while it lasts, then closed
    let id = a.id.clone();
    let updates = events
        .iter()
        .filter(|(_, e)| matches!(e, AnomalyEvent::Updated(x) if x.id == id))
        .count();
    assert!(updates >= 15, "{updates} updates");
    let closed = events
        .iter()
        .find_map(|(b, e)| match e {
            AnomalyEvent::Closed(x) if x.id == id => Some((*b, x.clone())),
            _ => None,
        })
        .expect("closed once the spike ended");
    assert!(
        closed.0 >= spike_at + 20 && closed.0 <= spike_at + 26,
        "{closed:?}"
    );
    assert!(closed.1.buckets >= 19, "{:?}", closed.1);
    assert_eq!(
        events
            .iter()
            .filter(|(_, e)| matches!(e, AnomalyEvent::Opened(x) if x.id == id))
            .count(),
        1
    );
}

#[test]
fn a_tenant_that_stops_is_raised_as_a_drop() {
    let (mut detector, mut rng) = warmed(11);
    let stop_at = 7 * DAY_BUCKETS + 720; // Monday noon
    let events = run(
        &mut detector,
        &mut rng,
        7 * DAY_BUCKETS,
        800,
        |tenant, b| {
            let mut p = Profile::normal(1.0);
            p.stopped = tenant == "gamma" && b >= stop_at;
            p
        },
    );
    let drop = events
        .iter()
        .find_map(|(b, e)| match e {
            AnomalyEvent::Opened(a)
                if a.metric == "requests" && a.model.is_none() && a.tenant == "gamma" =>
            {
                Some((*b, a.clone()))
            }
            _ => None,
        })
        .expect("the stop was raised");
    assert_eq!(drop.1.kind, AnomalyKind::Drop);
    assert!(drop.0 <= stop_at + 1, "{drop:?}");
    assert_eq!(drop.1.observed, 0.0, "idle buckets count as zeros");
}

#[test]
fn a_restored_state_detects_at_once() {
    let (detector, mut rng) = warmed(5);
    // what a checkpoint stores and a restart loads
    let saved = detector.state().to_bytes().unwrap();
    let state = DetectorState::from_bytes(&saved).unwrap();
    assert_eq!(&state, detector.state());
    let mut restored = Detector::resume(DetectorSettings::default(), state);
    let at = 7 * DAY_BUCKETS + 600;
    // Monday morning, then acme's cost jumps at 10:00
    let events = run(
        &mut restored,
        &mut rng,
        7 * DAY_BUCKETS,
        603,
        |tenant, b| {
            let mut p = Profile::normal(1.0);
            if tenant == "acme" && b >= at {
                p.cost_factor = 5.0;
            }
            p
        },
    );
    assert!(
        events.iter().any(|(b, e)| *b <= at + 1
            && matches!(e, AnomalyEvent::Opened(a) if a.tenant == "acme" && a.metric == "cost_micro_usd")),
        "{events:?}"
    );
    // a fresh detector would still be warming up
    let mut fresh = Detector::new(DetectorSettings::default());
    let events = run(&mut fresh, &mut rng, at + 3, 3, |_, _| Profile {
        cost_factor: 5.0,
        ..Profile::normal(1.0)
    });
    assert!(events.is_empty());
}

#[test]
fn findings_rules_raise_bursts_and_secrets_once_per_incident() {
    let mut detector = Detector::new(DetectorSettings::default());
    let none = BTreeMap::new();
    let burst = |count| RuleObservation {
        tenant: "acme".into(),
        rule: RuleKind::InjectionBurst,
        count,
    };
    // four blocked injections in a minute are not a burst; five are
    assert!(detector.evaluate(START, &none, &[burst(4)]).is_empty());
    let e = detector.evaluate(START + MINUTE, &none, &[burst(5)]);
    assert!(
        matches!(&e[..], [AnomalyEvent::Opened(a)] if a.metric == "injection_burst" && a.kind == AnomalyKind::Rule),
        "{e:?}"
    );
    let e = detector.evaluate(START + 2 * MINUTE, &none, &[burst(9)]);
    assert!(
        matches!(&e[..], [AnomalyEvent::Updated(a)] if a.total == 14 && a.peak == 9.0),
        "{e:?}"
    );
    // five quiet buckets close it
    let mut closed = Vec::new();
    for i in 3..8 {
        closed.extend(detector.evaluate(START + i * MINUTE, &none, &[]));
    }
    assert!(
        matches!(&closed[..], [AnomalyEvent::Closed(a)] if !a.open),
        "{closed:?}"
    );
    // one secret in a response is enough
    let e = detector.evaluate(
        START + 8 * MINUTE,
        &none,
        &[RuleObservation {
            tenant: "beta".into(),
            rule: RuleKind::SecretInResponse,
            count: 1,
        }],
    );
    assert!(
        matches!(&e[..], [AnomalyEvent::Opened(a)] if a.tenant == "beta" && a.metric == "secret_in_response"),
        "{e:?}"
    );
    // buckets already evaluated are ignored
    assert!(detector.evaluate(START, &none, &[burst(50)]).is_empty());
}

#[test]
fn false_alarms_stay_rare_over_twenty_simulated_weeks() {
    // 20 seeds × 9 series × 7 metrics × 10,080 buckets: the default settings' false-alarm rate
    // on noisy cyclic traffic (docs/anomalies.md quotes it)
    let mut opened = Vec::new();
    for seed in 100..120 {
        let mut detector = Detector::new(DetectorSettings::default());
        let mut rng = Rng(seed);
        let events = run(&mut detector, &mut rng, 0, 7 * DAY_BUCKETS, |_, _| {
            Profile::normal(1.0)
        });
        opened.extend(events.into_iter().filter_map(|(_, e)| match e {
            AnomalyEvent::Opened(a) => Some((seed, a.tenant, a.model, a.metric)),
            _ => None,
        }));
    }
    eprintln!("false alarms over 20 weeks: {opened:?}");
    assert!(opened.len() <= 2, "{opened:?}");
}

#[test]
fn a_long_spike_ends_without_a_false_drop_after_it() {
    // three hours of 5× cost: the mean creeps up meanwhile; once the spike closes, the
    // pre-incident baseline is restored, so normal traffic is not a "drop"
    let (mut detector, mut rng) = warmed(3);
    let spike_at = 7 * DAY_BUCKETS + 540;
    let events = run(
        &mut detector,
        &mut rng,
        7 * DAY_BUCKETS,
        960,
        |tenant, b| {
            let mut p = Profile::normal(1.0);
            if tenant == "gamma" && (spike_at..spike_at + 180).contains(&b) {
                p.cost_factor = 5.0;
            }
            p
        },
    );
    let opened: Vec<_> = events
        .iter()
        .filter_map(|(b, e)| match e {
            AnomalyEvent::Opened(a) => Some((*b, a.tenant.clone(), a.metric.clone(), a.kind)),
            _ => None,
        })
        .collect();
    assert!(
        opened
            .iter()
            .any(|(_, t, m, k)| t == "gamma" && m == "cost_micro_usd" && *k == AnomalyKind::Spike),
        "{opened:?}"
    );
    assert!(
        opened.iter().all(|(_, _, _, k)| *k == AnomalyKind::Spike),
        "no drop after the spike: {opened:?}"
    );
    assert!(detector.state().open().is_empty(), "everything closed");
}

#[test]
fn an_error_rate_anomaly_closes_when_calls_become_too_few_to_judge() {
    let settings = DetectorSettings {
        warmup_buckets: 10,
        ..DetectorSettings::default()
    };
    let mut detector = Detector::new(settings);
    let key = SeriesKey {
        tenant: "acme".into(),
        model: None,
    };
    let bucket = |requests, errors| {
        BTreeMap::from([(
            key.clone(),
            BucketValues {
                requests,
                errors,
                cost_micro_usd: requests as i64 * 1000,
                input_tokens: requests * 100,
                output_tokens: requests * 10,
                ..BucketValues::default()
            },
        )])
    };
    let mut events = Vec::new();
    for b in 0..30 {
        events.extend(detector.evaluate(START + b * MINUTE, &bucket(100, 1), &[]));
    }
    assert!(events.is_empty(), "{events:?}");
    // the provider fails: half the calls error
    for b in 30..32 {
        events.extend(detector.evaluate(START + b * MINUTE, &bucket(100, 50), &[]));
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AnomalyEvent::Opened(a) if a.metric == "error_rate")),
        "{events:?}"
    );
    // clients back off to a handful of calls: the rate is no longer judged, and the
    // anomaly closes after the cool-down instead of staying open for ever
    for b in 32..40 {
        events.extend(detector.evaluate(START + b * MINUTE, &bucket(5, 3), &[]));
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AnomalyEvent::Closed(a) if a.metric == "error_rate")),
        "{events:?}"
    );
}
