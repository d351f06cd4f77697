//! `throng compare`: two results files in, a verdict per endpoint out.

use std::path::Path;

use analysis::CompareOptions;
use anyhow::{anyhow, Context};
use report::{CompareReport, Results, Side};

use crate::args::{CompareArgs, CompareFormat};
use crate::{exit, Failure};

/// Reads a results file, saying which one could not be read.
fn read_results(path: &Path, role: &str) -> Result<Results, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {role} {}", path.display()))
        .map_err(Failure::usage)?;
    Results::from_json(&text)
        .with_context(|| format!("the {role} {}", path.display()))
        .map_err(Failure::usage)
}

pub fn compare(args: &CompareArgs) -> Result<u8, Failure> {
    let tolerance = args.tolerance;
    let min_change = plan::parse_duration(&args.min_change).map_err(|_| {
        Failure::usage(anyhow!(
            "--min-change {:?}: give a duration such as 0.25ms, or 0",
            args.min_change
        ))
    })?;
    let Some((cand_path, base_paths)) = args.runs.split_last() else {
        return Err(Failure::usage(anyhow!(
            "give the baseline's results file(s), then the candidate's"
        )));
    };
    let bases = base_paths
        .iter()
        .map(|p| read_results(p, "baseline"))
        .collect::<Result<Vec<_>, _>>()?;
    let cand = read_results(cand_path, "candidate")?;
    // The two arms of one A/B run (same start, same command) ran
    // interleaved: their windows pair up.
    let paired = match &bases[..] {
        [base] => base.started_at == cand.started_at && base.command == cand.command,
        _ => false,
    };
    let opts = CompareOptions {
        tolerance,
        min_change_ms: min_change.as_secs_f64() * 1000.0,
        paired,
        ..CompareOptions::default()
    };
    let raw: Vec<_> = bases.iter().map(|b| &b.raw).collect();
    let comparison = analysis::compare_runs(&raw, &cand.raw, &opts);
    let sides: Vec<Side> = base_paths
        .iter()
        .zip(&bases)
        .map(|(p, r)| Side::of(&p.display().to_string(), r))
        .collect();
    let report = CompareReport::with_baselines(
        sides,
        Side::of(&cand_path.display().to_string(), &cand),
        comparison,
    );
    say_part!(
        "{}",
        match args.format {
            CompareFormat::Text => report.to_text(),
            CompareFormat::Json => report.to_json() + "\n",
            CompareFormat::Markdown => report.to_markdown(),
        }
    );
    if let Some(out) = &args.out {
        crate::output::write_quietly(out, &report.to_json())?;
    }
    if let Some(path) = &args.report {
        crate::output::write_quietly(path, &report.to_html())?;
        eprintln!("report written to {}", path.display());
    }
    Ok(if report.regressed() {
        exit::THRESHOLD
    } else {
        exit::OK
    })
}
