//! Provider codecs: what an LLM API call says, in one shape for every provider.
//!
//! [`detect`] maps a request path to an [`Operation`] (which wire format) and a [`Provider`] (who
//! serves it). The per-format modules then read a request body into a [`ParsedRequest`] — the
//! model, the stream flags and every piece of message text with its role and its JSON location —
//! and read responses, whole or one stream event at a time, into usage, model and output text.
//! Text locations are JSON pointers so that redaction can rewrite exactly those strings and
//! nothing else. Everything here works on `serde_json::Value`, whose parser bounds nesting depth,
//! and every accessor is total: a missing or mistyped field is absent, never a panic.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use crate::error::EngineError;
use crate::json_doc::{self, JsonNode, JsonRead};
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who serves the call (for reporting and error shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Openai,
    AzureOpenai,
    Anthropic,
    Gemini,
    /// vLLM, Ollama `/v1`, LiteLLM and other servers speaking the OpenAI format.
    OpenaiCompatible,
}

impl Provider {
    /// Every provider (route names default to these).
    pub const ALL: [Provider; 5] = [
        Provider::Openai,
        Provider::AzureOpenai,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::OpenaiCompatible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::AzureOpenai => "azure_openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::OpenaiCompatible => "openai_compatible",
        }
    }
}

/// The API operation, which fixes the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    ChatCompletions,
    Responses,
    Embeddings,
    Completions,
    Messages,
    GenerateContent,
    StreamGenerateContent,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ChatCompletions => "chat_completions",
            Operation::Responses => "responses",
            Operation::Embeddings => "embeddings",
            Operation::Completions => "completions",
            Operation::Messages => "messages",
            Operation::GenerateContent => "generate_content",
            Operation::StreamGenerateContent => "stream_generate_content",
        }
    }

    /// The provider family whose error shape this operation uses.
    pub fn default_provider(self) -> Provider {
        match self {
            Operation::Messages => Provider::Anthropic,
            Operation::GenerateContent | Operation::StreamGenerateContent => Provider::Gemini,
            _ => Provider::Openai,
        }
    }
}

/// What a path says about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub provider: Provider,
    pub operation: Operation,
    /// Model named in the path (Gemini `models/{model}:...`, Azure deployment name).
    pub path_model: Option<String>,
}

/// Detects provider and operation from a request path (query string allowed).
pub fn detect(path: &str) -> Option<Detected> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = path.trim_end_matches('/');
    // Gemini: /v1beta/models/{model}:generateContent (also tunedModels/...)
    if let Some((head, verb)) = path.rsplit_once(':') {
        let operation = match verb {
            "generateContent" => Some(Operation::GenerateContent),
            "streamGenerateContent" => Some(Operation::StreamGenerateContent),
            _ => None,
        };
        if let Some(operation) = operation {
            let model = head
                .rsplit('/')
                .next()
                .filter(|m| !m.is_empty())
                .map(str::to_string);
            return Some(Detected {
                provider: Provider::Gemini,
                operation,
                path_model: model,
            });
        }
        return None;
    }
    let azure_deployment = path
        .split_once("/openai/deployments/")
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let operation = if path.ends_with("/chat/completions") {
        Operation::ChatCompletions
    } else if path.ends_with("/responses") {
        Operation::Responses
    } else if path.ends_with("/embeddings") {
        Operation::Embeddings
    } else if path.ends_with("/completions") {
        Operation::Completions
    } else if path.ends_with("/messages") {
        Operation::Messages
    } else {
        return None;
    };
    let provider = if azure_deployment.is_some() {
        Provider::AzureOpenai
    } else {
        operation.default_provider()
    };
    Some(Detected {
        provider,
        operation,
        path_model: azure_deployment,
    })
}

/// Who wrote a piece of text in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    /// Tool results, function outputs and attached documents: text the user did not type.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    fn from_wire(role: &str) -> Role {
        match role {
            "system" => Role::System,
            "developer" => Role::Developer,
            "assistant" | "model" => Role::Assistant,
            "tool" | "function" | "ipython" => Role::Tool,
            _ => Role::User,
        }
    }
}

/// One piece of message text and where it sits in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub role: Role,
    /// Index of the message (or input item) the text belongs to; system text outside the
    /// message list uses 0.
    pub message_index: u32,
    /// JSON pointer (RFC 6901) of the string in the body.
    pub pointer: String,
    /// The byte range of the string's literal (quotes included) in the body, when it was read
    /// from a [`JsonNode`] tree (requests).
    pub span: Option<std::ops::Range<usize>>,
    pub text: String,
}

/// What a request body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedRequest {
    pub model: Option<String>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// The most output tokens the request allows in all (OpenAI `max_completion_tokens` or
    /// `max_tokens` times `n`, Responses `max_output_tokens`, Anthropic `max_tokens`, Gemini
    /// `generationConfig.maxOutputTokens` times `candidateCount`); `None` when it sets no cap.
    pub max_output_tokens: Option<u64>,
    pub segments: Vec<Segment>,
}

