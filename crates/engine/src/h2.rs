//! The HTTP/2 client, on hyper: a few connections per worker (one unless
//! `clients.http2_connections` says more), requests multiplexed on them
//! (h2c prior knowledge, or ALPN `h2` over TLS). Sessions take the
//! connections in turn; each is dialed once, by the first session that
//! needs it, while the others wait for it (so 100 users starting at once
//! open one connection, not 100).

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use stats::{ErrorKind, Phases};
use tokio::time::Instant;

use crate::error::{Failure, Stage};
use crate::net::Dialer;
use crate::request::{Parts, Wire};
use crate::transport::{Capture, Connection, Connector, Response};

/// One of the worker's connections: empty until dialed, or after it
/// closed. The lock makes the dial single-flight.
type Slot = Rc<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>>;

/// Opens (or shares) the worker's HTTP/2 connections.
pub(crate) struct H2Connector {
    /// Where to connect.
    pub(crate) dialer: Dialer,
    slots: Vec<Slot>,
    /// The slot the next session takes.
    next: Cell<usize>,
}

impl H2Connector {
    /// A connector of `connections` connections (at least one), each
    /// opened on first use.
    pub(crate) fn new(dialer: Dialer, connections: usize) -> H2Connector {
        H2Connector {
            dialer,
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            next: Cell::new(0),
        }
    }
}

impl Connector for H2Connector {
    type Conn = H2Conn;

    async fn connect(
        &self,
        phases: &mut Phases,
        local: Option<std::net::IpAddr>,
    ) -> Result<H2Conn, Failure> {
        let i = self.next.get();
        self.next.set((i + 1) % self.slots.len());
        let mut slot = self.slots[i].lock().await;
        if let Some(send) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(H2Conn {
                send: send.clone(),
                open: true,
            });
        }
        let stream = self.dialer.dial(phases, local).await?;
        if self.dialer.tls.is_some() && stream.alpn() != Some(b"h2") {
            return Err(Failure::io(
                ErrorKind::Protocol,
                std::io::Error::other("the server did not agree to HTTP/2 (ALPN h2)"),
            ));
        }
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| Failure::io(ErrorKind::Protocol, std::io::Error::other(e)))?;
        tokio::task::spawn_local(conn);
        *slot = Some(send.clone());
        Ok(H2Conn { send, open: true })
    }

    fn elsewhere(&self, dialer: Dialer) -> Option<H2Connector> {
        Some(H2Connector::new(dialer, 1))
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
    send: SendRequest<Full<Bytes>>,
    open: bool,
}

fn hyper_failure(e: hyper::Error) -> Failure {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_parse() || e.is_user() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Reset
    };
    Failure::io(kind, std::io::Error::other(e))
}

impl Connection for H2Conn {
    type Request = H2Request;

    async fn exchange(
        &mut self,
        req: &H2Request,
        phases: &mut Phases,
        capture: &mut Capture,
    ) -> Result<Response, Failure> {
        let t0 = Instant::now();
        let Some((parts, body)) = &req.parts else {
            return Err(Failure::new(ErrorKind::Protocol));
        };
        let request = http::Request::from_parts(parts.clone(), Full::new(body.clone()));
        // A connection that closed before the request was handed to it
        // gives the request back: nothing was sent. Any failure after
        // that is the request's own (a refused stream included).
        self.send.ready().await.map_err(|e| {
            self.open = false;
            hyper_failure(e).at(Stage::NotSent)
        })?;
        let response = self.send.try_send_request(request).await.map_err(|mut e| {
            self.open = false;
            let sent = e.take_message().is_none();
            let f = hyper_failure(e.into_error());
            if sent {
                f
            } else {
                f.at(Stage::NotSent)
            }
        })?;
        phases.ttfb = Some(t0.elapsed());
        let status = response.status().as_u16();
        capture.status(status);
        for (name, value) in response.headers() {
            capture.header(name.as_str(), value.as_bytes());
        }
        let mut body = response.into_body();
        let mut body_bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(hyper_failure)?;
            if let Some(data) = frame.data_ref() {
                body_bytes += data.len() as u64;
                if capture.over_limit(body_bytes) {
                    return Err(Failure::new(ErrorKind::BodyTooLarge));
                }
                capture.body_data(data);
            }
        }
        Ok(Response { status, body_bytes })
    }

    fn reusable(&self) -> bool {
        self.open && !self.send.is_closed()
    }
}
