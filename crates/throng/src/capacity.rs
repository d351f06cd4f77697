//! `throng capacity`: runs the scenario at one level after another, as
//! `analysis::Search` decides, and reports the highest level that held
//! every SLO (and, for arrivals, was offered: [`OFFERED`]), the bracket
//! around it, the SLO that broke first and the endpoint that degraded most.

use std::io::Write as _;
use std::time::{Duration, Instant};

use analysis::{Search, StepVerdict, Threshold, BORDERLINE};
use anyhow::anyhow;
use plan::LoadSpec;
use report::{
    fmt_level, Bottleneck, CapacityResults, SloRow, Status, StepRow, CAPACITY_SCHEMA as SCHEMA,
};

use crate::args::{CapacityArgs, RunOptions};
use crate::controller::{self, Merged};
use crate::spec::{self, Outputs, RunSpec, Source};
use crate::{exit, output, Failure};

/// The SLO every arrivals step holds besides the user's: its level was
/// offered, fewer than 1% of its arrivals dropped at the generator's
/// in-flight limit. Without it, a step the generator could not send (or
/// whose slow sessions filled the limit) held on the requests it did
/// send: against nginx, every step "held" up to 400,000/s where at most
/// 151,000/s were sent.
const OFFERED: &str = "dropped<1%";

/// The load of one step: the scenario at `level` for `duration`.
fn step_load(vus: bool, level: f64, duration: Duration) -> LoadSpec {
    LoadSpec {
        rate: (!vus).then_some(level),
        vus: vus.then(|| level.round().max(1.0)),
        duration: Some(Duration::from_millis(duration.as_millis().max(1) as u64)),
        ..LoadSpec::default()
    }
}

/// The search's progress after `done` steps: how many more it needs at
/// most (once known), about how long they take at `per_step` each, and
/// the time left of `--time-limit`.
fn progress_note(
    done: usize,
    left: Option<u32>,
    per_step: Duration,
    elapsed: Duration,
    time_limit: Duration,
) -> String {
    let secs = |d: Duration| plan::format_duration(Duration::from_secs(d.as_secs()));
    let budget = secs(time_limit.saturating_sub(elapsed));
    match left {
        Some(n) => format!(
            "  step {done} done; at most {n} more (about {} left; --time-limit allows {budget})",
            secs(per_step * n)
        ),
        None => format!(
            "  step {done} done; still climbing, so the steps left are not known yet (--time-limit allows {budget})"
        ),
    }
}

/// `throng capacity`.
pub fn capacity(a: &CapacityArgs) -> Result<u8, Failure> {
    if !(a.start > 0.0 && a.max >= a.start) {
        return Err(Failure::usage(anyhow!(
            "--start {} --max {}: the start must be above 0 and at most the max",
            a.start,
            a.max
        )));
    }
    // Validate everything (scenario, SLOs, options) before any load: the
    // first step's run.
    let file = spec::load_scenario(&a.scenario, a.target.clone())?;
    let first = step_load(a.vus, a.start, a.step_duration);
    let options = RunOptions {
        rate: first.rate,
        vus: first.vus.map(|v| v as u32),
        duration: first.duration,
        thresholds: a.slos.clone(),
        workers: a.workers,
        timeout: a.timeout,
        watch: a.watch.clone(),
        ..RunOptions::default()
    };
    let outputs = Outputs {
        quiet: true,
        command: spec::redacted_command(),
        ..Outputs::default()
    };
    let mut base = RunSpec::new(Source::File(file), &options, outputs)?;
    if base.judging.thresholds.is_empty() {
        return Err(Failure::usage(anyhow!(
            "no SLO to hold: add --slo 'p99<500ms' (and more), or thresholds to the scenario"
        )));
    }
    with_offered(&mut base.judging.thresholds, a.vus)?;
    let mut c = Capacity {
        unit: if a.vus { "users" } else { "/s" },
        slos: base
            .judging
            .thresholds
            .iter()
            .map(|t| t.expr.clone())
            .collect(),
        a,
        base,
    };
    eprintln!(
        "capacity: {} against {}, holding {}",
        if a.vus {
            "concurrent users"
        } else {
            "arrivals per second"
        },
        c.base.target,
        c.slos.join(", ")
    );
    // The target's address is chosen once (probed, when its host has
    // several) and every step and probe sends there: one search measures
    // one address, and no step pays the probe's wait again.
    let resolved = engine::resolve(&c.base.plan).map_err(Failure::usage)?;
    for note in &resolved.notes {
        eprintln!("note: {note}");
    }
    c.base.plan.addrs = resolved.addrs;
    let results = controller::runtime()?.block_on(c.search())?;
    say_part!("{}", summary(&results, c.unit));
    if let Some(out) = &a.out {
        output::write(
            out,
            &serde_json::to_string_pretty(&results).unwrap_or_default(),
        )?;
    }
    if let Some(path) = &a.report {
        output::write_said(path, "report", &results.to_html())?;
    }
    let _ = std::io::stdout().flush();
    Ok(match (results.status.as_str(), results.sustainable) {
        ("interrupted", _) => exit::ABORTED,
        (_, Some(_)) => exit::OK,
        (_, None) => exit::THRESHOLD,
    })
}

