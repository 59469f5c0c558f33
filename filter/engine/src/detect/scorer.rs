//! The learned injection scorer: a linear model over hashed word unigrams and bigrams of the
//! folded text, scored over sliding windows of tokens, beside the keyword rules.
//!
//! Rules name phrasings; the scorer weighs vocabulary, so it still sees an attack worded in a
//! way no rule spelt out. Text is tokenised after [`crate::normalize`] folding: runs of letters
//! and digits are words, and every Han, kana or other unspaced-script character is a token of
//! its own. Each token yields three features: its own hash, the hash of it with the token
//! before, and the hash of its first five characters (a crude stem shared across inflections
//! and related languages), each reduced to one of `2^bits` buckets holding a signed 8-bit
//! weight. The text is
//! cut into windows of `window` tokens starting every `window / 2` tokens; a window's score is
//! `bias + scale · Σ weights / √(features)` and the text's score is the best window's, turned
//! into a probability with the logistic function. So a long document with one injected
//! paragraph scores as that paragraph does, and the cost is one pass over the tokens.
//!
//! The model is data: `scorer_model.bin`, written by `eval/train_scorer.py` from the features
//! that `tollgate features` prints (this module's own [`windows`]), so training and inference
//! share one tokenizer. ADR 0014 records how it is trained, updated and overridden.

use crate::error::EngineError;

/// The model shipped with the engine.
static BUILTIN_MODEL: &[u8] = include_bytes!("scorer_model.bin");

const MAGIC: &[u8; 4] = b"TGSM";
const VERSION: u8 = 1;
const HEADER: usize = 24;

/// A loaded scorer model.
#[derive(Debug, Clone)]
pub struct ScorerModel {
    bits: u32,
    window: usize,
    scale: f32,
    bias: f32,
    threshold: f32,
    block_threshold: f32,
    weights: &'static [u8],
}

/// The best window of a text: its score and the byte span of the folded text it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowScore {
    /// The log-odds: sums, products and a square root only, so native and wasm builds agree
    /// to the bit.
    pub logit: f32,
    pub probability: f32,
    pub start: usize,
    pub end: usize,
}

/// One token's three features and its byte span in the folded text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFeatures {
    pub unigram: u32,
    pub bigram: u32,
    /// The word's first five characters: a crude stem that "ignoriere", "ignora" and "ignore",
    /// or "instrucciones" and "instructions", share.
    pub prefix: u32,
    pub start: u32,
    pub end: u32,
}

impl ScorerModel {
    /// The model compiled into the engine; `None` if it was built without one (a header-only
    /// file), which leaves the scorer off.
    pub fn builtin() -> Result<Option<Self>, EngineError> {
        Self::parse(BUILTIN_MODEL)
    }

    /// Parses `TGSM` model bytes: magic, version, bucket bits, window (`u16`), then scale, bias
    /// and the calibrated flag and block thresholds (little-endian `f32`), then `2^bits` signed
    /// bytes. Zero bits means no model.
    pub fn parse(bytes: &'static [u8]) -> Result<Option<Self>, EngineError> {
        let bad = |why: &str| EngineError::config("detectors.injection.scorer", why.to_string());
        let head = bytes
            .get(..HEADER)
            .ok_or_else(|| bad("model file too short"))?;
        let field = |range: std::ops::Range<usize>| -> [u8; 4] {
            let mut out = [0u8; 4];
            if let Some(src) = head.get(range) {
                out.copy_from_slice(src);
            }
            out
        };
        if head.get(..4) != Some(MAGIC.as_slice()) || head.get(4) != Some(&VERSION) {
            return Err(bad("not a version-1 TGSM model"));
        }
        let bits = u32::from(head.get(5).copied().unwrap_or(0));
        if bits == 0 {
            return Ok(None);
        }
        if !(8..=22).contains(&bits) {
            return Err(bad("bucket bits out of range"));
        }
        let window = usize::from(u16::from_le_bytes([
            head.get(6).copied().unwrap_or(0),
            head.get(7).copied().unwrap_or(0),
        ]));
        let scale = f32::from_le_bytes(field(8..12));
        let bias = f32::from_le_bytes(field(12..16));
        let threshold = f32::from_le_bytes(field(16..20));
        let block_threshold = f32::from_le_bytes(field(20..24));
        let weights = bytes.get(HEADER..).unwrap_or_default();
        if weights.len() != 1usize << bits || window < 2 || !scale.is_finite() || !bias.is_finite()
        {
            return Err(bad("model size does not match its header"));
        }
        let probability = |p: f32| p > 0.0 && p <= 1.0;
        if !probability(threshold) || !probability(block_threshold) {
            return Err(bad("model thresholds are not probabilities"));
        }
        Ok(Some(ScorerModel {
            bits,
            window,
            scale,
            bias,
            threshold,
            block_threshold,
            weights,
        }))
    }

