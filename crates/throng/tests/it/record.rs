//! `throng record`: a recorder in front of the lab, test servers and a
//! WebSocket server, the traffic through it, and the recording read back.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use crate::scenarios::scenario;
use crate::support::record::{exchanges, open, replay, Recorder};
use crate::support::run::{example, lab_with, read_json, throng_bin};
use crate::support::server::{self, Mode};
use crate::support::ws::{self, WsMode};
use crate::{num, throng};

fn text_of(path: &std::path::Path) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Requests of a lab route with a status class, as its /metrics count them.
fn lab_count(lab: &lab::Lab, route: &str, class: &str) -> u64 {
    let name = format!("lab_requests_total{{route=\"{route}\",status=\"{class}\"}}");
    lab.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(name.as_str())?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_recording_of_the_lab_under_load_has_every_request_its_sessions_and_no_secret_and_replays() {
    let lab = lab_with(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shop.rec.gz");
    let rec = Recorder::start(&lab.url(), &out, &[]);
    let results = dir.path().join("results.json");
    let run = throng_bin()
        .args(["run", &example("browse-and-buy.yaml"), "--target", &rec.url])
        .args([
            "--rate",
            "8",
            "--duration",
            "3s",
            "--grace",
            "20s",
            "--quiet",
            "--out",
        ])
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        [0, 1].contains(&run.status.code().unwrap_or(-1)),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let res = read_json(&results);
    let (code, stdout, stderr) = rec.stop("INT");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("recorded "), "{stdout}");

    let mut reader = open(&out);
    let all: Vec<_> = reader.by_ref().collect();
    assert_eq!(reader.truncated(), None, "a clean stop writes the end line");
    assert_eq!(reader.damaged(), 0);
    let totals = reader.end().unwrap().clone();
    assert_eq!(totals.exchanges, all.len() as u64);
    assert!(
        stdout.contains(&format!(
            "masked {} values ({} distinct)",
            totals.masked, totals.placeholders
        )),
        "{stdout}"
    );

    // Every request throng sent went through and was written, once.
    let sent = num(&res, "totals.requests");
    assert_eq!(all.len() as f64, sent, "{stdout}");
    let count = |method: &str, path: &str| {
        all.iter()
            .filter(|e| e.method == method && e.path == path)
            .count() as f64
    };
    for (name, method, path) in [("login", "POST", "/login"), ("pledge", "POST", "/pledge")] {
        let sent = res["endpoints"][name]["requests"].as_f64().unwrap_or(0.0);
        assert_eq!(count(method, path), sent, "{name}");
    }
    assert!(count("POST", "/login") > 0.0, "some visitors logged in");

    // Sessions: a pledge that got through is in the session of a login
    // whose response set the cookie it sent.
    let mut logins: BTreeMap<u64, u64> = BTreeMap::new();
    for e in all.iter().filter(|e| e.path == "/login" && e.status == 200) {
        logins.insert(e.session, e.at_us);
    }
    let pledged: Vec<_> = all
        .iter()
        .filter(|e| e.path == "/pledge" && e.status < 400)
        .collect();
    assert!(!pledged.is_empty(), "some pledges got through");
    for p in &pledged {
        let login = logins.get(&p.session);
        assert!(
            login.is_some_and(|&at| at < p.at_us),
            "pledge at {} in session {} has no login before it",
            p.at_us,
            p.session
        );
    }
    let users = all
        .iter()
        .map(|e| e.session)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(users.len() as u64, totals.sessions);
    assert!(totals.sessions as f64 >= num(&res, "totals.sessions"));

    replays_against_a_fresh_lab(&lab, &out, &all, dir.path());

    // No secret in clear: the password, and every cookie value.
    let text = text_of(&out);
    assert!(
        !text.contains("password=password"),
        "the password is masked"
    );
    assert!(text.contains("password=__masked_"));
    for e in &all {
        for (name, value) in e.headers.iter().chain(&e.response_headers) {
            if name == "cookie" || name == "set-cookie" {
                let pairs = value.split(';').take(if name == "cookie" { 99 } else { 1 });
                for pair in pairs {
                    let v = pair.split_once('=').map_or(pair, |(_, v)| v).trim();
                    assert!(
                        v.is_empty() || (v.starts_with("__masked_") && v.ends_with("__")),
                        "{name}: {value}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_recorder_passes_http2_tls_uploads_and_websockets_through() {
    let dir = tempfile::tempdir().unwrap();
    // An HTTPS upstream, trusted through --cacert; the clients speak
    // HTTP/2 (prior knowledge) and HTTP/1.1 to the recorder.
    let (srv, pem) = server::tls(false);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let upstream = format!("https://localhost:{}", srv.addr.port());
    let out = dir.path().join("tls.rec");
    let cacert = ca.to_str().unwrap();
    let rec = Recorder::start(&upstream, &out, &["--cacert", cacert, "--body-cap", "1KiB"]);
    let h2 = throng(&[
        "--url",
        &format!("{}/h2", rec.url),
        "--http2",
        "--requests",
        "10",
        "--vus",
        "2",
    ]);
    assert_eq!(h2.code, 0, "{}", h2.stderr);
    let body = dir.path().join("upload.bin");
    std::fs::write(&body, vec![b'x'; 300_000]).unwrap();
    let up = throng(&[
        "--url",
        &format!("{}/upload", rec.url),
        "-X",
        "POST",
        "--body-file",
        body.to_str().unwrap(),
        "--requests",
        "3",
    ]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    let (code, stdout, _) = rec.stop("TERM");
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("request bodies cut at the cap: 3"),
        "{stdout}"
    );
    let all = exchanges(&out);
    let h2s: Vec<_> = all.iter().filter(|e| e.path == "/h2").collect();
    assert_eq!(h2s.len(), 10);
    assert!(h2s
        .iter()
        .all(|e| e.version == "HTTP/2" && e.status == 200 && e.response_size == 5));
    let ups: Vec<_> = all.iter().filter(|e| e.path == "/upload").collect();
    assert_eq!(ups.len(), 3);
    for e in &ups {
        assert_eq!((e.body_size, e.body_cut), (300_000, true));
        assert_eq!(e.body.as_deref().map(str::len), Some(1024));
    }
    // The upstream got every byte.
    let bodies = srv.seen.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    assert!(bodies
        .iter()
        .all(|b| b.len() == "POST /upload ".len() + 300_000));

    // A WebSocket: the upgrade forwarded, then the connection joined.
    let ws = ws::start(WsMode::Echo {
        delay: std::time::Duration::ZERO,
    });
    let out = dir.path().join("ws.rec");
    let rec = Recorder::start(&ws.url(""), &out, &[]);
    let (_d, path) = scenario(
        r#"
flows:
  - steps:
      - ws: /room
        name: room
        session:
          - send: "hello"
          - expect: { body_contains: hello, timeout: 2s }
          - send: "again"
          - expect: { body_contains: again, timeout: 2s }
          - close: 1000
"#,
    );
    let r = throng(&[&path, "--target", &rec.url, "--vus", "1", "--requests", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let live: &Value = &r.results.as_ref().unwrap()["endpoints"]["room"]["live"];
    assert_eq!(num(live, "opened"), 2.0, "{live}");
    let (code, _, _) = rec.stop("INT");
    assert_eq!(code, Some(0));
    let all = exchanges(&out);
    assert_eq!(all.len(), 2);
    assert!(all
        .iter()
        .all(|e| e.status == 101 && e.upgraded && e.path == "/room"));
}

#[test]
fn a_killed_recorder_loses_at_most_its_last_second() {
    let srv = server::http1(Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cut.rec.gz");
    let rec = Recorder::start(&srv.url(""), &out, &[]);
    let r = throng(&["--url", &format!("{}/a", rec.url), "--requests", "20"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (code, _, _) = rec.stop("KILL");
    assert_eq!(code, None);
    let mut reader = open(&out);
    assert_eq!(reader.by_ref().count(), 20);
    assert!(reader.truncated().is_some());
    assert!(reader.end().is_none());
}

#[test]
fn an_upstream_that_is_down_is_recorded_as_no_response() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("down.rec");
    let rec = Recorder::start(&format!("http://{}", server::closed_port()), &out, &[]);
    let r = throng(&["--url", &format!("{}/x", rec.url), "--requests", "2"]);
    assert_eq!(num(r.results.as_ref().unwrap(), "totals.requests"), 2.0);
    let (_, stdout, _) = rec.stop("INT");
    assert!(stdout.contains("upstream errors: 2"), "{stdout}");
    let all = exchanges(&out);
    assert!(all
        .iter()
        .all(|e| e.status == 0 && e.error.as_deref().is_some_and(|w| w.contains("onnect"))));

    // A client that gives up before a slow upstream answers: recorded,
    // with why, and counted apart from the upstream's failures.
    let slow = lab_with(|c| c.delay = Some(std::time::Duration::from_secs(2)));
    let out = dir.path().join("gone.rec");
    let rec = Recorder::start(&slow.url(), &out, &[]);
    let r = throng(&[
        "--url",
        &format!("{}/", rec.url),
        "--requests",
        "2",
        "--timeout",
        "200ms",
    ]);
    assert_eq!(num(r.results.as_ref().unwrap(), "errors.timeout"), 2.0);
    let (_, stdout, _) = rec.stop("INT");
    assert!(
        stdout.contains("clients that went away before the upstream answered: 2"),
        "{stdout}"
    );
    assert!(stdout.contains("upstream errors: 0"), "{stdout}");
    let all = exchanges(&out);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|e| e.status == 0
        && e.error.as_deref() == Some("the client went away before the upstream answered")));

    let bad = throng_bin()
        .args(["record", "--upstream", "ftp://127.0.0.1:1", "--out"])
        .arg(dir.path().join("x.rec"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("only http:// and https://"), "{err}");
}

/// The recording replayed against a fresh lab (other fund ids, no
/// sessions): the same requests per endpoint, the same writes, and
/// sessions that work (the logins' cookies carry the pledges; the ids the
/// fresh listing gave replace the recorded ones).
fn replays_against_a_fresh_lab(
    recorded_lab: &lab::Lab,
    recording: &std::path::Path,
    all: &[replay::recording::Exchange],
    dir: &std::path::Path,
) {
    let fresh = lab_with(|_| {});
    // The password was masked: the replay gets it from the environment.
    let body = all
        .iter()
        .find_map(|e| e.body.as_deref().filter(|_| e.path == "/login"))
        .unwrap();
    let holder = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("password="))
        .unwrap();
    let n: u64 = holder
        .trim_start_matches("__masked_")
        .trim_end_matches("__")
        .parse()
        .unwrap();
    let password = [(format!("THRONG_MASKED_{n}"), lab::PASSWORD)];
    let run = replay(
        recording,
        &fresh.url(),
        &["--allow-writes", "--speed", "4", "--quiet"],
        &password,
    );
    let stderr = &run.stderr;
    assert_eq!(run.code, Some(0), "{stderr}");
    assert!(stderr.contains("values flow from a response"), "{stderr}");
    let res = run.results.unwrap();

    // The same requests per endpoint (method and path, ids as :id).
    let mut recorded: BTreeMap<String, f64> = BTreeMap::new();
    for e in all {
        let name = format!(
            "{} {}",
            e.method,
            replay::endpoint_path(e.path.split('?').next().unwrap())
        );
        *recorded.entry(name).or_default() += 1.0;
    }
    let replayed: BTreeMap<String, f64> = res["endpoints"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["requests"].as_f64().unwrap()))
        .collect();
    assert_eq!(replayed, recorded);
    assert_eq!(num(&res, "totals.errors"), 0.0, "{stderr}");

    // The same writes, and sessions that worked: every login and pledge
    // the recorded lab answered 2xx, the fresh one did too; no fund page
    // was asked for by an id of the recorded lab.
    for route in ["login", "pledge"] {
        assert_eq!(
            lab_count(&fresh, route, "2xx"),
            lab_count(recorded_lab, route, "2xx"),
            "{route}"
        );
    }
    assert!(lab_count(&fresh, "pledge", "2xx") > 0);
    assert_eq!(lab_count(&fresh, "funds", "4xx"), 0);
    assert_eq!(
        lab_count(&fresh, "funds", "2xx"),
        lab_count(recorded_lab, "funds", "2xx")
    );

    // A pledging session, imported as a scenario: it runs against the
    // fresh lab, the fund taken from its listing and the password from
    // the environment.
    let pledger = all
        .iter()
        .find(|e| e.path == "/pledge" && e.status < 400)
        .unwrap();
    let steps = all.iter().filter(|e| e.session == pledger.session).count();
    let yaml = dir.join("imported.yaml");
    let import = throng_bin()
        .args(["import", "recording", recording.to_str().unwrap()])
        .args(["--session", &pledger.session.to_string(), "--out"])
        .arg(&yaml)
        .output()
        .unwrap();
    assert_eq!(
        import.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(
        text.contains(&format!("{{{{ env.THRONG_MASKED_{n} }}}}")),
        "{text}"
    );
    assert!(text.contains("# guessed"), "{text}");
    let results = dir.join("imported.json");
    let run = throng_bin()
        .args(["run", yaml.to_str().unwrap(), "--target", &fresh.url()])
        .args([
            "--vus",
            "1",
            "--requests",
            &steps.to_string(),
            "--quiet",
            "--out",
        ])
        .arg(&results)
        .env(format!("THRONG_MASKED_{n}"), lab::PASSWORD)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let res = read_json(&results);
    assert_eq!(num(&res, "totals.errors"), 0.0, "{res}");
    assert_eq!(
        res["endpoints"]["POST /pledge"]["status"]["200"], 1,
        "{res}"
    );
}

/// The kinds of a results file's findings.
fn finding_kinds(res: &Value) -> Vec<String> {
    res["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn i03_browsers_recorded_and_replayed_show_what_a_header_limit_breaks_that_a_test_passes() {
    // Production: browsers (the I3 example's headers) through a recorder.
    let prod = lab_with(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("prod.rec.gz");
    let rec = Recorder::start(&prod.url(), &out, &[]);
    let browsers = throng(&[
        &example("incidents/i03-real-browsers.yaml"),
        "--target",
        &rec.url,
        "--vus",
        "2",
        "--duration",
        "2s",
    ]);
    assert_eq!(browsers.code, 0, "{}", browsers.stderr);
    let (code, _, _) = rec.stop("INT");
    assert_eq!(code, Some(0));

    let replay = |lab: &lab::Lab| {
        let run = replay(&out, &lab.url(), &["--speed", "4", "--quiet"], &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.results.unwrap()
    };

    // Staging with the balancer change: a test of bare requests passes...
    let staging = lab_with(|c| c.header_limit = Some(500));
    let bare = throng(&["--url", &format!("{}/", staging.url()), "--requests", "20"]);
    assert_eq!(num(bare.results.as_ref().unwrap(), "totals.errors"), 0.0);
    // ...production's traffic does not, and the replay says where.
    let res = replay(&staging);
    assert!(
        finding_kinds(&res).contains(&"replay_differs".to_string()),
        "{res}"
    );
    let home = &res["endpoints"]["GET /"]["replay"];
    assert_eq!(num(home, "differ"), num(home, "compared"), "{home}");
    assert_eq!(home["statuses"]["200 -> 431"], home["differ"]);
    let differs = res["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "replay_differs" && f["where"] == "GET /")
        .unwrap();
    assert_eq!(differs["severity"], "critical");
    assert!(differs["evidence"]
        .as_str()
        .unwrap()
        .contains("answered 431 where the recording had 200"));

    // Without the change, the replay answers as production did.
    let healthy = lab_with(|_| {});
    let res = replay(&healthy);
    let kinds = finding_kinds(&res);
    assert!(!kinds.contains(&"replay_differs".to_string()), "{res}");
    assert!(kinds.contains(&"replay_same".to_string()), "{res}");
    assert_eq!(num(&res, "totals.errors"), 0.0);
}

#[test]
fn a_recording_replays_with_exact_counts_segments_and_whatever_of_it_is_readable() {
    let srv = server::http1(Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ok.rec");
    let rec = Recorder::start(&srv.url(""), &out, &[]);
    let r = throng(&[
        "--url",
        &format!("{}/a", rec.url),
        "--requests",
        "30",
        "--vus",
        "10",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, _, _) = rec.stop("INT");
    assert_eq!(code, Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    let target = srv.url("");
    let replay = |file: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["--speed", "20"];
        args.extend_from_slice(extra);
        let run = replay(file, &target, &args, &[]);
        (run.code, run.stderr, run.results)
    };
    let requests = |res: &Option<Value>| num(res.as_ref().unwrap(), "totals.requests");

    // --requests N: exactly the first N; segments add up to the whole.
    let (code, _, res) = replay(&out, &["--requests", "7"]);
    assert_eq!(code, Some(0));
    assert_eq!(requests(&res), 7.0);
    let (_, _, a) = replay(&out, &["--segment", "0/2"]);
    let (_, _, b) = replay(&out, &["--segment", "1/2"]);
    assert_eq!(requests(&a) + requests(&b), 30.0);
    assert!(requests(&a) > 0.0 && requests(&b) > 0.0);

    // A damaged line is skipped and shown by number; the rest is sent.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "{\"at_us\": \"not a number\"}";
    let damaged = dir.path().join("damaged.rec");
    std::fs::write(&damaged, lines.join("\n") + "\n").unwrap();
    let (code, stderr, res) = replay(&damaged, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(requests(&res), 29.0);
    assert!(
        stderr.contains("1 damaged lines skipped") && stderr.contains("line 4:"),
        "{stderr}"
    );

    // Cut midway (a killed recorder): everything before the cut is sent.
    let cut = dir.path().join("cut.rec");
    let at = text.match_indices('\n').nth(10).unwrap().0 + 40;
    std::fs::write(&cut, &text[..at]).unwrap();
    let (code, stderr, res) = replay(&cut, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(requests(&res), 10.0);
    assert!(stderr.contains("the recording is cut short"), "{stderr}");

    // A newer format is refused, with why, before anything is sent.
    let newer = dir.path().join("newer.rec");
    std::fs::write(
        &newer,
        text.replacen("throng.recording/v1", "throng.recording/v2", 1),
    )
    .unwrap();
    let (code, stderr, _) = replay(&newer, &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("throng.recording/v2, which this throng cannot read"),
        "{stderr}"
    );
}
