//! The HTTP/1.1 client: one request at a time per keep-alive connection.
//!
//! Written on httparse rather than on hyper's client because this is the
//! per-request hot path of a load generator: the request is serialized once
//! per run, responses are parsed in place in a buffer the connection
//! reuses, bodies are counted and discarded as they stream, and nothing is
//! allocated or handed between tasks per request. hyper's client (a request
//! and header map per call, a channel hop to the connection task) costs
//! several times the CPU of wrk per request; this path is what lets throng
//! match it. HTTP/2 is throng's own client too (`h2/`).

use std::io;
use std::mem::MaybeUninit;

use stats::{ErrorKind, Phases};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::{Failure, Stage};
use crate::net::Caller;
use crate::net::{Dialer, Stream};
use crate::request::{Parts, Wire};
use crate::transport::{Capture, Connection, Connector, Response};

/// Largest response head (status line and headers) accepted.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 100;

/// Opens HTTP/1.1 connections.
pub(crate) struct H1Connector {
    /// Where to connect.
    pub(crate) dialer: Dialer,
}

impl Connector for H1Connector {
    type Conn = H1Conn;

    async fn connect(&self, phases: &mut Phases, caller: Caller<'_>) -> Result<H1Conn, Failure> {
        let io = self.dialer.dial(phases, caller).await?;
        Ok(H1Conn {
            io,
            buf: Vec::with_capacity(16 * 1024),
            keep_alive: true,
            used: false,
            pace: None,
        })
    }

    fn elsewhere(&self, dialer: Dialer) -> Option<H1Connector> {
        Some(H1Connector { dialer })
    }
}

/// An HTTP/1.1 request: the exact bytes to write.
#[derive(Debug, Default, Clone)]
pub(crate) struct H1Request {
    bytes: Vec<u8>,
    /// Whether the response has no body whatever its headers say.
    head: bool,
}

