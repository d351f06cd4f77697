//! Findings: what broke, where, when, and at what load, in plain words,
//! each with a stable `kind` id and the evidence it rests on.
//!
//! Kinds so far (each pinned by a test in `tests.rs` and against the lab):
//! - `errors_began`: an error kind (transport or status; wrong content has
//!   its own) first became significant (at least
//!   [`SIGNIFICANT_ERRORS`] errors and [`SIGNIFICANT_SHARE`] of a second's
//!   requests), with the offered load and concurrency at that second;
//! - `wrong_content`: responses of an endpoint that failed a content
//!   check, with a 95% Wilson interval;
//! - `content_ok`: endpoints whose checks never failed, with the upper
//!   bound of their failure rate (one-sided 95%, "below 0.15%");
//! - `stale_reads`: read-your-writes checks that failed;
//! - `generator_saturation`: the generator, not the target, was the limit.

use serde::{Deserialize, Serialize};
use stats::{ErrorKind, Stats};

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
}

/// The planned load, per second, for saying at what load something began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadShape {
    /// Closed model (levels are users) or open (levels are arrivals/s).
    pub closed: bool,
    /// The planned level at the start of each second.
    pub level: Vec<f64>,
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
            let mean_s = b.latency.inner().mean() / 1e6;
            b.counts.requests as f64 * mean_s
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

/// Everything the statistics show, most severe first.
pub fn findings(stats: &Stats, shape: &LoadShape) -> Vec<Finding> {
    let mut out = Vec::new();
    errors_began(stats, shape, &mut out);
    content(stats, &mut out);
    stale_reads(stats, &mut out);
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
        });
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
            "{n} of {} requests due in second {t} failed with {}; {} in the whole run ({})",
            b.counts.requests,
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
                "{} errors began at {t}s, at {}",
                kind.as_str(),
                shape.describe(t, stats)
            ),
            location: Some(kind.as_str().into()),
            at_s: Some(t as f64),
            evidence,
        });
    }
}

fn content(stats: &Stats, out: &mut Vec<Finding>) {
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
        let (lo, hi) = wilson(k, n);
        let failing: Vec<&str> = checks
            .iter()
            .filter(|c| c.failed > 0 && !c.reads_back)
            .map(|c| c.name.as_str())
            .collect();
        out.push(Finding {
            kind: "wrong_content".into(),
            severity: if lo >= 0.01 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            what: format!(
                "{}: {} of responses showed the wrong content",
                ep.name,
                percent(k as f64 / n.max(1) as f64)
            ),
            location: Some(ep.name.clone()),
            at_s: first_check_failure(stats),
            evidence: format!(
                "{k} of {n} responses failed a content check (95% CI {} to {}); failing: {}",
                percent(lo),
                percent(hi),
                failing.join(", ")
            ),
        });
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
        });
    }
}

fn first_check_failure(stats: &Stats) -> Option<f64> {
    stats
        .timeline
        .iter()
        .position(|b| b.counts.check_failures > 0)
        .map(|t| t as f64)
}

fn stale_reads(stats: &Stats, out: &mut Vec<Finding>) {
    for c in stats.checks.iter().filter(|c| c.reads_back && c.failed > 0) {
        let n = c.passed + c.failed;
        let (lo, hi) = wilson(c.failed, n);
        out.push(Finding {
            kind: "stale_reads".into(),
            severity: Severity::Critical,
            what: format!(
                "stale reads: {} of reads did not show the value just written",
                percent(c.failed as f64 / n.max(1) as f64)
            ),
            location: Some(if c.endpoint.is_empty() {
                c.name.clone()
            } else {
                c.endpoint.clone()
            }),
            at_s: first_check_failure(stats),
            evidence: format!(
                "check {:?} failed {} of {n} times (95% CI {} to {}): a read right after a write returned older data, as behind a lagging replica or cache",
                c.name,
                c.failed,
                percent(lo),
                percent(hi)
            ),
        });
    }
}
