//! Per-tenant limits and budgets: requests, tokens and money per fixed window, enforced by
//! reserving a request's largest possible cost before it is forwarded and settling the
//! difference when its usage is known (ADR 0017). Counters live in a [`CounterStore`] — in
//! Envoy the proxy-wasm shared data of the VM id, updated by compare-and-swap, so every worker of
//! one Envoy counts in the same place; in tests a map. Nothing here reads a clock or talks to a
//! host: time is a parameter and the store is a trait, so admission, settlement and the counters'
//! races are tested natively.

use crate::civil::{civil_from_days, days_from_civil};
use crate::error::EngineError;
use crate::price::PriceTable;
use crate::tenant::{RawTenant, RawTenantSource, RequestFacts, TenantResolver, TenantSource};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Compare-and-swap attempts on one counter before the store counts as unavailable.
pub const MAX_CAS_ATTEMPTS: usize = 64;

/// Prefix of every counter key in the store.
pub const KEY_PREFIX: &str = "tollgate.limit.v1|";

// ---------------------------------------------------------------------------------------------
// configuration as written

/// The `tenant_limits` section of the filter configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTenantLimits {
    /// Limits of every tenant that has neither an override nor a tier.
    pub default: Vec<RawLimit>,
    /// Where a request's tier name comes from (a source as in `tenant.sources`); absent: no
    /// tiers. A request whose tier is missing or unknown gets `default`.
    pub tier: Option<RawTenantSource>,
    /// Limits by tier name.
    pub tiers: BTreeMap<String, Vec<RawLimit>>,
    /// Limits of single tenants, by tenant id; they replace the tier's and the default's.
    pub tenants: BTreeMap<String, Vec<RawLimit>>,
    /// Output tokens reserved for a request that sets no `max_tokens` (or its equivalent).
    pub default_max_output_tokens: u64,
    /// How a request's input tokens are reserved: `estimate` (default: the engine's estimate
    /// from the text; a budget may be exceeded by the estimate's error) or `upper_bound` (one
    /// token per byte of text plus framing: never under the real count, admits fewer requests).
    pub input_reserve: InputReserve,
    /// What happens when the counters cannot be updated (the store refuses or keeps changing
    /// under contention): `allow` (default; the request passes uncounted) or `refuse` (429).
    pub on_store_failure: StoreFailure,
    /// Counters shared by several Envoys through a rate-limit service (Envoy's
    /// `envoy.service.ratelimit.v3` protocol, answered by Tollgate's collector over Redis).
    /// Absent: each Envoy counts in its own shared data.
    pub shared: Option<RawSharedLimits>,
}

/// The `tenant_limits.shared` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSharedLimits {
    /// Envoy cluster of the rate-limit service (HTTP/2), e.g. `tollgate_collector`.
    pub cluster: String,
    /// The rate-limit domain: counters of one domain are shared.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// How long a request waits for the answer before the `on_unreachable` policy applies (ms).
    #[serde(default = "default_shared_timeout")]
    pub timeout_ms: u64,
    /// Bearer token sent with every call (`authorization` metadata): the collector's ingest token.
    #[serde(default)]
    pub token: Option<String>,
    /// When the service does not answer: `local` (default: count in this Envoy's shared data
    /// instead) or `refuse` (429).
    #[serde(default)]
    pub on_unreachable: Unreachable,
}

fn default_domain() -> String {
    "tollgate".to_string()
}

fn default_shared_timeout() -> u64 {
    200
}

/// What a request gets when the shared service does not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    #[default]
    Local,
    Refuse,
}

impl Default for RawTenantLimits {
    fn default() -> Self {
        RawTenantLimits {
            default: Vec::new(),
            tier: None,
            tiers: BTreeMap::new(),
            tenants: BTreeMap::new(),
            default_max_output_tokens: 4096,
            input_reserve: InputReserve::Estimate,
            on_store_failure: StoreFailure::Allow,
            shared: None,
        }
    }
}

