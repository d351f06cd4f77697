//! End-to-end tests of scenario files: the real binary, a loopback app.

use std::sync::atomic::Ordering;

use crate::server::{self, Mode};
use crate::{num, throng, throng_bin};

/// Writes a scenario into a temporary directory; returns (dir, path).
pub fn scenario(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// Requests the server saw to "METHOD /path?query".
pub fn hits(srv: &server::Server, key: &str) -> u64 {
    srv.seen
        .paths
        .lock()
        .unwrap()
        .get(key)
        .copied()
        .unwrap_or(0)
}

#[test]
fn login_sets_a_cookie_and_the_next_step_is_authorized() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        r#"
name: login then private
flows:
  - steps:
      - post: /login
        form: { email: "user{{ vu }}@example.com", password: secret }
        name: login
      - get: /private
        name: private
"#,
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "3",
        "--requests",
        "60",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "totals.requests"), 60.0);
    // The bound can cut the users' last iterations mid-flow, so the split
    // between the steps is not exactly even; the total is.
    let (login, private) = (
        num(&res, "endpoints.login.requests"),
        num(&res, "endpoints.private.requests"),
    );
    assert_eq!(login + private, 60.0);
    assert!(login - private <= 3.0, "{login} logins, {private} private");
    // Every private page was fetched with the cookie the login set.
    assert_eq!(num(&res, "endpoints.private.status.200"), private);
    assert!(res["endpoints"]["private"]["status"].get("401").is_none());
    assert_eq!(hits(&srv, "POST /login") as f64, login);
}

#[test]
fn without_cookies_the_private_page_is_refused() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        "cookies: false\nflows:\n  - steps:\n      - post: /login\n      - get: /private\n        name: private\n",
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "1",
        "--requests",
        "10",
    ]);
    assert_eq!(
        num(&r.results.unwrap(), "endpoints.private.status.401"),
        5.0
    );
}

#[test]
fn weighted_flows_split_traffic_by_weight() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        r#"
flows:
  - name: browse
    weight: 3
    steps: [ { get: /browse } ]
  - name: buy
    weight: 1
    steps: [ { get: /buy } ]
load: { rate: 1000, requests: 2000 }
"#,
    );
    let r = throng(&[&path, "--target", &srv.url("")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (browse, buy) = (
        hits(&srv, "GET /browse") as f64,
        hits(&srv, "GET /buy") as f64,
    );
    assert_eq!(browse + buy, 2000.0);
    // 75% / 25%: a binomial sd of ~1% at n=2000; allow 3 points.
    let share = browse / 2000.0;
    assert!((share - 0.75).abs() < 0.03, "browse share {share}");
}

/// `timestamp_ms` is the wall clock when the step is rendered (read only
/// for steps that are rendered per user: a step the same for every user
/// reads no clock).
#[test]
fn a_timestamp_is_the_time_the_step_was_rendered() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        "flows:\n  - steps:\n      - get: \"/t/{{ timestamp_ms }}\"\n      - get: /same\n",
    );
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let before = unix_ms();
    let r = crate::throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "1",
        "--requests",
        "4",
        "--workers",
        "1",
    ]);
    let after = unix_ms();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let paths = srv.seen.paths.lock().unwrap().clone();
    // Two iterations (the same millisecond may come twice).
    let stamps: Vec<(u64, u64)> = paths
        .iter()
        .filter_map(|(k, n)| Some((k.strip_prefix("GET /t/")?.parse().ok()?, *n)))
        .collect();
    assert_eq!(stamps.iter().map(|(_, n)| n).sum::<u64>(), 2, "{paths:?}");
    assert!(
        stamps.iter().all(|(t, _)| (before..=after).contains(t)),
        "{stamps:?} not in {before}..={after}"
    );
}

