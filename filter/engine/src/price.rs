//! Money and prices. Every amount is an integer: prices are micro-USD per million tokens and
//! costs are micro-USD, so summing millions of calls never drifts the way floats do. Prices are
//! parsed from decimal strings ("2.50") exactly, never through a float.
//!
//! The built-in table holds list prices for current OpenAI, Anthropic and Gemini models (standard
//! tier, short context); operators override or extend it in config. A model missing from the
//! table has an unknown cost (`None`), never zero.

use crate::usage::Usage;
use serde::Serialize;

/// Prices of one model in micro-USD per million tokens (so `2_500_000` is $2.50 / 1M tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Price {
    pub input: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl Price {
    /// Cost of `usage` in micro-USD, rounded half up once at the end.
    pub fn cost_micro_usd(&self, usage: &Usage) -> u64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let plain_in = usage.input_tokens - cached - written;
        let reasoning = usage.reasoning_tokens.min(usage.output_tokens);
        let plain_out = usage.output_tokens - reasoning;
        let total: u128 = u128::from(plain_in) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(written) * u128::from(self.cache_write)
            + u128::from(plain_out) * u128::from(self.output)
            + u128::from(reasoning) * u128::from(self.reasoning);
        let micro = (total + 500_000) / 1_000_000;
        u64::try_from(micro).unwrap_or(u64::MAX)
    }
}

/// Parses a decimal USD amount ("2.5", "0.075", "$1.25", "10") into micro-USD.
pub fn parse_usd_micro(text: &str) -> Option<u64> {
    let t = text.trim().trim_start_matches('$');
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 6 {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut frac_micro: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        frac_micro *= 10;
    }
    whole.checked_mul(1_000_000)?.checked_add(frac_micro)
}

/// A model → price table with longest-prefix lookup on `-` boundaries, so dated snapshots
/// (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) find their family.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: Vec<(String, Price)>,
}

impl PriceTable {
    /// The built-in list prices.
    pub fn builtin() -> Self {
        let mut table = PriceTable::default();
        for &(model, input, cached, write, output) in BUILTIN {
            table.insert(
                model,
                Price {
                    input,
                    cached_input: cached,
                    cache_write: write,
                    output,
                    reasoning: output,
                },
            );
        }
        table
    }

    /// Adds or replaces one model's price.
    pub fn insert(&mut self, model: &str, price: Price) {
        let key = model.to_ascii_lowercase();
        match self.entries.iter_mut().find(|(m, _)| *m == key) {
            Some(entry) => entry.1 = price,
            None => self.entries.push((key, price)),
        }
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Finds the price of `model` (case-insensitive, provider prefixes like `models/` or
    /// `openai/` ignored).
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        let lower = model.trim().to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        let mut best: Option<(usize, &Price)> = None;
        for (key, price) in &self.entries {
            let fits = name == key
                || (name.starts_with(key.as_str())
                    && name.as_bytes().get(key.len()) == Some(&b'-'));
            if fits && best.is_none_or(|(len, _)| key.len() > len) {
                best = Some((key.len(), price));
            }
        }
        best.map(|(_, p)| p)
    }

    /// Cost of `usage` on `model`, or `None` when the model is unknown.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.lookup(model).map(|p| p.cost_micro_usd(usage))
    }
}

const M: u64 = 1_000_000;

