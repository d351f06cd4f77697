//! `throng replay` end to end: generated logs of known timing against a
//! loopback server that notes when each request arrived.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::server::{self, Mode};
use crate::{finish, num, out_path, throng_bin, Run};

/// Writes `lines` to `name` in a temporary directory (gzip when the name
/// ends in `.gz`); runs `throng replay` on it with `args`.
fn replay(name: &str, lines: &[String], args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(name);
    let text = lines.join("\n") + "\n";
    if name.ends_with(".gz") {
        let mut gz =
            flate2::write::GzEncoder::new(std::fs::File::create(&log).unwrap(), Default::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap();
    } else {
        std::fs::write(&log, text).unwrap();
    }
    let output = throng_bin()
        .arg("replay")
        .arg(&log)
        .args(args)
        .arg("--quiet")
        .arg("--out")
        .arg(out_path(&dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    finish(output, dir)
}

/// A JSON log line `ms` after a fixed start.
fn json_line(ms: u64, path: &str, client: &str) -> String {
    format!(
        r#"{{"ts":{},"uri":"{path}","ip":"{client}","agent":"Browser/{client}"}}"#,
        1_764_000_000_000u64 + ms
    )
}

/// What the server saw: (arrival since the first, "METHOD /path").
fn arrivals(srv: &server::Server) -> Vec<(Duration, String)> {
    let log = srv.seen.log.lock().unwrap();
    let first = log.first().map_or(Instant::now(), |e| e.0);
    log.iter().map(|e| (e.0 - first, e.1.clone())).collect()
}

/// Irregular gaps, at least 20 ms so that the order is unambiguous.
const GAPS_MS: [u64; 12] = [0, 20, 140, 25, 300, 60, 20, 500, 45, 90, 30, 210];

#[test]
fn a_log_replays_with_its_count_order_and_gaps_at_1x_and_2x() {
    let mut at = 0;
    let mut logged = Vec::new();
    for (i, gap) in GAPS_MS.iter().enumerate() {
        at += gap;
        logged.push((at, format!("/r/{i}")));
    }
    let lines: Vec<String> = logged
        .iter()
        .map(|(ms, path)| json_line(*ms, path, "c1"))
        .collect();
    for speed in [1.0, 2.0] {
        let srv = server::http1(Mode::Ok);
        let r = replay(
            "access.jsonl",
            &lines,
            &[
                "--format",
                "json",
                "--fields",
                "time=ts,path=uri,ip=ip,user_agent=agent",
                "--target",
                &srv.url(""),
                "--speed",
                &speed.to_string(),
            ],
        );
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let seen = arrivals(&srv);
        // The right count, in the log's order...
        let paths: Vec<&str> = seen.iter().map(|(_, p)| p.as_str()).collect();
        let expected: Vec<String> = logged.iter().map(|(_, p)| format!("GET {p}")).collect();
        assert_eq!(paths, expected);
        // ...with the log's gaps, divided by the speed. Arrival times are
        // compared after taking out their median offset from the log's:
        // the first request also opens the connection, which shifts
        // where the server's clock starts, not the gaps.
        let offsets: Vec<f64> = seen
            .iter()
            .zip(&logged)
            .map(|((t, _), (ms, _))| t.as_secs_f64() * 1e3 - *ms as f64 / speed)
            .collect();
        let mut sorted = offsets.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let errors: Vec<f64> = offsets.iter().map(|o| (o - median).abs()).collect();
        eprintln!("replay x{speed}: arrival time errors (ms) {errors:.1?}");
        let worst = errors.iter().cloned().fold(0.0, f64::max);
        assert!(
            worst < 15.0,
            "x{speed}: worst error {worst:.1} ms: {errors:.1?}"
        );
        let within_2ms = errors.iter().filter(|e| **e < 2.0).count();
        assert!(within_2ms >= 9, "x{speed}: {errors:.1?}");
        // The log's user agent is sent; the results count every request.
        assert!(srv
            .seen
            .log
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.3 == "Browser/c1"));
        let res = r.results.unwrap();
        assert_eq!(num(&res, "totals.requests"), 12.0);
        assert_eq!(res["load"]["arrivals"], "replay");
    }
}

#[test]
fn scale_three_triples_the_requests_and_keeps_each_sessions_gaps() {
    // Four clients, each a session of five requests with its own gaps.
    let mut lines = Vec::new();
    let mut gaps: Vec<Vec<u64>> = Vec::new();
    for c in 0..4u64 {
        let mut at = c * 37;
        let mut times = Vec::new();
        for k in 0..5u64 {
            at += 50 + (c * 31 + k * 17) % 90;
            times.push(at);
            lines.push(json_line(at, &format!("/c{c}/{k}"), &format!("10.0.0.{c}")));
        }
        gaps.push(times);
    }
    lines.sort_by_key(|l| l[6..19].to_string());
    let srv = server::http1(Mode::Ok);
    let r = replay(
        "access.jsonl",
        &lines,
        &[
            "--format",
            "json",
            "--fields",
            "time=ts,path=uri,user_agent=agent",
            "--target",
            &srv.url(""),
            "--scale",
            "3",
            "--spread",
            "1s",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let seen = arrivals(&srv);
    assert_eq!(seen.len(), 60, "three copies of 20 requests");
    assert_eq!(num(&r.results.unwrap(), "totals.requests"), 60.0);
    // Each path arrived three times; the n-th arrival of each of a
    // client's paths belongs to the n-th copy of its session (a copy is
    // shifted as a whole), so the gaps within a copy are the log's.
    for (c, times) in gaps.iter().enumerate() {
        let copies: Vec<Vec<Duration>> = (0..5)
            .map(|k| {
                let path = format!("GET /c{c}/{k}");
                let mut at: Vec<Duration> =
                    seen.iter().filter(|s| s.1 == path).map(|s| s.0).collect();
                at.sort();
                at
            })
            .collect();
        for copy in 0..3 {
            let first = copies[0][copy].as_secs_f64() * 1e3;
            for (k, (arrived, logged)) in copies.iter().zip(times).enumerate().skip(1) {
                let gap = arrived[copy].as_secs_f64() * 1e3 - first;
                let logged = (logged - times[0]) as f64;
                assert!(
                    (gap - logged).abs() < 15.0,
                    "client {c} copy {copy} request {k}: {gap:.1} ms after the first, logged {logged} ms"
                );
            }
        }
    }
}

#[test]
fn combined_logs_skip_writes_report_bad_lines_and_rewrite_the_host() {
    let line = |second: u32, method: &str, path: &str| {
        format!(
            r#"127.0.0.1 - - [24/Nov/2026:09:00:{second:02} +0000] "{method} {path} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (test)""#
        )
    };
    let mut lines = vec![
        line(0, "GET", "/"),
        line(0, "GET", "/funds/1"),
        line(0, "POST", "/login"),
        "this is not a log line".to_string(),
        line(1, "HEAD", "/health"),
        line(1, "GET", "/funds/2?ref=mail"),
    ];
    lines.push(String::new());
    let srv = server::http1(Mode::Ok);
    let r = replay(
        "access.log.gz",
        &lines,
        &[
            "--target",
            &srv.url(""),
            "--host",
            "shop.example",
            "--exclude",
            "^/health",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let seen: Vec<String> = arrivals(&srv).into_iter().map(|s| s.1).collect();
    assert_eq!(seen, ["GET /", "GET /funds/1", "GET /funds/2?ref=mail"]);
    let log = srv.seen.log.lock().unwrap();
    assert!(log
        .iter()
        .all(|e| e.2 == "shop.example" && e.3 == "Mozilla/5.0 (test)"));
    for needle in [
        "3 requests to replay",
        "1 writes left out",
        "1 left out by --include/--exclude",
        "1 malformed lines, skipped:",
        "line 4: no [time] field",
    ] {
        assert!(r.stderr.contains(needle), "no {needle:?} in:\n{}", r.stderr);
    }
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.GET /funds/:id.requests"), 2.0);
    drop(log);

    // With --allow-writes the login is sent too (with an empty body).
    let srv = server::http1(Mode::Ok);
    let r = replay(
        "access.log",
        &lines,
        &["--target", &srv.url(""), "--allow-writes"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(arrivals(&srv).iter().any(|s| s.1 == "POST /login"));

    // A log of nothing but writes has nothing to replay: a usage error.
    let r = replay(
        "writes.log",
        &[line(0, "POST", "/login")],
        &["--target", &srv.url("")],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("nothing to replay (its requests write: add --allow-writes"),
        "{}",
        r.stderr
    );
}

/// `throng replay` of JSON lines (`json_line`) against `srv`, with `args`.
fn replay_json(srv: &server::Server, lines: &[String], args: &[&str]) -> Run {
    let fields = [
        "--format",
        "json",
        "--fields",
        "time=ts,path=uri,ip=ip,user_agent=agent",
    ];
    let url = srv.url("");
    let all: Vec<&str> = fields
        .iter()
        .copied()
        .chain(["--target", url.as_str()])
        .chain(args.iter().copied())
        .collect();
    replay("access.jsonl", lines, &all)
}

#[test]
fn a_log_out_of_time_order_replays_in_order_without_false_lag() {
    // As a server writes its log: a line when the response ended, so each
    // pair of requests 100 ms apart is logged the other way round (the
    // first took 150 ms), and one line comes 3 s late.
    let mut lines = Vec::new();
    for pair in 0..10u64 {
        let t = pair * 200;
        lines.push(json_line(t + 100, &format!("/quick/{pair}"), "c1"));
        lines.push(json_line(t, &format!("/slow/{pair}"), "c2"));
    }
    lines.push(json_line(1_900 + 3_000, "/last", "c3"));
    lines.push(json_line(1_950, "/straggler", "c4"));
    let srv = server::http1(Mode::Ok);
    let r = replay_json(&srv, &lines, &["--speed", "4", "--reorder-window", "1s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Sent in time order: each slow request before the quick one.
    let seen: Vec<String> = arrivals(&srv).into_iter().map(|s| s.1).collect();
    let mut expected = Vec::new();
    for pair in 0..10 {
        expected.push(format!("GET /slow/{pair}"));
        expected.push(format!("GET /quick/{pair}"));
    }
    expected.extend(["GET /straggler".to_string(), "GET /last".to_string()]);
    assert_eq!(seen, expected);
    // No false lag: nothing was due before the log reached it.
    let res = r.results.unwrap();
    assert!(num(&res, "lag_ms.p50") < 5.0, "{res}");
    // The length is the latest time's (4.9 s of log at 4x), not the last line's.
    let d = num(&res, "duration_s");
    assert!((1.2..1.5).contains(&d), "duration {d}");
    assert_eq!(num(&res, "totals.requests"), 22.0);

    // A window too short for the straggler: sent at once, and counted.
    let srv = server::http1(Mode::Ok);
    let mut late = lines.clone();
    late.push(json_line(4_950, "/end", "c3"));
    late.push(json_line(100, "/very-late", "c5"));
    let r = replay_json(&srv, &late, &["--speed", "4", "--reorder-window", "1s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("1 lines more out of time order than --reorder-window 1.00s"),
        "{}",
        r.stderr
    );
    assert_eq!(arrivals(&srv).len(), 24);
}

#[test]
fn requests_n_replays_the_logs_first_n_whatever_the_workers() {
    // 40 requests 10 ms apart from 40 clients (spread over the workers by
    // session), each to its own endpoint.
    let lines: Vec<String> = (0..40u64)
        .map(|i| json_line(i * 10, &format!("/e{i}"), &format!("client{i}")))
        .collect();
    for workers in ["1", "2", "3"] {
        let srv = server::http1(Mode::Ok);
        let r = replay_json(
            &srv,
            &lines,
            &["--speed", "4", "--requests", "15", "--workers", workers],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mut seen: Vec<String> = arrivals(&srv).into_iter().map(|s| s.1).collect();
        seen.sort();
        let mut first: Vec<String> = (0..15).map(|i| format!("GET /e{i}")).collect();
        first.sort();
        assert_eq!(seen, first, "{workers} workers");
        // Only the endpoints it sent are listed, not the rest of the log's.
        let res = r.results.unwrap();
        assert_eq!(res["endpoints"].as_object().unwrap().len(), 15);
        assert_eq!(res["load"]["max_requests"], 15);
    }
}

#[test]
fn a_real_apache_log_out_of_order_replays_without_false_lag() {
    // One minute of a real log (tests/fixtures/README.md), its lines out
    // of time order by up to 59 s. In file order that replayed with lag
    // p50 461 ms and three times the rate; in time order, none of it.
    let lines: Vec<String> = include_str!("../fixtures/apache-head74.log")
        .lines()
        .map(str::to_string)
        .collect();
    for (window, beyond) in [("1m", false), ("5s", true)] {
        let srv = server::http1(Mode::Ok);
        let r = replay(
            "access.log",
            &lines,
            &[
                "--target",
                &srv.url(""),
                "--speed",
                "20",
                "--reorder-window",
                window,
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(arrivals(&srv).len(), 74);
        let res = r.results.unwrap();
        assert_eq!(num(&res, "totals.requests"), 74.0);
        assert!(num(&res, "lag_ms.p50") < 5.0, "window {window}: {res}");
        // 10:05:00 to 10:05:59 at 20x: about 3 s, whatever the file order.
        let d = num(&res, "duration_s");
        assert!((2.5..3.5).contains(&d), "window {window}: duration {d}");
        assert_eq!(
            r.stderr
                .contains("more out of time order than --reorder-window"),
            beyond,
            "{}",
            r.stderr
        );
    }
}

#[test]
fn replay_segments_split_a_log_by_session_and_add_up_to_it() {
    // 24 visitors of 3 requests each, interleaved, 5 ms apart.
    let mut lines = Vec::new();
    for round in 0..3u64 {
        for v in 0..24u64 {
            let at = (round * 24 + v) * 5;
            lines.push(json_line(
                at,
                &format!("/v{v}/r{round}"),
                &format!("visitor{v}"),
            ));
        }
    }
    let results = tempfile::tempdir().unwrap();
    let mut all: Vec<String> = Vec::new();
    // One target for each pair of segments, as a merge needs.
    let (whole_srv, first_srv) = (server::http1(Mode::Ok), server::http1(Mode::Ok));
    for (k, bound) in [(0, None), (1, None), (0, Some("30")), (1, Some("30"))] {
        let srv = if bound.is_none() {
            &whole_srv
        } else {
            &first_srv
        };
        let before = arrivals(srv).len();
        let segment = format!("{k}/2");
        let mut args = vec![
            "--speed",
            "2",
            "--workers",
            "2",
            "--segment",
            segment.as_str(),
        ];
        if let Some(n) = bound {
            args.extend(["--requests", n]);
        }
        let r = replay_json(srv, &lines, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let seen: Vec<String> = arrivals(srv)
            .into_iter()
            .skip(before)
            .map(|s| s.1)
            .collect();
        // A visitor's requests are all on one segment.
        for v in 0..24 {
            let mine = seen
                .iter()
                .filter(|p| p.starts_with(&format!("GET /v{v}/")))
                .count();
            assert!(
                mine == 0 || bound.is_some() || mine == 3,
                "visitor {v}: {mine} of 3"
            );
        }
        let res = r.results.unwrap();
        assert_eq!(res["segment"]["index"], k);
        if bound.is_none() {
            // Each segment has some of the visitors, not all.
            assert!(
                (4..=20).contains(&(seen.len() / 3)),
                "segment {k}: {seen:?}"
            );
            all.extend(seen);
            let path = results.path().join(format!("seg{k}.json"));
            std::fs::write(&path, res.to_string()).unwrap();
        } else {
            all.extend(seen.into_iter().map(|p| format!("first30 {p}")));
        }
    }
    // The two segments are the whole log, each request once...
    let mut whole: Vec<String> = all
        .iter()
        .filter(|p| !p.starts_with("first30"))
        .cloned()
        .collect();
    whole.sort();
    let mut expected: Vec<String> = (0..24)
        .flat_map(|v| (0..3).map(move |r| format!("GET /v{v}/r{r}")))
        .collect();
    expected.sort();
    assert_eq!(whole, expected);
    // ...and with --requests 30, the log's first 30 between them.
    let mut first: Vec<String> = all
        .iter()
        .filter_map(|p| p.strip_prefix("first30 ").map(str::to_string))
        .collect();
    first.sort();
    let mut first_expected: Vec<String> = (0..30u64)
        .map(|i| format!("GET /v{}/r{}", i % 24, i / 24))
        .collect();
    first_expected.sort();
    assert_eq!(first, first_expected);
    // `throng merge` joins the segments' results into the whole.
    let merged = results.path().join("merged.json");
    let out = throng_bin()
        .arg("merge")
        .arg(results.path().join("seg0.json"))
        .arg(results.path().join("seg1.json"))
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(num(&m, "totals.requests"), 72.0);
}
