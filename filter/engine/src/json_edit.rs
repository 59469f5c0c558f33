//! Edits of a JSON body in place. Redaction and the `include_usage` injection change a few
//! strings of a request; re-serialising the whole document would change every byte (and its
//! length, which the upstream already knows from `content-length` when the headers have gone on
//! before the body, ADR 0013). Here a value is located by its JSON pointer in the original bytes,
//! and only that value's bytes are replaced; everything else stays byte for byte. When the body
//! must keep its length, a shorter result is padded with JSON whitespace after the last value
//! (legal anywhere between tokens and at the end), and a longer one is refused.
//!
//! The locator walks well-formed JSON once (the body has already been parsed by `serde_json`, so
//! it is), entering only the containers on the way to a wanted value; an object on that way that
//! repeats a key is refused.

use std::ops::Range;

/// One replacement: `range` of the original body becomes `bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub range: Range<usize>,
    pub bytes: Vec<u8>,
}

/// Why edits could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceError {
    /// Two edits overlap (a caller bug; nothing is changed).
    Overlap,
    /// The edited body would be longer than the length it must keep.
    TooLong { over: usize },
}

/// Applies `splices` to `body`. With `keep_length`, the result has exactly `body.len()` bytes:
/// padded with spaces when shorter, refused when longer.
pub fn apply(
    body: &[u8],
    splices: &mut [Splice],
    keep_length: bool,
) -> Result<Vec<u8>, SpliceError> {
    splices.sort_by_key(|s| s.range.start);
    let mut new_len = body.len();
    let mut pos = 0usize;
    for s in splices.iter() {
        if s.range.start < pos || s.range.end < s.range.start || s.range.end > body.len() {
            return Err(SpliceError::Overlap);
        }
        pos = s.range.end;
        new_len = new_len - s.range.len() + s.bytes.len();
    }
    if keep_length && new_len > body.len() {
        return Err(SpliceError::TooLong {
            over: new_len - body.len(),
        });
    }
    let mut out = Vec::with_capacity(new_len.max(body.len()));
    let mut pos = 0usize;
    for s in splices.iter() {
        out.extend_from_slice(body.get(pos..s.range.start).unwrap_or_default());
        out.extend_from_slice(&s.bytes);
        pos = s.range.end;
    }
    out.extend_from_slice(body.get(pos..).unwrap_or_default());
    if keep_length {
        out.resize(body.len(), b' ');
    }
    Ok(out)
}

/// The edit that adds `member` (`"key":value`) as the first member of the object opening at
/// `open`; `None` when no object opens there.
pub fn first_member(body: &[u8], open: usize, member: &str) -> Option<Splice> {
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let empty = body.get(skip_ws(body, open + 1)) == Some(&b'}');
    let mut bytes = member.as_bytes().to_vec();
    if !empty {
        bytes.push(b',');
    }
    Some(Splice {
        range: open + 1..open + 1,
        bytes,
    })
}

/// Where the top-level value starts.
pub fn document_start(body: &[u8]) -> usize {
    skip_ws(body, 0)
}

/// Why [`locate_all`] found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateError {
    /// An object on the way to a wanted value repeats a key: a parser that keeps the first
    /// occurrence would read text the engine (which, like `serde_json`, keeps the last) never
    /// analysed, so such a body is not rewritten in place.
    RepeatedKey,
    /// Not well-formed where it was walked, or nested deeper than `serde_json` accepts.
    Malformed,
}

/// Nesting `serde_json` accepts (its recursion limit); the walk below never goes deeper.
const MAX_DEPTH: usize = 128;

/// The ranges of the values at every pointer in `wanted`, found in one pass over the body: only
/// containers on the way to a wanted value are entered, everything else is skipped whole. Missing
/// pointers are simply absent from the result.
pub fn locate_all(
    body: &[u8],
    wanted: &[&str],
) -> Result<std::collections::HashMap<String, Range<usize>>, LocateError> {
    let mut targets = std::collections::HashSet::new();
    let mut ancestors = std::collections::HashSet::new();
    for w in wanted {
        targets.insert(*w);
        let mut at = 0;
        while let Some(i) = w.get(at + 1..).and_then(|rest| rest.find('/')) {
            at += i + 1;
            ancestors.insert(w.get(..at).unwrap_or_default());
        }
        ancestors.insert("");
    }
    let mut walk = Walk {
        body,
        targets,
        ancestors,
        found: std::collections::HashMap::new(),
    };
    let start = skip_ws(body, 0);
    let mut pointer = String::new();
    walk.value(start, &mut pointer, 0)?;
    Ok(walk.found)
}

