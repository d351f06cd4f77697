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
    /// Why the run's generator may have been the limit, when it may have
    /// (`generator.reasons` of its results): the machine was busy, and
    /// what the run measured is partly the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_late: Option<String>,
}

impl Side {
    /// The side for a run's results, under `name`.
    pub fn of(name: &str, r: &Results) -> Side {
        Side {
            name: name.to_string(),
            target: r.target.clone(),
            started_at: r.started_at.clone(),
            requests: r.totals.requests,
            generator_late: r
                .generator
                .saturated
                .then(|| r.generator.reasons.join("; ")),
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
    /// The baseline: the one file, or, for several runs of it pooled,
    /// their names joined by `, `, the first's target and start, and their
    /// requests summed.
    pub base: Side,
    /// Each baseline run, when there were several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<Side>,
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
            baselines: Vec::new(),
            cand,
            comparison,
        }
    }

    /// A report of `comparison` between several baseline runs, pooled,
    /// and `cand`.
    pub fn with_baselines(
        mut bases: Vec<Side>,
        cand: Side,
        comparison: Comparison,
    ) -> CompareReport {
        if bases.len() == 1 {
            let base = bases.remove(0);
            return CompareReport::new(base, cand, comparison);
        }
        let base = Side {
            name: bases
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            target: bases.first().map(|b| b.target.clone()).unwrap_or_default(),
            started_at: bases
                .first()
                .map(|b| b.started_at.clone())
                .unwrap_or_default(),
            requests: bases.iter().map(|b| b.requests).sum(),
            generator_late: None,
        };
        CompareReport {
            baselines: bases,
            ..CompareReport::new(base, cand, comparison)
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
        let _ = writeln!(out, "  {}", self.method());
        let _ = writeln!(out, "  {}\n", self.trust());
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
            "<h1>{}</h1><div class=\"meta\">{}</div><p id=\"trust\">{}</p><div class=\"verdict {class}\" id=\"verdict\">{headline}</div>",
            esc(&title),
            esc(&self.method()),
            esc(&self.trust())
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
            "### throng compare: {headline}\n\n`{}` against `{}` ({})\n\n{}\n",
            self.cand.name,
            self.base.name,
            self.method(),
            self.trust()
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

    /// How the verdicts were reached: tolerance, the intervals' levels and
    /// what they resampled.
    fn method(&self) -> String {
        let c = &self.comparison;
        let floor = if c.min_change_ms > 0.0 {
            format!(" or {}", fmt_ms(c.min_change_ms))
        } else {
            String::new()
        };
        format!(
            "tolerance {}%{floor}; each interval {:.2}% so that all hold together with 95% confidence; {} resamples of {}time windows",
            trim(c.tolerance * 100.0),
            c.level * 100.0,
            c.resamples,
            if c.paired { "paired " } else { "" }
        )
    }

    /// One line on how far to trust the verdict: the mode, the baselines
    /// used, the noise seen and what the intervals cover.
    pub fn trust(&self) -> String {
        let c = &self.comparison;
        let late: Vec<String> = self
            .baselines
            .iter()
            .chain([&self.base, &self.cand])
            .filter_map(|s| Some(format!("{} ({})", s.name, s.generator_late.as_ref()?)))
            .collect();
        let late = if late.is_empty() {
            String::new()
        } else {
            format!(
                " Beware: the generator itself fell behind in {}; the machine was busy then, and a change may be the machine's.",
                late.join(", ")
            )
        };
        if c.paired {
            return format!("Trust: one interleaved A/B run; both arms saw the same machine, paired window by window, so noise they shared cancels; the intervals cover sampling.{late}");
        }
        let runs = match c.baseline_runs {
            1 => "separate runs, one baseline".to_string(),
            n => format!("separate runs, {n} baselines"),
        };
        let noisiest = c
            .endpoints
            .iter()
            .flat_map(|e| e.measures.iter().map(move |m| (e, m)))
            .filter_map(|(e, m)| Some((m.noise?, e, m)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let from = if c.baseline_runs > 1 {
            "the runs' halves and the baselines' spread"
        } else {
            "the runs' halves"
        };
        let seen = match noisiest {
            Some((n, e, m)) if n > 1.0005 => format!(
                "run-to-run noise up to ×{n:.2} ({} of {}, from {from})",
                m.measure.as_str(),
                e.endpoint
            ),
            Some(_) => format!("no run-to-run noise beyond sampling (from {from})"),
            None => "no latency compared".to_string(),
        };
        let floor = if c.min_change_ms > 0.0 {
            format!(" and ignore changes under {}", fmt_ms(c.min_change_ms))
        } else {
            String::new()
        };
        let sharper = if c.baseline_runs > 1 {
            "--ab is sharper"
        } else {
            "more baselines or --ab are sharper"
        };
        format!(
            "Trust: {runs}; the intervals include {seen}{floor}; drift between runs beyond that is not covered: {sharper}.{late}"
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
