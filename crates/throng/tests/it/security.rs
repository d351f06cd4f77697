//! What throng must never do: show a secret, send load where the scenario
//! did not say, or run anything but requests.

use std::process::Stdio;
use std::sync::atomic::Ordering;

use crate::scenarios::{hits, scenario};
use crate::server::{self, Mode};
use crate::{num, throng_bin};

/// Values a run is given that no output may show.
const SECRETS: [&str; 6] = [
    "tok-7f3a9c",        // {{ env.THRONG_TEST_TOKEN }}
    "key-0ddba11",       // X-Key, marked secret: true
    "literal-cookie-99", // a Cookie header written in the scenario
    "sid-secret-5150",   // the target's Set-Cookie
    "cli-secret-4242",   // -H 'Authorization: ...'
    "cli-cookie-77",     // -H 'Cookie: ...'
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret:?}:\n{text}"
        );
    }
}

/// Every file in `dir`, as text.
fn files_in(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            files.push((path.display().to_string(), text));
        }
    }
    files
}

#[test]
fn secrets_are_redacted_in_every_output() {
    let srv = server::http1(Mode::App);
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("secrets.yaml");
    // The target echoes the secrets back in its body and a header, and
    // checks that look at them fail, so every place a response or a
    // check can reach is exercised.
    std::fs::write(
        &scenario,
        r#"
name: secrets
defaults:
  headers:
    Authorization: "Bearer {{ env.THRONG_TEST_TOKEN }}"
flows:
  - name: who
    steps:
      - get: /whoami
        name: whoami
        headers:
          Cookie: "pref=literal-cookie-99"
          X-Key: { value: "key-{{ env.THRONG_TEST_KEY }}", secret: true }
        extract:
          echoed: { header: X-Echo }
        checks:
          - status: 201
          - body_contains: "{{ env.THRONG_TEST_TOKEN }}-and-more"
          - header: { name: Set-Cookie, matches: "^nothing-like-it$" }
      - get: /private/{{ echoed }}
        name: private
"#,
    )
    .unwrap();
    let file = |name: &str| out.path().join(name).to_str().unwrap().to_string();
    let mut outputs = Vec::new();
    let run = |args: &[&str]| {
        let o = throng_bin()
            .args(args)
            .env("THRONG_TEST_TOKEN", "tok-7f3a9c")
            .env("THRONG_TEST_KEY", "0ddba11")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let scenario = scenario.to_str().unwrap();
    outputs.push((
        "validate",
        run(&["validate", scenario, "--target", &srv.url("")]),
    ));
    outputs.push((
        "a scenario run",
        run(&[
            "run",
            scenario,
            "--target",
            &srv.url(""),
            "--vus",
            "2",
            "--requests",
            "20",
            "--out",
            &file("scenario.json"),
            "--report",
            &file("scenario.html"),
            "--timeline",
            &file("scenario.csv"),
            "--junit",
            &file("scenario.xml"),
            "--summary-md",
            &file("scenario.md"),
            "--threshold",
            "errors<1%",
        ]),
    ));
    outputs.push((
        "a --url run",
        run(&[
            "run",
            "--url",
            &srv.url("/whoami"),
            "-H",
            "Authorization: Bearer cli-secret-4242",
            "-H",
            "Cookie: c=cli-cookie-77",
            "--requests",
            "5",
            "--out",
            &file("url.json"),
            "--report",
            &file("url.html"),
        ]),
    ));
    outputs.push((
        "throng report",
        run(&[
            "report",
            &file("scenario.json"),
            "--html",
            &file("again.html"),
            "--summary-md",
            &file("again.md"),
        ]),
    ));
    // The run did reach the target with the secrets (or there is nothing
    // to hide).
    let results = std::fs::read_to_string(file("scenario.json"))
        .unwrap_or_else(|e| panic!("{e}: {outputs:?}"));
    assert!(results.contains("\"whoami\""), "{results}");
    assert!(
        outputs[1].1.contains("checks"),
        "the run shows its checks: {}",
        outputs[1].1
    );
    for (what, text) in &outputs {
        assert_no_secret(what, text);
    }
    let files = files_in(out.path());
    assert_eq!(files.len(), 9, "every output was written: {files:?}");
    for (path, text) in &files {
        assert_no_secret(path, text);
    }
}

#[test]
fn redirects_are_followed_up_to_the_limit() {
    let srv = server::http1(Mode::App);
    let (_dir, path) = scenario(
        r#"
flows:
  - steps:
      - get: /hop/3
        name: hops
        checks:
          - status: 200
          - body_contains: landed
      - post: /sign-in
        name: sign-in
        form: { user: ann }
        checks:
          - body_contains: secret
"#,
    );
    // Each hop goes on the user's own connection: 2 users, 2 connections.
    let r = crate::throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "2",
        "--requests",
        "20",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "totals.requests"), 20.0, "a chain is one request");
    assert_eq!(num(&res, "endpoints.hops.status.200"), 10.0);
    assert_eq!(num(&res, "endpoints.hops.redirects"), 30.0);
    assert_eq!(hits(&srv, "GET /hop/3"), 10);
    assert_eq!(hits(&srv, "GET /hop/0"), 10);
    // The 303 of a POST is followed with a GET, to a relative location,
    // with the cookie it set: /private answers 200 only with it.
    assert_eq!(num(&res, "endpoints.sign-in.status.200"), 10.0);
    assert_eq!(hits(&srv, "GET /private"), 10);
    assert_eq!(srv.seen.connections.load(Ordering::Relaxed), 2);
    assert!(r.stdout.contains("redirects"), "{}", r.stdout);

    let limited = |max: &str| {
        let r = crate::throng(&[
            &path,
            "--target",
            &srv.url(""),
            "--vus",
            "1",
            "--requests",
            "4",
            "--max-redirects",
            max,
        ]);
        r.results.unwrap()
    };
    // One short of the chain: every request fails, and says why.
    let res = limited("2");
    assert_eq!(
        num(&res, "endpoints.hops.error_kinds.too_many_redirects"),
        2.0
    );
    assert_eq!(num(&res, "endpoints.sign-in.status.200"), 2.0);
    assert!(
        res["error_examples"]["too_many_redirects"]
            .as_str()
            .is_some_and(|m| m.contains("after 2 redirects")),
        "{}",
        res["error_examples"]
    );

    // None followed: the 3xx is the response.
    let res = limited("0");
    assert_eq!(num(&res, "endpoints.hops.status.302"), 2.0);
    assert_eq!(num(&res, "endpoints.sign-in.status.303"), 2.0);
}