/// Adds [`OFFERED`] last to a search of arrivals' SLOs, unless one of the
/// user's already limits the dropped share (it stands instead). A search
/// of users drops no arrivals: nothing is added.
fn with_offered(slos: &mut Vec<Threshold>, vus: bool) -> Result<(), Failure> {
    let own = |t: &Threshold| t.metric == analysis::Metric::DroppedRate;
    if !vus && !slos.iter().any(own) {
        slos.push(Threshold::parse(OFFERED).map_err(|e| Failure::usage(anyhow!(e)))?);
    }
    Ok(())
}

/// One search: the command's options and the run every step varies.
struct Capacity<'a> {
    a: &'a CapacityArgs,
    base: RunSpec,
    unit: &'static str,
    slos: Vec<String>,
}

/// How one step (or probe) ended.
struct Measured {
    merged: Merged,
    server: Option<observe::Server>,
    interrupted: bool,
}

impl Capacity<'_> {
    /// Steps up, then bisects, as `analysis::Search` decides.
    async fn search(&self) -> Result<CapacityResults, Failure> {
        let a = self.a;
        let started = Instant::now();
        let mut s = Search::new(a.start, a.max, a.precision);
        let mut steps: Vec<StepRow> = Vec::new();
        let mut status = "completed";
        while let Some(mut level) = s.next() {
            if a.vus {
                level = level.round().max(1.0);
                let measured = |l: Option<f64>| l.is_some_and(|l| l.round() == level);
                if (measured(s.held) || measured(s.failed))
                    && steps.last().is_some_and(|r| r.level != level)
                {
                    break; // the bracket is one user wide
                }
            }
            // Long enough for a stable p99: `min_samples` sessions at least.
            let needed = if a.vus {
                a.step_duration
            } else {
                a.step_duration
                    .max(Duration::from_secs_f64(a.min_samples as f64 / level))
            };
            if started.elapsed() + needed > a.time_limit {
                status = "time_limit";
                eprintln!(
                    "capacity: the next step would pass --time-limit {}; stopping",
                    plan::format_duration(a.time_limit)
                );
                break;
            }
            let (row, interrupted) = self.step(level, needed).await?;
            let verdict = StepVerdict {
                held: row.held,
                borderline: row.borderline,
            };
            steps.push(row);
            s.record(level, verdict);
            if interrupted {
                status = "interrupted";
                break;
            }
            if s.next().is_none() {
                break;
            }
            eprintln!(
                "{}",
                progress_note(
                    steps.len(),
                    s.steps_left(),
                    needed + a.cooldown,
                    started.elapsed(),
                    a.time_limit
                )
            );
            match self.recover().await? {
                Recovered::Yes => {}
                Recovered::Interrupted => {
                    status = "interrupted";
                    break;
                }
                Recovered::No => {
                    status = "unhealthy";
                    eprintln!("capacity: the target did not recover after the last step; stopping");
                    break;
                }
            }
        }
        let failed_at = s.failed;
        let first_broken: Vec<SloRow> = failed_at
            .and_then(|f| steps.iter().find(|r| r.level == f && !r.held))
            .map(|r| r.slos.iter().filter(|x| !x.ok).cloned().collect())
            .unwrap_or_default();
        Ok(CapacityResults {
            schema: SCHEMA.into(),
            throng_version: env!("CARGO_PKG_VERSION").into(),
            mode: if a.vus { "users" } else { "arrivals" }.into(),
            target: self.base.target.clone(),
            slos: self.slos.clone(),
            status: status.into(),
            sustainable: s.held,
            failed_at,
            first_broken,
            bottleneck: bottleneck(&steps, failed_at),
            server_at_failure: server_at_failure(&steps, failed_at, s.held, self.unit),
            steps,
        })
    }

    /// Runs the scenario at `level` for `duration` and judges it against
    /// the SLOs; says whether Ctrl-C cut it short.
    async fn step(&self, level: f64, duration: Duration) -> Result<(StepRow, bool), Failure> {
        let spec = self
            .base
            .with_load(step_load(self.a.vus, level, duration))?;
        let Measured {
            merged,
            server,
            interrupted,
        } = measure(spec).await?;
        let duration = merged.load_end.max(Duration::from_millis(1));
        let results: Vec<_> = self
            .base
            .judging
            .thresholds
            .iter()
            .map(|t| (t, t.evaluate(&merged.stats, duration)))
            .collect();
        let held = results.iter().all(|(_, r)| r.ok);
        let borderline = results.iter().any(|(t, r)| t.margin(r.actual) < BORDERLINE);
        let st = &merged.stats;
        let c = st.counts;
        let latency = st.latency.summary();
        let row = StepRow {
            level,
            duration_s: duration.as_secs_f64(),
            requests: c.requests,
            achieved_rate: c.requests as f64 / duration.as_secs_f64(),
            p50_ms: latency.p50,
            p99_ms: latency.p99,
            error_rate: c.failed() as f64 / c.requests.max(1) as f64,
            held,
            borderline,
            slos: results
                .iter()
                .map(|(_, r)| SloRow {
                    expr: r.expr.clone(),
                    ok: r.ok,
                    actual: r.actual_text.clone(),
                })
                .collect(),
            endpoints_p99_ms: st
                .endpoints
                .iter()
                .filter(|e| e.latency.count() > 0)
                .map(|e| (e.name.clone(), e.latency.quantile_ms(0.99)))
                .collect(),
            server: server
                .as_ref()
                .and_then(|s| analysis::server_during(&merged.stats, s)),
        };
        eprintln!(
            "  {:>9} {:<6} {:>6.1}s  achieved {:>9.1} req/s  p50 {:>8.2}ms  p99 {:>8.2}ms  errors {:>6.2}%  {}{}",
            fmt_level(level),
            self.unit,
            row.duration_s,
            row.achieved_rate,
            row.p50_ms,
            row.p99_ms,
            row.error_rate * 100.0,
            verdict(&row),
            if borderline { " (borderline)" } else { "" }
        );
        Ok((row, interrupted))
    }

    /// Cools down, then makes sure the target answers before the next
    /// step: up to five probes of three requests.
    async fn recover(&self) -> Result<Recovered, Failure> {
        let probe = LoadSpec {
            rate: Some(10.0),
            duration: Some(Duration::from_secs(1)),
            requests: Some(3),
            ..LoadSpec::default()
        };
        for _ in 0..5 {
            tokio::time::sleep(self.a.cooldown).await;
            // A probe only asks whether the target answers: nothing read
            // beside it.
            let mut spec = self.base.with_load(probe.clone())?;
            spec.watch = crate::watch::WatchSpec::default();
            let m = measure(spec).await?;
            if m.interrupted {
                return Ok(Recovered::Interrupted);
            }
            if m.merged.stats.counts.ok > 0 {
                return Ok(Recovered::Yes);
            }
            eprintln!("capacity: the target is not answering yet; waiting");
        }
        Ok(Recovered::No)
    }
}

