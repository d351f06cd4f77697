//! Server-sent event streams: a step that subscribes with a GET (hyper's
//! HTTP/1.1 client over the arm's live `Dialer`) and reads events as they
//! come (`crate::sse::Parser`), with the step's checks and extracts on
//! each, until the stream ends, its `events` came or its `for` passed;
//! then, if asked, reconnects with `Last-Event-ID`.
//!
//! The subscription is one sample on the step's endpoint (due at the
//! step's intended start, its latency the time to the response's head,
//! its outcome the stream's); each connection, the first and every
//! reconnection, is counted as an attempt in the endpoint's `LiveStats`,
//! with the time to the first event and the gaps between events.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use plan::SseStream;
use stats::{LiveSession, LiveTime};

use super::*;
use crate::sse::Parser;

/// The endpoint kind live numbers are kept under.
const SSE: &str = "sse";

/// A close code for a stream the server ended (an event stream has no
/// close frames): in `closed_by_server`.
const STREAM_ENDED: u16 = 0;

/// Why one connection of a stream stopped.
enum StreamEnd {
    /// The step's `events` came or its `for` passed.
    Done,
    /// The server ended the stream.
    Ended,
    /// The connection broke mid-stream.
    Broken,
    /// The load phase is over, or the run stopped.
    Leaving,
    Killed,
    /// It never opened, or the stream broke the format.
    Failed(ErrorKind),
}

/// A subscription, over its connections.
#[derive(Default)]
struct Follow {
    events: u64,
    last: Option<Instant>,
    checks_failed: bool,
    stop_flow: bool,
}

/// What a subscription's connections share.
struct StreamCx<'a> {
    parser: &'a mut Parser,
    follow: &'a mut Follow,
    /// The subscription's sample.
    sample: &'a mut Sample,
    /// 0 for the first connection.
    attempt: u32,
    /// When the subscription was sent (after the `--max-rate` ceiling).
    sent: Instant,
    /// The step's intended start.
    due: Instant,
    /// When `for` ends it.
    deadline: Option<Instant>,
}

/// What a subscription that did not open answered.
enum NotOpened {
    /// A failure before an answer (connect, TLS, timeout, reset).
    Failed(ErrorKind),
    /// An answer that is not an event stream: its status.
    Status(u16),
}

/// An open stream: the body, and the handle that keeps its connection.
type Body = (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    hyper::body::Incoming,
);

