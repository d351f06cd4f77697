//! Readings turned into series, one value per timeline bucket.
//!
//! A source is read at times `t` (seconds from the run's start, the same
//! origin as the timeline's due times). Each reading gives:
//! - a gauge's value, in the bucket of `t`;
//! - a counter's rate, its increase over the time since the source's last
//!   reading divided by that time (a decrease is a restart: the new value
//!   is the increase, as Prometheus reads it), in the bucket of the
//!   interval's middle;
//! - a histogram's quantiles (p50, p90, p99) of the observations made in
//!   that interval (the buckets' increases, interpolated within a bucket
//!   as Prometheus's `histogram_quantile` does), likewise.
//!
//! The binary reads once at the start, then at the middle of each second
//! (`k + 0.5`), so a gauge read then and a rate over `(k - 0.5, k + 0.5]`
//! both land in bucket `k`, beside the requests due in that second. Two values in one bucket (an
//! interval under a second) are combined as the series' kind says: a
//! rate's are averaged, a gauge's and a quantile's give their maximum (a
//! pool full for part of a second was full in it).
//!
//! Memory is bounded: at most `max_series` series (more are counted, not
//! kept), and past [`MAX_BUCKETS`] buckets neighbours merge pairwise and
//! the bucket doubles, as the timeline's do.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::exposition::{self, Kind, Sample};
use crate::process::Reading;

/// A reading of the machine throng runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Machine {
    /// CPU ticks spent busy, all CPUs together.
    pub busy_ticks: u64,
    /// CPUs.
    pub cpus: u64,
    /// CPU ticks throng's own process spent (user and system).
    pub own_ticks: u64,
}

/// The target of the source that reads the machine's own CPUs (`/proc/stat`).
pub const MACHINE: &str = "machine";

/// Buckets a series keeps before its neighbours merge (the timeline's
/// bound).
pub const MAX_BUCKETS: usize = 3600;

/// The quantiles read of a histogram.
pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// What a series' values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// A level read at an instant (in use, queued, bytes, threads).
    Gauge,
    /// A counter's increase per second.
    Rate,
    /// A quantile of a histogram's observations within the interval.
    Quantile,
}

impl SeriesKind {
    /// Whether two values in one bucket are averaged (else the larger
    /// is kept).
    fn averages(self) -> bool {
        self == SeriesKind::Rate
    }
}

/// Where readings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A metrics endpoint (`--scrape`).
    Scrape,
    /// A process's `/proc` files (`--watch-pid`, `--watch-cmd`).
    Process,
}

/// One source and how reading it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `scrape` or `process`.
    pub kind: SourceKind,
    /// The URL scraped, or `pid N (name)`.
    pub target: String,
    /// Readings that succeeded.
    pub readings: u64,
    /// Readings that failed, by reason (`timeout`, `connect`, `status`,
    /// `too_large`, `not_text`, `gone`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<String, u64>,
    /// The first failure's message, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Lines of a scrape that were not valid exposition, skipped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bad_lines: u64,
    /// The first of them: what was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_line: Option<String>,
    /// The most series one reading had beyond the bound, not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub series_dropped: u64,
    /// Seconds from the start when a watched process was found gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at_s: Option<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One series: a metric (or a process's figure) per timeline bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// How reports and findings name it: the metric with its labels
    /// (`lab_db_pool_in_use{pool="primary"}`), and a histogram's
    /// quantile after it (`lab_db_pool_wait_seconds p99`).
    pub name: String,
    /// The metric's name alone (a histogram's family).
    pub metric: String,
    /// Its labels (without a histogram's `le`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `gauge`, `rate` (per second) or `quantile`.
    pub kind: SeriesKind,
    /// The quantile, for a histogram's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// Index into the sources.
    pub source: usize,
    /// One value per timeline bucket; `null` where there was no reading.
    pub values: Vec<Option<f64>>,
}

impl Series {
    /// The values that were read, with their bucket.
    pub fn points(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
    }

    /// The largest value read.
    pub fn max(&self) -> Option<f64> {
        self.points().map(|(_, v)| v).reduce(f64::max)
    }

    /// The mean of the values read in buckets `from..`.
    pub fn mean_from(&self, from: usize) -> Option<f64> {
        let (sum, n) = self
            .points()
            .filter(|(i, _)| *i >= from)
            .fold((0.0, 0u32), |(s, n), (_, v)| (s + v, n + 1));
        (n > 0).then(|| sum / f64::from(n))
    }
}

