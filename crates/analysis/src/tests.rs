//! Unit tests: threshold parsing and meaning, Wilson intervals.

use std::time::Duration;

use expect_test::expect;
use stats::{Outcome, Phases, Sample, Stats};

use crate::*;

fn run(latencies_ms: &[u64], failures: u64) -> Stats {
    let mut s = Stats::new(["GET /".to_string()]);
    for &l in latencies_ms {
        s.record(&Sample {
            endpoint: 0,
            due: Duration::ZERO,
            lag: Duration::ZERO,
            service: Duration::from_millis(l),
            phases: Phases::default(),
            outcome: Outcome::Response { status: 200 },
            checks_failed: false,
            client: Default::default(),
        });
    }
    for _ in 0..failures {
        s.record(&Sample {
            endpoint: 0,
            due: Duration::ZERO,
            lag: Duration::ZERO,
            service: Duration::from_millis(1),
            phases: Phases::default(),
            outcome: Outcome::Response { status: 500 },
            checks_failed: false,
            client: Default::default(),
        });
    }
    s
}

fn eval(expr: &str, stats: &Stats) -> String {
    let r = Threshold::parse(expr)
        .unwrap()
        .evaluate(stats, Duration::from_secs(10));
    format!(
        "{} {} {}",
        if r.ok { "held" } else { "FAILED" },
        r.expr,
        r.actual_text
    )
}

#[test]
fn thresholds_mean_what_they_say() {
    // 100 responses: 1..=100 ms. p99 is the 99th smallest.
    let latencies: Vec<u64> = (1..=100).collect();
    let s = run(&latencies, 0);
    expect!["held p99<100ms 99.01ms"].assert_eq(&eval("p99<100ms", &s));
    expect!["FAILED p99 < 0.05s 99.01ms"].assert_eq(&eval("p99 < 0.05s", &s));
    // Values are the top of their HDR bucket (3 significant digits), so a
    // recorded 50 ms reads 50.02 ms: conservative, and shown as such.
    expect!["FAILED p50<=50ms 50.02ms"].assert_eq(&eval("p50<=50ms", &s));
    expect!["held median<=50.1ms 50.02ms"].assert_eq(&eval("median<=50.1ms", &s));
    expect!["FAILED max<=100ms 100.03ms"].assert_eq(&eval("max<=100ms", &s));
    // rate: requests sent per second of load (100 in 10 s).
    expect!["held rate>=10 10.0/s"].assert_eq(&eval("rate>=10", &s));
    expect!["FAILED rate>450 10.0/s"].assert_eq(&eval("rate>450", &s));
    // errors: failed requests over requests sent.
    let s = run(&latencies, 3); // 3 of 103
    expect!["FAILED errors<1% 2.91%"].assert_eq(&eval("errors<1%", &s));
    expect!["held errors<5% 2.91%"].assert_eq(&eval("errors<5%", &s));
    expect!["held errors<=3 3"].assert_eq(&eval("errors<=3", &s));
    expect!["held p99(GET /)<200ms 99.01ms"].assert_eq(&eval("p99(GET /)<200ms", &s));
}

#[test]
fn dropped_with_a_percent_is_a_share_of_the_arrivals_due() {
    // 97 sessions started and 3 arrivals dropped: 3% of the 100 due.
    let mut s = run(&[1; 97], 0);
    for i in 0..97 {
        s.record_session(Duration::from_millis(i));
    }
    for _ in 0..3 {
        s.record_dropped(0, Duration::ZERO);
    }
    expect!["FAILED dropped<1% 3.00%"].assert_eq(&eval("dropped<1%", &s));
    expect!["held dropped<=3% 3.00%"].assert_eq(&eval("dropped<=3%", &s));
    expect!["held dropped<=3 3"].assert_eq(&eval("dropped<=3", &s));
    // A closed model drops nothing: 0%.
    expect!["held dropped<1% 0.00%"].assert_eq(&eval("dropped<1%", &run(&[1; 10], 0)));
    assert!(Threshold::parse("dropped(GET /)<1%")
        .unwrap_err()
        .to_string()
        .contains("cannot be limited to one endpoint"));
}

#[test]
fn latency_threshold_without_responses_fails() {
    let s = run(&[], 0);
    expect!["FAILED p99<300ms no responses"].assert_eq(&eval("p99<300ms", &s));
}

#[test]
fn percentile_shorthands() {
    for (expr, q) in [
        ("p999<1s", 0.999),
        ("p99.9<1s", 0.999),
        ("p90<1s", 0.9),
        ("p9999<1s", 0.9999),
    ] {
        let Metric::Quantile(got) = Threshold::parse(expr).unwrap().metric else {
            panic!("{expr}")
        };
        assert!((got - q).abs() < 1e-12, "{expr}: {got}");
    }
}

