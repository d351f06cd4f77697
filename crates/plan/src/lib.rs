//! Load plans: the validated, I/O-free description of a run.
//!
//! Every way a user describes load (a rate, a user count, stages) becomes a
//! [`Plan`]: a [`Model`] whose level over time is a [`Profile`], plus the
//! request to send. The engine reads nothing else. Parsing here is pure: the
//! command line (or, later, a scenario file) hands in strings and bytes; only
//! the binary reads files or the environment.

mod check;
mod cond;
mod duration;
mod feeder;
mod live;
mod load;
mod page;
mod profile;
mod replay;
mod request;
mod retry;
mod scenario;
mod schedule;
mod segment;
pub mod suggest;
mod template;
mod think;
mod watch;

#[cfg(test)]
mod tests;

pub use check::{
    Check, CheckKind, Extract, ExtractFrom, LazyJson, Needs, OnFail, PickFrom, ResponseView,
    StatusMatch, Taken,
};
pub use cond::{Cond, CondCtx};
pub use duration::{format_duration, parse_duration, parse_percent, parse_size};
pub use feeder::{parse_csv, parse_jsonl, DataError, Feeder, Pick};
pub use live::{
    Live, SseStream, WsAction, WsExpect, WsKind, WsMessage, WsSession, DEFAULT_EXPECT_TIMEOUT,
    DEFAULT_SSE_RETRY, DEFAULT_WS_QUEUE, MAX_SSE_RETRY, MAX_WS_MESSAGE,
};
pub use load::{
    LoadSpec, ModelKind, DEFAULT_DURATION, DEFAULT_MAX_IN_FLIGHT, DEFAULT_VUS, QUEUE_WAIT,
};
pub use page::{fresh_for, html_assets, Page, DEFAULT_PAGE_CONNECTIONS, MAX_HTML_ASSETS};
pub use profile::{parse_stages, Profile, Shape, SpikeLevel, Stage};
pub use replay::{sizes_differ, BodyKind, Recorded, RecordedExchange, ReplayRequest, Take};
pub use request::{
    is_sensitive_header, HttpVersion, RequestSpec, Scheme, TlsOptions, SENSITIVE_HEADERS,
};
pub use retry::{Backoff, Jitter, Retry, RetryBudget, RetryOn, BUDGET_WINDOW};
pub use scenario::{
    looks_like_asset, parse_source_ips, pick_arm, CheckInfo, Clients, Connections, Flow, Node,
    OnMissing, Redirects, Resend, Scenario, SlowClients, Step, Target, DEFAULT_MAX_REDIRECTS,
};
pub use schedule::{share, ArrivalSchedule, Arrivals};
pub use segment::Segment;
pub use template::{
    expressions, Builtin, Context, Escape, RenderCtx, Scope, Slot, Template, TemplateError,
};
pub use think::{Think, MAX_THINK};
pub use watch::{Scrape, DEFAULT_SCRAPE_INTERVAL, DEFAULT_SCRAPE_MAX_SIZE, MIN_SCRAPE_INTERVAL};

use std::time::Duration;

