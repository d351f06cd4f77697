//! What can go wrong: a run that cannot start ([`EngineError`]) and a
//! request that fails ([`Failure`], with how far it got, [`Stage`]).

use std::time::Duration;

use stats::ErrorKind;

/// The run could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The host name did not resolve.
    #[error("cannot resolve {host:?}: {why} (check the host name, or use an IP address)")]
    Resolve {
        /// The host.
        host: String,
        /// Why (shown in the message, so not a `source` as well).
        why: std::io::Error,
    },
    /// The users' source addresses (`clients.source_ips`) cannot be used:
    /// not on this machine, or not of the target's family.
    #[error("{0}")]
    Source(String),
    /// TLS could not be set up (a bad `--cacert`, for instance).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// `--start-at` named a time already past.
    #[error("the start time (--start-at) passed {:.1} s ago: start every segment before it, or give a later time", .0.as_secs_f64())]
    StartPassed(Duration),
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
}

/// Why an exchange or a connect failed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The kind it is counted under.
    pub(crate) kind: ErrorKind,
    /// How far the request got: what decides whether it may go again.
    pub(crate) stage: Stage,
    /// The underlying error, kept to show the first one of each kind.
    pub(crate) detail: Option<std::io::Error>,
}

/// How far a request got on a connection that failed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Anywhere else (a fresh connection, part of a response came back, a
    /// connect failed): the request's own failure, counted.
    #[default]
    Failed,
    /// No byte of it left the client: the reused connection was already
    /// closed when it was to be written. Sending it on a new connection is
    /// not a re-send; the target never saw it.
    NotSent,
    /// Written on a reused connection, which then closed before any byte
    /// of a response: the target may or may not have seen it. Only the
    /// run's `resend` policy may send it again, and that is counted.
    Unanswered,
}

impl Failure {
    /// A failure of `kind` with no detail.
    pub(crate) fn new(kind: ErrorKind) -> Failure {
        Failure {
            kind,
            stage: Stage::Failed,
            detail: None,
        }
    }

    /// A failure of `kind` caused by `err`.
    pub(crate) fn io(kind: ErrorKind, err: std::io::Error) -> Failure {
        Failure {
            kind,
            stage: Stage::Failed,
            detail: Some(err),
        }
    }

    /// The same failure at `stage`.
    pub(crate) fn at(mut self, stage: Stage) -> Failure {
        self.stage = stage;
        self
    }
}
