//! Findings: what broke, where, when, and at what load, in plain words,
//! each with a stable `kind` id and the evidence it rests on.
//!
//! Kinds so far (each pinned by a test in `tests.rs` and against the lab):
//! - `errors_began`: an error kind (transport or status; wrong content has
//!   its own) first became significant (at least
//!   [`SIGNIFICANT_ERRORS`] errors and [`SIGNIFICANT_SHARE`] of a second's
//!   requests), with the offered load and concurrency at that second;
//! - `wrong_content`: responses of an endpoint that failed a content
//!   check (its body or status), with a 95% Wilson interval; likewise
//!   `wrong_header` for header checks and `too_slow` for latency checks
//!   (a failed check of an asset's caching headers, when `caching` flags
//!   that asset, is that finding's evidence instead);
//! - `content_ok`: endpoints whose checks never failed, with the upper
//!   bound of their failure rate (one-sided 95%, "below 0.15%");
//! - `stale_reads`: read-your-writes checks that failed;
//! - `bottleneck`: the endpoint whose latency grew most as the planned
//!   load rose (p99 in the lowest and highest load bands with enough
//!   responses), and at what load it first doubled;
//! - `caching`: assets (paths ending .css, .js, images, fonts) served
//!   with no, an uncacheable or a short (under a day) `Cache-Control`,
//!   with the edge's hit ratio where responses carry `X-Cache`;
//!   `caching_ok` when every asset was long-lived;
//! - `generator_saturation`: the generator, not the target, was the limit;
//!   or, when arrivals were dropped while a watched process was
//!   CPU-bound, the target was at its limit too ([`TARGET_WAS_FULL`]).

use serde::{Deserialize, Serialize};
use stats::{load_band, CheckStats, EndpointStats, ErrorKind, Stats, LOAD_BANDS};

use crate::server::{server_side, ServerSide, Symptom};
use crate::{generator_limits, wilson};

/// An error kind counts as begun in a second with at least this many...
pub const SIGNIFICANT_ERRORS: u64 = 3;
/// ...that are at least this share of the second's requests.
pub const SIGNIFICANT_SHARE: f64 = 0.01;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing wrong.
    Info,
    /// Something users may notice.
    Warning,
    /// Something users certainly noticed.
    Critical,
}

impl Severity {
    /// The word the summary shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id of the kind of finding, e.g. `wrong_content`.
    pub kind: String,
    /// How much it matters.
    pub severity: Severity,
    /// What happened, in one line.
    pub what: String,
    /// Where: an endpoint, a check, or the generator.
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// When it began, in seconds from the run start, if it has a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
    /// The numbers behind it.
    pub evidence: String,
    /// What the server was doing from then on, when it was watched
    /// (`--scrape`, `--watch-pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSide>,
}

/// The planned load, per second, for saying at what load something began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadShape {
    /// Closed model (levels are users) or open (levels are arrivals/s).
    pub closed: bool,
    /// The planned level in the middle of each timeline bucket (each
    /// second, or each `Stats::bucket_s` seconds in a long run).
    pub level: Vec<f64>,
    /// The planned peak level (the bands of per-endpoint latency are
    /// fractions of it, as the workers recorded them).
    pub peak: f64,
}

impl LoadShape {
    fn describe(&self, t: usize, stats: &Stats) -> String {
        let level = self.level.get(t).copied();
        let bucket = stats.timeline.get(t);
        if self.closed {
            return match level {
                Some(u) => format!("{u:.0} users"),
                None => "the planned users".into(),
            };
        }
        let offered = level.map_or(String::new(), |r| format!("{} arrivals/s offered", num(r)));
        // Little's law: requests in flight = throughput x time in system.
        let in_flight = bucket.filter(|b| b.latency.count() > 0).map(|b| {
            let mean_s = b.latency.hist().inner().mean() / 1e6;
            b.counts.requests as f64 / stats.bucket_s.max(1) as f64 * mean_s
        });
        match in_flight {
            Some(n) if !offered.is_empty() => format!("{offered}, about {} in flight", num(n)),
            Some(n) => format!("about {} in flight", num(n)),
            None => offered,
        }
    }
}

