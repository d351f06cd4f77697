//! Walking a flow: each step rendered, sent (with its retries and
//! redirects, `send.rs`), checked, extracted and recorded, with think
//! times between.

use super::send::{Chain, Exchange};
use super::*;

/// A step's request once sent: its sample (not yet recorded) and how many
/// attempts it took.
pub(super) struct Sent {
    pub(super) sample: Sample,
    pub(super) attempts: u32,
}

/// A walk's progress through its requests.
struct Walk<'s> {
    /// When the flow's first request is due (open model), else now.
    first_due: Option<Instant>,
    /// Whether a request has gone (or failed to).
    started: bool,
    /// The step whose think time comes before the next request.
    pending: Option<&'s plan::Step>,
}

impl Walk<'_> {
    /// When the next request is due: the first at the flow's due time,
    /// each later one when it goes.
    fn due(&mut self) -> Option<Instant> {
        let due = if self.started { None } else { self.first_due };
        self.started = true;
        due
    }
}

/// Where a walk through a flow's blocks is: a list of nodes, the next one,
/// and which pass of its loop this is.
struct Frame<'a> {
    nodes: &'a [Node],
    next: usize,
    pass: Pass<'a>,
}

/// The loop a frame's nodes belong to, if any, and its count so far.
enum Pass<'a> {
    /// Not a loop: the nodes run once (a flow's body, a branch).
    Once,
    /// Pass `n` (from 0) of `times`.
    Repeat { n: u32, times: u32, index: Slot },
    /// Item `n` of a list (at most `count`).
    ForEach {
        n: u32,
        count: u32,
        list: Slot,
        item: Slot,
        index: Slot,
    },
    /// Pass `n` of at most `max`, while `cond` holds.
    While {
        n: u32,
        max: u32,
        cond: &'a Cond,
        index: Slot,
    },
}

impl<C: Connector> Shared<C> {
    /// Runs one flow for `session`: picks it by weight and walks its
    /// steps and blocks, with each step's think time after it. The first
    /// request is due at `first_due` (open model) or now. Stops early when
    /// the load ends or the request budget is spent. `think_after_last`
    /// pauses after the last step too (closed-model users, whose next
    /// iteration follows).
    ///
    /// The walk keeps its place in a stack of frames, one per block it is
    /// inside: a straight flow never allocates one.
    pub(super) async fn run_flow(
        &self,
        session: &mut Session<C::Conn>,
        first_due: Option<Instant>,
        think_after_last: bool,
    ) {
        let scenario = &self.scenario;
        if !self.draw_rows(session) {
            return;
        }
        if scenario.clients.connections == Connections::PerSession {
            // Every session is a new visitor, on new connections, with
            // no TLS session to resume.
            session.conns.iter_mut().for_each(|c| *c = None);
            session.capture.tickets.forget();
            for lane in &mut session.lanes {
                lane.new_visitor(&session.capture.tickets);
            }
        }
        session.last_status = None;
        session.last_checks = false;
        let flow_index = scenario.pick_flow(session.rng.f64());
        let flow = &scenario.flows[flow_index];
        let arm_index = session.arm;
        let (Some(arm), Some(recorder)) = (self.arms.get(arm_index), self.recorders.get(arm_index))
        else {
            return;
        };
        let started = first_due
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(self.start);
        recorder.borrow_mut().record_session(started);
        let mut stack: Vec<Frame<'_>> = Vec::new();
        let mut frame = Frame {
            nodes: &flow.body,
            next: 0,
            pass: Pass::Once,
        };
        let mut walk = Walk {
            first_due,
            started: false,
            pending: None,
        };
        loop {
            let Some(node) = frame.nodes.get(frame.next) else {
                if next_pass(&mut frame.pass, session) {
                    frame.next = 0;
                    continue;
                }
                match stack.pop() {
                    Some(outer) => {
                        frame = outer;
                        continue;
                    }
                    None => break,
                }
            };
            frame.next += 1;
            let on = match node {
                Node::Step(i) => {
                    let at = (flow_index, *i);
                    self.visit_step(session, (arm, recorder), at, None, &mut walk)
                        .await
                }
                Node::Page(page) => {
                    self.visit_page(session, (arm, recorder), flow_index, page, &mut walk)
                        .await
                }
                Node::Live { step, live } => {
                    let at = (flow_index, *step);
                    self.visit_step(session, (arm, recorder), at, Some(live), &mut walk)
                        .await
                }
                block => {
                    if let Some(inner) = enter(block, session) {
                        stack.push(std::mem::replace(&mut frame, inner));
                    }
                    true
                }
            };
            if !on {
                break;
            }
        }
        if let (Some(last), true) = (walk.pending, think_after_last) {
            self.think(session, last, true).await;
        }
        session.iteration += 1;
    }

