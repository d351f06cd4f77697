//! Was the generator, not the target, the limit?

use stats::Stats;

/// Lag p99 above this means arrivals were sent noticeably late...
pub const LAG_P99_LIMIT_MS: f64 = 1.0;

/// ...when at least this many requests were: one thread woken a
/// millisecond late in a 150-request run makes the p99, and is not a
/// generator at its limit.
pub const LATE_MIN: u64 = 10;

/// Requests sent more than [`LAG_P99_LIMIT_MS`] after they were due.
pub fn late_requests(stats: &Stats) -> u64 {
    stats.lag.count_above(std::time::Duration::from_secs_f64(
        LAG_P99_LIMIT_MS / 1000.0,
    ))
}

/// Why the generator's numbers may understate the target, in plain words;
/// empty when it kept up.
pub fn generator_limits(stats: &Stats) -> Vec<String> {
    let mut reasons = Vec::new();
    let lag_p99 = if stats.lag.count() == 0 {
        0.0
    } else {
        stats.lag.quantile_ms(0.99)
    };
    let late = late_requests(stats);
    if lag_p99 > LAG_P99_LIMIT_MS && late >= LATE_MIN {
        reasons.push(format!(
            "requests went out late: generator lag p99 was {lag_p99:.2}ms (over {LAG_P99_LIMIT_MS}ms; {late} of {} requests more than {LAG_P99_LIMIT_MS}ms late)",
            stats.lag.count()
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
