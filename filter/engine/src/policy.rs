//! Policy: from findings to one decision. Each finding gets an action — the rule's own setting,
//! else the longest matching category prefix, else a built-in default by family and severity —
//! and the request's risk score (a probabilistic OR of the matched injection rules' weights) can
//! raise the decision further. Shadow mode keeps the decision for the record but enforces
//! nothing. This module also renders what enforcement needs: redaction text (numbered
//! placeholders, masks or hashes) and block bodies in each provider's own error shape, which
//! name the rule but never echo the offending text.

use crate::detect::{RuleKind, RuleMeta, Severity};
use crate::provider::Provider;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// What to do about a finding, in increasing strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Record only.
    Log,
    /// Record and add `x-tollgate-*` headers for the upstream.
    Tag,
    /// Replace the matched text.
    Redact,
    /// Refuse the request (or stop the response).
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Tag => "tag",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

/// The overall decision for a request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Log,
    Tag,
    Redact,
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Log => "log",
            Decision::Tag => "tag",
            Decision::Redact => "redact",
            Decision::Block => "block",
        }
    }
}

impl From<Action> for Decision {
    fn from(a: Action) -> Self {
        match a {
            Action::Log => Decision::Log,
            Action::Tag => Decision::Tag,
            Action::Redact => Decision::Redact,
            Action::Block => Decision::Block,
        }
    }
}

/// How redacted text is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedactionMode {
    /// `[EMAIL_1]`, numbered per request; the same value gets the same number.
    #[default]
    Placeholder,
    /// `*` for every character.
    Mask,
    /// `[EMAIL:1a2b3c4d]`: the first 8 hex digits of the value's SHA-256, stable across requests.
    Hash,
}

/// Compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub shadow: bool,
    pub block_threshold: f32,
    pub tag_threshold: f32,
    categories: BTreeMap<String, Action>,
    rules: BTreeMap<String, Action>,
    pub redaction: RedactionMode,
    pub block_status: u16,
}

impl Policy {
    pub fn new(
        shadow: bool,
        block_threshold: f32,
        tag_threshold: f32,
        categories: BTreeMap<String, Action>,
        rules: BTreeMap<String, Action>,
        redaction: RedactionMode,
        block_status: u16,
    ) -> Self {
        Policy {
            shadow,
            block_threshold,
            tag_threshold,
            categories,
            rules,
            redaction,
            block_status,
        }
    }

    /// The action for one finding of `rule`.
    pub fn action_for(&self, rule: &RuleMeta) -> Action {
        if let Some(a) = self.rules.get(&*rule.id) {
            return *a;
        }
        let mut best: Option<(usize, Action)> = None;
        for (prefix, action) in &self.categories {
            let cat: &str = &rule.category;
            let fits = cat == prefix
                || (cat.starts_with(prefix.as_str())
                    && cat.as_bytes().get(prefix.len()) == Some(&b'.'));
            if fits && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), *action));
            }
        }
        if let Some((_, a)) = best {
            return a;
        }
        default_action(rule)
    }

    /// The decision from the strongest action and the risk score.
    pub fn decide(&self, strongest: Option<Action>, risk: f32) -> Decision {
        let mut d = strongest.map(Decision::from).unwrap_or(Decision::Allow);
        if risk >= self.block_threshold {
            d = d.max(Decision::Block);
        } else if risk >= self.tag_threshold {
            d = d.max(Decision::Tag);
        }
        d
    }
}

/// Built-in defaults: injection blocks at high severity, tags at medium, logs at low; cards,
/// SSNs, IBANs and custom patterns are redacted, other PII logged; secrets redacted; leaks
/// blocked; exfiltration links redacted.
pub fn default_action(rule: &RuleMeta) -> Action {
    match rule.kind {
        RuleKind::Injection => match rule.severity {
            Severity::Critical | Severity::High => Action::Block,
            Severity::Medium => Action::Tag,
            Severity::Low => Action::Log,
        },
        RuleKind::Pii => {
            if rule.severity >= Severity::High || rule.id.starts_with("pii.custom.") {
                Action::Redact
            } else {
                Action::Log
            }
        }
        RuleKind::Secret => Action::Redact,
        RuleKind::Leak => Action::Block,
        RuleKind::Exfil => Action::Redact,
    }
}

/// Risk score: `1 - Π(1 - w)` over the distinct injection rules matched.
pub fn risk_score<'a>(weights: impl Iterator<Item = (&'a str, f32)>) -> f32 {
    let mut seen: Vec<&str> = Vec::new();
    let mut keep = 1.0f32;
    for (id, w) in weights {
        if !seen.contains(&id) {
            seen.push(id);
            keep *= 1.0 - w.clamp(0.0, 1.0);
        }
    }
    ((1.0 - keep) * 1000.0).round() / 1000.0
}

