//! The incidents the lab reproduces: each `examples/incidents/` scenario
//! runs against the lab with its failure switched on and off, and the
//! symptom must show in throng's own results (and only with the failure).
//! Loads are shortened from the command line.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::run::{
    all_cores, assert_v2_regressed_where_slowed, example, lab_with, metric, named_series, num,
    run_example, server_sides, steady_cores, throng_bin, verdicts,
};
use crate::throng;

/// Runs an example against the lab with extra options; its results.
fn run(lab: &lab::Lab, name: &str, extra: &[&str]) -> Value {
    run_example(lab, name, extra).1
}

fn check_failed(res: &Value, check: &str) -> f64 {
    num(&res["checks"][check], "failed")
}

fn check_count(res: &Value, check: &str) -> f64 {
    num(&res["checks"][check], "passed") + check_failed(res, check)
}

/// The findings of `kind`, as (where, what).
fn findings(res: &Value, kind: &str) -> Vec<(String, String)> {
    res["findings"]
        .as_array()
        .expect("a findings array")
        .iter()
        .filter(|f| f["kind"] == kind)
        .map(|f| {
            (
                f["where"].as_str().unwrap_or_default().to_string(),
                f["what"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn p50(res: &Value, endpoint: &str) -> f64 {
    num(&res["endpoints"][endpoint], "latency_ms.p50")
}

#[test]
fn i01_i12_release_v2_is_an_order_of_magnitude_slower() {
    let _cores = steady_cores();
    // One interleaved A/B run, each user on one release: both releases see
    // the same noise from the tests running beside this one. Two runs one
    // after the other did not (in CI, v1's fund p50 came out 0.78 ms while
    // the machine was busy, against 2.6 ms for v2 a moment later).
    let v1 = lab_with(|_| {});
    let v2 = lab_with(|c| c.release = lab::Release::V2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("i01.json");
    let (base, cand) = (format!("v1={}", v1.url()), format!("v2={}", v2.url()));
    let o = throng_bin()
        .args([
            "run",
            &example("incidents/i01-i12-slow-release.yaml"),
            "--quiet",
        ])
        .args([
            "--ab",
            &base,
            "--ab",
            &cand,
            "--vus",
            "8",
            "--duration",
            "3s",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        [0, 1].contains(&o.status.code().unwrap_or(-1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.path().join(name)).expect(name);
        serde_json::from_str(&text).unwrap()
    };
    let (r1, r2) = (read("i01.v1.json"), read("i01.v2.json"));
    let (v1, v2) = (
        (p50(&r1, "fund"), p50(&r1, "home")),
        (p50(&r2, "fund"), p50(&r2, "home")),
    );
    let min = |r: &Value, e: &str| num(&r["endpoints"][e], "latency_ms.min");
    eprintln!(
        "I1: (fund, home) p50 ms: v1 {v1:?}, v2 {v2:?}; min ms: v1 ({}, {}), v2 ({}, {}); requests {} {}",
        min(&r1, "fund"),
        min(&r1, "home"),
        min(&r2, "fund"),
        min(&r2, "home"),
        num(&r1, "totals.requests"),
        num(&r2, "totals.requests")
    );
    // About 10x in a release build (bench/README.md). Here the lab and
    // the client are debug builds, whose own overhead is added to both
    // releases: alone on this machine, v2's p50 came out ~3x v1's and its
    // fastest responses 4-7x v1's. The fastest responses are the least
    // moved by other work on the machine, so they carry the larger factor.
    // The p50s are not held to a factor: while other tests kept both cores
    // busy, waiting for a core was most of both releases' p50 (v1 1.44 ms
    // with its fastest at 0.20; v2 2.31, fastest 1.18: 1.6x in CI). What a
    // user acts on is the paired comparison's verdict, which must still
    // name both pages.
    for (e, i) in [("fund", 0), ("home", 1)] {
        let (m1, m2) = (min(&r1, e), min(&r2, e));
        assert!(m2 > 3.0 * m1, "{e} fastest: v1 {m1} ms, v2 {m2} ms");
        let (p1, p2) = if i == 0 { (v1.0, v2.0) } else { (v1.1, v2.1) };
        assert!(p2 > p1, "{e} p50: v1 {p1} ms, v2 {p2} ms");
    }
    let compare = read("i01.compare.json");
    assert_eq!(compare["paired"], true);
    let v = verdicts(&compare);
    for page in ["fund", "home"] {
        assert!(
            v.contains(&(page.to_string(), "regression".to_string())),
            "{page}: {v:?}"
        );
    }
}

#[test]
fn i01_live_rooms_lose_the_sockets_past_the_servers_cap_only_with_ws_cap() {
    let scenario = "incidents/i01-live-rooms.yaml";
    let load = ["--vus", "40", "--duration", "3s"];
    // Without the cap every user gets a room: every socket opened, every
    // edit echoed and timed, the file's thresholds pass.
    let open = lab_with(|_| {});
    let (code, res) = run_example(&open, scenario, &load);
    let live = &res["endpoints"]["pair"]["live"];
    eprintln!("I1 live, no cap: {live}");
    assert_eq!(code, 0, "{}", res["thresholds"]);
    assert_eq!(
        num(&res, "endpoints.pair.errors"),
        0.0,
        "{}",
        res["endpoints"]
    );
    assert_eq!(num(live, "opened"), num(live, "attempted"));
    assert_eq!(
        num(live, "opened"),
        metric(&open, "lab_ws_opened_total") as f64
    );
    let pairs = num(live, "attempted");
    assert!(pairs >= 20.0, "most users pair: {live}");
    assert!(
        num(live, "round_trips") > pairs * 4.0,
        "edits every 500 ms for 3 s"
    );
    assert_eq!(num(live, "peak_open"), pairs);
    // The watchers followed the rooms' edits as event streams.
    let watch = &res["endpoints"]["watch"];
    eprintln!("I1 live, watchers: {}", watch["live"]);
    assert_eq!(num(watch, "errors"), 0.0, "{watch}");
    let events = num(watch, "live.messages_received");
    assert!(events > 10.0, "{watch}");
    assert!(events <= metric(&open, "lab_sse_events_total") as f64);
    assert_eq!(
        num(watch, "live.opened"),
        metric(&open, "lab_sse_streams_total") as f64
    );

    // With a cap of 10 the server upgrades every socket and drops those
    // past it: throng counts each drop (1006) as the error it is, the
    // users retry (after their think time) and fail again.
    let capped = lab_with(|c| c.ws_cap = Some(10));
    let (code, res) = run_example(&capped, scenario, &load);
    let ep = &res["endpoints"]["pair"];
    let live = &ep["live"];
    eprintln!("I1 live, --ws-cap 10: {live}");
    assert_eq!(code, 1, "ws_errors<1% fails: {}", res["thresholds"]);
    let rejected = metric(&capped, "lab_ws_rejected_total") as f64;
    assert!(
        rejected >= pairs - 10.0,
        "users past the tenth found no room"
    );
    assert_eq!(num(ep, "error_kinds.ws_closed"), rejected);
    assert_eq!(num(live, "closed_by_server.1006"), rejected);
    // Every upgrade was a success (101) at the time: what counts is what
    // happened after.
    assert_eq!(
        num(live, "opened"),
        metric(&capped, "lab_ws_opened_total") as f64
    );
    assert_eq!(num(live, "attempted"), num(ep, "requests"));
    assert!(num(live, "peak_open") <= 10.0, "{live}");
    let began = findings(&res, "errors_began");
    assert!(
        began.iter().any(|(_, what)| what.contains("ws_closed")),
        "{}",
        res["findings"]
    );
}

#[test]
fn i05_i10_deploys_serve_another_sites_fund_only_with_misroute() {
    for misroute in [false, true] {
        let lab = lab_with(|c| c.misroute = misroute);
        let res = run(
            &lab,
            "incidents/i05-i10-wrong-site.yaml",
            &["--vus", "8", "--duration", "2s"],
        );
        let ours = "home shows our featured fund";
        let wrong = check_failed(&res, ours);
        assert!(check_count(&res, ours) > 100.0);
        // Every wrong page is a 200: only the content shows it.
        assert_eq!(
            num(&res, "totals.errors"),
            res["errors"]["check_failed"].as_f64().unwrap_or(0.0)
        );
        eprintln!(
            "I5: misroute {misroute}: {wrong} of {} home pages showed the other site",
            check_count(&res, ours)
        );
        if misroute {
            assert!(wrong > 0.0, "no home page showed the other site");
            assert_eq!(wrong, check_failed(&res, "home shows no other site"));
            assert!(metric(&lab, "lab_misrouted_total") > 0);
        } else {
            assert_eq!(wrong, 0.0);
            assert_eq!(metric(&lab, "lab_misrouted_total"), 0);
        }
    }
}

#[test]
fn i06_pool_exhaustion_answers_503_above_a_concurrency() {
    let lab = lab_with(|c| {
        c.db_pool = Some(4);
        c.db_wait = Duration::from_millis(2);
    });
    // Read four times a second: a gauge is what it is at the instant it
    // is read, and a pool of 4 has instants with 3 in use.
    let scrape = ["--scrape", "/metrics", "--scrape-interval", "250ms"];
    let few = run(
        &lab,
        "incidents/i06-connection-pool.yaml",
        &[&["--vus", "4", "--duration", "2s"][..], &scrape[..]].concat(),
    );
    assert!(num(&few, "totals.requests") > 100.0);
    assert_eq!(
        num(&few, "totals.errors"),
        0.0,
        "4 users never wait for 4 connections"
    );
    assert!(
        findings(&few, "errors_began").is_empty(),
        "{}",
        few["findings"]
    );
    let many = run(
        &lab,
        "incidents/i06-connection-pool.yaml",
        &[&["--vus", "64", "--duration", "3s"][..], &scrape[..]].concat(),
    );
    eprintln!(
        "I6: 64 users: {} of {} answered 503",
        many["endpoints"]["fund"]["status"]["503"],
        num(&many, "totals.requests")
    );
    assert!(
        num(&many, "endpoints.fund.status.503") > 0.0,
        "64 users and 4 connections: {}",
        many["endpoints"]["fund"]
    );
    assert!(metric(&lab, "lab_db_pool_timeouts_total") > 0);
    // The finding names the kind, the second and the concurrency.
    let began = findings(&many, "errors_began");
    assert_eq!(began.len(), 1, "{}", many["findings"]);
    assert_eq!(began[0].0, "http_5xx");
    assert!(began[0].1.contains("64 users"), "{}", began[0].1);
    // Scraped, the finding names what ran out: the pool, at its size.
    let server = &server_sides(&many, "errors_began")[0];
    eprintln!("I6: server side: {}", server["text"]);
    assert!(
        named_series(server, "ceilings").contains(
            &r#"lab_db_pool_in_use{pool="primary"} at lab_db_pool_size{pool="primary"}"#.into()
        ),
        "{server}"
    );
    // Four users never filled the pool: nothing began, nothing hit a limit.
    assert!(few["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["server"]["ceilings"].is_null()));
}

#[test]
fn i07_reads_behind_a_lagging_replica_are_stale() {
    for lag in [None, Some(Duration::from_millis(400))] {
        let lab = lab_with(|c| c.replica_lag = lag);
        let res = run(
            &lab,
            "incidents/i07-stale-reads.yaml",
            &["--rate", "20", "--duration", "2s"],
        );
        let reads = check_count(&res, "read your writes");
        let stale = check_failed(&res, "read your writes");
        assert!(reads >= 30.0, "{reads} reads");
        eprintln!("I7: lag {lag:?}: {stale} of {reads} reads stale");
        let named = findings(&res, "stale_reads");
        if lag.is_some() {
            // The read comes ~50 ms after the write; the replica applies it
            // 400 ms after.
            assert!(stale > 0.8 * reads, "{stale} of {reads} reads stale");
            assert_eq!(named.len(), 1, "{}", res["findings"]);
            assert_eq!(named[0].0, "read profile");
            // Stale reads are not reported again as wrong content.
            assert!(findings(&res, "wrong_content").is_empty());
        } else {
            assert_eq!(stale, 0.0);
            assert!(named.is_empty(), "{}", res["findings"]);
        }
    }
}

#[test]
fn i07_a_replica_that_falls_behind_is_named_beside_the_stale_reads() {
    // Writes ramp from 0 to 60 a second; the replica applies each one
    // 1 ms late and, when slow, takes 25 ms over it: past 40 writes a
    // second it falls further behind, and reads 50 ms after a write turn
    // stale. A replica as fast as SQLite keeps up.
    let mut shares = Vec::new();
    for slow in [false, true] {
        let lab = lab_with(|c| {
            c.replica_lag = Some(Duration::from_millis(1));
            if slow {
                c.replica_apply = Duration::from_millis(25);
            }
        });
        let res = run(
            &lab,
            "incidents/i07-stale-reads.yaml",
            &["--stages", "60:10s"],
        );
        let stale = findings(&res, "stale_reads");
        eprintln!("I7: replica slow {slow}: {stale:?}");
        let share = check_failed(&res, "read your writes") / check_count(&res, "read your writes");
        shares.push(share);
        if !slow {
            // A read may still beat a 1 ms replica now and then: a machine
            // busy with the tests beside this one delays its thread (and
            // then its lag is rightly named). It never falls behind for
            // long.
            assert!(share < 0.05, "{share}");
            continue;
        }
        assert_eq!(stale.len(), 1, "{}", res["findings"]);
        let server = &server_sides(&res, "stale_reads")[0];
        eprintln!("I7: server side: {}", server["text"]);
        assert!(
            named_series(server, "in_step").contains(&"lab_replica_lag_seconds".into()),
            "{server}"
        );
    }
    assert!(shares[1] > 0.2 && shares[1] > 5.0 * shares[0], "{shares:?}");
}

#[test]
fn i08_short_cache_lifetimes_send_assets_to_the_origin() {
    for short in [false, true] {
        let lab = lab_with(|c| c.short_cache = short);
        let res = run(
            &lab,
            "incidents/i08-asset-caching.yaml",
            &["--rate", "50", "--duration", "2s"],
        );
        let css = "css is cacheable for a day";
        let n = check_count(&res, css);
        assert!(n >= 90.0);
        let origin_ms = lab::ORIGIN_RTT.as_secs_f64() * 1000.0;
        if short {
            assert_eq!(check_failed(&res, css), n);
            assert!(p50(&res, "css") >= origin_ms, "{}", res["endpoints"]["css"]);
            assert!(metric(&lab, "lab_cache_misses_total") as f64 >= n);
            let named: Vec<String> = findings(&res, "caching").into_iter().map(|f| f.0).collect();
            assert_eq!(named, ["css", "logo"], "{}", res["findings"]);
        } else {
            assert_eq!(num(&res, "totals.check_failures"), 0.0);
            assert!(p50(&res, "css") < origin_ms);
            // Only the first requests of each asset went to the origin.
            assert!(metric(&lab, "lab_cache_misses_total") < 10);
            assert!(findings(&res, "caching").is_empty(), "{}", res["findings"]);
            assert_eq!(findings(&res, "caching_ok").len(), 1, "{}", res["findings"]);
        }
    }
}

#[test]
fn i09_race_fails_pages_under_concurrency_only() {
    let pledge = "pledge went through";
    let race = lab_with(|c| c.race = true);
    let one = run(
        &race,
        "incidents/i09-race.yaml",
        &["--vus", "1", "--duration", "1s"],
    );
    assert!(check_count(&one, pledge) > 50.0);
    assert_eq!(
        check_failed(&one, pledge),
        0.0,
        "one user cannot race itself"
    );
    let many = run(
        &race,
        "incidents/i09-race.yaml",
        &["--vus", "64", "--duration", "2s"],
    );
    let failed = check_failed(&many, pledge);
    eprintln!(
        "I9: 64 users: {failed} of {} pledges failed",
        check_count(&many, pledge)
    );
    assert!(
        failed > 0.0,
        "no pledge failed with 64 users: {}",
        many["checks"]
    );
    // Answered 200 all the same: only the check saw it.
    assert!(many["endpoints"]["pledge"]["status"].get("500").is_none());
    assert_eq!(metric(&race, "lab_uow_conflicts_total") as f64, failed);
    let wrong = findings(&many, "wrong_content");
    assert_eq!(wrong.len(), 1, "{}", many["findings"]);
    assert_eq!(wrong[0].0, "pledge");

    let healthy = lab_with(|_| {});
    let res = run(
        &healthy,
        "incidents/i09-race.yaml",
        &["--vus", "64", "--duration", "2s"],
    );
    assert!(check_count(&res, pledge) > 100.0);
    assert_eq!(check_failed(&res, pledge), 0.0);
    assert!(findings(&res, "wrong_content").is_empty());
    // "0 failures in N" is reported with its upper bound.
    let ok = findings(&res, "content_ok");
    assert_eq!(ok.len(), 1, "{}", res["findings"]);
}

#[test]
fn i11_login_scan_grows_with_users_while_home_stays_flat() {
    let _cores = steady_cores();
    let mut by_users = Vec::new();
    for users in [5_000, 100_000] {
        let lab = lab_with(|c| {
            c.users = users;
            c.login_scan = true;
        });
        let res = run(
            &lab,
            "incidents/i11-login-scan.yaml",
            &["--rate", "25", "--duration", "2s"],
        );
        assert_eq!(num(&res, "totals.errors"), 0.0, "{}", res["errors"]);
        let fastest = num(&res["endpoints"]["login"], "latency_ms.min");
        by_users.push((p50(&res, "login"), p50(&res, "home"), fastest));
    }
    let (small, big) = (by_users[0], by_users[1]);
    eprintln!("I11: (login, home, fastest login) ms: 5,000 users {small:?}, 100,000 users {big:?}");
    // The scan's cost follows the user count (20x here). Alone, login's
    // p50 grew 10x; beside the other tests 6.5x, as their load adds the
    // same to both; the fastest login, least moved by that load, more.
    assert!(
        big.2 > 5.0 * small.2,
        "fastest login: {} ms with 5,000 users, {} ms with 100,000",
        small.2,
        big.2
    );
    assert!(
        big.0 > 3.0 * small.0,
        "login p50: {} ms with 5,000 users, {} ms with 100,000",
        small.0,
        big.0
    );
    assert!(
        big.1 < 2.0 * small.1 + 1.0,
        "home p50 should not grow with users: {} ms, then {} ms",
        small.1,
        big.1
    );
}

#[test]
fn delay_slows_every_page_by_a_known_amount_and_compare_catches_it() {
    let _cores = steady_cores();
    // The measurement aid behind bench/compare: a release slower by a
    // known amount. Without it the page is fast; with it, slower by the
    // delay; /health never waits; separate runs compare as a regression.
    let plain = lab_with(|_| {});
    let slow = lab_with(|c| c.delay = Some(Duration::from_millis(10)));
    let page = |lab: &lab::Lab, path: &str| {
        let url = format!("{}{path}", lab.url());
        let r = throng(&["--url", &url, "--rate", "40", "--duration", "2s"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let file = r._dir.path().join("results.json");
        (r.results.unwrap(), r._dir, file)
    };
    let (fast, _a, fast_file) = page(&plain, "/static/app.css");
    let (slowed, _b, slow_file) = page(&slow, "/static/app.css");
    let (health, _c, _) = page(&slow, "/health");
    let (f, s) = (num(&fast, "latency_ms.p50"), num(&slowed, "latency_ms.p50"));
    assert!(f < 5.0, "plain p50 {f} ms");
    // At least the delay, and about the delay more than the plain page
    // (whose own p50 moves by a millisecond on a busy machine: 0.80 ms
    // against 0.66 ms under the delayed one once made 9.86 ms of 10).
    assert!(
        s >= 10.0 && (8.0..20.0).contains(&(s - f)),
        "p50 {f} ms, with --delay 10ms {s} ms"
    );
    assert!(
        num(&health, "latency_ms.p50") < 5.0,
        "{}",
        health["latency_ms"]
    );
    let o = throng_bin()
        .arg("compare")
        .args([&fast_file, &slow_file])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("regression (p50"), "{text}");
}

#[test]
fn stall_freezes_every_request_due_in_it() {
    let lab = lab_with(|c| {
        c.stall = Some(lab::Stall {
            stall: Duration::from_millis(300),
            period: Duration::from_secs(1),
        })
    });
    let r = throng(&[
        "--url",
        &format!("{}/health", lab.url()),
        "--rate",
        "100",
        "--duration",
        "3s",
        "--quiet",
    ]);
    let res = r.results.unwrap();
    // 30% of requests fall in a freeze and wait up to 300 ms for its end.
    assert!(num(&res, "latency_ms.p90") > 100.0, "{}", res["latency_ms"]);
    assert!(num(&res, "latency_ms.p50") < 50.0, "{}", res["latency_ms"]);
    assert!(metric(&lab, "lab_stalled_total") > 0);
}

#[test]
fn the_lab_command_prints_its_url_serves_and_stops_on_sigterm() {
    let mut child = throng_bin()
        .args(["lab", "--users", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("throng lab listening on ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = throng(&[
        "--url",
        &format!("{url}/health"),
        "--requests",
        "20",
        "--quiet",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(num(r.results.as_ref().unwrap(), "totals.ok"), 20.0);
    // Lessons need a session.
    let r = throng(&[
        "--url",
        &format!("{url}/learn/1"),
        "--requests",
        "5",
        "--quiet",
    ]);
    assert_eq!(
        num(
            r.results.as_ref().unwrap(),
            "endpoints.GET /learn/1.status.401"
        ),
        5.0
    );
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_lab_binds_loopback_only_unless_public() {
    let out = throng_bin()
        .args(["lab", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--public"), "{err}");
}

#[test]
fn bottleneck_names_the_login_that_scans_every_user() {
    let _cores = all_cores();
    for scan in [false, true] {
        let lab = lab_with(|c| {
            c.users = 100_000;
            c.login_scan = scan;
        });
        // Arrivals ramp from 0 to 800 a second over 8 s: at ~6 ms a login
        // (debug build, 100,000 users), the scanning login wants more
        // than the machine's 2 cores well before the end. (At 300/s it
        // wanted less than 2, and the lab kept up once throng stopped
        // spinning a core per worker between arrivals; at 500/s, on a
        // faster machine, the lab used 1.34-1.58 cores from the rise on,
        // under the 80% of 2 that makes it CPU-bound, in about a third
        // of the runs; at 800/s, 1.76-1.78.)
        // The lab runs in this test's process: that is the one watched.
        let me = std::process::id().to_string();
        let res = run(
            &lab,
            "incidents/i11-login-scan.yaml",
            &["--stages", "800:8s", "--timeout", "5s", "--watch-pid", &me],
        );
        let named = findings(&res, "bottleneck");
        eprintln!("bottleneck, scan {scan}: {named:?}");
        if scan {
            assert_eq!(named.len(), 1, "{}", res["findings"]);
            assert_eq!(named[0].0, "login", "{}", res["findings"]);
            // The scan burns CPU: the watched process was CPU-bound.
            let server = &server_sides(&res, "bottleneck")[0];
            eprintln!("I11: server side: {}", server["text"]);
            assert_eq!(server["processes"][0]["cpu_bound"], true, "{server}");
        } else {
            assert!(named.is_empty(), "{}", res["findings"]);
        }
    }
}

/// Runs `throng capacity SCENARIO ARGS`, which must find a sustainable
/// level (exit 0): its summary and its file.
fn capacity(scenario: &str, args: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capacity.json");
    let output = throng_bin()
        .args(["capacity", scenario])
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let res = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (stdout, res)
}

#[test]
fn capacity_holds_a_step_only_when_its_arrivals_were_offered() {
    let _cores = steady_cores();
    // Every page answers 20 ms late (a sleep, no CPU), and at most 4
    // sessions may be in flight: throng can offer the lab ~200 arrivals a
    // second, whatever the level. p99 stays near 20 ms and nothing fails,
    // so before `dropped<1%`, every step "held" up to --max (1,600/s)
    // while ~200/s were sent.
    let lab = lab_with(|c| c.delay = Some(Duration::from_millis(20)));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("capped.yaml");
    std::fs::write(
        &scenario,
        "load: { max_in_flight: 4 }\nflows:\n  - steps:\n      - get: /funds/1\n",
    )
    .unwrap();
    let (stdout, res) = capacity(
        scenario.to_str().unwrap(),
        &[
            "--target",
            &lab.url(),
            "--slo",
            "p99<1s",
            "--slo",
            "errors<1%",
            "--start",
            "50",
            "--max",
            "1600",
            "--step-duration",
            "1s",
            "--min-samples",
            "50",
            "--cooldown",
            "100ms",
            "--workers",
            "1",
        ],
    );
    eprintln!("{stdout}");
    assert_eq!(res["slos"][2], "dropped<1%", "{}", res["slos"]);
    // It broke on the arrivals it could not offer, well under --max.
    let failed_at = num(&res, "failed_at");
    assert!(failed_at <= 400.0, "failed at {failed_at}/s");
    assert!(num(&res, "sustainable") < failed_at);
    assert_eq!(res["first_broken"][0]["expr"], "dropped<1%");
    assert!(
        stdout.contains("arrivals were dropped at the in-flight limit"),
        "{stdout}"
    );
    // Each step judged `dropped<1%` beside the user's SLOs, and held only
    // if every one of them did.
    for step in res["steps"].as_array().unwrap() {
        let slos = step["slos"].as_array().unwrap();
        assert_eq!(slos[2]["expr"], "dropped<1%", "{step}");
        assert_eq!(step["held"], slos.iter().all(|s| s["ok"] == true), "{step}");
    }
}

#[test]
fn capacity_of_release_v2_is_clearly_lower_and_its_bottleneck_is_a_slowed_page() {
    let _cores = all_cores();
    let mut found = Vec::new();
    // v1 is searched again if it came out under twice v2's: the machine is
    // shared and this test runs beside others, and one stall of 20 ms in a
    // one-second step fails it however fast v1 is (it measured 46.9/s once,
    // 4,800/s usually). Outside load can only lower a capacity, so the best
    // of two searches is v1's.
    let releases = [lab::Release::V1, lab::Release::V2, lab::Release::V1];
    for (i, release) in releases.into_iter().enumerate() {
        if i == 2 && num(&found[0], "sustainable") >= 2.0 * num(&found[1], "sustainable") {
            break;
        }
        let lab = lab_with(|c| c.release = release);
        let me = std::process::id().to_string();
        let (stdout, res) = capacity(
            &example("incidents/i01-i12-slow-release.yaml"),
            &[
                "--target",
                &lab.url(),
                "--slo",
                "p99<20ms",
                "--slo",
                "errors<1%",
                "--start",
                "100",
                "--max",
                "6400",
                "--step-duration",
                "1s",
                "--min-samples",
                "200",
                "--cooldown",
                "200ms",
                // What the lab (in this test's process) was doing at each step.
                "--scrape",
                "/metrics",
                "--watch-pid",
                &me,
            ],
        );
        assert!(stdout.contains("sustainable:"), "{stdout}");
        assert_eq!(res["schema"], "throng.capacity/v1");
        // The curve: every step with its level, p99 and verdict.
        assert!(res["steps"].as_array().unwrap().len() >= 3);
        found.push(res);
    }
    let v2 = &found[1];
    let c1 = found[0..1]
        .iter()
        .chain(found.get(2))
        .map(|v1| num(v1, "sustainable"))
        .fold(0.0, f64::max);
    let c2 = num(v2, "sustainable");
    eprintln!(
        "capacity: v1 {c1}/s, v2 {c2}/s; v2 bottleneck {}",
        v2["bottleneck"]
    );
    assert!(c1 >= 2.0 * c2, "v1 {c1}/s, v2 {c2}/s");
    // v2 broke an SLO; the endpoint that degraded most is one v2 made slower.
    assert!(v2["failed_at"].is_number());
    let endpoint = v2["bottleneck"]["endpoint"].as_str().unwrap();
    assert!(["fund", "home"].contains(&endpoint), "{endpoint}");
    // It says what the server was doing at the level that broke, and at
    // every step: the watched process, CPU-bound or waiting.
    let at_failure = v2["server_at_failure"].as_str().unwrap();
    eprintln!("capacity: v2 server at failure: {at_failure}");
    let level = format!("at {} /s: ", v2["failed_at"].as_f64().unwrap());
    assert!(at_failure.starts_with(&level), "{at_failure}");
    assert!(at_failure.contains("cores of the"), "{at_failure}");
    for step in v2["steps"].as_array().unwrap() {
        assert!(
            step["server"]["processes"][0]["cores"].is_number(),
            "{step}"
        );
    }
}

#[test]
fn capacity_in_users_steps_the_user_count_and_needs_an_slo() {
    let lab = lab_with(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capacity.json");
    let scenario = example("incidents/i01-i12-slow-release.yaml");
    let output = throng_bin()
        .args(["capacity", &scenario, "--target", &lab.url(), "--vus"])
        .args(["--slo", "p99<2s", "--start", "2", "--max", "8"])
        .args(["--step-duration", "500ms", "--cooldown", "100ms", "--out"])
        .arg(&out)
        .arg("--report")
        .arg(dir.path().join("capacity.html"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let res: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(res["mode"], "users");
    // The capacity page: the verdict and the curve, redone alike from the file.
    let page = std::fs::read_to_string(dir.path().join("capacity.html")).unwrap();
    assert!(page.contains("Sustainable: 8 users"), "{page}");
    assert_eq!(page.matches("<svg").count(), 2);
    let again = dir.path().join("again.html");
    let o = throng_bin()
        .arg("report")
        .arg(&out)
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), page);
    let levels: Vec<f64> = res["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| num(s, "level"))
        .collect();
    assert_eq!(levels, [2.0, 4.0, 8.0]);
    assert_eq!(num(&res, "sustainable"), 8.0);

    // The file's own thresholds count as SLOs; a scenario with none and no
    // --slo is a usage error, before any load.
    let bare = dir.path().join("bare.yaml");
    std::fs::write(&bare, "flows:\n  - steps:\n      - get: /health\n").unwrap();
    let output = throng_bin()
        .args(["capacity", bare.to_str().unwrap(), "--target", &lab.url()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--slo"));
}

#[test]
fn ab_run_interleaves_two_releases_and_compares_them() {
    let _cores = steady_cores();
    let v1 = lab_with(|_| {});
    let v2 = lab_with(|c| c.release = lab::Release::V2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab.json");
    let (base, cand) = (format!("base={}", v1.url()), format!("cand={}", v2.url()));
    let o = throng_bin()
        .args(["run", &example("compare-releases.yaml"), "--quiet"])
        .args([
            "--ab",
            &base,
            "--ab",
            &cand,
            "--rate",
            "40",
            "--duration",
            "6s",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "a regression exits 1: {stdout}");
    assert!(stdout.contains("== base ==") && stdout.contains("== cand against base =="));
    assert!(stdout.contains("== side by side =="), "{stdout}");
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.path().join(name)).expect(name);
        serde_json::from_str(&text).unwrap()
    };
    let compare = read("ab.compare.json");
    assert_eq!(compare["paired"], true);
    assert_v2_regressed_where_slowed(&compare);
    // `throng compare` on the two arms' files pairs them too, and agrees.
    let o = throng_bin()
        .arg("compare")
        .arg(dir.path().join("ab.base.json"))
        .arg(dir.path().join("ab.cand.json"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    let again: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["paired"], true);
    assert_eq!(verdicts(&again), verdicts(&compare));
    // Each arm is a results file of its own, with half the sessions.
    let (b, c) = (read("ab.base.json"), read("ab.cand.json"));
    assert_eq!(b["target"].as_str(), Some(v1.url().trim_end_matches('/')));
    assert_eq!(c["target"].as_str(), Some(v2.url().trim_end_matches('/')));
    assert_eq!(num(&b, "load.rate"), 20.0);
    let (nb, nc) = (num(&b, "totals.requests"), num(&c, "totals.requests"));
    assert!(nb > 100.0 && nc > 100.0, "base {nb}, cand {nc} requests");
    // Each lab served only its own arm's requests.
    let served = |lab: &lab::Lab| -> f64 {
        lab.metrics()
            .lines()
            .filter(|l| l.starts_with("lab_requests_total{") && !l.contains("/metrics"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(served(&v1), nb);
    assert_eq!(served(&v2), nc);
}

#[test]
fn aa_runs_of_identical_labs_report_no_regression_in_19_of_20() {
    let _cores = steady_cores();
    // Two identical healthy labs; 20 short interleaved runs. An identical
    // release must almost never be called a regression.
    let (a, b) = (lab_with(|_| {}), lab_with(|_| {}));
    let (base, cand) = (format!("base={}", a.url()), format!("cand={}", b.url()));
    let scenario = example("compare-releases.yaml");
    let mut flagged = Vec::new();
    for seed in 1..=20 {
        let o = throng_bin()
            .args(["run", &scenario, "--quiet", "--duration", "2s"])
            .args(["--ab", &base, "--ab", &cand, "--seed", &seed.to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        match o.status.code() {
            Some(0) => {}
            Some(1) => flagged.push(stdout),
            other => panic!("exit {other:?}: {stdout}"),
        }
    }
    eprintln!(
        "A/A: {} of 20 runs reported a regression\n{}",
        flagged.len(),
        flagged.join("\n")
    );
    assert!(
        flagged.len() <= 1,
        "{} of 20 A/A runs flagged",
        flagged.len()
    );
}

#[test]
fn ab_run_interrupted_still_writes_both_arms_and_their_comparison() {
    let (a, b) = (lab_with(|_| {}), lab_with(|_| {}));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab.json");
    let (base, cand) = (format!("base={}", a.url()), format!("cand={}", b.url()));
    let child = throng_bin()
        .args(["run", &example("compare-releases.yaml"), "--quiet"])
        .args(["--ab", &base, "--ab", &cand, "--duration", "60s", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for name in ["ab.base.json", "ab.cand.json", "ab.compare.json"] {
        let text = std::fs::read_to_string(dir.path().join(name)).expect(name);
        let v: Value = serde_json::from_str(&text).unwrap();
        if name != "ab.compare.json" {
            assert_eq!(v["status"], "interrupted", "{name}");
            assert!(num(&v, "totals.requests") > 20.0, "{name}");
        }
    }
}

#[test]
fn i08_a_page_is_as_slow_as_its_slowest_asset_and_picks_spread_over_the_listing() {
    // browse-and-buy.yaml loads pages as a browser does. With every asset
    // 1.5 s late (an overloaded edge), each request of the home page looks
    // like what it is, but only the page says what the visitor waited:
    // about 1.5 s, since its three assets load at once (in turn, 4.5 s),
    // and the page threshold (p99 < 1 s) fails. Without the flag it holds.
    let slow = lab_with(|c| c.slow_assets = Some(Duration::from_millis(1500)));
    let load = ["--rate", "10", "--duration", "3s", "--seed", "7"];
    let (code, res) = run_example(&slow, "browse-and-buy.yaml", &load);
    assert_eq!(code, 1, "the page threshold fails: {}", res["thresholds"]);
    let page = p50(&res, "home page");
    let asset = p50(&res, "GET /static/app.css");
    eprintln!("I8 page: home page p50 {page} ms, app.css p50 {asset} ms");
    assert_eq!(res["endpoints"]["home page"]["page"], true);
    assert!(asset >= 1500.0, "each asset waits 1.5 s: {asset} ms");
    assert!(
        (1500.0..2500.0).contains(&page),
        "the page takes about its slowest asset, not the sum of three (4.5 s): {page} ms"
    );
    // The assets overlapped at the server: the lab saw them at once.
    let overlap = metric(&slow, "lab_static_in_flight_max");
    assert!(overlap >= 3, "most assets in flight at once: {overlap}");
    // Random picks spread over the listing's funds (ids that change every
    // start, so taken from the listing). Always taking the first item
    // would open at most one fund per listing page (4).
    let opened = metric(&slow, "lab_listing_funds_opened");
    let picks = num(&res["endpoints"]["fund"], "requests");
    eprintln!(
        "I8 page: {overlap} assets in flight at once; {opened} funds opened in {picks} picks"
    );
    assert!(
        opened >= 10,
        "{opened} different funds opened in {picks} picks"
    );
    // Each page's requests are in the totals once; the pages are not.
    let requests: f64 = res["endpoints"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["page"] != true)
        .map(|e| e["requests"].as_f64().unwrap())
        .sum();
    assert_eq!(requests, num(&res, "totals.requests"));

    let healthy = lab_with(|_| {});
    let (code, res) = run_example(&healthy, "browse-and-buy.yaml", &load);
    assert_eq!(code, 0, "{} {}", res["thresholds"], res["findings"]);
    assert!(p50(&res, "home page") < 1000.0);
    // The cache audit covers the assets the pages' documents named.
    let audited = res["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "caching_ok")
        .map(|f| f["evidence"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    for asset in [
        "GET /static/app.css",
        "GET /static/app.js",
        "GET /static/logo.svg",
    ] {
        assert!(audited.contains(asset), "{asset} in {audited:?}");
    }
}
