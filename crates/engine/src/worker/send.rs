//! Sending one request: a connection (reused, replaced or opened), the
//! run's `resend` policy, and around that the step's retries and
//! redirects, each within the request's one sample.

use super::*;

pub(super) enum End {
    Done(Result<Response, Failure>),
    TimedOut,
    Killed,
}

/// What following a step's redirects works with.
pub(super) struct Chain<'a, 'r, C: Connector> {
    pub(super) arm: &'a Arm<C>,
    /// The session's connection to the arm's target.
    pub(super) conn: &'a mut Option<C::Conn>,
    pub(super) step: &'a plan::Step,
    /// The step's own request.
    pub(super) first: &'a Outgoing<'a>,
    pub(super) timeout: Duration,
    pub(super) capture: &'a mut Capture,
    pub(super) jar: &'a mut Jar,
    pub(super) ctx: &'a mut RenderCtx<'r>,
    pub(super) agent: Option<&'a str>,
}

impl<C: Connector> Shared<C> {
    /// Sends one request due at `due` on `conn` (opening one if needed) and
    /// returns its sample for `endpoint`, not yet recorded (checks may still
    /// mark it). `None` means due now: in the closed model, and for steps
    /// after the first of a session, the intended send time is the actual
    /// one, so lag is zero by definition. `method` is the request's, for
    /// the run's `resend` policy (see [`Stage`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_one(
        &self,
        connector: &C,
        conn: &mut Option<C::Conn>,
        due: Option<Instant>,
        endpoint: usize,
        req: &Outgoing<'_>,
        method: &http::Method,
        timeout: Duration,
        capture: &mut Capture,
    ) -> Sample {
        let asked = Instant::now();
        // A send held back by the ceiling is late by that much, in the
        // closed model too; without one, a closed-model send is due when
        // it goes (lag 0 by definition).
        let sent = match &self.ceiling {
            Some(ceiling) => {
                tokio::select! {
                    _ = ceiling.turn() => {}
                    _ = self.kill.cancelled() => {}
                }
                Instant::now()
            }
            None => asked,
        };
        let due = due.unwrap_or(asked);
        let mut phases = Phases::default();
        let connecting = Cell::new(false);
        let mut work = ClientWork::default();
        self.in_flight.set(self.in_flight.get() + 1);
        let end = {
            let attempt = tokio::time::timeout(
                timeout,
                self.attempt(
                    connector,
                    conn,
                    req,
                    method,
                    &mut phases,
                    &connecting,
                    capture,
                    &mut work,
                ),
            );
            tokio::select! {
                biased;
                r = attempt => match r {
                    Ok(r) => End::Done(r),
                    Err(_) => End::TimedOut,
                },
                _ = self.kill.cancelled() => End::Killed,
            }
        };
        self.in_flight.set(self.in_flight.get() - 1);
        let done = Instant::now();
        let outcome = match end {
            End::Done(Ok(resp)) => Outcome::Response {
                status: resp.status,
            },
            End::Done(Err(failure)) => {
                *conn = None;
                if let Some(detail) = failure.detail {
                    self.note_error(failure.kind, || detail.to_string());
                }
                Outcome::Failed(failure.kind)
            }
            End::TimedOut => {
                *conn = None;
                Outcome::Failed(if connecting.get() {
                    ErrorKind::ConnectTimeout
                } else {
                    ErrorKind::Timeout
                })
            }
            End::Killed => {
                *conn = None;
                Outcome::Failed(ErrorKind::Cancelled)
            }
        };
        Sample {
            endpoint,
            due: due.saturating_duration_since(self.start),
            lag: sent.saturating_duration_since(due),
            service: done - sent,
            phases,
            outcome,
            checks_failed: false,
            client: work,
        }
    }

    /// Exchanges `req` on `conn`, opening a connection when there is none.
    /// A reused connection found closed while idle is replaced before
    /// anything is written (`closed_idle`); one that closes after the
    /// request was written and before any byte of a response is the
    /// request's failure, unless the run's `resend` policy allows one
    /// re-send of `method` on a new connection (`resent`). Nothing is
    /// sent again behind the counts.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn attempt(
        &self,
        connector: &C,
        conn: &mut Option<C::Conn>,
        req: &Outgoing<'_>,
        method: &http::Method,
        phases: &mut Phases,
        connecting: &Cell<bool>,
        capture: &mut Capture,
        work: &mut ClientWork,
    ) -> Result<Response, Failure> {
        loop {
            if let Some(c) = conn.as_mut() {
                if c.closed_while_idle() {
                    *conn = None;
                    work.closed_idle += 1;
                }
            }
            let fresh = conn.is_none();
            if fresh {
                connecting.set(true);
                phases.connect = None;
                let opened = connector.connect(phases, capture.source).await;
                // A connection counts as opened once TCP connected, even if
                // its TLS handshake then failed.
                work.opened += u32::from(phases.connect.is_some());
                *conn = Some(opened?);
                connecting.set(false);
            }
            let Some(c) = conn.as_mut() else {
                return Err(Failure::new(ErrorKind::Connect));
            };
            capture.clear();
            match c.exchange(req, phases, capture).await {
                Ok(resp) => {
                    if !c.reusable() {
                        *conn = None;
                    }
                    return Ok(resp);
                }
                Err(f) => {
                    *conn = None;
                    match f.stage {
                        // Nothing left: the connection was gone already.
                        Stage::NotSent if !fresh => work.closed_idle += 1,
                        Stage::Unanswered
                            if !fresh
                                && work.resent == 0
                                && self.scenario.clients.resend.allows(method) =>
                        {
                            work.resent += 1;
                        }
                        _ => return Err(f),
                    }
                    phases.ttfb = None;
                }
            }
        }
    }

    /// Follows the redirects of a step's response, `sample`: each hop on
    /// the session's connection when it stays on the target's origin, on
    /// a connection of its own to another allowed host, and never
    /// anywhere else (`blocked`). Returns the sample of the whole chain,
    /// due and sent when the step's request was, ending when the last
    /// response did, with the last outcome; and the hops followed.
    pub(super) async fn follow(
        &self,
        chain: &mut Chain<'_, '_, C>,
        mut sample: Sample,
    ) -> (Sample, u64) {
        let reach = &chain.arm.reach;
        let target = &chain.arm.target;
        let first_sent = self.start + sample.due + sample.lag;
        let Some(mut url) = redirect::url_of(target, chain.first) else {
            return (sample, 0);
        };
        let mut method = chain.step.method.clone();
        let body = body_of(chain.first);
        let scenario = &self.scenario;
        let secret = |name: &str| scenario.is_secret_header(name);
        let mut hops = 0;
        while let Outcome::Response { status } = sample.outcome {
            // Kept only for a redirect's status (`Capture::status`).
            let Some(location) = chain.capture.location.take() else {
                break;
            };
            let Some(hop) = redirect::next(&url, status, &method, &location) else {
                break;
            };
            if hops >= u64::from(reach.max) {
                self.note_error(ErrorKind::TooManyRedirects, || {
                    format!(
                        "still redirected after {} redirects (the scenario's `redirects` allows {})",
                        hops, reach.max
                    )
                });
                sample.outcome = Outcome::Failed(ErrorKind::TooManyRedirects);
                break;
            }
            let same_origin = redirect::same_origin(&hop.url, target);
            let elsewhere = if same_origin {
                None
            } else {
                let connector = matches!(hop.url.scheme(), "http" | "https")
                    .then(|| reach.dialer(&hop.url))
                    .flatten()
                    .and_then(|d| chain.arm.connector.elsewhere(d));
                let Some(connector) = connector else {
                    self.note_error(ErrorKind::Blocked, || {
                        format!(
                            "a redirect to {} was not followed: add its host to the scenario's allowed_hosts to allow it",
                            redirect::shown_origin(&hop.url)
                        )
                    });
                    sample.outcome = Outcome::Failed(ErrorKind::Blocked);
                    break;
                };
                Some(connector)
            };
            // The cookies the redirect set go with the next hop.
            for c in chain.capture.set_cookies.drain(..) {
                chain.jar.set(&c);
            }
            hops += 1;
            let authority = &hop.url[url::Position::BeforeHost..url::Position::AfterPort];
            let path = &hop.url[url::Position::BeforePath..url::Position::AfterQuery];
            let request = HopRequest {
                method: &hop.method,
                scheme: hop.url.scheme(),
                authority,
                path,
                body,
                keep_body: hop.keep_body,
                same_origin,
            };
            let who = Who {
                cookie: chain.jar.header(),
                agent: chain.agent,
            };
            let mut bytes = Vec::new();
            let out = if C::HTTP2 {
                match render_hop_h2(&request, chain.step, chain.ctx, &who, &secret) {
                    Ok(r) => r,
                    Err(_) => {
                        sample.outcome = Outcome::Failed(ErrorKind::Protocol);
                        break;
                    }
                }
            } else {
                render_hop_h1(&request, chain.step, chain.ctx, &who, &secret, &mut bytes);
                Outgoing::H1 {
                    bytes: &bytes,
                    head: hop.method == http::Method::HEAD,
                }
            };
            // Another origin's cookies are not the target's.
            chain.capture.cookies = scenario.cookies && same_origin;
            let endpoint = chain.step.endpoint;
            let mut own = None;
            let (connector, conn) = match &elsewhere {
                None => (&chain.arm.connector, &mut *chain.conn),
                Some(connector) => (connector, &mut own),
            };
            let mut last = self
                .send_one(
                    connector,
                    conn,
                    None,
                    endpoint,
                    &out,
                    &hop.method,
                    chain.timeout,
                    chain.capture,
                )
                .await;
            last.client += sample.client;
            sample = Sample {
                due: sample.due,
                lag: sample.lag,
                service: Instant::now().saturating_duration_since(first_sent),
                phases: sample.phases,
                ..last
            };
            method = hop.method;
            url = hop.url;
        }
        chain.capture.location = None;
        (sample, hops)
    }

    /// Whether the attempt that ended in `sample`, the `attempts`-th of its
    /// logical request, is retried under `policy`: its failure is one the
    /// policy retries, attempts are left, the run goes on and the budget
    /// allows it. A retry or a refusal is recorded.
    pub(super) fn retry_allowed(
        &self,
        policy: &Retry,
        attempts: u32,
        sample: &Sample,
        recorder: &RefCell<Recorder>,
    ) -> bool {
        let Some(cause) = RetryCause::of(sample.outcome) else {
            return false;
        };
        let on = match cause {
            RetryCause::Http5xx => policy.on.http_5xx,
            RetryCause::Timeout => policy.on.timeout,
            RetryCause::Connect => policy.on.connect,
            RetryCause::Reset => policy.on.reset,
        };
        if !on || attempts >= policy.attempts || self.stop.is_cancelled() {
            return false;
        }
        let mut recorder = recorder.borrow_mut();
        let Some(retries) = recorder.retries() else {
            return false;
        };
        if let Some(fraction) = policy.budget {
            let now = Instant::now().saturating_duration_since(self.start);
            if !self.retry_budget.borrow_mut().withdraw(now, fraction) {
                retries.record_budget_refused();
                return false;
            }
        }
        retries.record_retry(sample.due, cause);
        true
    }
}
