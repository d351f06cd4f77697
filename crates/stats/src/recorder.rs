//! Recording samples into mergeable statistics.
//!
//! What each number means is pinned here and by the tests beside it:
//! - `latency` runs from the request's *intended* send time to the end of
//!   its response (lag + service), so a stalled target inflates the latency
//!   of every request that should have gone out during the stall;
//! - `service` runs from the actual send to the end of the response;
//! - `lag` is the actual minus the intended send time (the generator's own
//!   delay);
//! - latency histograms hold every request that got a complete response,
//!   whatever its status; transport failures are counted by kind only;
//! - `requests` counts requests that were sent and ended (ok or failed);
//!   `dropped` arrivals were never sent and are not in `requests`;
//! - `resent` counts the times a request was sent again by the client on
//!   its own (a reused connection closed after the request was written,
//!   before any byte of a response, and its method may be re-sent): such a
//!   request is one in `requests` and reached the target up to
//!   `1 + resent` times; `conns_opened` and `conns_closed_idle` count the
//!   connections the client opened and the reused ones it found closed by
//!   the target before writing to them (nothing was sent on those);
//! - a response whose status is fine but whose content fails a check counts
//!   as an error of kind `check_failed` (a 200 showing "An error has
//!   occurred" is a failure the user sees); `check_failures` counts every
//!   response with a failed check, whatever its status;
//! - the timeline files each request under the second its send was due
//!   (under its bucket of [`Stats::bucket_s`] seconds, in a run longer
//!   than an hour: see [`crate::timeline`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::timeline::{add_rows, pair_rows, BucketLatency, MAX_BUCKETS, OPEN_BUCKETS};
use crate::{CacheObs, CacheStats, ErrorCounts, ErrorKind, Hist, RetryStats, Windows};

/// Connection phases measured for one request; `None` where the phase did
/// not happen (a reused connection has no connect or TLS phase).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// TCP connect.
    pub connect: Option<Duration>,
    /// TLS handshake.
    pub tls: Option<Duration>,
    /// Whether that handshake resumed an earlier session (a ticket).
    pub resumed: bool,
    /// From the actual send to the first byte of the response.
    pub ttfb: Option<Duration>,
}

/// How a sent request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status (4xx and 5xx count as errors).
    Response {
        /// The HTTP status code.
        status: u16,
    },
    /// No complete response.
    Failed(ErrorKind),
}

/// What the client did on its own for one request, beyond sending it
/// once on the connection it had: each is counted, so that what reached
/// the target can be told from the results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientWork {
    /// Times the request was sent again on a new connection after a
    /// reused one closed before any byte of a response (`resend`).
    pub resent: u32,
    /// Connections opened for it (redirect hops and re-sends included).
    pub opened: u32,
    /// Of those, TLS connections that resumed an earlier session.
    pub resumed: u32,
    /// Reused connections found closed by the target before the request
    /// was written to them, and replaced: nothing was sent on them.
    pub closed_idle: u32,
}

impl std::ops::AddAssign for ClientWork {
    fn add_assign(&mut self, other: ClientWork) {
        self.resent += other.resent;
        self.opened += other.opened;
        self.resumed += other.resumed;
        self.closed_idle += other.closed_idle;
    }
}

/// One request's measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Index of the endpoint in the run's endpoint list.
    pub endpoint: usize,
    /// When the send was due, from the run start.
    pub due: Duration,
    /// Actual minus intended send time.
    pub lag: Duration,
    /// From the actual send to the end of the response (or the failure).
    pub service: Duration,
    /// Connection phases.
    pub phases: Phases,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether a check on the response failed.
    pub checks_failed: bool,
    /// What the client did on its own for it.
    pub client: ClientWork,
}

impl Sample {
    /// From the intended send time to the end: what a user would have waited.
    pub fn latency(&self) -> Duration {
        self.lag + self.service
    }

