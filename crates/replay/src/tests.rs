//! Unit tests: log formats, filters, sessions, speed and scale.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use expect_test::expect;

use crate::*;

const COMBINED: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;

#[test]
fn text_and_json_lines_parse() {
    let r = parse_line(&LogFormat::Combined, COMBINED).unwrap();
    assert_eq!(r.ip, "127.0.0.1");
    assert_eq!(r.method, http::Method::GET);
    assert_eq!(r.path, "/apache_pb.gif?x=1");
    assert_eq!(
        r.user_agent.as_deref(),
        Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
    );
    // 2000-10-10T20:55:36Z.
    assert_eq!(r.time_us, 971_211_336_000_000);
    assert!(!r.precise);

    let common =
        r#"10.0.0.2 - - [10/Oct/2000:13:55:37 +0000] "HEAD http://example.com/a/b HTTP/1.1" 200 0"#;
    let r = parse_line(&LogFormat::Common, common).unwrap();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("HEAD", "/a/b"));
    assert_eq!(r.user_agent, None);

    let fields = JsonFields::parse("time=ts, path=uri, session=sid").unwrap();
    let json = LogFormat::Json(fields);
    let r = parse_line(
        &json,
        r#"{"ts":"2026-11-24T09:00:00.250Z","uri":"/x","method":"POST","ip":"1.2.3.4","sid":"abc"}"#,
    )
    .unwrap();
    assert_eq!(r.time_us % 1_000_000, 250_000);
    assert!(r.precise);
    assert_eq!(
        (r.method.as_str(), r.session.as_deref()),
        ("POST", Some("abc"))
    );
    // Epoch milliseconds, and seconds with a fraction.
    let ms = parse_line(&json, r#"{"ts":1764000000123,"uri":"/"}"#).unwrap();
    assert_eq!(ms.time_us, 1_764_000_000_123_000);
    let s = parse_line(&json, r#"{"ts":1764000000.5,"uri":"/"}"#).unwrap();
    assert_eq!(s.time_us, 1_764_000_000_500_000);
}

#[test]
fn malformed_lines_say_what_is_wrong() {
    let e = |f: &LogFormat, line: &str| parse_line(f, line).unwrap_err();
    expect!["no [time] field"].assert_eq(&e(&LogFormat::Combined, "garbage"));
    expect![[r#"the time "yesterday" is not like 10/Oct/2000:13:55:36 -0700"#]].assert_eq(&e(
        &LogFormat::Combined,
        r#"1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "-""#,
    ));
    expect![[r#"no "referer" field (is it the common format?)"#]].assert_eq(&e(
        &LogFormat::Combined,
        r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1"#,
    ));
    expect![[r#"the request "-" is not METHOD PATH PROTOCOL"#]].assert_eq(&e(
        &LogFormat::Common,
        r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "-" 400 0"#,
    ));
    expect![[r#"no "time" field with the time"#]].assert_eq(&e(
        &LogFormat::Json(JsonFields::default()),
        r#"{"path":"/"}"#,
    ));
    expect![[r#"unknown key "url" (the keys are time, method, path, ip, user_agent, session)"#]]
        .assert_eq(&JsonFields::parse("url=u").unwrap_err());
}

/// A JSON log line: `ms` after a fixed start, from `client`.
fn line(ms: u64, method: &str, path: &str, client: &str) -> String {
    format!(
        r#"{{"time":{},"method":"{method}","path":"{path}","ip":"{client}","user_agent":"ua"}}"#,
        1_764_000_000_000u64 + ms
    )
}

fn expand(opts: Options, lines: &[String]) -> (Vec<plan::ReplayRequest>, Expander) {
    let mut ex = Expander::new(opts, HashMap::new());
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        ex.push(i as u64 + 1, l, &mut out);
    }
    ex.finish(&mut out);
    (out, ex)
}

fn json() -> Options {
    Options::new(LogFormat::Json(JsonFields::default()))
}

#[test]
fn requests_keep_their_times_and_order_and_speed_compresses_time() {
    let lines = vec![
        line(0, "GET", "/a", "c1"),
        line(250, "GET", "/funds/17", "c2"),
        line(1_000, "HEAD", "/funds/18?x=1", "c1"),
        line(4_000, "GET", "/a", "c1"),
    ];
    let (out, ex) = expand(json(), &lines);
    let dues: Vec<u128> = out.iter().map(|r| r.due.as_millis()).collect();
    assert_eq!(dues, [0, 250, 1_000, 4_000]);
    assert_eq!(out[2].path, "/funds/18?x=1");
    // Ids in paths report together.
    assert_eq!(
        ex.endpoints(),
        ["GET /a", "GET /funds/:id", "HEAD /funds/:id"]
    );
    assert_eq!(
        out.iter().map(|r| r.endpoint).collect::<Vec<_>>(),
        [0, 1, 2, 0]
    );
    let (out, _) = expand(
        Options {
            speed: 2.0,
            ..json()
        },
        &lines,
    );
    let dues: Vec<u128> = out.iter().map(|r| r.due.as_millis()).collect();
    assert_eq!(dues, [0, 125, 500, 2_000]);
}

#[test]
fn writes_need_permission_and_paths_can_be_chosen() {
    let lines = vec![
        line(0, "GET", "/a", "c"),
        line(1, "POST", "/login", "c"),
        line(2, "GET", "/static/x.css", "c"),
        line(3, "DELETE", "/a", "c"),
        "not json".to_string(),
        String::new(),
    ];
    let (out, ex) = expand(json(), &lines);
    assert_eq!(out.len(), 2);
    assert_eq!(ex.tally.writes_skipped, 2);
    assert_eq!(ex.tally.malformed, 1);
    assert_eq!(ex.tally.lines, 5, "blank lines are not lines of the log");
    assert_eq!(ex.tally.first_malformed[0].0, 5);
    let (out, ex) = expand(
        Options {
            allow_writes: true,
            exclude: vec![Regex::new("^/static/").unwrap()],
            ..json()
        },
        &lines,
    );
    assert_eq!(
        out.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["GET", "POST", "DELETE"]
    );
    assert_eq!(ex.tally.filtered_out, 1);
}

#[test]
fn whole_second_times_are_spread_across_their_second() {
    let text = |second: u32, path: &str| {
        format!(r#"1.2.3.4 - - [10/Oct/2000:13:55:{second:02} +0000] "GET {path} HTTP/1.1" 200 1"#)
    };
    let lines: Vec<String> = [(36, "/a"), (36, "/b"), (36, "/c"), (36, "/d"), (37, "/e")]
        .iter()
        .map(|&(s, p)| text(s, p))
        .collect();
    // The first pass counts each second's requests...
    let (_, first) = expand(Options::new(LogFormat::Common), &lines);
    let counts = first.second_counts().clone();
    // ...so the second spreads them: four in second 36, a quarter apart.
    let mut ex = Expander::new(Options::new(LogFormat::Common), counts);
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        ex.push(i as u64 + 1, l, &mut out);
    }
    ex.finish(&mut out);
    let dues: Vec<u128> = out.iter().map(|r| r.due.as_millis()).collect();
    assert_eq!(dues, [0, 250, 500, 750, 1_000]);
}

#[test]
fn scale_adds_whole_sessions_shifted_with_their_gaps_kept() {
    // Two clients; c1 has two sessions (a 40-minute silence splits them).
    let mut lines = Vec::new();
    for (ms, client) in [
        (0, "c1"),
        (2_000, "c2"),
        (3_000, "c1"),
        (3_500, "c2"),
        (2_400_000, "c1"),
        (2_405_000, "c1"),
    ] {
        lines.push(line(ms, "GET", &format!("/{client}/{ms}"), client));
    }
    let opts = Options {
        scale: 3,
        spread: Duration::from_secs(60),
        ..json()
    };
    let (out, ex) = expand(opts, &lines);
    assert_eq!(ex.tally.sessions, 3);
    assert_eq!((ex.tally.logged, ex.tally.requests), (6, 18));
    // Emitted in due order, whatever the shifts.
    assert!(out.windows(2).all(|w| w[0].due <= w[1].due));
    // Each copy of a session is a session of its own, with the gaps of
    // the original.
    let mut by_session: HashMap<u64, Vec<(String, Duration)>> = HashMap::new();
    for r in &out {
        by_session
            .entry(r.session)
            .or_default()
            .push((r.path.clone(), r.due));
    }
    assert_eq!(by_session.len(), 9);
    for requests in by_session.values() {
        let first = requests[0].1;
        for (path, due) in requests {
            let logged: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
            let first_logged: u64 = requests[0].0.rsplit('/').next().unwrap().parse().unwrap();
            assert_eq!(
                (*due - first).as_millis() as u64,
                logged - first_logged,
                "{requests:?}"
            );
        }
        assert!(
            first.as_millis() as u64
                - requests[0]
                    .0
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                < 60_000
        );
    }
}

#[test]
fn endpoint_names_collapse_ids() {
    assert_eq!(endpoint_path("/funds/17/pledges"), "/funds/:id/pledges");
    assert_eq!(
        endpoint_path("/u/3f2b9c1e-8d4a-4b6e-9f1a-2c3d4e5f6a7b"),
        "/u/:id"
    );
    assert_eq!(endpoint_path("/static/app.css"), "/static/app.css");
    assert_eq!(endpoint_path("/"), "/");
}

#[test]
fn scale_multiplies_the_rate_away_from_the_edges() {
    // 10 requests a second for 100 s from 50 clients; x3 with copies
    // shifted by up to 10 s (the length the binary picks by default: a
    // tenth of the log, at most 60 s).
    let lines: Vec<String> = (0..1000u64)
        .map(|i| line(i * 100, "GET", "/", &format!("c{}", i % 50)))
        .collect();
    let (out, _) = expand(
        Options {
            scale: 3,
            spread: Duration::from_secs(10),
            ..json()
        },
        &lines,
    );
    let in_window = |from: u64, to: u64| {
        out.iter()
            .filter(|r| (from..to).contains(&r.due.as_secs()))
            .count() as f64
    };
    // Past the first spread, every 10 s window holds about 3 x 100.
    for from in (10..100).step_by(10) {
        let n = in_window(from, from + 10);
        assert!((255.0..=345.0).contains(&n), "{from}s: {n}");
    }
    assert_eq!(out.len(), 3000);
}

#[test]
fn lines_out_of_time_order_come_out_in_order_within_the_window() {
    // As a server writes them: when each response ended. The first line
    // is not the earliest request; the zero is the earliest of the window.
    let lines = vec![
        line(1_200, "GET", "/slow", "c1"),
        line(300, "GET", "/a", "c2"),
        line(900, "GET", "/b", "c3"),
        line(2_000, "GET", "/c", "c2"),
        line(1_500, "GET", "/d", "c4"),
        line(9_000, "GET", "/e", "c5"),
        // 8.7 s older than the latest line, and older than /c and /d,
        // which have gone by then: beyond the 5 s window.
        line(300, "GET", "/late", "c6"),
        line(9_100, "GET", "/f", "c5"),
    ];
    let (out, ex) = expand(json(), &lines);
    let got: Vec<(u128, &str)> = out
        .iter()
        .map(|r| (r.due.as_millis(), r.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (0, "/a"),
            (600, "/b"),
            (900, "/slow"),
            (1_200, "/d"),
            (1_700, "/c"),
            // Sent at once, when the line was read: after /c.
            (1_700, "/late"),
            (8_700, "/e"),
            (8_800, "/f"),
        ]
    );
    assert_eq!(ex.tally.out_of_order, 1);
    assert_eq!((ex.tally.logged, ex.tally.requests), (8, 8));

    // A wider window takes the late line in its place.
    let (out, ex) = expand(
        Options {
            reorder: Duration::from_secs(10),
            ..json()
        },
        &lines,
    );
    let paths: Vec<&str> = out.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/a", "/late", "/b", "/slow", "/d", "/c", "/e", "/f"]
    );
    assert_eq!(ex.tally.out_of_order, 0);
}

mod recording {
    use crate::recording::{placeholder, placeholders, OpenError, Reader, SCHEMA};

    const HEAD: &str = r#"{"schema":"throng.recording/v1","started":"2026-12-03T10:00:00Z","upstream":"http://127.0.0.1:8080/","body_cap":65536,"masked_headers":["cookie"],"masked_fields":["pass"]}"#;

    fn exchange(at_us: u64, path: &str) -> String {
        format!(
            r#"{{"at_us":{at_us},"session":1,"client":"127.0.0.1","method":"GET","path":"{path}","version":"HTTP/1.1","headers":[["accept","*/*"]],"body_size":0,"status":200,"response_headers":[],"response_size":5,"ttfb_us":100,"duration_us":120}}"#
        )
    }

    fn read(text: &str) -> (Vec<String>, Reader<&[u8]>) {
        let mut reader = Reader::open(text.as_bytes()).expect("a recording");
        let paths = reader.by_ref().map(|e| e.path).collect();
        (paths, reader)
    }

    #[test]
    fn a_whole_recording_reads_to_its_end_line() {
        let text = format!(
            "{HEAD}\n{}\n{}\n{{\"end\":{{\"exchanges\":2,\"sessions\":1,\"masked\":0,\"placeholders\":0,\"bodies_cut\":0,\"not_recorded\":0,\"upstream_errors\":0}}}}\n",
            exchange(5, "/a"),
            exchange(3, "/b")
        );
        let (paths, reader) = read(&text);
        assert_eq!(paths, ["/a", "/b"]);
        assert_eq!(reader.end().map(|t| t.exchanges), Some(2));
        assert_eq!(reader.truncated(), None);
        assert_eq!(reader.damaged(), 0);
        assert_eq!(reader.head().upstream, "http://127.0.0.1:8080/");
    }

    #[test]
    fn a_killed_recorders_file_gives_every_whole_line_and_says_it_is_cut() {
        let cut = exchange(9, "/c");
        let text = format!("{HEAD}\n{}\n{}", exchange(1, "/a"), &cut[..cut.len() / 2]);
        let (paths, reader) = read(&text);
        assert_eq!(paths, ["/a"]);
        assert!(reader.truncated().is_some_and(|t| t.contains("line 3")));
        assert_eq!(reader.damaged(), 0);
        // Without a half line: only the end line is missing.
        let whole = format!("{HEAD}\n{}\n", exchange(1, "/a"));
        let (paths, reader) = read(&whole);
        assert_eq!(paths, ["/a"]);
        assert_eq!(
            reader.truncated(),
            Some("the file ends without the recorder's end line")
        );
    }

    #[test]
    fn damaged_lines_are_skipped_counted_and_shown() {
        let text = format!(
            "{HEAD}\n{}\nnot json at all\n{}\n{}\n{}\n",
            exchange(1, "/a"),
            exchange(2, "no-slash"),
            exchange(3, "/b").replace("\"GET\"", "\"G ET\""),
            exchange(4, "/c"),
        );
        let (paths, reader) = read(&text);
        assert_eq!(paths, ["/a", "/c"]);
        assert_eq!(reader.damaged(), 3);
        let lines: Vec<u64> = reader.first_damaged().iter().map(|d| d.0).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert!(reader.first_damaged()[1]
            .1
            .contains("does not start with /"));
    }

    #[test]
    fn files_that_are_no_recording_or_a_newer_one_are_refused_with_why() {
        let newer = HEAD.replace("/v1", "/v2");
        let err = |text: &str| Reader::open(text.as_bytes()).err().map(|e| e.to_string());
        assert!(matches!(
            Reader::open(newer.as_bytes()),
            Err(OpenError::Version(v)) if v == "throng.recording/v2"
        ));
        assert!(err(&newer).is_some_and(|e| e.contains("it reads throng.recording/v1")));
        assert!(err("").is_some_and(|e| e.contains("empty")));
        assert!(
            err("127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326\n")
                .is_some_and(|e| e.contains("not a throng recording"))
        );
        assert!(err("{\"schema\":\"throng.results/v1\"}\n")
            .is_some_and(|e| e.contains("\"throng.results/v1\"")));
        assert_eq!(SCHEMA, "throng.recording/v1");
    }

    #[test]
    fn an_overlong_line_is_skipped_without_being_held() {
        let long = format!(
            "{{\"x\":\"{}\"}}",
            "a".repeat(crate::recording::MAX_LINE + 10)
        );
        let text = format!("{HEAD}\n{long}\n{}\n", exchange(1, "/a"));
        let (paths, reader) = read(&text);
        assert_eq!(paths, ["/a"]);
        assert_eq!(reader.damaged(), 1);
    }

    #[test]
    fn placeholders_are_found_where_they_are_whole() {
        assert_eq!(placeholder(12), "__masked_12__");
        let text = "Bearer __masked_3__; a=__masked_12__&b=__masked_x__ __masked_4_";
        let found: Vec<(u64, &str)> = placeholders(text)
            .into_iter()
            .map(|(n, r)| (n, &text[r]))
            .collect();
        assert_eq!(found, [(3, "__masked_3__"), (12, "__masked_12__")]);
    }
}

mod recorded {
    use std::collections::HashMap;

    use crate::recorded::{Converter, Flows};
    use crate::recording::{Exchange, Head, Rule, Use};

    fn head() -> Head {
        Head {
            schema: crate::recording::SCHEMA.into(),
            started: "2026-12-03T10:00:00Z".into(),
            upstream: "http://127.0.0.1:1/".into(),
            body_cap: 65536,
            masked_headers: vec![],
            masked_fields: vec![],
            kept_fields: vec![],
            masked_json: vec![],
            session_header: None,
        }
    }

    fn exchange(seq: u64, method: &str, path: &str) -> Exchange {
        Exchange {
            at_us: seq * 1000,
            session: 4,
            client: "10.0.0.1".into(),
            method: method.into(),
            path: path.into(),
            version: "HTTP/1.1".into(),
            headers: vec![],
            body: None,
            body_b64: None,
            body_size: 0,
            body_cut: false,
            status: 200,
            response_headers: vec![],
            response_size: 0,
            ttfb_us: 10,
            duration_us: 500,
            error: None,
            upgraded: false,
            seq,
            uses: vec![],
        }
    }

    #[test]
    fn exchanges_become_requests_with_their_headers_body_flows_and_secrets() {
        let listing = exchange(1, "GET", "/api/funds");
        let mut pledge = exchange(2, "POST", "/pledge?fund=f3a9");
        pledge.headers = vec![
            ("cookie".into(), "sid=__masked_1__".into()),
            ("authorization".into(), "Bearer __masked_2__".into()),
            ("x-api-key".into(), "__masked_3__".into()),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("user-agent".into(), "Mozilla/5.0".into()),
        ];
        pledge.body = Some("fund=f3a9&password=__masked_2__".into());
        pledge.uses = vec![Use {
            text: "f3a9".into(),
            from: 1,
            rule: Rule::Json("$.items[3].id".into()),
        }];
        let mut flows = Flows::default();
        flows.learn(&listing);
        flows.learn(&pledge);
        assert_eq!(flows.len(), 1);
        let secrets = HashMap::from([(2, "hunter2".to_string())]);
        let mut c = Converter::new(&head(), flows, secrets).unwrap();

        let r = c.record(listing).unwrap();
        let rec = r.recorded.unwrap().0;
        assert_eq!(rec.gives.len(), 1, "the listing gives the id");
        assert_eq!(r.session.as_deref(), Some("4"));
        assert_eq!(r.time_us, 1_796_292_000_000_000 + 1000);

        let r = c.record(pledge).unwrap();
        assert_eq!(r.user_agent.as_deref(), Some("Mozilla/5.0"));
        let rec = r.recorded.unwrap().0;
        // The cookie comes from the session's jar; the API key has no
        // value, so its header is left out; the token is filled in.
        assert_eq!(
            rec.headers,
            [
                ("authorization".to_string(), "Bearer hunter2".to_string()),
                (
                    "content-type".to_string(),
                    "application/x-www-form-urlencoded".to_string()
                ),
            ]
        );
        assert_eq!(rec.body, b"fund=f3a9&password=hunter2");
        assert_eq!(rec.body_kind, plan::BodyKind::Form);
        assert_eq!(rec.uses, [(0, "f3a9".to_string())]);
        assert_eq!((rec.at_us, rec.end_us), (2000, 2500));
        assert_eq!(c.filled.from_env, 2);
        assert_eq!(c.filled.missing.get(&3), Some(&1));
        assert!(c.filled.missing_where[&3].contains("x-api-key header of POST /pledge"));
    }
}
