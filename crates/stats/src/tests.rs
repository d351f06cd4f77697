//! Unit tests: what each recorded number means, and exact merging.

use std::time::Duration;

use crate::*;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn sample(due: u64, lag: u64, service: u64, outcome: Outcome) -> Sample {
    Sample {
        endpoint: 0,
        due: ms(due),
        lag: ms(lag),
        service: ms(service),
        phases: Phases::default(),
        outcome,
        checks_failed: false,
        client: Default::default(),
    }
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= expected * 0.001,
        "{actual} vs {expected}"
    );
}

const OK: Outcome = Outcome::Response { status: 200 };

#[test]
fn latency_runs_from_the_intended_send_time() {
    let mut stats = Stats::new(["GET /".to_string()]);
    // Due at 1 s, sent 300 ms late, answered 20 ms after sending.
    stats.record(&sample(1000, 300, 20, OK));
    // HDR keeps 3 significant digits: values are exact to 0.1%.
    close(stats.latency.summary().max, 320.0);
    close(stats.service.summary().max, 20.0);
    close(stats.lag.summary().max, 300.0);
}

#[test]
fn errors_statuses_and_drops_are_counted_apart() {
    let mut stats = Stats::new(["GET /".to_string()]);
    stats.record(&sample(0, 0, 5, OK));
    stats.record(&sample(0, 0, 5, Outcome::Response { status: 503 }));
    stats.record(&sample(0, 0, 5, Outcome::Response { status: 404 }));
    stats.record(&sample(0, 0, 5, Outcome::Failed(ErrorKind::Reset)));
    stats.record_dropped(0, ms(10));
    let c = stats.counts;
    assert_eq!((c.requests, c.ok, c.failed(), c.dropped()), (4, 1, 3, 1));
    // Responses of any status have a latency; a reset has none.
    assert_eq!(stats.latency.count(), 3);
    assert_eq!(stats.lag.count(), 4);
    let ep = &stats.endpoints[0];
    assert_eq!(ep.status.get(&503), Some(&1));
    assert_eq!(ep.counts.errors.get(ErrorKind::Http4xx), 1);
    assert_eq!(
        serde_json::to_string(&c.errors).unwrap(),
        r#"{"reset":1,"http_4xx":1,"http_5xx":1,"dropped":1}"#
    );
}

#[test]
fn timeline_files_requests_under_the_second_they_were_due() {
    let mut stats = Stats::new(["GET /".to_string()]);
    stats.record(&sample(900, 0, 2_000, OK)); // due in second 0, ends in second 2
    stats.record(&sample(2_100, 0, 1, OK));
    assert_eq!(stats.timeline.len(), 3);
    assert_eq!(stats.timeline[0].counts.requests, 1);
    assert_eq!(stats.timeline[1].counts.requests, 0);
    assert_eq!(stats.timeline[2].counts.requests, 1);
    // Per-second latency keeps 2 significant digits.
    let p99 = stats.timeline[0].latency.hist().quantile_ms(0.99);
    assert!((p99 - 2000.0).abs() <= 20.0, "{p99}");
}

#[test]
fn sessions_are_counted_at_their_start_apart_from_requests() {
    let mut a = Stats::new(["GET /".to_string()]);
    // A session due at 0.9 s whose two requests are due at 0.9 and 1.2 s.
    a.record_session(Duration::from_millis(900));
    a.record(&sample(900, 0, 10, OK));
    a.record(&sample(1_200, 0, 10, OK));
    assert_eq!(a.counts.sessions, 1);
    assert_eq!(a.counts.requests, 2);
    assert_eq!(a.timeline[0].counts.sessions, 1);
    assert_eq!(a.timeline[1].counts.sessions, 0);
    assert_eq!(a.timeline[1].counts.requests, 1);
    let mut b = Stats::new(["GET /".to_string()]);
    b.record_session(Duration::from_millis(1_500));
    a.merge(&b);
    assert_eq!(a.counts.sessions, 2);
    assert_eq!(a.timeline[1].counts.sessions, 1);
}

