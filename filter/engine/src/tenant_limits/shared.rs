//! Limits shared by several Envoys: the reservation as an `envoy.service.ratelimit.v3`
//! `ShouldRateLimit` call (one descriptor per limit: the tenant, the limit's id, the limit as an
//! override and in full, the request's amount as that descriptor's `hits_addend`), its answer
//! read back into an admission, and the settlement as a `tollgate.v1.LimitLedger/Settle` call.
//! Encoding and decoding only: the shell sends the bytes and hands back what came.

use super::{
    Demand, LimitRule, LimitState, Refusal, RefusalReason, Reservation, TenantLimits, Window,
};
use prost::Message;
use tollgate_proto::rls::{
    rate_limit_descriptor::{Entry, RateLimitOverride},
    rate_limit_response::Code,
    RateLimitDescriptor, RateLimitRequest, RateLimitResponse, RateLimitUnit,
};
use tollgate_proto::v1::{SettleRequest, Settlement};

/// Descriptor key of the tenant.
pub const TENANT_KEY: &str = "tenant";
/// Descriptor key of the limit's id (`total_tokens/minute`).
pub const LIMIT_KEY: &str = "limit";
/// Descriptor key of the limit in full (the override's `requests_per_unit` is 32-bit).
pub const LIMIT_VALUE_KEY: &str = "tollgate_limit";

/// A counter of the shared service a reservation holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RemoteHeld {
    /// The counter's name as the service gave it (empty: it gave none, so it cannot be settled).
    counter: String,
    rule: LimitRule,
    amount: u64,
}

/// A reservation asked of the shared service: the call's body and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAsk {
    /// `RateLimitRequest`, encoded.
    pub body: Vec<u8>,
    asked: Vec<(LimitRule, u64)>,
    /// The end of each limit's window, for a refusal whose answer says nothing of it.
    now_ms: u64,
}

impl SharedAsk {
    /// The first limit the call asks about.
    pub fn first_rule(&self) -> Option<&LimitRule> {
        self.asked.first().map(|(rule, _)| rule)
    }
}

/// What the shared service's answer means for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedAnswer {
    Admitted(Reservation),
    Refused(Refusal),
    /// No usable answer (the call failed, timed out, or came back malformed).
    Unreachable,
}

/// The protocol's unit of a window.
pub fn unit_of(window: Window) -> RateLimitUnit {
    match window {
        Window::Second => RateLimitUnit::Second,
        Window::Minute => RateLimitUnit::Minute,
        Window::Hour => RateLimitUnit::Hour,
        Window::Day => RateLimitUnit::Day,
        Window::Month => RateLimitUnit::Month,
    }
}

/// The window of a protocol unit (`None` for units Tollgate does not count in: unknown, year).
pub fn window_of(unit: i32) -> Option<Window> {
    [
        Window::Second,
        Window::Minute,
        Window::Hour,
        Window::Day,
        Window::Month,
    ]
    .into_iter()
    .find(|w| unit_of(*w) as i32 == unit)
}

fn entry(key: &str, value: &str) -> Entry {
    Entry {
        key: key.to_string(),
        value: value.to_string(),
    }
}

impl TenantLimits {
    /// The `ShouldRateLimit` call reserving `demand` on the limits of `plan` that apply; `None`
    /// when none applies or no shared service is configured.
    pub fn shared_ask(
        &self,
        tenant: &str,
        plan: &[LimitRule],
        scope: (&str, Option<&str>),
        demand: &Demand,
        now_ms: u64,
    ) -> Option<SharedAsk> {
        let shared = self.shared.as_ref()?;
        let (route, model) = scope;
        let asked: Vec<(LimitRule, u64)> = plan
            .iter()
            .filter(|r| r.applies(route, model))
            .map(|r| (r.clone(), demand.amount(r.metric)))
            .collect();
        if asked.is_empty() {
            return None;
        }
        let request = RateLimitRequest {
            domain: shared.domain.clone(),
            descriptors: asked
                .iter()
                .map(|(rule, amount)| RateLimitDescriptor {
                    entries: vec![
                        entry(TENANT_KEY, tenant),
                        entry(LIMIT_KEY, &rule.id),
                        entry(LIMIT_VALUE_KEY, &rule.limit.to_string()),
                    ],
                    limit: Some(RateLimitOverride {
                        requests_per_unit: u32::try_from(rule.limit).unwrap_or(u32::MAX),
                        unit: unit_of(rule.window) as i32,
                    }),
                    hits_addend: Some(*amount),
                })
                .collect(),
            hits_addend: 0,
        };
        Some(SharedAsk {
            body: request.encode_to_vec(),
            asked,
            now_ms,
        })
    }

