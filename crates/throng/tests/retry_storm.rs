//! Incident I4 against the lab: a retry storm keeps a metastable lab down,
//! and the control run without retries recovers. A test binary of its own:
//! the storm (ten attempts per request at once, thousands a second) loads
//! both cores for half a minute, which would disturb the timing-sensitive
//! end-to-end tests beside it (cargo runs test binaries one by one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use support::run::{lab_with, metric, named_series, num, run_example, server_sides};

#[test]
fn i04_retry_storm_keeps_a_metastable_lab_down_and_the_control_run_recovers() {
    // The same spike against the same metastable lab, with the clients'
    // tight retry loops and without them.
    let mut seen = Vec::new();
    for retries in [true, false] {
        let lab = lab_with(|c| c.metastable = true);
        let extra: &[&str] = if retries { &[] } else { &["--no-retries"] };
        let (code, res) = run_example(&lab, "incidents/i04-retry-storm.yaml", extra);
        let recovery = &res["recovery"];
        eprintln!(
            "I4 retries {retries}: exit {code}, {}, goodput per second from the trigger on {}",
            recovery["what"], recovery["goodput_per_s"]
        );
        // Work for clients who had left was done either way.
        assert!(metric(&lab, "lab_deploys_abandoned_worked_total") > 0);
        seen.push((code, recovery.clone(), res));
    }
    let (storm_code, storm, res) = &seen[0];
    // Retries: every timed-out deploy became up to ten, and goodput
    // never came back.
    assert_eq!(storm["ok"], false, "{storm}");
    assert_eq!(*storm_code, 1, "a failed recovery check fails the run");
    assert!(
        num(res, "retries.amplification") > 5.0,
        "{}",
        res["retries"]
    );
    assert!(
        num(res, "retries.retries.timeout") > 0.0,
        "{}",
        res["retries"]
    );
    assert!(res["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "no_recovery"));
    // Scraped, it says what kept the lab down: the deploy queue, full of
    // work for clients that had given up.
    let server = &server_sides(res, "no_recovery")[0];
    eprintln!("I4: server side: {}", server["text"]);
    assert!(
        named_series(server, "ceilings")
            .contains(&"lab_deploy_queue at lab_deploy_queue_capacity".into()),
        "{server}"
    );
    // Control: the same lab and spike without retries recovers.
    let (control_code, control, res) = &seen[1];
    assert_eq!(control["ok"], true, "{control}");
    assert_eq!(*control_code, 0);
    assert!(res.get("retries").is_none());
    // The queue drained: no limit was held from the trigger on.
    assert!(server_sides(res, "recovered")
        .iter()
        .all(|s| s["ceilings"].is_null()));
}