    /// Before a session's next request: a stop ends a flow that has
    /// started (one that has started finishes after the load phase ends,
    /// within the grace period, as real users would), and the think time
    /// of the step before comes first. False when the flow is to end.
    async fn between<'s>(&self, session: &mut Session<C::Conn>, walk: &mut Walk<'s>) -> bool {
        if walk.started && self.stop.is_cancelled() {
            return false;
        }
        match walk.pending.take() {
            Some(prev) => self.think(session, prev, false).await,
            None => true,
        }
    }

    /// Sends step `at` (flow, step) of the walk, with its checks and
    /// extracts, or opens its `live` connection and runs its session;
    /// false when the flow is to end.
    async fn visit_step<'s>(
        &'s self,
        session: &mut Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        at: (usize, usize),
        live: Option<&plan::Live>,
        walk: &mut Walk<'s>,
    ) -> bool {
        let step = &self.scenario.flows[at.0].steps[at.1];
        if !self.between(session, walk).await {
            return false;
        }
        let missing = missing(step, &session.vars);
        if missing.is_some() && step.on_missing == OnMissing::Skip {
            recorder.borrow_mut().record_skipped(step.endpoint);
            return true;
        }
        if !self.take_budget() {
            self.end.cancel();
            return false;
        }
        let due = walk.due();
        walk.pending = Some(step);
        if let Some(slot) = missing {
            self.record_missing(recorder, step, slot, due, session);
            return true;
        }
        let stop_flow = match live {
            None => {
                let Some(mut sent) = self.send_step(session, arm, recorder, at, due).await else {
                    return true;
                };
                let stop_flow = self.read_response(session, step, recorder, &mut sent.sample);
                self.record_step(recorder, step, &sent);
                stop_flow
            }
            Some(plan::Live::Ws(ws)) => {
                session.last_checks = false;
                session.last_status = None;
                self.run_ws(session, (arm, recorder), step, ws, due).await;
                false
            }
            Some(plan::Live::Sse(sse)) => {
                self.run_sse(session, (arm, recorder), step, sse, due).await
            }
        };
        if stop_flow {
            walk.pending = None;
        }
        !stop_flow
    }

    /// Loads a page of the walk; false when the flow is to end.
    async fn visit_page<'s>(
        &'s self,
        session: &mut Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        flow_index: usize,
        page: &'s plan::Page,
        walk: &mut Walk<'s>,
    ) -> bool {
        if !self.between(session, walk).await {
            return false;
        }
        let due = walk.due();
        let end = self
            .load_page(session, (arm, recorder), flow_index, page, due)
            .await;
        // The page's think time is its first step's.
        let flow = &self.scenario.flows[flow_index];
        let first = page.document.or(page.assets.first().copied());
        walk.pending = first.and_then(|i| flow.steps.get(i));
        if end.spent {
            self.end.cancel();
            return false;
        }
        if end.stop_flow {
            walk.pending = None;
            return false;
        }
        true
    }

    /// A step that needs variable `slot`, which has no value, under
    /// `on_missing: fail`: not sent, recorded as a `missing_value` failure.
    pub(super) fn record_missing(
        &self,
        recorder: &RefCell<Recorder>,
        step: &plan::Step,
        slot: Slot,
        due: Option<Instant>,
        session: &mut Session<C::Conn>,
    ) {
        self.record_failure(recorder, step.endpoint, due, ErrorKind::MissingValue);
        session.last_status = None;
        session.last_checks = false;
        self.note_error(ErrorKind::MissingValue, || {
            let name = self
                .scenario
                .var_names
                .get(slot)
                .map_or("a variable", String::as_str);
            let endpoint = self
                .scenario
                .endpoints
                .get(step.endpoint)
                .map_or("", String::as_str);
            format!(
                "{endpoint}: not sent, {{{{ {name} }}}} had no value (an earlier extraction found \
                 nothing, or no step on this path set it); `on_missing: skip` skips it instead"
            )
        });
    }

    /// Renders `step` for the session's user and makes a request of its
    /// parts with `build`: a live connection's upgrade or subscription,
    /// which go on a connection of their own. `None` when `build` cannot.
    pub(super) fn render_live<R>(
        &self,
        session: &mut Session<C::Conn>,
        arm: &Arm<C>,
        step: &plan::Step,
        build: impl FnOnce(&crate::request::Parts<'_>) -> Option<R>,
    ) -> Option<R> {
        let Session {
            vars,
            jar,
            rng,
            rendered,
            vu,
            iteration,
            agent,
            ..
        } = session;
        let mut ctx = RenderCtx {
            vars,
            vu: *vu,
            iteration: *iteration,
            rng,
            now_ms: unix_ms(),
        };
        rendered.step(&arm.target, step, &mut ctx);
        let agent = agent
            .and_then(|i| self.scenario.clients.user_agents.get(i))
            .map(|(ua, _)| ua.as_str());
        let who = Who {
            cookie: jar.header(),
            agent,
        };
        build(&rendered.step_parts(&arm.target, step, &who))
    }

    /// Takes this iteration's row of each feeder into the session's
    /// variables, so every step of it sees the same test user. False when
    /// a feeder ran out of unique rows: no new sessions start then.
    fn draw_rows(&self, session: &mut Session<C::Conn>) -> bool {
        for (i, feeder) in self.scenario.feeders.iter().enumerate() {
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
                return false;
            };
            for (slot, value) in feeder.slots.iter().zip(row) {
                if let Some(v) = session.vars.get_mut(*slot) {
                    *v = Some(value.clone());
                }
            }
        }
        true
    }

    /// Renders step `at` (flow, step) for the session's user, unless it is
    /// the same for everyone (then the arm's copy goes), and sends it with
    /// its retries and redirects. `None` when the request could not be
    /// built (recorded as a protocol failure).
    pub(super) async fn send_step(
        &self,
        session: &mut Session<C::Conn>,
        arm: &Arm<C>,
        recorder: &RefCell<Recorder>,
        at: (usize, usize),
        due: Option<Instant>,
    ) -> Option<Sent> {
        let scenario = &self.scenario;
        let step = &scenario.flows[at.0].steps[at.1];
        let timeout = step.timeout.unwrap_or(self.timeout);
        let Session {
            conns,
            arm: arm_index,
            vars,
            jar,
            rng,
            rendered,
            request,
            capture,
            vu,
            iteration,
            agent,
            ..
        } = session;
        let agent = agent
            .and_then(|i| scenario.clients.user_agents.get(i))
            .map(|(ua, _)| ua.as_str());
        capture.cookies = scenario.cookies;
        capture.headers = step.needs.headers;
        capture.body = step.needs.body;
        let who = Who {
            cookie: jar.header(),
            agent,
        };
        let ctx = RenderCtx {
            vars,
            vu: *vu,
            iteration: *iteration,
            rng,
            // Read by `step_request` only if it renders the step: a step
            // the same for every user needs no clock.
            now_ms: 0,
        };
        let Ok((req, shared)) = step_request(arm, at, step, &who, ctx, rendered, request) else {
            self.record_failure(recorder, step.endpoint, due, ErrorKind::Protocol);
            return None;
        };
        let conn = &mut conns[*arm_index];
        let mut exchange = Exchange {
            connector: &arm.connector,
            conn,
            req,
            method: &step.method,
            endpoint: step.endpoint,
            timeout,
            capture,
        };
        let (mut sample, attempts) = self
            .with_retries(step.retry.as_ref(), &mut exchange, due, recorder, rng)
            .await;
        let Exchange { conn, capture, .. } = exchange;
        if capture.location.is_some() {
            if shared {
                // A step the same for everyone was not rendered for the
                // user: its redirect starts from its parts (which need no
                // variables).
                rendered.step(&arm.target, step, &mut RenderCtx::anonymous(rng));
            }
            let mut chain = Chain {
                arm,
                conn,
                step,
                first: rendered,
                timeout,
                capture,
                jar,
                agent,
            };
            let hops;
            (sample, hops) = self.follow(&mut chain, sample).await;
            if hops > 0 {
                recorder.borrow_mut().record_redirects(step.endpoint, hops);
            }
        }
        if scenario.clients.connections == Connections::PerRequest {
            *conn = None;
        }
        for c in &capture.set_cookies {
            jar.set(c);
        }
        Some(Sent { sample, attempts })
    }

    /// Runs the step's checks on the response (marking the sample when
    /// one fails), then its extractions, and the cache audit of assets.
    /// Returns whether a failed check stops the flow.
    pub(super) fn read_response(
        &self,
        session: &mut Session<C::Conn>,
        step: &plan::Step,
        recorder: &RefCell<Recorder>,
        sample: &mut Sample,
    ) -> bool {
        let mut stop_flow = false;
        let Session {
            vars,
            lists,
            rng,
            capture,
            vu,
            iteration,
            last_status,
            last_checks,
            ..
        } = session;
        *last_checks = true;
        *last_status = None;
        if let Outcome::Response { status } = sample.outcome {
            *last_status = Some(status);
            if !step.checks.is_empty() || !step.extract.is_empty() {
                let view = ResponseView {
                    status,
                    headers: &capture.header_list,
                    body: &capture.body_bytes,
                    latency: sample.latency(),
                };
                let mut json = LazyJson::new(&capture.body_bytes);
                // Checks first, so they compare with values from earlier
                // steps (a read-your-writes check compares the read with
                // what was written); then this response's values are
                // extracted for the steps after it.
                let mut ctx = RenderCtx {
                    vars,
                    vu: *vu,
                    iteration: *iteration,
                    rng,
                    now_ms: unix_ms(),
                };
                let mut recorder = recorder.borrow_mut();
                for check in &step.checks {
                    let passed = check.passes(&view, &mut json, &mut ctx);
                    recorder.record_check(check.id, passed);
                    if !passed {
                        sample.checks_failed = true;
                        *last_checks = false;
                        stop_flow |= check.on_fail == OnFail::StopFlow;
                    }
                }
                for e in &step.extract {
                    let taken = e.take(&view, &mut json, rng);
                    if taken.missed() {
                        recorder.record_missed(step.endpoint);
                    }
                    keep(vars, lists, e.slot, taken);
                }
            }
        } else {
            *last_checks = false;
            // No response: this step's extractions have nothing, so their
            // variables have no value either.
            for e in &step.extract {
                keep(vars, lists, e.slot, Taken::One(None));
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
        stop_flow
    }

    /// Records a step's sample, and for a run that retries, whether the
    /// logical request was good within its deadline.
    pub(super) fn record_step(&self, recorder: &RefCell<Recorder>, step: &plan::Step, sent: &Sent) {
        let mut recorder = recorder.borrow_mut();
        let sample = &sent.sample;
        recorder.record(sample);
        if let Some(retries) = recorder.retries() {
            let timeout = step.timeout.unwrap_or(self.timeout);
            let deadline = step.retry.and_then(|r| r.deadline).unwrap_or(timeout);
            let good = sample.error().is_none() && sample.latency() <= deadline;
            retries.record(sample.due, sent.attempts, good);
        }
    }

    /// The think time after a step. Thinking before another step of this
    /// session ends only on a stop; thinking before the user's next
    /// iteration (after the `last` step) also ends with the load phase.
    /// Returns false when the session is to end.
    async fn think(&self, session: &mut Session<C::Conn>, step: &plan::Step, last: bool) -> bool {
        let pause = step.think.sample(&mut session.rng);
        let until = if last { &self.end } else { &self.stop };
        if pause.is_zero() {
            return true;
        }
        tokio::select! {
            biased;
            _ = until.cancelled() => false,
            _ = self.kill.cancelled() => false,
            _ = sleep(pause) => true,
        }
    }
}

/// The first variable `step`'s request needs that has no value.
pub(super) fn missing(step: &plan::Step, vars: &[Option<String>]) -> Option<Slot> {
    step.reads
        .iter()
        .copied()
        .find(|s| vars.get(*s).is_some_and(Option::is_none))
}

/// Keeps what an extract took in its variable: one value (or none, when
/// it found nothing) or a list.
pub(super) fn keep(
    vars: &mut [Option<String>],
    lists: &mut [Vec<String>],
    slot: Slot,
    taken: Taken,
) {
    match taken {
        Taken::One(value) => {
            if let Some(v) = vars.get_mut(slot) {
                *v = value;
            }
        }
        Taken::All(values) => {
            if let Some(l) = lists.get_mut(slot) {
                *l = values;
            }
        }
    }
}

/// Sets a loop's variable to `text`, reusing its buffer.
fn set_var(vars: &mut [Option<String>], slot: Slot, text: &str) {
    if let Some(v) = vars.get_mut(slot) {
        let buf = v.get_or_insert_with(String::new);
        buf.clear();
        buf.push_str(text);
    }
}

/// Sets `loop.index` to `n`.
fn set_index(vars: &mut [Option<String>], slot: Slot, n: u32) {
    set_var(vars, slot, itoa::Buffer::new().format(n));
}

/// The frame of a block the walk enters, with its loop variables set for
/// the first pass; `None` when it runs nothing (zero passes, an empty
/// branch).
fn enter<'a, Conn: Connection>(node: &'a Node, session: &mut Session<Conn>) -> Option<Frame<'a>> {
    let (nodes, pass) = match node {
        Node::Step(_) | Node::Page(_) | Node::Live { .. } => return None,
        Node::Repeat {
            min,
            max,
            index,
            body,
        } => {
            let times = session.rng.u32(*min..=*max);
            (
                body,
                Pass::Repeat {
                    n: 0,
                    times,
                    index: *index,
                },
            )
        }
        Node::ForEach {
            list,
            item,
            index,
            max,
            body,
        } => {
            let len = session.lists.get(*list).map_or(0, Vec::len);
            let count = u32::try_from(len).unwrap_or(u32::MAX).min(*max);
            (
                body,
                Pass::ForEach {
                    n: 0,
                    count,
                    list: *list,
                    item: *item,
                    index: *index,
                },
            )
        }
        Node::While {
            cond,
            max,
            index,
            body,
        } => (
            body,
            Pass::While {
                n: 0,
                max: *max,
                cond,
                index: *index,
            },
        ),
        Node::If {
            cond,
            then,
            otherwise,
        } => {
            let branch = if cond.holds(&session.cond_ctx()) {
                then
            } else {
                otherwise
            };
            (branch, Pass::Once)
        }
        Node::Random { arms } => {
            let i = plan::pick_arm(arms, session.rng.f64())?;
            (&arms[i].1, Pass::Once)
        }
    };
    if nodes.is_empty() || !begin_pass(&pass, session) {
        return None;
    }
    Some(Frame {
        nodes,
        next: 0,
        pass,
    })
}

