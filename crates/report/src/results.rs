//! The results file, schema `throng.results/v1`.
//!
//! Everything but `raw` is derived from `raw` (and the run information) and
//! is there for people and scripts; `raw` holds the exact, mergeable state
//! (counters and HDR histograms), so later tools (merge, compare, report)
//! work from the file alone. Changing a field's meaning means a new schema
//! version and a note in `docs/results.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use analysis::ThresholdResult;
use serde::{Deserialize, Serialize};
use stats::{ErrorCounts, Hist, RetryCounts, Stats, Summary};

/// The schema id written into, and required of, every results file.
pub const SCHEMA: &str = "throng.results/v1";

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The load ran to its planned end (duration or request count).
    Completed,
    /// Stopped early by the user (Ctrl-C, SIGTERM).
    Interrupted,
    /// Stopped early by `--abort-on-fail`.
    Aborted,
    /// A checkpoint, rewritten every few seconds during the run: the run
    /// had not ended when it was written. A file that stays `running` is
    /// what a run killed outright (or a crashed machine) left behind.
    Running,
}

/// The planned load, as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadInfo {
    /// Constant arrival rate per second (open model without stages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Constant number of users (closed model without stages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vus: Option<f64>,
    /// Stages as `[target, seconds]` pairs.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub stages: Vec<(f64, f64)>,
    /// Planned duration in seconds; absent when bounded by count only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Request bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,
    /// `uniform` or `poisson` (open model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<String>,
    /// In-flight cap (open model), when one was set; absent when it was
    /// sized by Little's law as the run went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Think time in ms (closed model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think_ms: Option<f64>,
    /// Request timeout in ms.
    pub timeout_ms: f64,
    /// Worker threads.
    pub workers: usize,
    /// Which requests the client re-sent after a reused connection closed
    /// before their response: `never`, `safe` or `idempotent` (absent in
    /// files from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<String>,
    /// `--max-rate`: the ceiling on requests sent per second, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// `--max-body`: the most body bytes one response could have (0: no
    /// limit). Absent in files from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<u64>,
    /// `--seed`: the seed of the run's random choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The HTTP version spoken: `1.1` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Whether any step had a retry policy (false under `--no-retries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<bool>,
    /// The most redirects followed per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_redirects: Option<u32>,
}

/// What the binary knows about the run besides its statistics.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The command line, secrets redacted.
    pub command: String,
    /// The target URL.
    pub target: String,
    /// `open` or `closed`.
    pub model: String,
    /// The planned load.
    pub load: LoadInfo,
    /// RFC 3339 UTC time of the run start.
    pub started_at: String,
    /// The load phase's length.
    pub duration: Duration,
    /// How it ended.
    pub status: Status,
    /// The first error message seen per error kind.
    pub first_errors: BTreeMap<String, String>,
    /// Why the load stopped before its planned end, when not by the user.
    pub stop_reason: Option<String>,
    /// The scenario's recovery check, if it has one.
    pub recovery: Option<analysis::RecoveryCheck>,
    /// The segment this run was (`--segment K/N`), if it was one.
    pub segment: Option<SegmentInfo>,
    /// How much of the whole run a merge of segments covers.
    pub coverage: Option<Coverage>,
    /// What the target was doing: scraped metrics and watched processes,
    /// aligned with the timeline.
    pub server: Option<observe::Server>,
}

/// One segment of a run split between machines (`--segment K/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Which segment, from 0.
    pub index: usize,
    /// How many segments the whole run has.
    pub count: usize,
}

/// What a merge of segments holds of the whole run (`throng merge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Segments merged.
    pub segments: usize,
    /// Segments the run was split into.
    pub of: usize,
    /// Segments with no results file.
    pub missing: Vec<usize>,
    /// Segments merged that did not run to their planned end.
    pub incomplete: Vec<usize>,
    /// The share of the planned load the merged segments ran: each
    /// segment is `1 / of` of it, an incomplete one in proportion to the
    /// part of the planned duration it ran.
    pub fraction: f64,
    /// The same, in words: "7/8 segments; results cover 87.5% of the
    /// planned load (segment 3 missing)".
    pub text: String,
}

