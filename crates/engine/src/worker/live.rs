//! Live connections: a step that opens a WebSocket and runs its session
//! of actions on it (send, expect, hold, every, close).
//!
//! Every message is read as it comes, so none is lost: those that come
//! before an `expect` reaches them wait in a bounded queue (when it is
//! full the oldest is dropped, and counted). The connection is one
//! sample on the step's endpoint, due at the step's intended start, its
//! latency the upgrade time and its outcome the session's; messages,
//! round trips and closes go to the endpoint's `LiveStats`.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use plan::{WsAction, WsExpect, WsKind, WsMessage, WsSession};
use stats::{LiveSession, CLOSED_ABNORMALLY};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::*;
use crate::net::Stream;

/// The endpoint kind live numbers are kept under.
const WS: &str = "ws";

/// How long a close waits for the server's answering close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A message that came, and when it was read.
struct Came {
    at: Instant,
    data: Bytes,
}

/// What one read brought.
enum Read {
    Message(Came),
    /// The server closed the socket with this code (1006: it dropped).
    Closed(u16),
    /// The socket broke the protocol or a limit.
    Failed(ErrorKind),
    /// The deadline passed.
    Timeout,
    /// The load phase ended (only when asked to watch for it).
    Ended,
    Killed,
}

/// Why a session ended before its last action.
enum Halt {
    /// The server closed with this code.
    Closed(u16),
    /// Another failure.
    Failed(ErrorKind),
    /// The load phase ended during a hold: the user leaves.
    Ended,
    Killed,
}

/// Close codes that end a socket normally: 1000 (normal), 1001 (going
/// away) and 1005 (a close frame with no code).
fn normal_close(code: u16) -> bool {
    matches!(code, 1000 | 1001 | 1005)
}

/// A WebSocket in use, with what its session has seen so far.
struct Socket {
    ws: WebSocketStream<Stream>,
    queue: VecDeque<Came>,
    cap: usize,
    counts: LiveSession,
    /// The intended time of the last `send` no `expect` has answered yet.
    last_send: Option<Instant>,
    /// The session's first failure.
    failed: Option<ErrorKind>,
    /// A reused buffer for rendering messages.
    text: Vec<u8>,
}

impl Socket {
    fn fail(&mut self, kind: ErrorKind) {
        self.failed.get_or_insert(kind);
    }

    /// Keeps a message for a later `expect`, dropping the oldest when
    /// the queue is full.
    fn keep(&mut self, came: Came) {
        if self.queue.len() >= self.cap {
            self.queue.pop_front();
            self.counts.dropped += 1;
        }
        self.queue.push_back(came);
    }

