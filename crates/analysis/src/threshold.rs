//! Threshold expressions: `p99<300ms`, `errors<1%`, `rate>450`,
//! `p99(GET /login)<400ms`.
//!
//! Grammar: `METRIC [ "(" ENDPOINT ")" ] OP VALUE [UNIT]`, spaces allowed.
//! - METRIC: `p50`, `p90`, `p95`, `p99`, `p99.9` (or `p999`), any `pNN`;
//!   `median`, `mean`, `min`, `max` (latency from the intended send time,
//!   needs a unit `us`, `ms` or `s`); `errors` (with `%`: failed requests
//!   over requests sent; without: a count); `rate` (requests sent per
//!   second of load); `requests`; `dropped` (with `%`: arrivals dropped
//!   at the in-flight limit over arrivals due, sent or dropped; without: a
//!   count).
//! - WebSocket metrics: `p99_message` (any `pNN_message`: a message's round
//!   trip, from its send's intended time to the reply), `p99_upgrade` (the
//!   upgrade time), `ws_errors` (with `%`: failed connections over
//!   connections tried; without: a count); event streams: `p99_first_event`
//!   (from the step's intended start), `p99_gap` (between events). Without
//!   an endpoint they cover every live step.
//! - OP: `<`, `<=`, `>`, `>=`, `==`, `!=`.

use std::time::Duration;

use stats::{Hist, Stats};

/// A threshold could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid threshold {expr:?}: {why}")]
pub struct ThresholdError {
    /// What the user wrote.
    pub expr: String,
    /// What is wrong, with the way to write it.
    pub why: String,
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency quantile (0..1), in milliseconds.
    Quantile(f64),
    /// Mean latency, ms.
    Mean,
    /// Smallest latency, ms.
    Min,
    /// Largest latency, ms.
    Max,
    /// Failed requests over requests sent, as a fraction.
    ErrorRate,
    /// Failed requests, a count.
    ErrorCount,
    /// Requests sent per second of load.
    Rate,
    /// Requests sent.
    Requests,
    /// Arrivals dropped, a count.
    Dropped,
    /// Arrivals dropped over arrivals due (sessions started and dropped),
    /// a fraction.
    DroppedRate,
    /// A WebSocket message's round trip quantile (0..1), ms.
    MessageQuantile(f64),
    /// A WebSocket upgrade time quantile (0..1), ms.
    UpgradeQuantile(f64),
    /// An event stream's time to first event quantile (0..1), ms.
    FirstEventQuantile(f64),
    /// An event stream's gap between events quantile (0..1), ms.
    GapQuantile(f64),
    /// Failed WebSocket connections over those tried, a fraction.
    WsErrorRate,
    /// Failed WebSocket connections, a count.
    WsErrorCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
            Op::Eq => actual == limit,
            Op::Ne => actual != limit,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as the user wrote it.
    pub expr: String,
    /// What it measures.
    pub metric: Metric,
    /// Restricts it to one endpoint.
    pub endpoint: Option<String>,
    op: Op,
    /// The limit: ms for latency, a fraction for rates, else a plain number.
    limit: f64,
}

/// A threshold evaluated on a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdResult {
    /// The expression.
    pub expr: String,
    /// Whether it held.
    pub ok: bool,
    /// The measured value, in the threshold's unit (ms, fraction, count).
    pub actual: f64,
    /// The measured value for people, e.g. `312ms` or `2.41%`.
    pub actual_text: String,
}

impl Threshold {
    /// How far `actual` is from the limit, as a share of the limit (0 at
    /// the limit); used to call a capacity step borderline.
    pub fn margin(&self, actual: f64) -> f64 {
        if self.limit == 0.0 {
            return actual.abs();
        }
        ((actual - self.limit) / self.limit).abs()
    }

