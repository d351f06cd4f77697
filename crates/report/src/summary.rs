//! The end-of-run summary for the terminal.

use std::fmt::Write as _;

use stats::Summary;

use crate::format::{fmt_ms, fmt_rate};
use crate::results::{Results, Status};

/// The summary of a run, as plain text (no colour, stable for tests).
pub fn summary(r: &Results) -> String {
    let mut out = String::new();
    let sections: [fn(&mut String, &Results); 12] = [
        heading, counts, retries, latencies, errors, endpoints, websockets, checks, server,
        verdicts, findings, generator,
    ];
    for section in sections {
        section(&mut out, r);
    }
    out
}

/// `n` as a share of every request, for a count's line.
fn share_of_requests(r: &Results, n: u64) -> String {
    let t = &r.totals;
    if t.requests == 0 {
        String::new()
    } else {
        format!(" ({:.2}%)", n as f64 * 100.0 / t.requests as f64)
    }
}

/// What ran, against what, and how it ended.
fn heading(out: &mut String, r: &Results) {
    let status = match r.status {
        Status::Completed => "completed",
        Status::Interrupted => "interrupted (Ctrl-C)",
        Status::Aborted => "aborted",
        Status::Running => "still running (a checkpoint)",
    };
    let _ = writeln!(out, "throng {} model -> {}", r.model, r.target);
    let _ = writeln!(
        out,
        "  {status} after {:.1}s of load, {} workers",
        r.duration_s, r.load.workers
    );
    if let Some(reason) = &r.stop_reason {
        let _ = writeln!(out, "  stopped early: {reason}");
    }
    let _ = writeln!(out);
}

/// Requests, what throng did on its own (redirects, re-sends,
/// connections), and the rate.
fn counts(out: &mut String, r: &Results) {
    let t = &r.totals;
    let pct = |n: u64| share_of_requests(r, n);
    let _ = writeln!(
        out,
        "  requests  {} sent, {} ok, {} failed{}, {} dropped",
        t.requests,
        t.ok,
        t.errors,
        pct(t.errors),
        t.dropped
    );
    if t.redirects > 0 {
        let _ = writeln!(
            out,
            "  redirects {} followed (a request and its redirects count as one, with the last status)",
            t.redirects
        );
    }
    if t.resent > 0 {
        let policy = r.load.resend_policy();
        let _ = writeln!(
            out,
            "  resent    {} sent again on a new connection: a reused one closed before any byte of the response (--resend {policy}; the target saw up to {} requests)",
            t.resent,
            t.requests + t.resent
        );
    }
    let by_endpoint = |count: fn(&crate::results::EndpointRow) -> u64| {
        let parts: Vec<String> = r
            .endpoints
            .iter()
            .filter(|(_, e)| count(e) > 0)
            .map(|(name, e)| format!("{name} {}", count(e)))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    };
    if let Some(missed) = by_endpoint(|e| e.extracts_missed) {
        let _ = writeln!(
            out,
            "  extracts  found nothing: {missed} (their variables then had no value)"
        );
    }
    if let Some(skipped) = by_endpoint(|e| e.skipped) {
        let _ = writeln!(
            out,
            "  skipped   not sent, a variable had no value (on_missing: skip): {skipped}"
        );
    }
    if t.connections_opened > 0 || t.connections_closed_idle > 0 {
        let idle = if t.connections_closed_idle > 0 {
            format!(
                ", {} found closed by the target while idle and replaced (nothing was sent on them)",
                t.connections_closed_idle
            )
        } else {
            String::new()
        };
        let tls = match t.tls_handshakes {
            0 => String::new(),
            n => format!(
                "; TLS handshakes {n}, {} full, {} resumed",
                n.saturating_sub(t.tls_resumed),
                t.tls_resumed
            ),
        };
        let _ = writeln!(
            out,
            "  connections {} opened{idle}{tls}",
            t.connections_opened
        );
    }
    let planned = match (r.load.rate, r.load.vus) {
        (Some(rate), _) => format!(" (planned {})", fmt_rate(rate)),
        (_, Some(vus)) => format!(" with {vus} user{}", if vus == 1.0 { "" } else { "s" }),
        _ => String::new(),
    };
    let _ = writeln!(out, "  rate      {}{planned}", fmt_rate(t.rate));
}