    /// The error kind this sample counts under, if any.
    pub fn error(&self) -> Option<ErrorKind> {
        match self.outcome {
            Outcome::Response { status } => ErrorKind::for_status(status)
                .or(self.checks_failed.then_some(ErrorKind::CheckFailed)),
            Outcome::Failed(kind) => Some(kind),
        }
    }
}

/// Request counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests sent that ended, successfully or not.
    pub requests: u64,
    /// Requests that got a response with a status below 400.
    pub ok: u64,
    /// Counts by error kind, `dropped` included.
    pub errors: ErrorCounts,
    /// Responses with at least one failed check, whatever their status.
    #[serde(default)]
    pub check_failures: u64,
    /// Re-sends the client made on its own (see [`ClientWork::resent`]):
    /// the target saw up to `requests + resent` of these requests.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resent: u64,
    /// Connections opened.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conns_opened: u64,
    /// Of those, TLS connections whose handshake resumed an earlier
    /// session (the rest of the TLS handshakes were full ones).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls_resumed: u64,
    /// Reused connections found closed by the target while idle, and
    /// replaced before anything was written to them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conns_closed_idle: u64,
    /// Sessions started (a flow begun: an arrival sent, a virtual user's
    /// iteration), counted at the session's intended start. Not a request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions: u64,
}

impl Counts {
    fn add(&mut self, s: &Sample) {
        self.requests += 1;
        match s.error() {
            None => self.ok += 1,
            Some(kind) => self.errors.add(kind, 1),
        }
        self.check_failures += u64::from(s.checks_failed);
        self.resent += u64::from(s.client.resent);
        self.conns_opened += u64::from(s.client.opened);
        self.tls_resumed += u64::from(s.client.resumed);
        self.conns_closed_idle += u64::from(s.client.closed_idle);
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.errors.merge(&other.errors);
        self.check_failures += other.check_failures;
        self.resent += other.resent;
        self.conns_opened += other.conns_opened;
        self.tls_resumed += other.tls_resumed;
        self.conns_closed_idle += other.conns_closed_idle;
        self.sessions += other.sessions;
    }

    /// Failed requests (every kind but `dropped`).
    pub fn failed(&self) -> u64 {
        self.errors.request_errors()
    }

    /// Arrivals that were due but never sent.
    pub fn dropped(&self) -> u64 {
        self.errors.get(ErrorKind::Dropped)
    }
}

/// How many load bands per-endpoint latency is split into.
pub const LOAD_BANDS: usize = 8;

/// The band of a planned load `level` in a run whose peak is `peak`:
/// band `b` holds levels in `[b, b + 1) x peak / LOAD_BANDS`, the peak in
/// the top band.
pub fn load_band(level: f64, peak: f64) -> usize {
    if peak <= 0.0 || !level.is_finite() {
        return 0;
    }
    ((level / peak * LOAD_BANDS as f64) as usize).min(LOAD_BANDS - 1)
}

/// One endpoint's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// The endpoint's name, e.g. `GET /`.
    pub name: String,
    /// Its request counts.
    pub counts: Counts,
    /// Responses by status code.
    pub status: BTreeMap<u16, u64>,
    /// Latency from the intended send time.
    pub latency: Hist,
    /// Latency by load band (see [`load_band`]), 2 significant digits;
    /// empty when the run's load did not vary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_load: Vec<Hist>,
    /// What successful responses said about caching, for endpoints whose
    /// path names a static asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStats>,
    /// Per timeline bucket of due time (a second, or [`Stats::bucket_s`]):
    /// `[requests, failed, check failures]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<[u64; 3]>,
    /// Requests, failures and latency in windows of due time (see
    /// [`Windows`]): what comparisons resample.
    #[serde(default)]
    pub windows: Windows,
    /// Redirects followed by its requests (hops; a request is counted
    /// once, with its last response's status).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redirects: u64,
    /// Extractions of its responses that found nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u64,
    /// Times it was not sent because a variable it needs had no value and
    /// its step says `on_missing: skip` (not failures).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// A page load's endpoint: each sample spans a page (its requests are
    /// counted on their own endpoints, and in the totals; these are not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub page: bool,
    /// A live endpoint's numbers (a WebSocket step's): its samples are
    /// its connections, their latency the upgrade time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Box<crate::LiveStats>>,
    /// A recording's replay: its responses' statuses against the recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayDiff>,
}

