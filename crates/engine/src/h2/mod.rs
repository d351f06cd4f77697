//! The HTTP/2 client (RFC 9113), framed by hand: a few connections per
//! worker (one unless `clients.http2_connections` says more), requests
//! multiplexed on them (h2c prior knowledge, or ALPN `h2` over TLS).
//! Sessions take the connections in turn; each is dialed once, by the
//! first session that needs it, while the others wait for it (so 100
//! users starting at once open one connection, not 100). A user's request
//! is one stream; with `clients.http2_streams`, at most that many are open
//! at once on a connection, and the rest wait their turn (as a browser's
//! requests wait past a server's stream limit), their wait in their
//! latency. The server's own `SETTINGS_MAX_CONCURRENT_STREAMS` is waited
//! for the same way.
//!
//! By hand rather than on the h2 crate because this is the hot path and
//! the worker is one thread: the h2 crate shares each connection's state
//! behind a lock and reference counts, and decodes every response header
//! into a `HeaderMap`; it was ~29% of the CPU of a request against nginx,
//! and throng sat at h2load's CPU per request (bench/README.md, case
//! (j)). Here a connection's state is a `RefCell` its users and its one
//! driving task share; a request's header block is encoded once, when the
//! request is rendered, and sent as the same bytes every time; a
//! response's header block is walked in place ([`crate::hpack`]) for
//! `:status` and for the headers the session keeps (a check's, the cookie
//! jar's, a redirect's `Location`), the rest never decoded.
//!
//! What a server sends is hostile until parsed: frames are bounded by the
//! size we allow, a header block by the response head's cap, and any
//! violation ends the connection as a protocol error (each request on it
//! failed and counted), never the run.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use stats::{ErrorKind, Phases};
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use crate::error::{Failure, Stage};
use crate::hpack;
use crate::net::{Caller, Dialer, Stream as Io};
use crate::request::{Parts, Wire};
use crate::transport::{Capture, Connection, Connector, Response};

/// Stream flow-control window we give the server: as hyper's client sets
/// it, so that a large response is not held back by the default 64 KiB.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Connection flow-control window we give the server.
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
/// The largest frame we accept (the protocol's default, which we keep).
const MAX_FRAME: usize = 16_384;
/// The HPACK dynamic table we allow the server (the default).
const TABLE_SIZE: usize = 4096;
/// The highest stream id a client may use.
const LAST_STREAM_ID: u32 = (1 << 31) - 1;
/// At most this many body queues kept for new streams per connection.
const SPARE_BODIES: usize = 64;
/// How much is read from the socket at a time, at most.
const READ_CHUNK: usize = 64 * 1024;

// Frame types (RFC 9113 section 6).
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;
// Error codes.
const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const CANCEL: u32 = 0x8;
const REFUSED_STREAM: u32 = 0x7;

/// Writes a frame's 9-byte header onto `out`.
fn frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & LAST_STREAM_ID).to_be_bytes());
}

/// A hasher for stream ids (odd integers, one per request): their low
/// bits spread well enough by a multiply.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Ids<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// What a stream keeps of its response besides the status.
#[derive(Debug, Clone, Copy, Default)]
struct Wants {
    headers: bool,
    cookies: bool,
    location: bool,
}

/// One request's stream, as its user and the driver share it.
#[derive(Default)]
struct StreamState {
    wants: Wants,
    /// The final status, once its head has come (1xx heads are skipped).
    status: Option<u16>,
    /// The kept headers.
    fields: Vec<(String, Vec<u8>)>,
    /// Body bytes received and not yet read by the user.
    body: VecDeque<Bytes>,
    /// Bytes of `body` (for flow control).
    buffered: usize,
    /// Bytes received on it and read (or padding) not yet given back to
    /// the server's window for it.
    unacked: usize,
    /// The server ended the stream.
    ended: bool,
    /// The server reset it. After a complete response this is RFC 9113's
    /// "stop sending the request body" (section 8.1), not a failure.
    reset: bool,
    /// The request's last frame (END_STREAM) is queued.
    sent_all: bool,
    /// The request was a HEAD: its response has no body whatever its
    /// `content-length` says.
    head_request: bool,
    /// The body's length as the final head's `content-length` said.
    length: Option<u64>,
    /// Body bytes received.
    received: u64,
    /// Why it failed, if it did.
    failed: Option<(ErrorKind, Stage, String)>,
    /// The user, waiting for any of the above.
    waker: Option<Waker>,
    /// What the server lets us send on it (for a request body).
    send_window: i64,
}

impl StreamState {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The server ended the stream: a body shorter than its
    /// `content-length` said fails it, as a browser fails it.
    fn end(&mut self) {
        if let Some(n) = self.length.filter(|&n| n != self.received) {
            self.fail(
                ErrorKind::Protocol,
                Stage::Failed,
                format!(
                    "a body of {} bytes where content-length said {n}",
                    self.received
                ),
            );
        }
        self.ended = true;
        self.wake();
    }

    fn fail(&mut self, kind: ErrorKind, stage: Stage, why: String) {
        if self.failed.is_none() && !self.ended {
            self.failed = Some((kind, stage, why));
        }
        self.wake();
    }
}

