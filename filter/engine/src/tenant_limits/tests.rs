use super::*;
use crate::provider::Provider;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Headers(Vec<(&'static str, &'static str)>);
impl RequestFacts for Headers {
    fn header(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
    fn property(&self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

fn limits(json: &str) -> Result<TenantLimits, EngineError> {
    let raw: RawTenantLimits = serde_json::from_str(json).unwrap();
    TenantLimits::new(&raw, &["openai", "anthropic"])
}

fn demand(input: u64, output: u64) -> Demand {
    Demand {
        requests: 1,
        input_tokens: input,
        output_tokens: output,
        cost_micro_usd: 0,
    }
}

/// Unix milliseconds of midnight UTC of a date.
fn day_ms(y: i64, m: i64, d: i64) -> u64 {
    u64::try_from(crate::civil::days_from_civil(y, m, d)).unwrap() * 86_400_000
}

// 2026-12-07T10:15:30.250Z
const NOW: u64 = 1_796_638_530_250;

fn admitted(a: &Admission) -> &Reservation {
    match a {
        Admission::Admitted(r) => r,
        Admission::Refused(r) => panic!("refused: {r:?}"),
    }
}

fn refused(a: &Admission) -> &Refusal {
    match a {
        Admission::Refused(r) => r,
        Admission::Admitted(_) => panic!("admitted"),
    }
}

#[test]
fn windows_are_aligned_to_utc() {
    assert_eq!(
        Window::Minute.bounds(NOW),
        (1_796_638_500_000, 1_796_638_560_000)
    );
    assert_eq!(Window::Second.bounds(NOW), (NOW - 250, NOW + 750));
    let (start, end) = Window::Day.bounds(NOW);
    assert_eq!(start % 86_400_000, 0);
    assert_eq!(end - start, 86_400_000);
    assert!(start <= NOW && NOW < end);
    // December 2026: the 1st to January 1st 2027
    let (start, end) = Window::Month.bounds(NOW);
    assert_eq!(start, day_ms(2026, 12, 1));
    assert_eq!(end, day_ms(2027, 1, 1));
    assert_eq!((end - start) / 86_400_000, 31);
    // a leap February
    let feb = day_ms(2028, 2, 15);
    let (s, e) = Window::Month.bounds(feb);
    assert_eq!((e - s) / 86_400_000, 29);
    assert_eq!(
        crate::civil::civil_from_days(crate::civil::days_from_civil(2028, 2, 29)),
        (2028, 2, 29)
    );
    assert_eq!(crate::civil::civil_from_days(0), (1970, 1, 1));
}

#[test]
fn exactly_the_limit_is_admitted_then_the_next_window_starts_empty() {
    let l =
        limits(r#"{"default": [{"metric": "requests", "limit": 10, "per": "minute"}]}"#).unwrap();
    let store = MemoryStore::default();
    let plan = l.plan("team-a", None);
    let results: Vec<_> = (0..30)
        .map(|_| {
            l.admit(
                &store,
                "team-a",
                plan,
                ("openai", None),
                &demand(10, 10),
                NOW,
            )
        })
        .collect();
    let ok = results
        .iter()
        .filter(|a| matches!(a, Admission::Admitted(_)))
        .count();
    assert_eq!(ok, 10);
    let r = refused(&results[10]);
    assert_eq!(r.rule().id.as_ref(), "requests/minute");
    assert_eq!((r.used, r.requested), (10, 1));
    assert_eq!(r.retry_after_ms, 29_750);
    assert_eq!(retry_after_secs(r.retry_after_ms), 30);
    // the last admitted one saw 0 remaining
    assert_eq!(admitted(&results[9]).states()[0].remaining, 0);
    // another tenant is unaffected
    admitted(&l.admit(&store, "team-b", plan, ("openai", None), &demand(1, 1), NOW));
    // the next minute
    admitted(&l.admit(
        &store,
        "team-a",
        plan,
        ("openai", None),
        &demand(1, 1),
        NOW + 30_000,
    ));
}

#[test]
fn token_reservations_never_sum_past_the_limit_and_settling_frees_the_rest() {
    let l = limits(
        r#"{"default": [{"metric": "requests", "limit": 100, "per": "minute"},
                        {"metric": "total_tokens", "limit": 5000, "per": "minute"}]}"#,
    )
    .unwrap();
    let store = MemoryStore::default();
    let plan = l.plan("t", None);
    let need = demand(50, 1000);
    let mut held = Vec::new();
    loop {
        match l.admit(&store, "t", plan, ("openai", None), &need, NOW) {
            Admission::Admitted(r) => held.push(r),
            Admission::Refused(r) => {
                assert_eq!(r.rule().id.as_ref(), "total_tokens/minute");
                assert_eq!((r.used, r.requested), (4200, 1050));
                assert_eq!(r.state.remaining, 800);
                break;
            }
        }
    }
    assert_eq!(held.len(), 4);
    let tokens = counter_key("total_tokens/minute", "t");
    let requests = counter_key("requests/minute", "t");
    assert_eq!(store.counter(&tokens).unwrap().used, 4200);
    // the refusal took nothing from the request limit (all or nothing)
    assert_eq!(store.counter(&requests).unwrap().used, 4);
    // two calls end having used 60 and 100 tokens: their reservations shrink to that
    l.settle(&store, &held[0], &demand(40, 20), NOW + 1000);
    l.settle(&store, &held[1], &demand(50, 50), NOW + 1000);
    assert_eq!(store.counter(&tokens).unwrap().used, 2100 + 60 + 100);
    // a failed call gives everything back, its request too
    l.settle(&store, &held[2], &Demand::default(), NOW + 1000);
    assert_eq!(store.counter(&tokens).unwrap().used, 1050 + 160);
    assert_eq!(store.counter(&requests).unwrap().used, 3);
    admitted(&l.admit(&store, "t", plan, ("openai", None), &need, NOW + 2000));
}

#[test]
fn a_request_larger_than_the_limit_never_fits() {
    let l = limits(r#"{"default": [{"metric": "output_tokens", "limit": 500, "per": "minute"}]}"#)
        .unwrap();
    let store = MemoryStore::default();
    let plan = l.plan("t", None);
    let r = l.admit(&store, "t", plan, ("openai", None), &demand(1, 501), NOW);
    assert_eq!(refused(&r).used, 0);
    assert!(store
        .counter(&counter_key("output_tokens/minute", "t"))
        .is_none());
}

#[test]
fn settling_after_the_window_ended_adds_only_the_excess_to_the_new_window() {
    let l = limits(r#"{"default": [{"metric": "input_tokens", "limit": 1000, "per": "minute"}]}"#)
        .unwrap();
    let store = MemoryStore::default();
    let plan = l.plan("t", None);
    let key = counter_key("input_tokens/minute", "t");
    let a = l.admit(&store, "t", plan, ("openai", None), &demand(100, 0), NOW);
    let b = l.admit(&store, "t", plan, ("openai", None), &demand(100, 0), NOW);
    // a used less, b more, both settled a minute later
    l.settle(&store, admitted(&a), &demand(40, 0), NOW + 60_000);
    assert_eq!(
        store.counter(&key).unwrap(),
        Counter {
            window_start: Window::Minute.bounds(NOW).0,
            used: 200
        },
        "a release of an ended window changes nothing"
    );
    l.settle(&store, admitted(&b), &demand(130, 0), NOW + 60_000);
    let c = store.counter(&key).unwrap();
    assert_eq!(c.window_start, Window::Minute.bounds(NOW + 60_000).0);
    assert_eq!(c.used, 30);
}

#[test]
fn concurrent_workers_admit_exactly_the_limit() {
    let l = Arc::new(
        limits(
            r#"{"default": [{"metric": "requests", "limit": 300, "per": "hour"},
                            {"metric": "input_tokens", "limit": 1000000, "per": "hour"}]}"#,
        )
        .unwrap(),
    );
    let store = Arc::new(MemoryStore::default());
    let admitted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (l, store, admitted) = (l.clone(), store.clone(), admitted.clone());
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let plan = l.plan("t", None);
                    let a = l.admit(&*store, "t", plan, ("openai", None), &demand(7, 0), NOW);
                    if matches!(a, Admission::Admitted(_)) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 300);
    assert_eq!(
        store
            .counter(&counter_key("input_tokens/hour", "t"))
            .unwrap()
            .used,
        2100
    );
}

/// A store where another worker writes (one unit more, or `touch`: the same count) after each
/// of the first `races` reads; `broken`: every read fails.
#[derive(Debug)]
struct Contended {
    inner: MemoryStore,
    races: AtomicUsize,
    touch: bool,
    broken: bool,
}

impl CounterStore for Contended {
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        if self.broken {
            return Err(StoreError);
        }
        let v = self.inner.read(key)?;
        if self.races.load(Ordering::Relaxed) > 0 {
            self.races.fetch_sub(1, Ordering::Relaxed);
            // another worker takes one unit meanwhile
            let c = v
                .as_ref()
                .and_then(|(b, _)| Counter::decode(b))
                .unwrap_or(Counter {
                    window_start: Window::Minute.bounds(NOW).0,
                    used: 0,
                });
            let bumped = Counter {
                used: c.used + u64::from(!self.touch),
                ..c
            };
            self.inner
                .write(key, &bumped.encode(), v.as_ref().map(|(_, n)| *n))
                .unwrap();
        }
        Ok(v)
    }
    fn write(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<(), WriteError> {
        self.inner.write(key, value, version)
    }
}

#[test]
fn lost_races_are_retried_and_endless_ones_follow_the_failure_policy() {
    let json = |policy: &str| {
        format!(
            r#"{{"default": [{{"metric": "requests", "limit": 5, "per": "minute"}}],
                "on_store_failure": "{policy}"}}"#
        )
    };
    // three lost races: the fourth try counts, on top of the other worker's three
    let l = limits(&json("refuse")).unwrap();
    let store = Contended {
        inner: MemoryStore::default(),
        races: AtomicUsize::new(3),
        touch: false,
        broken: false,
    };
    let plan = l.plan("t", None);
    admitted(&l.admit(&store, "t", plan, ("openai", None), &demand(1, 1), NOW));
    assert_eq!(
        store
            .inner
            .counter(&counter_key("requests/minute", "t"))
            .unwrap()
            .used,
        4
    );
    // other workers that fill the limit meanwhile: a plain refusal
    let store = Contended {
        inner: MemoryStore::default(),
        races: AtomicUsize::new(10_000),
        touch: false,
        broken: false,
    };
    let r = l.admit(&store, "t", plan, ("openai", None), &demand(1, 1), NOW);
    assert_eq!(refused(&r).reason, RefusalReason::OverLimit);
    assert_eq!(refused(&r).used, 5);
    // races without end (past MAX_CAS_ATTEMPTS): the store counts as failed
    let store = Contended {
        inner: MemoryStore::default(),
        races: AtomicUsize::new(10_000),
        touch: true,
        broken: false,
    };
    let r = l.admit(&store, "t", plan, ("openai", None), &demand(1, 1), NOW);
    assert_eq!(refused(&r).reason, RefusalReason::StoreUnavailable);
    assert_eq!(
        store.races.load(Ordering::Relaxed),
        10_000 - MAX_CAS_ATTEMPTS
    );
    let broken = Contended {
        inner: MemoryStore::default(),
        races: AtomicUsize::new(0),
        touch: false,
        broken: true,
    };
    let r = l.admit(&broken, "t", plan, ("openai", None), &demand(1, 1), NOW);
    assert_eq!(refused(&r).reason, RefusalReason::StoreUnavailable);
    let body: serde_json::Value =
        serde_json::from_slice(&refusal_body(Provider::Openai, refused(&r))).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // and admitted, uncounted, under `allow`
    let l = limits(&json("allow")).unwrap();
    let plan = l.plan("t", None);
    let r = l.admit(&broken, "t", plan, ("openai", None), &demand(1, 1), NOW);
    assert!(admitted(&r).is_empty());
}