/// How a recording's replayed responses compared with the recorded ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayDiff {
    /// Requests compared: the recording had a status for them.
    pub compared: u64,
    /// Those whose status differed: the recorded status, the replayed one
    /// (0: no response) and how many, by recorded then replayed status.
    pub differ: Vec<(u16, u16, u64)>,
    /// Of the others (the same status), those whose body size was not
    /// the recorded one's (see `plan::sizes_differ`), when both could be
    /// compared.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size_differ: u64,
    /// The first such: the recorded and the replayed size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_example: Option<(u64, u64)>,
}

impl ReplayDiff {
    /// Counts one comparison.
    pub fn add(&mut self, recorded: u16, replayed: u16) {
        self.compared += 1;
        if recorded != replayed {
            self.add_differ(recorded, replayed, 1);
        }
    }

    fn add_differ(&mut self, recorded: u16, replayed: u16, n: u64) {
        match self
            .differ
            .binary_search_by_key(&(recorded, replayed), |&(a, b, _)| (a, b))
        {
            Ok(i) => self.differ[i].2 += n,
            Err(i) => self.differ.insert(i, (recorded, replayed, n)),
        }
    }

    /// Counts a response of the recorded status whose body size was not
    /// the recorded one's.
    pub fn add_size_differ(&mut self, recorded: u64, replayed: u64) {
        self.size_differ += 1;
        self.size_example.get_or_insert((recorded, replayed));
    }

    /// Adds another worker's.
    pub fn merge(&mut self, other: &ReplayDiff) {
        self.compared += other.compared;
        self.size_differ += other.size_differ;
        if self.size_example.is_none() {
            self.size_example = other.size_example;
        }
        for &(a, b, n) in &other.differ {
            self.add_differ(a, b, n);
        }
    }

    /// Requests whose status differed.
    pub fn differing(&self) -> u64 {
        self.differ.iter().map(|d| d.2).sum()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl EndpointStats {
    fn new(name: String) -> EndpointStats {
        EndpointStats {
            name,
            counts: Counts::default(),
            status: BTreeMap::new(),
            latency: Hist::new(),
            by_load: Vec::new(),
            cache: None,
            seconds: Vec::new(),
            windows: Windows::default(),
            redirects: 0,
            missed: 0,
            skipped: 0,
            page: false,
            live: None,
            replay: None,
        }
    }
}

/// One named check's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStats {
    /// The check's name.
    pub name: String,
    /// Responses that passed it.
    pub passed: u64,
    /// Responses that failed it.
    pub failed: u64,
    /// The endpoint it checks (empty in files from before this field).
    #[serde(default)]
    pub endpoint: String,
    /// Whether it compares a read with a value written earlier.
    #[serde(default)]
    pub reads_back: bool,
    /// What of the response it looks at: `status`, `body`, `header` or
    /// `latency` (empty in files from before this field: read as `body`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub part: String,
    /// For a header check, the header's name in lower case.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header: String,
}

/// What reports know of a check besides its name (see [`CheckStats`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckMeta<'a> {
    /// The endpoint it checks.
    pub endpoint: &'a str,
    /// Whether it compares a read with a value written earlier.
    pub reads_back: bool,
    /// What of the response it looks at.
    pub part: &'a str,
    /// For a header check, the header's name in lower case.
    pub header: &'a str,
}

