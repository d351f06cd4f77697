//! Unit tests: the results file and the summary text.

use std::collections::BTreeMap;
use std::time::Duration;

use analysis::Threshold;
use expect_test::expect;
use stats::{ErrorKind, Outcome, Phases, Sample, Stats};

use crate::html;
use crate::*;

fn sample_stats() -> Stats {
    let mut s = Stats::new(["GET /".to_string()]);
    for i in 0..1000u64 {
        let outcome = match i % 100 {
            0 => Outcome::Response { status: 503 },
            1 => Outcome::Failed(ErrorKind::Reset),
            _ => Outcome::Response { status: 200 },
        };
        s.record(&Sample {
            endpoint: 0,
            due: Duration::from_millis(i * 10),
            lag: Duration::from_micros(i % 7 * 10),
            service: Duration::from_micros(1000 + (i % 50) * 100),
            phases: Phases {
                connect: (i < 4).then_some(Duration::from_micros(150)),
                tls: None,
                resumed: false,
                ttfb: Some(Duration::from_micros(900)),
            },
            outcome,
            checks_failed: false,
            client: Default::default(),
        });
    }
    s.record_dropped(0, Duration::from_millis(9_999));
    s
}

fn sample_results() -> Results {
    results_of(sample_stats())
}

/// The sample run's results, with these statistics.
fn results_of(stats: Stats) -> Results {
    let duration = Duration::from_secs(10);
    let thresholds: Vec<_> = ["p99<10ms", "errors<1%"]
        .iter()
        .map(|e| Threshold::parse(e).unwrap().evaluate(&stats, duration))
        .collect();
    let info = RunInfo {
        command: "throng run --url http://127.0.0.1:8080/ --rate 100 --duration 10s".into(),
        target: "http://127.0.0.1:8080/".into(),
        model: "open".into(),
        load: LoadInfo {
            rate: Some(100.0),
            vus: None,
            stages: vec![],
            duration_s: Some(10.0),
            max_requests: None,
            arrivals: Some("uniform".into()),
            max_in_flight: Some(1000),
            think_ms: None,
            timeout_ms: 30_000.0,
            workers: 2,
            resend: Some("safe".into()),
            ..LoadInfo::default()
        },
        started_at: "2026-11-24T09:00:00Z".into(),
        duration,
        status: Status::Completed,
        stop_reason: None,
        first_errors: BTreeMap::from([(
            "reset".to_string(),
            "connection reset by peer".to_string(),
        )]),
        recovery: None,
        segment: None,
        coverage: None,
        server: None,
    };
    Results::new(info, stats, &thresholds)
}

#[test]
fn totals_pin_their_meaning() {
    let r = sample_results();
    let t = r.totals;
    // 1000 sent: 10 answered 503, 10 reset, 980 ok; one arrival dropped.
    assert_eq!((t.requests, t.ok, t.errors, t.dropped), (1000, 980, 20, 1));
    assert_eq!(t.error_rate, 0.02);
    // rate = requests sent / seconds of load.
    assert_eq!(t.rate, 100.0);
    assert!(
        r.generator.saturated,
        "a dropped arrival means the generator fell short"
    );
    assert_eq!(r.timeline.len(), 10);
    assert_eq!(r.timeline[0].requests, 100);
    // Second 0 holds requests 0..99: service 1.0..5.9 ms plus a little lag.
    let row = &r.timeline[0];
    assert!((5.8..=6.1).contains(&row.p99_ms), "{}", row.p99_ms);
    assert!((3.4..=3.7).contains(&row.p50_ms), "{}", row.p50_ms);
    assert_eq!(r.timeline[9].dropped, 1);
}

#[test]
fn results_round_trip_and_keep_the_schema() {
    let r = sample_results();
    let text = r.to_json();
    assert!(text.contains("\"schema\": \"throng.results/v1\""));
    let back = Results::from_json(&text).unwrap();
    assert_eq!(back, r);
}

