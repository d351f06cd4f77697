//! Comparing two runs endpoint by endpoint: p50, p90 and p99 as ratios
//! (candidate over baseline) and the error rate as a difference, each with
//! a 95% bootstrap interval over time windows.
//!
//! Requests that wait in the same queue are not independent, so
//! resampling single requests would give intervals far too narrow. The
//! bootstrap here resamples whole time windows ([`stats::Windows`]) with
//! replacement, in both runs, and takes the 2.5th and 97.5th percentiles
//! of the resampled changes. When both runs come from one interleaved A/B
//! run, the same windows are drawn for both (a paired bootstrap): a noisy
//! second on the machine slows both arms, and pairing cancels it.
//!
//! The error rate is compared as `candidate − baseline` because the
//! baseline's rate is often zero, where a ratio means nothing.
//!
//! A comparison makes many intervals (four per endpoint), and each has a
//! small chance of excluding the truth; the more endpoints, the likelier
//! that one of them cries regression on an identical release. So the
//! intervals are simultaneous: each is at level `1 − 5% / k` for the `k`
//! intervals of the comparison (Bonferroni), and the verdicts together
//! hold with 95% confidence.

use serde::{Deserialize, Serialize};
use stats::{Stats, Windows};

#[cfg(doc)]
use stats::Hist;

/// The confidence of a comparison's verdicts taken together.
pub const FAMILY_CONFIDENCE: f64 = 0.95;

/// Runs with fewer windows holding requests than this get no verdict: the
/// interval would rest on too little.
pub const MIN_WINDOWS: usize = 5;

/// A quantile is compared only when each run has at least this many
/// responses above it: below that, p99 is the maximum, and the bootstrap
/// of a maximum says nothing (one slow request would be a regression).
/// So p50 needs 20 responses, p90 100, p99 1,000.
pub const MIN_TAIL: u64 = 10;

/// A change and its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioInterval {
    /// The change between the whole runs.
    pub point: f64,
    /// The interval's low end: the `(1 − level) / 2` quantile of the
    /// bootstrap changes.
    pub low: f64,
    /// Its high end.
    pub high: f64,
}

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The candidate is worse by more than the tolerance, with 95% confidence.
    Regression,
    /// The candidate is better by more than the tolerance, with 95% confidence.
    Improvement,
    /// Neither.
    NoChange,
}

impl Verdict {
    /// The word used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::NoChange => "no change",
        }
    }
}

impl RatioInterval {
    /// For a ratio: regression when even the interval's low end is above
    /// `1 + tolerance`; improvement when its high end is below `1 - tolerance`.
    pub fn verdict(&self, tolerance: f64) -> Verdict {
        if self.low > 1.0 + tolerance {
            Verdict::Regression
        } else if self.high < 1.0 - tolerance {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        }
    }

    /// For a difference of rates from `base`: regression when the interval
    /// lies above zero by more than `tolerance × base`; improvement when
    /// below by as much.
    fn verdict_of_difference(&self, base: f64, tolerance: f64) -> Verdict {
        let margin = tolerance * base;
        if self.low > 0.0 && self.low > margin {
            Verdict::Regression
        } else if self.high < 0.0 && -self.high > margin {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        }
    }
}

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Median latency (ratio).
    P50,
    /// 90th percentile latency (ratio).
    P90,
    /// 99th percentile latency (ratio).
    P99,
    /// Failed requests over requests (difference).
    ErrorRate,
}

impl Measure {
    /// All of them, in output order.
    pub const ALL: [Measure; 4] = [Measure::P50, Measure::P90, Measure::P99, Measure::ErrorRate];

    /// The quantile a latency measure is (`None` for the error rate).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Measure::P50 => Some(0.50),
            Measure::P90 => Some(0.90),
            Measure::P99 => Some(0.99),
            Measure::ErrorRate => None,
        }
    }

    /// The responses each run needs for this measure to be compared.
    pub fn min_responses(self) -> u64 {
        match self.quantile() {
            Some(q) => (MIN_TAIL as f64 / (1.0 - q)).round() as u64,
            None => 0,
        }
    }

    /// The name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::P50 => "p50",
            Measure::P90 => "p90",
            Measure::P99 => "p99",
            Measure::ErrorRate => "errors",
        }
    }
}

