//! The engine's answers as documents, for the offline front ends: the `tollgate` CLI's JSON
//! output and the browser build (`filter/web`) both come from these functions, so the same input
//! gives the same JSON in a terminal and in a browser by construction. A report never carries the
//! matched text, only rule ids and byte spans — except [`RequestReport::segments`], which the
//! playground asks for to show where a span is.
//!
//! Configuration text is read as JSON, or as YAML with the `yaml` feature (the format Envoy
//! operators paste); errors name the field as the filter's own log does.

use crate::analysis::Finding;
use crate::error::EngineError;
use crate::policy::Decision;
use crate::provider::parse_request;
use crate::{Engine, RawConfig};
use serde::Serialize;

/// How configuration text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Json,
    Yaml,
    /// JSON when the text starts with `{` (or is empty), YAML otherwise.
    Detect,
}

/// Compiles configuration text (empty text: the defaults).
pub fn engine_from_text(text: &str, format: ConfigFormat) -> Result<Engine, EngineError> {
    let yaml = match format {
        ConfigFormat::Json => false,
        ConfigFormat::Yaml => true,
        ConfigFormat::Detect => !(text.trim().is_empty() || text.trim_start().starts_with('{')),
    };
    if yaml {
        Engine::from_config(&from_yaml(text)?)
    } else {
        Engine::from_json(text.as_bytes())
    }
}

#[cfg(feature = "yaml")]
fn from_yaml(text: &str) -> Result<RawConfig, EngineError> {
    RawConfig::from_yaml(text)
}

#[cfg(not(feature = "yaml"))]
fn from_yaml(_text: &str) -> Result<RawConfig, EngineError> {
    Err(EngineError::config(
        "(root)",
        "this build reads JSON configuration only",
    ))
}

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// The offending field (`routes[0].provider`), `(root)` for the document as a whole.
    pub path: String,
    pub message: String,
}

/// The verdict on a configuration text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigReport {
    pub ok: bool,
    /// Rules of the compiled configuration (0 when invalid).
    pub rules: usize,
    /// Models with a price (0 when invalid).
    pub priced_models: usize,
    pub errors: Vec<ConfigProblem>,
}

/// Checks configuration text the way the filter's `on_configure` does.
pub fn check_config(text: &str, format: ConfigFormat) -> ConfigReport {
    match engine_from_text(text, format) {
        Ok(engine) => ConfigReport {
            ok: true,
            rules: engine.detectors().rules().len(),
            priced_models: engine.prices().len(),
            errors: Vec::new(),
        },
        Err(e) => ConfigReport {
            ok: false,
            rules: 0,
            priced_models: 0,
            errors: vec![match e {
                EngineError::Config { path, message } => ConfigProblem { path, message },
                other => ConfigProblem {
                    path: "(root)".into(),
                    message: other.to_string(),
                },
            }],
        },
    }
}

/// One finding as reported: rule, span and action, never the text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingReport<'a> {
    pub rule_id: &'a str,
    pub category: &'a str,
    pub severity: &'a str,
    /// Byte span (UTF-8) in the scanned text (in a request: in the segment at `pointer`).
    pub start: usize,
    pub end: usize,
    /// The rule's weight in the risk score.
    pub score: f32,
    pub action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
    /// JSON pointer of the string the span is in (requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<&'a str>,
}

impl<'a> FindingReport<'a> {
    fn of_text(f: &'a Finding) -> Self {
        FindingReport {
            rule_id: &f.rule_id,
            category: &f.category,
            severity: f.severity.as_str(),
            start: f.start,
            end: f.end,
            score: f.weight,
            action: f.action.as_str(),
            message_index: None,
            role: None,
            pointer: None,
        }
    }
}

/// What a scan of free text found (`tollgate scan`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanReport<'a> {
    pub action: &'static str,
    pub risk_score: f32,
    pub findings: Vec<FindingReport<'a>>,
}

/// The report of a free-text scan, from what [`Engine::scan_text`] returned.
pub fn scan_report(findings: &[Finding], risk: f32, decision: Decision) -> ScanReport<'_> {
    ScanReport {
        action: decision.as_str(),
        risk_score: risk,
        findings: findings.iter().map(FindingReport::of_text).collect(),
    }
}

/// One text the request analysis scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentReport {
    pub pointer: String,
    pub role: &'static str,
    pub message_index: u32,
    pub text: String,
}

/// What the filter would decide about a whole provider request (`tollgate scan --request`).
#[derive(Debug, Clone, Serialize)]
pub struct RequestReport {
    /// The decision `action` names (for exit codes).
    #[serde(skip)]
    pub decision: Decision,
    pub provider: &'static str,
    pub operation: &'static str,
    pub model: Option<String>,
    pub stream: bool,
    pub action: &'static str,
    pub enforced: bool,
    pub risk_score: f32,
    pub input_tokens_estimate: u64,
    pub findings: Vec<serde_json::Value>,
    /// The status of the local reply when the request is answered by the filter.
    pub block_status: Option<u16>,
    /// The body sent instead of the client's (the block reply, or the rewritten request);
    /// `null` when the request goes upstream unchanged.
    pub body: Option<serde_json::Value>,
    /// The scanned texts, when asked for (the playground shows spans in them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<SegmentReport>>,
}

