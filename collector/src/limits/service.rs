//! The gRPC services of shared limits: `envoy.service.ratelimit.v3.RateLimitService`
//! (reserve) and `tollgate.v1.LimitLedger` (settle), authenticated by the ingest tokens. Each
//! descriptor is one counter: its entries name it, its limit is the `tollgate_limit` entry (or
//! the 32-bit override), its window the override's unit, its amount its own `hits_addend` (or
//! the request's, or 1). Without Redis configured, or when Redis fails, calls get `UNAVAILABLE`
//! and the filter applies its `on_unreachable` policy. A tenant's money counter (`limit` entry
//! `cost_micro_usd/<window>`, no model or route scope) is seeded from the spend the collector has
//! stored for that tenant in the window before its first reservation, so a Redis that lost its
//! data, or limits switched on mid-month, still count what was spent.

use super::counters::{counter_key, parse_key, Ask, Counters, KEY_PREFIX};
use crate::ingest::BearerTokens;
use crate::storage::{Storage, UsageQuery};
use tollgate_engine::tenant_limits::{unit_of, window_of, Window, LIMIT_VALUE_KEY};
use tollgate_proto::rls::rate_limit_response::{Code, DescriptorStatus, RateLimit};
use tollgate_proto::rls::rate_limit_service_server::RateLimitService;
use tollgate_proto::rls::{RateLimitRequest, RateLimitResponse};
use tollgate_proto::v1::limit_ledger_server::LimitLedger;
use tollgate_proto::v1::{SettleRequest, SettleResponse};
use tonic::{Request, Response, Status};

/// Most descriptors in one call.
const MAX_DESCRIPTORS: usize = 64;

/// Both services over the Redis counters (absent: not configured) and the stored spend.
#[derive(Clone)]
pub struct LimitService<S> {
    counters: Option<Counters>,
    tokens: BearerTokens,
    storage: S,
}

impl<S: Storage + Clone> LimitService<S> {
    pub fn new(counters: Option<Counters>, tokens: BearerTokens, storage: S) -> Self {
        LimitService {
            counters,
            tokens,
            storage,
        }
    }

    /// Seeds each unscoped money counter that does not exist yet (first reservation of the
    /// window, or a Redis that lost its data) from the tenant's stored spend in its window; the
    /// first writer wins.
    async fn seed(&self, counters: &Counters, asks: &[(Ask, Window)], now: u64) {
        for (ask, window) in asks {
            let Some((_, start, tenant, limit)) = parse_key(&ask.key) else {
                continue;
            };
            if limit != format!("cost_micro_usd/{}", window.as_str()) {
                continue;
            }
            match counters.exists(&ask.key).await {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "redis: counter lookup failed");
                    continue;
                }
            }
            let query = UsageQuery {
                tenant: Some(tenant.to_string()),
                from_ns: i64::try_from(start.saturating_mul(1_000_000)).ok(),
                ..UsageQuery::default()
            };
            let spent: i64 = match self.storage.usage(query).await {
                Ok(rows) => rows.iter().map(|r| r.cost_micro_usd).sum(),
                Err(e) => {
                    tracing::warn!(error = %e, tenant, "stored spend unavailable; counter not seeded");
                    continue;
                }
            };
            let value = u64::try_from(spent).unwrap_or(0);
            match counters.seed(ask, value, now).await {
                Ok(true) => tracing::info!(
                    tenant,
                    limit,
                    micro_usd = value,
                    "money counter seeded from stored spend"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "redis: seeding failed"),
            }
        }
    }
}

impl<S> LimitService<S> {
    fn counters(&self) -> Result<&Counters, Status> {
        self.counters.as_ref().ok_or_else(|| {
            Status::unavailable(
                "shared limits are off: no `limits.redis` in the collector's configuration",
            )
        })
    }
}

fn check_domain(domain: &str) -> Result<(), Status> {
    if domain.is_empty() || domain.contains(':') || domain.len() > 128 {
        return Err(Status::invalid_argument(
            "domain: must be 1 to 128 bytes without `:`",
        ));
    }
    Ok(())
}