/// A connection's state, shared by its users and its driver.
struct LinkState {
    /// Frames to write, appended by users and by the driver.
    out: Vec<u8>,
    streams: Ids<StreamState>,
    next_id: u32,
    /// Once set, the connection takes no new stream: why.
    closed: Option<(ErrorKind, String)>,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS.
    peer_max_streams: u32,
    /// Its SETTINGS_INITIAL_WINDOW_SIZE (for our request bodies).
    peer_window: i64,
    /// Its SETTINGS_MAX_FRAME_SIZE (for what we send).
    peer_max_frame: usize,
    /// What the server lets us send on the connection.
    send_window: i64,
    /// Received DATA not yet given back to the server's connection window.
    unacked: usize,
    /// Users waiting for a stream under the server's limit.
    waiting: VecDeque<Waker>,
    /// Users waiting for send window for a body.
    blocked: Vec<Waker>,
    /// The driver, to wake when there is something to write.
    driver: Option<Waker>,
    /// Body queues of ended streams, for new ones (a queue that held a
    /// body allocated; a stream per request would allocate once each).
    spare_bodies: Vec<VecDeque<Bytes>>,
}

impl LinkState {
    fn kick(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Ends the connection for every stream on it.
    fn close(&mut self, kind: ErrorKind, why: &str) {
        if self.closed.is_none() {
            self.closed = Some((kind, why.to_string()));
        }
        for s in self.streams.values_mut() {
            s.fail(kind, Stage::Failed, why.to_string());
        }
        for w in self.waiting.drain(..).chain(self.blocked.drain(..)) {
            w.wake();
        }
    }

    /// Gives `n` received bytes back to the server's connection window.
    fn release(&mut self, n: usize) {
        self.unacked += n;
        if self.unacked >= CONNECTION_WINDOW as usize / 2 {
            frame_head(&mut self.out, 4, WINDOW_UPDATE, 0, 0);
            self.out
                .extend_from_slice(&(self.unacked as u32).to_be_bytes());
            self.unacked = 0;
            self.kick();
        }
    }
}

/// One connection: its shared state.
struct Link {
    state: RefCell<LinkState>,
}

impl Link {
    fn new() -> Link {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        // SETTINGS: no push, our stream window, the header list's cap.
        let settings: [(u16, u32); 3] = [
            (0x2, 0),
            (0x4, STREAM_WINDOW),
            (0x6, crate::h1::MAX_HEAD as u32),
        ];
        frame_head(&mut out, 6 * settings.len(), SETTINGS, 0, 0);
        for (id, value) in settings {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        frame_head(&mut out, 4, WINDOW_UPDATE, 0, 0);
        out.extend_from_slice(&(CONNECTION_WINDOW - 65_535).to_be_bytes());
        Link {
            state: RefCell::new(LinkState {
                out,
                streams: Ids::default(),
                next_id: 1,
                closed: None,
                peer_max_streams: u32::MAX,
                peer_window: 65_535,
                peer_max_frame: MAX_FRAME,
                send_window: 65_535,
                unacked: 0,
                waiting: VecDeque::new(),
                blocked: Vec::new(),
                driver: None,
                spare_bodies: Vec::new(),
            }),
        }
    }

    fn open(&self) -> bool {
        let s = self.state.borrow();
        s.closed.is_none() && s.next_id <= LAST_STREAM_ID
    }
}

/// A connection error: what the driver ends the connection with.
struct Broken(ErrorKind, String);

fn protocol(why: &str) -> Broken {
    Broken(ErrorKind::Protocol, why.to_string())
}

/// Reads and writes one connection until it ends, or until nobody but
/// the driver holds it.
struct Driver {
    link: Rc<Link>,
    io: Io,
    /// Bytes being written (taken from the link's `out`).
    writing: Vec<u8>,
    written: usize,
    reader: Reader,
}

/// What the server sends, read into its link's streams.
struct Reader {
    /// Bytes read and not yet parsed.
    input: BytesMut,
    decoder: hpack::Decoder,
    /// A header block still waiting for its CONTINUATION frames: its
    /// stream, whether that stream ends with it, and the block so far.
    partial: Option<(u32, bool, Vec<u8>)>,
}

impl Driver {
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if Rc::strong_count(&self.link) == 1 {
                return Poll::Ready(());
            }
            {
                let mut s = self.link.state.borrow_mut();
                if !s.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.driver = Some(cx.waker().clone());
                }
            }
            if let Err(Broken(kind, why)) = self.poll_write(cx) {
                return self.end(kind, &why);
            }
            let before = self.reader.input.len();
            let read =
                tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.reader.input);
            let n = self.reader.input.len() - before;
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Reset
                    };
                    return self.end(kind, &e.to_string());
                }
                Poll::Ready(Ok(_)) if n == 0 => {
                    return self.end(ErrorKind::Reset, "the server closed the connection");
                }
                Poll::Ready(Ok(_)) => {}
            }
            if let Err(Broken(kind, why)) = self.reader.frames(&self.link) {
                let mut s = self.link.state.borrow_mut();
                goaway(&mut s.out, PROTOCOL_ERROR);
                drop(s);
                let _ = self.poll_write(cx);
                return self.end(kind, &why);
            }
            let input = &mut self.reader.input;
            if input.capacity() - input.len() < MAX_FRAME {
                input.reserve(READ_CHUNK);
            }
        }
    }

    fn end(&mut self, kind: ErrorKind, why: &str) -> Poll<()> {
        self.link.state.borrow_mut().close(kind, why);
        Poll::Ready(())
    }

    /// Writes what the link has queued, as far as the socket takes it.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), Broken> {
        loop {
            if self.written == self.writing.len() {
                self.writing.clear();
                self.written = 0;
                let mut s = self.link.state.borrow_mut();
                if s.out.is_empty() {
                    return Ok(());
                }
                std::mem::swap(&mut self.writing, &mut s.out);
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.writing[self.written..]) {
                Poll::Ready(Ok(0)) => return Err(Broken(ErrorKind::Reset, "write zero".into())),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    if self.written == self.writing.len() {
                        // TLS buffers: push the records out.
                        if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
                            return Err(Broken(ErrorKind::Reset, e.to_string()));
                        }
                    }
                }
                Poll::Ready(Err(e)) => return Err(Broken(ErrorKind::Reset, e.to_string())),
                Poll::Pending => return Ok(()),
            }
        }
    }
}

