//! One worker's scheduler: paces arrivals (open model) or runs virtual
//! users (closed model), sends through a [`Connector`], and records every
//! outcome into its own [`Recorder`].
//!
//! A worker runs on one thread, in a tokio `LocalSet`: its state is shared
//! by `Rc` and `RefCell`, never locked. Requests are carried by long-lived
//! sender tasks that each own one connection, so the steady state spawns
//! nothing and allocates nothing per request. All timing uses
//! `tokio::time::Instant`, which tests pause and advance at will.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use plan::{
    ArrivalSchedule, Clients, Connections, LazyJson, Model, OnFail, Profile, RenderCtx,
    ResponseView, Retry, RetryBudget, Scenario, Target,
};
use stats::{
    ClientWork, ErrorKind, Interval, Outcome, Phases, Recorder, RetryCause, Sample, Stats,
};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::ceiling::Ceiling;
use crate::cookies::Jar;
use crate::pacer::Pacer;
use crate::redirect::{self, Reach};
use crate::request::{
    body_of, render_h1, render_h2, render_hop_h1, render_hop_h2, render_replay_h1,
    render_replay_h2, HopRequest, Outgoing, Prepared, Who,
};
use crate::transport::{Capture, Connection, Connector, Failure, Response, Stage};

/// The load band of each second of the planned load (middle of the
/// second), so per-endpoint latency can be told apart by load.
fn load_bands(profile: &plan::Profile) -> Vec<u8> {
    let Some(total) = profile.duration() else {
        return Vec::new();
    };
    let peak = profile.peak();
    (0..total.as_secs().max(1))
        .map(|t| {
            let level = profile.value_at(Duration::from_millis(t * 1000 + 500));
            stats::load_band(level, peak) as u8
        })
        .collect()
}

/// Most body bytes kept for checks and extractors; the rest of a longer
/// body is read and discarded.
pub const MAX_CAPTURED_BODY: usize = 4 * 1024 * 1024;

/// What one worker does.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's index, from 0.
    pub index: usize,
    /// How many workers share the load.
    pub workers: usize,
    /// The part of the whole run this process runs: every split between
    /// workers is made between segments first (`plan::Segment`).
    pub segment: plan::Segment,
    /// The whole run's load model; the worker takes its share.
    pub model: Model,
    /// The whole run's request bound; the worker takes its share.
    pub max_requests: Option<u64>,
    /// Limit on one request.
    pub timeout: Duration,
    /// How long in-flight requests may finish after the load ends.
    pub grace: Duration,
    /// Seed for random choices.
    pub seed: u64,
    /// The run's common start.
    pub start: Instant,
    /// How often to report progress.
    pub progress_every: Duration,
    /// How often a progress report carries a copy of everything recorded
    /// so far (for checkpoints); never when `None`.
    pub snapshot_every: Option<Duration>,
    /// The whole run's ceiling on sends per second (`--max-rate`), shared
    /// evenly by every worker of every segment.
    pub max_rate: Option<f64>,
    /// Most body bytes a response may have (`--max-body`); 0 for no limit.
    pub max_body: u64,
    /// Whether due times are waited for with a precise timer (a timerfd,
    /// `pacer.rs`); false under a paused test clock, which only tokio's
    /// timer follows.
    pub precise: bool,
}

/// One target of a run. A plain run has one; an A/B run (`--ab`) has
/// two, and each session goes to one.
pub struct Arm<C> {
    /// Connects to the target.
    pub connector: C,
    /// Where requests go (`Host`, base path).
    pub target: Target,
    /// The scenario's static requests, serialized for this target.
    pub prepared: Arc<Prepared>,
    /// Where redirects may go (shared by the arms).
    pub reach: Arc<Reach>,
}

/// A message from a worker.
#[derive(Debug)]
pub enum Event {
    /// Numbers since the last report.
    Progress(Box<Progress>),
    /// The worker finished; its statistics.
    Done(Box<WorkerOutput>),
}

/// A periodic progress report.
#[derive(Debug)]
pub struct Progress {
    /// Which worker.
    pub worker: usize,
    /// Requests that ended since the last report.
    pub interval: Interval,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Virtual users running now (closed model).
    pub vus: usize,
    /// Everything recorded so far, every `snapshot_every`: what the
    /// worker's output would be if it stopped now (`load_end` is the time
    /// of the copy).
    pub snapshot: Option<Box<WorkerOutput>>,
}

/// A worker's final output.
#[derive(Debug, Clone)]
pub struct WorkerOutput {
    /// Which worker.
    pub worker: usize,
    /// Everything it recorded (for the first arm, in an A/B run).
    pub stats: Stats,
    /// What it recorded for each further arm of an A/B run, in order.
    pub other_arms: Vec<Stats>,
    /// When it stopped starting requests, from the run start.
    pub load_end: Duration,
    /// Whether it stopped early because it was told to.
    pub stopped: bool,
    /// The first error message seen for each error kind.
    pub first_errors: Vec<(ErrorKind, String)>,
    /// Why the worker stopped starting sessions before the planned end.
    pub stop_reason: Option<String>,
}

/// Control tokens shared by all workers of a run.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Cancelled to stop starting new requests (first Ctrl-C, abort).
    pub stop: CancellationToken,
    /// Cancelled to abandon requests still in flight.
    pub kill: CancellationToken,
}