#[test]
fn a_step_own_host_header_stays_with_its_redirects() {
    // A virtual host on the target (the I5/I10 wrong-site checks) is still
    // the one asked for after a relative redirect.
    let srv = server::http1(Mode::App);
    let (_dir, path) =
        scenario("flows:\n  - steps: [ { get: /hop/1, headers: { Host: site-b.test } } ]\n");
    let r = crate::throng(&[
        &path,
        "--target",
        &srv.url(""),
        "--vus",
        "1",
        "--requests",
        "2",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let log = srv.seen.log.lock().unwrap();
    let seen: Vec<(&str, &str)> = log
        .iter()
        .map(|(_, req, host, _)| (req.as_str(), host.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /hop/1", "site-b.test"),
            ("GET /hop/0", "site-b.test"),
            ("GET /hop/1", "site-b.test"),
            ("GET /hop/0", "site-b.test")
        ]
    );
}

#[test]
fn a_redirect_goes_only_to_hosts_the_scenario_names() {
    let target = server::http1(Mode::App);
    // Another host: another loopback address, as far as throng can tell.
    let elsewhere = server::http1_on("127.0.0.2", Mode::App);
    let away = format!("/away?to={}", elsewhere.url("/whoami"));
    let text = |allowed: &str| {
        format!(
            r#"
{allowed}
defaults:
  headers:
    Authorization: Bearer tok-7f3a9c
    X-Key: {{ value: key-0ddba11, secret: true }}
flows:
  - steps:
      - get: "{away}"
        name: away
        checks:
          - body_contains: "authorization= cookie= x-key="
"#
        )
    };
    let args = |path: &str| {
        crate::throng(&[
            path,
            "--target",
            &target.url(""),
            "--vus",
            "1",
            "--requests",
            "5",
        ])
    };

    // Not named: not followed, counted as blocked, nothing sent there.
    let (_dir, path) = scenario(&text(""));
    let r = args(&path);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.away.error_kinds.blocked"), 5.0);
    assert_eq!(elsewhere.seen.requests.load(Ordering::Relaxed), 0);
    let why = res["error_examples"]["blocked"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("http://127.0.0.2:") && why.contains("allowed_hosts"),
        "{why}"
    );
    assert!(!why.contains("whoami"), "only the origin is shown: {why}");

    // Named: followed, on a connection of its own, without the secrets.
    let (_dir, path) = scenario(&text("allowed_hosts: [127.0.0.2]"));
    let r = args(&path);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.away.status.200"), 5.0, "{res}");
    assert_eq!(num(&res, "totals.check_failures"), 0.0, "no secret went");
    assert_eq!(hits(&elsewhere, "GET /whoami"), 5);

    // A --url run names its hosts with --allow-host.
    let url = target.url(&away);
    let r = crate::throng(&["--url", &url, "--requests", "3"]);
    assert_eq!(num(r.results.as_ref().unwrap(), "totals.errors"), 3.0);
    let r = crate::throng(&[
        "--url",
        &url,
        "--requests",
        "3",
        "--allow-host",
        "127.0.0.2",
    ]);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "totals.errors"), 0.0, "{res}");
    assert_eq!(hits(&elsewhere, "GET /whoami"), 8);
}