/// Analyses a provider request body sent to `path` as the filter would, with the scanned texts
/// when `with_segments`.
pub fn request_report(
    engine: &Engine,
    path: &str,
    body: &[u8],
    with_segments: bool,
) -> Result<RequestReport, EngineError> {
    let route = engine
        .route(None, path)
        .ok_or_else(|| EngineError::NotLlmRoute {
            path: path.to_string(),
        })?;
    let analysis = engine.analyze_request(&route, body)?;
    // the segment list is the analysis's own: the same parse of the same bytes
    let segments = parse_request(route.operation, body)
        .map(|p| p.segments)
        .unwrap_or_default();
    let findings = analysis
        .findings
        .iter()
        .map(|f| {
            let seg = usize::try_from(f.segment)
                .ok()
                .and_then(|i| segments.get(i));
            let mut r = FindingReport::of_text(f);
            r.message_index = Some(f.message_index);
            r.role = Some(f.role.as_str());
            r.pointer = seg.map(|s| s.pointer.as_str());
            serde_json::to_value(r).unwrap_or(serde_json::Value::Null)
        })
        .collect();
    let sent = match (&analysis.block, &analysis.rewritten_body) {
        (Some(b), _) => Some(&b.body),
        (None, Some(b)) => Some(b),
        _ => None,
    };
    Ok(RequestReport {
        decision: analysis.decision,
        provider: analysis.provider.as_str(),
        operation: analysis.operation.as_str(),
        model: analysis.model.clone(),
        stream: analysis.stream,
        action: analysis.decision.as_str(),
        enforced: analysis.enforced,
        risk_score: analysis.risk_score,
        input_tokens_estimate: analysis.input_tokens_estimate,
        findings,
        block_status: analysis.block.as_ref().map(|b| b.status),
        body: sent.and_then(|b| serde_json::from_slice(b).ok()),
        segments: with_segments.then(|| {
            segments
                .into_iter()
                .map(|s| SegmentReport {
                    pointer: s.pointer,
                    role: s.role.as_str(),
                    message_index: s.message_index,
                    text: s.text,
                })
                .collect()
        }),
    })
}

/// One rule as `tollgate rules` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleReport<'a> {
    pub id: &'a str,
    pub category: &'a str,
    pub severity: &'static str,
    /// The action the configuration's policy gives the rule.
    pub default_action: &'static str,
    pub description: &'a str,
}

/// Every rule of the compiled configuration, in table order.
pub fn rules_report(engine: &Engine) -> Vec<RuleReport<'_>> {
    engine
        .detectors()
        .rules()
        .iter()
        .map(|r| RuleReport {
            id: &r.id,
            category: &r.category,
            severity: r.severity.as_str(),
            default_action: engine.policy().action_for(r).as_str(),
            description: &r.description,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_findings_name_the_string_they_are_in() {
        let engine = Engine::with_defaults().expect("defaults");
        let body = br#"{"model":"gpt-4o","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hello"},
              {"type":"text","text":"my card is 4111 1111 1111 1111"}]}]}"#;
        let r = request_report(&engine, "/v1/chat/completions", body, true).expect("report");
        let card = r
            .findings
            .iter()
            .find(|f| f["category"] == "pii")
            .expect("a card finding");
        assert_eq!(card["pointer"], "/messages/1/content/1/text");
        let segs = r.segments.expect("segments");
        let seg = segs
            .iter()
            .find(|s| s.pointer == "/messages/1/content/1/text")
            .expect("segment");
        let (s, e) = (
            card["start"].as_u64().expect("start") as usize,
            card["end"].as_u64().expect("end") as usize,
        );
        assert_eq!(&seg.text[s..e], "4111 1111 1111 1111");
        assert_eq!(r.action, "redact");
        let sent = r.body.expect("rewritten body").to_string();
        assert!(!sent.contains("4111 1111"), "{sent}");
    }

    #[test]
    fn unknown_paths_and_bad_config_are_named() {
        let engine = Engine::with_defaults().expect("defaults");
        let e = request_report(&engine, "/healthz", b"{}", false).expect_err("not a route");
        assert!(e.to_string().contains("/healthz"), "{e}");
        let r = check_config(
            r#"{"policy":{"block_threshold":"high"}}"#,
            ConfigFormat::Detect,
        );
        assert!(!r.ok);
        assert_eq!(r.errors[0].path, "policy.block_threshold");
        let ok = check_config("", ConfigFormat::Detect);
        assert!(ok.ok && ok.rules > 100, "{ok:?}");
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn yaml_configs_read_like_json() {
        let r = check_config("policy:\n  block_threshold: high\n", ConfigFormat::Detect);
        assert_eq!(r.errors[0].path, "policy.block_threshold");
        let r = check_config("policy: [unclosed\n", ConfigFormat::Yaml);
        assert!(r.errors[0].message.starts_with("invalid YAML"), "{r:?}");
    }
}
