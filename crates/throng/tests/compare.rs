//! `throng compare` of separate runs against releases v1 and v2 of the
//! lab, with one baseline and with two pooled. A test binary of its own: two runs minutes apart compare well
//! only on a quiet machine, and the end-to-end tests beside it in the `it`
//! binary load both cores (cargo runs test binaries one by one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::process::Stdio;

use serde_json::Value;

use support::run::{
    assert_v2_regressed_where_slowed, example, lab_with, throng_bin, verdicts, SLOWED,
};

#[test]
fn compare_flags_release_v2_where_it_is_slower_and_nowhere_else() {
    let v1 = lab_with(|_| {});
    let v2 = lab_with(|c| c.release = lab::Release::V2);
    let dir = tempfile::tempdir().unwrap();
    let scenario = example("compare-releases.yaml");
    let mut files = Vec::new();
    for (lab, name) in [(&v1, "v1.json"), (&v2, "v2.json"), (&v1, "v1-again.json")] {
        let out = dir.path().join(name);
        let url = lab.url();
        let status = throng_bin()
            .args(["run", &scenario, "--target", &url, "--quiet"])
            .args(["--rate", "20", "--duration", "6s"])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{name}");
        files.push(out);
    }
    // The load is light: v2's slow pages hold the lab's database
    // connections and CPU, and at a heavier load its logins queue behind
    // them (a real knock-on slowdown, but not what this test is about).
    // Two runs minutes apart on a shared machine differ by more than 10%
    // on sub-millisecond endpoints whatever the release (the reason for
    // --ab); v2's pages are several times slower, so a wide tolerance
    // still catches them.
    let compare = |format: &str| {
        let o = throng_bin()
            .arg("compare")
            .args(&files[..2])
            .args(["--format", format, "--tolerance", "50%"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        (o.status.code(), text)
    };
    let (_, text) = compare("text");
    eprintln!("{text}");
    let (code, json) = compare("json");
    assert_eq!(code, Some(1), "a regression exits 1: {json}");
    let json: Value = serde_json::from_str(&json).expect("--format json is JSON");
    assert_v2_regressed_where_slowed(&json);
    let (_, md) = compare("markdown");
    assert!(md.starts_with("### throng compare: **Regression**"), "{md}");
    assert!(md.contains("| `fund` |"), "{md}");
    assert!(text.contains("3 of 6 endpoints regressed"), "{text}");
    // The HTML page, written by compare and again from its JSON file.
    let dir = tempfile::tempdir().unwrap();
    let (json_file, page, again) = (
        dir.path().join("c.json"),
        dir.path().join("c.html"),
        dir.path().join("again.html"),
    );
    let o = throng_bin()
        .arg("compare")
        .args(&files[..2])
        .arg("--out")
        .arg(&json_file)
        .arg("--report")
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(">Regression<") && html.contains(">fund<"),
        "{html}"
    );
    let o = throng_bin()
        .arg("report")
        .arg(&json_file)
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);

    // Both v1 runs as the baseline, pooled, at the default tolerance:
    // v2's pages still regress, and the outputs say what was pooled.
    let o = throng_bin()
        .arg("compare")
        .args([&files[0], &files[2], &files[1]])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let pooled: Value = serde_json::from_slice(&o.stdout).unwrap();
    let v1_requests = |f: &std::path::Path| {
        let r: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        r["totals"]["requests"].as_u64().unwrap()
    };
    assert_eq!(pooled["baseline_runs"], 2);
    assert_eq!(pooled["baselines"].as_array().unwrap().len(), 2);
    assert_eq!(
        pooled["base"]["requests"].as_u64().unwrap(),
        v1_requests(&files[0]) + v1_requests(&files[2])
    );
    assert_eq!(pooled["paired"], false);
    let v = verdicts(&pooled);
    for name in SLOWED {
        assert!(
            v.iter()
                .any(|(e, verdict)| e == name && verdict == "regression"),
            "{name}: {v:?}"
        );
    }
    let o = throng_bin()
        .arg("compare")
        .args([&files[0], &files[2], &files[1]])
        .args(["--format", "markdown"])
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.contains("\nTrust: separate runs, 2 baselines; the intervals include "),
        "{md}"
    );
    // A floor that is not a duration is a usage error that says so.
    let o = throng_bin()
        .arg("compare")
        .args(&files[..2])
        .args(["--min-change", "a little"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--min-change \"a little\""));

    // The same file against itself: nothing changed, exit 0.
    let o = throng_bin()
        .arg("compare")
        .arg(&files[0])
        .arg(&files[0])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}