struct Shared<C: Connector> {
    arms: Vec<Arm<C>>,
    scenario: Arc<Scenario>,
    /// Picks the arm of each open-model arrival.
    arm_rng: RefCell<fastrand::Rng>,
    worker: usize,
    workers: usize,
    seed: u64,
    /// Draws flows for arrivals that are dropped before a session starts.
    drop_rng: RefCell<fastrand::Rng>,
    /// Rows drawn so far from each feeder by this worker.
    feeder_draws: RefCell<Vec<u64>>,
    /// Why this worker stopped starting sessions early, if it did.
    stop_reason: RefCell<Option<String>>,
    /// One per arm.
    recorders: Vec<RefCell<Recorder>>,
    start: Instant,
    timeout: Duration,
    /// Cancelled when this worker starts no more sessions (the load phase
    /// ended, or `stop`). Sessions in progress go on.
    end: CancellationToken,
    /// Cancelled by Ctrl-C or an abort: sessions stop at their next step.
    stop: CancellationToken,
    kill: CancellationToken,
    in_flight: Cell<usize>,
    /// This worker's share of `--max-rate`.
    ceiling: Option<Ceiling>,
    /// `--max-body`, in bytes (0: no limit).
    max_body: u64,
    budget: Cell<Option<u64>>,
    /// Logical requests and retries of the last seconds, for retry budgets.
    retry_budget: RefCell<RetryBudget>,
    alive: Cell<usize>,
    all_done: Notify,
    first_errors: RefCell<Vec<(ErrorKind, String)>>,
}

/// Counts a task as alive until dropped.
struct AliveGuard<C: Connector>(Rc<Shared<C>>);

impl<C: Connector> AliveGuard<C> {
    fn new(sh: &Rc<Shared<C>>) -> AliveGuard<C> {
        sh.alive.set(sh.alive.get() + 1);
        AliveGuard(sh.clone())
    }
}

impl<C: Connector> Drop for AliveGuard<C> {
    fn drop(&mut self) {
        let n = self.0.alive.get() - 1;
        self.0.alive.set(n);
        if n == 0 {
            self.0.all_done.notify_one();
        }
    }
}

enum End {
    Done(Result<Response, Failure>),
    TimedOut,
    Killed,
}