impl Reader {
    fn new() -> Reader {
        Reader {
            input: BytesMut::with_capacity(READ_CHUNK),
            decoder: hpack::Decoder::new(TABLE_SIZE),
            partial: None,
        }
    }

    /// Handles every whole frame read so far.
    fn frames(&mut self, link: &Link) -> Result<(), Broken> {
        while self.input.len() >= 9 {
            let h = &self.input[..9];
            let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
            if len > MAX_FRAME {
                return Err(protocol("a frame over the size we allow"));
            }
            if self.input.len() < 9 + len {
                self.input.reserve(9 + len - self.input.len());
                return Ok(());
            }
            let (kind, flags) = (h[3], h[4]);
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & LAST_STREAM_ID;
            self.input.advance(9);
            let payload = self.input.split_to(len).freeze();
            if self.partial.is_some() && kind != CONTINUATION {
                return Err(protocol("a header block interrupted"));
            }
            self.frame(link, kind, flags, id, payload)?;
        }
        Ok(())
    }

    fn frame(
        &mut self,
        link: &Link,
        kind: u8,
        flags: u8,
        id: u32,
        payload: Bytes,
    ) -> Result<(), Broken> {
        match kind {
            DATA => {
                if id == 0 {
                    return Err(protocol("DATA on stream 0"));
                }
                let size = payload.len();
                let data = unpad(flags, payload)?;
                let mut guard = link.state.borrow_mut();
                let s = &mut *guard;
                match s.streams.get_mut(&id) {
                    Some(st) if st.status.is_some() && !st.ended => {
                        // The padding is given back now, the data when read.
                        let pad = size - data.len();
                        st.buffered += data.len();
                        st.received += data.len() as u64;
                        st.unacked += pad;
                        if !data.is_empty() {
                            st.body.push_back(data);
                        }
                        if st.length.is_some_and(|n| st.received > n) {
                            let n = st.length.unwrap_or_default();
                            st.fail(
                                ErrorKind::Protocol,
                                Stage::Failed,
                                format!("more body than content-length said ({n} bytes)"),
                            );
                        } else if flags & END_STREAM != 0 {
                            st.end();
                        }
                        st.wake();
                        s.release(pad);
                    }
                    Some(st) => {
                        st.fail(
                            ErrorKind::Protocol,
                            Stage::Failed,
                            "DATA before a response head".into(),
                        );
                        s.release(size);
                    }
                    // A stream we reset or finished: give it all back.
                    None => s.release(size),
                }
            }
            HEADERS => {
                if id == 0 {
                    return Err(protocol("HEADERS on stream 0"));
                }
                let mut block = unpad(flags, payload)?;
                if flags & PRIORITY_FLAG != 0 {
                    if block.len() < 5 {
                        return Err(protocol("a short HEADERS frame"));
                    }
                    block.advance(5);
                }
                let ends = flags & END_STREAM != 0;
                if flags & END_HEADERS != 0 {
                    self.head(link, id, ends, &block)?;
                } else {
                    self.partial = Some((id, ends, block.to_vec()));
                }
            }
            CONTINUATION => {
                let Some((sid, ends, mut block)) = self.partial.take() else {
                    return Err(protocol("CONTINUATION without HEADERS"));
                };
                if sid != id {
                    return Err(protocol("CONTINUATION on another stream"));
                }
                block.extend_from_slice(&payload);
                if block.len() > crate::h1::MAX_HEAD {
                    return Err(Broken(
                        ErrorKind::Protocol,
                        "a response head over 64 KiB".into(),
                    ));
                }
                if flags & END_HEADERS != 0 {
                    self.head(link, id, ends, &block)?;
                } else {
                    self.partial = Some((sid, ends, block));
                }
            }
            PRIORITY => {}
            RST_STREAM => {
                if id == 0 || payload.len() != 4 {
                    return Err(protocol("a bad RST_STREAM"));
                }
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                if let Some(st) = link.state.borrow_mut().streams.get_mut(&id) {
                    st.reset = true;
                    // Refused: the server did nothing with it.
                    let stage = if code == REFUSED_STREAM {
                        Stage::NotSent
                    } else {
                        Stage::Failed
                    };
                    st.fail(
                        ErrorKind::Reset,
                        stage,
                        format!("stream reset by the server (code {code:#x})"),
                    );
                }
            }
            SETTINGS => {
                if id != 0 || !payload.len().is_multiple_of(6) {
                    return Err(protocol("a bad SETTINGS frame"));
                }
                if flags & ACK != 0 {
                    return Ok(());
                }
                let mut s = link.state.borrow_mut();
                for entry in payload.chunks_exact(6) {
                    let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                    match u16::from_be_bytes([entry[0], entry[1]]) {
                        0x3 => {
                            s.peer_max_streams = value;
                            for w in s.waiting.drain(..) {
                                w.wake();
                            }
                        }
                        0x4 => {
                            if value > LAST_STREAM_ID {
                                return Err(protocol("a window over 2^31-1"));
                            }
                            let delta = i64::from(value) - s.peer_window;
                            s.peer_window = i64::from(value);
                            for st in s.streams.values_mut() {
                                st.send_window += delta;
                            }
                            for w in s.blocked.drain(..) {
                                w.wake();
                            }
                        }
                        0x5 => {
                            if !(16_384..=16_777_215).contains(&value) {
                                return Err(protocol("a bad SETTINGS_MAX_FRAME_SIZE"));
                            }
                            s.peer_max_frame = value as usize;
                        }
                        _ => {}
                    }
                }
                frame_head(&mut s.out, 0, SETTINGS, ACK, 0);
            }
            PUSH_PROMISE => return Err(protocol("a push, which we disabled")),
            PING => {
                if id != 0 || payload.len() != 8 {
                    return Err(protocol("a bad PING"));
                }
                if flags & ACK == 0 {
                    let mut s = link.state.borrow_mut();
                    frame_head(&mut s.out, 8, PING, ACK, 0);
                    s.out.extend_from_slice(&payload);
                }
            }
            GOAWAY => {
                if id != 0 || payload.len() < 8 {
                    return Err(protocol("a bad GOAWAY"));
                }
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & LAST_STREAM_ID;
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                let mut s = link.state.borrow_mut();
                let why = format!("the server is going away (code {code:#x})");
                if s.closed.is_none() {
                    s.closed = Some((ErrorKind::Reset, why.clone()));
                }
                // Streams past `last` were not processed: not sent.
                for (&sid, st) in s.streams.iter_mut() {
                    if sid > last {
                        st.fail(ErrorKind::Reset, Stage::NotSent, why.clone());
                    }
                }
                for w in s.waiting.drain(..) {
                    w.wake();
                }
            }
            WINDOW_UPDATE => {
                if payload.len() != 4 {
                    return Err(protocol("a bad WINDOW_UPDATE"));
                }
                let add = i64::from(
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & LAST_STREAM_ID,
                );
                let mut s = link.state.borrow_mut();
                if id == 0 {
                    if add == 0 {
                        return Err(protocol("a zero WINDOW_UPDATE"));
                    }
                    s.send_window += add;
                } else if let Some(st) = s.streams.get_mut(&id) {
                    st.send_window += add;
                }
                for w in s.blocked.drain(..) {
                    w.wake();
                }
            }
            // Unknown frame types are ignored (RFC 9113 section 4.1).
            _ => {}
        }
        Ok(())
    }

