//! The HTML report: one self-contained file a person opens after a run.
//!
//! Charts are inline SVG drawn here, so the file fetches nothing, works
//! offline and prints. Every text that came from a scenario, a target or a
//! command line is escaped ([`esc`]): a response body or an endpoint name
//! holding `<script>` is shown, never run.

use std::fmt::Write as _;

use crate::format::{fmt_ms, fmt_rate};
use crate::results::{Results, Status};

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1000px;padding:24px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e8;padding-bottom:4px}
.meta{color:#5b6475}.verdict{padding:12px 16px;border-radius:6px;font-weight:600;margin:16px 0}
.pass{background:#e5f6ea;color:#14632d}.fail{background:#fde8e8;color:#8a1c1c}.warn{background:#fff4dd;color:#7a4b00}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}th,td{text-align:right;padding:4px 8px;border-bottom:1px solid #eceff4}
th:first-child,td:first-child{text-align:left}th{font-weight:600;color:#3b4252}
.finding{margin:8px 0;padding:8px 12px;border-left:4px solid #9aa3b2;background:#f7f8fa}
.finding.critical{border-color:#c62828}.finding.warning{border-color:#e69500}.finding.info{border-color:#2e7d32}
.finding .ev{color:#5b6475;font-size:13px}.sev{font-size:11px;font-weight:700;text-transform:uppercase;margin-right:6px}
svg{display:block;margin:4px 0 12px}svg text{font:11px system-ui,sans-serif;fill:#3b4252}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
code{background:#f2f4f7;padding:1px 4px;border-radius:3px;word-break:break-all}
@media print{body{max-width:none}}
";

/// Colours of chart series, in order.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One line of a chart.
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
    pub(crate) dashed: bool,
}

/// A line chart over `0..x_max`, with vertical markers (stage boundaries).
pub(crate) struct Chart<'a> {
    pub(crate) title: &'a str,
    pub(crate) y_unit: &'a str,
    /// What the x axis counts: `s` (seconds) or a unit of load.
    pub(crate) x_label: &'a str,
    pub(crate) x_max: f64,
    /// A logarithmic x axis of percentiles (the latency spectrum).
    pub(crate) percentile_axis: bool,
    pub(crate) markers: &'a [f64],
    pub(crate) series: Vec<Series>,
}

const W: f64 = 940.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 30.0;

/// A round number at or above `x` for an axis top: 1, 2 or 5 times a power of ten.
fn nice(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * p)
}

fn fmt_tick(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart<'_> {
    /// The chart as inline SVG, its legend above it.
    pub(crate) fn svg(&self) -> String {
        let axes = Axes::of(self);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 {W} {H}" width="100%"><text x="{LEFT}" y="14" style="font-weight:600">{t} ({u})</text>"#,
            t = esc(self.title),
            u = esc(self.y_unit)
        );
        // Horizontal grid and y ticks.
        for i in 0..=4 {
            let v = axes.y_max * f64::from(i) / 4.0;
            let y = axes.y(v);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e7ee"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v}</text>"##,
                x2 = W - RIGHT,
                tx = LEFT - 6.0,
                ty = y + 4.0,
                v = fmt_tick(v)
            );
        }
        self.x_ticks(&axes, &mut s);
        for &m in self.markers {
            let x = axes.x(m);
            let _ = write!(
                s,
                r##"<line class="stage" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{y2}" stroke="#9aa3b2" stroke-dasharray="4 3"/>"##,
                y2 = TOP + axes.plot_h
            );
        }
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b}" stroke="#9aa3b2"/><line x1="{LEFT}" x2="{r}" y1="{b}" y2="{b}" stroke="#9aa3b2"/>"##,
            b = TOP + axes.plot_h,
            r = W - RIGHT
        );
        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", axes.x(x), axes.y(y)))
                .collect();
            let _ = write!(
                s,
                r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{p}"><title>{n}</title></polyline>"#,
                dash = if series.dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                },
                p = points.join(" "),
                n = esc(&series.name)
            );
        }
        s.push_str("</svg>");
        self.legend() + &s
    }

    /// The x axis's labels: percentiles, or round steps of seconds or load.
    fn x_ticks(&self, axes: &Axes, s: &mut String) {
        if self.percentile_axis {
            for (q, label) in [
                (0.0, "p0"),
                (0.9, "p90"),
                (0.99, "p99"),
                (0.999, "p99.9"),
                (0.9999, "p99.99"),
                (0.99999, "p99.999"),
            ] {
                let x = axes.x(q);
                let anchor = if q > 0.9999 { "end" } else { "middle" };
                let _ = write!(
                    s,
                    r#"<text x="{x:.1}" y="{y}" text-anchor="{anchor}">{label}</text>"#,
                    y = H - 10.0
                );
            }
            return;
        }
        let step = nice(self.x_max / 10.0);
        let mut t = 0.0;
        while t <= self.x_max + 1e-9 {
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{y}" text-anchor="middle">{t}{unit}</text>"#,
                x = axes.x(t),
                y = H - 10.0,
                t = fmt_tick(t),
                unit = if self.x_label == "s" { "s" } else { "" }
            );
            t += step;
        }
    }

    fn legend(&self) -> String {
        let mut legend = String::from(r#"<div class="legend">"#);
        for (i, series) in self.series.iter().enumerate() {
            let _ = write!(
                legend,
                r#"<span><i style="background:{}"></i>{}</span>"#,
                PALETTE[i % PALETTE.len()],
                esc(&series.name)
            );
        }
        legend.push_str("</div>");
        legend
    }
}