#[test]
fn templates_render_per_user_and_per_iteration() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        "flows:\n  - steps:\n      - get: \"/users/{{ vu }}/visit/{{ iteration }}\"\n        name: visit\n        query: { k: \"{{ env.THRONG_TEST_KEY }}\" }\n",
    );
    let out = throng_bin()
        .env("THRONG_TEST_KEY", "k1")
        .args([
            "run",
            &path,
            "--target",
            &srv.url(""),
            "--vus",
            "2",
            "--requests",
            "6",
            "--workers",
            "1",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The 6 requests are shared by the two users as timing allows; each
    // user's iterations are numbered 0, 1, 2, ... with no gap or repeat.
    let paths = srv.seen.paths.lock().unwrap().clone();
    assert_eq!(paths.values().sum::<u64>(), 6, "{paths:?}");
    assert!(paths.values().all(|&n| n == 1), "{paths:?}");
    for vu in 0..2 {
        let count = paths
            .keys()
            .filter(|k| k.starts_with(&format!("GET /users/{vu}/")))
            .count();
        for it in 0..count {
            let key = format!("GET /users/{vu}/visit/{it}?k=k1");
            assert!(paths.contains_key(&key), "{key} in {paths:?}");
        }
    }
}

#[test]
fn open_model_sessions_walk_their_steps_with_think_times() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        "flows:\n  - steps:\n      - get: /a\n        think: 200ms\n      - get: /b\nload: { rate: 50, duration: 1s }\n",
    );
    let r = throng(&[&path, "--target", &srv.url("")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // 50 sessions, each of two steps; the second step is sent after its
    // think time, even past the end of the arrivals (within the grace).
    assert_eq!(hits(&srv, "GET /a"), 50);
    assert_eq!(hits(&srv, "GET /b"), 50);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "totals.requests"), 100.0);
    // An arrival is a session, however many requests its journey makes:
    // sessions are counted at their intended start, requests at theirs
    // (the second step's, 200 ms later, may fall in the next second).
    assert_eq!(num(&res, "totals.sessions"), 50.0);
    let per_second: Vec<f64> = res["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["sessions"].as_f64().unwrap_or(0.0))
        .collect();
    assert_eq!(per_second[0], 50.0, "{per_second:?}");
    assert_eq!(per_second.iter().sum::<f64>(), 50.0);
}

#[test]
fn cli_load_options_override_the_file() {
    let srv = server::http1(Mode::App);
    let (_dir, path) =
        scenario("flows:\n  - steps: [ { get: / } ]\nload: { vus: 50, duration: 1h }\n");
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--rate",
        "100",
        "--requests",
        "30",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(res["model"], "open");
    assert_eq!(num(&res, "totals.requests"), 30.0);
}

#[test]
fn scenario_thresholds_can_name_endpoints() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        "flows:\n  - steps: [ { get: /private, name: private } ]\nthresholds: [ \"errors(private)<1%\", \"p99(private)<10s\" ]\nload: { vus: 1, requests: 5 }\n",
    );
    let r = throng(&[&path, "--target", &srv.url("")]);
    assert_eq!(
        r.code, 1,
        "private answers 401 without a login\n{}",
        r.stdout
    );
    let res = r.results.unwrap();
    assert_eq!(res["thresholds"][0]["ok"], false);
    assert_eq!(res["thresholds"][1]["ok"], true);
    let (_dir, path) = scenario(
        "flows:\n  - steps: [ { get: /, name: home } ]\nthresholds: [ \"p99(hme)<1s\" ]\n",
    );
    let r = throng(&[&path, "--target", &srv.url("")]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("scenario.yaml:3:15: no endpoint is named \"hme\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean \"home\"?"), "{}", r.stderr);
    assert_eq!(
        srv.seen.requests.load(Ordering::Relaxed),
        5,
        "the bad scenario sent nothing"
    );
    // validate refuses the same file with the same words.
    let v = throng_bin()
        .args(["validate", &path, "--target", &srv.url("")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&v.stderr);
    assert_eq!(v.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("scenario.yaml:3:15: no endpoint is named \"hme\"")
            && stderr.contains("did you mean \"home\"?"),
        "{stderr}"
    );
}