/// One measure of one endpoint in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureComparison {
    /// What is compared.
    pub measure: Measure,
    /// The baseline's value: milliseconds, or a fraction for the error rate.
    pub base: f64,
    /// The candidate's value.
    pub cand: f64,
    /// Latency: `cand / base`. Error rate: `cand − base` (a fraction).
    /// Absent when there were too few responses to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<RatioInterval>,
    /// What the interval says, given the tolerance.
    pub verdict: Verdict,
    /// Why there is no interval, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One endpoint in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointComparison {
    /// The endpoint's name.
    pub endpoint: String,
    /// Requests in the baseline.
    pub base_requests: u64,
    /// Requests in the candidate.
    pub cand_requests: u64,
    /// Regression if any measure regressed; improvement if any improved
    /// and none regressed.
    pub verdict: Verdict,
    /// Per measure; empty when there was too little to compare.
    pub measures: Vec<MeasureComparison>,
    /// Why there is no verdict, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How to compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Changes within this fraction (0.1 = 10%) are no change.
    pub tolerance: f64,
    /// Each interval's level (two-sided); [`compare_runs`] sets it from
    /// the number of intervals.
    pub level: f64,
    /// Bootstrap resamples; [`compare_runs`] sets enough for the level.
    pub resamples: usize,
    /// Draw the same windows in both runs (they ran interleaved).
    pub paired: bool,
    /// Seed of the resampling, so a comparison repeats exactly.
    pub seed: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            tolerance: 0.1,
            level: 0.95,
            resamples: 1000,
            paired: false,
            seed: 0x7468_726f_6e67,
        }
    }
}

impl CompareOptions {
    /// These options with the level and resamples for `k` simultaneous
    /// intervals: each at `1 − 5% / k`, with about ten resamples beyond
    /// each end of the interval (1,000 to 10,000).
    pub fn simultaneous(mut self, k: usize) -> CompareOptions {
        let k = k.max(1) as f64;
        self.level = 1.0 - (1.0 - FAMILY_CONFIDENCE) / k;
        let tail = (1.0 - self.level) / 2.0;
        self.resamples = ((10.0 / tail).ceil() as usize).clamp(1000, 10_000);
        self
    }
}

/// A comparison of two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The tolerance (a fraction).
    pub tolerance: f64,
    /// Each interval's level: `1 − 5% / k` for `k` intervals.
    pub level: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Whether windows were drawn in pairs (an interleaved A/B run).
    pub paired: bool,
    /// Regression if any endpoint regressed; improvement if any improved
    /// and none regressed.
    pub verdict: Verdict,
    /// Per endpoint.
    pub endpoints: Vec<EndpointComparison>,
}

/// Compares every endpoint of `base` with the one of the same name in
/// `cand`, in the baseline's order, then endpoints only the candidate has.
/// `opts.level` and `opts.resamples` are set for simultaneous intervals.
pub fn compare_runs(base: &Stats, cand: &Stats, opts: &CompareOptions) -> Comparison {
    let pairs: Vec<_> = base
        .endpoints
        .iter()
        .filter_map(|b| Some((b, cand.endpoints.iter().find(|c| c.name == b.name)?)))
        .collect();
    let intervals = pairs
        .iter()
        .map(|(b, c)| comparable(&b.windows, &c.windows).len())
        .sum();
    let opts = opts.simultaneous(intervals);
    let mut out = Vec::new();
    for b in &base.endpoints {
        let c = cand.endpoints.iter().find(|c| c.name == b.name);
        out.push(match c {
            Some(c) => compare_windows(&b.name, &b.windows, &c.windows, &opts),
            None => unmatched(&b.name, b.counts.requests, 0, "only in the baseline"),
        });
    }
    for c in &cand.endpoints {
        if !base.endpoints.iter().any(|b| b.name == c.name) {
            out.push(unmatched(
                &c.name,
                0,
                c.counts.requests,
                "only in the candidate",
            ));
        }
    }
    let any = |v| out.iter().any(|e| e.verdict == v);
    Comparison {
        tolerance: opts.tolerance,
        level: opts.level,
        resamples: opts.resamples,
        paired: opts.paired,
        verdict: if any(Verdict::Regression) {
            Verdict::Regression
        } else if any(Verdict::Improvement) {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        },
        endpoints: out,
    }
}