/// Moves a frame's loop to its next pass; false when the loop is done (or
/// the frame is no loop).
fn next_pass<Conn: Connection>(pass: &mut Pass<'_>, session: &mut Session<Conn>) -> bool {
    match pass {
        Pass::Once => return false,
        Pass::Repeat { n, .. } | Pass::ForEach { n, .. } | Pass::While { n, .. } => *n += 1,
    }
    begin_pass(pass, session)
}

/// Whether pass `n` of a loop runs, setting its variables when it does:
/// `loop.index`, and a `for_each`'s item. A `for_each` reads its list
/// afresh each pass (its steps may have replaced it) and a `while` checks
/// its condition before each.
fn begin_pass<Conn: Connection>(pass: &Pass<'_>, session: &mut Session<Conn>) -> bool {
    let (n, index) = match *pass {
        Pass::Once => return true,
        Pass::Repeat { n, times, index } => {
            if n >= times {
                return false;
            }
            (n, index)
        }
        Pass::ForEach {
            n,
            count,
            list,
            item,
            index,
        } => {
            let value = session
                .lists
                .get(list)
                .and_then(|l| l.get(n as usize))
                .filter(|_| n < count);
            let Some(value) = value else {
                return false;
            };
            // The item is copied out of the list into a reused buffer.
            set_var(&mut session.vars, item, value);
            (n, index)
        }
        Pass::While {
            n,
            max,
            cond,
            index,
        } => {
            if n >= max {
                return false;
            }
            // The condition sees this pass's index.
            set_index(&mut session.vars, index, n);
            if !cond.holds(&session.cond_ctx()) {
                return false;
            }
            (n, index)
        }
    };
    set_index(&mut session.vars, index, n);
    true
}

/// Unix time now, in milliseconds, for templates.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The request of step `at` (flow, step): the arm's copy when the step is
/// the same for every user (then `true`), else rendered for this one
/// into `rendered` and `request`.
fn step_request<'r, C: Connector>(
    arm: &'r Arm<C>,
    at: (usize, usize),
    step: &plan::Step,
    who: &Who<'_>,
    mut ctx: RenderCtx<'_>,
    rendered: &mut Rendered,
    request: &'r mut Req<C>,
) -> Result<(&'r Req<C>, bool), Failure> {
    let anonymous = who.cookie.is_none() && who.agent.is_none();
    if let Some(r) = arm.prepared.get(at.0, at.1).filter(|_| anonymous) {
        return Ok((r, true));
    }
    ctx.now_ms = unix_ms();
    rendered.step(&arm.target, step, &mut ctx);
    request.render(&rendered.step_parts(&arm.target, step, who))?;
    Ok((request, false))
}
