//! A comparison of two runs, schema `throng.compare/v1`: the file, the
//! terminal table and the Markdown table for a pull-request comment.

use std::fmt::Write as _;

use analysis::{Comparison, EndpointComparison, Measure, MeasureComparison, Verdict, MIN_TAIL};
use serde::{Deserialize, Serialize};

use crate::format::fmt_ms;
use crate::Results;

/// The schema id of comparison files.
pub const COMPARE_SCHEMA: &str = "throng.compare/v1";

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// What the user called it: a file name, or an `--ab` arm's name.
    pub name: String,
    /// The target it ran against.
    pub target: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Requests sent.
    pub requests: u64,
}

impl Side {
    /// The side for a run's results, under `name`.
    pub fn of(name: &str, r: &Results) -> Side {
        Side {
            name: name.to_string(),
            target: r.target.clone(),
            started_at: r.started_at.clone(),
            requests: r.totals.requests,
        }
    }
}

/// A comparison file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// Always [`COMPARE_SCHEMA`].
    pub schema: String,
    /// The throng version that wrote it.
    pub throng_version: String,
    /// The baseline.
    pub base: Side,
    /// The candidate.
    pub cand: Side,
    /// Verdicts and intervals.
    #[serde(flatten)]
    pub comparison: Comparison,
}

impl CompareReport {
    /// A report of `comparison` between `base` and `cand`.
    pub fn new(base: Side, cand: Side, comparison: Comparison) -> CompareReport {
        CompareReport {
            schema: COMPARE_SCHEMA.to_string(),
            throng_version: env!("CARGO_PKG_VERSION").to_string(),
            base,
            cand,
            comparison,
        }
    }