/// Whether the target answered again after a step.
enum Recovered {
    Yes,
    No,
    Interrupted,
}

/// Runs one step or probe to its end; Ctrl-C ends it early (and the
/// search after it).
async fn measure(mut spec: RunSpec) -> Result<Measured, Failure> {
    let outcome = controller::drive(&mut spec).await?;
    Ok(Measured {
        interrupted: outcome.ending.status == Status::Interrupted,
        merged: outcome.merged,
        server: outcome.server,
    })
}

/// A bottleneck's p99 at the failed step is at least this many times its
/// p99 at the lowest step...
const BOTTLENECK_GROWTH: f64 = 2.0;
/// ...and at least this many milliseconds more: an endpoint whose p99
/// went from 0.96 to 1.72 ms, or from 22.8 to 22.9, did not degrade, and
/// naming it would send someone to look at the wrong thing.
const BOTTLENECK_MIN_MS: f64 = 1.0;

/// The endpoint whose p99 grew most (in ms) from the lowest step to the
/// first failed one, if it grew [`BOTTLENECK_GROWTH`] times and by
/// [`BOTTLENECK_MIN_MS`] at least.
fn bottleneck(steps: &[StepRow], failed_at: Option<f64>) -> Option<Bottleneck> {
    let low = steps.iter().min_by(|a, b| a.level.total_cmp(&b.level))?;
    let high = steps.iter().find(|r| Some(r.level) == failed_at)?;
    if low.level >= high.level {
        return None;
    }
    high.endpoints_p99_ms
        .iter()
        .filter_map(|(name, &h)| {
            let l = *low.endpoints_p99_ms.get(name)?;
            Some((name, l, h))
        })
        .filter(|(_, l, h)| *h >= BOTTLENECK_GROWTH * l && h - l >= BOTTLENECK_MIN_MS)
        .max_by(|a, b| (a.2 - a.1).total_cmp(&(b.2 - b.1)))
        .map(|(name, l, h)| Bottleneck {
            endpoint: name.clone(),
            p99_low_ms: l,
            p99_high_ms: h,
            level_low: low.level,
            level_high: high.level,
        })
}