impl Coverage {
    /// Whether every segment ran to its end.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.incomplete.is_empty() && self.segments == self.of
    }
}

impl LoadInfo {
    /// The `resend` policy the run had (`safe`, the default, when the file
    /// does not say).
    pub fn resend_policy(&self) -> &str {
        self.resend.as_deref().unwrap_or("safe")
    }

    /// One of `parts` equal shares of the load, as each arm of an A/B run
    /// gets: the rate (or user count) and the stages' targets divided.
    pub fn share(&self, parts: usize) -> LoadInfo {
        let k = parts.max(1) as f64;
        self.levels(|x| x / k)
    }

    /// The whole of which this is one of `parts` equal shares: the
    /// inverse of [`LoadInfo::share`], for a merge of segments.
    pub fn whole(&self, parts: usize) -> LoadInfo {
        let k = parts.max(1) as f64;
        self.levels(|x| x * k)
    }

    /// The same load with `f` applied to its levels (rate, users, stage
    /// targets).
    fn levels(&self, f: impl Fn(f64) -> f64) -> LoadInfo {
        LoadInfo {
            rate: self.rate.map(&f),
            vus: self.vus.map(&f),
            stages: self.stages.iter().map(|&(t, d)| (f(t), d)).collect(),
            ..self.clone()
        }
    }

    /// The planned peak level (arrivals/s or users).
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.0)
            .fold(self.rate.or(self.vus).unwrap_or(0.0), f64::max)
    }

    /// The planned level (arrivals/s or users) in the middle of each of
    /// `buckets` timeline buckets of `bucket_s` seconds: stages ramp
    /// linearly from 0, as they ran.
    pub fn level_per_bucket(&self, buckets: usize, bucket_s: u64) -> Vec<f64> {
        let w = bucket_s.max(1) as f64;
        (0..buckets)
            .map(|t| {
                let t = (t as f64 + 0.5) * w;
                if self.stages.is_empty() {
                    return self.rate.or(self.vus).unwrap_or(0.0);
                }
                let (mut start, mut from) = (0.0, 0.0);
                for &(target, secs) in &self.stages {
                    if t < start + secs {
                        return from + (target - from) * (t - start) / secs.max(1e-9);
                    }
                    start += secs;
                    from = target;
                }
                from
            })
            .collect()
    }
}

/// Request totals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests sent that ended (ok or failed); dropped arrivals excluded.
    pub requests: u64,
    /// Responses with a status below 400.
    pub ok: u64,
    /// Failed requests: every error kind except `dropped`.
    pub errors: u64,
    /// Arrivals due but never sent.
    pub dropped: u64,
    /// `errors / requests` (0 when nothing was sent).
    pub error_rate: f64,
    /// `requests / duration_s`.
    pub rate: f64,
    /// Responses with at least one failed check, whatever their status.
    pub check_failures: u64,
    /// Redirects followed (hops; each request counts once in `requests`,
    /// with its last response). Absent when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redirects: u64,
    /// Re-sends the client made on its own: a reused connection closed
    /// after the request was written and before any byte of its response,
    /// and `load.resend` allowed its method to go again on a new
    /// connection. Each request counts once in `requests`; the target saw
    /// up to `requests + resent` of them. Absent when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
    /// Connections opened (TCP connects that succeeded).
    #[serde(default)]
    pub connections_opened: u64,
    /// Reused connections the target had closed while they were idle,
    /// found before a request was written to them and replaced: nothing
    /// was sent on them and nothing failed. Absent when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub connections_closed_idle: u64,
    /// TLS handshakes completed (each one a sample of `tls_ms`). Absent
    /// when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls_handshakes: u64,
    /// Of those, the ones that resumed an earlier session of the same
    /// user (a ticket, `--tls-resumption`); the rest were full. Absent
    /// when none did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls_resumed: u64,
    /// Sessions started: flows begun (an open-model arrival sent, a
    /// virtual user's iteration), each of one or more requests; absent
    /// for a replay, whose requests are not sessions.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One endpoint's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRow {
    /// Requests sent.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failures by kind (and dropped arrivals).
    pub error_kinds: ErrorCounts,
    /// Latency from the intended send time.
    pub latency_ms: Summary,
    /// Responses by status code.
    pub status: BTreeMap<String, u64>,
    /// Responses with at least one failed check.
    pub check_failures: u64,
    /// Redirects followed by its requests; absent when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redirects: u64,
    /// Re-sends of its requests (see `Totals::resent`); absent when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
    /// Extractions from its responses that found nothing (their variable
    /// then has no value); absent when none did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extracts_missed: u64,
    /// Times it was not sent because a variable it needs had no value and
    /// it says `on_missing: skip` (not in `requests`, not an error);
    /// absent when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// A page load (a scenario's `page`): each of its `requests` is one
    /// page, from its intended start to the end of its last request; its
    /// requests are counted on their own endpoints and in the totals,
    /// these are not. Absent for requests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub page: bool,
    /// A WebSocket step: each of its `requests` is one connection, its
    /// latency the upgrade time, its errors the connections that failed
    /// (refused, not upgraded, closed abnormally, a message awaited in
    /// vain). What happened on the sockets is here. Absent for requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveRow>,
    /// A recording's replay: its statuses against the recorded ones.
    /// Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayRow>,
}

