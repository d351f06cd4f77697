//! The HTTP/2 client, on the h2 crate: a few connections per worker (one unless
//! `clients.http2_connections` says more), requests multiplexed on them
//! (h2c prior knowledge, or ALPN `h2` over TLS). Sessions take the
//! connections in turn; each is dialed once, by the first session that
//! needs it, while the others wait for it (so 100 users starting at once
//! open one connection, not 100). A user's request is one stream; with
//! `clients.http2_streams`, at most that many are open at once on a
//! connection, and the rest wait their turn (as a browser's requests
//! wait past a server's stream limit), their wait in their latency.

//!
//! On h2 directly rather than hyper's client because this is the hot
//! path: hyper spawns a task per request to pipe its body and hands each
//! response over a channel, which cost about a fifth of the CPU of a
//! request (bench/README.md, case (j)). Here the user's own task sends
//! the stream and reads its response; one task per connection drives it.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use h2::client::SendRequest;
use stats::{ErrorKind, Phases};
use tokio::time::Instant;

use crate::error::{Failure, Stage};
use crate::net::Caller;
use crate::net::Dialer;
use crate::request::{Parts, Wire};
use crate::transport::{Capture, Connection, Connector, Response};

/// Stream flow-control window: as hyper's client sets it, so that a large
/// response is not held back by the default 64 KiB.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Connection flow-control window.
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// A connection's handle, and whether its task still runs.
type Open = (SendRequest<Bytes>, Rc<Cell<bool>>);

/// One of the worker's connections: empty until dialed, or after it
/// closed. The lock makes the dial single-flight.
type Slot = Rc<tokio::sync::Mutex<Option<Open>>>;

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

/// A connection's open streams, when capped.
type Streams = Option<Rc<tokio::sync::Semaphore>>;

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

impl Connector for H2Connector {
    type Conn = H2Conn;

    async fn connect(&self, phases: &mut Phases, caller: Caller<'_>) -> Result<H2Conn, Failure> {
        let i = self.next.get();
        self.next.set((i + 1) % self.slots.len());
        let (slot, streams) = &self.slots[i];
        let mut slot = slot.lock().await;
        if let Some((send, alive)) = slot.as_ref().filter(|(_, alive)| alive.get()) {
            return Ok(H2Conn {
                send: send.clone(),
                alive: alive.clone(),
                open: true,
                streams: streams.clone(),
            });
        }
        let stream = self.dialer.dial(phases, caller).await?;
        if self.dialer.tls.is_some() && stream.alpn() != Some(b"h2") {
            return Err(Failure::io(
                ErrorKind::Protocol,
                std::io::Error::other("the server did not agree to HTTP/2 (ALPN h2)"),
            ));
        }
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            // The response head's cap, as for HTTP/1.1.
            .max_header_list_size(crate::h1::MAX_HEAD as u32)
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| h2_failure(&e))?;
        let alive = Rc::new(Cell::new(true));
        let running = alive.clone();
        tokio::task::spawn_local(async move {
            let _ = conn.await;
            running.set(false);
        });
        *slot = Some((send.clone(), alive.clone()));
        Ok(H2Conn {
            send,
            alive,
            open: true,
            streams: streams.clone(),
        })
    }

    fn elsewhere(&self, dialer: Dialer) -> Option<H2Connector> {
        Some(H2Connector::new(dialer, 1, self.streams))
    }
}

/// An HTTP/2 request: the parts to frame, cloned per send (so a request
/// the connection handed back can go again).
#[derive(Debug, Default, Clone)]
pub(crate) struct H2Request {
    /// Method, URI and headers, and the body; `None` until rendered.
    parts: Option<(http::request::Parts, Bytes)>,
}

