//! Recordings made by `throng record`: the format, and a reader that
//! takes a damaged file as far as it can be read.
//!
//! A recording is JSON lines (gzip-compressed if its writer was asked):
//! a [`Head`] first, naming the schema ([`SCHEMA`]), then one
//! [`Exchange`] per request and response that passed through the
//! recorder, written when the response ended (so in order of completion,
//! not of arrival: readers reorder by [`Exchange::at_us`]), and an
//! [`End`] line when the recorder stopped cleanly. A recorder that was
//! killed leaves no end line, and perhaps half a last line: the reader
//! returns everything before it and says the file is truncated.
//!
//! Secrets are never written in clear: a masked value is replaced by a
//! placeholder, `__masked_N__` ([`placeholder`]), the same `N` for the
//! same value throughout the recording, so a token that one request got
//! and later ones sent back still reads as one token.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// The schema this throng writes and reads.
pub const SCHEMA: &str = "throng.recording/v1";

/// Every version of the schema starts with this.
const SCHEMA_FAMILY: &str = "throng.recording/";

/// The longest line read; a longer one is skipped as damaged. Bodies are
/// capped when recorded, so only a corrupted file has longer lines.
pub const MAX_LINE: usize = 16 << 20;

/// The first line: what was recorded, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// [`SCHEMA`].
    pub schema: String,
    /// When the recorder started, RFC 3339 in UTC; each exchange's time
    /// counts from here.
    pub started: String,
    /// The service the recorder forwarded to.
    pub upstream: String,
    /// Request bodies longer than this many bytes were cut to it.
    pub body_cap: u64,
    /// Headers whose values were masked (lowercase names).
    pub masked_headers: Vec<String>,
    /// Query, form and JSON keys whose values were masked: a key is
    /// masked if its lowercase name contains one of these.
    pub masked_fields: Vec<String>,
    /// Keys kept in clear although they matched `masked_fields`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_fields: Vec<String>,
    /// JSONPaths whose values were masked in JSON bodies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_json: Vec<String>,
    /// The header that named each request's session, if one was given;
    /// otherwise sessions follow cookies and connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_header: Option<String>,
}

/// One request and its response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// When the request's head arrived, in µs since [`Head::started`].
    pub at_us: u64,
    /// Its session, numbered by the recorder from 1.
    pub session: u64,
    /// The client's address (IP only).
    pub client: String,
    /// The method.
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    pub version: String,
    /// The request's headers in order, without `Host` and the hop-by-hop
    /// ones; masked values are placeholders.
    pub headers: Vec<(String, String)>,
    /// The request body (up to [`Head::body_cap`]), when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The request body in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_b64: Option<String>,
    /// The body's whole size in bytes, cut or not.
    pub body_size: u64,
    /// Whether the body was longer than the cap and cut.
    #[serde(default, skip_serializing_if = "is_false")]
    pub body_cut: bool,
    /// The upstream's status; 0 when it gave none (see `error`).
    pub status: u16,
    /// The response's headers in order, hop-by-hop ones left out and
    /// masked values (`Set-Cookie`) as placeholders.
    pub response_headers: Vec<(String, String)>,
    /// The response body's size in bytes, as it was passed on.
    pub response_size: u64,
    /// From the request's head to the response's head, µs.
    pub ttfb_us: u64,
    /// From the request's head to the response's end, µs.
    pub duration_us: u64,
    /// Why the upstream gave no response, or why it ended early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A WebSocket (or other) upgrade: the connection was passed through
    /// after this response, and its traffic is not recorded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub upgraded: bool,
    /// The exchange's number, from 1, in the order exchanges were written.
    #[serde(default)]
    pub seq: u64,
    /// Values this request sent that an earlier response of its session
    /// gave: a replay takes them from its own responses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<Use>,
}

/// A value a request sent back, and the response it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    /// The value as it is written in this request (a placeholder, if it
    /// was masked here): a replay replaces it with its own.
    pub text: String,
    /// The [`Exchange::seq`] of the response that gave it.
    pub from: u64,
    /// How to take the value from that response.
    pub rule: Rule,
}