/// How a replayed endpoint's statuses compared with the recording's
/// (see `EndpointRow::replay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRow {
    /// Requests compared: sent, not cancelled, with a recorded status.
    pub compared: u64,
    /// Of those, the ones whose status differed.
    pub differ: u64,
    /// `{"RECORDED -> REPLAYED": count}` for each pair that differed (0:
    /// no response).
    pub statuses: BTreeMap<String, u64>,
    /// Of the rest (the status recorded), those whose body size was not
    /// the recorded one's: empty against not, or more than twice the
    /// other. Absent when none was.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size_differ: u64,
    /// The first of those: `[recorded, replayed]` bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_example: Option<(u64, u64)>,
}

impl ReplayRow {
    fn of(d: &stats::ReplayDiff) -> ReplayRow {
        ReplayRow {
            compared: d.compared,
            differ: d.differing(),
            statuses: d
                .differ
                .iter()
                .map(|&(a, b, n)| (format!("{a} -> {b}"), n))
                .collect(),
            size_differ: d.size_differ,
            size_example: d.size_example,
        }
    }
}

/// A WebSocket endpoint's numbers (see `EndpointRow::live`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRow {
    /// `ws`.
    pub protocol: String,
    /// Connections tried.
    pub attempted: u64,
    /// Connections upgraded (101).
    pub opened: u64,
    /// Connections that never reached the server (refused, connect or
    /// TLS failures, timed out before an answer).
    pub refused: u64,
    /// Upgrades answered with another status, by status ("0": no valid
    /// answer).
    pub upgrade_failed: BTreeMap<String, u64>,
    /// Upgrade time of the connections opened, from the step's intended
    /// start to the 101.
    pub upgrade_ms: Summary,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages dropped from a full queue before an `expect` read them.
    pub messages_dropped: u64,
    /// `expect`s that saw no matching message in time.
    pub expect_timeouts: u64,
    /// Round trips timed: sends answered by the message an `expect`
    /// waited for.
    pub round_trips: u64,
    /// Round trips, from a send's intended time to the message that
    /// answered it.
    pub round_trip_ms: Summary,
    /// An event stream's time to its first event, from the step's
    /// intended start; absent for WebSockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event_ms: Option<Summary>,
    /// An event stream's gaps between consecutive events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<Summary>,
    /// An event stream's reconnections (each also in `attempted`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reconnects: u64,
    /// Closes the server began, or drops ("1006"), by close code; for an
    /// event stream, "0" is the server ending it.
    pub closed_by_server: BTreeMap<String, u64>,
    /// Sockets throng closed.
    pub closed_by_client: u64,
    /// The most sockets open at the end of a timeline bucket.
    pub peak_open: u64,
    /// Sockets open at the end of each timeline bucket (of the time they
    /// opened and closed, from the run's start).
    pub open: Vec<u64>,
}