fn num(x: f64) -> String {
    if x >= 100.0 || (x - x.round()).abs() < 0.05 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A proportion for people: "1.23%", "0.015%".
pub fn percent(p: f64) -> String {
    let pct = p * 100.0;
    if pct == 0.0 {
        "0%".into()
    } else if pct >= 10.0 {
        format!("{pct:.1}%")
    } else if pct >= 0.1 {
        format!("{pct:.2}%")
    } else {
        format!("{pct:.3}%")
    }
}

/// The one-sided 95% upper bound on a failure rate when none of `n`
/// trials failed (exact: 1 - 0.05^(1/n), about 3/n).
pub fn zero_failure_bound(n: u64) -> f64 {
    if n == 0 {
        1.0
    } else {
        1.0 - 0.05f64.powf(1.0 / n as f64)
    }
}

/// Everything the statistics show, most severe first; with `server`, each
/// finding that began somewhere says what the server was doing then.
pub fn findings(
    stats: &Stats,
    shape: &LoadShape,
    server: Option<&observe::Server>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    errors_began(stats, shape, &mut out);
    content(stats, shape, &mut out);
    stale_reads(stats, shape, &mut out);
    bottleneck(stats, shape, &mut out);
    caching(stats, &mut out);
    replay_differs(stats, &mut out);
    let reasons = generator_limits(stats);
    if !reasons.is_empty() {
        out.push(Finding {
            kind: "generator_saturation".into(),
            severity: Severity::Warning,
            what: "the generator, not the target, was the limit: the numbers understate the target"
                .into(),
            location: Some("generator".into()),
            at_s: None,
            evidence: reasons.join("; "),
            server: None,
        });
    }
    if let Some(server) = server {
        for f in &mut out {
            f.server = beside(f, stats, server);
        }
        if stats.counts.dropped() > 0 {
            for f in out.iter_mut().filter(|f| f.kind == "generator_saturation") {
                if target_was_full(f) {
                    f.what = TARGET_WAS_FULL.into();
                }
            }
        }
    }
    // Most severe first; within a severity, earliest first.
    out.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(
            a.at_s
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.at_s.unwrap_or(f64::INFINITY)),
        )
    });
    out
}

fn errors_began(stats: &Stats, shape: &LoadShape, out: &mut Vec<Finding>) {
    let total = stats.counts.requests;
    for kind in ErrorKind::ALL {
        if matches!(kind, ErrorKind::Dropped | ErrorKind::CheckFailed) {
            // The generator's, reported as saturation; and wrong content,
            // reported per endpoint.
            continue;
        }
        let all = stats.counts.errors.get(kind);
        if all == 0 {
            continue;
        }
        let began = stats.timeline.iter().enumerate().find(|(_, b)| {
            let n = b.counts.errors.get(kind);
            n >= SIGNIFICANT_ERRORS && n as f64 >= SIGNIFICANT_SHARE * b.counts.requests as f64
        });
        let Some((t, b)) = began else { continue };
        let share = all as f64 / total.max(1) as f64;
        let n = b.counts.errors.get(kind);
        let evidence = format!(
            "{n} of {} requests due in {} failed with {}; {} in the whole run ({})",
            b.counts.requests,
            bucket_name(stats, t),
            kind.as_str(),
            all,
            percent(share)
        );
        out.push(Finding {
            kind: "errors_began".into(),
            severity: if share >= 0.01 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            what: format!(
                "{} errors began at {}s, at {}",
                kind.as_str(),
                start_s(stats, t),
                shape.describe(t, stats)
            ),
            location: Some(kind.as_str().into()),
            at_s: Some(start_s(stats, t) as f64),
            evidence,
            server: None,
        });
    }
}

/// What a `generator_saturation` finding says instead when arrivals were
/// dropped while a watched process was CPU-bound: sessions held their
/// senders longer because the target (or the machine it shares) was
/// full, so the in-flight limit filled; the generator's own limit is not
/// the first suspect.
pub const TARGET_WAS_FULL: &str = "the target was at its limit: arrivals were dropped at the in-flight limit while a watched process was CPU-bound, so it was offered less load than planned";

