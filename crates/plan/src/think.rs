//! Think time: how long a user waits between a response and the next step.
//!
//! Real users' pauses are heavy-tailed: most are short, a few are very long.
//! Lognormal and Pareto model that; uniform and exponential are there for
//! simpler needs. Every distribution is sampled from the virtual user's own
//! seeded generator, so runs repeat.

use std::time::Duration;

/// A think-time distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum Think {
    /// No pause.
    None,
    /// Always this long.
    Constant(Duration),
    /// Evenly between `min` and `max`.
    Uniform {
        /// Shortest pause.
        min: Duration,
        /// Longest pause.
        max: Duration,
    },
    /// Exponential with this mean (memoryless pauses).
    Exponential {
        /// Mean pause.
        mean: Duration,
    },
    /// Lognormal: `median * exp(sigma * N(0,1))`.
    LogNormal {
        /// Median pause.
        median: Duration,
        /// Spread of the underlying normal (0.5 is moderate, 1.0 is wide).
        sigma: f64,
    },
    /// Pareto (type I): at least `min`, tail index `alpha` (smaller is
    /// heavier; 1.5 gives a finite mean and an infinite variance).
    Pareto {
        /// Smallest pause.
        min: Duration,
        /// Tail index, more than 0.
        alpha: f64,
    },
}

/// Pauses are capped so a heavy tail cannot stall a user for the whole run.
pub const MAX_THINK: Duration = Duration::from_secs(3600);

impl Think {
    /// Draws one pause.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        let secs = match *self {
            Think::None => return Duration::ZERO,
            Think::Constant(d) => return d,
            Think::Uniform { min, max } => {
                min.as_secs_f64() + (max - min).as_secs_f64() * rng.f64()
            }
            Think::Exponential { mean } => -mean.as_secs_f64() * (1.0 - rng.f64()).ln(),
            Think::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * standard_normal(rng)).exp()
            }
            Think::Pareto { min, alpha } => min.as_secs_f64() / (1.0 - rng.f64()).powf(1.0 / alpha),
        };
        Duration::from_secs_f64(secs.clamp(0.0, MAX_THINK.as_secs_f64()))
    }

    /// The mean pause (capped distributions aside), for capacity planning
    /// and the plan's description.
    pub fn mean(&self) -> Duration {
        let secs = match *self {
            Think::None => 0.0,
            Think::Constant(d) => d.as_secs_f64(),
            Think::Uniform { min, max } => (min + max).as_secs_f64() / 2.0,
            Think::Exponential { mean } => mean.as_secs_f64(),
            Think::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * sigma / 2.0).exp()
            }
            Think::Pareto { min, alpha } if alpha > 1.0 => {
                alpha * min.as_secs_f64() / (alpha - 1.0)
            }
            Think::Pareto { .. } => f64::INFINITY,
        };
        Duration::from_secs_f64(secs.clamp(0.0, MAX_THINK.as_secs_f64()))
    }
}

/// A standard normal variate (Box-Muller).
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