/// What the server was doing at the level that broke, each limit it was
/// at set against the last level that held.
fn server_at_failure(
    steps: &[StepRow],
    failed_at: Option<f64>,
    held: Option<f64>,
    unit: &str,
) -> Option<String> {
    let failed = steps
        .iter()
        .find(|r| Some(r.level) == failed_at && !r.held)?;
    let side = failed.server.as_ref()?;
    let before = held.and_then(|h| steps.iter().rev().find(|r| r.level == h && r.held));
    let mut parts = Vec::new();
    for c in &side.ceilings {
        let was = before.and_then(|b| b.server.as_ref()).map(|s| {
            s.ceilings
                .iter()
                .find(|o| o.series == c.series)
                .map_or(0.0, |o| o.share)
        });
        parts.push(format!(
            "{}{}",
            c.text(),
            match (was, before) {
                (Some(w), Some(b)) => format!(
                    " ({} at {} {unit}, which held)",
                    analysis::percent(w),
                    fmt_level(b.level)
                ),
                _ => String::new(),
            }
        ));
    }
    parts.extend(side.processes.iter().map(analysis::ProcessState::text));
    if parts.is_empty() {
        parts.push(
            "no scraped gauge was at a limit there, and no watched process was seen CPU-bound"
                .into(),
        );
    }
    Some(format!(
        "at {} {unit}: {}",
        fmt_level(failed.level),
        parts.join("; ")
    ))
}