    /// Bytes the model's weights take.
    pub fn size(&self) -> usize {
        self.weights.len()
    }

    /// The bucket bits, which feature extraction needs.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The calibrated probabilities for `pi.model.suspect` and `pi.model.attack`.
    pub fn thresholds(&self) -> (f32, f32) {
        (self.threshold, self.block_threshold)
    }

    /// Tokens per window.
    pub fn window(&self) -> usize {
        self.window
    }

    fn weight(&self, bucket: u32) -> f32 {
        f32::from(self.weights.get(bucket as usize).copied().unwrap_or(0) as i8)
    }

    /// Scores folded text; `scratch` is reused between calls. `None` for text without tokens.
    pub fn score(&self, folded: &str, scratch: &mut Vec<TokenFeatures>) -> Option<WindowScore> {
        tokens(folded, self.bits, scratch);
        // each token's weight once, then every window as a difference of running sums (the sums
        // are in f64 so the difference is exact to well below the weights' resolution)
        let mut running: Vec<f64> = Vec::with_capacity(scratch.len() + 1);
        let mut total = 0.0f64;
        running.push(total);
        for t in scratch.iter() {
            total +=
                f64::from(self.weight(t.unigram) + self.weight(t.bigram) + self.weight(t.prefix));
            running.push(total);
        }
        let mut best: Option<(f32, usize, usize)> = None;
        for (lo, hi) in windows(scratch.len(), self.window) {
            let (Some(a), Some(b)) = (running.get(lo), running.get(hi)) else {
                continue;
            };
            let sum = (b - a) as f32;
            let features = (FEATURES_PER_TOKEN * (hi - lo)).max(MIN_FEATURES) as f32;
            let logit = self.bias + self.scale * sum / features.sqrt();
            if best.is_none_or(|(b, _, _)| logit > b) {
                best = Some((logit, lo, hi));
            }
        }
        let (logit, lo, hi) = best?;
        let start = scratch.get(lo)?.start as usize;
        let end = scratch.get(hi.checked_sub(1)?)?.end as usize;
        Some(WindowScore {
            logit,
            probability: 1.0 / (1.0 + (-logit).exp()),
            start,
            end,
        })
    }
}

/// The log-odds of a probability in (0, 1]; thresholds are compared in this space.
pub fn logit(p: f32) -> f32 {
    if p >= 1.0 {
        f32::INFINITY
    } else {
        (p / (1.0 - p)).ln()
    }
}

/// The features of every window of raw `text`, as the scorer sees them (folded, tokenised,
/// windowed): what `tollgate features` prints for `eval/train_scorer.py`.
pub fn window_features(text: &str, bits: u32, window: usize) -> Vec<Vec<u32>> {
    let mut normalizer = crate::normalize::Normalizer::new();
    let folded = normalizer.normalize(text);
    let mut toks = Vec::new();
    tokens(folded.text(), bits, &mut toks);
    windows(toks.len(), window)
        .filter_map(|(lo, hi)| toks.get(lo..hi))
        .map(|w| {
            w.iter()
                .flat_map(|t| [t.unigram, t.bigram, t.prefix])
                .collect()
        })
        .collect()
}