#[test]
fn merge_is_exact_histogram_union() {
    let mut a = Stats::new(["GET /".to_string()]);
    let mut b = Stats::new(["GET /".to_string()]);
    let mut all = Stats::new(["GET /".to_string()]);
    for i in 0..1000u64 {
        let s = sample(i * 7 % 5000, 0, (i * i) % 997, OK);
        if i % 3 == 0 {
            a.record(&s)
        } else {
            b.record(&s)
        }
        all.record(&s);
    }
    a.merge(&b);
    assert_eq!(a, all);
}

#[test]
fn histograms_round_trip_through_results_json() {
    let mut stats = Stats::new(["GET /".to_string(), "POST /login".to_string()]);
    for i in 0..500u64 {
        stats.record(&sample(i * 10, i % 3, 1 + i % 50, OK));
    }
    let text = serde_json::to_string(&stats).unwrap();
    let back: Stats = serde_json::from_str(&text).unwrap();
    assert_eq!(back, stats);
    let bad = text.replace("\"latency\":\"", "\"latency\":\"!!");
    assert!(serde_json::from_str::<Stats>(&bad).is_err());
}

#[test]
fn histograms_keep_microseconds_up_to_an_hour() {
    let mut h = Hist::new();
    h.record(Duration::from_micros(1));
    h.record(Duration::from_secs(3600));
    h.record(Duration::from_secs(7200)); // clamped, not lost
    assert_eq!(h.count(), 3);
    assert_eq!(h.summary().min, 0.001);
    assert!((h.summary().max - 3_600_000.0).abs() / 3_600_000.0 < 0.001);
}

#[test]
fn coarse_histograms_merge_into_empty_ones() {
    let mut from = Hist::coarse();
    from.record(ms(1));
    from.record(ms(250));
    let mut into = Hist::coarse();
    into.merge(&from);
    assert_eq!(into.count(), 2);
    // Coarse histograms keep 2 significant digits: within 1%.
    let max = into.summary().max;
    assert!((max - 250.0).abs() <= 2.5, "{max}");
    let mut full = Hist::new();
    full.merge(&from);
    close(full.summary().max, 250.0);
}

#[test]
fn latency_by_load_band_follows_the_second_it_was_due_and_merges() {
    assert_eq!(load_band(0.0, 100.0), 0);
    assert_eq!(load_band(12.4, 100.0), 0);
    assert_eq!(load_band(12.5, 100.0), 1);
    assert_eq!(load_band(100.0, 100.0), LOAD_BANDS - 1);
    assert_eq!(load_band(5.0, 0.0), 0);
    // Seconds 0-1 in band 0, 2 in band 7; later seconds take the last band.
    let bands = vec![0, 0, 7];
    let mut a = Stats::new(["GET /".to_string()]).with_load_bands(bands.clone());
    let mut b = Stats::new(["GET /".to_string()]).with_load_bands(bands);
    a.record(&sample(500, 0, 10, OK));
    a.record(&sample(2500, 0, 300, OK));
    b.record(&sample(9000, 0, 400, OK));
    a.merge(&b);
    let by = &a.endpoints[0].by_load;
    assert_eq!(by.len(), LOAD_BANDS);
    assert_eq!(by[0].count(), 1);
    assert_eq!(by[7].count(), 2);
    assert!((by[7].quantile_ms(1.0) - 400.0).abs() < 5.0);
    // Failed requests have no latency to file.
    a.record(&sample(2500, 0, 1, Outcome::Failed(ErrorKind::Reset)));
    assert_eq!(a.endpoints[0].by_load[7].count(), 2);
}

