//! OpenAI formats: Chat Completions, Responses, Embeddings and legacy Completions. Azure OpenAI
//! and OpenAI-compatible servers (vLLM, Ollama `/v1`) speak the same bodies.

use super::{
    get, get_array, get_bool, get_str, get_u64, index_u32, ptr, push_leaves, push_str, role_of,
    ParsedRequest, ParsedResponse, Role, Segment, StreamEventInfo, UsagePatch,
};
use crate::json_doc::JsonRead;
use serde_json::Value;

fn model<J: JsonRead>(v: &J) -> Option<String> {
    get_str(v, "model").map(str::to_string)
}

/// Content that is a string or an array of parts with `text` (chat `text`, Responses
/// `input_text`/`output_text`, `refusal`).
fn push_content<J: JsonRead>(
    out: &mut Vec<Segment>,
    content: Option<&J>,
    role: Role,
    idx: u32,
    base: &str,
) {
    let Some(content) = content else {
        return;
    };
    if content.as_text().is_some() {
        push_str(out, Some(content), role, idx, base.to_string());
    } else if let Some(parts) = content.as_items() {
        for (j, part) in parts.iter().enumerate() {
            let p = ptr(base, j);
            if get_str(part, "text").is_some() {
                push_str(out, get(part, "text"), role, idx, ptr(&p, "text"));
            } else if part.as_text().is_some() {
                push_str(out, Some(part), role, idx, p);
            } else if get_str(part, "type") == Some("refusal") {
                push_str(out, get(part, "refusal"), role, idx, ptr(&p, "refusal"));
            }
        }
    }
}

/// `POST /v1/chat/completions` request.
pub fn chat_request<J: JsonRead>(v: &J) -> ParsedRequest {
    let mut segments = Vec::new();
    for (i, msg) in get_array(v, "messages").iter().enumerate() {
        let idx = index_u32(i);
        let base = ptr("/messages", i);
        let role = role_of(msg);
        push_content(
            &mut segments,
            get(msg, "content"),
            role,
            idx,
            &ptr(&base, "content"),
        );
        for (j, call) in get_array(msg, "tool_calls").iter().enumerate() {
            let p = ptr(&ptr(&ptr(&base, "tool_calls"), j), "function");
            if let Some(f) = get(call, "function") {
                push_str(
                    &mut segments,
                    get(f, "arguments"),
                    role,
                    idx,
                    ptr(&p, "arguments"),
                );
            }
        }
        if let Some(f) = get(msg, "function_call") {
            push_str(
                &mut segments,
                get(f, "arguments"),
                role,
                idx,
                ptr(&ptr(&base, "function_call"), "arguments"),
            );
        }
    }
    let include_usage = get(v, "stream_options").is_some_and(|o| get_bool(o, "include_usage"));
    let cap = get(v, "max_completion_tokens")
        .and_then(J::as_count)
        .or_else(|| get(v, "max_tokens").and_then(J::as_count));
    ParsedRequest {
        model: model(v),
        stream: get_bool(v, "stream"),
        include_usage,
        max_output_tokens: times_choices(cap, get(v, "n")),
        segments,
    }
}

/// An output cap per choice times the number of choices asked for (at least one).
pub(crate) fn times_choices<J: JsonRead>(cap: Option<u64>, n: Option<&J>) -> Option<u64> {
    let n = n.and_then(J::as_count).unwrap_or(1).max(1);
    cap.map(|c| c.saturating_mul(n))
}

