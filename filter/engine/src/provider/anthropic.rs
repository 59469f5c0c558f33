//! Anthropic Messages (`POST /v1/messages`): `system` as a string or text blocks, content blocks
//! with tool use and tool results, and the stream events `message_start` (input and cache
//! tokens), `content_block_delta` (text) and `message_delta` (cumulative output tokens).

use super::{
    get, get_array, get_bool, get_str, get_u64, index_u32, ptr, push_leaves, push_str, role_of,
    ParsedRequest, ParsedResponse, Role, Segment, StreamEventInfo, UsagePatch,
};
use crate::json_doc::JsonRead;
use serde_json::Value;

fn push_blocks<J: JsonRead>(
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
    } else if let Some(blocks) = content.as_items() {
        for (j, block) in blocks.iter().enumerate() {
            let p = ptr(base, j);
            match get_str(block, "type") {
                Some("text") => push_str(out, get(block, "text"), role, idx, ptr(&p, "text")),
                Some("tool_use") | Some("server_tool_use") => {
                    if let Some(input) = get(block, "input") {
                        push_leaves(out, input, role, idx, ptr(&p, "input"), 0);
                    }
                }
                Some("tool_result") => push_blocks(
                    out,
                    get(block, "content"),
                    Role::Tool,
                    idx,
                    &ptr(&p, "content"),
                ),
                Some("document") => {
                    if let Some(src) = get(block, "source") {
                        if get_str(src, "type") == Some("text") {
                            push_str(
                                out,
                                get(src, "data"),
                                Role::Tool,
                                idx,
                                ptr(&ptr(&p, "source"), "data"),
                            );
                        } else if get_str(src, "type") == Some("content") {
                            push_blocks(
                                out,
                                get(src, "content"),
                                Role::Tool,
                                idx,
                                &ptr(&ptr(&p, "source"), "content"),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Messages request.
pub fn request<J: JsonRead>(v: &J) -> ParsedRequest {
    let mut segments = Vec::new();
    push_blocks(&mut segments, get(v, "system"), Role::System, 0, "/system");
    for (i, msg) in get_array(v, "messages").iter().enumerate() {
        push_blocks(
            &mut segments,
            get(msg, "content"),
            role_of(msg),
            index_u32(i),
            &ptr(&ptr("/messages", i), "content"),
        );
    }
    ParsedRequest {
        model: get_str(v, "model").map(str::to_string),
        stream: get_bool(v, "stream"),
        include_usage: false,
        max_output_tokens: get(v, "max_tokens").and_then(J::as_count),
        segments,
    }
}

/// Anthropic `usage`: `input_tokens` excludes cache reads and writes, so the total adds them.
pub fn usage(u: &Value) -> UsagePatch {
    let plain = get_u64(u, "input_tokens");
    let write = get_u64(u, "cache_creation_input_tokens");
    let read = get_u64(u, "cache_read_input_tokens");
    let input = if plain.is_some() || write.is_some() || read.is_some() {
        Some(
            plain
                .unwrap_or(0)
                .saturating_add(write.unwrap_or(0))
                .saturating_add(read.unwrap_or(0)),
        )
    } else {
        None
    };
    UsagePatch {
        input_tokens: input,
        cached_input_tokens: read,
        cache_write_tokens: write,
        output_tokens: get_u64(u, "output_tokens"),
        reasoning_tokens: None,
    }
}

/// Messages response.
pub fn response(v: &Value) -> ParsedResponse {
    let mut segments = Vec::new();
    push_blocks(
        &mut segments,
        get(v, "content"),
        Role::Assistant,
        0,
        "/content",
    );
    ParsedResponse {
        model: get_str(v, "model").map(str::to_string),
        usage: get(v, "usage")
            .filter(|u| u.is_object())
            .map(|u| usage(u).to_usage()),
        segments,
    }
}

/// One Messages stream event.
pub fn stream_event(event_type: &str, v: &Value) -> StreamEventInfo {
    let kind = get_str(v, "type").unwrap_or(event_type);
    let mut info = StreamEventInfo::default();
    match kind {
        "message_start" => {
            if let Some(m) = get(v, "message") {
                info.model = get_str(m, "model").map(str::to_string);
                info.usage = get(m, "usage").filter(|u| u.is_object()).map(usage);
            }
        }
        "content_block_delta" => {
            if let Some(d) = get(v, "delta") {
                for key in ["text", "partial_json"] {
                    if let Some(Value::String(t)) = get(d, key) {
                        if !t.is_empty() {
                            info.deltas.push((ptr("/delta", key), t.clone()));
                        }
                    }
                }
            }
        }
        "message_delta" => {
            // Newer API versions repeat input and cache counts here; only counts present apply,
            // and a zero input count never erases the one from message_start.
            if let Some(u) = get(v, "usage").filter(|u| u.is_object()) {
                let mut patch = usage(u);
                if patch.input_tokens == Some(0) {
                    patch.input_tokens = None;
                    patch.cached_input_tokens = None;
                    patch.cache_write_tokens = None;
                }
                info.usage = Some(patch);
                info.final_usage = true;
            }
        }
        "message_stop" => info.done = true,
        "error" => info.error = true,
        _ => {}
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Usage;
    use serde_json::json;

    #[test]
    fn request_with_system_blocks_tools_and_documents() {
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
            "system": [{"type": "text", "text": "You are a bot.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "search", "input": {"query": "weather"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc body"}},
                    {"type": "text", "text": "thanks"}
                ]}
            ]
        });
        let r = request(&body);
        assert!(r.stream);
        assert_eq!(r.system_prompt(), "You are a bot.");
        let got: Vec<_> = r
            .segments
            .iter()
            .map(|s| (s.role, s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Role::System, "You are a bot."),
                (Role::User, "Hello"),
                (Role::Assistant, "weather"),
                (Role::Tool, "sunny"),
                (Role::Tool, "doc body"),
                (Role::User, "thanks"),
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
    fn response_usage_adds_cache_tokens() {
        let r = response(
            &json!({"model": "claude-haiku-4-5", "content": [{"type": "text", "text": "Hi"}],
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000, "output_tokens": 5}}),
        );
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 1110,
                cached_input_tokens: 1000,
                cache_write_tokens: 100,
                output_tokens: 5,
                reasoning_tokens: 0,
                estimated: false
            })
        );
    }

    #[test]
    fn stream_events_merge_into_one_usage() {
        let mut u = Usage::default();
        let start = stream_event(
            "message_start",
            &json!({"type": "message_start", "message": {"model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
        );
        start.usage.unwrap_or_default().apply(&mut u);
        let delta = stream_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        );
        assert_eq!(
            delta.deltas,
            vec![("/delta/text".to_string(), "Hi".to_string())]
        );
        let end = stream_event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}}),
        );
        end.usage.unwrap_or_default().apply(&mut u);
        assert_eq!(
            (u.input_tokens, u.cached_input_tokens, u.output_tokens),
            (30, 5, 15)
        );
        assert!(stream_event("message_stop", &json!({"type": "message_stop"})).done);
    }
}
