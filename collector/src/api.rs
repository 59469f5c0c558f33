//! The query API, versioned under `/v1` (axum): traces (filtered, cursor-paged), one trace,
//! usage grouped by tenant / model / provider / route and a time bucket, finding counts,
//! anomalies, budgets, the caller's own key (`/v1/me`) and the OpenAPI document; the web
//! console's files under `/ui` ([`crate::console`]). Errors are RFC 9457
//! `application/problem+json`; a bad parameter gives 400 naming it. Authentication:
//! `Authorization: Bearer <key>` — the bootstrap admin key or a key from [`crate::keys`], whose
//! role gates the endpoint and whose tenants scope every query.

use crate::keys::{Caller, KeyStore, Role};
use crate::metrics::CollectorMetrics;
use crate::storage::{
    model_of, outcome_name, AnomalyQuery, Bucket, Dimension, FindingsQuery, Storage, StorageError,
    TenantScope, TraceQuery, UsageQuery,
};
use crate::time::{format_nanos, parse_time};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tollgate_proto::v1::{Action, Direction, Severity, TraceSummary};

/// The OpenAPI document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Shared state of the API.
pub struct ApiState<S> {
    pub storage: S,
    /// SHA-256 of the bootstrap admin key, when one is configured.
    pub admin_key: Option<[u8; 32]>,
    /// Keys created with `tollgate-collector keys create`.
    pub keys: Option<Arc<KeyStore>>,
    pub metrics: Arc<CollectorMetrics>,
    /// The shared limit counters (`limits.redis`), for `GET /v1/budgets`.
    pub counters: Option<crate::limits::counters::Counters>,
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    param: Option<String>,
}

impl Problem {
    fn bad_param(param: &str, detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid parameter",
            detail: detail.into(),
            param: Some(param.to_string()),
        }
    }

    fn forbidden(role: Role) -> Self {
        Problem {
            status: StatusCode::FORBIDDEN,
            title: "Forbidden",
            detail: format!(
                "this needs a key with the `{}` role or higher",
                role.as_str()
            ),
            param: None,
        }
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: detail.into(),
            param: None,
        }
    }

    fn unavailable(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Unavailable",
            detail: detail.into(),
            param: None,
        }
    }
}

impl From<StorageError> for Problem {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(d) => Problem {
                status: StatusCode::BAD_REQUEST,
                title: "Invalid request",
                detail: d,
                param: None,
            },
            StorageError::Unavailable(d) => Problem {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Storage unavailable",
                detail: d,
                param: None,
            },
            StorageError::Internal(d) => {
                tracing::error!(error = %d, "query failed");
                Problem {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    title: "Internal error",
                    detail: "the query failed; see the collector's log".into(),
                    param: None,
                }
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let (Some(p), Some(o)) = (self.param, body.as_object_mut()) {
            o.insert("param".into(), Value::String(p));
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// The API router.
pub fn router<S: Storage + Clone>(state: Arc<ApiState<S>>) -> Router {
    let v1 = Router::new()
        .route("/v1/traces", get(list_traces::<S>))
        .route("/v1/traces/{request_id}", get(get_trace::<S>))
        .route("/v1/usage", get(usage::<S>))
        .route("/v1/findings", get(findings::<S>))
        .route("/v1/anomalies", get(anomalies::<S>))
        .route("/v1/budgets", get(budgets::<S>))
        .route("/v1/keys", get(list_keys::<S>))
        .route("/v1/me", get(me))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate::<S>,
        ));
    Router::new()
        .merge(v1)
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/auth", get(auth::<S>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::<S>))
        .merge(crate::console::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::<S>,
        ))
        .with_state(state)
}

async fn observe<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .api(&route, resp.status().as_u16(), started.elapsed());
    resp
}

async fn authenticate<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match caller(&state, presented) {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(p) => p.into_response(),
    }
}

/// Who a presented key stands for: the bootstrap admin key, a stored key, or (when no key of
/// any kind exists) an open API.
fn caller<S>(state: &ApiState<S>, presented: Option<&str>) -> Result<Caller, Problem> {
    let unauthorized = || Problem {
        status: StatusCode::UNAUTHORIZED,
        title: "Unauthorized",
        detail: "a valid `Authorization: Bearer <key>` is required".into(),
        param: None,
    };
    let admin = |id: &str| Caller {
        key_id: id.to_string(),
        role: Role::Admin,
        scope: TenantScope::All,
    };
    let stored_keys = match &state.keys {
        Some(k) => k
            .any()
            .map_err(|e| Problem::from(StorageError::Internal(e.to_string())))?,
        None => false,
    };
    let Some(key) = presented else {
        return if state.admin_key.is_none() && !stored_keys {
            Ok(admin("open"))
        } else {
            Err(unauthorized())
        };
    };
    if let Some(expected) = &state.admin_key {
        let d: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if d.iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
        {
            return Ok(admin("bootstrap"));
        }
    }
    if let Some(store) = &state.keys {
        if let Some(c) = store
            .authenticate(key)
            .map_err(|e| Problem::from(StorageError::Internal(e.to_string())))?
        {
            return Ok(c);
        }
    }
    Err(unauthorized())
}