    /// A whole header block for stream `id`.
    fn head(&mut self, link: &Link, id: u32, ends: bool, block: &[u8]) -> Result<(), Broken> {
        let mut guard = link.state.borrow_mut();
        let mut st = guard.streams.get_mut(&id);
        let wants = st.as_ref().map(|s| s.wants).unwrap_or_default();
        let mut length: Option<u64> = None;
        let mut regular = false;
        let trailers = st.as_ref().is_some_and(|s| s.status.is_some());
        let mut status: Option<u16> = None;
        let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
        let mut bad = false;
        // Decoded even for a stream we no longer follow: the table must
        // stay in step with the server's.
        self.decoder
            .decode(block, crate::h1::MAX_HEAD, |f| {
                if trailers {
                    return;
                }
                let name = Name::of(&f);
                if name == Name::Malformed
                    || (name == Name::Status && (regular || status.is_some()))
                {
                    bad = true;
                    return;
                }
                if name == Name::Status {
                    match decimal(f.value) {
                        Some((code, 3)) if (100..600).contains(&code) => status = Some(code as u16),
                        _ => bad = true,
                    }
                    return;
                }
                regular = true;
                if name == Name::ContentLength {
                    match (decimal(f.value).map(|(n, _)| n), length) {
                        (Some(n), None) => length = Some(n),
                        (Some(n), Some(m)) if n == m => {}
                        _ => bad = true,
                    }
                }
                // Compared as sent: only a field that is kept is decoded.
                let keep = wants.headers
                    || (wants.cookies && name.is(&f, 55, b"set-cookie"))
                    || (wants.location && name.is(&f, 46, b"location"));
                if !keep {
                    return;
                }
                let (mut name, mut value) = (Vec::new(), Vec::new());
                if f.name.decode_into(&mut name).is_err()
                    || f.value.decode_into(&mut value).is_err()
                {
                    bad = true;
                    return;
                }
                kept.push((String::from_utf8_lossy(&name).into_owned(), value));
            })
            .map_err(|e| Broken(ErrorKind::Protocol, format!("a bad header block ({e:?})")))?;
        let Some(st) = st.as_mut() else {
            return Ok(());
        };
        if trailers {
            if ends {
                st.end();
            }
            st.wake();
            return Ok(());
        }
        match status {
            _ if bad => st.fail(
                ErrorKind::Protocol,
                Stage::Failed,
                "a bad response head".into(),
            ),
            None => st.fail(
                ErrorKind::Protocol,
                Stage::Failed,
                "a response head without :status".into(),
            ),
            // Informational: the final head is still to come.
            Some(code) if code < 200 && !ends => {}
            Some(code) => {
                st.status = Some(code);
                st.fields = kept;
                // No body whatever the length says: HEAD's, 204's, 304's.
                if !(st.head_request || code == 204 || code == 304) {
                    st.length = length;
                }
                if ends {
                    st.end();
                }
                st.wake();
            }
        }
        Ok(())
    }
}