/// True when a finding's server side has a CPU-bound watched process.
pub fn target_was_full(f: &Finding) -> bool {
    f.server
        .as_ref()
        .is_some_and(|s| s.processes.iter().any(|p| p.cpu_bound))
}

/// What the server was doing from a finding's onset, read against the
/// finding's own signal: its error kind per bucket, the latency (p99)
/// for a bottleneck, its endpoint's failed checks for wrong content and
/// stale reads, all failures for a recovery check's, and the dropped
/// arrivals over the whole run for the generator's saturation.
pub fn beside(f: &Finding, stats: &Stats, server: &observe::Server) -> Option<ServerSide> {
    let from = f
        .at_s
        .map_or(0, |t| (t / stats.bucket_s.max(1) as f64) as usize);
    let location = f.location.as_deref().unwrap_or_default();
    let (signal, name): (Vec<Option<f64>>, String) = match f.kind.as_str() {
        "errors_began" => {
            let kind = ErrorKind::ALL
                .into_iter()
                .find(|k| k.as_str() == location)?;
            let per = stats
                .timeline
                .iter()
                .map(|b| Some(b.counts.errors.get(kind) as f64))
                .collect();
            (per, format!("the {location} errors"))
        }
        "bottleneck" => (latency_signal(stats), "the latency".to_string()),
        "wrong_content" | "wrong_header" | "too_slow" | "stale_reads" => {
            let ep = stats.endpoints.iter().find(|e| e.name == location)?;
            let per = ep
                .seconds
                .iter()
                .map(|&[_, _, failed]| Some(failed as f64))
                .collect();
            (per, format!("{location}'s failed checks"))
        }
        // Over the whole run: what the target did while arrivals were
        // dropped at the in-flight limit.
        "generator_saturation" => {
            let per = stats
                .timeline
                .iter()
                .map(|b| Some(b.counts.errors.get(ErrorKind::Dropped) as f64))
                .collect();
            (per, "the dropped arrivals".to_string())
        }
        "no_recovery" | "recovered" => {
            let per = stats
                .timeline
                .iter()
                .map(|b| Some(b.counts.failed() as f64))
                .collect();
            (per, "the failed requests".to_string())
        }
        _ => return None,
    };
    let mut side = symptom_side(stats, server, from, &signal, &name)?;
    if f.kind == "generator_saturation" {
        if let Some(rest) = side.text.strip_prefix("from then on: ") {
            side.text = format!("over the run: {rest}");
        }
    }
    Some(side)
}

/// What the server was doing over a whole run, read against its latency
/// (a capacity step's).
pub fn server_during(stats: &Stats, server: &observe::Server) -> Option<ServerSide> {
    symptom_side(stats, server, 0, &latency_signal(stats), "the latency")
}

/// Each bucket's p99 latency, where it had responses.
fn latency_signal(stats: &Stats) -> Vec<Option<f64>> {
    stats
        .timeline
        .iter()
        .map(|b| {
            let h = b.latency.hist();
            (h.count() > 0).then(|| h.quantile_ms(0.99))
        })
        .collect()
}

fn symptom_side(
    stats: &Stats,
    server: &observe::Server,
    from: usize,
    signal: &[Option<f64>],
    name: &str,
) -> Option<ServerSide> {
    let sent: Vec<f64> = stats
        .timeline
        .iter()
        .map(|b| b.counts.requests as f64)
        .collect();
    server_side(
        server,
        &Symptom {
            from,
            signal,
            name,
            sent: &sent,
            bucket_s: stats.bucket_s,
        },
    )
}

/// Headers about caching: a failed check on one of these, on an asset
/// the caching audit already flags, is that finding's evidence, not a
/// finding of its own.
const CACHE_HEADERS: [&str; 10] = [
    "cache-control",
    "expires",
    "pragma",
    "age",
    "etag",
    "last-modified",
    "vary",
    "x-cache",
    "surrogate-control",
    "cdn-cache-control",
];

/// Whether a failed check is about an asset's caching, which `caching`
/// reports.
fn about_caching(c: &CheckStats, ep: &EndpointStats) -> bool {
    c.part == "header" && CACHE_HEADERS.contains(&c.header.as_str()) && cache_problem(ep)
}