#[test]
fn validate_and_schema() {
    let (_dir, path) =
        scenario("target: http://127.0.0.1:9\nflows:\n  - steps: [ { get: /, think: 1s } ]\n");
    let out = throng_bin().args(["validate", &path]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GET / as \"GET /\", think 1.00s"), "{text}");
    assert!(text.ends_with("scenario.yaml: ok\n"), "{text}");

    let (_dir, path) = scenario("target: http://127.0.0.1:9\nflows:\n  - steps: [ { gett: / } ]\n");
    let out = throng_bin().args(["validate", &path]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scenario.yaml:3:16: unknown field `gett`"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `get`?"), "{err}");

    let out = throng_bin().arg("schema").output().unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["flows"].is_object());
}

#[test]
fn request_options_do_not_mix_with_scenarios() {
    let (_dir, path) = scenario("target: http://127.0.0.1:9\nflows:\n  - steps: [ { get: / } ]\n");
    let r = throng(&[&path, "-X", "POST"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("in a scenario, set it on the steps"),
        "{}",
        r.stderr
    );
    let r = throng(&["--rate", "5"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("say what to load"), "{}", r.stderr);
}

#[test]
fn examples_validate_and_the_committed_schema_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    let files = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("examples/incidents")).unwrap());
    for entry in files {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = throng_bin().arg("validate").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} examples");
    let out = throng_bin().arg("schema").output().unwrap();
    let committed = std::fs::read_to_string(root.join("docs/scenario.schema.json")).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "docs/scenario.schema.json is stale: run `throng schema > docs/scenario.schema.json`"
    );
}

#[test]
fn the_schema_takes_the_examples_and_refuses_what_validate_refuses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("docs/scenario.schema.json")).unwrap(),
    )
    .unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("scenario.schema.json", schema)
        .unwrap();
    let index = compiler
        .compile("scenario.schema.json", &mut schemas)
        .unwrap();
    let conforms = |yaml: &str| {
        let v: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        schemas.validate(&v, index).is_ok()
    };
    let files = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("examples/incidents")).unwrap());
    let mut bad_examples = Vec::new();
    for entry in files {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            if let Err(e) = schemas.validate(&v, index) {
                bad_examples.push(format!("{}: {e:#}", path.display()));
            }
        }
    }
    assert!(bad_examples.is_empty(), "{}", bad_examples.join("\n"));
    // What `validate` refuses for its shape, the schema refuses too (an
    // editor says so as it is typed).
    for bad in [
        "flows:\n  - steps:\n      - get: items\n",
        "flows:\n  - steps:\n      - post: \"{{ location }}\"\n",
        "flows:\n  - steps:\n      - ws: chat\n",
        "flows:\n  - steps:\n      - get: /\n        thnk: 1s\n",
        "flows:\n  - steps:\n      - get: /\n        checks: [ { status: 200, qqq: 1 } ]\n",
        "flows: []\n",
    ] {
        let (_dir, path) = scenario(&format!("target: http://127.0.0.1:1\n{bad}"));
        let out = throng_bin().arg("validate").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "validate takes {bad:?}");
        assert!(
            !conforms(&format!("target: http://127.0.0.1:1\n{bad}")),
            "the schema takes {bad:?}"
        );
    }
}

#[test]
fn a_body_check_fails_on_the_fraction_of_pages_that_show_an_error() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        r#"
flows:
  - steps:
      - get: /flaky
        name: page
        checks:
          - status: 200
          - body_not_contains: An error has occurred
            name: no error page
