//! The closed set of ways a request can fail, and counts of each.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a request did not succeed. A failed request is data: it is counted
/// under exactly one kind, never described by a free-form message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The target refused the connection (nothing listening).
    ConnectRefused,
    /// The connection could not be set up within the request timeout.
    ConnectTimeout,
    /// Any other failure to connect (unreachable, no local ports left...).
    Connect,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// No complete response within the request timeout.
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The response was not valid HTTP, or broke a limit (header size).
    Protocol,
    /// The response had a 4xx status.
    Http4xx,
    /// The response had a 5xx status.
    Http5xx,
    /// The response arrived, but a check on its content failed.
    CheckFailed,
    /// The arrival was due but could not be sent (in-flight limit reached).
    Dropped,
    /// The request was still in flight when the run stopped and its grace
    /// period ran out.
    Cancelled,
    /// The response body went past `--max-body`: throng read no further
    /// and closed the connection.
    BodyTooLarge,
    /// A redirect pointed at a host the scenario does not name (its target
    /// or `allowed_hosts`), or at a scheme other than http and https: it
    /// was not followed.
    Blocked,
    /// The response was still a redirect after the most redirects the
    /// scenario follows (`redirects`, 10 by default).
    TooManyRedirects,
    /// The step needed a variable that had no value (an earlier extraction
    /// found nothing): it was not sent.
    MissingValue,
    /// A WebSocket's upgrade was answered with another status than 101
    /// (the status is counted on the endpoint's `live.upgrade_failed`).
    UpgradeFailed,
    /// A WebSocket was closed by the server with a code other than 1000
    /// or 1001, dropped without a close frame (1006), or closed while a
    /// message was awaited.
    WsClosed,
    /// A WebSocket `expect` saw no matching message within its timeout.
    MessageTimeout,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Connect,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Protocol,
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::CheckFailed,
        ErrorKind::Dropped,
        ErrorKind::Cancelled,
        ErrorKind::BodyTooLarge,
        ErrorKind::Blocked,
        ErrorKind::TooManyRedirects,
        ErrorKind::MissingValue,
        ErrorKind::UpgradeFailed,
        ErrorKind::WsClosed,
        ErrorKind::MessageTimeout,
    ];

    /// The stable id used in results files and thresholds.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::CheckFailed => "check_failed",
            ErrorKind::Dropped => "dropped",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Blocked => "blocked",
            ErrorKind::TooManyRedirects => "too_many_redirects",
            ErrorKind::MissingValue => "missing_value",
            ErrorKind::UpgradeFailed => "upgrade_failed",
            ErrorKind::WsClosed => "ws_closed",
            ErrorKind::MessageTimeout => "message_timeout",
        }
    }

    /// The kind with this id.
    pub fn from_id(id: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == id)
    }

    /// The kind for an HTTP status, if that status is an error.
    pub fn for_status(status: u16) -> Option<ErrorKind> {
        match status {
            400..=499 => Some(ErrorKind::Http4xx),
            500..=599 => Some(ErrorKind::Http5xx),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A count per [`ErrorKind`]; serialized as `{kind: count}` with zero
/// counts left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    /// Adds `n` to `kind`.
    pub fn add(&mut self, kind: ErrorKind, n: u64) {
        self.0[kind.index()] += n;
    }

    /// The count of `kind`.
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind.index()]
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// The kinds with a non-zero count, in report order.
    pub fn nonzero(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL
            .into_iter()
            .map(|k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
    }

    /// The sum over kinds of failed requests: everything but `dropped`,
    /// which were never sent.
    pub fn request_errors(&self) -> u64 {
        self.nonzero()
            .filter(|&(k, _)| k != ErrorKind::Dropped)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Serialize for ErrorCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.nonzero().map(|(k, n)| (k.as_str(), n)))
    }
}

impl<'de> Deserialize<'de> for ErrorCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        let mut counts = ErrorCounts::default();
        for (id, n) in map {
            let kind = ErrorKind::from_id(&id)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown error kind {id:?}")))?;
            counts.add(kind, n);
        }
        Ok(counts)
    }
}