/// What a group of failed checks says about the responses.
struct Wrong {
    kind: &'static str,
    what: &'static str,
    check: &'static str,
}

/// The groups failed checks are reported in, by what they look at.
fn wrong_of(part: &str) -> Wrong {
    match part {
        "header" => Wrong {
            kind: "wrong_header",
            what: "had the wrong headers",
            check: "a header check",
        },
        "latency" => Wrong {
            kind: "too_slow",
            what: "took longer than their check allows",
            check: "a latency check",
        },
        _ => Wrong {
            kind: "wrong_content",
            what: "showed the wrong content",
            check: "a content check",
        },
    }
}

fn content(stats: &Stats, shape: &LoadShape, out: &mut Vec<Finding>) {
    let mut clean: Vec<(String, u64)> = Vec::new();
    for ep in &stats.endpoints {
        let checks: Vec<_> = stats
            .checks
            .iter()
            .filter(|c| c.endpoint == ep.name)
            .collect();
        if checks.is_empty() {
            continue;
        }
        // Failures of read-back checks are stale reads, reported apart.
        if checks.iter().all(|c| c.reads_back) {
            continue;
        }
        let n = ep.counts.requests;
        let k = ep.counts.check_failures;
        if k == 0 {
            clean.push((ep.name.clone(), n));
            continue;
        }
        // Failed checks by what they look at; caching headers of a
        // flagged asset go to the caching finding instead.
        let failing: Vec<&CheckStats> = checks
            .iter()
            .copied()
            .filter(|c| c.failed > 0 && !c.reads_back && !about_caching(c, ep))
            .collect();
        let mut groups: Vec<&'static str> = Vec::new();
        for c in &failing {
            let kind = wrong_of(&c.part).kind;
            if !groups.contains(&kind) {
                groups.push(kind);
            }
        }
        for kind in &groups {
            let in_group: Vec<&CheckStats> = failing
                .iter()
                .copied()
                .filter(|c| wrong_of(&c.part).kind == *kind)
                .collect();
            // One group: every response with a failed check is in it.
            // Several: each counts at least its most failed check's.
            let k = if groups.len() == 1 {
                k
            } else {
                in_group.iter().map(|c| c.failed).max().unwrap_or(0)
            };
            let wrong = wrong_of(&in_group[0].part);
            let names: Vec<&str> = in_group.iter().map(|c| c.name.as_str()).collect();
            out.push(wrong_finding(stats, shape, ep, &wrong, k, &names));
        }
    }
    if !clean.is_empty() {
        let parts: Vec<String> = clean
            .iter()
            .map(|(name, n)| {
                format!(
                    "{name}: 0 of {n}, below {}",
                    percent(zero_failure_bound(*n))
                )
            })
            .collect();
        out.push(Finding {
            kind: "content_ok".into(),
            severity: Severity::Info,
            what: format!(
                "no wrong content seen on {} checked endpoint(s)",
                clean.len()
            ),
            location: None,
            at_s: None,
            evidence: format!("failure rates, 95% upper bounds: {}", parts.join("; ")),
            server: None,
        });
    }
}

/// A finding that `k` of an endpoint's responses failed the `failing`
/// checks of one group.
fn wrong_finding(
    stats: &Stats,
    shape: &LoadShape,
    ep: &EndpointStats,
    wrong: &Wrong,
    k: u64,
    failing: &[&str],
) -> Finding {
    let n = ep.counts.requests;
    let (lo, hi) = wilson(k, n);
    let began = check_failures_began(stats, &ep.name);
    Finding {
        kind: wrong.kind.into(),
        severity: if lo >= 0.01 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        what: format!(
            "{}: {} of responses {}{}",
            ep.name,
            percent(k as f64 / n.max(1) as f64),
            wrong.what,
            began_text(began, stats, shape)
        ),
        location: Some(ep.name.clone()),
        at_s: began.map(|t| start_s(stats, t) as f64),
        evidence: format!(
            "{k} of {n} responses failed {} (95% CI {} to {}); failing: {}",
            wrong.check,
            percent(lo),
            percent(hi),
            failing.join(", ")
        ),
        server: None,
    }
}

