//! Was the generator, not the target, the limit?

use stats::Stats;

/// Lag p99 above this means arrivals were sent noticeably late.
pub const LAG_P99_LIMIT_MS: f64 = 1.0;

/// Why the generator's numbers may understate the target, in plain words;
/// empty when it kept up.
pub fn generator_limits(stats: &Stats) -> Vec<String> {
    let mut reasons = Vec::new();
    let lag_p99 = if stats.lag.count() == 0 {
        0.0
    } else {
        stats.lag.quantile_ms(0.99)
    };
    if lag_p99 > LAG_P99_LIMIT_MS {
        reasons.push(format!(
            "requests went out late: generator lag p99 was {lag_p99:.2}ms (over {LAG_P99_LIMIT_MS}ms)"
        ));
    }
    let dropped = stats.counts.dropped();
    if dropped > 0 {
        reasons.push(format!(
            "{dropped} arrival(s) dropped because the in-flight limit was reached"
        ));
    }
    reasons
}