/// A run that retries: attempts, by cause, and goodput.
fn retries(out: &mut String, r: &Results) {
    let Some(rt) = &r.retries else { return };
    let causes: Vec<String> = [
        (rt.retries.http_5xx, "5xx"),
        (rt.retries.timeout, "timeout"),
        (rt.retries.connect, "connect"),
        (rt.retries.reset, "reset"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, cause)| format!("{n} after {cause}"))
    .collect();
    let causes = if causes.is_empty() {
        String::new()
    } else {
        format!(": {}", causes.join(", "))
    };
    let refused = if rt.budget_refused > 0 {
        format!("; the budget refused {}", rt.budget_refused)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  retries   {} attempts for {} requests (x{:.2}){causes}{refused}",
        rt.attempts, rt.requests, rt.amplification
    );
    let _ = writeln!(
        out,
        "  goodput   {} within their deadline ({:.1}%), {}",
        rt.goodput,
        rt.goodput_ratio * 100.0,
        fmt_rate(rt.goodput_rate)
    );
}

/// The latency table: from the intended send, from the actual send, the
/// generator's lag and the connection phases.
fn latencies(out: &mut String, r: &Results) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<28}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"
    );
    let mut row = |label: &str, s: &Summary, always: bool| {
        if !always && s.max == 0.0 && s.min == 0.0 {
            return;
        }
        let _ = writeln!(
            out,
            "  {:<28}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            label,
            fmt_ms(s.min),
            fmt_ms(s.mean),
            fmt_ms(s.p50),
            fmt_ms(s.p90),
            fmt_ms(s.p95),
            fmt_ms(s.p99),
            fmt_ms(s.p999),
            fmt_ms(s.max)
        );
    };
    row("latency (from intended send)", &r.latency_ms, true);
    row("service (from actual send)", &r.service_ms, true);
    row("generator lag", &r.lag_ms, true);
    row("connect", &r.connect_ms, false);
    row("tls handshake", &r.tls_ms, false);
    row("time to first byte", &r.ttfb_ms, false);
}

/// Failures by kind, each with an example.
fn errors(out: &mut String, r: &Results) {
    let kinds: Vec<_> = r.errors.nonzero().collect();
    if !kinds.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "  errors");
        for (kind, n) in kinds {
            let example = r
                .error_examples
                .get(kind.as_str())
                .map(|e| format!("  e.g. {e}"))
                .unwrap_or_default();
            let _ = writeln!(out, "    {:<18}{n:>9}{example}", kind.as_str());
        }
    }
}

/// Each endpoint's requests, failures, p50, p99 and statuses.
fn endpoints(out: &mut String, r: &Results) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<30}{:>10}{:>9}{:>9}{:>9}  status",
        "endpoint", "requests", "failed", "p50", "p99"
    );
    for (name, e) in &r.endpoints {
        let status: Vec<String> = e
            .status
            .iter()
            .map(|(code, n)| format!("{code}:{n}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:<30}{:>10}{:>9}{:>9}{:>9}  {}",
            name,
            e.requests,
            e.errors,
            fmt_ms(e.latency_ms.p50),
            fmt_ms(e.latency_ms.p99),
            status.join(" ")
        );
    }
}

/// Each WebSocket step: connections tried, opened and lost, messages,
/// round trips and closes.
fn websockets(out: &mut String, r: &Results) {
    let live: Vec<_> = r.live_endpoints().collect();
    if live.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "  live connections");
    for (name, l) in live {
        if l.protocol == "sse" {
            event_stream(out, name, l);
            continue;
        }
        let not_upgraded: u64 = l.upgrade_failed.values().sum();
        let _ = writeln!(
            out,
            "    {name}: {} tried, {} opened, {} refused, {} not upgraded{}; at most {} open at once",
            l.attempted,
            l.opened,
            l.refused,
            not_upgraded,
            codes(&l.upgrade_failed, "status"),
            l.peak_open
        );
        let _ = writeln!(
            out,
            "      upgrade p50 {} p99 {}; messages {} sent, {} received ({} dropped from a full queue), {} expects timed out",
            fmt_ms(l.upgrade_ms.p50),
            fmt_ms(l.upgrade_ms.p99),
            l.messages_sent,
            l.messages_received,
            l.messages_dropped,
            l.expect_timeouts
        );
        if l.round_trips > 0 {
            let _ = writeln!(
                out,
                "      round trip (from the intended send) p50 {} p90 {} p99 {} max {}, {} timed",
                fmt_ms(l.round_trip_ms.p50),
                fmt_ms(l.round_trip_ms.p90),
                fmt_ms(l.round_trip_ms.p99),
                fmt_ms(l.round_trip_ms.max),
                l.round_trips
            );
        }
        let by_server: u64 = l.closed_by_server.values().sum();
        let _ = writeln!(
            out,
            "      closed by throng {}, by the server {}{}",
            l.closed_by_client,
            by_server,
            codes(&l.closed_by_server, "code")
        );
    }
}