/// `POST /v1/responses` request.
pub fn responses_request<J: JsonRead>(v: &J) -> ParsedRequest {
    let mut segments = Vec::new();
    push_str(
        &mut segments,
        get(v, "instructions"),
        Role::System,
        0,
        "/instructions".into(),
    );
    let input = get(v, "input");
    if input.and_then(J::as_text).is_some() {
        push_str(&mut segments, input, Role::User, 0, "/input".into());
    } else if let Some(items) = input.and_then(J::as_items) {
        for (i, item) in items.iter().enumerate() {
            let idx = index_u32(i);
            let base = ptr("/input", i);
            match get_str(item, "type") {
                Some("function_call_output") | Some("custom_tool_call_output") => {
                    match get(item, "output") {
                        Some(out) if out.as_text().is_some() => push_str(
                            &mut segments,
                            Some(out),
                            Role::Tool,
                            idx,
                            ptr(&base, "output"),
                        ),
                        Some(other) => push_leaves(
                            &mut segments,
                            other,
                            Role::Tool,
                            idx,
                            ptr(&base, "output"),
                            0,
                        ),
                        None => {}
                    }
                }
                Some("function_call") => push_str(
                    &mut segments,
                    get(item, "arguments"),
                    Role::Assistant,
                    idx,
                    ptr(&base, "arguments"),
                ),
                _ => push_content(
                    &mut segments,
                    get(item, "content"),
                    role_of(item),
                    idx,
                    &ptr(&base, "content"),
                ),
            }
        }
    }
    ParsedRequest {
        model: model(v),
        stream: get_bool(v, "stream"),
        include_usage: false,
        max_output_tokens: get(v, "max_output_tokens").and_then(J::as_count),
        segments,
    }
}

/// `POST /v1/embeddings` request: `input` is a string, strings, or token arrays (not scanned).
pub fn embeddings_request<J: JsonRead>(v: &J) -> ParsedRequest {
    let mut segments = Vec::new();
    push_inputs(&mut segments, get(v, "input"), "/input");
    ParsedRequest {
        model: model(v),
        stream: false,
        include_usage: false,
        // embeddings produce no output tokens
        max_output_tokens: Some(0),
        segments,
    }
}

/// Legacy `POST /v1/completions` request: `prompt` is a string or strings.
pub fn completions_request<J: JsonRead>(v: &J) -> ParsedRequest {
    let mut segments = Vec::new();
    push_inputs(&mut segments, get(v, "prompt"), "/prompt");
    let include_usage = get(v, "stream_options").is_some_and(|o| get_bool(o, "include_usage"));
    ParsedRequest {
        model: model(v),
        stream: get_bool(v, "stream"),
        include_usage,
        max_output_tokens: times_choices(get(v, "max_tokens").and_then(J::as_count), get(v, "n")),
        segments,
    }
}

fn push_inputs<J: JsonRead>(out: &mut Vec<Segment>, input: Option<&J>, base: &str) {
    let Some(input) = input else {
        return;
    };
    if input.as_text().is_some() {
        push_str(out, Some(input), Role::User, 0, base.to_string());
    } else if let Some(items) = input.as_items() {
        for (i, item) in items.iter().enumerate() {
            push_str(out, Some(item), Role::User, index_u32(i), ptr(base, i));
        }
    }
}

/// Chat/Completions `usage` object.
pub fn chat_usage(u: &Value) -> UsagePatch {
    UsagePatch {
        input_tokens: get_u64(u, "prompt_tokens"),
        cached_input_tokens: get(u, "prompt_tokens_details")
            .and_then(|d| get_u64(d, "cached_tokens")),
        cache_write_tokens: None,
        output_tokens: get_u64(u, "completion_tokens"),
        reasoning_tokens: get(u, "completion_tokens_details")
            .and_then(|d| get_u64(d, "reasoning_tokens")),
    }
}

/// Responses API `usage` object.
pub fn responses_usage(u: &Value) -> UsagePatch {
    UsagePatch {
        input_tokens: get_u64(u, "input_tokens"),
        cached_input_tokens: get(u, "input_tokens_details")
            .and_then(|d| get_u64(d, "cached_tokens")),
        cache_write_tokens: None,
        output_tokens: get_u64(u, "output_tokens"),
        reasoning_tokens: get(u, "output_tokens_details")
            .and_then(|d| get_u64(d, "reasoning_tokens")),
    }
}

fn usage_of(v: &Value, f: fn(&Value) -> UsagePatch) -> Option<crate::usage::Usage> {
    get(v, "usage")
        .filter(|u| u.is_object())
        .map(|u| f(u).to_usage())
}