struct Walk<'a> {
    body: &'a [u8],
    targets: std::collections::HashSet<&'a str>,
    ancestors: std::collections::HashSet<&'a str>,
    found: std::collections::HashMap<String, Range<usize>>,
}

impl Walk<'_> {
    /// Walks the value starting at `at` (whose pointer is `pointer`); returns its end.
    fn value(
        &mut self,
        at: usize,
        pointer: &mut String,
        depth: usize,
    ) -> Result<usize, LocateError> {
        let body = self.body;
        let entering = self.ancestors.contains(pointer.as_str());
        let end = if !entering {
            value_end(body, at).ok_or(LocateError::Malformed)?
        } else {
            if depth >= MAX_DEPTH {
                return Err(LocateError::Malformed);
            }
            match body.get(at) {
                Some(b'{') => self.object(at, pointer, depth)?,
                Some(b'[') => self.array(at, pointer, depth)?,
                _ => value_end(body, at).ok_or(LocateError::Malformed)?,
            }
        };
        if self.targets.contains(pointer.as_str()) {
            self.found.insert(pointer.clone(), at..end);
        }
        Ok(end)
    }

    fn object(
        &mut self,
        open: usize,
        pointer: &mut String,
        depth: usize,
    ) -> Result<usize, LocateError> {
        let body = self.body;
        let base = pointer.len();
        let mut keys = std::collections::HashSet::new();
        let mut at = skip_ws(body, open + 1);
        if body.get(at) == Some(&b'}') {
            return Ok(at + 1);
        }
        loop {
            let key_end = string_end(body, at).ok_or(LocateError::Malformed)?;
            let raw = body.get(at..key_end).ok_or(LocateError::Malformed)?;
            let key: String = serde_json::from_slice(raw).map_err(|_| LocateError::Malformed)?;
            if keys.contains(&key) {
                return Err(LocateError::RepeatedKey);
            }
            at = skip_ws(body, key_end);
            if body.get(at) != Some(&b':') {
                return Err(LocateError::Malformed);
            }
            let value = skip_ws(body, at + 1);
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            keys.insert(key);
            let end = self.value(value, pointer, depth + 1)?;
            pointer.truncate(base);
            at = skip_ws(body, end);
            match body.get(at) {
                Some(b',') => at = skip_ws(body, at + 1),
                Some(b'}') => return Ok(at + 1),
                _ => return Err(LocateError::Malformed),
            }
        }
    }

    fn array(
        &mut self,
        open: usize,
        pointer: &mut String,
        depth: usize,
    ) -> Result<usize, LocateError> {
        let body = self.body;
        let base = pointer.len();
        let mut at = skip_ws(body, open + 1);
        if body.get(at) == Some(&b']') {
            return Ok(at + 1);
        }
        let mut index = 0usize;
        loop {
            pointer.push('/');
            pointer.push_str(&index.to_string());
            let end = self.value(at, pointer, depth + 1)?;
            pointer.truncate(base);
            index += 1;
            at = skip_ws(body, end);
            match body.get(at) {
                Some(b',') => at = skip_ws(body, at + 1),
                Some(b']') => return Ok(at + 1),
                _ => return Err(LocateError::Malformed),
            }
        }
    }
}

