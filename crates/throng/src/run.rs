//! `throng run`: arguments to a [`RunSpec`], the controller drives it, and
//! the ending: the summary, the results file, the exports and the exit
//! code (an A/B run's two arms and their comparison, too).

use anyhow::anyhow;
use report::{Results, RunInfo};
use stats::Stats;

use crate::args::RunArgs;
use crate::controller::{self, Outcome};
use crate::output;
use crate::spec::{self, RunSpec};
use crate::Failure;

/// `throng run`.
pub fn run(args: RunArgs) -> Result<u8, Failure> {
    let spec = spec::prepare(&args)?;
    execute(spec)
}

/// Runs `spec` and ends it as `throng run` does: what the demo and replay
/// do too.
pub fn execute(mut spec: RunSpec) -> Result<u8, Failure> {
    spec.outputs.check()?;
    let outcome = controller::runtime()?.block_on(controller::drive(&mut spec))?;
    finish(&spec, outcome)
}

/// The ending of a run: summary, results, exports, exit code.
fn finish(spec: &RunSpec, outcome: Outcome) -> Result<u8, Failure> {
    let info = outcome.info(spec);
    let Outcome { merged, ending, .. } = outcome;
    let stop_reason = &ending.stop_reason;
    let stats = merged.stats;
    if !spec.plan.ab.is_empty() {
        let arms = std::iter::once(stats).chain(merged.other_arms).collect();
        let held = report_ab(spec, info, arms)?;
        if let Some(reason) = stop_reason {
            eprintln!("error: the load stopped early: {reason}");
        }
        return Ok(ending.code(held));
    }
    let results = Results::judged(info, stats, &spec.judging.thresholds);
    say_part!("{}", report::summary(&results));
    if let Some(out) = &spec.outputs.out {
        output::write(out, &results.to_json())?;
    }
    output::write_exports(&spec.outputs.exports, &results)?;
    if let Some(reason) = stop_reason {
        eprintln!("error: the load stopped early: {reason}");
    }
    let segment = spec.plan.segment;
    if !segment.is_whole() {
        // One segment's share cannot pass or fail a threshold set for the
        // whole run (a rate, say): `throng merge` judges them.
        if !spec.outputs.quiet {
            eprintln!(
                "segment {}: thresholds are judged on the whole run by throng merge",
                segment.label()
            );
        }
        return Ok(ending.code(true));
    }
    Ok(ending.code(results.passed()))
}

/// An A/B run's ending: each arm's summary and results, then their
/// comparison (windows paired, since the arms ran interleaved). Returns
/// whether every threshold held in every arm and no endpoint regressed.
fn report_ab(spec: &RunSpec, info: RunInfo, arms: Vec<Stats>) -> Result<bool, Failure> {
    let plan = &spec.plan;
    let mut results = Vec::new();
    for (arm, stats) in plan.ab.iter().zip(arms) {
        let mut info = info.clone();
        info.target = arm.target.url();
        info.load = info.load.share(plan.ab.len());
        let r = Results::judged(info, stats, &spec.judging.thresholds);
        say!("== {} ==", arm.name);
        say!("{}", report::summary(&r));
        results.push((arm.name.as_str(), r));
    }
    let [(base_name, base), (cand_name, cand)] = &results[..] else {
        return Err(Failure::usage(anyhow!("an A/B run has two arms")));
    };
    let opts = analysis::CompareOptions {
        tolerance: spec.judging.tolerance,
        paired: true,
        ..analysis::CompareOptions::default()
    };
    let comparison = analysis::compare_runs(&[&base.raw], &cand.raw, &opts);
    let compared = report::CompareReport::new(
        report::Side::of(base_name, base),
        report::Side::of(cand_name, cand),
        comparison,
    );
    say!("== side by side ==");
    say!(
        "{}",
        report::side_by_side(&[(base_name, base), (cand_name, cand)])
    );
    say!("== {cand_name} against {base_name} ==");
    say_part!("{}", compared.to_text());
    let outputs = &spec.outputs;
    if let Some(out) = &outputs.out {
        for (name, r) in &results {
            output::write(&output::beside(out, name), &r.to_json())?;
        }
        output::write(&output::beside(out, "compare"), &compared.to_json())?;
    }
    if let Some(path) = &outputs.exports.report {
        output::write_said(
            &output::beside(path, "compare"),
            "report",
            &compared.to_html(),
        )?;
    }
    for (name, r) in &results {
        output::write_exports(&output::exports_beside(&outputs.exports, name), r)?;
    }
    let held = results.iter().all(|(_, r)| r.passed());
    Ok(held && !compared.regressed())
}