/// The counters a request asks for, with each one's window, naming the bad field.
fn asks(r: &RateLimitRequest, now_ms: u64) -> Result<Vec<(Ask, Window)>, Status> {
    check_domain(&r.domain)?;
    if r.descriptors.is_empty() || r.descriptors.len() > MAX_DESCRIPTORS {
        return Err(Status::invalid_argument(format!(
            "descriptors: 1 to {MAX_DESCRIPTORS} expected"
        )));
    }
    let default_hits = u64::from(r.hits_addend.max(1));
    r.descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let bad = |why: &str| Status::invalid_argument(format!("descriptors[{i}]: {why}"));
            let full = d
                .entries
                .iter()
                .find(|e| e.key == LIMIT_VALUE_KEY)
                .map(|e| {
                    e.value
                        .parse::<u64>()
                        .map_err(|_| bad("tollgate_limit is not a number"))
                })
                .transpose()?;
            let over = d
                .limit
                .as_ref()
                .ok_or_else(|| bad("no limit override (this service has no limits of its own)"))?;
            let limit = full.unwrap_or(u64::from(over.requests_per_unit));
            let window = window_of(over.unit).ok_or_else(|| bad("unit must be second to month"))?;
            let entries: Vec<(&str, &str)> = d
                .entries
                .iter()
                .filter(|e| e.key != LIMIT_VALUE_KEY)
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect();
            if entries.is_empty() {
                return Err(bad("no entries"));
            }
            let (start, end) = window.bounds(now_ms);
            Ok((
                Ask {
                    key: counter_key(&r.domain, start, &entries),
                    amount: d.hits_addend.unwrap_or(default_hits),
                    limit,
                    window_end_ms: end,
                },
                window,
            ))
        })
        .collect()
}

#[tonic::async_trait]
impl<S: Storage + Clone> RateLimitService for LimitService<S> {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.tokens.check(&request)?;
        let counters = self.counters()?;
        let r = request.into_inner();
        let now = crate::time::now_ms();
        let asks = asks(&r, now)?;
        self.seed(counters, &asks, now).await;
        let plain: Vec<Ask> = asks.iter().map(|(a, _)| a.clone()).collect();
        let reserved = counters.reserve(&plain, now).await.map_err(|e| {
            tracing::warn!(error = %e, "redis: reservation failed");
            Status::unavailable("limit counters unavailable")
        })?;
        let statuses = asks
            .iter()
            .enumerate()
            .map(|(i, (a, w))| {
                let used = reserved.used.get(i).copied().unwrap_or(0);
                let over = reserved.refused == Some(i);
                let left_ms = a.window_end_ms.saturating_sub(now);
                DescriptorStatus {
                    code: if over { Code::OverLimit } else { Code::Ok } as i32,
                    current_limit: Some(RateLimit {
                        requests_per_unit: u32::try_from(a.limit).unwrap_or(u32::MAX),
                        unit: unit_of(*w) as i32,
                        name: a.key.clone(),
                    }),
                    limit_remaining: u32::try_from(a.limit.saturating_sub(used))
                        .unwrap_or(u32::MAX),
                    duration_until_reset: Some(prost_types::Duration {
                        seconds: i64::try_from(left_ms / 1000).unwrap_or(i64::MAX),
                        nanos: i32::try_from((left_ms % 1000) * 1_000_000).unwrap_or(0),
                    }),
                }
            })
            .collect();
        let overall = if reserved.refused.is_some() {
            Code::OverLimit
        } else {
            Code::Ok
        };
        Ok(Response::new(RateLimitResponse {
            overall_code: overall as i32,
            statuses,
        }))
    }
}

#[tonic::async_trait]
impl<S: Storage + Clone> LimitLedger for LimitService<S> {
    async fn settle(
        &self,
        request: Request<SettleRequest>,
    ) -> Result<Response<SettleResponse>, Status> {
        self.tokens.check(&request)?;
        let counters = self.counters()?;
        let r = request.into_inner();
        check_domain(&r.domain)?;
        let prefix = format!("{KEY_PREFIX}{}:", r.domain);
        if let Some(i) = r
            .settlements
            .iter()
            .position(|s| !s.counter.starts_with(&prefix))
        {
            return Err(Status::invalid_argument(format!(
                "settlements[{i}].counter: not a counter of domain {}",
                r.domain
            )));
        }
        for s in &r.settlements {
            counters.settle(&s.counter, s.delta).await.map_err(|e| {
                tracing::warn!(error = %e, "redis: settlement failed");
                Status::unavailable("limit counters unavailable")
            })?;
        }
        Ok(Response::new(SettleResponse {}))
    }
}