/// HTTP/1.1's connection headers, which HTTP/2 forbids.
const FORBIDDEN: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// What a response's field name is to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Status,
    ContentLength,
    /// Malformed as RFC 9113 section 8.2 says (and browsers fail it): a
    /// name in upper case or not a token, a pseudo-header other than
    /// `:status`, a header of HTTP/1.1's connection.
    Malformed,
    Other,
}

impl Name {
    /// Whether `f`, of this kind, is named `plain`, which is the static
    /// table's `index`.
    fn is(self, f: &hpack::Field<'_>, index: usize, plain: &[u8]) -> bool {
        self == Name::Other
            && match f.static_name {
                0 => f.name.is(plain),
                i => i == index,
            }
    }

    fn of(f: &hpack::Field<'_>) -> Name {
        // Names from the static table are known by their index (servers
        // send most names so): no comparing.
        match f.static_name {
            8..=14 => return Name::Status,
            28 => return Name::ContentLength,
            1..=7 | 57 => return Name::Malformed,
            1.. => return Name::Other,
            0 => {}
        }
        if f.name.is(b":status") {
            Name::Status
        } else if !f.name.all(|b| b != b':' && is_name_octet(b))
            || FORBIDDEN.iter().any(|n| f.name.is(n))
        {
            Name::Malformed
        } else if f.name.is(b"content-length") {
            Name::ContentLength
        } else {
            Name::Other
        }
    }
}

/// An octet of a header name as HTTP/2 sends it: a token's, in lower case.
fn is_name_octet(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// A field's value as a decimal number, and its count of digits: `None`
/// unless it is digits only, at least one, and fits a `u64`. Read in
/// place, without decoding the value into a buffer.
fn decimal(value: hpack::Text<'_>) -> Option<(u64, usize)> {
    let (mut n, mut digits) = (0u64, 0usize);
    let whole = value.all(|b| {
        digits += 1;
        match n
            .checked_mul(10)
            .zip(b.is_ascii_digit().then(|| u64::from(b - b'0')))
        {
            Some((tens, d)) => tens.checked_add(d).map(|x| n = x).is_some(),
            None => false,
        }
    });
    (whole && digits > 0).then_some((n, digits))
}

/// Writes a GOAWAY: the last stream the server opened that we took is
/// none (we take none).
fn goaway(out: &mut Vec<u8>, code: u32) {
    frame_head(out, 8, GOAWAY, 0, 0);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
}

/// A DATA or HEADERS payload without its padding.
fn unpad(flags: u8, mut payload: Bytes) -> Result<Bytes, Broken> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let Some(&pad) = payload.first() else {
        return Err(protocol("a padded frame without its pad length"));
    };
    let pad = pad as usize;
    if pad + 1 > payload.len() {
        return Err(protocol("padding longer than its frame"));
    }
    payload.advance(1);
    payload.truncate(payload.len() - pad);
    Ok(payload)
}

/// One of the worker's connections: its link once dialed, and the
/// sessions waiting while one of them dials it.
#[derive(Default)]
struct Slot {
    link: RefCell<Option<Rc<Link>>>,
    dialing: Cell<bool>,
    dialed: tokio::sync::Notify,
}

/// Clears a slot's dial, however it ended (a timeout drops it midway),
/// and wakes the sessions waiting for it.
struct Dialing<'a>(&'a Slot);

impl Drop for Dialing<'_> {
    fn drop(&mut self) {
        self.0.dialing.set(false);
        self.0.dialed.notify_waiters();
    }
}

/// A connection's open streams, when capped by `clients.http2_streams`.
type Streams = Option<Rc<tokio::sync::Semaphore>>;

/// Opens (or shares) the worker's HTTP/2 connections.
pub(crate) struct H2Connector {
    /// Where to connect.
    pub(crate) dialer: Dialer,
    slots: Vec<(Slot, Streams)>,
    /// The slot the next session takes.
    next: Cell<usize>,
    /// Most streams open at once per connection, if capped.
    streams: Option<usize>,
}