impl<C: Connector> Shared<C> {
    /// Takes one request from the budget; false when it is spent.
    fn take_budget(&self) -> bool {
        match self.budget.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                self.budget.set(Some(n - 1));
                true
            }
        }
    }

    /// Sends one request due at `due` on `conn` (opening one if needed) and
    /// returns its sample for `endpoint`, not yet recorded (checks may still
    /// mark it). `None` means due now: in the closed model, and for steps
    /// after the first of a session, the intended send time is the actual
    /// one, so lag is zero by definition. `resend`: whether the run's
    /// policy lets this request's method be re-sent (see [`Stage`]).
    #[allow(clippy::too_many_arguments)]
    async fn send_one(
        &self,
        connector: &C,
        conn: &mut Option<C::Conn>,
        due: Option<Instant>,
        endpoint: usize,
        req: &Outgoing<'_>,
        resend: bool,
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
                    resend,
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
    /// request's failure, unless `resend` allows one re-send on a new
    /// connection (`resent`). Nothing is sent again behind the counts.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        connector: &C,
        conn: &mut Option<C::Conn>,
        req: &Outgoing<'_>,
        resend: bool,
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
                        Stage::Unanswered if !fresh && resend && work.resent == 0 => {
                            work.resent += 1;
                        }
                        _ => return Err(f),
                    }
                    phases.ttfb = None;
                }
            }
        }
    }

    /// Runs one flow for `session`: picks it by weight, sends each step in
    /// order with its think time after it. The first step is due at
    /// `first_due` (open model) or now. Stops early when the load ends or
    /// the request budget is spent. `think_after_last` pauses after the
    /// last step too (closed-model users, whose next iteration follows).
    async fn run_flow(
        &self,
        session: &mut Session<C::Conn>,
        first_due: Option<Instant>,
        think_after_last: bool,
    ) {
        let scenario = &self.scenario;
        // Each iteration takes one row of each feeder, so every step of it
        // sees the same test user.
        for (i, feeder) in scenario.feeders.iter().enumerate() {
            let n = {
                let mut draws = self.feeder_draws.borrow_mut();
                draws[i] += 1;
                draws[i] - 1
            };
            let Some(row) = feeder.row(self.worker, self.workers, n, &mut session.rng) else {
                self.stop_reason.borrow_mut().get_or_insert_with(|| {
                    format!(
                        "data {:?} ran out of unique rows ({} in all); no new sessions were started",
                        feeder.name,
                        feeder.rows.len()
                    )
                });
                self.end.cancel();
                return;
            };
            for (slot, value) in feeder.slots.iter().zip(row) {
                if let Some(v) = session.vars.get_mut(*slot) {
                    *v = Some(value.clone());
                }
            }
        }
        if scenario.clients.connections == Connections::PerSession {
            // Every session is a new visitor, on new connections.
            session.conns.iter_mut().for_each(|c| *c = None);
        }
        let flow_index = scenario.pick_flow(session.rng.f64());
        let flow = &scenario.flows[flow_index];
        let arm_index = session.arm;
        let (Some(arm), Some(recorder)) = (self.arms.get(arm_index), self.recorders.get(arm_index))
        else {
            return;
        };
        for (step_index, step) in flow.steps.iter().enumerate() {
            // A session that has started finishes its flow after the load
            // phase ends (within the grace period), as real users would;
            // only a stop cuts it short.
            if step_index > 0 && self.stop.is_cancelled() {
                break;
            }
            if !self.take_budget() {
                self.end.cancel();
                break;
            }
            let due = if step_index == 0 { first_due } else { None };
            let timeout = step.timeout.unwrap_or(self.timeout);
            let Session {
                conns,
                arm: _,
                vars,
                jar,
                rng,
                h1,
                body,
                capture,
                vu,
                iteration,
                agent,
            } = session;
            let agent = agent
                .and_then(|i| scenario.clients.user_agents.get(i))
                .map(|(ua, _)| ua.as_str());
            let conn = &mut conns[arm_index];
            capture.cookies = scenario.cookies;
            capture.headers = step.needs.headers;
            capture.body = step.needs.body;
            let now_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut ctx = RenderCtx {
                vars,
                vu: *vu,
                iteration: *iteration,
                rng,
                now_ms,
            };
            let who = Who {
                cookie: jar.header(),
                agent,
            };
            let static_bytes = arm.prepared.static_h1[flow_index][step_index]
                .as_ref()
                .filter(|_| who.cookie.is_none() && who.agent.is_none());
            let h2_req;
            let req = if C::HTTP2 {
                match render_h2(&arm.target, step, &mut ctx, &who) {
                    Ok(r) => {
                        h2_req = r;
                        &h2_req
                    }
                    Err(_) => {
                        self.record_failure(recorder, step.endpoint, due, ErrorKind::Protocol);
                        continue;
                    }
                }
            } else {
                let bytes: &[u8] = match static_bytes {
                    Some(b) => b,
                    None => {
                        render_h1(&arm.target, step, &mut ctx, &who, body, h1);
                        h1
                    }
                };
                h2_req = Outgoing::H1 {
                    bytes,
                    head: step.method == http::Method::HEAD,
                };
                &h2_req
            };
            let resend = scenario.clients.resend.allows(&step.method);
            let mut sample = self
                .send_one(
                    &arm.connector,
                    conn,
                    due,
                    step.endpoint,
                    req,
                    resend,
                    timeout,
                    capture,
                )
                .await;
            let mut attempts = 1;
            if let Some(policy) = &step.retry {
                // The logical request runs from the first attempt's send;
                // its latency still counts from the first attempt's due time.
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
                    let mut last = self
                        .send_one(
                            &arm.connector,
                            conn,
                            None,
                            step.endpoint,
                            req,
                            resend,
                            timeout,
                            capture,
                        )
                        .await;
                    last.client += sample.client;
                    sample = Sample {
                        due: sample.due,
                        lag: sample.lag,
                        service: Instant::now().saturating_duration_since(first_sent),
                        ..last
                    };
                }
            }
            let mut hops = 0;
            if capture.location.is_some() {
                let mut ctx = RenderCtx {
                    vars,
                    vu: *vu,
                    iteration: *iteration,
                    rng,
                    now_ms,
                };
                let mut chain = Chain {
                    arm,
                    conn,
                    step,
                    first: req,
                    timeout,
                    capture,
                    jar,
                    ctx: &mut ctx,
                    agent,
                };
                (sample, hops) = self.follow(&mut chain, sample).await;
            }
            if hops > 0 {
                recorder.borrow_mut().record_redirects(step.endpoint, hops);
            }
            if scenario.clients.connections == Connections::PerRequest {
                *conn = None;
            }
            for c in &capture.set_cookies {
                jar.set(c);
            }
            let mut stop_flow = false;
            if let Outcome::Response { status } = sample.outcome {
                if !step.checks.is_empty() || !step.extract.is_empty() {
                    let view = ResponseView {
                        status,
                        headers: &capture.header_list,
                        body: &capture.body_bytes,
                        latency: sample.latency(),
                    };
                    let mut json = LazyJson::new(&capture.body_bytes);
                    // Checks first, so they compare with values from
                    // earlier steps (a read-your-writes check compares the
                    // read with what was written); then this response's
                    // values are extracted for the steps after it.
                    let mut ctx = RenderCtx {
                        vars,
                        vu: *vu,
                        iteration: *iteration,
                        rng,
                        now_ms,
                    };
                    let mut recorder = recorder.borrow_mut();
                    for check in &step.checks {
                        let passed = check.passes(&view, &mut json, &mut ctx);
                        recorder.record_check(check.id, passed);
                        if !passed {
                            sample.checks_failed = true;
                            stop_flow |= check.on_fail == OnFail::StopFlow;
                        }
                    }
                    for e in &step.extract {
                        if let Some(value) = e.value(&view, &mut json) {
                            if let Some(slot) = vars.get_mut(e.slot) {
                                *slot = Some(value);
                            }
                        }
                    }
                }
            }
            if step.watch_cache {
                if let Outcome::Response { status: 200..=299 } = sample.outcome {
                    let obs = stats::CacheObs::of(
                        capture
                            .header_list
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str())),
                    );
                    recorder.borrow_mut().record_cache(step.endpoint, &obs);
                }
            }
            {
                let mut recorder = recorder.borrow_mut();
                recorder.record(&sample);
                if let Some(retries) = recorder.retries() {
                    let deadline = step.retry.and_then(|r| r.deadline).unwrap_or(timeout);
                    let good = sample.error().is_none() && sample.latency() <= deadline;
                    retries.record(sample.due, attempts, good);
                }
            }
            if stop_flow {
                break;
            }
            let last = step_index + 1 == flow.steps.len();
            if !last || think_after_last {
                let pause = step.think.sample(rng);
                // Thinking before another step of this session ends only
                // on a stop; thinking before the user's next iteration
                // also ends with the load phase.
                let until = if last { &self.end } else { &self.stop };
                if !pause.is_zero() {
                    tokio::select! {
                        biased;
                        _ = until.cancelled() => break,
                        _ = self.kill.cancelled() => break,
                        _ = sleep(pause) => {}
                    }
                }
            }
        }
        session.iteration += 1;
    }

    /// Keeps `message` as the example of `kind`, if it has none yet.
    fn note_error(&self, kind: ErrorKind, message: impl FnOnce() -> String) {
        let mut first = self.first_errors.borrow_mut();
        if !first.iter().any(|(k, _)| *k == kind) {
            first.push((kind, message()));
        }
    }

    /// Follows the redirects of a step's response, `sample`: each hop on
    /// the session's connection when it stays on the target's origin, on
    /// a connection of its own to another allowed host, and never
    /// anywhere else (`blocked`). Returns the sample of the whole chain,
    /// due and sent when the step's request was, ending when the last
    /// response did, with the last outcome; and the hops followed.
    async fn follow(&self, chain: &mut Chain<'_, '_, C>, mut sample: Sample) -> (Sample, u64) {
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
            let resend = scenario.clients.resend.allows(&hop.method);
            let mut last = self
                .send_one(
                    connector,
                    conn,
                    None,
                    endpoint,
                    &out,
                    resend,
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
    fn retry_allowed(
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

    /// Sends one replayed request, due at its time, and records it.
    async fn replay_one(&self, session: &mut Session<C::Conn>, req: &plan::ReplayRequest) {
        let (Some(arm), Some(recorder)) = (self.arms.first(), self.recorders.first()) else {
            return;
        };
        let due = Some(self.start + req.due);
        let Session {
            conns, h1, capture, ..
        } = session;
        let h2_req;
        let out = if C::HTTP2 {
            match render_replay_h2(&arm.target, req) {
                Ok(r) => {
                    h2_req = r;
                    &h2_req
                }
                Err(_) => {
                    self.record_failure(recorder, req.endpoint, due, ErrorKind::Protocol);
                    return;
                }
            }
        } else {
            render_replay_h1(&arm.target, req, h1);
            h2_req = Outgoing::H1 {
                bytes: h1,
                head: req.method == http::Method::HEAD,
            };
            &h2_req
        };
        capture.cookies = false;
        capture.headers = false;
        capture.body = false;
        let resend = self.scenario.clients.resend.allows(&req.method);
        let sample = self
            .send_one(
                &arm.connector,
                &mut conns[0],
                due,
                req.endpoint,
                out,
                resend,
                self.timeout,
                capture,
            )
            .await;
        recorder.borrow_mut().record(&sample);
    }

    /// The arm of a new open-model arrival: one at random.
    /// The open model's `n`-th arrival (from 1) of this worker, due `due`
    /// after the start, as a sender's job. Session numbers are unique
    /// across workers (and segments): worker + (n - 1) * workers.
    fn arrival(&self, due: Duration, n: u64) -> Job {
        let vu = self.worker as u64 + (n - 1) * self.workers as u64;
        Job::Session(self.start + due, vu, self.pick_arm())
    }

    fn pick_arm(&self) -> usize {
        match self.arms.len() {
            0 | 1 => 0,
            n => self.arm_rng.borrow_mut().usize(..n),
        }
    }

    /// Every arm's interval since the last, merged: progress is for the
    /// run as a whole.
    /// A copy of everything recorded so far, as the worker's output would
    /// be if it stopped now.
    fn snapshot(&self, worker: usize) -> WorkerOutput {
        let mut arms: Vec<Stats> = self
            .recorders
            .iter()
            .map(|r| r.borrow().stats().clone())
            .collect();
        let stats = if arms.is_empty() {
            Stats::new([])
        } else {
            arms.remove(0)
        };
        WorkerOutput {
            worker,
            stats,
            other_arms: arms,
            load_end: Instant::now().saturating_duration_since(self.start),
            stopped: false,
            first_errors: self.first_errors.borrow().clone(),
            stop_reason: None,
        }
    }

    fn take_interval(&self) -> Interval {
        let mut all = Interval::default();
        for r in &self.recorders {
            all.merge(&r.borrow_mut().take_interval());
        }
        all
    }

    /// Records a request that could not even be built.
    fn record_failure(
        &self,
        recorder: &RefCell<Recorder>,
        endpoint: usize,
        due: Option<Instant>,
        kind: ErrorKind,
    ) {
        let now = Instant::now();
        let due = due.unwrap_or(now).saturating_duration_since(self.start);
        let mut recorder = recorder.borrow_mut();
        recorder.record(&Sample {
            endpoint,
            due,
            lag: now.saturating_duration_since(self.start + due),
            service: Duration::ZERO,
            phases: Phases::default(),
            outcome: Outcome::Failed(kind),
            checks_failed: false,
            client: ClientWork::default(),
        });
        if let Some(retries) = recorder.retries() {
            retries.record(due, 0, false);
        }
    }

    /// A new session for user number `vu`. In an A/B run, users alternate
    /// between the arms by number (each arm gets half of them, however
    /// few); open-model senders reassign the arm per arrival.
    fn session(&self, vu: u64) -> Session<C::Conn> {
        let mut session = Session {
            conns: (0..self.arms.len()).map(|_| None).collect(),
            arm: (vu as usize) % self.arms.len().max(1),
            vars: vec![None; self.scenario.slots],
            jar: Jar::default(),
            rng: fastrand::Rng::with_seed(
                self.seed ^ vu.wrapping_mul(0xa076_1d64_78bd_642f) ^ self.worker as u64,
            ),
            h1: Vec::with_capacity(512),
            body: Vec::new(),
            capture: Capture {
                max_body: MAX_CAPTURED_BODY,
                body_limit: self.max_body,
                // A replay's scenario follows none (`Scenario::replay`).
                follow: self.arms.first().is_some_and(|a| a.reach.max > 0),
                source: self.scenario.clients.source_ip(vu),
                ..Capture::default()
            },
            vu,
            iteration: 0,
            agent: None,
        };
        session.become_client(&self.scenario.clients);
        session
    }
}

/// What following a step's redirects works with.
struct Chain<'a, 'r, C: Connector> {
    arm: &'a Arm<C>,
    /// The session's connection to the arm's target.
    conn: &'a mut Option<C::Conn>,
    step: &'a plan::Step,
    /// The step's own request.
    first: &'a Outgoing<'a>,
    timeout: Duration,
    capture: &'a mut Capture,
    jar: &'a mut Jar,
    ctx: &'a mut RenderCtx<'r>,
    agent: Option<&'a str>,
}

/// What a virtual user (or, in the open model, a sender between sessions)
/// keeps: its connection, variables, cookies, random numbers and buffers.
struct Session<Conn> {
    /// A connection per arm (one, but for A/B runs).
    conns: Vec<Option<Conn>>,
    /// The arm this session's requests go to.
    arm: usize,
    vars: Vec<Option<String>>,
    jar: Jar,
    rng: fastrand::Rng,
    h1: Vec<u8>,
    body: Vec<u8>,
    capture: Capture,
    vu: u64,
    iteration: u64,
    /// The user's agent, an index into the scenario's mix.
    agent: Option<usize>,
}

impl<Conn> Session<Conn> {
    /// Starts a new visitor, sent to `arm`, on the same connections (unless
    /// the visitor comes from another address).
    fn reset(&mut self, vu: u64, arm: usize, clients: &Clients) {
        self.arm = arm;
        self.vars.iter_mut().for_each(|v| *v = None);
        self.jar.clear();
        self.vu = vu;
        self.iteration = 0;
        let source = clients.source_ip(vu);
        if source != self.capture.source {
            self.conns.iter_mut().for_each(|c| *c = None);
            self.capture.source = source;
        }
        self.become_client(clients);
    }

    /// Draws what kind of client user `vu` is: slow or not, which agent.
    /// The draws depend on the user's number only, so runs repeat.
    fn become_client(&mut self, clients: &Clients) {
        let mut rng =
            fastrand::Rng::with_seed(self.vu.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xc11e);
        self.capture.download_cap = clients.download_cap(rng.f64());
        self.agent = clients.pick_user_agent(rng.f64());
    }
}

/// Runs one worker to the end of its share of the load. Must be called
/// inside a `tokio::task::LocalSet`.
pub async fn run_worker<C: Connector + 'static>(
    cfg: WorkerConfig,
    scenario: Arc<Scenario>,
    arms: Vec<Arm<C>>,
    control: Control,
    events: mpsc::UnboundedSender<Event>,
    feed: Option<Feed>,
) -> WorkerOutput {
    if arms.is_empty() {
        return WorkerOutput {
            worker: cfg.index,
            stats: Stats::new([]),
            other_arms: Vec::new(),
            load_end: Duration::ZERO,
            stopped: false,
            first_errors: Vec::new(),
            stop_reason: Some("the run has no target".into()),
        };
    }
    let budget = cfg
        .max_requests
        .map(|n| cfg.segment.share(n, cfg.index, cfg.workers));
    // Where this worker stands among every segment's workers: the stride
    // and offset of its arrivals, feeder rows and session numbers.
    let (global, all_workers) = cfg.segment.worker(cfg.index, cfg.workers);
    let endpoints = scenario.endpoints.clone();
    let checks = scenario.checks.clone();
    let feeders = scenario.feeders.len();
    // With one step per flow, arrivals and requests are the same thing, so
    // the schedule itself can stop at the bound (and know its last due time).
    let single_step = scenario.flows.iter().all(|f| f.steps.len() == 1);
    let bands = load_bands(cfg.model.profile());
    let retries = scenario
        .flows
        .iter()
        .flat_map(|f| &f.steps)
        .any(|s| s.retry.is_some());
    let recorders = arms
        .iter()
        .map(|_| {
            let stats = Stats::new(endpoints.clone())
                .with_checks(checks.clone())
                .with_load_bands(bands.clone());
            RefCell::new(Recorder::with_stats(if retries {
                stats.with_retries()
            } else {
                stats
            }))
        })
        .collect();
    let sh = Rc::new(Shared {
        arms,
        scenario,
        arm_rng: RefCell::new(fastrand::Rng::with_seed(cfg.seed ^ 0xab ^ global as u64)),
        worker: global,
        workers: all_workers,
        seed: cfg.seed,
        drop_rng: RefCell::new(fastrand::Rng::with_seed(cfg.seed ^ 0x5eed)),
        feeder_draws: RefCell::new(vec![0; feeders]),
        stop_reason: RefCell::new(None),
        recorders,
        start: cfg.start,
        timeout: cfg.timeout,
        end: control.stop.child_token(),
        stop: control.stop.clone(),
        kill: control.kill.child_token(),
        in_flight: Cell::new(0),
        max_body: cfg.max_body,
        ceiling: cfg
            .max_rate
            .and_then(|r| Ceiling::new(r / all_workers as f64, cfg.start)),
        budget: Cell::new(budget),
        retry_budget: RefCell::new(RetryBudget::default()),
        alive: Cell::new(0),
        all_done: Notify::new(),
        first_errors: RefCell::new(Vec::new()),
    });
    let vus = Rc::new(Cell::new(0usize));

    let ticker = tokio::task::spawn_local({
        let (sh, vus, events, every) =
            (sh.clone(), vus.clone(), events.clone(), cfg.progress_every);
        let snapshot_every = cfg.snapshot_every;
        async move {
            let mut next = sh.start + every;
            let mut next_snapshot = snapshot_every.map(|d| sh.start + d);
            loop {
                sleep_until(next).await;
                next += every;
                let interval = sh.take_interval();
                let snapshot = match (next_snapshot, snapshot_every) {
                    (Some(at), Some(d)) if Instant::now() >= at => {
                        next_snapshot = Some(at + d);
                        Some(Box::new(sh.snapshot(cfg.index)))
                    }
                    _ => None,
                };
                let progress = Progress {
                    worker: cfg.index,
                    interval,
                    in_flight: sh.in_flight.get(),
                    vus: vus.get(),
                    snapshot,
                };
                if events.send(Event::Progress(Box::new(progress))).is_err() {
                    break;
                }
            }
        }
    });

    let pacer = Pacer::new(cfg.precise);
    // A start set far ahead (`--start-at`) is waited for, unless stopped.
    tokio::select! {
        _ = sleep_until(cfg.start) => {}
        _ = control.stop.cancelled() => {}
    }
    let load_end = match &cfg.model {
        Model::Open {
            rate,
            arrivals,
            max_in_flight,
        } => {
            let schedule = ArrivalSchedule::new(
                rate.clone(),
                *arrivals,
                global,
                all_workers,
                budget.filter(|_| single_step),
                cfg.seed,
            );
            let share = max_in_flight.div_ceil(all_workers).max(1);
            if let Some(feed) = feed {
                replay_loop(&sh, feed, share, &pacer).await
            } else {
                let max_arrivals = budget.filter(|_| single_step);
                open_loop(&sh, schedule, share, rate.duration(), max_arrivals, &pacer).await
            }
        }
        Model::Closed {
            vus: profile,
            think,
        } => closed_loop(&sh, profile, *think, &cfg, &vus).await,
    };
    sh.end.cancel();

    // Let in-flight requests finish within the grace period, then abandon them.
    let drained = async {
        while sh.alive.get() > 0 {
            sh.all_done.notified().await;
        }
    };
    tokio::select! {
        _ = drained => {}
        _ = sleep(cfg.grace) => sh.kill.cancel(),
        _ = sh.kill.cancelled() => {}
    }
    while sh.alive.get() > 0 {
        sh.all_done.notified().await;
    }
    ticker.abort();
    let interval = sh.take_interval();
    let _ = events.send(Event::Progress(Box::new(Progress {
        worker: cfg.index,
        interval,
        in_flight: 0,
        vus: 0,
        snapshot: None,
    })));

    let stopped = control.stop.is_cancelled();
    let first_errors = sh.first_errors.take();
    let stop_reason = sh.stop_reason.take();
    let mut arms: Vec<Stats> = match Rc::try_unwrap(sh) {
        Ok(sh) => sh
            .recorders
            .into_iter()
            .map(|r| r.into_inner().into_stats())
            .collect(),
        // A task still holds the state (it cannot, all were awaited above);
        // copy rather than lose the numbers.
        Err(sh) => {
            return WorkerOutput {
                load_end,
                stopped,
                first_errors,
                stop_reason,
                ..sh.snapshot(cfg.index)
            }
        }
    };
    let stats = arms.remove(0);
    WorkerOutput {
        worker: cfg.index,
        stats,
        other_arms: arms,
        load_end,
        stopped,
        first_errors,
        stop_reason,
    }
}

/// What an open-model sender is handed.
enum Job {
    /// A new session, due at this time, with its number and arm.
    Session(Instant, u64, usize),
    /// One request of a replayed log.
    Replay(plan::ReplayRequest),
}

/// A sender waiting for its next arrival.
#[derive(Default)]
struct Slot {
    /// The next job.
    job: Cell<Option<Job>>,
    wake: Notify,
}

#[derive(Default)]
struct Pool {
    idle: RefCell<Vec<Rc<Slot>>>,
    /// Notified when a sender goes idle.
    went_idle: Notify,
    closing: Cell<bool>,
    /// Senders started so far.
    senders: Cell<usize>,
    /// The open model's arrivals not handed out yet (none in a replay).
    upcoming: RefCell<Option<Upcoming>>,
}

/// The open model's schedule, shared by the dispatcher and the senders: a
/// sender that finishes while an arrival is already due takes it at once,
/// rather than going idle and waiting for the dispatcher to be polled and
/// hand it over. Under load that wait is a trip through every ready task,
/// and it showed as generator lag; each arrival is still taken once, and
/// still measured from its due time.
struct Upcoming {
    schedule: ArrivalSchedule,
    /// The next arrival's due time, from the run start.
    next: Option<Duration>,
    /// Arrivals taken so far.
    taken: u64,
    /// The due time of the last arrival taken.
    last_due: Duration,
}

impl Upcoming {
    fn new(mut schedule: ArrivalSchedule) -> Upcoming {
        let next = schedule.next();
        Upcoming {
            schedule,
            next,
            taken: 0,
            last_due: Duration::ZERO,
        }
    }

    /// The next arrival, with its number (from 1), if it is due at `now`
    /// (from the run start).
    fn take_due(&mut self, now: Duration) -> Option<(Duration, u64)> {
        let due = self.next.filter(|d| *d <= now)?;
        self.next = self.schedule.next();
        self.taken += 1;
        self.last_due = due;
        Some((due, self.taken))
    }
}

impl Pool {
    /// An idle sender, or a new one while fewer than `max` exist; `None`
    /// when the in-flight cap is reached.
    fn sender<C: Connector + 'static>(
        self: &Rc<Pool>,
        sh: &Rc<Shared<C>>,
        max: usize,
    ) -> Option<Rc<Slot>> {
        if let Some(slot) = self.idle.borrow_mut().pop() {
            return Some(slot);
        }
        if self.senders.get() >= max {
            return None;
        }
        Some(self.spawn(sh))
    }

    /// A new sender, with its own connections.
    fn spawn<C: Connector + 'static>(self: &Rc<Pool>, sh: &Rc<Shared<C>>) -> Rc<Slot> {
        self.senders.set(self.senders.get() + 1);
        let slot = Rc::new(Slot::default());
        let guard = AliveGuard::new(sh);
        tokio::task::spawn_local(open_sender(guard, self.clone(), slot.clone()));
        slot
    }

    /// Arrivals taken so far.
    fn taken(&self) -> u64 {
        self.upcoming.borrow().as_ref().map_or(0, |u| u.taken)
    }

    /// An arrival already due, as a sender's next job, unless the load
    /// phase is over.
    fn take_due<C: Connector>(&self, sh: &Shared<C>) -> Option<Job> {
        if sh.end.is_cancelled() {
            return None;
        }
        let now = Instant::now().saturating_duration_since(sh.start);
        let (due, n) = self.upcoming.borrow_mut().as_mut()?.take_due(now)?;
        Some(sh.arrival(due, n))
    }

    /// Tells every sender to stop once its job is done.
    fn close(&self) {
        self.closing.set(true);
        for slot in self.idle.borrow_mut().drain(..) {
            slot.job.set(None);
            slot.wake.notify_one();
        }
    }
}