/// Where a chart's values fall on its plot.
struct Axes {
    y_max: f64,
    x_max: f64,
    percentile_axis: bool,
    plot_w: f64,
    plot_h: f64,
}

impl Axes {
    fn of(chart: &Chart<'_>) -> Axes {
        Axes {
            y_max: nice(
                chart
                    .series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.1))
                    .fold(0.0, f64::max),
            ),
            x_max: chart.x_max,
            percentile_axis: chart.percentile_axis,
            plot_w: W - LEFT - RIGHT,
            plot_h: H - TOP - BOTTOM,
        }
    }

    /// The percentile axis maps q to -log10(1 - q): 0 at p0, 2 at p99.
    fn x(&self, x: f64) -> f64 {
        let frac = if self.percentile_axis {
            -(1.0 - x).max(1e-6).log10() / 5.0
        } else {
            x / self.x_max.max(1e-9)
        };
        LEFT + frac.clamp(0.0, 1.0) * self.plot_w
    }

    fn y(&self, y: f64) -> f64 {
        TOP + self.plot_h - (y / self.y_max).clamp(0.0, 1.0) * self.plot_h
    }
}

/// The start of a page: its head (title, style) and the opening body.
pub(crate) fn page_start(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    )
}

/// The page's end.
pub(crate) const PAGE_END: &str = "</body></html>\n";

/// The report of a run.
pub fn html(r: &Results) -> String {
    let title = format!("throng report: {}", r.target);
    let mut h = page_start(&title);
    let _ = write!(
        h,
        "<h1>{}</h1><div class=\"meta\">{} model, {:.1}s of load, started {} &middot; throng {}</div>",
        esc(&title),
        esc(&r.model),
        r.duration_s,
        esc(&r.started_at),
        esc(&r.throng_version)
    );
    verdict(&mut h, r);
    findings(&mut h, r);
    charts(&mut h, r);
    tables(&mut h, r);
    metadata(&mut h, r);
    h.push_str(PAGE_END);
    h
}

