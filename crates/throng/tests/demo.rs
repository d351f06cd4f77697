//! `throng demo`, the README's first command, end to end. A test binary of
//! its own so that its minute of heavy load does not share the machine
//! with the other end-to-end tests (cargo runs test binaries one by one).

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_demo_rehearses_launch_day_and_shows_what_broke() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo.json");
    let output = Command::new(env!("CARGO_BIN_EXE_throng"))
        .args(["demo", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    // The summary, the thresholds and the lab's own counters are printed.
    for needle in [
        "throng open model",
        "pledge went through",
        "p99(login)<300ms",
        "What the lab itself counted",
        "lab_uow_conflicts_total",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let n = |v: &serde_json::Value| v.as_f64().unwrap();
    assert_eq!(res["status"], "completed");
    // I9: the race made some pledges show the error page.
    assert!(
        n(&res["checks"]["pledge went through"]["failed"]) > 0.0,
        "{}",
        res["checks"]
    );
    // I8: the stylesheet was never cacheable.
    let css = &res["checks"]["css is cacheable for a day"];
    assert_eq!(n(&css["passed"]), 0.0, "{css}");
    // I11: login, which scans 100,000 users, costs far more than home even
    // at its fastest (the flash crowd saturates the CPU and slows every
    // page, so compare the minima).
    let min = |e: &str| n(&res["endpoints"][e]["latency_ms"]["min"]);
    assert!(
        min("login") > 5.0 * min("home"),
        "fastest login {} ms, fastest home {} ms",
        min("login"),
        min("home")
    );
}