/// One limit as written: `{"metric": "requests", "limit": 10, "per": "minute"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    pub metric: Metric,
    /// The most the metric may reach in one window (cost in micro-USD: 50 USD is 50000000).
    pub limit: u64,
    pub per: Window,
    /// Only requests for this model (the price table's matching: `gpt-4o` also covers
    /// `gpt-4o-2024-08-06`).
    #[serde(default)]
    pub model: Option<String>,
    /// Only requests of the route with this name.
    #[serde(default)]
    pub route: Option<String>,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Requests,
    InputTokens,
    OutputTokens,
    TotalTokens,
    CostMicroUsd,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::InputTokens => "input_tokens",
            Metric::OutputTokens => "output_tokens",
            Metric::TotalTokens => "total_tokens",
            Metric::CostMicroUsd => "cost_micro_usd",
        }
    }

    fn is_tokens(self) -> bool {
        matches!(
            self,
            Metric::InputTokens | Metric::OutputTokens | Metric::TotalTokens
        )
    }
}

/// A fixed window, aligned to UTC (minutes start at :00, days at midnight, months on the 1st).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
    Month,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// The window holding `now_ms` (unix milliseconds): its start and its end.
    pub fn bounds(self, now_ms: u64) -> (u64, u64) {
        let fixed = |len: u64| {
            let start = now_ms - now_ms % len;
            (start, start + len)
        };
        match self {
            Window::Second => fixed(1_000),
            Window::Minute => fixed(60_000),
            Window::Hour => fixed(3_600_000),
            Window::Day => fixed(86_400_000),
            Window::Month => {
                let day = i64::try_from(now_ms / 86_400_000).unwrap_or(i64::MAX);
                let (y, m, _) = civil_from_days(day);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let ms = |d: i64| u64::try_from(d).unwrap_or(0) * 86_400_000;
                (ms(days_from_civil(y, m, 1)), ms(days_from_civil(ny, nm, 1)))
            }
        }
    }
}

/// How input tokens are reserved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputReserve {
    #[default]
    Estimate,
    UpperBound,
}

/// What a store failure means for the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    #[default]
    Allow,
    Refuse,
}

// ---------------------------------------------------------------------------------------------
// compiled

/// One compiled limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    /// `metric/per` plus its scope (`total_tokens/minute@model=gpt-4o`): the counter's name,
    /// the `rate_limited` value of a summary, the label of the refusal metric.
    pub id: Arc<str>,
    pub metric: Metric,
    pub window: Window,
    pub limit: u64,
    model: Option<String>,
    route: Option<String>,
}

impl LimitRule {
    fn applies(&self, route: &str, model: Option<&str>) -> bool {
        self.route.as_deref().is_none_or(|r| r == route)
            && self
                .model
                .as_deref()
                .is_none_or(|m| model.is_some_and(|model| model_matches(m, model)))
    }
}

/// `model` is `key` or a dated snapshot of it (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`,
/// `key-latest`), ignoring case and a provider prefix (`models/`, `openai/`); `gpt-4o` does not
/// cover `gpt-4o-mini`.
fn model_matches(key: &str, model: &str) -> bool {
    let lower = model.trim().to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let key = key.trim().to_ascii_lowercase();
    if name == key {
        return true;
    }
    name.strip_prefix(key.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()) || rest == "latest")
}

/// The compiled `tenant_limits` section, built once with the engine.
#[derive(Debug)]
pub struct TenantLimits {
    default: Vec<LimitRule>,
    tiers: BTreeMap<String, Vec<LimitRule>>,
    tenants: BTreeMap<String, Vec<LimitRule>>,
    tier: Option<TenantResolver>,
    default_max_output_tokens: u64,
    input_reserve: InputReserve,
    on_store_failure: StoreFailure,
    shared: Option<RawSharedLimits>,
}

