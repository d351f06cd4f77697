//! What "at its limit", "in step" and "CPU-bound" mean, on made-up
//! series.

use std::collections::BTreeMap;

use observe::{Series, Source};

use super::*;

fn source(kind: SourceKind, target: &str) -> Source {
    Source {
        kind,
        target: target.into(),
        readings: 10,
        failed: BTreeMap::new(),
        first_error: None,
        bad_lines: 0,
        first_bad_line: None,
        series_dropped: 0,
        gone_at_s: None,
    }
}

fn series(name: &str, kind: SeriesKind, source: usize, values: &[f64]) -> Series {
    Series {
        name: name.into(),
        metric: name.split('{').next().unwrap_or(name).into(),
        labels: BTreeMap::new(),
        kind,
        quantile: None,
        source,
        values: values.iter().map(|v| (*v >= 0.0).then_some(*v)).collect(),
    }
}

fn server(series: Vec<Series>) -> Server {
    Server {
        bucket_s: 1,
        sources: vec![
            source(SourceKind::Scrape, "http://127.0.0.1:1/metrics"),
            source(SourceKind::Process, "pid 7 (app)"),
            source(SourceKind::Process, observe::MACHINE),
        ],
        series,
    }
}

fn symptom<'a>(from: usize, signal: &'a [Option<f64>], sent: &'a [f64]) -> Symptom<'a> {
    Symptom {
        from,
        signal,
        name: "the latency",
        sent,
        bucket_s: 1,
    }
}

