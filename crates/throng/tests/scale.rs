//! Scaling out: segments of one run in separate processes, started
//! together, merged into one results file; and the Kubernetes manifests'
//! wiring, run here with local processes in place of pods.
//!
//! A test binary of its own: its tests start several throng processes at
//! once, and beside the `it` binary's timing-sensitive lab tests that load
//! made those fail (a bottleneck test saw the generator's lag instead).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use support::run::{num, throng_bin};
use support::server::{self, Mode};

/// `throng run ARGS --out FILE`: the exit code and the results.
fn throng_run(args: &[&str], out: &Path) -> (i32, Value) {
    let o = throng_bin()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let code = o.status.code().unwrap_or(-1);
    assert!(
        out.exists(),
        "no results: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (code, read(out))
}

/// A scenario that walks `rows` unique users, one request each, with a
/// rate threshold only the whole run can hold.
fn unique_users_scenario(dir: &Path, rows: usize, rate: u32) -> PathBuf {
    let csv: String = std::iter::once("email\n".to_string())
        .chain((0..rows).map(|i| format!("user{i}@example.com\n")))
        .collect();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/users.csv"), csv).unwrap();
    let path = dir.join("users.yaml");
    std::fs::write(
        &path,
        format!(
            "target: http://127.0.0.1:1\n\
             load: {{ rate: {rate}, duration: 2s }}\n\
             data:\n  users: {{ file: data/users.csv, pick: unique }}\n\
             flows:\n  - steps:\n      - get: \"/hello/{{{{ users.email }}}}\"\n        name: hello\n\
             thresholds: [ \"rate>{}\" ]\n",
            rate * 9 / 10
        ),
    )
    .unwrap();
    path
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn start_in(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(secs)).to_string()
}

fn spawn_segment(scenario: &Path, target: &str, seg: &str, extra: &[&str], out: &Path) -> Child {
    throng_bin()
        .arg("run")
        .arg(scenario)
        .args(["--target", target, "--segment", seg, "--quiet"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn merge(args: &[&str]) -> (i32, String, String) {
    let o = throng_bin().arg("merge").args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn four_segments_merge_into_exactly_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = unique_users_scenario(dir.path(), 2000, 300);
    let scenario_arg = scenario.to_string_lossy().into_owned();

    // The whole run in one process.
    let one = server::http1(Mode::App);
    let (code, single) = throng_run(
        &[&scenario_arg, "--target", &one.url(""), "--quiet"],
        &dir.path().join("single.json"),
    );
    assert_eq!(code, 0, "{single}");

    // The same in four processes, with different worker counts, one start.
    let four = server::http1(Mode::App);
    let at = start_in(3);
    let workers = ["1", "2", "1", "3"];
    let children: Vec<(PathBuf, Child)> = (0..4)
        .map(|k| {
            let out = dir.path().join(format!("seg-{k}.json"));
            let seg = format!("{k}/4");
            let extra = ["--start-at", at.as_str(), "--workers", workers[k]];
            let child = spawn_segment(&scenario, &four.url(""), &seg, &extra, &out);
            (out, child)
        })
        .collect();
    let mut segments = Vec::new();
    for (out, child) in children {
        let o = child.wait_with_output().unwrap();
        // A segment's share fails the rate threshold, but thresholds are
        // the merge's to judge.
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        segments.push((out.clone(), read(&out)));
    }
    for (k, (_, s)) in segments.iter().enumerate() {
        assert_eq!(s["segment"]["index"].as_u64(), Some(k as u64));
        assert_eq!(s["started_at"].as_str(), Some(at.as_str()));
        assert_eq!(num(s, "load.rate"), 75.0);
        assert_eq!(s["thresholds"][0]["ok"], false, "segment {k} alone is 75/s");
    }
    // No unique row was used twice, and all 600 arrivals were sent.
    let paths = four.seen.paths.lock().unwrap().clone();
    assert_eq!(paths.len(), 600, "600 different users");
    assert!(paths.values().all(|&n| n == 1));

    let merged_path = dir.path().join("merged.json");
    let seg_args: Vec<String> = segments
        .iter()
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    let mut args: Vec<&str> = seg_args.iter().map(String::as_str).collect();
    let merged_arg = merged_path.to_string_lossy().into_owned();
    args.extend(["--out", &merged_arg]);
    let (code, stdout, stderr) = merge(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("4/4 segments; results cover the whole planned load"),
        "{stdout}"
    );
    let merged = read(&merged_path);

    // Totals: the single run's, to the request; the rate within 1%.
    assert_eq!(num(&merged, "totals.requests"), 600.0);
    assert_eq!(num(&single, "totals.requests"), 600.0);
    let (mr, sr) = (num(&merged, "totals.rate"), num(&single, "totals.rate"));
    assert!((mr - sr).abs() / sr < 0.01, "merged {mr}/s, single {sr}/s");
    assert_eq!(merged["thresholds"][0]["ok"], true);
    assert_eq!(num(&merged, "load.rate"), 300.0);

    // Percentiles are those of the union of every segment's samples: their
    // histograms added, never their percentiles averaged.
    let mut union = stats::Hist::default();
    for (p, _) in &segments {
        let r = report::Results::from_json(&std::fs::read_to_string(p).unwrap()).unwrap();
        union.merge(&r.raw.latency);
    }
    let want = union.summary();
    for (q, v) in [
        ("p50", want.p50),
        ("p90", want.p90),
        ("p99", want.p99),
        ("max", want.max),
    ] {
        assert_eq!(num(&merged, &format!("latency_ms.{q}")), v, "{q}");
    }
    // The timelines add second by second.
    for t in 0..2 {
        let sum: f64 = segments
            .iter()
            .map(|(_, s)| num(&s["timeline"][t], "requests"))
            .sum();
        assert_eq!(num(&merged["timeline"][t], "requests"), sum);
    }
    // The merged file is an ordinary results file: compare reads it.
    let o = throng_bin()
        .arg("compare")
        .arg(&merged_path)
        .arg(&merged_path)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_killed_segment_leaves_a_merge_that_covers_three_quarters() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = unique_users_scenario(dir.path(), 4000, 200);
    let srv = server::http1(Mode::Ok);
    let results = dir.path().join("results");
    let start_file = results.join("start-at");
    let start_file = start_file.to_string_lossy().into_owned();
    // The segments share a start through a file, as pods do.
    let mut children: Vec<Child> = (0..4)
        .map(|k| {
            let out = results.join(format!("segment-{k}.json"));
            let extra = [
                "--start-file",
                start_file.as_str(),
                "--start-delay",
                "2s",
                "--duration",
                "3s",
                "--workers",
                "1",
            ];
            let child = spawn_segment(&scenario, &srv.url(""), &format!("{k}/4"), &extra, &out);
            // The first one creates the folder and the start file.
            if k == 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            child
        })
        .collect();
    // Segment 2 dies in the middle of the load, leaving nothing.
    std::thread::sleep(Duration::from_millis(3000));
    children[2].kill().unwrap();
    for (k, c) in children.iter_mut().enumerate() {
        let status = c.wait().unwrap();
        if k != 2 {
            assert_eq!(status.code(), Some(0), "segment {k}");
        }
    }
    let dir_arg = results.to_string_lossy().into_owned();
    let out = results.join("merged.json");
    let out_arg = out.to_string_lossy().into_owned();
    let (code, stdout, stderr) = merge(&[&dir_arg, "--expect", "4", "--out", &out_arg]);
    assert_eq!(
        code, 1,
        "a missing segment fails the merge: {stdout}{stderr}"
    );
    assert!(
        stdout
            .contains("3/4 segments; results cover 75.0% of the planned load (segment 2 missing)"),
        "{stdout}"
    );
    let merged = read(&out);
    assert_eq!(merged["coverage"]["missing"], serde_json::json!([2]));
    assert_eq!(num(&merged, "coverage.fraction"), 0.75);
    // Three quarters of 200/s for 3 s.
    assert_eq!(num(&merged, "totals.requests"), 450.0);
}

/// The YAML documents of `throng kube`'s output.
fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .skip(1)
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{e}\n{doc}")))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str, name_ends: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(name_ends))
        })
        .unwrap_or_else(|| panic!("no {kind} named *{name_ends}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kube_manifests_wire_segments_volumes_and_the_merge_and_work_here() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = unique_users_scenario(dir.path(), 1000, 90);
    let srv = server::http1(Mode::App);
    let o = throng_bin()
        .arg("kube")
        .arg(&scenario)
        .args(["--workers", "3", "--image", "registry.local/throng:1"])
        .args([
            "--namespace",
            "loadtest",
            "--target",
            &srv.url(""),
            "--start-delay",
            "3s",
        ])
        .arg("--run-arg=--workers")
        .arg("--run-arg=1")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Here the target is on loopback: in a pod, that is the pod itself.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("is a loopback address: inside a worker pod that is the pod itself")
            && stderr.contains("hint: give --target an address the pods reach"),
        "{stderr}"
    );
    let yaml = String::from_utf8(o.stdout).unwrap();
    let docs = documents(&yaml);
    assert_eq!(docs.len(), 5, "{yaml}");
    for d in &docs[1..] {
        assert_eq!(d["metadata"]["namespace"], "loadtest");
    }

    // The ConfigMap holds the scenario and its data file, mounted at their
    // relative paths.
    let cm = kind(&docs, "ConfigMap", "-scenario");
    let job = kind(&docs, "Job", "-workers");
    let pod = &job["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().unwrap();
    let cm_volume = volumes.iter().find(|v| v["configMap"].is_object()).unwrap();
    assert_eq!(cm_volume["configMap"]["name"], cm["metadata"]["name"]);
    let items = cm_volume["configMap"]["items"].as_array().unwrap();
    let paths: Vec<&str> = items.iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["scenario.yaml", "data/users.csv"]);
    for i in items {
        assert!(cm["data"][i["key"].as_str().unwrap()].is_string());
    }
    // The results volume is one claim every pod can write.
    let pvc = kind(&docs, "PersistentVolumeClaim", "throng-results");
    assert_eq!(
        pvc["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"])
    );

    // An Indexed Job of 3, never retried, each pod's segment from its index.
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 3);
    assert_eq!(job["spec"]["parallelism"], 3);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.local/throng:1");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert_eq!(c["env"][0]["name"], "JOB_COMPLETION_INDEX");
    let mounts: Vec<(String, String)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().into(),
                m["mountPath"].as_str().unwrap().into(),
            )
        })
        .collect();
    let volume_names: Vec<&str> = volumes
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for (name, _) in &mounts {
        assert!(
            volume_names.contains(&name.as_str()),
            "{name} is mounted but not a volume"
        );
    }
    let args = strings(&c["args"]);
    let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(after("--segment"), "$(JOB_COMPLETION_INDEX)/3");
    assert!(after("--out").ends_with("/segment-$(JOB_COMPLETION_INDEX).json"));
    let results_mount = &mounts.iter().find(|m| m.0 == "results").unwrap().1;
    let run_dir = Path::new(&after("--out")).parent().unwrap().to_path_buf();
    assert!(run_dir.starts_with(results_mount));
    assert!(Path::new(&after("--start-file")).starts_with(&run_dir));

    // The merge Job waits for the 3 segments in the same folder.
    let merge_job = kind(&docs, "Job", "-merge");
    let margs = strings(&merge_job["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert_eq!(
        margs[..2],
        ["merge".to_string(), run_dir.to_string_lossy().into_owned()]
    );
    let mafter = |flag: &str| margs[margs.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(mafter("--expect"), "3");

    // Now the same wiring with processes for pods: the ConfigMap's files
    // laid out as the volume would, /results a folder here.
    let root = dir.path().join("pod");
    let scenario_mount = &mounts.iter().find(|m| m.0 == "scenario").unwrap().1;
    for i in items {
        let file = root
            .join(scenario_mount.trim_start_matches('/'))
            .join(i["path"].as_str().unwrap());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            cm["data"][i["key"].as_str().unwrap()].as_str().unwrap(),
        )
        .unwrap();
    }
    let local = |arg: &str, index: Option<usize>| -> String {
        let mut a = arg.to_string();
        if let Some(k) = index {
            a = a.replace("$(JOB_COMPLETION_INDEX)", &k.to_string());
        }
        for mount in [scenario_mount, results_mount] {
            if a.starts_with(mount.as_str()) {
                a = format!("{}{a}", root.display());
            }
        }
        a
    };
    let pods: Vec<Child> = (0..3)
        .map(|k| {
            throng_bin()
                .args(args.iter().map(|a| local(a, Some(k))))
                .arg("--quiet")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (k, p) in pods.into_iter().enumerate() {
        let o = p.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "pod {k}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = throng_bin()
        .args(margs.iter().map(|a| local(a, None)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let local_dir = PathBuf::from(local(&run_dir.to_string_lossy(), None));
    let merged = read(&local_dir.join("merged.json"));
    assert_eq!(num(&merged, "totals.requests"), 180.0);
    assert_eq!(num(&merged, "coverage.segments"), 3.0);
    for file in ["report.html", "junit.xml"] {
        assert!(local_dir.join(file).is_file(), "{file}");
    }
    // 180 unique users, each once.
    let paths = srv.seen.paths.lock().unwrap().clone();
    assert_eq!(paths.len(), 180);
}

#[test]
fn kube_data_files_with_credentials_come_from_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = unique_users_scenario(dir.path(), 3, 10);
    std::fs::write(
        dir.path().join("data/users.csv"),
        "email,password\nuser0@example.com,hunter2-secret\n",
    )
    .unwrap();
    let o = throng_bin()
        .arg("kube")
        .arg(&scenario)
        .args(["--data-from-secret", "throng-data"])
        .args(["--target", "http://shop.default.svc:8080"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("loopback"), "{stderr}");
    // The command that puts the file in the cluster, under the key the
    // pods mount it from.
    let users = dir.path().join("data/users.csv");
    let create = format!(
        "kubectl -n throng create secret generic throng-data --from-file=data-0-data_users.csv={}",
        users.display()
    );
    assert!(stderr.contains(&create), "{stderr}");
    let yaml = String::from_utf8(o.stdout).unwrap();
    assert!(yaml.contains(&create), "the manifests say it too");
    assert!(!yaml.contains("hunter2"), "{yaml}");
    let docs = documents(&yaml);
    let cm = kind(&docs, "ConfigMap", "-scenario");
    let keys: Vec<&String> = cm["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["scenario.yaml"]);
    // One folder: the scenario from the ConfigMap, the file from the Secret.
    for job in ["-workers", "-merge"] {
        let volumes = &kind(&docs, "Job", job)["spec"]["template"]["spec"]["volumes"];
        assert_eq!(
            volumes[0]["projected"]["sources"],
            serde_json::json!([
                {"configMap": {"name": cm["metadata"]["name"], "items": [{"key": "scenario.yaml", "path": "scenario.yaml"}]}},
                {"secret": {"name": "throng-data", "items": [{"key": "data-0-data_users.csv", "path": "data/users.csv"}]}},
            ])
        );
    }
}

#[test]
fn kube_pods_read_a_scenarios_secrets_from_a_secret_never_from_the_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("api.yaml");
    std::fs::write(
        &scenario,
        "target: http://127.0.0.1:9\ndefaults:\n  headers:\n    Authorization: \"Bearer {{ env.API_TOKEN }}\"\nflows:\n  - steps: [ { get: \"/{{ env.TENANT }}/items\" } ]\n",
    )
    .unwrap();
    let kube = |extra: &[&str]| {
        throng_bin()
            .arg("kube")
            .arg(&scenario)
            .args(extra)
            .env("API_TOKEN", "kube-secret-1234")
            .env_remove("TENANT")
            .output()
            .unwrap()
    };
    // Without a Secret the pods could not compile the file: said at once.
    let o = kube(&[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("reads API_TOKEN, TENANT from the environment")
            && stderr.contains("--env-from-secret throng-env"),
        "{stderr}"
    );
    // With one, every worker's environment comes from it, and no value is
    // in the manifests (TENANT is not even set here).
    let o = kube(&["--env-from-secret", "throng-env"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let yaml = String::from_utf8(o.stdout).unwrap();
    assert!(!yaml.contains("kube-secret-1234"), "{yaml}");
    let docs = documents(&yaml);
    let c = &kind(&docs, "Job", "-workers")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["envFrom"],
        serde_json::json!([{"secretRef": {"name": "throng-env"}}])
    );
    let merge = &kind(&docs, "Job", "-merge")["spec"]["template"]["spec"]["containers"][0];
    assert!(merge["envFrom"].is_null(), "the merge reads no scenario");
}
