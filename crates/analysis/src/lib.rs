//! Turns recorded statistics into answers. For now: thresholds (pass/fail
//! expressions such as `p99<300ms`) and the confidence intervals they and
//! later findings rest on. Works on [`stats::Stats`] alone, so everything
//! here applies equally to a live run and to a results file read back.

mod generator;
mod interval;
mod threshold;

#[cfg(test)]
mod tests;

pub use generator::{generator_limits, LAG_P99_LIMIT_MS};
pub use interval::wilson;
pub use threshold::{Metric, Threshold, ThresholdError, ThresholdResult};