#[test]
fn endpoint_seconds_count_requests_failures_and_check_failures_by_due_second() {
    let mut a = Stats::new(["GET /".to_string()]);
    let mut b = Stats::new(["GET /".to_string()]);
    a.record(&sample(100, 0, 5, OK));
    let mut bad = sample(1200, 0, 5, OK);
    bad.checks_failed = true;
    a.record(&bad);
    b.record(&sample(1900, 0, 5, Outcome::Response { status: 503 }));
    b.record(&sample(3100, 0, 5, Outcome::Failed(ErrorKind::Timeout)));
    a.merge(&b);
    assert_eq!(
        a.endpoints[0].seconds,
        vec![[1, 0, 0], [2, 2, 1], [0, 0, 0], [1, 1, 0]]
    );
}

#[test]
fn windows_hold_requests_by_due_time_and_double_when_full() {
    let mut w = Windows::default();
    assert_eq!(w.ms, FIRST_WINDOW_MS);
    // A failure due at 0.1 s and a response due at 0.3 s: windows 0 and 1.
    w.record(ms(100), true, None);
    w.record(ms(300), false, Some(ms(20)));
    assert_eq!(w.list.len(), 2);
    assert_eq!((w.list[0].requests, w.list[0].failed), (1, 1));
    assert_eq!(w.list[0].latency.count(), 0, "a failure has no latency");
    assert_eq!(w.list[1].latency.count(), 1);
    // Due at 16 s: window 64 at 250 ms, so the length doubles to 500 ms
    // and the first two windows become one.
    w.record(ms(16_000), false, Some(ms(5)));
    assert_eq!(w.ms, 500);
    assert_eq!(w.list.len(), 33);
    assert_eq!((w.list[0].requests, w.list[0].failed), (2, 1));
    // An hour keeps no more than 64 windows.
    w.record(ms(3_600_000), false, Some(ms(5)));
    assert!(w.list.len() <= MAX_WINDOWS, "{} windows", w.list.len());
    assert_eq!(w.list.iter().map(|x| x.requests).sum::<u64>(), 4);
}

#[test]
fn windows_of_different_lengths_merge_at_the_longer_one() {
    let (mut short, mut long) = (Windows::default(), Windows::default());
    short.record(ms(600), false, Some(ms(1)));
    long.record(ms(30_000), false, Some(ms(1)));
    long.record(ms(600), true, Some(ms(1)));
    assert_eq!((short.ms, long.ms), (250, 500));
    let mut a = short.clone();
    a.merge(&long);
    let mut b = long.clone();
    b.merge(&short);
    assert_eq!(a, b, "merging is symmetric");
    assert_eq!(a.ms, 500);
    assert_eq!((a.list[1].requests, a.list[1].failed), (2, 1));
    assert_eq!(a.list[60].requests, 1);
}

#[test]
fn endpoint_windows_count_what_the_endpoint_counts() {
    let mut stats = Stats::new(["GET /".to_string()]);
    stats.record(&sample(0, 0, 5, OK));
    stats.record(&sample(10, 0, 5, Outcome::Response { status: 503 }));
    stats.record(&sample(20, 0, 5, Outcome::Failed(ErrorKind::Reset)));
    stats.record_dropped(0, ms(30));
    let w = &stats.endpoints[0].windows.list[0];
    let c = stats.endpoints[0].counts;
    // Dropped arrivals were never sent: not requests, as in `counts`.
    assert_eq!((w.requests, w.failed), (c.requests, c.failed()));
    assert_eq!(w.latency.count(), stats.endpoints[0].latency.count());
    let mut merged = stats.clone();
    merged.merge(&stats);
    assert_eq!(merged.endpoints[0].windows.list[0].requests, 6);
}

