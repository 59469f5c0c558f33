//! The engine's one error type. Every fallible engine call returns [`EngineError`]; callers (the
//! plugin, the CLI) decide whether a failure fails open or closed.

use thiserror::Error;

/// Everything that can go wrong inside the engine.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The configuration is invalid; `path` names the offending field (`routes[0].provider`).
    #[error("invalid config at `{path}`: {message}")]
    Config { path: String, message: String },
    /// A request or response body is not the JSON the provider format requires.
    #[error("malformed {what} body: {message}")]
    MalformedBody { what: &'static str, message: String },
    /// A path the configuration's routes do not take as an LLM API.
    #[error("path {path} is not an LLM route (use /v1/chat/completions, /v1/messages, ...)")]
    NotLlmRoute { path: String },
    /// A body is larger than the configured limit.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

impl EngineError {
    pub(crate) fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn malformed(what: &'static str, message: impl ToString) -> Self {
        EngineError::MalformedBody {
            what,
            message: message.to_string(),
        }
    }
}
