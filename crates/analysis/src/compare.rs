//! Comparing two runs: ratios of latency percentiles with bootstrap
//! confidence intervals over time windows.
//!
//! Requests that wait in the same queue are not independent, so
//! resampling single requests would give intervals far too narrow. The
//! bootstrap here resamples whole time windows (each a histogram of the
//! responses due in it), with replacement, in both runs, and takes the
//! 2.5th and 97.5th percentiles of the resampled ratios.
//!
//! The building block of `throng compare` (issue 5); the command itself,
//! and per-endpoint windows in the results file, are still to come.

use stats::Hist;

/// A ratio (candidate over baseline) and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    /// The ratio of the whole runs.
    pub point: f64,
    /// 2.5th percentile of the bootstrap ratios.
    pub low: f64,
    /// 97.5th percentile.
    pub high: f64,
}

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The candidate is worse by more than the tolerance, with 95% confidence.
    Regression,
    /// The candidate is better by more than the tolerance, with 95% confidence.
    Improvement,
    /// Neither.
    NoChange,
}

impl RatioInterval {
    /// Regression when even the interval's low end is above `1 +
    /// tolerance`; improvement when its high end is below `1 - tolerance`.
    pub fn verdict(&self, tolerance: f64) -> Verdict {
        if self.low > 1.0 + tolerance {
            Verdict::Regression
        } else if self.high < 1.0 - tolerance {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        }
    }
}

fn merged(windows: &[Hist], pick: impl Iterator<Item = usize>) -> Hist {
    let mut h = Hist::coarse();
    for i in pick {
        if let Some(w) = windows.get(i) {
            h.merge(w);
        }
    }
    h
}

fn quantile(h: &Hist, q: f64) -> Option<f64> {
    (h.count() > 0).then(|| h.quantile_ms(q))
}

/// The ratio of quantile `q` (candidate over baseline) with its bootstrap
/// interval over `resamples` resamples of the windows; `None` when either
/// run has no responses.
pub fn quantile_ratio(
    base: &[Hist],
    cand: &[Hist],
    q: f64,
    resamples: usize,
    seed: u64,
) -> Option<RatioInterval> {
    let point = quantile(&merged(cand, 0..cand.len()), q)?
        / quantile(&merged(base, 0..base.len()), q)?.max(1e-3);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let b = merged(base, (0..base.len()).map(|_| rng.usize(..base.len())));
        let c = merged(cand, (0..cand.len()).map(|_| rng.usize(..cand.len())));
        if let (Some(qb), Some(qc)) = (quantile(&b, q), quantile(&c, q)) {
            ratios.push(qc / qb.max(1e-3));
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
    Some(RatioInterval {
        point,
        low: at(0.025),
        high: at(0.975),
    })
}