fn compile_plan(raw: &[RawLimit], path: &str) -> Result<Vec<LimitRule>, EngineError> {
    let mut out: Vec<LimitRule> = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let field = format!("{path}[{i}]");
        if l.limit == 0 {
            return Err(EngineError::config(
                format!("{field}.limit"),
                "must be at least 1 (remove the limit, or block the tenant another way)",
            ));
        }
        for (name, v) in [("model", &l.model), ("route", &l.route)] {
            if v.as_deref()
                .is_some_and(|v| v.trim().is_empty() || v.contains('|'))
            {
                return Err(EngineError::config(
                    format!("{field}.{name}"),
                    "must be non-empty and without `|`",
                ));
            }
        }
        let mut id = format!("{}/{}", l.metric.as_str(), l.per.as_str());
        if let Some(m) = &l.model {
            id.push_str(&format!("@model={}", m.trim().to_ascii_lowercase()));
        }
        if let Some(r) = &l.route {
            id.push_str(&format!("@route={r}"));
        }
        if out.iter().any(|o| &*o.id == id.as_str()) {
            return Err(EngineError::config(
                field,
                format!("a second `{id}` limit (one per metric, window and scope)"),
            ));
        }
        out.push(LimitRule {
            id: Arc::from(id),
            metric: l.metric,
            window: l.per,
            limit: l.limit,
            model: l.model.clone(),
            route: l.route.clone(),
        });
    }
    Ok(out)
}

impl TenantLimits {
    /// Checks and compiles the section; errors name the field (`tenant_limits.tiers.gold[1].limit`).
    /// `routes`: the names of the configured routes (a limit's `route` must be one of them).
    pub fn new(raw: &RawTenantLimits, routes: &[&str]) -> Result<Self, EngineError> {
        let default = compile_plan(&raw.default, "tenant_limits.default")?;
        let mut tiers = BTreeMap::new();
        for (name, plan) in &raw.tiers {
            tiers.insert(
                name.clone(),
                compile_plan(plan, &format!("tenant_limits.tiers.{name}"))?,
            );
        }
        let mut tenants = BTreeMap::new();
        for (name, plan) in &raw.tenants {
            tenants.insert(
                name.clone(),
                compile_plan(plan, &format!("tenant_limits.tenants.{name}"))?,
            );
        }
        let all = || {
            default
                .iter()
                .chain(tiers.values().flatten())
                .chain(tenants.values().flatten())
        };
        if let Some(r) = all().find_map(|l| l.route.as_deref().filter(|r| !routes.contains(r))) {
            return Err(EngineError::config(
                "tenant_limits",
                format!("a limit names route `{r}`, which `routes` does not define"),
            ));
        }
        if let Some(s) = &raw.shared {
            if s.cluster.trim().is_empty() {
                return Err(EngineError::config(
                    "tenant_limits.shared.cluster",
                    "must name the Envoy cluster of the rate-limit service",
                ));
            }
            if s.domain.trim().is_empty() || s.domain.contains(':') {
                return Err(EngineError::config(
                    "tenant_limits.shared.domain",
                    "must be non-empty and without `:`",
                ));
            }
            if s.timeout_ms == 0 || s.timeout_ms > 10_000 {
                return Err(EngineError::config(
                    "tenant_limits.shared.timeout_ms",
                    "must be between 1 and 10000",
                ));
            }
        }
        if !tiers.is_empty() && raw.tier.is_none() {
            return Err(EngineError::config(
                "tenant_limits.tier",
                "`tiers` are defined but no `tier` source says which applies",
            ));
        }
        let tier = match &raw.tier {
            Some(source) => Some(
                TenantResolver::new(&RawTenant {
                    sources: vec![source.clone()],
                    default: "-".to_string(),
                })
                .map_err(|e| match e {
                    EngineError::Config { path, message } => EngineError::config(
                        path.replace("tenant.sources[0]", "tenant_limits.tier"),
                        message,
                    ),
                    other => other,
                })?,
            ),
            None => None,
        };
        Ok(TenantLimits {
            default,
            tiers,
            tenants,
            tier,
            default_max_output_tokens: raw.default_max_output_tokens,
            input_reserve: raw.input_reserve,
            on_store_failure: raw.on_store_failure,
            shared: raw.shared.clone(),
        })
    }