impl<C: Connector> Shared<C> {
    /// Subscribes to step's stream (due at `due`, or now) and follows it
    /// as `sse` says, then records the subscription. Returns whether a
    /// failed check with `on_fail: stop_flow` ends the flow.
    pub(super) async fn run_sse(
        &self,
        session: &mut Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        step: &plan::Step,
        sse: &SseStream,
        due: Option<Instant>,
    ) -> bool {
        let (asked, sent) = self.ceiling_turn().await;
        let due = due.unwrap_or(asked);
        let deadline = sse.period.map(|p| due + p);
        let mut parser = Parser::new(plan::MAX_WS_MESSAGE);
        let mut follow = Follow::default();
        let mut sample = Sample {
            endpoint: step.endpoint,
            due: due.saturating_duration_since(self.start),
            lag: sent.saturating_duration_since(due),
            service: Duration::ZERO,
            phases: Phases::default(),
            outcome: Outcome::Response { status: 200 },
            checks_failed: false,
            client: ClientWork::default(),
        };
        let mut failure = None;
        for attempt in 0..=sse.reconnects {
            let mut cx = StreamCx {
                parser: &mut parser,
                follow: &mut follow,
                sample: &mut sample,
                attempt,
                sent,
                due,
                deadline,
            };
            let end = self
                .connection(session, (arm, recorder), step, sse, &mut cx)
                .await;
            let last = attempt == sse.reconnects;
            match end {
                StreamEnd::Ended | StreamEnd::Broken if !last => {}
                StreamEnd::Broken => {
                    failure.get_or_insert(ErrorKind::Reset);
                    break;
                }
                StreamEnd::Failed(kind) => {
                    failure.get_or_insert(kind);
                    break;
                }
                // Still open when the run's grace period ran out: closed
                // by throng, as at the load's end, not a failure.
                StreamEnd::Done | StreamEnd::Ended | StreamEnd::Leaving | StreamEnd::Killed => {
                    break
                }
            }
            // Wait as the stream asked (bounded), then resume.
            let wait = parser
                .retry()
                .unwrap_or(plan::DEFAULT_SSE_RETRY)
                .min(plan::MAX_SSE_RETRY);
            let resume = Instant::now() + wait;
            let until = deadline.map_or(resume, |d| d.min(resume));
            tokio::select! {
                biased;
                _ = self.kill.cancelled() => break,
                _ = self.leaving() => break,
                _ = sleep_until(until) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        if let Some(kind) = failure {
            sample.outcome = Outcome::Failed(kind);
        }
        sample.checks_failed = follow.checks_failed;
        session.last_checks = !follow.checks_failed;
        if let Outcome::Response { status } = sample.outcome {
            session.last_status = Some(status);
        }
        recorder.borrow_mut().record(&sample);
        follow.stop_flow
    }

    /// One connection of a stream: opened (or not), read, and counted.
    async fn connection(
        &self,
        session: &mut Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        step: &plan::Step,
        sse: &SseStream,
        cx: &mut StreamCx<'_>,
    ) -> StreamEnd {
        // The first connection is due when the step is; each later one
        // when it is tried.
        let tried = if cx.attempt == 0 {
            cx.due
        } else {
            Instant::now()
        };
        let mut counts = LiveSession {
            reconnect: cx.attempt > 0,
            ..LiveSession::default()
        };
        let mut phases = Phases::default();
        let opened = self
            .open_stream(session, arm, step, cx.parser.last_event_id(), &mut phases)
            .await;
        cx.sample.client.opened += u32::from(phases.connect.is_some());
        let at = Instant::now();
        if cx.attempt == 0 {
            cx.sample.phases = phases;
            cx.sample.service = at - cx.sent;
        }
        let end = match opened {
            Err(NotOpened::Failed(kind)) => {
                counts.refused = true;
                StreamEnd::Failed(kind)
            }
            Err(NotOpened::Status(status)) => {
                counts.upgrade_failed = Some(status);
                if status >= 400 {
                    // Counted under its status's kind.
                    cx.sample.outcome = Outcome::Response { status };
                    StreamEnd::Done
                } else {
                    self.note_error(ErrorKind::Protocol, || {
                        format!(
                            "{}: answered {status}, not an event stream",
                            self.scenario
                                .endpoints
                                .get(step.endpoint)
                                .map_or("", String::as_str)
                        )
                    });
                    StreamEnd::Failed(ErrorKind::Protocol)
                }
            }
            Ok((sender, body)) => {
                counts.opened = true;
                recorder.borrow_mut().record_live_open(
                    step.endpoint,
                    SSE,
                    at.saturating_duration_since(tried),
                    at.saturating_duration_since(self.start),
                );
                cx.parser.reset();
                let end = self
                    .read_stream(session, (step, recorder), sse, body, cx, &mut counts)
                    .await;
                drop(sender);
                counts.closed_at = Some(Instant::now().saturating_duration_since(self.start));
                counts.server_close = match end {
                    StreamEnd::Ended => Some(STREAM_ENDED),
                    StreamEnd::Broken => Some(stats::CLOSED_ABNORMALLY),
                    _ => None,
                };
                end
            }
        };
        recorder
            .borrow_mut()
            .record_live(step.endpoint, SSE, &counts);
        end
    }

    /// Reads one connection's events until the stream ends or the step's
    /// bounds are reached.
    async fn read_stream(
        &self,
        session: &mut Session<C::Conn>,
        (step, recorder): (&plan::Step, &RefCell<Recorder>),
        sse: &SseStream,
        mut body: hyper::body::Incoming,
        cx: &mut StreamCx<'_>,
        counts: &mut LiveSession,
    ) -> StreamEnd {
        let (deadline, due) = (cx.deadline, cx.due);
        let (parser, follow) = (&mut *cx.parser, &mut *cx.follow);
        let enough = |f: &Follow| sse.events.is_some_and(|n| f.events >= n);
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.kill.cancelled() => return StreamEnd::Killed,
                _ = self.leaving() => return StreamEnd::Leaving,
                _ = sleep_until(deadline.unwrap_or(due)), if deadline.is_some() => {
                    return StreamEnd::Done
                }
                f = body.frame() => f,
            };
            let data = match frame {
                None => return StreamEnd::Ended,
                Some(Err(_)) => return StreamEnd::Broken,
                Some(Ok(f)) => match f.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            counts.bytes_received += data.len() as u64;
            let now = Instant::now();
            let Session {
                vars,
                lists,
                rng,
                vu,
                iteration,
                ..
            } = session;
            let mut on_event = |e: crate::sse::Event<'_>| {
                if enough(follow) {
                    return;
                }
                follow.events += 1;
                counts.received += 1;
                let mut r = recorder.borrow_mut();
                match follow.last {
                    None => r.record_live_time(
                        step.endpoint,
                        SSE,
                        LiveTime::FirstEvent,
                        now.saturating_duration_since(due),
                    ),
                    Some(last) => r.record_live_time(
                        step.endpoint,
                        SSE,
                        LiveTime::Gap,
                        now.saturating_duration_since(last),
                    ),
                }
                follow.last = Some(now);
                let mut user = (&mut **vars, &mut **lists, &mut *rng, *vu, *iteration);
                read_event(
                    step,
                    e.data,
                    now.saturating_duration_since(due),
                    &mut r,
                    &mut user,
                    follow,
                );
            };
            if parser.feed(&data, &mut on_event).is_err() {
                self.note_error(ErrorKind::Protocol, || {
                    format!(
                        "an event stream sent a line or event over {} bytes",
                        plan::MAX_WS_MESSAGE
                    )
                });
                return StreamEnd::Failed(ErrorKind::Protocol);
            }
            if enough(follow) {
                return StreamEnd::Done;
            }
        }
    }

