//! WebSockets end to end: the real binary against the scriptable server
//! (`support::ws`). What a session's actions send and wait for, what is
//! counted, and each way a socket fails as its error kind.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::scenarios::scenario;
use crate::support::server::Running;
use crate::support::sse::{self, SseMode, SseSeen};
use crate::support::ws::{self, WsMode, WsSeen};
use crate::{num, throng};

/// Runs `yaml` against `target` with one user for `requests` connections
/// (and `extra` options): the exit code and the results.
fn one_user(target: &str, yaml: &str, requests: &str, extra: &[&str]) -> (i32, Value) {
    let (_dir, path) = scenario(yaml);
    let mut args = vec![
        &path[..],
        "--target",
        target,
        "--vus",
        "1",
        "--requests",
        requests,
    ];
    args.extend_from_slice(extra);
    let r = throng(&args);
    assert!([0, 1].contains(&r.code), "{}{}", r.stdout, r.stderr);
    (r.code, r.results.expect("a results file"))
}

/// [`one_user`] against a WebSocket server.
fn run_ws(srv: &Running<WsSeen>, yaml: &str, requests: &str) -> (i32, Value) {
    one_user(&srv.url(""), yaml, requests, &[])
}

#[test]
fn early_messages_wait_for_their_expect_and_every_message_is_counted() {
    let srv = ws::start(WsMode::Burst(10));
    let (code, res) = run_ws(
        &srv,
        r#"
cookies: true
flows:
  - steps:
      - ws: /room
        name: room
        subprotocols: [chat.v1]
        queue: 3
        session:
          - hold: 300ms
          - expect: { json: { path: $.n, equals: 9 }, timeout: 1s }
          - send: "hello {{ vu }}"
          - expect: { body_contains: hello, timeout: 1s, extract: { said: { regex: "hello (\\d+)" } } }
          - send: "again {{ said }}"
          - expect: { body_contains: again, timeout: 1s }
          - close: 4000
      - ws: /again
        name: again
        session: [ { hold: 10ms } ]
"#,
        "2",
    );
    assert_eq!(code, 0, "{res}");
    let live = &res["endpoints"]["room"]["live"];
    let n = |k: &str| num(live, k);
    assert_eq!(num(&res, "endpoints.room.requests"), 1.0);
    assert_eq!(num(&res, "endpoints.room.errors"), 0.0, "{res}");
    assert_eq!((n("attempted"), n("opened")), (1.0, 1.0));
    // The burst came during the hold: a queue of 3 kept the last three
    // ({"n":7..9}, so the expect found 9) and dropped seven, counted.
    assert_eq!(n("messages_received"), 12.0, "10 burst and 2 echoes");
    assert_eq!(n("messages_dropped"), 7.0);
    assert_eq!(n("messages_sent"), 2.0);
    // Each send was answered by the expect after it: two round trips.
    assert_eq!(n("round_trips"), 2.0);
    assert_eq!(n("expect_timeouts"), 0.0);
    assert_eq!(n("closed_by_client"), 1.0);
    assert_eq!(srv.seen.messages.load(Ordering::Relaxed), 2);
    // The extracted value went into the next message, the close code to
    // the server, the subprotocol with the upgrade.
    // (The second socket closed with 1000 at its session's end.)
    assert_eq!(*srv.seen.client_closes.lock().unwrap(), vec![4000, 1000]);
    let headers = srv.seen.headers.lock().unwrap().clone();
    assert_eq!(headers[0], (String::new(), "chat.v1".to_string()));
    // The first 101 set a cookie; the next upgrade sent it.
    assert_eq!(headers[1].0, "room=r1");
    assert_eq!(num(&res, "totals.connections_opened"), 2.0);
}

