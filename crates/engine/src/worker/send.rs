//! Sending one request: a connection (reused, replaced or opened), the
//! run's `resend` policy, and around that the step's retries and
//! redirects, each within the request's one sample.

use super::*;

/// A deadline that never comes, for a timeout too long to add to an
/// `Instant` (as tokio's own `timeout` does: about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// One request to exchange, and what carries it.
pub(super) struct Exchange<'a, C: Connector> {
    pub(super) connector: &'a C,
    /// The connection it goes on (opened if `None`, replaced if closed).
    pub(super) conn: &'a mut Option<C::Conn>,
    pub(super) req: &'a Req<C>,
    /// The request's method, for the run's `resend` policy (see [`Stage`]).
    pub(super) method: &'a http::Method,
    pub(super) endpoint: usize,
    pub(super) timeout: Duration,
    pub(super) capture: &'a mut Capture,
}

/// What following a step's redirects works with.
pub(super) struct Chain<'a, C: Connector> {
    pub(super) arm: &'a Arm<C>,
    /// The session's connection to the arm's target.
    pub(super) conn: &'a mut Option<C::Conn>,
    pub(super) step: &'a plan::Step,
    /// The step's own request, as rendered for the user.
    pub(super) first: &'a Rendered,
    pub(super) timeout: Duration,
    pub(super) capture: &'a mut Capture,
    pub(super) jar: &'a mut Jar,
    pub(super) agent: Option<&'a str>,
}

impl<C: Connector> Shared<C> {
    /// Sends `ex`'s request due at `due` (opening a connection if needed)
    /// and returns its sample, not yet recorded (checks may still mark
    /// it). `None` means due now: in the closed model, and for steps after
    /// the first of a session, the intended send time is the actual one,
    /// so lag is zero by definition.
    pub(super) async fn send_one(&self, ex: &mut Exchange<'_, C>, due: Option<Instant>) -> Sample {
        let (asked, sent) = self.ceiling_turn().await;
        let due = due.unwrap_or(asked);
        let mut phases = Phases::default();
        let connecting = Cell::new(false);
        let mut work = ClientWork::default();
        self.in_flight.set(self.in_flight.get() + 1);
        let end = {
            // From the send time just read (`timeout` would read the
            // clock again, once per request).
            let deadline = sent
                .checked_add(ex.timeout)
                .unwrap_or_else(|| sent + FAR_FUTURE);
            // Pinned here: handed over by value, the attempt's state (a
            // few kB) would be copied into the watch's on every request.
            let attempt = std::pin::pin!(self.attempt(ex, &mut phases, &connecting, &mut work));
            self.watch.run(deadline, attempt).await
        };
        self.in_flight.set(self.in_flight.get() - 1);
        let done = Instant::now();
        let outcome = match end {
            Watched::Done(Ok(resp)) => {
                ex.capture.received = resp.body_bytes;
                Outcome::Response {
                    status: resp.status,
                }
            }
            Watched::Done(Err(failure)) => {
                *ex.conn = None;
                if let Some(detail) = failure.detail {
                    self.note_error(failure.kind, || detail.to_string());
                }
                Outcome::Failed(failure.kind)
            }
            Watched::TimedOut => {
                *ex.conn = None;
                Outcome::Failed(if connecting.get() {
                    ErrorKind::ConnectTimeout
                } else {
                    ErrorKind::Timeout
                })
            }
            Watched::Killed => {
                *ex.conn = None;
                Outcome::Failed(ErrorKind::Cancelled)
            }
        };
        Sample {
            endpoint: ex.endpoint,
            due: due.saturating_duration_since(self.start),
            lag: sent.saturating_duration_since(due),
            service: done - sent,
            phases,
            outcome,
            checks_failed: false,
            client: work,
        }
    }

