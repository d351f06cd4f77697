//! `throng merge`: the segments' results files in (named, or found in a
//! directory, waited for if asked), one results file out. The merging
//! itself is `report::merge`; this reads, waits, checks the segments
//! started together, and writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use report::Results;

use crate::args::MergeArgs;
use crate::{exit, output, spec, Failure};

/// Segments whose start times differ by more than this are refused: their
/// timelines would add up seconds that were not the same second.
const START_SPREAD: Duration = Duration::from_secs(1);

pub fn merge(a: &MergeArgs) -> Result<u8, Failure> {
    output::check_dir("--out", a.out.as_deref())?;
    output::check_export_dirs(&a.exports)?;
    let deadline = Instant::now() + a.wait.unwrap_or_default();
    let mut shown: Option<Instant> = None;
    let files = loop {
        let files = read_inputs(a)?;
        let expected = a
            .expect
            .or_else(|| files.first().and_then(|(_, r)| r.segment).map(|s| s.count));
        let have: BTreeSet<usize> = files
            .iter()
            .filter_map(|(_, r)| r.segment.map(|s| s.index))
            .collect();
        let complete = expected.is_some_and(|n| have.len() >= n);
        if complete || Instant::now() >= deadline {
            if let (Some(n), Some(count)) = (a.expect, files.first().and_then(|(_, r)| r.segment)) {
                if n != count.count {
                    return Err(Failure::usage(anyhow!(
                        "--expect {n}, but the files are segments of {}",
                        count.count
                    )));
                }
            }
            break files;
        }
        if shown.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            shown = Some(Instant::now());
            let left = deadline.saturating_duration_since(Instant::now());
            eprintln!(
                "waiting for segments: {} of {} here; giving up in {}",
                have.len(),
                expected.map_or("?".to_string(), |n| n.to_string()),
                plan::format_duration(Duration::from_secs(left.as_secs()))
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    check_starts(&files)?;
    let merged = report::merge(files, spec::redacted_command()).map_err(Failure::usage)?;
    let coverage = merged.coverage.clone();
    say_part!("{}", report::summary(&merged));
    if let Some(c) = &coverage {
        say!("\n  coverage: {}", c.text);
    }
    if let Some(out) = &a.out {
        output::write(out, &merged.to_json())?;
    }
    output::write_exports(&a.exports, &merged)?;
    let complete = coverage.as_ref().is_none_or(report::Coverage::complete);
    Ok(if merged.passed() && complete {
        exit::OK
    } else {
        exit::THRESHOLD
    })
}

/// Every results file named, or found in a named directory (its `*.json`
/// files that are segments' results; others, a merge's own output among
/// them, are passed over).
fn read_inputs(a: &MergeArgs) -> Result<Vec<(String, Results)>, Failure> {
    let mut files = Vec::new();
    for input in &a.inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| Failure::usage(anyhow!("cannot read {}: {e}", input.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "json")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                        && Some(p.as_path()) != a.out.as_deref()
                })
                .collect();
            found.sort();
            for path in found {
                if let Ok(r) = read(&path) {
                    if r.segment.is_some() {
                        files.push((path.display().to_string(), r));
                    }
                }
            }
        } else {
            let r = read(input).map_err(Failure::usage)?;
            files.push((input.display().to_string(), r));
        }
    }
    Ok(files)
}

fn read(path: &Path) -> anyhow::Result<Results> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    Results::from_json(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// The segments must have started together, or their seconds do not line up.
fn check_starts(files: &[(String, Results)]) -> Result<(), Failure> {
    let mut starts = Vec::new();
    for (name, r) in files {
        let at = humantime::parse_rfc3339_weak(&r.started_at)
            .map_err(|e| Failure::usage(anyhow!("{name}: started_at {:?}: {e}", r.started_at)))?;
        starts.push((name, at));
    }
    let earliest = starts.iter().min_by_key(|s| s.1);
    let latest = starts.iter().max_by_key(|s| s.1);
    if let (Some((a, t0)), Some((b, t1))) = (earliest, latest) {
        let spread = t1.duration_since(*t0).unwrap_or_default();
        if spread > START_SPREAD {
            return Err(Failure::usage(anyhow!(
                "{a} and {b} started {:.1} s apart, so their seconds do not line up: \
                 start every segment with one --start-at (or --start-file)",
                spread.as_secs_f64()
            )));
        }
    }
    Ok(())
}
