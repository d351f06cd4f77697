//! A server-sent events parser (the WHATWG `text/event-stream` format),
//! fed the body's bytes as they come, in pieces of any size.
//!
//! Written by hand: the format is a few rules, and what a load tester
//! needs of a parser is what the crates for it do not promise: bounds
//! (a hostile server's endless line or event costs an error, not the
//! run's memory), no allocation per line (the line and the event's data
//! are buffers reused for the whole stream), and a test of every rule.
//! Fuzzed by `crates/fuzzing`.

use std::time::Duration;

/// One event, borrowed from the parser until the next is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Its type: the `event` field, `message` by default.
    pub kind: &'a str,
    /// Its data: the `data` lines, joined by `\n`.
    pub data: &'a [u8],
    /// The last event id the stream set, as it stands after this event.
    pub id: &'a str,
}

/// The stream broke a bound: a line or an event's data longer than the
/// parser keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event stream line or event was over {0} bytes")]
pub struct TooLong(pub usize);

/// Parses an event stream.
#[derive(Debug)]
pub struct Parser {
    max: usize,
    line: Vec<u8>,
    data: Vec<u8>,
    /// Whether the event has had a `data` line: an event is dispatched
    /// only then (`data` alone, an empty one, counts).
    has_data: bool,
    kind: String,
    last_id: String,
    retry: Option<Duration>,
    /// The last byte was a CR, so a LF right after it ends nothing more.
    after_cr: bool,
    /// Bytes before the first line have been looked at (a BOM is dropped).
    started: bool,
}

impl Parser {
    /// A parser that keeps lines and events of at most `max` bytes.
    pub fn new(max: usize) -> Parser {
        Parser {
            max,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            kind: String::new(),
            last_id: String::new(),
            retry: None,
            after_cr: false,
            started: false,
        }
    }

    /// The id of the last event that set one: what a reconnection sends
    /// as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// The reconnection time the stream asked for (`retry:`), if any.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Starts a new connection's stream: what was half read is dropped;
    /// the last event id and the retry time stay.
    pub fn reset(&mut self) {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.kind.clear();
        self.after_cr = false;
        self.started = false;
    }

    /// Parses `bytes`, calling `on_event` for each event they complete.
    /// An error leaves the parser of no further use for this stream.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), TooLong> {
        // A byte order mark may come first, perhaps split between pieces:
        // its bytes wait in `line` until it is whole (and dropped) or is
        // not one (and they are the line's first bytes, none a newline).
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        while !self.started {
            let Some(&b) = bytes.first() else {
                return Ok(());
            };
            if BOM.get(self.line.len()) == Some(&b) {
                self.line.push(b);
                bytes = &bytes[1..];
                if self.line.len() == BOM.len() {
                    self.line.clear();
                    self.started = true;
                }
            } else {
                self.started = true;
            }
        }
        while !bytes.is_empty() {
            if self.after_cr && bytes[0] == b'\n' {
                bytes = &bytes[1..];
                self.after_cr = false;
                continue;
            }
            self.after_cr = false;
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.push(&bytes[..end])?;
                    self.after_cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    self.line_done(on_event)?;
                }
                None => {
                    self.push(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, part: &[u8]) -> Result<(), TooLong> {
        if self.line.len() + part.len() > self.max {
            return Err(TooLong(self.max));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// A whole line is in `line`: a blank line dispatches the event, a
    /// field line sets its field.
    fn line_done(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), TooLong> {
        let line = std::mem::take(&mut self.line);
        let result = self.field(&line, on_event);
        self.line = line;
        self.line.clear();
        result
    }

    fn field(&mut self, line: &[u8], on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), TooLong> {
        if line.is_empty() {
            if self.has_data {
                let kind = if self.kind.is_empty() {
                    "message"
                } else {
                    &self.kind
                };
                // The data's last line feed is not part of it.
                let data = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
                on_event(Event {
                    kind,
                    data,
                    id: &self.last_id,
                });
            }
            self.data.clear();
            self.has_data = false;
            self.kind.clear();
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let v = &line[colon + 1..];
                (&line[..colon], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max {
                    return Err(TooLong(self.max));
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => {
                self.kind.clear();
                self.kind.push_str(&String::from_utf8_lossy(value));
            }
            // An id with a NUL in it is ignored.
            b"id" if !value.contains(&0) => {
                self.last_id.clear();
                self.last_id.push_str(&String::from_utf8_lossy(value));
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Some(ms) = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `input` fed in pieces of `step` bytes, as
    /// `kind|data|id`.
    fn events(input: &[u8], step: usize) -> Vec<String> {
        let mut p = Parser::new(1024);
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            p.feed(piece, &mut |e| {
                out.push(format!(
                    "{}|{}|{}",
                    e.kind,
                    String::from_utf8_lossy(e.data),
                    e.id
                ))
            })
            .expect("within bounds");
        }
        out
    }

    #[test]
    fn the_format_rules_hold_whatever_the_pieces() {
        let input = b"\xEF\xBB\xBF: a comment\r\ndata: one\n\nevent: price\ndata:two\ndata:  lines\nid: 7\n\r\ndata\n\nid: 8\n\ndata: after id\r\rretry: 250\nretry: x\nid: a\0b\ndata: partial";
        let want = vec![
            "message|one|".to_string(),
            "price|two\n lines|7".to_string(),
            "message||7".to_string(),
            "message|after id|8".to_string(),
        ];
        for step in [1, 2, 3, 5, 7, 64, input.len()] {
            assert_eq!(events(input, step), want, "in pieces of {step}");
        }
        let mut p = Parser::new(1024);
        p.feed(input, &mut |_| {}).expect("within bounds");
        // The last id set (the one with a NUL was ignored) and the retry
        // time; the unfinished event is not dispatched.
        assert_eq!(p.last_event_id(), "8");
        assert_eq!(p.retry(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn an_id_alone_sets_the_last_id_and_dispatches_nothing() {
        assert!(events(b"id: 3\n\n", 1).is_empty());
    }

    #[test]
    fn endless_lines_and_events_are_refused_not_kept() {
        let mut p = Parser::new(16);
        assert_eq!(p.feed(&[b'x'; 17], &mut |_| {}), Err(TooLong(16)));
        let mut p = Parser::new(16);
        let many = b"data: 0123456789\n".repeat(3);
        assert_eq!(p.feed(&many, &mut |_| {}), Err(TooLong(16)));
    }

    #[test]
    fn a_reset_keeps_the_last_id_for_the_next_connection() {
        let mut p = Parser::new(64);
        p.feed(b"id: 41\ndata: x\n\ndata: half", &mut |_| {})
            .expect("within bounds");
        p.reset();
        let mut got = Vec::new();
        p.feed(b"data: y\n\n", &mut |e| got.push(e.data.to_vec()))
            .expect("within bounds");
        assert_eq!(got, vec![b"y".to_vec()]);
        assert_eq!(p.last_event_id(), "41");
    }
}
