//! Clients that retry: when an attempt fails, how long to wait before the
//! next, and whether the retry budget allows it.
//!
//! A *logical request* is one a user wanted; an *attempt* is one actually
//! sent. Retry storms (incident I4) come from clients whose attempts grow
//! with the failure rate: a policy with no budget retries every failure, a
//! budget caps retries at a fraction of logical requests.

use std::time::Duration;

/// How a client retries one step's request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Most attempts per logical request, the first included (1 = never retry).
    pub attempts: u32,
    /// How the pause between attempts grows.
    pub backoff: Backoff,
    /// The first pause (before jitter).
    pub base: Duration,
    /// The longest pause (before jitter).
    pub max: Duration,
    /// How much of the pause is random.
    pub jitter: Jitter,
    /// Which failures are retried.
    pub on: RetryOn,
    /// Retries allowed as a fraction of logical requests over the last
    /// [`BUDGET_WINDOW`] (per worker); `None` for no limit.
    pub budget: Option<f64>,
    /// How long the user waits for the logical request, retries included:
    /// a success after it does not count as goodput. `None`: the request's
    /// timeout.
    pub deadline: Option<Duration>,
}

impl Default for Retry {
    /// Three attempts, exponential backoff from 100 ms to 10 s with full
    /// jitter, on every retryable failure, no budget: a common client
    /// library's defaults.
    fn default() -> Retry {
        Retry {
            attempts: 3,
            backoff: Backoff::Exponential,
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
            jitter: Jitter::Full,
            on: RetryOn::ALL,
            budget: None,
            deadline: None,
        }
    }
}

/// How pauses grow from one retry to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Retry at once.
    None,
    /// Always `base`.
    Fixed,
    /// `base`, `2 x base`, `4 x base`... up to `max`.
    Exponential,
}

/// How much of a pause is random (as in "Exponential Backoff And Jitter",
/// AWS Architecture Blog, 2015).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The whole pause, every time: clients that failed together retry together.
    None,
    /// Uniform between 0 and the pause.
    Full,
    /// Half the pause plus a uniform part up to the other half.
    Equal,
}

/// Which failures a policy retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// Responses with a 5xx status.
    pub http_5xx: bool,
    /// No response (or no connection) within the timeout.
    pub timeout: bool,
    /// The connection could not be opened (refused, unreachable).
    pub connect: bool,
    /// The connection was reset or closed before the response ended.
    pub reset: bool,
}

impl RetryOn {
    /// Every retryable failure.
    pub const ALL: RetryOn = RetryOn {
        http_5xx: true,
        timeout: true,
        connect: true,
        reset: true,
    };
    /// Nothing.
    pub const NONE: RetryOn = RetryOn {
        http_5xx: false,
        timeout: false,
        connect: false,
        reset: false,
    };
}

impl Retry {
    /// The pause before retry number `retry` (1 for the first retry), with
    /// `u` a uniform draw in `0..1` for the jitter.
    pub fn pause(&self, retry: u32, u: f64) -> Duration {
        let full = match self.backoff {
            Backoff::None => return Duration::ZERO,
            Backoff::Fixed => self.base,
            Backoff::Exponential => {
                let doublings = retry.saturating_sub(1).min(32);
                self.base.saturating_mul(1u32 << doublings.min(31))
            }
        }
        .min(self.max);
        let u = u.clamp(0.0, 1.0);
        match self.jitter {
            Jitter::None => full,
            Jitter::Full => full.mul_f64(u),
            Jitter::Equal => full / 2 + (full / 2).mul_f64(u),
        }
    }
}

/// The span over which a retry budget counts requests and retries.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// A retry budget's bookkeeping: logical requests and retries per second
/// over the last [`BUDGET_WINDOW`]. A retry is allowed while retries in
/// the window stay within the budget's fraction of logical requests in it,
/// so a long healthy spell does not bank retries for a later storm (the
/// scheme of Finagle's `RetryBudget`). One per worker; time comes in as
/// an offset, so tests need no clock.
#[derive(Debug, Clone, Default)]
pub struct RetryBudget {
    /// `[requests, retries]` per second, indexed by second modulo the window.
    slots: [[u64; 2]; 10],
    /// The second the slots were last rotated to.
    now: u64,
}

impl RetryBudget {
    fn rotate(&mut self, at: Duration) {
        let second = at.as_secs();
        if second > self.now {
            let stale = (second - self.now).min(self.slots.len() as u64);
            for s in 1..=stale {
                let slot = ((self.now + s) % self.slots.len() as u64) as usize;
                self.slots[slot] = [0, 0];
            }
            self.now = second;
        }
    }

    fn slot(&mut self) -> &mut [u64; 2] {
        let len = self.slots.len() as u64;
        &mut self.slots[(self.now % len) as usize]
    }

    /// Counts a logical request made at `at`.
    pub fn deposit(&mut self, at: Duration) {
        self.rotate(at);
        self.slot()[0] += 1;
    }

    /// Whether a retry at `at` fits in `fraction` of the window's logical
    /// requests; if so it is counted.
    pub fn withdraw(&mut self, at: Duration, fraction: f64) -> bool {
        self.rotate(at);
        let (requests, retries) = self
            .slots
            .iter()
            .fold((0, 0), |(q, r), s| (q + s[0], r + s[1]));
        if (retries + 1) as f64 <= fraction * requests as f64 {
            self.slot()[1] += 1;
            true
        } else {
            false
        }
    }
}
