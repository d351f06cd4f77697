//! Access-log replay: log lines in, the requests to send and when out.
//!
//! An [`Expander`] reads a log line by line (the caller streams the file,
//! so memory stays constant however long the log): it parses each line
//! ([`parse_line`]), drops what the options exclude (writes, unwanted
//! paths), reconstructs sessions by client with an inactivity timeout, and
//! emits [`plan::ReplayRequest`]s in due order. Time is the log's own,
//! from its first request, divided by `speed`. `scale` adds copies of each
//! session, each shifted as a whole by its own offset within `spread`, so
//! traffic multiplies the way more users would make it (more sessions, the
//! same gaps inside each) rather than by squashing think times.
//!
//! Logs with whole-second times (the text formats) do not say when in a
//! second a request came; the requests of one second are spread evenly
//! across it. That needs each second's count, which a first pass over the
//! log gathers ([`Expander::second_counts`]).
//!
//! Web servers write a line when a request ends, so a log is out of time
//! order by up to its slowest response. Requests are held back until the
//! log has moved [`Options::reorder`] past them, and come out in time
//! order; the replay's zero is the earliest time within the first window.
//! A line older than what has already come out (more out of order than
//! the window) is sent at once and counted
//! ([`Tally::out_of_order`]). Memory is the window's lines, whatever the
//! log's length.

mod format;
pub mod recorded;
pub mod recording;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

pub use format::{parse_line, JsonFields, LogFormat, Record};
use plan::ReplayRequest;
use regex::Regex;

/// How a log is replayed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The log's format.
    pub format: LogFormat,
    /// Time runs this many times faster than in the log.
    pub speed: f64,
    /// Copies of each session (1: the log as it is).
    pub scale: u32,
    /// Each further copy of a session starts up to this much later.
    pub spread: Duration,
    /// A client's requests further apart than this are two sessions.
    pub session_timeout: Duration,
    /// Replay methods other than GET and HEAD.
    pub allow_writes: bool,
    /// Only paths matching one of these (all when empty).
    pub include: Vec<Regex>,
    /// No paths matching any of these.
    pub exclude: Vec<Regex>,
    /// Distinct endpoints reported; later ones are reported as `other`.
    pub max_endpoints: usize,
    /// How far out of time order the log's lines may be (in the log's
    /// time): requests are held this long behind the latest line read.
    pub reorder: Duration,
}

impl Options {
    /// The log as it is: 1x speed, 1x scale, GET and HEAD only.
    pub fn new(format: LogFormat) -> Options {
        Options {
            format,
            speed: 1.0,
            scale: 1,
            spread: Duration::from_secs(60),
            session_timeout: Duration::from_secs(30 * 60),
            allow_writes: false,
            include: Vec::new(),
            exclude: Vec::new(),
            max_endpoints: 100,
            reorder: DEFAULT_REORDER,
        }
    }
}

/// The default reorder window: a few seconds, longer than most slow
/// responses (a line is written when its response ends).
pub const DEFAULT_REORDER: Duration = Duration::from_secs(5);

/// What became of the log's lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines read (blank ones excepted).
    pub lines: u64,
    /// Lines that could not be read.
    pub malformed: u64,
    /// The first few malformed lines: line number and what is wrong.
    pub first_malformed: Vec<(u64, String)>,
    /// Requests left out because their method writes (without `allow_writes`).
    pub writes_skipped: u64,
    /// Requests left out by `include` / `exclude`.
    pub filtered_out: u64,
    /// Requests of the log that are replayed (before scaling).
    pub logged: u64,
    /// Requests emitted, copies included.
    pub requests: u64,
    /// Sessions reconstructed (before scaling).
    pub sessions: u64,
    /// Lines older than requests already sent (more out of time order
    /// than the reorder window): sent at once, late.
    pub out_of_order: u64,
}

/// How many malformed lines are kept to show.
pub const SHOWN_MALFORMED: usize = 5;

/// A request waiting in the reorder queue, at its time in the log (in
/// µs; a copy of a session shifted by its offset): lines come out of time
/// order, and copies of a session are due later than the line that made
/// them.
#[derive(Debug)]
struct Pending {
    at_us: i64,
    seq: u64,
    request: ReplayRequest,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Pending) -> bool {
        (self.at_us, self.seq) == (o.at_us, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Pending) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Pending) -> std::cmp::Ordering {
        (self.at_us, self.seq).cmp(&(o.at_us, o.seq))
    }
}

