//! The engine's answers as documents, for the offline front ends: the `tollgate` CLI's JSON
//! output and the browser build (`filter/web`) both come from these functions, so the same input
//! gives the same JSON in a terminal and in a browser by construction. Findings are reported as
//! rule ids and byte spans, never the matched text; a request report carries the body the filter
//! would send instead (which is the client's text, redacted), and [`request_texts`] gives the
//! scanned strings themselves for a caller that shows where a span is (the playground).
//!
//! Configuration text is read as JSON, or as YAML with the `yaml` feature (the format Envoy
//! operators paste); errors name the field as the filter's own log does.

use crate::analysis::Finding;
use crate::error::EngineError;
use crate::policy::Decision;
use crate::provider::{parse_request, Segment};
use crate::{Engine, RawConfig};
use serde::Serialize;
use std::sync::Arc;

/// How configuration text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Json,
    Yaml,
    /// JSON when the text is JSON (or empty), YAML otherwise.
    Detect,
}

/// Compiles configuration text (empty text: the defaults).
pub fn engine_from_text(text: &str, format: ConfigFormat) -> Result<Engine, EngineError> {
    let yaml = match format {
        ConfigFormat::Json => false,
        ConfigFormat::Yaml => true,
        ConfigFormat::Detect => {
            let t = text.trim_start();
            !t.is_empty()
                && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()
                && (!t.starts_with('{') || looks_like_yaml(text))
        }
    };
    if yaml {
        Engine::from_config(&from_yaml(text)?)
    } else {
        Engine::from_json(text.as_bytes())
    }
}

/// A `{`-leading text that is not JSON but is a YAML document (a flow mapping such as
/// `{policy: {block_threshold: 0.5}}`); broken JSON stays JSON, so its error reads as JSON's.
#[cfg(feature = "yaml")]
fn looks_like_yaml(text: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Value>(text).is_ok()
}

#[cfg(not(feature = "yaml"))]
fn looks_like_yaml(_text: &str) -> bool {
    false
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

/// The verdict on a compiled (or refused) configuration.
pub fn config_report(compiled: Result<&Engine, &EngineError>) -> ConfigReport {
    match compiled {
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
                EngineError::Config { path, message } => ConfigProblem {
                    path: path.clone(),
                    message: message.clone(),
                },
                other => ConfigProblem {
                    path: "(root)".into(),
                    message: other.to_string(),
                },
            }],
        },
    }
}

/// Checks configuration text the way the filter's `on_configure` does.
pub fn check_config(text: &str, format: ConfigFormat) -> ConfigReport {
    config_report(engine_from_text(text, format).as_ref())
}

/// One finding as reported: rule, span and action, never the text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingReport {
    pub rule_id: Arc<str>,
    pub category: Arc<str>,
    pub severity: &'static str,
    /// Byte span (UTF-8) in the scanned text (in a request: in the string at `pointer`).
    pub start: usize,
    pub end: usize,
    /// The rule's weight in the risk score.
    pub score: f32,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// JSON pointer of the string the span is in (requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl FindingReport {
    /// A finding of a free-text scan (no location beyond the span).
    pub fn new(f: &Finding) -> Self {
        FindingReport {
            rule_id: f.rule_id.clone(),
            category: f.category.clone(),
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

    /// A finding of a request, located by message, role and the string's pointer.
    fn in_request(f: &Finding, segments: &[Segment]) -> Self {
        let segment = usize::try_from(f.segment)
            .ok()
            .and_then(|i| segments.get(i));
        FindingReport {
            message_index: Some(f.message_index),
            role: Some(f.role.as_str()),
            pointer: segment.map(|s| s.pointer.clone()),
            ..FindingReport::new(f)
        }
    }
}

/// What a scan of free text found (`tollgate scan`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanReport {
    pub action: &'static str,
    pub risk_score: f32,
    pub findings: Vec<FindingReport>,
}

/// The report of a free-text scan, from what [`Engine::scan_text`] returned.
pub fn scan_report(findings: &[Finding], risk: f32, decision: Decision) -> ScanReport {
    ScanReport {
        action: decision.as_str(),
        risk_score: risk,
        findings: findings.iter().map(FindingReport::new).collect(),
    }
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
    pub findings: Vec<FindingReport>,
    /// The status of the local reply when the request is answered by the filter.
    pub block_status: Option<u16>,
    /// The body sent instead of the client's (the block reply, or the rewritten request) as
    /// JSON; `null` when the request goes upstream unchanged.
    pub body: Option<serde_json::Value>,
    /// The same body, byte for byte.
    #[serde(skip)]
    pub sent: Option<Vec<u8>>,
}

fn route_of(engine: &Engine, path: &str) -> Result<crate::RouteMatch, EngineError> {
    engine
        .route(None, path)
        .ok_or_else(|| EngineError::NotLlmRoute {
            path: path.to_string(),
        })
}