#[test]
fn spearman_ranks_ties_by_their_mean_and_needs_movement() {
    let up: Vec<(f64, f64)> = (0..5).map(|i| (f64::from(i), f64::from(i * i))).collect();
    assert_eq!(spearman(&up), Some(1.0));
    let down: Vec<(f64, f64)> = (0..5).map(|i| (f64::from(i), -f64::from(i))).collect();
    assert_eq!(spearman(&down), Some(-1.0));
    assert_eq!(spearman(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
    // Ties: ranks 1.5, 1.5, 3 against 1, 2, 3.
    let r = spearman(&[(0.0, 1.0), (0.0, 2.0), (5.0, 3.0)]).unwrap();
    assert!((r - 0.866).abs() < 1e-3, "{r}");
}

#[test]
fn a_pool_at_its_size_is_a_ceiling_and_one_below_it_is_not() {
    let in_use = [1.0, 2.0, 4.0, 4.0, 4.0, 3.0];
    let s = server(vec![
        series("pool_in_use", SeriesKind::Gauge, 0, &in_use),
        series("pool_size", SeriesKind::Gauge, 0, &[4.0; 6]),
    ]);
    let signal = [Some(1.0); 6];
    let side = server_side(&s, &symptom(2, &signal, &[10.0; 6])).unwrap();
    // From bucket 2: 4, 4, 4, 3 -> three of four at the size; none before.
    assert_eq!(
        side.ceilings,
        [Ceiling {
            series: "pool_in_use".into(),
            limit: Some("pool_size".into()),
            value: 4.0,
            share: 0.75,
            before: Some(0.0),
        }]
    );
    assert!(
        side.text.starts_with(
            "from then on: pool_in_use was at its limit pool_size (4) in 75.0% of the seconds (0% before)"
        ),
        "{}",
        side.text
    );
    // From bucket 5 only 3 of 4: not at the limit (within 1% is).
    let side = server_side(&s, &symptom(5, &signal, &[10.0; 6])).unwrap();
    assert!(side.ceilings.is_empty());
    // As often at it before as after (2 of 4, 1 of 2): not what began then.
    let side = server_side(&s, &symptom(4, &signal, &[10.0; 6])).unwrap();
    assert!(side.ceilings.is_empty(), "{:?}", side.ceilings);
}

#[test]
fn a_gauge_that_rose_to_a_plateau_is_flat_at_its_maximum() {
    let queue = [0.0, 10.0, 1024.0, 1023.0, 1024.0, 1024.0];
    let s = server(vec![
        series("queue_depth", SeriesKind::Gauge, 0, &queue),
        series("always", SeriesKind::Gauge, 0, &[5.0; 6]),
        // The most so far: flat at its maximum by construction.
        series(
            "in_flight_max",
            SeriesKind::Gauge,
            0,
            &[1.0, 3.0, 9.0, 9.0, 9.0, 9.0],
        ),
    ]);
    let side = server_side(&s, &symptom(2, &[Some(1.0); 6], &[10.0; 6])).unwrap();
    assert_eq!(side.ceilings.len(), 1, "{:?}", side.ceilings);
    assert_eq!(side.ceilings[0].series, "queue_depth");
    assert_eq!(side.ceilings[0].limit, None);
    assert_eq!(side.ceilings[0].share, 1.0);
    // Already at it before the onset: not something that began there.
    let side = server_side(&s, &symptom(3, &[Some(1.0); 6], &[10.0; 6])).unwrap();
    assert!(side.ceilings.is_empty());
}

#[test]
fn in_step_needs_levels_and_changes_and_leaves_out_the_echoed_load() {
    let n = 12;
    // The latency: flat, then climbing with bumps.
    let latency: Vec<f64> = [1, 1, 1, 1, 2, 5, 4, 9, 12, 11, 20, 25]
        .iter()
        .map(|v| f64::from(*v))
        .collect();
    let signal: Vec<Option<f64>> = latency.iter().map(|v| Some(*v)).collect();
    // A pool wait that moves with it one second ahead.
    let mut wait: Vec<f64> = latency[1..].to_vec();
    wait.push(30.0);
    // Served requests: exactly what throng sent, a ramp.
    let sent: Vec<f64> = (0..n).map(|i| 10.0 * f64::from(i as u8)).collect();
    // A counter on the same ramp with noise: rises, but not with the bumps.
    let trend: Vec<f64> = (0..n)
        .map(|i| f64::from(i as u8) + if i % 2 == 0 { 0.5 } else { 0.0 })
        .collect();
    let s = server(vec![
        series("wait_p99", SeriesKind::Quantile, 0, &wait),
        series("served", SeriesKind::Rate, 0, &sent),
        series("trend", SeriesKind::Gauge, 0, &trend),
    ]);
    let side = server_side(&s, &symptom(4, &signal, &sent)).unwrap();
    assert_eq!(
        side.in_step,
        [InStep {
            series: "wait_p99".into(),
            rho: 1.0,
            lead_s: 1,
        }]
    );
    assert!(
        side.text
            .contains("in step with the latency: wait_p99 (Spearman 1.00, 1 s ahead)"),
        "{}",
        side.text
    );
    // Nothing in step is said too; so is too short a run.
    let s = server(vec![series("trend", SeriesKind::Gauge, 0, &trend)]);
    let side = server_side(&s, &symptom(4, &signal, &sent)).unwrap();
    assert!(side
        .text
        .contains("no scraped series rose in step with the latency"));
    let side = server_side(&s, &symptom(0, &signal[..5], &sent)).unwrap();
    assert!(side.text.contains("too few seconds (5)"), "{}", side.text);
}

#[test]
fn a_process_is_cpu_bound_near_its_cores_or_on_a_busy_machine_else_waiting() {
    let process = |user: f64, threads: f64, busy: f64| {
        server(vec![
            series("process_cpu_user_cores", SeriesKind::Rate, 1, &[user; 4]),
            series("process_cpu_system_cores", SeriesKind::Rate, 1, &[0.1; 4]),
            series("process_threads", SeriesKind::Gauge, 1, &[threads; 4]),
            series("machine_cpus", SeriesKind::Gauge, 2, &[4.0; 4]),
            series("machine_cpu_busy_cores", SeriesKind::Rate, 2, &[busy; 4]),
            series("machine_throng_cores", SeriesKind::Rate, 2, &[0.5; 4]),
        ])
    };
    let verdict = |s: &Server| {
        let side = server_side(s, &symptom(0, &[Some(1.0); 4], &[1.0; 4])).unwrap();
        (side.processes[0].clone(), side.text)
    };
    // One thread at 0.9 of a core: CPU-bound on an idle machine.
    let (p, text) = verdict(&process(0.8, 1.0, 1.5));
    assert!(p.cpu_bound);
    assert_eq!((p.cores, p.could_use), (0.9, 1.0));
    assert!(
        text.contains("pid 7 (app) used 0.90 cores of the 1 it could; the machine's 4 CPUs were 37.5% busy, 0.50 cores of it throng's own load: CPU-bound"),
        "{text}"
    );
    // 16 threads on 4 CPUs using 1.2: waiting.
    let (p, text) = verdict(&process(1.1, 16.0, 2.0));
    assert!(!p.cpu_bound);
    assert_eq!(p.could_use, 4.0);
    assert!(text.ends_with("waiting, not computing"), "{text}");
    // The same, on a machine whose CPUs were all busy: CPU-bound.
    let (p, _) = verdict(&process(1.1, 16.0, 3.9));
    assert!(p.cpu_bound);
}

#[test]
fn dropped_arrivals_while_a_watched_process_was_cpu_bound_blame_the_target_too() {
    // Four seconds of 100 requests each; `dropped` arrivals in each of
    // the last two (the in-flight limit reached).
    let stats = |dropped: u64| {
        let mut s = stats::Stats::new(["GET /".to_string()]);
        for i in 0..400u64 {
            s.record(&stats::Sample {
                endpoint: 0,
                due: std::time::Duration::from_millis(i * 10),
                lag: std::time::Duration::ZERO,
                service: std::time::Duration::from_millis(20),
                phases: stats::Phases::default(),
                outcome: stats::Outcome::Response { status: 200 },
                checks_failed: false,
                client: Default::default(),
            });
        }
        for i in 0..dropped {
            s.record_dropped(0, std::time::Duration::from_millis(2000 + i));
        }
        s
    };
    // The target used `user` + 0.1 of its one thread's core.
    let watched = |user: f64| {
        server(vec![
            series("process_cpu_user_cores", SeriesKind::Rate, 1, &[user; 4]),
            series("process_cpu_system_cores", SeriesKind::Rate, 1, &[0.1; 4]),
            series("process_threads", SeriesKind::Gauge, 1, &[1.0; 4]),
            series("machine_cpus", SeriesKind::Gauge, 2, &[4.0; 4]),
            series("machine_cpu_busy_cores", SeriesKind::Rate, 2, &[1.5; 4]),
            series("machine_throng_cores", SeriesKind::Rate, 2, &[0.5; 4]),
        ])
    };
    let saturation = |s: &stats::Stats, server: &Server| {
        crate::findings(s, &crate::LoadShape::default(), Some(server))
            .into_iter()
            .find(|f| f.kind == "generator_saturation")
    };
    // Drops while the target used 0.9 of its core: the target was full.
    let f = saturation(&stats(30), &watched(0.8)).unwrap();
    assert_eq!(f.what, crate::TARGET_WAS_FULL);
    assert!(crate::target_was_full(&f));
    let side = f.server.unwrap();
    assert!(side.processes[0].cpu_bound);
    assert!(
        side.text.starts_with("over the run: too few seconds (4) to rank series against the dropped arrivals (8 needed); pid 7 (app) used 0.90 cores of the 1 it could"),
        "{}",
        side.text
    );
    // Drops while it used 0.3: the generator's limit, and the server side
    // says the target was waiting.
    let f = saturation(&stats(30), &watched(0.2)).unwrap();
    assert!(
        f.what.starts_with("the generator, not the target"),
        "{}",
        f.what
    );
    assert!(!crate::target_was_full(&f));
    assert!(f.server.unwrap().text.ends_with("waiting, not computing"));
    // No drops, no finding, whatever the target did.
    assert!(saturation(&stats(0), &watched(0.8)).is_none());
}