/// The requests that were due within one bucket of the timeline: a
/// second, or [`Stats::bucket_s`] seconds in a long run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Request counts.
    pub counts: Counts,
    /// Latency from the intended send time, 2 significant digits; packed
    /// once the run has moved on (see [`crate::timeline`]).
    pub latency: BucketLatency,
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.counts.merge(&other.counts);
        self.latency.merge(&other.latency);
    }
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// The mergeable statistics of a run (or of one worker's part of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Totals over all endpoints.
    pub counts: Counts,
    /// Latency from the intended send time.
    pub latency: Hist,
    /// From the actual send to the end of the response.
    pub service: Hist,
    /// Actual minus intended send time, for every request sent.
    pub lag: Hist,
    /// TCP connect times, for requests that opened a connection.
    pub connect: Hist,
    /// TLS handshake times.
    pub tls: Hist,
    /// Time to first byte, from the actual send.
    pub ttfb: Hist,
    /// Per endpoint, in the plan's order.
    pub endpoints: Vec<EndpointStats>,
    /// Per bucket of due time, from the run start.
    pub timeline: Vec<Bucket>,
    /// The length of each timeline bucket (and each row of the endpoints'
    /// and retries' `seconds`), in seconds: 1, doubling each time the run
    /// outgrows [`MAX_BUCKETS`] buckets.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub bucket_s: u64,
    /// Per check, in the scenario's order.
    #[serde(default)]
    pub checks: Vec<CheckStats>,
    /// Attempts, retries and goodput, when the scenario retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryStats>,
    /// The load band of each second of due time, when the load varies.
    #[serde(skip)]
    bands: Vec<u8>,
    /// Timeline buckets before this one are packed.
    #[serde(skip)]
    packed_to: usize,
}

impl Stats {
    /// Empty statistics for these endpoints.
    pub fn new(endpoints: impl IntoIterator<Item = String>) -> Stats {
        Stats {
            counts: Counts::default(),
            latency: Hist::new(),
            service: Hist::new(),
            lag: Hist::new(),
            connect: Hist::new(),
            tls: Hist::new(),
            ttfb: Hist::new(),
            endpoints: endpoints.into_iter().map(EndpointStats::new).collect(),
            timeline: Vec::new(),
            bucket_s: 1,
            checks: Vec::new(),
            retries: None,
            bands: Vec::new(),
            packed_to: 0,
        }
    }

    /// Keeps retry statistics too (see [`RetryStats`]).
    pub fn with_retries(mut self) -> Stats {
        self.retries = Some(RetryStats::default());
        self
    }

    /// Records per-endpoint latency by load band too: `bands[t]` is the
    /// band of second `t` (later seconds take the last one). Nothing is
    /// kept by band when every second is in one band.
    pub fn with_load_bands(mut self, bands: Vec<u8>) -> Stats {
        if bands.windows(2).any(|w| w[0] != w[1]) {
            for ep in &mut self.endpoints {
                ep.by_load = (0..LOAD_BANDS).map(|_| Hist::coarse()).collect();
            }
            self.bands = bands;
        }
        self
    }

    /// Declares the run's checks, by name, in id order.
    pub fn with_checks(mut self, names: impl IntoIterator<Item = String>) -> Stats {
        self.checks = names
            .into_iter()
            .map(|name| CheckStats {
                name,
                passed: 0,
                failed: 0,
                endpoint: String::new(),
                reads_back: false,
                part: String::new(),
                header: String::new(),
            })
            .collect();
        self
    }

    /// Records what a successful response of an asset said about caching.
    pub fn record_cache(&mut self, endpoint: usize, obs: &CacheObs) {
        if let Some(ep) = self.endpoints.get_mut(endpoint) {
            ep.cache.get_or_insert_with(CacheStats::default).add(obs);
        }
    }

    /// Records `hops` redirects followed by one request of `endpoint`.
    pub fn record_redirects(&mut self, endpoint: usize, hops: u64) {
        if let Some(ep) = self.endpoints.get_mut(endpoint) {
            ep.redirects += hops;
        }
    }

    /// Records an extraction of a response of `endpoint` that found nothing.
    pub fn record_missed(&mut self, endpoint: usize) {
        if let Some(ep) = self.endpoints.get_mut(endpoint) {
            ep.missed += 1;
        }
    }