fn require(caller: &Caller, role: Role) -> Result<(), Problem> {
    if caller.role >= role {
        Ok(())
    } else {
        Err(Problem::forbidden(role))
    }
}

async fn list_keys<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, Problem> {
    require(&caller, Role::Admin)?;
    let keys = match &state.keys {
        Some(k) => k
            .list()
            .map_err(|e| Problem::from(StorageError::Internal(e.to_string())))?,
        None => Vec::new(),
    };
    Ok(Json(json!({ "keys": keys })))
}

/// `GET /v1/auth` (no key needed): whether the API asks for a key, so the console knows to
/// show its sign-in form instead of probing with a request that would be refused.
async fn auth<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
) -> Result<Json<Value>, Problem> {
    let required = match caller(&state, None) {
        Ok(_) => false,
        Err(p) if p.status == StatusCode::UNAUTHORIZED => true,
        Err(p) => return Err(p),
    };
    Ok(Json(json!({ "key_required": required })))
}

/// `GET /v1/me`: the key the request was made with — its id, role and tenant scope (`null`
/// tenants: every tenant). The console signs in with it.
async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({
        "key_id": caller.key_id,
        "role": caller.role.as_str(),
        "tenants": match &caller.scope {
            TenantScope::All => Value::Null,
            TenantScope::Only(list) => json!(list),
        },
    }))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn metrics<S: Storage + Clone>(State(state): State<Arc<ApiState<S>>>) -> impl IntoResponse {
    let stored = state.storage.count().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(stored),
    )
}

/// Query parameters, checked one by one.
struct Params(HashMap<String, String>);

impl Params {
    fn known(&self, allowed: &[&str]) -> Result<(), Problem> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(Problem::bad_param(k, format!("unknown parameter `{k}`")));
            }
        }
        Ok(())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn time(&self, name: &str) -> Result<Option<i64>, Problem> {
        self.0
            .get(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    Problem::bad_param(name, "expected an RFC 3339 UTC time or unix seconds")
                })
            })
            .transpose()
    }

    fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Problem> {
        self.0
            .get(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        Problem::bad_param(name, format!("expected an integer in {min}..={max}"))
                    })
            })
            .transpose()
    }

    fn bucket(&self) -> Result<Option<Bucket>, Problem> {
        self.text("bucket")
            .map(|b| {
                Bucket::parse(&b)
                    .ok_or_else(|| Problem::bad_param("bucket", "minute, hour, day, week or month"))
            })
            .transpose()
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, Problem> {
        self.0
            .get(name)
            .map(|v| match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Problem::bad_param(name, "expected true or false")),
            })
            .transpose()
    }
}

const OUTCOMES: [&str; 7] = [
    "allowed",
    "tagged",
    "redacted",
    "blocked",
    "unanalysed",
    "error",
    "rate_limited",
];

