//! What reaches the target is what throng reports. Each test puts the
//! fault-injecting proxy (`support::proxy`) between throng and a loopback
//! target, and compares throng's counts with the target's and the
//! proxy's own, exactly: requests the target saw = requests throng
//! reports as sent + counted re-sends.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::support::proxy::{self, Cut, Faults, Proxy, ProxySeen};
use crate::support::server::{self, Mode, Server};
use crate::throng;

/// A count in a results file; 0 where it is left out for being 0.
fn count(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    if cur.is_null() {
        return 0;
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not a count: {cur}"))
}

/// Requests with `method` that reached `srv`.
fn target_saw(srv: &Server, method: &str) -> u64 {
    let prefix = format!("{method} ");
    srv.seen
        .paths
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn cut_responses_are_counted_and_only_the_methods_allowed_are_resent() {
    // Every 7th response is cut before its first byte reaches throng: the
    // target answered, then the client's connection was reset. On a reused
    // connection that is the race a keep-alive client cannot tell from an
    // idle close; only GET (by default) goes again, and is counted.
    let cases: [(&str, &[&str], &str); 4] = [
        ("GET", &[], "safe"),
        ("POST", &["--body", "v"], "safe"),
        ("GET", &["--resend", "never"], "never"),
        (
            "PUT",
            &["--body", "v", "--resend", "idempotent"],
            "idempotent",
        ),
    ];
    for (method, extra, policy) in cases {
        let srv = server::http1(Mode::Ok);
        let proxy = proxy::start(
            srv.addr,
            Faults {
                cut_every: Some((7, Cut::ResetAfter(0))),
                ..Faults::default()
            },
        );
        let url = proxy.url("/fast");
        let mut args = vec![
            "--url",
            &url,
            "-X",
            method,
            "--rate",
            "100",
            "--duration",
            "3s",
            "--timeout",
            "2s",
        ];
        args.extend_from_slice(extra);
        let r = throng(&args);
        let what = format!("{method} {extra:?}");
        assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
        let res = r.results.unwrap();
        let (requests, resent) = (count(&res, "totals.requests"), count(&res, "totals.resent"));
        let resets = count(&res, "errors.reset");
        let cuts = ProxySeen::get(&proxy.seen.cuts);
        eprintln!(
            "{what}: {requests} requests, {resent} resent, {resets} reset; the proxy cut {cuts}, the target saw {}",
            target_saw(&srv, method)
        );
        assert_eq!(res["load"]["resend"], policy, "{what}");
        assert!(requests >= 290, "{what}: {requests} requests");
        assert!(cuts >= 30, "{what}: the proxy cut {cuts}");
        // The target saw every request throng counts, and each re-send.
        assert_eq!(target_saw(&srv, method), requests + resent, "{what}");
        // Each cut is a re-send or a failure, never nothing.
        assert_eq!(
            cuts,
            resent + resets,
            "{what}: {resent} resent {resets} reset"
        );
        assert_eq!(count(&res, "totals.errors"), resets, "{what}");
        let endpoint = format!("{method} /fast");
        assert_eq!(
            count(&res["endpoints"][&endpoint], "resent"),
            resent,
            "{what}"
        );
        let per_second: u64 = res["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| count(row, "resent"))
            .sum();
        assert_eq!(per_second, resent, "{what}");
        if method == "POST" || policy == "never" {
            assert_eq!(resent, 0, "{what}");
        } else {
            // Most cuts land on a reused connection: those go again.
            assert!(resent * 2 > cuts, "{what}: {resent} of {cuts} resent");
            assert!(
                r.stdout.contains(&format!("resent    {resent} sent again")),
                "{what}: {}",
                r.stdout
            );
        }
    }
}

#[test]
fn connections_the_target_closed_while_idle_are_replaced_without_a_failure() {
    // A 40 ms keep-alive timeout and users who think for 150 ms: every
    // request after a user's first finds its connection closed. Nothing is
    // written to it, so even POSTs go on a new one, and nothing failed.
    let srv = server::http1(Mode::Ok);
    let proxy = proxy::start(
        srv.addr,
        Faults {
            idle_close: Some(Duration::from_millis(40)),
            ..Faults::default()
        },
    );
    let url = proxy.url("/write");
    let r = throng(&[
        "--url",
        &url,
        "-X",
        "POST",
        "--body",
        "v",
        "--vus",
        "2",
        "--think",
        "150ms",
        "--requests",
        "24",
        "--workers",
        "1",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(count(&res, "totals.ok"), 24, "{}", r.stdout);
    assert_eq!(count(&res, "totals.errors"), 0);
    assert_eq!(count(&res, "totals.resent"), 0);
    assert_eq!(target_saw(&srv, "POST"), 24);
    let closed_idle = count(&res, "totals.connections_closed_idle");
    eprintln!(
        "idle closes: {} ok, {} found closed, {} opened; the proxy closed {}, the target saw {}",
        count(&res, "totals.ok"),
        closed_idle,
        count(&res, "totals.connections_opened"),
        ProxySeen::get(&proxy.seen.idle_closes),
        target_saw(&srv, "POST")
    );
    assert!(
        (20..=ProxySeen::get(&proxy.seen.idle_closes)).contains(&closed_idle),
        "{closed_idle} found closed, the proxy closed {}",
        ProxySeen::get(&proxy.seen.idle_closes)
    );
    assert_eq!(count(&res, "totals.connections_opened"), closed_idle + 2);
    assert!(
        r.stdout.contains("found closed by the target while idle"),
        "{}",
        r.stdout
    );
}

/// Runs `throng run --url PROXY/PATH ARGS --workers 1` through a proxy
/// with `faults` in front of a new target; returns the results, the
/// summary, and the target and proxy for their counts.
fn through(faults: Faults, path: &str, args: &[&str]) -> (Value, String, Server, Proxy) {
    let srv = server::http1(Mode::Ok);
    let proxy = proxy::start(srv.addr, faults);
    let url = proxy.url(path);
    let mut all = vec!["--url", url.as_str(), "--workers", "1"];
    all.extend_from_slice(args);
    let r = throng(&all);
    let res = r
        .results
        .unwrap_or_else(|| panic!("no results: {}{}", r.stdout, r.stderr));
    (res, r.stdout, srv, proxy)
}

#[test]
fn partial_slow_and_missing_responses_are_each_the_requests_own_failure() {
    // Part of a response came back: the target answered, so the request is
    // not re-sent (not even a GET); it failed.
    let faults = Faults {
        cut_every: Some((5, Cut::CloseAfter(20))),
        ..Faults::default()
    };
    let (res, out, srv, proxy) = through(faults, "/partial", &["--vus", "2", "--requests", "40"]);
    let cuts = ProxySeen::get(&proxy.seen.cuts);
    assert_eq!((cuts, count(&res, "errors.reset")), (8, 8), "{out}");
    assert_eq!(count(&res, "totals.resent"), 0);
    assert_eq!(target_saw(&srv, "GET"), 40);

    // A response in 8-byte pieces 20 ms apart takes 120 ms: past the
    // 50 ms timeout, each request times out, and each reached the target.
    let faults = Faults {
        chunks: Some((8, Duration::from_millis(20))),
        ..Faults::default()
    };
    let args = ["--vus", "2", "--requests", "10", "--timeout", "50ms"];
    let (res, out, srv, _proxy) = through(faults, "/slow", &args);
    assert_eq!(count(&res, "errors.timeout"), 10, "{out}");
    assert_eq!(count(&res, "totals.resent"), 0);
    assert_eq!(target_saw(&srv, "GET"), 10);

    // A proxy that takes requests and never answers: timeouts, and the
    // target saw none of them.
    let faults = Faults {
        silent: true,
        ..Faults::default()
    };
    let args = ["--vus", "1", "--requests", "4", "--timeout", "200ms"];
    let (res, out, srv, proxy) = through(faults, "/void", &args);
    assert_eq!(count(&res, "errors.timeout"), 4, "{out}");
    assert_eq!(ProxySeen::get(&proxy.seen.requests), 4);
    assert_eq!(srv.seen.requests.load(Ordering::SeqCst), 0);

    // Refused connections: nothing was sent, nothing opened.
    let faults = Faults {
        refuse: true,
        ..Faults::default()
    };
    let (res, out, srv, _proxy) = through(faults, "/none", &["--vus", "1", "--requests", "4"]);
    assert_eq!(count(&res, "errors.connect_refused"), 4, "{out}");
    assert_eq!(count(&res, "totals.connections_opened"), 0);
    assert_eq!(srv.seen.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn uploads_cut_midway_and_a_slow_network_are_counted_once_and_stop_on_time() {
    // A 256 KB upload, every third reset once its head has come: the body
    // is still on its way. A POST is not re-sent; each cut one is a
    // `reset`, and none reached the target.
    let srv = server::http1(Mode::Ok);
    let proxy = proxy::start(
        srv.addr,
        Faults {
            cut_upload_every: Some(3),
            ..Faults::default()
        },
    );
    let body = "x".repeat(256 * 1024);
    let (_dir, path) = crate::scenarios::scenario(&format!(
        "target: {}\nflows:\n  - steps:\n      - post: /upload\n        body: \"{body}\"\n",
        proxy.url("")
    ));
    let r = throng(&[
        path.as_str(),
        "--vus",
        "1",
        "--requests",
        "12",
        "--workers",
        "1",
    ]);
    let res = r
        .results
        .unwrap_or_else(|| panic!("no results: {}", r.stderr));
    let cuts = ProxySeen::get(&proxy.seen.upload_cuts);
    assert_eq!(cuts, 4, "{}", r.stdout);
    assert_eq!(count(&res, "totals.requests"), 12);
    assert_eq!(count(&res, "errors.reset"), cuts, "{}", r.stdout);
    assert_eq!(count(&res, "totals.resent"), 0);
    // Sent = what the target saw + what failed before reaching it.
    assert_eq!(target_saw(&srv, "POST"), 12 - cuts);

    // Each request held 300 ms on the way, 2 users, a 1 s run with a
    // 100 ms grace: the run stops on time, the requests still out when the
    // grace ends are `cancelled`, and every one is counted once.
    let faults = Faults {
        delay: Some(Duration::from_millis(300)),
        ..Faults::default()
    };
    let started = std::time::Instant::now();
    let (res, out, srv, proxy) = through(
        faults,
        "/slow-net",
        &["--vus", "2", "--duration", "1s", "--grace", "100ms"],
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let sent = count(&res, "totals.requests");
    let ok = sent - count(&res, "totals.errors");
    assert_eq!(count(&res, "errors.cancelled"), 2, "{out}");
    assert_eq!(ok, target_saw(&srv, "GET").min(ok), "{out}");
    // The proxy read every request throng sent; the target answered the
    // ones that came back in time, and the two cut off by the stop.
    assert_eq!(ProxySeen::get(&proxy.seen.requests), sent, "{out}");
    assert!((6..=8).contains(&sent), "{sent} requests: {out}");
}
