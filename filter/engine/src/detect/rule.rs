//! Static rule definitions shared by every detector: identity, category, severity, weight and the
//! pattern source. Rule tables (`injection`, `secrets`) are plain data built from these types, so a
//! rule is reviewed as one line of data and compiled once, with all the others, in a single set.

use serde::{Deserialize, Serialize};

/// How serious a finding is. Orders from `Low` to `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The lowercase name used in config, output and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A prompt-injection or jailbreak rule, matched against the normalised text (see
/// [`crate::normalize`]): lowercase, accents stripped, homoglyphs and leetspeak folded, zero-width
/// characters removed, whitespace runs collapsed to one space.
#[derive(Debug, Clone, Copy)]
pub struct KeywordRule {
    /// Stable id, `pi.<family>.<name>` or `jb.<family>.<name>`.
    pub id: &'static str,
    /// Policy category, `injection.<kind>`.
    pub category: &'static str,
    pub severity: Severity,
    /// Contribution to the request's risk score, in (0, 1].
    pub weight: f32,
    /// Regex (regex crate syntax, no look-around) over the normalised text.
    pub pattern: &'static str,
    /// One line for `tollgate rules`.
    pub description: &'static str,
}

/// A credential rule, matched case-sensitively against the original text.
#[derive(Debug, Clone, Copy)]
pub struct SecretRule {
    /// Stable id, `secret.<vendor>.<kind>`.
    pub id: &'static str,
    pub severity: Severity,
    /// Regex over the original text. When it has a capture group named `secret`, that group is
    /// the span reported and redacted; otherwise the whole match is.
    pub pattern: &'static str,
    /// Minimum Shannon entropy (bits per character) of the secret span; 0.0 disables the check.
    pub min_entropy: f32,
    /// One line for `tollgate rules`.
    pub description: &'static str,
}