    /// Whether any endpoint regressed.
    pub fn regressed(&self) -> bool {
        self.comparison.verdict == Verdict::Regression
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The terminal table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "throng compare: {} against {}",
            describe(&self.cand),
            describe(&self.base)
        );
        let _ = writeln!(out, "  {}\n", self.method());
        let width = self
            .comparison
            .endpoints
            .iter()
            .map(|e| e.endpoint.chars().count())
            .max()
            .unwrap_or(0)
            .max(8);
        let _ = write!(out, "  {:<width$}", "endpoint");
        for m in Measure::ALL {
            let _ = write!(out, "  {:<22}", m.as_str());
        }
        let _ = writeln!(out, "  verdict");
        for e in &self.comparison.endpoints {
            let _ = write!(out, "  {:<width$}", e.endpoint);
            if let Some(note) = &e.note {
                let _ = writeln!(out, "  {note}");
                continue;
            }
            for m in Measure::ALL {
                let cell = measure_of(e, m).map_or("-".to_string(), cell);
                let _ = write!(out, "  {cell:<22}");
            }
            let _ = writeln!(out, "  {}", verdict(e));
        }
        let _ = writeln!(out);
        for line in self.sentences() {
            let _ = writeln!(out, "  {line}");
        }
        out
    }

    /// The comparison as a self-contained HTML page: the verdict, then
    /// each endpoint's measures side by side with their changes.
    pub fn to_html(&self) -> String {
        use crate::html::{esc, page_start, PAGE_END};
        let title = format!(
            "throng compare: {} against {}",
            self.cand.name, self.base.name
        );
        let mut h = page_start(&title);
        let (class, headline) = match self.comparison.verdict {
            Verdict::Regression => ("fail", "Regression"),
            Verdict::Improvement => ("pass", "Improvement"),
            Verdict::NoChange => ("pass", "No significant change"),
        };
        let _ = write!(
            h,
            "<h1>{}</h1><div class=\"meta\">{}</div><div class=\"verdict {class}\" id=\"verdict\">{headline}</div>",
            esc(&title),
            esc(&self.method())
        );
        let _ = write!(
            h,
            "<table id=\"sides\"><thead><tr><th></th><th>name</th><th>target</th><th>started</th><th>requests</th></tr></thead><tbody>"
        );
        for (label, side) in [("base", &self.base), ("candidate", &self.cand)] {
            let _ = write!(
                h,
                "<tr><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&side.name),
                esc(&side.target),
                esc(&side.started_at),
                side.requests
            );
        }
        h.push_str("</tbody></table><h2>Endpoints</h2><table id=\"endpoints\"><thead><tr><th>endpoint</th>");
        for m in Measure::ALL {
            let _ = write!(h, "<th>{}</th>", m.as_str());
        }
        h.push_str("<th>verdict</th></tr></thead><tbody>");
        for e in &self.comparison.endpoints {
            let _ = write!(h, "<tr><td>{}</td>", esc(&e.endpoint));
            if let Some(note) = &e.note {
                let _ = write!(
                    h,
                    "<td colspan=\"{}\">{}</td></tr>",
                    Measure::ALL.len() + 1,
                    esc(note)
                );
                continue;
            }
            for m in Measure::ALL {
                let text = measure_of(e, m).map_or("-".to_string(), |m| {
                    let style = match m.verdict {
                        Verdict::Regression => " style=\"color:#8a1c1c;font-weight:600\"",
                        Verdict::Improvement => " style=\"color:#14632d\"",
                        Verdict::NoChange => "",
                    };
                    format!(
                        "<div>{}</div><div{style}>{}</div>",
                        esc(&values(m)),
                        esc(&cell(m))
                    )
                });
                let _ = write!(h, "<td>{text}</td>");
            }
            let _ = write!(h, "<td>{}</td></tr>", esc(&verdict(e)));
        }
        h.push_str("</tbody></table>");
        h.push_str(PAGE_END);
        h
    }

    /// A Markdown table for a pull-request comment.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let headline = match self.comparison.verdict {
            Verdict::Regression => "**Regression**",
            Verdict::Improvement => "**Improvement**",
            Verdict::NoChange => "**No significant change**",
        };
        let _ = writeln!(
            out,
            "### throng compare: {headline}\n\n`{}` against `{}` ({})\n",
            self.cand.name,
            self.base.name,
            self.method()
        );
        let _ = write!(out, "| endpoint |");
        for m in Measure::ALL {
            let _ = write!(out, " {} |", m.as_str());
        }
        let _ = writeln!(out, " verdict |");
        let _ = writeln!(out, "|---|{}---|", "---:|".repeat(Measure::ALL.len()));
        for e in &self.comparison.endpoints {
            let _ = write!(out, "| `{}` |", e.endpoint.replace('|', "\\|"));
            if let Some(note) = &e.note {
                let _ = write!(out, "{}", " |".repeat(Measure::ALL.len()));
                let _ = writeln!(out, " {note} |");
                continue;
            }
            for m in Measure::ALL {
                let text = measure_of(e, m).map_or("-".to_string(), |m| {
                    let v = values(m);
                    let c = cell(m);
                    if m.verdict == Verdict::NoChange {
                        format!("{v}<br>{c}")
                    } else {
                        format!("{v}<br>**{c}**")
                    }
                });
                let _ = write!(out, " {text} |");
            }
            let _ = writeln!(out, " {} |", verdict(e));
        }
        let sentences = self.sentences();
        if !sentences.is_empty() {
            let _ = writeln!(out);
            for line in sentences {
                let _ = writeln!(out, "- {line}");
            }
        }
        out
    }

    fn method(&self) -> String {
        let c = &self.comparison;
        format!(
            "tolerance {}%; each interval {:.2}% so that all hold together with 95% confidence; {} resamples of {}time windows",
            trim(c.tolerance * 100.0),
            c.level * 100.0,
            c.resamples,
            if c.paired { "paired " } else { "" }
        )
    }

    /// One sentence per endpoint that changed, and the overall verdict.
    fn sentences(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.comparison.endpoints {
            if e.verdict == Verdict::NoChange {
                continue;
            }
            let changed: Vec<String> = e
                .measures
                .iter()
                .filter(|m| m.verdict == e.verdict)
                .map(|m| format!("{} {}", m.measure.as_str(), values(m)))
                .collect();
            out.push(format!(
                "{}: {} ({})",
                e.endpoint,
                e.verdict.as_str(),
                changed.join(", ")
            ));
        }
        let thin = self
            .comparison
            .endpoints
            .iter()
            .flat_map(|e| &e.measures)
            .any(|m| m.change.is_none());
        if thin {
            out.push(format!(
                "too few: a percentile is compared only with {MIN_TAIL} responses above it in each run (p50 needs {}, p90 {}, p99 {})",
                Measure::P50.min_responses(),
                Measure::P90.min_responses(),
                Measure::P99.min_responses()
            ));
        }
        let regressions = self
            .comparison
            .endpoints
            .iter()
            .filter(|e| e.verdict == Verdict::Regression)
            .count();
        out.push(if regressions > 0 {
            format!(
                "{} of {} endpoints regressed beyond the tolerance",
                regressions,
                self.comparison.endpoints.len()
            )
        } else {
            "no endpoint regressed beyond the tolerance".to_string()
        });
        out
    }
}