    /// The next message, close or failure, by `deadline`; with
    /// `until_end`, also stops when the user is leaving
    /// ([`Shared::leaving`]).
    async fn read<C: Connector>(
        &mut self,
        sh: &Shared<C>,
        deadline: Instant,
        until_end: bool,
    ) -> Read {
        loop {
            let next = tokio::select! {
                biased;
                _ = sh.kill.cancelled() => return Read::Killed,
                _ = sh.leaving(), if until_end => return Read::Ended,
                m = self.ws.next() => m,
                _ = sleep_until(deadline) => return Read::Timeout,
            };
            let data = match next {
                Some(Ok(Message::Text(t))) => Bytes::from(t),
                Some(Ok(Message::Binary(b))) => b,
                // Pings are answered by the library as it reads.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    return Read::Closed(frame.map_or(1005, |f| u16::from(f.code)))
                }
                None => return Read::Closed(CLOSED_ABNORMALLY),
                Some(Err(e)) => {
                    return match e {
                        // The connection ended with no close frame.
                        tungstenite::Error::Protocol(
                            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                        ) => Read::Closed(CLOSED_ABNORMALLY),
                        tungstenite::Error::Capacity(_) => {
                            sh.note_error(ErrorKind::Protocol, || {
                                format!("a WebSocket message was too large: {e}")
                            });
                            Read::Failed(ErrorKind::Protocol)
                        }
                        tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => {
                            sh.note_error(ErrorKind::Protocol, || {
                                format!("the server broke the WebSocket protocol: {e}")
                            });
                            Read::Failed(ErrorKind::Protocol)
                        }
                        _ => Read::Closed(CLOSED_ABNORMALLY),
                    };
                }
            };
            self.counts.received += 1;
            self.counts.bytes_received += data.len() as u64;
            return Read::Message(Came {
                at: Instant::now(),
                data,
            });
        }
    }

    /// Sends `message`, rendered for the session's user.
    async fn send<C: Connector>(
        &mut self,
        sh: &Shared<C>,
        message: &WsMessage,
        ctx: &mut RenderCtx<'_>,
    ) -> Result<(), Halt> {
        let msg = match message.kind {
            WsKind::Text => {
                self.text.clear();
                message.text.render(ctx, &mut self.text);
                let text = String::from_utf8_lossy(&self.text).into_owned();
                Message::Text(text.into())
            }
            WsKind::Binary => Message::Binary(Bytes::from(message.binary.clone())),
        };
        let len = match &msg {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        let sent = tokio::select! {
            biased;
            _ = sh.kill.cancelled() => return Err(Halt::Killed),
            r = tokio::time::timeout(sh.timeout, self.ws.send(msg)) => r,
        };
        match sent {
            Ok(Ok(())) => {
                self.counts.sent += 1;
                self.counts.bytes_sent += len as u64;
                Ok(())
            }
            // The server stopped reading for a whole request timeout.
            Err(_) => Err(Halt::Failed(ErrorKind::Timeout)),
            Ok(Err(_)) => Err(Halt::Closed(CLOSED_ABNORMALLY)),
        }
    }

    /// Closes the socket with `code` and waits a little for the
    /// server's answer.
    async fn close<C: Connector>(&mut self, sh: &Shared<C>, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        if self.ws.close(Some(frame)).await.is_err() {
            return;
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        // Messages still coming are counted; the close ends it.
        while let Read::Message(_) = self.read(sh, deadline, false).await {}
    }
}

/// Whether `came` is what `e` waits for.
fn matches(e: &WsExpect, came: &Came, session: &mut SessionVars<'_>) -> bool {
    let Some(check) = &e.matcher else {
        return true;
    };
    let view = ResponseView {
        status: 101,
        headers: &[],
        body: &came.data,
        latency: Duration::ZERO,
    };
    let mut json = LazyJson::new(&came.data);
    let mut ctx = session.ctx();
    check.passes(&view, &mut json, &mut ctx)
}

/// Takes `e`'s values from the message that matched it; each that found
/// nothing is a miss of the endpoint.
fn extract(
    e: &WsExpect,
    came: &Came,
    session: &mut SessionVars<'_>,
    (endpoint, recorder): (usize, &RefCell<Recorder>),
) {
    let view = ResponseView {
        status: 101,
        headers: &[],
        body: &came.data,
        latency: Duration::ZERO,
    };
    let mut json = LazyJson::new(&came.data);
    for x in &e.extract {
        let taken = x.take(&view, &mut json, session.rng);
        if taken.missed() {
            recorder.borrow_mut().record_missed(endpoint);
        }
        super::flow::keep(session.vars, session.lists, x.slot, taken);
    }
}

/// The parts of a session that a live step's messages read and set.
struct SessionVars<'a> {
    vars: &'a mut Vec<Option<String>>,
    lists: &'a mut Vec<Vec<String>>,
    rng: &'a mut fastrand::Rng,
    vu: u64,
    iteration: u64,
}

impl SessionVars<'_> {
    fn ctx(&mut self) -> RenderCtx<'_> {
        RenderCtx {
            vars: self.vars,
            vu: self.vu,
            iteration: self.iteration,
            rng: self.rng,
            now_ms: super::flow::unix_ms(),
        }
    }
}

impl<C: Connector> Shared<C> {
    /// Resolves when a live connection held open is to close: the load
    /// phase's time is over, or the run was stopped. Not when the request
    /// bound was reached: a bound counts connections, and those open go on.
    pub(super) async fn leaving(&self) {
        self.end.cancelled().await;
        if self.budget.get() == Some(0) {
            self.stop.cancelled().await;
        }
    }