    /// Waits for `--max-rate`'s ceiling, if there is one: when the send
    /// was asked for, and when it may go. A send held back by the ceiling
    /// is late by that much, in the closed model too; without one, a
    /// closed-model send is due when it goes (lag 0 by definition).
    pub(super) async fn ceiling_turn(&self) -> (Instant, Instant) {
        let asked = Instant::now();
        let Some(ceiling) = &self.ceiling else {
            return (asked, asked);
        };
        tokio::select! {
            _ = ceiling.turn() => {}
            _ = self.kill.cancelled() => {}
        }
        (asked, Instant::now())
    }

    /// Exchanges `ex`'s request on its connection, opening one when there
    /// is none. A reused connection found closed while idle is replaced
    /// before anything is written (`closed_idle`); one that closes after
    /// the request was written and before any byte of a response is the
    /// request's failure, unless the run's `resend` policy allows one
    /// re-send of its method on a new connection (`resent`). Nothing is
    /// sent again behind the counts.
    async fn attempt(
        &self,
        ex: &mut Exchange<'_, C>,
        phases: &mut Phases,
        connecting: &Cell<bool>,
        work: &mut ClientWork,
    ) -> Result<Response, Failure> {
        loop {
            if let Some(c) = ex.conn.as_mut() {
                if c.closed_while_idle() {
                    *ex.conn = None;
                    work.closed_idle += 1;
                }
            }
            let fresh = ex.conn.is_none();
            if fresh {
                connecting.set(true);
                phases.connect = None;
                let opened = ex.connector.connect(phases, ex.capture.caller()).await;
                // A connection counts as opened once TCP connected, even if
                // its TLS handshake then failed.
                work.opened += u32::from(phases.connect.is_some());
                work.resumed += u32::from(phases.resumed);
                *ex.conn = Some(opened?);
                connecting.set(false);
            }
            let Some(c) = ex.conn.as_mut() else {
                return Err(Failure::new(ErrorKind::Connect));
            };
            ex.capture.clear();
            match c.exchange(ex.req, phases, ex.capture).await {
                Ok(resp) => {
                    if !c.reusable() {
                        *ex.conn = None;
                    }
                    return Ok(resp);
                }
                Err(f) => {
                    *ex.conn = None;
                    match f.stage {
                        // Nothing left: the connection was gone already.
                        Stage::NotSent if !fresh => work.closed_idle += 1,
                        Stage::Unanswered
                            if !fresh
                                && work.resent == 0
                                && self.scenario.clients.resend.allows(ex.method) =>
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

    /// Sends `ex`'s request due at `due`, then again as the step's retry
    /// `policy` allows, pausing between attempts. Returns the sample of
    /// the logical request (due when the first attempt was, ending with
    /// the last, with the last's outcome) and the attempts it took.
    pub(super) async fn with_retries(
        &self,
        policy: Option<&Retry>,
        ex: &mut Exchange<'_, C>,
        due: Option<Instant>,
        recorder: &RefCell<Recorder>,
        rng: &mut fastrand::Rng,
    ) -> (Sample, u32) {
        let mut sample = self.send_one(ex, due).await;
        let Some(policy) = policy else {
            return (sample, 1);
        };
        let mut attempts = 1;
        // The logical request runs from the first attempt's send; its
        // latency still counts from the first attempt's due time.
        let first_sent = self.start + sample.due + sample.lag;
        self.retry_budget
            .borrow_mut()
            .deposit(first_sent.saturating_duration_since(self.start));
        while self.retry_allowed(policy, attempts, &sample, recorder) {
            let pause = policy.pause(attempts, rng.f64());
            if !pause.is_zero() {
                tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => break,
                    _ = self.kill.cancelled() => break,
                    _ = sleep(pause) => {}
                }
            }
            attempts += 1;
            let mut last = self.send_one(ex, None).await;
            last.client += sample.client;
            sample = Sample {
                due: sample.due,
                lag: sample.lag,
                service: Instant::now().saturating_duration_since(first_sent),
                ..last
            };
        }
        (sample, attempts)
    }

    /// Follows the redirects of a step's response, `sample`: each hop on
    /// the session's connection when it stays on the target's origin, on
    /// a connection of its own to another allowed host, and never
    /// anywhere else (`blocked`). Returns the sample of the whole chain,
    /// due and sent when the step's request was, ending when the last
    /// response did, with the last outcome; and the hops followed.
    pub(super) async fn follow(
        &self,
        chain: &mut Chain<'_, C>,
        mut sample: Sample,
    ) -> (Sample, u64) {
        let reach = &chain.arm.reach;
        let target = &chain.arm.target;
        let first_sent = self.start + sample.due + sample.lag;
        let no_cookie = Who {
            cookie: None,
            agent: chain.agent,
        };
        let first = chain.first.step_parts(target, chain.step, &no_cookie);
        let Some(mut url) = first.url() else {
            return (sample, 0);
        };
        let mut method = chain.step.method.clone();
        let scenario = &self.scenario;
        let secret = |name: &str| scenario.is_secret_header(name);
        let mut rendered = Rendered::default();
        let mut request = Req::<C>::default();
        let mut hops = 0;
        while let Outcome::Response { status } = sample.outcome {
            // Kept only for a redirect's status (`Capture::status`).
            let Some(location) = chain.capture.location.take() else {
                break;
            };
            let Some(next) = redirect::next(&url, status, &method, &location) else {
                break;
            };
            if hops >= u64::from(reach.max) {
                let max = reach.max;
                self.note_error(ErrorKind::TooManyRedirects, || {
                    format!("still redirected after {hops} redirects (the scenario's `redirects` allows {max})")
                });
                sample.outcome = Outcome::Failed(ErrorKind::TooManyRedirects);
                break;
            }
            let same_origin = redirect::same_origin(&next.url, target);
            let elsewhere = if same_origin {
                None
            } else {
                match self.connector_to(chain.arm, &next.url) {
                    Some(connector) => Some(connector),
                    None => {
                        sample.outcome = Outcome::Failed(ErrorKind::Blocked);
                        break;
                    }
                }
            };
            // The cookies the redirect set go with the next hop.
            for c in chain.capture.set_cookies.drain(..) {
                chain.jar.set(&c);
            }
            hops += 1;
            let hop = Hop::to(&next, same_origin);
            rendered.hop(&hop, &first, &secret);
            let who = Who {
                cookie: chain.jar.header(),
                agent: chain.agent,
            };
            if request.render(&rendered.hop_parts(&hop, &who)).is_err() {
                sample.outcome = Outcome::Failed(ErrorKind::Protocol);
                break;
            }
            // Another origin's cookies are not the target's.
            chain.capture.cookies = scenario.cookies && same_origin;
            let mut own = None;
            let (connector, conn) = match &elsewhere {
                None => (&chain.arm.connector, &mut *chain.conn),
                Some(connector) => (connector, &mut own),
            };
            let mut ex = Exchange {
                connector,
                conn,
                req: &request,
                method: &next.method,
                endpoint: chain.step.endpoint,
                timeout: chain.timeout,
                capture: chain.capture,
            };
            let mut last = self.send_one(&mut ex, None).await;
            last.client += sample.client;
            sample = Sample {
                due: sample.due,
                lag: sample.lag,
                service: Instant::now().saturating_duration_since(first_sent),
                phases: sample.phases,
                ..last
            };
            method = next.method;
            url = next.url;
        }
        chain.capture.location = None;
        (sample, hops)
    }

    /// A connector to `url`'s origin, another than the arm's target, if
    /// the scenario lets redirects go there; else `None`, with the reason
    /// noted (`blocked`).
    pub(super) fn connector_to(&self, arm: &Arm<C>, url: &url::Url) -> Option<C> {
        let connector = matches!(url.scheme(), "http" | "https")
            .then(|| arm.reach.dialer(url))
            .flatten()
            .and_then(|d| arm.connector.elsewhere(d));
        if connector.is_none() {
            self.note_error(ErrorKind::Blocked, || {
                format!(
                    "a redirect to {} was not followed: add its host to the scenario's allowed_hosts to allow it",
                    redirect::shown_origin(url)
                )
            });
        }
        connector
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