/// The arms of an A/B run side by side: per endpoint (in the scenario's
/// order), each arm's requests, failures, p50 and p99.
pub fn side_by_side(arms: &[(&str, &Results)]) -> String {
    let mut out = String::new();
    let Some((_, first)) = arms.first() else {
        return out;
    };
    let names: Vec<&str> = first
        .raw
        .endpoints
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let _ = write!(out, "  {:<width$}", "");
    for (name, _) in arms {
        let _ = write!(out, "  {name:<38}");
    }
    let _ = writeln!(out);
    let _ = write!(out, "  {:<width$}", "endpoint");
    for _ in arms {
        let _ = write!(
            out,
            "  {:>8}{:>8}{:>11}{:>11}",
            "requests", "failed", "p50", "p99"
        );
    }
    let _ = writeln!(out);
    for name in names {
        let _ = write!(out, "  {name:<width$}");
        for (_, r) in arms {
            match r.endpoints.get(name) {
                Some(e) => {
                    let _ = write!(
                        out,
                        "  {:>8}{:>8}{:>11}{:>11}",
                        e.requests,
                        e.errors,
                        fmt_ms(e.latency_ms.p50),
                        fmt_ms(e.latency_ms.p99)
                    );
                }
                None => {
                    let _ = write!(out, "  {:>38}", "-");
                }
            }
        }
        let _ = writeln!(out);
    }
    out.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

fn describe(s: &Side) -> String {
    format!("{} ({}, {} requests)", s.name, s.target, s.requests)
}

fn measure_of(e: &EndpointComparison, m: Measure) -> Option<&MeasureComparison> {
    e.measures.iter().find(|x| x.measure == m)
}

/// `×4.12 (3.90–4.35)` for a ratio, `+1.20pt (0.90–1.50)` for the error
/// rate's difference in percentage points, `too few` without an interval.
fn cell(m: &MeasureComparison) -> String {
    let Some(c) = &m.change else {
        return "too few".to_string();
    };
    match m.measure {
        Measure::ErrorRate => format!(
            "{:+.2}pt ({:.2}–{:.2})",
            c.point * 100.0,
            c.low * 100.0,
            c.high * 100.0
        ),
        _ => format!("×{:.2} ({:.2}–{:.2})", c.point, c.low, c.high),
    }
}

/// `38.2ms → 412.0ms`, or `0.00% → 1.20%`.
fn values(m: &MeasureComparison) -> String {
    match m.measure {
        Measure::ErrorRate => format!("{:.2}% → {:.2}%", m.base * 100.0, m.cand * 100.0),
        _ => format!("{} → {}", fmt_ms(m.base), fmt_ms(m.cand)),
    }
}

fn verdict(e: &EndpointComparison) -> String {
    let which: Vec<&str> = e
        .measures
        .iter()
        .filter(|m| m.verdict == e.verdict && m.verdict != Verdict::NoChange)
        .map(|m| m.measure.as_str())
        .collect();
    if which.is_empty() {
        e.verdict.as_str().to_string()
    } else {
        format!("{} ({})", e.verdict.as_str(), which.join(", "))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