fn verdict(h: &mut String, r: &Results) {
    let failed: Vec<&str> = r
        .thresholds
        .iter()
        .filter(|t| !t.ok)
        .map(|t| t.expr.as_str())
        .collect();
    let recovery_failed = r.recovery.as_ref().is_some_and(|rec| !rec.ok);
    let (class, text) = match r.status {
        Status::Interrupted => ("warn", "Interrupted before its planned end".to_string()),
        Status::Running => (
            "warn",
            "A checkpoint written during the run: it had not ended (or was killed)".to_string(),
        ),
        Status::Aborted => (
            "fail",
            format!(
                "Aborted{}",
                r.stop_reason
                    .as_deref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            ),
        ),
        Status::Completed if !failed.is_empty() => {
            ("fail", format!("Failed: {}", failed.join(", ")))
        }
        Status::Completed if recovery_failed => ("fail", "Failed: goodput did not recover".into()),
        Status::Completed if r.thresholds.is_empty() => {
            ("pass", "Completed (no thresholds were set)".into())
        }
        Status::Completed => ("pass", "Passed: every threshold held".into()),
    };
    let t = &r.totals;
    let _ = write!(
        h,
        "<div class=\"verdict {class}\" id=\"verdict\">{}</div><p>{} requests, {} failed ({:.2}%), {} dropped; {}; p50 {}, p99 {}.</p>",
        esc(&text),
        t.requests,
        t.errors,
        t.error_rate * 100.0,
        t.dropped,
        fmt_rate(t.rate),
        fmt_ms(r.latency_ms.p50),
        fmt_ms(r.latency_ms.p99)
    );
    let _ = write!(
        h,
        "<p id=\"connections\">Connections: {} opened",
        t.connections_opened
    );
    if t.connections_closed_idle > 0 {
        let _ = write!(
            h,
            "; {} found closed by the target while idle and replaced (nothing was sent on them)",
            t.connections_closed_idle
        );
    }
    if t.resent > 0 {
        let _ = write!(
            h,
            ". Re-sent: {} requests went again on a new connection after a reused one closed before any byte of their response (resend {}); the target saw up to {} requests",
            t.resent,
            esc(r.load.resend_policy()),
            t.requests + t.resent
        );
    }
    h.push_str(".</p>");
}

fn findings(h: &mut String, r: &Results) {
    h.push_str("<h2>Findings</h2><div id=\"findings\">");
    if r.findings.is_empty() {
        h.push_str("<p>None: nothing broke that throng could tell.</p>");
    }
    for f in &r.findings {
        let sev = f.severity.as_str();
        let _ = write!(
            h,
            "<div class=\"finding {}\"><span class=\"sev\">{}</span>{}<div class=\"ev\">{}</div>{}</div>",
            esc(&sev.to_ascii_lowercase()),
            esc(sev),
            esc(&f.what),
            esc(&f.evidence),
            f.server
                .as_ref()
                .map(|s| format!("<div class=\"ev server\">server: {}</div>", esc(&s.text)))
                .unwrap_or_default()
        );
    }
    h.push_str("</div>");
}

/// Where the planned load changes: the ends of its stages.
fn stage_marks(r: &Results) -> Vec<f64> {
    let mut marks = Vec::new();
    let mut t = 0.0;
    let mut prev = 0.0;
    for &(target, secs) in &r.load.stages {
        if secs == 0.0 && target != prev && !marks.contains(&t) {
            marks.push(t);
        }
        t += secs;
        prev = target;
    }
    marks
}

/// The charts over time, then the latency distribution.
fn charts(h: &mut String, r: &Results) {
    h.push_str("<h2>Over time</h2><div id=\"charts\">");
    let t = OverTime::new(r);
    let closed = r.model == "closed";
    let mut out = vec![rate_chart(&t, closed)];
    if closed {
        out.push(t.chart(
            "Virtual users",
            "planned",
            vec![Series {
                name: "users".into(),
                points: t.planned(),
                dashed: true,
            }],
        ));
    } else {
        out.push(in_flight_chart(&t));
    }
    out.push(t.chart(
        "Latency from the intended send time",
        "ms",
        vec![
            t.line("p50", |row| row.p50_ms, false),
            t.line("p90", |row| row.p90_ms, false),
            t.line("p99", |row| row.p99_ms, false),
        ],
    ));
    out.extend(server_charts(&t));
    out.extend(errors_chart(&t));
    out.extend(sockets_chart(&t));
    if r.retries.is_some() {
        let w = t.w;
        out.push(t.chart(
            "Retries and goodput",
            "per second",
            vec![
                t.line("requests", |row| row.requests as f64 / w, true),
                t.line(
                    "attempts",
                    |row| row.attempts.unwrap_or(0) as f64 / w,
                    false,
                ),
                t.line("goodput", |row| row.goodput.unwrap_or(0) as f64 / w, false),
            ],
        ));
    }
    for chart in out {
        h.push_str(&chart);
    }
    h.push_str("</div>");
    server_table(h, r);
    h.push_str("<h2>Latency distribution</h2>");
    distribution(h, r);
}

