//! The root context of one VM: compiles the configuration once in `on_configure` (a bad one is
//! rejected with a log line naming the field), creates an [`Exchange`] per request, and on its
//! tick sends due batches of trace summaries to the collector, flushes metrics, and releases
//! requests the header-hold watchdog finds paused too long (strict mode on a host that does not
//! deliver the body to a paused filter, ADR 0013).

use crate::exchange::Exchange;
use crate::host::{self, Wasm};
use crate::metrics::{self, Metrics};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tollgate_engine::config::HoldMode;
use tollgate_engine::scan_cache::{CacheStats, ScanCache};
use tollgate_engine::{Engine, HoldWatch, SummaryQueue};

/// Tick period when something needs more than the once-a-second metrics flush.
const FAST_TICK: Duration = Duration::from_millis(100);

/// Metric: requests the header-hold watchdog released.
const HOLD_RELEASED: &str = "tollgate.header_hold.released";
/// Metric (gauge): 1 once this VM concluded that the host ignores the header pause.
const HOLD_FALLBACK: &str = "tollgate.header_hold.fallback";
/// Metric: history-cache lookups, by `result` (`hit`, `miss`).
const CACHE_LOOKUPS: &str = "tollgate.history_cache.lookups";
/// Metric: history-cache entries evicted to stay within `history_cache.max_bytes`.
const CACHE_EVICTIONS: &str = "tollgate.history_cache.evictions";
/// Metric (gauge): bytes the history cache holds.
const CACHE_BYTES: &str = "tollgate.history_cache.bytes";

