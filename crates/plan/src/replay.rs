//! A request of a replayed access log or recording.

use std::sync::Arc;
use std::time::Duration;

use crate::check::{ExtractFrom, LazyJson, Needs, PickFrom, ResponseView, Taken};

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
    /// What a recording adds: headers, body, and the values that flow
    /// between the session's exchanges. `None` for an access log's line.
    pub recorded: Option<Recorded>,
}

/// A recorded exchange's part of a replayed request, shared by the
/// copies of a scaled session (compared by identity).
#[derive(Debug, Clone)]
pub struct Recorded(pub Arc<RecordedExchange>);

impl PartialEq for Recorded {
    fn eq(&self, other: &Recorded) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Recorded {}

/// A recorded request as it is sent again, and what its response gives
/// the session's later requests.
#[derive(Debug, Default)]
pub struct RecordedExchange {
    /// Headers to send, in order: the recording's, without those throng
    /// sets itself (`Host`, `Content-Length`, `Cookie`: the session's jar)
    /// and with masked values filled in or the header left out.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How values are written in the body, for those replaced in it.
    pub body_kind: BodyKind,
    /// When it came and when its response ended, in the recording's µs:
    /// a request waits for its session's earlier exchanges that had ended
    /// before it came (what it sends may depend on them).
    pub at_us: u64,
    /// See `at_us`.
    pub end_us: u64,
    /// The recorded status (0: none).
    pub status: u16,
    /// The recorded response body's size, when it can be compared (not
    /// compressed: a replay asks for bodies as they are).
    pub response_size: Option<u64>,
    /// Values it sends that an earlier response of the session gave: the
    /// variable and the text as recorded, replaced by the variable's value
    /// in the path, headers and body when the session has one.
    pub uses: Vec<(usize, String)>,
    /// Variables its response gives, and how to take each.
    pub gives: Vec<(usize, Take)>,
}

/// How a request body writes values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyKind {
    /// As they are.
    #[default]
    Raw,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// JSON (inside a string).
    Json,
}

/// How a value is taken from a replayed response.
#[derive(Debug, Clone)]
pub enum Take {
    /// The source's first match.
    First(ExtractFrom),
    /// Its `n`th match (from 0).
    Nth(ExtractFrom, usize),
    /// The last path segment of its first match (a `Location`).
    LastSegment(ExtractFrom),
}

impl Take {
    fn source(&self) -> &ExtractFrom {
        match self {
            Take::First(s) | Take::Nth(s, _) | Take::LastSegment(s) => s,
        }
    }

    /// What of a response it reads.
    pub fn needs(&self) -> Needs {
        let body = matches!(
            self.source(),
            ExtractFrom::Json(_) | ExtractFrom::Regex(..) | ExtractFrom::Css(..)
        );
        Needs {
            headers: !body,
            body,
        }
    }

    /// The value, if the response has it.
    pub fn value(&self, r: &ResponseView<'_>, json: &mut LazyJson<'_>) -> Option<String> {
        let mut rng = fastrand::Rng::with_seed(0);
        let mut all = |s: &ExtractFrom, json: &mut LazyJson<'_>| match s.take_as(
            PickFrom::All,
            r,
            json,
            &mut rng,
        ) {
            Taken::All(v) => v,
            Taken::One(v) => v.into_iter().collect(),
        };
        match self {
            Take::First(s) => all(s, json).into_iter().next(),
            Take::Nth(s, n) => all(s, json).into_iter().nth(*n),
            Take::LastSegment(s) => all(s, json).into_iter().next().and_then(|v| {
                let path = v.split(['?', '#']).next().unwrap_or("");
                path.rsplit_once('/').map(|(_, last)| last.to_string())
            }),
        }
    }
}

/// Whether a replayed body's size is not the recorded one's: one empty
/// and the other not, or one more than twice the other. The same page
/// differs by a few bytes (a date, a counter); an error page in its
/// place, an empty list or a truncated answer by more.
pub fn sizes_differ(recorded: u64, replayed: u64) -> bool {
    (recorded == 0) != (replayed == 0)
        || recorded.max(replayed) > recorded.min(replayed).saturating_mul(2)
}