    /// Opens step `at`'s WebSocket (due at `due`, or now) and runs
    /// `ws`'s actions on it, then records the connection.
    pub(super) async fn run_ws(
        &self,
        session: &mut Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        step: &plan::Step,
        ws: &WsSession,
        due: Option<Instant>,
    ) {
        let (asked, sent) = self.ceiling_turn().await;
        let due = due.unwrap_or(asked);
        let mut phases = Phases::default();
        let mut counts = LiveSession::default();
        let opened = self
            .open_ws(session, arm, step, ws, &mut phases, &mut counts)
            .await;
        let upgraded = Instant::now();
        let mut sample = Sample {
            endpoint: step.endpoint,
            due: due.saturating_duration_since(self.start),
            lag: sent.saturating_duration_since(due),
            service: upgraded - sent,
            phases,
            outcome: Outcome::Response { status: 101 },
            checks_failed: false,
            client: ClientWork {
                opened: u32::from(phases.connect.is_some()),
                ..ClientWork::default()
            },
        };
        let socket = match opened {
            Ok(ws) => ws,
            Err(kind) => {
                sample.outcome = Outcome::Failed(kind);
                let mut r = recorder.borrow_mut();
                r.record(&sample);
                r.record_live(step.endpoint, WS, &counts);
                return;
            }
        };
        counts.opened = true;
        recorder.borrow_mut().record_live_open(
            step.endpoint,
            WS,
            sample.latency(),
            upgraded.saturating_duration_since(self.start),
        );
        let mut socket = Socket {
            ws: socket,
            queue: VecDeque::new(),
            cap: ws.queue,
            counts,
            last_send: None,
            failed: None,
            text: Vec::new(),
        };
        let halt = self
            .run_actions(session, (step.endpoint, recorder), ws, &mut socket)
            .await;
        match halt {
            None => socket.close(self, 1000).await,
            Some(Halt::Ended) => socket.close(self, 1001).await,
            Some(Halt::Closed(code)) => {
                socket.counts.server_close = Some(code);
                if !normal_close(code) {
                    socket.fail(ErrorKind::WsClosed);
                    self.note_error(ErrorKind::WsClosed, || {
                        format!(
                            "the server closed a WebSocket with code {code}{}",
                            close_meaning(code)
                        )
                    });
                }
            }
            Some(Halt::Failed(kind)) => socket.fail(kind),
            // Still open when the run's grace period ran out: closed by
            // throng, as at the load's end, not a failure of the server.
            Some(Halt::Killed) => {}
        }
        socket.counts.closed_at = Some(Instant::now().saturating_duration_since(self.start));
        if let Some(kind) = socket.failed {
            sample.outcome = Outcome::Failed(kind);
        }
        // What `if:` and `while:` see of it: 101 for a session that went
        // well, no status for one that failed.
        session.last_status = socket.failed.is_none().then_some(101);
        session.last_checks = socket.failed.is_none();
        let mut r = recorder.borrow_mut();
        r.record(&sample);
        r.record_live(step.endpoint, WS, &socket.counts);
    }

    /// Dials the target and asks to upgrade, with the step's headers,
    /// the user's cookies and agent, and the subprotocols offered.
    async fn open_ws(
        &self,
        session: &mut Session<C::Conn>,
        arm: &Arm<C>,
        step: &plan::Step,
        ws: &WsSession,
        phases: &mut Phases,
        counts: &mut LiveSession,
    ) -> Result<WebSocketStream<Stream>, ErrorKind> {
        let scenario = &self.scenario;
        counts.refused = true;
        let request = self
            .render_live(session, arm, step, |parts| {
                upgrade_request(parts, &ws.subprotocols)
            })
            .ok_or(ErrorKind::Protocol)?;
        let dialer = arm.live.as_ref().ok_or(ErrorKind::Connect)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_write_buffer_size(plan::MAX_WS_MESSAGE * 2)
            .max_message_size(Some(plan::MAX_WS_MESSAGE))
            .max_frame_size(Some(plan::MAX_WS_MESSAGE));
        let caller = session.capture.caller();
        let connecting = Cell::new(true);
        let open = async {
            let stream = dialer.dial(phases, caller).await?;
            connecting.set(false);
            Ok::<_, Failure>(
                tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await,
            )
        };
        let timeout = step.timeout.unwrap_or(self.timeout);
        let done = tokio::select! {
            biased;
            _ = self.kill.cancelled() => return Err(ErrorKind::Cancelled),
            r = tokio::time::timeout(timeout, open) => r,
        };
        let result = match done {
            Err(_) if connecting.get() => return Err(ErrorKind::ConnectTimeout),
            Err(_) => {
                counts.refused = false;
                counts.upgrade_failed = Some(0);
                return Err(ErrorKind::Timeout);
            }
            Ok(Err(failure)) => {
                if let Some(detail) = failure.detail {
                    self.note_error(failure.kind, || detail.to_string());
                }
                return Err(failure.kind);
            }
            Ok(Ok(r)) => r,
        };
        // It reached the server: refused no more, whatever it answered.
        counts.refused = false;
        match result {
            Ok((socket, response)) => {
                if scenario.cookies {
                    for v in response.headers().get_all(http::header::SET_COOKIE) {
                        if let Ok(v) = v.to_str() {
                            session.jar.set(v);
                        }
                    }
                }
                Ok(socket)
            }
            Err(e) => Err(self.not_upgraded(step, e, counts)),
        }
    }

