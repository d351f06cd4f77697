//! What each series' values mean: where a reading lands, how a counter
//! becomes a rate and a histogram quantiles, and the bounds.

use super::*;

fn values(server: &Server, name: &str) -> Vec<Option<f64>> {
    server
        .get(name)
        .unwrap_or_else(|| panic!("no series {name}: {:?}", names(server)))
        .values
        .clone()
}

fn names(server: &Server) -> Vec<&str> {
    server.series.iter().map(|s| s.name.as_str()).collect()
}

fn all(_: &str) -> bool {
    true
}

#[test]
fn a_gauge_lands_in_its_second_and_a_rate_between_two_readings() {
    let mut r = Recorder::new(100);
    let s = r.source(SourceKind::Scrape, "http://127.0.0.1:1/metrics".into());
    let text = |inuse: u32, total: u32| {
        format!(
            "# TYPE pool_in_use gauge\npool_in_use {inuse}\n# TYPE hits counter\nhits_total{{route=\"a\"}} {total}\n"
        )
    };
    // Readings at the middle of seconds 0..=3; the counter restarts
    // (falls to 5) before the last.
    r.scraped(s, 0.5, &text(1, 100), all);
    r.scraped(s, 1.5, &text(3, 150), all);
    r.scraped(s, 2.5, &text(2, 250), all);
    r.scraped(s, 3.5, &text(4, 5), all);
    let server = r.finish(5, 1);
    assert_eq!(
        values(&server, "pool_in_use"),
        [Some(1.0), Some(3.0), Some(2.0), Some(4.0), None]
    );
    // (0.5, 1.5] is bucket 1: 50 a second; a restart's value is its increase.
    assert_eq!(
        values(&server, "hits_total{route=\"a\"}"),
        [None, Some(50.0), Some(100.0), Some(5.0), None]
    );
    assert_eq!(
        server.get("pool_in_use").map(|s| s.kind),
        Some(SeriesKind::Gauge)
    );
    assert_eq!(server.sources[s].readings, 4);
}

#[test]
fn two_readings_in_one_bucket_keep_a_gauges_peak_and_a_rates_mean() {
    let mut r = Recorder::new(100);
    let s = r.source(SourceKind::Scrape, "u".into());
    for (t, g, c) in [(0.25, 5, 0), (0.75, 9, 10), (1.25, 2, 40)] {
        let text = format!("# TYPE g gauge\ng {g}\n# TYPE c counter\nc_total {c}\n");
        r.scraped(s, t, &text, all);
    }
    let server = r.finish(2, 1);
    assert_eq!(values(&server, "g"), [Some(9.0), Some(2.0)]);
    // 20/s over (0.25, 0.75] (middle 0.5) and 60/s over (0.75, 1.25]
    // (middle 1.0): one rate in each bucket.
    assert_eq!(values(&server, "c_total"), [Some(20.0), Some(60.0)]);
}

#[test]
fn a_histogram_gives_the_quantiles_of_each_intervals_observations() {
    let mut r = Recorder::new(100);
    let s = r.source(SourceKind::Scrape, "u".into());
    let text = |a: u32, b: u32, inf: u32| {
        format!(
            "# TYPE wait_seconds histogram\n\
             wait_seconds_bucket{{pool=\"p\",le=\"0.1\"}} {a}\n\
             wait_seconds_bucket{{pool=\"p\",le=\"1\"}} {b}\n\
             wait_seconds_bucket{{pool=\"p\",le=\"+Inf\"}} {inf}\n\
             wait_seconds_sum{{pool=\"p\"}} 1\nwait_seconds_count{{pool=\"p\"}} {inf}\n"
        )
    };
    r.scraped(s, 0.5, &text(100, 100, 100), all);
    // Then 100 observations: 50 under 0.1 s, 50 between 0.1 and 1 s.
    r.scraped(s, 1.5, &text(150, 200, 200), all);
    // Then none.
    r.scraped(s, 2.5, &text(150, 200, 200), all);
    // Then 10, all past the last bound.
    r.scraped(s, 3.5, &text(150, 200, 210), all);
    let server = r.finish(4, 1);
    let p50 = values(&server, "wait_seconds{pool=\"p\"} p50");
    let p99 = values(&server, "wait_seconds{pool=\"p\"} p99");
    // p50: rank 50 is the top of the first bucket; p99: rank 99 is 49/50
    // of the way through (0.1, 1].
    assert_eq!(p50, [None, Some(0.1), None, Some(1.0)]);
    let p99_1 = p99[1].unwrap();
    assert!((p99_1 - (0.1 + 0.9 * 49.0 / 50.0)).abs() < 1e-9, "{p99_1}");
    assert_eq!(
        server
            .get("wait_seconds{pool=\"p\"} p90")
            .map(|s| s.quantile),
        Some(Some(0.9))
    );
    // `_sum` and `_count` are not series of their own.
    assert_eq!(names(&server).len(), 3, "{:?}", names(&server));
}

