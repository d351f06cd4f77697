//! The live progress line.

use crate::format::{fmt_ms, fmt_rate};

/// What the progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressView {
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Planned length in seconds, if known.
    pub total_s: Option<f64>,
    /// Requests that ended in the last interval, per second.
    pub rate: f64,
    /// Median latency over the last interval, ms (None: no responses).
    pub p50_ms: Option<f64>,
    /// 99th percentile over the last interval, ms.
    pub p99_ms: Option<f64>,
    /// Requests sent so far.
    pub requests: u64,
    /// Failed so far.
    pub errors: u64,
    /// Dropped so far.
    pub dropped: u64,
    /// Re-sent so far (a reused connection closed before the response).
    pub resent: u64,
    /// In flight now.
    pub in_flight: usize,
    /// Users running now (closed model).
    pub vus: Option<usize>,
    /// WebSockets open now (0 when the run opened none).
    pub sockets: u64,
    /// Sessions started in the last interval, per second (an arrival is
    /// a session, of one request or a journey of several).
    pub sessions_rate: f64,
}

/// One line, e.g. `[ 12s/30s]  499.9/s  p50 1.10ms  p99 4.50ms  errors 0 (0.00%)  in-flight 3`.
pub fn progress_line(v: &ProgressView) -> String {
    let elapsed = format!("{:>3.0}s", v.elapsed_s);
    let total = v.total_s.map(|t| format!("/{t:.0}s")).unwrap_or_default();
    let latency = match (v.p50_ms, v.p99_ms) {
        (Some(p50), Some(p99)) => format!("p50 {}  p99 {}", fmt_ms(p50), fmt_ms(p99)),
        _ => "p50 -  p99 -".to_string(),
    };
    let error_pct = if v.requests == 0 {
        0.0
    } else {
        v.errors as f64 * 100.0 / v.requests as f64
    };
    let mut line = format!(
        "[{elapsed}{total}] {:>10}  {latency}  requests {}  errors {} ({error_pct:.2}%)",
        fmt_rate(v.rate),
        v.requests,
        v.errors
    );
    if v.dropped > 0 {
        line.push_str(&format!("  dropped {}", v.dropped));
    }
    if v.resent > 0 {
        line.push_str(&format!("  resent {}", v.resent));
    }
    match v.vus {
        Some(vus) => line.push_str(&format!("  users {vus}")),
        None => line.push_str(&format!("  in-flight {}", v.in_flight)),
    }
    if v.sockets > 0 {
        line.push_str(&format!("  sockets {}", v.sockets));
    }
    line
}

/// What the live dashboard shows (a terminal's view of a run).
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardView {
    /// The progress line's numbers.
    pub line: ProgressView,
    /// The planned level now: arrivals/s (open model) or users.
    pub offered: Option<f64>,
    /// The stage now, counted from 1, and how many there are.
    pub stage: Option<(usize, usize)>,
    /// Failures so far by kind (`dropped` excluded), most frequent first.
    pub errors_by_kind: Vec<(&'static str, u64)>,
    /// Responses with a failed check so far.
    pub check_failures: u64,
    /// What the server is doing now, when it is watched: a few figures
    /// (`observe::Recorder::headline`).
    pub server: Vec<String>,
}

/// The dashboard's lines, e.g.
/// `elapsed   12s of 30s  [######--------------]  stage 2 of 3`.
pub fn dashboard(d: &DashboardView) -> Vec<String> {
    let v = &d.line;
    let mut lines = Vec::with_capacity(5);
    let mut head = format!("elapsed   {:.0}s", v.elapsed_s);
    if let Some(total) = v.total_s.filter(|t| *t > 0.0) {
        let done = (v.elapsed_s / total).clamp(0.0, 1.0);
        let filled = (done * 20.0).round() as usize;
        head.push_str(&format!(
            " of {total:.0}s  [{}{}]",
            "#".repeat(filled),
            "-".repeat(20 - filled)
        ));
    }
    if let Some((n, of)) = d.stage {
        head.push_str(&format!("  stage {n} of {of}"));
    }
    lines.push(head);
    let offered = match (d.offered, v.vus) {
        (Some(o), None) => format!("arrivals {} planned  ", fmt_rate(o)),
        (Some(o), Some(_)) => format!("users {o:.0} planned  "),
        (None, _) => String::new(),
    };
    // Like with like: arrivals planned against sessions started; a
    // journey of three requests is one arrival.
    let sessions = if v.sessions_rate > 0.0 && (v.sessions_rate - v.rate).abs() > 0.05 * v.rate {
        format!("sessions {} started  ", fmt_rate(v.sessions_rate))
    } else {
        String::new()
    };
    lines.push(format!(
        "rate      {offered}{sessions}requests {} ended",
        fmt_rate(v.rate)
    ));
    lines.push(match (v.p50_ms, v.p99_ms) {
        (Some(p50), Some(p99)) => format!(
            "latency   p50 {}  p99 {}  (last second, from the intended send time)",
            fmt_ms(p50),
            fmt_ms(p99)
        ),
        _ => "latency   - (no responses in the last second)".to_string(),
    });
    let pct = if v.requests == 0 {
        0.0
    } else {
        v.errors as f64 * 100.0 / v.requests as f64
    };
    let mut errors = format!("errors    {} of {} ({pct:.2}%)", v.errors, v.requests);
    if !d.errors_by_kind.is_empty() {
        let kinds: Vec<String> = d
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        errors.push_str(&format!(": {}", kinds.join(", ")));
    }
    if d.check_failures > 0 {
        errors.push_str(&format!("; checks failed on {}", d.check_failures));
    }
    if v.resent > 0 {
        errors.push_str(&format!(
            "; {} re-sent after a reused connection closed",
            v.resent
        ));
    }
    lines.push(errors);
    let mut load = match v.vus {
        Some(vus) => format!("now       users {vus}  in flight {}", v.in_flight),
        None => format!("now       in flight {}", v.in_flight),
    };
    if v.sockets > 0 {
        load.push_str(&format!("  websockets open {}", v.sockets));
    }
    if v.dropped > 0 {
        load.push_str(&format!("  dropped {} (the in-flight limit)", v.dropped));
    }
    lines.push(load);
    if !d.server.is_empty() {
        lines.push(format!("server    {}", d.server.join("  ")));
    }
    lines
}
