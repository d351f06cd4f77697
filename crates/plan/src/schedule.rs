//! When each arrival of the open model is due.
//!
//! Arrivals are placed by inverting the cumulative rate: the k-th arrival is
//! due when the integral of the rate reaches its mark. Uniform arrivals put
//! the marks at k + 0.5 (the middle of each unit of load, so a 500/s second
//! holds exactly 500 arrivals and a stage at rate 0 holds none); Poisson
//! arrivals space the marks by exponential gaps, which by time rescaling is
//! an inhomogeneous Poisson process that follows ramps exactly.
//!
//! Worker `w` of `n` takes every n-th uniform mark starting at `w`, so the
//! workers' schedules interleave into exactly the whole; for Poisson each
//! worker runs an independent process at 1/n of the rate, whose
//! superposition is again Poisson at the full rate.

use std::time::Duration;

use crate::Profile;

/// How arrivals are spread in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly spaced at the current rate.
    Uniform,
    /// A Poisson process at the current rate (exponential gaps).
    Poisson,
}

/// The due times of one worker's arrivals, as offsets from the run start.
#[derive(Debug, Clone)]
pub struct ArrivalSchedule {
    profile: Profile,
    arrivals: Arrivals,
    stride: f64,
    mark: f64,
    remaining: Option<u64>,
    rng: fastrand::Rng,
}

impl ArrivalSchedule {
    /// The schedule of worker `worker` of `workers`, capped at `max` arrivals.
    pub fn new(
        profile: Profile,
        arrivals: Arrivals,
        worker: usize,
        workers: usize,
        max: Option<u64>,
        seed: u64,
    ) -> ArrivalSchedule {
        let workers = workers.max(1);
        let mut rng =
            fastrand::Rng::with_seed(seed ^ (worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let stride = workers as f64;
        let mark = match arrivals {
            Arrivals::Uniform => worker as f64 + 0.5,
            Arrivals::Poisson => stride * exp1(&mut rng),
        };
        ArrivalSchedule {
            profile,
            arrivals,
            stride,
            mark,
            remaining: max,
            rng,
        }
    }
}

/// An exponential variate with mean 1.
fn exp1(rng: &mut fastrand::Rng) -> f64 {
    // 1 - f64() lies in (0, 1], so the logarithm is finite.
    -(1.0 - rng.f64()).ln()
}

impl Iterator for ArrivalSchedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.remaining == Some(0) {
            return None;
        }
        let due = self.profile.inverse_cumulative(self.mark)?;
        self.mark += match self.arrivals {
            Arrivals::Uniform => self.stride,
            Arrivals::Poisson => self.stride * exp1(&mut self.rng),
        };
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        Some(due)
    }
}

/// Splits `total` into `parts` shares that differ by at most one and add up
/// to exactly `total`; share `index` of them.
pub fn share(total: u64, parts: usize, index: usize) -> u64 {
    let parts = parts.max(1) as u64;
    let index = index as u64;
    total / parts + u64::from(index < total % parts)
}
