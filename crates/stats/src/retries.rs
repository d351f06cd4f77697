//! What retrying clients did: attempts per logical request, retries by
//! cause, goodput.
//!
//! A *logical request* is one a user wanted; it is what every other
//! number of a run counts (one request in `counts`, its latency from the
//! first attempt's intended send time to the end of the last attempt, its
//! outcome the last attempt's). An *attempt* is one actually sent: what
//! the target served.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ErrorKind, Outcome};

/// Why an attempt was retried. The order is that of the cause columns of
/// [`RetryStats::seconds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCause {
    /// A response with a 5xx status.
    Http5xx,
    /// No response, or no connection, within the timeout.
    Timeout,
    /// The connection could not be opened.
    Connect,
    /// The connection was reset or closed before the response ended.
    Reset,
}

impl RetryCause {
    /// The cause an outcome would be retried for, if any: 4xx, checks,
    /// TLS and protocol failures are not retryable.
    pub fn of(outcome: Outcome) -> Option<RetryCause> {
        match outcome {
            Outcome::Response { status: 500..=599 } => Some(RetryCause::Http5xx),
            Outcome::Response { .. } => None,
            Outcome::Failed(kind) => match kind {
                ErrorKind::Timeout | ErrorKind::ConnectTimeout => Some(RetryCause::Timeout),
                ErrorKind::ConnectRefused | ErrorKind::Connect => Some(RetryCause::Connect),
                ErrorKind::Reset => Some(RetryCause::Reset),
                ErrorKind::Tls
                | ErrorKind::Protocol
                | ErrorKind::Http4xx
                | ErrorKind::Http5xx
                | ErrorKind::CheckFailed
                | ErrorKind::Dropped
                | ErrorKind::Cancelled
                | ErrorKind::BodyTooLarge
                | ErrorKind::Blocked
                | ErrorKind::TooManyRedirects
                | ErrorKind::MissingValue
                | ErrorKind::UpgradeFailed
                | ErrorKind::WsClosed
                | ErrorKind::MessageTimeout => None,
            },
        }
    }
}

/// Retries made, by the cause of the attempt before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryCounts {
    /// After a 5xx response.
    pub http_5xx: u64,
    /// After a timeout.
    pub timeout: u64,
    /// After a failed connect.
    pub connect: u64,
    /// After a reset connection.
    pub reset: u64,
}

impl RetryCounts {
    /// Every retry.
    pub fn total(&self) -> u64 {
        self.http_5xx + self.timeout + self.connect + self.reset
    }

    fn add(&mut self, cause: RetryCause) {
        *match cause {
            RetryCause::Http5xx => &mut self.http_5xx,
            RetryCause::Timeout => &mut self.timeout,
            RetryCause::Connect => &mut self.connect,
            RetryCause::Reset => &mut self.reset,
        } += 1;
    }

    fn merge(&mut self, o: &RetryCounts) {
        self.http_5xx += o.http_5xx;
        self.timeout += o.timeout;
        self.connect += o.connect;
        self.reset += o.reset;
    }
}

/// Columns of [`RetryStats::seconds`].
pub const SECOND_COLUMNS: usize = 7;

/// Attempts and goodput of a run whose scenario retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryStats {
    /// Logical requests that ended (the same as `counts.requests`).
    pub logical: u64,
    /// Attempts sent: first attempts plus retries.
    pub attempts: u64,
    /// Retries, by the cause of the attempt before.
    pub retries: RetryCounts,
    /// Retries a policy called for but its budget refused.
    pub budget_refused: u64,
    /// Logical requests that succeeded (no error, checks passed) within
    /// their deadline.
    pub goodput: u64,
    /// Per timeline bucket (a second, or `Stats::bucket_s`) of the first
    /// attempt's due time: `[logical, attempts, goodput, retries after 5xx,
    /// after timeout, after connect, after reset]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<[u64; SECOND_COLUMNS]>,
    /// The length of a row of `seconds` while recording, kept equal to the
    /// timeline's by `Stats` (0 reads as 1).
    #[serde(skip)]
    pub(crate) bucket_s: u64,
}

impl RetryStats {
    /// Records a logical request due at `due` that took `attempts`
    /// attempts; `good` if it succeeded within its deadline.
    pub fn record(&mut self, due: Duration, attempts: u32, good: bool) {
        self.logical += 1;
        self.attempts += u64::from(attempts);
        self.goodput += u64::from(good);
        let row = self.second(due);
        row[0] += 1;
        row[1] += u64::from(attempts);
        row[2] += u64::from(good);
    }

    fn second(&mut self, due: Duration) -> &mut [u64; SECOND_COLUMNS] {
        let second = (due.as_secs() / self.bucket_s.max(1)) as usize;
        if self.seconds.len() <= second {
            self.seconds.resize(second + 1, [0; SECOND_COLUMNS]);
        }
        &mut self.seconds[second]
    }

    /// Records a retry about to be sent for a logical request due at `due`.
    pub fn record_retry(&mut self, due: Duration, cause: RetryCause) {
        self.retries.add(cause);
        self.second(due)[3 + cause as usize] += 1;
    }

    /// Records a retry the budget refused.
    pub fn record_budget_refused(&mut self) {
        self.budget_refused += 1;
    }

    /// Attempts per logical request: 1.0 when nothing was retried.
    pub fn amplification(&self) -> f64 {
        if self.logical == 0 {
            1.0
        } else {
            self.attempts as f64 / self.logical as f64
        }
    }

    /// Adds `other`'s counts; seconds add by index.
    pub fn merge(&mut self, other: &RetryStats) {
        self.logical += other.logical;
        self.attempts += other.attempts;
        self.retries.merge(&other.retries);
        self.budget_refused += other.budget_refused;
        self.goodput += other.goodput;
        crate::timeline::add_rows(&mut self.seconds, &other.seconds);
    }
}