/// When timeline bucket `t` starts, in seconds from the run start.
fn start_s(stats: &Stats, t: usize) -> u64 {
    t as u64 * stats.bucket_s.max(1)
}

/// "second 12", or "the 4 s from 48s" in a run with longer buckets.
fn bucket_name(stats: &Stats, t: usize) -> String {
    match stats.bucket_s {
        0 | 1 => format!("second {t}"),
        w => format!("the {w} s from {}s", start_s(stats, t)),
    }
}

/// The first timeline bucket in which `endpoint` had significant check
/// failures.
fn check_failures_began(stats: &Stats, endpoint: &str) -> Option<usize> {
    let ep = stats.endpoints.iter().find(|e| e.name == endpoint)?;
    ep.seconds.iter().position(|&[requests, _, failed]| {
        failed >= SIGNIFICANT_ERRORS && failed as f64 >= SIGNIFICANT_SHARE * requests as f64
    })
}

/// ", beginning at 12s at 200 arrivals/s offered", when known.
fn began_text(t: Option<usize>, stats: &Stats, shape: &LoadShape) -> String {
    t.map_or(String::new(), |t| {
        format!(
            ", beginning at {}s at {}",
            start_s(stats, t),
            shape.describe(t, stats)
        )
    })
}

fn stale_reads(stats: &Stats, shape: &LoadShape, out: &mut Vec<Finding>) {
    for c in stats.checks.iter().filter(|c| c.reads_back && c.failed > 0) {
        let n = c.passed + c.failed;
        let (lo, hi) = wilson(c.failed, n);
        let began = check_failures_began(stats, &c.endpoint);
        out.push(Finding {
            kind: "stale_reads".into(),
            severity: Severity::Critical,
            what: format!(
                "stale reads: {} of reads did not show the value just written{}",
                percent(c.failed as f64 / n.max(1) as f64),
                began_text(began, stats, shape)
            ),
            location: Some(if c.endpoint.is_empty() {
                c.name.clone()
            } else {
                c.endpoint.clone()
            }),
            at_s: began.map(|t| start_s(stats, t) as f64),
            evidence: format!(
                "check {:?} failed {} of {n} times (95% CI {} to {}): a read right after a write returned older data, as behind a lagging replica or cache",
                c.name,
                c.failed,
                percent(lo),
                percent(hi)
            ),
            server: None,
        });
    }
}

/// Responses a load band needs before its p99 is trusted.
pub const BAND_MIN_RESPONSES: u64 = 50;
/// A bottleneck's p99 grows at least this many times...
pub const BOTTLENECK_RATIO: f64 = 3.0;
/// ...and by at least this much, in ms (a user would notice).
pub const BOTTLENECK_ADDED_MS: f64 = 20.0;

/// How one endpoint's p99 changed from the lowest to the highest load band.
struct Growth {
    name: String,
    /// The lowest and highest load bands with enough responses.
    bands: (usize, usize),
    low_p99: f64,
    high_p99: f64,
    /// The band where p99 first exceeded twice the lowest band's.
    doubled_at: Option<usize>,
}