#[test]
fn nothing_in_a_scenario_can_run_a_command() {
    // There is no key for one, at any level, and no template function.
    let attempts = [
        "exec: [sh, -c, 'touch PWNED']\n",
        "defaults:\n  shell: 'touch PWNED'\n",
        "hooks: { before: 'touch PWNED' }\n",
        "data:\n  users: { file: '|touch PWNED' }\n",
    ];
    for (i, extra) in attempts.iter().enumerate() {
        let (dir, path) = scenario(&format!(
            "target: http://127.0.0.1:9\n{extra}flows:\n  - steps: [ {{ get: / }} ]\n"
        ));
        let out = throng_bin()
            .arg("validate")
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "attempt {i} was accepted");
        assert!(!dir.path().join("PWNED").exists());
    }
    for call in ["shell('id')", "exec('id')", "system('id')", "env.PATH | sh"] {
        let (dir, path) = scenario(&format!(
            "target: http://127.0.0.1:9\nflows:\n  - steps: [ {{ get: \"/{{{{ {call} }}}}\" }} ]\n"
        ));
        let out = throng_bin()
            .arg("validate")
            .arg(&path)
            .env("PATH", "/usr/bin:/bin")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{call} compiled");
    }
    // And nothing in throng starts a process: no source file of any crate
    // names a way to.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut sources = vec![root.join("crates")];
    let mut scanned = 0;
    while let Some(dir) = sources.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                // Tests start `throng` itself; only what ships counts.
                if name != "tests" && name != "target" {
                    sources.push(path);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let text = std::fs::read_to_string(&path).unwrap();
                for way in [
                    "process::Command",
                    "Command::new",
                    "os::unix::process",
                    "libc::exec",
                    "libc::system",
                    "posix_spawn",
                ] {
                    assert!(!text.contains(way), "{} uses {way}", path.display());
                }
                scanned += 1;
            }
        }
    }
    assert!(scanned > 50, "{scanned} files");
}

/// `throng run ARGS --requests 5 --out OUT` in a network namespace of its
/// own, with no interface up: a name lookup fails at once, and nothing
/// leaves the machine.
fn run_in_own_netns(args: &[&std::ffi::OsStr], out: &std::path::Path) -> std::process::Output {
    std::process::Command::new("unshare")
        .arg("--net")
        .arg(env!("CARGO_BIN_EXE_throng"))
        .arg("run")
        .args(args)
        .args(["--requests", "5", "--out"])
        .arg(out)
        .output()
        .expect("unshare (util-linux) runs the test in a network namespace of its own")
}

#[test]
fn a_target_that_does_not_resolve_stops_cleanly_and_says_why() {
    // Looked up in a network namespace of this test's own, with no
    // interface up: the lookup fails at once, and nothing leaves the
    // machine (its resolver is off loopback).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let url = std::ffi::OsStr::new("http://no-such-host.invalid/");
    let o = run_in_own_netns(&["--url".as_ref(), url], &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot resolve \"no-such-host.invalid\"")
            && stderr.contains("check the host name"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(res["status"], "aborted");
    assert_eq!(num(&res, "totals.requests"), 0.0);
    assert!(
        res["stop_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("nothing was sent: cannot resolve")),
        "{res}"
    );
}

#[test]
fn http2_follows_redirects_on_its_shared_connection() {
    let srv = server::h2c();
    let r = crate::throng(&["--url", &srv.url("/moved"), "--http2", "--requests", "5"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let res = r.results.unwrap();
    assert_eq!(num(&res, "endpoints.GET /moved.status.200"), 5.0, "{res}");
    assert_eq!(num(&res, "totals.redirects"), 5.0);
    assert_eq!(srv.seen.requests.load(Ordering::Relaxed), 10);
}

#[test]
fn an_allowed_host_that_does_not_resolve_stops_the_run_before_it_sends() {
    // A redirect may lead to `allowed_hosts`, so they are resolved when
    // the run starts; one that does not resolve stops it then, with its
    // name, and its results say nothing was sent. Looked up in a network
    // namespace of this test's own, as above: nothing leaves the machine.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("sso.yaml");
    std::fs::write(
        &scenario,
        "target: http://127.0.0.1:9\nallowed_hosts: [sso.example.invalid]\nflows:\n  - steps: [ { get: /login } ]\n",
    )
    .unwrap();
    let out = dir.path().join("results.json");
    let o = run_in_own_netns(&[scenario.as_os_str()], &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot resolve \"sso.example.invalid\""),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(num(&res, "totals.requests"), 0.0);
    assert_eq!(res["status"], "aborted");
}