impl LiveRow {
    fn of(l: &stats::LiveStats) -> LiveRow {
        let keys = |m: &BTreeMap<u16, u64>| m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        LiveRow {
            protocol: l.protocol.clone(),
            attempted: l.attempted,
            opened: l.opened,
            refused: l.refused,
            upgrade_failed: keys(&l.upgrade_failed),
            upgrade_ms: l.upgrade.summary(),
            messages_sent: l.sent,
            messages_received: l.received,
            bytes_sent: l.bytes_sent,
            bytes_received: l.bytes_received,
            messages_dropped: l.dropped,
            expect_timeouts: l.expect_timeouts,
            round_trips: l.round_trip.count(),
            round_trip_ms: l.round_trip.summary(),
            first_event_ms: l.first_event.as_ref().map(Hist::summary),
            gap_ms: l.gaps.as_ref().map(Hist::summary),
            reconnects: l.reconnects,
            closed_by_server: keys(&l.closed_by_server),
            closed_by_client: l.closed_by_client,
            peak_open: l.peak_open(),
            open: l.open_over_time(),
        }
    }
}

/// One check's results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckRow {
    /// Responses that passed it.
    pub passed: u64,
    /// Responses that failed it.
    pub failed: u64,
}

/// One second of the run: the requests whose send was due in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds from the run start.
    pub t: u64,
    /// Requests sent.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Arrivals dropped.
    pub dropped: u64,
    /// Failures by kind.
    pub error_kinds: ErrorCounts,
    /// Responses with a failed check.
    pub check_failures: u64,
    /// Re-sends of these requests (see `Totals::resent`); absent when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
    /// Sessions due to start in this second (see `Totals::sessions`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions: u64,
    /// Median latency (2 significant digits).
    pub p50_ms: f64,
    /// 90th percentile latency.
    pub p90_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Attempts sent for the requests due in this second (runs that retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
    /// Of the requests due in this second, those that succeeded within
    /// their deadline (runs that retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<u64>,
    /// Retries made for the requests due in this second, by cause (runs
    /// that retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryCounts>,
}

/// What retrying clients did (runs whose scenario retries). A request is
/// one a user wanted; an attempt is one sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrySummary {
    /// Requests users wanted (`totals.requests`).
    pub requests: u64,
    /// Attempts sent: first attempts plus retries.
    pub attempts: u64,
    /// `attempts / requests`: how much retries multiplied the load.
    pub amplification: f64,
    /// Retries, by the cause of the attempt before.
    pub retries: RetryCounts,
    /// Retries a policy called for but its budget refused.
    pub budget_refused: u64,
    /// Requests that succeeded (no error, checks passed) within their deadline.
    pub goodput: u64,
    /// `goodput / requests`.
    pub goodput_ratio: f64,
    /// `goodput / duration_s`.
    pub goodput_rate: f64,
}

/// A threshold's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRow {
    /// The expression.
    pub expr: String,
    /// Whether it held.
    pub ok: bool,
    /// The measured value (ms, a fraction, a rate or a count).
    pub actual: f64,
    /// The measured value for people.
    pub actual_text: String,
}

