//! The detector's driver: on each tick it beats its heart in the store, and if it leads (the
//! oldest live member), evaluates every bucket closed since the last one — a bucket is closed
//! `grace` after it ends — by asking the store what each tenant and tenant × model did in it.
//! Anomaly changes are stored and handed to the notifier; the detector's state is saved every
//! `checkpoint_buckets` and at shutdown. Because buckets are read back from the store, a
//! restarted or newly elected leader resumes from the last checkpoint and replays what it
//! missed, and any replica computes the same anomalies with the same ids. Time comes from a
//! [`Clock`], so tests drive simulated days without sleeping.

use super::detector::{BucketValues, Detector, DetectorState, RuleObservation, SeriesKey};
use super::{AnomalyEvent, DetectorSettings, RuleKind};
use crate::metrics::CollectorMetrics;
use crate::storage::{Dimension, FindingsQuery, Member, Storage, StorageError, UsageQuery};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where time comes from.
pub trait Clock: Send + Sync + 'static {
    /// Now, unix nanoseconds.
    fn now_ns(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        crate::time::now_ns()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ns: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(now_ns)))
    }

    pub fn set(&self, now_ns: i64) {
        self.0.store(now_ns, Ordering::SeqCst);
    }

    pub fn advance(&self, by_ns: i64) {
        self.0.fetch_add(by_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An anomaly opening or closing, for the notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// `opened` or `closed`.
    pub event: &'static str,
    pub anomaly: super::Anomaly,
}

/// How the driver runs (besides the detector's own settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Wait after a bucket ends before evaluating it (ns).
    pub grace_ns: i64,
    /// Save the state every this many buckets.
    pub checkpoint_buckets: u32,
    /// With no saved state, start this many buckets back (learning from stored history).
    pub history_buckets: u32,
    /// A member whose last beat is older than this is gone (ns).
    pub lease_ns: i64,
    /// Most buckets evaluated in one step (catching up runs over several steps).
    pub max_buckets_per_step: u32,
    /// After this collector starts, or after ingest last turned a batch away, wait this long
    /// before scoring (ns): the gateways are still retrying what they hold, and a bucket
    /// scored now would look emptier than it is.
    pub hold_ns: i64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            grace_ns: 30_000_000_000,
            checkpoint_buckets: 15,
            history_buckets: 120,
            lease_ns: 30_000_000_000,
            max_buckets_per_step: 1440,
            hold_ns: 30_000_000_000,
        }
    }
}

/// The checkpoint's name in the store.
const CHECKPOINT: &str = "anomaly-detector";

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    pub leader: bool,
    pub buckets: u32,
    pub events: u32,
}

/// Runs the detector against a store.
pub struct Driver<S> {
    storage: S,
    settings: DetectorSettings,
    schedule: Schedule,
    member: Member,
    detector: Option<Detector>,
    since_checkpoint: u32,
    notices: Option<mpsc::Sender<Notice>>,
    metrics: Arc<CollectorMetrics>,
    /// Changes not stored yet (the store failed): stored first on the next step.
    unrecorded: Vec<AnomalyEvent>,
}

impl<S: Storage> Driver<S> {
    /// A driver for the member `holder`, started at `started_ns`.
    pub fn new(
        storage: S,
        settings: DetectorSettings,
        schedule: Schedule,
        holder: String,
        started_ns: i64,
        notices: Option<mpsc::Sender<Notice>>,
        metrics: Arc<CollectorMetrics>,
    ) -> Self {
        Driver {
            storage,
            settings,
            schedule,
            member: Member {
                holder,
                started_ns,
                beat_ns: started_ns,
            },
            detector: None,
            since_checkpoint: 0,
            notices,
            metrics,
            unrecorded: Vec::new(),
        }
    }

    /// The detector's state, when this member leads.
    pub fn state(&self) -> Option<&DetectorState> {
        self.detector.as_ref().map(Detector::state)
    }

    /// Beats the heart and tells whether this member leads; a member that does not lead
    /// drops its state (the leader's is the one that counts, and is reloaded on taking over).
    async fn lead(&mut self, now_ns: i64) -> Result<bool, StorageError> {
        self.member.beat_ns = now_ns;
        self.storage.heartbeat(self.member.clone()).await?;
        let members = self
            .storage
            .members(now_ns.saturating_sub(self.schedule.lease_ns))
            .await?;
        let leader = members
            .first()
            .is_some_and(|m| m.holder == self.member.holder);
        if !leader {
            self.detector = None;
        }
        Ok(leader)
    }