    /// The shared rate-limit service, when counters are shared by several Envoys.
    pub fn shared(&self) -> Option<&RawSharedLimits> {
        self.shared.as_ref()
    }

    /// Whether any limit is configured.
    pub fn is_empty(&self) -> bool {
        self.default.is_empty()
            && self.tiers.values().all(Vec::is_empty)
            && self.tenants.values().all(Vec::is_empty)
    }

    /// The request's tier name, when tiers are configured and its source yields one.
    pub fn tier_of(&self, facts: &dyn RequestFacts) -> Option<String> {
        let tier = self.tier.as_ref()?.resolve(facts);
        (tier.source != TenantSource::Default).then_some(tier.id)
    }

    /// The limits of `tenant` (its override, else its tier's, else the default).
    pub fn plan(&self, tenant: &str, tier: Option<&str>) -> &[LimitRule] {
        if let Some(p) = self.tenants.get(tenant) {
            return p;
        }
        tier.and_then(|t| self.tiers.get(t))
            .map_or(&self.default, |p| p)
    }

    /// The most a request can cost, to be reserved before it is forwarded.
    pub fn demand(&self, request: &RequestShape<'_>, prices: &PriceTable) -> Demand {
        let input = match self.input_reserve {
            InputReserve::Estimate => request.input_estimate,
            InputReserve::UpperBound => request.input_upper_bound.max(request.input_estimate),
        };
        let output = request
            .max_output_tokens
            .unwrap_or(self.default_max_output_tokens);
        let cost = request.model.and_then(|m| {
            prices.cost(
                m,
                &crate::usage::Usage {
                    input_tokens: input,
                    output_tokens: output,
                    ..Default::default()
                },
            )
        });
        Demand {
            requests: 1,
            input_tokens: input,
            output_tokens: output,
            cost_micro_usd: cost.unwrap_or(0),
        }
    }

    /// Reserves `demand` on every limit of `plan` that applies to the request, all or nothing.
    pub fn admit(
        &self,
        store: &dyn CounterStore,
        tenant: &str,
        plan: &[LimitRule],
        scope: (&str, Option<&str>),
        demand: &Demand,
        now_ms: u64,
    ) -> Admission {
        let (route, model) = scope;
        let mut held: Vec<Held> = Vec::new();
        let mut states: Vec<LimitState> = Vec::new();
        for rule in plan.iter().filter(|r| r.applies(route, model)) {
            let amount = demand.amount(rule.metric);
            let key = counter_key(&rule.id, tenant);
            let (start, end) = rule.window.bounds(now_ms);
            // a counter already in a later window (another worker admitted a request that
            // arrived after this one) is never sent back: this request counts in that window
            let outcome = update(store, &key, |stored| {
                let (window_start, used) = match stored {
                    Some(c) if c.window_start >= start => (c.window_start, c.used),
                    _ => (start, 0),
                };
                if used.saturating_add(amount) > rule.limit {
                    return Err((window_start, used));
                }
                Ok(Counter {
                    window_start,
                    used: used + amount,
                })
            });
            let reset_of = |window_start: u64| {
                rule.window
                    .bounds(window_start.max(now_ms))
                    .1
                    .max(end)
                    .saturating_sub(now_ms)
            };
            match outcome {
                Ok(Ok(c)) => {
                    held.push(Held {
                        key,
                        rule: rule.clone(),
                        window_start: c.window_start,
                        amount,
                    });
                    states.push(LimitState {
                        rule: rule.clone(),
                        remaining: rule.limit.saturating_sub(c.used),
                        reset_ms: reset_of(c.window_start),
                    });
                }
                Ok(Err((window_start, used))) => {
                    let end_ms = reset_of(window_start);
                    self.release_all(store, &held, now_ms);
                    return Admission::Refused(Refusal {
                        reason: RefusalReason::OverLimit,
                        used,
                        requested: amount,
                        retry_after_ms: end_ms,
                        state: LimitState {
                            rule: rule.clone(),
                            remaining: rule.limit.saturating_sub(used),
                            reset_ms: end_ms,
                        },
                    });
                }
                Err(StoreError) => match self.on_store_failure {
                    StoreFailure::Allow => {
                        // counted where it could be; this limit is not enforced for the request
                        states.push(LimitState {
                            rule: rule.clone(),
                            remaining: rule.limit,
                            reset_ms: end - now_ms,
                        });
                    }
                    StoreFailure::Refuse => {
                        self.release_all(store, &held, now_ms);
                        return Admission::Refused(Refusal {
                            reason: RefusalReason::StoreUnavailable,
                            used: 0,
                            requested: amount,
                            retry_after_ms: 1000,
                            state: LimitState {
                                rule: rule.clone(),
                                remaining: 0,
                                reset_ms: 1000,
                            },
                        });
                    }
                },
            }
        }
        Admission::Admitted(Reservation {
            held,
            remote: Vec::new(),
            states,
        })
    }