/// Whether the generator kept up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    /// True when the generator, not the target, may have been the limit.
    pub saturated: bool,
    /// Requests sent more than 1 ms after they were due (lag).
    #[serde(default)]
    pub late: u64,
    /// Why, in plain words.
    pub reasons: Vec<String>,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// A results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The throng version that wrote it.
    pub throng_version: String,
    /// The command line, secrets redacted.
    pub command: String,
    /// The target URL.
    pub target: String,
    /// `open` or `closed`.
    pub model: String,
    /// The planned load.
    pub load: LoadInfo,
    /// RFC 3339 UTC time of the run start.
    pub started_at: String,
    /// Length of the load phase in seconds (the denominator of `rate`).
    pub duration_s: f64,
    /// `completed`, `interrupted` or `aborted`.
    pub status: Status,
    /// Why the run stopped early (an abort, data that ran out), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Request totals.
    pub totals: Totals,
    /// Latency from the intended send time.
    pub latency_ms: Summary,
    /// From the actual send to the end of the response.
    pub service_ms: Summary,
    /// Actual minus intended send time.
    pub lag_ms: Summary,
    /// TCP connect, for requests that opened a connection.
    pub connect_ms: Summary,
    /// TLS handshake.
    pub tls_ms: Summary,
    /// Time to first byte, from the actual send.
    pub ttfb_ms: Summary,
    /// Counts by error kind (`dropped` included).
    pub errors: ErrorCounts,
    /// The first message seen for each error kind.
    pub error_examples: BTreeMap<String, String>,
    /// Per endpoint, by name.
    pub endpoints: BTreeMap<String, EndpointRow>,
    /// Per check, by name.
    pub checks: BTreeMap<String, CheckRow>,
    /// Per second (per `timeline_s` seconds in a run longer than an hour).
    pub timeline: Vec<TimelineRow>,
    /// The length of each timeline row, in seconds: 1, doubling each time
    /// a run outgrows 3600 rows.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub timeline_s: u64,
    /// What the server was doing: its scraped metrics and watched
    /// processes, one value per timeline row (`docs/results.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<observe::Server>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdRow>,
    /// What broke, where, when and at what load; most severe first
    /// (`docs/results.md` lists the kinds).
    #[serde(default)]
    pub findings: Vec<analysis::Finding>,
    /// Whether the generator kept up.
    pub generator: Generator,
    /// Attempts, retries and goodput, when the scenario retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetrySummary>,
    /// The recovery check's verdict, when the scenario has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<analysis::Recovery>,
    /// The segment of a run split between machines this file holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentInfo>,
    /// A merge of segments: how much of the whole run it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// The exact, mergeable state everything above is derived from.
    pub raw: Stats,
}

/// A results file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Not JSON at all.
    #[error("not a JSON file: {0}")]
    Json(serde_json::Error),
    /// JSON, but not a throng results file.
    #[error("not a throng results file (it has no \"schema\" field)")]
    NotResults,
    /// Another schema version.
    #[error("written with schema {found:?}; this throng reads {SCHEMA:?} (use the throng version that wrote it)")]
    Schema {
        /// The schema the file declares.
        found: String,
    },
    /// The right schema, but the content does not fit it.
    #[error("malformed {SCHEMA} file: {0}")]
    Malformed(serde_json::Error),
}

impl Results {
    /// When arrivals were dropped at the in-flight limit while a watched
    /// process was CPU-bound, what the server was doing then (the
    /// `generator_saturation` finding's server side): the target was full,
    /// not only the generator. (Dropped arrivals always make the
    /// generator `saturated`.)
    pub fn target_was_full(&self) -> Option<&analysis::ServerSide> {
        if self.totals.dropped == 0 {
            return None;
        }
        self.findings
            .iter()
            .find(|f| f.kind == "generator_saturation" && analysis::target_was_full(f))
            .and_then(|f| f.server.as_ref())
    }

    /// The live endpoints (WebSockets, event streams) and their numbers.
    pub fn live_endpoints(&self) -> impl Iterator<Item = (&String, &LiveRow)> {
        self.endpoints
            .iter()
            .filter_map(|(name, e)| e.live.as_ref().map(|l| (name, l)))
    }

    /// Judges `thresholds` on the run's stats over its duration
    /// (`info.duration`), then builds its results: the one way a run, an
    /// A/B arm, a checkpoint and a merge are judged alike.
    pub fn judged(info: RunInfo, stats: Stats, thresholds: &[analysis::Threshold]) -> Results {
        let verdicts: Vec<ThresholdResult> = thresholds
            .iter()
            .map(|t| t.evaluate(&stats, info.duration))
            .collect();
        Results::new(info, stats, &verdicts)
    }

