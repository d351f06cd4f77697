//! Confidence intervals for proportions.

/// The Wilson score interval for `k` successes in `n` trials at ~95%
/// confidence (z = 1.96): `(low, high)`, both in 0..=1. With `n == 0`,
/// `(0, 1)`: nothing is known.
///
/// Wilson rather than the normal approximation because error rates are
/// often 0 or tiny, where the normal interval collapses to a point: 0
/// failures in 2,000 requests gives (0, 0.19%) here, not (0, 0).
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.96f64;
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * ((p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}