/// A scraped or sampled series as points on the time axis (a value sits
/// in the middle of its row; rows without a reading are left out).
fn server_points(t: &OverTime<'_>, s: &observe::Series, scale: f64) -> Vec<(f64, f64)> {
    s.points()
        .map(|(i, v)| ((i as f64 + 0.5) * t.w, v * scale))
        .collect()
}

/// What the server was doing, on the latency chart's time axis: each
/// gauge against its limit, each series a finding names, and the watched
/// processes' CPU and memory. The rest are in the table below the charts.
fn server_charts(t: &OverTime<'_>) -> Vec<String> {
    let Some(server) = &t.r.server else {
        return Vec::new();
    };
    let line = |s: &observe::Series, dashed: bool, scale: f64| Series {
        name: s.name.clone(),
        points: server_points(t, s, scale),
        dashed,
    };
    let mut out = Vec::new();
    let mut shown: Vec<&str> = Vec::new();
    for (u, l) in server.limit_pairs() {
        let (usage, limit) = (&server.series[u], &server.series[l]);
        // A gauge that never came within half of its limit says nothing.
        if usage.max().unwrap_or(0.0) < 0.5 * limit.max().unwrap_or(0.0) {
            continue;
        }
        shown.extend([usage.name.as_str(), limit.name.as_str()]);
        out.push(t.chart(
            &format!("Server: {} against its limit", usage.name),
            "gauge",
            vec![line(usage, false, 1.0), line(limit, true, 1.0)],
        ));
    }
    // The series the findings name, each on its own axis.
    let named =
        t.r.findings
            .iter()
            .filter_map(|f| f.server.as_ref())
            .flat_map(|s| {
                s.ceilings
                    .iter()
                    .map(|c| c.series.as_str())
                    .chain(s.in_step.iter().map(|i| i.series.as_str()))
            });
    for name in named {
        if shown.contains(&name) {
            continue;
        }
        let Some(s) = server.get(name) else { continue };
        shown.push(name);
        let unit = match s.kind {
            observe::SeriesKind::Rate => "per second",
            observe::SeriesKind::Quantile => "quantile",
            observe::SeriesKind::Gauge => "gauge",
        };
        out.push(t.chart(&format!("Server: {name}"), unit, vec![line(s, false, 1.0)]));
    }
    // Processes: CPU against the machine's, and memory.
    let of = |source: usize, metric: &str| server.of(source, metric);
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    for (i, src) in server.sources.iter().enumerate() {
        if src.kind != observe::SourceKind::Process {
            continue;
        }
        if src.target == observe::MACHINE {
            for (metric, name) in [
                ("machine_cpu_busy_cores", "machine, all processes"),
                ("machine_throng_cores", "throng itself"),
            ] {
                if let Some(s) = of(i, metric) {
                    cpu.push(Series {
                        name: name.into(),
                        points: server_points(t, s, 1.0),
                        dashed: true,
                    });
                }
            }
            continue;
        }
        if let (Some(user), Some(system)) = (
            of(i, "process_cpu_user_cores"),
            of(i, "process_cpu_system_cores"),
        ) {
            let points = user
                .points()
                .filter_map(|(b, u)| {
                    Some((
                        (b as f64 + 0.5) * t.w,
                        u + system.values.get(b).copied().flatten()?,
                    ))
                })
                .collect();
            cpu.push(Series {
                name: src.target.clone(),
                points,
                dashed: false,
            });
        }
        if let Some(rss) = of(i, "process_rss_bytes") {
            memory.push(Series {
                name: src.target.clone(),
                points: server_points(t, rss, 1.0 / 1048576.0),
                dashed: false,
            });
        }
    }
    if !cpu.is_empty() {
        out.push(t.chart("Server: CPU used (user and system)", "cores", cpu));
    }
    if !memory.is_empty() {
        out.push(t.chart("Server: resident memory", "MiB", memory));
    }
    out
}

