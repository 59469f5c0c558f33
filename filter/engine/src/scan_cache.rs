//! History inspected once. Chat and agent clients resend the whole conversation on every turn,
//! so most of a long request is text this gateway scanned one turn earlier. [`ScanCache`] keeps
//! what scanning a request segment found — its detector hits (rule and span within the
//! segment, never text) and its token estimate — under a digest of the detector configuration,
//! the segment's scan set and its text. The request analysis looks each long segment up before
//! scanning it and stores the result after, so a resent message costs a keyed hash pass and a
//! map lookup instead of a scan; redactions are applied from the cached spans to the resent text
//! exactly as from fresh ones. The cache is bounded in bytes and evicts with a second chance
//! (CLOCK): an entry hit since the hand last passed it survives one more round, so the early
//! messages every turn resends outlive one-off texts. Plain data: the shell owns one per VM and
//! hands it to each analysis (ADR 0015).

use crate::detect::{Hit, ScanSet};
use siphasher::sip128::{Hasher128, SipHasher13};
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;

/// A segment's digest: SipHash-1-3 with 128-bit output, keyed with the cache's secret, over the
/// scan digest, the scan set and the text. A keyed pseudo-random function, so that a sender who
/// does not know the secret cannot craft a text that collides with a scanned clean one; about
/// 15× faster than SHA-256 in a wasm VM, which has no SHA instructions (ADR 0015).
pub type SegmentKey = [u8; 16];

/// Segments shorter than this are scanned every time: hashing and looking them up costs about
/// what scanning them does.
pub const MIN_CACHED_BYTES: usize = 256;

/// What an entry costs besides its hits: the key in the map and the clock, the map slot and
/// the vector header, rounded up.
const ENTRY_BYTES: usize = 96;

/// Counts since the cache was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found the segment.
    pub hits: u64,
    /// Lookups that did not (the segment was then scanned).
    pub misses: u64,
    /// Entries dropped to stay within the bound.
    pub evictions: u64,
    /// Entries held now.
    pub entries: usize,
    /// Bytes held now (as counted against the bound).
    pub bytes: usize,
}

#[derive(Debug)]
struct Entry {
    hits: Vec<Hit>,
    tokens: u64,
    referenced: bool,
}

/// The bounded cache of scanned segments (see the module docs).
#[derive(Debug, Default)]
pub struct ScanCache {
    limit: usize,
    /// The digest key: random per cache, never leaves it.
    secret: [u8; 16],
    map: HashMap<SegmentKey, Entry>,
    /// Keys in insertion order; the front is where the clock hand points.
    clock: VecDeque<SegmentKey>,
    stats: CacheStats,
}

impl ScanCache {
    /// A cache holding at most `limit_bytes` (0: a cache that never holds anything), whose
    /// keys are digests keyed with `secret`. The secret must be unpredictable to senders (the
    /// shells draw it from the host's random source), or they could aim a collision at it.
    pub fn new(limit_bytes: usize, secret: [u8; 16]) -> Self {
        ScanCache {
            limit: limit_bytes,
            secret,
            ..ScanCache::default()
        }
    }

    /// A cache that holds nothing: every segment is scanned.
    pub fn off() -> Self {
        ScanCache::new(0, [0; 16])
    }

    /// Whether a segment of `len` bytes is worth looking up.
    pub fn worth_caching(&self, len: usize) -> bool {
        self.limit > 0 && len >= MIN_CACHED_BYTES
    }

    /// The key of `text` scanned with `set` by detectors whose configuration digests to
    /// `scan_digest`.
    pub fn key(&self, scan_digest: &[u8; 32], set: ScanSet, text: &str) -> SegmentKey {
        let flags = u8::from(set.injection)
            | u8::from(set.pii) << 1
            | u8::from(set.secrets) << 2
            | u8::from(set.exfil) << 3;
        let mut h = SipHasher13::new_with_key(&self.secret);
        h.write(scan_digest);
        h.write(&[flags]);
        h.write(text.as_bytes());
        h.finish128().as_bytes()
    }