/// What the server was doing: the results file's `server`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// The length of each bucket, in seconds (the timeline's).
    pub bucket_s: u64,
    /// Where readings came from.
    pub sources: Vec<Source>,
    /// The series, in the order first read.
    pub series: Vec<Series>,
}

impl Server {
    /// The series named `name`, from any source.
    pub fn get(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name == name)
    }

    /// Source `source`'s series of `metric` (a process's, the machine's).
    pub fn of(&self, source: usize, metric: &str) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.source == source && s.metric == metric)
    }

    /// Gauges and the limits they run up against, as indexes into
    /// `series`: (usage, limit). A limit is a gauge named for one
    /// (`..._size`, `..._limit`, `..._capacity`, `..._max`) that held
    /// still over the run (a limit is configured; a high-water mark,
    /// which climbs, is not one); its usage is a gauge of the same source
    /// and labels named by the same stem (`lab_db_pool_in_use` for
    /// `lab_db_pool_size`, `lab_deploy_queue` for
    /// `lab_deploy_queue_capacity`). So is `process_open_fds` of
    /// `process_max_fds`, as client libraries name them.
    pub fn limit_pairs(&self) -> Vec<(usize, usize)> {
        let gauges = || {
            self.series
                .iter()
                .enumerate()
                .filter(|(_, s)| s.kind == SeriesKind::Gauge)
        };
        let mut pairs = Vec::new();
        for (li, limit) in gauges() {
            let Some(stem) = limit_stem(&limit.metric) else {
                continue;
            };
            let mut values = limit.points().map(|(_, v)| v);
            let Some(first) = values.next() else {
                continue;
            };
            if values.any(|v| v != first) {
                continue;
            }
            for (ui, usage) in gauges() {
                let named = usage.metric == stem
                    || usage
                        .metric
                        .strip_prefix(stem)
                        .is_some_and(|rest| rest.starts_with('_'))
                    || (limit.metric == "process_max_fds" && usage.metric == "process_open_fds");
                if ui != li
                    && named
                    && limit_stem(&usage.metric).is_none()
                    && usage.source == limit.source
                    && usage.labels == limit.labels
                {
                    pairs.push((ui, li));
                }
            }
        }
        pairs
    }
}

/// A limit's name without the word that makes it one.
fn limit_stem(metric: &str) -> Option<&str> {
    ["_size", "_limit", "_capacity", "_max"]
        .iter()
        .find_map(|w| metric.strip_suffix(w))
        .or((metric == "process_max_fds").then_some("process_max_fds"))
}

/// A bucket's value so far: `n` readings combined.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    value: f64,
    n: u32,
}

impl Cell {
    fn add(&mut self, other: Cell, average: bool) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other;
            return;
        }
        let n = self.n.saturating_add(other.n);
        self.value = if average {
            (self.value * f64::from(self.n) + other.value * f64::from(other.n)) / f64::from(n)
        } else {
            self.value.max(other.value)
        };
        self.n = n;
    }
}

struct Track {
    series: Series,
    cells: Vec<Cell>,
    /// The first value read, and whether any other was since (a limit
    /// holds still).
    first: Option<f64>,
    varied: bool,
}

/// What a source's last reading left for the next one's rates.
#[derive(Default)]
struct Previous {
    t: Option<f64>,
    counters: HashMap<String, f64>,
    /// A histogram's cumulative counts by upper bound, by its name.
    buckets: HashMap<String, Vec<(f64, f64)>>,
    process: Option<Reading>,
}

struct SourceState {
    info: Source,
    previous: Previous,
}

/// Collects readings into series during a run; [`Recorder::finish`]
/// aligns them with the timeline.
pub struct Recorder {
    max_series: usize,
    bucket_s: u64,
    tracks: Vec<Track>,
    by_name: HashMap<(usize, String), usize>,
    sources: Vec<SourceState>,
}

/// A series' identity within one reading.
struct Key<'a> {
    metric: &'a str,
    labels: &'a [(String, String)],
    kind: SeriesKind,
    quantile: Option<f64>,
}

impl Key<'_> {
    fn name(&self) -> String {
        let mut name = display(self.metric, self.labels.iter());
        if let Some(q) = self.quantile {
            name.push_str(&format!(" p{}", (q * 1000.0).round() / 10.0));
        }
        name
    }
}

