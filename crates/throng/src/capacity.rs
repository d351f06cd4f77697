//! `throng capacity`: runs the scenario at one level after another, as
//! `analysis::Search` decides, and reports the highest level that held
//! every SLO, the bracket around it, the SLO that broke first and the
//! endpoint that degraded most.

use std::io::Write as _;
use std::time::{Duration, Instant};

use analysis::{Search, StepVerdict, BORDERLINE};
use anyhow::anyhow;
use engine::Event;
use plan::{parse_duration, Plan};
use report::{fmt_level, Bottleneck, CapacityResults, SloRow, StepRow, CAPACITY_SCHEMA as SCHEMA};

use crate::args::CapacityArgs;
use crate::run::{self, Merged};
use crate::{exit, Failure};

fn percent_arg(text: &str) -> Result<f64, Failure> {
    match crate::compare::share(text) {
        Some(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(Failure::usage(anyhow!(
            "--precision {text:?}: give a share such as 10% or 0.1"
        ))),
    }
}

/// The arguments of one step: the scenario at `level` for `duration`.
fn step_args(
    base: &crate::args::RunArgs,
    vus: bool,
    level: f64,
    duration: Duration,
) -> crate::args::RunArgs {
    let mut a = base.clone();
    if vus {
        a.vus = Some(level.round().max(1.0) as u32);
    } else {
        a.rate = Some(level);
    }
    a.duration = Some(format!("{}ms", duration.as_millis().max(1)));
    a
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

/// Runs one plan to its end; `stopped` is set by Ctrl-C (the step then
/// ends early and the search stops after it).
async fn run_plan(plan: &Plan, stopped: &mut bool) -> Result<Merged, Failure> {
    let mut run = engine::start(plan, Duration::from_secs(1)).map_err(Failure::usage)?;
    let mut outputs = Vec::with_capacity(run.workers);
    loop {
        tokio::select! {
            event = run.events.recv() => match event {
                Some(Event::Done(out)) => {
                    outputs.push(*out);
                    if outputs.len() == run.workers {
                        break;
                    }
                }
                Some(Event::Progress(_)) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c(), if !*stopped => {
                *stopped = true;
                run.control.stop.cancel();
                eprintln!("\nstopping: finishing this step, then reporting the levels measured so far");
            }
        }
    }
    let workers = run.workers;
    run.join();
    if outputs.len() < workers {
        return Err(Failure {
            code: exit::ABORTED,
            error: anyhow!("a worker failed; see the messages above"),
        });
    }
    Ok(run::merge_outputs(plan, outputs))
}

/// `throng capacity`.
pub fn capacity(a: &CapacityArgs) -> Result<u8, Failure> {
    let dur = |s: &str, name: &str| {
        parse_duration(s).map_err(|e| Failure::usage(anyhow!("{name} {s:?}: {e}")))
    };
    let step = dur(&a.step_duration, "--step-duration")?;
    let cooldown = dur(&a.cooldown, "--cooldown")?;
    let time_limit = dur(&a.time_limit, "--time-limit")?;
    let precision = percent_arg(&a.precision)?;
    if !(a.start > 0.0 && a.max >= a.start) {
        return Err(Failure::usage(anyhow!(
            "--start {} --max {}: the start must be above 0 and at most the max",
            a.start,
            a.max
        )));
    }
    let mut base = run::default_args()?;
    base.scenario = Some(a.scenario.clone());
    base.target = a.target.clone();
    base.thresholds = a.slos.clone();
    base.workers = a.workers;
    base.timeout = a.timeout.clone();
    base.quiet = true;
    // Validate everything (scenario, SLOs, options) before any load.
    let first = run::prepare(&step_args(&base, a.vus, a.start, step))?;
    if first.thresholds.is_empty() {
        return Err(Failure::usage(anyhow!(
            "no SLO to hold: add --slo 'p99<500ms' (and more), or thresholds to the scenario"
        )));
    }
    let target = first.plan.scenario.target.url();
    let slos: Vec<String> = first.thresholds.iter().map(|t| t.expr.clone()).collect();
    let unit = if a.vus { "users" } else { "/s" };
    eprintln!(
        "capacity: {} against {target}, holding {}",
        if a.vus {
            "concurrent users"
        } else {
            "arrivals per second"
        },
        slos.join(", ")
    );
    run::runtime()?.block_on(search(
        a, &base, step, cooldown, time_limit, precision, unit, target, slos,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn search(
    a: &CapacityArgs,
    base: &crate::args::RunArgs,
    step: Duration,
    cooldown: Duration,
    time_limit: Duration,
    precision: f64,
    unit: &str,
    target: String,
    slos: Vec<String>,
) -> Result<u8, Failure> {
    let started = Instant::now();
    let mut s = Search::new(a.start, a.max, precision);
    let mut steps: Vec<StepRow> = Vec::new();
    let mut stopped = false;
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
            step
        } else {
            step.max(Duration::from_secs_f64(a.min_samples as f64 / level))
        };
        if started.elapsed() + needed > time_limit {
            status = "time_limit";
            eprintln!(
                "capacity: the next step would pass --time-limit {}; stopping",
                a.time_limit
            );
            break;
        }
        let prepared = run::prepare(&step_args(base, a.vus, level, needed))?;
        let merged = run_plan(&prepared.plan, &mut stopped).await?;
        let duration = merged.load_end.max(Duration::from_millis(1));
        let results: Vec<_> = prepared
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
        };
        eprintln!(
            "  {:>9} {unit:<6} {:>6.1}s  achieved {:>9.1} req/s  p50 {:>8.2}ms  p99 {:>8.2}ms  errors {:>6.2}%  {}{}",
            fmt_level(level),
            row.duration_s,
            row.achieved_rate,
            row.p50_ms,
            row.p99_ms,
            row.error_rate * 100.0,
            if held { "held" } else { "FAILED" },
            if borderline { " (borderline)" } else { "" }
        );
        steps.push(row);
        s.record(level, StepVerdict { held, borderline });
        if stopped {
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
                needed + cooldown,
                started.elapsed(),
                time_limit
            )
        );
        // Cool down, then make sure the target answers before the next step.
        let mut healthy = false;
        for _ in 0..5 {
            tokio::time::sleep(cooldown).await;
            let mut probe = base.clone();
            probe.requests = Some(3);
            probe.rate = Some(10.0);
            probe.vus = None;
            probe.duration = Some("1s".into());
            let p = run::prepare(&probe)?;
            let m = run_plan(&p.plan, &mut stopped).await?;
            if m.stats.counts.ok > 0 || stopped {
                healthy = true;
                break;
            }
            eprintln!("capacity: the target is not answering yet; waiting");
        }
        if !healthy {
            status = "unhealthy";
            eprintln!("capacity: the target did not recover after the last step; stopping");
            break;
        }
        if stopped {
            status = "interrupted";
            break;
        }
    }

    let failed_at = s.failed;
    let first_broken: Vec<SloRow> = failed_at
        .and_then(|f| steps.iter().find(|r| r.level == f && !r.held))
        .map(|r| r.slos.iter().filter(|x| !x.ok).cloned().collect())
        .unwrap_or_default();
    let bottleneck = bottleneck(&steps, failed_at);
    let results = CapacityResults {
        schema: SCHEMA.into(),
        throng_version: env!("CARGO_PKG_VERSION").into(),
        mode: if a.vus { "users" } else { "arrivals" }.into(),
        target,
        slos,
        status: status.into(),
        sustainable: s.held,
        failed_at,
        first_broken,
        bottleneck,
        steps,
    };
    print!("{}", summary(&results, unit));
    if let Some(out) = &a.out {
        run::write_out(
            out,
            &serde_json::to_string_pretty(&results).unwrap_or_default(),
        )?;
    }
    if let Some(path) = &a.report {
        run::write_said(path, "report", &results.to_html())?;
    }
    let _ = std::io::stdout().flush();
    Ok(match (status, results.sustainable) {
        ("interrupted", _) => exit::ABORTED,
        (_, Some(_)) => exit::OK,
        (_, None) => exit::THRESHOLD,
    })
}

/// The endpoint whose p99 grew most (in ms) from the lowest step to the
/// first failed one.
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
        .max_by(|a, b| (a.2 - a.1).total_cmp(&(b.2 - b.1)))
        .map(|(name, l, h)| Bottleneck {
            endpoint: name.clone(),
            p99_low_ms: l,
            p99_high_ms: h,
            level_low: low.level,
            level_high: high.level,
        })
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
    }
    let _ = writeln!(out, "  steps:");
    for st in &r.steps {
        let _ = writeln!(
            out,
            "    {:>9} {unit:<6} p99 {:>8.2}ms  errors {:>6.2}%  {}",
            fmt_level(st.level),
            st.p99_ms,
            st.error_rate * 100.0,
            if st.held { "held" } else { "FAILED" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::progress_note;

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
