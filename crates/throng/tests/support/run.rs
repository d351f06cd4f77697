//! Running the real `throng` binary, reading what it wrote, and the lab
//! and tools the end-to-end tests use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The `throng` binary, with no arguments yet and no standard input.
pub fn throng_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_throng"));
    cmd.stdin(Stdio::null());
    cmd
}

/// The number at a dotted path of a JSON value (`"latency_ms.p50"`);
/// panics, naming the path, when it is not a number.
pub fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The path of a file under `examples/`, as a string for argument lists.
pub fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A lab on a free loopback port with 1,000 users (quick to generate),
/// configured further by `f`.
pub fn lab_with(f: impl FnOnce(&mut lab::Config)) -> lab::Lab {
    let mut c = lab::Config {
        users: 1000,
        ..lab::Config::default()
    };
    f(&mut c);
    lab::start(c).expect("the lab starts")
}

/// Runs an example against the lab with extra options: its exit code (0
/// or 1; anything else fails the test) and its results.
pub fn run_example(lab: &lab::Lab, name: &str, extra: &[&str]) -> (i32, Value) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("results.json");
    let o = throng_bin()
        .arg("run")
        .arg(example(name))
        .args(["--target", &lab.url(), "--quiet", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .expect("throng runs");
    let code = o.status.code().unwrap_or(-1);
    assert!(
        [0, 1].contains(&code),
        "exit {code}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (code, read_json(&out))
}

/// What the server was doing, as the findings of `kind` say (their
/// `server` parts).
pub fn server_sides(res: &Value, kind: &str) -> Vec<Value> {
    res["findings"]
        .as_array()
        .expect("a findings array")
        .iter()
        .filter(|f| f["kind"] == kind)
        .filter_map(|f| f.get("server").cloned())
        .collect()
}

/// The series a finding's server part names under `part` (`ceilings`,
/// `in_step`), each by its `series` (and `limit`, for ceilings).
pub fn named_series(server: &Value, part: &str) -> Vec<String> {
    server[part]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| match c["limit"].as_str() {
                    Some(limit) => format!("{} at {limit}", c["series"].as_str().unwrap_or("")),
                    None => c["series"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A counter from the lab's `/metrics`.
pub fn metric(lab: &lab::Lab, name: &str) -> u64 {
    lab.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// The endpoints of `compare-releases.yaml` that release v2 slows, and the
/// ones it leaves alone.
pub const SLOWED: [&str; 3] = ["home", "fund", "lesson"];
pub const UNTOUCHED: [&str; 3] = ["css", "login", "health"];

/// Each endpoint's verdict in a `throng.compare/v1` file.
pub fn verdicts(compare: &Value) -> Vec<(String, String)> {
    assert_eq!(compare["schema"], "throng.compare/v1");
    compare["endpoints"]
        .as_array()
        .expect("an endpoints array")
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap_or_default().to_string(),
                e["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Release v2 regressed the pages it slows and none of the others.
pub fn assert_v2_regressed_where_slowed(compare: &Value) {
    let v = verdicts(compare);
    let of = |name: &str| {
        v.iter()
            .find(|(e, _)| e == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no endpoint {name} in {v:?}"))
    };
    for name in SLOWED {
        assert_eq!(of(name), "regression", "{name}: {v:?}");
    }
    for name in UNTOUCHED {
        assert_ne!(of(name), "regression", "{name}: {v:?}");
    }
}

/// Set by `.ci/run`, which installs every tool a test may need: a missing
/// tool is then a failure, not a skip.
pub const REQUIRE_TOOLS: &str = "THRONG_REQUIRE_TOOLS";

/// The first of `names` that runs (`NAME --version` succeeds). When none
/// does, says loudly that `what` is skipped and returns `None`, or fails
/// when [`REQUIRE_TOOLS`] is set.
pub fn tool(names: &[&str], install: &str, what: &str) -> Option<PathBuf> {
    tool_probed(names, "--version", install, what)
}

/// [`tool`], for tools that answer another option than `--version`
/// (`nginx -v`).
pub fn tool_probed(names: &[&str], probe: &str, install: &str, what: &str) -> Option<PathBuf> {
    let found = names.iter().find(|n| {
        Command::new(n)
            .arg(probe)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    match found {
        Some(n) => Some(PathBuf::from(n)),
        None if std::env::var_os(REQUIRE_TOOLS).is_some() => panic!(
            "{} is needed for {what} ({install}), and {REQUIRE_TOOLS} is set",
            names.join(" or ")
        ),
        None => {
            // Straight to the process's stderr: libtest hides what a
            // passing test prints with eprintln!, and a skip must show.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: {what}: none of {} is installed ({install}). \
                 .ci/run installs it and turns this skip into a failure. ***\n",
                names.join(", ")
            );
            None
        }
    }
}

/// The machine's cores, shared out between the tests of one binary (they
/// run in parallel, two at a time on a 2-core machine).
///
/// A test that drives a target past what the cores can serve takes them
/// all ([`all_cores`]); a test whose figures a busy machine would bend (a
/// latency ratio, a comparison's verdict) takes a [`steady_cores`] share,
/// which only keeps those tests out. The others run as they always did.
/// Without this, `i01_i12_release_v2_is_an_order_of_magnitude_slower`
/// failed in CI beside the I11 bottleneck test, which keeps 1.7 of the 2
/// cores busy: v1's p50 was 1.44 ms where its fastest response took 0.20.
static CORES: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Every core, until the guard is dropped: see [`CORES`].
pub fn all_cores() -> std::sync::RwLockWriteGuard<'static, ()> {
    // A test that failed holding the guard poisons it; the cores are free.
    CORES.write().unwrap_or_else(|e| e.into_inner())
}

/// Cores no test of [`all_cores`]'s kind is filling, until the guard is
/// dropped: see [`CORES`].
pub fn steady_cores() -> std::sync::RwLockReadGuard<'static, ()> {
    CORES.read().unwrap_or_else(|e| e.into_inner())
}