"#,
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "4",
        "--requests",
        "400",
        "--threshold",
        "errors<1%",
    ]);
    // Every response was a 200; a quarter showed the error text.
    assert_eq!(
        r.code, 1,
        "the errors threshold fails on wrong content\n{}",
        r.stdout
    );
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.page.status.200"), 400.0);
    assert_eq!(num(&res, "checks.no error page.failed"), 100.0);
    assert_eq!(num(&res, "checks.no error page.passed"), 300.0);
    assert_eq!(num(&res, "checks.page: status 200.failed"), 0.0);
    assert_eq!(num(&res, "totals.check_failures"), 100.0);
    assert_eq!(num(&res, "errors.check_failed"), 100.0);
    assert_eq!(num(&res, "totals.error_rate"), 0.25);
    assert_eq!(num(&res, "endpoints.page.check_failures"), 100.0);
    assert!(r.stdout.contains("FAIL  no error page"), "{}", r.stdout);
    assert!(
        r.stdout.contains("100 of 400 failed (25.00%)"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_token_extracted_from_json_is_sent_in_a_header() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        r#"
flows:
  - steps:
      - post: /token
        name: token
        extract:
          token: { json: $.token }
          user: { json: $.user.id }
      - get: /api
        name: api
        headers: { Authorization: "Bearer {{ token }}" }
        query: { user: "{{ user }}" }
        checks: [ { status: 200 } ]
"#,
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "1",
        "--requests",
        "40",
        "--workers",
        "1",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.api.status.200"), 20.0);
    assert_eq!(num(&res, "totals.check_failures"), 0.0);
    assert_eq!(hits(&srv, "GET /api?user=7"), 20);
}

#[test]
fn stop_flow_ends_the_session_at_a_failed_check() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        r#"
cookies: false
flows:
  - steps:
      - get: /private
        checks: [ { status: 200, on_fail: stop_flow } ]
      - get: /after
"#,
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--rate",
        "50",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(hits(&srv, "GET /private"), 50);
    assert_eq!(
        hits(&srv, "GET /after"),
        0,
        "every session stopped at its failed check"
    );
}

/// Writes a scenario and a data file beside it.
fn scenario_with_data(text: &str, data_name: &str, data: &str) -> (tempfile::TempDir, String) {
    let (dir, path) = scenario(text);
    std::fs::write(dir.path().join(data_name), data).unwrap();
    (dir, path)
}

#[test]
fn unique_feeder_rows_are_never_repeated_across_workers() {
    let srv = server::http1(Mode::App);
    let csv: String = std::iter::once("email,password\n".to_string())
        .chain((0..100).map(|i| format!("user{i}@example.com,pw{i}\n")))
        .collect();
    let (_dir, path) = scenario_with_data(
        "data:\n  users: { file: users.csv, pick: unique }\nflows:\n  - steps:\n      - get: \"/hello/{{ users.email }}\"\n",
        "users.csv",
        &csv,
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "6",
        "--workers",
        "2",
        "--requests",
        "60",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let paths = srv.seen.paths.lock().unwrap().clone();
    assert_eq!(paths.len(), 60, "60 different users: {paths:?}");
    assert!(paths.values().all(|&n| n == 1));
}

#[test]
fn running_out_of_unique_rows_stops_the_load_with_a_clear_error() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario_with_data(
        "data:\n  users: { file: users.jsonl, pick: unique }\nflows:\n  - steps:\n      - get: \"/hello/{{ users.id }}\"\n",
        "users.jsonl",
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3}\n{\"id\": 4}\n{\"id\": 5}\n",
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--rate",
        "50",
        "--duration",
        "5s",
    ]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("data \"users\" ran out of unique rows (5 in all)"),
        "{}",
        r.stderr
    );
    let res = r.results.unwrap();
    assert_eq!(res["status"], "aborted");
    assert_eq!(num(&res, "totals.requests"), 5.0);
    assert!(num(&res, "duration_s") < 2.0);
    assert!(res["stop_reason"]
        .as_str()
        .unwrap()
        .contains("ran out of unique rows"));
}