impl H2Connector {
    /// A connector of `connections` connections (at least one), each
    /// opened on first use, each carrying at most `streams` requests at
    /// once (`None`: as many as the server allows).
    pub(crate) fn new(dialer: Dialer, connections: usize, streams: Option<usize>) -> H2Connector {
        let streams = streams.map(|n| n.max(1));
        H2Connector {
            dialer,
            slots: (0..connections.max(1))
                .map(|_| {
                    let cap = streams.map(|n| Rc::new(tokio::sync::Semaphore::new(n)));
                    (Slot::default(), cap)
                })
                .collect(),
            next: Cell::new(0),
            streams,
        }
    }
}

impl Drop for H2Connector {
    fn drop(&mut self) {
        // Each connection's driver ends once nobody holds it: wake them
        // to see that.
        for (slot, _) in &self.slots {
            if let Ok(link) = slot.link.try_borrow() {
                if let Some(Ok(mut s)) = link.as_ref().map(|l| l.state.try_borrow_mut()) {
                    s.kick();
                }
            }
        }
    }
}

impl Connector for H2Connector {
    type Conn = H2Conn;

    async fn connect(&self, phases: &mut Phases, caller: Caller<'_>) -> Result<H2Conn, Failure> {
        let i = self.next.get();
        self.next.set((i + 1) % self.slots.len());
        let (slot, streams) = &self.slots[i];
        loop {
            if let Some(link) = slot.link.borrow().as_ref().filter(|l| l.open()) {
                return Ok(H2Conn {
                    link: link.clone(),
                    open: true,
                    streams: streams.clone(),
                });
            }
            if !slot.dialing.get() {
                break;
            }
            // Another session dials it: wait for that, then look again.
            slot.dialed.notified().await;
        }
        slot.dialing.set(true);
        let dialing = Dialing(slot);
        let io = self.dialer.dial(phases, caller).await?;
        if self.dialer.tls.is_some() && io.alpn() != Some(b"h2") {
            return Err(Failure::io(
                ErrorKind::Protocol,
                std::io::Error::other("the server did not agree to HTTP/2 (ALPN h2)"),
            ));
        }
        let link = Rc::new(Link::new());
        let mut driver = Driver {
            link: link.clone(),
            io,
            writing: Vec::new(),
            written: 0,
            reader: Reader::new(),
        };
        tokio::task::spawn_local(async move { poll_fn(|cx| driver.poll_drive(cx)).await });
        *slot.link.borrow_mut() = Some(link.clone());
        drop(dialing);
        // The sessions that waited go first, so that their first requests
        // and this one's leave in one write, as a browser's first requests
        // on a connection do: an HTTP/2 server answers a batch read at once
        // in one write, and the batches a load keeps are those it starts
        // with (writes per request, bench/README.md (j)).
        tokio::task::yield_now().await;
        Ok(H2Conn {
            link,
            open: true,
            streams: streams.clone(),
        })
    }

    fn elsewhere(&self, dialer: Dialer) -> Option<H2Connector> {
        Some(H2Connector::new(dialer, 1, self.streams))
    }
}

/// An HTTP/2 request: its header block, encoded once when rendered, and
/// its body.
#[derive(Debug, Default, Clone)]
pub(crate) struct H2Request {
    /// The HPACK block (`None` until rendered).
    block: Option<Bytes>,
    body: Bytes,
    /// A HEAD request.
    head: bool,
}

/// Headers HTTP/2 forbids (RFC 9113 section 8.2.2): a browser leaves
/// them out, and so does throng.
fn connection_specific(name: &[u8]) -> bool {
    FORBIDDEN
        .iter()
        .chain([&&b"host"[..]])
        .any(|n| n.eq_ignore_ascii_case(name))
}

impl Wire for H2Request {
    /// The pseudo-headers from the method, scheme, authority and path;
    /// the headers but `Host` (HTTP/2 names the host in `:authority`) and
    /// those HTTP/2 forbids, names in lower case; `user-agent`; `cookie`;
    /// the body.
    fn render(&mut self, p: &Parts<'_>) -> Result<(), Failure> {
        let bad = |v: &[u8]| v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", p.method.as_str().as_bytes()),
            (b":scheme", p.scheme.as_bytes()),
            (b":authority", p.authority.as_bytes()),
            (b":path", p.path),
        ];
        let pseudo = fields.len();
        // Names go in lower case: hpack::encode_fields sees to it.
        for (name, value) in p.headers.iter() {
            if connection_specific(name.as_bytes()) {
                continue;
            }
            if name.is_empty() || bad(name.as_bytes()) || bad(value) {
                return Err(Failure::io(
                    ErrorKind::Protocol,
                    std::io::Error::other(format!("a header HTTP/2 cannot carry: {name:?}")),
                ));
            }
            fields.push((name.as_bytes(), value));
        }
        let headers_end = fields.len();
        if let Some(agent) = p.agent {
            fields.push((b"user-agent", agent.as_bytes()));
        }
        if let Some(cookie) = p.cookie.filter(|c| !c.is_empty()) {
            fields.push((b"cookie", cookie.as_bytes()));
        }
        // The headers' values were looked at above; the rest here.
        let mut rest = fields[..pseudo].iter().chain(&fields[headers_end..]);
        if rest.any(|(_, v)| bad(v)) {
            return Err(Failure::new(ErrorKind::Protocol));
        }
        self.block = Some(Bytes::from(hpack::encode_fields(fields)));
        self.body = Bytes::copy_from_slice(p.body);
        self.head = p.head();
        Ok(())
    }
}