/// Chat Completions (and legacy Completions) response.
pub fn chat_response(v: &Value) -> ParsedResponse {
    let mut segments = Vec::new();
    for (i, choice) in get_array(v, "choices").iter().enumerate() {
        let idx = index_u32(i);
        let base = ptr("/choices", i);
        push_str(
            &mut segments,
            get(choice, "text"),
            Role::Assistant,
            idx,
            ptr(&base, "text"),
        );
        if let Some(msg) = get(choice, "message") {
            let mbase = ptr(&base, "message");
            push_content(
                &mut segments,
                get(msg, "content"),
                Role::Assistant,
                idx,
                &ptr(&mbase, "content"),
            );
            push_str(
                &mut segments,
                get(msg, "refusal"),
                Role::Assistant,
                idx,
                ptr(&mbase, "refusal"),
            );
            for (j, call) in get_array(msg, "tool_calls").iter().enumerate() {
                if let Some(f) = get(call, "function") {
                    let p = ptr(&ptr(&ptr(&mbase, "tool_calls"), j), "function");
                    push_str(
                        &mut segments,
                        get(f, "arguments"),
                        Role::Assistant,
                        idx,
                        ptr(&p, "arguments"),
                    );
                }
            }
        }
    }
    ParsedResponse {
        model: model(v),
        usage: usage_of(v, chat_usage),
        segments,
    }
}

/// Responses API response (also the `response` object inside stream events).
pub fn responses_response(v: &Value) -> ParsedResponse {
    let mut segments = Vec::new();
    for (i, item) in get_array(v, "output").iter().enumerate() {
        let idx = index_u32(i);
        let base = ptr("/output", i);
        match get_str(item, "type") {
            Some("function_call") => push_str(
                &mut segments,
                get(item, "arguments"),
                Role::Assistant,
                idx,
                ptr(&base, "arguments"),
            ),
            _ => push_content(
                &mut segments,
                get(item, "content"),
                Role::Assistant,
                idx,
                &ptr(&base, "content"),
            ),
        }
    }
    ParsedResponse {
        model: model(v),
        usage: usage_of(v, responses_usage),
        segments,
    }
}

/// Embeddings response: usage only.
pub fn embeddings_response(v: &Value) -> ParsedResponse {
    ParsedResponse {
        model: model(v),
        usage: usage_of(v, chat_usage),
        segments: Vec::new(),
    }
}

/// One Chat Completions stream chunk.
pub fn chat_stream_event(v: &Value) -> StreamEventInfo {
    let mut info = StreamEventInfo {
        model: model(v),
        ..StreamEventInfo::default()
    };
    let choices = get_array(v, "choices");
    for (i, choice) in choices.iter().enumerate() {
        let base = ptr("/choices", i);
        if let Some(Value::String(t)) = get(choice, "text") {
            if !t.is_empty() {
                info.deltas.push((ptr(&base, "text"), t.clone()));
            }
        }
        if let Some(delta) = get(choice, "delta") {
            let dbase = ptr(&base, "delta");
            for key in ["content", "refusal"] {
                if let Some(Value::String(t)) = get(delta, key) {
                    if !t.is_empty() {
                        info.deltas.push((ptr(&dbase, key), t.clone()));
                    }
                }
            }
            for (j, call) in get_array(delta, "tool_calls").iter().enumerate() {
                if let Some(Value::String(t)) =
                    get(call, "function").and_then(|f| get(f, "arguments"))
                {
                    if !t.is_empty() {
                        let p = ptr(&ptr(&ptr(&dbase, "tool_calls"), j), "function");
                        info.deltas.push((ptr(&p, "arguments"), t.clone()));
                    }
                }
            }
        }
    }
    if let Some(u) = get(v, "usage").filter(|u| u.is_object()) {
        info.usage = Some(chat_usage(u));
        info.usage_only = choices.is_empty();
        info.final_usage = true;
    }
    info.error = get(v, "error").is_some();
    info
}

