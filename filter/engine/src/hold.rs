//! The header-hold watchdog of one VM (ADR 0013). In strict mode
//! ([`crate::config::HoldMode::Headers`]) a request's headers are paused until its body is
//! decided, and that only works where the host delivers the body to a filter that paused its
//! headers (Envoy with `allow_on_headers_stop_iteration: true`). Elsewhere the request would wait
//! forever, so every paused request is watched: one with no body callback after
//! `release_after` is released, and after [`UNANSWERED_TO_FALL_BACK`] releases in a row with no
//! honoured pause between them the VM stops pausing headers (the default path from then on).
//! Until a pause has been seen honoured, and while an unanswered one is outstanding, only one
//! request at a time is paused (the others take the default path), so a host that ignores the
//! pause delays a few requests, not every request of the first second.
//! A pure state machine with time as a parameter; the plugin's root tick drives it.

/// Releases in a row, with no paused request seeing its body in between, after which the VM
/// concludes that the host ignores the pause.
pub const UNANSWERED_TO_FALL_BACK: u32 = 3;

/// Where a request stands when its first body callback arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersState {
    /// Paused and still held: request headers may be changed.
    Held,
    /// Paused, then released by the watchdog: the headers have gone on.
    Released,
    /// Never paused here.
    NotPaused,
}

/// What a tick released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// Context ids of the requests to resume.
    pub ids: Vec<u32>,
    /// This tick concluded that the host ignores the pause (reported once per VM).
    pub fell_back: bool,
}

/// Paused requests of one VM and what their fate says about the host.
#[derive(Debug, Clone)]
pub struct HoldWatch {
    release_after_ns: u64,
    /// (context id, paused at) of requests paused in their headers.
    paused: Vec<(u32, u64)>,
    /// Released requests whose body callback has not come yet.
    released: Vec<u32>,
    unanswered_in_row: u32,
    /// A paused request has seen its body: the host honours the pause.
    confirmed: bool,
    host_ignores_pause: bool,
    released_total: u64,
}

impl HoldWatch {
    pub fn new(release_after_ns: u64) -> Self {
        HoldWatch {
            release_after_ns,
            paused: Vec::new(),
            released: Vec::new(),
            unanswered_in_row: 0,
            confirmed: false,
            host_ignores_pause: false,
            released_total: 0,
        }
    }

    /// Whether a new request may pause in its headers: never once the host is known to ignore
    /// the pause; one at a time while that is still open.
    pub fn holds_headers(&self) -> bool {
        if self.host_ignores_pause {
            return false;
        }
        let trusted = self.confirmed && self.unanswered_in_row == 0;
        trusted || self.paused.is_empty()
    }

    /// The host is already known to ignore the pause (an earlier configuration of this VM found
    /// out): no request pauses.
    pub fn assume_host_ignores_pause(&mut self) {
        self.host_ignores_pause = true;
    }

    /// Whether this watch concluded (or was told) that the host ignores the pause.
    pub fn host_ignores_pause(&self) -> bool {
        self.host_ignores_pause
    }

    /// Requests released so far.
    pub fn released_total(&self) -> u64 {
        self.released_total
    }

    /// Requests paused now.
    pub fn paused_len(&self) -> usize {
        self.paused.len()
    }

    /// Request `id` paused its headers at `now`.
    pub fn paused(&mut self, id: u32, now: u64) {
        self.paused.push((id, now));
    }

    /// A body callback reached request `id`.
    pub fn body_seen(&mut self, id: u32) -> HeadersState {
        if let Some(i) = self.paused.iter().position(|(p, _)| *p == id) {
            self.paused.swap_remove(i);
            self.unanswered_in_row = 0;
            self.confirmed = true;
            return HeadersState::Held;
        }
        if let Some(i) = self.released.iter().position(|r| *r == id) {
            self.released.swap_remove(i);
            return HeadersState::Released;
        }
        HeadersState::NotPaused
    }

    /// Request `id` ended (whatever state it was in).
    pub fn ended(&mut self, id: u32) {
        self.paused.retain(|(p, _)| *p != id);
        self.released.retain(|r| *r != id);
    }