#[test]
fn results_from_other_schemas_are_refused_clearly() {
    let err = |t: &str| Results::from_json(t).unwrap_err().to_string();
    expect![[r#"written with schema "throng.results/v2"; this throng reads "throng.results/v1" (use the throng version that wrote it)"#]]
        .assert_eq(&err(r#"{"schema":"throng.results/v2"}"#));
    expect![[r#"not a throng results file (it has no "schema" field)"#]]
        .assert_eq(&err(r#"{"requests":1}"#));
    expect!["not a JSON file: expected value at line 1 column 1"].assert_eq(&err("requests: 1"));
    assert!(err(r#"{"schema":"throng.results/v1"}"#)
        .starts_with("malformed throng.results/v1 file: missing field"));
}

#[test]
fn summary_reads_well() {
    expect![[r#"
        throng open model -> http://127.0.0.1:8080/
          completed after 10.0s of load, 2 workers

          requests  1000 sent, 980 ok, 20 failed (2.00%), 1 dropped
          rate      100.0/s (planned 100.0/s)

                                            min     mean      p50      p90      p95      p99    p99.9      max
          latency (from intended send)   1.00ms   3.50ms   3.51ms   5.50ms   5.73ms   5.93ms   5.96ms   5.96ms
          service (from actual send)     1.00ms   3.47ms   3.50ms   5.50ms   5.70ms   5.90ms   5.90ms   5.90ms
          generator lag                  0.00ms   0.03ms   0.03ms   0.06ms   0.06ms   0.06ms   0.06ms   0.06ms
          connect                        0.15ms   0.15ms   0.15ms   0.15ms   0.15ms   0.15ms   0.15ms   0.15ms
          time to first byte             0.90ms   0.90ms   0.90ms   0.90ms   0.90ms   0.90ms   0.90ms   0.90ms

          errors
            reset                    10  e.g. connection reset by peer
            http_5xx                 10
            dropped                   1

          endpoint                        requests   failed      p50      p99  status
          GET /                               1000       20   3.51ms   5.93ms  200:980 503:10

          thresholds
            pass  p99<10ms                       actual 5.93ms
            FAIL  errors<1%                      actual 2.00%

          WARNING: the generator, not the target, may have been the limit:
            - 1 arrival(s) dropped because the in-flight limit was reached
            Latency is still measured from the intended send times, but the target was offered less load than planned.
            Try more --workers, a higher --max-in-flight, or more machines.
    "#]]
    .assert_eq(&summary(&sample_results()));
}

#[test]
fn drops_while_a_watched_process_was_cpu_bound_say_the_target_was_full() {
    let mut r = sample_results();
    let f = r
        .findings
        .iter_mut()
        .find(|f| f.kind == "generator_saturation")
        .unwrap();
    f.server = Some(analysis::ServerSide {
        text: "over the run: pid 7 (app) used 0.95 cores of the 1 it could: CPU-bound".into(),
        ceilings: vec![],
        in_step: vec![],
        processes: vec![analysis::ProcessState {
            process: "pid 7 (app)".into(),
            cores: 0.95,
            could_use: 1.0,
            machine_busy: None,
            cpus: None,
            throng: None,
            cpu_bound: true,
        }],
    });
    let text = summary(&r);
    let warning = &text[text.find("WARNING").unwrap()..];
    expect![[r#"
        WARNING: the target was at its limit, and was offered less load than planned:
            - 1 arrival(s) dropped because the in-flight limit was reached
            - server: over the run: pid 7 (app) used 0.95 cores of the 1 it could: CPU-bound
            Sessions held their senders longer while the target was busy, so the in-flight limit filled.
            A higher --max-in-flight would queue more at the target rather than get more served; `throng capacity` finds the rate it sustains.
    "#]]
    .assert_eq(warning);
    assert!(html::html(&r).contains("The target was at its limit"));
    // The process waiting, not computing: the generator's warning.
    let f = r
        .findings
        .iter_mut()
        .find(|f| f.kind == "generator_saturation")
        .unwrap();
    f.server.as_mut().unwrap().processes[0].cpu_bound = false;
    assert!(summary(&r).contains("WARNING: the generator, not the target, may have been the limit"));
}

#[test]
fn retry_numbers_pin_their_meaning() {
    // The sample run's 1,000 requests, as if clients had retried: every
    // tenth took 3 attempts (2 retries after 5xx), the budget refused 4
    // more, and 900 succeeded within their deadline.
    let mut stats = sample_stats().with_retries();
    let r = stats.retries.as_mut().unwrap();
    for i in 0..1000usize {
        let attempts = if i % 10 == 0 { 3 } else { 1 };
        let due = Duration::from_secs((i / 100) as u64);
        if attempts == 3 {
            r.record_retry(due, stats::RetryCause::Http5xx);
            r.record_retry(due, stats::RetryCause::Http5xx);
        }
        r.record(due, attempts, i % 10 != 0);
    }
    for _ in 0..4 {
        r.record_budget_refused();
    }
    let base = sample_results();
    let results = Results::new(
        RunInfo {
            command: base.command,
            target: base.target,
            model: base.model,
            load: base.load,
            started_at: base.started_at,
            duration: Duration::from_secs(10),
            status: Status::Completed,
            stop_reason: None,
            first_errors: BTreeMap::new(),
            recovery: None,
            segment: None,
            coverage: None,
            server: None,
        },
        stats,
        &[],
    );
    let rt = results.retries.clone().unwrap();
    // Requests are what users wanted; attempts are what the target got.
    assert_eq!((rt.requests, rt.attempts), (1000, 1200));
    assert_eq!(rt.requests, results.totals.requests);
    assert_eq!(rt.amplification, 1.2);
    assert_eq!((rt.retries.http_5xx, rt.retries.total()), (200, 200));
    assert_eq!(rt.budget_refused, 4);
    // Goodput: successes within the deadline, as a share and per second
    // of load.
    assert_eq!(
        (rt.goodput, rt.goodput_ratio, rt.goodput_rate),
        (900, 0.9, 90.0)
    );
    // Per second of due time.
    assert_eq!(
        (results.timeline[0].attempts, results.timeline[0].goodput),
        (Some(120), Some(90))
    );
    assert_eq!(results.timeline[0].retries.unwrap().http_5xx, 20);
    let text = summary(&results);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("retries") || l.contains("goodput"))
        .map(str::trim)
        .collect();
    expect![[r#"
        retries   1200 attempts for 1000 requests (x1.20): 200 after 5xx; the budget refused 4
        goodput   900 within their deadline (90.0%), 90.00/s"#]]
    .assert_eq(&lines.join("\n"));
    let back = Results::from_json(&results.to_json()).unwrap();
    assert_eq!(back, results);
    // Runs without retries keep the file as it was.
    assert!(!sample_results().to_json().contains("goodput"));
}

#[test]
fn the_html_report_is_self_contained_and_escapes_what_it_shows() {
    let mut r = sample_results();
    // Names and messages come from scenarios and targets: they must show,
    // not run.
    let row = r.endpoints.remove("GET /").unwrap();
    r.endpoints
        .insert("<script>alert(1)</script>".to_string(), row);
    r.error_examples
        .insert("reset".into(), "<img src=x onerror=alert(2)>".into());
    let page = html(&r);
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(!page.contains("<script"), "no script at all");
    assert!(!page.contains("<img"));
    // Nothing is fetched: no links, sources or external styles.
    for attr in ["src=\"", "href=", "@import", "url("] {
        assert!(!page.contains(attr), "{attr}");
    }
    // The verdict first, then findings, charts and tables.
    let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("no {needle}"));
    assert!(at("id=\"verdict\"") < at("id=\"findings\""));
    assert!(at("id=\"findings\"") < at("id=\"charts\""));
    assert!(at("id=\"charts\"") < at("id=\"endpoints\""));
    assert!(
        page.contains("Failed: errors&lt;1%"),
        "the failed threshold is named"
    );
    // Rate, in flight, latency, errors over time and the latency
    // spectrum, each with drawn lines.
    assert_eq!(page.matches("<svg").count(), 5);
    assert!(page.matches("<polyline").count() >= 8);
    assert!(!page.contains("points=\"\""), "no empty series");
}

#[test]
fn exports_for_other_systems_read_well() {
    let r = sample_results();
    let csv = timeline_csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 10, "a header and a row per second");
    expect!["t,offered,requests,errors,dropped,check_failures,p50_ms,p90_ms,p99_ms,connect_refused,connect_timeout,connect,reset,timeout,tls,protocol,http_4xx,http_5xx,check_failed,dropped,cancelled,body_too_large,blocked,too_many_redirects,resent,missing_value,upgrade_failed,ws_closed,message_timeout,ws_open,sessions"]
        .assert_eq(lines[0]);
    expect!["0,100,100,2,0,0,3.551,5.535,5.919,0,0,0,1,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0"]
        .assert_eq(lines[1]);
    expect![[r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="throng" tests="2" failures="1" time="10.000">
          <testsuite name="http://127.0.0.1:8080/" tests="2" failures="1" errors="0" time="10.000" timestamp="2026-11-24T09:00:00Z">
            <testcase classname="throng" name="threshold p99&lt;10ms" time="5.000"/>
            <testcase classname="throng" name="threshold errors&lt;1%" time="5.000">
              <failure message="actual 2.00%">actual 2.00%</failure>
            </testcase>
            <system-out>1000 requests, 20 failed, p99 5.93ms; command: throng run --url http://127.0.0.1:8080/ --rate 100 --duration 10s</system-out>
          </testsuite>
        </testsuites>
    "#]]
    .assert_eq(&junit(&r));
    expect![[r#"
        ### throng: failed

        1000 requests in 10.0s (100.0/s), 20 failed (2.00%), 1 dropped; latency p50 3.51ms, p99 5.93ms.

        | threshold | verdict | actual |
        |---|---|---|
        | `p99<10ms` | pass | 5.93ms |
        | `errors<1%` | **FAIL** | 2.00% |

        **Findings**

        - warning: the generator, not the target, was the limit: the numbers understate the target

        | endpoint | requests | failed | p50 | p99 |
        |---|---:|---:|---:|---:|
        | GET / | 1000 | 20 | 3.51ms | 5.93ms |
    "#]].assert_eq(&summary_markdown(&r));
}

#[test]
fn the_prometheus_exposition_pins_its_meaning() {
    // 100 responses: 90 ok at 3 ms, 10 answered 503 at 30 ms; 2 dropped.
    let mut all = stats::Interval::default();
    let mut rec = stats::Recorder::new(["GET /".to_string()]);
    for i in 0..100u64 {
        let (status, ms) = if i < 90 { (200, 3) } else { (503, 30) };
        rec.record(&Sample {
            endpoint: 0,
            due: Duration::from_millis(i),
            lag: Duration::ZERO,
            service: Duration::from_millis(ms),
            phases: Phases::default(),
            outcome: Outcome::Response { status },
            checks_failed: false,
            client: Default::default(),
        });
    }
    rec.record_dropped(0, Duration::ZERO);
    rec.record_dropped(0, Duration::ZERO);
    // Three WebSockets opened, one ended after 4 messages each way.
    for _ in 0..3 {
        rec.record_live_open(0, "ws", Duration::from_millis(2), Duration::ZERO);
    }
    rec.record_live(
        0,
        "ws",
        &stats::LiveSession {
            opened: true,
            closed_at: Some(Duration::from_secs(1)),
            sent: 4,
            received: 4,
            ..Default::default()
        },
    );
    all.merge(&rec.take_interval());
    let text = prometheus(&all, 7, None, 12.5);
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}"))
            .to_string()
    };
    assert_eq!(
        line("throng_requests_total{outcome=\"ok\"}"),
        "throng_requests_total{outcome=\"ok\"} 90"
    );
    assert_eq!(
        line("throng_requests_total{outcome=\"http_5xx\"}"),
        "throng_requests_total{outcome=\"http_5xx\"} 10"
    );
    assert_eq!(line("throng_dropped_total"), "throng_dropped_total 2");
    // Buckets are cumulative: 90 under 5 ms, all 100 under 50 ms.
    assert_eq!(
        line("throng_latency_seconds_bucket{le=\"0.0025\"}"),
        "throng_latency_seconds_bucket{le=\"0.0025\"} 0"
    );
    assert_eq!(
        line("throng_latency_seconds_bucket{le=\"0.005\"}"),
        "throng_latency_seconds_bucket{le=\"0.005\"} 90"
    );
    assert_eq!(
        line("throng_latency_seconds_bucket{le=\"0.05\"}"),
        "throng_latency_seconds_bucket{le=\"0.05\"} 100"
    );
    assert_eq!(
        line("throng_latency_seconds_count"),
        "throng_latency_seconds_count 100"
    );
    // Sum: 90 x 3 ms + 10 x 30 ms = 0.57 s (coarse histograms: within 1%).
    let sum: f64 = line("throng_latency_seconds_sum")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((sum - 0.57).abs() < 0.006, "{sum}");
    assert_eq!(line("throng_in_flight"), "throng_in_flight 7");
    assert_eq!(
        line("throng_websockets_opened_total"),
        "throng_websockets_opened_total 3"
    );
    assert_eq!(line("throng_websockets_open "), "throng_websockets_open 2");
    assert_eq!(
        line("throng_websocket_messages_total{direction=\"received\"}"),
        "throng_websocket_messages_total{direction=\"received\"} 4"
    );
    assert!(
        !text.contains("throng_virtual_users"),
        "no users in the open model"
    );
}

#[test]
fn the_live_dashboard_reads_well() {
    let line = ProgressView {
        elapsed_s: 12.2,
        total_s: Some(30.0),
        rate: 195.3,
        p50_ms: Some(12.34),
        p99_ms: Some(45.6),
        requests: 2400,
        errors: 12,
        dropped: 3,
        resent: 0,
        in_flight: 37,
        vus: None,
        sockets: 0,
        sessions_rate: 65.1,
    };
    let view = DashboardView {
        line,
        offered: Some(200.0),
        stage: Some((2, 3)),
        errors_by_kind: vec![("http_5xx", 10), ("timeout", 2)],
        check_failures: 4,
        server: vec![
            "pool_in_use 18/20".into(),
            "pid 7 (app) cpu 1.20 rss 210MiB".into(),
        ],
    };
    expect![[r#"
        elapsed   12s of 30s  [########------------]  stage 2 of 3
        rate      arrivals 200.0/s planned  sessions 65.10/s started  requests 195.3/s ended
        latency   p50 12.3ms  p99 45.6ms  (last second, from the intended send time)
        errors    12 of 2400 (0.50%): http_5xx 10, timeout 2; checks failed on 4
        now       in flight 37  dropped 3 (the in-flight limit)
        server    pool_in_use 18/20  pid 7 (app) cpu 1.20 rss 210MiB
    "#]]
    .assert_eq(&(dashboard(&view).join("\n") + "\n"));
}

#[test]
fn progress_line_reads_well() {
    let v = ProgressView {
        elapsed_s: 12.2,
        total_s: Some(30.0),
        rate: 499.94,
        p50_ms: Some(1.1),
        p99_ms: Some(4.5),
        requests: 6000,
        errors: 3,
        dropped: 0,
        resent: 0,
        in_flight: 3,
        vus: None,
        sockets: 0,
        sessions_rate: 499.94,
    };
    expect!["[ 12s/30s]    499.9/s  p50 1.10ms  p99 4.50ms  requests 6000  errors 3 (0.05%)  in-flight 3"]
        .assert_eq(&progress_line(&v));
    // A WebSocket run shows the sockets open now.
    let v = ProgressView {
        vus: Some(40),
        sockets: 38,
        ..v
    };
    expect!["[ 12s/30s]    499.9/s  p50 1.10ms  p99 4.50ms  requests 6000  errors 3 (0.05%)  users 40  sockets 38"]
        .assert_eq(&progress_line(&v));
}

#[test]
fn comparison_text_and_markdown_name_what_regressed() {
    let measure = |measure, base, cand, point, low, high, verdict| analysis::MeasureComparison {
        measure,
        base,
        cand,
        change: Some(analysis::RatioInterval { point, low, high }),
        verdict,
        note: None,
        noise: None,
    };
    use analysis::{Measure::*, Verdict::*};
    let comparison = analysis::Comparison {
        tolerance: 0.1,
        min_change_ms: 0.0,
        level: 1.0 - 0.05 / 8.0,
        resamples: 3200,
        paired: true,
        baseline_runs: 1,
        verdict: Regression,
        endpoints: vec![
            analysis::EndpointComparison {
                endpoint: "GET /".into(),
                base_requests: 1000,
                cand_requests: 990,
                verdict: Regression,
                measures: vec![
                    measure(P50, 2.0, 20.0, 10.0, 9.1, 11.0, Regression),
                    measure(P90, 3.0, 31.0, 10.3, 9.0, 11.5, Regression),
                    measure(P99, 5.0, 52.0, 10.4, 0.8, 15.0, NoChange),
                    measure(ErrorRate, 0.0, 0.001, 0.001, 0.0, 0.003, NoChange),
                ],
                note: None,
            },
            analysis::EndpointComparison {
                endpoint: "GET /health".into(),
                base_requests: 1000,
                cand_requests: 1010,
                verdict: NoChange,
                measures: vec![
                    measure(P50, 0.5, 0.5, 1.0, 0.9, 1.1, NoChange),
                    measure(P90, 0.6, 0.6, 1.0, 0.9, 1.1, NoChange),
                    measure(P99, 0.9, 1.0, 1.1, 0.8, 1.4, NoChange),
                    measure(ErrorRate, 0.0, 0.0, 0.0, 0.0, 0.0, NoChange),
                ],
                note: None,
            },
            analysis::EndpointComparison {
                endpoint: "GET /new".into(),
                base_requests: 0,
                cand_requests: 40,
                verdict: NoChange,
                measures: vec![],
                note: Some("only in the candidate".into()),
            },
        ],
    };
    let side = |name: &str, target: &str| Side {
        name: name.into(),
        target: target.into(),
        started_at: "2026-11-24T10:00:00Z".into(),
        requests: 2000,
        generator_late: None,
    };
    let r = CompareReport::new(
        side("base", "http://127.0.0.1:4001"),
        side("cand", "http://127.0.0.1:4002"),
        comparison,
    );
    assert!(r.regressed());
    expect![[r#"
        throng compare: cand (http://127.0.0.1:4002, 2000 requests) against base (http://127.0.0.1:4001, 2000 requests)
          tolerance 10%; each interval 99.38% so that all hold together with 95% confidence; 3200 resamples of paired time windows
          Trust: one interleaved A/B run; both arms saw the same machine, paired window by window, so noise they shared cancels; the intervals cover sampling.

          endpoint     p50                     p90                     p99                     errors                  verdict
          GET /        ×10.00 (9.10–11.00)     ×10.30 (9.00–11.50)     ×10.40 (0.80–15.00)     +0.10pt (0.00–0.30)     regression (p50, p90)
          GET /health  ×1.00 (0.90–1.10)       ×1.00 (0.90–1.10)       ×1.10 (0.80–1.40)       +0.00pt (0.00–0.00)     no change
          GET /new     only in the candidate

          GET /: regression (p50 2.00ms → 20.0ms, p90 3.00ms → 31.0ms)
          1 of 3 endpoints regressed beyond the tolerance
    "#]]
    .assert_eq(&r.to_text());
    expect![[r#"
        ### throng compare: **Regression**

        `cand` against `base` (tolerance 10%; each interval 99.38% so that all hold together with 95% confidence; 3200 resamples of paired time windows)

        Trust: one interleaved A/B run; both arms saw the same machine, paired window by window, so noise they shared cancels; the intervals cover sampling.

        | endpoint | p50 | p90 | p99 | errors | verdict |
        |---|---:|---:|---:|---:|---|
        | `GET /` | 2.00ms → 20.0ms<br>**×10.00 (9.10–11.00)** | 3.00ms → 31.0ms<br>**×10.30 (9.00–11.50)** | 5.00ms → 52.0ms<br>×10.40 (0.80–15.00) | 0.00% → 0.10%<br>+0.10pt (0.00–0.30) | regression (p50, p90) |
        | `GET /health` | 0.50ms → 0.50ms<br>×1.00 (0.90–1.10) | 0.60ms → 0.60ms<br>×1.00 (0.90–1.10) | 0.90ms → 1.00ms<br>×1.10 (0.80–1.40) | 0.00% → 0.00%<br>+0.00pt (0.00–0.00) | no change |
        | `GET /new` | | | | | only in the candidate |

        - GET /: regression (p50 2.00ms → 20.0ms, p90 3.00ms → 31.0ms)
        - 1 of 3 endpoints regressed beyond the tolerance
    "#]]
    .assert_eq(&r.to_markdown());
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["schema"], "throng.compare/v1");
    assert_eq!(json["verdict"], "regression");
    assert_eq!(json["endpoints"][0]["measures"][3]["measure"], "error_rate");
    let back: CompareReport = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(back, r);
    // The HTML page: the verdict, both sides, every endpoint, escaped.
    let page = r.to_html();
    assert!(page.contains("id=\"verdict\"") && page.contains(">Regression<"));
    assert!(page.contains("×10.00 (9.10–11.00)"));
    assert!(page.contains("only in the candidate"));
    assert_eq!(
        page.matches("<tr>").count(),
        1 + 2 + 1 + 3,
        "sides and endpoints"
    );
    assert!(!page.contains("<script"));
    expect![[r#"Trust: one interleaved A/B run; both arms saw the same machine, paired window by window, so noise they shared cancels; the intervals cover sampling."#]]
        .assert_eq(&r.trust());

    // Separate runs against three baselines: the base is their pool, and
    // the trust line names the noise the intervals include and the floor.
    let mut separate = r.comparison.clone();
    separate.paired = false;
    separate.baseline_runs = 3;
    separate.min_change_ms = 0.25;
    separate.endpoints[0].measures[1].noise = Some(1.12);
    separate.endpoints[1].measures[0].noise = Some(1.04);
    let bases = ["base-1.json", "base-2.json", "base-3.json"]
        .map(|n| side(n, "http://127.0.0.1:4001"))
        .to_vec();
    let r3 =
        CompareReport::with_baselines(bases, side("cand.json", "http://127.0.0.1:4002"), separate);
    assert_eq!(r3.base.name, "base-1.json, base-2.json, base-3.json");
    assert_eq!((r3.base.requests, r3.baselines.len()), (6000, 3));
    expect![[r#"Trust: separate runs, 3 baselines; the intervals include run-to-run noise up to ×1.12 (p90 of GET /, from the runs' halves and the baselines' spread) and ignore changes under 0.25ms; drift between runs beyond that is not covered: --ab is sharper."#]]
        .assert_eq(&r3.trust());
    assert!(r3.to_markdown().contains(&format!("\n{}\n", r3.trust())));
    // A run whose generator fell behind is named: its machine was busy.
    let mut busy = r3.clone();
    busy.cand.generator_late =
        Some("requests went out late: generator lag p99 was 3.48ms (over 1ms)".into());
    assert!(
        busy.trust().ends_with(" Beware: the generator itself fell behind in cand.json (requests went out late: generator lag p99 was 3.48ms (over 1ms)); the machine was busy then, and a change may be the machine's."),
        "{}",
        busy.trust()
    );
    assert!(r3.to_text().contains("tolerance 10% or 0.25ms;"));
    let back: CompareReport = serde_json::from_str(&r3.to_json()).unwrap();
    assert_eq!(back, r3);
}

#[test]
fn ab_arms_read_side_by_side() {
    let r = sample_results();
    expect![[r#"
        --
                    base                                    cand
          endpoint  requests  failed        p50        p99  requests  failed        p50        p99
          GET /         1000      20     3.51ms     5.93ms      1000      20     3.51ms     5.93ms
    "#]]
    // (A first line without indentation, so the snapshot keeps the table's.)
    .assert_eq(&format!(
        "--\n{}",
        side_by_side(&[("base", &r), ("cand", &r)])
    ));
}

/// A segment's results: `n` requests of `ms` each, one per 10 ms.
fn segment_results(index: usize, count: usize, n: u64, ms: u64, status: Status) -> Results {
    let mut stats = Stats::new(["GET /".to_string()]);
    for i in 0..n {
        stats.record(&Sample {
            endpoint: 0,
            due: Duration::from_millis(i * 10),
            lag: Duration::ZERO,
            service: Duration::from_millis(ms),
            phases: Phases::default(),
            outcome: Outcome::Response { status: 200 },
            checks_failed: false,
            client: Default::default(),
        });
    }
    let base = sample_results();
    let thresholds: Vec<_> = ["p50<50ms", "rate>15"]
        .iter()
        .map(|e| {
            Threshold::parse(e)
                .unwrap()
                .evaluate(&stats, Duration::from_secs(10))
        })
        .collect();
    Results::new(
        RunInfo {
            command: format!("throng run x.yaml --segment {index}/{count}"),
            target: base.target,
            model: base.model,
            load: base.load.share(count),
            started_at: base.started_at,
            duration: Duration::from_secs(if status == Status::Completed { 10 } else { 5 }),
            status,
            stop_reason: None,
            first_errors: BTreeMap::new(),
            recovery: None,
            segment: Some(SegmentInfo { index, count }),
            coverage: None,
            server: None,
        },
        stats,
        &thresholds,
    )
}

#[test]
fn merged_segments_have_exact_percentiles_and_judge_thresholds_on_the_whole() {
    // 900 fast requests on one machine, 100 slow ones on another. The
    // merged p50 is the union's (1 ms) and its p95 is 100 ms; an average
    // of the two segments' percentiles would say p50 50.5 ms.
    let files = vec![
        (
            "a.json".to_string(),
            segment_results(0, 2, 900, 1, Status::Completed),
        ),
        (
            "b.json".to_string(),
            segment_results(1, 2, 100, 100, Status::Completed),
        ),
    ];
    let m = merge(files, "throng merge a.json b.json".into()).unwrap();
    assert_eq!(m.totals.requests, 1000);
    assert!(
        (m.latency_ms.p50 - 1.0).abs() < 0.01,
        "{}",
        m.latency_ms.p50
    );
    assert!(
        (m.latency_ms.p95 - 100.0).abs() < 0.1,
        "{}",
        m.latency_ms.p95
    );
    // The rate is the whole run's: 1000 requests in 10 s.
    assert_eq!(m.totals.rate, 100.0);
    // Thresholds are judged again on the merged data: segment b alone
    // fails p50<50ms, and its rate (10/s) fails rate>15; the whole holds.
    let verdicts: Vec<_> = m
        .thresholds
        .iter()
        .map(|t| (t.expr.as_str(), t.ok))
        .collect();
    assert_eq!(verdicts, [("p50<50ms", true), ("rate>15", true)]);
    // The planned load is the whole again, and the file says it is complete.
    assert_eq!(m.load.rate, Some(100.0));
    assert_eq!(m.segment, None);
    let c = m.coverage.clone().unwrap();
    assert!(c.complete());
    expect!["2/2 segments; results cover the whole planned load"].assert_eq(&c.text);
    // Timelines add second by second.
    assert_eq!(m.timeline[0].requests, 100 + 100);
    assert_eq!(m.timeline[5].requests, 100);
    // And the file reads back.
    assert_eq!(Results::from_json(&m.to_json()).unwrap(), m);
}

#[test]
fn a_merge_says_which_segments_are_missing_or_stopped_early() {
    let files = vec![
        (
            "w0.json".to_string(),
            segment_results(0, 4, 100, 1, Status::Completed),
        ),
        (
            "w1.json".to_string(),
            segment_results(1, 4, 100, 1, Status::Completed),
        ),
        (
            "w3.json".to_string(),
            segment_results(3, 4, 100, 1, Status::Completed),
        ),
    ];
    let c = merge(files, String::new()).unwrap().coverage.unwrap();
    assert_eq!((c.segments, c.of, c.missing.clone()), (3, 4, vec![2]));
    assert!(!c.complete());
    expect!["3/4 segments; results cover 75.0% of the planned load (segment 2 missing)"]
        .assert_eq(&c.text);
    // A segment interrupted half way through its 10 s counts for half.
    let files = vec![
        (
            "w0.json".to_string(),
            segment_results(0, 2, 100, 1, Status::Completed),
        ),
        (
            "w1.json".to_string(),
            segment_results(1, 2, 50, 1, Status::Interrupted),
        ),
    ];
    let m = merge(files, String::new()).unwrap();
    assert_eq!(m.status, Status::Interrupted);
    expect!["2/2 segments; results cover 75.0% of the planned load (segment 1 stopped early)"]
        .assert_eq(&m.coverage.unwrap().text);
}

#[test]
fn files_that_are_not_segments_of_one_run_are_refused() {
    let seg = |i, n| segment_results(i, n, 10, 1, Status::Completed);
    let err = |files: Vec<(&str, Results)>| {
        let files = files.into_iter().map(|(n, r)| (n.to_string(), r)).collect();
        merge(files, String::new()).unwrap_err().to_string()
    };
    expect!["segment 1 is in both a.json and b.json: give each segment's file once"]
        .assert_eq(&err(vec![("a.json", seg(1, 2)), ("b.json", seg(1, 2))]));
    expect!["a.json is segment 0/2 and b.json is 1/3: they are not segments of one run"]
        .assert_eq(&err(vec![("a.json", seg(0, 2)), ("b.json", seg(1, 3))]));
    expect!["plain.json is not a segment's results (run each worker with --segment K/N)"]
        .assert_eq(&err(vec![("plain.json", sample_results())]));
    let mut other = seg(1, 2);
    other.target = "http://127.0.0.1:9/".into();
    expect![[r#"a.json and b.json ran different targets ("http://127.0.0.1:8080/" and "http://127.0.0.1:9/"): they are not segments of one run"#]]
        .assert_eq(&err(vec![("a.json", seg(0, 2)), ("b.json", other)]));
    expect!["no results files to merge"].assert_eq(&err(vec![]));
}

#[test]
fn a_coarsened_timeline_says_how_long_its_rows_are() {
    // As a run longer than an hour keeps it: 8-second rows.
    let mut stats = sample_stats();
    for _ in 0..3 {
        stats.coarsen();
    }
    let r = results_of(stats);
    assert_eq!(r.timeline_s, 8);
    let rows: Vec<(u64, u64, u64)> = r
        .timeline
        .iter()
        .map(|row| (row.t, row.requests, row.dropped))
        .collect();
    assert_eq!(rows, [(0, 800, 0), (8, 200, 1)]);
    let csv = timeline_csv(&r);
    let starts: Vec<&str> = csv.lines().skip(1).map(|l| &l[..2]).collect();
    assert_eq!(starts, ["0,", "8,"]);
    let back: Results = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!((back.timeline_s, back.raw.bucket_s), (8, 8));
    // A second-by-second file says nothing about it (1 is the default).
    let plain = serde_json::to_string(&sample_results()).unwrap();
    assert!(!plain.contains("timeline_s") && !plain.contains("bucket_s"));
}

#[test]
fn resent_requests_are_shown_wherever_requests_are_counted() {
    // 100 requests of GET /, 10 a second; every 10th went twice (its
    // reused connection closed before the response), and 5 connections
    // were found closed while idle.
    let mut stats = Stats::new(["GET /".to_string()]);
    let mut rec = stats::Recorder::new(["GET /".to_string()]);
    for i in 0..100u64 {
        let s = Sample {
            endpoint: 0,
            due: Duration::from_millis(i * 100),
            lag: Duration::ZERO,
            service: Duration::from_millis(2),
            phases: Phases::default(),
            outcome: Outcome::Response { status: 200 },
            checks_failed: false,
            client: stats::ClientWork {
                resent: u32::from(i % 10 == 0),
                opened: u32::from(i % 10 == 0 || i % 20 == 1),
                resumed: 0,
                closed_idle: u32::from(i % 20 == 1),
            },
        };
        stats.record(&s);
        rec.record(&s);
    }
    let r = results_of(stats);
    assert_eq!(r.totals.requests, 100);
    assert_eq!(r.totals.resent, 10);
    assert_eq!(r.totals.connections_opened, 15);
    assert_eq!(r.totals.connections_closed_idle, 5);
    assert_eq!(r.endpoints["GET /"].resent, 10);
    let per_second: Vec<u64> = r.timeline.iter().map(|row| row.resent).collect();
    assert_eq!(per_second, vec![1; 10]);
    let text = summary(&r);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("resent") || l.contains("connections"))
        .collect();
    expect![[r#"
        [
            "  resent    10 sent again on a new connection: a reused one closed before any byte of the response (--resend safe; the target saw up to 110 requests)",
            "  connections 15 opened, 5 found closed by the target while idle and replaced (nothing was sent on them)",
        ]
    "#]]
    .assert_debug_eq(&lines);
    let csv = timeline_csv(&r);
    // `resent`, then the columns added after it.
    assert!(
        csv.lines().next().unwrap().ends_with(
            ",resent,missing_value,upgrade_failed,ws_closed,message_timeout,ws_open,sessions"
        ),
        "{csv}"
    );
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",1,0,0,0,0,0,0"),
        "{csv}"
    );
    let page = html::html(&r);
    assert!(
        page.contains("Connections: 15 opened; 5 found closed"),
        "html"
    );
    assert!(page.contains("Re-sent: 10 requests"), "html");
    let mut all = stats::Interval::default();
    all.merge(&rec.take_interval());
    let metrics = prometheus(&all, 0, None, 10.0);
    for line in [
        "throng_resent_total 10",
        "throng_connections_opened_total 15",
        "throng_connections_closed_idle_total 5",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// The sample run with a pool scraped at 100 requests/s: in use 2, then
/// at its size 4 from second 5; and a process at 0.5 cores.
fn results_with_server() -> Results {
    let mut rec = observe::Recorder::new(100);
    let scrape = rec.source(
        observe::SourceKind::Scrape,
        "http://127.0.0.1:9/metrics".into(),
    );
    let pid = rec.source(observe::SourceKind::Process, "pid 7 (app)".into());
    for k in 0..12u32 {
        let t = f64::from(k) + 0.5;
        let in_use = if k < 5 { 2 } else { 4 };
        let text = format!(
            "# TYPE pool_in_use gauge\npool_in_use{{db=\"a,b\"}} {in_use}\n# TYPE pool_size gauge\npool_size{{db=\"a,b\"}} 4\n"
        );
        rec.scraped(scrape, t, &text, |_| true);
        let ticks = u64::from(k) * 50;
        let reading = observe::process::Reading {
            user_ticks: ticks,
            rss_bytes: 64 << 20,
            threads: 4,
            ..Default::default()
        };
        rec.process(pid, t, reading, 100.0);
    }
    rec.failed(scrape, "timeout", || "no whole answer within 1s".into());
    let stats = sample_stats();
    let mut r = results_of(stats.clone());
    let mut info = RunInfo {
        server: Some(rec.finish(stats.timeline.len(), stats.bucket_s)),
        ..info_of(&r)
    };
    info.duration = Duration::from_secs(10);
    r = Results::judged(info, stats, &[]);
    r
}

/// A results file's `RunInfo` again (for building one with changes).
fn info_of(r: &Results) -> RunInfo {
    RunInfo {
        command: r.command.clone(),
        target: r.target.clone(),
        model: r.model.clone(),
        load: r.load.clone(),
        started_at: r.started_at.clone(),
        duration: Duration::from_secs_f64(r.duration_s),
        status: r.status,
        stop_reason: None,
        first_errors: r.error_examples.clone(),
        recovery: None,
        segment: None,
        coverage: None,
        server: None,
    }
}

#[test]
fn the_server_side_is_in_every_output_aligned_with_the_timeline() {
    let r = results_with_server();
    let server = r.server.as_ref().unwrap();
    // One value per timeline row; readings past it left out.
    for s in &server.series {
        assert_eq!(s.values.len(), r.timeline.len(), "{}", s.name);
    }
    let in_use = server.get("pool_in_use{db=\"a,b\"}").unwrap();
    assert_eq!(in_use.values[4], Some(2.0));
    assert_eq!(in_use.values[5], Some(4.0));
    // The file reads back the same.
    let back = Results::from_json(&r.to_json()).unwrap();
    assert_eq!(back.server, r.server);
    // The summary: each source, its failures, a process's figures.
    let text = summary(&r);
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("  server"))
        .take(4)
        .collect();
    expect![[r#"
        [
            "  server (read beside the load)",
            "    http://127.0.0.1:9/metrics             12 readings, 2 series; failed: timeout 1 (no whole answer within 1s)",
            "    pid 7 (app)                            12 readings, 6 series",
            "                                           mean cpu 0.50 cores (user 0.50, system 0.00), rss peak 64.0 MiB, threads peak 4",
        ]
    "#]]
    .assert_debug_eq(&lines);
    // The CSV: a column per series, quoted where the name needs it.
    let csv = timeline_csv(&r);
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with(",sessions,\"pool_in_use{db=\"\"a,b\"\"}\",\"pool_size{db=\"\"a,b\"\"}\",process_rss_bytes,process_threads,process_cpu_user_cores,process_cpu_system_cores,process_voluntary_switches,process_involuntary_switches"),
        "{header}"
    );
    let row0: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let row5: Vec<&str> = csv.lines().nth(6).unwrap().split(',').collect();
    let width = header.matches(',').count() - 2; // the quoted names' commas
    assert_eq!(row0.len(), width + 1);
    // pool_in_use, pool_size; the first CPU rate comes with the second reading.
    assert_eq!(
        &row0[row0.len() - 8..row0.len() - 4],
        ["2", "4", "67108864", "4"]
    );
    assert_eq!(row0[row0.len() - 4], "");
    assert_eq!(&row5[row5.len() - 8..row5.len() - 6], ["4", "4"]);
    // The page charts the pool against its size and the process's CPU,
    // and lists every series.
    let page = html::html(&r);
    for part in [
        "Server: pool_in_use{db=&quot;a,b&quot;} against its limit",
        "Server: CPU used (user and system)",
        "Server: resident memory",
        "id=\"server-series\"",
        "no whole answer within 1s",
    ] {
        assert!(page.contains(part), "{part}");
    }
}