/// `metric{a="x",b="y"}`, quotes and backslashes in values escaped.
fn display<'a>(metric: &str, labels: impl Iterator<Item = &'a (String, String)>) -> String {
    let mut out = metric.to_string();
    let mut first = true;
    for (k, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out
}

impl Recorder {
    /// A recorder keeping at most `max_series` series.
    pub fn new(max_series: usize) -> Recorder {
        Recorder {
            max_series,
            bucket_s: 1,
            tracks: Vec::new(),
            by_name: HashMap::new(),
            sources: Vec::new(),
        }
    }

    /// Adds a source; its index for the readings.
    pub fn source(&mut self, kind: SourceKind, target: String) -> usize {
        self.sources.push(SourceState {
            info: Source {
                kind,
                target,
                readings: 0,
                failed: BTreeMap::new(),
                first_error: None,
                bad_lines: 0,
                first_bad_line: None,
                series_dropped: 0,
                gone_at_s: None,
            },
            previous: Previous::default(),
        });
        self.sources.len() - 1
    }

    /// A reading of `source` failed (`reason` is a short, stable word).
    pub fn failed(&mut self, source: usize, reason: &str, message: impl FnOnce() -> String) {
        if let Some(s) = self.sources.get_mut(source) {
            *s.info.failed.entry(reason.to_string()).or_default() += 1;
            if s.info.first_error.is_none() {
                s.info.first_error = Some(message());
            }
        }
    }

    /// A watched process was found gone at `t`: its series end there.
    pub fn gone(&mut self, source: usize, t: f64) {
        if let Some(s) = self.sources.get_mut(source) {
            s.info.gone_at_s.get_or_insert(t);
        }
    }

    /// A scrape of `source` at `t` returned `text`; only samples whose
    /// name `keep` accepts become series.
    pub fn scraped(&mut self, source: usize, t: f64, text: &str, keep: impl Fn(&str) -> bool) {
        let parsed = exposition::parse(text);
        let Some(state) = self.sources.get_mut(source) else {
            return;
        };
        state.info.readings += 1;
        state.info.bad_lines += parsed.bad_lines as u64;
        if let (None, Some((line, why))) = (&state.info.first_bad_line, parsed.first_bad) {
            state.info.first_bad_line = Some(format!("line {line}: {why}"));
        }
        let previous = std::mem::take(&mut state.previous);
        let mut next = Previous {
            t: Some(t),
            ..Previous::default()
        };
        let since = previous.t.filter(|p| t > *p);
        let mid = since.map(|p| (p + t) / 2.0);
        let mut dropped = 0;
        let mut histograms = Histograms::default();
        for s in &parsed.samples {
            let kind = parsed.kind_of(&s.name);
            // A histogram's samples are kept by their family's name too
            // (`wait_seconds` keeps `wait_seconds_bucket`).
            let family = match kind {
                Kind::Histogram | Kind::Summary => ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|x| s.name.strip_suffix(x))
                    .unwrap_or(&s.name),
                _ => &s.name,
            };
            if !(keep(&s.name) || keep(family)) || !s.value.is_finite() {
                continue;
            }
            match kind {
                Kind::Counter | Kind::Untyped if is_counter(kind, &s.name) => {
                    let key = display(&s.name, s.labels.iter());
                    if let (Some(p), Some(dt), Some(mid)) =
                        (previous.counters.get(&key), since.map(|p| t - p), mid)
                    {
                        let increase = if s.value >= *p { s.value - p } else { s.value };
                        let k = Key {
                            metric: &s.name,
                            labels: &s.labels,
                            kind: SeriesKind::Rate,
                            quantile: None,
                        };
                        dropped += self.put(source, &k, mid, increase / dt);
                    }
                    next.counters.insert(key, s.value);
                }
                Kind::Histogram => bucket_of(s, &mut histograms),
                Kind::Summary if s.label("quantile").is_none() => {}
                Kind::Counter => {}
                Kind::Gauge | Kind::Untyped | Kind::Summary => {
                    let k = Key {
                        metric: &s.name,
                        labels: &s.labels,
                        kind: SeriesKind::Gauge,
                        quantile: None,
                    };
                    dropped += self.put(source, &k, t, s.value);
                }
            }
        }
        for (family, labels, mut counts) in histograms.list {
            counts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let key = display(&family, labels.iter());
            if let (Some(before), Some(mid)) = (previous.buckets.get(&key), mid) {
                let delta = increases(before, &counts);
                for q in QUANTILES {
                    if let Some(v) = quantile(&delta, q) {
                        let k = Key {
                            metric: &family,
                            labels: &labels,
                            kind: SeriesKind::Quantile,
                            quantile: Some(q),
                        };
                        dropped += self.put(source, &k, mid, v);
                    }
                }
            }
            next.buckets.insert(key, counts);
        }
        if let Some(state) = self.sources.get_mut(source) {
            state.previous = next;
            state.info.series_dropped = state.info.series_dropped.max(dropped);
        }
    }

    /// A reading of a watched process at `t`; `ticks_per_s` is the
    /// kernel's clock tick (`sysconf(_SC_CLK_TCK)`).
    pub fn process(&mut self, source: usize, t: f64, r: Reading, ticks_per_s: f64) {
        let Some(state) = self.sources.get_mut(source) else {
            return;
        };
        state.info.readings += 1;
        let previous = state.previous.process.replace(r);
        let since = state.previous.t.replace(t).filter(|p| t > *p);
        let labels = [];
        let gauge = |metric| Key {
            metric,
            labels: &labels,
            kind: SeriesKind::Gauge,
            quantile: None,
        };
        self.put(source, &gauge("process_rss_bytes"), t, r.rss_bytes as f64);
        self.put(source, &gauge("process_threads"), t, r.threads as f64);
        if let Some(fds) = r.fds {
            self.put(source, &gauge("process_open_fds"), t, fds as f64);
        }
        if let Some(max) = r.max_fds {
            self.put(source, &gauge("process_max_fds"), t, max as f64);
        }
        let (Some(p), Some(before)) = (previous, since) else {
            return;
        };
        let dt = t - before;
        let mid = (t + before) / 2.0;
        let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
        let rates = [
            (
                "process_cpu_user_cores",
                per_s(r.user_ticks, p.user_ticks) / ticks_per_s,
            ),
            (
                "process_cpu_system_cores",
                per_s(r.system_ticks, p.system_ticks) / ticks_per_s,
            ),
            (
                "process_voluntary_switches",
                per_s(r.voluntary_switches, p.voluntary_switches),
            ),
            (
                "process_involuntary_switches",
                per_s(r.involuntary_switches, p.involuntary_switches),
            ),
        ];
        for (metric, v) in rates {
            let k = Key {
                metric,
                labels: &labels,
                kind: SeriesKind::Rate,
                quantile: None,
            };
            self.put(source, &k, mid, v);
        }
    }

    /// A reading of the machine's CPUs at `t`: `m.busy_ticks` over all
    /// of them (`process::parse_machine`), and throng's own.
    pub fn machine(&mut self, source: usize, t: f64, m: Machine, ticks_per_s: f64) {
        let Some(state) = self.sources.get_mut(source) else {
            return;
        };
        state.info.readings += 1;
        let before = state
            .previous
            .counters
            .insert(String::new(), m.busy_ticks as f64);
        let own = state
            .previous
            .counters
            .insert("own".into(), m.own_ticks as f64);
        let since = state.previous.t.replace(t).filter(|p| t > *p);
        let labels = [];
        let key = |metric, kind| Key {
            metric,
            labels: &labels,
            kind,
            quantile: None,
        };
        self.put(
            source,
            &key("machine_cpus", SeriesKind::Gauge),
            t,
            m.cpus as f64,
        );
        let Some(p) = since else {
            return;
        };
        let cores = |now: u64, then: f64| (now as f64 - then).max(0.0) / ticks_per_s / (t - p);
        if let Some(before) = before {
            // The kernel's ticks and the reading's clock disagree by a
            // little: never more CPUs busy than there are.
            let busy = cores(m.busy_ticks, before).min(m.cpus as f64);
            let k = key("machine_cpu_busy_cores", SeriesKind::Rate);
            self.put(source, &k, (t + p) / 2.0, busy);
        }
        if let Some(before) = own {
            let k = key("machine_throng_cores", SeriesKind::Rate);
            self.put(source, &k, (t + p) / 2.0, cores(m.own_ticks, before));
        }
    }

    /// Records `value` at `t` into the series `key` names; 1 when the
    /// series was new and past the bound (not kept), else 0.
    fn put(&mut self, source: usize, key: &Key, t: f64, value: f64) -> u64 {
        if t.is_nan() || t < 0.0 || !value.is_finite() {
            return 0;
        }
        let name = key.name();
        let track = match self.by_name.get(&(source, name.clone())) {
            Some(&i) => i,
            None if self.tracks.len() >= self.max_series => return 1,
            None => {
                self.tracks.push(Track {
                    series: Series {
                        name: name.clone(),
                        metric: key.metric.to_string(),
                        labels: key.labels.iter().cloned().collect(),
                        kind: key.kind,
                        quantile: key.quantile,
                        source,
                        values: Vec::new(),
                    },
                    cells: Vec::new(),
                    first: None,
                    varied: false,
                });
                self.by_name.insert((source, name), self.tracks.len() - 1);
                self.tracks.len() - 1
            }
        };
        let mut bucket = (t / self.bucket_s as f64) as usize;
        while bucket >= MAX_BUCKETS {
            self.halve();
            bucket = (t / self.bucket_s as f64) as usize;
        }
        let track = &mut self.tracks[track];
        match track.first {
            None => track.first = Some(value),
            Some(f) if f != value => track.varied = true,
            Some(_) => {}
        }
        if track.cells.len() <= bucket {
            track.cells.resize(bucket + 1, Cell::default());
        }
        track.cells[bucket].add(Cell { value, n: 1 }, key.kind.averages());
        0
    }

    /// Merges neighbouring buckets of every series; the bucket doubles.
    fn halve(&mut self) {
        self.bucket_s *= 2;
        for t in &mut self.tracks {
            t.cells = merge_pairs(&t.cells, t.series.kind.averages());
        }
    }

    /// The latest value of each series, for a live view.
    pub fn latest(&self) -> impl Iterator<Item = (&Series, f64)> {
        self.tracks.iter().filter_map(|t| {
            let cell = t.cells.iter().rev().find(|c| c.n > 0)?;
            Some((&t.series, cell.value))
        })
    }

    /// The few figures a live view shows: gauges at or near their limit
    /// (the fullest two, `in_use 18/20`), each watched process's CPU and
    /// memory, and the machine's busy CPUs.
    pub fn headline(&self) -> Vec<String> {
        // Each series' latest value; a limit that ever moved is left out.
        let latest: Vec<Series> = self
            .tracks
            .iter()
            .filter_map(|t| {
                let cell = t.cells.iter().rev().find(|c| c.n > 0)?;
                let value = if t.varied { f64::NAN } else { cell.value };
                Some(Series {
                    values: vec![Some(value), Some(cell.value)],
                    ..t.series.clone()
                })
            })
            .collect();
        let now = Server {
            bucket_s: 1,
            sources: Vec::new(),
            series: latest,
        };
        let value = |s: &Series| s.values.get(1).copied().flatten().unwrap_or(0.0);
        let mut full: Vec<(f64, String)> = now
            .limit_pairs()
            .into_iter()
            .map(|(u, l)| {
                let (u, l) = (&now.series[u], &now.series[l]);
                let share = value(u) / value(l).max(1e-9);
                (share, format!("{} {}/{}", u.name, value(u), value(l)))
            })
            .filter(|(share, _)| *share >= 0.5)
            .collect();
        full.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<String> = full.into_iter().take(2).map(|(_, s)| s).collect();
        for (i, src) in self.sources.iter().enumerate() {
            let of = |metric: &str| now.of(i, metric).map(value);
            if src.info.target == MACHINE {
                if let (Some(busy), Some(cpus)) = (of("machine_cpu_busy_cores"), of("machine_cpus"))
                {
                    out.push(format!("machine {busy:.1}/{cpus:.0} CPUs busy"));
                }
            } else if let (Some(user), Some(system)) =
                (of("process_cpu_user_cores"), of("process_cpu_system_cores"))
            {
                let rss = of("process_rss_bytes").unwrap_or(0.0) / 1048576.0;
                out.push(format!(
                    "{} cpu {:.2} rss {rss:.0}MiB",
                    src.info.target,
                    user + system
                ));
            }
        }
        out
    }

    /// The series, `buckets` values each of `bucket_s` seconds (the
    /// timeline's), readings after the last bucket left out.
    pub fn finish(&self, buckets: usize, bucket_s: u64) -> Server {
        let series = self
            .tracks
            .iter()
            .map(|t| {
                let average = t.series.kind.averages();
                let mut cells = t.cells.clone();
                let mut width = self.bucket_s;
                while width < bucket_s {
                    cells = merge_pairs(&cells, average);
                    width *= 2;
                }
                // The timeline's buckets are narrower (it has not doubled
                // yet): each of ours covers several of its.
                let spread = usize::try_from((width / bucket_s.max(1)).max(1)).unwrap_or(1);
                let values = (0..buckets)
                    .map(|i| {
                        cells
                            .get(i / spread)
                            .filter(|c| c.n > 0)
                            .map(|c| significant(c.value))
                    })
                    .collect();
                Series {
                    values,
                    ..t.series.clone()
                }
            })
            .collect();
        Server {
            bucket_s,
            sources: self.sources.iter().map(|s| s.info.clone()).collect(),
            series,
        }
    }
}

