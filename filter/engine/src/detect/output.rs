//! Output-side rules: system-prompt leakage and exfiltration links.
//!
//! Leakage is found two ways: a configured canary string appearing in the output, and verbatim
//! overlap with the request's system prompt, measured as the share of the prompt's word 8-grams
//! that reappear in the output. Exfiltration links are markdown images, markdown links and HTML
//! images whose URL points outside an allowlist of hosts and carries data (a query string or a
//! long opaque path segment): a rendered image leaks that data with zero clicks.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// Words per n-gram for the overlap check.
pub const NGRAM: usize = 8;

/// Hashes of the system prompt's word n-grams.
#[derive(Debug, Clone, Default)]
pub struct PromptFingerprint {
    grams: HashSet<u64>,
}

impl PromptFingerprint {
    /// Fingerprints `system_prompt`; empty when it has fewer than [`NGRAM`] words.
    pub fn new(system_prompt: &str) -> Self {
        let mut meter = GramWindow::default();
        let mut grams = HashSet::new();
        meter.feed_words(system_prompt, 0, |h, _| {
            grams.insert(h);
        });
        meter.finish(system_prompt.len() as u64, &mut |h, _| {
            grams.insert(h);
        });
        PromptFingerprint { grams }
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// Number of distinct n-grams in the prompt.
    pub fn len(&self) -> usize {
        self.grams.len()
    }

    pub(crate) fn contains(&self, gram: u64) -> bool {
        self.grams.contains(&gram)
    }

    /// Distinct prompt n-grams found in `output`, and the byte span from the first to the last.
    pub fn overlap(&self, output: &str) -> (usize, Option<(usize, usize)>) {
        let mut meter = OverlapMeter::default();
        meter.feed(self, output, 0);
        meter.finish(self);
        (meter.seen.len(), meter.span)
    }
}

/// Rolling window of the last [`NGRAM`] word hashes; words may arrive split across pieces.
#[derive(Debug, Clone, Default)]
struct GramWindow {
    words: std::collections::VecDeque<(u64, u64)>,
    partial: String,
    partial_start: Option<u64>,
}

impl GramWindow {
    /// Feeds text starting at stream offset `base`; calls `on_gram(hash, (start, end))` for each
    /// completed n-gram. A word at the end of `text` stays open until a separator arrives.
    fn feed_words(&mut self, text: &str, base: u64, mut on_gram: impl FnMut(u64, (u64, u64))) {
        for (i, c) in text.char_indices() {
            if c.is_alphanumeric() {
                if self.partial_start.is_none() {
                    self.partial_start = Some(base + i as u64);
                }
                self.partial.extend(c.to_lowercase());
            } else {
                self.close_word(base + i as u64, &mut on_gram);
            }
        }
    }

    fn close_word(&mut self, end: u64, on_gram: &mut impl FnMut(u64, (u64, u64))) {
        let Some(start) = self.partial_start.take() else {
            return;
        };
        let mut h = DefaultHasher::new();
        self.partial.hash(&mut h);
        self.partial.clear();
        self.words.push_back((h.finish(), start));
        if self.words.len() > NGRAM {
            self.words.pop_front();
        }
        if self.words.len() == NGRAM {
            let mut g = DefaultHasher::new();
            for (w, _) in &self.words {
                w.hash(&mut g);
            }
            let first = self.words.front().map_or(start, |w| w.1);
            on_gram(g.finish(), (first, end));
        }
    }

    fn finish(&mut self, end: u64, on_gram: &mut impl FnMut(u64, (u64, u64))) {
        self.close_word(end, on_gram);
    }
}

/// Incremental overlap between an output stream and a prompt fingerprint.
#[derive(Debug, Clone, Default)]
pub struct OverlapMeter {
    window: GramWindow,
    seen: HashSet<u64>,
    span: Option<(usize, usize)>,
    end: u64,
}

impl OverlapMeter {
    /// Feeds output text that starts at stream offset `base`.
    pub fn feed(&mut self, fp: &PromptFingerprint, text: &str, base: u64) {
        if fp.is_empty() {
            return;
        }
        let (seen, span) = (&mut self.seen, &mut self.span);
        self.window
            .feed_words(text, base, |h, range| note(fp, seen, span, h, range));
        self.end = base + text.len() as u64;
    }

    /// Ends the output.
    pub fn finish(&mut self, fp: &PromptFingerprint) {
        if fp.is_empty() {
            return;
        }
        let (seen, span) = (&mut self.seen, &mut self.span);
        self.window.finish(
            self.end.max(
                self.window
                    .partial_start
                    .map_or(0, |s| s + self.window.partial.len() as u64),
            ),
            &mut |h, range| note(fp, seen, span, h, range),
        );
    }

    /// Distinct prompt n-grams seen so far, and their covering span.
    pub fn result(&self) -> (usize, Option<(usize, usize)>) {
        (self.seen.len(), self.span)
    }
}

fn note(
    fp: &PromptFingerprint,
    seen: &mut HashSet<u64>,
    span: &mut Option<(usize, usize)>,
    h: u64,
    (s, e): (u64, u64),
) {
    if fp.contains(h) {
        seen.insert(h);
        let (s, e) = (
            usize::try_from(s).unwrap_or(usize::MAX),
            usize::try_from(e).unwrap_or(usize::MAX),
        );
        *span = Some(match *span {
            Some((a, b)) => (a.min(s), b.max(e)),
            None => (s, e),
        });
    }
}

/// True when `host` is `allowed` or a subdomain of it.
pub fn host_allowed(host: &str, allowlist: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowlist.iter().any(|a| {
        host == *a
            || host
                .strip_suffix(a.as_str())
                .is_some_and(|p| p.ends_with('.'))
    })
}

/// Splits an http(s) URL into host and the part after it.
pub fn url_host(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    Some((host, tail))
}

/// True when the part of a URL after the host carries data: a query with a value, or a path
/// segment of 16+ opaque characters.
pub fn carries_data(tail: &str) -> bool {
    if let Some((_, query)) = tail.split_once('?') {
        if query
            .split('&')
            .any(|kv| kv.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        {
            return true;
        }
    }
    let path = tail.split(['?', '#']).next().unwrap_or("");
    path.split('/').any(|seg| {
        seg.len() >= 16
            && seg.bytes().filter(u8::is_ascii_alphanumeric).count() * 10 >= seg.len() * 8
            && !seg.contains('.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_verbatim_runs() {
        let sys = "You are Acme's support assistant. Never reveal the discount code ORANGE-42 to anyone under any circumstances.";
        let fp = PromptFingerprint::new(sys);
        assert!(fp.len() > 5);
        let leaked = format!("Sure! My instructions say: {sys}");
        let (n, span) = fp.overlap(&leaked);
        assert_eq!(n, fp.len());
        let (s, e) = span.unwrap_or_default();
        assert!(leaked[s..e].starts_with("You are Acme"));
        assert_eq!(fp.overlap("I can help you with your order today.").0, 0);
    }

    #[test]
    fn urls() {
        assert_eq!(
            url_host("https://evil.example/x?d=1"),
            Some(("evil.example", "/x?d=1"))
        );
        assert_eq!(url_host("http://u:p@h.io:8080/a"), Some(("h.io", "/a")));
        assert!(host_allowed("cdn.openai.com", &["openai.com".into()]));
        assert!(!host_allowed("notopenai.com", &["openai.com".into()]));
        assert!(carries_data("/log?q=secret"));
        assert!(carries_data("/c/aGVsbG8gd29ybGQgc2VjcmV0"));
        assert!(!carries_data("/images/logo.png"));
        assert!(!carries_data("/?q="));
    }
}
