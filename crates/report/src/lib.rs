//! Presents a run: the versioned results file ([`Results`], schema
//! `throng.results/v1`, documented in `docs/results.md`), the terminal
//! summary and the live progress line; the self-contained HTML report; comparisons of two runs
//! ([`CompareReport`], schema `throng.compare/v1`). Produces text and values only; the
//! binary decides where they go.

mod capacity;
mod compare;
mod exports;
mod format;
mod html;
mod merge;
mod progress;
mod results;
mod summary;

#[cfg(test)]
mod tests;

pub use capacity::{Bottleneck, CapacityResults, SloRow, StepRow, CAPACITY_SCHEMA};
pub use compare::{side_by_side, CompareReport, Side, COMPARE_SCHEMA};
pub use exports::{junit, prometheus, summary_markdown, timeline_csv};
pub use format::{fmt_level, fmt_ms, fmt_rate};
pub use html::{esc, html};
pub use merge::{merge, MergeError};
pub use progress::{dashboard, progress_line, DashboardView, ProgressView};
pub use results::{
    CheckRow, Coverage, EndpointRow, Generator, LoadInfo, Results, ResultsError, RunInfo,
    SegmentInfo, Status, ThresholdRow, TimelineRow, Totals, SCHEMA,
};
pub use summary::summary;