/// The token windows of a text of `n` tokens: `window` tokens starting every `window / 2`,
/// the last one ending at the text's end; one window for a short text.
pub fn windows(n: usize, window: usize) -> impl Iterator<Item = (usize, usize)> {
    let stride = (window / 2).max(1);
    let last_start = n.saturating_sub(window);
    let count = if n == 0 {
        0
    } else {
        last_start.div_ceil(stride) + 1
    };
    (0..count).map(move |k| {
        let lo = (k * stride).min(last_start);
        (lo, (lo + window).min(n))
    })
}

/// Whether `c` is written without spaces between words, so each character is a token.
fn unspaced(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}' | '\u{FF66}'..='\u{FF9F}' | '\u{0E00}'..='\u{0E7F}'
        | '\u{20000}'..='\u{2FFFF}')
}

/// Features each token contributes to its window.
const FEATURES_PER_TOKEN: usize = 3;
/// A window's sum is divided by the square root of its feature count, but never of fewer than
/// this many (eight tokens): a text of two or three words is not evidence enough on its own,
/// whatever one heavy word weighs ("card 4111 … #41", where "41" folds to "ai").
/// `eval/train_scorer.py` normalises with the same floor.
const MIN_FEATURES: usize = 24;
/// Characters of a word that make its prefix feature.
const PREFIX_CHARS: usize = 5;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn bucket(h: u64, bits: u32) -> u32 {
    // the top bits of a multiplicative mix
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as u32
}