/// Every series read, with how its reads went: a table under the charts.
fn server_table(h: &mut String, r: &Results) {
    let Some(server) = &r.server else {
        return;
    };
    h.push_str("<h2>Server</h2><table id=\"server-sources\"><thead><tr><th>source</th><th>readings</th><th>failed</th><th>bad lines</th><th>series</th></tr></thead><tbody>");
    for (i, src) in server.sources.iter().enumerate() {
        let failed: Vec<String> = src.failed.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            esc(&src.target),
            src.readings,
            esc(&failed.join(", ")),
            src.first_error
                .as_ref()
                .map(|e| format!(" ({})", esc(e)))
                .unwrap_or_default(),
            src.bad_lines,
            server.series.iter().filter(|s| s.source == i).count()
        );
    }
    h.push_str("</tbody></table><details><summary>Every series read: its mean and largest value</summary><table id=\"server-series\"><thead><tr><th>series</th><th>kind</th><th>mean</th><th>max</th></tr></thead><tbody>");
    for s in &server.series {
        let kind = match s.kind {
            observe::SeriesKind::Rate => "rate /s",
            observe::SeriesKind::Quantile => "quantile",
            observe::SeriesKind::Gauge => "gauge",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{kind}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            fmt_value(s.mean_from(0).unwrap_or(0.0)),
            fmt_value(s.max().unwrap_or(0.0))
        );
    }
    h.push_str("</tbody></table></details>");
}

/// A reading for people: up to 4 significant digits.
fn fmt_value(v: f64) -> String {
    if v == v.round() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// What the charts over time share: the timeline, its x axis (seconds;
/// rows are a second long, or `timeline_s` seconds in a long run, and
/// points sit in the middle of their row) and the stages marked on it.
struct OverTime<'a> {
    r: &'a Results,
    /// A row's length in seconds: counts divided by it become rates.
    w: f64,
    x_max: f64,
    marks: Vec<f64>,
}

impl<'a> OverTime<'a> {
    fn new(r: &'a Results) -> OverTime<'a> {
        let w = r.timeline_s.max(1) as f64;
        OverTime {
            r,
            w,
            x_max: (r.timeline.len() as f64 * w).max(r.duration_s).max(1.0),
            marks: stage_marks(r),
        }
    }

    /// A series of one value per timeline row.
    fn line(
        &self,
        name: &str,
        f: impl Fn(&crate::results::TimelineRow) -> f64,
        dashed: bool,
    ) -> Series {
        Series {
            name: name.into(),
            points: self
                .r
                .timeline
                .iter()
                .map(|row| (row.t as f64 + self.w / 2.0, f(row)))
                .collect(),
            dashed,
        }
    }

    /// The planned level (arrivals/s or users) in each row.
    fn planned(&self) -> Vec<(f64, f64)> {
        self.r
            .load
            .level_per_bucket(self.r.timeline.len(), self.r.timeline_s)
            .into_iter()
            .enumerate()
            .map(|(t, v)| ((t as f64 + 0.5) * self.w, v))
            .collect()
    }

    fn chart(&self, title: &str, y_unit: &str, series: Vec<Series>) -> String {
        Chart {
            title,
            y_unit,
            x_label: "s",
            x_max: self.x_max,
            percentile_axis: false,
            markers: &self.marks,
            series,
        }
        .svg()
    }
}

/// Offered and achieved rates, like with like: arrivals planned against
/// sessions started (an arrival is a session, however many requests its
/// journey makes), requests on their own line; and what was dropped or
/// re-sent.
fn rate_chart(t: &OverTime<'_>, closed: bool) -> String {
    let (r, w) = (t.r, t.w);
    let mut rate = Vec::new();
    if !closed {
        rate.push(Series {
            name: "offered (arrivals/s planned)".into(),
            points: t.planned(),
            dashed: true,
        });
    }
    if r.totals.sessions > 0 {
        rate.push(t.line(
            "achieved (sessions started/s)",
            |row| row.sessions as f64 / w,
            false,
        ));
    }
    rate.push(t.line("requests/s", |row| row.requests as f64 / w, false));
    if r.totals.dropped > 0 {
        rate.push(t.line("dropped/s", |row| row.dropped as f64 / w, false));
    }
    if r.totals.resent > 0 {
        rate.push(t.line("resent/s", |row| row.resent as f64 / w, false));
    }
    t.chart("Rate", "per second", rate)
}

/// Little's law per row: arrivals x their mean time in the system.
fn in_flight_chart(t: &OverTime<'_>) -> String {
    let w = t.w;
    let in_flight: Vec<(f64, f64)> =
        t.r.raw
            .timeline
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let latency = b.latency.hist();
                let mean_s = if latency.count() > 0 {
                    latency.inner().mean() / 1e6
                } else {
                    0.0
                };
                ((i as f64 + 0.5) * w, b.counts.requests as f64 / w * mean_s)
            })
            .collect();
    t.chart(
        "Requests in flight (estimated: requests x mean latency)",
        "requests",
        vec![Series {
            name: "in flight".into(),
            points: in_flight,
            dashed: false,
        }],
    )
}

