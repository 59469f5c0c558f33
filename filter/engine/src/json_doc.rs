//! Request bodies read in one pass, without `serde_json`'s owned tree. A request is parsed for
//! what its segments say and where they sit; building a `serde_json::Value` for that allocated
//! every key, string and map of the body and freed them again (12% of an agent turn natively,
//! more in a wasm VM, where the allocator is slower), and a redaction then walked the body a
//! second time to find the strings it replaces. [`JsonNode`] borrows every string that has no
//! escape from the body, keeps objects as member vectors, and records the byte span of every
//! string, so a redaction splices at known offsets. It accepts exactly the documents
//! `serde_json::from_slice` accepts (checked against it on generated and corpus bodies) and
//! reads duplicate keys the way `serde_json::Value` does (the last one counts), flagging them
//! so that a rewrite falls back to the path that refuses to guess.
//!
//! [`JsonRead`] is what the provider codecs read of a value: implemented by `JsonNode` for
//! requests and by `serde_json::Value` for responses and stream events, so each codec is
//! written once.

use serde_json::Value;
use std::borrow::Cow;
use std::ops::Range;

/// Deepest nesting accepted: `serde_json`'s recursion limit (its 128th nested container is an
/// error).
const MAX_DEPTH: usize = 127;

/// Objects with more members than this check duplicate keys with a hash set instead of a scan.
const LINEAR_KEY_CHECK: usize = 16;

/// One JSON value borrowed from a request body.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonNode<'a> {
    Null,
    Bool(bool),
    /// The number's literal, validated.
    Number(&'a str),
    /// A string, unescaped (borrowed when it had no escape), and the byte range of its literal
    /// in the body, quotes included.
    String {
        text: Cow<'a, str>,
        span: Range<usize>,
    },
    Array(Vec<JsonNode<'a>>),
    /// Members in document order; a repeated key is kept (lookups take the last value, as
    /// `serde_json`), and `duplicates` says whether there is one.
    Object {
        members: Vec<(Cow<'a, str>, JsonNode<'a>)>,
        duplicates: bool,
    },
}

/// A parsed body and what the rewrite path needs to know about it.
#[derive(Debug)]
pub struct JsonDoc<'a> {
    pub root: JsonNode<'a>,
    /// Some object repeats a key: an upstream may read either copy, so strings are not
    /// rewritten by span (the locating pass refuses repeated keys on a rewritten path).
    pub duplicate_keys: bool,
}

/// Why a body is not JSON (the message names what and where, for the malformed-body error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub message: &'static str,
    pub at: usize,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.at)
    }
}

/// Parses `body` (one JSON value, whitespace around it allowed).
pub fn parse(body: &[u8]) -> Result<JsonDoc<'_>, JsonError> {
    let text = std::str::from_utf8(body).map_err(|e| JsonError {
        message: "invalid UTF-8",
        at: e.valid_up_to(),
    })?;
    let mut p = Parser {
        text,
        bytes: body,
        at: 0,
        duplicate_keys: false,
    };
    p.skip_ws();
    let root = p.value(0)?;
    p.skip_ws();
    if p.at != body.len() {
        return Err(p.error("trailing characters"));
    }
    Ok(JsonDoc {
        root,
        duplicate_keys: p.duplicate_keys,
    })
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    duplicate_keys: bool,
}

impl<'a> Parser<'a> {
    fn error(&self, message: &'static str) -> JsonError {
        JsonError {
            message,
            at: self.at,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<JsonNode<'a>, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => {
                let start = self.at;
                let text = self.string()?;
                Ok(JsonNode::String {
                    text,
                    span: start..self.at,
                })
            }
            Some(b't') => self.literal(b"true", JsonNode::Bool(true)),
            Some(b'f') => self.literal(b"false", JsonNode::Bool(false)),
            Some(b'n') => self.literal(b"null", JsonNode::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end")),
        }
    }

