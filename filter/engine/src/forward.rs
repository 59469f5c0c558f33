//! The queue between the requests that produce trace summaries and the collector that stores
//! them. Requests push; the filter's root context asks, on every tick, whether a batch is due
//! (the batch is full, or the flush interval has passed) and sends it; the outcome of the call
//! comes back as [`SummaryQueue::on_result`]. The queue is bounded: when full, the oldest
//! summary is dropped and counted. A failed batch goes back to the front (still within the bound)
//! and sending pauses with exponential backoff. One batch is in flight at a time. Time is passed
//! in (nanoseconds from any monotonic origin), so every rule here is tested without a clock.

use prost::Message;
use std::collections::VecDeque;
use tollgate_proto::v1::{IngestRequest, TraceSummary};

/// Forwarding settings (from the filter's `collector` configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSettings {
    /// Most summaries per batch.
    pub batch_size: usize,
    /// Most summaries held (queued plus in flight).
    pub capacity: usize,
    /// A non-full batch is sent once this long has passed since the last send.
    pub flush_interval_ns: u64,
    /// First pause after a failure; doubles per consecutive failure up to `max_backoff_ns`.
    pub initial_backoff_ns: u64,
    pub max_backoff_ns: u64,
}

/// Bounded queue with batching and backoff; see the module docs.
#[derive(Debug)]
pub struct SummaryQueue {
    settings: ForwardSettings,
    queue: VecDeque<TraceSummary>,
    in_flight: Option<Vec<TraceSummary>>,
    last_send: u64,
    not_before: u64,
    failures: u32,
    dropped: u64,
    delivered: u64,
}

impl SummaryQueue {
    pub fn new(settings: ForwardSettings) -> Self {
        SummaryQueue {
            settings,
            queue: VecDeque::new(),
            in_flight: None,
            last_send: 0,
            not_before: 0,
            failures: 0,
            dropped: 0,
            delivered: 0,
        }
    }

    /// Queues a summary; drops the oldest queued one when the queue is full.
    pub fn push(&mut self, summary: TraceSummary) {
        self.queue.push_back(summary);
        self.enforce_capacity();
    }

    fn enforce_capacity(&mut self) {
        let in_flight = self.in_flight.as_ref().map_or(0, Vec::len);
        while self.queue.len() + in_flight > self.settings.capacity.max(1) {
            if self.queue.pop_front().is_none() {
                break;
            }
            self.dropped += 1;
        }
    }

    /// The encoded `IngestRequest` to send now, if a batch is due; it is then in flight until
    /// [`Self::on_result`].
    pub fn due_batch(&mut self, now: u64) -> Option<Vec<u8>> {
        if self.in_flight.is_some() || self.queue.is_empty() || now < self.not_before {
            return None;
        }
        let full = self.queue.len() >= self.settings.batch_size.max(1);
        let waited = now.saturating_sub(self.last_send) >= self.settings.flush_interval_ns;
        if !full && !waited {
            return None;
        }
        let n = self.queue.len().min(self.settings.batch_size.max(1));
        let batch: Vec<TraceSummary> = self.queue.drain(..n).collect();
        let body = IngestRequest {
            summaries: batch.clone(),
        }
        .encode_to_vec();
        self.in_flight = Some(batch);
        self.last_send = now;
        Some(body)
    }

