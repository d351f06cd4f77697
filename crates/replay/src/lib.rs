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

mod format;

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
        }
    }
}

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
}

/// How many malformed lines are kept to show.
pub const SHOWN_MALFORMED: usize = 5;

/// A request waiting in the reorder queue: copies of a session are due
/// later than the log line that made them.
#[derive(Debug)]
struct Pending {
    due: Duration,
    seq: u64,
    request: ReplayRequest,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Pending) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
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
        (self.due, self.seq).cmp(&(o.due, o.seq))
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
    /// The latest due time of an original (unshifted) request.
    high_water: Duration,
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
            high_water: Duration::ZERO,
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
        self.tally.lines += 1;
        let record = match parse_line(&self.opts.format, line) {
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
        let time_us = self.spread_time(&record);
        let t0 = *self.t0_us.get_or_insert(time_us);
        let due = Duration::from_micros((time_us - t0).max(0) as u64).div_f64(self.opts.speed);
        let session = self.session_of(&record, time_us);
        let endpoint = self.endpoint(&record.method, bare);
        for copy in 0..self.opts.scale.max(1) {
            let id = hash(&(session, copy));
            let shift = if copy == 0 {
                Duration::ZERO
            } else {
                self.opts
                    .spread
                    .mul_f64((id >> 11) as f64 / (1u64 << 53) as f64)
            };
            self.seq += 1;
            self.queue.push(Reverse(Pending {
                due: due + shift,
                seq: self.seq,
                request: ReplayRequest {
                    due: due + shift,
                    method: record.method.clone(),
                    path: record.path.clone(),
                    user_agent: record.user_agent.clone(),
                    endpoint,
                    session: id,
                },
            }));
        }
        self.high_water = self.high_water.max(due);
        self.drain(Some(self.high_water), out);
    }

    /// Emits every request still queued.
    pub fn finish(&mut self, out: &mut Vec<ReplayRequest>) {
        self.drain(None, out);
    }

    fn drain(&mut self, until: Option<Duration>, out: &mut Vec<ReplayRequest>) {
        while let Some(Reverse(p)) = self.queue.peek() {
            if until.is_some_and(|u| p.due > u) {
                break;
            }
            if let Some(Reverse(p)) = self.queue.pop() {
                self.tally.requests += 1;
                out.push(p.request);
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
            Some(&n) if n > 0 => {
                second * 1_000_000 + i64::from(rank.min(n - 1)) * 1_000_000 / i64::from(n)
            }
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
        if time_us - entry.0 > timeout {
            entry.1 += 1;
            self.tally.sessions += 1;
        }
        entry.0 = entry.0.max(time_us);
        let session = hash(&(client, entry.1));
        // Forget clients whose sessions have ended, so memory follows the
        // clients active now, not every client the log ever had.
        if time_us >= self.sweep_at_us {
            self.clients
                .retain(|_, (last, _)| time_us - *last <= timeout);
            self.sweep_at_us = time_us + timeout;
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