#[test]
fn quantiles_follow_prometheus_histogram_quantile() {
    let buckets = [(0.5, 10.0), (1.0, 30.0), (f64::INFINITY, 40.0)];
    assert_eq!(quantile(&buckets, 0.25), Some(0.5));
    assert_eq!(quantile(&buckets, 0.5), Some(0.75));
    assert_eq!(quantile(&buckets, 0.9), Some(1.0));
    assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
    assert_eq!(quantile(&[], 0.5), None);
}

#[test]
fn the_filter_and_the_bound_decide_what_is_kept() {
    let mut r = Recorder::new(2);
    let s = r.source(SourceKind::Scrape, "u".into());
    let text = "db_a 1\ndb_b 2\ndb_c 3\nqueue 4\nnan_gauge NaN\n";
    r.scraped(s, 0.5, text, |name| name.starts_with("db_"));
    let server = r.finish(1, 1);
    assert_eq!(names(&server), ["db_a", "db_b"]);
    assert_eq!(server.sources[s].series_dropped, 1);
    // A histogram is kept by its family's name: `wait` keeps `wait_bucket`.
    let mut r = Recorder::new(10);
    let s = r.source(SourceKind::Scrape, "u".into());
    for (t, n) in [(0.5, 1), (1.5, 3)] {
        let text = format!(
            "# TYPE wait histogram\nwait_bucket{{le=\"1\"}} {n}\nwait_bucket{{le=\"+Inf\"}} {n}\nwait_count {n}\nother 1\n"
        );
        r.scraped(s, t, &text, |name| name == "wait");
    }
    let server = r.finish(2, 1);
    assert_eq!(names(&server), ["wait p50", "wait p90", "wait p99"]);
}

#[test]
fn bad_lines_are_counted_and_the_first_kept() {
    let mut r = Recorder::new(10);
    let s = r.source(SourceKind::Scrape, "u".into());
    r.scraped(s, 0.5, "ok 1\nnot a sample\n{}\n", all);
    let server = r.finish(1, 1);
    assert_eq!(server.sources[s].bad_lines, 2);
    assert_eq!(
        server.sources[s].first_bad_line.as_deref(),
        Some("line 2: a sample's value is not a number")
    );
    assert_eq!(values(&server, "ok"), [Some(1.0)]);
}

#[test]
fn a_process_gives_cores_memory_and_switches() {
    let mut r = Recorder::new(20);
    let s = r.source(SourceKind::Process, "pid 7 (lab)".into());
    let reading = |user, system, vol| Reading {
        user_ticks: user,
        system_ticks: system,
        rss_bytes: 1 << 20,
        threads: 4,
        fds: Some(12),
        max_fds: Some(1024),
        voluntary_switches: vol,
        involuntary_switches: 0,
    };
    r.process(s, 0.5, reading(100, 10, 0), 100.0);
    // A second later: 150 ticks of user time (1.5 cores), 20 of system.
    r.process(s, 1.5, reading(250, 30, 500), 100.0);
    let server = r.finish(2, 1);
    assert_eq!(values(&server, "process_cpu_user_cores"), [None, Some(1.5)]);
    assert_eq!(
        values(&server, "process_cpu_system_cores"),
        [None, Some(0.2)]
    );
    assert_eq!(
        values(&server, "process_voluntary_switches"),
        [None, Some(500.0)]
    );
    assert_eq!(
        values(&server, "process_rss_bytes"),
        [Some(1048576.0), Some(1048576.0)]
    );
    assert_eq!(
        values(&server, "process_open_fds"),
        [Some(12.0), Some(12.0)]
    );
    let pairs = server.limit_pairs();
    assert_eq!(pairs.len(), 1);
    assert_eq!(server.series[pairs[0].1].name, "process_max_fds");
    // The live view: its CPU and memory (fds far from their limit).
    assert_eq!(r.headline(), ["pid 7 (lab) cpu 1.70 rss 1MiB"]);
}

