//! A request of a replayed access log.

use std::time::Duration;

/// One request to replay, with the time it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    /// When it is due, from the run start.
    pub due: Duration,
    /// The method.
    pub method: http::Method,
    /// Path and query, appended to the target's base path.
    pub path: String,
    /// The user agent the log recorded, if any.
    pub user_agent: Option<String>,
    /// Index of its endpoint among the run's endpoint names.
    pub endpoint: usize,
    /// Its session (a copy of a session, when scaled, is another one):
    /// requests of one session go to one worker.
    pub session: u64,
}