/// Replacement text for redacted spans, numbering placeholders consistently within one
/// request or response.
#[derive(Debug, Default)]
pub struct Redactor {
    mode: RedactionMode,
    /// Each replacement at most as long as the bytes it replaces (ADR 0013): the configured
    /// one when it fits, else `[LABEL]`, else a mask of the value's length in characters.
    fit: bool,
    numbers: HashMap<(String, String), usize>,
    counters: HashMap<String, usize>,
}

impl Redactor {
    pub fn new(mode: RedactionMode) -> Self {
        Redactor {
            mode,
            ..Redactor::default()
        }
    }

    /// A redactor whose replacements never outgrow what they replace, for bodies that must keep
    /// their length.
    pub fn fitting(mode: RedactionMode) -> Self {
        Redactor {
            mode,
            fit: true,
            ..Redactor::default()
        }
    }

    /// The replacement for `value`, shortened (under [`Redactor::fitting`]) to fit its bytes.
    fn replacement_for(&mut self, label: &str, value: &str) -> String {
        let rep = self.replacement(label, value);
        if !self.fit || rep.len() <= value.len() {
            return rep;
        }
        let short = format!("[{label}]");
        if short.len() <= value.len() {
            return short;
        }
        "*".repeat(value.chars().count().max(1).min(value.len()))
    }

    /// The replacement for `value` found by a rule with placeholder `label`.
    pub fn replacement(&mut self, label: &str, value: &str) -> String {
        match self.mode {
            RedactionMode::Mask => "*".repeat(value.chars().count().max(1)),
            RedactionMode::Hash => {
                let digest = Sha256::digest(value.as_bytes());
                let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
                format!("[{label}:{hex}]")
            }
            RedactionMode::Placeholder => {
                let key = (label.to_string(), value.to_string());
                let n = match self.numbers.get(&key) {
                    Some(n) => *n,
                    None => {
                        let c = self.counters.entry(label.to_string()).or_insert(0);
                        *c += 1;
                        let n = *c;
                        self.numbers.insert(key, n);
                        n
                    }
                };
                format!("[{label}_{n}]")
            }
        }
    }

    /// Rewrites `text`, replacing each span (merged where they overlap) with its replacement.
    /// `spans` are `(start, end, label)` byte spans on char boundaries.
    pub fn apply(&mut self, text: &str, spans: &mut [(usize, usize, &str)]) -> String {
        spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
        let mut out = String::with_capacity(text.len());
        let mut pos = 0usize;
        for &(start, end, label) in spans.iter() {
            if start < pos {
                // overlaps the span just replaced: widen it
                if end > pos && text.is_char_boundary(end) {
                    pos = end;
                }
                continue;
            }
            if end <= start {
                continue;
            }
            let (Some(before), Some(value)) = (text.get(pos..start), text.get(start..end)) else {
                continue;
            };
            out.push_str(before);
            let rep = self.replacement_for(label, value);
            out.push_str(&rep);
            pos = end;
        }
        out.push_str(text.get(pos..).unwrap_or(""));
        out
    }
}

