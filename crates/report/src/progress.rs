//! The live progress line.

use crate::format::{fmt_ms, fmt_rate};

/// What the progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressView {
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Planned length in seconds, if known.
    pub total_s: Option<f64>,
    /// Requests that ended in the last interval, per second.
    pub rate: f64,
    /// Median latency over the last interval, ms (None: no responses).
    pub p50_ms: Option<f64>,
    /// 99th percentile over the last interval, ms.
    pub p99_ms: Option<f64>,
    /// Requests sent so far.
    pub requests: u64,
    /// Failed so far.
    pub errors: u64,
    /// Dropped so far.
    pub dropped: u64,
    /// In flight now.
    pub in_flight: usize,
    /// Users running now (closed model).
    pub vus: Option<usize>,
}

/// One line, e.g. `[ 12s/30s]  499.9/s  p50 1.10ms  p99 4.50ms  errors 0 (0.00%)  in-flight 3`.
pub fn progress_line(v: &ProgressView) -> String {
    let elapsed = format!("{:>3.0}s", v.elapsed_s);
    let total = v.total_s.map(|t| format!("/{t:.0}s")).unwrap_or_default();
    let latency = match (v.p50_ms, v.p99_ms) {
        (Some(p50), Some(p99)) => format!("p50 {}  p99 {}", fmt_ms(p50), fmt_ms(p99)),
        _ => "p50 -  p99 -".to_string(),
    };
    let error_pct = if v.requests == 0 {
        0.0
    } else {
        v.errors as f64 * 100.0 / v.requests as f64
    };
    let mut line = format!(
        "[{elapsed}{total}] {:>10}  {latency}  requests {}  errors {} ({error_pct:.2}%)",
        fmt_rate(v.rate),
        v.requests,
        v.errors
    );
    if v.dropped > 0 {
        line.push_str(&format!("  dropped {}", v.dropped));
    }
    match v.vus {
        Some(vus) => line.push_str(&format!("  users {vus}")),
        None => line.push_str(&format!("  in-flight {}", v.in_flight)),
    }
    line
}