/// How a value is taken from a response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The value at this JSONPath of a JSON body.
    Json(String),
    /// This header's value.
    Header(String),
    /// The last path segment of the `Location` header.
    Location,
    /// The `value` of the HTML form field with this name.
    Input(String),
    /// The last path segment of the `nth` link (from 0) of an HTML page
    /// whose path is under `parent` (`href="/funds/f3a9"`: parent
    /// `/funds`).
    Link {
        /// The links' common parent path.
        parent: String,
        /// Which of them.
        nth: usize,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The last line, written when the recorder stopped cleanly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// The totals.
    pub end: Totals,
}

/// What a recorder did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Exchanges written.
    pub exchanges: u64,
    /// Sessions they belong to.
    pub sessions: u64,
    /// Values replaced by placeholders.
    pub masked: u64,
    /// Distinct values among them (placeholders used).
    pub placeholders: u64,
    /// Request bodies cut to the cap.
    pub bodies_cut: u64,
    /// Exchanges forwarded but not written: the writer could not keep up.
    pub not_recorded: u64,
    /// Exchanges the upstream gave no response to.
    pub upstream_errors: u64,
    /// Exchanges whose client went away before the upstream answered.
    #[serde(default)]
    pub client_gone: u64,
}

/// The placeholder written for the `n`th masked value.
pub fn placeholder(n: u64) -> String {
    format!("__masked_{n}__")
}

/// The placeholders in `text`: their numbers and byte ranges.
pub fn placeholders(text: &str) -> Vec<(u64, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("__masked_") {
        let start = from + i;
        let digits_at = start + "__masked_".len();
        let digits = text[digits_at..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let end = digits_at + digits;
        if digits > 0 && text[end..].starts_with("__") {
            if let Ok(n) = text[digits_at..end].parse() {
                found.push((n, start..end + 2));
                from = end + 2;
                continue;
            }
        }
        from = digits_at;
    }
    found
}

/// Why a file cannot be read as a recording at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// The file is empty.
    #[error("the file is empty: a recording starts with a line naming its schema ({SCHEMA})")]
    Empty,
    /// The first line is not a recording's head.
    #[error("this is not a throng recording: its first line is not a {SCHEMA} head ({0})")]
    NotARecording(String),
    /// A version this throng does not read.
    #[error(
        "the recording is {0}, which this throng cannot read (it reads {SCHEMA}); \
         use the throng that recorded it, or a newer one"
    )]
    Version(String),
    /// Reading failed before the head.
    #[error("cannot read the recording: {0}")]
    Io(String),
}

/// Reads a recording's exchanges one by one, skipping lines it cannot
/// read (counted, the first few kept to show).
pub struct Reader<R> {
    input: R,
    head: Head,
    line: u64,
    buf: Vec<u8>,
    damaged: u64,
    first_damaged: Vec<(u64, String)>,
    end: Option<Totals>,
    truncated: Option<String>,
    done: bool,
}

/// How many damaged lines are kept to show.
pub const SHOWN_DAMAGED: usize = 5;

impl<R: BufRead> Reader<R> {
    /// Reads the head; the error says why the file is no recording.
    pub fn open(mut input: R) -> Result<Reader<R>, OpenError> {
        let mut buf = Vec::new();
        let mut line = 0;
        let head = loop {
            buf.clear();
            match read_line(&mut input, &mut buf, MAX_LINE) {
                Ok(Line::Eof) => return Err(OpenError::Empty),
                Ok(Line::TooLong) => {
                    return Err(OpenError::NotARecording(format!(
                        "its first line is over {} MiB",
                        MAX_LINE >> 20
                    )))
                }
                Ok(Line::Read) => {}
                Err(e) => return Err(OpenError::Io(e.to_string())),
            }
            line += 1;
            if !buf.iter().all(u8::is_ascii_whitespace) {
                break parse_head(&buf)?;
            }
        };
        Ok(Reader {
            input,
            head,
            line,
            buf,
            damaged: 0,
            first_damaged: Vec::new(),
            end: None,
            truncated: None,
            done: false,
        })
    }

    /// The head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Lines that could not be read, and were skipped.
    pub fn damaged(&self) -> u64 {
        self.damaged
    }

    /// The first few damaged lines: line number and what is wrong.
    pub fn first_damaged(&self) -> &[(u64, String)] {
        &self.first_damaged
    }