    /// The hits and token estimate stored under `key`, counting a hit or a miss.
    pub fn get(&mut self, key: &SegmentKey) -> Option<(&[Hit], u64)> {
        match self.map.get_mut(key) {
            Some(entry) => {
                self.stats.hits += 1;
                entry.referenced = true;
                Some((&entry.hits, entry.tokens))
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Stores what scanning the segment under `key` found, evicting as needed. An entry larger
    /// than the whole bound is not stored.
    pub fn insert(&mut self, key: SegmentKey, hits: &[Hit], tokens: u64) {
        let cost = entry_cost(hits.len());
        if cost > self.limit || self.map.contains_key(&key) {
            return;
        }
        while self.stats.bytes + cost > self.limit {
            if !self.evict_one() {
                return;
            }
        }
        self.map.insert(
            key,
            Entry {
                hits: hits.to_vec(),
                tokens,
                referenced: false,
            },
        );
        self.clock.push_back(key);
        self.stats.bytes += cost;
        self.stats.entries = self.map.len();
    }

    /// Counts and sizes.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Advances the clock hand to the first entry not referenced since it last passed, and
    /// drops it. False when the cache is empty.
    fn evict_one(&mut self) -> bool {
        // each referenced entry is passed at most once before an unreferenced one is found
        for _ in 0..=self.clock.len() {
            let Some(key) = self.clock.pop_front() else {
                return false;
            };
            match self.map.get_mut(&key) {
                Some(entry) if entry.referenced => {
                    entry.referenced = false;
                    self.clock.push_back(key);
                }
                Some(_) => {
                    if let Some(entry) = self.map.remove(&key) {
                        self.stats.bytes = self
                            .stats
                            .bytes
                            .saturating_sub(entry_cost(entry.hits.len()));
                    }
                    self.stats.evictions += 1;
                    self.stats.entries = self.map.len();
                    return true;
                }
                None => {}
            }
        }
        false
    }
}

fn entry_cost(hits: usize) -> usize {
    ENTRY_BYTES + hits * std::mem::size_of::<Hit>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: ScanSet = ScanSet {
        injection: true,
        pii: true,
        secrets: true,
        exfil: false,
    };

    const SECRET: [u8; 16] = [9; 16];

    fn key(n: u32) -> SegmentKey {
        ScanCache::new(1, SECRET).key(&[7; 32], SET, &format!("segment {n}"))
    }

    fn hit(start: usize) -> Hit {
        Hit {
            rule: 3,
            start,
            end: start + 4,
        }
    }

    #[test]
    fn stores_and_finds_hits_and_tokens() {
        let mut c = ScanCache::new(10_000, SECRET);
        assert!(c.get(&key(1)).is_none());
        c.insert(key(1), &[hit(5), hit(9)], 42);
        let (hits, tokens) = c.get(&key(1)).unwrap();
        assert_eq!(hits, [hit(5), hit(9)]);
        assert_eq!(tokens, 42);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
        assert_eq!(s.bytes, entry_cost(2));
    }

    #[test]
    fn keys_differ_by_configuration_scan_set_and_text() {
        let c = ScanCache::new(1, SECRET);
        let base = c.key(&[1; 32], SET, "text");
        assert_ne!(base, c.key(&[2; 32], SET, "text"));
        assert_ne!(
            base,
            c.key(
                &[1; 32],
                ScanSet {
                    injection: false,
                    ..SET
                },
                "text"
            )
        );
        assert_ne!(base, c.key(&[1; 32], SET, "text "));
        assert_eq!(base, c.key(&[1; 32], SET, "text"));
        // another cache's secret, another key: a collision found against one VM's secret says
        // nothing about another's
        assert_ne!(base, ScanCache::new(1, [8; 16]).key(&[1; 32], SET, "text"));
    }

    #[test]
    fn stays_within_its_bound() {
        let limit = entry_cost(0) * 10;
        let mut c = ScanCache::new(limit, SECRET);
        for n in 0..100 {
            c.insert(key(n), &[], n.into());
            assert!(c.stats().bytes <= limit);
        }
        assert_eq!(c.stats().entries, 10);
        assert_eq!(c.stats().evictions, 90);
        // the last ten are the ones kept
        assert!(c.get(&key(89)).is_none());
        assert!(c.get(&key(90)).is_some());
        // an entry larger than the bound is not stored, and evicts nothing
        let big: Vec<Hit> = (0..100).map(hit).collect();
        c.insert(key(1000), &big, 0);
        assert!(c.get(&key(1000)).is_none());
        assert_eq!(c.stats().entries, 10);
    }

    #[test]
    fn entries_in_use_get_a_second_chance() {
        let mut c = ScanCache::new(entry_cost(0) * 3, SECRET);
        for n in 0..3 {
            c.insert(key(n), &[], 0);
        }
        // the oldest entry is resent on every turn: it outlives newer one-off texts
        for n in 3..10 {
            assert!(c.get(&key(0)).is_some(), "turn {n}");
            c.insert(key(n), &[], 0);
        }
        assert!(c.get(&key(0)).is_some());
        assert!(c.get(&key(1)).is_none());
    }

    #[test]
    fn an_off_cache_holds_nothing() {
        let mut c = ScanCache::off();
        assert!(!c.worth_caching(100_000));
        c.insert(key(1), &[], 1);
        assert!(c.get(&key(1)).is_none());
        assert!(ScanCache::new(1 << 20, SECRET).worth_caching(MIN_CACHED_BYTES));
        assert!(!ScanCache::new(1 << 20, SECRET).worth_caching(MIN_CACHED_BYTES - 1));
    }
}