    /// The in-flight batch was stored (`ok`) or not (error, timeout, no collector).
    pub fn on_result(&mut self, ok: bool, now: u64) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        if ok {
            self.delivered += batch.len() as u64;
            self.failures = 0;
            self.not_before = 0;
            return;
        }
        // back to the front, oldest first, within the bound
        for s in batch.into_iter().rev() {
            self.queue.push_front(s);
        }
        self.enforce_capacity();
        self.failures = self.failures.saturating_add(1);
        let shift = self.failures.saturating_sub(1).min(20);
        let backoff = self
            .settings
            .initial_backoff_ns
            .saturating_mul(1u64 << shift)
            .min(self.settings.max_backoff_ns);
        self.not_before = now.saturating_add(backoff);
    }

    /// Summaries waiting (not counting the batch in flight).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether a batch is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Summaries dropped because the queue was full (since start).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Summaries the collector acknowledged (since start).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn settings() -> ForwardSettings {
        ForwardSettings {
            batch_size: 3,
            capacity: 5,
            flush_interval_ns: 1000 * MS,
            initial_backoff_ns: 100 * MS,
            max_backoff_ns: 400 * MS,
        }
    }

    fn summary(i: u32) -> TraceSummary {
        TraceSummary {
            request_id: format!("r{i}"),
            ..TraceSummary::default()
        }
    }

    fn ids(body: &[u8]) -> Vec<String> {
        IngestRequest::decode(body)
            .unwrap()
            .summaries
            .into_iter()
            .map(|s| s.request_id)
            .collect()
    }

    #[test]
    fn sends_full_batches_at_once_and_partial_ones_after_the_interval() {
        let mut q = SummaryQueue::new(ForwardSettings {
            capacity: 100,
            ..settings()
        });
        q.push(summary(1));
        q.push(summary(2));
        assert!(
            q.due_batch(500 * MS).is_none(),
            "partial batch before the interval"
        );
        assert_eq!(
            ids(&q.due_batch(1000 * MS).unwrap()),
            ["r1", "r2"],
            "interval passed"
        );
        q.on_result(true, 1001 * MS);
        q.push(summary(3));
        assert!(
            q.due_batch(1500 * MS).is_none(),
            "partial batch before the interval"
        );
        q.push(summary(4));
        q.push(summary(5));
        assert_eq!(
            ids(&q.due_batch(1600 * MS).unwrap()),
            ["r3", "r4", "r5"],
            "full batch at once"
        );
        q.push(summary(6));
        q.push(summary(7));
        q.push(summary(8));
        assert!(
            q.due_batch(1700 * MS).is_none(),
            "one batch in flight at a time"
        );
        q.on_result(true, 1701 * MS);
        assert!(
            q.due_batch(1702 * MS).is_some(),
            "the next full batch right after"
        );
        q.on_result(true, 1703 * MS);
        assert_eq!(q.delivered(), 8);
    }

    #[test]
    fn failures_requeue_in_order_and_back_off_exponentially() {
        let mut q = SummaryQueue::new(settings());
        for i in 1..=3 {
            q.push(summary(i));
        }
        assert!(q.due_batch(0).is_some());
        q.on_result(false, 0);
        assert!(q.due_batch(50 * MS).is_none(), "backing off 100 ms");
        let b = q.due_batch(100 * MS).unwrap();
        assert_eq!(ids(&b), ["r1", "r2", "r3"], "same order after a failure");
        q.on_result(false, 100 * MS);
        assert!(q.due_batch(250 * MS).is_none(), "second failure: 200 ms");
        assert!(q.due_batch(300 * MS).is_some());
        q.on_result(false, 300 * MS);
        q.due_batch(700 * MS).unwrap();
        q.on_result(false, 700 * MS);
        assert!(q.due_batch(1099 * MS).is_none(), "capped at 400 ms");
        assert!(q.due_batch(1100 * MS).is_some());
        q.on_result(true, 1100 * MS);
        assert_eq!((q.delivered(), q.dropped()), (3, 0));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let mut q = SummaryQueue::new(settings());
        for i in 1..=8 {
            q.push(summary(i));
        }
        assert_eq!((q.len(), q.dropped()), (5, 3));
        let b = q.due_batch(2000 * MS).unwrap();
        assert_eq!(ids(&b), ["r4", "r5", "r6"]);
        // while a batch is in flight the bound counts it too
        q.push(summary(9));
        q.push(summary(10));
        assert_eq!((q.len(), q.dropped()), (2, 5));
        // a failed batch comes back within the bound: the oldest go
        q.on_result(false, 2001 * MS);
        assert_eq!(q.len(), 5);
        assert_eq!(q.dropped(), 5);
        let b = q.due_batch(3000 * MS).unwrap();
        assert_eq!(ids(&b), ["r4", "r5", "r6"]);
    }
}