/// An event stream's subscriptions, events, first events and gaps.
fn event_stream(out: &mut String, name: &str, l: &crate::results::LiveRow) {
    let not_opened: u64 = l.upgrade_failed.values().sum();
    let _ = writeln!(
        out,
        "    {name} (event stream): {} connections tried ({} reconnections), {} opened, {} refused, {} not a stream{}; at most {} open at once",
        l.attempted,
        l.reconnects,
        l.opened,
        l.refused,
        not_opened,
        codes(&l.upgrade_failed, "status"),
        l.peak_open
    );
    let ms = |s: &Option<stats::Summary>, f: fn(&stats::Summary) -> f64| {
        s.as_ref().map_or("-".to_string(), |s| fmt_ms(f(s)))
    };
    let _ = writeln!(
        out,
        "      events {}; first event p50 {} p99 {}; gaps p50 {} p99 {} max {}",
        l.messages_received,
        ms(&l.first_event_ms, |s| s.p50),
        ms(&l.first_event_ms, |s| s.p99),
        ms(&l.gap_ms, |s| s.p50),
        ms(&l.gap_ms, |s| s.p99),
        ms(&l.gap_ms, |s| s.max)
    );
    let ended = l.closed_by_server.get("0").copied().unwrap_or(0);
    let broken = l.closed_by_server.get("1006").copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "      ended by the server {ended}, broken {broken}, closed by throng {}",
        l.closed_by_client
    );
}

/// ` (code 1006: 3, code 1011: 1)`, or nothing for none.
fn codes(m: &std::collections::BTreeMap<String, u64>, what: &str) -> String {
    if m.is_empty() {
        return String::new();
    }
    format!(" ({})", crate::format::fmt_counts(m, &format!("{what} ")))
}

/// The checks: how many responses failed one, and each check's failures.
fn checks(out: &mut String, r: &Results) {
    let t = &r.totals;
    if !r.checks.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  checks: {} response(s) failed at least one{}",
            t.check_failures,
            share_of_requests(r, t.check_failures)
        );
        for (name, c) in &r.checks {
            let total = c.passed + c.failed;
            let rate = if total == 0 {
                0.0
            } else {
                c.failed as f64 * 100.0 / total as f64
            };
            let verdict = if c.failed == 0 { "pass" } else { "FAIL" };
            let _ = writeln!(
                out,
                "    {verdict}  {name:<48} {} of {total} failed ({rate:.2}%)",
                c.failed
            );
        }
    }
}

/// What was read of the target beside the load: each source, how its
/// reads went, and a process's figures; the findings say what they mean.
fn server(out: &mut String, r: &Results) {
    let Some(server) = &r.server else {
        return;
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "  server (read beside the load)");
    for (i, src) in server.sources.iter().enumerate() {
        let mut line = format!(
            "    {:<38} {} readings, {} series",
            src.target,
            src.readings,
            server.series.iter().filter(|s| s.source == i).count()
        );
        if !src.failed.is_empty() {
            let failed: Vec<String> = src.failed.iter().map(|(k, n)| format!("{k} {n}")).collect();
            line.push_str(&format!("; failed: {}", failed.join(", ")));
            if let Some(e) = &src.first_error {
                line.push_str(&format!(" ({e})"));
            }
        }
        if src.bad_lines > 0 {
            line.push_str(&format!(
                "; {} bad lines skipped ({})",
                src.bad_lines,
                src.first_bad_line.as_deref().unwrap_or_default()
            ));
        }
        if src.series_dropped > 0 {
            line.push_str(&format!(
                "; {} more series left out (narrow with --scrape-match, or raise --scrape-max-series)",
                src.series_dropped
            ));
        }
        let _ = writeln!(out, "{line}");
        if src.kind == observe::SourceKind::Process {
            if let Some(figures) = process_figures(server, i) {
                let _ = writeln!(out, "    {:<38} {figures}", "");
            }
        }
    }
}

