//! `--max-rate`: a hard ceiling on how fast a worker sends, whatever the
//! model, the scenario's retries or a replayed log ask for.
//!
//! A generic cell rate algorithm (the virtual-scheduling form of a token
//! bucket): each send takes the next slot, `gap` after the one before, and
//! may go up to `burst` ahead of its slot. So in any stretch of time `T` a
//! worker sends at most `rate × (T + burst)` requests, and a load below the
//! ceiling is never held back by more than the jitter of its own
//! arrivals. A send that has to wait is late by that much: it shows as the
//! generator's lag, and its latency still runs from when it was due.

use std::cell::Cell;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

/// How far ahead of its slot a send may go.
pub(crate) const BURST: Duration = Duration::from_millis(10);

/// One worker's share of the ceiling.
pub(crate) struct Ceiling {
    gap: Duration,
    /// When the next send's slot is (the "theoretical arrival time").
    next: Cell<Instant>,
}

impl Ceiling {
    /// At most `per_second` sends a second; `None` when that is not a
    /// positive number.
    pub(crate) fn new(per_second: f64, start: Instant) -> Option<Ceiling> {
        (per_second.is_finite() && per_second > 0.0).then(|| Ceiling {
            gap: Duration::from_secs_f64(1.0 / per_second),
            next: Cell::new(start),
        })
    }

    /// Waits until this send may go, and takes its slot.
    pub(crate) async fn turn(&self) {
        let now = Instant::now();
        let slot = self.next.get().max(now);
        self.next.set(slot + self.gap);
        let at = slot.checked_sub(BURST).unwrap_or(slot);
        if at > now {
            sleep_until(at).await;
        }
    }
}