    /// Dials the target and asks for the stream: a GET with the step's
    /// headers, the user's cookies and agent, `Accept: text/event-stream`
    /// and, resuming, `Last-Event-ID`. The stream's body once its head
    /// said 200 and `text/event-stream`.
    async fn open_stream(
        &self,
        session: &mut Session<C::Conn>,
        arm: &Arm<C>,
        step: &plan::Step,
        last_id: &str,
        phases: &mut Phases,
    ) -> Result<Body, NotOpened> {
        let scenario = &self.scenario;
        let request = self
            .render_live(session, arm, step, |parts| stream_request(parts, last_id))
            .ok_or(NotOpened::Failed(ErrorKind::Protocol))?;
        let dialer = arm
            .live
            .as_ref()
            .ok_or(NotOpened::Failed(ErrorKind::Connect))?;
        let caller = session.capture.caller();
        let connecting = Cell::new(true);
        let open = async {
            let stream = dialer.dial(phases, caller).await.map_err(|f| {
                if let Some(detail) = f.detail {
                    self.note_error(f.kind, || detail.to_string());
                }
                f.kind
            })?;
            connecting.set(false);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| ErrorKind::Protocol)?;
            tokio::task::spawn_local(async move {
                let _ = conn.await;
            });
            let response = sender.send_request(request).await.map_err(|e| {
                if e.is_parse() {
                    ErrorKind::Protocol
                } else {
                    ErrorKind::Reset
                }
            })?;
            Ok::<_, ErrorKind>((sender, response))
        };
        let timeout = step.timeout.unwrap_or(self.timeout);
        let done = tokio::select! {
            biased;
            _ = self.kill.cancelled() => return Err(NotOpened::Failed(ErrorKind::Cancelled)),
            r = tokio::time::timeout(timeout, open) => r,
        };
        let (sender, response) = match done {
            Err(_) if connecting.get() => return Err(NotOpened::Failed(ErrorKind::ConnectTimeout)),
            Err(_) => return Err(NotOpened::Failed(ErrorKind::Timeout)),
            Ok(Err(kind)) => return Err(NotOpened::Failed(kind)),
            Ok(Ok(r)) => r,
        };
        if scenario.cookies {
            for v in response.headers().get_all(http::header::SET_COOKIE) {
                if let Ok(v) = v.to_str() {
                    session.jar.set(v);
                }
            }
        }
        let status = response.status().as_u16();
        let is_stream = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
            });
        if status != 200 || !is_stream {
            return Err(NotOpened::Status(status));
        }
        Ok((sender, response.into_body()))
    }
}

/// The subscription's request. `None` when a rendered value cannot go in
/// a request.
fn stream_request(
    parts: &crate::request::Parts<'_>,
    last_id: &str,
) -> Option<http::Request<Empty<Bytes>>> {
    use http::header::{self, HeaderName, HeaderValue};
    let path = std::str::from_utf8(parts.path).ok()?;
    let mut request = http::Request::get(path).body(Empty::new()).ok()?;
    let headers = request.headers_mut();
    headers.insert(header::HOST, HeaderValue::from_str(parts.authority).ok()?);
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in parts.headers.iter() {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        headers.insert(name, HeaderValue::from_bytes(value).ok()?);
    }
    if let Some(agent) = parts.agent {
        headers.insert(header::USER_AGENT, HeaderValue::from_str(agent).ok()?);
    }
    if let Some(cookie) = parts.cookie {
        headers.insert(header::COOKIE, HeaderValue::from_str(cookie).ok()?);
    }
    if !last_id.is_empty() {
        headers.insert(
            HeaderName::from_static("last-event-id"),
            HeaderValue::from_str(last_id).ok()?,
        );
    }
    Some(request)
}

/// A session's variables, lists, random numbers, user and iteration.
type User<'a> = (
    &'a mut [Option<String>],
    &'a mut [Vec<String>],
    &'a mut fastrand::Rng,
    u64,
    u64,
);

/// Runs the step's checks on one event's data (each a pass or a failure
/// of the check), then its extracts (each event with a match sets the
/// variable; one without leaves it as it was).
fn read_event(
    step: &plan::Step,
    data: &[u8],
    latency: Duration,
    recorder: &mut Recorder,
    (vars, lists, rng, vu, iteration): &mut User<'_>,
    follow: &mut Follow,
) {
    if step.checks.is_empty() && step.extract.is_empty() {
        return;
    }
    let view = ResponseView {
        status: 200,
        headers: &[],
        body: data,
        latency,
    };
    let mut json = LazyJson::new(data);
    let mut ctx = RenderCtx {
        vars,
        vu: *vu,
        iteration: *iteration,
        rng,
        now_ms: super::flow::unix_ms(),
    };
    for check in &step.checks {
        let passed = check.passes(&view, &mut json, &mut ctx);
        recorder.record_check(check.id, passed);
        if !passed {
            follow.checks_failed = true;
            follow.stop_flow |= check.on_fail == OnFail::StopFlow;
        }
    }
    for x in &step.extract {
        let taken = x.take(&view, &mut json, rng);
        if !taken.missed() {
            super::flow::keep(vars, lists, x.slot, taken);
        }
    }
}
