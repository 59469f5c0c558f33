//! Token usage as providers report it, normalised to one shape, and an estimator for when they
//! report nothing.
//!
//! Providers count differently: OpenAI's `prompt_tokens` includes cached tokens and its
//! `completion_tokens` includes reasoning tokens; Anthropic's `input_tokens` excludes cache reads
//! and writes; Gemini's `candidatesTokenCount` excludes `thoughtsTokenCount`. [`Usage`] always
//! holds totals with the cached/reasoning parts as subsets, so cost and reporting need no provider
//! knowledge. [`estimate_tokens`] approximates a modern BPE tokenizer (o200k) from character
//! classes; it is used only when the provider gave no usage, and the result is flagged
//! `estimated`. Its error against tiktoken is measured in `tests/estimate_accuracy.rs`.

use serde::Serialize;

/// Normalised token usage of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// All input tokens, including cache reads and cache writes.
    pub input_tokens: u64,
    /// Input tokens served from the provider's prompt cache (subset of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Input tokens written to the provider's prompt cache (subset of `input_tokens`).
    pub cache_write_tokens: u64,
    /// All output tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Reasoning ("thinking") tokens (subset of `output_tokens`).
    pub reasoning_tokens: u64,
    /// True when any part was estimated from text instead of reported by the provider.
    pub estimated: bool,
}

impl Usage {
    /// Input + output.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// Estimated token count of `text` for a modern BPE vocabulary (o200k-like).
pub fn estimate_tokens(text: &str) -> u64 {
    let mut est = TokenEstimate::default();
    est.feed(text);
    est.total()
}

/// Incremental form of [`estimate_tokens`]; feed text pieces as they stream.
#[derive(Debug, Clone, Default)]
pub struct TokenEstimate {
    /// Estimate in thousandths of a token, to keep fractional weights exact across pieces.
    milli: u64,
    class: CharClass,
    run: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum CharClass {
    #[default]
    None,
    Letter,
    Digit,
    Space,
    Newline,
    Punct,
    Ideograph,
    OtherLetter,
}

impl TokenEstimate {
    /// Adds the tokens of `text`. Pieces may split words; the estimate stays close to that of the
    /// joined text.
    pub fn feed(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b < 0x80 {
                // ASCII: one table lookup per byte
                let class = ASCII_CLASS
                    .get(usize::from(b))
                    .copied()
                    .unwrap_or(CharClass::Punct);
                self.step(class, 1);
                i += 1;
                continue;
            }
            let Some(c) = text.get(i..).and_then(|r| r.chars().next()) else {
                break;
            };
            let class = classify(c);
            let width = if class == CharClass::OtherLetter {
                c.len_utf8() as u32
            } else {
                1
            };
            self.step(class, width);
            i += c.len_utf8();
        }
    }

    #[inline]
    fn step(&mut self, class: CharClass, width: u32) {
        if class == self.class && class != CharClass::Ideograph {
            self.run += width;
            return;
        }
        self.close_run();
        self.class = class;
        self.run = width;
    }

    /// The estimate so far, including the open run.
    pub fn total(&self) -> u64 {
        let open = run_cost(self.class, self.run);
        (self.milli + open).div_ceil(1000)
    }

    fn close_run(&mut self) {
        self.milli += run_cost(self.class, self.run);
        self.run = 0;
        self.class = CharClass::None;
    }
}

const ASCII_CLASS: [CharClass; 128] = {
    let mut t = [CharClass::Punct; 128];
    let mut b = 0u8;
    while b < 128 {
        let c = match b {
            b'a'..=b'z' | b'A'..=b'Z' => CharClass::Letter,
            b'0'..=b'9' => CharClass::Digit,
            b' ' | b'\t' => CharClass::Space,
            b'\n' | b'\r' => CharClass::Newline,
            _ => CharClass::Punct,
        };
        #[allow(clippy::indexing_slicing)] // const context: b < 128 == t.len()
        let slot = &mut t[b as usize];
        *slot = c;
        b += 1;
    }
    t
};

fn classify(c: char) -> CharClass {
    match c {
        'a'..='z' | 'A'..='Z' => CharClass::Letter,
        '0'..='9' => CharClass::Digit,
        ' ' | '\t' => CharClass::Space,
        '\n' | '\r' => CharClass::Newline,
        c if c.is_ascii() => CharClass::Punct,
        '\u{3040}'..='\u{30FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7A3}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FFFF}' => CharClass::Ideograph,
        c if c.is_alphabetic() => CharClass::OtherLetter,
        c if c.is_whitespace() => CharClass::Space,
        _ => CharClass::Punct,
    }
}

/// Cost of a run of `n` characters (bytes for other scripts) of one class, in milli-tokens.
fn run_cost(class: CharClass, n: u32) -> u64 {
    let n = u64::from(n);
    match class {
        CharClass::None => 0,
        // Common words are one token; longer words split into pieces of about four letters.
        CharClass::Letter => {
            if n <= 7 {
                1000
            } else {
                1000 + (n - 7) * 1000 / 4
            }
        }
        // o200k splits digit runs into groups of up to three.
        CharClass::Digit => n.div_ceil(3) * 1000,
        // A single space is absorbed by the next word; longer runs (indentation) are tokens.
        CharClass::Space => {
            if n <= 1 {
                0
            } else {
                500 + (n - 2) * 1000 / 16
            }
        }
        CharClass::Newline => 700 + (n - 1) * 200,
        CharClass::Punct => 300 + 400 * n,
        CharClass::Ideograph => 720,
        CharClass::OtherLetter => 400 * n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_zero() {
        assert_eq!(estimate_tokens(""), 0);
    }

    #[test]
    fn short_english_is_about_one_token_per_word() {
        let n = estimate_tokens("The quick brown fox jumps over the lazy dog.");
        assert!((9..=12).contains(&n), "{n}");
    }

    #[test]
    fn incremental_pieces_agree_with_the_whole() {
        let text = "Hello, world! 12345 你好世界 and some more words\n\n    indented";
        let mut est = TokenEstimate::default();
        for piece in text.split_inclusive(['o', '界']) {
            est.feed(piece);
        }
        let whole = estimate_tokens(text);
        assert!(
            est.total().abs_diff(whole) <= 3,
            "{} vs {}",
            est.total(),
            whole
        );
    }
}