    /// Counts an upgrade the server refused, or that broke: its error kind.
    fn not_upgraded(
        &self,
        step: &plan::Step,
        e: tungstenite::Error,
        counts: &mut LiveSession,
    ) -> ErrorKind {
        match e {
            tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                counts.upgrade_failed = Some(status);
                self.note_error(ErrorKind::UpgradeFailed, || {
                    format!(
                        "{}: the server answered the WebSocket upgrade with {status}, not 101",
                        self.scenario
                            .endpoints
                            .get(step.endpoint)
                            .map_or("", String::as_str)
                    )
                });
                ErrorKind::UpgradeFailed
            }
            tungstenite::Error::Io(_) => {
                counts.upgrade_failed = Some(0);
                ErrorKind::Reset
            }
            e => {
                counts.upgrade_failed = Some(0);
                self.note_error(ErrorKind::Protocol, || {
                    format!("a WebSocket upgrade failed: {e}")
                });
                ErrorKind::Protocol
            }
        }
    }

    /// Runs the session's actions in order; `None` when they all ran.
    async fn run_actions(
        &self,
        session: &mut Session<C::Conn>,
        (endpoint, recorder): (usize, &RefCell<Recorder>),
        ws: &WsSession,
        socket: &mut Socket,
    ) -> Option<Halt> {
        let mut vars = SessionVars {
            vars: &mut session.vars,
            lists: &mut session.lists,
            rng: &mut session.rng,
            vu: session.vu,
            iteration: session.iteration,
        };
        for action in &ws.actions {
            let done = match action {
                WsAction::Send(m) => {
                    socket.last_send = Some(Instant::now());
                    socket.send(self, m, &mut vars.ctx()).await
                }
                WsAction::Expect(e) => {
                    self.expect(socket, e, (endpoint, recorder), &mut vars)
                        .await
                }
                WsAction::Hold(d) => self.hold(socket, *d).await,
                WsAction::Every {
                    interval,
                    period,
                    send,
                    expect,
                } => {
                    let every = Every {
                        interval: *interval,
                        period: *period,
                        send,
                        expect: expect.as_ref(),
                    };
                    self.every(socket, &every, (endpoint, recorder), &mut vars)
                        .await
                }
                WsAction::Close(code) => {
                    socket.close(self, *code).await;
                    return None;
                }
            };
            if let Err(halt) = done {
                return Some(halt);
            }
        }
        None
    }

    /// Waits for the message `e` asks for: first among those kept, then
    /// as they come. A round trip is recorded when a `send` before it is
    /// unanswered and the message came after it.
    async fn expect(
        &self,
        socket: &mut Socket,
        e: &WsExpect,
        (endpoint, recorder): (usize, &RefCell<Recorder>),
        vars: &mut SessionVars<'_>,
    ) -> Result<(), Halt> {
        let deadline = Instant::now() + e.timeout;
        let found = loop {
            if let Some(came) = socket.queue.pop_front() {
                if matches(e, &came, vars) {
                    break came;
                }
                continue;
            }
            match socket.read(self, deadline, false).await {
                Read::Message(came) if matches(e, &came, vars) => break came,
                Read::Message(_) => {}
                Read::Timeout => {
                    socket.counts.expect_timeouts += 1;
                    socket.fail(ErrorKind::MessageTimeout);
                    socket.last_send = None;
                    return Ok(());
                }
                Read::Closed(code) => {
                    // The socket closed while a message was awaited: an
                    // error whatever the code.
                    socket.fail(ErrorKind::WsClosed);
                    return Err(Halt::Closed(code));
                }
                Read::Failed(kind) => return Err(Halt::Failed(kind)),
                Read::Ended => return Err(Halt::Ended),
                Read::Killed => return Err(Halt::Killed),
            }
        };
        if let Some(sent) = socket.last_send.take() {
            if found.at >= sent {
                recorder.borrow_mut().record_live_time(
                    endpoint,
                    WS,
                    stats::LiveTime::RoundTrip,
                    found.at - sent,
                );
            }
        }
        extract(e, &found, vars, (endpoint, recorder));
        Ok(())
    }

    /// Stays connected for `d`, keeping what comes; ends early, and
    /// normally, when the load phase ends.
    async fn hold(&self, socket: &mut Socket, d: Duration) -> Result<(), Halt> {
        let deadline = Instant::now() + d;
        loop {
            match socket.read(self, deadline, true).await {
                Read::Message(came) => socket.keep(came),
                Read::Timeout => return Ok(()),
                Read::Closed(code) => return Err(Halt::Closed(code)),
                Read::Failed(kind) => return Err(Halt::Failed(kind)),
                Read::Ended => return Err(Halt::Ended),
                Read::Killed => return Err(Halt::Killed),
            }
        }
    }

    /// Sends a message every interval for a while, the first at once.
    /// With an `expect`, each send waits for its reply in order, its
    /// round trip measured from the send's intended time (a tick of the
    /// interval, however late the send went), and a reply not come within
    /// the expect's timeout is counted as one that timed out.
    async fn every(
        &self,
        socket: &mut Socket,
        every: &Every<'_>,
        (endpoint, recorder): (usize, &RefCell<Recorder>),
        vars: &mut SessionVars<'_>,
    ) -> Result<(), Halt> {
        let start = Instant::now();
        let stop_at = start + every.period;
        let mut next = start;
        let mut pending: VecDeque<Instant> = VecDeque::new();
        loop {
            let now = Instant::now();
            if let Some(e) = every.expect {
                while pending.front().is_some_and(|&t| now >= t + e.timeout) {
                    pending.pop_front();
                    socket.counts.expect_timeouts += 1;
                    socket.fail(ErrorKind::MessageTimeout);
                }
            }
            if next < stop_at && now >= next {
                socket.send(self, every.send, &mut vars.ctx()).await?;
                if every.expect.is_some() {
                    pending.push_back(next);
                }
                next += every.interval;
                continue;
            }
            let sending = next < stop_at;
            let deadline = match (sending, every.expect, pending.front()) {
                (true, _, _) => next,
                (false, Some(e), Some(&t)) => t + e.timeout,
                _ => return Ok(()),
            };
            match socket.read(self, deadline, true).await {
                Read::Message(came) => match every.expect {
                    Some(e) if !pending.is_empty() && matches(e, &came, vars) => {
                        if let Some(intended) = pending.pop_front() {
                            recorder.borrow_mut().record_live_time(
                                endpoint,
                                WS,
                                stats::LiveTime::RoundTrip,
                                came.at.saturating_duration_since(intended),
                            );
                        }
                        extract(e, &came, vars, (endpoint, recorder));
                    }
                    _ => socket.keep(came),
                },
                Read::Timeout => {}
                Read::Closed(code) => {
                    if !pending.is_empty() {
                        socket.fail(ErrorKind::WsClosed);
                    }
                    return Err(Halt::Closed(code));
                }
                Read::Failed(kind) => return Err(Halt::Failed(kind)),
                Read::Ended => return Err(Halt::Ended),
                Read::Killed => return Err(Halt::Killed),
            }
        }
    }
}