/// Analyses a provider request body sent to `path` as the filter would.
pub fn request_report(
    engine: &Engine,
    path: &str,
    body: &[u8],
) -> Result<RequestReport, EngineError> {
    let route = route_of(engine, path)?;
    let analysis = engine.analyze_request(&route, body)?;
    // the analysis's own segment list: the same parse of the same bytes, for the pointers
    let segments = parse_request(route.operation, body)
        .map(|p| p.segments)
        .unwrap_or_default();
    let block_status = analysis.block.as_ref().map(|b| b.status);
    let sent = match (analysis.block, analysis.rewritten_body) {
        (Some(b), _) => Some(b.body),
        (None, Some(b)) => Some(b),
        _ => None,
    };
    Ok(RequestReport {
        decision: analysis.decision,
        provider: analysis.provider.as_str(),
        operation: analysis.operation.as_str(),
        model: analysis.model,
        stream: analysis.stream,
        action: analysis.decision.as_str(),
        enforced: analysis.enforced,
        risk_score: analysis.risk_score,
        input_tokens_estimate: analysis.input_tokens_estimate,
        findings: analysis
            .findings
            .iter()
            .map(|f| FindingReport::in_request(f, &segments))
            .collect(),
        block_status,
        body: sent.as_deref().and_then(|b| serde_json::from_slice(b).ok()),
        sent,
    })
}

/// One text a request analysis scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextReport {
    /// JSON pointer of the string in the body; findings name it.
    pub pointer: String,
    pub role: &'static str,
    pub message_index: u32,
    pub text: String,
}

/// The strings of a request body that the analysis scans, in order (the playground shows each
/// finding's span in its string).
pub fn request_texts(
    engine: &Engine,
    path: &str,
    body: &[u8],
) -> Result<Vec<TextReport>, EngineError> {
    let route = route_of(engine, path)?;
    Ok(parse_request(route.operation, body)?
        .segments
        .into_iter()
        .map(|s| TextReport {
            pointer: s.pointer,
            role: s.role.as_str(),
            message_index: s.message_index,
            text: s.text,
        })
        .collect())
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
        let body = r#"{"model":"gpt-4o","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hello"},
              {"type":"text","text":"café ✓ 😀 my card is 4111 1111 1111 1111"}]}]}"#;
        let path = "/v1/chat/completions";
        let r = request_report(&engine, path, body.as_bytes()).expect("report");
        let card = r
            .findings
            .iter()
            .find(|f| &*f.category == "pii")
            .expect("a card finding");
        assert_eq!(card.pointer.as_deref(), Some("/messages/1/content/1/text"));
        let texts = request_texts(&engine, path, body.as_bytes()).expect("texts");
        let text = texts
            .iter()
            .find(|s| Some(s.pointer.as_str()) == card.pointer.as_deref())
            .expect("its string");
        assert_eq!(&text.text[card.start..card.end], "4111 1111 1111 1111");
        assert_eq!(r.action, "redact");
        let sent = String::from_utf8(r.sent.clone().expect("rewritten")).expect("utf-8");
        assert!(!sent.contains("4111 1111"), "{sent}");
        assert_eq!(
            r.body.expect("as JSON"),
            serde_json::from_str::<serde_json::Value>(&sent).expect("json")
        );
    }

    #[test]
    fn unknown_paths_and_bad_config_are_named() {
        let engine = Engine::with_defaults().expect("defaults");
        let e = request_report(&engine, "/healthz", b"{}").expect_err("not a route");
        assert!(e.to_string().contains("/healthz"), "{e}");
        let r = check_config(
            r#"{"policy":{"block_threshold":"high"}}"#,
            ConfigFormat::Detect,
        );
        assert!(!r.ok);
        assert_eq!(r.errors[0].path, "policy.block_threshold");
        // broken JSON reads as JSON, with JSON's error
        let r = check_config(r#"{"policy": "#, ConfigFormat::Detect);
        assert!(r.errors[0].message.contains("EOF"), "{r:?}");
        let ok = check_config("", ConfigFormat::Detect);
        assert!(ok.ok && ok.rules > 100, "{ok:?}");
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn yaml_configs_read_like_json() {
        let r = check_config("policy:\n  block_threshold: high\n", ConfigFormat::Detect);
        assert_eq!(r.errors[0].path, "policy.block_threshold");
        assert!(r.errors[0].message.ends_with("line 2 column 20"), "{r:?}");
        let r = check_config("policy: [unclosed\n", ConfigFormat::Yaml);
        assert!(r.errors[0].message.starts_with("invalid YAML"), "{r:?}");
        // a flow mapping is YAML even though it starts like JSON
        let r = check_config("{policy: {block_threshold: 0.5}}", ConfigFormat::Detect);
        assert!(r.ok, "{r:?}");
        let r = check_config("# nothing here\n", ConfigFormat::Detect);
        assert!(r.ok, "{r:?}");
    }
}