#[test]
fn settled_seconds_are_packed_and_still_read_the_same() {
    let mut stats = Stats::new(["GET /".to_string()]);
    let mut unpacked = Stats::new(["GET /".to_string()]);
    // 200 s at 50 requests a second, latencies 1-50 ms.
    for t in 0..200u64 {
        for i in 0..50 {
            let s = sample(t * 1000 + i * 20, 0, 1 + i, OK);
            stats.record(&s);
            unpacked.record(&s);
        }
    }
    let packed = stats
        .timeline
        .iter()
        .filter(|b| b.latency.is_packed())
        .count();
    // All but the newest OPEN_BUCKETS seconds (and the one being filled).
    assert_eq!(packed, 200 - OPEN_BUCKETS - 1);
    for (b, _) in stats.timeline.iter().zip(0..) {
        let h = b.latency.hist();
        assert_eq!(h.count(), 50);
        // Two significant digits: within 1%.
        assert!((49.5..50.5).contains(&h.quantile_ms(0.99)));
    }
    // A late response for second 3 lands there, and is packed again on
    // the next sweep.
    stats.record(&sample(3_500, 0, 400, OK));
    assert!(!stats.timeline[3].latency.is_packed());
    assert_eq!(stats.timeline[3].latency.count(), 51);
    stats.record(&sample(200_000, 0, 1, OK));
    assert!(stats.timeline[3].latency.is_packed());
    assert!((396.0..404.0).contains(&stats.timeline[3].latency.hist().summary().max));
    // Packed or not, the numbers and the file are the same.
    unpacked.record(&sample(3_500, 0, 400, OK));
    unpacked.record(&sample(200_000, 0, 1, OK));
    assert_eq!(stats, unpacked);
    assert_eq!(
        serde_json::to_string(&stats).unwrap(),
        serde_json::to_string(&unpacked).unwrap()
    );
}

#[test]
fn a_long_timeline_coarsens_to_a_bounded_number_of_buckets() {
    let mut stats = Stats::new(["GET /".to_string()]).with_retries();
    // One request every 10 s for 5 hours, 5 ms each.
    let hours = 5;
    for t in (0..hours * 3600).step_by(10) {
        let s = sample(t * 1000, 0, 5, OK);
        stats.record(&s);
        if let Some(r) = stats.retries.as_mut() {
            r.record(s.due, 1, true);
        }
    }
    // 1 s for an hour, 2 s for two, 4 s for four, 8 s beyond.
    assert_eq!(stats.bucket_s, 8);
    assert!(stats.timeline.len() <= MAX_BUCKETS);
    // The last request is due at 17,990 s, in bucket 2248.
    assert_eq!(stats.timeline.len(), 2249);
    // Nothing is lost: the buckets add up to the totals, the rows too.
    let in_buckets: u64 = stats.timeline.iter().map(|b| b.counts.requests).sum();
    assert_eq!(in_buckets, stats.counts.requests);
    assert_eq!(in_buckets, hours * 360);
    let rows: u64 = stats.endpoints[0].seconds.iter().map(|r| r[0]).sum();
    assert_eq!(rows, in_buckets);
    let retries = stats.retries.as_ref().unwrap();
    assert_eq!(retries.seconds.len(), stats.timeline.len());
    assert_eq!(
        retries.seconds.iter().map(|r| r[0]).sum::<u64>(),
        in_buckets
    );
    // The last bucket holds the requests due in its 8 s.
    let last = stats.timeline.last().unwrap();
    assert!(matches!(last.counts.requests, 0..=1));
    let latencies: u64 = stats.timeline.iter().map(|b| b.latency.count()).sum();
    assert_eq!(latencies, in_buckets);
}

#[test]
fn timelines_of_different_bucket_lengths_merge_at_the_coarser() {
    let mut long = Stats::new(["GET /".to_string()]);
    let mut short = Stats::new(["GET /".to_string()]);
    for t in 0..5000u64 {
        long.record(&sample(t * 1000, 0, 2, OK));
    }
    for t in 0..100u64 {
        short.record(&sample(t * 1000, 0, 7, OK));
    }
    assert_eq!((long.bucket_s, short.bucket_s), (2, 1));
    let mut a = short.clone();
    a.merge(&long);
    let mut b = long.clone();
    b.merge(&short);
    for m in [&a, &b] {
        assert_eq!(m.bucket_s, 2);
        assert_eq!(m.timeline.len(), 2500);
        // Seconds 0-1 hold two requests from each run.
        assert_eq!(m.timeline[0].counts.requests, 4);
        assert_eq!(m.timeline[60].counts.requests, 2);
        assert_eq!(m.counts.requests, 5100);
    }
    assert_eq!(a.timeline, b.timeline);
}