impl H1Request {
    /// Request line, headers and body.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Wire for H1Request {
    /// The request line; `Host` (unless the headers name one) and
    /// `User-Agent`; the headers in order; `Cookie`; `Content-Length`
    /// when the length is said; the body.
    fn render(&mut self, p: &Parts<'_>) -> Result<(), Failure> {
        let out = &mut self.bytes;
        out.clear();
        out.extend_from_slice(p.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(p.path);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !p.headers.has("host") {
            header_line(out, "Host", p.authority.as_bytes());
        }
        if let Some(agent) = p.agent {
            header_line(out, "User-Agent", agent.as_bytes());
        }
        for (name, value) in p.headers.iter() {
            header_line(out, name, value);
        }
        if let Some(cookie) = p.cookie.filter(|c| !c.is_empty()) {
            header_line(out, "Cookie", cookie.as_bytes());
        }
        if p.length {
            let mut digits = itoa::Buffer::new();
            header_line(
                out,
                "Content-Length",
                digits.format(p.body.len()).as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(p.body);
        self.head = p.head();
        Ok(())
    }
}

fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One keep-alive connection.
pub(crate) struct H1Conn {
    io: Stream,
    buf: Vec<u8>,
    keep_alive: bool,
    used: bool,
    /// A slow client's pacing of this response.
    pace: Option<Pace>,
}

/// Reads at most `rate` bytes per second: small reads, each followed by a
/// pause until the bytes so far are due, so a large body backs up into
/// the server's socket as it would behind a slow link.
struct Pace {
    rate: u64,
    start: Instant,
    bytes: u64,
}

/// How the body's end is known.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn read_failure(err: io::Error) -> Failure {
    let kind = match err.kind() {
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        io::ErrorKind::InvalidData => ErrorKind::Protocol,
        _ => ErrorKind::Reset,
    };
    Failure::io(kind, err)
}

impl H1Conn {
    /// Reads more bytes into the buffer; 0 means the peer closed.
    async fn fill(&mut self) -> Result<usize, Failure> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let Some(pace) = &mut self.pace else {
            return self.io.read_buf(&mut self.buf).await.map_err(read_failure);
        };
        // A twentieth of a second's worth at a time (between 256 B and 16 KiB).
        let chunk = (pace.rate / 20).clamp(256, 16 * 1024) as usize;
        let mut limited = (&mut self.io).take(chunk as u64);
        let n = limited
            .read_buf(&mut self.buf)
            .await
            .map_err(read_failure)?;
        pace.bytes += n as u64;
        let due =
            pace.start + std::time::Duration::from_secs_f64(pace.bytes as f64 / pace.rate as f64);
        tokio::time::sleep_until(due).await;
        Ok(n)
    }
    /// Reads the response head: status line and headers, skipping 1xx
    /// interim responses. Returns the status, the head's length in the
    /// buffer and how the body ends. A failure before any byte came back
    /// goes through `unanswered`.
    async fn read_head(
        &mut self,
        head: bool,
        t0: Instant,
        phases: &mut Phases,
        capture: &mut Capture,
        unanswered: impl Fn(Failure) -> Failure,
    ) -> Result<(u16, usize, Framing), Failure> {
        loop {
            let got = self.fill().await;
            let nothing_back = self.buf.is_empty() && phases.ttfb.is_none();
            let at = |f| if nothing_back { unanswered(f) } else { f };
            if got.as_ref().is_ok_and(|n| *n == 0) {
                return Err(at(Failure::new(ErrorKind::Reset)));
            }
            got.map_err(at)?;
            if phases.ttfb.is_none() {
                phases.ttfb = Some(t0.elapsed());
            }
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            match parse_head(&mut resp, &self.buf, &mut headers) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    if (100..200).contains(&status) && status != 101 {
                        self.buf.drain(..len);
                        continue;
                    }
                    capture.status(status);
                    let (mut framing, close) = framing_of(&resp, capture)?;
                    if head || status == 204 || status == 304 {
                        framing = Framing::None;
                    }
                    self.keep_alive = !close && !matches!(framing, Framing::UntilClose);
                    return Ok((status, len, framing));
                }
                Ok(httparse::Status::Partial) if self.buf.len() <= MAX_HEAD => continue,
                Ok(httparse::Status::Partial) | Err(_) => {
                    self.keep_alive = false;
                    return Err(Failure::new(ErrorKind::Protocol));
                }
            }
        }
    }

    /// Reads the body, which starts the buffer: counted and discarded as
    /// it arrives, up to the limit. Returns its length.
    async fn read_body(&mut self, framing: Framing, capture: &mut Capture) -> Result<u64, Failure> {
        let too_large = |h1: &mut Self| {
            h1.keep_alive = false;
            Failure::new(ErrorKind::BodyTooLarge)
        };
        match framing {
            Framing::None => Ok(0),
            Framing::Length(total) if capture.over_limit(total) => Err(too_large(self)),
            Framing::Length(total) => {
                let mut got = 0u64;
                loop {
                    let take = (total - got).min(self.buf.len() as u64) as usize;
                    capture.body_data(&self.buf[..take]);
                    got += take as u64;
                    if take < self.buf.len() {
                        // Bytes beyond the body: the server is not speaking
                        // HTTP/1.1 one request at a time; do not reuse.
                        self.keep_alive = false;
                    }
                    self.buf.clear();
                    if got >= total {
                        return Ok(total);
                    }
                    if self.fill().await? == 0 {
                        return Err(Failure::new(ErrorKind::Reset));
                    }
                }
            }
            Framing::Chunked => {
                let mut dechunk = Chunked::default();
                let mut body = 0u64;
                loop {
                    let (consumed, data) = dechunk
                        .feed(&self.buf, |d| capture.body_data(d))
                        .map_err(|_| {
                            self.keep_alive = false;
                            Failure::new(ErrorKind::Protocol)
                        })?;
                    body += data;
                    if capture.over_limit(body) {
                        return Err(too_large(self));
                    }
                    self.buf.drain(..consumed);
                    if dechunk.done() {
                        if !self.buf.is_empty() {
                            self.keep_alive = false;
                        }
                        return Ok(body);
                    }
                    if self.fill().await? == 0 {
                        return Err(Failure::new(ErrorKind::Reset));
                    }
                }
            }
            Framing::UntilClose => {
                let mut got = 0u64;
                loop {
                    capture.body_data(&self.buf);
                    got += self.buf.len() as u64;
                    self.buf.clear();
                    if capture.over_limit(got) {
                        return Err(too_large(self));
                    }
                    if self.fill().await? == 0 {
                        return Ok(got);
                    }
                }
            }
        }
    }
}

