//! `throng compare`: two results files in, a verdict per endpoint out.

use std::path::Path;

use analysis::CompareOptions;
use anyhow::{anyhow, Context};
use report::{CompareReport, Results, Side};

use crate::args::{CompareArgs, CompareFormat};
use crate::{exit, Failure};

/// A share as `10%` or `0.1`.
pub fn share(text: &str) -> Option<f64> {
    plan::parse_percent(text).or_else(|| text.trim().parse().ok())
}

/// Parses a tolerance: `10%` or `0.1`, below 1.
pub fn parse_tolerance(text: &str) -> Result<f64, Failure> {
    match share(text) {
        Some(v) if v.is_finite() && (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(Failure::usage(anyhow!(
            "--tolerance {text:?}: give a percentage below 100%, such as 10% or 0.1"
        ))),
    }
}

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
    let tolerance = parse_tolerance(&args.tolerance)?;
    let base = read_results(&args.base, "baseline")?;
    let cand = read_results(&args.cand, "candidate")?;
    // The two arms of one A/B run (same start, same command) ran
    // interleaved: their windows pair up.
    let paired = base.started_at == cand.started_at && base.command == cand.command;
    let opts = CompareOptions {
        tolerance,
        paired,
        ..CompareOptions::default()
    };
    let comparison = analysis::compare_runs(&base.raw, &cand.raw, &opts);
    let report = CompareReport::new(
        Side::of(&args.base.display().to_string(), &base),
        Side::of(&args.cand.display().to_string(), &cand),
        comparison,
    );
    print!(
        "{}",
        match args.format {
            CompareFormat::Text => report.to_text(),
            CompareFormat::Json => report.to_json() + "\n",
            CompareFormat::Markdown => report.to_markdown(),
        }
    );
    if let Some(out) = &args.out {
        crate::run::write_out_quietly(out, &report.to_json())?;
    }
    if let Some(path) = &args.report {
        crate::run::write_out_quietly(path, &report.to_html())?;
        eprintln!("report written to {}", path.display());
    }
    Ok(if report.regressed() {
        exit::THRESHOLD
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_read_as_percent_or_fraction() {
        assert_eq!(parse_tolerance("10%").ok(), Some(0.1));
        assert_eq!(parse_tolerance(" 2.5 % ").ok(), Some(0.025));
        assert_eq!(parse_tolerance("0.2").ok(), Some(0.2));
        for bad in ["", "ten", "150%", "-1%", "1"] {
            assert!(parse_tolerance(bad).is_err(), "{bad:?}");
        }
    }
}