#[test]
fn round_trips_run_from_each_sends_intended_time_to_its_own_reply() {
    // One message at a time, 250 ms each, while ticks come every 100 ms:
    // the server falls behind, and the k-th reply comes at 250(k+1) ms,
    // 250 + 150k ms after its tick.
    let srv = ws::start(WsMode::Echo {
        delay: std::time::Duration::from_millis(250),
    });
    let (code, res) = run_ws(
        &srv,
        r#"
flows:
  - steps:
      - ws: /slow
        name: slow
        session:
          - every: { interval: 100ms, for: 1s, send: tick, expect: { body_contains: tick, timeout: 5s } }
"#,
        "1",
    );
    assert_eq!(code, 0, "{res}");
    let live = &res["endpoints"]["slow"]["live"];
    eprintln!("round trips: {}", live["round_trip_ms"]);
    assert_eq!(num(live, "messages_sent"), 10.0);
    assert_eq!(num(live, "round_trips"), 10.0);
    let (min, p50, max) = (
        num(live, "round_trip_ms.min"),
        num(live, "round_trip_ms.p50"),
        num(live, "round_trip_ms.max"),
    );
    assert!(
        (240.0..600.0).contains(&min),
        "the first tick waits 250 ms: {min}"
    );
    assert!(p50 > 700.0, "a backlog grows: p50 {p50}");
    assert!(
        (1550.0..3000.0).contains(&max),
        "the tenth tick waits 250 + 9 x 150 ms: {max}"
    );
}

#[test]
fn every_way_a_socket_fails_is_counted_under_its_kind() {
    let session = r#"
thresholds: [ "ws_errors<1%" ]
flows:
  - steps:
      - ws: /x
        name: x
        session:
          - send: hi
          - expect: { timeout: 300ms }
          - hold: 50ms
"#;
    let cases: [(&str, Running<WsSeen>, &str, &str); 5] = [
        (
            "refused upgrade",
            ws::start(WsMode::Refuse(503)),
            "upgrade_failed",
            "upgrade_failed.503",
        ),
        (
            "close 1011",
            ws::start(WsMode::CloseWith(1011)),
            "ws_closed",
            "closed_by_server.1011",
        ),
        (
            "dropped",
            ws::start(WsMode::Drop),
            "ws_closed",
            "closed_by_server.1006",
        ),
        (
            "silent",
            ws::start(WsMode::Silent),
            "message_timeout",
            "expect_timeouts",
        ),
        (
            "nothing listening",
            Running::refusing(std::sync::Arc::new(WsSeen::default())),
            "connect_refused",
            "refused",
        ),
    ];
    for (what, srv, kind, count) in cases {
        let (code, res) = run_ws(&srv, session, "2");
        let ep = &res["endpoints"]["x"];
        assert_eq!(code, 1, "{what}: ws_errors<1% fails: {res}");
        assert_eq!(num(ep, "requests"), 2.0, "{what}");
        assert_eq!(num(ep, "live.attempted"), 2.0, "{what}: every attempt");
        assert_eq!(num(ep, "errors"), 2.0, "{what}: {ep}");
        assert_eq!(num(ep, &format!("error_kinds.{kind}")), 2.0, "{what}: {ep}");
        assert_eq!(num(ep, &format!("live.{count}")), 2.0, "{what}: {ep}");
        assert_eq!(
            res["thresholds"][0]["actual"].as_f64(),
            Some(1.0),
            "{what}: {}",
            res["thresholds"]
        );
    }
}

#[test]
fn event_streams_count_events_time_the_first_and_the_gaps_and_resume_after_the_last_id() {
    // Three events 50 ms apart, then the server ends the stream; the step
    // wants seven and may reconnect three times.
    let srv = sse::start(SseMode::Events {
        n: 3,
        every: Duration::from_millis(50),
        hold: false,
    });
    let (code, res) = one_user(
        &srv.url(""),
        r#"
flows:
  - steps:
      - sse: /feed
        name: feed
        events: 7
        reconnect: 3
        checks: [ { json: { path: $.k, exists: true } } ]
        extract: { k: { json: $.k } }
"#,
        "1",
        &[],
    );
    assert_eq!(code, 0, "{res}");
    let ep = &res["endpoints"]["feed"];
    let live = &ep["live"];
    eprintln!("{live}");
    assert_eq!(num(ep, "requests"), 1.0, "one subscription");
    assert_eq!(num(ep, "errors"), 0.0, "{ep}");
    // 1-3, then 4-6 resumed after id 3, then 7 resumed after id 6: the
    // seventh ends it.
    assert_eq!(
        *srv.seen.last_ids.lock().unwrap(),
        vec!["".to_string(), "3".into(), "6".into()]
    );
    assert_eq!(live["protocol"], "sse");
    assert_eq!(num(live, "attempted"), 3.0);
    assert_eq!(num(live, "reconnects"), 2.0);
    assert_eq!(num(live, "opened"), 3.0);
    assert_eq!(num(live, "messages_received"), 7.0);
    assert_eq!(
        num(live, "closed_by_server.0"),
        2.0,
        "ended twice by the server"
    );
    assert_eq!(num(live, "closed_by_client"), 1.0);
    // The first event comes at once; gaps are 50 ms, and about the 100 ms
    // the stream asked to wait (retry: 100) across each reconnection.
    assert!(num(live, "first_event_ms.max") < 50.0, "{live}");
    assert!((45.0..90.0).contains(&num(live, "gap_ms.p50")), "{live}");
    assert!((95.0..400.0).contains(&num(live, "gap_ms.max")), "{live}");
    let checks = res["checks"].as_object().unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    let (_, check) = checks.iter().next().unwrap();
    assert_eq!((num(check, "passed"), num(check, "failed")), (7.0, 0.0));
}