    /// Records a replayed request's status (0: none) against the one
    /// recorded.
    pub fn record_replayed(&mut self, endpoint: usize, recorded: u16, replayed: u16) {
        if let Some(ep) = self.endpoints.get_mut(endpoint) {
            ep.replay
                .get_or_insert_with(ReplayDiff::default)
                .add(recorded, replayed);
        }
    }

    /// Records a replayed response of the recorded status whose body size
    /// was not the recorded one's (see [`ReplayDiff::size_differ`]).
    pub fn record_replayed_size(&mut self, endpoint: usize, recorded: u64, replayed: u64) {
        if let Some(ep) = self.endpoints.get_mut(endpoint) {
            ep.replay
                .get_or_insert_with(ReplayDiff::default)
                .add_size_differ(recorded, replayed);
        }
    }

    /// Records a step of `endpoint` skipped for a missing variable.
    pub fn record_skipped(&mut self, endpoint: usize) {
        if let Some(ep) = self.endpoints.get_mut(endpoint) {
            ep.skipped += 1;
        }
    }

    /// Redirects followed, over all endpoints.
    pub fn redirects(&self) -> u64 {
        self.endpoints.iter().map(|e| e.redirects).sum()
    }

    /// Says, for each check (by id), which endpoint it belongs to, whether
    /// it reads back a written value, and what it looks at.
    pub fn describe_checks<'a>(&mut self, info: impl IntoIterator<Item = CheckMeta<'a>>) {
        for (c, meta) in self.checks.iter_mut().zip(info) {
            c.endpoint = meta.endpoint.to_string();
            c.reads_back = meta.reads_back;
            c.part = meta.part.to_string();
            c.header = meta.header.to_string();
        }
    }

    /// Records one check's verdict on one response.
    pub fn record_check(&mut self, id: usize, passed: bool) {
        if let Some(c) = self.checks.get_mut(id) {
            if passed {
                c.passed += 1;
            } else {
                c.failed += 1;
            }
        }
    }

    /// The timeline bucket that holds due time `due`, coarsening the
    /// timeline first when `due` lies beyond its last bucket.
    pub fn bucket_of(&mut self, due: Duration) -> usize {
        loop {
            let index = (due.as_secs() / self.bucket_s.max(1)) as usize;
            if index < MAX_BUCKETS {
                return index;
            }
            self.coarsen();
        }
    }

    /// Doubles the bucket length: neighbours merge pairwise, in the
    /// timeline, the endpoints' rows and the retries' rows.
    pub fn coarsen(&mut self) {
        self.bucket_s = self.bucket_s.max(1) * 2;
        let old = std::mem::take(&mut self.timeline);
        let mut iter = old.into_iter();
        while let Some(mut first) = iter.next() {
            if let Some(second) = iter.next() {
                first.merge(&second);
            }
            self.timeline.push(first);
        }
        self.packed_to /= 2;
        for ep in &mut self.endpoints {
            pair_rows(&mut ep.seconds);
            if let Some(live) = &mut ep.live {
                live.coarsen();
            }
        }
        if let Some(r) = &mut self.retries {
            pair_rows(&mut r.seconds);
            r.bucket_s = self.bucket_s;
        }
    }

    /// Timeline bucket `index` (from [`bucket_of`](Self::bucket_of)),
    /// after packing the buckets the run has moved on from. A late sample
    /// for a packed bucket is let in: the next sweep packs it again.
    fn bucket_at(&mut self, index: usize) -> &mut Bucket {
        if self.timeline.len() <= index {
            self.timeline.resize_with(index + 1, Bucket::default);
        }
        // Pack what the run has moved on from.
        let settled = index.saturating_sub(OPEN_BUCKETS);
        if settled > self.packed_to {
            for b in &mut self.timeline[self.packed_to..settled] {
                b.latency.pack();
            }
            self.packed_to = settled;
        }
        self.packed_to = self.packed_to.min(index);
        &mut self.timeline[index]
    }

    /// Records one sent request.
    pub fn record(&mut self, s: &Sample) {
        self.counts.add(s);
        self.lag.record(s.lag);
        if let Some(d) = s.phases.connect {
            self.connect.record(d);
        }
        if let Some(d) = s.phases.tls {
            self.tls.record(d);
        }
        if let Some(d) = s.phases.ttfb {
            self.ttfb.record(d);
        }
        let latency = s.latency();
        let responded = match s.outcome {
            Outcome::Response { status } => Some(status),
            Outcome::Failed(_) => None,
        };
        if responded.is_some() {
            self.latency.record(latency);
            self.service.record(s.service);
        }
        // First, so that the endpoint's rows index the same buckets.
        let index = self.bucket_of(s.due);
        self.record_endpoint(index, s);
        let bucket = self.bucket_at(index);
        bucket.counts.add(s);
        if responded.is_some() {
            bucket.latency.open().record(latency);
        }
    }

    /// Records a sample into its endpoint's numbers only (`index` is its
    /// timeline bucket).
    fn record_endpoint(&mut self, index: usize, s: &Sample) {
        let latency = s.latency();
        let responded = match s.outcome {
            Outcome::Response { status } => Some(status),
            Outcome::Failed(_) => None,
        };
        if let Some(ep) = self.endpoints.get_mut(s.endpoint) {
            ep.counts.add(s);
            let t = index;
            if ep.seconds.len() <= t {
                ep.seconds.resize(t + 1, [0; 3]);
            }
            let row = &mut ep.seconds[t];
            let failed = s.error().is_some();
            row[0] += 1;
            row[1] += u64::from(failed);
            row[2] += u64::from(s.checks_failed);
            ep.windows.record(s.due, failed, responded.map(|_| latency));
            if let Some(status) = responded {
                *ep.status.entry(status).or_insert(0) += 1;
                ep.latency.record(latency);
                if !ep.by_load.is_empty() {
                    let second = (s.due.as_secs() as usize).min(self.bands.len().saturating_sub(1));
                    let band = usize::from(self.bands.get(second).copied().unwrap_or(0));
                    if let Some(h) = ep.by_load.get_mut(band) {
                        h.record(latency);
                    }
                }
            }
        }
    }

    /// Records a page load (`s` spans the page: due at its intended start,
    /// ending with its last request) into its endpoint's numbers only:
    /// each of its requests is recorded on its own, in the totals.
    pub fn record_page(&mut self, s: &Sample) {
        let index = self.bucket_of(s.due);
        if let Some(ep) = self.endpoints.get_mut(s.endpoint) {
            ep.page = true;
        }
        self.record_endpoint(index, s);
    }

    /// The index of the endpoint named `name`, added if it is new (an
    /// asset a page's document named, which no step declared).
    pub fn endpoint_named(&mut self, name: &str) -> usize {
        if let Some(i) = self.endpoints.iter().position(|e| e.name == name) {
            return i;
        }
        let mut ep = EndpointStats::new(name.to_string());
        if !self.bands.is_empty() {
            ep.by_load = (0..LOAD_BANDS).map(|_| Hist::coarse()).collect();
        }
        self.endpoints.push(ep);
        self.endpoints.len() - 1
    }

    /// Records an arrival that was due but not sent.
    pub fn record_dropped(&mut self, endpoint: usize, due: Duration) {
        self.counts.errors.add(ErrorKind::Dropped, 1);
        if let Some(ep) = self.endpoints.get_mut(endpoint) {
            ep.counts.errors.add(ErrorKind::Dropped, 1);
        }
        let index = self.bucket_of(due);
        self.bucket_at(index)
            .counts
            .errors
            .add(ErrorKind::Dropped, 1);
    }

    /// Records a session that started (was due) at `due`.
    pub fn record_session(&mut self, due: Duration) {
        self.counts.sessions += 1;
        let index = self.bucket_of(due);
        self.bucket_at(index).counts.sessions += 1;
    }

    /// Adds everything in `other`: counts add, histograms merge exactly,
    /// endpoints match by name and timelines by bucket (the finer of the
    /// two coarsened to the other's bucket length first).
    pub fn merge(&mut self, other: &Stats) {
        while self.bucket_s < other.bucket_s {
            self.coarsen();
        }
        if other.bucket_s < self.bucket_s {
            let mut other = other.clone();
            while other.bucket_s < self.bucket_s {
                other.coarsen();
            }
            return self.merge(&other);
        }
        self.counts.merge(&other.counts);
        self.latency.merge(&other.latency);
        self.service.merge(&other.service);
        self.lag.merge(&other.lag);
        self.connect.merge(&other.connect);
        self.tls.merge(&other.tls);
        self.ttfb.merge(&other.ttfb);
        for theirs in &other.endpoints {
            match self.endpoints.iter_mut().find(|e| e.name == theirs.name) {
                Some(ours) => {
                    ours.counts.merge(&theirs.counts);
                    for (status, n) in &theirs.status {
                        *ours.status.entry(*status).or_insert(0) += n;
                    }
                    ours.latency.merge(&theirs.latency);
                    if ours.by_load.is_empty() {
                        ours.by_load.clone_from(&theirs.by_load);
                    } else {
                        for (o, t) in ours.by_load.iter_mut().zip(&theirs.by_load) {
                            o.merge(t);
                        }
                    }
                    if let Some(t) = &theirs.cache {
                        ours.cache.get_or_insert_with(CacheStats::default).merge(t);
                    }
                    add_rows(&mut ours.seconds, &theirs.seconds);
                    ours.windows.merge(&theirs.windows);
                    ours.redirects += theirs.redirects;
                    ours.missed += theirs.missed;
                    ours.skipped += theirs.skipped;
                    ours.page |= theirs.page;
                    if let Some(t) = &theirs.live {
                        match &mut ours.live {
                            Some(o) => o.merge(t),
                            None => ours.live = Some(t.clone()),
                        }
                    }
                    if let Some(t) = &theirs.replay {
                        ours.replay.get_or_insert_with(ReplayDiff::default).merge(t);
                    }
                }
                None => self.endpoints.push(theirs.clone()),
            }
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline
                .resize_with(other.timeline.len(), Bucket::default);
        }
        for (ours, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            ours.merge(theirs);
        }
        for theirs in &other.checks {
            match self.checks.iter_mut().find(|c| c.name == theirs.name) {
                Some(ours) => {
                    ours.passed += theirs.passed;
                    ours.failed += theirs.failed;
                }
                None => self.checks.push(theirs.clone()),
            }
        }
        if let Some(theirs) = &other.retries {
            let ours = self.retries.get_or_insert_with(RetryStats::default);
            ours.merge(theirs);
            ours.bucket_s = self.bucket_s;
        }
    }
}