/// (model, input, cached input, cache write, output) in micro-USD per 1M tokens. Reasoning tokens
/// are billed at the output price by all three providers. Tiered long-context prices are not
/// modelled; override them in config where they matter.
#[rustfmt::skip]
const BUILTIN: &[(&str, u64, u64, u64, u64)] = &[
    // OpenAI (cache writes are free: no separate write price)
    ("gpt-5",                   1_250_000,   125_000, 1_250_000, 10 * M),
    ("gpt-5-mini",                250_000,    25_000,   250_000,  2 * M),
    ("gpt-5-nano",                 50_000,     5_000,    50_000,    400_000),
    ("gpt-5-chat-latest",       1_250_000,   125_000, 1_250_000, 10 * M),
    ("gpt-4.1",                 2 * M,       500_000, 2 * M,      8 * M),
    ("gpt-4.1-mini",              400_000,   100_000,   400_000,  1_600_000),
    ("gpt-4.1-nano",              100_000,    25_000,   100_000,    400_000),
    ("gpt-4o",                  2_500_000, 1_250_000, 2_500_000, 10 * M),
    ("gpt-4o-mini",               150_000,    75_000,   150_000,    600_000),
    ("gpt-4-turbo",            10 * M,     10 * M,    10 * M,    30 * M),
    ("gpt-4",                  30 * M,     30 * M,    30 * M,    60 * M),
    ("gpt-3.5-turbo",             500_000,   500_000,   500_000,  1_500_000),
    ("gpt-3.5-turbo-instruct",  1_500_000, 1_500_000, 1_500_000,  2 * M),
    ("o1",                     15 * M,     7_500_000, 15 * M,    60 * M),
    ("o1-mini",                 1_100_000,   550_000, 1_100_000,  4_400_000),
    ("o3",                      2 * M,       500_000, 2 * M,      8 * M),
    ("o3-mini",                 1_100_000,   550_000, 1_100_000,  4_400_000),
    ("o4-mini",                 1_100_000,   275_000, 1_100_000,  4_400_000),
    ("text-embedding-3-small",     20_000,    20_000,    20_000,  0),
    ("text-embedding-3-large",    130_000,   130_000,   130_000,  0),
    ("text-embedding-ada-002",    100_000,   100_000,   100_000,  0),
    // Anthropic (5-minute cache writes at 1.25x input, cache reads at 0.1x)
    ("claude-opus-4-5",         5 * M,       500_000, 6_250_000, 25 * M),
    ("claude-opus-4-1",        15 * M,     1_500_000, 18_750_000, 75 * M),
    ("claude-opus-4",          15 * M,     1_500_000, 18_750_000, 75 * M),
    ("claude-sonnet-4-5",       3 * M,       300_000, 3_750_000, 15 * M),
    ("claude-sonnet-4",         3 * M,       300_000, 3_750_000, 15 * M),
    ("claude-haiku-4-5",        M,           100_000, 1_250_000,  5 * M),
    ("claude-3-7-sonnet",       3 * M,       300_000, 3_750_000, 15 * M),
    ("claude-3-5-sonnet",       3 * M,       300_000, 3_750_000, 15 * M),
    ("claude-3-5-haiku",          800_000,    80_000, M,          4 * M),
    ("claude-3-opus",          15 * M,     1_500_000, 18_750_000, 75 * M),
    ("claude-3-haiku",            250_000,    30_000,   300_000,  1_250_000),
    // Gemini (prompts up to 200k tokens; no separate cache write price)
    ("gemini-2.5-pro",          1_250_000,   125_000, 1_250_000, 10 * M),
    ("gemini-2.5-flash",          300_000,    30_000,   300_000,  2_500_000),
    ("gemini-2.5-flash-lite",     100_000,    10_000,   100_000,    400_000),
    ("gemini-2.0-flash",          100_000,    25_000,   100_000,    400_000),
    ("gemini-2.0-flash-lite",      75_000,    75_000,    75_000,    300_000),
    ("gemini-1.5-pro",          1_250_000,   312_500, 1_250_000,  5 * M),
    ("gemini-1.5-flash",           75_000,    18_750,    75_000,    300_000),
    ("text-embedding-004",              0,         0,         0,  0),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_prices_exactly() {
        assert_eq!(parse_usd_micro("2.50"), Some(2_500_000));
        assert_eq!(parse_usd_micro("$0.075"), Some(75_000));
        assert_eq!(parse_usd_micro("10"), Some(10_000_000));
        assert_eq!(parse_usd_micro(".5"), Some(500_000));
        assert_eq!(parse_usd_micro("0.0000001"), None);
        assert_eq!(parse_usd_micro("-1"), None);
        assert_eq!(parse_usd_micro("abc"), None);
        assert_eq!(parse_usd_micro(""), None);
    }

    #[test]
    fn longest_prefix_on_dash_boundaries() {
        let t = PriceTable::builtin();
        assert_eq!(
            t.lookup("gpt-4o-2024-08-06").map(|p| p.input),
            Some(2_500_000)
        );
        assert_eq!(
            t.lookup("gpt-4o-mini-2024-07-18").map(|p| p.input),
            Some(150_000)
        );
        assert_eq!(
            t.lookup("claude-sonnet-4-5-20250929").map(|p| p.output),
            Some(15 * M)
        );
        assert_eq!(
            t.lookup("models/gemini-2.5-flash").map(|p| p.output),
            Some(2_500_000)
        );
        assert_eq!(t.lookup("GPT-4O").map(|p| p.input), Some(2_500_000));
        assert!(t.lookup("gpt-4oo").is_none());
        assert!(t.lookup("llama3:8b").is_none());
    }

    #[test]
    fn cost_splits_cached_and_reasoning_parts() {
        let t = PriceTable::builtin();
        let usage = Usage {
            input_tokens: 1_000_000,
            cached_input_tokens: 400_000,
            output_tokens: 100_000,
            reasoning_tokens: 60_000,
            ..Usage::default()
        };
        // 600k * 2.50 + 400k * 1.25 + 100k * 10.00 = 1.5 + 0.5 + 1.0 = $3.00
        assert_eq!(t.cost("gpt-4o", &usage), Some(3_000_000));
        assert_eq!(t.cost("unknown-model", &usage), None);
    }

    #[test]
    fn summing_many_small_costs_is_exact() {
        let p = Price {
            input: 150_000,
            cached_input: 0,
            cache_write: 0,
            output: 600_000,
            reasoning: 600_000,
        };
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 1000,
            ..Usage::default()
        };
        // 1000 * 0.15 + 1000 * 0.60 = 750 micro-USD, exactly, a million times.
        let total: u64 = (0..1_000_000).map(|_| p.cost_micro_usd(&usage)).sum();
        assert_eq!(total, 750_000_000);
    }

    #[test]
    fn anthropic_cache_writes_cost_more() {
        let t = PriceTable::builtin();
        let usage = Usage {
            input_tokens: 1_000_000,
            cache_write_tokens: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(t.cost("claude-sonnet-4-5", &usage), Some(3_750_000));
    }
}
