//! The `generator_saturation` finding against the lab, present and absent.
//! A test binary of its own: whether requests go out late depends on the
//! machine, so this runs alone (cargo runs test binaries one by one), not
//! beside the other end-to-end tests that load both cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use serde_json::Value;

use support::run::{all_cores, lab_with, read_json, run_example, server_sides, throng_bin};

/// Runs `throng run --url URL ARGS --out FILE`; the results.
fn run(url: &str, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let o = throng_bin()
        .args(["run", "--url", url, "--quiet"])
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    read_json(&out)
}

fn saturation(res: &Value) -> Option<String> {
    res["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "generator_saturation")
        .map(|f| f["evidence"].as_str().unwrap_or_default().to_string())
}

#[test]
fn generator_saturation_is_found_when_the_generator_limits_and_not_otherwise() {
    let _cores = all_cores();
    let lab = lab_with(|c| c.release = lab::Release::V2);
    let fund = format!("{}/funds/1", lab.url().trim_end_matches('/'));

    // A healthy lab at a rate one worker keeps up with: every request
    // leaves on time, nothing is dropped, no finding. 600 requests, so that
    // p99 is not one request: at 50/s (150 requests) a single send 1.3 ms
    // late, a sleeping thread woken late on this shared VM, once made
    // lag p99 1.31 ms in CI (0.15-0.41 ms in five runs here).
    let calm = run(
        &fund,
        &["--rate", "200", "--duration", "3s", "--workers", "1"],
    );
    let lag_p99 = calm["lag_ms"]["p99"].as_f64().unwrap();
    eprintln!("calm run: lag p99 {lag_p99} ms");
    assert_eq!(calm["totals"]["dropped"], 0);
    // Lag is the generator's own delay, and on a shared 2-core machine
    // another tenant's load delays it too (lag p99 1.3 to 14 ms in some
    // runs here and in CI, with or without this run's own load): then the
    // finding is right to say so. What must hold is that it is raised
    // exactly when lag p99 is over 1 ms and at least 10 requests were
    // more than 1 ms late, and never blames a limit that was not reached.
    let late = calm["generator"]["late"].as_u64().unwrap();
    assert_eq!(
        calm["generator"]["saturated"],
        lag_p99 > 1.0 && late >= 10,
        "{}",
        calm["generator"]
    );
    match saturation(&calm) {
        None => assert!(lag_p99 <= 1.0 || late < 10),
        Some(evidence) => assert!(!evidence.contains("dropped"), "{evidence}"),
    }

    // The same lab, but throng may keep only one request in flight, on
    // one worker, while arrivals come every 0.2 ms and v2's fund page
    // takes longer than that: arrivals are dropped at the generator's own
    // limit, and the finding says so. (At 1000/s on two workers, each
    // with one in flight, a CI run once dropped only 51: the page took
    // about 2 ms there, the spacing per worker.)
    let capped = run(
        &fund,
        &[
            "--rate",
            "5000",
            "--duration",
            "1s",
            "--max-in-flight",
            "1",
            "--workers",
            "1",
        ],
    );
    let dropped = capped["totals"]["dropped"].as_f64().unwrap();
    assert!(dropped > 100.0, "{dropped} dropped");
    let evidence = saturation(&capped).expect("a generator_saturation finding");
    assert!(
        evidence.contains("dropped because the in-flight limit"),
        "{evidence}"
    );
}

#[test]
fn drops_while_the_watched_target_is_cpu_bound_name_the_target() {
    let _cores = all_cores();
    for scan in [true, false] {
        // I11's login reads every one of 100,000 users (~6 ms of CPU in a
        // debug build): 1,000 sessions a second want ~6 cores, and with 4
        // in flight the lab's 2 runtime threads always have a scan to run
        // (by hand: at 600/s, 1.78 of its 2 cores, 832 of 2,400 arrivals
        // dropped; with 2 in flight, the round trips between them left it
        // at 1.61, on the edge of CPU-bound). A machine 3 times faster
        // still drops at 1,000/s. Without the scan a login takes ~0.1 ms.
        // The lab runs in this test's process: that is the one watched.
        let lab = lab_with(|c| {
            c.users = 100_000;
            c.login_scan = scan;
        });
        let me = std::process::id().to_string();
        let (_, res) = run_example(
            &lab,
            "incidents/i11-login-scan.yaml",
            &[
                "--rate",
                "1000",
                "--duration",
                "3s",
                "--max-in-flight",
                "4",
                "--workers",
                "1",
                "--timeout",
                "5s",
                "--watch-pid",
                &me,
            ],
        );
        let dropped = res["totals"]["dropped"].as_u64().unwrap();
        let what: Vec<&str> = res["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "generator_saturation")
            .map(|f| f["what"].as_str().unwrap_or_default())
            .collect();
        eprintln!("scan {scan}: {dropped} dropped; {what:?}");
        if scan {
            // The target was the limit: the finding says so, and shows
            // the watched process CPU-bound over the run.
            assert!(dropped > 100, "{dropped} dropped");
            assert_eq!(what, [analysis::TARGET_WAS_FULL], "{}", res["findings"]);
            let server = &server_sides(&res, "generator_saturation")[0];
            eprintln!("server side: {}", server["text"]);
            assert_eq!(server["processes"][0]["cpu_bound"], true, "{server}");
        } else {
            // A login that reads one row keeps up: no finding of the
            // target's limit. A stall of this shared machine may still
            // drop arrivals (0 here; 513 of 3,000 once in CI, the lab
            // just after the scanning one): that finding is the
            // generator's, as the lab was not CPU-bound.
            assert!(
                !what.contains(&analysis::TARGET_WAS_FULL),
                "{}",
                res["findings"]
            );
        }
    }
}