    /// Builds the results of a run.
    pub fn new(info: RunInfo, stats: Stats, thresholds: &[ThresholdResult]) -> Results {
        let c = stats.counts;
        let secs = info.duration.as_secs_f64();
        let reasons = analysis::generator_limits(&stats);
        let (findings, recovery) = findings_of(&stats, &info);
        let replay = info.load.arrivals.as_deref() == Some("replay");
        Results {
            schema: SCHEMA.to_string(),
            throng_version: env!("CARGO_PKG_VERSION").to_string(),
            command: info.command,
            target: info.target,
            model: info.model,
            load: info.load,
            started_at: info.started_at,
            duration_s: secs,
            status: info.status,
            stop_reason: info.stop_reason,
            totals: totals_of(&stats, secs),
            latency_ms: stats.latency.summary(),
            service_ms: stats.service.summary(),
            lag_ms: stats.lag.summary(),
            connect_ms: stats.connect.summary(),
            tls_ms: stats.tls.summary(),
            ttfb_ms: stats.ttfb.summary(),
            errors: c.errors,
            error_examples: info.first_errors,
            endpoints: endpoints_of(&stats, replay),
            checks: stats
                .checks
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        CheckRow {
                            passed: c.passed,
                            failed: c.failed,
                        },
                    )
                })
                .collect(),
            timeline: timeline_of(&stats),
            timeline_s: stats.bucket_s,
            server: info.server.map(|mut server| {
                // One value per timeline row, whatever the caller had.
                for s in &mut server.series {
                    s.values.resize(stats.timeline.len(), None);
                }
                server
            }),
            thresholds: thresholds
                .iter()
                .map(|t| ThresholdRow {
                    expr: t.expr.clone(),
                    ok: t.ok,
                    actual: t.actual,
                    actual_text: t.actual_text.clone(),
                })
                .collect(),
            findings,
            generator: Generator {
                saturated: !reasons.is_empty(),
                late: analysis::late_requests(&stats),
                reasons,
            },
            retries: retries_of(&stats, secs),
            recovery,
            segment: info.segment,
            coverage: info.coverage,
            raw: stats,
        }
    }

    /// Whether every threshold held.
    pub fn thresholds_held(&self) -> bool {
        self.thresholds.iter().all(|t| t.ok)
    }

    /// Whether the run passed: every threshold held and, with a recovery
    /// check, goodput recovered.
    pub fn passed(&self) -> bool {
        self.thresholds_held() && self.recovery.as_ref().is_none_or(|r| r.ok)
    }

    /// The file's text: pretty JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain value or a map with string keys, which
        // serde_json always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a results file, checking its schema first so that files from
    /// other versions get a clear message.
    pub fn from_json(text: &str) -> Result<Results, ResultsError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(ResultsError::Json)?;
        match value.get("schema").and_then(|s| s.as_str()) {
            None => return Err(ResultsError::NotResults),
            Some(s) if s != SCHEMA => {
                return Err(ResultsError::Schema {
                    found: s.to_string(),
                })
            }
            Some(_) => {}
        }
        serde_json::from_value(value).map_err(ResultsError::Malformed)
    }
}

fn ratio(k: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        k as f64 / n as f64
    }
}

/// The run's totals over `secs` seconds of load.
fn totals_of(stats: &Stats, secs: f64) -> Totals {
    let c = stats.counts;
    Totals {
        requests: c.requests,
        ok: c.ok,
        errors: c.failed(),
        dropped: c.dropped(),
        error_rate: ratio(c.failed(), c.requests),
        rate: if secs > 0.0 {
            c.requests as f64 / secs
        } else {
            0.0
        },
        check_failures: c.check_failures,
        redirects: stats.redirects(),
        resent: c.resent,
        connections_opened: c.conns_opened,
        connections_closed_idle: c.conns_closed_idle,
        tls_handshakes: stats.tls.count(),
        tls_resumed: c.tls_resumed,
        sessions: c.sessions,
    }
}