#[test]
fn an_event_stream_ends_when_its_time_is_up_and_fails_as_its_answer_says() {
    let endless = sse::start(SseMode::Events {
        n: 1000,
        every: Duration::from_millis(20),
        hold: true,
    });
    let feed = "flows:\n  - steps:\n      - sse: /feed\n        name: feed\n        for: 300ms\n";
    let (code, res) = one_user(&endless.url(""), feed, "1", &[]);
    assert_eq!(code, 0, "{res}");
    let live = &res["endpoints"]["feed"]["live"];
    let events = num(live, "messages_received");
    assert!(
        (8.0..=16.0).contains(&events),
        "about 300 / 20 events: {live}"
    );
    assert_eq!(num(live, "closed_by_client"), 1.0, "{live}");
    assert_eq!(num(&res, "endpoints.feed.errors"), 0.0);

    let cases: [(&str, Running<SseSeen>, &str); 3] = [
        ("503", sse::start(SseMode::Status(503)), "http_5xx"),
        ("text/plain", sse::start(SseMode::NotStream), "protocol"),
        (
            "nothing listening",
            Running::refusing(std::sync::Arc::new(SseSeen::default())),
            "connect_refused",
        ),
    ];
    for (what, srv, kind) in cases {
        let (_, res) = one_user(&srv.url(""), feed, "2", &[]);
        let ep = &res["endpoints"]["feed"];
        assert_eq!(num(ep, "requests"), 2.0, "{what}: {ep}");
        assert_eq!(num(ep, &format!("error_kinds.{kind}")), 2.0, "{what}: {ep}");
        assert_eq!(num(ep, "live.attempted"), 2.0, "{what}: {ep}");
        assert_eq!(num(ep, "live.opened"), 0.0, "{what}: {ep}");
    }
}

#[test]
fn a_websocket_goes_over_tls_with_the_targets_settings() {
    let (srv, pem) = ws::start_tls(WsMode::Echo {
        delay: Duration::ZERO,
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let target = format!("https://localhost:{}", srv.addr.port());
    let (code, res) = one_user(
        &target,
        "flows:\n  - steps:\n      - ws: /tls\n        name: tls\n        session:\n          - send: over tls\n          - expect: { body_contains: over tls, timeout: 2s }\n",
        "2",
        &["--cacert", ca.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{res}");
    let ep = &res["endpoints"]["tls"];
    assert_eq!(num(ep, "errors"), 0.0, "{ep}");
    assert_eq!(num(ep, "live.round_trips"), 2.0, "{ep}");
    assert!(num(&res, "tls_ms.p50") > 0.0, "the TLS handshake was timed");
}

#[test]
fn a_socket_still_open_when_the_grace_period_ends_is_closed_not_failed() {
    // One connection (the bound), held for ten minutes: the load ends at
    // once, the socket goes on through the grace period, then is dropped.
    let srv = ws::start(WsMode::Echo {
        delay: Duration::ZERO,
    });
    let started = std::time::Instant::now();
    let (code, res) = one_user(
        &srv.url(""),
        "flows:\n  - steps:\n      - ws: /long\n        name: long\n        session: [ { hold: 10m } ]\n",
        "1",
        &["--grace", "1s"],
    );
    assert_eq!(code, 0, "{res}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by the grace period"
    );
    let ep = &res["endpoints"]["long"];
    assert_eq!(num(ep, "errors"), 0.0, "{ep}");
    assert_eq!(num(ep, "live.opened"), 1.0);
    assert_eq!(num(ep, "live.closed_by_client"), 1.0, "{ep}");
}