    /// Reads the service's answer to `ask` (`None`: no answer came).
    pub fn shared_answer(&self, ask: &SharedAsk, answer: Option<&[u8]>) -> SharedAnswer {
        let Some(response) = answer.and_then(|b| RateLimitResponse::decode(b).ok()) else {
            return SharedAnswer::Unreachable;
        };
        if response.statuses.len() != ask.asked.len() {
            return SharedAnswer::Unreachable;
        }
        let state =
            |rule: &LimitRule,
             status: &tollgate_proto::rls::rate_limit_response::DescriptorStatus| {
                let reset_ms = status
                    .duration_until_reset
                    .as_ref()
                    .map(|d| {
                        u64::try_from(d.seconds).unwrap_or(0) * 1000
                            + u64::try_from(d.nanos).unwrap_or(0) / 1_000_000
                    })
                    .unwrap_or_else(|| rule.window.bounds(ask.now_ms).1 - ask.now_ms);
                LimitState {
                    rule: rule.clone(),
                    remaining: u64::from(status.limit_remaining).min(rule.limit),
                    reset_ms,
                }
            };
        let pairs = ask.asked.iter().zip(&response.statuses);
        if response.overall_code == Code::OverLimit as i32 {
            let refused = pairs
                .clone()
                .find(|(_, s)| s.code == Code::OverLimit as i32)
                .or_else(|| pairs.clone().next());
            let Some(((rule, amount), status)) = refused else {
                return SharedAnswer::Unreachable;
            };
            let state = state(rule, status);
            return SharedAnswer::Refused(Refusal {
                reason: RefusalReason::OverLimit,
                used: rule.limit.saturating_sub(state.remaining),
                requested: *amount,
                retry_after_ms: state.reset_ms,
                state,
            });
        }
        if response.overall_code != Code::Ok as i32 {
            return SharedAnswer::Unreachable;
        }
        let mut reservation = Reservation::default();
        for ((rule, amount), status) in pairs {
            reservation.states.push(state(rule, status));
            reservation.remote.push(RemoteHeld {
                counter: status
                    .current_limit
                    .as_ref()
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
                rule: rule.clone(),
                amount: *amount,
            });
        }
        SharedAnswer::Admitted(reservation)
    }