#[test]
fn retries_amplify_as_configured_and_respect_the_budget() {
    let retrying = |retry: &str, requests: &str| {
        let srv = server::http1(Mode::Status(503));
        let (_dir, path) = scenario(&format!(
            "flows:\n  - steps:\n      - get: /\n        name: page\n        retry: {retry}\n"
        ));
        let r = throng(&[
            &path,
            "--target",
            &srv.url(""),
            "--vus",
            "2",
            "--requests",
            requests,
        ]);
        let sent = srv.seen.requests.load(Ordering::Relaxed) as f64;
        (r, sent)
    };
    // No budget: each of the 100 requests users wanted took 3 attempts.
    let (r, sent) = retrying("{ attempts: 3, backoff: none }", "100");
    let res = r.results.unwrap();
    assert_eq!(sent, 300.0);
    assert_eq!(num(&res, "totals.requests"), 100.0);
    assert_eq!(num(&res, "retries.attempts"), 300.0);
    assert_eq!(num(&res, "retries.amplification"), 3.0);
    assert_eq!(num(&res, "retries.retries.http_5xx"), 200.0);
    assert_eq!(num(&res, "retries.goodput"), 0.0);
    assert!(
        r.stdout
            .contains("retries   300 attempts for 100 requests (x3.00): 200 after 5xx"),
        "{}",
        r.stdout
    );
    // A 10% budget: at most 10% more attempts than requests, whatever
    // the policy would like.
    let (r, sent) = retrying("{ attempts: 3, backoff: none, budget: 10% }", "400");
    let res = r.results.unwrap();
    assert_eq!(num(&res, "retries.attempts"), sent);
    assert!((400.0..=440.0).contains(&sent), "{sent}");
    assert!(num(&res, "retries.budget_refused") >= 400.0 - 40.0);
}

#[test]
fn a_recorded_har_imports_to_a_scenario_that_runs() {
    // The recording's token came from POST /token and went back in
    // GET /api's Authorization header; the server now hands out another
    // token and refuses any other, so the run passes only if the import
    // turned the recorded value into an extract and a variable.
    let har =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/recorded/shop.har");
    let out = throng_bin()
        .args(["import", "har"])
        .arg(&har)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("Bearer {{ token }}"), "{yaml}");
    let (_dir, path) = scenario(&yaml);
    let srv = server::http1(Mode::App);
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "1",
        "--requests",
        "10",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.GET /api.status.200"), 2.0);
    assert_eq!(num(&res, "totals.errors"), 0.0);
    assert_eq!(hits(&srv, "GET /api"), 2);
}

