//! Exports for other systems: the timeline as CSV (spreadsheets, plots),
//! JUnit XML (CI test reports: each threshold a test case) and a Markdown
//! summary (a pull-request comment).

use std::fmt::Write as _;

use stats::ErrorKind;

use crate::format::{fmt_ms, fmt_rate};
use crate::html::esc;
use crate::results::{Results, Status};

/// Error kinds added after the CSV's `resent` column: columns are only
/// ever added at the end, so these follow it rather than their kind's
/// place in [`ErrorKind::ALL`].
const KINDS_AFTER_RESENT: [ErrorKind; 4] = [
    ErrorKind::MissingValue,
    ErrorKind::UpgradeFailed,
    ErrorKind::WsClosed,
    ErrorKind::MessageTimeout,
];

/// The error kinds with a column before `resent`, in report order.
fn kinds_before_resent() -> impl Iterator<Item = ErrorKind> {
    ErrorKind::ALL
        .into_iter()
        .filter(|k| !KINDS_AFTER_RESENT.contains(k))
}

/// One row per second of due time: the planned level, what was sent and
/// how it went. Columns are documented in `docs/results.md#exports`.
pub fn timeline_csv(r: &Results) -> String {
    let mut out =
        String::from("t,offered,requests,errors,dropped,check_failures,p50_ms,p90_ms,p99_ms");
    for kind in kinds_before_resent() {
        let _ = write!(out, ",{}", kind.as_str());
    }
    let retries = r.retries.is_some();
    if retries {
        out.push_str(",attempts,goodput");
    }
    out.push_str(",resent");
    for kind in KINDS_AFTER_RESENT {
        let _ = write!(out, ",{}", kind.as_str());
    }
    out.push_str(",ws_open,sessions");
    let server: Vec<&observe::Series> = r.server.iter().flat_map(|s| &s.series).collect();
    for name in server_columns(r) {
        let _ = write!(out, ",{}", csv_field(&name));
    }
    out.push('\n');
    // WebSockets open at the end of each row, over every WebSocket step.
    let mut ws_open = vec![0u64; r.timeline.len()];
    for (_, l) in r.live_endpoints() {
        for (sum, n) in ws_open.iter_mut().zip(&l.open) {
            *sum += n;
        }
    }
    let planned = r.load.level_per_bucket(r.timeline.len(), r.timeline_s);
    for (i, ((row, offered), open)) in r.timeline.iter().zip(planned).zip(ws_open).enumerate() {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            row.t,
            round(offered),
            row.requests,
            row.errors,
            row.dropped,
            row.check_failures,
            row.p50_ms,
            row.p90_ms,
            row.p99_ms
        );
        for kind in kinds_before_resent() {
            let _ = write!(out, ",{}", row.error_kinds.get(kind));
        }
        if retries {
            let _ = write!(
                out,
                ",{},{}",
                row.attempts.unwrap_or(0),
                row.goodput.unwrap_or(0)
            );
        }
        let _ = write!(out, ",{}", row.resent);
        for kind in KINDS_AFTER_RESENT {
            let _ = write!(out, ",{}", row.error_kinds.get(kind));
        }
        let _ = write!(out, ",{open},{}", row.sessions);
        for s in &server {
            match s.values.get(i).copied().flatten() {
                Some(v) => {
                    let _ = write!(out, ",{v}");
                }
                None => out.push(','),
            }
        }
        out.push('\n');
    }
    out
}