#[test]
fn override_beats_tier_beats_default() {
    let l = limits(
        r#"{"tier": {"from": "header", "name": "x-tier"},
            "default": [{"metric": "requests", "limit": 1, "per": "minute"}],
            "tiers": {"gold": [{"metric": "requests", "limit": 100, "per": "minute"}]},
            "tenants": {"vip": [{"metric": "requests", "limit": 1000, "per": "minute"}]}}"#,
    )
    .unwrap();
    let limit_of =
        |tenant: &str, facts: &Headers| l.plan(tenant, l.tier_of(facts).as_deref())[0].limit;
    let gold = Headers(vec![("x-tier", "gold")]);
    let unknown = Headers(vec![("x-tier", "platinum")]);
    let none = Headers(vec![]);
    assert_eq!(limit_of("a", &gold), 100);
    assert_eq!(limit_of("a", &unknown), 1);
    assert_eq!(limit_of("a", &none), 1);
    assert_eq!(limit_of("vip", &none), 1000);
    assert_eq!(limit_of("vip", &gold), 1000);
}

#[test]
fn scoped_limits_count_only_their_model_or_route() {
    let l = limits(
        r#"{"default": [{"metric": "requests", "limit": 1, "per": "minute", "model": "gpt-4o"},
                        {"metric": "requests", "limit": 1, "per": "minute", "route": "anthropic"}]}"#,
    )
    .unwrap();
    let store = MemoryStore::default();
    let plan = l.plan("t", None);
    let go = |route, model| l.admit(&store, "t", plan, (route, model), &demand(1, 1), NOW);
    admitted(&go("openai", Some("gpt-4o-2024-08-06")));
    let r = go("openai", Some("GPT-4o"));
    assert_eq!(
        refused(&r).rule().id.as_ref(),
        "requests/minute@model=gpt-4o"
    );
    // gpt-4o-mini is another model; no model at all is not gpt-4o
    admitted(&go("openai", Some("gpt-4o-mini")));
    admitted(&go("openai", None));
    admitted(&go("anthropic", Some("claude-sonnet-4-5")));
    assert_eq!(
        refused(&go("anthropic", None)).rule().id.as_ref(),
        "requests/minute@route=anthropic"
    );
}