/// What happened since the last progress report: requests by completion
/// time, for live views and early aborts. Not part of the results.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Requests that ended in the interval.
    pub counts: Counts,
    /// Their latency from the intended send time.
    pub latency: Hist,
    /// Live connections opened and ended, and their messages.
    pub live: crate::LiveCounts,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            counts: Counts::default(),
            latency: Hist::coarse(),
            live: crate::LiveCounts::default(),
        }
    }
}

impl Interval {
    /// Adds another interval's numbers.
    pub fn merge(&mut self, other: &Interval) {
        self.counts.merge(&other.counts);
        self.latency.merge(&other.latency);
        self.live.merge(&other.live);
    }
}

/// A worker's recorder: the run's statistics plus the current interval.
#[derive(Debug, Clone)]
pub struct Recorder {
    stats: Stats,
    interval: Interval,
}

impl Recorder {
    /// A recorder for these endpoints.
    pub fn new(endpoints: impl IntoIterator<Item = String>) -> Recorder {
        Recorder::with_stats(Stats::new(endpoints))
    }

    /// A recorder that adds to `stats` (empty, with endpoints and checks declared).
    pub fn with_stats(stats: Stats) -> Recorder {
        Recorder {
            stats,
            interval: Interval::default(),
        }
    }

    /// Records one sent request.
    #[inline]
    pub fn record(&mut self, s: &Sample) {
        self.stats.record(s);
        self.interval.counts.add(s);
        if matches!(s.outcome, Outcome::Response { .. }) {
            self.interval.latency.record(s.latency());
        }
    }