/// Waits until `due`. False when the load phase ended first.
async fn until_due<C: Connector>(sh: &Shared<C>, pacer: &Pacer, due: Instant) -> bool {
    if Instant::now() < due {
        tokio::select! {
            biased;
            _ = sh.end.cancelled() => false,
            _ = pacer.until(due) => true,
        }
    } else {
        !sh.end.is_cancelled()
    }
}

/// How long a due arrival waits for a busy sender to finish before a new
/// sender (with a new connection) is started for it.
const PATIENCE: Duration = Duration::from_micros(200);

/// The least time between two new senders started for waiting arrivals.
const SPAWN_GAP: Duration = Duration::from_micros(50);

/// Open model: dispatches each arrival when due to an idle sender. When
/// every sender is busy, the arrival waits up to [`PATIENCE`] for one to
/// finish (a finishing sender takes it itself), and then a new sender is
/// started, at most one per [`SPAWN_GAP`], while under the in-flight cap;
/// at the cap, an arrival that waited that long is counted as dropped. So the pool grows with
/// demand: a pause of the target a few hundred µs long costs a few new
/// connections, not one per arrival that came during it (at 190,000/s that
/// was a thousand connections, whose setup and upkeep then kept the
/// generator behind). The wait is the generator's, so it shows as lag:
/// latency still runs from the due time. Returns when the load phase
/// ended, from the run start.
async fn open_loop<C: Connector + 'static>(
    sh: &Rc<Shared<C>>,
    schedule: ArrivalSchedule,
    max_in_flight: usize,
    duration: Option<Duration>,
    max_arrivals: Option<u64>,
    pacer: &Pacer,
) -> Duration {
    let pool = Rc::new(Pool::default());
    pool.upcoming.replace(Some(Upcoming::new(schedule)));
    let next = |pool: &Pool| pool.upcoming.borrow().as_ref().and_then(|u| u.next);
    let mut exhausted = true;
    let mut last_spawn: Option<Instant> = None;
    'arrivals: while let Some(offset) = next(&pool) {
        let due_at = sh.start + offset;
        if !until_due(sh, pacer, due_at).await {
            exhausted = false;
            break;
        }
        let taken_before = pool.taken();
        let slot = loop {
            if let Some(slot) = pool.idle.borrow_mut().pop() {
                break Some(slot);
            }
            let now = Instant::now();
            let patient = due_at + PATIENCE;
            let at_cap = pool.senders.get() >= max_in_flight;
            // At the cap, the arrival waits as long, then is dropped.
            if at_cap && now >= patient {
                break None;
            }
            let spawn_at = if at_cap {
                patient
            } else if pool.senders.get() == 0 {
                now
            } else {
                last_spawn.map_or(patient, |l| patient.max(l + SPAWN_GAP))
            };
            if !at_cap && now >= spawn_at {
                last_spawn = Some(now);
                break Some(pool.spawn(sh));
            }
            tokio::select! {
                biased;
                _ = sh.end.cancelled() => {
                    exhausted = false;
                    break 'arrivals;
                }
                _ = pool.went_idle.notified() => {}
                _ = pacer.until(spawn_at) => {}
            }
            // A sender that finished meanwhile took it: on to the next.
            if pool.taken() != taken_before {
                continue 'arrivals;
            }
        };
        // A sender may have taken this arrival while the dispatcher waited;
        // then the loop moves on to the next.
        let now = Instant::now().saturating_duration_since(sh.start);
        let taken = pool
            .upcoming
            .borrow_mut()
            .as_mut()
            .and_then(|u| u.take_due(now));
        let Some((due, n)) = taken else {
            if let Some(slot) = slot {
                pool.idle.borrow_mut().push(slot);
            }
            continue;
        };
        let Some(slot) = slot else {
            // The session never started: its first step's endpoint is
            // the one that went without. Draw the flow as the session
            // would have, so drops land on the right endpoint.
            let flow = sh.scenario.pick_flow(sh.drop_rng.borrow_mut().f64());
            let endpoint = sh.scenario.flows[flow]
                .steps
                .first()
                .map_or(0, |s| s.endpoint);
            let arm = sh.pick_arm();
            sh.recorders[arm].borrow_mut().record_dropped(endpoint, due);
            continue;
        };
        slot.job.set(Some(sh.arrival(due, n)));
        slot.wake.notify_one();
    }
    let (arrivals, last_due) = pool
        .upcoming
        .borrow()
        .as_ref()
        .map_or((0, Duration::ZERO), |u| (u.taken, u.last_due));
    pool.close();
    match (exhausted, duration) {
        // The schedule ran to its planned end.
        (true, Some(d)) if max_arrivals != Some(arrivals) => d,
        // Ended by the request bound: the load lasted until the last arrival.
        (true, _) => last_due,
        (false, _) => Instant::now().saturating_duration_since(sh.start),
    }
}