/// Parses a response's head from `buf` into `resp`, its headers into
/// `headers` left uninitialized until parsed (an array of initialized
/// empty headers cost ~100 stores per response).
fn parse_head<'h, 'b>(
    resp: &mut httparse::Response<'h, 'b>,
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> httparse::Result<usize> {
    httparse::ParserConfig::default().parse_response_with_uninit_headers(resp, buf, headers)
}

/// The headers [`framing_of`] reads.
const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// How a response's body ends, and whether it closes the connection,
/// from its headers (each kept as `capture` asks).
fn framing_of(
    resp: &httparse::Response<'_, '_>,
    capture: &mut Capture,
) -> Result<(Framing, bool), Failure> {
    let mut framing = Framing::UntilClose;
    let mut close = resp.version == Some(0);
    let capturing = capture.wants_headers();
    for h in resp.headers.iter() {
        if capturing {
            capture.header(h.name, h.value);
        }
        // Most names are none of the three: told by length first.
        if !FRAMING.iter().any(|n| n.len() == h.name.len()) {
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Failure::new(ErrorKind::Protocol))?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.ends_with(b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    Ok((framing, close))
}

/// How far a request got on a connection that failed it: on a reused
/// connection, a failure before any byte of a response is told apart (the
/// request did not leave, `NotSent`, or it left and nothing came back,
/// `Unanswered`; see `Stage`).
fn lost(f: Failure, reused: bool, written: usize) -> Failure {
    match (reused, written) {
        (false, _) => f,
        (true, 0) => f.at(Stage::NotSent),
        (true, _) => f.at(Stage::Unanswered),
    }
}

impl Connection for H1Conn {
    type Request = H1Request;

    async fn exchange(
        &mut self,
        req: &H1Request,
        phases: &mut Phases,
        capture: &mut Capture,
    ) -> Result<Response, Failure> {
        let reused = self.used;
        self.used = true;
        let t0 = Instant::now();
        self.pace = capture.download_cap.map(|rate| Pace {
            rate: rate.max(1),
            start: t0,
            bytes: 0,
        });
        let mut written = 0;
        let bytes = req.bytes();
        while written < bytes.len() {
            match self.io.write(&bytes[written..]).await {
                Ok(0) => return Err(lost(Failure::new(ErrorKind::Reset), reused, written)),
                Ok(n) => written += n,
                Err(e) => return Err(lost(read_failure(e), reused, written)),
            }
        }
        self.io
            .flush()
            .await
            .map_err(|e| lost(read_failure(e), reused, written))?;
        self.buf.clear();
        let unanswered = |f| lost(f, reused, written);
        let (status, head_len, framing) = self
            .read_head(req.head, t0, phases, capture, unanswered)
            .await?;
        self.buf.drain(..head_len);
        let body_bytes = self.read_body(framing, capture).await?;
        Ok(Response { status, body_bytes })
    }

    fn reusable(&self) -> bool {
        self.keep_alive
    }

    fn closed_while_idle(&mut self) -> bool {
        self.used && self.io.closed_while_idle()
    }
}

/// What the fuzz target `h1_response` checks (`fuzzing::h1_response`): a
/// response as a server might send it, its head parsed and its framing
/// read as a request's is, its body (when chunked) decoded whole and in
/// pieces of `piece` bytes. Panics when a bound or an agreement fails;
/// bad input is only an error.
#[doc(hidden)]
pub fn fuzz_response(data: &[u8], piece: usize) {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let Ok(httparse::Status::Complete(len)) = parse_head(&mut resp, data, &mut headers) else {
        return;
    };
    let mut capture = Capture {
        follow: true,
        cookies: true,
        headers: true,
        body: true,
        max_body: 64,
        ..Capture::default()
    };
    capture.status(resp.code.unwrap_or(0));
    let Ok((framing, _close)) = framing_of(&resp, &mut capture) else {
        return;
    };
    let body = &data[len..];
    if !matches!(framing, Framing::Chunked) {
        return;
    }
    // Whole, then in pieces: the same bytes consumed, the same data.
    let decode = |piece: usize| {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut consumed = 0;
        for part in body.chunks(piece.max(1)) {
            let Ok((used, data)) = c.feed(part, |d| out.extend_from_slice(d)) else {
                return None;
            };
            assert!(
                used <= part.len() && data <= used as u64,
                "consumed more than given"
            );
            consumed += used;
            if c.done() {
                break;
            }
        }
        Some((consumed, out, c.done()))
    };
    let whole = decode(body.len());
    let pieces = decode(piece);
    assert_eq!(whole, pieces, "the body differs when it arrives in pieces");
    capture.body_data(body);
    assert!(capture.body_bytes.len() <= 64, "kept past max_body");
}

/// An incremental decoder of `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: ChunkState,
    size: u64,
    digits: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    FinalLf,
    Done,
}

/// The chunked framing is broken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadChunk;

impl Chunked {
    /// Whether the last chunk and trailers have been read.
    pub(crate) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes framing and data from `input`, handing each run of body
    /// data to `on_data`; returns the bytes consumed and how many of them
    /// were body data. Stops at the end of the body.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<(usize, u64), BadChunk> {
        use ChunkState::*;
        let mut i = 0;
        let mut data = 0u64;
        while i < input.len() && self.state != Done {
            if self.state == Data {
                let take = (self.size).min((input.len() - i) as u64);
                on_data(&input[i..i + take as usize]);
                i += take as usize;
                data += take;
                self.size -= take;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let digit = (b as char).to_digit(16).ok_or(BadChunk)? as u64;
                    self.digits += 1;
                    if self.digits > 15 {
                        return Err(BadChunk);
                    }
                    self.size = self.size * 16 + digit;
                    Size
                }
                (Size, b';' | b' ' | b'\t') if self.digits > 0 => Extension,
                (Size, b'\r') if self.digits > 0 => SizeLf,
                (Extension, b'\r') => SizeLf,
                (Extension, _) => Extension,
                (SizeLf, b'\n') => {
                    self.digits = 0;
                    if self.size == 0 {
                        TrailerStart
                    } else {
                        Data
                    }
                }
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Size,
                (TrailerStart, b'\r') => FinalLf,
                (TrailerStart, _) | (Trailer, _) if b != b'\r' => Trailer,
                (Trailer, b'\r') => TrailerLf,
                (TrailerLf, b'\n') => TrailerStart,
                (FinalLf, b'\n') => Done,
                _ => return Err(BadChunk),
            };
        }
        Ok((i, data))
    }
}