/// A process's (or the machine's) CPU, memory, descriptors and threads:
/// mean and peak.
fn process_figures(server: &observe::Server, source: usize) -> Option<String> {
    let stats = |metric: &str| {
        let s = server.of(source, metric)?;
        Some((s.mean_from(0)?, s.max()?))
    };
    let mut parts = Vec::new();
    if let (Some(user), Some(system)) = (
        stats("process_cpu_user_cores"),
        stats("process_cpu_system_cores"),
    ) {
        parts.push(format!(
            "cpu {:.2} cores (user {:.2}, system {:.2})",
            user.0 + system.0,
            user.0,
            system.0
        ));
    }
    if let Some(busy) = stats("machine_cpu_busy_cores") {
        let cpus = stats("machine_cpus").map_or(0.0, |c| c.1);
        let own = stats("machine_throng_cores").map_or(0.0, |c| c.0);
        parts.push(format!(
            "{:.2} of {cpus:.0} CPUs busy, {own:.2} of them throng's",
            busy.0
        ));
    }
    if let Some(rss) = stats("process_rss_bytes") {
        parts.push(format!("rss peak {:.1} MiB", rss.1 / 1048576.0));
    }
    if let Some(fds) = stats("process_open_fds") {
        let max = stats("process_max_fds")
            .map(|m| format!(" of {:.0}", m.1))
            .unwrap_or_default();
        parts.push(format!("fds peak {:.0}{max}", fds.1));
    }
    if let Some(t) = stats("process_threads") {
        parts.push(format!("threads peak {:.0}", t.1));
    }
    (!parts.is_empty()).then(|| format!("mean {}", parts.join(", ")))
}

/// The thresholds' and the recovery check's verdicts.
fn verdicts(out: &mut String, r: &Results) {
    if !r.thresholds.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "  thresholds");
        for th in &r.thresholds {
            let verdict = if th.ok { "pass" } else { "FAIL" };
            let _ = writeln!(
                out,
                "    {verdict}  {:<30} actual {}",
                th.expr, th.actual_text
            );
        }
    }

    if let Some(rec) = &r.recovery {
        let _ = writeln!(out);
        let verdict = if rec.ok { "pass" } else { "FAIL" };
        let _ = writeln!(out, "  recovery");
        let _ = writeln!(out, "    {verdict}  {}", rec.what);
        let server = r
            .findings
            .iter()
            .filter(|f| ["recovered", "no_recovery"].contains(&f.kind.as_str()))
            .find_map(|f| f.server.as_ref());
        if let Some(server) = server {
            let _ = writeln!(out, "          server: {}", server.text);
        }
    }
}

/// The findings, but those shown elsewhere: the generator's is the
/// warning below, with its advice; the recovery's is its section.
fn findings(out: &mut String, r: &Results) {
    let shown: Vec<_> = r
        .findings
        .iter()
        .filter(|f| {
            !["generator_saturation", "recovered", "no_recovery"].contains(&f.kind.as_str())
        })
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "  findings");
        for f in shown {
            let severity = match f.severity {
                analysis::Severity::Critical => "CRITICAL",
                analysis::Severity::Warning => "warning",
                analysis::Severity::Info => "info",
            };
            let _ = writeln!(out, "    {severity:<9} {}", f.what);
            let _ = writeln!(out, "    {:<9} {}", "", f.evidence);
            if let Some(server) = &f.server {
                let _ = writeln!(out, "    {:<9} server: {}", "", server.text);
            }
        }
    }
}

/// A warning when the generator, not the target, may have been the limit;
/// or, when a watched process was CPU-bound as arrivals were dropped, that
/// the target was full (and more in flight would not help).
fn generator(out: &mut String, r: &Results) {
    let (headline, server, advice) = match r.target_was_full() {
        Some(server) => (
            "the target was at its limit, and was offered less load than planned",
            Some(&server.text),
            "Sessions held their senders longer while the target was busy, so the in-flight limit filled.\n    \
             A higher --max-in-flight would queue more at the target rather than get more served; \
             `throng capacity` finds the rate it sustains.",
        ),
        None if r.generator.saturated => (
            "the generator, not the target, may have been the limit",
            None,
            "Latency is still measured from the intended send times, but the target was offered \
             less load than planned.\n    Try more --workers, a higher --max-in-flight, or more machines.",
        ),
        None => return,
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "  WARNING: {headline}:");
    for reason in &r.generator.reasons {
        let _ = writeln!(out, "    - {reason}");
    }
    if let Some(server) = server {
        let _ = writeln!(out, "    - server: {server}");
    }
    let _ = writeln!(out, "    {advice}");
}
