//! `throng demo`, the README's first command, end to end. A test binary of
//! its own so that its minute of heavy load does not share the machine
//! with the other end-to-end tests (cargo runs test binaries one by one).

#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use support::run::{read_json, throng_bin, tool};

#[test]
fn the_demo_rehearses_launch_day_and_shows_what_broke() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo.json");
    let report = dir.path().join("report.html");
    let output = throng_bin()
        .args(["demo", "--quiet", "--out"])
        .arg(&out)
        .arg("--report")
        .arg(&report)
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
        "report written to",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    let res = read_json(&out);
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
    // ...and the findings say so once: as caching, whose evidence names
    // the failed check (not also as wrong content or a wrong header).
    let about_css: Vec<&serde_json::Value> = res["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["where"] == "css")
        .collect();
    assert_eq!(about_css.len(), 1, "{about_css:?}");
    assert_eq!(about_css[0]["kind"], "caching");
    assert!(
        about_css[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("the check \"css is cacheable for a day\" failed"),
        "{}",
        about_css[0]
    );
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
    looks_right_in_a_browser(&report);
}

/// Opens the report in headless Chromium: the charts and tables must be
/// there, drawn and filled, after the browser has parsed the page. Saves a
/// screenshot beside the test's other outputs (for people, and the README).
/// Chromium comes from Debian's package, which `.ci/run` installs; without
/// it this part says loudly that it skipped (and fails under `.ci/run`).
fn looks_right_in_a_browser(report: &std::path::Path) {
    let page = std::fs::read_to_string(report).unwrap();
    assert!(page.contains("<svg"), "the report has charts");
    let Some(chromium) = tool(
        &["chromium", "chromium-browser", "google-chrome"],
        "apt-get install chromium",
        "opening the demo's report in a headless browser",
    ) else {
        return;
    };
    let url = format!("file://{}", report.display());
    let headless = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ];
    let dom = Command::new(&chromium)
        .args(headless)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The browser's DOM, not the file's text: what a person would see.
    assert!(
        dom.matches("<svg").count() >= 4,
        "charts: {}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.matches("<polyline").count() >= 8, "drawn series");
    assert!(!dom.contains("points=\"\""), "an empty series");
    for id in [
        "verdict",
        "findings",
        "charts",
        "endpoints",
        "checks",
        "thresholds",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    let rows = dom.split("id=\"endpoints\"").nth(1).unwrap_or_default();
    let rows = rows.split("</table>").next().unwrap_or_default();
    assert!(rows.matches("<tr>").count() >= 6, "endpoint rows: {rows}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-report.png");
    let status = Command::new(&chromium)
        .args(headless)
        .arg("--window-size=1100,2400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(status.status.success() && shot.exists(), "no screenshot");
    eprintln!("report screenshot: {}", shot.display());
}
