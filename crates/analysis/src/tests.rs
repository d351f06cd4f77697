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
    expect![[r#"invalid threshold "erors<1%": unknown metric "erors" (did you mean errors?): use p50..p99.9, median, mean, min, max, errors, rate, requests or dropped"#]]
        .assert_eq(&e("erors<1%"));
    expect![[r#"invalid threshold "rate>1%": rate takes a plain number, not "%""#]]
        .assert_eq(&e("rate>1%"));
    expect![[
        r#"invalid threshold "p101<1s": "p101" is not a percentile: write p50, p90, p99, p99.9 ..."#
    ]]
    .assert_eq(&e("p101<1s"));
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