/// A block response body in the provider's own error shape, and its content type.
pub fn block_body(provider: Provider, status: u16, rule_id: &str, category: &str) -> Vec<u8> {
    let message = format!("Request blocked by Tollgate policy: rule {rule_id} ({category})");
    let value = match provider {
        Provider::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": if status == 403 { "permission_error" } else { "invalid_request_error" }, "message": message, "tollgate_rule": rule_id},
        }),
        Provider::Gemini => serde_json::json!({
            "error": {"code": status, "message": message, "status": if status == 403 { "PERMISSION_DENIED" } else { "INVALID_ARGUMENT" },
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TOLLGATE_POLICY", "domain": "tollgate", "metadata": {"rule": rule_id}}]},
        }),
        _ => serde_json::json!({
            "error": {"message": message, "type": "tollgate_policy_violation", "param": null, "code": rule_id},
        }),
    };
    serde_json::to_vec(&value).unwrap_or_else(|_| message.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rule(id: &str, category: &str, kind: RuleKind, severity: Severity) -> RuleMeta {
        RuleMeta {
            id: Arc::from(id),
            category: Arc::from(category),
            severity,
            weight: 0.5,
            kind,
            label: Arc::from("X"),
            description: Arc::from(""),
        }
    }

    #[test]
    fn rule_beats_category_beats_default() {
        let mut cats = BTreeMap::new();
        cats.insert("injection".to_string(), Action::Tag);
        cats.insert("injection.jailbreak".to_string(), Action::Log);
        let mut rules = BTreeMap::new();
        rules.insert("pi.x.y".to_string(), Action::Block);
        let p = Policy::new(
            false,
            0.9,
            0.5,
            cats,
            rules,
            RedactionMode::Placeholder,
            403,
        );
        assert_eq!(
            p.action_for(&rule(
                "pi.x.y",
                "injection.override",
                RuleKind::Injection,
                Severity::Low
            )),
            Action::Block
        );
        assert_eq!(
            p.action_for(&rule(
                "jb.a.b",
                "injection.jailbreak",
                RuleKind::Injection,
                Severity::High
            )),
            Action::Log
        );
        assert_eq!(
            p.action_for(&rule(
                "pi.a.b",
                "injection.override",
                RuleKind::Injection,
                Severity::High
            )),
            Action::Tag
        );
        assert_eq!(
            p.action_for(&rule("pii.card", "pii", RuleKind::Pii, Severity::High)),
            Action::Redact
        );
        assert_eq!(
            p.action_for(&rule("pii.email", "pii", RuleKind::Pii, Severity::Medium)),
            Action::Log
        );
    }

    #[test]
    fn risk_combines_distinct_rules() {
        assert_eq!(risk_score([("a", 0.5), ("a", 0.5)].into_iter()), 0.5);
        assert_eq!(risk_score([("a", 0.5), ("b", 0.5)].into_iter()), 0.75);
        let p = Policy::new(
            false,
            0.9,
            0.5,
            BTreeMap::new(),
            BTreeMap::new(),
            RedactionMode::Placeholder,
            403,
        );
        assert_eq!(p.decide(None, 0.95), Decision::Block);
        assert_eq!(p.decide(Some(Action::Log), 0.6), Decision::Tag);
        assert_eq!(p.decide(None, 0.0), Decision::Allow);
    }

    #[test]
    fn placeholders_are_numbered_per_value() {
        let mut r = Redactor::new(RedactionMode::Placeholder);
        let text = "a@x.io b@x.io a@x.io";
        let out = r.apply(
            text,
            &mut [(0, 6, "EMAIL"), (7, 13, "EMAIL"), (14, 20, "EMAIL")],
        );
        assert_eq!(out, "[EMAIL_1] [EMAIL_2] [EMAIL_1]");
        let mut m = Redactor::new(RedactionMode::Mask);
        assert_eq!(m.apply("pin 1234!", &mut [(4, 8, "PIN")]), "pin ****!");
        let mut h = Redactor::new(RedactionMode::Hash);
        assert!(h
            .apply("k abc", &mut [(2, 5, "SECRET")])
            .starts_with("k [SECRET:"));
        let mut o = Redactor::new(RedactionMode::Placeholder);
        assert_eq!(
            o.apply("0123456789", &mut [(2, 6, "A"), (4, 8, "A")]),
            "01[A_1]89"
        );
    }

    proptest::proptest! {
        #[test]
        fn redactor_never_panics_and_removes_every_whole_span(
            text in "\\PC{0,80}",
            spans in proptest::collection::vec((0usize..100, 0usize..100), 0..6),
            mode in 0u8..3,
        ) {
            let mode = [RedactionMode::Placeholder, RedactionMode::Mask, RedactionMode::Hash][usize::from(mode)];
            let mut r = Redactor::new(mode);
            // detectors report spans on char boundaries within the text
            let snap = |i: usize| { let mut i = i.min(text.len()); while !text.is_char_boundary(i) { i -= 1; } i };
            let mut spans: Vec<(usize, usize, &str)> = spans.into_iter().map(|(a, b)| (snap(a.min(b)), snap(a.max(b)), "X")).collect();
            let out = r.apply(&text, &mut spans);
            // the text outside every span survives, in order
            let mut kept = String::new();
            let mut covered = vec![false; text.len()];
            for &(a, b, _) in &spans {
                if a < b && b <= text.len() && text.is_char_boundary(a) && text.is_char_boundary(b) {
                    for c in covered.iter_mut().take(b).skip(a) { *c = true; }
                }
            }
            for (i, ch) in text.char_indices() {
                if !covered[i] { kept.push(ch); }
            }
            let mut rest = out.as_str();
            for ch in kept.chars() {
                match rest.find(ch) {
                    Some(p) => rest = &rest[p + ch.len_utf8()..],
                    None => proptest::prop_assert!(false, "{ch:?} lost from {text:?} -> {out:?}"),
                }
            }
        }
    }

    #[test]
    fn block_bodies_use_provider_shapes_and_no_text() {
        let o: serde_json::Value = serde_json::from_slice(&block_body(
            Provider::Openai,
            403,
            "pi.a.b",
            "injection.override",
        ))
        .unwrap_or_default();
        assert_eq!(o["error"]["code"], "pi.a.b");
        let a: serde_json::Value =
            serde_json::from_slice(&block_body(Provider::Anthropic, 403, "pi.a.b", "x"))
                .unwrap_or_default();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "permission_error");
        let g: serde_json::Value =
            serde_json::from_slice(&block_body(Provider::Gemini, 403, "pi.a.b", "x"))
                .unwrap_or_default();
        assert_eq!(g["error"]["status"], "PERMISSION_DENIED");
    }
}
