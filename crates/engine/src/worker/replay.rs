//! Replay: a log's requests, each sent when due by the open model's
//! senders.

use super::open::{until_due, Pool};
use super::send::Exchange;
use super::*;

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

impl<C: Connector> Shared<C> {
    /// Sends one replayed request, due at its time, and records it.
    pub(super) async fn replay_one(
        &self,
        session: &mut Session<C::Conn>,
        req: &plan::ReplayRequest,
    ) {
        let (Some(arm), Some(recorder)) = (self.arms.first(), self.recorders.first()) else {
            return;
        };
        let due = Some(self.start + req.due);
        let Session {
            conns,
            rendered,
            request,
            capture,
            ..
        } = session;
        rendered.replay(&arm.target, req);
        if request
            .render(&rendered.replay_parts(&arm.target, req))
            .is_err()
        {
            self.record_failure(recorder, req.endpoint, due, ErrorKind::Protocol);
            return;
        }
        capture.cookies = false;
        capture.headers = false;
        capture.body = false;
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
    }
}