    /// The end line's totals, once read.
    pub fn end(&self) -> Option<&Totals> {
        self.end.as_ref()
    }

    /// Why the file stopped before its end line, once it has: the
    /// recorder was killed, or the file was cut or is corrupt from there.
    pub fn truncated(&self) -> Option<&str> {
        self.truncated.as_deref()
    }

    fn damage(&mut self, what: String) {
        self.damaged += 1;
        if self.first_damaged.len() < SHOWN_DAMAGED {
            self.first_damaged.push((self.line, what));
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Exchange;

    fn next(&mut self) -> Option<Exchange> {
        while !self.done {
            self.buf.clear();
            let read = read_line(&mut self.input, &mut self.buf, MAX_LINE);
            self.line += 1;
            match read {
                Ok(Line::Eof) => {
                    self.done = true;
                    if self.end.is_none() {
                        self.truncated =
                            Some("the file ends without the recorder's end line".into());
                    }
                }
                Ok(Line::TooLong) => self.damage(format!("over {} MiB long", MAX_LINE >> 20)),
                Err(e) => {
                    // A gzip stream cut short, or bytes that are no file.
                    self.done = true;
                    self.truncated = Some(format!("reading stopped at line {}: {e}", self.line));
                }
                Ok(Line::Read) => {
                    let text = &self.buf;
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if self.end.is_some() {
                        self.damage("a line after the end line".into());
                        continue;
                    }
                    if text.starts_with(b"{\"end\"") {
                        match serde_json::from_slice::<End>(text) {
                            Ok(end) => self.end = Some(end.end),
                            Err(e) => self.damage(format!("a damaged end line: {e}")),
                        }
                        continue;
                    }
                    match parse_exchange(text) {
                        Ok(exchange) => return Some(exchange),
                        Err(e) => {
                            // A last line cut midway is truncation, not
                            // damage: the recorder was killed writing it.
                            if self.buf.last() != Some(&b'\n') {
                                self.done = true;
                                self.truncated = Some(format!(
                                    "line {}, the last, is cut short: {e}",
                                    self.line
                                ));
                            } else {
                                self.damage(e);
                            }
                        }
                    }
                }
            }
        }
        None
    }
}

fn parse_head(text: &[u8]) -> Result<Head, OpenError> {
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| OpenError::NotARecording(format!("not JSON: {e}")))?;
    let schema = value
        .get("schema")
        .and_then(|s| s.as_str())
        .ok_or_else(|| OpenError::NotARecording("it has no \"schema\" field".into()))?;
    if schema != SCHEMA {
        return Err(if schema.starts_with(SCHEMA_FAMILY) {
            OpenError::Version(schema.to_string())
        } else {
            OpenError::NotARecording(format!("its schema is {schema:?}"))
        });
    }
    serde_json::from_value(value).map_err(|e| OpenError::NotARecording(e.to_string()))
}

/// An exchange line, checked as far as a replay relies on it.
fn parse_exchange(text: &[u8]) -> Result<Exchange, String> {
    let e: Exchange = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if http::Method::from_bytes(e.method.as_bytes()).is_err() {
        return Err(format!("{:?} is not a method", e.method));
    }
    if !e.path.starts_with('/') {
        return Err(format!("the path {:?} does not start with /", e.path));
    }
    if e.status > 999 {
        return Err(format!("{} is not a status", e.status));
    }
    // Ten years of recording, in µs: later times are corruption, and
    // would overflow the replay's arithmetic.
    if e.at_us > 10 * 366 * 86_400 * 1_000_000 {
        return Err(format!("at_us {} is beyond any recording", e.at_us));
    }
    Ok(e)
}

enum Line {
    Read,
    Eof,
    TooLong,
}

/// Reads up to and including the next `\n` into `buf`, at most `max`
/// bytes kept; a longer line is consumed and reported, not kept.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => Line::Eof,
                (true, true) => Line::TooLong,
                (true, false) => Line::Read,
            });
        }
        any = true;
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let n = chunk.len();
        input.consume(n);
        if found {
            return Ok(if too_long { Line::TooLong } else { Line::Read });
        }
    }
}