#[test]
fn a_resent_request_counts_once_and_its_resends_and_connections_apart() {
    let mut a = Stats::new(["GET /".to_string()]);
    // Due at 1.5 s; its reused connection closed before the response, it
    // went again on a new connection and got a 200.
    a.record(&Sample {
        client: ClientWork {
            resent: 1,
            opened: 1,
            // Its new TLS connection resumed the user's session.
            resumed: 1,
            closed_idle: 0,
        },
        ..sample(1500, 0, 4, OK)
    });
    // Due at 1.7 s; its connection was found closed while idle and replaced.
    a.record(&Sample {
        client: ClientWork {
            resent: 0,
            opened: 1,
            resumed: 0,
            closed_idle: 1,
        },
        ..sample(1700, 0, 2, OK)
    });
    let c = a.counts;
    assert_eq!((c.requests, c.ok, c.failed()), (2, 2, 0));
    assert_eq!((c.resent, c.conns_opened, c.conns_closed_idle), (1, 2, 1));
    assert_eq!(c.tls_resumed, 1);
    assert_eq!(a.endpoints[0].counts.resent, 1);
    assert_eq!(a.timeline[1].counts.resent, 1);
    assert_eq!(a.timeline[0].counts.resent, 0);
    // Merging adds them; a file without them reads as zero.
    let mut b = Stats::new(["GET /".to_string()]);
    b.merge(&a);
    b.merge(&a);
    assert_eq!((b.counts.resent, b.counts.conns_closed_idle), (2, 2));
    assert_eq!(b.counts.tls_resumed, 2);
    let old: Counts =
        serde_json::from_str(r#"{"requests": 1, "ok": 1, "errors": {}, "check_failures": 0}"#)
            .unwrap();
    assert_eq!((old.resent, old.conns_opened, old.tls_resumed), (0, 0, 0));
}

#[test]
fn live_connections_count_each_attempt_and_their_open_sockets_over_time() {
    let mut a = Stats::new(["pair".to_string()]);
    // Opened at 0.5 s, closed by throng at 2.5 s.
    a.record_live_open(0, "ws", ms(4), ms(500));
    a.record_live(
        0,
        "ws",
        &LiveSession {
            opened: true,
            closed_at: Some(ms(2500)),
            sent: 3,
            bytes_sent: 30,
            received: 5,
            bytes_received: 50,
            dropped: 1,
            ..Default::default()
        },
    );
    // Opened at 1.2 s, dropped by the server at 1.7 s.
    a.record_live_open(0, "ws", ms(6), ms(1200));
    a.record_live(
        0,
        "ws",
        &LiveSession {
            opened: true,
            closed_at: Some(ms(1700)),
            server_close: Some(CLOSED_ABNORMALLY),
            ..Default::default()
        },
    );
    // Never upgraded: a 503, then a refused connection.
    for s in [
        LiveSession {
            upgrade_failed: Some(503),
            ..Default::default()
        },
        LiveSession {
            refused: true,
            ..Default::default()
        },
    ] {
        a.record_live(0, "ws", &s);
    }
    a.record_live_time(0, "ws", LiveTime::RoundTrip, ms(7));
    let live = a.endpoints[0].live.as_deref().expect("live numbers");
    assert_eq!(
        (live.attempted, live.opened, live.refused, live.not_opened()),
        (4, 2, 1, 2)
    );
    assert_eq!(live.upgrade_failed.get(&503), Some(&1));
    assert_eq!(live.closed_by_server.get(&1006), Some(&1));
    assert_eq!(live.closed_by_client, 1);
    // Buckets of the second it happened: [opened, closed].
    assert_eq!(live.seconds, vec![[1, 0], [1, 1], [0, 1]]);
    assert_eq!(live.open_over_time(), vec![1, 1, 0]);
    assert_eq!(live.peak_open(), 1);
    assert_eq!((live.sent, live.received, live.dropped), (3, 5, 1));
    assert_eq!(live.upgrade.count(), 2);
    assert_eq!(live.round_trip.count(), 1);

    // Merging adds everything; coarsening pairs the rows.
    let mut b = a.clone();
    b.merge(&a);
    let live = b.endpoints[0].live.as_deref().expect("live numbers");
    assert_eq!((live.attempted, live.opened), (8, 4));
    assert_eq!(live.seconds, vec![[2, 0], [2, 2], [0, 2]]);
    b.coarsen();
    let live = b.endpoints[0].live.as_deref().expect("live numbers");
    assert_eq!(live.seconds, vec![[4, 2], [0, 2]]);
    assert_eq!(live.peak_open(), 2);
}

#[test]
fn a_replays_status_comparison_counts_each_request_once_and_merges() {
    // `compared` counts every request compared; `differ` only those whose
    // status was not the recorded one, by (recorded, replayed) pair.
    let mut a = Stats::new(["GET /".to_string()]);
    let mut b = Stats::new(["GET /".to_string()]);
    for (recorded, replayed) in [(200, 200), (200, 500), (200, 500), (302, 0)] {
        a.record_replayed(0, recorded, replayed);
    }
    b.record_replayed(0, 200, 500);
    b.record_replayed(0, 404, 200);
    a.merge(&b);
    let d = a.endpoints[0].replay.clone().unwrap();
    assert_eq!(d.compared, 6);
    assert_eq!(d.differ, vec![(200, 500, 3), (302, 0, 1), (404, 200, 1)]);
    assert_eq!(d.differing(), 5);
    assert_eq!((d.size_differ, d.size_example), (0, None));
    a.record_replayed_size(0, 12_000, 0);
    b.record_replayed_size(0, 900, 2_000);
    a.merge(&b);
    let d = a.endpoints[0].replay.clone().unwrap();
    assert_eq!((d.size_differ, d.size_example), (2, Some((12_000, 0))));
    // Not a replay of a recording: nothing at all.
    assert_eq!(Stats::new(["GET /".to_string()]).endpoints[0].replay, None);
}

#[test]
fn a_histogram_whose_header_asks_for_gigabytes_is_refused_before_any_is_allocated() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut h = Hist::new();
    h.record(Duration::from_millis(3));
    // Written deflated, as results files hold them; read back whole.
    let text = h.to_base64();
    assert_eq!(Hist::from_base64(&text).unwrap().summary(), h.summary());
    // The plain V2 inside, with its payload length made 2.95 GB (as a
    // fuzzer found: the decoder allocated and zeroed it, 6.6 s a file).
    let deflated = b64.decode(&text).unwrap();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::ZlibDecoder::new(&deflated[8..]),
        &mut plain,
    )
    .unwrap();
    let good = Hist::from_bytes(&plain).unwrap();
    assert_eq!(good.summary(), h.summary());
    plain[4..8].copy_from_slice(&0xb000_0018u32.to_be_bytes());
    let err = Hist::from_bytes(&plain).unwrap_err().to_string();
    assert!(err.contains("a payload of 2952790040 bytes"), "{err}");
    // The same, deflated again.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &plain).unwrap();
    let mut again = deflated[..8].to_vec();
    again.extend(z.finish().unwrap());
    let err = Hist::from_base64(&b64.encode(&again))
        .unwrap_err()
        .to_string();
    assert!(err.contains("a payload of 2952790040 bytes"), "{err}");
    // Five significant digits: refused too.
    let payload = (plain.len() - 40) as u32;
    plain[4..8].copy_from_slice(&payload.to_be_bytes());
    plain[12..16].copy_from_slice(&5u32.to_be_bytes());
    let err = Hist::from_bytes(&plain).unwrap_err().to_string();
    assert!(err.contains("5 significant digits"), "{err}");
}