#[test]
fn bad_configuration_names_the_field() {
    let err = |json: &str| match limits(json) {
        Err(EngineError::Config { path, .. }) => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        err(r#"{"default": [{"metric": "requests", "limit": 0, "per": "minute"}]}"#),
        "tenant_limits.default[0].limit"
    );
    assert_eq!(
        err(
            r#"{"tiers": {"gold": [{"metric": "requests", "limit": 1, "per": "minute"},
                                   {"metric": "requests", "limit": 2, "per": "minute"}]},
                "tier": {"from": "header", "name": "x-tier"}}"#
        ),
        "tenant_limits.tiers.gold[1]"
    );
    assert_eq!(err(r#"{"tiers": {"gold": []}}"#), "tenant_limits.tier");
    assert_eq!(
        err(
            r#"{"default": [{"metric": "requests", "limit": 1, "per": "minute", "route": "nope"}]}"#
        ),
        "tenant_limits"
    );
    assert_eq!(
        err(
            r#"{"tenants": {"a": [{"metric": "requests", "limit": 1, "per": "day", "model": ""}]}}"#
        ),
        "tenant_limits.tenants.a[0].model"
    );
    // unknown fields and values are serde's errors
    assert!(serde_json::from_str::<RawTenantLimits>(r#"{"defaults": []}"#).is_err());
    assert!(serde_json::from_str::<RawTenantLimits>(
        r#"{"default": [{"metric": "requests", "limit": 1, "per": "week"}]}"#
    )
    .is_err());
}

#[test]
fn demand_reserves_the_cap_or_the_default_and_prices_it() {
    let l = limits(r#"{"default_max_output_tokens": 256}"#).unwrap();
    let prices = PriceTable::builtin();
    let shape = RequestShape {
        model: Some("gpt-4o-mini"),
        input_estimate: 1000,
        input_upper_bound: 4000,
        max_output_tokens: None,
    };
    let d = l.demand(&shape, &prices);
    assert_eq!((d.input_tokens, d.output_tokens), (1000, 256));
    let price = prices.lookup("gpt-4o-mini").unwrap();
    assert_eq!(
        d.cost_micro_usd,
        price.cost_micro_usd(&crate::usage::Usage {
            input_tokens: 1000,
            output_tokens: 256,
            ..Default::default()
        })
    );
    assert!(d.cost_micro_usd > 0);
    let d = l.demand(
        &RequestShape {
            max_output_tokens: Some(10),
            model: Some("no-such-model"),
            ..shape
        },
        &prices,
    );
    assert_eq!((d.output_tokens, d.cost_micro_usd), (10, 0));
    let strict = limits(r#"{"input_reserve": "upper_bound"}"#).unwrap();
    assert_eq!(strict.demand(&shape, &prices).input_tokens, 4000);
}

#[test]
fn headers_and_bodies_speak_each_providers_language() {
    assert_eq!(reset_text(17), "17ms");
    assert_eq!(reset_text(1000), "1s");
    assert_eq!(reset_text(1500), "1.5s");
    assert_eq!(reset_text(360_000), "6m0s");
    assert_eq!(reset_text(3_723_250), "1h2m3.25s");
    let rule = |metric, limit| LimitRule {
        id: Arc::from("x"),
        metric,
        window: Window::Minute,
        limit,
        model: None,
        route: None,
    };
    let states = [
        LimitState {
            rule: rule(Metric::Requests, 60),
            remaining: 59,
            reset_ms: 1000,
        },
        LimitState {
            rule: rule(Metric::TotalTokens, 5000),
            remaining: 4000,
            reset_ms: 30_000,
        },
        LimitState {
            rule: rule(Metric::InputTokens, 100_000),
            remaining: 300,
            reset_ms: 3_600_000,
        },
        LimitState {
            rule: rule(Metric::CostMicroUsd, 1),
            remaining: 0,
            reset_ms: 1,
        },
    ];
    let h: BTreeMap<_, _> = rate_headers(&states).into_iter().collect();
    assert_eq!(h["x-ratelimit-limit-requests"], "60");
    assert_eq!(h["x-ratelimit-remaining-requests"], "59");
    assert_eq!(h["x-ratelimit-reset-requests"], "1s");
    assert_eq!(h["x-ratelimit-limit-tokens"], "100000");
    assert_eq!(h["x-ratelimit-remaining-tokens"], "300");
    assert_eq!(h["x-ratelimit-reset-tokens"], "1h0m0s");
    assert_eq!(h.len(), 6);

    let refusal = |metric| Refusal {
        reason: RefusalReason::OverLimit,
        used: 10,
        requested: 1,
        retry_after_ms: 6000,
        state: LimitState {
            rule: rule(metric, 10),
            remaining: 0,
            reset_ms: 6000,
        },
    };
    let body = |p, m| -> serde_json::Value {
        serde_json::from_slice(&refusal_body(p, &refusal(m))).unwrap()
    };
    let o = body(Provider::Openai, Metric::Requests);
    assert_eq!(o["error"]["code"], "rate_limit_exceeded");
    assert_eq!(o["error"]["type"], "requests");
    assert!(o["error"]["message"].as_str().unwrap().contains("6s"));
    assert_eq!(
        body(Provider::Openai, Metric::TotalTokens)["error"]["type"],
        "tokens"
    );
    let q = body(Provider::Openai, Metric::CostMicroUsd);
    assert_eq!(q["error"]["code"], "insufficient_quota");
    let a = body(Provider::Anthropic, Metric::Requests);
    assert_eq!(a["type"], "error");
    assert_eq!(a["error"]["type"], "rate_limit_error");
    let g = body(Provider::Gemini, Metric::Requests);
    assert_eq!(g["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(g["error"]["code"], 429);
}

#[test]
fn counters_round_trip_and_garbage_reads_as_empty() {
    let c = Counter {
        window_start: NOW,
        used: u64::MAX - 1,
    };
    assert_eq!(Counter::decode(&c.encode()), Some(c));
    assert_eq!(Counter::decode(b"short"), None);
    // a garbage value is overwritten as a fresh counter, not an error
    let l =
        limits(r#"{"default": [{"metric": "requests", "limit": 2, "per": "minute"}]}"#).unwrap();
    let store = MemoryStore::default();
    let key = counter_key("requests/minute", "t");
    store.write(&key, b"???", None).unwrap();
    let plan = l.plan("t", None);
    admitted(&l.admit(&store, "t", plan, ("openai", None), &demand(1, 1), NOW));
    assert_eq!(store.counter(&key).unwrap().used, 1);
}

#[test]
fn a_request_timed_before_a_newer_window_counts_in_it_and_never_sends_the_counter_back() {
    // per second: B (at 1.001 s) is counted first; A, whose headers came at 0.999 s, is admitted
    // after it; the counter must stay in B's window with both, and C must see both
    let l =
        limits(r#"{"default": [{"metric": "requests", "limit": 3, "per": "second"}]}"#).unwrap();
    let store = MemoryStore::default();
    let key = counter_key("requests/second", "t");
    let plan = l.plan("t", None);
    let at = |ms: u64| l.admit(&store, "t", plan, ("openai", None), &demand(1, 1), ms);
    let base = 1_796_638_531_000;
    let b = at(base + 1);
    let a = at(base - 1);
    assert_eq!(
        store.counter(&key).unwrap(),
        Counter {
            window_start: base,
            used: 2
        }
    );
    assert_eq!(admitted(&a).states()[0].remaining, 1);
    assert_eq!(admitted(&a).states()[0].reset_ms, 1001);
    admitted(&at(base + 2));
    assert!(matches!(at(base + 3), Admission::Refused(_)));
    // settling A (reserved in B's window) lowers that window's count
    l.settle(&store, admitted(&a), &Demand::default(), base + 5);
    assert_eq!(store.counter(&key).unwrap().used, 2);
    let _ = b;
}
