//! What the server was doing when something broke: the scraped series
//! and watched processes (`observe::Server`) read beside a finding.
//!
//! For a finding that began at timeline bucket `from` with a per-bucket
//! `signal` (its error kind's count, the latency, its failed checks):
//! - **ceilings**: a gauge at its limit series (`observe`'s pairs: a
//!   pool's in-use at its size), within 1%, in at least [`CEILING_SHARE`]
//!   of the buckets from `from` on and in at most half as many before (a
//!   gauge is read at an instant, so a full pool of 4 reads 3 now and
//!   then: what matters is that it was full far more often once the
//!   symptom began); or flat at its own maximum (one that rose to it and
//!   fell at some point: a high-water mark never falls);
//! - **in step**: series whose rank correlation (Spearman's) with the
//!   signal over the run, at a lead of 0 to [`MAX_LEAD`] buckets, is at
//!   least [`IN_STEP_RHO`], and whose changes from one bucket to the next
//!   correlate with the signal's by at least [`IN_STEP_CHANGES`] (on a
//!   ramp of load everything rises together; what moves with the symptom
//!   second by second is what is named), leaving out rates that track
//!   throng's own sent requests ([`ECHO_RHO`]: requests served, the load
//!   seen from the server); the strongest [`MAX_IN_STEP`];
//! - **processes**: each watched process's CPU from `from` on against what
//!   it could use (one core per thread, at most the machine's CPUs),
//!   and the machine's own CPUs: CPU-bound at [`CPU_BOUND`] of either,
//!   else waiting.
//!
//! Only what was seen is named; with no series in step, it says so.

use observe::{SeriesKind, Server, SourceKind};
use serde::{Deserialize, Serialize};

/// A ceiling holds for at least this share of the buckets from the onset.
pub const CEILING_SHARE: f64 = 0.3;
/// The rank correlation a series needs to be "in step".
pub const IN_STEP_RHO: f64 = 0.6;
/// ...and of its changes from bucket to bucket with the signal's.
pub const IN_STEP_CHANGES: f64 = 0.3;
/// A rate whose rank correlation with throng's own sent requests is at
/// least this is the load echoed back, not named.
pub const ECHO_RHO: f64 = 0.95;
/// How far ahead of the signal (in buckets) a series may move.
pub const MAX_LEAD: usize = 5;
/// Series named as in step, at most.
pub const MAX_IN_STEP: usize = 3;
/// Points a series and the signal need in common to be correlated.
pub const MIN_POINTS: usize = 8;
/// A process is CPU-bound at this share of the CPU it could use.
pub const CPU_BOUND: f64 = 0.8;

/// A gauge at a ceiling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// The gauge.
    pub series: String,
    /// Its limit series, when it has one (else it was flat at its own
    /// maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The limit's value (or the maximum).
    pub value: f64,
    /// The share of buckets from the onset on at it.
    pub share: f64,
    /// The share of the buckets before the onset at its limit, when
    /// there were any (at most half of `share`, or it would not be named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<f64>,
}

/// A series that moved with the finding's signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InStep {
    /// The series.
    pub series: String,
    /// Spearman's rank correlation with the signal.
    pub rho: f64,
    /// How many seconds ahead of the signal it moved (0: together).
    pub lead_s: u64,
}

/// A watched process from the onset on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessState {
    /// `pid N (name)`.
    pub process: String,
    /// Mean CPU used, user and system, in cores.
    pub cores: f64,
    /// What it could use: one core per thread, at most the machine's CPUs.
    pub could_use: f64,
    /// The machine's CPUs in use, all processes together, when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_busy: Option<f64>,
    /// The machine's CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Of the machine's busy CPUs, throng's own (a target on the same
    /// machine shares it with the load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throng: Option<f64>,
    /// Whether it was CPU-bound (else waiting).
    pub cpu_bound: bool,
}

/// What the server was doing during a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSide {
    /// All of it in plain words.
    pub text: String,
    /// Gauges at a ceiling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ceilings: Vec<Ceiling>,
    /// Series in step with the finding's signal, strongest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_step: Vec<InStep>,
    /// Watched processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessState>,
}

/// What to read the server beside: a finding's onset and signal.
pub struct Symptom<'a> {
    /// The bucket it began in.
    pub from: usize,
    /// Its size per bucket (`None` where there is nothing to say).
    pub signal: &'a [Option<f64>],
    /// What the signal is, for the text ("latency", "http_5xx errors").
    pub name: &'a str,
    /// The requests throng sent per bucket.
    pub sent: &'a [f64],
    /// The bucket's length, seconds.
    pub bucket_s: u64,
}