fn skip_ws(body: &[u8], mut at: usize) -> usize {
    while matches!(body.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// One past the closing quote of the string starting at `at`.
fn string_end(body: &[u8], at: usize) -> Option<usize> {
    if body.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        let rest = body.get(i..)?;
        let j = memchr::memchr2(b'"', b'\\', rest)?;
        i += j;
        if body.get(i) == Some(&b'\\') {
            i += 2;
        } else {
            return Some(i + 1);
        }
    }
}

/// One past the end of the value starting at `at` (containers skipped with a depth count, no
/// recursion).
fn value_end(body: &[u8], at: usize) -> Option<usize> {
    match body.get(at)? {
        b'"' => string_end(body, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match body.get(i)? {
                    b'"' => {
                        i = string_end(body, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while let Some(c) = body.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn value(body: &str, pointer: &str) -> Option<String> {
        let found = locate_all(body.as_bytes(), &[pointer]).ok()?;
        found.get(pointer).map(|r| body[r.clone()].to_string())
    }

    #[test]
    fn values_are_located_by_pointer() {
        let body = r#" { "model" : "m", "messages": [ {"role":"user","content":"a \"b\" c"},
            {"role":"user","content":[{"type":"text","text":"x}]"}]} ], "n": -1.5e3 } "#;
        assert_eq!(value(body, "/model").unwrap(), r#""m""#);
        assert_eq!(
            value(body, "/messages/0/content").unwrap(),
            r#""a \"b\" c""#
        );
        assert_eq!(
            value(body, "/messages/1/content/0/text").unwrap(),
            r#""x}]""#
        );
        assert_eq!(value(body, "/n").unwrap(), "-1.5e3");
        assert!(value(body, "/messages/2").is_none());
        assert_eq!(value(body, "").unwrap(), body.trim());
    }

    #[test]
    fn escaped_keys_follow_serde() {
        let body = r#"{"a/b":1,"c~d":2,"\u0065":3}"#;
        assert_eq!(value(body, "/a~1b").unwrap(), "1");
        assert_eq!(value(body, "/c~0d").unwrap(), "2");
        assert_eq!(value(body, "/e").unwrap(), "3");
    }

    #[test]
    fn all_wanted_values_are_found_in_one_pass() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b/c"}]}],"x~y":{"k":"v"}}"#;
        let found = locate_all(
            body.as_bytes(),
            &[
                "/messages/0/content",
                "/messages/1/content/0/text",
                "/x~0y/k",
                "/nope/0",
            ],
        )
        .unwrap();
        assert_eq!(&body[found["/messages/0/content"].clone()], r#""a""#);
        assert_eq!(
            &body[found["/messages/1/content/0/text"].clone()],
            r#""b/c""#
        );
        assert_eq!(&body[found["/x~0y/k"].clone()], r#""v""#);
        assert!(!found.contains_key("/nope/0"));
    }

    #[test]
    fn a_repeated_key_on_the_way_is_refused() {
        let body = br#"{"messages":[{"content":"secret"}],"messages":[{"content":"x"}]}"#;
        assert_eq!(
            locate_all(body, &["/messages/0/content"]),
            Err(LocateError::RepeatedKey)
        );
        let inner = br#"{"messages":[{"content":"a","content":"b"}]}"#;
        assert_eq!(
            locate_all(inner, &["/messages/0/content"]),
            Err(LocateError::RepeatedKey)
        );
    }

    #[test]
    fn one_pass_is_linear_in_the_body() {
        // 20,000 messages, each redacted: one walk, not one per message
        let mut body = String::from(r#"{"model":"m","messages":["#);
        let mut wanted = Vec::new();
        for i in 0..20_000 {
            if i > 0 {
                body.push(',');
            }
            body.push_str(r#"{"role":"user","content":"4111111111111111"}"#);
            wanted.push(format!("/messages/{i}/content"));
        }
        body.push_str("]}");
        let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let t = std::time::Instant::now();
        let found = locate_all(body.as_bytes(), &refs).unwrap();
        assert_eq!(found.len(), 20_000);
        assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
    }

    #[test]
    fn a_first_member_is_added_with_or_without_a_comma() {
        let edit = |body: &[u8], open| {
            let mut e = vec![first_member(body, open, r#""k":1"#).unwrap()];
            apply(body, &mut e, false).unwrap()
        };
        assert_eq!(edit(br#"{"a":{}}"#, 5), br#"{"a":{"k":1}}"#);
        assert_eq!(edit(br#" {"a":1}"#, 1), br#" {"k":1,"a":1}"#);
        assert!(first_member(br#"[1]"#, 0, "x").is_none());
        assert_eq!(document_start(b"  {}"), 2);
    }

    #[test]
    fn splices_keep_or_change_the_length() {
        let body = br#"{"a":"secret-value","b":2}"#;
        let r = locate_all(body, &["/a"]).unwrap()["/a"].clone();
        let mut edits = vec![Splice {
            range: r.clone(),
            bytes: br#""[X]""#.to_vec(),
        }];
        let kept = apply(body, &mut edits, true).unwrap();
        assert_eq!(kept.len(), body.len());
        let v: serde_json::Value = serde_json::from_slice(&kept).unwrap();
        assert_eq!(v["a"], "[X]");
        assert_eq!(v["b"], 2);
        let free = apply(body, &mut edits, false).unwrap();
        assert_eq!(free, br#"{"a":"[X]","b":2}"#);
        let mut longer = vec![Splice {
            range: r,
            bytes: br#""a much longer replacement""#.to_vec(),
        }];
        assert_eq!(
            apply(body, &mut longer, true),
            Err(SpliceError::TooLong { over: 13 })
        );
    }

    #[test]
    fn truncated_or_odd_input_is_none_not_a_panic() {
        for body in [
            &b"{"[..],
            b"{\"a\":",
            b"[1,",
            b"\"abc",
            b"",
            b"{\"a\" 1}",
            b"}",
        ] {
            let _ = locate_all(body, &["/a"]);
            let _ = locate_all(body, &["/0"]);
            let _ = locate_all(body, &[""]);
        }
    }
}