/// WebSockets open at the end of each row, per WebSocket endpoint; none
/// when the run opened none.
fn sockets_chart(t: &OverTime<'_>) -> Option<String> {
    let w = t.w;
    let series: Vec<Series> =
        t.r.live_endpoints()
            .map(|(name, l)| Series {
                name: name.clone(),
                points: l
                    .open
                    .iter()
                    .enumerate()
                    .map(|(i, n)| ((i as f64 + 1.0) * w, *n as f64))
                    .collect(),
                dashed: false,
            })
            .collect();
    (!series.is_empty()).then(|| {
        t.chart(
            "Live connections open (WebSockets, event streams)",
            "connections",
            series,
        )
    })
}

/// Failures by kind per second, and responses with a failed check; none
/// when there were neither.
fn errors_chart(t: &OverTime<'_>) -> Option<String> {
    let (r, w) = (t.r, t.w);
    let mut errors: Vec<Series> = r
        .errors
        .nonzero()
        .filter(|(k, _)| k.as_str() != "dropped")
        .map(|(kind, _)| {
            t.line(
                kind.as_str(),
                |row| row.error_kinds.get(kind) as f64 / w,
                false,
            )
        })
        .collect();
    if r.totals.check_failures > 0 {
        errors.push(t.line(
            "responses with a failed check",
            |row| row.check_failures as f64 / w,
            true,
        ));
    }
    (!errors.is_empty()).then(|| t.chart("Errors by kind", "per second", errors))
}

/// Latency by percentile, on a logarithmic axis of percentiles.
fn distribution(h: &mut String, r: &Results) {
    if r.raw.latency.count() == 0 {
        h.push_str("<p>No responses: nothing to draw.</p>");
        return;
    }
    let quantiles: Vec<(f64, f64)> = (0..=100)
        .map(|i| {
            let q = 1.0 - 10f64.powf(-5.0 * f64::from(i) / 100.0);
            (q, r.raw.latency.quantile_ms(q))
        })
        .collect();
    h.push_str(
        &Chart {
            title: "Latency by percentile",
            y_unit: "ms",
            x_label: "percentile",
            x_max: 1.0,
            percentile_axis: true,
            markers: &[],
            series: vec![Series {
                name: "latency from the intended send time".into(),
                points: quantiles,
                dashed: false,
            }],
        }
        .svg(),
    );
}