    fn release_all(&self, store: &dyn CounterStore, held: &[Held], now_ms: u64) {
        for h in held {
            settle_one(store, h, 0, now_ms);
        }
    }

    /// Replaces a reservation by what the request really used (`actual`; all zero releases it
    /// whole: a refused or failed call). Counters of a window that has ended are not reduced;
    /// use beyond the reservation is added to the current window.
    /// Returns the `tollgate.v1.SettleRequest` to send when the reservation was made with the
    /// shared service.
    pub fn settle(
        &self,
        store: &dyn CounterStore,
        reservation: &Reservation,
        actual: &Demand,
        now_ms: u64,
    ) -> Option<Vec<u8>> {
        for h in &reservation.held {
            settle_one(store, h, actual.amount(h.rule.metric), now_ms);
        }
        self.settlement(reservation, actual)
    }
}

fn settle_one(store: &dyn CounterStore, h: &Held, actual: u64, now_ms: u64) {
    if actual == h.amount {
        return;
    }
    let (current, _) = h.rule.window.bounds(now_ms);
    // best effort: a store that fails here loses the correction, never the request
    let _ = update(store, &h.key, |stored| {
        if h.window_start >= current {
            return match stored {
                Some(c) if c.window_start == h.window_start => Ok(Counter {
                    window_start: c.window_start,
                    used: c.used.saturating_add(actual).saturating_sub(h.amount),
                }),
                _ => Err(()),
            };
        }
        // the reservation's window has ended: only use beyond it counts, now
        if actual <= h.amount {
            return Err(());
        }
        let excess = actual - h.amount;
        Ok(match stored {
            Some(c) if c.window_start == current => Counter {
                window_start: current,
                used: c.used.saturating_add(excess),
            },
            _ => Counter {
                window_start: current,
                used: excess,
            },
        })
    });
}

/// The store key of a limit's counter for a tenant.
pub fn counter_key(rule_id: &str, tenant: &str) -> String {
    format!("{KEY_PREFIX}{rule_id}|{tenant}")
}

/// What a request needs, per metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micro_usd: u64,
}

impl Demand {
    fn amount(&self, metric: Metric) -> u64 {
        match metric {
            Metric::Requests => self.requests,
            Metric::InputTokens => self.input_tokens,
            Metric::OutputTokens => self.output_tokens,
            Metric::TotalTokens => self.input_tokens.saturating_add(self.output_tokens),
            Metric::CostMicroUsd => self.cost_micro_usd,
        }
    }

    /// What a finished call used (one request; its usage and cost, when known).
    pub fn used(usage: Option<&crate::usage::Usage>, cost: Option<u64>) -> Demand {
        Demand {
            requests: 1,
            input_tokens: usage.map_or(0, |u| u.input_tokens),
            output_tokens: usage.map_or(0, |u| u.output_tokens),
            cost_micro_usd: cost.unwrap_or(0),
        }
    }
}

/// What the reservation needs to know of a parsed request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestShape<'a> {
    pub model: Option<&'a str>,
    pub input_estimate: u64,
    /// One token per byte of message text plus framing.
    pub input_upper_bound: u64,
    pub max_output_tokens: Option<u64>,
}

