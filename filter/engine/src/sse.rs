//! Incremental Server-Sent Events parser.
//!
//! [`SseParser::feed`] takes the stream in whatever chunks the network delivers — one byte at a
//! time, an event split anywhere, `\r\n` split across chunks — and yields each complete event
//! once, identically for every chunking. It follows the WHATWG event-stream rules: lines end with
//! CR, LF or CRLF; `:` starts a comment; `data:` lines join with `\n`; one leading space after the
//! colon is dropped; a blank line dispatches the event; an event with no data is not dispatched.
//! One deliberate leniency: [`SseParser::finish`] dispatches a last event that lacks its closing
//! blank line, because usage often sits in exactly that event. Memory is bounded by the longest
//! event ([`SseParser::with_limit`]); an event above the limit is dropped and counted, never
//! buffered without bound.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, empty when absent (the WHATWG default type is `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` field seen in this event, if any.
    pub id: Option<String>,
    /// Stream offset just past the blank line (or end of stream) that ended this event.
    pub end_offset: u64,
}

/// Default bound on one event's size.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Incremental parser; see the module docs.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    line_started: bool,
    pending_cr: bool,
    event: SseEvent,
    has_data: bool,
    event_bytes: usize,
    oversized: bool,
    max_event_bytes: usize,
    offset: u64,
    dropped: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that drops (and counts) any event larger than `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        SseParser {
            line: Vec::new(),
            line_started: false,
            pending_cr: false,
            event: SseEvent::default(),
            has_data: false,
            event_bytes: 0,
            oversized: false,
            max_event_bytes: max_event_bytes.max(1),
            offset: 0,
            dropped: 0,
        }
    }

    /// Events dropped because they exceeded the size limit.
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// Total bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds the next chunk, appending every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.pending_cr {
                self.pending_cr = false;
                if rest.first() == Some(&b'\n') {
                    self.offset += 1;
                    rest = rest.get(1..).unwrap_or_default();
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    let (head, tail) = rest.split_at(pos);
                    self.push_line_bytes(head);
                    let terminator = tail.first().copied().unwrap_or(b'\n');
                    self.offset += pos as u64 + 1;
                    rest = tail.get(1..).unwrap_or_default();
                    if terminator == b'\r' {
                        self.pending_cr = true;
                    }
                    self.end_line(out);
                }
                None => {
                    self.push_line_bytes(rest);
                    self.offset += rest.len() as u64;
                    rest = &[];
                }
            }
        }
    }

    /// Ends the stream: dispatches a final event that lacked its blank line.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if self.line_started {
            self.end_line(out);
        }
        self.pending_cr = false;
        self.dispatch(out);
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) {
        self.line_started |= !bytes.is_empty();
        self.event_bytes += bytes.len();
        if self.event_bytes > self.max_event_bytes {
            self.oversized = true;
            self.line.clear();
            return;
        }
        if !self.oversized {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if !std::mem::replace(&mut self.line_started, false) {
            self.dispatch(out);
            return;
        }
        if !self.oversized {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line);
            self.line = line;
        }
        self.line.clear();
        self.event_bytes += 1;
    }

    fn process_line(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (f, v) = line.split_at(colon);
                let v = v.get(1..).unwrap_or_default();
                (f, v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event.event = String::from_utf8_lossy(value).into_owned(),
            b"id" if !value.contains(&0) => {
                self.event.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let mut event = std::mem::take(&mut self.event);
        let had_data = std::mem::replace(&mut self.has_data, false);
        let oversized = std::mem::replace(&mut self.oversized, false);
        self.event_bytes = 0;
        if oversized {
            self.dropped += 1;
            return;
        }
        if had_data {
            event.end_offset = self.offset;
            out.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn basic_events_comments_and_multiline_data() {
        let s = b": keep-alive\n\nevent: message_start\ndata: {\"a\":1}\n\ndata: line one\ndata:line two\nid: 7\n\n";
        let ev = parse_all(&[s]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "message_start");
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(ev[1].data, "line one\nline two");
        assert_eq!(ev[1].id.as_deref(), Some("7"));
        assert_eq!(ev[1].end_offset, s.len() as u64);
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let ev = parse_all(&[b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]);
        let data: Vec<_> = ev.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b", "c"]);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let ev = parse_all(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"]);
        let data: Vec<_> = ev.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b"]);
    }

    #[test]
    fn final_event_without_blank_line_is_dispatched_at_finish() {
        let ev = parse_all(&[b"data: [DONE]"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "[DONE]");
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(parse_all(&[b"event: ping\n\n: comment\n\n"]).is_empty());
    }

    #[test]
    fn oversized_event_is_dropped_and_counted() {
        let mut p = SseParser::with_limit(16);
        let mut out = Vec::new();
        p.feed(b"data: 0123456789abcdefghij\n\ndata: ok\n\n", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "ok");
        assert_eq!(p.dropped_events(), 1);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let ev = parse_all(&[b"data: \xff\xfe ok\n\n"]);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].data.ends_with(" ok"));
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(
            cuts in proptest::collection::vec(0usize..400, 0..40),
        ) {
            let stream: &[u8] = b"event: a\r\ndata: {\"x\": \"h\xc3\xa9llo\"}\r\n\r\n: c\ndata: 1\ndata: 2\n\ndata: t\r\rdata: [DONE]\n\n";
            let whole = parse_all(&[stream]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts { chunks.push(&stream[last..c]); last = c; }
            chunks.push(&stream[last..]);
            prop_assert_eq!(parse_all(&chunks), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), split in 0usize..2000) {
            let split = split.min(bytes.len());
            let (a, b) = bytes.split_at(split);
            let mut p = SseParser::with_limit(256);
            let mut out = Vec::new();
            p.feed(a, &mut out);
            p.feed(b, &mut out);
            p.finish(&mut out);
            prop_assert_eq!(p.offset(), bytes.len() as u64);
        }
    }
}
