//! The deadlines of a worker's requests in flight, and its kill switch,
//! watched by one task.
//!
//! Each request used to wrap itself in `tokio::time::timeout_at` and a
//! `select!` on the kill token: a timer-wheel entry registered and
//! cleared under the time driver's lock, and a waiter added to and taken
//! off the token's mutex-guarded list, for every request (~2.5% of the
//! CPU per request against nginx over HTTP/2, bench/README.md (j)). Here
//! a request takes a slot in a table on the worker's thread (no lock, no
//! allocation once the table has grown to the requests in flight), and
//! one task sleeps until the earliest deadline, marks the slots past
//! theirs and wakes them. Requests that end in time, nearly all, never
//! touch a timer. A new deadline wakes the watcher only when it is
//! earlier than the one it sleeps to (the run's first request, or a step
//! with a shorter timeout).

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

/// How a watched request ended.
#[derive(Debug)]
pub(super) enum Watched<T> {
    Done(T),
    TimedOut,
    Killed,
}

#[derive(Debug)]
struct Slot {
    deadline: Instant,
    waker: Option<Waker>,
    expired: bool,
}

#[derive(Debug, Default)]
pub(super) struct Watch {
    /// Requests in flight (`None`: a free slot, listed in `free`).
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<usize>>,
    killed: Cell<bool>,
    /// The deadline the watcher sleeps to (`None`: it sleeps until told).
    armed: Cell<Option<Instant>>,
    /// Set, with the watcher woken, when it must look again sooner.
    rearm: Cell<bool>,
    watcher: RefCell<Option<Waker>>,
}

impl Watch {
    /// Runs `f` until it ends, `deadline` passes, or the worker's kill
    /// switch is thrown; `f` is polled first, so a request whose response
    /// came with its deadline counts as done.
    pub(super) async fn run<F: Future>(&self, deadline: Instant, f: F) -> Watched<F::Output> {
        if self.killed.get() {
            return Watched::Killed;
        }
        let key = self.insert(deadline);
        let _slot = Remove(self, key);
        let mut f = pin!(f);
        poll_fn(|cx| {
            if let Poll::Ready(out) = f.as_mut().poll(cx) {
                return Poll::Ready(Watched::Done(out));
            }
            if self.killed.get() {
                return Poll::Ready(Watched::Killed);
            }
            let mut slots = self.slots.borrow_mut();
            let Some(Some(slot)) = slots.get_mut(key) else {
                return Poll::Ready(Watched::Killed);
            };
            if slot.expired {
                return Poll::Ready(Watched::TimedOut);
            }
            match &slot.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => slot.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    fn insert(&self, deadline: Instant) -> usize {
        let slot = Some(Slot {
            deadline,
            waker: None,
            expired: false,
        });
        let mut slots = self.slots.borrow_mut();
        let key = match self.free.borrow_mut().pop() {
            Some(key) => {
                slots[key] = slot;
                key
            }
            None => {
                slots.push(slot);
                slots.len() - 1
            }
        };
        if self.armed.get().is_none_or(|armed| deadline < armed) {
            self.armed.set(Some(deadline));
            self.rearm.set(true);
            if let Some(w) = self.watcher.borrow_mut().take() {
                w.wake();
            }
        }
        key
    }

    /// Marks the slots whose deadline has passed and wakes their
    /// requests; returns the earliest deadline still ahead.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for slot in self.slots.borrow_mut().iter_mut().flatten() {
            if slot.expired {
                continue;
            }
            if slot.deadline <= now {
                slot.expired = true;
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            } else if earliest.is_none_or(|e| slot.deadline < e) {
                earliest = Some(slot.deadline);
            }
        }
        earliest
    }

    fn kill(&self) {
        self.killed.set(true);
        for slot in self.slots.borrow_mut().iter_mut().flatten() {
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// The watcher: one task per worker, until the kill switch is thrown
    /// (or the worker ends and drops it).
    pub(super) async fn watch(self: Rc<Self>, kill: CancellationToken) {
        let mut sleep = pin!(sleep_until(Instant::now()));
        loop {
            self.rearm.set(false);
            let earliest = self.expire(Instant::now());
            self.armed.set(earliest);
            if let Some(at) = earliest {
                sleep.as_mut().reset(at);
            }
            let woken = poll_fn(|cx| {
                if self.rearm.get() {
                    return Poll::Ready(());
                }
                if earliest.is_some() && sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                *self.watcher.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            });
            tokio::select! {
                biased;
                _ = kill.cancelled() => {
                    self.kill();
                    return;
                }
                _ = woken => {}
            }
        }
    }
}

/// Gives a request's slot back when it ends (or is dropped).
struct Remove<'a>(&'a Watch, usize);

impl Drop for Remove<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.slots.borrow_mut().get_mut(self.1) {
            *slot = None;
            self.0.free.borrow_mut().push(self.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A future that never ends (a target that never answers).
    async fn never() {
        std::future::pending::<()>().await
    }

    /// Runs `test` on a `LocalSet`, beside a watcher task and its kill
    /// token, as a worker does.
    async fn watched<F: Future<Output = ()>>(test: impl FnOnce(Rc<Watch>, CancellationToken) -> F) {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let watch = Rc::new(Watch::default());
                let kill = CancellationToken::new();
                tokio::task::spawn_local(watch.clone().watch(kill.clone()));
                test(watch, kill).await
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_deadline_times_out_then_and_not_before() {
        watched(|watch, _kill| async move {
            let t0 = Instant::now();
            // A request that answers in 10 ms, with 50 ms allowed.
            let quick = watch
                .run(t0 + Duration::from_millis(50), async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    7
                })
                .await;
            assert!(matches!(quick, Watched::Done(7)));
            assert_eq!(t0.elapsed(), Duration::from_millis(10));
            // Two that never answer: the later deadline first, so the
            // earlier one has to wake the watcher.
            let t1 = Instant::now();
            let (late, early) =
                tokio::join!(watch.run(t1 + Duration::from_millis(300), never()), async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let r = watch.run(t1 + Duration::from_millis(100), never()).await;
                    (r, t1.elapsed())
                });
            assert!(matches!(late, Watched::TimedOut));
            assert!(matches!(early.0, Watched::TimedOut));
            assert_eq!(early.1, Duration::from_millis(100));
            assert_eq!(t1.elapsed(), Duration::from_millis(300));
            // Slots are given back and used again.
            assert_eq!(watch.slots.borrow().len(), 2);
            assert!(watch.slots.borrow().iter().all(Option::is_none));
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_kill_switch_ends_requests_in_flight_and_those_after() {
        watched(|watch, kill| async move {
            let far = Instant::now() + Duration::from_secs(3600);
            let t0 = Instant::now();
            let (a, b, ()) =
                tokio::join!(watch.run(far, never()), watch.run(far, never()), async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    kill.cancel();
                });
            assert!(matches!(a, Watched::Killed));
            assert!(matches!(b, Watched::Killed));
            assert_eq!(t0.elapsed(), Duration::from_millis(20));
            assert!(matches!(watch.run(far, async { 1 }).await, Watched::Killed));
        })
        .await;
    }
}