    fn literal(&mut self, word: &[u8], node: JsonNode<'a>) -> Result<JsonNode<'a>, JsonError> {
        if self.bytes.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(node)
        } else {
            Err(self.error("expected a literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, of any magnitude (the workspace's
    /// `serde_json` keeps numbers as text: `arbitrary_precision`).
    fn number(&mut self) -> Result<JsonNode<'a>, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(JsonNode::Number(
            self.text.get(start..self.at).unwrap_or_default(),
        ))
    }

    /// The string whose opening quote is at the cursor; the cursor ends past its closing quote.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.at += 1;
        let start = self.at;
        let end = start + self.plain_run(start)?;
        if self.peek_at(end) == Some(b'"') {
            self.at = end + 1;
            return Ok(Cow::Borrowed(self.text.get(start..end).unwrap_or_default()));
        }
        // escapes: unescape into an owned string
        let mut out = String::with_capacity(end - start + 16);
        out.push_str(self.text.get(start..end).unwrap_or_default());
        self.at = end;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => {
                    let from = self.at;
                    let n = self.plain_run(from)?;
                    out.push_str(self.text.get(from..from + n).unwrap_or_default());
                    self.at = from + n;
                }
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// The length of the run of string bytes from `from` up to the next `"` or `\`; an error
    /// (the cursor at the offending byte) for a raw control character or a string that never
    /// ends.
    fn plain_run(&mut self, from: usize) -> Result<usize, JsonError> {
        let rest = self.bytes.get(from..).unwrap_or_default();
        let Some(n) = memchr::memchr2(b'"', b'\\', rest) else {
            self.at = self.bytes.len();
            return Err(self.error("unterminated string"));
        };
        if let Some(i) = control_character(rest.get(..n).unwrap_or_default()) {
            self.at = from + i;
            return Err(self.error("control character in string"));
        }
        Ok(n)
    }

    fn peek_at(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }

    /// One escape after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let c = self
            .peek()
            .ok_or_else(|| self.error("unterminated string"))?;
        self.at += 1;
        let plain = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = match first {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                            return Err(self.error("lone leading surrogate"));
                        }
                        self.at += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(self.error("lone leading surrogate"));
                        }
                        0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.error("lone trailing surrogate")),
                    other => u32::from(other),
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid escape"))?
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(plain);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        let v = u16::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.at += 4;
        Ok(v)
    }

    fn array(&mut self, depth: usize) -> Result<JsonNode<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(JsonNode::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(JsonNode::Array(items));
                }
                _ => return Err(self.error("expected , or ]")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<JsonNode<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.at += 1;
        let mut members: Vec<(Cow<'a, str>, JsonNode<'a>)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(JsonNode::Object {
                members,
                duplicates: false,
            });
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expected :"));
            }
            self.at += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    let duplicates = has_duplicate(&members);
                    self.duplicate_keys |= duplicates;
                    return Ok(JsonNode::Object {
                        members,
                        duplicates,
                    });
                }
                _ => return Err(self.error("expected , or }")),
            }
        }
    }
}

/// Where `bytes` holds a control character (not allowed raw in a JSON string). The common
/// answer, none, comes from a branch-free pass the compiler vectorises.
fn control_character(bytes: &[u8]) -> Option<usize> {
    if bytes.iter().fold(false, |any, &b| any | (b < 0x20)) {
        bytes.iter().position(|&b| b < 0x20)
    } else {
        None
    }
}

fn has_duplicate(members: &[(Cow<'_, str>, JsonNode<'_>)]) -> bool {
    if members.len() <= LINEAR_KEY_CHECK {
        members.iter().enumerate().any(|(i, (k, _))| {
            members
                .get(i + 1..)
                .is_some_and(|rest| rest.iter().any(|(other, _)| other == k))
        })
    } else {
        let mut seen = std::collections::HashSet::with_capacity(members.len());
        !members.iter().all(|(k, _)| seen.insert(k.as_ref()))
    }
}

/// What the provider codecs read of a JSON value.
pub trait JsonRead: Sized {
    /// The member `key` of an object (the last, if repeated).
    fn member(&self, key: &str) -> Option<&Self>;
    fn as_text(&self) -> Option<&str>;
    fn as_items(&self) -> Option<&[Self]>;
    fn as_flag(&self) -> Option<bool>;
    fn as_count(&self) -> Option<u64>;
    /// Calls `f` with every member of an object, in order.
    fn each_member(&self, f: &mut dyn FnMut(&str, &Self));
    /// The byte range of a string's literal in the parsed body, when known.
    fn span(&self) -> Option<Range<usize>>;
}