impl Wire for H2Request {
    /// The URI from the scheme, authority and path; the headers but
    /// `Host` (HTTP/2 names the host in the URI); `user-agent`; `cookie`;
    /// the body.
    fn render(&mut self, p: &Parts<'_>) -> Result<(), Failure> {
        let uri = format!(
            "{}://{}{}",
            p.scheme,
            p.authority,
            String::from_utf8_lossy(p.path)
        );
        let mut builder = http::Request::builder().method(p.method.clone()).uri(uri);
        for (name, value) in p.headers.iter() {
            if !name.eq_ignore_ascii_case("host") {
                builder = builder.header(name, value);
            }
        }
        if let Some(agent) = p.agent {
            builder = builder.header("user-agent", agent);
        }
        if let Some(cookie) = p.cookie.filter(|c| !c.is_empty()) {
            builder = builder.header("cookie", cookie);
        }
        let (parts, ()) = builder
            .body(())
            .map_err(|e| Failure::io(ErrorKind::Protocol, std::io::Error::other(e)))?
            .into_parts();
        self.parts = Some((parts, Bytes::copy_from_slice(p.body)));
        Ok(())
    }
}

/// A handle on the shared connection.
pub(crate) struct H2Conn {
    send: SendRequest<Bytes>,
    /// Whether the connection's task still runs.
    alive: Rc<Cell<bool>>,
    /// Whether this handle has seen no failure.
    open: bool,
    /// The connection's stream cap, if any.
    streams: Streams,
}

/// The error kind of an HTTP/2 failure: the connection's I/O, a reset
/// or GOAWAY, or a protocol error (of either side).
fn h2_failure(e: &h2::Error) -> Failure {
    let kind = match (e.get_io(), e.reason()) {
        (Some(io), _) if io.kind() == std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        (Some(_), _) => ErrorKind::Reset,
        (None, Some(h2::Reason::PROTOCOL_ERROR))
        | (None, Some(h2::Reason::COMPRESSION_ERROR))
        | (None, Some(h2::Reason::FRAME_SIZE_ERROR)) => ErrorKind::Protocol,
        (None, Some(_)) => ErrorKind::Reset,
        (None, None) => ErrorKind::Protocol,
    };
    Failure::io(kind, std::io::Error::other(e.to_string()))
}

impl Connection for H2Conn {
    type Request = H2Request;

    async fn exchange(
        &mut self,
        req: &H2Request,
        phases: &mut Phases,
        capture: &mut Capture,
    ) -> Result<Response, Failure> {
        let Some((parts, body)) = &req.parts else {
            return Err(Failure::new(ErrorKind::Protocol));
        };
        // A stream of the connection's cap, held to the response's end.
        let _stream = match &self.streams {
            Some(s) => Some(
                s.acquire()
                    .await
                    .map_err(|_| Failure::new(ErrorKind::Protocol).at(Stage::NotSent))?,
            ),
            None => None,
        };
        let t0 = Instant::now();
        // A connection that closed (or has no stream for it) before the
        // request was handed to it: nothing was sent. Any failure after
        // that is the request's own (a refused stream included).
        let not_sent = |open: &mut bool, e: h2::Error| {
            *open = false;
            h2_failure(&e).at(Stage::NotSent)
        };
        std::future::poll_fn(|cx| self.send.poll_ready(cx))
            .await
            .map_err(|e| not_sent(&mut self.open, e))?;
        let request = http::Request::from_parts(parts.clone(), ());
        let (response, mut out) = self
            .send
            .send_request(request, body.is_empty())
            .map_err(|e| not_sent(&mut self.open, e))?;
        let failed = |open: &mut bool, e: h2::Error| {
            *open = false;
            h2_failure(&e)
        };
        if !body.is_empty() {
            out.send_data(body.clone(), true)
                .map_err(|e| failed(&mut self.open, e))?;
        }
        let response = response.await.map_err(|e| failed(&mut self.open, e))?;
        phases.ttfb = Some(t0.elapsed());
        let status = response.status().as_u16();
        capture.status(status);
        for (name, value) in response.headers() {
            capture.header(name.as_str(), value.as_bytes());
        }
        let mut body = response.into_body();
        let mut body_bytes = 0u64;
        while let Some(data) = body.data().await {
            let data = data.map_err(|e| failed(&mut self.open, e))?;
            // Read: the server may send as much again.
            let _ = body.flow_control().release_capacity(data.len());
            body_bytes += data.len() as u64;
            if capture.over_limit(body_bytes) {
                return Err(Failure::new(ErrorKind::BodyTooLarge));
            }
            capture.body_data(&data);
        }
        Ok(Response { status, body_bytes })
    }

    fn reusable(&self) -> bool {
        self.open && self.alive.get()
    }
}