    /// Records one check's verdict on one response.
    pub fn record_check(&mut self, id: usize, passed: bool) {
        self.stats.record_check(id, passed);
    }

    /// Records an asset response's caching headers.
    pub fn record_cache(&mut self, endpoint: usize, obs: &CacheObs) {
        self.stats.record_cache(endpoint, obs);
    }

    /// Records redirects followed by one request of `endpoint`.
    pub fn record_redirects(&mut self, endpoint: usize, hops: u64) {
        self.stats.record_redirects(endpoint, hops);
    }

    /// Records a replayed request's status against the recorded one.
    pub fn record_replayed(&mut self, endpoint: usize, recorded: u16, replayed: u16) {
        self.stats.record_replayed(endpoint, recorded, replayed);
    }

    /// Records a replayed response whose body size was not the recorded one's.
    pub fn record_replayed_size(&mut self, endpoint: usize, recorded: u64, replayed: u64) {
        self.stats
            .record_replayed_size(endpoint, recorded, replayed);
    }

    /// Records an extraction that found nothing.
    pub fn record_missed(&mut self, endpoint: usize) {
        self.stats.record_missed(endpoint);
    }

    /// Records a page load (see [`Stats::record_page`]): not a request,
    /// so not in the interval either.
    pub fn record_page(&mut self, s: &Sample) {
        self.stats.record_page(s);
    }