/// An `every` action's parts.
struct Every<'a> {
    interval: Duration,
    period: Duration,
    send: &'a WsMessage,
    expect: Option<&'a WsExpect>,
}

/// The upgrade request: the step's URL with `ws` or `wss`, its headers,
/// the user's cookies and agent, the subprotocols offered. `None` when
/// a rendered value cannot go in a request.
fn upgrade_request(
    parts: &crate::request::Parts<'_>,
    subprotocols: &[String],
) -> Option<http::Request<()>> {
    use http::header::{HeaderName, HeaderValue};
    let scheme = if parts.scheme == "https" { "wss" } else { "ws" };
    let path = std::str::from_utf8(parts.path).ok()?;
    let mut request = format!("{scheme}://{}{path}", parts.authority)
        .into_client_request()
        .ok()?;
    let headers = request.headers_mut();
    for (name, value) in parts.headers.iter() {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        headers.insert(name, HeaderValue::from_bytes(value).ok()?);
    }
    if let Some(agent) = parts.agent {
        headers.insert(http::header::USER_AGENT, HeaderValue::from_str(agent).ok()?);
    }
    if let Some(cookie) = parts.cookie {
        headers.insert(http::header::COOKIE, HeaderValue::from_str(cookie).ok()?);
    }
    if !subprotocols.is_empty() {
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&subprotocols.join(", ")).ok()?,
        );
    }
    Some(request)
}

/// What a close code means, for the example error message.
fn close_meaning(code: u16) -> &'static str {
    match code {
        1002 => " (protocol error)",
        1003 => " (unsupported data)",
        1006 => " (no close frame: the connection dropped)",
        1008 => " (policy violation)",
        1009 => " (message too big)",
        1011 => " (internal error)",
        1012 => " (service restart)",
        1013 => " (try again later)",
        _ => "",
    }
}
