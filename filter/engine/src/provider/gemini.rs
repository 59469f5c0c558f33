//! Gemini `generateContent` and `streamGenerateContent`: `systemInstruction` and `contents` with
//! `parts`, function calls and responses, and `usageMetadata` (cumulative in streams; thinking
//! tokens are reported apart from candidate tokens and are added to the output here).

use super::{
    get, get_array, get_str, get_u64, index_u32, ptr, push_leaves, push_str, role_of,
    ParsedRequest, ParsedResponse, Role, Segment, StreamEventInfo, UsagePatch,
};
use crate::json_doc::JsonRead;
use serde_json::Value;

fn push_parts<J: JsonRead>(out: &mut Vec<Segment>, content: &J, role: Role, idx: u32, base: &str) {
    for (j, part) in get_array(content, "parts").iter().enumerate() {
        let p = ptr(&ptr(base, "parts"), j);
        push_str(out, get(part, "text"), role, idx, ptr(&p, "text"));
        for (key, r) in [
            ("functionResponse", Role::Tool),
            ("function_response", Role::Tool),
            ("functionCall", role),
            ("function_call", role),
        ] {
            if let Some(f) = get(part, key) {
                let inner = if key.starts_with("functionR") || key.starts_with("function_r") {
                    "response"
                } else {
                    "args"
                };
                if let Some(v) = get(f, inner) {
                    push_leaves(out, v, r, idx, ptr(&ptr(&p, key), inner), 0);
                }
            }
        }
    }
}

/// Request; the model and stream flag come from the path.
pub fn request<J: JsonRead>(v: &J, stream: bool) -> ParsedRequest {
    let mut segments = Vec::new();
    for key in ["systemInstruction", "system_instruction"] {
        if let Some(sys) = get(v, key) {
            push_parts(&mut segments, sys, Role::System, 0, &ptr("", key));
        }
    }
    for (i, content) in get_array(v, "contents").iter().enumerate() {
        push_parts(
            &mut segments,
            content,
            role_of(content),
            index_u32(i),
            &ptr("/contents", i),
        );
    }
    ParsedRequest {
        model: get_str(v, "model").map(str::to_string),
        stream,
        include_usage: false,
        max_output_tokens: {
            let config = get(v, "generationConfig").or_else(|| get(v, "generation_config"));
            let cap = config.and_then(|c| {
                get(c, "maxOutputTokens")
                    .or_else(|| get(c, "max_output_tokens"))
                    .and_then(J::as_count)
            });
            super::openai::times_choices(
                cap,
                config.and_then(|c| get(c, "candidateCount").or_else(|| get(c, "candidate_count"))),
            )
        },
        segments,
    }
}

/// `usageMetadata`: `promptTokenCount` includes cached content; thoughts are billed as output.
pub fn usage(u: &Value) -> UsagePatch {
    let candidates = get_u64(u, "candidatesTokenCount");
    let thoughts = get_u64(u, "thoughtsTokenCount");
    let output = match (candidates, thoughts) {
        (None, None) => None,
        (c, t) => Some(c.unwrap_or(0).saturating_add(t.unwrap_or(0))),
    };
    UsagePatch {
        input_tokens: get_u64(u, "promptTokenCount")
            .map(|p| p.saturating_add(get_u64(u, "toolUsePromptTokenCount").unwrap_or(0))),
        cached_input_tokens: get_u64(u, "cachedContentTokenCount"),
        cache_write_tokens: None,
        output_tokens: output,
        reasoning_tokens: thoughts,
    }
}

fn model(v: &Value) -> Option<String> {
    get_str(v, "modelVersion").map(str::to_string)
}

/// Whole response.
pub fn response(v: &Value) -> ParsedResponse {
    let mut segments = Vec::new();
    for (i, cand) in get_array(v, "candidates").iter().enumerate() {
        if let Some(content) = get(cand, "content") {
            push_parts(
                &mut segments,
                content,
                Role::Assistant,
                index_u32(i),
                &ptr(&ptr("/candidates", i), "content"),
            );
        }
    }
    ParsedResponse {
        model: model(v),
        usage: get(v, "usageMetadata")
            .filter(|u| u.is_object())
            .map(|u| usage(u).to_usage()),
        segments,
    }
}

/// One stream element (an SSE event's data with `alt=sse`, or one element of the JSON array).
pub fn stream_event(v: &Value) -> StreamEventInfo {
    let r = response(v);
    let done = get_array(v, "candidates")
        .iter()
        .any(|c| get(c, "finishReason").is_some());
    let usage = get(v, "usageMetadata").filter(|u| u.is_object()).map(usage);
    StreamEventInfo {
        final_usage: done && usage.is_some(),
        model: r.model,
        usage,
        deltas: r
            .segments
            .into_iter()
            .map(|s| (s.pointer, s.text))
            .collect(),
        done,
        error: get(v, "error").is_some(),
        usage_only: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_and_usage() {
        let body = json!({
            "systemInstruction": {"parts": [{"text": "Be kind."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"q": "x"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "tool says hi"}}}]}
            ]
        });
        let r = request(&body, true);
        assert!(r.stream);
        let got: Vec<_> = r
            .segments
            .iter()
            .map(|s| (s.role, s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Role::System, "Be kind."),
                (Role::User, "Hi"),
                (Role::Assistant, "x"),
                (Role::Tool, "tool says hi")
            ]
        );
        let resp = response(
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 6, "cachedContentTokenCount": 2, "totalTokenCount": 20},
            "modelVersion": "gemini-2.5-flash"}),
        );
        let u = resp.usage.unwrap_or_default();
        assert_eq!(
            (
                u.input_tokens,
                u.cached_input_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (10, 2, 10, 6)
        );
        assert_eq!(resp.model.as_deref(), Some("gemini-2.5-flash"));
    }
}