async fn open_sender<C: Connector>(guard: AliveGuard<C>, pool: Rc<Pool>, slot: Rc<Slot>) {
    let sh = &guard.0;
    let mut session = sh.session(0);
    loop {
        slot.wake.notified().await;
        let Some(mut job) = slot.job.take() else {
            break;
        };
        loop {
            match job {
                Job::Session(due, vu, arm) => {
                    // Each arrival is a new visitor; the sender keeps its connections.
                    session.reset(vu, arm, &sh.scenario.clients);
                    sh.run_flow(&mut session, Some(due), false).await;
                }
                Job::Replay(req) => sh.replay_one(&mut session, &req).await,
            }
            // An arrival already due goes to the first sender free.
            if pool.closing.get() {
                break;
            }
            match pool.take_due(sh) {
                Some(next) => job = next,
                None => break,
            }
        }
        if pool.closing.get() {
            break;
        }
        pool.idle.borrow_mut().push(slot.clone());
        pool.went_idle.notify_one();
    }
}

/// A replayed log's requests for one worker, in due order, in batches.
pub type Feed = mpsc::Receiver<Vec<plan::ReplayRequest>>;

/// Replay: sends each request of the feed when due, to an idle sender,
/// starting one while under the in-flight cap and counting the request as
/// dropped otherwise, as the open model does with arrivals. Returns when
/// the load phase ended: the feed ran dry, or a stop.
async fn replay_loop<C: Connector + 'static>(
    sh: &Rc<Shared<C>>,
    mut feed: Feed,
    max_in_flight: usize,
    pacer: &Pacer,
) -> Duration {
    let pool = Rc::new(Pool::default());
    let mut last_due = Duration::ZERO;
    let mut stopped = false;
    'feed: loop {
        let batch = tokio::select! {
            biased;
            _ = sh.end.cancelled() => { stopped = true; break; }
            b = feed.recv() => match b {
                Some(b) => b,
                None => break,
            },
        };
        for req in batch {
            if !until_due(sh, pacer, sh.start + req.due).await {
                stopped = true;
                break 'feed;
            }
            last_due = req.due;
            if !sh.take_budget() {
                sh.end.cancel();
                break 'feed;
            }
            let Some(slot) = pool.sender(sh, max_in_flight) else {
                sh.recorders[0]
                    .borrow_mut()
                    .record_dropped(req.endpoint, req.due);
                continue;
            };
            slot.job.set(Some(Job::Replay(req)));
            slot.wake.notify_one();
        }
    }
    pool.close();
    if stopped {
        Instant::now().saturating_duration_since(sh.start)
    } else {
        last_due
    }
}