impl ParsedRequest {
    /// The system (and developer) prompt text, joined.
    pub fn system_prompt(&self) -> String {
        let mut out = String::new();
        for s in self
            .segments
            .iter()
            .filter(|s| matches!(s.role, Role::System | Role::Developer))
        {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&s.text);
        }
        out
    }
}

/// What a whole (non-streamed) response body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedResponse {
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub segments: Vec<Segment>,
}

/// A usage report that may hold only some fields (stream events report parts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsagePatch {
    pub input_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

impl UsagePatch {
    /// Applies the fields present, overwriting (providers send cumulative counts).
    pub fn apply(&self, usage: &mut Usage) {
        if let Some(v) = self.input_tokens {
            usage.input_tokens = v;
        }
        if let Some(v) = self.cached_input_tokens {
            usage.cached_input_tokens = v;
        }
        if let Some(v) = self.cache_write_tokens {
            usage.cache_write_tokens = v;
        }
        if let Some(v) = self.output_tokens {
            usage.output_tokens = v;
        }
        if let Some(v) = self.reasoning_tokens {
            usage.reasoning_tokens = v;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == UsagePatch::default()
    }

    pub fn to_usage(self) -> Usage {
        let mut u = Usage::default();
        self.apply(&mut u);
        u
    }
}

/// What one stream event says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEventInfo {
    pub model: Option<String>,
    pub usage: Option<UsagePatch>,
    /// Output text pieces: (JSON pointer inside the event data, text).
    pub deltas: Vec<(String, String)>,
    /// The provider signalled the end of the stream (`[DONE]`, `message_stop`, ...).
    pub done: bool,
    /// The provider reported an error inside the stream.
    pub error: bool,
    /// OpenAI's usage-only chunk (`choices: []` with `usage`).
    pub usage_only: bool,
    /// This event carries the stream's final usage (OpenAI's usage chunk, Responses'
    /// `response.completed`, Anthropic's `message_delta`, Gemini's last element).
    pub final_usage: bool,
}

/// Parses a request body for `operation`.
pub fn parse_request(operation: Operation, body: &[u8]) -> Result<ParsedRequest, EngineError> {
    let doc = json_doc::parse(body).map_err(|e| EngineError::malformed("request", e))?;
    if !matches!(doc.root, JsonNode::Object { .. }) {
        return Err(EngineError::malformed(
            "request",
            "top level is not a JSON object",
        ));
    }
    Ok(parse_request_value(operation, &doc.root))
}

/// Like [`parse_request`], from an already parsed value (a [`JsonNode`] tree: its segments
/// carry their spans; a `serde_json::Value`: they do not).
pub fn parse_request_value<J: JsonRead>(operation: Operation, value: &J) -> ParsedRequest {
    match operation {
        Operation::ChatCompletions => openai::chat_request(value),
        Operation::Responses => openai::responses_request(value),
        Operation::Embeddings => openai::embeddings_request(value),
        Operation::Completions => openai::completions_request(value),
        Operation::Messages => anthropic::request(value),
        Operation::GenerateContent => gemini::request(value, false),
        Operation::StreamGenerateContent => gemini::request(value, true),
    }
}

/// Parses a whole response body for `operation`.
pub fn parse_response(operation: Operation, body: &[u8]) -> Result<ParsedResponse, EngineError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| EngineError::malformed("response", e))?;
    Ok(parse_response_value(operation, &value))
}

/// Like [`parse_response`], from an already parsed value.
pub fn parse_response_value(operation: Operation, value: &Value) -> ParsedResponse {
    match operation {
        Operation::ChatCompletions | Operation::Completions => openai::chat_response(value),
        Operation::Responses => openai::responses_response(value),
        Operation::Embeddings => openai::embeddings_response(value),
        Operation::Messages => anthropic::response(value),
        Operation::GenerateContent | Operation::StreamGenerateContent => gemini::response(value),
    }
}

/// Parses one stream event's data for `operation`. Non-JSON data other than `[DONE]` yields an
/// empty info.
pub fn parse_stream_event(operation: Operation, event_type: &str, data: &str) -> StreamEventInfo {
    let trimmed = data.trim();
    if trimmed == "[DONE]" {
        return StreamEventInfo {
            done: true,
            ..StreamEventInfo::default()
        };
    }
    let Ok(value) = serde_json::from_str::<Value>(trimmed) else {
        return StreamEventInfo::default();
    };
    parse_stream_value(operation, event_type, &value)
}

/// Like [`parse_stream_event`], from an already parsed value.
pub fn parse_stream_value(
    operation: Operation,
    event_type: &str,
    value: &Value,
) -> StreamEventInfo {
    match operation {
        Operation::ChatCompletions | Operation::Completions | Operation::Embeddings => {
            openai::chat_stream_event(value)
        }
        Operation::Responses => openai::responses_stream_event(event_type, value),
        Operation::Messages => anthropic::stream_event(event_type, value),
        Operation::GenerateContent | Operation::StreamGenerateContent => {
            gemini::stream_event(value)
        }
    }
}

