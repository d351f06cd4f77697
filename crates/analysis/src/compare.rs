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
//!
//! Two separate runs also differ by what changed on the machine between
//! them, which no resampling within a run can see: on a shared machine,
//! runs of a sub-millisecond endpoint minutes apart differ by 10-30% with
//! nothing changed. So an unpaired comparison adds run-to-run noise to its
//! latency intervals ([`run_noise`]): a normal draw on the log scale per
//! resample, with a spread estimated from the runs themselves, from how
//! much each run's second half differs from its first beyond sampling and,
//! given several baselines, from how much the baselines differ from each
//! other. Paired runs need none: both arms saw the same machine. Changes
//! under [`CompareOptions::min_change_ms`] are no change in separate runs:
//! a run's level can shift between runs without its halves showing it.

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

/// The default of [`CompareOptions::min_change_ms`].
pub const DEFAULT_MIN_CHANGE_MS: f64 = 0.25;

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
    /// The candidate is worse with 95% confidence, by more than the
    /// tolerance.
    Regression,
    /// The candidate is better with 95% confidence, by more than the
    /// tolerance.
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
    /// For a ratio of separate runs: regression when the interval lies
    /// above 1 (slower, with the interval's confidence) and the change
    /// itself is beyond `1 + tolerance`; improvement when it lies below 1 and the change is
    /// under `1 − tolerance`.
    ///
    /// Not "even the interval's low end beyond the tolerance": two
    /// separate runs differ by a few percent with nothing changed, and that
    /// stricter rule missed a 20% slowdown against a 10% tolerance in a
    /// third of pairs (bench/compare). Confidence decides that there is a
    /// change; the tolerance decides whether it matters.
    pub fn verdict(&self, tolerance: f64) -> Verdict {
        if self.low > 1.0 && self.point > 1.0 + tolerance {
            Verdict::Regression
        } else if self.high < 1.0 && self.point < 1.0 - tolerance {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        }
    }

    /// For a ratio of paired runs: regression when even the interval's low
    /// end is above `1 + tolerance`; improvement when its high end is below
    /// `1 − tolerance`. Paired intervals are narrow, and the rule above
    /// called sub-millisecond differences regressions in 2 of 20 short A/A
    /// runs of the test suite's lab (this one: none).
    pub fn verdict_paired(&self, tolerance: f64) -> Verdict {
        if self.low > 1.0 + tolerance {
            Verdict::Regression
        } else if self.high < 1.0 - tolerance {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        }
    }

    /// For a difference of rates from `base`: regression when the interval
    /// lies above zero and the change (paired: the interval's low end) is
    /// more than `tolerance × base`; improvement when below and by as much.
    fn verdict_of_difference(&self, base: f64, tolerance: f64, paired: bool) -> Verdict {
        let margin = tolerance * base;
        let (up, down) = if paired {
            (self.low, -self.high)
        } else {
            (self.point, -self.point)
        };
        if self.low > 0.0 && up > margin {
            Verdict::Regression
        } else if self.high < 0.0 && down > margin {
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
    /// Separate runs only: the run-to-run noise added to the interval, as
    /// a factor (`1.08`: one standard deviation is ×/÷ 1.08), estimated
    /// from the runs' halves and the baselines' spread ([`run_noise`]).
    /// `1` when the runs showed none beyond sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
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
    /// Separate runs only: latency changes within this many milliseconds
    /// are no change either, whatever their ratio. Runs minutes apart on a
    /// shared machine differ by about 0.1 ms with nothing changed, which is
    /// 30% of a 0.3 ms endpoint; a paired run's arms do not.
    pub min_change_ms: f64,
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
            min_change_ms: DEFAULT_MIN_CHANGE_MS,
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
    /// Separate runs: the latency changes, in ms, that are no change
    /// whatever their ratio; 0 for paired runs.
    #[serde(default)]
    pub min_change_ms: f64,
    /// Each interval's level: `1 − 5% / k` for `k` intervals.
    pub level: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Whether windows were drawn in pairs (an interleaved A/B run).
    pub paired: bool,
    /// How many baseline runs were pooled (1 unless given several).
    #[serde(default = "one")]
    pub baseline_runs: usize,
    /// Regression if any endpoint regressed; improvement if any improved
    /// and none regressed.
    pub verdict: Verdict,
    /// Per endpoint.
    pub endpoints: Vec<EndpointComparison>,
}

fn one() -> usize {
    1
}

/// Compares every endpoint of the baselines (one run, or several of the
/// same build pooled) with the one of the same name in `cand`, in the
/// first baseline's order, then endpoints only the candidate has.
/// `opts.level` and `opts.resamples` are set for simultaneous intervals;
/// `opts.paired` holds only for a single baseline.
pub fn compare_runs(bases: &[&Stats], cand: &Stats, opts: &CompareOptions) -> Comparison {
    let mut names: Vec<&str> = Vec::new();
    for b in bases {
        for e in &b.endpoints {
            if !names.contains(&e.name.as_str()) {
                names.push(&e.name);
            }
        }
    }
    let windows_of = |name: &str| -> Vec<&Windows> {
        bases
            .iter()
            .filter_map(|b| b.endpoints.iter().find(|e| e.name == name))
            .map(|e| &e.windows)
            .collect()
    };
    let requests_of = |name: &str| -> u64 {
        bases
            .iter()
            .filter_map(|b| b.endpoints.iter().find(|e| e.name == name))
            .map(|e| e.counts.requests)
            .sum()
    };
    let intervals = names
        .iter()
        .filter_map(|n| {
            let c = cand.endpoints.iter().find(|c| c.name == *n)?;
            Some(comparable(&windows_of(n), &c.windows).len())
        })
        .sum();
    let mut opts = opts.simultaneous(intervals);
    opts.paired &= bases.len() == 1;
    let mut out = Vec::new();
    for name in &names {
        out.push(match cand.endpoints.iter().find(|c| c.name == *name) {
            Some(c) => compare_windows(name, &windows_of(name), &c.windows, &opts),
            None => unmatched(name, requests_of(name), 0, "only in the baseline"),
        });
    }
    for c in &cand.endpoints {
        if !names.contains(&c.name.as_str()) {
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
        min_change_ms: if opts.paired { 0.0 } else { opts.min_change_ms },
        level: opts.level,
        resamples: opts.resamples,
        paired: opts.paired,
        baseline_runs: bases.len(),
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

/// The measures the baselines and the candidate have enough data to
/// compare (each baseline counts: a pooled baseline is no excuse for a
/// thin one).
fn comparable(bases: &[&Windows], cand: &Windows) -> Vec<Measure> {
    if bases.is_empty() || !bases.iter().all(|b| enough(b)) || !enough(cand) {
        return Vec::new();
    }
    let fewest = bases
        .iter()
        .map(|b| responses(b))
        .chain([responses(cand)])
        .min()
        .unwrap_or(0);
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
    fn of<'a>(runs: impl Iterator<Item = &'a Windows>) -> Values {
        let mut us: Vec<u64> = runs
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

/// Compares one endpoint's windows in the baselines (pooled) and the
/// candidate.
pub fn compare_windows(
    name: &str,
    bases: &[&Windows],
    cand: &Windows,
    opts: &CompareOptions,
) -> EndpointComparison {
    let mut values = Values::of(bases.iter().copied().chain([cand]));
    // The baselines' windows end to end; `runs` says where each run's are.
    let mut bw = Vec::new();
    let mut runs = Vec::with_capacity(bases.len());
    for b in bases {
        let from = bw.len();
        bw.extend(values.sparse(b));
        runs.push(from..bw.len());
    }
    let cw = values.sparse(cand);
    let requests = |w: &[Sparse]| w.iter().map(|w| w.requests).sum::<u64>();
    let mut result = EndpointComparison {
        endpoint: name.to_string(),
        base_requests: requests(&bw),
        cand_requests: requests(&cw),
        verdict: Verdict::NoChange,
        measures: Vec::new(),
        note: None,
    };
    let compared = comparable(bases, cand);
    if compared.is_empty() {
        result.note = Some(format!(
            "too few requests to compare: each run needs some in at least {MIN_WINDOWS} windows of time"
        ));
        return result;
    }
    let base_all = values.measure(&bw, 0..bw.len());
    let cand_all = values.measure(&cw, 0..cw.len());
    let paired = opts.paired && bases.len() == 1 && bases[0].ms == cand.ms;
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let (mut changes, spread) = resample(
        &mut values,
        (&bw, &runs),
        &cw,
        paired,
        opts.resamples,
        &mut rng,
    );
    let noise = (!paired).then(|| {
        let mut halves: Vec<[Option<f64>; 4]> =
            runs.iter().map(|r| values.drift(&bw, r.clone())).collect();
        halves.push(values.drift(&cw, 0..cw.len()));
        let levels: Vec<[Option<f64>; 4]> = runs
            .iter()
            .map(|r| values.measure(&bw, r.clone()))
            .collect();
        run_noise(&halves, &levels, &spread)
    });
    for (k, measure) in Measure::ALL.into_iter().enumerate() {
        let (Some(b), Some(c)) = (base_all[k], cand_all[k]) else {
            continue;
        };
        let v = &mut changes[k];
        if v.is_empty() || !compared.contains(&measure) {
            result
                .measures
                .push(MeasureComparison::too_few(measure, b, c));
            continue;
        }
        let sigma = noise.as_ref().and_then(|n| n[k]);
        if let Some(sigma) = sigma.filter(|s| *s > 0.0) {
            for x in v.iter_mut() {
                *x *= (sigma * normal(&mut rng)).exp();
            }
        }
        let (interval, verdict) = judge(measure, (b, c), v, opts, paired);
        result.measures.push(MeasureComparison {
            measure,
            base: b,
            cand: c,
            change: Some(interval),
            verdict,
            note: None,
            noise: sigma.map(f64::exp),
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

/// A measure's interval, from its resampled changes `v` (sorted here),
/// and its verdict: separate runs' latencies also need the change to
/// clear the floor in time (as a share of the baseline), paired runs'
/// the interval's low end to clear the tolerance.
fn judge(
    measure: Measure,
    (b, c): (f64, f64),
    v: &mut [f64],
    opts: &CompareOptions,
    paired: bool,
) -> (RatioInterval, Verdict) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let tail = (1.0 - opts.level) / 2.0;
    let interval = RatioInterval {
        point: change(measure, b, c),
        low: at(tail),
        high: at(1.0 - tail),
    };
    let verdict = match measure {
        Measure::ErrorRate => interval.verdict_of_difference(b, opts.tolerance, paired),
        _ if !paired => interval.verdict(opts.tolerance.max(opts.min_change_ms / b)),
        _ => interval.verdict_paired(opts.tolerance),
    };
    (interval, verdict)
}

impl MeasureComparison {
    /// A measure with too few responses in a run to compare.
    fn too_few(measure: Measure, base: f64, cand: f64) -> MeasureComparison {
        MeasureComparison {
            measure,
            base,
            cand,
            change: None,
            verdict: Verdict::NoChange,
            note: Some(format!(
                "too few responses: {} needs {} in each run",
                measure.as_str(),
                measure.min_responses()
            )),
            noise: None,
        }
    }
}

/// The bootstrap: `resamples` draws of windows from the baselines (`bw`,
/// each run's windows at `runs`) and the candidate (`cw`), with each
/// measure's change per draw, and each side's resampled log levels.
fn resample(
    values: &mut Values,
    (bw, runs): (&[Sparse], &[std::ops::Range<usize>]),
    cw: &[Sparse],
    paired: bool,
    resamples: usize,
    rng: &mut fastrand::Rng,
) -> ([Vec<f64>; 4], [Spread; 2]) {
    let mut changes: [Vec<f64>; 4] = Default::default();
    let mut spread = [Spread::default(), Spread::default()];
    let mut picks_b = Vec::with_capacity(bw.len());
    let mut picks_c = Vec::with_capacity(cw.len());
    for _ in 0..resamples {
        picks_b.clear();
        picks_c.clear();
        if paired {
            let n = bw.len().max(cw.len());
            picks_b.extend((0..n).map(|_| rng.usize(..n)));
            picks_c.extend_from_slice(&picks_b);
        } else {
            // Each half of each run keeps its weight: its windows are drawn
            // from its own. The resamples then measure sampling alone, and
            // how far a run's halves differ enters as noise, once.
            for half in runs.iter().flat_map(|r| halves_of(r.clone())) {
                picks_b.extend(half.clone().map(|_| rng.usize(half.clone())));
            }
            for half in halves_of(0..cw.len()) {
                picks_c.extend(half.clone().map(|_| rng.usize(half.clone())));
            }
        }
        let b = values.measure(bw, picks_b.iter().copied());
        let c = values.measure(cw, picks_c.iter().copied());
        for (k, measure) in Measure::ALL.into_iter().enumerate() {
            if let (Some(b), Some(c)) = (b[k], c[k]) {
                changes[k].push(change(measure, b, c));
                if measure.quantile().is_some() {
                    spread[0].add(k, b);
                    spread[1].add(k, c);
                }
            }
        }
    }
    (changes, spread)
}

/// The variance of resampled log latencies, per measure, kept as sums.
#[derive(Default)]
struct Spread {
    n: [f64; 4],
    sum: [f64; 4],
    squares: [f64; 4],
}

impl Spread {
    fn add(&mut self, k: usize, ms: f64) {
        let x = ms.max(1e-3).ln();
        self.n[k] += 1.0;
        self.sum[k] += x;
        self.squares[k] += x * x;
    }

    fn variance(&self, k: usize) -> f64 {
        if self.n[k] < 2.0 {
            return 0.0;
        }
        let mean = self.sum[k] / self.n[k];
        (self.squares[k] / self.n[k] - mean * mean).max(0.0)
    }
}

/// A run's windows in two halves, the first rounded down.
fn halves_of(run: std::ops::Range<usize>) -> [std::ops::Range<usize>; 2] {
    let mid = run.start + run.len() / 2;
    [run.start..mid, mid..run.end]
}

impl Values {
    /// How much the second half of a run's windows differs from its
    /// first, per latency measure: `ln(second / first)`.
    fn drift(&mut self, windows: &[Sparse], run: std::ops::Range<usize>) -> [Option<f64>; 4] {
        let [first, second] = halves_of(run).map(|h| self.measure(windows, h));
        let mut d = [None; 4];
        for (k, m) in Measure::ALL.into_iter().enumerate() {
            if m.quantile().is_some() {
                if let (Some(a), Some(b)) = (first[k], second[k]) {
                    d[k] = Some(b.max(1e-3).ln() - a.max(1e-3).ln());
                }
            }
        }
        d
    }
}

/// The run-to-run noise of each latency measure, as the standard deviation
/// of `ln(cand / base)` that no resampling within the runs accounts for.
///
/// The model: each run's log level is off by its own `u ~ N(0, σ²)`, the
/// same `σ` for calm runs. A candidate against the mean of `k` baselines
/// is then off by `σ² (1 + 1/k)`: twice `σ²` for one baseline. `σ²` is
/// estimated from every run, pooled by degrees of freedom:
/// - halves (one degree each; `halves` has a row per baseline run, then
///   the candidate's): a run's halves are taken to differ as two runs do,
///   so `d = ln(h2 / h1)` has variance `2σ²` plus `4v` of sampling, for a
///   run whose whole has sampling variance `v` (each half has half the
///   data): `(d² − 4v) / 2` estimates `σ²`;
/// - baselines (`k − 1` degrees, given `k ≥ 2`): the sample variance of
///   their log levels (`levels`), less one run's sampling variance.
///
/// A run whose own halves disagree by more than the pool was disturbed
/// (something else ran on the machine for part of it), and its level is
/// only as good as its own estimate: each run counts with the larger of
/// the two, `Σ max(σ², own_i) / k²` for the baselines' mean plus
/// `max(σ², own_c)` for the candidate. Pooling alone would let three calm
/// baselines vouch for a candidate whose second half ran 60% slower.
///
/// `spread` holds the resampled log levels of the pooled baseline (`[0]`)
/// and the candidate (`[1]`); one baseline run's sampling variance is the
/// pool's times `k`.
fn run_noise(
    halves: &[[Option<f64>; 4]],
    levels: &[[Option<f64>; 4]],
    spread: &[Spread; 2],
) -> [Option<f64>; 4] {
    let k = levels.len();
    let mut out = [None; 4];
    for (m, measure) in Measure::ALL.into_iter().enumerate() {
        if measure.quantile().is_none() {
            continue;
        }
        let v_base = spread[0].variance(m) * k as f64;
        let v_cand = spread[1].variance(m);
        // Each run's own estimate from its halves: the baselines', then
        // the candidate's.
        let own: Vec<Option<f64>> = halves
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let v = if i < k { v_base } else { v_cand };
                row[m].map(|d| (d * d - 4.0 * v) / 2.0)
            })
            .collect();
        let (mut sum, mut df) = (0.0, 0.0);
        for o in own.iter().flatten() {
            sum += o;
            df += 1.0;
        }
        let logs: Vec<f64> = levels
            .iter()
            .filter_map(|l| l[m])
            .map(|x| x.max(1e-3).ln())
            .collect();
        if logs.len() >= 2 {
            let n = logs.len() as f64;
            let mean = logs.iter().sum::<f64>() / n;
            let squares = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
            sum += squares - (n - 1.0) * v_base;
            df += n - 1.0;
        }
        let pooled = if df > 0.0 { (sum / df).max(0.0) } else { 0.0 };
        let of = |i: usize| own.get(i).copied().flatten().unwrap_or(0.0).max(pooled);
        let kf = k.max(1) as f64;
        let bases = (0..k).map(of).sum::<f64>() / (kf * kf);
        out[m] = Some((bases + of(k)).sqrt());
    }
    out
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64(); // in (0, 1]: its log is finite
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
