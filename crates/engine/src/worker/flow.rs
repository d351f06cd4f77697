//! Walking a flow: each step rendered, sent, checked, extracted and
//! recorded, with think times between.

use super::send::Chain;
use super::*;

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
            let mut sample = self
                .send_one(
                    &arm.connector,
                    conn,
                    due,
                    step.endpoint,
                    req,
                    &step.method,
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
                            &step.method,
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
}