/// One limit after an admission: how much is left and when it resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    pub rule: LimitRule,
    pub remaining: u64,
    pub reset_ms: u64,
}

/// One counter a reservation holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    key: String,
    rule: LimitRule,
    window_start: u64,
    amount: u64,
}

/// What an admitted request holds until it is settled: counters of this Envoy's store, or of
/// the shared service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    held: Vec<Held>,
    remote: Vec<shared::RemoteHeld>,
    states: Vec<LimitState>,
}

impl Reservation {
    /// The applicable limits after this reservation.
    pub fn states(&self) -> &[LimitState] {
        &self.states
    }

    /// Whether it holds anything to settle.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.remote.is_empty()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// It does not fit in what is left of the limit.
    OverLimit,
    /// The counters could not be updated and `on_store_failure` is `refuse`.
    StoreUnavailable,
}

/// A request that does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    /// The limit's count in the current window before this request.
    pub used: u64,
    /// What this request needed of it.
    pub requested: u64,
    pub retry_after_ms: u64,
    /// The limit that refused, with what is left of it (for the headers).
    pub state: LimitState,
}

impl Refusal {
    /// The limit that refused.
    pub fn rule(&self) -> &LimitRule {
        &self.state.rule
    }
}

/// The answer of [`TenantLimits::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted(Reservation),
    Refused(Refusal),
}

// ---------------------------------------------------------------------------------------------
// the counter store

/// A counter as stored: the window it counts and the amount so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub window_start: u64,
    pub used: u64,
}

impl Counter {
    /// Sixteen bytes: window start (unix ms) and count, little-endian.
    pub fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let (a, b) = out.split_at_mut(8);
        a.copy_from_slice(&self.window_start.to_le_bytes());
        b.copy_from_slice(&self.used.to_le_bytes());
        out
    }

    /// The counter in `bytes`, if they hold one.
    pub fn decode(bytes: &[u8]) -> Option<Counter> {
        let a: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let b: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        Some(Counter {
            window_start: u64::from_le_bytes(a),
            used: u64::from_le_bytes(b),
        })
    }
}

/// The store could not be read or written (or kept changing for [`MAX_CAS_ATTEMPTS`] tries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreError;

/// A write that lost a race, or a store that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The value changed since it was read: read again.
    Changed,
    Failed,
}

/// Versioned byte values shared by every worker (proxy-wasm shared data in Envoy).
pub trait CounterStore: std::fmt::Debug {
    /// The value under `key` and its version; `Ok(None)` when there is none yet.
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Writes `value` if the key is still at `version` (`None`: still absent).
    fn write(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<(), WriteError>;
}

/// Read, decide, compare-and-swap, again on a lost race (bounded). `decide` sees the stored
/// counter and returns the new one, or `Err` to leave it; the outer `Err` is a store failure.
fn update<E>(
    store: &dyn CounterStore,
    key: &str,
    decide: impl Fn(Option<Counter>) -> Result<Counter, E>,
) -> Result<Result<Counter, E>, StoreError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let read = store.read(key)?;
        let (stored, version) = match &read {
            Some((bytes, v)) => (Counter::decode(bytes), Some(*v)),
            None => (None, None),
        };
        let next = match decide(stored) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        match store.write(key, &next.encode(), version) {
            Ok(()) => return Ok(Ok(next)),
            Err(WriteError::Changed) => continue,
            Err(WriteError::Failed) => return Err(StoreError),
        }
    }
    Err(StoreError)
}

/// A store in one process's memory (the CLI, tests): versions as proxy-wasm numbers them.
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: std::sync::Mutex<BTreeMap<String, (Vec<u8>, u32)>>,
}

impl CounterStore for MemoryStore {
    fn read(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let map = self.values.lock().map_err(|_| StoreError)?;
        Ok(map.get(key).cloned())
    }