/// Whether a run has requests in enough windows for a verdict.
fn enough(w: &Windows) -> bool {
    w.list.iter().filter(|w| w.requests > 0).count() >= MIN_WINDOWS
}

fn responses(w: &Windows) -> u64 {
    w.list.iter().map(|w| w.latency.count()).sum()
}

/// The measures two runs have enough data to compare.
fn comparable(base: &Windows, cand: &Windows) -> Vec<Measure> {
    if !enough(base) || !enough(cand) {
        return Vec::new();
    }
    let fewest = responses(base).min(responses(cand));
    Measure::ALL
        .into_iter()
        .filter(|m| fewest >= m.min_responses())
        .collect()
}

fn unmatched(name: &str, base: u64, cand: u64, note: &str) -> EndpointComparison {
    EndpointComparison {
        endpoint: name.to_string(),
        base_requests: base,
        cand_requests: cand,
        verdict: Verdict::NoChange,
        measures: Vec::new(),
        note: Some(note.to_string()),
    }
}

/// One window, sparse: adding a few hundred of these per resample must be
/// cheap, and most buckets of a window are empty. Latencies are indices
/// into the values both runs recorded ([`Values`]).
struct Sparse {
    requests: u64,
    failed: u64,
    values: Vec<(u32, u64)>,
}

/// The distinct latencies (µs, at the windows' precision) either run
/// recorded, in order, and a count per value to add resamples into.
struct Values {
    us: Vec<u64>,
    counts: Vec<u64>,
}

impl Values {
    fn of(runs: [&Windows; 2]) -> Values {
        let mut us: Vec<u64> = runs
            .iter()
            .flat_map(|r| r.list.iter())
            .flat_map(|w| w.latency.recorded().map(|(v, _)| v))
            .collect();
        us.sort_unstable();
        us.dedup();
        let counts = vec![0; us.len()];
        Values { us, counts }
    }

    fn sparse(&self, w: &Windows) -> Vec<Sparse> {
        w.list
            .iter()
            .map(|w| Sparse {
                requests: w.requests,
                failed: w.failed,
                values: w
                    .latency
                    .recorded()
                    .filter_map(|(v, n)| Some((self.us.binary_search(&v).ok()? as u32, n)))
                    .collect(),
            })
            .collect()
    }

    /// The measures of the windows `pick` draws. Quantiles as
    /// [`Hist::quantile_ms`] takes them: the first value whose cumulative
    /// count reaches `ceil(q × total)` (at least 1).
    fn measure(
        &mut self,
        windows: &[Sparse],
        pick: impl Iterator<Item = usize>,
    ) -> [Option<f64>; 4] {
        self.counts.fill(0);
        let (mut requests, mut failed, mut total) = (0, 0, 0);
        for i in pick {
            if let Some(w) = windows.get(i) {
                requests += w.requests;
                failed += w.failed;
                for &(at, n) in &w.values {
                    self.counts[at as usize] += n;
                    total += n;
                }
            }
        }
        let mut m = [None; 4];
        if total > 0 {
            let mut cumulative = 0;
            let mut next = 0;
            let qs = [0.50, 0.90, 0.99];
            let ranks = qs.map(|q: f64| ((q * total as f64).ceil() as u64).max(1));
            for (value, count) in self.us.iter().zip(&self.counts) {
                cumulative += count;
                while next < ranks.len() && cumulative >= ranks[next] {
                    m[next] = Some(*value as f64 / 1000.0);
                    next += 1;
                }
                if next == ranks.len() {
                    break;
                }
            }
        }
        m[3] = (requests > 0).then(|| failed as f64 / requests as f64);
        m
    }
}

