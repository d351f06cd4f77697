//! Files a command writes: results, reports and exports, each written
//! atomically and announced with a "written to" line; and the checks,
//! before a run, that they can be written at all.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use report::Results;

use crate::args::Exports;
use crate::{exit, Failure};

/// Writes an `--out` file and says so.
pub fn write(out: &Path, text: &str) -> Result<(), Failure> {
    write_quietly(out, text)?;
    say!("\n  results written to {}", out.display());
    Ok(())
}

/// Writes an `--out` file, saying nothing (stdout may be the output).
pub fn write_quietly(out: &Path, text: &str) -> Result<(), Failure> {
    write_atomic(out, text)
        .with_context(|| format!("cannot write --out {}", out.display()))
        .map_err(|error| Failure {
            code: exit::ABORTED,
            error,
        })
}

/// Writes `text` (a report, an export) to `path` and says so: "  report
/// written to PATH".
pub fn write_said(path: &Path, what: &str, text: &str) -> Result<(), Failure> {
    write_quietly(path, text)?;
    say!("  {what} written to {}", path.display());
    Ok(())
}

/// Writes `text` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes the files `exports` asks for and says where.
pub fn write_exports(exports: &Exports, results: &Results) -> Result<(), Failure> {
    type Render = fn(&Results) -> String;
    let outputs: [(&Option<PathBuf>, &str, Render); 4] = [
        (&exports.report, "report", report::html),
        (&exports.timeline, "timeline", report::timeline_csv),
        (&exports.junit, "JUnit XML", report::junit),
        (
            &exports.summary_md,
            "Markdown summary",
            report::summary_markdown,
        ),
    ];
    for (path, what, render) in outputs {
        if let Some(path) = path {
            write_said(path, what, &render(results))?;
        }
    }
    Ok(())
}

/// `exports` with `name` beside each file: an A/B arm's exports.
pub fn exports_beside(exports: &Exports, name: &str) -> Exports {
    let arm = |p: &Option<PathBuf>| p.as_deref().map(|p| beside(p, name));
    Exports {
        report: arm(&exports.report),
        timeline: arm(&exports.timeline),
        junit: arm(&exports.junit),
        summary_md: arm(&exports.summary_md),
    }
}

/// Checks, before a run, that every export can be written.
pub fn check_export_dirs(exports: &Exports) -> Result<(), Failure> {
    check_dir("--report", exports.report.as_deref())?;
    check_dir("--timeline", exports.timeline.as_deref())?;
    check_dir("--junit", exports.junit.as_deref())?;
    check_dir("--summary-md", exports.summary_md.as_deref())
}

/// Fails now, not after a 30-minute run, if the results cannot be written.
pub fn check_dir(flag: &str, out: Option<&Path>) -> Result<(), Failure> {
    let Some(out) = out else { return Ok(()) };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Failure::usage(anyhow!(
            "{flag} {}: the directory {} does not exist",
            out.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// `ab.json` with `base` beside it: `ab.base.json`.
pub fn beside(out: &Path, name: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "json".into());
    out.with_file_name(format!("{stem}.{name}.{ext}"))
}