fn summary(r: &CapacityResults, unit: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nthrong capacity -> {} ({} steps, {})",
        r.target,
        r.steps.len(),
        r.status
    );
    match (r.sustainable, r.failed_at) {
        (Some(h), Some(f)) => {
            let _ = writeln!(
                out,
                "  sustainable: {} {unit} (held at {}, broke at {})",
                fmt_level(h),
                fmt_level(h),
                fmt_level(f)
            );
        }
        (Some(h), None) => {
            let _ = writeln!(
                out,
                "  sustainable: at least {} {unit}: every step held, up to the --max or the last step",
                fmt_level(h)
            );
        }
        (None, Some(f)) => {
            let _ = writeln!(
                out,
                "  sustainable: none: even {} {unit} broke an SLO",
                fmt_level(f)
            );
        }
        (None, None) => {
            let _ = writeln!(out, "  sustainable: unknown: no step finished");
        }
    }
    for slo in &r.first_broken {
        let _ = writeln!(out, "  broke first: {} (actual {})", slo.expr, slo.actual);
        if slo.expr.starts_with("dropped") {
            let _ = writeln!(
                out,
                "    arrivals were dropped at the in-flight limit: the target was offered less than the level. \
                 Either its sessions were slow to finish (a CPU-bound process in `server` says so; \
                 watch it with --watch-pid), or the generator was the limit (more --workers or machines search higher)"
            );
        }
    }
    if let Some(server) = &r.server_at_failure {
        let _ = writeln!(out, "  server: {server}");
    }
    if let Some(b) = &r.bottleneck {
        let _ = writeln!(
            out,
            "  bottleneck: {}: p99 {:.1}ms at {} {unit}, {:.1}ms at {} {unit}",
            b.endpoint,
            b.p99_low_ms,
            fmt_level(b.level_low),
            b.p99_high_ms,
            fmt_level(b.level_high)
        );
    } else if let Some(f) = r.failed_at {
        let _ = writeln!(
            out,
            "  bottleneck: none: no endpoint's p99 doubled from the lowest step to {} {unit}",
            fmt_level(f)
        );
    }
    let _ = writeln!(out, "  steps:");
    for st in &r.steps {
        let _ = writeln!(
            out,
            "    {:>9} {unit:<6} p99 {:>8.2}ms  errors {:>6.2}%  {}",
            fmt_level(st.level),
            st.p99_ms,
            st.error_rate * 100.0,
            verdict(st)
        );
    }
    out
}