/// `v` to 6 significant digits (a whole number stays whole): what a
/// reading is worth, and a results file that does not carry 17 digits
/// per value.
fn significant(v: f64) -> f64 {
    if v.fract() == 0.0 {
        return v;
    }
    format!("{v:.5e}").parse().unwrap_or(v)
}

fn merge_pairs(cells: &[Cell], average: bool) -> Vec<Cell> {
    cells
        .chunks(2)
        .map(|pair| {
            let mut c = pair[0];
            if let Some(b) = pair.get(1) {
                c.add(*b, average);
            }
            c
        })
        .collect()
}

/// Whether a sample is read as a counter: typed so (its `_total`, or a
/// bare name), or untyped and named `_total`.
fn is_counter(kind: Kind, name: &str) -> bool {
    match kind {
        Kind::Counter => !name.ends_with("_created"),
        Kind::Untyped => name.ends_with("_total"),
        _ => false,
    }
}

/// A histogram in one reading: its family, labels (without `le`) and
/// cumulative counts by upper bound.
type Histogram = (String, Vec<(String, String)>, Vec<(f64, f64)>);

/// The histograms of one reading, in the order first seen, found by
/// family and labels.
#[derive(Default)]
struct Histograms {
    list: Vec<Histogram>,
    index: HashMap<String, usize>,
}