/// Splits folded text into tokens and hashes their features into `out` (cleared first).
/// ASCII, most of the folded text, takes a byte-at-a-time path; other characters are decoded,
/// and whether they are alphanumeric is remembered in a small cache (the standard library's
/// table search costs hundreds of instructions a character, and a text's non-ASCII characters
/// come from few scripts).
pub fn tokens(folded: &str, bits: u32, out: &mut Vec<TokenFeatures>) {
    out.clear();
    out.reserve(folded.len() / 5);
    let bytes = folded.as_bytes();
    let mut prev: u64 = 0x5bd1_e995;
    let mut emit = |h: u64, pre: u64, start: usize, end: usize, prev: &mut u64| {
        let bi = (prev.rotate_left(23) ^ h).wrapping_mul(FNV_PRIME) ^ 0x2;
        out.push(TokenFeatures {
            unigram: bucket(h ^ 0x1, bits),
            bigram: bucket(bi, bits),
            prefix: bucket(pre.wrapping_mul(FNV_PRIME) ^ 0x3, bits),
            start: start as u32,
            end: end as u32,
        });
        *prev = h;
    };
    // the current word: its hash, start, character count (0: no word) and its prefix's hash
    let (mut h, mut start, mut n, mut pre) = (FNV_OFFSET, 0usize, 0usize, FNV_OFFSET);
    let mut alnum_cache = [(u32::MAX, false); 64];
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b < 0x80 {
            if b.is_ascii_alphanumeric() {
                if n == 0 {
                    (h, start) = (FNV_OFFSET, i);
                }
                h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                n += 1;
                if n <= PREFIX_CHARS {
                    pre = h;
                }
            } else if n > 0 {
                emit(h, pre, start, i, &mut prev);
                n = 0;
            }
            i += 1;
            continue;
        }
        let Some(c) = folded.get(i..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        let width = c.len_utf8();
        let utf8 = bytes.get(i..i + width).unwrap_or_default();
        let mut alphanumeric = || {
            let slot = alnum_cache.get_mut((c as usize) & 63);
            match slot {
                Some((k, v)) if *k == c as u32 => *v,
                Some(entry) => {
                    let v = c.is_alphanumeric();
                    *entry = (c as u32, v);
                    v
                }
                None => c.is_alphanumeric(),
            }
        };
        if unspaced(c) {
            if n > 0 {
                emit(h, pre, start, i, &mut prev);
                n = 0;
            }
            let hc = utf8.iter().fold(FNV_OFFSET, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
            });
            emit(hc, hc, i, i + width, &mut prev);
        } else if alphanumeric() {
            if n == 0 {
                (h, start) = (FNV_OFFSET, i);
            }
            for &b in utf8 {
                h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
            n += 1;
            if n <= PREFIX_CHARS {
                pre = h;
            }
        } else if n > 0 {
            emit(h, pre, start, i, &mut prev);
            n = 0;
        }
        i += width;
    }
    if n > 0 {
        emit(h, pre, start, folded.len(), &mut prev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_token_once_or_twice() {
        assert_eq!(windows(0, 8).count(), 0);
        assert_eq!(windows(3, 8).collect::<Vec<_>>(), vec![(0, 3)]);
        assert_eq!(windows(8, 8).collect::<Vec<_>>(), vec![(0, 8)]);
        assert_eq!(
            windows(13, 8).collect::<Vec<_>>(),
            vec![(0, 8), (4, 12), (5, 13)]
        );
        for n in 1..60 {
            let mut seen = vec![0; n];
            for (lo, hi) in windows(n, 8) {
                assert!(hi - lo == n.min(8));
                for s in &mut seen[lo..hi] {
                    *s += 1;
                }
            }
            assert!(seen.iter().all(|&c| c >= 1), "n={n}");
        }
    }

    #[test]
    fn tokenises_words_and_unspaced_scripts() {
        let mut out = Vec::new();
        tokens("ignore the 上面 rules, ok", 16, &mut out);
        let spans: Vec<(u32, u32)> = out.iter().map(|t| (t.start, t.end)).collect();
        let text = "ignore the 上面 rules, ok";
        let words: Vec<&str> = spans
            .iter()
            .map(|&(a, b)| &text[a as usize..b as usize])
            .collect();
        assert_eq!(words, vec!["ignore", "the", "上", "面", "rules", "ok"]);
        // the same word hashes the same wherever it is; bigrams depend on the word before
        let mut again = Vec::new();
        tokens("rules the", 16, &mut again);
        assert_eq!(again[0].unigram, out[4].unigram);
        assert_ne!(again[1].bigram, out[1].bigram);
        assert!(out
            .iter()
            .all(|t| t.unigram < 1 << 16 && t.bigram < 1 << 16));
    }

    #[test]
    fn parses_and_scores_a_model() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.push(8);
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&1.0f32.to_le_bytes());
        bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
        bytes.extend_from_slice(&0.5f32.to_le_bytes());
        bytes.extend_from_slice(&0.9f32.to_le_bytes());
        let mut weights = vec![0u8; 256];
        let mut feats = Vec::new();
        tokens("evil", 8, &mut feats);
        weights[feats[0].unigram as usize] = 100;
        bytes.extend_from_slice(&weights);
        let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let model = ScorerModel::parse(leaked).unwrap().unwrap();
        let mut scratch = Vec::new();
        let calm = model.score("a b c d e f g h", &mut scratch).unwrap();
        assert!(calm.probability < 0.2, "{calm:?}");
        let text = "a b c d e f g h evil i";
        let hot = model.score(text, &mut scratch).unwrap();
        assert!(hot.probability > 0.9, "{hot:?}");
        assert!(text[hot.start..hot.end].contains("evil"));
        assert!(model.score("  ,, ", &mut scratch).is_none());
        // truncated and foreign files are refused
        assert!(ScorerModel::parse(&leaked[..30]).is_err());
        assert!(ScorerModel::parse(b"NOPE\x01\x08\x00\x000000000000000000").is_err());
    }
}