/// A handle on the shared connection.
pub(crate) struct H2Conn {
    link: Rc<Link>,
    /// Whether this handle has seen no failure of the connection.
    open: bool,
    /// The connection's stream cap, if any.
    streams: Streams,
}

impl Drop for H2Conn {
    fn drop(&mut self) {
        // The driver ends once nobody holds its link.
        if let Ok(mut s) = self.link.state.try_borrow_mut() {
            s.kick();
        }
    }
}

/// A stream being exchanged: removed, and reset if unfinished, however
/// the exchange ends (a timeout drops it midway).
struct Open<'a> {
    link: &'a Link,
    id: u32,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let Ok(mut guard) = self.link.state.try_borrow_mut() else {
            return;
        };
        let s = &mut *guard;
        if let Some(st) = s.streams.remove(&self.id) {
            // Either side unfinished: the server's stream is closed with a
            // reset (NO_ERROR when only the request's body was left).
            let unfinished = !st.ended || !st.sent_all;
            if unfinished && !st.reset && st.failed.is_none() && s.closed.is_none() {
                let code = if st.ended { NO_ERROR } else { CANCEL };
                frame_head(&mut s.out, 4, RST_STREAM, 0, self.id);
                s.out.extend_from_slice(&code.to_be_bytes());
                s.kick();
            }
            // Data the user never read goes back to the connection window.
            s.release(st.buffered);
            let mut body = st.body;
            if s.spare_bodies.len() < SPARE_BODIES && body.capacity() <= 16 {
                body.clear();
                s.spare_bodies.push(body);
            }
        }
        if let Some(w) = s.waiting.pop_front() {
            w.wake();
        }
    }
}

impl H2Conn {
    /// Opens a stream for `req` and queues its head (and body, as the
    /// windows allow).
    async fn start(
        &mut self,
        req: &H2Request,
        block: &Bytes,
        wants: Wants,
    ) -> Result<Open<'_>, Failure> {
        let link = &*self.link;
        // A stream under the server's limit.
        let id = poll_fn(|cx| {
            let mut s = link.state.borrow_mut();
            if let Some((kind, why)) = &s.closed {
                return Poll::Ready(Err(
                    Failure::io(*kind, std::io::Error::other(why.clone())).at(Stage::NotSent)
                ));
            }
            if s.next_id > LAST_STREAM_ID {
                return Poll::Ready(Err(Failure::new(ErrorKind::Reset).at(Stage::NotSent)));
            }
            if s.streams.len() as u64 >= u64::from(s.peer_max_streams) {
                s.waiting.push_back(cx.waker().clone());
                return Poll::Pending;
            }
            let id = s.next_id;
            s.next_id += 2;
            let window = s.peer_window;
            let body = s.spare_bodies.pop().unwrap_or_default();
            s.streams.insert(
                id,
                StreamState {
                    wants,
                    body,
                    send_window: window,
                    head_request: req.head,
                    sent_all: req.body.is_empty(),
                    ..StreamState::default()
                },
            );
            let end = if req.body.is_empty() { END_STREAM } else { 0 };
            let max = s.peer_max_frame;
            let mut first = true;
            let mut rest = &block[..];
            loop {
                let n = rest.len().min(max);
                let last = n == rest.len();
                let (kind, flags) = if first {
                    (HEADERS, end)
                } else {
                    (CONTINUATION, 0)
                };
                frame_head(
                    &mut s.out,
                    n,
                    kind,
                    flags | if last { END_HEADERS } else { 0 },
                    id,
                );
                s.out.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                first = false;
                if last {
                    break;
                }
            }
            s.kick();
            Poll::Ready(Ok(id))
        })
        .await?;
        let open = Open { link, id };
        // The body, as the server's windows allow, until the server resets
        // the stream after its whole response (RFC 9113 section 8.1: it
        // did not need the rest). A response that ended without a reset
        // still gets the whole body.
        let mut sent = 0;
        while sent < req.body.len() {
            let more = poll_fn(|cx| {
                let mut guard = link.state.borrow_mut();
                let s = &mut *guard;
                let Some(st) = s.streams.get_mut(&id) else {
                    return Poll::Ready(Err(Failure::new(ErrorKind::Reset)));
                };
                if let Some((kind, _, why)) = &st.failed {
                    return Poll::Ready(Err(Failure::io(
                        *kind,
                        std::io::Error::other(why.clone()),
                    )));
                }
                if st.reset {
                    return Poll::Ready(Ok(false));
                }
                let room = st
                    .send_window
                    .min(s.send_window)
                    .min(s.peer_max_frame as i64);
                if room <= 0 {
                    // Woken by a window, or by the stream's end or reset.
                    s.blocked.push(cx.waker().clone());
                    st.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let n = (room as usize).min(req.body.len() - sent);
                st.send_window -= n as i64;
                s.send_window -= n as i64;
                let last = sent + n == req.body.len();
                frame_head(&mut s.out, n, DATA, if last { END_STREAM } else { 0 }, id);
                s.out.extend_from_slice(&req.body[sent..sent + n]);
                st.sent_all = last;
                sent += n;
                s.kick();
                Poll::Ready(Ok(true))
            })
            .await?;
            if !more {
                break;
            }
        }
        Ok(open)
    }
}

