//! `throng merge`: the results files of a run's segments (`--segment K/N`)
//! become one results file, as if one machine had run the whole load.
//!
//! Nothing is averaged: the raw state of every segment (counters, HDR
//! histograms, per-second timelines, windows) is added exactly, and
//! everything people read (percentiles, thresholds, findings) is derived
//! again from the sum by [`Results::new`], the same code a single run
//! uses. Timelines add second by second, so the segments must have
//! started together (`--start-at`); the binary checks that, since only it
//! reads clocks.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::results::{Coverage, Results, RunInfo, Status};

/// The files cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no results files to merge")]
    Empty,
    /// A file that is not a segment's.
    #[error("{0} is not a segment's results (run each worker with --segment K/N)")]
    NotSegment(String),
    /// Files from runs split differently.
    #[error("{first} is segment {first_label} and {other} is {other_label}: they are not segments of one run")]
    Split {
        /// One file.
        first: String,
        /// Its segment.
        first_label: String,
        /// Another.
        other: String,
        /// Its segment.
        other_label: String,
    },
    /// The same segment twice.
    #[error("segment {index} is in both {first} and {other}: give each segment's file once")]
    Twice {
        /// The segment.
        index: usize,
        /// One file.
        first: String,
        /// The other.
        other: String,
    },
    /// Segments of different scenarios or targets.
    #[error("{first} and {other} ran different {what} ({a:?} and {b:?}): they are not segments of one run")]
    Differ {
        /// One file.
        first: String,
        /// Another.
        other: String,
        /// What differs.
        what: &'static str,
        /// The first's.
        a: String,
        /// The other's.
        b: String,
    },
    /// A threshold in the files does not parse (a hand-edited file).
    #[error("{0}")]
    Threshold(String),
}

/// Merges segments' results (`(name, results)`, name for messages) into
/// the results of the whole run; `command` is the merge's command line.
/// Missing segments are allowed: the result's `coverage` says what it
/// holds.
pub fn merge(files: Vec<(String, Results)>, command: String) -> Result<Results, MergeError> {
    let Some((first_name, first)) = files.first() else {
        return Err(MergeError::Empty);
    };
    let seg = |name: &str, r: &Results| {
        r.segment
            .ok_or_else(|| MergeError::NotSegment(name.to_string()))
    };
    let first_seg = seg(first_name, first)?;
    let count = first_seg.count;
    let mut by_index: BTreeMap<usize, (&str, &Results)> = BTreeMap::new();
    for (name, r) in &files {
        let s = seg(name, r)?;
        if s.count != count {
            return Err(MergeError::Split {
                first: first_name.clone(),
                first_label: format!("{}/{}", first_seg.index, count),
                other: name.clone(),
                other_label: format!("{}/{}", s.index, s.count),
            });
        }
        for (what, a, b) in [
            ("targets", &first.target, &r.target),
            ("models", &first.model, &r.model),
        ] {
            if a != b {
                return Err(MergeError::Differ {
                    first: first_name.clone(),
                    other: name.clone(),
                    what,
                    a: a.clone(),
                    b: b.clone(),
                });
            }
        }
        if let Some((other, _)) = by_index.insert(s.index, (name, r)) {
            return Err(MergeError::Twice {
                index: s.index,
                first: other.to_string(),
                other: name.clone(),
            });
        }
    }

    let mut parts = by_index.values().map(|(_, r)| *r);
    let Some(head) = parts.next() else {
        return Err(MergeError::Empty);
    };
    let mut stats = head.raw.clone();
    let mut duration = head.duration_s;
    let mut first_errors = head.error_examples.clone();
    let mut stop_reason = head.stop_reason.clone();
    let mut status = head.status;
    let mut workers = head.load.workers;
    for r in parts {
        stats.merge(&r.raw);
        duration = duration.max(r.duration_s);
        for (kind, msg) in &r.error_examples {
            first_errors
                .entry(kind.clone())
                .or_insert_with(|| msg.clone());
        }
        if stop_reason.is_none() {
            stop_reason.clone_from(&r.stop_reason);
        }
        status = worse(status, r.status);
        workers += r.load.workers;
    }
    let coverage = coverage(&by_index, count, head.load.duration_s);
    let mut load = head.load.whole(count);
    load.workers = workers;
    let duration = Duration::from_secs_f64(duration.max(0.0));
    let thresholds = head
        .thresholds
        .iter()
        .map(|row| {
            analysis::Threshold::parse(&row.expr).map_err(|e| MergeError::Threshold(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let info = RunInfo {
        command,
        target: head.target.clone(),
        model: head.model.clone(),
        load,
        started_at: head.started_at.clone(),
        duration,
        status,
        first_errors,
        stop_reason,
        recovery: head.recovery.as_ref().map(|r| r.check),
        segment: None,
        coverage: Some(coverage),
        // Segments that watched the target watched the same one: the
        // first one's readings stand for all.
        server: files.iter().find_map(|(_, r)| r.server.clone()),
    };
    Ok(Results::judged(info, stats, &thresholds))
}

/// The more serious of two endings.
fn worse(a: Status, b: Status) -> Status {
    let rank = |s| match s {
        Status::Completed => 0,
        Status::Aborted => 1,
        Status::Interrupted => 2,
        Status::Running => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn coverage(
    present: &BTreeMap<usize, (&str, &Results)>,
    count: usize,
    planned_s: Option<f64>,
) -> Coverage {
    let missing: Vec<usize> = (0..count).filter(|i| !present.contains_key(i)).collect();
    let incomplete: Vec<usize> = present
        .iter()
        .filter(|(_, (_, r))| r.status != Status::Completed)
        .map(|(i, _)| *i)
        .collect();
    let each = 1.0 / count.max(1) as f64;
    let fraction: f64 = present
        .values()
        .map(|(_, r)| match (r.status, planned_s) {
            (Status::Completed, _) => each,
            (_, Some(p)) if p > 0.0 => each * (r.duration_s / p).clamp(0.0, 1.0),
            _ => 0.0,
        })
        .sum();
    let list = |v: &[usize]| {
        let names: Vec<String> = v.iter().map(usize::to_string).collect();
        let noun = if v.len() == 1 { "segment" } else { "segments" };
        format!("{noun} {}", names.join(", "))
    };
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("{} missing", list(&missing)));
    }
    if !incomplete.is_empty() {
        why.push(format!("{} stopped early", list(&incomplete)));
    }
    let text = if why.is_empty() && present.len() == count {
        format!("{count}/{count} segments; results cover the whole planned load")
    } else {
        format!(
            "{}/{count} segments; results cover {:.1}% of the planned load ({})",
            present.len(),
            fraction * 100.0,
            why.join("; ")
        )
    };
    Coverage {
        segments: present.len(),
        of: count,
        missing,
        incomplete,
        fraction,
        text,
    }
}