#[test]
fn clients_come_from_their_addresses_with_their_habits_and_agents() {
    // Source addresses: each of 3 users binds one address of the range.
    let srv = server::http1(Mode::Ok);
    let (_dir, path) = scenario(
        r#"
clients:
  source_ips: 127.0.0.2-127.0.0.4
  user_agents:
    - { value: "Phone/1.0", weight: 3 }
    - { value: "Desktop/1.0" }
flows:
  - steps:
      - get: /
"#,
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--rate",
        "400",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let peers: std::collections::BTreeSet<String> = srv
        .seen
        .peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        peers.into_iter().collect::<Vec<_>>(),
        ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    );
    // An address this machine does not have (192.0.2.0/24 is for
    // documentation, RFC 5737) stops the run before it starts, and says
    // why: before, each of its users' connections failed. Nothing is sent.
    let (_bad_dir, bad) = scenario(
        "clients:\n  source_ips: 127.0.0.2, 192.0.2.7\nflows:\n  - steps:\n      - get: /\n",
    );
    let r = throng(&[&bad, "--target", &srv.url(""), "--requests", "5"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("source address 192.0.2.7 cannot be used"),
        "{}",
        r.stderr
    );
    // The user-agent mix: 3 to 1 by weight. In the open model each
    // arrival is a new user of one request, so the share is over ~400
    // users' draws, not over how many requests a few busy users sent.
    let log = srv.seen.log.lock().unwrap();
    let total = log.len() as f64;
    let phones = log.iter().filter(|e| e.3 == "Phone/1.0").count() as f64;
    let desktops = log.iter().filter(|e| e.3 == "Desktop/1.0").count() as f64;
    assert!(total >= 200.0, "{total} requests");
    assert_eq!(phones + desktops, total);
    assert!(
        (0.65..0.85).contains(&(phones / total)),
        "{phones} phones of {total}"
    );
    drop(log);

    // Connection habits: a connection per request, then per session.
    for (habit, expected) in [("per_request", 20), ("per_session", 10)] {
        let srv = server::http1(Mode::Ok);
        let (_dir, path) = scenario(&format!(
            "clients: {{ connections: {habit} }}\nflows:\n  - steps:\n      - get: /a\n      - get: /b\n"
        ));
        let r = throng(&[
            &path,
            "--target",
            &srv.url(""),
            "--rate",
            "10",
            "--duration",
            "1s",
            "--workers",
            "1",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(srv.seen.requests.load(Ordering::Relaxed), 20);
        assert_eq!(
            srv.seen.connections.load(Ordering::Relaxed),
            expected,
            "{habit}"
        );
    }
}

#[test]
fn slow_clients_download_at_their_rate() {
    // 40 KB at 100 KB/s takes 0.4 s; a fast client takes milliseconds.
    let srv = server::http1(Mode::Body(40_000));
    let (_dir, path) = scenario(
        "clients: { slow: { fraction: 100%, rate: 100KB/s } }\nflows:\n  - steps:\n      - get: /big\n",
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "1",
        "--requests",
        "2",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let res = r.results.unwrap();
    let p50 = num(&res, "latency_ms.p50");
    assert!((380.0..700.0).contains(&p50), "p50 {p50} ms");
    let (_dir, fast) = scenario("flows:\n  - steps:\n      - get: /big\n");
    let r = throng(&[
        &fast,
        "--target",
        &srv.url(""),
        "--vus",
        "1",
        "--requests",
        "2",
    ]);
    assert!(num(&r.results.unwrap(), "latency_ms.p50") < 100.0);
}

/// Every block of a flow against the loopback app, and what each point
/// of the rules means: `for_each` over a `pick: all` list (capped by
/// `max`), `repeat` over a range, `while` over a next-page link, `if` on
/// the last response, missing values (`fail` counts an error and sends
/// nothing, `skip` counts a skip), and values escaped for where they go.
#[test]
fn blocks_loop_branch_and_escape_what_they_send() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        r#"
flows:
  - steps:
      - get: /list
        name: list
        extract:
          ids: { json: "$.items[*].id", pick: all }
          one: { json: "$.items[*].id", pick: random }
          none: { json: "$.nothing" }
      - for_each: ids
        as: id
        max: 2
        steps:
          - get: "/item/{{ id }}?n={{ loop.index }}"
            name: item
      - repeat: 2..3
        steps:
          - get: "/r/{{ loop.index }}"
            name: r
      - get: /pages?page=0
        name: pages
        extract: { next: { json: $.next } }
      - while: "next and loop.index < 5"
        max: 4
        steps:
          - get: "/pages?page={{ next }}"
            name: pages
            extract: { next: { json: $.next } }
      - if: "status == 200 and not next"
        steps: [ { get: /yes } ]
        else: [ { get: /no } ]
      - get: "/missing/{{ none }}"
        name: missing-fail
      - get: "/missing/{{ none }}"
        name: missing-skip
        on_missing: skip
      - post: /echo
        json: { q: "{{ one }}", raw: "{{ raw(one) }}" }
        name: json
      - post: /form
        form: { q: "{{ one }} x" }
        name: form
"#,
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--rate",
        "4",
        "--duration",
        "1s",
        "--workers",
        "1",
    ]);
    let res = r.results.expect("results");
    let paths = srv.seen.paths.lock().unwrap().clone();
    let sessions = hits(&srv, "GET /list");
    assert_eq!(sessions, 4, "{paths:?}");
    // for_each: the first two items (max: 2), percent-encoded in the path.
    assert_eq!(hits(&srv, "GET /item/a%20b?n=0"), 4, "{paths:?}");
    assert_eq!(hits(&srv, "GET /item/c%2Fd?n=1"), 4, "{paths:?}");
    assert_eq!(hits(&srv, "GET /item/e%26f?n=2"), 0, "{paths:?}");
    // repeat 2..3: twice or three times per session, indexed from 0.
    assert_eq!(hits(&srv, "GET /r/0"), 4);
    assert_eq!(hits(&srv, "GET /r/1"), 4);
    assert!(hits(&srv, "GET /r/2") <= 4);
    // while: pages 1 and 2 follow page 0; page 2 has no next link.
    for page in 0..3 {
        assert_eq!(
            hits(&srv, &format!("GET /pages?page={page}")),
            4,
            "{paths:?}"
        );
    }
    // if: the last response was page 2's 200, and `next` has no value.
    assert_eq!((hits(&srv, "GET /yes"), hits(&srv, "GET /no")), (4, 0));
    // Missing values: nothing sent either way.
    assert!(
        paths.keys().all(|k| !k.starts_with("GET /missing")),
        "{paths:?}"
    );
    assert_eq!(num(&res, "endpoints.missing-fail.errors"), 4.0);
    assert_eq!(
        num(&res, "endpoints.missing-fail.error_kinds.missing_value"),
        4.0
    );
    assert_eq!(num(&res, "endpoints.missing-skip.skipped"), 4.0);
    assert_eq!(
        res["endpoints"]["missing-skip"]["requests"].as_u64(),
        Some(0)
    );
    // The extraction that found nothing is counted where it ran.
    assert_eq!(num(&res, "endpoints.list.extracts_missed"), 4.0);
    // JSON-escaped in a JSON body, raw() as it is, form-encoded in a form.
    let bodies = srv.seen.bodies.lock().unwrap().clone();
    let ids = ["a b", "c/d", "e&f"];
    for b in bodies.iter().filter(|b| b.starts_with("POST /echo ")) {
        let json: serde_json::Value = serde_json::from_str(&b["POST /echo ".len()..]).unwrap();
        assert!(ids.contains(&json["q"].as_str().unwrap()), "{b}");
        assert_eq!(json["q"], json["raw"], "{b}");
    }
    let forms: Vec<&String> = bodies
        .iter()
        .filter(|b| b.starts_with("POST /form "))
        .collect();
    assert_eq!(forms.len(), 4, "{bodies:?}");
    for b in forms {
        let q = &b["POST /form q=".len()..];
        assert!(["a+b+x", "c%2Fd+x", "e%26f+x"].contains(&q), "{b}");
    }
}

/// A page's assets from its HTML go to the target and to allowed hosts
/// only: another host's script is not fetched (nor counted).
#[test]
fn a_page_fetches_what_its_document_names_on_allowed_hosts_only() {
    let srv = server::http1(Mode::App);
    let cdn = server::http1_on("127.0.0.2", Mode::Ok);
    let (_dir, path) = scenario(&format!(
        r#"
allowed_hosts: [127.0.0.2]
flows:
  - steps:
      - page: page
        assets: from_html
        steps:
          - get: "/page?cdn={}"
            name: document
"#,
        cdn.addr
    ));
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--rate",
        "5",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(hits(&srv, "GET /a.css"), 5);
    assert_eq!(hits(&cdn, "GET /b.png"), 5);
    assert_eq!(res["endpoints"]["GET /a.css"]["requests"], 5);
    let b = format!("GET http://{}/b.png", cdn.addr);
    assert_eq!(
        res["endpoints"][b.as_str()]["requests"],
        5,
        "{}",
        res["endpoints"]
    );
    assert_eq!(num(&res, "endpoints.page.requests"), 5.0);
    assert_eq!(
        num(&res, "totals.requests"),
        15.0,
        "the document and two assets per page"
    );
    assert_eq!(num(&res, "totals.errors"), 0.0);
}

/// A page over HTTP/2: its lanes' requests go as streams on the worker's
/// connection, each counted once, and the page on its own endpoint.
#[test]
fn a_page_loads_over_http2_on_one_connection() {
    let srv = server::h2c();
    let (_dir, path) = scenario(
        "http2: true\nflows:\n  - steps:\n      - page: p\n        steps:\n          - get: /doc\n          - get: /a.css\n          - get: /b.js\n          - get: /c.png\n",
    );
    let r = throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--rate",
        "5",
        "--duration",
        "1s",
        "--workers",
        "1",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.p.requests"), 5.0);
    assert_eq!(num(&res, "totals.requests"), 20.0);
    assert_eq!(num(&res, "totals.errors"), 0.0);
    assert_eq!(srv.seen.requests.load(Ordering::Relaxed), 20);
}
