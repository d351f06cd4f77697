//! The `throng` command: parses arguments, runs, and maps outcomes to exit
//! codes. The only crate that reads files, the environment or signals.

/// `println!` for what a command prints on stdout, where a closed stdout
/// (`throng run ... | head`) is not a panic: a run's results file and its
/// exit code must not depend on whether someone still reads its summary.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`say!`] without the newline (`print!`).
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod args;
mod capacity;
mod compare;
mod controller;
mod import;
mod kube;
mod lab;
mod merge;
mod output;
mod record;
mod replay;
mod run;
mod spec;
mod watch;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, documented in `throng --help` and the README.
pub mod exit {
    /// Every threshold held.
    pub const OK: u8 = 0;
    /// A threshold failed.
    pub const THRESHOLD: u8 = 1;
    /// Bad usage or configuration; nothing was started.
    pub const USAGE: u8 = 2;
    /// The run was interrupted or could not finish.
    pub const ABORTED: u8 = 3;
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What to tell the user.
    pub error: anyhow::Error,
}

impl Failure {
    /// A usage or configuration mistake (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: exit::USAGE,
            error: error.into(),
        }
    }
}

/// `throng validate`: compile the scenario, and say what would run.
fn validate(v: &args::ValidateArgs) -> Result<u8, Failure> {
    let file = spec::load_scenario(&v.scenario, v.target.clone())?;
    // Compiling checked the thresholds too, as `throng run` does.
    let (model, _) = file.compiled.load.build().map_err(Failure::usage)?;
    say_part!("{}", file.compiled.describe());
    let duration = model
        .profile()
        .duration()
        .map_or("until the request bound".to_string(), plan::format_duration);
    say!("  load: {} model, {duration}", model.name());
    if model.profile().stage_list().len() > 1 {
        let unit = match model {
            plan::Model::Open { .. } => "arrivals/s",
            plan::Model::Closed { .. } => "users",
        };
        say!("  shape ({unit}):");
        for line in model.profile().sketch(60, 6).lines() {
            say!("    {line}");
        }
    }
    say!("{}: ok", file.name);
    Ok(exit::OK)
}

/// `throng report RESULTS.json --html FILE ...`: exports from a saved run.
fn report_html(a: &args::ReportArgs) -> Result<u8, Failure> {
    let exports = args::Exports {
        report: a.html.clone(),
        timeline: a.timeline.clone(),
        junit: a.junit.clone(),
        summary_md: a.summary_md.clone(),
    };
    if exports.report.is_none()
        && exports.timeline.is_none()
        && exports.junit.is_none()
        && exports.summary_md.is_none()
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "say what to write: --html FILE, --timeline FILE, --junit FILE or --summary-md FILE"
        )));
    }
    let text = std::fs::read_to_string(&a.results)
        .map_err(|e| Failure::usage(anyhow::anyhow!("cannot read {}: {e}", a.results.display())))?;
    // Comparison and capacity files have a page of their own, and only that.
    let schema = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("schema")?.as_str().map(str::to_string));
    let page = match schema.as_deref() {
        Some(report::COMPARE_SCHEMA) => {
            Some(serde_json::from_str::<report::CompareReport>(&text).map(|c| c.to_html()))
        }
        Some(report::CAPACITY_SCHEMA) => {
            Some(serde_json::from_str::<report::CapacityResults>(&text).map(|c| c.to_html()))
        }
        _ => None,
    };
    if let Some(page) = page {
        let page =
            page.map_err(|e| Failure::usage(anyhow::anyhow!("{}: {e}", a.results.display())))?;
        let (Some(html), None, None, None) = (&a.html, &a.timeline, &a.junit, &a.summary_md) else {
            return Err(Failure::usage(anyhow::anyhow!(
                "{} is a {} file: only --html applies to it",
                a.results.display(),
                schema.as_deref().unwrap_or_default()
            )));
        };
        output::check_dir("--html", Some(html))?;
        output::write_said(html, "report", &page)?;
        return Ok(exit::OK);
    }
    let results = report::Results::from_json(&text)
        .map_err(|e| Failure::usage(anyhow::anyhow!("{}: {e}", a.results.display())))?;
    output::check_export_dirs(&exports)?;
    output::write_exports(&exports, &results)?;
    Ok(exit::OK)
}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Run(run_args) => run::run(*run_args),
        args::Command::Validate(v) => validate(&v),
        args::Command::Compare(a) => compare::compare(&a),
        args::Command::Capacity(a) => capacity::capacity(&a),
        args::Command::Replay(a) => replay::replay(&a),
        args::Command::Import(args::ImportCommand::Har(a)) => import::har(&a),
        args::Command::Import(args::ImportCommand::Recording(a)) => import::recording(&a),
        args::Command::Report(a) => report_html(&a),
        args::Command::Record(a) => record::record(&a),
        args::Command::Lab(a) => lab::lab(&a),
        args::Command::Demo(a) => lab::demo(&a),
        args::Command::Merge(a) => merge::merge(&a),
        args::Command::Kube(a) => kube::kube(&a),
        args::Command::Schema => {
            say!("{}", scenario::json_schema());
            Ok(exit::OK)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
