//! What the scheduler needs from a protocol: open a connection, exchange
//! one request on it.
//!
//! The scheduler is generic over [`Connector`], so the same pacing code runs
//! over the real HTTP clients and, in tests, over scripted transports under
//! tokio's paused clock.

use std::future::Future;

use stats::Phases;

use crate::error::Failure;
use crate::net::{Caller, Tickets};
use crate::request::Wire;

/// Opens connections to the target.
pub(crate) trait Connector {
    /// One connection (for HTTP/2, a handle on a shared one).
    type Conn: Connection;

    /// Opens a connection as `caller` (from its address, with its TLS
    /// tickets), filling in the connect and TLS phases.
    fn connect(
        &self,
        phases: &mut Phases,
        caller: Caller<'_>,
    ) -> impl Future<Output = Result<Self::Conn, Failure>>;

    /// A connector of the same protocol to another address: a redirect's,
    /// to another allowed host or port. `None` when it cannot make one
    /// (test doubles): such a redirect is then not followed.
    fn elsewhere(&self, _dialer: crate::net::Dialer) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// A connection that carries one request at a time.
pub(crate) trait Connection {
    /// The request it takes, in its protocol's form.
    type Request: Wire;

    /// Sends `req` and reads the whole response, filling in time to first
    /// byte and whatever `capture` asks for (and only that, so plain runs
    /// keep nothing).
    fn exchange(
        &mut self,
        req: &Self::Request,
        phases: &mut Phases,
        capture: &mut Capture,
    ) -> impl Future<Output = Result<Response, Failure>>;

    /// Whether the connection may carry another request.
    fn reusable(&self) -> bool;

    /// Whether the target closed this idle connection (or sent on it
    /// unasked, which ends an HTTP/1.1 connection too), as far as can be
    /// told without waiting: it is then replaced before anything is
    /// written to it. `false` when in doubt.
    fn closed_while_idle(&mut self) -> bool {
        false
    }
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Response {
    /// The HTTP status code.
    pub(crate) status: u16,
    /// Body bytes received (after de-chunking).
    pub(crate) body_bytes: u64,
}

/// What to keep of a response, and where; and how this user's client
/// connects and reads. Owned by the session and reused.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    /// The local address this user's connections come from.
    pub(crate) source: Option<std::net::IpAddr>,
    /// This user's TLS session tickets.
    pub(crate) tickets: Tickets,
    /// This user's download rate cap, in bytes per second (a slow client).
    pub(crate) download_cap: Option<u64>,
    /// Keep `Set-Cookie` values (the session has a cookie jar).
    pub(crate) cookies: bool,
    /// Keep every header.
    pub(crate) headers: bool,
    /// Keep the body, up to `max_body` bytes.
    pub(crate) body: bool,
    /// Most body bytes kept; the rest is read and discarded.
    pub(crate) max_body: usize,
    /// Most body bytes read at all (`--max-body`; 0 for no limit): a
    /// longer body fails the request as `body_too_large`, unread.
    pub(crate) body_limit: u64,
    /// Keep the `Location` of a redirect (the scenario follows them).
    pub(crate) follow: bool,
    /// Whether this response's `Location` is kept: set by
    /// [`Capture::status`] for each response.
    pub(crate) location_wanted: bool,
    /// A redirect's `Location`.
    pub(crate) location: Option<String>,
    /// `Set-Cookie` values.
    pub(crate) set_cookies: Vec<String>,
    /// Headers, as received.
    pub(crate) header_list: Vec<(String, String)>,
    /// The body (de-chunked).
    pub(crate) body_bytes: Vec<u8>,
    /// The last response's body size in bytes, kept or not.
    pub(crate) received: u64,
}

impl Capture {
    /// Who this user's connections are from.
    pub(crate) fn caller(&self) -> Caller<'_> {
        Caller {
            source: self.source,
            tickets: Some(&self.tickets),
        }
    }

    /// Whether `bytes` of body go past the limit.
    pub(crate) fn over_limit(&self, bytes: u64) -> bool {
        self.body_limit > 0 && bytes > self.body_limit
    }

    /// Empties what a previous response left.
    pub(crate) fn clear(&mut self) {
        self.location = None;
        self.set_cookies.clear();
        self.header_list.clear();
        self.body_bytes.clear();
    }

    /// Takes note of a response's status, before its headers.
    pub(crate) fn status(&mut self, status: u16) {
        self.location_wanted = self.follow && crate::redirect::is_redirect(status);
    }

    /// Whether [`Capture::header`] keeps anything.
    pub(crate) fn wants_headers(&self) -> bool {
        self.location_wanted || self.headers || self.cookies
    }

    /// Keeps a header, as asked.
    pub(crate) fn header(&mut self, name: &str, value: &[u8]) {
        if self.location_wanted && name.eq_ignore_ascii_case("location") {
            self.location = Some(String::from_utf8_lossy(value).into_owned());
        }
        if self.headers {
            self.header_list.push((
                name.to_string(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        if self.cookies && name.eq_ignore_ascii_case("set-cookie") {
            self.set_cookies
                .push(String::from_utf8_lossy(value).into_owned());
        }
    }

    /// Keeps body bytes, as asked, up to the limit.
    pub(crate) fn body_data(&mut self, data: &[u8]) {
        if self.body {
            let room = self.max_body.saturating_sub(self.body_bytes.len());
            self.body_bytes
                .extend_from_slice(&data[..data.len().min(room)]);
        }
    }
}