/// The change from `b` to `c` in one measure.
fn change(measure: Measure, b: f64, c: f64) -> f64 {
    match measure {
        Measure::ErrorRate => c - b,
        // Latencies below a microsecond do not occur; the floor only
        // keeps an empty-looking baseline from dividing by zero.
        _ => c / b.max(1e-3),
    }
}

/// Compares one endpoint's windows in two runs.
pub fn compare_windows(
    name: &str,
    base: &Windows,
    cand: &Windows,
    opts: &CompareOptions,
) -> EndpointComparison {
    let mut values = Values::of([base, cand]);
    let (bw, cw) = (values.sparse(base), values.sparse(cand));
    let requests = |w: &[Sparse]| w.iter().map(|w| w.requests).sum::<u64>();
    let mut result = EndpointComparison {
        endpoint: name.to_string(),
        base_requests: requests(&bw),
        cand_requests: requests(&cw),
        verdict: Verdict::NoChange,
        measures: Vec::new(),
        note: None,
    };
    let compared = comparable(base, cand);
    if compared.is_empty() {
        result.note = Some(format!(
            "too few requests to compare: each run needs some in at least {MIN_WINDOWS} windows of time"
        ));
        return result;
    }
    let base_all = values.measure(&bw, 0..bw.len());
    let cand_all = values.measure(&cw, 0..cw.len());
    let paired = opts.paired && base.ms == cand.ms;
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let mut changes: [Vec<f64>; 4] = Default::default();
    let mut picks_b = Vec::with_capacity(bw.len());
    let mut picks_c = Vec::with_capacity(cw.len());
    for _ in 0..opts.resamples {
        picks_b.clear();
        picks_c.clear();
        if paired {
            let n = bw.len().max(cw.len());
            picks_b.extend((0..n).map(|_| rng.usize(..n)));
            picks_c.extend_from_slice(&picks_b);
        } else {
            picks_b.extend((0..bw.len()).map(|_| rng.usize(..bw.len())));
            picks_c.extend((0..cw.len()).map(|_| rng.usize(..cw.len())));
        }
        let b = values.measure(&bw, picks_b.iter().copied());
        let c = values.measure(&cw, picks_c.iter().copied());
        for (k, measure) in Measure::ALL.into_iter().enumerate() {
            if let (Some(b), Some(c)) = (b[k], c[k]) {
                changes[k].push(change(measure, b, c));
            }
        }
    }
    for (k, measure) in Measure::ALL.into_iter().enumerate() {
        let (Some(b), Some(c)) = (base_all[k], cand_all[k]) else {
            continue;
        };
        let v = &mut changes[k];
        if v.is_empty() || !compared.contains(&measure) {
            result.measures.push(MeasureComparison {
                measure,
                base: b,
                cand: c,
                change: None,
                verdict: Verdict::NoChange,
                note: Some(format!(
                    "too few responses: {} needs {} in each run",
                    measure.as_str(),
                    measure.min_responses()
                )),
            });
            continue;
        }
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        let tail = (1.0 - opts.level) / 2.0;
        let interval = RatioInterval {
            point: change(measure, b, c),
            low: at(tail),
            high: at(1.0 - tail),
        };
        let verdict = match measure {
            Measure::ErrorRate => interval.verdict_of_difference(b, opts.tolerance),
            _ => interval.verdict(opts.tolerance),
        };
        result.measures.push(MeasureComparison {
            measure,
            base: b,
            cand: c,
            change: Some(interval),
            verdict,
            note: None,
        });
    }
    let any = |v| result.measures.iter().any(|m| m.verdict == v);
    result.verdict = if any(Verdict::Regression) {
        Verdict::Regression
    } else if any(Verdict::Improvement) {
        Verdict::Improvement
    } else {
        Verdict::NoChange
    };
    result
}