/// A step's verdict in words: "held", or "FAILED" with the SLOs it broke
/// and their actuals.
fn verdict(step: &StepRow) -> String {
    if step.held {
        return "held".into();
    }
    let broken: Vec<String> = step
        .slos
        .iter()
        .filter(|s| !s.ok)
        .map(|s| format!("{} (actual {})", s.expr, s.actual))
        .collect();
    format!("FAILED: {}", broken.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step at `level` with each endpoint's p99 and its SLOs' verdicts.
    fn step(level: f64, held: bool, p99s: &[(&str, f64)], slos: &[(&str, bool)]) -> StepRow {
        StepRow {
            level,
            duration_s: 1.0,
            requests: 100,
            achieved_rate: level,
            p50_ms: 1.0,
            p99_ms: 1.0,
            error_rate: 0.0,
            held,
            borderline: false,
            slos: slos
                .iter()
                .map(|&(expr, ok)| SloRow {
                    expr: expr.into(),
                    ok,
                    actual: if expr == "dropped<1%" {
                        "2.69%".into()
                    } else {
                        "12ms".into()
                    },
                })
                .collect(),
            endpoints_p99_ms: p99s.iter().map(|&(n, p99)| (n.to_string(), p99)).collect(),
            server: None,
        }
    }

    #[test]
    fn a_search_of_arrivals_holds_them_offered_unless_the_user_says_how() {
        let slos = |exprs: &[&str], vus: bool| {
            let mut slos: Vec<Threshold> =
                exprs.iter().map(|e| Threshold::parse(e).unwrap()).collect();
            with_offered(&mut slos, vus).unwrap();
            slos.into_iter().map(|t| t.expr).collect::<Vec<_>>()
        };
        assert_eq!(slos(&["p99<20ms"], false), ["p99<20ms", "dropped<1%"]);
        // The user's own share of dropped arrivals stands instead.
        assert_eq!(
            slos(&["p99<20ms", "dropped<5%"], false),
            ["p99<20ms", "dropped<5%"]
        );
        // A count of drops is not a share: the share is still held.
        assert_eq!(slos(&["dropped<100"], false), ["dropped<100", "dropped<1%"]);
        // Users are not arrivals: none are dropped.
        assert_eq!(slos(&["p99<20ms"], true), ["p99<20ms"]);
    }

    #[test]
    fn a_broken_share_of_dropped_arrivals_is_explained_whoever_set_it() {
        for expr in ["dropped<1%", "dropped<5%"] {
            let failed = step(400.0, false, &[], &[("p99<20ms", true), (expr, false)]);
            let r = CapacityResults {
                schema: report::CAPACITY_SCHEMA.into(),
                throng_version: String::new(),
                mode: "arrivals".into(),
                target: "http://127.0.0.1:1".into(),
                slos: vec!["p99<20ms".into(), expr.into()],
                status: "completed".into(),
                sustainable: Some(200.0),
                failed_at: Some(400.0),
                first_broken: failed.slos[1..].to_vec(),
                bottleneck: None,
                server_at_failure: None,
                steps: vec![failed],
            };
            let text = summary(&r, "/s");
            assert!(
                text.contains("arrivals were dropped at the in-flight limit"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_failed_step_says_which_slos_it_broke() {
        assert_eq!(
            verdict(&step(100.0, true, &[], &[("p99<20ms", true)])),
            "held"
        );
        assert_eq!(
            verdict(&step(
                400.0,
                false,
                &[],
                &[("p99<20ms", true), ("dropped<1%", false)]
            )),
            "FAILED: dropped<1% (actual 2.69%)"
        );
    }

    #[test]
    fn a_bottleneck_is_an_endpoint_whose_p99_at_least_doubled() {
        // Two steps, 100/s (held) and 400/s (failed), with each endpoint's
        // p99 at both.
        let steps = |p99s: &[(&str, f64, f64)]| {
            let at = |high: bool| -> Vec<(&str, f64)> {
                p99s.iter()
                    .map(|&(n, low, hi)| (n, if high { hi } else { low }))
                    .collect()
            };
            [
                step(100.0, true, &at(false), &[]),
                step(400.0, false, &at(true), &[]),
            ]
        };
        let named =
            |p99s: &[(&str, f64, f64)]| bottleneck(&steps(p99s), Some(400.0)).map(|b| b.endpoint);
        // The most milliseconds among those that at least doubled: not
        // `search` (+50 ms, 1.5x), but `login` (+8 ms, 5x).
        assert_eq!(
            named(&[
                ("search", 100.0, 150.0),
                ("login", 2.0, 10.0),
                ("home", 0.2, 0.9)
            ]),
            Some("login".into())
        );
        // 0.96 to 1.72 ms, 22.8 to 22.9 ms, 0.2 to 0.9 ms (3.5x, but less
        // than a millisecond more): none.
        assert_eq!(
            named(&[("a", 0.96, 1.72), ("b", 22.8, 22.9), ("c", 0.2, 0.9)]),
            None
        );
    }

    #[test]
    fn the_capacity_search_says_how_far_it_has_to_go() {
        let s = Duration::from_secs;
        assert_eq!(
            progress_note(5, Some(4), s(35), s(200), s(1800)),
            "  step 5 done; at most 4 more (about 2m20s left; --time-limit allows 26m40s)"
        );
        assert_eq!(
            progress_note(2, None, s(35), s(70), s(1800)),
            "  step 2 done; still climbing, so the steps left are not known yet (--time-limit allows 28m50s)"
        );
    }
}