/// Turns log lines into requests; see the crate documentation.
#[derive(Debug)]
pub struct Expander {
    opts: Options,
    /// The first request's time: the replay's zero.
    t0_us: Option<i64>,
    /// Per client: the time of its last request and its session number.
    clients: HashMap<u64, (i64, u64)>,
    /// When the client map is next swept of finished sessions.
    sweep_at_us: i64,
    endpoints: Vec<String>,
    endpoint_index: HashMap<String, usize>,
    /// Requests per whole second of log time, from a first pass; used to
    /// spread imprecise times across their second.
    spread_counts: HashMap<i64, u32>,
    /// Requests per whole second seen so far (of logs whose times are
    /// whole seconds: a few bytes per second of log).
    seen_counts: HashMap<i64, u32>,
    queue: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    /// The latest log time of a line read, in µs.
    high_water_us: i64,
    /// The log time of the last request that came out, in µs: a line
    /// older than it is out of order beyond the window.
    emitted_us: i64,
    /// What became of the lines.
    pub tally: Tally,
}

impl Expander {
    /// An expander; `spread_counts` are a first pass's
    /// [`second_counts`](Self::second_counts), or empty.
    pub fn new(opts: Options, spread_counts: HashMap<i64, u32>) -> Expander {
        Expander {
            opts,
            t0_us: None,
            clients: HashMap::new(),
            sweep_at_us: i64::MIN,
            endpoints: Vec::new(),
            endpoint_index: HashMap::new(),
            spread_counts,
            seen_counts: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            high_water_us: i64::MIN,
            emitted_us: i64::MIN,
            tally: Tally::default(),
        }
    }

    /// Requests per whole second of log time seen so far (for a second
    /// pass to spread imprecise times).
    pub fn second_counts(&self) -> &HashMap<i64, u32> {
        &self.seen_counts
    }

    /// The endpoint names, indexed by [`ReplayRequest::endpoint`].
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Reads line `line_no` (from 1); requests now due in order are
    /// appended to `out`.
    pub fn push(&mut self, line_no: u64, line: &str, out: &mut Vec<ReplayRequest>) {
        if line.trim().is_empty() {
            return;
        }
        let parsed = parse_line(&self.opts.format, line);
        self.push_parsed(line_no, parsed, out);
    }

    /// Takes line `line_no` read already (a recording's exchange, or why
    /// the line could not be read); as [`push`](Self::push) otherwise.
    pub fn push_parsed(
        &mut self,
        line_no: u64,
        parsed: Result<Record, String>,
        out: &mut Vec<ReplayRequest>,
    ) {
        self.tally.lines += 1;
        let record = match parsed {
            Ok(r) => r,
            Err(why) => {
                self.tally.malformed += 1;
                if self.tally.first_malformed.len() < SHOWN_MALFORMED {
                    self.tally.first_malformed.push((line_no, why));
                }
                return;
            }
        };
        if !self.opts.allow_writes
            && record.method != http::Method::GET
            && record.method != http::Method::HEAD
        {
            self.tally.writes_skipped += 1;
            return;
        }
        let bare = record.path.split('?').next().unwrap_or_default();
        if (!self.opts.include.is_empty() && !self.opts.include.iter().any(|r| r.is_match(bare)))
            || self.opts.exclude.iter().any(|r| r.is_match(bare))
        {
            self.tally.filtered_out += 1;
            return;
        }
        self.tally.logged += 1;
        let mut time_us = self.spread_time(&record);
        if time_us < self.emitted_us {
            // Later requests have gone already: this one goes at once.
            self.tally.out_of_order += 1;
            time_us = self.emitted_us;
        }
        let session = self.session_of(&record, time_us);
        let endpoint = self.endpoint(&record.method, bare);
        for copy in 0..self.opts.scale.max(1) {
            let id = hash(&(session, copy));
            // The spread is replay time; the queue is in the log's.
            let shift_us = if copy == 0 {
                0
            } else {
                let shift = self
                    .opts
                    .spread
                    .mul_f64((id >> 11) as f64 / (1u64 << 53) as f64);
                (shift.as_micros() as f64 * self.opts.speed) as i64
            };
            self.seq += 1;
            self.queue.push(Reverse(Pending {
                at_us: time_us.saturating_add(shift_us),
                seq: self.seq,
                request: ReplayRequest {
                    due: Duration::ZERO,
                    method: record.method.clone(),
                    path: record.path.clone(),
                    user_agent: record.user_agent.clone(),
                    endpoint,
                    session: id,
                    recorded: record.recorded.clone(),
                },
            }));
        }
        self.high_water_us = self.high_water_us.max(time_us);
        let window = self.opts.reorder.as_micros() as i64;
        self.drain(Some(self.high_water_us.saturating_sub(window)), out);
    }