/// The server side of a symptom, or `None` without series.
pub fn server_side(server: &Server, s: &Symptom) -> Option<ServerSide> {
    if server.series.is_empty() {
        return None;
    }
    let ceilings = ceilings(server, s.from);
    let in_step = in_step(server, s);
    let processes = processes(server, s.from);
    let mut parts: Vec<String> = ceilings
        .iter()
        .map(|c| {
            let before = c
                .before
                .map(|b| format!(" ({} before)", crate::percent(b)))
                .unwrap_or_default();
            format!("{}{before}", c.text())
        })
        .collect();
    let points = s.signal.iter().flatten().count();
    if in_step.is_empty() {
        if !scraped(server) {
            // Only processes: correlation is not the point.
        } else if points < MIN_POINTS {
            parts.push(format!(
                "too few seconds ({points}) to rank series against {} ({MIN_POINTS} needed)",
                s.name
            ));
        } else {
            parts.push(format!("no scraped series rose in step with {}", s.name));
        }
    } else {
        let named: Vec<String> = in_step
            .iter()
            .map(|i| {
                let lead = match i.lead_s {
                    0 => String::new(),
                    l => format!(", {l} s ahead"),
                };
                format!("{} (Spearman {:.2}{lead})", i.series, i.rho)
            })
            .collect();
        parts.push(format!("in step with {}: {}", s.name, named.join(", ")));
    }
    parts.extend(processes.iter().map(ProcessState::text));
    if parts.is_empty() {
        return None;
    }
    Some(ServerSide {
        text: format!("from then on: {}", parts.join("; ")),
        ceilings,
        in_step,
        processes,
    })
}

impl Ceiling {
    /// In words: "X was at its limit Y (4) in 75.0% of the seconds".
    pub fn text(&self) -> String {
        let pct = crate::percent(self.share);
        match &self.limit {
            Some(limit) => format!(
                "{} was at its limit {limit} ({}) in {pct} of the seconds",
                self.series,
                num(self.value)
            ),
            None => format!(
                "{} was flat at its maximum {} in {pct} of the seconds",
                self.series,
                num(self.value)
            ),
        }
    }
}

