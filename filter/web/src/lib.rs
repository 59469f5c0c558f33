//! Tollgate's inline engine in a browser: the console's rule playground calls these exports,
//! built for `wasm32-unknown-unknown` and bound with `wasm-bindgen` (`make web`). There is no
//! logic here: each export compiles the configuration it is given (JSON or YAML, as the CLI
//! reads it), calls the engine and returns the JSON document of [`tollgate_engine::report`] —
//! the same bytes `tollgate` prints for the same input.
//!
//! # Layout
//! - [`check_config`]: the configuration's verdict, errors naming the field.
//! - [`scan`]: free text → findings, risk score, decision.
//! - [`analyze_request`]: a provider request body → decision, findings with the JSON pointer of
//!   their string, the body that would be sent instead.
//! - [`request_texts`]: the strings of a request body the analysis scans.
//! - [`rules`]: every rule of a configuration.
//! - [`version`]: the engine's version.
//!
//! Compiling a configuration takes a moment, so the last compiled one is kept and reused while
//! the text is unchanged.

use std::cell::RefCell;
use std::rc::Rc;
use tollgate_engine::report::{self, ConfigFormat};
use tollgate_engine::{Engine, EngineError};
use wasm_bindgen::prelude::*;

thread_local! {
    /// The configuration text last compiled, and its engine.
    static COMPILED: RefCell<Option<(String, Rc<Engine>)>> = const { RefCell::new(None) };
}

/// The engine for `config`, compiled once per distinct text.
fn engine(config: &str) -> Result<Rc<Engine>, EngineError> {
    if let Some(hit) = COMPILED.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(text, _)| text == config)
            .map(|(_, e)| e.clone())
    }) {
        return Ok(hit);
    }
    let compiled = Rc::new(report::engine_from_text(config, ConfigFormat::Detect)?);
    COMPILED.with(|c| *c.borrow_mut() = Some((config.to_string(), compiled.clone())));
    Ok(compiled)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, JsError> {
    serde_json::to_string(value).map_err(|e| JsError::new(&e.to_string()))
}

/// Checks a configuration (JSON or YAML; empty is the defaults):
/// `{ok, rules, priced_models, errors: [{path, message}]}`. A valid one stays compiled for the
/// calls that follow.
#[wasm_bindgen]
pub fn check_config(config: &str) -> Result<String, JsError> {
    let compiled = engine(config);
    to_json(&report::config_report(compiled.as_deref()))
}

/// Scans free text as one user message: `{action, risk_score, findings}`, spans in UTF-8 bytes.
/// Throws when the configuration is invalid.
#[wasm_bindgen]
pub fn scan(text: &str, config: &str) -> Result<String, JsError> {
    let engine = engine(config)?;
    let (findings, risk, decision) = engine.scan_text(text);
    to_json(&report::scan_report(&findings, risk, decision))
}

/// Analyses a whole provider request sent to `path` (`/v1/chat/completions`, `/v1/messages`,
/// ...): the decision, findings with the JSON pointer of their string, and the body the filter
/// would send instead (`null` when unchanged). Throws when the configuration is invalid, the
/// path is not an LLM route or the body is not the provider's JSON.
#[wasm_bindgen]
pub fn analyze_request(path: &str, body: &str, config: &str) -> Result<String, JsError> {
    let engine = engine(config)?;
    to_json(&report::request_report(&engine, path, body.as_bytes())?)
}

/// The strings of a request body that [`analyze_request`] scans:
/// `[{pointer, role, message_index, text}]`.
#[wasm_bindgen]
pub fn request_texts(path: &str, body: &str, config: &str) -> Result<String, JsError> {
    let engine = engine(config)?;
    to_json(&report::request_texts(&engine, path, body.as_bytes())?)
}

/// Every rule of the configuration: `[{id, category, severity, default_action, description}]`.
#[wasm_bindgen]
pub fn rules(config: &str) -> Result<String, JsError> {
    let engine = engine(config)?;
    to_json(&report::rules_report(&engine))
}

/// The engine's version (the workspace version this was built from).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