    fn write(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<(), WriteError> {
        let mut map = self.values.lock().map_err(|_| WriteError::Failed)?;
        let current = map.get(key).map(|(_, v)| *v);
        if current != version {
            return Err(WriteError::Changed);
        }
        let next = current.map_or(1, |v| v.wrapping_add(1));
        map.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

impl MemoryStore {
    /// The counter under `key` (tests, the CLI).
    pub fn counter(&self, key: &str) -> Option<Counter> {
        let map = self.values.lock().ok()?;
        map.get(key).and_then(|(b, _)| Counter::decode(b))
    }
}

// ---------------------------------------------------------------------------------------------
// what clients see

/// A duration the way OpenAI writes its reset headers (Go's format: `17ms`, `1s`, `6m0s`,
/// `1h2m3s`, `1.5s`).
pub fn reset_text(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// `x-ratelimit-*` headers for the tightest request limit and the tightest token limit.
pub fn rate_headers(states: &[LimitState]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let tightest = |pick: fn(Metric) -> bool| {
        states
            .iter()
            .filter(|s| pick(s.rule.metric))
            .min_by_key(|s| (s.remaining, std::cmp::Reverse(s.reset_ms)))
    };
    if let Some(s) = tightest(|m| m == Metric::Requests) {
        out.push(("x-ratelimit-limit-requests", s.rule.limit.to_string()));
        out.push(("x-ratelimit-remaining-requests", s.remaining.to_string()));
        out.push(("x-ratelimit-reset-requests", reset_text(s.reset_ms)));
    }
    if let Some(s) = tightest(Metric::is_tokens) {
        out.push(("x-ratelimit-limit-tokens", s.rule.limit.to_string()));
        out.push(("x-ratelimit-remaining-tokens", s.remaining.to_string()));
        out.push(("x-ratelimit-reset-tokens", reset_text(s.reset_ms)));
    }
    out
}

/// The body of a 429 in the provider's own shape: OpenAI `rate_limit_exceeded` (or
/// `insufficient_quota` for a money budget), Anthropic `rate_limit_error`, Gemini
/// `RESOURCE_EXHAUSTED`.
pub fn refusal_body(provider: crate::provider::Provider, refusal: &Refusal) -> Vec<u8> {
    use crate::provider::Provider;
    let rule = refusal.rule();
    let budget = rule.metric == Metric::CostMicroUsd;
    let retry = reset_text(refusal.retry_after_ms);
    let message = if refusal.reason == RefusalReason::StoreUnavailable {
        format!(
            "Rate limit counters are unavailable ({}); the gateway refuses until they answer. Please try again in {retry}.",
            rule.id
        )
    } else if budget {
        format!(
            "Budget exhausted for cost per {} (micro-USD): limit {}, used {}, requested {}. Try again in {retry}.",
            rule.window.as_str(),
            rule.limit,
            refusal.used,
            refusal.requested
        )
    } else {
        format!(
            "Rate limit reached for {} per {}: limit {}, used {}, requested {}. Please try again in {retry}.",
            rule.metric.as_str().replace('_', " "),
            rule.window.as_str(),
            rule.limit,
            refusal.used,
            refusal.requested
        )
    };
    let value = match provider {
        Provider::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": "rate_limit_error", "message": message, "tollgate_limit": &*rule.id},
        }),
        Provider::Gemini => serde_json::json!({
            "error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TOLLGATE_LIMIT", "domain": "tollgate", "metadata": {"limit": &*rule.id}}]},
        }),
        _ => {
            let (kind, code) = if budget {
                ("insufficient_quota", "insufficient_quota")
            } else if rule.metric == Metric::Requests {
                ("requests", "rate_limit_exceeded")
            } else {
                ("tokens", "rate_limit_exceeded")
            };
            serde_json::json!({
                "error": {"message": message, "type": kind, "param": null, "code": code},
            })
        }
    };
    serde_json::to_vec(&value).unwrap_or_else(|_| message.into_bytes())
}

/// `retry-after` in whole seconds, rounded up (at least 1).
pub fn retry_after_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

mod shared;
pub use shared::{unit_of, window_of, SharedAnswer, SharedAsk, LIMIT_VALUE_KEY};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
