//! Walking a flow: each step rendered, sent (with its retries and
//! redirects, `send.rs`), checked, extracted and recorded, with think
//! times between.

use super::send::{Chain, Exchange};
use super::*;

/// A step's request once sent: its sample (not yet recorded) and how many
/// attempts it took.
struct Sent {
    sample: Sample,
    attempts: u32,
}

impl<C: Connector> Shared<C> {
    /// Runs one flow for `session`: picks it by weight, sends each step in
    /// order with its think time after it. The first step is due at
    /// `first_due` (open model) or now. Stops early when the load ends or
    /// the request budget is spent. `think_after_last` pauses after the
    /// last step too (closed-model users, whose next iteration follows).
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
            let at = (flow_index, step_index);
            let Some(mut sent) = self.send_step(session, arm, recorder, at, due).await else {
                continue;
            };
            let stop_flow = self.read_response(session, step, recorder, &mut sent.sample);
            self.record_step(recorder, step, &sent);
            if stop_flow {
                break;
            }
            let last = step_index + 1 == flow.steps.len();
            if (!last || think_after_last) && !self.think(session, step, last).await {
                break;
            }
        }
        session.iteration += 1;
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
    async fn send_step(
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
            now_ms: unix_ms(),
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
    fn read_response(
        &self,
        session: &mut Session<C::Conn>,
        step: &plan::Step,
        recorder: &RefCell<Recorder>,
        sample: &mut Sample,
    ) -> bool {
        let mut stop_flow = false;
        let Session {
            vars,
            rng,
            capture,
            vu,
            iteration,
            ..
        } = session;
        if let Outcome::Response { status } = sample.outcome {
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
        stop_flow
    }

    /// Records a step's sample, and for a run that retries, whether the
    /// logical request was good within its deadline.
    fn record_step(&self, recorder: &RefCell<Recorder>, step: &plan::Step, sent: &Sent) {
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

/// Unix time now, in milliseconds, for templates.
fn unix_ms() -> u64 {
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
    rendered.step(&arm.target, step, &mut ctx);
    request.render(&rendered.step_parts(&arm.target, step, who))?;
    Ok((request, false))
}