    /// Emits every request still queued.
    pub fn finish(&mut self, out: &mut Vec<ReplayRequest>) {
        self.drain(None, out);
    }

    /// Emits the requests at or before `until` (log time, µs), in time
    /// order; all of them when `None`. The first to come out sets the
    /// replay's zero: the earliest time of the first window.
    fn drain(&mut self, until: Option<i64>, out: &mut Vec<ReplayRequest>) {
        while let Some(Reverse(p)) = self.queue.peek() {
            if until.is_some_and(|u| p.at_us > u) {
                break;
            }
            if let Some(Reverse(p)) = self.queue.pop() {
                let t0 = *self.t0_us.get_or_insert(p.at_us);
                let mut request = p.request;
                request.due = Duration::from_micros(p.at_us.saturating_sub(t0).max(0) as u64)
                    .div_f64(self.opts.speed);
                self.emitted_us = self.emitted_us.max(p.at_us);
                self.tally.requests += 1;
                out.push(request);
            }
        }
    }

    /// The request's time; an imprecise one is spread across its second
    /// by its rank among the second's requests.
    fn spread_time(&mut self, r: &Record) -> i64 {
        if r.precise {
            return r.time_us;
        }
        let second = r.time_us.div_euclid(1_000_000);
        let seen = self.seen_counts.entry(second).or_insert(0);
        let rank = *seen;
        *seen += 1;
        match self.spread_counts.get(&second) {
            Some(&n) if n > 0 => (second * 1_000_000)
                .saturating_add(i64::from(rank.min(n - 1)) * 1_000_000 / i64::from(n)),
            _ => r.time_us,
        }
    }

    /// The session of a request: its client (the session field, else
    /// address and user agent) and the client's session number, which
    /// moves on after `session_timeout` of silence.
    fn session_of(&mut self, r: &Record, time_us: i64) -> u64 {
        let client = match &r.session {
            Some(s) => hash(&("session", s)),
            None => hash(&(&r.ip, &r.user_agent)),
        };
        let timeout = self.opts.session_timeout.as_micros() as i64;
        let entry = self.clients.entry(client).or_insert_with(|| {
            self.tally.sessions += 1;
            (time_us, 0)
        });
        if time_us.saturating_sub(entry.0) > timeout {
            entry.1 += 1;
            self.tally.sessions += 1;
        }
        entry.0 = entry.0.max(time_us);
        let session = hash(&(client, entry.1));
        // Forget clients whose sessions have ended, so memory follows the
        // clients active now, not every client the log ever had.
        if time_us >= self.sweep_at_us {
            self.clients
                .retain(|_, (last, _)| time_us.saturating_sub(*last) <= timeout);
            self.sweep_at_us = time_us.saturating_add(timeout);
        }
        session
    }

    /// The endpoint index of a request: its method and its path with ids
    /// (numbers, UUIDs, long hex) written as `:id`.
    fn endpoint(&mut self, method: &http::Method, path: &str) -> usize {
        let name = format!("{method} {}", endpoint_path(path));
        if let Some(&i) = self.endpoint_index.get(&name) {
            return i;
        }
        let name = if self.endpoints.len() + 1 >= self.opts.max_endpoints {
            "other".to_string()
        } else {
            name
        };
        if let Some(&i) = self.endpoint_index.get(&name) {
            return i;
        }
        self.endpoints.push(name.clone());
        self.endpoint_index.insert(name, self.endpoints.len() - 1);
        self.endpoints.len() - 1
    }
}

/// A path with its ids replaced by `:id`, so `/funds/17` and `/funds/18`
/// report together.
pub fn endpoint_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let is_id = !segment.is_empty()
            && (segment.bytes().all(|b| b.is_ascii_digit())
                || (segment.len() >= 16
                    && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')));
        out.push_str(if is_id { ":id" } else { segment });
    }
    out
}

fn hash(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}