thread_local! {
    /// This VM found that its host ignores a header pause. Kept across configurations (a new
    /// plugin configuration creates a new root context in the same VM), so a push of config does
    /// not delay requests again.
    static HOST_IGNORES_PAUSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Settlements of shared limits waiting to be sent; beyond it they are dropped (and logged).
pub const MAX_SETTLEMENTS: usize = 10_000;

/// What the root context shares with every exchange of its VM.
pub struct Shared {
    /// Settlements of shared limits (ADR 0017), sent at the next tick.
    pub settlements: RefCell<Vec<tollgate_engine::GrpcCall>>,
    /// Trace summaries on their way to the collector (when one is configured).
    pub forwarder: Option<Forwarder>,
    /// Requests paused in their headers (strict mode).
    pub watch: RefCell<HoldWatch>,
    /// Request messages already scanned on this VM (ADR 0015).
    pub scan_cache: RefCell<ScanCache>,
}

/// This worker's queue of trace summaries and what the collector needs to know about it.
pub struct Forwarder {
    pub queue: RefCell<SummaryQueue>,
    pub cluster: String,
    pub token: Option<String>,
    pub timeout: Duration,
    pub node: String,
    pub envoy_cluster: String,
}

/// The root context: holds the compiled engine.
pub struct Root {
    id: u32,
    engine: Option<Rc<Engine>>,
    metrics: Rc<Metrics>,
    shared: Rc<Shared>,
    /// Host time of the last metrics flush.
    last_metrics_flush: u64,
    /// Dropped and delivered summaries already counted in metrics.
    reported: (u64, u64),
    /// Tokens of settlement calls in flight (their answers are not ingest answers).
    settling: std::collections::HashSet<u32>,
    /// History-cache counts already counted in metrics.
    cache_reported: CacheStats,
}

impl Root {
    pub fn new(id: u32) -> Self {
        Root {
            id,
            engine: None,
            metrics: Rc::new(Metrics::default()),
            shared: Rc::new(Shared {
                settlements: RefCell::new(Vec::new()),
                forwarder: None,
                watch: RefCell::new(HoldWatch::new(0)),
                scan_cache: RefCell::new(ScanCache::off()),
            }),
            last_metrics_flush: 0,
            reported: (0, 0),
            settling: std::collections::HashSet::new(),
            cache_reported: CacheStats::default(),
        }
    }

    /// Sends the settlements of shared limits the exchanges queued.
    fn settle(&mut self) {
        let calls = std::mem::take(&mut *self.shared.settlements.borrow_mut());
        for call in calls {
            match host::dispatch_grpc(&call) {
                Some(token) => {
                    self.settling.insert(token);
                }
                None => {
                    self.metrics
                        .add("tollgate.limits.settlements", &[("result", "not_sent")], 1)
                }
            }
        }
    }

    /// Sends the batch of summaries that is due, if any.
    fn forward(&mut self, now: u64) {
        let Some(f) = &self.shared.forwarder else {
            return;
        };
        let Some(body) = f.queue.borrow_mut().due_batch(now) else {
            return;
        };
        let auth = f.token.as_ref().map(|t| format!("Bearer {t}"));
        let metadata: Vec<(&str, &[u8])> = auth
            .as_deref()
            .map(|a| vec![("authorization", a.as_bytes())])
            .unwrap_or_default();
        let sent = self.dispatch_grpc_call(
            &f.cluster,
            tollgate_proto::INGEST_SERVICE,
            tollgate_proto::INGEST_METHOD,
            metadata,
            Some(&body),
            f.timeout,
        );
        if let Err(status) = sent {
            log::debug!("tollgate: collector call not sent: {status:?}");
            f.queue.borrow_mut().on_result(false, now);
            self.metrics
                .add("tollgate.collector.batches", &[("result", "not_sent")], 1);
        }
    }

    /// Releases requests paused in their headers past the bound (strict mode).
    fn release_paused(&mut self, now: u64) {
        // the borrow ends before the host is called: a resumed request calls back later
        let release = self.shared.watch.borrow_mut().due(now);
        if release.ids.is_empty() {
            return;
        }
        for id in &release.ids {
            if !host::resume_request(*id, self.id) {
                // never leave a request paused: end it rather than let it wait for the client
                log::warn!(
                    "tollgate[{id}]: the host refused to resume the paused request; closing it"
                );
                host::close_request(*id, self.id);
            }
        }
        self.metrics
            .add(HOLD_RELEASED, &[], release.ids.len() as u64);
        if release.fell_back {
            HOST_IGNORES_PAUSE.with(|known| known.set(true));
            self.metrics.set(HOLD_FALLBACK, 1);
            log::warn!(
                "tollgate: request_hold.mode is \"headers\" but this host does not deliver the body \
                 to a filter that paused its headers: {} request(s) were released after \
                 release_after_ms and this VM now uses the default body hold (no request tags as \
                 headers). Fix: set allow_on_headers_stop_iteration: true in the Wasm filter's \
                 config (Envoy >= 1.35), or use request_hold.mode \"body\" (Istio WasmPlugin, \
                 Envoy Gateway)",
                release.ids.len()
            );
        }
    }

    fn flush_metrics(&mut self, now: u64) {
        // a tick may come a little before the period is up: one that early still flushes (else
        // the counts would wait for the next tick, two periods after the last flush)
        let period = u64::try_from(metrics::FLUSH_PERIOD.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(self.last_metrics_flush) < period / 10 * 9 {
            return;
        }
        self.last_metrics_flush = now;
        if let Some(f) = &self.shared.forwarder {
            let q = f.queue.borrow();
            self.metrics
                .set("tollgate.collector.queued", q.len() as u64);
            // counters: add what changed since the last report
            let (dropped, delivered) = (q.dropped(), q.delivered());
            let (was_dropped, was_delivered) = self.reported;
            self.metrics.add(
                "tollgate.collector.dropped",
                &[],
                dropped.saturating_sub(was_dropped),
            );
            self.metrics.add(
                "tollgate.collector.delivered",
                &[],
                delivered.saturating_sub(was_delivered),
            );
            drop(q);
            self.reported = (dropped, delivered);
        }
        let cache = self.shared.scan_cache.borrow().stats();
        let was = self.cache_reported;
        self.metrics.add(
            CACHE_LOOKUPS,
            &[("result", "hit")],
            cache.hits.saturating_sub(was.hits),
        );
        self.metrics.add(
            CACHE_LOOKUPS,
            &[("result", "miss")],
            cache.misses.saturating_sub(was.misses),
        );
        self.metrics.add(
            CACHE_EVICTIONS,
            &[],
            cache.evictions.saturating_sub(was.evictions),
        );
        self.metrics.set(CACHE_BYTES, cache.bytes as u64);
        self.cache_reported = cache;
        self.metrics.flush();
        self.metrics
            .set("tollgate.vm_memory_bytes", host::vm_memory_bytes());
    }
}

impl Context for Root {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, _response_size: usize) {
        if self.settling.remove(&token_id) {
            let result = if status_code == 0 { "ok" } else { "failed" };
            self.metrics
                .add("tollgate.limits.settlements", &[("result", result)], 1);
            return;
        }
        let now = host::now_nanos();
        let Some(f) = &self.shared.forwarder else {
            return;
        };
        let ok = status_code == 0;
        let sent = f.queue.borrow().in_flight();
        f.queue.borrow_mut().on_result(ok, now);
        if sent {
            let outcome = if ok { "ok" } else { "failed" };
            self.metrics
                .add("tollgate.collector.batches", &[("result", outcome)], 1);
        }
        if !ok {
            log::debug!("tollgate: collector call failed with gRPC status {status_code}");
        }
    }
}

impl RootContext for Root {
    fn on_tick(&mut self) {
        let now = host::now_nanos();
        self.release_paused(now);
        self.settle();
        self.forward(now);
        self.flush_metrics(now);
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let engine = match Engine::from_json(&config) {
            Ok(engine) => engine,
            Err(e) => {
                log::error!("tollgate: configuration rejected: {e}");
                return false;
            }
        };
        log::info!(
            "tollgate: configuration loaded ({} rules, {} priced models, request hold: {})",
            engine.detectors().rules().len(),
            engine.prices().len(),
            match engine.request_hold().mode {
                HoldMode::Body => "body",
                HoldMode::Headers => "headers",
            }
        );
        let forwarder = engine
            .collector()
            .zip(engine.forward_settings())
            .map(|(c, s)| {
                let text = |path: &[&str]| {
                    host::get_property(path)
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_default()
                };
                Forwarder {
                    queue: RefCell::new(SummaryQueue::new(s)),
                    cluster: c.cluster.clone(),
                    token: c.token.clone(),
                    timeout: Duration::from_millis(c.timeout_ms),
                    node: text(&["node", "id"]),
                    envoy_cluster: text(&["node", "cluster"]),
                }
            });
        let strict = engine.request_hold().mode == HoldMode::Headers;
        // the tick sends due batches and settlements, watches paused requests and, every second,
        // flushes metrics
        let shared_limits = engine.tenant_limits().shared().is_some();
        let tick = if forwarder.is_some() || strict || shared_limits {
            FAST_TICK
        } else {
            metrics::FLUSH_PERIOD
        };
        let release_after = engine
            .request_hold()
            .release_after_ms
            .saturating_mul(1_000_000);
        let mut watch = HoldWatch::new(release_after);
        if HOST_IGNORES_PAUSE.with(std::cell::Cell::get) {
            watch.assume_host_ignores_pause();
        }
        // a new configuration starts a new cache: what the old one found may not hold any more
        self.shared = Rc::new(Shared {
            settlements: RefCell::new(Vec::new()),
            forwarder,
            watch: RefCell::new(watch),
            scan_cache: RefCell::new(engine.new_scan_cache(random_secret())),
        });
        self.cache_reported = CacheStats::default();
        self.set_tick_period(tick);
        self.engine = Some(Rc::new(engine));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let engine = self.engine.clone()?;
        Some(Box::new(Exchange::new(
            context_id,
            Wasm,
            engine,
            self.metrics.clone(),
            self.shared.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// 16 unpredictable bytes for the history cache's digest key: the standard library seeds its
/// hash maps from the host's random source (WASI `random_get`, which Envoy provides), and two
/// maps' hashes of a constant under those seeds are as unpredictable as the seeds.
fn random_secret() -> [u8; 16] {
    use std::hash::BuildHasher;
    let a = std::collections::hash_map::RandomState::new().hash_one(0x746f_6c6c_u64);
    let b = std::collections::hash_map::RandomState::new().hash_one(0x6761_7465_u64);
    let mut secret = [0u8; 16];
    for (s, v) in secret
        .iter_mut()
        .zip(a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
    {
        *s = v;
    }
    secret
}