#[test]
fn bad_thresholds_explain_themselves() {
    let e = |s: &str| Threshold::parse(s).unwrap_err().to_string();
    expect![[r#"invalid threshold "p99<300": a latency needs a unit: write 300ms or 300s"#]]
        .assert_eq(&e("p99<300"));
    expect![[
        r#"invalid threshold "p99 300ms": no comparison: write e.g. p99<300ms, errors<1%, rate>450"#
    ]]
    .assert_eq(&e("p99 300ms"));
    expect![[r#"invalid threshold "erors<1%": unknown metric "erors" (did you mean errors?): use p50..p99.9, median, mean, min, max, errors, rate, requests or dropped (live: p99_message, p99_upgrade, p99_first_event, p99_gap, ws_errors)"#]]
        .assert_eq(&e("erors<1%"));
    expect![[r#"invalid threshold "rate>1%": rate takes a plain number, not "%""#]]
        .assert_eq(&e("rate>1%"));
    expect![[
        r#"invalid threshold "p101<1s": "p101" is not a percentile: write p50, p90, p99, p99.9 ..."#
    ]]
    .assert_eq(&e("p101<1s"));
}

#[test]
fn websocket_thresholds_read_the_sockets_numbers() {
    // Two endpoints: "pair" (a WebSocket step: 4 connections, 1 closed
    // abnormally; round trips 1..=100 ms) and "GET /" (2 requests, one
    // 500, which the WebSocket metrics do not see).
    let mut s = Stats::new(["pair".to_string(), "GET /".to_string()]);
    let socket = |failed: bool| Sample {
        outcome: if failed {
            Outcome::Failed(stats::ErrorKind::WsClosed)
        } else {
            Outcome::Response { status: 101 }
        },
        ..sample(0, 0, 101, false)
    };
    for failed in [false, false, false, true] {
        s.record(&socket(failed));
        s.record_live_open(0, "ws", Duration::from_millis(5), Duration::ZERO);
        let upgraded = stats::LiveSession {
            opened: true,
            closed_at: Some(Duration::from_secs(1)),
            server_close: failed.then_some(stats::CLOSED_ABNORMALLY),
            ..Default::default()
        };
        s.record_live(0, "ws", &upgraded);
    }
    for ms in 1..=100 {
        s.record_live_time(
            0,
            "ws",
            stats::LiveTime::RoundTrip,
            Duration::from_millis(ms),
        );
    }
    s.record(&sample(1, 0, 200, false));
    s.record(&sample(1, 0, 500, false));
    expect!["held p99_message(pair)<100ms 99.01ms"].assert_eq(&eval("p99_message(pair)<100ms", &s));
    expect!["FAILED p50_message<50ms 50.02ms"].assert_eq(&eval("p50_message<50ms", &s));
    expect!["held p99_upgrade<10ms 5.00ms"].assert_eq(&eval("p99_upgrade<10ms", &s));
    // ws_errors: failed connections over connections tried (1 of 4),
    // whatever the HTTP requests did (1 of 2 failed).
    expect!["FAILED ws_errors<1% 25.00%"].assert_eq(&eval("ws_errors<1%", &s));
    expect!["held ws_errors<=1 1"].assert_eq(&eval("ws_errors<=1", &s));
    expect!["FAILED errors<1% 33.33%"].assert_eq(&eval("errors<1%", &s));
    // An endpoint that is no WebSocket has no round trips.
    expect!["FAILED p99_message(GET /)<1s no responses"]
        .assert_eq(&eval("p99_message(GET /)<1s", &s));
    let e = |s: &str| Threshold::parse(s).unwrap_err().to_string();
    expect![[r#"invalid threshold "p1x_message<1s": "p1x_message" is not a percentile: write p50_message, p99_message, p99.9_message ..."#]]
        .assert_eq(&e("p1x_message<1s"));
    expect![[r#"invalid threshold "ws_errors<1s": ws_errors takes a plain number, not "s""#]]
        .assert_eq(&e("ws_errors<1s"));
}

#[test]
fn wilson_interval_matches_known_values() {
    // 0 failures in 2,000: the upper bound is ~0.19%.
    let (lo, hi) = wilson(0, 2000);
    assert_eq!(lo, 0.0);
    assert!((hi - 0.00192).abs() < 0.00002, "{hi}");
    // 50 in 100: centred, about +-9.6%.
    let (lo, hi) = wilson(50, 100);
    assert!(
        (lo - 0.404).abs() < 0.002 && (hi - 0.596).abs() < 0.002,
        "{lo} {hi}"
    );
    assert_eq!(wilson(0, 0), (0.0, 1.0));
}

#[test]
fn error_rate_threshold_is_clearly_lost_only_with_evidence() {
    let t = Threshold::parse("errors<1%").unwrap();
    assert!(!t.clearly_lost(50, 10), "too few requests to judge");
    assert!(!t.clearly_lost(1000, 12), "1.2% is not clearly above 1%");
    assert!(t.clearly_lost(1000, 40), "4% is");
    let t = Threshold::parse("errors<10").unwrap();
    assert!(!t.clearly_lost(5, 9));
    assert!(t.clearly_lost(5, 10));
    assert!(!Threshold::parse("p99<1ms")
        .unwrap()
        .clearly_lost(1000, 1000));
}

fn sample(endpoint: usize, due_ms: u64, status: u16, checks_failed: bool) -> Sample {
    Sample {
        endpoint,
        due: Duration::from_millis(due_ms),
        lag: Duration::ZERO,
        service: Duration::from_millis(20),
        phases: Phases::default(),
        outcome: Outcome::Response { status },
        checks_failed,
        client: Default::default(),
    }
}

fn meta<'a>(
    endpoint: &'a str,
    reads_back: bool,
    part: &'a str,
    header: &'a str,
) -> stats::CheckMeta<'a> {
    stats::CheckMeta {
        endpoint,
        reads_back,
        part,
        header,
    }
}

fn shown(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {} @{:?} [{}] {}\n    {}\n",
                f.severity.as_str(),
                f.kind,
                f.at_s,
                f.location.as_deref().unwrap_or("-"),
                f.what,
                f.evidence
            )
        })
        .collect()
}

#[test]
fn errors_began_names_the_second_the_load_and_the_concurrency() {
    // 100 requests a second for 10 s, ramping 0 -> 100/s in the plan;
    // from second 6 on, 10% answer 503. A single 503 in second 2 is noise.
    let mut s = Stats::new(["GET /".to_string()]);
    for t in 0..10u64 {
        for i in 0..100u64 {
            let failing = (t >= 6 && i % 10 == 0) || (t == 2 && i == 0);
            s.record(&sample(
                0,
                t * 1000 + i * 10,
                if failing { 503 } else { 200 },
                false,
            ));
        }
    }
    let shape = LoadShape {
        closed: false,
        level: (0..10).map(|t| 10.0 * t as f64).collect(),
        peak: 90.0,
    };
    expect![[r#"
        critical errors_began @Some(6.0) [http_5xx] http_5xx errors began at 6s, at 60 arrivals/s offered, about 2 in flight
            10 of 100 requests due in second 6 failed with http_5xx; 41 in the whole run (4.10%)
    "#]]
    .assert_eq(&shown(&findings(&s, &shape, None)));
    // Closed model: the concurrency is the user count.
    let closed = LoadShape {
        closed: true,
        level: vec![8.0; 10],
        peak: 8.0,
    };
    assert!(findings(&s, &closed, None)[0].what.ends_with("at 8 users"));
}

#[test]
fn wrong_content_and_stale_reads_carry_their_intervals() {
    // /pledge: 2,000 responses, 160 show an error page; /home: 2,000, none
    // fail; /profile's read-back check fails 30 of 100 times.
    let mut s = Stats::new(["pledge", "home", "profile"].map(String::from))
        .with_checks(["pledge ok", "home ok", "read your writes"].map(String::from));
    s.describe_checks([
        meta("pledge", false, "body", ""),
        meta("home", false, "body", ""),
        meta("profile", true, "body", ""),
    ]);
    for i in 0..2000u64 {
        let bad = i % 25 == 0;
        s.record(&sample(0, i, 200, bad));
        s.record_check(0, !bad);
        s.record(&sample(1, i, 200, false));
        s.record_check(1, true);
    }
    for i in 0..100u64 {
        let stale = i % 10 < 3;
        s.record(&sample(2, i, 200, stale));
        s.record_check(2, !stale);
    }
    expect![[r#"
        critical wrong_content @Some(0.0) [pledge] pledge: 4.00% of responses showed the wrong content, beginning at 0s at about 42.1 in flight
            80 of 2000 responses failed a content check (95% CI 3.23% to 4.95%); failing: pledge ok
        critical stale_reads @Some(0.0) [profile] stale reads: 30.0% of reads did not show the value just written, beginning at 0s at about 42.1 in flight
            check "read your writes" failed 30 of 100 times (95% CI 21.9% to 39.6%): a read right after a write returned older data, as behind a lagging replica or cache
        info content_ok @None [-] no wrong content seen on 1 checked endpoint(s)
            failure rates, 95% upper bounds: home: 0 of 2000, below 0.15%
    "#]]
    .assert_eq(&shown(&findings(&s, &LoadShape::default(), None)));
}

#[test]
fn zero_failures_are_bounded_not_zero() {
    // "0 failures in 2,000 requests" is "below 0.15%", about 3/n.
    assert_eq!(percent(zero_failure_bound(2000)), "0.15%");
    assert_eq!(percent(zero_failure_bound(100)), "2.95%");
    assert_eq!(zero_failure_bound(0), 1.0);
}

#[test]
fn a_healthy_run_has_no_problem_findings() {
    let mut s = Stats::new(["GET /".to_string()]);
    for i in 0..500u64 {
        s.record(&sample(0, i * 10, 200, false));
    }
    assert!(findings(&s, &LoadShape::default(), None).is_empty());
}

#[test]
fn the_bottleneck_is_the_endpoint_whose_latency_grew_most_with_load() {
    // A 10 s ramp from 0 to 100 arrivals/s; login's p99 climbs from 10 ms
    // to 400 ms as load rises, home's from 1 ms to 3 ms.
    let level: Vec<f64> = (0..10).map(|t| 10.0 * t as f64 + 5.0).collect();
    let bands: Vec<u8> = level
        .iter()
        .map(|&l| stats::load_band(l, 100.0) as u8)
        .collect();
    let mut s = Stats::new(["login".to_string(), "home".to_string()]).with_load_bands(bands);
    for t in 0..10u64 {
        for i in 0..100u64 {
            let login_ms = if t < 5 { 10 } else { 10 + (t - 4) * 80 };
            let mut a = sample(0, t * 1000 + i, 200, false);
            a.service = Duration::from_millis(login_ms);
            s.record(&a);
            let mut b = sample(1, t * 1000 + i, 200, false);
            b.service = Duration::from_millis(1 + t / 4);
            s.record(&b);
        }
    }
    let shape = LoadShape {
        closed: false,
        level,
        peak: 100.0,
    };
    expect![[r#"
        warning bottleneck @Some(5.0) [login] login p99 rose 41x, from 10ms to 412ms, between 5 and 95 arrivals/s; other endpoints' p99 rose by at most 2ms
            per-endpoint p99 by planned load, in 8 bands of the peak, from the lowest and highest bands with at least 50 responses; it first doubled at about 55 arrivals/s
    "#]]
    .assert_eq(&shown(&findings(&s, &shape, None)));
    // A constant load has no bands: nothing to attribute.
    let flat = Stats::new(["login".to_string()]).with_load_bands(vec![3; 10]);
    assert!(flat.endpoints[0].by_load.is_empty());
}

#[test]
fn assets_that_cannot_be_cached_for_a_day_are_named() {
    use stats::CacheObs;
    let mut s = Stats::new(["css", "logo", "font"].map(String::from));
    let obs = |headers: &[(&str, &str)]| CacheObs::of(headers.iter().copied());
    for i in 0..100 {
        let hit = if i == 0 { "MISS" } else { "HIT" };
        s.record_cache(
            0,
            &obs(&[("Cache-Control", "no-cache"), ("X-Cache", "MISS")]),
        );
        s.record_cache(
            1,
            &obs(&[
                ("cache-control", "public, max-age=5"),
                ("x-cache", hit),
                ("age", "1"),
            ]),
        );
        s.record_cache(
            2,
            &obs(&[
                ("Cache-Control", "public, max-age=31536000, immutable"),
                ("X-Cache", hit),
            ]),
        );
    }
    expect![[r#"
        warning caching @None [css] css: a static asset not cacheable for a day in 100.0% of responses, so browsers and CDNs fetch it again and again
            of 100 responses: 100 uncacheable (no-store, no-cache, private or max-age=0); edge cache hit ratio 0% (0 of 100 with X-Cache)
        warning caching @None [logo] logo: a static asset not cacheable for a day in 100.0% of responses, so browsers and CDNs fetch it again and again
            of 100 responses: 100 with max-age under a day (shortest 5s); edge cache hit ratio 99.0% (99 of 100 with X-Cache)
        info caching_ok @None [-] 1 static asset(s) cacheable for a day or more
            font; edge cache hit ratio 99.0% (99 of 100 with X-Cache)
    "#]]
    .assert_eq(&shown(&findings(&s, &LoadShape::default(), None)));
    // s-maxage governs shared caches; max-age=0 is uncacheable.
    assert_eq!(
        obs(&[("Cache-Control", "max-age=0, s-maxage=600")]).policy,
        stats::Policy::MaxAge(600)
    );
    assert_eq!(
        obs(&[("Cache-Control", "max-age=0")]).policy,
        stats::Policy::Uncacheable
    );
}

/// Runs a search against a system that holds up to `capacity`.
fn search(start: f64, max: f64, capacity: f64) -> (Search, Vec<f64>) {
    let mut s = Search::new(start, max, 0.1);
    let mut steps = Vec::new();
    while let Some(level) = s.next() {
        steps.push(level);
        assert!(steps.len() < 50, "the search must end: {steps:?}");
        s.record(
            level,
            StepVerdict {
                held: level <= capacity,
                borderline: ((level - capacity) / capacity).abs() < BORDERLINE,
            },
        );
    }
    (s, steps)
}

#[test]
fn capacity_search_doubles_then_bisects_to_a_tight_bracket() {
    let (s, steps) = search(50.0, 100_000.0, 370.0);
    assert_eq!(&steps[..5], &[50.0, 100.0, 200.0, 400.0, 300.0]);
    let (held, failed) = (s.held.unwrap(), s.failed.unwrap());
    assert!(held <= 370.0 && 370.0 < failed, "{held}..{failed}");
    assert!((failed - held) / held <= 0.1, "{held}..{failed}");
    // Borderline levels (within 10% of the capacity) ran twice.
    let repeats = steps.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(repeats >= 1, "{steps:?}");
    assert!(steps.len() <= 12, "{steps:?}");
}

#[test]
fn capacity_search_respects_its_bounds() {
    // Capacity above the maximum: stops at max, which held.
    let (s, steps) = search(100.0, 1000.0, 1e9);
    assert_eq!(steps, [100.0, 200.0, 400.0, 800.0, 1000.0]);
    assert_eq!((s.held, s.failed), (Some(1000.0), None));
    // Capacity below the start: steps down until something holds.
    let (s, steps) = search(100.0, 1000.0, 30.0);
    assert_eq!(&steps[..3], &[100.0, 50.0, 25.0]);
    let (held, failed) = (s.held.unwrap(), s.failed.unwrap());
    assert!(held <= 30.0 && 30.0 < failed && (failed - held) / held <= 0.1);
    // Nothing holds at all: gives up at a sixteenth of the start.
    let (s, steps) = search(160.0, 1000.0, 1.0);
    assert_eq!(s.held, None);
    assert_eq!(steps.last(), Some(&10.0));
}

#[test]
fn wrong_content_says_when_and_at_what_load_it_began() {
    // 100 responses a second for 10 s; from second 7 on, 1 in 5 shows an
    // error page (a race that fires only under the higher load).
    let mut s = Stats::new(["pledge".to_string()]).with_checks(["ok".to_string()]);
    s.describe_checks([meta("pledge", false, "body", "")]);
    for t in 0..10u64 {
        for i in 0..100u64 {
            let bad = t >= 7 && i % 5 == 0;
            s.record(&sample(0, t * 1000 + i * 10, 200, bad));
            s.record_check(0, !bad);
        }
    }
    let shape = LoadShape {
        closed: true,
        level: (1..=10).map(|u| 8.0 * u as f64).collect(),
        peak: 80.0,
    };
    let wrong = findings(&s, &shape, None)
        .into_iter()
        .find(|f| f.kind == "wrong_content")
        .unwrap();
    assert_eq!(wrong.at_s, Some(7.0));
    assert_eq!(
        wrong.what,
        "pledge: 6.00% of responses showed the wrong content, beginning at 7s at 64 users"
    );
}

/// `n` windows of 200 responses each (due across `n` quarter seconds),
/// latencies lognormal-ish around `median_ms`, with a queueing burst in
/// some windows (so windows differ, as real ones do) and failures at
/// `error_rate`.
fn windows(n: usize, median_ms: f64, error_rate: f64, rng: &mut fastrand::Rng) -> stats::Windows {
    let mut w = stats::Windows::default();
    for i in 0..n {
        let burst = if rng.f64() < 0.2 { 3.0 } else { 1.0 };
        for k in 0..200 {
            let z: f64 = (0..6).map(|_| rng.f64()).sum::<f64>() - 3.0;
            let ms = median_ms * burst * (0.5 * z).exp();
            let due = Duration::from_millis(i as u64 * 250 + k);
            let failed = rng.f64() < error_rate;
            w.record(due, failed, Some(Duration::from_secs_f64(ms / 1000.0)));
        }
    }
    w
}

/// One endpoint's four intervals, simultaneous.
fn opts() -> CompareOptions {
    CompareOptions::default().simultaneous(4)
}

#[test]
fn window_bootstrap_flags_a_slower_release_and_rarely_an_identical_one() {
    let mut rng = fastrand::Rng::with_seed(7);
    // A candidate 5x slower: a regression at every percentile.
    let base = windows(20, 2.0, 0.0, &mut rng);
    let cand = windows(20, 10.0, 0.0, &mut rng);
    let c = compare_windows("GET /", &[&base], &cand, &opts());
    assert_eq!(c.verdict, Verdict::Regression);
    for m in &c.measures[..3] {
        let c = m.change.unwrap();
        assert!(c.point > 3.0 && c.low > 1.5, "{m:?}");
        assert_eq!(m.verdict, Verdict::Regression);
    }
    // The other way round it is an improvement.
    let c = compare_windows("GET /", &[&cand], &base, &opts());
    assert_eq!(c.verdict, Verdict::Improvement);
    // A/A: two runs of the same system. Count how often any measure is
    // called a regression (the false-positive rate).
    let trials = 40;
    let flagged = (0..trials)
        .filter(|i| {
            let a = windows(20, 2.0, 0.01, &mut rng);
            let b = windows(20, 2.0, 0.01, &mut rng);
            let o = CompareOptions { seed: *i, ..opts() };
            compare_windows("GET /", &[&a], &b, &o).verdict == Verdict::Regression
        })
        .count();
    eprintln!("A/A: {flagged} of {trials} comparisons flagged as regressions");
    assert!(
        flagged <= 2,
        "{flagged} of {trials} A/A comparisons were called regressions"
    );
}

#[test]
fn error_rates_compare_as_a_difference_so_a_zero_baseline_works() {
    let mut rng = fastrand::Rng::with_seed(3);
    let base = windows(20, 2.0, 0.0, &mut rng);
    let cand = windows(20, 2.0, 0.05, &mut rng);
    let c = compare_windows("POST /login", &[&base], &cand, &opts());
    let e = c
        .measures
        .iter()
        .find(|m| m.measure == Measure::ErrorRate)
        .unwrap();
    assert_eq!(e.base, 0.0);
    assert!((e.cand - 0.05).abs() < 0.01, "{e:?}");
    // The change is in fractions of requests: about +5 points.
    let change = e.change.unwrap();
    assert!((change.point - e.cand).abs() < 1e-12);
    assert!(change.low > 0.03, "{e:?}");
    assert_eq!(e.verdict, Verdict::Regression);
    assert_eq!(c.verdict, Verdict::Regression);
    // One failure in 4,000 requests is not evidence of anything.
    let mut one = base.clone();
    one.record(
        Duration::from_millis(10),
        true,
        Some(Duration::from_millis(2)),
    );
    let c = compare_windows("POST /login", &[&base], &one, &opts());
    assert_eq!(c.verdict, Verdict::NoChange, "{c:?}");
}

#[test]
fn endpoints_with_too_few_windows_or_in_one_run_only_get_no_verdict() {
    let mut rng = fastrand::Rng::with_seed(5);
    let short = windows(3, 2.0, 0.0, &mut rng);
    let slow = windows(3, 20.0, 0.0, &mut rng);
    let c = compare_windows("GET /", &[&short], &slow, &opts());
    assert_eq!(c.verdict, Verdict::NoChange);
    assert!(c.measures.is_empty());
    assert!(c.note.unwrap().contains("at least 5 windows"));

    let mut a = stats::Stats::new(["GET /".to_string(), "GET /old".to_string()]);
    let b = stats::Stats::new(["GET /".to_string(), "GET /new".to_string()]);
    a.endpoints[0].windows = windows(10, 2.0, 0.0, &mut rng);
    let rows = compare_runs(&[&a], &b, &opts());
    let names: Vec<_> = rows
        .endpoints
        .iter()
        .map(|r| (r.endpoint.as_str(), r.note.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        names,
        [
            (
                "GET /",
                "too few requests to compare: each run needs some in at least 5 windows of time"
            ),
            ("GET /old", "only in the baseline"),
            ("GET /new", "only in the candidate"),
        ]
    );
}

#[test]
fn quantiles_with_too_few_responses_above_them_are_not_compared() {
    // 8 windows of 50: 400 responses, enough for p50 and p90 but not p99
    // (it would be the 4th largest; one slow request would move it).
    let mut rng = fastrand::Rng::with_seed(9);
    let thin = |rng: &mut fastrand::Rng, slow: f64| {
        let mut w = stats::Windows::default();
        for i in 0..400u64 {
            let ms = if rng.f64() < 0.01 { slow } else { 2.0 };
            w.record(
                Duration::from_millis(i * 5),
                false,
                Some(Duration::from_secs_f64(ms / 1000.0)),
            );
        }
        w
    };
    let (a, b) = (thin(&mut rng, 2.0), thin(&mut rng, 50.0));
    let c = compare_windows("GET /", &[&a], &b, &opts());
    let p99 = c
        .measures
        .iter()
        .find(|m| m.measure == Measure::P99)
        .unwrap();
    assert_eq!(p99.change, None);
    assert_eq!(
        p99.note.as_deref(),
        Some("too few responses: p99 needs 1000 in each run")
    );
    assert_eq!(c.verdict, Verdict::NoChange);
    let compared: Vec<_> = c
        .measures
        .iter()
        .filter(|m| m.change.is_some())
        .map(|m| m.measure)
        .collect();
    assert_eq!(compared, [Measure::P50, Measure::P90, Measure::ErrorRate]);
    // The interval level counts only the intervals made: 3, not 4.
    let mut sa = stats::Stats::new(["GET /".to_string()]);
    let mut sb = sa.clone();
    sa.endpoints[0].windows = a;
    sb.endpoints[0].windows = b;
    let all = compare_runs(&[&sa], &sb, &opts());
    assert!(
        (all.level - (1.0 - 0.05 / 3.0)).abs() < 1e-12,
        "{}",
        all.level
    );
}

#[test]
fn pairing_cancels_noise_both_arms_share() {
    // Both arms see the same bursts (a noisy neighbour on the machine);
    // the candidate is 30% slower throughout. Unpaired, the bursts widen
    // the interval past the tolerance; paired, they cancel.
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut base, mut cand) = (stats::Windows::default(), stats::Windows::default());
    for i in 0..24u64 {
        let burst = if i % 4 == 0 { 8.0 } else { 1.0 };
        for k in 0..100u64 {
            let due = Duration::from_millis(i * 250 + k);
            let jitter = 1.0 + 0.2 * rng.f64();
            base.record(
                due,
                false,
                Some(Duration::from_secs_f64(burst * jitter * 0.002)),
            );
            cand.record(
                due,
                false,
                Some(Duration::from_secs_f64(1.3 * burst * jitter * 0.002)),
            );
        }
    }
    let unpaired = compare_windows("GET /", &[&base], &cand, &opts());
    let paired = compare_windows(
        "GET /",
        &[&base],
        &cand,
        &CompareOptions {
            paired: true,
            ..opts()
        },
    );
    let width = |c: &EndpointComparison| {
        let m = c.measures[2].change.unwrap();
        m.high - m.low
    };
    assert!(
        width(&paired) < width(&unpaired) / 2.0,
        "paired {paired:?}\nunpaired {unpaired:?}"
    );
    assert_eq!(paired.measures[2].verdict, Verdict::Regression);
}

/// A run whose goodput per second is `good[t]` out of 50 requests a second.
fn goodput_run(good: &[u64]) -> Stats {
    let mut s = Stats::new(["page".to_string()]);
    for (t, &g) in good.iter().enumerate() {
        for i in 0..50 {
            let status = if i < g { 200 } else { 503 };
            s.record(&sample(0, t as u64 * 1000 + i * 20, status, false));
        }
    }
    s
}

#[test]
fn recovery_is_goodput_back_near_its_level_and_staying_there() {
    let check = RecoveryCheck {
        from_s: 3.0,
        to_s: 4.0,
        within: 0.10,
        by_s: None,
    };
    let secs = Duration::from_secs;
    // 50/s before the trigger, nothing during it, back at 46/s (above
    // the 45/s floor) from second 6 on: recovered 2 s after the trigger.
    let r = recovery(
        &goodput_run(&[50, 50, 50, 0, 0, 20, 46, 50, 48, 50]),
        &check,
        secs(10),
    );
    assert!(r.ok);
    assert_eq!((r.baseline_per_s, r.floor_per_s), (50.0, 45.0));
    assert_eq!((r.recovered_at_s, r.took_s), (Some(6.0), Some(2.0)));
    assert_eq!(r.goodput_per_s, [0, 0, 20, 46, 50, 48, 50]);
    expect!["goodput came back to 45.0/s (90% of the 50.0/s before the trigger) 2.0s after the trigger ended"]
        .assert_eq(&r.what);
    // A relapse counts: recovery is from the last dip on.
    let r = recovery(
        &goodput_run(&[50, 50, 50, 0, 50, 50, 10, 50, 50, 50]),
        &check,
        secs(10),
    );
    assert_eq!(r.recovered_at_s, Some(7.0));
    // Too late for `by`.
    let by = RecoveryCheck {
        by_s: Some(1.0),
        ..check
    };
    let r = recovery(
        &goodput_run(&[50, 50, 50, 0, 0, 20, 46, 50, 48, 50]),
        &by,
        secs(10),
    );
    assert!(!r.ok);
    expect!["goodput came back to 45.0/s (90% of the 50.0/s before the trigger) 2.0s after the trigger ended, later than the 1.0s allowed"]
        .assert_eq(&r.what);
    // Never back: a metastable failure.
    let r = recovery(
        &goodput_run(&[50, 50, 50, 0, 5, 3, 8, 2, 4, 6]),
        &check,
        secs(10),
    );
    assert!(!r.ok);
    assert_eq!(r.recovered_at_s, None);
    expect!["goodput never came back to 45.0/s (90% of the 50.0/s before the trigger) in the 6s after the trigger ended: 6/s in the last second"]
        .assert_eq(&r.what);
    // A run that stopped before the trigger ended cannot show recovery.
    let r = recovery(&goodput_run(&[50, 50, 50, 0]), &check, secs(4));
    assert!(!r.ok);
    expect!["recovery not judged: the load ended at 4.0s, before a whole second after the trigger (which ends at 4s)"]
        .assert_eq(&r.what);
}

mod abort {
    use std::time::Duration;

    use stats::{ErrorKind, Hist, Interval};

    use crate::AbortRule;

    fn secs(text: &str) -> Result<Duration, String> {
        text.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is not N s"))
    }

    /// A second with `requests` of which `failed` failed, all at `ms`.
    fn second(requests: u64, failed: u64, ms: u64) -> Interval {
        let mut i = Interval::default();
        i.counts.requests = requests;
        i.counts.ok = requests - failed;
        i.counts.errors.add(ErrorKind::Http5xx, failed);
        let mut h = Hist::coarse();
        for _ in 0..requests {
            h.record(Duration::from_millis(ms));
        }
        i.latency = h;
        i
    }

    #[test]
    fn an_abort_rule_fires_once_its_condition_held_for_the_whole_stretch() {
        let rule = AbortRule::parse("errors>50% for 3s", secs).unwrap();
        let mut w = rule.watch();
        let at = |t: u64| Duration::from_secs(t);
        let s = Duration::from_secs(1);
        // Seconds 0-1 fine, 1-2 and 2-3 bad, 3-4 fine again: no stop.
        assert_eq!(w.observe(at(1), s, &second(100, 10, 5)), None);
        assert_eq!(w.observe(at(2), s, &second(100, 60, 5)), None);
        assert_eq!(w.observe(at(3), s, &second(100, 90, 5)), None);
        assert_eq!(w.observe(at(4), s, &second(100, 50, 5)), None);
        // A second with nothing to judge breaks a stretch too.
        assert_eq!(w.observe(at(5), s, &second(100, 70, 5)), None);
        assert_eq!(w.observe(at(6), s, &second(0, 0, 5)), None);
        // Then three bad seconds in a row: from 6 s to 9 s.
        assert_eq!(w.observe(at(7), s, &second(10, 6, 5)), None);
        assert_eq!(w.observe(at(8), s, &second(10, 6, 5)), None);
        assert_eq!(
            w.observe(at(9), s, &second(10, 7, 5)).as_deref(),
            Some("--abort-if 'errors>50% for 3s' held from 6s to 9s (70.00% in the last second)")
        );
        // Latency rules read the second's own responses.
        let mut w = AbortRule::parse("p99>2s for 2s", secs).unwrap().watch();
        assert_eq!(w.observe(at(1), s, &second(50, 0, 2500)), None);
        assert!(w.observe(at(2), s, &second(50, 0, 3000)).is_some());
    }

    #[test]
    fn abort_rules_explain_their_mistakes() {
        let err = |t: &str| AbortRule::parse(t, secs).unwrap_err();
        assert!(err("errors>50%").contains("says for how long"));
        assert!(err("errors>50% for 0s").contains("must be above 0"));
        assert!(err("errors>>50% for 10s").contains("e.g. 'errors>50% for 10s'"));
        assert!(err("p99(GET /)>1s for 10s").contains("not one endpoint"));
    }
}

#[test]
fn a_capacity_search_knows_its_steps_left_once_bracketed() {
    // Far from any borderline level, the bound is exact: 50, 100, 200,
    // 400 and 800 held, 1600 failed, then bisection from the bracket
    // 800..1600 to within 10%: 1200, 1000, 900, 850 (each halving it).
    let mut s = Search::new(50.0, 100_000.0, 0.1);
    let capacity = 870.0;
    let mut promised: Option<u32> = None;
    let mut taken = 0;
    while let Some(level) = s.next() {
        if promised.is_none() {
            promised = s.steps_left();
            taken = 0;
        }
        taken += 1;
        s.record(
            level,
            StepVerdict {
                held: level <= capacity,
                borderline: false,
            },
        );
    }
    // Climbing, it could not say; from the first bracket it said 4.
    assert_eq!(promised, Some(4));
    assert_eq!(taken, 4);
    assert_eq!(s.steps_left(), Some(0));
    assert_eq!(Search::new(50.0, 1000.0, 0.1).steps_left(), None);
}

/// `n` windows of 100 responses, at `first_ms` (±2.5%) in the first half
/// of the windows and `second_ms` in the second: a steady run when the
/// two are equal, a run that drifted when they are not.
fn halves(n: usize, first_ms: f64, second_ms: f64, rng: &mut fastrand::Rng) -> stats::Windows {
    let mut w = stats::Windows::default();
    for i in 0..n {
        let level = if i < n / 2 { first_ms } else { second_ms };
        for k in 0..100 {
            let ms = level * (1.0 + 0.05 * (rng.f64() - 0.5));
            let due = Duration::from_millis(i as u64 * 250 + k);
            w.record(due, false, Some(Duration::from_secs_f64(ms / 1000.0)));
        }
    }
    w
}

/// A run of one endpoint, `GET /`, with these windows.
fn run_of(w: &stats::Windows) -> Stats {
    let mut s = Stats::new(["GET /".to_string()]);
    s.endpoints[0].windows = w.clone();
    s
}

fn p50(c: &EndpointComparison) -> &MeasureComparison {
    &c.measures[0]
}

#[test]
fn separate_runs_add_the_drift_their_halves_show_to_the_interval() {
    let mut rng = fastrand::Rng::with_seed(21);
    // Steady runs 25% apart: a regression, and no noise beyond sampling.
    let base = halves(20, 10.0, 10.0, &mut rng);
    let cand = halves(20, 12.5, 12.5, &mut rng);
    let c = compare_windows("GET /", &[&base], &cand, &opts());
    assert_eq!(p50(&c).verdict, Verdict::Regression, "{c:?}");
    let noise = p50(&c).noise.unwrap();
    assert!(noise < 1.01, "{noise}");
    // Runs that each moved 30% between their halves: the same 25% apart
    // is within what a run drifts by on its own, so no verdict.
    let base = halves(20, 9.0, 11.7, &mut rng);
    let cand = halves(20, 11.25, 14.6, &mut rng);
    let c = compare_windows("GET /", &[&base], &cand, &opts());
    let m = p50(&c);
    assert_eq!(m.verdict, Verdict::NoChange, "{c:?}");
    let noise = m.noise.unwrap();
    assert!((1.25..1.35).contains(&noise), "noise ×{noise}");
    let change = m.change.unwrap();
    assert!(change.low < 1.1 && change.high > 1.4, "{change:?}");
    // Paired arms saw the same machine: no noise is added.
    let paired = CompareOptions {
        paired: true,
        ..opts()
    };
    let c = compare_windows("GET /", &[&base], &cand, &paired);
    assert_eq!(p50(&c).noise, None);
    assert_eq!(p50(&c).verdict, Verdict::Regression);
}

#[test]
fn several_baselines_pool_and_their_spread_is_noise() {
    let mut rng = fastrand::Rng::with_seed(22);
    let (a, b, c) = (
        halves(20, 10.0, 10.0, &mut rng),
        halves(20, 12.5, 12.5, &mut rng),
        halves(20, 8.0, 8.0, &mut rng),
    );
    let cand = halves(20, 12.5, 12.5, &mut rng);
    // Against the first alone, 25% slower: a regression.
    let one = compare_windows("GET /", &[&a], &cand, &opts());
    assert_eq!(p50(&one).verdict, Verdict::Regression);
    // The three baselines differ by as much among themselves: no change.
    // Their log levels (ln 10 ± ln 1.25) have squares summing to 0.0994
    // over 2 degrees of freedom; the four steady runs' halves add 4
    // degrees and nothing else: σ² = 0.0994 / 6, times 1 + 1/3 for one
    // candidate run against the mean of three.
    let three = compare_windows("GET /", &[&a, &b, &c], &cand, &opts());
    let m = p50(&three);
    assert_eq!(m.verdict, Verdict::NoChange, "{three:?}");
    let noise = m.noise.unwrap();
    let expected = (0.0994f64 / 6.0 * 4.0 / 3.0).sqrt();
    assert!(
        (noise.ln() - expected).abs() < 0.01,
        "noise ×{noise}, expected ×{}",
        expected.exp()
    );
    // Three calm baselines do not vouch for a disturbed candidate: one
    // whose second half ran 60% slower counts with its own drift,
    // (ln 1.6)² / 2, and its p90 (all in the slow half) is no verdict;
    // a calm candidate as slow throughout is a regression.
    let calm = [
        halves(20, 10.0, 10.0, &mut rng),
        halves(20, 10.0, 10.0, &mut rng),
        halves(20, 10.0, 10.0, &mut rng),
    ];
    let calm: Vec<&stats::Windows> = calm.iter().collect();
    let disturbed = halves(20, 10.0, 16.0, &mut rng);
    let d = compare_windows("GET /", &calm, &disturbed, &opts());
    let p90 = &d.measures[1];
    assert_eq!(p90.verdict, Verdict::NoChange, "{d:?}");
    let own = (1.6f64.ln().powi(2) / 2.0).sqrt();
    assert!(p90.noise.unwrap().ln() >= own * 0.95, "{p90:?}");
    let slow = halves(20, 16.0, 16.0, &mut rng);
    let s = compare_windows("GET /", &calm, &slow, &opts());
    assert_eq!(s.measures[1].verdict, Verdict::Regression, "{s:?}");
    // The pool is the baseline: requests add, the median is the pool's.
    assert_eq!(three.base_requests, 6000);
    assert!((m.base - 10.0).abs() < 0.5, "{m:?}");
    // compare_runs says how many baselines it pooled, and never pairs them.
    let (sa, sb, sc, sd) = (run_of(&a), run_of(&b), run_of(&c), run_of(&cand));
    let paired = CompareOptions {
        paired: true,
        ..opts()
    };
    let all = compare_runs(&[&sa, &sb, &sc], &sd, &paired);
    assert_eq!((all.baseline_runs, all.paired), (3, false));
    assert_eq!(all.verdict, Verdict::NoChange);
}

#[test]
fn separate_runs_ignore_latency_changes_under_the_floor_in_time() {
    let mut rng = fastrand::Rng::with_seed(23);
    let base = halves(20, 0.30, 0.30, &mut rng);
    // ×1.5 but only 0.15 ms: under the 0.25 ms floor, no change.
    let near = halves(20, 0.45, 0.45, &mut rng);
    let c = compare_windows("GET /", &[&base], &near, &opts());
    assert_eq!(c.verdict, Verdict::NoChange, "{c:?}");
    // 0.3 ms to 2.9 ms is far beyond it.
    let far = halves(20, 2.9, 2.9, &mut rng);
    let c = compare_windows("GET /", &[&base], &far, &opts());
    assert_eq!(c.verdict, Verdict::Regression, "{c:?}");
    // Without the floor, or paired (the floor is for separate runs), the
    // 0.15 ms is a regression.
    for o in [
        CompareOptions {
            min_change_ms: 0.0,
            ..opts()
        },
        CompareOptions {
            paired: true,
            ..opts()
        },
    ] {
        let c = compare_windows("GET /", &[&base], &near, &o);
        assert_eq!(c.verdict, Verdict::Regression, "{o:?}");
    }
    // Recorded in the comparison: only for separate runs.
    let (sb, sn) = (run_of(&base), run_of(&near));
    assert_eq!(compare_runs(&[&sb], &sn, &opts()).min_change_ms, 0.25);
    let paired = CompareOptions {
        paired: true,
        ..opts()
    };
    assert_eq!(compare_runs(&[&sb], &sn, &paired).min_change_ms, 0.0);
}

#[test]
fn failed_checks_are_reported_as_what_they_look_at_and_caching_once() {
    // css: an asset served `no-store`, whose scenario checks its
    // Cache-Control (the demo's stylesheet); api: a header check on
    // another header and a latency check, failing on some responses.
    use stats::CacheObs;
    let mut s = Stats::new(["css", "api"].map(String::from))
        .with_checks(["css is cacheable", "api has a request id", "api is fast"].map(String::from));
    s.describe_checks([
        meta("css", false, "header", "cache-control"),
        meta("api", false, "header", "x-request-id"),
        meta("api", false, "latency", ""),
    ]);
    for i in 0..200u64 {
        s.record(&sample(0, i * 10, 200, true));
        s.record_check(0, false);
        s.record_cache(0, &CacheObs::of([("Cache-Control", "no-store")]));
        let (no_id, slow) = (i % 10 == 0, i % 20 == 1);
        s.record(&sample(1, i * 10, 200, no_id || slow));
        s.record_check(1, !no_id);
        s.record_check(2, !slow);
    }
    expect![[r#"
        critical wrong_header @Some(0.0) [api] api: 10.0% of responses had the wrong headers, beginning at 0s at about 4 in flight
            20 of 200 responses failed a header check (95% CI 6.57% to 14.9%); failing: api has a request id
        critical too_slow @Some(0.0) [api] api: 5.00% of responses took longer than their check allows, beginning at 0s at about 4 in flight
            10 of 200 responses failed a latency check (95% CI 2.74% to 8.96%); failing: api is fast
        warning caching @None [css] css: a static asset not cacheable for a day in 100.0% of responses, so browsers and CDNs fetch it again and again
            of 200 responses: 200 uncacheable (no-store, no-cache, private or max-age=0); the check "css is cacheable" failed on 200 of 200 responses
    "#]]
    .assert_eq(&shown(&findings(&s, &LoadShape::default(), None)));
}

#[test]
fn the_generator_is_saturated_when_enough_requests_went_out_late() {
    // `n` requests, `late` of them sent 5 ms after they were due.
    let run = |n: u64, late: u64| {
        let mut s = Stats::new(["GET /".to_string()]);
        for i in 0..n {
            let mut x = sample(0, i * 10, 200, false);
            if i < late {
                x.lag = Duration::from_millis(5);
            }
            s.record(&x);
        }
        (crate::late_requests(&s), crate::generator_limits(&s))
    };
    // One late send in 150 makes the p99 (5 ms), but is one thread woken
    // late, not a generator at its limit.
    let (late, reasons) = run(150, 1);
    assert_eq!(late, 1);
    assert!(reasons.is_empty(), "{reasons:?}");
    // Ten late sends, 1% or more of the requests: saturated.
    let (late, reasons) = run(150, 10);
    assert_eq!(late, 10);
    assert_eq!(
        reasons,
        ["requests went out late: generator lag p99 was 5.00ms (over 1ms; 10 of 150 requests more than 1ms late)"]
    );
    // Fifteen late of 2000 (0.75%): the p99 is on time.
    let (late, reasons) = run(2000, 15);
    assert_eq!(late, 15);
    assert!(reasons.is_empty(), "{reasons:?}");
}

#[test]
fn a_replay_that_answers_otherwise_than_recorded_is_named_per_endpoint() {
    let mut s = Stats::new([
        "GET /".to_string(),
        "POST /pledge".to_string(),
        "GET /a".to_string(),
    ]);
    for i in 0..10u64 {
        s.record(&sample(0, i * 10, 200, false));
        // The home page: 7 of 10 answered 431 where production had 200.
        s.record_replayed(0, 200, if i < 7 { 431 } else { 200 });
        // A pledge the recording saw refused now goes through: a warning.
        s.record_replayed(1, 401, 200);
        s.record_replayed(2, 200, 200);
    }
    // Another endpoint: the recorded status, but an empty body where the
    // recording had 12 kB (an empty listing): a warning of its own.
    let mut s2 = Stats::new(["GET /list".to_string()]);
    for _ in 0..4 {
        s2.record(&sample(0, 5, 200, false));
        s2.record_replayed(0, 200, 200);
    }
    s2.record_replayed_size(0, 12_000, 0);
    s.merge(&s2);
    let found: Vec<Finding> = findings(&s, &LoadShape::default(), None)
        .into_iter()
        .filter(|f| f.kind.starts_with("replay_"))
        .collect();
    expect![[r#"
        critical replay_differs @None [GET /] GET /: 7 of 10 replayed requests got another status than recorded
            7 answered 431 where the recording had 200
        warning replay_differs @None [POST /pledge] POST /pledge: 10 of 10 replayed requests got another status than recorded
            10 answered 200 where the recording had 401
        warning replay_differs @None [GET /list] GET /list: 1 of 4 replayed responses had the recorded status but a body of another size
            a size differs when one is empty and the other not, or one is more than twice the other; the first: 12000 bytes recorded, 0 replayed
        info replay_same @None [-] 1 endpoint(s) answered every replayed request with the recorded status
            10 requests compared: GET /a
    "#]]
    .assert_eq(&shown(&found));
}