fn bottleneck(stats: &Stats, shape: &LoadShape, out: &mut Vec<Finding>) {
    let peak = shape.peak;
    if peak <= 0.0 {
        return;
    }
    // The mean planned level of the seconds in each band, to name loads.
    let mut sums = [(0.0, 0u32); LOAD_BANDS];
    for &l in &shape.level {
        let b = load_band(l, peak);
        sums[b].0 += l;
        sums[b].1 += 1;
    }
    let level_of = |b: usize| sums[b].0 / f64::from(sums[b].1.max(1));
    let unit = if shape.closed { "users" } else { "arrivals/s" };

    let mut growth: Vec<Growth> = Vec::new();
    for ep in &stats.endpoints {
        let bands: Vec<(usize, f64)> = ep
            .by_load
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count() >= BAND_MIN_RESPONSES)
            .map(|(b, h)| (b, h.quantile_ms(0.99)))
            .collect();
        let (Some(&(low_band, low)), Some(&(high_band, high))) = (bands.first(), bands.last())
        else {
            continue;
        };
        if low_band == high_band {
            continue;
        }
        growth.push(Growth {
            name: ep.name.clone(),
            bands: (low_band, high_band),
            low_p99: low,
            high_p99: high,
            doubled_at: bands.iter().find(|(_, p)| *p > 2.0 * low).map(|(b, _)| *b),
        });
    }
    // The endpoint whose p99 grew by the most milliseconds: under a shared
    // queue every endpoint waits longer, but the one whose own cost grows
    // adds the most.
    growth.sort_by(|a, b| (b.high_p99 - b.low_p99).total_cmp(&(a.high_p99 - a.low_p99)));
    let Some(top) = growth.first() else { return };
    let ratio = top.high_p99 / top.low_p99.max(0.001);
    if ratio < BOTTLENECK_RATIO || top.high_p99 - top.low_p99 < BOTTLENECK_ADDED_MS {
        return;
    }
    let others = growth[1..]
        .iter()
        .map(|g| g.high_p99 - g.low_p99)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    let (low_band, high_band) = top.bands;
    let others_text = match others {
        Some(added) => format!(
            "; other endpoints' p99 rose by at most {}ms",
            num(added.max(0.0))
        ),
        None => String::new(),
    };
    let doubled = top
        .doubled_at
        .map(|b| format!("; it first doubled at about {} {unit}", num(level_of(b))))
        .unwrap_or_default();
    out.push(Finding {
        kind: "bottleneck".into(),
        severity: Severity::Warning,
        what: format!(
            "{} p99 rose {}x, from {}ms to {}ms, between {} and {} {unit}{others_text}",
            top.name,
            num(ratio),
            num(top.low_p99),
            num(top.high_p99),
            num(level_of(low_band)),
            num(level_of(high_band)),
        ),
        location: Some(top.name.clone()),
        at_s: top.doubled_at.and_then(|b| {
            shape
                .level
                .iter()
                .position(|&l| load_band(l, peak) >= b)
                .map(|t| start_s(stats, t) as f64)
        }),
        evidence: format!(
            "per-endpoint p99 by planned load, in {LOAD_BANDS} bands of the peak, from the lowest and highest bands with at least {BAND_MIN_RESPONSES} responses{doubled}"
        ),
        server: None,
    });
}

/// An asset is flagged when at least this share of its responses could not
/// be cached for a day.
pub const CACHING_SHARE: f64 = 0.5;

/// Whether an asset's responses were too often not cacheable for a day.
fn cache_problem(ep: &EndpointStats) -> bool {
    ep.cache
        .as_ref()
        .filter(|c| c.responses > 0)
        .is_some_and(|c| {
            (c.missing + c.uncacheable + c.short) as f64 >= CACHING_SHARE * c.responses as f64
        })
}

fn caching(stats: &Stats, out: &mut Vec<Finding>) {
    let mut fine = Vec::new();
    for ep in &stats.endpoints {
        let Some(c) = ep.cache.as_ref().filter(|c| c.responses > 0) else {
            continue;
        };
        // The scenario's own checks of this asset's caching headers,
        // which failed: the same problem, said once, here.
        let checked: Vec<String> = stats
            .checks
            .iter()
            .filter(|k| k.endpoint == ep.name && k.failed > 0 && about_caching(k, ep))
            .map(|k| {
                format!(
                    "; the check {:?} failed on {} of {} responses",
                    k.name,
                    k.failed,
                    k.passed + k.failed
                )
            })
            .collect();
        let hit_ratio = (c.hits + c.misses > 0).then(|| {
            format!(
                "; edge cache hit ratio {} ({} of {} with X-Cache)",
                percent(c.hits as f64 / (c.hits + c.misses) as f64),
                c.hits,
                c.hits + c.misses
            )
        });
        let bad = c.missing + c.uncacheable + c.short;
        if (bad as f64) < CACHING_SHARE * c.responses as f64 {
            fine.push(format!("{}{}", ep.name, hit_ratio.unwrap_or_default()));
            continue;
        }
        let mut how = Vec::new();
        if c.uncacheable > 0 {
            how.push(format!(
                "{} uncacheable (no-store, no-cache, private or max-age=0)",
                c.uncacheable
            ));
        }
        if c.short > 0 {
            how.push(format!(
                "{} with max-age under a day (shortest {}s)",
                c.short,
                c.min_max_age_s.unwrap_or(0)
            ));
        }
        if c.missing > 0 {
            how.push(format!("{} without Cache-Control", c.missing));
        }
        out.push(Finding {
            kind: "caching".into(),
            severity: Severity::Warning,
            what: format!(
                "{}: a static asset not cacheable for a day in {} of responses, so browsers and CDNs fetch it again and again",
                ep.name,
                percent(bad as f64 / c.responses as f64)
            ),
            location: Some(ep.name.clone()),
            at_s: None,
            evidence: format!(
                "of {} responses: {}{}{}",
                c.responses,
                how.join(", "),
                hit_ratio.unwrap_or_default(),
                checked.concat()
            ),
            server: None,
        });
    }
    if !fine.is_empty() {
        out.push(Finding {
            kind: "caching_ok".into(),
            severity: Severity::Info,
            what: format!("{} static asset(s) cacheable for a day or more", fine.len()),
            location: None,
            at_s: None,
            evidence: fine.join("; "),
            server: None,
        });
    }
}

