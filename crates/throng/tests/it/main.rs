//! End-to-end tests: the real `throng` binary against loopback servers on
//! port 0, every run bounded in requests and time.

// Fixtures panic on setup failure: that is the test failing, as it should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
mod interop;
mod lab;
mod live;
mod record;
mod replay;
mod scenarios;
mod security;
#[path = "../support/mod.rs"]
mod support;
mod trust;
mod watch;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use support::run::{num, throng_bin};
use support::server::{self, Mode};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    results: Option<Value>,
    _dir: tempfile::TempDir,
}

impl Run {
    /// The exact statistics of the results file.
    fn raw(&self) -> stats::Stats {
        let results = self.results.as_ref().expect("a results file");
        report::Results::from_json(&results.to_string())
            .expect("a results file throng reads")
            .raw
    }
}

fn out_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("results.json")
}

fn finish(output: Output, dir: tempfile::TempDir) -> Run {
    let results = std::fs::read_to_string(out_path(&dir))
        .ok()
        .map(|t| serde_json::from_str(&t).expect("results file is JSON"));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        results,
        _dir: dir,
    }
}

fn throng_cmd(args: &[&str], dir: &tempfile::TempDir) -> Command {
    let mut cmd = throng_bin();
    cmd.arg("run").args(args).arg("--out").arg(out_path(dir));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `throng run ARGS --out DIR/results.json`.
fn throng(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let output = throng_cmd(args, &dir).output().unwrap();
    finish(output, dir)
}

#[test]
fn open_model_sends_exactly_the_planned_arrivals() {
    let srv = server::http1(Mode::Ok);
    let r = throng(&[
        "--url",
        &srv.url("/hello"),
        "--rate",
        "200",
        "--duration",
        "2s",
        "--workers",
        "2",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(res["schema"], "throng.results/v1");
    assert_eq!(res["model"], "open");
    assert_eq!(res["status"], "completed");
    assert_eq!(num(&res, "totals.requests"), 400.0);
    assert_eq!(num(&res, "totals.ok"), 400.0);
    // rate = requests / duration_s, and the load lasted exactly as planned.
    assert_eq!(num(&res, "duration_s"), 2.0);
    assert_eq!(num(&res, "totals.rate"), 200.0);
    assert_eq!(num(&res, "endpoints.GET /hello.requests"), 400.0);
    assert_eq!(num(&res, "endpoints.GET /hello.status.200"), 400.0);
    let timeline = res["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2);
    assert!(timeline.iter().all(|row| row["requests"] == 200));
    for row in timeline {
        let (p50, p99) = (num(row, "p50_ms"), num(row, "p99_ms"));
        assert!(p50 > 0.01 && p50 <= p99, "timeline percentiles {row}");
    }
    // Keep-alive: far fewer connections than requests.
    let connections = srv
        .seen
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        connections < 50,
        "{connections} connections for 400 requests"
    );
    assert!(num(&res, "connect_ms.max") > 0.0);
    assert!(num(&res, "ttfb_ms.p50") > 0.0);
    assert!(
        r.stdout.contains("latency (from intended send)"),
        "{}",
        r.stdout
    );
}

#[test]
fn closed_model_is_bounded_by_request_count() {
    let srv = server::http1(Mode::Chunked);
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--vus",
        "4",
        "--requests",
        "300",
        "--workers",
        "2",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(res["model"], "closed");
    assert_eq!(num(&res, "totals.requests"), 300.0);
    assert_eq!(num(&res, "totals.ok"), 300.0);
    assert_eq!(
        srv.seen.requests.load(std::sync::atomic::Ordering::Relaxed),
        300
    );
    // Closed users send as soon as they can: no lag by definition.
    assert_eq!(num(&res, "lag_ms.max"), 0.0);
}

#[test]
fn method_headers_and_body_are_sent() {
    let srv = server::http1(Mode::Ok);
    let r = throng(&[
        "--url",
        &srv.url("/submit"),
        "-X",
        "post",
        "-H",
        "X-Test: yes",
        "-H",
        "Authorization: Bearer s3cret",
        "--body",
        "{\"a\":1}",
        "--requests",
        "20",
        "--vus",
        "2",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let seen = &srv.seen;
    assert_eq!(
        seen.posts_with_body
            .load(std::sync::atomic::Ordering::Relaxed),
        20
    );
    assert_eq!(
        seen.with_header.load(std::sync::atomic::Ordering::Relaxed),
        20
    );
    let res = r.results.unwrap();
    assert!(res["endpoints"]["POST /submit"].is_object());
    let command = res["command"].as_str().unwrap();
    assert!(
        !command.contains("s3cret"),
        "secret leaked into results: {command}"
    );
    assert!(command.contains("Authorization: [redacted]"), "{command}");
}

#[test]
fn status_errors_are_counted_by_kind_and_fail_thresholds() {
    let srv = server::http1(Mode::Status(503));
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "100",
        "--requests",
        "50",
        "--threshold",
        "errors<1%",
        "--threshold",
        "p99<10s",
    ]);
    assert_eq!(
        r.code, 1,
        "a failed threshold exits 1\n{}{}",
        r.stdout, r.stderr
    );
    let res = r.results.unwrap();
    assert_eq!(num(&res, "errors.http_5xx"), 50.0);
    assert_eq!(num(&res, "totals.errors"), 50.0);
    assert_eq!(num(&res, "totals.error_rate"), 1.0);
    assert_eq!(res["thresholds"][0]["ok"], false);
    assert_eq!(res["thresholds"][1]["ok"], true);
    assert!(r.stdout.contains("FAIL  errors<1%"), "{}", r.stdout);
}

#[test]
fn refused_connections_are_counted_and_results_written() {
    let addr = server::closed_port();
    let url = format!("http://{addr}/");
    let r = throng(&["--url", &url, "--rate", "50", "--requests", "20"]);
    assert_eq!(
        r.code, 0,
        "no thresholds: the run itself succeeded\n{}{}",
        r.stdout, r.stderr
    );
    let res = r.results.unwrap();
    assert_eq!(num(&res, "errors.connect_refused"), 20.0);
    assert!(res["error_examples"]["connect_refused"]
        .as_str()
        .unwrap()
        .contains("refused"));
    assert_eq!(num(&res, "latency_ms.max"), 0.0, "no response, no latency");
}

#[test]
fn connection_close_servers_get_a_new_connection_per_request() {
    let srv = server::http1(Mode::Close);
    let r = throng(&["--url", &srv.url("/"), "--vus", "2", "--requests", "40"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "totals.ok"), 40.0);
    assert_eq!(
        srv.seen
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        40
    );
}

#[test]
fn usage_errors_exit_2_and_start_nothing() {
    let srv = server::http1(Mode::Ok);
    let url = srv.url("/");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(
        &file,
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n",
    )
    .unwrap();
    let scenario = file.to_str().unwrap();
    let (ab_base, ab_cand) = (format!("base={url}"), format!("cand={url}"));
    let cases: &[(&[&str], &str)] = &[
        (&["--url", "127.0.0.1:80"], "needs a scheme"),
        (&["--url", &url, "--rate", "10", "--vus", "2"], "not both"),
        (
            &["--url", &url, "--rate", "10", "--threshold", "p99<300"],
            "a latency needs a unit",
        ),
        (
            &["--url", &url, "--rate", "10", "--think", "1s"],
            "closed model",
        ),
        (&["--url", &url, "--stages", "0:10s,abc:5s"], "stage 2"),
        (&["--url", &url, "--duration", "10"], "a unit is missing"),
        (
            &[
                "--url",
                &url,
                "--rate",
                "10",
                "--threshold",
                "p99(GET /x)<1s",
            ],
            "names endpoint",
        ),
        (&["--url", &url, "-H", "NoColon"], "there is no ':'"),
        (
            &["--url", &url, "--cacert", "/nonexistent.pem"],
            "cannot read --cacert",
        ),
        (&[scenario, "--ab", &ab_base], "given twice"),
        (
            &[scenario, "--ab", &url, "--ab", &ab_base],
            "write NAME=URL",
        ),
        (
            &[scenario, "--ab", &ab_base, "--ab", &ab_base],
            "different names",
        ),
        (
            &[scenario, "--ab", &ab_base, "--ab", "cand=ftp://x"],
            "--ab cand",
        ),
        (
            &[scenario, "--ab", &ab_base, "--ab", "a/b=http://127.0.0.1:1"],
            "goes into file names",
        ),
        (
            &[
                scenario,
                "--ab",
                &ab_base,
                "--ab",
                &ab_cand,
                "--tolerance",
                "x",
            ],
            "--tolerance",
        ),
    ];
    for (args, expected) in cases {
        let r = throng(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(expected),
            "{args:?}: expected {expected:?} in {}",
            r.stderr
        );
        assert!(r.results.is_none());
    }
    assert_eq!(
        srv.seen.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn stalled_server_open_model_reports_the_stall_closed_model_hides_it() {
    // The server freezes 500 ms of every 2 s. Open model: p99 should be near
    // S * (1 - 0.01 * P / S) = 480 ms. Closed model: each user waits out
    // each stall once, so p99 stays small (the classic under-reporting).
    let mode = Mode::Stall {
        stall: Duration::from_millis(500),
        period: Duration::from_secs(2),
    };
    let srv = server::http1(mode);
    let open = throng(&["--url", &srv.url("/"), "--rate", "200", "--duration", "4s"]);
    assert_eq!(open.code, 0, "{}{}", open.stdout, open.stderr);
    let open = open.results.unwrap();
    let p99 = num(&open, "latency_ms.p99");
    assert!(
        (300.0..=560.0).contains(&p99),
        "open p99 {p99} ms should reflect the 500 ms stall"
    );
    let srv = server::http1(mode);
    let closed = throng(&["--url", &srv.url("/"), "--vus", "10", "--duration", "4s"]);
    assert_eq!(closed.code, 0, "{}{}", closed.stdout, closed.stderr);
    let closed = closed.results.unwrap();
    let p99 = num(&closed, "latency_ms.p99");
    assert!(p99 < 100.0, "closed p99 {p99} ms: the stall is hidden");
    assert!(
        num(&closed, "latency_ms.max") > 300.0,
        "but its max shows it"
    );
}

#[test]
fn interrupt_stops_gracefully_and_writes_results() {
    let srv = server::http1(Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let child = throng_cmd(
        &["--url", &srv.url("/"), "--rate", "100", "--duration", "60s"],
        &dir,
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = finish(output, dir);
    assert_eq!(r.code, 3, "interrupted runs exit 3\n{}", r.stderr);
    let res = r.results.expect("results written on Ctrl-C");
    assert_eq!(res["status"], "interrupted");
    let duration = num(&res, "duration_s");
    assert!(duration > 1.0 && duration < 5.0, "{duration}");
    assert!(num(&res, "totals.requests") > 50.0);
}

/// `throng run ... | head -1`: the reader is gone before the summary is
/// printed. The results file is still written and the exit code is the
/// run's, not a panic's.
#[test]
fn a_closed_stdout_loses_neither_the_results_nor_the_exit_code() {
    let srv = server::http1(Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let mut child = throng_cmd(&["--url", &srv.url("/"), "--requests", "20"], &dir)
        .spawn()
        .unwrap();
    // Close the pipe's reading end at once: every write to stdout fails
    // with EPIPE.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let r = finish(output, dir);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let res = r.results.expect("results written with stdout closed");
    assert_eq!(num(&res, "totals.requests"), 20.0);
}

#[test]
fn abort_on_fail_stops_once_the_error_threshold_is_clearly_lost() {
    let srv = server::http1(Mode::Status(500));
    let started = Instant::now();
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "200",
        "--duration",
        "30s",
        "--threshold",
        "errors<1%",
        "--abort-on-fail",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(res["status"], "aborted");
    assert!(num(&res, "duration_s") < 10.0);
}

#[test]
fn http2_prior_knowledge_works() {
    let srv = server::h2c();
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--http2",
        "--rate",
        "100",
        "--requests",
        "50",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.GET /.status.200"), 50.0);
    // One shared connection per worker.
    assert!(
        srv.seen
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 2
    );
}

#[test]
fn http2_users_share_the_connections_asked_for_however_many_start_at_once() {
    // 60 users start together; each worker's connections are dialed once
    // and shared (before, each user that found none yet dialed its own).
    let srv = server::h2c();
    let seen = |s: &server::Server| {
        s.seen
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let url = srv.url("/");
    for (asked, workers, expected) in [(None, "2", 2), (Some("6"), "2", 6), (Some("1"), "2", 2)] {
        let before = seen(&srv);
        let mut args = vec![
            "--url",
            &url,
            "--http2",
            "--vus",
            "60",
            "--requests",
            "600",
            "--workers",
            workers,
        ];
        if let Some(n) = asked {
            args.extend(["--http2-connections", n]);
        }
        let r = throng(&args);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let res = r.results.unwrap();
        assert_eq!(num(&res, "totals.ok"), 600.0);
        // What throng counted is what the server saw.
        assert_eq!(seen(&srv) - before, expected, "{asked:?}");
        assert_eq!(num(&res, "totals.connections_opened"), expected as f64);
    }
}

#[test]
fn http2_streams_cap_the_requests_open_at_once_on_each_connection() {
    // 12 users on 2 connections, each response 30 ms late: without a cap
    // all 12 are open at once; with 3 streams a connection, at most 6.
    let srv = server::h2c();
    let url = srv.url("/slow");
    for (streams, most) in [(None, 12), (Some("3"), 6)] {
        srv.seen
            .streams_max
            .store(0, std::sync::atomic::Ordering::SeqCst);
        let mut args = vec![
            "--url",
            &url,
            "--http2",
            "--http2-connections",
            "2",
            "--vus",
            "12",
            "--requests",
            "120",
            "--workers",
            "1",
        ];
        if let Some(n) = streams {
            args.extend(["--http2-streams", n]);
        }
        let r = throng(&args);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let raw = r.raw();
        let res = r.results.unwrap();
        assert_eq!(num(&res, "totals.ok"), 120.0);
        let seen = srv
            .seen
            .streams_max
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(seen, most, "{streams:?}");
        // One connect per connection, one first byte per request: the
        // phase histograms count each once, however requests share them.
        assert_eq!(raw.connect.count(), 2);
        assert_eq!(raw.ttfb.count(), 120);
        // A stream waited for is in the latency, not in the time to first
        // byte: with 3 streams for 6 users a connection, about half wait
        // a whole response.
        if streams.is_some() {
            assert!(num(&res, "latency_ms.p99") >= 55.0, "{res}");
            assert!(num(&res, "ttfb_ms.p50") < 55.0, "{res}");
        }
    }
}

#[test]
fn tls_sessions_are_resumed_by_each_user_counted_and_off_on_request() {
    // A new connection per request, 3 users, 30 requests: each user's
    // first handshake is full and its later ones resume its own session.
    let (srv, _) = server::tls(false);
    let url = format!("https://localhost:{}/", srv.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let per_request = dir.path().join("per-request.yaml");
    std::fs::write(
        &per_request,
        "clients:\n  connections: per_request\nflows:\n  - steps:\n      - get: /\n",
    )
    .unwrap();
    let per_session = dir.path().join("per-session.yaml");
    std::fs::write(
        &per_session,
        "clients:\n  connections: per_session\nflows:\n  - steps:\n      - get: /\n      - get: /\n",
    )
    .unwrap();
    let run = |scenario: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            scenario.to_str().unwrap(),
            "--target",
            &url,
            "--insecure",
            "--vus",
            "3",
            "--requests",
            "30",
            "--workers",
            "1",
        ];
        args.extend(extra);
        let r = throng(&args);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let raw = r.raw();
        let res = r.results.unwrap();
        assert_eq!(num(&res, "totals.ok"), 30.0);
        // Exact phases: a connect and a handshake per connection, a
        // first byte per request.
        let opened = num(&res, "totals.connections_opened") as u64;
        assert_eq!(raw.connect.count(), opened);
        assert_eq!(raw.tls.count(), opened);
        assert_eq!(num(&res, "totals.tls_handshakes") as u64, opened);
        assert_eq!(raw.ttfb.count(), 30);
        let resumed = res["totals"]["tls_resumed"].as_f64().unwrap_or(0.0);
        (
            opened,
            resumed,
            r.stdout,
            num(&res, "totals.sessions") as u64,
        )
    };
    let (opened, resumed, stdout, _) = run(&per_request, &[]);
    assert_eq!((opened, resumed), (30, 27.0));
    assert!(
        stdout.contains("TLS handshakes 30, 3 full, 27 resumed"),
        "{stdout}"
    );
    let (opened, resumed, _, _) = run(&per_request, &["--tls-resumption", "off"]);
    assert_eq!((opened, resumed), (30, 0.0));
    // Every session is a new visitor: a full handshake each, then its
    // second request on the same connection.
    let (opened, resumed, _, sessions) = run(&per_session, &[]);
    // (A session begun as the budget ran out sends nothing.)
    assert_eq!(resumed, 0.0);
    assert!((15..=sessions).contains(&opened), "{opened} {sessions}");
    let r = throng(&["--url", &url, "--tls-resumption", "maybe"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("use on or off"), "{}", r.stderr);
}

#[test]
fn tls_is_verified_by_default() {
    let (srv, pem) = server::tls(false);
    let url = format!("https://localhost:{}/", srv.addr.port());
    // Unknown issuer: every request fails under `tls`, with the reason shown.
    let r = throng(&["--url", &url, "--rate", "50", "--requests", "5"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "errors.tls"), 5.0);
    let example = res["error_examples"]["tls"].as_str().unwrap();
    assert!(example.contains("certificate"), "{example}");
    assert!(r.stdout.contains("e.g. "), "{}", r.stdout);
    // Trusted via --cacert.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let r = throng(&[
        "--url",
        &url,
        "--rate",
        "50",
        "--requests",
        "5",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "totals.ok"), 5.0, "{}", r.stderr);
    assert!(num(&res, "tls_ms.max") > 0.0);
    // Or not verified at all, on request.
    let r = throng(&[
        "--url",
        &url,
        "--rate",
        "50",
        "--requests",
        "5",
        "--insecure",
    ]);
    assert_eq!(num(&r.results.unwrap(), "totals.ok"), 5.0);
}

#[test]
fn http2_over_tls_negotiates_h2_by_alpn() {
    let (srv, _) = server::tls(true);
    let url = format!("https://localhost:{}/", srv.addr.port());
    let r = throng(&[
        "--url",
        &url,
        "--http2",
        "--insecure",
        "--rate",
        "50",
        "--requests",
        "20",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The server answers 505 to anything but HTTP/2.
    assert_eq!(num(&r.results.unwrap(), "endpoints.GET /.status.200"), 20.0);
}

#[test]
fn poisson_arrivals_average_the_rate() {
    let srv = server::http1(Mode::Ok);
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "300",
        "--duration",
        "2s",
        "--arrivals",
        "poisson",
        "--seed",
        "7",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    let n = num(&res, "totals.requests");
    // 600 expected; a Poisson count has a standard deviation of ~24.5.
    assert!((500.0..=700.0).contains(&n), "{n}");
    assert_eq!(res["load"]["arrivals"], "poisson");
}

#[test]
fn body_file_is_sent() {
    let srv = server::http1(Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, b"{\"user\":\"ada\"}").unwrap();
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "-X",
        "POST",
        "--body-file",
        body.to_str().unwrap(),
        "--requests",
        "10",
        "--vus",
        "1",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        srv.seen
            .posts_with_body
            .load(std::sync::atomic::Ordering::Relaxed),
        10
    );
}

#[test]
fn sigterm_stops_like_ctrl_c_and_a_second_signal_abandons_in_flight() {
    // A server that never answers inside the run: requests stay in flight.
    let srv = server::http1(Mode::Stall {
        stall: Duration::from_secs(3600),
        period: Duration::from_secs(7200),
    });
    let dir = tempfile::tempdir().unwrap();
    let child = throng_cmd(
        &[
            "--url",
            &srv.url("/"),
            "--rate",
            "20",
            "--duration",
            "60s",
            "--grace",
            "60s",
        ],
        &dir,
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().unwrap();
    // Well before the 60 s grace: the second signal abandoned the requests.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let r = finish(output, dir);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let res = r.results.expect("results written");
    assert_eq!(res["status"], "interrupted");
    let cancelled = num(&res, "errors.cancelled");
    assert!(
        cancelled >= 20.0,
        "in-flight requests counted as cancelled: {cancelled}"
    );
    assert!(r.stderr.contains("stopping now"), "{}", r.stderr);
}

#[test]
fn a_killed_run_leaves_its_last_checkpoint() {
    // A 60 s run that rewrites --out every second, killed outright (no
    // signal handler runs) once its checkpoints hold at least 3 s.
    let srv = server::http1(Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let mut child = throng_cmd(
        &[
            "--url",
            &srv.url("/"),
            "--rate",
            "100",
            "--duration",
            "60s",
            "--checkpoint-every",
            "1s",
        ],
        &dir,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let out = out_path(&dir);
    let read =
        || -> Option<Value> { serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while read().is_none_or(|r| num(&r, "duration_s") < 3.0) {
        assert!(
            Instant::now() < deadline,
            "no checkpoint of 3 s within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Whatever the kill interrupted, the file is whole: each checkpoint
    // is written beside it and renamed over it.
    let res = read().expect("the last checkpoint is valid JSON");
    assert_eq!(res["schema"], "throng.results/v1");
    assert_eq!(res["status"], "running");
    let (requests, duration) = (num(&res, "totals.requests"), num(&res, "duration_s"));
    assert!((3.0..20.0).contains(&duration), "{duration}");
    // 100/s for the checkpoint's duration, less those still in flight.
    assert!(
        requests >= 100.0 * (duration - 1.0) && requests <= 100.0 * duration + 1.0,
        "{requests} requests in {duration} s"
    );
    assert_eq!(num(&res, "totals.errors"), 0.0);
    // It reads like any results file, and says what it is.
    let md = dir.path().join("summary.md");
    let report = throng_bin()
        .arg("report")
        .arg(&out)
        .arg("--summary-md")
        .arg(&md)
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.starts_with("### throng: still running (checkpoint)"),
        "{text}"
    );
}

#[test]
fn max_rate_is_a_ceiling_and_the_run_says_it_held_sends_back() {
    let srv = server::http1(Mode::Ok);
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "1000",
        "--requests",
        "50",
        "--max-rate",
        "100",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("above --max-rate 100: sends are held to 100/s"),
        "{}",
        r.stderr
    );
    let res = r.results.unwrap();
    assert_eq!(num(&res, "totals.requests"), 50.0);
    // The results record the options that shaped the load, not only the
    // command line.
    assert_eq!(num(&res, "load.max_rate"), 100.0, "{}", res["load"]);
    assert_eq!(num(&res, "load.max_body"), 8.0 * 1024.0 * 1024.0);
    assert_eq!(num(&res, "load.seed"), 1.0);
    assert_eq!(res["load"]["http"], "1.1");
    // The 50th arrival is due at 49 ms; at 100/s (10 ms of burst) it goes
    // at about 480 ms. The wait is the generator's lag, not hidden.
    assert!(num(&res, "lag_ms.max") >= 350.0, "{}", res["lag_ms"]);
    let bad = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "10",
        "--duration",
        "1s",
        "--max-rate",
        "0",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("is not a positive number"),
        "{}",
        bad.stderr
    );
}

#[test]
fn abort_if_stops_a_test_that_keeps_hurting_its_target() {
    let srv = server::http1(Mode::Status(500));
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "100",
        "--duration",
        "30s",
        "--abort-if",
        "p99>5s for 2s",
        "--abort-if",
        "errors>50% for 2s",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("stopping: --abort-if 'errors>50% for 2s' held from 0s to 2s"),
        "{}",
        r.stderr
    );
    let res = r.results.unwrap();
    assert_eq!(res["status"], "aborted");
    assert!(
        res["stop_reason"]
            .as_str()
            .unwrap()
            .starts_with("--abort-if 'errors>50% for 2s'"),
        "{}",
        res["stop_reason"]
    );
    // It stopped after its 2 s, long before the planned 30.
    let d = num(&res, "duration_s");
    assert!((2.0..10.0).contains(&d), "{d}");
    let bad = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "10",
        "--duration",
        "1s",
        "--abort-if",
        "errors>50%",
    ]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("says for how long"), "{}", bad.stderr);
}

#[test]
fn drops_at_the_in_flight_cap_are_counted_and_explained() {
    // The server freezes for the first second: with at most 5 in flight,
    // the other arrivals due in that second cannot be sent.
    let srv = server::http1(Mode::Stall {
        stall: Duration::from_millis(1000),
        period: Duration::from_secs(60),
    });
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "100",
        "--duration",
        "1s",
        "--max-in-flight",
        "5",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    let dropped = num(&res, "totals.dropped");
    assert!(dropped >= 80.0, "{dropped}");
    // Every due arrival is accounted for: sent or dropped.
    assert_eq!(num(&res, "totals.requests") + dropped, 100.0);
    assert_eq!(res["generator"]["saturated"], true);
    let kinds: Vec<&str> = res["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"generator_saturation"), "{kinds:?}");
    assert!(
        r.stdout
            .contains("the generator, not the target, may have been the limit"),
        "{}",
        r.stdout
    );
}

#[test]
fn progress_lines_are_plain_when_not_a_terminal() {
    let srv = server::http1(Mode::Ok);
    let r = throng(&["--url", &srv.url("/"), "--rate", "20", "--duration", "6s"]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("[  5s/6s]"), "{}", r.stderr);
    assert!(!r.stderr.contains('\r'));
    let r = throng(&[
        "--url",
        &srv.url("/"),
        "--rate",
        "20",
        "--duration",
        "6s",
        "--quiet",
    ]);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn reports_and_exports_are_written_by_a_run_and_again_from_its_results_file() {
    let srv = server::http1(Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("/");
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let output = throng_cmd(
        &[
            "--url",
            &url,
            "--rate",
            "50",
            "--duration",
            "2s",
            "--threshold",
            "p99<5s",
            "--threshold",
            "errors<0%",
            "--report",
            &file("run.html"),
            "--timeline",
            &file("run.csv"),
            "--junit",
            &file("run.xml"),
            "--summary-md",
            &file("run.md"),
        ],
        &dir,
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "errors<0% cannot hold");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for what in ["report", "timeline", "JUnit XML", "Markdown summary"] {
        assert!(stdout.contains(&format!("{what} written to")), "{stdout}");
    }
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert!(read("run.html").contains("<svg"));
    let csv = read("run.csv");
    assert!(csv.starts_with("t,offered,requests,"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "a header and two seconds: {csv}");
    let rows: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(rows, 100, "every request is in a row");
    let xml = read("run.xml");
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("name=\"threshold errors&lt;0%\""), "{xml}");
    assert!(read("run.md").starts_with("### throng: failed"));
    // From the saved results, the same files.
    let out = throng_bin()
        .arg("report")
        .arg(out_path(&dir))
        .args([
            "--html",
            &file("again.html"),
            "--timeline",
            &file("again.csv"),
        ])
        .args([
            "--junit",
            &file("again.xml"),
            "--summary-md",
            &file("again.md"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (a, b) in [
        ("run.html", "again.html"),
        ("run.csv", "again.csv"),
        ("run.xml", "again.xml"),
        ("run.md", "again.md"),
    ] {
        assert_eq!(read(a), read(b), "{a}");
    }
    // A file that is not results is refused; so is asking for nothing.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let out = throng_bin()
        .args(["report"])
        .arg(&bad)
        .args(["--html", &file("x.html")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = throng_bin()
        .arg("report")
        .arg(out_path(&dir))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("say what to write"));
}

#[test]
fn prometheus_can_scrape_a_run_while_it_runs() {
    use std::io::{BufRead, BufReader, Read, Write};
    let srv = server::http1(Mode::Ok);
    let url = srv.url("/");
    let mut child = throng_bin()
        .args([
            "run",
            "--url",
            &url,
            "--rate",
            "100",
            "--duration",
            "3s",
            "--quiet",
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("metrics: http://")
        .and_then(|a| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {line:?}"))
        .to_string();
    // Scrape in the middle of the run, as Prometheus would.
    std::thread::sleep(Duration::from_millis(1800));
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut scraped = String::new();
    conn.read_to_string(&mut scraped).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(scraped.starts_with("HTTP/1.1 200 OK"), "{scraped}");
    let value = |metric: &str| -> f64 {
        scraped
            .lines()
            .find_map(|l| l.strip_prefix(metric)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {metric} in {scraped}"))
    };
    let ok = value("throng_requests_total{outcome=\"ok\"}");
    // About 1.5 s of 100/s have been reported: counted, not yet all 300.
    assert!((50.0..300.0).contains(&ok), "{ok} requests mid-run");
    assert_eq!(value("throng_latency_seconds_count"), ok);
    assert_eq!(value("throng_latency_seconds_bucket{le=\"+Inf\"}"), ok);
    assert!(value("throng_latency_seconds_bucket{le=\"0.001\"}") <= ok);
    assert_eq!(value("throng_requests_total{outcome=\"http_5xx\"}"), 0.0);
    assert!(scraped.contains("# TYPE throng_latency_seconds histogram"));
}

#[test]
fn the_live_panel_is_redrawn_in_place_on_a_terminal() {
    // `script` gives throng a terminal, as a person's shell would.
    let srv = server::http1(Mode::Ok);
    let command = format!(
        "{} run --url {} --rate 20 --duration 3s",
        env!("CARGO_BIN_EXE_throng"),
        srv.url("/")
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) runs a command on a terminal");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    // Five lines, then up five and drawn again, at least once.
    assert!(tty.contains("elapsed   1s of 3s"), "{tty}");
    assert!(tty.contains("\x1b[5A"), "{tty}");
    assert!(tty.contains("rate      arrivals 20.00/s planned"), "{tty}");
    assert!(tty.contains("latency   p50 "), "{tty}");
    // The summary follows the panel.
    assert!(tty.contains("throng open model"), "{tty}");
}