/// What a stream has for its user now.
enum Got {
    Head(u16, Vec<(String, Vec<u8>)>),
    Data(Bytes),
    End,
}

impl Open<'_> {
    /// The next thing the stream has: its head first, then its body's
    /// pieces, then its end.
    async fn next(&self, head: bool) -> Result<Got, Failure> {
        poll_fn(|cx| {
            let mut guard = self.link.state.borrow_mut();
            let s = &mut *guard;
            let Some(st) = s.streams.get_mut(&self.id) else {
                return Poll::Ready(Err(Failure::new(ErrorKind::Reset)));
            };
            if let Some((kind, stage, why)) = &st.failed {
                return Poll::Ready(Err(
                    Failure::io(*kind, std::io::Error::other(why.clone())).at(*stage)
                ));
            }
            if head {
                if let Some(status) = st.status {
                    return Poll::Ready(Ok(Got::Head(status, std::mem::take(&mut st.fields))));
                }
            } else if let Some(data) = st.body.pop_front() {
                // Read: the server may send as much again.
                let n = data.len();
                st.buffered -= n;
                st.unacked += n;
                if st.unacked >= STREAM_WINDOW as usize / 2 && !st.ended {
                    let add = std::mem::take(&mut st.unacked) as u32;
                    frame_head(&mut s.out, 4, WINDOW_UPDATE, 0, self.id);
                    s.out.extend_from_slice(&add.to_be_bytes());
                    s.kick();
                }
                s.release(n);
                return Poll::Ready(Ok(Got::Data(data)));
            } else if st.ended {
                return Poll::Ready(Ok(Got::End));
            }
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Connection for H2Conn {
    type Request = H2Request;

    async fn exchange(
        &mut self,
        req: &H2Request,
        phases: &mut Phases,
        capture: &mut Capture,
    ) -> Result<Response, Failure> {
        let Some(block) = req.block.as_ref() else {
            return Err(Failure::new(ErrorKind::Protocol));
        };
        // A stream of the connection's cap, held to the response's end.
        let cap = self.streams.clone();
        let _stream = match &cap {
            Some(s) => Some(
                s.acquire()
                    .await
                    .map_err(|_| Failure::new(ErrorKind::Protocol).at(Stage::NotSent))?,
            ),
            None => None,
        };
        let t0 = Instant::now();
        let wants = Wants {
            headers: capture.headers,
            cookies: capture.cookies,
            location: capture.follow,
        };
        let result = async {
            let open = self.start(req, block, wants).await?;
            let Got::Head(status, fields) = open.next(true).await? else {
                return Err(Failure::new(ErrorKind::Protocol));
            };
            phases.ttfb = Some(t0.elapsed());
            capture.status(status);
            for (name, value) in &fields {
                capture.header(name, value);
            }
            let mut body_bytes = 0u64;
            while let Got::Data(data) = open.next(false).await? {
                body_bytes += data.len() as u64;
                if capture.over_limit(body_bytes) {
                    return Err(Failure::new(ErrorKind::BodyTooLarge));
                }
                capture.body_data(&data);
            }
            Ok(Response { status, body_bytes })
        }
        .await;
        if let Err(f) = &result {
            // A connection that failed, or took no new stream, is done
            // for this handle; a stream's own failure is not.
            if f.stage == Stage::NotSent || !self.link.open() {
                self.open = false;
            }
        }
        result
    }

    fn reusable(&self) -> bool {
        self.open && self.link.open()
    }
}

/// Fuzzing: `data` as what a server sends on a connection with three
/// streams open (each keeping everything), arriving in pieces of
/// `piece` bytes; then the streams read as their users would.
pub fn fuzz_frames(data: &[u8], piece: usize) {
    let link = Link::new();
    for id in [1, 3, 5] {
        link.state.borrow_mut().streams.insert(
            id,
            StreamState {
                wants: Wants {
                    headers: true,
                    cookies: true,
                    location: true,
                },
                ..StreamState::default()
            },
        );
    }
    let mut reader = Reader::new();
    for part in data.chunks(piece.max(1)) {
        reader.input.extend_from_slice(part);
        if reader.frames(&link).is_err() {
            break;
        }
    }
    let mut s = link.state.borrow_mut();
    let total: usize = s
        .streams
        .values()
        .map(|st| st.body.iter().map(Bytes::len).sum::<usize>())
        .sum();
    let buffered: usize = s.streams.values().map(|st| st.buffered).sum();
    assert_eq!(total, buffered, "body bytes and their count disagree");
    s.release(buffered);
}

#[cfg(test)]
mod tests;
