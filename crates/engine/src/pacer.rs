//! Waiting for due times with microsecond precision, asleep.
//!
//! tokio's timer fires on whole milliseconds, rounding up, so a plain
//! `sleep_until` sends an arrival due at 3.4 ms at 4 ms. The engine used to
//! wake 1 ms early and yield until the due time; from 1,000 arrivals a
//! second on that never slept, and a worker spent its whole core waiting
//! (bench case (e)). A `Pacer` instead arms a timerfd for the exact time
//! left (nanosecond resolution, on the monotonic clock that `Instant` reads)
//! and waits for it on tokio's reactor, so the worker sleeps until the
//! kernel wakes it, within the thread's timer slack (set to 1 µs for worker
//! threads by `engine::start`). The last few microseconds, too short to be
//! worth a system call, are still yielded away.
//!
//! Written by hand on `rustix` (safe system calls) because no maintained
//! crate offers a sub-millisecond timer for a current-thread tokio runtime;
//! when a timerfd cannot be had (not Linux, or a paused test clock), the
//! pacer falls back to tokio's timer.

use std::time::Duration;

use rustix::fd::OwnedFd;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::unix::AsyncFd;
use tokio::time::{sleep_until, Instant};

/// The last stretch of a wait, yielded away rather than slept: a sleeping
/// thread wakes some tens of microseconds after its timer fires (measured
/// here: ~60 µs at p50), so the timer is set this much early.
const SPIN: Duration = Duration::from_micros(50);

/// Waits for due times; one per worker.
pub(crate) struct Pacer {
    timer: Option<AsyncFd<OwnedFd>>,
}

impl Pacer {
    /// A precise pacer, or with `precise` false (a paused test clock, which
    /// only tokio's timer follows) one that sleeps on tokio's timer alone.
    pub(crate) fn new(precise: bool) -> Pacer {
        let timer = precise
            .then(|| {
                let fd = rustix::time::timerfd_create(
                    TimerfdClockId::Monotonic,
                    TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
                )
                .ok()?;
                // Deprecated because a type that only borrows its fd could
                // let it be closed while registered; here the AsyncFd owns
                // the OwnedFd, so nothing else can close it. (Its
                // replacement, `register`, is unsafe, which this workspace
                // forbids.)
                #[allow(deprecated)]
                AsyncFd::new(fd).ok()
            })
            .flatten();
        Pacer { timer }
    }

    /// Returns at `due` (or at once when it has passed).
    pub(crate) async fn until(&self, due: Instant) {
        let Some(timer) = &self.timer else {
            sleep_until(due).await;
            return;
        };
        loop {
            let now = Instant::now();
            if now >= due {
                return;
            }
            let left = due - now;
            if left <= SPIN {
                tokio::task::yield_now().await;
                continue;
            }
            let left = left - SPIN;
            let spec = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: Timespec {
                    tv_sec: left.as_secs() as _,
                    tv_nsec: left.subsec_nanos() as _,
                },
            };
            if rustix::time::timerfd_settime(timer.get_ref(), TimerfdTimerFlags::empty(), &spec)
                .is_err()
            {
                sleep_until(due).await;
                return;
            }
            match timer.readable().await {
                Ok(mut ready) => {
                    // Consume the expiry (or find there was none yet: a
                    // readiness left from an earlier wait); then look again.
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(timer.get_ref(), &mut count);
                    ready.clear_ready();
                }
                Err(_) => {
                    sleep_until(due).await;
                    return;
                }
            }
        }
    }
}

/// Lowers the calling thread's timer slack to 1 µs, so that its precise
/// waits end when asked rather than up to 50 µs later (Linux's default
/// slack for ordinary threads). Best effort.
pub(crate) fn tighten_timer_slack() {
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000));
}