/// One Responses API stream event.
pub fn responses_stream_event(event_type: &str, v: &Value) -> StreamEventInfo {
    let kind = get_str(v, "type").unwrap_or(event_type);
    let mut info = StreamEventInfo::default();
    match kind {
        "response.output_text.delta"
        | "response.refusal.delta"
        | "response.function_call_arguments.delta" => {
            if let Some(Value::String(t)) = get(v, "delta") {
                if !t.is_empty() {
                    info.deltas.push(("/delta".to_string(), t.clone()));
                }
            }
        }
        "response.created" | "response.in_progress" => {
            info.model = get(v, "response").and_then(model);
        }
        "response.completed" | "response.incomplete" | "response.failed" => {
            if let Some(r) = get(v, "response") {
                info.model = model(r);
                info.usage = get(r, "usage")
                    .filter(|u| u.is_object())
                    .map(responses_usage);
            }
            info.final_usage = info.usage.is_some();
            info.done = true;
            info.error = kind == "response.failed";
        }
        "error" => info.error = true,
        _ => {}
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_request_with_parts_tools_and_stream_options() {
        let body = json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:..."}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"q\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "result text"}
            ]
        });
        let r = chat_request(&body);
        assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
        assert!(r.stream && r.include_usage);
        let got: Vec<_> = r
            .segments
            .iter()
            .map(|s| (s.role, s.message_index, s.pointer.as_str(), s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Role::System, 0, "/messages/0/content", "You are terse."),
                (Role::User, 1, "/messages/1/content/0/text", "hi"),
                (
                    Role::Assistant,
                    2,
                    "/messages/2/tool_calls/0/function/arguments",
                    "{\"q\":\"x\"}"
                ),
                (Role::Tool, 3, "/messages/3/content", "result text"),
            ]
        );
        for s in &r.segments {
            assert_eq!(
                body.pointer(&s.pointer).and_then(Value::as_str),
                Some(s.text.as_str())
            );
        }
    }

    #[test]
    fn chat_response_usage_details() {
        let body = json!({
            "model": "o3-2025-04-16",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 40}, "completion_tokens_details": {"reasoning_tokens": 30}}
        });
        let r = chat_response(&body);
        let u = r.usage.unwrap_or_default();
        assert_eq!(
            (
                u.input_tokens,
                u.cached_input_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (100, 40, 50, 30)
        );
        assert!(!u.estimated);
        assert_eq!(r.segments[0].text, "Hello");
    }

    #[test]
    fn chat_stream_chunks() {
        let delta = chat_stream_event(
            &json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}], "usage": null}),
        );
        assert_eq!(
            delta.deltas,
            vec![("/choices/0/delta/content".to_string(), "Hel".to_string())]
        );
        assert!(delta.usage.is_none());
        let last = chat_stream_event(
            &json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}),
        );
        assert!(last.usage_only);
        assert_eq!(last.usage.map(|u| u.output_tokens), Some(Some(3)));
    }

    #[test]
    fn responses_request_and_stream() {
        let body = json!({"model": "gpt-4.1", "instructions": "Be brief.", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]},
            {"type": "function_call_output", "call_id": "x", "output": "{\"temp\": 20}"}
        ], "stream": true});
        let r = responses_request(&body);
        assert!(r.stream);
        assert_eq!(r.system_prompt(), "Be brief.");
        assert_eq!(r.segments.len(), 3);
        assert_eq!(r.segments[2].role, Role::Tool);
        let s = responses_request(&json!({"model": "gpt-4.1", "input": "hello"}));
        assert_eq!(s.segments[0].pointer, "/input");

        let done = responses_stream_event(
            "response.completed",
            &json!({"type": "response.completed", "response": {
            "model": "gpt-4.1-2025-04-14", "usage": {"input_tokens": 12, "output_tokens": 7,
            "input_tokens_details": {"cached_tokens": 2}, "output_tokens_details": {"reasoning_tokens": 0}}}}),
        );
        assert!(done.done);
        assert_eq!(done.usage.map(|u| u.to_usage().input_tokens), Some(12));
        let d = responses_stream_event(
            "",
            &json!({"type": "response.output_text.delta", "delta": "Fo"}),
        );
        assert_eq!(d.deltas[0].1, "Fo");
    }

    #[test]
    fn embeddings_and_completions() {
        let e = embeddings_request(
            &json!({"model": "text-embedding-3-small", "input": ["a", "b", [1, 2]]}),
        );
        assert_eq!(e.segments.len(), 2);
        let c =
            completions_request(&json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}));
        assert_eq!(c.segments[0].text, "Say hi");
        let r = embeddings_response(&json!({"usage": {"prompt_tokens": 8, "total_tokens": 8}}));
        assert_eq!(r.usage.map(|u| u.input_tokens), Some(8));
    }
}
