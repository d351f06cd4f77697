//! What throng reads of the target beside the load: metrics endpoints
//! (`--scrape`, `scrape:`) and processes (`--watch-pid`, `--watch-cmd`).
//! Whatever they answer, the run goes on and its numbers are the load's.

use serde_json::Value;

use crate::support::exporter::exporter;
use crate::support::run::num;
use crate::support::server::{self, closed_port, Mode};
use crate::throng;

/// The results' sources, by target.
fn source<'a>(res: &'a Value, target: &str) -> &'a Value {
    res["server"]["sources"]
        .as_array()
        .expect("server sources")
        .iter()
        .find(|s| s["target"] == target)
        .unwrap_or_else(|| panic!("no source {target}: {}", res["server"]))
}

fn series<'a>(res: &'a Value, name: &str) -> &'a Value {
    res["server"]["series"]
        .as_array()
        .expect("server series")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no series {name}: {}", res["server"]["series"]))
}

#[test]
fn scrapes_that_fail_are_counted_and_never_disturb_the_run() {
    let target = server::http1(Mode::Ok);
    let exp = exporter();
    let refused = format!("http://{}/metrics", closed_port());
    let urls: Vec<String> = [
        "/metrics", "/garbage", "/huge", "/slow", "/error", "/binary",
    ]
    .iter()
    .map(|p| exp.url(p))
    .chain([refused.clone()])
    .collect();
    let mut args = vec![
        "--url".to_string(),
        target.url("/"),
        "--rate".into(),
        "50".into(),
        "--duration".into(),
        "3s".into(),
        "--scrape-interval".into(),
        "500ms".into(),
    ];
    for u in &urls {
        args.extend(["--scrape".to_string(), u.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = throng(&args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    // The load is the load: every arrival sent, none failed.
    assert_eq!(num(&res, "totals.requests"), 150.0);
    assert_eq!(num(&res, "totals.errors"), 0.0);
    // Read twice a second for 3 s (and through the end of the run).
    let good = source(&res, &urls[0]);
    assert!(num(good, "readings") >= 6.0, "{good}");
    assert!(good.get("failed").is_none(), "{good}");
    // A gauge lands in its second: the exporter counts its scrapes (at
    // 0 s, then 0.25 s, 0.75 s, 1.25 s, ...), so second 0 has read 1, 2
    // and 3 and second 1 4 and 5 (the larger kept); the counter is a
    // rate: 10 per scrape, two scrapes a second.
    let scrapes = &series(&res, "demo_scrapes")["values"];
    assert_eq!(
        scrapes.as_array().unwrap().len(),
        res["timeline"].as_array().unwrap().len()
    );
    assert_eq!(scrapes[0], 3.0, "{scrapes}");
    assert_eq!(scrapes[1], 5.0, "{scrapes}");
    let work = &series(&res, "demo_work_total")["values"];
    assert_eq!(series(&res, "demo_work_total")["kind"], "rate");
    assert!((work[1].as_f64().unwrap() - 20.0).abs() < 2.0, "{work}");
    // Bad lines are counted and skipped; the good ones kept.
    let garbage = source(&res, &urls[1]);
    assert!(num(garbage, "bad_lines") >= 6.0, "{garbage}");
    assert!(garbage["first_bad_line"]
        .as_str()
        .unwrap()
        .starts_with("line 2: "));
    series(&res, "demo_ok_too");
    // Each failure under its reason, none read.
    for (url, reason) in [
        (&urls[2], "too_large"),
        (&urls[3], "timeout"),
        (&urls[4], "status"),
        (&refused, "connect"),
    ] {
        let s = source(&res, url);
        assert!(num(&s["failed"], reason) >= 4.0, "{url}: {s}");
        assert_eq!(num(s, "readings"), 0.0, "{url}: {s}");
        assert!(s["first_error"].as_str().is_some(), "{s}");
    }
    // Not UTF-8: read as text with replacement characters, never fatal.
    assert!(num(source(&res, &urls[5]), "readings") >= 4.0);
    // The summary says what was read, and what failed.
    assert!(r.stdout.contains("server"), "{}", r.stdout);
}

#[test]
fn a_watched_process_is_sampled_until_it_exits() {
    let target = server::http1(Mode::Ok);
    let mut child = std::process::Command::new("sleep")
        .arg("2")
        .spawn()
        .expect("sleep runs");
    let pid = child.id().to_string();
    let me = std::process::id().to_string();
    let r = throng(&[
        "--url",
        &target.url("/"),
        "--rate",
        "20",
        "--duration",
        "4s",
        "--watch-pid",
        &pid,
        "--watch-pid",
        &me,
    ]);
    let _ = child.wait();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    let sleep = source(&res, &format!("pid {pid} (sleep)"));
    assert_eq!(num(&sleep["failed"], "gone"), 1.0, "{sleep}");
    let gone = num(sleep, "gone_at_s");
    assert!((1.5..3.5).contains(&gone), "{gone}");
    // This test's process: memory, threads, descriptors and CPU, each
    // second; the machine's CPUs beside it.
    let mine = res["server"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            res["server"]["sources"][s["source"].as_u64().unwrap() as usize]["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("pid {me} "))
        })
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    for name in [
        "process_rss_bytes",
        "process_threads",
        "process_open_fds",
        "process_max_fds",
        "process_cpu_user_cores",
        "process_cpu_system_cores",
        "process_voluntary_switches",
        "process_involuntary_switches",
    ] {
        assert!(mine.contains(&name.to_string()), "{name}: {mine:?}");
    }
    assert!(num(source(&res, "machine"), "readings") >= 3.0);
    let rss = series(&res, "process_rss_bytes");
    assert!(rss["values"][1].as_f64().unwrap() > 1e6, "{rss}");
}

#[test]
fn a_process_that_cannot_be_found_is_a_usage_error() {
    let target = server::http1(Mode::Ok);
    let url = target.url("/");
    for (flag, value, says) in [
        ("--watch-pid", "4000000000", "no such process"),
        (
            "--watch-cmd",
            "no-such-program-here",
            "no process of that name",
        ),
    ] {
        let r = throng(&["--url", &url, "--requests", "1", flag, value]);
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{}", r.stderr);
    }
    let r = throng(&[
        "--url",
        &url,
        "--requests",
        "1",
        "--scrape",
        "ftp://x/metrics",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--scrape ftp://x/metrics"),
        "{}",
        r.stderr
    );
    let r = throng(&[
        "--url",
        &url,
        "--requests",
        "1",
        "--scrape",
        "/m",
        "--scrape-match",
        "(",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a regex"), "{}", r.stderr);
}
