//! Replay: a log's requests, each sent when due by the open model's
//! senders.
//!
//! A recording's requests carry sessions: each replayed session has its
//! own cookie jar and the values its responses gave ([`Replayed`]), and
//! a request waits for the exchanges of its session that had ended before
//! it began when recorded (what it sends may come from them: the login's
//! cookie, an id from a listing), so a slower target delays it, counted
//! as lag, rather than breaking the session.

use std::collections::HashMap;

use super::open::{until_due, Pool};
use super::send::Exchange;
use super::*;

/// A replayed session's state.
#[derive(Default)]
pub(super) struct Replayed {
    jar: Jar,
    /// Values its responses gave, by variable.
    vars: HashMap<usize, String>,
    /// Its exchanges sent and not yet done: their number and their
    /// recorded end.
    under_way: Vec<(u64, u64)>,
    /// When it last sent, to forget it once idle.
    last: Option<Instant>,
}

/// A session idle this long is forgotten (its jar and values).
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);

/// Every replayed session of a worker.
#[derive(Default)]
pub(super) struct Sessions {
    by_id: RefCell<HashMap<u64, Replayed>>,
    /// Exchanges dispatched so far (numbering `under_way`).
    next: Cell<u64>,
    /// Woken whenever an exchange is done.
    done: Notify,
    swept: Cell<Option<Instant>>,
}

impl Sessions {
    /// Notes a recorded exchange handed to a sender, in due order, before
    /// any later one of its session can look: its number.
    fn dispatched(&self, req: &plan::ReplayRequest) -> Option<u64> {
        let plan::Recorded(rec) = req.recorded.as_ref()?;
        let id = self.next.get() + 1;
        self.next.set(id);
        let now = Instant::now();
        let mut by_id = self.by_id.borrow_mut();
        if self
            .swept
            .get()
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60))
        {
            self.swept.set(Some(now));
            by_id.retain(|_, s| {
                !s.under_way.is_empty()
                    || s.last.is_none_or(|l| now.duration_since(l) < FORGET_AFTER)
            });
        }
        let s = by_id.entry(req.session).or_default();
        s.under_way.push((id, rec.end_us));
        s.last = Some(now);
        Some(id)
    }

    /// Waits until no exchange of the session that had ended before `at_us`
    /// (recorded) is still under way.
    async fn wait_for_earlier(&self, session: u64, id: u64, at_us: u64) {
        loop {
            let done = self.done.notified();
            let waiting = self.by_id.borrow().get(&session).is_some_and(|s| {
                s.under_way
                    .iter()
                    .any(|&(other, end)| other < id && end <= at_us)
            });
            if !waiting {
                return;
            }
            done.await;
        }
    }

    fn finish(&self, session: u64, id: u64) {
        if let Some(s) = self.by_id.borrow_mut().get_mut(&session) {
            s.under_way.retain(|&(other, _)| other != id);
        }
        self.done.notify_waiters();
    }
}

/// A replayed log's requests for one worker, in due order, in batches.
pub type Feed = mpsc::Receiver<Vec<plan::ReplayRequest>>;

/// Replay: sends each request of the feed when due, to an idle sender,
/// starting one while under the in-flight cap and counting the request as
/// dropped otherwise, as the open model does with arrivals. Returns when
/// the load phase ended: the feed ran dry, or a stop.
pub(super) async fn replay_loop<C: Connector + 'static>(
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
            let id = sh.replayed.dispatched(&req);
            slot.job.set(Some(Job::Replay(req, id)));
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

impl<C: Connector> Shared<C> {
    /// Sends one replayed request, due at its time, and records it; a
    /// recorded one (`id` its dispatch number) in its session.
    pub(super) async fn replay_one(
        &self,
        session: &mut Session<C::Conn>,
        req: &plan::ReplayRequest,
        id: Option<u64>,
    ) {
        let (Some(arm), Some(recorder)) = (self.arms.first(), self.recorders.first()) else {
            return;
        };
        let recorded = req.recorded.as_ref().map(|r| &r.0);
        if let (Some(rec), Some(id)) = (recorded, id) {
            self.replayed
                .wait_for_earlier(req.session, id, rec.at_us)
                .await;
        }
        let due = Some(self.start + req.due);
        let Session {
            conns,
            rendered,
            request,
            capture,
            ..
        } = session;
        rendered.replay(&arm.target, req);
        // A log's request has no session state: no lookup for it.
        let cookie = recorded.and_then(|rec| {
            let by_id = self.replayed.by_id.borrow();
            let state = by_id.get(&req.session);
            let state = state?;
            rendered.substitute(&arm.target, rec, &|var| state.vars.get(&var).cloned());
            state.jar.header().map(str::to_string)
        });
        let rendering = request.render(&rendered.replay_parts(&arm.target, req, cookie.as_deref()));
        if rendering.is_err() {
            self.record_failure(recorder, req.endpoint, due, ErrorKind::Protocol);
            if let Some(id) = id {
                self.replayed.finish(req.session, id);
            }
            return;
        }
        let mut needs = plan::Needs::default();
        for (_, take) in recorded.map_or(&[][..], |r| &r.gives[..]) {
            let n = take.needs();
            needs.headers |= n.headers;
            needs.body |= n.body;
        }
        capture.cookies = recorded.is_some();
        capture.headers = needs.headers;
        capture.body = needs.body;
        let mut ex = Exchange {
            connector: &arm.connector,
            conn: &mut conns[0],
            req: request,
            method: &req.method,
            endpoint: req.endpoint,
            timeout: self.timeout,
            capture,
        };
        let sample = self.send_one(&mut ex, due).await;
        recorder.borrow_mut().record(&sample);
        let (Some(rec), Some(id)) = (recorded, id) else {
            return;
        };
        let cancelled = matches!(
            sample.outcome,
            stats::Outcome::Failed(ErrorKind::Cancelled | ErrorKind::Dropped)
        );
        if rec.status != 0 && !cancelled {
            let replayed = match sample.outcome {
                stats::Outcome::Response { status } => status,
                stats::Outcome::Failed(_) => 0,
            };
            recorder
                .borrow_mut()
                .record_replayed(req.endpoint, rec.status, replayed);
            if let (true, Some(size)) = (replayed == rec.status, rec.response_size) {
                if plan::sizes_differ(size, capture.received) {
                    recorder.borrow_mut().record_replayed_size(
                        req.endpoint,
                        size,
                        capture.received,
                    );
                }
            }
        }
        if let Some(state) = self.replayed.by_id.borrow_mut().get_mut(&req.session) {
            for c in &capture.set_cookies {
                state.jar.set(c);
            }
            if let stats::Outcome::Response { status } = sample.outcome {
                let view = plan::ResponseView {
                    status,
                    headers: &capture.header_list,
                    body: &capture.body_bytes,
                    latency: sample.latency(),
                };
                let mut json = plan::LazyJson::new(&capture.body_bytes);
                for (var, take) in &rec.gives {
                    if let Some(v) = take.value(&view, &mut json) {
                        state.vars.insert(*var, v);
                    }
                }
            }
        }
        self.replayed.finish(req.session, id);
    }
}
