//! Turns recorded statistics into answers: thresholds (pass/fail
//! expressions such as `p99<300ms`), findings (what broke, where, when,
//! at what load) and the confidence intervals they rest on. Works on [`stats::Stats`] alone, so everything
//! here applies equally to a live run and to a results file read back.

mod abort;
mod capacity;
mod compare;
mod findings;
mod generator;
mod interval;
mod recovery;
mod server;
mod threshold;

#[cfg(test)]
mod tests;

pub use abort::{AbortRule, AbortWatch};
pub use capacity::{Search, StepVerdict, BORDERLINE};
pub use compare::{
    compare_runs, compare_windows, CompareOptions, Comparison, EndpointComparison, Measure,
    MeasureComparison, RatioInterval, Verdict, DEFAULT_MIN_CHANGE_MS, FAMILY_CONFIDENCE, MIN_TAIL,
    MIN_WINDOWS,
};
pub use findings::{
    beside, findings, percent, server_during, target_was_full, zero_failure_bound, Finding,
    LoadShape, Severity, TARGET_WAS_FULL,
};
pub use generator::{generator_limits, late_requests, LAG_P99_LIMIT_MS, LATE_MIN};
pub use interval::wilson;
pub use recovery::{goodput_per_second, recovery, Recovery, RecoveryCheck};
pub use server::{
    server_side, spearman, Ceiling, InStep, ProcessState, ServerSide, Symptom, CEILING_SHARE,
    CPU_BOUND, ECHO_RHO, IN_STEP_CHANGES, IN_STEP_RHO, MAX_IN_STEP, MAX_LEAD,
};
pub use threshold::{Metric, Threshold, ThresholdError, ThresholdResult};