    /// One tick at `now_ns`: heartbeat, leadership, then every closed bucket not yet evaluated.
    pub async fn step(&mut self, now_ns: i64) -> Result<Step, StorageError> {
        if !self.lead(now_ns).await? {
            return Ok(Step::default());
        }
        // changes a failed store left behind go first
        if !self.unrecorded.is_empty() {
            let events = std::mem::take(&mut self.unrecorded);
            self.record(events, true).await?;
        }
        let quiet_since = self.member.started_ns.max(self.metrics.last_refusal_ns());
        if now_ns < quiet_since.saturating_add(self.schedule.hold_ns) {
            return Ok(Step {
                leader: true,
                ..Step::default()
            });
        }
        let bucket = self.settings.bucket_ns.max(1);
        if self.detector.is_none() {
            let state = match self.storage.load_checkpoint(CHECKPOINT.into()).await? {
                Some(bytes) => DetectorState::from_bytes(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "unreadable detector checkpoint; starting afresh");
                    DetectorState::default()
                }),
                None => DetectorState::default(),
            };
            self.detector = Some(Detector::resume(self.settings.clone(), state));
        }
        let closed_end = now_ns
            .saturating_sub(self.schedule.grace_ns)
            .div_euclid(bucket)
            .saturating_mul(bucket);
        let mut step = Step {
            leader: true,
            ..Step::default()
        };
        let last = self.state().and_then(|s| s.last_bucket_ns);
        let mut next = match last {
            Some(l) => l.saturating_add(bucket),
            // the latest closed bucket, after as much stored history as configured
            None => closed_end.saturating_sub(
                i64::from(self.schedule.history_buckets.max(1)).saturating_mul(bucket),
            ),
        };
        // alerts go out for recent buckets only; older ones (stored history learnt on a fresh
        // start, a long catch-up) are stored and served, not sent
        let live_after = now_ns.saturating_sub(
            self.schedule
                .grace_ns
                .saturating_add(self.schedule.hold_ns)
                .saturating_add(bucket.saturating_mul(10)),
        );
        let started = std::time::Instant::now();
        let mut beat = started;
        while next.saturating_add(bucket) <= closed_end
            && step.buckets < self.schedule.max_buckets_per_step
        {
            // a long catch-up keeps the lease: beat again every third of it
            let lease = std::time::Duration::from_nanos(
                u64::try_from(self.schedule.lease_ns / 3).unwrap_or(0),
            );
            if beat.elapsed() >= lease {
                beat = std::time::Instant::now();
                let elapsed = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
                if !self.lead(now_ns.saturating_add(elapsed)).await? {
                    return Ok(step);
                }
            }
            let (series, rules) = self.observe(next, bucket).await?;
            let events = match self.detector.as_mut() {
                Some(d) => d.evaluate(next, &series, &rules),
                None => Vec::new(),
            };
            step.events += u32::try_from(events.len()).unwrap_or(u32::MAX);
            let live = next.saturating_add(bucket) >= live_after;
            self.record(events, live).await?;
            self.metrics.bucket_evaluated();
            step.buckets += 1;
            self.since_checkpoint += 1;
            if self.since_checkpoint >= self.schedule.checkpoint_buckets {
                self.checkpoint().await?;
            }
            next = next.saturating_add(bucket);
        }
        Ok(step)
    }

    /// Saves the detector's state (when this member leads).
    pub async fn checkpoint(&mut self) -> Result<(), StorageError> {
        let Some(d) = &self.detector else {
            return Ok(());
        };
        let bytes = d.state().to_bytes().map_err(StorageError::Internal)?;
        self.storage
            .save_checkpoint(CHECKPOINT.into(), bytes)
            .await?;
        self.since_checkpoint = 0;
        Ok(())
    }

    /// What the store holds for the bucket `[start, start + len)`.
    async fn observe(
        &self,
        start: i64,
        len: i64,
    ) -> Result<(BTreeMap<SeriesKey, BucketValues>, Vec<RuleObservation>), StorageError> {
        let end = start.saturating_add(len);
        let usage = |group_by: Vec<Dimension>| UsageQuery {
            group_by,
            from_ns: Some(start),
            to_ns: Some(end),
            ..UsageQuery::default()
        };
        let mut series = BTreeMap::new();
        let mut groupings = vec![vec![Dimension::Tenant]];
        if self.settings.per_model {
            groupings.push(vec![Dimension::Tenant, Dimension::Model]);
        }
        for grouping in groupings {
            let per_model = grouping.len() > 1;
            for row in self.storage.usage(usage(grouping)).await? {
                let key = SeriesKey {
                    tenant: row.group.get("tenant").cloned().unwrap_or_default(),
                    model: per_model.then(|| row.group.get("model").cloned().unwrap_or_default()),
                };
                series.insert(
                    key,
                    BucketValues {
                        requests: row.requests,
                        cost_micro_usd: row.cost_micro_usd,
                        input_tokens: row.input_tokens,
                        output_tokens: row.output_tokens,
                        errors: row.errors,
                        blocked: row.blocked,
                        latency_p95_ms: row.latency_ms.p95,
                    },
                );
            }
        }
        let mut rules = Vec::new();
        let findings =
            |category: &str, action: Option<&str>, direction: Option<&str>| FindingsQuery {
                by: vec!["tenant".into()],
                from_ns: Some(start),
                to_ns: Some(end),
                category: Some(category.into()),
                action: action.map(str::to_string),
                direction: direction.map(str::to_string),
                ..FindingsQuery::default()
            };
        if self.settings.injection_burst > 0 {
            for row in self
                .storage
                .findings(findings("injection", Some("block"), None))
                .await?
            {
                rules.push(RuleObservation {
                    tenant: row.group.get("tenant").cloned().unwrap_or_default(),
                    rule: RuleKind::InjectionBurst,
                    count: row.findings,
                });
            }
        }
        if self.settings.secret_in_response {
            for row in self
                .storage
                .findings(findings("secret", None, Some("response")))
                .await?
            {
                rules.push(RuleObservation {
                    tenant: row.group.get("tenant").cloned().unwrap_or_default(),
                    rule: RuleKind::SecretInResponse,
                    count: row.findings,
                });
            }
        }
        Ok((series, rules))
    }

    /// Stores the changed anomalies and, for `live` buckets, hands openings and closings to
    /// the notifier. Changes the store refused are kept and stored on the next step.
    async fn record(&mut self, events: Vec<AnomalyEvent>, live: bool) -> Result<(), StorageError> {
        if events.is_empty() {
            return Ok(());
        }
        // the last change of each anomaly in this bucket is what is stored
        let mut latest: BTreeMap<String, super::Anomaly> = BTreeMap::new();
        for e in &events {
            latest.insert(e.anomaly().id.clone(), e.anomaly().clone());
        }
        if let Err(e) = self
            .storage
            .put_anomalies(latest.into_values().collect())
            .await
        {
            self.unrecorded.extend(events);
            return Err(e);
        }
        if !live {
            for e in &events {
                if let AnomalyEvent::Opened(a) = e {
                    self.metrics.anomaly_opened(&a.metric);
                }
            }
            return Ok(());
        }
        for e in events {
            let event = match &e {
                AnomalyEvent::Opened(a) => {
                    self.metrics.anomaly_opened(&a.metric);
                    tracing::info!(id = %a.id, tenant = %a.tenant, metric = %a.metric, kind = a.kind.as_str(), observed = a.observed, baseline = a.baseline_mean, z = a.z_score, "anomaly opened");
                    "opened"
                }
                AnomalyEvent::Closed(a) => {
                    tracing::info!(id = %a.id, tenant = %a.tenant, metric = %a.metric, "anomaly closed");
                    "closed"
                }
                AnomalyEvent::Updated(_) => continue,
            };
            if let Some(tx) = &self.notices {
                let notice = Notice {
                    event,
                    anomaly: e.anomaly().clone(),
                };
                if tx.try_send(notice).is_err() {
                    tracing::warn!("alert queue full or closed; an alert was dropped");
                    self.metrics.alert("queue", "failed");
                }
            }
        }
        Ok(())
    }
}

/// Runs `driver` every `tick` until `shutdown`, then saves its state.
pub async fn run<S: Storage>(
    mut driver: Driver<S>,
    clock: Arc<dyn Clock>,
    tick: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match driver.step(clock.now_ns()).await {
            Ok(s) if s.buckets > 0 => {
                tracing::debug!(
                    buckets = s.buckets,
                    events = s.events,
                    "anomaly detector step"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "anomaly detector step failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
    }
    if let Err(e) = driver.checkpoint().await {
        tracing::warn!(error = %e, "saving the detector's state at shutdown failed");
    }
}