/// How often the closed model re-reads its user count.
const VU_TICK: Duration = Duration::from_millis(10);

/// Closed model: keeps this worker's share of the current user count
/// running. Each user sends, waits for the response, thinks, and repeats.
async fn closed_loop<C: Connector + 'static>(
    sh: &Rc<Shared<C>>,
    profile: &Profile,
    think: Duration,
    cfg: &WorkerConfig,
    running_count: &Rc<Cell<usize>>,
) -> Duration {
    let duration = profile.duration();
    let target = Rc::new(Cell::new(0usize));
    let running: Rc<RefCell<Vec<bool>>> = Rc::default();
    loop {
        let t = Instant::now().saturating_duration_since(sh.start);
        if sh.end.is_cancelled() || duration.is_some_and(|d| t >= d) || sh.budget.get() == Some(0) {
            break;
        }
        // A small epsilon keeps 49.9999999 (float ramps) from flooring to 49.
        let total = (profile.value_at(t) + 1e-9).floor() as u64;
        let mine = cfg.segment.share(total, cfg.index, cfg.workers) as usize;
        target.set(mine);
        if running.borrow().len() < mine {
            running.borrow_mut().resize(mine, false);
        }
        for i in 0..mine {
            if !running.borrow()[i] {
                running.borrow_mut()[i] = true;
                let guard = AliveGuard::new(sh);
                // Unique across workers and segments: `sh.worker` and
                // `sh.workers` place this worker among all of them.
                let vu = (i * sh.workers + sh.worker) as u64;
                tokio::task::spawn_local(virtual_user(
                    guard,
                    i,
                    vu,
                    think,
                    target.clone(),
                    running.clone(),
                    running_count.clone(),
                ));
            }
        }
        tokio::select! {
            biased;
            _ = sh.end.cancelled() => break,
            _ = sleep(VU_TICK) => {}
        }
    }
    let t = Instant::now().saturating_duration_since(sh.start);
    match duration {
        Some(d) if !sh.end.is_cancelled() && sh.budget.get() != Some(0) => d.min(t),
        _ => t,
    }
}

async fn virtual_user<C: Connector>(
    guard: AliveGuard<C>,
    index: usize,
    vu: u64,
    think: Duration,
    target: Rc<Cell<usize>>,
    running: Rc<RefCell<Vec<bool>>>,
    running_count: Rc<Cell<usize>>,
) {
    let sh = &guard.0;
    running_count.set(running_count.get() + 1);
    let mut session = sh.session(vu);
    while index < target.get() && !sh.end.is_cancelled() {
        sh.run_flow(&mut session, None, true).await;
        if !think.is_zero() {
            tokio::select! {
                biased;
                _ = sh.end.cancelled() => break,
                _ = sleep(think) => {}
            }
        }
    }
    running_count.set(running_count.get() - 1);
    if let Some(r) = running.borrow_mut().get_mut(index) {
        *r = false;
    }
}
