//! Threshold expressions: `p99<300ms`, `errors<1%`, `rate>450`,
//! `p99(GET /login)<400ms`.
//!
//! Grammar: `METRIC [ "(" ENDPOINT ")" ] OP VALUE [UNIT]`, spaces allowed.
//! - METRIC: `p50`, `p90`, `p95`, `p99`, `p99.9` (or `p999`), any `pNN`;
//!   `median`, `mean`, `min`, `max` (latency from the intended send time,
//!   needs a unit `us`, `ms` or `s`); `errors` (with `%`: failed requests
//!   over requests sent; without: a count); `rate` (requests sent per
//!   second of load); `requests`; `dropped` (a count).
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
    /// Arrivals dropped.
    Dropped,
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
        let (metric, limit) = match name {
            "mean" | "avg" => (Metric::Mean, latency_ms(value)?),
            "min" => (Metric::Min, latency_ms(value)?),
            "max" => (Metric::Max, latency_ms(value)?),
            "median" | "med" => (Metric::Quantile(0.5), latency_ms(value)?),
            "errors" | "error_rate" if unit == "%" => (Metric::ErrorRate, value / 100.0),
            "errors" => (Metric::ErrorCount, plain(value, "errors")?),
            "rate" => (Metric::Rate, plain(value, "rate")?),
            "requests" => (Metric::Requests, plain(value, "requests")?),
            "dropped" => (Metric::Dropped, plain(value, "dropped")?),
            p if p.starts_with('p') => {
                let q = parse_quantile(&p[1..]).ok_or_else(|| {
                    err(format!("{p:?} is not a percentile: write p50, p90, p99, p99.9 ..."))
                })?;
                (Metric::Quantile(q), latency_ms(value)?)
            }
            other => {
                return Err(err(format!(
                    "unknown metric {other:?}{}: use p50..p99.9, median, mean, min, max, errors, rate, requests or dropped",
                    suggest(other).map(|s| format!(" (did you mean {s}?)")).unwrap_or_default()
                )))
            }
        };
        if endpoint.is_some() && matches!(metric, Metric::Rate | Metric::Dropped) {
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
        let empty = hist.count() == 0;
        let (actual, text) = match self.metric {
            Metric::Quantile(q) => ms(if empty { 0.0 } else { hist.quantile_ms(q) }),
            Metric::Mean => ms(hist.summary().mean),
            Metric::Min => ms(hist.summary().min),
            Metric::Max => ms(hist.summary().max),
            Metric::ErrorRate => {
                let rate = if counts.requests == 0 {
                    0.0
                } else {
                    counts.failed() as f64 / counts.requests as f64
                };
                (rate, format!("{:.2}%", rate * 100.0))
            }
            Metric::ErrorCount => count(counts.failed()),
            Metric::Requests => count(counts.requests),
            Metric::Dropped => count(counts.dropped()),
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
            Metric::Quantile(_) | Metric::Mean | Metric::Min | Metric::Max
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
