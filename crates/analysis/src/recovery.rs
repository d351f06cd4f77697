//! The recovery check for metastable failures: after a trigger (a spike,
//! a fault) has ended, did goodput come back to its level before it, and
//! how long did that take?
//!
//! A system in a metastable failure stays down after its trigger is gone,
//! held there by the load its own failure creates (retries, work for
//! clients who left). Its status codes during the trigger look like any
//! overload; what tells it apart is what happens after.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use stats::Stats;

/// What a scenario asks of the recovery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecoveryCheck {
    /// When the trigger starts, from the run start, in seconds.
    pub from_s: f64,
    /// When it ends.
    pub to_s: f64,
    /// How far below its level before the trigger goodput may stay, as a
    /// fraction (0.1: within 10%).
    pub within: f64,
    /// How long after the trigger's end goodput must be back; `None`: by
    /// the end of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_s: Option<f64>,
}

/// The verdict of a recovery check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// What was asked.
    pub check: RecoveryCheck,
    /// Goodput per second before the trigger (the mean over its whole
    /// seconds).
    pub baseline_per_s: f64,
    /// The level goodput had to come back to: `(1 - within) x baseline`.
    pub floor_per_s: f64,
    /// Whether goodput came back to the floor and stayed there to the end
    /// of the load (and, with `by_s`, soon enough).
    pub ok: bool,
    /// The first second from which goodput stayed at or above the floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at_s: Option<f64>,
    /// From the trigger's end to `recovered_at_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_s: Option<f64>,
    /// Goodput in each second from the trigger's start to the end of the load.
    pub goodput_per_s: Vec<u64>,
    /// The verdict in words.
    pub what: String,
}

/// Goodput per second of due time: requests that succeeded within their
/// deadline. Without retries, every success is within its deadline (the
/// timeout bounds it), so it is requests minus failures. In a run longer
/// than an hour, whose timeline buckets are `bucket_s` seconds, each second
/// gets its bucket's mean (rounded down).
pub fn goodput_per_second(stats: &Stats) -> Vec<u64> {
    let buckets: Vec<u64> = match &stats.retries {
        Some(r) => r.seconds.iter().map(|s| s[2]).collect(),
        None => stats
            .timeline
            .iter()
            .map(|b| b.counts.requests.saturating_sub(b.counts.failed()))
            .collect(),
    };
    let w = stats.bucket_s.max(1);
    buckets
        .into_iter()
        .flat_map(|n| std::iter::repeat_n(n / w, w as usize))
        .collect()
}

/// Judges `check` on a run whose load lasted `load`. A run with no whole
/// second before the trigger or none after it (one stopped early) fails
/// the check, saying why.
pub fn recovery(stats: &Stats, check: &RecoveryCheck, load: Duration) -> Recovery {
    let good = goodput_per_second(stats);
    let at = |t: usize| good.get(t).copied().unwrap_or(0);
    let before = check.from_s.floor() as usize;
    let after = check.to_s.ceil() as usize;
    let end = load.as_secs() as usize;
    let unjudged = |why: String| Recovery {
        check: *check,
        baseline_per_s: 0.0,
        floor_per_s: 0.0,
        ok: false,
        recovered_at_s: None,
        took_s: None,
        goodput_per_s: Vec::new(),
        what: format!("recovery not judged: {why}"),
    };
    if before == 0 {
        return unjudged(
            "the trigger starts in the first second, so there is no level before it to recover to"
                .into(),
        );
    }
    if after >= end {
        return unjudged(format!(
            "the load ended at {:.1}s, before a whole second after the trigger (which ends at {}s)",
            load.as_secs_f64(),
            check.to_s
        ));
    }
    let baseline = (0..before).map(at).sum::<u64>() as f64 / before as f64;
    if baseline == 0.0 {
        return unjudged(
            "nothing succeeded before the trigger, so there is no level to recover to".into(),
        );
    }
    let floor = (1.0 - check.within) * baseline;
    // The first second from which goodput stayed at or above the floor.
    let mut recovered = None;
    for t in (after..end).rev() {
        if (at(t) as f64) < floor {
            break;
        }
        recovered = Some(t);
    }
    let took = recovered.map(|t| (t as f64 - check.to_s).max(0.0));
    let ok = match (took, check.by_s) {
        (None, _) => false,
        (Some(took), Some(by)) => took <= by,
        (Some(_), None) => true,
    };
    let pct = (1.0 - check.within) * 100.0;
    let what = match took {
        Some(took) => format!(
            "goodput came back to {floor:.1}/s ({pct:.0}% of the {baseline:.1}/s before the trigger) {took:.1}s after the trigger ended{}",
            match (ok, check.by_s) {
                (false, Some(by)) => format!(", later than the {by:.1}s allowed"),
                _ => String::new(),
            }
        ),
        None => format!(
            "goodput never came back to {floor:.1}/s ({pct:.0}% of the {baseline:.1}/s before the trigger) in the {}s after the trigger ended: {}/s in the last second",
            end as f64 - check.to_s,
            at(end - 1)
        ),
    };
    Recovery {
        check: *check,
        baseline_per_s: baseline,
        floor_per_s: floor,
        ok,
        recovered_at_s: recovered.map(|t| t as f64),
        took_s: took,
        goodput_per_s: (before..end).map(at).collect(),
        what,
    }
}