    /// Parses one expression.
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let err = |why: String| ThresholdError {
            expr: expr.to_string(),
            why,
        };
        let text = expr.trim();
        let op_at = text.find(['<', '>', '=', '!']).ok_or_else(|| {
            err("no comparison: write e.g. p99<300ms, errors<1%, rate>450".into())
        })?;
        let (lhs, rest) = text.split_at(op_at);
        let (op, rhs) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|r| (op, r)))
        .ok_or_else(|| err("unknown comparison: use <, <=, >, >=, == or !=".into()))?;
        let lhs = lhs.trim();
        let (name, endpoint) = match lhs.split_once('(') {
            Some((name, ep)) => {
                let ep = ep
                    .strip_suffix(')')
                    .ok_or_else(|| err("the endpoint needs a closing ')'".into()))?
                    .trim();
                if ep.is_empty() {
                    return Err(err("the endpoint in '()' is empty".into()));
                }
                (name.trim(), Some(ep.to_string()))
            }
            None => (lhs, None),
        };
        let rhs = rhs.trim();
        let num_len = rhs
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(rhs.len());
        let value: f64 = rhs[..num_len]
            .parse()
            .map_err(|_| err(format!("{rhs:?} does not start with a number")))?;
        let unit = rhs[num_len..].trim();
        let (metric, limit) = metric_of(expr, name, value, unit)?;
        if endpoint.is_some()
            && matches!(metric, Metric::Rate | Metric::Dropped | Metric::DroppedRate)
        {
            return Err(err(format!("{name} cannot be limited to one endpoint")));
        }
        Ok(Threshold {
            expr: expr.to_string(),
            metric,
            endpoint,
            op,
            limit,
        })
    }

    /// Evaluates on a run's statistics; `duration` is the load's length.
    /// An endpoint the run does not have counts as no requests.
    pub fn evaluate(&self, stats: &Stats, duration: Duration) -> ThresholdResult {
        let endpoint = self
            .endpoint
            .as_ref()
            .map(|name| stats.endpoints.iter().find(|e| &e.name == name));
        let (counts, hist): (stats::Counts, &Hist) = match endpoint {
            None => (stats.counts, &stats.latency),
            Some(Some(ep)) => (ep.counts, &ep.latency),
            Some(None) => (stats::Counts::default(), &stats.latency),
        };
        // Live metrics read the live endpoints' own numbers.
        let merged;
        let (counts, hist) = match self.live_numbers(stats) {
            Some((live_counts, live_hist)) => {
                merged = live_hist;
                (live_counts, merged.as_ref().unwrap_or(hist))
            }
            None => (counts, hist),
        };
        let empty = hist.count() == 0;
        let (actual, text) = match self.metric {
            Metric::Quantile(q)
            | Metric::MessageQuantile(q)
            | Metric::UpgradeQuantile(q)
            | Metric::FirstEventQuantile(q)
            | Metric::GapQuantile(q) => ms(if empty { 0.0 } else { hist.quantile_ms(q) }),
            Metric::Mean => ms(hist.summary().mean),
            Metric::Min => ms(hist.summary().min),
            Metric::Max => ms(hist.summary().max),
            Metric::ErrorRate | Metric::WsErrorRate => {
                let rate = if counts.requests == 0 {
                    0.0
                } else {
                    counts.failed() as f64 / counts.requests as f64
                };
                (rate, format!("{:.2}%", rate * 100.0))
            }
            Metric::ErrorCount | Metric::WsErrorCount => count(counts.failed()),
            Metric::Requests => count(counts.requests),
            Metric::Dropped => count(counts.dropped()),
            Metric::DroppedRate => {
                let due = counts.sessions + counts.dropped();
                let rate = if due == 0 {
                    0.0
                } else {
                    counts.dropped() as f64 / due as f64
                };
                (rate, format!("{:.2}%", rate * 100.0))
            }
            Metric::Rate => {
                let secs = duration.as_secs_f64();
                let rate = if secs > 0.0 {
                    counts.requests as f64 / secs
                } else {
                    0.0
                };
                (rate, format!("{rate:.1}/s"))
            }
        };
        let latency = matches!(
            self.metric,
            Metric::Quantile(_)
                | Metric::Mean
                | Metric::Min
                | Metric::Max
                | Metric::MessageQuantile(_)
                | Metric::UpgradeQuantile(_)
                | Metric::FirstEventQuantile(_)
                | Metric::GapQuantile(_)
        );
        // A latency threshold on a run with no responses did not hold: there
        // is nothing to show it did.
        let ok = !(latency && empty) && self.op.holds(actual, self.limit);
        ThresholdResult {
            expr: self.expr.clone(),
            ok,
            actual,
            actual_text: if latency && empty {
                "no responses".into()
            } else {
                text
            },
        }
    }

    /// For a live metric, the live endpoints' (all, or the one named)
    /// connections and the histogram the metric reads (`None` for
    /// `ws_errors`, which reads counts only); `None` for other metrics.
    fn live_numbers(&self, stats: &Stats) -> Option<(stats::Counts, Option<Hist>)> {
        let pick: Option<fn(&stats::LiveStats) -> Option<&Hist>> = match self.metric {
            Metric::MessageQuantile(_) => Some(|l| Some(&l.round_trip)),
            Metric::UpgradeQuantile(_) => Some(|l| Some(&l.upgrade)),
            Metric::FirstEventQuantile(_) => Some(|l| l.first_event.as_ref()),
            Metric::GapQuantile(_) => Some(|l| l.gaps.as_ref()),
            Metric::WsErrorRate | Metric::WsErrorCount => None,
            _ => return None,
        };
        let live = stats
            .endpoints
            .iter()
            .filter(|e| self.endpoint.as_ref().is_none_or(|name| &e.name == name))
            .filter_map(|e| e.live.as_deref().map(|l| (e, l)));
        let mut counts = stats::Counts::default();
        let mut hist = pick.map(|_| Hist::new());
        for (ep, l) in live {
            counts.merge(&ep.counts);
            if let (Some(h), Some(Some(x))) = (hist.as_mut(), pick.map(|p| p(l))) {
                h.merge(x);
            }
        }
        Some((counts, hist))
    }

    /// Whether an error threshold is already lost beyond doubt, given the
    /// counts so far: for a rate, the 95% Wilson lower bound of the error
    /// rate is above the limit after at least 100 requests; for a count,
    /// the count is past the limit. Other metrics are never clearly lost
    /// early.
    pub fn clearly_lost(&self, requests: u64, failed: u64) -> bool {
        match (self.metric, self.op) {
            (Metric::ErrorRate, Op::Lt | Op::Le) => {
                requests >= 100 && crate::wilson(failed, requests).0 > self.limit
            }
            (Metric::ErrorCount, Op::Lt) => failed as f64 >= self.limit,
            (Metric::ErrorCount, Op::Le) => failed as f64 > self.limit,
            _ => false,
        }
    }
}