/// The server series' column names: the series' own, or with its source
/// before it where two sources have a series of that name (two watched
/// processes).
fn server_columns(r: &Results) -> Vec<String> {
    let Some(server) = &r.server else {
        return Vec::new();
    };
    server
        .series
        .iter()
        .map(|s| {
            let twice = server.series.iter().filter(|o| o.name == s.name).count() > 1;
            match server.sources.get(s.source) {
                Some(src) if twice => format!("{} {}", src.target, s.name),
                _ => s.name.clone(),
            }
        })
        .collect()
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The verdict as JUnit XML: one test case per threshold (and the
/// recovery check), failed when it did not hold; an interrupted or aborted
/// run adds a failed case saying so.
pub fn junit(r: &Results) -> String {
    let mut cases = Vec::new();
    for t in &r.thresholds {
        cases.push((
            format!("threshold {}", t.expr),
            (!t.ok).then(|| format!("actual {}", t.actual_text)),
        ));
    }
    if let Some(rec) = &r.recovery {
        cases.push(("recovery".to_string(), (!rec.ok).then(|| rec.what.clone())));
    }
    match r.status {
        Status::Completed => {}
        Status::Interrupted => cases.push((
            "run completed".into(),
            Some("interrupted before its planned end".into()),
        )),
        Status::Aborted => cases.push((
            "run completed".into(),
            Some(format!(
                "aborted: {}",
                r.stop_reason.as_deref().unwrap_or("stopped early")
            )),
        )),
        Status::Running => cases.push((
            "run completed".into(),
            Some("a checkpoint written during the run: it had not ended".into()),
        )),
    }
    let failures = cases.iter().filter(|c| c.1.is_some()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"throng\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        cases.len(),
        r.duration_s
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
        esc(&r.target),
        cases.len(),
        r.duration_s,
        esc(&r.started_at)
    );
    // The cases are judged over the same run, not one after another: each
    // gets an equal share of its time, so that tools that add the cases
    // up (GitLab does) show the run's length, not N times it.
    let share = r.duration_s / cases.len().max(1) as f64;
    for (name, failure) in &cases {
        let _ = write!(
            x,
            "    <testcase classname=\"throng\" name=\"{}\" time=\"{:.3}\"",
            esc(name),
            share
        );
        match failure {
            None => x.push_str("/>\n"),
            Some(why) => {
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    esc(why),
                    esc(why)
                );
            }
        }
    }
    let _ = writeln!(
        x,
        "    <system-out>{}</system-out>\n  </testsuite>\n</testsuites>",
        esc(&format!(
            "{} requests, {} failed, p99 {}; command: {}",
            r.totals.requests,
            r.totals.errors,
            fmt_ms(r.latency_ms.p99),
            r.command
        ))
    );
    x
}

/// Escapes text for a Markdown table cell.
fn md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown summary for a pull-request comment: the verdict, thresholds,
/// findings and endpoints.
pub fn summary_markdown(r: &Results) -> String {
    let mut m = String::new();
    let failed = r.thresholds.iter().filter(|t| !t.ok).count();
    let recovered = r.recovery.as_ref().is_none_or(|rec| rec.ok);
    let verdict = match r.status {
        Status::Interrupted => "interrupted",
        Status::Aborted => "aborted",
        Status::Running => "still running (checkpoint)",
        Status::Completed if failed > 0 || !recovered => "failed",
        Status::Completed => "passed",
    };
    let _ = writeln!(m, "### throng: {verdict}\n");
    let t = &r.totals;
    let _ = writeln!(
        m,
        "{} requests in {:.1}s ({}), {} failed ({:.2}%), {} dropped; latency p50 {}, p99 {}.\n",
        t.requests,
        r.duration_s,
        fmt_rate(t.rate),
        t.errors,
        t.error_rate * 100.0,
        t.dropped,
        fmt_ms(r.latency_ms.p50),
        fmt_ms(r.latency_ms.p99)
    );
    if t.resent > 0 {
        let _ = writeln!(
            m,
            "{} requests were re-sent after a reused connection closed before their response (resend {}).\n",
            t.resent,
            r.load.resend_policy()
        );
    }
    if !r.thresholds.is_empty() {
        m.push_str("| threshold | verdict | actual |\n|---|---|---|\n");
        for th in &r.thresholds {
            let _ = writeln!(
                m,
                "| `{}` | {} | {} |",
                md(&th.expr),
                if th.ok { "pass" } else { "**FAIL**" },
                md(&th.actual_text)
            );
        }
        m.push('\n');
    }
    if let Some(rec) = &r.recovery {
        let _ = writeln!(
            m,
            "Recovery: {} ({})\n",
            if rec.ok { "pass" } else { "**FAIL**" },
            md(&rec.what)
        );
    }
    if !r.findings.is_empty() {
        m.push_str("**Findings**\n\n");
        for f in &r.findings {
            let _ = writeln!(m, "- {}: {}", f.severity.as_str(), md(&f.what));
        }
        m.push('\n');
    }
    m.push_str("| endpoint | requests | failed | p50 | p99 |\n|---|---:|---:|---:|---:|\n");
    for (name, e) in &r.endpoints {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |",
            md(name),
            e.requests,
            e.errors,
            fmt_ms(e.latency_ms.p50),
            fmt_ms(e.latency_ms.p99)
        );
    }
    m
}