    /// Records a live connection's counts (see [`Stats::record_live`]);
    /// its sample goes through [`Recorder::record`].
    pub fn record_live(&mut self, endpoint: usize, protocol: &str, s: &crate::LiveSession) {
        self.stats.record_live(endpoint, protocol, s);
        let live = &mut self.interval.live;
        live.closed += u64::from(s.opened);
        live.sent += s.sent;
        live.received += s.received;
    }

    /// Records a live connection upgraded (see [`Stats::record_live_open`]).
    pub fn record_live_open(
        &mut self,
        endpoint: usize,
        protocol: &str,
        upgrade: Duration,
        at: Duration,
    ) {
        self.stats.record_live_open(endpoint, protocol, upgrade, at);
        self.interval.live.opened += 1;
    }

    /// Records one of a live endpoint's times (see [`Stats::record_live_time`]).
    pub fn record_live_time(
        &mut self,
        endpoint: usize,
        protocol: &str,
        what: crate::LiveTime,
        d: Duration,
    ) {
        self.stats.record_live_time(endpoint, protocol, what, d);
    }

    /// The index of the endpoint named `name` (see [`Stats::endpoint_named`]).
    pub fn endpoint_named(&mut self, name: &str) -> usize {
        self.stats.endpoint_named(name)
    }

    /// Records a step skipped for a missing variable.
    pub fn record_skipped(&mut self, endpoint: usize) {
        self.stats.record_skipped(endpoint);
    }

    /// The retry statistics, when the run keeps them.
    pub fn retries(&mut self) -> Option<&mut RetryStats> {
        self.stats.retries.as_mut()
    }

    /// Records a session that started (was due) at `due`.
    pub fn record_session(&mut self, due: Duration) {
        self.stats.record_session(due);
        self.interval.counts.sessions += 1;
    }

    /// Records an arrival that was due but not sent.
    pub fn record_dropped(&mut self, endpoint: usize, due: Duration) {
        self.stats.record_dropped(endpoint, due);
        self.interval.counts.errors.add(ErrorKind::Dropped, 1);
    }

    /// Takes the current interval, starting a new one.
    pub fn take_interval(&mut self) -> Interval {
        std::mem::take(&mut self.interval)
    }

    /// The statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The statistics, consuming the recorder.
    pub fn into_stats(self) -> Stats {
        self.stats
    }
}