/// The metric `name` (with the number and unit after the comparison):
/// what it measures and its limit in the metric's unit.
fn metric_of(
    expr: &str,
    name: &str,
    value: f64,
    unit: &str,
) -> Result<(Metric, f64), ThresholdError> {
    let err = |why: String| ThresholdError {
        expr: expr.to_string(),
        why,
    };
    let latency_ms = |value: f64| -> Result<f64, ThresholdError> {
        match unit {
            "us" | "µs" => Ok(value / 1000.0),
            "ms" => Ok(value),
            "s" => Ok(value * 1000.0),
            "" => Err(err(format!(
                "a latency needs a unit: write {value}ms or {value}s"
            ))),
            other => Err(err(format!("unknown time unit {other:?}: use us, ms or s"))),
        }
    };
    let plain = |value: f64, what: &str| -> Result<f64, ThresholdError> {
        match unit {
            "" => Ok(value),
            "/s" if what == "rate" => Ok(value),
            other => Err(err(format!("{what} takes a plain number, not {other:?}"))),
        }
    };
    Ok(match name {
        "mean" | "avg" => (Metric::Mean, latency_ms(value)?),
        "min" => (Metric::Min, latency_ms(value)?),
        "max" => (Metric::Max, latency_ms(value)?),
        "median" | "med" => (Metric::Quantile(0.5), latency_ms(value)?),
        "errors" | "error_rate" if unit == "%" => (Metric::ErrorRate, value / 100.0),
        "errors" => (Metric::ErrorCount, plain(value, "errors")?),
        "rate" => (Metric::Rate, plain(value, "rate")?),
        "requests" => (Metric::Requests, plain(value, "requests")?),
        "dropped" if unit == "%" => (Metric::DroppedRate, value / 100.0),
        "dropped" => (Metric::Dropped, plain(value, "dropped")?),
        "ws_errors" if unit == "%" => (Metric::WsErrorRate, value / 100.0),
        "ws_errors" => (Metric::WsErrorCount, plain(value, "ws_errors")?),
        p if p.starts_with('p')
            && ["_message", "_upgrade", "_first_event", "_gap"]
                .iter()
                .any(|s| p.ends_with(s)) =>
        {
            let (digits, live) = p[1..].split_once('_').unwrap_or_default();
            let q = parse_quantile(digits).ok_or_else(|| {
                err(format!(
                    "{p:?} is not a percentile: write p50_{live}, p99_{live}, p99.9_{live} ..."
                ))
            })?;
            let metric = match live {
                "message" => Metric::MessageQuantile(q),
                "upgrade" => Metric::UpgradeQuantile(q),
                "first_event" => Metric::FirstEventQuantile(q),
                _ => Metric::GapQuantile(q),
            };
            (metric, latency_ms(value)?)
        }
        p if p.starts_with('p') => {
            let q = parse_quantile(&p[1..]).ok_or_else(|| {
                err(format!("{p:?} is not a percentile: write p50, p90, p99, p99.9 ..."))
            })?;
            (Metric::Quantile(q), latency_ms(value)?)
        }
        other => {
            return Err(err(format!(
                "unknown metric {other:?}{}: use p50..p99.9, median, mean, min, max, errors, rate, requests or dropped (live: p99_message, p99_upgrade, p99_first_event, p99_gap, ws_errors)",
                suggest(other).map(|s| format!(" (did you mean {s}?)")).unwrap_or_default()
            )))
        }
    })
}

fn ms(v: f64) -> (f64, String) {
    (v, format_ms(v))
}

fn count(n: u64) -> (f64, String) {
    (n as f64, n.to_string())
}

/// Milliseconds with enough digits that a value just over a round limit
/// (HDR reports the top of a value's 0.1% bucket: 50 ms reads 50.02 ms)
/// never displays as the limit itself.
fn format_ms(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.2}ms")
    } else {
        format!("{v:.1}ms")
    }
}

/// `99` -> 0.99, `99.9` -> 0.999, `999` -> 0.999 (the usual shorthand).
fn parse_quantile(digits: &str) -> Option<f64> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let pct: f64 = if !digits.contains('.') && digits.len() > 2 && digits.starts_with("99") {
        format!("99.{}", &digits[2..]).parse().ok()?
    } else {
        digits.parse().ok()?
    };
    (pct > 0.0 && pct <= 100.0).then_some(pct / 100.0)
}

fn suggest(word: &str) -> Option<&'static str> {
    const NAMES: [&str; 9] = [
        "p99", "median", "mean", "min", "max", "errors", "rate", "requests", "dropped",
    ];
    NAMES.into_iter().find(|n| {
        let close = strsim(word, n);
        close <= 2
    })
}

/// Edit distance, for "did you mean".
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