/// A mistake in what the user asked for; shown as is, so each says what is
/// wrong and, where it can, how to write it instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A duration such as `30s` could not be read.
    #[error("invalid duration {input:?}: {why} (write e.g. 500ms, 30s, 2m, 1h30m)")]
    Duration {
        /// What the user wrote.
        input: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A stage list such as `0:10s,500:30s` could not be read.
    #[error("invalid stages {input:?}: {why} (write TARGET:DURATION pairs, e.g. 0:10s,500:30s,500:1m,0:10s)")]
    Stages {
        /// What the user wrote.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// A target URL has a query (steps carry queries, not the target).
    #[error("invalid target {input:?}: a target cannot have a query (put query parameters on the steps)")]
    TargetQuery {
        /// What the user wrote.
        input: String,
    },
    /// The URL is not an absolute http(s) URL.
    #[error("invalid URL {input:?}: {why}")]
    Url {
        /// What the user wrote.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// A header is not `Name: value`.
    #[error("invalid header {input:?}: {why} (write -H 'Name: value')")]
    Header {
        /// What the user wrote.
        input: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Options that contradict each other, or a value out of range.
    #[error("{0}")]
    Invalid(String),
}

/// How load is offered.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Open model: arrivals at a rate (per second) that does not depend on
    /// how fast the target answers. Latency is measured from each arrival's
    /// intended send time.
    Open {
        /// Arrivals per second over time.
        rate: Profile,
        /// How arrivals are spread within the rate.
        arrivals: Arrivals,
        /// Most sessions in flight at once (each on its own connection);
        /// an arrival that finds this many in flight waits for one to
        /// finish, and is counted as dropped after [`QUEUE_WAIT`]. `None`:
        /// sized as the run goes by Little's law (see
        /// [`DEFAULT_MAX_IN_FLIGHT`]).
        max_in_flight: Option<usize>,
    },
    /// Closed model: a number of virtual users over time, each sending its
    /// next request when the previous one finished (plus think time).
    Closed {
        /// Virtual users over time (the value is floored to whole users).
        vus: Profile,
        /// Pause between one response and the user's next request.
        think: Duration,
    },
}

impl Model {
    /// `"open"` or `"closed"`, as written in results files.
    pub fn name(&self) -> &'static str {
        match self {
            Model::Open { .. } => "open",
            Model::Closed { .. } => "closed",
        }
    }

    /// The level over time: arrivals per second, or users.
    pub fn profile(&self) -> &Profile {
        match self {
            Model::Open { rate, .. } => rate,
            Model::Closed { vus, .. } => vus,
        }
    }
}

/// Everything the engine needs for one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How load is offered.
    pub model: Model,
    /// Stop after this many requests have been started (all workers together).
    pub max_requests: Option<u64>,
    /// What each arrival (a session) or each user iteration does.
    pub scenario: Scenario,
    /// Limit on one request, from the moment it is sent (connect included).
    pub timeout: Duration,
    /// How long in-flight requests may take to finish once the load ends.
    pub grace: Duration,
    /// Worker threads; each owns its connections and statistics.
    pub workers: usize,
    /// Seed for every random choice (Poisson arrivals), so runs repeat.
    pub seed: u64,
    /// An A/B run's targets, baseline first; each session goes to one of
    /// them at random. Empty for a plain run (the scenario's target).
    pub ab: Vec<AbArm>,
    /// The part of the whole run this process runs (`--segment`); the
    /// whole run by default.
    pub segment: Segment,
    /// When the load starts, if at a set wall-clock time (`--start-at`),
    /// so that every segment's stages line up; else as soon as the
    /// workers are ready.
    pub start_at: Option<std::time::SystemTime>,
    /// How often each worker sends a copy of everything it recorded so
    /// far, for the `--out` checkpoints; never when `None`.
    pub snapshot_every: Option<Duration>,
    /// A hard ceiling on requests sent per second, by the whole run
    /// (`--max-rate`), retries included.
    pub max_rate: Option<f64>,
    /// Most body bytes a response may have (`--max-body`); a longer one
    /// fails as `body_too_large`, the rest unread. 0 for no limit.
    pub max_body: u64,
    /// The address of each target (the scenario's, or each A/B arm's in
    /// order), when chosen before the run (`engine::resolve`): a capacity
    /// search chooses once and sends every step there. Empty: the engine
    /// chooses at the run's start.
    pub addrs: Vec<std::net::SocketAddr>,
}

/// The default `--max-body`: 8 MiB.
pub const DEFAULT_MAX_BODY: u64 = 8 << 20;

/// One target of an A/B run.
#[derive(Debug, Clone, PartialEq)]
pub struct AbArm {
    /// What outputs call it (`base`, `cand`).
    pub name: String,
    /// Where its sessions go.
    pub target: Target,
}

impl Plan {
    /// How long the load lasts, if it is bounded in time.
    pub fn duration(&self) -> Option<Duration> {
        self.model.profile().duration()
    }

    /// How many workers the run uses: `workers`, but in the closed model no
    /// more than the peak user count, so that every worker has users to
    /// spend its share of a request bound on.
    pub fn worker_count(&self) -> usize {
        match &self.model {
            Model::Open { .. } => self.workers.max(1),
            Model::Closed { vus, .. } => {
                let peak = (vus.peak() + 1e-9).floor().max(0.0) as u64;
                let mine = share(peak, self.segment.count, self.segment.index).max(1);
                self.workers.clamp(1, mine as usize)
            }
        }
    }

    /// Checks the plan is runnable: bounded, with sane numbers.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.duration().is_none() && self.max_requests.is_none() {
            return Err(PlanError::Invalid(
                "the run has no end: give --duration, --stages or --requests".into(),
            ));
        }
        if self.max_requests == Some(0) {
            return Err(PlanError::Invalid("--requests must be at least 1".into()));
        }
        if self.workers == 0 {
            return Err(PlanError::Invalid("--workers must be at least 1".into()));
        }
        if self.timeout.is_zero() {
            return Err(PlanError::Invalid("--timeout must be more than 0".into()));
        }
        if let Model::Open { max_in_flight, .. } = &self.model {
            if *max_in_flight == Some(0) {
                return Err(PlanError::Invalid(
                    "--max-in-flight must be at least 1".into(),
                ));
            }
        }
        let profile = self.model.profile();
        if profile.peak() <= 0.0 {
            return Err(PlanError::Invalid(format!(
                "the {} never rises above 0: nothing would be sent",
                match self.model {
                    Model::Open { .. } => "rate",
                    Model::Closed { .. } => "number of users",
                }
            )));
        }
        Ok(())
    }
}