/// Adds a histogram's `_bucket` sample to its family's counts; `_sum`
/// and `_count` are not read.
fn bucket_of(s: &Sample, out: &mut Histograms) {
    let Some(family) = s.name.strip_suffix("_bucket") else {
        return;
    };
    let Some(le) = s.label("le").and_then(|v| match v {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        v => v.parse::<f64>().ok(),
    }) else {
        return;
    };
    let labels: Vec<(String, String)> = s
        .labels
        .iter()
        .filter(|(k, _)| k != "le")
        .cloned()
        .collect();
    let key = display(family, labels.iter());
    match out.index.get(&key).and_then(|&i| out.list.get_mut(i)) {
        Some((_, _, counts)) => counts.push((le, s.value)),
        None => {
            out.index.insert(key, out.list.len());
            out.list
                .push((family.to_string(), labels, vec![(le, s.value)]));
        }
    }
}

/// The observations made between two readings of a histogram, bucket by
/// bucket (cumulative). A count that fell means the target restarted:
/// the new counts are the increase.
fn increases(before: &[(f64, f64)], now: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let old = |le: f64| {
        before
            .iter()
            .find(|(b, _)| b.total_cmp(&le).is_eq())
            .map(|(_, c)| *c)
    };
    let restarted = now.iter().any(|(le, c)| old(*le).is_some_and(|o| *c < o));
    now.iter()
        .map(|&(le, c)| match (restarted, old(le)) {
            (false, Some(o)) => (le, c - o),
            _ => (le, c),
        })
        .collect()
}

/// The `q` quantile of cumulative bucket counts sorted by bound, linear
/// within the bucket it falls in (from 0, or the bucket below); in the
/// `+Inf` bucket, the largest finite bound. `None` without observations.
pub fn quantile(cumulative: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0_f64, 0.0_f64);
    for &(le, count) in cumulative {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let width = count - lower.1;
            let into = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            let from = if lower.0 > le { le } else { lower.0 };
            return Some(from + (le - from) * into);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests;
