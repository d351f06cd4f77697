//! throng's HTTP/2 client against servers written by others (nghttpd, h2o,
//! nginx: `support::peers`), not only the Rust server of the other tests.
//! Each run is one journey, repeated by 20 users on 2 connections of at
//! most 8 streams: a page, a 3 MiB download (past the flow-control
//! windows), a HEAD, a 404 and a 300 kB upload; every response is counted
//! once, as what it was. Against nginx, also cookies and a redirect.

use crate::support::peers::{self, DocRoot, Peer, BIG_END, INDEX_END};
use crate::support::run::num;

/// Bytes in the journey's upload: more than HTTP/2's initial window
/// (65,535), so that sending it waits for the server's WINDOW_UPDATEs.
const UPLOAD: usize = 300_000;
/// Requests in each run: 40 journeys of 5 requests.
const REQUESTS: u64 = 200;

/// Runs `scenario` against `peer` (trusting its certificate), with
/// `args`, bounded at 60 s.
fn run(peer: &Peer, root: &DocRoot, scenario: &str, args: &[&str]) -> crate::Run {
    let path = root.path("scenario.yaml");
    std::fs::write(&path, scenario).unwrap();
    let cert = root.cert();
    let url = peer.url("");
    let mut all = vec![
        path.to_str().unwrap(),
        "--target",
        &url,
        "--cacert",
        cert.to_str().unwrap(),
        "--duration",
        "60s",
    ];
    all.extend_from_slice(args);
    crate::throng(&all)
}

/// Runs the journey against `peer` (its upload to `post`, to which the
/// server answers `post_status`, its body containing `post_says`), and
/// checks that every request is counted once, as what it was.
fn journey(peer: &Peer, root: &DocRoot, post: &str, post_status: u16, post_says: &str) {
    let upload = "u".repeat(UPLOAD);
    let scenario = format!(
        "http2: true\nflows:\n  - steps:\n\
         \x20     - get: /index.html\n        checks: [ {{ status: 200 }}, {{ body_contains: {INDEX_END} }} ]\n\
         \x20     - get: /big.bin\n        checks: [ {{ status: 200 }}, {{ body_contains: {BIG_END} }} ]\n\
         \x20     - head: /index.html\n        checks: [ {{ status: 200 }} ]\n\
         \x20     - get: /missing\n\
         \x20     - post: {post}\n        body: {upload}\n        checks: [ {{ body_contains: \"{post_says}\" }} ]\n"
    );
    let requests = REQUESTS.to_string();
    let r = run(
        peer,
        root,
        &scenario,
        &[
            "--vus",
            "20",
            "--requests",
            &requests,
            "--http2-connections",
            "2",
            "--http2-streams",
            "8",
            "--workers",
            "2",
        ],
    );
    let res = r.results.expect("a results file");
    // Endpoint names have dots in them: no `num` path.
    let endpoint = |name: &str, what: &str| {
        let e = &res["endpoints"][name];
        let v = what.split('.').fold(e, |v, k| &v[k]);
        v.as_f64()
            .unwrap_or_else(|| panic!("{name}: no {what} in {e}\n{}", r.stdout))
    };
    assert_eq!(
        num(&res, "totals.requests"),
        REQUESTS as f64,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(num(&res, "totals.connections_opened"), 2.0, "{}", r.stdout);
    assert_eq!(num(&res, "totals.check_failures"), 0.0, "{}", r.stdout);
    let mut expected_errors = 0.0;
    for (name, status) in [
        ("GET /index.html", 200),
        ("GET /big.bin", 200),
        ("HEAD /index.html", 200),
        ("GET /missing", 404),
        (&format!("POST {post}"), post_status),
    ] {
        let requests = endpoint(name, "requests");
        assert!(
            requests >= 30.0,
            "{name}: {requests} requests\n{}",
            r.stdout
        );
        assert_eq!(
            endpoint(name, &format!("status.{status}")),
            requests,
            "{name}: every response {status}\n{}",
            r.stdout
        );
        if status >= 400 {
            expected_errors += requests;
        }
    }
    // A 404 (or 405) is an error of kind http_4xx; nothing else is one.
    assert_eq!(num(&res, "totals.errors"), expected_errors, "{}", r.stdout);
    let kinds: Vec<&String> = res["errors"]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["http_4xx"], "{}", r.stdout);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn http2_against_nghttpd() {
    let root = DocRoot::new();
    let Some(peer) = peers::nghttpd(&root) else {
        return;
    };
    // nghttpd reads an upload to a file and answers with the file.
    journey(&peer, &root, "/index.html", 200, INDEX_END);
}

#[test]
fn http2_over_tls_against_h2o() {
    let root = DocRoot::new();
    let Some(peer) = peers::h2o(&root) else {
        return;
    };
    // h2o's /echo says how many body bytes it read: all of them.
    journey(&peer, &root, "/echo", 200, &format!("read {UPLOAD}"));
}

#[test]
fn http2_over_tls_against_nginx() {
    let root = DocRoot::new();
    let Some(peer) = peers::nginx(&root) else {
        return;
    };
    // nginx answers /echo at once and resets the upload's stream with
    // NO_ERROR: the response counts, the rest of the upload is not sent.
    journey(&peer, &root, "/echo", 200, "posted");
}

#[test]
fn http2_cookies_and_redirects_against_nginx() {
    // Two cookies in one response (two `set-cookie` fields in its header
    // block) both reach the jar and go back; a redirect is followed on
    // the same connection, with them.
    let root = DocRoot::new();
    let Some(peer) = peers::nginx(&root) else {
        return;
    };
    let r = run(
        &peer,
        &root,
        "http2: true\nflows:\n  - steps:\n      - get: /login\n      - get: /moved\n        checks: [ { status: 200 }, { body_contains: \"a=1\" }, { body_contains: \"b=2\" } ]\n",
        &["--vus", "3", "--requests", "30", "--workers", "1"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.expect("a results file");
    assert_eq!(num(&res, "totals.requests"), 30.0, "{}", r.stdout);
    assert_eq!(num(&res, "totals.errors"), 0.0, "{}", r.stdout);
    // Each request to /moved followed its one redirect.
    let moved = num(&res, "endpoints.GET /moved.requests");
    assert!(moved >= 10.0, "{}", r.stdout);
    assert_eq!(num(&res, "totals.redirects"), moved, "{}", r.stdout);
    assert_eq!(num(&res, "totals.connections_opened"), 1.0, "{}", r.stdout);
}