    /// The `Settle` call replacing a shared reservation by what the call used; `None` when
    /// nothing changes (or the reservation was not shared).
    pub(super) fn settlement(&self, reservation: &Reservation, actual: &Demand) -> Option<Vec<u8>> {
        let shared = self.shared.as_ref()?;
        let settlements: Vec<Settlement> = reservation
            .remote
            .iter()
            .filter(|h| !h.counter.is_empty())
            .filter_map(|h| {
                let used = i128::from(actual.amount(h.rule.metric));
                let delta = i64::try_from(used - i128::from(h.amount)).ok()?;
                (delta != 0).then(|| Settlement {
                    counter: h.counter.clone(),
                    delta,
                })
            })
            .collect();
        if settlements.is_empty() {
            return None;
        }
        Some(
            SettleRequest {
                domain: shared.domain.clone(),
                settlements,
            }
            .encode_to_vec(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::tenant_limits::{MemoryStore, RawTenantLimits};
    use tollgate_proto::rls::rate_limit_response::{DescriptorStatus, RateLimit};

    fn limits() -> TenantLimits {
        let raw: RawTenantLimits = serde_json::from_str(
            r#"{"default": [{"metric": "requests", "limit": 10, "per": "minute"},
                            {"metric": "cost_micro_usd", "limit": 50000000000, "per": "month"}],
                "shared": {"cluster": "tollgate_collector"}}"#,
        )
        .unwrap();
        TenantLimits::new(&raw, &["openai"]).unwrap()
    }

    fn demand() -> Demand {
        Demand {
            requests: 1,
            input_tokens: 10,
            output_tokens: 100,
            cost_micro_usd: 777,
        }
    }

    fn status(code: Code, remaining: u32, name: &str) -> DescriptorStatus {
        DescriptorStatus {
            code: code as i32,
            current_limit: Some(RateLimit {
                requests_per_unit: 10,
                unit: RateLimitUnit::Minute as i32,
                name: name.to_string(),
            }),
            limit_remaining: remaining,
            duration_until_reset: Some(prost_types::Duration {
                seconds: 12,
                nanos: 500_000_000,
            }),
        }
    }

    #[test]
    fn the_ask_names_tenant_limit_and_amount_per_descriptor() {
        let l = limits();
        let ask = l
            .shared_ask(
                "team-a",
                l.plan("team-a", None),
                ("openai", None),
                &demand(),
                0,
            )
            .unwrap();
        let req = RateLimitRequest::decode(ask.body.as_slice()).unwrap();
        assert_eq!(req.domain, "tollgate");
        assert_eq!(req.descriptors.len(), 2);
        let d = &req.descriptors[1];
        let e: Vec<(&str, &str)> = d.entries.iter().map(|e| (&*e.key, &*e.value)).collect();
        assert_eq!(
            e,
            [
                ("tenant", "team-a"),
                ("limit", "cost_micro_usd/month"),
                ("tollgate_limit", "50000000000")
            ]
        );
        assert_eq!(d.hits_addend, Some(777));
        let o = d.limit.as_ref().unwrap();
        assert_eq!(o.requests_per_unit, u32::MAX, "a 32-bit override saturates");
        assert_eq!(o.unit, RateLimitUnit::Month as i32);
        assert_eq!(req.descriptors[0].hits_addend, Some(1));
    }

    #[test]
    fn answers_become_admissions_refusals_or_unreachable_and_settle_by_counter_name() {
        let l = limits();
        let ask = l
            .shared_ask("t", l.plan("t", None), ("openai", None), &demand(), 0)
            .unwrap();
        let ok = RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses: vec![
                status(Code::Ok, 7, "tollgate:limit:a"),
                status(Code::Ok, 9, "tollgate:limit:b"),
            ],
        };
        let SharedAnswer::Admitted(r) = l.shared_answer(&ask, Some(&ok.encode_to_vec())) else {
            panic!()
        };
        assert_eq!(r.states()[0].remaining, 7);
        assert_eq!(r.states()[0].reset_ms, 12_500);
        // settling: the request stays counted, the cost shrinks to what was spent
        let used = Demand {
            requests: 1,
            input_tokens: 5,
            output_tokens: 5,
            cost_micro_usd: 100,
        };
        let body = l.settle(&MemoryStore::default(), &r, &used, 0).unwrap();
        let s = SettleRequest::decode(body.as_slice()).unwrap();
        assert_eq!(s.domain, "tollgate");
        assert_eq!(s.settlements.len(), 1);
        assert_eq!(s.settlements[0].counter, "tollgate:limit:b");
        assert_eq!(s.settlements[0].delta, 100 - 777);
        // nothing to settle when the use is what was reserved
        assert_eq!(l.settle(&MemoryStore::default(), &r, &demand(), 0), None);

        let over = RateLimitResponse {
            overall_code: Code::OverLimit as i32,
            statuses: vec![status(Code::OverLimit, 0, "x"), status(Code::Ok, 9, "y")],
        };
        let SharedAnswer::Refused(refusal) = l.shared_answer(&ask, Some(&over.encode_to_vec()))
        else {
            panic!()
        };
        assert_eq!(refusal.rule().id.as_ref(), "requests/minute");
        assert_eq!((refusal.used, refusal.requested), (10, 1));
        assert_eq!(refusal.retry_after_ms, 12_500);

        assert_eq!(l.shared_answer(&ask, None), SharedAnswer::Unreachable);
        assert_eq!(
            l.shared_answer(&ask, Some(b"\xff\xff")),
            SharedAnswer::Unreachable
        );
        let short = RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses: vec![status(Code::Ok, 7, "a")],
        };
        assert_eq!(
            l.shared_answer(&ask, Some(&short.encode_to_vec())),
            SharedAnswer::Unreachable,
            "one status per descriptor, or the answer is not understood"
        );
    }
}