/// Upper bounds of the exposition's latency buckets, in seconds.
const BUCKETS_S: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What a running load test looks like to Prometheus (text exposition
/// format 0.0.4): requests by outcome and dropped arrivals (counters), the
/// latency histogram from the intended send time (cumulative since the
/// start), requests in flight and virtual users (gauges).
pub fn prometheus(
    all: &stats::Interval,
    in_flight: usize,
    vus: Option<usize>,
    elapsed_s: f64,
) -> String {
    let mut p = String::new();
    let c = &all.counts;
    p.push_str("# HELP throng_requests_total Requests that ended, by outcome: ok or the error kind.\n# TYPE throng_requests_total counter\n");
    let _ = writeln!(p, "throng_requests_total{{outcome=\"ok\"}} {}", c.ok);
    for kind in ErrorKind::ALL {
        if kind != ErrorKind::Dropped {
            let _ = writeln!(
                p,
                "throng_requests_total{{outcome=\"{}\"}} {}",
                kind.as_str(),
                c.errors.get(kind)
            );
        }
    }
    let _ = writeln!(
        p,
        "# HELP throng_dropped_total Arrivals due but not sent (in-flight limit).\n# TYPE throng_dropped_total counter\nthrong_dropped_total {}",
        c.dropped()
    );
    let _ = writeln!(
        p,
        "# HELP throng_resent_total Requests sent again on a new connection after a reused one closed before any response byte (counted once in throng_requests_total).\n# TYPE throng_resent_total counter\nthrong_resent_total {}",
        c.resent
    );
    let _ = writeln!(
        p,
        "# HELP throng_connections_opened_total Connections opened.\n# TYPE throng_connections_opened_total counter\nthrong_connections_opened_total {}",
        c.conns_opened
    );
    let _ = writeln!(
        p,
        "# HELP throng_connections_closed_idle_total Reused connections found closed by the target while idle, replaced before anything was sent on them.\n# TYPE throng_connections_closed_idle_total counter\nthrong_connections_closed_idle_total {}",
        c.conns_closed_idle
    );
    p.push_str("# HELP throng_latency_seconds Latency from the intended send time, of responses.\n# TYPE throng_latency_seconds histogram\n");
    let h = all.latency.inner();
    for le in BUCKETS_S {
        let _ = writeln!(
            p,
            "throng_latency_seconds_bucket{{le=\"{le}\"}} {}",
            h.count_between(0, (le * 1e6) as u64)
        );
    }
    let _ = writeln!(
        p,
        "throng_latency_seconds_bucket{{le=\"+Inf\"}} {n}\nthrong_latency_seconds_sum {:.6}\nthrong_latency_seconds_count {n}",
        h.mean() * h.len() as f64 / 1e6,
        n = h.len()
    );
    let live = &all.live;
    let _ = writeln!(
        p,
        "# HELP throng_websockets_opened_total WebSockets upgraded.\n# TYPE throng_websockets_opened_total counter\nthrong_websockets_opened_total {}",
        live.opened
    );
    let _ = writeln!(
        p,
        "# HELP throng_websockets_open WebSockets open now.\n# TYPE throng_websockets_open gauge\nthrong_websockets_open {}",
        live.open()
    );
    let _ = writeln!(
        p,
        "# HELP throng_websocket_messages_total WebSocket messages, counted when their socket closes.\n# TYPE throng_websocket_messages_total counter\nthrong_websocket_messages_total{{direction=\"sent\"}} {}\nthrong_websocket_messages_total{{direction=\"received\"}} {}",
        live.sent, live.received
    );
    let _ = writeln!(
        p,
        "# HELP throng_in_flight Requests in flight now.\n# TYPE throng_in_flight gauge\nthrong_in_flight {in_flight}"
    );
    if let Some(vus) = vus {
        let _ = writeln!(
            p,
            "# HELP throng_virtual_users Virtual users running now.\n# TYPE throng_virtual_users gauge\nthrong_virtual_users {vus}"
        );
    }
    let _ = writeln!(
        p,
        "# HELP throng_elapsed_seconds Time since the load started.\n# TYPE throng_elapsed_seconds gauge\nthrong_elapsed_seconds {elapsed_s:.3}"
    );
    p
}