    /// The requests due for release at `now`.
    pub fn due(&mut self, now: u64) -> Release {
        let mut release = Release::default();
        let limit = self.release_after_ns;
        self.paused.retain(|(id, at)| {
            if now.saturating_sub(*at) >= limit {
                release.ids.push(*id);
                false
            } else {
                true
            }
        });
        for id in &release.ids {
            self.released.push(*id);
            self.released_total = self.released_total.saturating_add(1);
            self.unanswered_in_row = self.unanswered_in_row.saturating_add(1);
        }
        if !self.host_ignores_pause && self.unanswered_in_row >= UNANSWERED_TO_FALL_BACK {
            self.host_ignores_pause = true;
            release.fell_back = true;
        }
        release
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_paused_request_that_sees_its_body_is_held_and_never_released() {
        let mut w = HoldWatch::new(500 * MS);
        w.paused(7, 0);
        assert_eq!(w.body_seen(7), HeadersState::Held);
        assert_eq!(w.due(10_000 * MS), Release::default());
        assert_eq!(w.body_seen(7), HeadersState::NotPaused);
        assert!(w.holds_headers());
    }

    #[test]
    fn an_unanswered_pause_is_released_after_the_bound_and_not_before() {
        let mut w = HoldWatch::new(500 * MS);
        w.paused(1, 100 * MS);
        assert!(w.due(599 * MS).ids.is_empty());
        assert_eq!(w.due(600 * MS).ids, vec![1]);
        assert_eq!(w.body_seen(1), HeadersState::Released);
        assert_eq!(w.released_total(), 1);
        assert!(
            w.holds_headers(),
            "one release is not yet a verdict on the host"
        );
    }

    #[test]
    fn releases_in_a_row_make_the_vm_fall_back_once() {
        let mut w = HoldWatch::new(500 * MS);
        for id in 0..UNANSWERED_TO_FALL_BACK {
            w.paused(id, 0);
        }
        let r = w.due(500 * MS);
        assert_eq!(r.ids.len() as u32, UNANSWERED_TO_FALL_BACK);
        assert!(r.fell_back);
        assert!(!w.holds_headers());
        w.paused(99, 0);
        assert!(!w.due(1000 * MS).fell_back, "reported once");
    }

    #[test]
    fn an_honoured_pause_between_releases_resets_the_count() {
        let mut w = HoldWatch::new(500 * MS);
        for round in 0..10u32 {
            w.paused(round * 2, 0);
            w.paused(round * 2 + 1, 0);
            assert_eq!(w.body_seen(round * 2 + 1), HeadersState::Held);
            let r = w.due(600 * MS);
            assert_eq!(r.ids, vec![round * 2]);
            assert!(!r.fell_back);
        }
        assert!(
            w.holds_headers(),
            "a slow client now and then is not a deaf host"
        );
    }

    #[test]
    fn until_the_host_is_trusted_one_request_at_a_time_pauses() {
        let mut w = HoldWatch::new(500 * MS);
        assert!(w.holds_headers());
        w.paused(1, 0);
        assert!(
            !w.holds_headers(),
            "the others take the default path meanwhile"
        );
        assert_eq!(w.body_seen(1), HeadersState::Held);
        w.paused(2, 0);
        assert!(w.holds_headers(), "an honoured pause: concurrency is fine");
        w.paused(3, 0);
        assert_eq!(w.due(500 * MS).ids, vec![2, 3]);
        w.paused(4, 600 * MS);
        assert!(
            !w.holds_headers(),
            "after an unanswered pause, one at a time again"
        );
    }

    #[test]
    fn a_deaf_host_delays_only_the_paused_few() {
        let mut w = HoldWatch::new(500 * MS);
        let mut delayed = 0;
        // 300 requests arriving every 10 ms; the tick runs every 100 ms
        for i in 0..300u32 {
            let now = u64::from(i) * 10 * MS;
            if i % 10 == 0 {
                let _ = w.due(now);
            }
            if w.holds_headers() {
                w.paused(i, now);
                delayed += 1;
            }
        }
        assert_eq!(delayed, UNANSWERED_TO_FALL_BACK);
        assert!(w.host_ignores_pause());
    }

    #[test]
    fn a_known_deaf_host_never_pauses() {
        let mut w = HoldWatch::new(500 * MS);
        w.assume_host_ignores_pause();
        assert!(!w.holds_headers());
    }

    #[test]
    fn ended_requests_are_forgotten() {
        let mut w = HoldWatch::new(500 * MS);
        w.paused(3, 0);
        w.ended(3);
        assert!(w.due(10_000 * MS).ids.is_empty());
        assert_eq!(w.paused_len(), 0);
    }
}