#[test]
fn a_long_run_keeps_at_most_max_buckets_and_aligns_with_the_timeline() {
    let mut r = Recorder::new(10);
    let s = r.source(SourceKind::Scrape, "u".into());
    // Two hours and a bit, one reading a second: the gauge is the second.
    for k in 0..7300u32 {
        r.scraped(s, f64::from(k) + 0.5, &format!("g {k}\n"), all);
    }
    let cells = r.tracks[0].cells.len();
    assert!(cells <= MAX_BUCKETS, "{cells}");
    assert_eq!(r.bucket_s, 4);
    // The timeline doubled twice as well: 4-second buckets keep the peak.
    let server = r.finish(1825, 4);
    assert_eq!(values(&server, "g")[..2], [Some(3.0), Some(7.0)]);
    assert_eq!(values(&server, "g")[1824], Some(7299.0));
    // A timeline still in 2-second buckets sees each of ours twice.
    let server = r.finish(4, 2);
    assert_eq!(
        values(&server, "g"),
        [Some(3.0), Some(3.0), Some(7.0), Some(7.0)]
    );
    // Readings past the timeline are left out.
    assert_eq!(r.finish(1, 8).series[0].values, [Some(7.0)]);
}

#[test]
fn the_server_part_round_trips_through_json() {
    let mut r = Recorder::new(10);
    let s = r.source(SourceKind::Scrape, "u".into());
    r.scraped(s, 0.5, "# TYPE g gauge\ng{a=\"x\"} 1\n", all);
    r.failed(s, "timeout", || "no answer in 1s".into());
    let server = r.finish(2, 1);
    let json = serde_json::to_string(&server).unwrap();
    expect_test::expect![[r#"{"bucket_s":1,"sources":[{"kind":"scrape","target":"u","readings":1,"failed":{"timeout":1},"first_error":"no answer in 1s"}],"series":[{"name":"g{a=\"x\"}","metric":"g","labels":{"a":"x"},"kind":"gauge","source":0,"values":[1.0,null]}]}"#]]
    .assert_eq(&json);
    let back: Server = serde_json::from_str(&json).unwrap();
    assert_eq!(back, server);
}

#[test]
fn a_gauge_is_paired_with_the_limit_of_its_name() {
    let mut r = Recorder::new(100);
    let s = r.source(SourceKind::Scrape, "u".into());
    for (t, inuse, mark) in [(0.5, 3, 3), (1.5, 20, 20), (2.5, 20, 20)] {
        let text = format!(
            "# TYPE pool_in_use gauge\npool_in_use{{pool=\"a\"}} {inuse}\n\
             # TYPE pool_size gauge\npool_size{{pool=\"a\"}} 20\npool_size{{pool=\"b\"}} 5\n\
             # TYPE queue gauge\nqueue 7\n# TYPE queue_capacity gauge\nqueue_capacity 1024\n\
             # TYPE conns gauge\nconns {inuse}\n# TYPE conns_max gauge\nconns_max {mark}\n"
        );
        r.scraped(s, t, &text, all);
    }
    let server = r.finish(3, 1);
    // The live view names the fullest: the pool, not the queue.
    assert_eq!(r.headline(), ["pool_in_use{pool=\"a\"} 20/20"]);
    let pairs: Vec<(&str, &str)> = server
        .limit_pairs()
        .into_iter()
        .map(|(u, l)| {
            (
                server.series[u].name.as_str(),
                server.series[l].name.as_str(),
            )
        })
        .collect();
    // Labels must agree; a high-water mark that climbs is not a limit.
    assert_eq!(
        pairs,
        [
            ("pool_in_use{pool=\"a\"}", "pool_size{pool=\"a\"}"),
            ("queue", "queue_capacity"),
        ]
    );
}

#[test]
fn the_machine_gives_its_busy_cpus_and_throngs_own_share() {
    let mut r = Recorder::new(10);
    let s = r.source(SourceKind::Process, MACHINE.into());
    let m = |busy, own| Machine {
        busy_ticks: busy,
        cpus: 2,
        own_ticks: own,
    };
    r.machine(s, 0.5, m(1000, 100), 100.0);
    // A second later: 150 ticks busy (1.5 CPUs), 30 of them throng's.
    r.machine(s, 1.5, m(1150, 130), 100.0);
    // Then more ticks than two CPUs have in a second: at most 2.
    r.machine(s, 2.5, m(1400, 130), 100.0);
    let server = r.finish(3, 1);
    assert_eq!(values(&server, "machine_cpus"), [Some(2.0); 3]);
    assert_eq!(
        values(&server, "machine_cpu_busy_cores"),
        [None, Some(1.5), Some(2.0)]
    );
    assert_eq!(
        values(&server, "machine_throng_cores"),
        [None, Some(0.3), Some(0.0)]
    );
}