/// A recording's replay whose responses' statuses differ from the
/// recorded ones, per endpoint: a staging copy that answers 500 where
/// production answered 200 fails where the recording did not (I3).
/// Critical when a recorded success became a failure (a 4xx or 5xx, or
/// no response); a warning otherwise (a recorded error that now
/// succeeds, a 200 that became a redirect). Info when nothing differed.
fn replay_differs(stats: &Stats, out: &mut Vec<Finding>) {
    let mut same = Vec::new();
    for ep in &stats.endpoints {
        let Some(d) = &ep.replay else { continue };
        let differ = d.differing();
        if differ == 0 && d.size_differ == 0 {
            same.push(ep.name.as_str());
            continue;
        }
        if differ == 0 {
            let (recorded, replayed) = d.size_example.unwrap_or_default();
            out.push(Finding {
                kind: "replay_differs".into(),
                severity: Severity::Warning,
                what: format!(
                    "{}: {} of {} replayed responses had the recorded status but a body of another size",
                    ep.name, d.size_differ, d.compared
                ),
                location: Some(ep.name.clone()),
                at_s: None,
                evidence: format!(
                    "a size differs when one is empty and the other not, or one is more than \
                     twice the other; the first: {recorded} bytes recorded, {replayed} replayed"
                ),
                server: None,
            });
            continue;
        }
        let broke = d
            .differ
            .iter()
            .any(|&(recorded, replayed, _)| recorded < 400 && (replayed >= 400 || replayed == 0));
        let mut pairs: Vec<&(u16, u16, u64)> = d.differ.iter().collect();
        pairs.sort_by_key(|p| std::cmp::Reverse(p.2));
        let shown: Vec<String> = pairs
            .iter()
            .take(4)
            .map(|&&(a, b, n)| {
                let b = if b == 0 {
                    "no response".to_string()
                } else {
                    b.to_string()
                };
                format!("{n} answered {b} where the recording had {a}")
            })
            .collect();
        let mut shown = shown;
        if d.size_differ > 0 {
            shown.push(format!(
                "{} more had the recorded status but a body of another size",
                d.size_differ
            ));
        }
        out.push(Finding {
            kind: "replay_differs".into(),
            severity: if broke {
                Severity::Critical
            } else {
                Severity::Warning
            },
            what: format!(
                "{}: {} of {} replayed requests got another status than recorded",
                ep.name, differ, d.compared
            ),
            location: Some(ep.name.clone()),
            at_s: None,
            evidence: shown.join("; "),
            server: None,
        });
    }
    if !same.is_empty() {
        let compared: u64 = stats
            .endpoints
            .iter()
            .filter_map(|e| e.replay.as_ref())
            .filter(|d| d.differing() == 0 && d.size_differ == 0)
            .map(|d| d.compared)
            .sum();
        out.push(Finding {
            kind: "replay_same".into(),
            severity: Severity::Info,
            what: format!(
                "{} endpoint(s) answered every replayed request with the recorded status",
                same.len()
            ),
            location: None,
            at_s: None,
            evidence: format!("{compared} requests compared: {}", same.join(", ")),
            server: None,
        });
    }
}
