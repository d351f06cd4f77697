//! The capacity search's file (`throng.capacity/v1`) and its HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::format::{fmt_level, fmt_ms, fmt_rate};
use crate::html::{esc, page_start, Chart, Series, PAGE_END};

/// The capacity file's schema id.
pub const CAPACITY_SCHEMA: &str = "throng.capacity/v1";

/// One step of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Arrivals per second, or users.
    pub level: f64,
    /// How long the load ran.
    pub duration_s: f64,
    /// Requests that ended.
    pub requests: u64,
    /// Requests per second achieved.
    pub achieved_rate: f64,
    /// Latency percentiles, from the intended send time.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Failed requests over requests.
    pub error_rate: f64,
    /// Every SLO held.
    pub held: bool,
    /// An SLO was within 10% of its limit.
    pub borderline: bool,
    /// Each SLO's verdict.
    pub slos: Vec<SloRow>,
    /// p99 per endpoint, ms.
    pub endpoints_p99_ms: BTreeMap<String, f64>,
    /// What the server was doing during the step, when it was watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<analysis::ServerSide>,
}

/// One SLO at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloRow {
    /// The expression.
    pub expr: String,
    /// Whether it held.
    pub ok: bool,
    /// The measured value for people.
    pub actual: String,
}

/// The endpoint that degraded most between the lowest step and the first
/// that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bottleneck {
    /// The endpoint.
    pub endpoint: String,
    /// Its p99 at the lowest step.
    pub p99_low_ms: f64,
    /// Its p99 at the first failed step.
    pub p99_high_ms: f64,
    /// The lowest step's level.
    pub level_low: f64,
    /// The failed step's level.
    pub level_high: f64,
}

/// The search's results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResults {
    /// Always [`CAPACITY_SCHEMA`].
    pub schema: String,
    /// The throng version.
    pub throng_version: String,
    /// `arrivals` (per second, open model) or `users` (closed model).
    pub mode: String,
    /// The target's URL.
    pub target: String,
    /// The SLO expressions.
    pub slos: Vec<String>,
    /// `completed`, `interrupted`, `time_limit` or `unhealthy`.
    pub status: String,
    /// The highest level that held every SLO (the sustainable level).
    pub sustainable: Option<f64>,
    /// The lowest level that broke an SLO.
    pub failed_at: Option<f64>,
    /// The SLO(s) that broke at `failed_at`.
    pub first_broken: Vec<SloRow>,
    /// The endpoint that degraded most.
    pub bottleneck: Option<Bottleneck>,
    /// What the server was doing at `failed_at`, against the last level
    /// that held, when it was watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_at_failure: Option<String>,
    /// Every step, in the order run.
    pub steps: Vec<StepRow>,
}

impl CapacityResults {
    /// The search as a self-contained HTML page: the sustainable level,
    /// the curve of p99 and achieved rate against the level tried, and
    /// every step.
    pub fn to_html(&self) -> String {
        let unit = if self.mode == "users" {
            "users"
        } else {
            "arrivals/s"
        };
        let title = format!("throng capacity: {}", self.target);
        let mut h = page_start(&title);
        let verdict = match (self.sustainable, self.failed_at) {
            (Some(s), Some(f)) => format!(
                "Sustainable: {} {unit} (broke at {})",
                fmt_level(s),
                fmt_level(f)
            ),
            (Some(s), None) => format!(
                "Sustainable: {} {unit}, the highest level tried",
                fmt_level(s)
            ),
            (None, _) => "No level held every SLO".to_string(),
        };
        let class = if self.sustainable.is_some() {
            "pass"
        } else {
            "fail"
        };
        let _ = write!(
            h,
            "<h1>{}</h1><div class=\"meta\">SLOs: {} &middot; search {} &middot; throng {}</div><div class=\"verdict {class}\" id=\"verdict\">{}</div>",
            esc(&title),
            esc(&self.slos.join(", ")),
            esc(&self.status),
            esc(&self.throng_version),
            esc(&verdict)
        );
        if !self.first_broken.is_empty() {
            let broken: Vec<String> = self
                .first_broken
                .iter()
                .map(|s| format!("{} (actual {})", s.expr, s.actual))
                .collect();
            let _ = write!(h, "<p>First broken: {}</p>", esc(&broken.join(", ")));
        }
        if let Some(b) = &self.bottleneck {
            let _ = write!(
                h,
                "<p>Bottleneck: <b>{}</b>, p99 {} at {} {unit}, {} at {}.</p>",
                esc(&b.endpoint),
                fmt_ms(b.p99_low_ms),
                fmt_level(b.level_low),
                fmt_ms(b.p99_high_ms),
                fmt_level(b.level_high)
            );
        }
        if let Some(server) = &self.server_at_failure {
            let _ = write!(h, "<p>Server: {}</p>", esc(server));
        }
        self.curves(&mut h, unit);
        h.push_str("</div><h2>Steps, in the order run</h2><table id=\"steps\"><thead><tr><th>level</th><th>duration</th><th>requests</th><th>achieved</th><th>p50</th><th>p99</th><th>errors</th><th>verdict</th></tr></thead><tbody>");
        for s in &self.steps {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.0}s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{}</td></tr>",
                fmt_level(s.level),
                s.duration_s,
                s.requests,
                fmt_rate(s.achieved_rate),
                fmt_ms(s.p50_ms),
                fmt_ms(s.p99_ms),
                s.error_rate * 100.0,
                match (s.held, s.borderline) {
                    (true, false) => "held",
                    (true, true) => "held (borderline)",
                    (false, _) => "broke",
                }
            );
        }
        h.push_str("</tbody></table>");
        h.push_str(PAGE_END);
        h
    }

    /// The capacity curve: latency, and the achieved rate, against the
    /// level tried.
    fn curves(&self, h: &mut String, unit: &str) {
        let mut steps: Vec<&StepRow> = self.steps.iter().collect();
        steps.sort_by(|a, b| a.level.total_cmp(&b.level));
        let x_max = steps.last().map_or(1.0, |s| s.level) * 1.05;
        let curve = |f: &dyn Fn(&StepRow) -> f64| -> Vec<(f64, f64)> {
            steps.iter().map(|s| (s.level, f(s))).collect()
        };
        h.push_str("<h2>Capacity curve</h2><div id=\"charts\">");
        h.push_str(
            &Chart {
                title: "Latency against load",
                y_unit: "ms",
                x_label: unit,
                x_max,
                percentile_axis: false,
                markers: &[],
                series: vec![
                    Series {
                        name: "p50".into(),
                        points: curve(&|s| s.p50_ms),
                        dashed: false,
                    },
                    Series {
                        name: "p99".into(),
                        points: curve(&|s| s.p99_ms),
                        dashed: false,
                    },
                ],
            }
            .svg(),
        );
        h.push_str(
            &Chart {
                title: "Achieved against offered",
                y_unit: "requests/s",
                x_label: unit,
                x_max,
                percentile_axis: false,
                markers: &[],
                series: vec![Series {
                    name: "achieved".into(),
                    points: curve(&|s| s.achieved_rate),
                    dashed: false,
                }],
            }
            .svg(),
        );
    }
}