impl JsonRead for JsonNode<'_> {
    fn member(&self, key: &str) -> Option<&Self> {
        match self {
            JsonNode::Object { members, .. } => {
                members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    fn as_text(&self) -> Option<&str> {
        match self {
            JsonNode::String { text, .. } => Some(text),
            _ => None,
        }
    }

    fn as_items(&self) -> Option<&[Self]> {
        match self {
            JsonNode::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_flag(&self) -> Option<bool> {
        match self {
            JsonNode::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_count(&self) -> Option<u64> {
        match self {
            JsonNode::Number(literal) => literal.parse().ok(),
            _ => None,
        }
    }

    fn each_member(&self, f: &mut dyn FnMut(&str, &Self)) {
        match self {
            JsonNode::Object {
                members,
                duplicates: false,
            } => {
                for (k, v) in members {
                    f(k, v);
                }
            }
            JsonNode::Object { members, .. } => {
                // as serde_json's (insertion-ordered) map: each key once, where it first
                // appeared, holding its last value
                let mut last = std::collections::HashMap::with_capacity(members.len());
                for (k, v) in members {
                    last.insert(k.as_ref(), v);
                }
                for (k, _) in members {
                    if let Some(v) = last.remove(k.as_ref()) {
                        f(k, v);
                    }
                }
            }
            _ => {}
        }
    }

    fn span(&self) -> Option<Range<usize>> {
        match self {
            JsonNode::String { span, .. } => Some(span.clone()),
            _ => None,
        }
    }
}

impl JsonRead for Value {
    fn member(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }

    fn as_text(&self) -> Option<&str> {
        self.as_str()
    }

    fn as_items(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }

    fn as_flag(&self) -> Option<bool> {
        self.as_bool()
    }

    fn as_count(&self) -> Option<u64> {
        self.as_u64()
    }

    fn each_member(&self, f: &mut dyn FnMut(&str, &Self)) {
        if let Value::Object(map) = self {
            for (k, v) in map {
                f(k, v);
            }
        }
    }

    fn span(&self) -> Option<Range<usize>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The tree as `serde_json` would have built it (numbers through its own parser).
    fn to_value(node: &JsonNode<'_>) -> Value {
        match node {
            JsonNode::Null => Value::Null,
            JsonNode::Bool(b) => Value::Bool(*b),
            JsonNode::Number(n) => serde_json::from_str(n).unwrap(),
            JsonNode::String { text, .. } => Value::String(text.to_string()),
            JsonNode::Array(items) => Value::Array(items.iter().map(to_value).collect()),
            JsonNode::Object { .. } => {
                let mut map = serde_json::Map::new();
                node.each_member(&mut |k, v| {
                    map.insert(k.to_string(), to_value(v));
                });
                Value::Object(map)
            }
        }
    }

    /// Both parsers accept `body` or both refuse it; accepted, they read the same value.
    fn agrees(body: &[u8]) {
        let ours = parse(body);
        let theirs = serde_json::from_slice::<Value>(body);
        match (&ours, &theirs) {
            (Ok(doc), Ok(v)) => assert_eq!(
                &to_value(&doc.root),
                v,
                "{:?}",
                String::from_utf8_lossy(body)
            ),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "disagree on {:?}: ours {:?}, serde_json {:?}",
                String::from_utf8_lossy(body),
                ours.as_ref().map(|_| ()),
                theirs.as_ref().map(|_| ())
            ),
        }
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        let cases: &[&str] = &[
            "{}",
            "[]",
            " {\"a\" : 1 } ",
            "{\"a\":1,}",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{a:1}",
            "'a'",
            "\"a",
            "\"a\\\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\\\"",
            "\"tab\there\"",
            "\"nl\nhere\"",
            "\"\u{7f}\"",
            "\"é\"",
            "\"\\u00e9\\/\\b\\f\\n\\r\\t\"",
            "0",
            "-0",
            "01",
            "-",
            "1.",
            ".5",
            "1.5",
            "1e5",
            "1E+5",
            "1e-5",
            "1e",
            "1e+",
            "-01",
            "1e400",
            "-1e400",
            "1e-400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "truex",
            "nullnull",
            "[true false]",
            "{\"a\":1}{",
            "{\"a\":1} x",
            "\u{feff}{}",
            "",
            " ",
            "[\"a\"\u{0}]",
            "{\"k\":1,\"k\":2}",
            "{\"k\":1,\"j\":3,\"k\":2}",
            "{\"k\":{\"x\":1},\"k\":[2]}",
            "[1, 2,\t3\r\n]",
            "{\"\":\"\"}",
            "[[[[]]]]",
            "{\"a\":[{\"b\":\"c\\\\\"}]}",
        ];
        for c in cases {
            agrees(c.as_bytes());
        }
        agrees(&[b'"', 0xff, b'"']);
        agrees(&[b'"', 0xc3, b'"']);
        agrees(b"{\"a\":\"\xed\xa0\x80\"}");
    }

    #[test]
    fn nesting_is_limited_where_serde_json_limits_it() {
        for depth in [1, 64, 126, 127, 128, 129, 200] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            agrees(arrays.as_bytes());
            let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            agrees(objects.as_bytes());
        }
    }

    #[test]
    fn strings_carry_their_spans_and_borrow_when_unescaped() {
        let body =
            br#"{"messages":[{"role":"user","content":"hi \"there\""},{"content":"plain"}]}"#;
        let doc = parse(body).unwrap();
        let messages = doc.root.member("messages").unwrap().as_items().unwrap();
        let escaped = messages[0].member("content").unwrap();
        let plain = messages[1].member("content").unwrap();
        assert_eq!(escaped.as_text(), Some("hi \"there\""));
        assert_eq!(&body[escaped.span().unwrap()], br#""hi \"there\"""#);
        assert_eq!(&body[plain.span().unwrap()], br#""plain""#);
        assert!(matches!(
            plain,
            JsonNode::String {
                text: Cow::Borrowed(_),
                ..
            }
        ));
        assert!(!doc.duplicate_keys);
    }

    #[test]
    fn repeated_keys_read_as_serde_json_reads_them_and_are_flagged() {
        let doc = parse(br#"{"a":{"k":1,"j":2,"k":"last"}}"#).unwrap();
        assert!(doc.duplicate_keys);
        let inner = doc.root.member("a").unwrap();
        assert_eq!(inner.member("k").unwrap().as_text(), Some("last"));
        let mut keys = Vec::new();
        inner.each_member(&mut |k, v| keys.push((k.to_string(), v.as_text().map(str::to_string))));
        assert_eq!(
            keys,
            [
                ("k".to_string(), Some("last".to_string())),
                ("j".to_string(), None)
            ]
        );
        // many members: the hashed check finds the repeat too
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let body = format!("{{{},\"k7\":0}}", many.join(","));
        assert!(parse(body.as_bytes()).unwrap().duplicate_keys);
        assert!(
            !parse(format!("{{{}}}", many.join(",")).as_bytes())
                .unwrap()
                .duplicate_keys
        );
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        for n in [
            "0",
            "7",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "1.0",
            "1e2",
        ] {
            let ours = parse(n.as_bytes()).unwrap().root.as_count();
            let theirs = serde_json::from_str::<Value>(n).unwrap().as_u64();
            assert_eq!(ours, theirs, "{n}");
        }
    }

    /// JSON-like text: valid documents with random damage.
    fn document() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            "[a-z\"\\\\/ é\\u{1F600}\t]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            "\\\\u[0-9a-fA-F]{4}".prop_map(|s| format!("\"{s}\"")),
        ];
        let tree = leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..4).prop_map(|m| {
                    let members: Vec<String> = m
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", members.join(" ,"))
                }),
            ]
        });
        (
            tree,
            any::<u16>(),
            prop::sample::select(vec![
                "", ",", "]", "}", "\"", "\\", ":", "1", "-", "e", "\u{1}", " ",
            ]),
            0..3u8,
        )
            .prop_map(|(doc, at, piece, how)| {
                let mut doc = doc;
                let cut = usize::from(at) % (doc.len() + 1);
                let cut = (0..=cut)
                    .rev()
                    .find(|&i| doc.is_char_boundary(i))
                    .unwrap_or(0);
                match how {
                    0 => {}
                    1 => doc.insert_str(cut, piece),
                    _ => {
                        let end = (cut + 1..=doc.len())
                            .find(|&i| doc.is_char_boundary(i))
                            .unwrap_or(doc.len());
                        doc.replace_range(cut..end, piece);
                    }
                }
                doc
            })
    }

    /// Every string's (JSON pointer, span) under `node`.
    fn strings(node: &JsonNode<'_>, pointer: String, out: &mut Vec<(String, Range<usize>)>) {
        match node {
            JsonNode::String { span, .. } => out.push((pointer, span.clone())),
            JsonNode::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    strings(item, crate::provider::ptr(&pointer, i), out);
                }
            }
            JsonNode::Object { members, .. } => {
                for (k, item) in members {
                    strings(item, crate::provider::ptr(&pointer, k), out);
                }
            }
            _ => {}
        }
    }

    /// A redaction splices at a string's span exactly where the locating pass of the
    /// re-serialising path (`json_edit::locate_all`) would have put it.
    fn spans_are_where_the_locating_pass_finds_them(body: &[u8]) {
        let Ok(doc) = parse(body) else { return };
        if doc.duplicate_keys {
            return;
        }
        let mut found = Vec::new();
        strings(&doc.root, String::new(), &mut found);
        let pointers: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        let located = crate::json_edit::locate_all(body, &pointers).unwrap();
        for (pointer, span) in &found {
            assert_eq!(located.get(pointer), Some(span), "{pointer}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_serde_json_on_generated_documents(doc in document()) {
            agrees(doc.as_bytes());
            spans_are_where_the_locating_pass_finds_them(doc.as_bytes());
        }
    }

    #[test]
    fn agrees_with_serde_json_on_every_corpus_text_as_a_body() {
        let corpus = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../eval/corpus/benign.jsonl"
        );
        let text = std::fs::read_to_string(corpus).unwrap();
        let mut n = 0;
        for line in text.split('\n').filter(|l| !l.trim().is_empty()).take(3000) {
            agrees(line.as_bytes());
            spans_are_where_the_locating_pass_finds_them(line.as_bytes());
            n += 1;
        }
        assert!(n >= 1000, "{n}");
    }
}