// ---- total accessors shared by the codecs ----

pub(crate) fn get<'a, J: JsonRead>(v: &'a J, key: &str) -> Option<&'a J> {
    v.member(key)
}

pub(crate) fn get_str<'a, J: JsonRead>(v: &'a J, key: &str) -> Option<&'a str> {
    get(v, key).and_then(J::as_text)
}

pub(crate) fn get_u64(v: &Value, key: &str) -> Option<u64> {
    get(v, key).and_then(|n| {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.is_finite())
                .map(|f| f as u64)
        })
    })
}

pub(crate) fn get_bool<J: JsonRead>(v: &J, key: &str) -> bool {
    get(v, key).and_then(J::as_flag).unwrap_or(false)
}

pub(crate) fn get_array<'a, J: JsonRead>(v: &'a J, key: &str) -> &'a [J] {
    get(v, key).and_then(J::as_items).unwrap_or_default()
}

/// Appends one escaped reference token to a JSON pointer.
pub(crate) fn ptr(base: &str, token: impl std::fmt::Display) -> String {
    let token = token.to_string();
    if token.contains(['~', '/']) {
        format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
    } else {
        format!("{base}/{token}")
    }
}

/// Pushes a segment when `v` is a non-empty string.
pub(crate) fn push_str<J: JsonRead>(
    out: &mut Vec<Segment>,
    v: Option<&J>,
    role: Role,
    message_index: u32,
    pointer: String,
) {
    if let Some(v) = v {
        if let Some(text) = v.as_text() {
            if !text.is_empty() {
                out.push(Segment {
                    role,
                    message_index,
                    pointer,
                    span: v.span(),
                    text: text.to_string(),
                });
            }
        }
    }
}

/// Pushes every string leaf under `v` (tool inputs and results that are JSON objects), to a
/// bounded depth.
pub(crate) fn push_leaves<J: JsonRead>(
    out: &mut Vec<Segment>,
    v: &J,
    role: Role,
    message_index: u32,
    pointer: String,
    depth: u32,
) {
    if depth > 16 {
        return;
    }
    if v.as_text().is_some() {
        push_str(out, Some(v), role, message_index, pointer);
    } else if let Some(items) = v.as_items() {
        for (i, item) in items.iter().enumerate() {
            push_leaves(out, item, role, message_index, ptr(&pointer, i), depth + 1);
        }
    } else {
        v.each_member(&mut |k, item| {
            push_leaves(out, item, role, message_index, ptr(&pointer, k), depth + 1);
        });
    }
}

pub(crate) fn role_of<J: JsonRead>(v: &J) -> Role {
    Role::from_wire(get_str(v, "role").unwrap_or("user"))
}

pub(crate) fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_operations_from_paths() {
        let d = |p: &str| detect(p).map(|d| (d.provider, d.operation, d.path_model));
        assert_eq!(
            d("/v1/chat/completions"),
            Some((Provider::Openai, Operation::ChatCompletions, None))
        );
        assert_eq!(
            d("/v1/responses?x=1"),
            Some((Provider::Openai, Operation::Responses, None))
        );
        assert_eq!(
            d("/v1/embeddings"),
            Some((Provider::Openai, Operation::Embeddings, None))
        );
        assert_eq!(
            d("/v1/completions"),
            Some((Provider::Openai, Operation::Completions, None))
        );
        assert_eq!(
            d("/v1/messages"),
            Some((Provider::Anthropic, Operation::Messages, None))
        );
        assert_eq!(
            d("/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"),
            Some((
                Provider::AzureOpenai,
                Operation::ChatCompletions,
                Some("my-gpt4o".into())
            ))
        );
        assert_eq!(
            d("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            Some((
                Provider::Gemini,
                Operation::StreamGenerateContent,
                Some("gemini-2.5-flash".into())
            ))
        );
        assert_eq!(
            d("/v1beta/models/gemini-2.5-pro:generateContent"),
            Some((
                Provider::Gemini,
                Operation::GenerateContent,
                Some("gemini-2.5-pro".into())
            ))
        );
        assert_eq!(d("/healthz"), None);
        assert_eq!(d("/v1/models"), None);
        assert_eq!(d("/v1beta/models/x:countTokens"), None);
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(ptr("", "a/b~c"), "/a~1b~0c");
        assert_eq!(ptr("/x", 3), "/x/3");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [&b""[..], b"{", b"[1,2]", b"\xff\xfe", b"null", b"42"] {
            assert!(parse_request(Operation::ChatCompletions, body).is_err());
        }
        let deep = "[".repeat(10_000);
        assert!(parse_request(Operation::Messages, deep.as_bytes()).is_err());
    }
}