fn tables(h: &mut String, r: &Results) {
    h.push_str("<h2>Endpoints</h2><table id=\"endpoints\"><thead><tr><th>endpoint</th><th>requests</th><th>failed</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>status</th></tr></thead><tbody>");
    for (name, e) in &r.endpoints {
        let status: Vec<String> = e.status.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            e.requests,
            e.errors,
            fmt_ms(e.latency_ms.p50),
            fmt_ms(e.latency_ms.p90),
            fmt_ms(e.latency_ms.p99),
            fmt_ms(e.latency_ms.max),
            esc(&status.join(", "))
        );
    }
    h.push_str("</tbody></table>");
    websockets(h, r);
    if !r.thresholds.is_empty() {
        h.push_str("<h2>Thresholds</h2><table id=\"thresholds\"><thead><tr><th>threshold</th><th>verdict</th><th>actual</th></tr></thead><tbody>");
        for t in &r.thresholds {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&t.expr),
                if t.ok { "pass" } else { "FAIL" },
                esc(&t.actual_text)
            );
        }
        h.push_str("</tbody></table>");
    }
    if !r.checks.is_empty() {
        h.push_str("<h2>Checks</h2><table id=\"checks\"><thead><tr><th>check</th><th>passed</th><th>failed</th></tr></thead><tbody>");
        for (name, c) in &r.checks {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                c.passed,
                c.failed
            );
        }
        h.push_str("</tbody></table>");
    }
    let kinds: Vec<_> = r.errors.nonzero().collect();
    if !kinds.is_empty() {
        h.push_str("<h2>Errors</h2><table id=\"errors\"><thead><tr><th>kind</th><th>count</th><th>first message</th></tr></thead><tbody>");
        for (kind, n) in kinds {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{n}</td><td>{}</td></tr>",
                kind.as_str(),
                esc(r
                    .error_examples
                    .get(kind.as_str())
                    .map_or("", String::as_str))
            );
        }
        h.push_str("</tbody></table>");
    }
    if let Some(rt) = &r.retries {
        let _ = write!(
            h,
            "<h2>Retries</h2><p>{} attempts for {} requests (x{:.2}); {} after 5xx, {} after a timeout, {} after a failed connect, {} after a reset; the budget refused {}. Goodput: {} requests ({:.1}%) succeeded within their deadline.</p>",
            rt.attempts,
            rt.requests,
            rt.amplification,
            rt.retries.http_5xx,
            rt.retries.timeout,
            rt.retries.connect,
            rt.retries.reset,
            rt.budget_refused,
            rt.goodput,
            rt.goodput_ratio * 100.0
        );
    }
    if let Some(rec) = &r.recovery {
        let _ = write!(
            h,
            "<h2>Recovery</h2><p><b>{}</b>: {}</p>",
            if rec.ok { "pass" } else { "FAIL" },
            esc(&rec.what)
        );
    }
}

/// Each WebSocket endpoint's connections, messages, round trips and
/// closes; nothing when the run had none.
fn websockets(h: &mut String, r: &Results) {
    let live: Vec<_> = r.live_endpoints().collect();
    if live.is_empty() {
        return;
    }
    h.push_str("<h2>Live connections</h2><table id=\"live\"><thead><tr><th>endpoint</th><th>tried</th><th>opened</th><th>refused</th><th>not upgraded</th><th>most open</th><th>upgrade p99</th><th>messages sent / received</th><th>dropped</th><th>expects timed out</th><th>round trip p50</th><th>p99</th><th>first event p99</th><th>gap p99</th><th>closed by the server</th></tr></thead><tbody>");
    let codes = |m| crate::format::fmt_counts(m, "");
    for (name, l) in live {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&format!("{name} ({})", l.protocol)),
            l.attempted,
            l.opened,
            l.refused,
            esc(&codes(&l.upgrade_failed)),
            l.peak_open,
            fmt_ms(l.upgrade_ms.p99),
            l.messages_sent,
            l.messages_received,
            l.messages_dropped,
            l.expect_timeouts,
            fmt_ms(l.round_trip_ms.p50),
            fmt_ms(l.round_trip_ms.p99),
            l.first_event_ms.as_ref().map_or("-".into(), |s| fmt_ms(s.p99)),
            l.gap_ms.as_ref().map_or("-".into(), |s| fmt_ms(s.p99)),
            esc(&codes(&l.closed_by_server))
        );
    }
    h.push_str("</tbody></table>");
}

fn metadata(h: &mut String, r: &Results) {
    let load = serde_json::to_string(&r.load).unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Run</h2><table id=\"run\"><tbody><tr><td>command</td><td><code>{}</code></td></tr><tr><td>target</td><td>{}</td></tr><tr><td>model</td><td>{}</td></tr><tr><td>started</td><td>{}</td></tr><tr><td>load</td><td><code>{}</code></td></tr><tr><td>throng</td><td>{} (results schema {})</td></tr></tbody></table>",
        esc(&r.command),
        esc(&r.target),
        esc(&r.model),
        esc(&r.started_at),
        esc(&load),
        esc(&r.throng_version),
        esc(&r.schema)
    );
    if let Some(server) = r.target_was_full() {
        let _ = write!(
            h,
            "<div class=\"verdict warn\">The target was at its limit, and was offered less load than planned: {}; server: {}</div>",
            esc(&r.generator.reasons.join("; ")),
            esc(&server.text)
        );
    } else if r.generator.saturated {
        let _ = write!(
            h,
            "<div class=\"verdict warn\">The generator, not the target, may have been the limit: {}</div>",
            esc(&r.generator.reasons.join("; "))
        );
    }
}