impl ProcessState {
    /// In words: its cores, the machine's, and the verdict.
    pub fn text(&self) -> String {
        let machine = match (self.machine_busy, self.cpus) {
            (Some(busy), Some(cpus)) => format!(
                "; the machine's {} CPUs were {} busy{}",
                num(cpus),
                crate::percent(busy / cpus.max(1.0)),
                self.throng
                    .map(|t| format!(", {} cores of it throng's own load", num2(t)))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        format!(
            "{} used {} cores of the {} it could{machine}: {}",
            self.process,
            num2(self.cores),
            num(self.could_use),
            if self.cpu_bound {
                "CPU-bound"
            } else {
                "waiting, not computing"
            }
        )
    }
}

fn scraped(server: &Server) -> bool {
    server.sources.iter().any(|s| s.kind == SourceKind::Scrape)
}

fn num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn num2(x: f64) -> String {
    format!("{x:.2}")
}

/// Whether a gauge is at its limit: within 1% of it (a full queue of
/// 1024 reads 1023 while its worker holds one).
fn at_limit(usage: f64, limit: f64) -> bool {
    usage >= limit - 0.01 * limit.abs()
}

/// Gauges at their limit, or flat at their maximum, from `from` on.
fn ceilings(server: &Server, from: usize) -> Vec<Ceiling> {
    let mut out = Vec::new();
    let pairs = server.limit_pairs();
    let limits: Vec<usize> = pairs.iter().map(|(_, l)| *l).collect();
    for &(u, l) in &pairs {
        let (usage, limit) = (&server.series[u], &server.series[l]);
        // The share of buckets in `range` with the gauge at its limit.
        let share_in = |range: std::ops::Range<usize>| {
            let both: Vec<(f64, f64)> = range
                .filter_map(|i| {
                    Some((
                        *usage.values.get(i)?.as_ref()?,
                        *limit.values.get(i)?.as_ref()?,
                    ))
                })
                .collect();
            let at = both.iter().filter(|(u, l)| at_limit(*u, *l)).count();
            (!both.is_empty()).then(|| at as f64 / both.len() as f64)
        };
        let Some(share) = share_in(from..usage.values.len()) else {
            continue;
        };
        let before = share_in(0..from);
        if share >= CEILING_SHARE && before.is_none_or(|b| b <= share / 2.0) {
            out.push(Ceiling {
                series: usage.name.clone(),
                limit: Some(limit.name.clone()),
                value: limit.max().unwrap_or(0.0),
                share,
                before,
            });
        }
    }
    let paired: Vec<usize> = pairs.iter().map(|(u, _)| *u).collect();
    for (i, s) in server.series.iter().enumerate() {
        if s.kind != SeriesKind::Gauge
            || limits.contains(&i)
            || paired.contains(&i)
            || s.metric.starts_with("process_")
        {
            continue;
        }
        let (Some(max), Some(min)) = (s.max(), s.points().map(|(_, v)| v).reduce(f64::min)) else {
            continue;
        };
        // A high-water mark ("the most so far") never falls: it is flat
        // at its maximum by construction, not against a ceiling.
        let values: Vec<f64> = s.points().map(|(_, v)| v).collect();
        if max <= min || values.windows(2).all(|w| w[1] >= w[0]) {
            continue;
        }
        let after: Vec<f64> = s
            .points()
            .filter(|(i, _)| *i >= from)
            .map(|(_, v)| v)
            .collect();
        // It rose to its maximum: lower before the onset, or it began
        // there.
        let before_max = s
            .points()
            .filter(|(i, _)| *i < from)
            .all(|(_, v)| !at_limit(v, max));
        let at = after.iter().filter(|v| at_limit(**v, max)).count();
        let share = at as f64 / after.len().max(1) as f64;
        if after.len() >= 3 && at >= 3 && share >= CEILING_SHARE && before_max {
            out.push(Ceiling {
                series: s.name.clone(),
                limit: None,
                value: max,
                share,
                before: None,
            });
        }
    }
    out
}

/// Series whose ranks follow the signal's, ahead of it or with it, in
/// their levels and in their changes from one bucket to the next (so a
/// series that only shares a trend, as everything does on a ramp of
/// load, is not named).
fn in_step(server: &Server, s: &Symptom) -> Vec<InStep> {
    let mut found: Vec<InStep> = Vec::new();
    for series in &server.series {
        // A process's figures have their own words.
        if series.metric.starts_with("process_") || series.metric.starts_with("machine_") {
            continue;
        }
        // A rate that tracks what throng sent is the load seen from the
        // server (requests served, bytes written), not a resource.
        if series.kind == SeriesKind::Rate {
            let sent: Vec<(f64, f64)> = series
                .points()
                .filter_map(|(t, v)| Some((v, *s.sent.get(t)?)))
                .collect();
            if spearman(&sent).is_some_and(|r| r >= ECHO_RHO) {
                continue;
            }
        }
        let best = (0..=MAX_LEAD)
            .filter_map(|lead| {
                let at = |t: usize| Some((*series.values.get(t - lead)?.as_ref()?, s.signal[t]?));
                let levels: Vec<(f64, f64)> = (lead..s.signal.len()).filter_map(at).collect();
                let changes: Vec<(f64, f64)> = (lead + 1..s.signal.len())
                    .filter_map(|t| {
                        let (x1, y1) = at(t)?;
                        let (x0, y0) = at(t - 1)?;
                        Some((x1 - x0, y1 - y0))
                    })
                    .collect();
                if levels.len() < MIN_POINTS {
                    return None;
                }
                let rho = spearman(&levels)?;
                let moved = spearman(&changes)?;
                (rho >= IN_STEP_RHO && moved >= IN_STEP_CHANGES).then_some((lead, rho))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        let Some((lead, rho)) = best else { continue };
        found.push(InStep {
            series: series.name.clone(),
            rho: (rho * 100.0).round() / 100.0,
            lead_s: lead as u64 * s.bucket_s.max(1),
        });
    }
    found.sort_by(|a, b| b.rho.total_cmp(&a.rho));
    found.truncate(MAX_IN_STEP);
    found
}

/// The mean of a process's series over buckets `from..`.
fn mean_from(server: &Server, source: usize, metric: &str, from: usize) -> Option<f64> {
    server.of(source, metric)?.mean_from(from)
}

fn processes(server: &Server, from: usize) -> Vec<ProcessState> {
    let machine = server
        .sources
        .iter()
        .position(|s| s.kind == SourceKind::Process && s.target == observe::MACHINE);
    let machine_busy = machine.and_then(|m| mean_from(server, m, "machine_cpu_busy_cores", from));
    let cpus = machine.and_then(|m| mean_from(server, m, "machine_cpus", from));
    let throng = machine.and_then(|m| mean_from(server, m, "machine_throng_cores", from));
    let mut out = Vec::new();
    for (i, src) in server.sources.iter().enumerate() {
        if src.kind != SourceKind::Process || Some(i) == machine {
            continue;
        }
        let user = mean_from(server, i, "process_cpu_user_cores", from);
        let system = mean_from(server, i, "process_cpu_system_cores", from);
        let (Some(user), Some(system)) = (user, system) else {
            continue;
        };
        let cores = user + system;
        let threads = mean_from(server, i, "process_threads", from).unwrap_or(1.0);
        let could_use = match cpus {
            Some(c) => threads.min(c),
            None => threads,
        }
        .max(1.0);
        // Its own share, or a machine whose every CPU was busy while it
        // used a fair part of them.
        let saturated = match (machine_busy, cpus) {
            (Some(b), Some(c)) => b >= CPU_BOUND * c && cores >= 0.25 * c,
            _ => false,
        };
        out.push(ProcessState {
            process: src.target.clone(),
            cores: (cores * 100.0).round() / 100.0,
            could_use: could_use.round(),
            machine_busy: machine_busy.map(|b| (b * 100.0).round() / 100.0),
            cpus,
            throng: throng.map(|b| (b * 100.0).round() / 100.0),
            cpu_bound: cores >= CPU_BOUND * could_use || saturated,
        });
    }
    out
}

/// Spearman's rank correlation of `pairs` (ties ranked by their mean);
/// `None` when either side holds still.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    let xs = ranks(pairs.iter().map(|p| p.0));
    let ys = ranks(pairs.iter().map(|p| p.1));
    pearson(&xs, &ys)
}

fn ranks(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let v: Vec<f64> = values.collect();
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        // Positions i..=j share the mean rank.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    if x.len() < 2 {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests;