/// Each endpoint's row.
/// The endpoints' rows. A replay's endpoints are those of the whole log,
/// named before it runs; with `only_sent`, those it never got to (an
/// interrupted replay's) are left out.
fn endpoints_of(stats: &Stats, only_sent: bool) -> BTreeMap<String, EndpointRow> {
    stats
        .endpoints
        .iter()
        .filter(|e| !only_sent || e.counts.requests > 0 || e.counts.dropped() > 0)
        .map(|e| {
            let row = EndpointRow {
                requests: e.counts.requests,
                errors: e.counts.failed(),
                error_kinds: e.counts.errors,
                latency_ms: e.latency.summary(),
                status: e.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                check_failures: e.counts.check_failures,
                redirects: e.redirects,
                resent: e.counts.resent,
                extracts_missed: e.missed,
                skipped: e.skipped,
                page: e.page,
                live: e.live.as_deref().map(LiveRow::of),
                replay: e.replay.as_ref().map(ReplayRow::of),
            };
            (e.name.clone(), row)
        })
        .collect()
}

/// A row per timeline bucket.
fn timeline_of(stats: &Stats) -> Vec<TimelineRow> {
    stats
        .timeline
        .iter()
        .enumerate()
        .map(|(t, b)| {
            let latency = b.latency.hist();
            let has = latency.count() > 0;
            let q = |q| if has { latency.quantile_ms(q) } else { 0.0 };
            let retried = stats
                .retries
                .as_ref()
                .map(|r| r.seconds.get(t).copied().unwrap_or_default());
            TimelineRow {
                t: t as u64 * stats.bucket_s,
                requests: b.counts.requests,
                errors: b.counts.failed(),
                dropped: b.counts.dropped(),
                error_kinds: b.counts.errors,
                check_failures: b.counts.check_failures,
                resent: b.counts.resent,
                sessions: b.counts.sessions,
                p50_ms: q(0.5),
                p90_ms: q(0.9),
                p99_ms: q(0.99),
                attempts: retried.map(|r| r[1]),
                goodput: retried.map(|r| r[2]),
                retries: retried.map(|r| RetryCounts {
                    http_5xx: r[3],
                    timeout: r[4],
                    connect: r[5],
                    reset: r[6],
                }),
            }
        })
        .collect()
}

/// Attempts, retries and goodput, for a run that retries.
fn retries_of(stats: &Stats, secs: f64) -> Option<RetrySummary> {
    stats.retries.as_ref().map(|r| RetrySummary {
        requests: r.logical,
        attempts: r.attempts,
        amplification: r.amplification(),
        retries: r.retries,
        budget_refused: r.budget_refused,
        goodput: r.goodput,
        goodput_ratio: ratio(r.goodput, r.logical),
        goodput_rate: if secs > 0.0 {
            r.goodput as f64 / secs
        } else {
            0.0
        },
    })
}

/// The findings, with the recovery check's verdict among them (most
/// severe first), and the recovery itself.
fn findings_of(
    stats: &Stats,
    info: &RunInfo,
) -> (Vec<analysis::Finding>, Option<analysis::Recovery>) {
    let shape = analysis::LoadShape {
        closed: info.model == "closed",
        level: info
            .load
            .level_per_bucket(stats.timeline.len(), stats.bucket_s),
        peak: info.load.peak(),
    };
    let mut findings = analysis::findings(stats, &shape, info.server.as_ref());
    let recovery = info
        .recovery
        .map(|check| analysis::recovery(stats, &check, info.duration));
    if let Some(r) = &recovery {
        let amplification = stats
            .retries
            .as_ref()
            .map(|rt| {
                format!(
                    "; retries made {:.2} attempts per request",
                    rt.amplification()
                )
            })
            .unwrap_or_default();
        let mut finding = analysis::Finding {
            kind: if r.ok { "recovered" } else { "no_recovery" }.into(),
            severity: if r.ok {
                analysis::Severity::Info
            } else {
                analysis::Severity::Critical
            },
            what: r.what.clone(),
            location: None,
            at_s: Some(r.check.to_s),
            evidence: format!(
                "goodput per second from the trigger on: {:?}{amplification}",
                r.goodput_per_s
            ),
            server: None,
        };
        if let Some(server) = &info.server {
            finding.server = analysis::beside(&finding, stats, server);
        }
        findings.push(finding);
        // Most severe first, as `analysis::findings` orders them.
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    }
    (findings, recovery)
}