async fn list_traces<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    Extension(caller): Extension<Caller>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    require(&caller, Role::Operator)?;
    let p = Params(raw);
    p.known(&[
        "tenant",
        "provider",
        "model",
        "route",
        "outcome",
        "from",
        "to",
        "has_findings",
        "category",
        "rule_id",
        "min_cost_micro_usd",
        "min_latency_ms",
        "limit",
        "cursor",
    ])?;
    let outcome = p.text("outcome");
    if let Some(o) = &outcome {
        if !OUTCOMES.contains(&o.as_str()) {
            return Err(Problem::bad_param(
                "outcome",
                format!("one of {}", OUTCOMES.join(", ")),
            ));
        }
    }
    let cursor =
        p.text("cursor")
            .map(|c| {
                c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Problem::bad_param("cursor", "not a cursor from a previous page")
                })
            })
            .transpose()?;
    let q = TraceQuery {
        scope: caller.scope.clone(),
        tenant: p.text("tenant"),
        provider: p.text("provider"),
        model: p.text("model"),
        route: p.text("route"),
        outcome,
        from_ns: p.time("from")?,
        to_ns: p.time("to")?,
        has_findings: p.bool("has_findings")?,
        category: p.text("category"),
        rule_id: p.text("rule_id"),
        min_cost_micro_usd: p.int("min_cost_micro_usd", 0, i64::MAX)?,
        min_latency_ms: p.int("min_latency_ms", 0, i64::MAX)?,
        limit: u32::try_from(p.int("limit", 1, 1000)?.unwrap_or(100)).unwrap_or(100),
        cursor,
    };
    let page = state.storage.traces(q).await?;
    Ok(Json(json!({
        "traces": page.traces.iter().map(trace_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

async fn get_trace<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    Extension(caller): Extension<Caller>,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, Problem> {
    require(&caller, Role::Operator)?;
    match state
        .storage
        .get(request_id.clone(), caller.scope.clone())
        .await?
    {
        Some(t) => Ok(Json(trace_json(&t))),
        None => Err(Problem::not_found(format!(
            "no trace with request id `{request_id}`"
        ))),
    }
}

async fn usage<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    Extension(caller): Extension<Caller>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    require(&caller, Role::Viewer)?;
    let p = Params(raw);
    p.known(&["group_by", "bucket", "from", "to", "tenant"])?;
    let mut group_by = Vec::new();
    for d in p
        .text("group_by")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let dim = Dimension::parse(d.trim())
            .ok_or_else(|| Problem::bad_param("group_by", "tenant, model, provider or route"))?;
        if !group_by.contains(&dim) {
            group_by.push(dim);
        }
    }
    let bucket = p.bucket()?;
    let q = UsageQuery {
        scope: caller.scope.clone(),
        group_by,
        bucket,
        from_ns: p.time("from")?,
        to_ns: p.time("to")?,
        tenant: p.text("tenant"),
    };
    let rows = state.storage.usage(q).await?;
    Ok(Json(json!({ "rows": rows })))
}

/// `GET /v1/budgets`: each tenant's shared limits in their current windows (used, limit,
/// remaining, reset), from the Redis counters; empty with `enabled: false` when shared limits
/// are off.
async fn budgets<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    Extension(caller): Extension<Caller>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    require(&caller, Role::Viewer)?;
    let p = Params(raw);
    p.known(&["tenant", "domain"])?;
    let Some(counters) = &state.counters else {
        return Ok(Json(json!({ "enabled": false, "budgets": [] })));
    };
    let now_ms = crate::time::now_ms();
    let listed = counters.list(now_ms).await.map_err(|e| {
        tracing::warn!(error = %e, "redis: budgets unavailable");
        Problem::unavailable("the limit counters (Redis) do not answer")
    })?;
    let (tenant, domain) = (p.text("tenant"), p.text("domain"));
    let mut rows: Vec<Value> = listed
        .iter()
        .filter_map(|(key, used, limit, end)| {
            let (d, start, t, id) = crate::limits::counters::parse_key(key)?;
            let visible = match &caller.scope {
                TenantScope::All => true,
                TenantScope::Only(list) => list.iter().any(|x| x == t),
            };
            let wanted = tenant.as_deref().is_none_or(|w| w == t)
                && domain.as_deref().is_none_or(|w| w == d);
            (visible && wanted).then(|| {
                let ns = |ms: u64| i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
                json!({
                    "tenant": t,
                    "limit": id,
                    "domain": d,
                    "window_start": crate::time::format_nanos(ns(start)),
                    "resets_at": crate::time::format_nanos(ns(*end)),
                    "used": used,
                    "limit_value": limit,
                    "remaining": limit.saturating_sub(*used),
                })
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (a["tenant"].as_str(), a["limit"].as_str())
            .cmp(&(b["tenant"].as_str(), b["limit"].as_str()))
    });
    Ok(Json(json!({ "enabled": true, "budgets": rows })))
}

async fn anomalies<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    Extension(caller): Extension<Caller>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    require(&caller, Role::Viewer)?;
    let p = Params(raw);
    p.known(&["tenant", "metric", "state", "from", "to", "limit"])?;
    let open = match p.text("state").as_deref() {
        None => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(_) => return Err(Problem::bad_param("state", "open or closed")),
    };
    let q = AnomalyQuery {
        scope: caller.scope.clone(),
        tenant: p.text("tenant"),
        metric: p.text("metric"),
        open,
        from_ns: p.time("from")?,
        to_ns: p.time("to")?,
        limit: u32::try_from(p.int("limit", 1, 1000)?.unwrap_or(100)).unwrap_or(100),
    };
    let rows = state.storage.anomalies(q).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let a = &r.anomaly;
            let time = format_nanos;
            json!({
                "id": a.id,
                "tenant": a.tenant,
                "model": a.model,
                "metric": a.metric,
                "kind": a.kind.as_str(),
                "state": if a.open { "open" } else { "closed" },
                "started_at": time(a.started_ns),
                "updated_at": time(a.updated_ns),
                "ended_at": a.ended_ns.map(time),
                "observed": a.observed,
                "peak": a.peak,
                "baseline_mean": a.baseline_mean,
                "baseline_std_dev": a.baseline_std_dev,
                "z_score": a.z_score,
                "max_abs_z_score": a.max_abs_z_score,
                "buckets": a.buckets,
                "findings": (a.kind == crate::anomaly::AnomalyKind::Rule).then_some(a.total),
                "deliveries": r.deliveries.iter().map(|d| json!({
                    "sink": d.sink,
                    "event": d.event,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "updated_at": time(d.updated_ns),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "anomalies": rows })))
}

async fn findings<S: Storage + Clone>(
    State(state): State<Arc<ApiState<S>>>,
    Extension(caller): Extension<Caller>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    require(&caller, Role::Viewer)?;
    let p = Params(raw);
    p.known(&[
        "by",
        "bucket",
        "from",
        "to",
        "tenant",
        "category",
        "action",
        "direction",
    ])?;
    let by: Vec<String> = p
        .text("by")
        .unwrap_or_else(|| "category".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = by
        .iter()
        .find(|b| !["category", "rule", "tenant"].contains(&b.as_str()))
    {
        return Err(Problem::bad_param(
            "by",
            format!("`{bad}`: category, rule or tenant"),
        ));
    }
    let bucket = p.bucket()?;
    let q = FindingsQuery {
        scope: caller.scope.clone(),
        tenant: p.text("tenant"),
        from_ns: p.time("from")?,
        to_ns: p.time("to")?,
        by: by.clone(),
        bucket,
        category: p.text("category"),
        action: p.text("action"),
        direction: p.text("direction"),
    };
    let rows = state.storage.findings(q).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            // a link to the traces behind the row
            let mut link = String::from("/v1/traces?has_findings=true");
            for (k, v) in &r.group {
                let key = if k == "rule" { "rule_id" } else { k.as_str() };
                link.push_str(&format!("&{key}={}", url_encode(v)));
            }
            let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("traces_url".into(), Value::String(link));
            }
            v
        })
        .collect();
    Ok(Json(json!({ "rows": rows })))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The JSON form of a trace summary.
pub fn trace_json(s: &TraceSummary) -> Value {
    let severity = |c: i32| match Severity::try_from(c).unwrap_or(Severity::Unspecified) {
        Severity::Unspecified => "unspecified",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    };
    let action = |c: i32| match Action::try_from(c).unwrap_or(Action::Unspecified) {
        Action::Unspecified => "unspecified",
        Action::Log => "log",
        Action::Tag => "tag",
        Action::Redact => "redact",
        Action::Block => "block",
    };
    let direction = |c: i32| match Direction::try_from(c).unwrap_or(Direction::Unspecified) {
        Direction::Unspecified => "unspecified",
        Direction::Request => "request",
        Direction::Response => "response",
    };
    let opt_time = |n: i64| (n > 0).then(|| format_nanos(n));
    let ms = |n: i64| (n > 0).then(|| n as f64 / 1e6);
    let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_string());
    json!({
        "request_id": s.request_id,
        "trace_id": non_empty(&s.trace_id),
        "tenant": s.tenant,
        "tenant_source": s.tenant_source,
        "route": s.route,
        "provider": s.provider,
        "operation": s.operation,
        "model": model_of(s),
        "request_model": non_empty(&s.request_model),
        "response_model": non_empty(&s.response_model),
        "status_code": s.status_code,
        "outcome": outcome_name(s.outcome),
        "start": format_nanos(s.start_unix_nanos),
        "upstream_first_byte": opt_time(s.upstream_first_byte_unix_nanos),
        "end": opt_time(s.end_unix_nanos),
        "latency_ms": (s.end_unix_nanos > 0).then(|| (s.end_unix_nanos - s.start_unix_nanos) as f64 / 1e6),
        "stream": s.stream,
        "time_to_first_token_ms": ms(s.time_to_first_token_nanos),
        "usage": s.usage.map(|u| json!({
            "input_tokens": u.input_tokens,
            "cached_input_tokens": u.cached_input_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "output_tokens": u.output_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "estimated": u.estimated,
        })),
        "cost_micro_usd": s.cost_known.then_some(s.cost_micro_usd),
        "findings_total": s.findings_total,
        "findings": s.findings.iter().map(|f| json!({
            "rule_id": f.rule_id,
            "category": f.category,
            "severity": severity(f.severity),
            "action": action(f.action),
            "direction": direction(f.direction),
            "message_index": f.message_index,
            "start": f.start,
            "end": f.end,
        })).collect::<Vec<_>>(),
        "request_bytes": s.request_bytes,
        "response_bytes": s.response_bytes,
        "user_agent": non_empty(&s.user_agent),
        "envoy_node": non_empty(&s.envoy_node),
        "envoy_cluster": non_empty(&s.envoy_cluster),
        "request_unanalysed": non_empty(&s.request_unanalysed),
        "response_unanalysed": non_empty(&s.response_unanalysed),
        "risk_score": s.risk_score,
        "blocked_by": non_empty(&s.blocked_by),
        "stream_incomplete": s.stream_incomplete,
    })
}
