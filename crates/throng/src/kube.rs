//! `throng kube`: Kubernetes manifests that run a scenario as N segments
//! on N pods and merge their results. The mechanism is what a user can
//! run by hand (`--segment`, `--start-file`, `throng merge`); the
//! manifests only wire it up:
//!
//! - a ConfigMap with the scenario and every data file it reads, mounted
//!   at `/scenario` with the scenario's relative paths kept;
//! - a ReadWriteMany volume at `/results`, where each run has a folder;
//! - an Indexed Job of N pods (completions = parallelism = N), each
//!   running segment `$(JOB_COMPLETION_INDEX)/N`, all sharing one start
//!   time through a file on the volume (the first pod to start writes
//!   it); `backoffLimit: 0`, so a failed pod is never re-run to send its
//!   load twice: the merge reports the segment missing instead;
//! - a Job that waits for the segments' files and merges them into one
//!   results file, HTML report and JUnit file on the volume.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use serde_json::{json, Value};

use crate::args::KubeArgs;
use crate::{exit, Failure};

/// A data file the scenario reads: its name as written, and its bytes.
type DataFile = (String, Vec<u8>);

/// A ConfigMap holds at most 1 MiB.
const CONFIGMAP_LIMIT: usize = 1024 * 1024;

/// Where pods mount the scenario and the results.
const SCENARIO_DIR: &str = "/scenario";
const RESULTS_DIR: &str = "/results";

pub fn kube(a: &KubeArgs) -> Result<u8, Failure> {
    say_part!("{}", manifests(a, SystemTime::now())?);
    Ok(exit::OK)
}

/// The manifests' YAML; `now` names the run.
pub fn manifests(a: &KubeArgs, now: SystemTime) -> Result<String, Failure> {
    if a.workers == 0 {
        return Err(Failure::usage(anyhow!("--workers must be at least 1")));
    }
    check_name("--namespace", &a.namespace)?;
    if let Some(secret) = &a.data_from_secret {
        check_name("--data-from-secret", secret)?;
    }
    let start_delay = plan::parse_duration(&a.start_delay).map_err(Failure::usage)?;
    let (text, model, data, target) = compile_as_pods_will(a)?;
    if is_loopback(&target.host) {
        eprintln!(
            "warning: the target {} is a loopback address: inside a worker pod that is the pod \
             itself, not this machine\n  = hint: give --target an address the pods reach, e.g. a \
             Service: --target http://shop.default.svc.cluster.local:8080",
            target.url()
        );
    }
    let run = Run::new(now);
    let n = a.workers;
    let (config, items) = config_map(&text, &data, a.data_from_secret.is_some())?;
    match (&a.data_from_secret, data.is_empty()) {
        (Some(secret), false) => eprintln!(
            "{} data file(s) are to come from the Secret {secret}; create it before applying:\n  {}",
            data.len(),
            create_secret(a, secret, &data)
        ),
        (Some(_), true) => {
            eprintln!("warning: --data-from-secret: the scenario reads no data file")
        }
        (None, _) => {}
    }
    // The merge waits for the start, the load, the grace period and a
    // margin for pods that start late.
    let load = model
        .profile()
        .duration()
        .unwrap_or(Duration::from_secs(3600));
    let wait = start_delay + load + Duration::from_secs(10 + 300);
    let docs = documents(a, &run, config, items, wait);
    let secret_line = match (&a.data_from_secret, data.is_empty()) {
        (Some(secret), false) => format!(
            "# Data files from the Secret {secret}: {}\n",
            create_secret(a, secret, &data)
        ),
        _ => String::new(),
    };
    let (ns, prefix, run_id, dir) = (&a.namespace, &run.prefix, &run.id, &run.dir);
    let mut out = format!(
        "# throng kube {}: {n} workers, run {run_id}.\n\
         # kubectl apply -f THIS_FILE; then kubectl -n {ns} logs -f job/{prefix}-merge\n\
         # Results: {dir}/merged.json, report.html and junit.xml on the throng-results volume\n\
         # (deploy/kubernetes/README.md). Generate the manifests again for each run.\n\
         {secret_line}",
        a.scenario.display()
    );
    for doc in &docs {
        let yaml = serde_saphyr::to_string(doc)
            .map_err(|e| Failure::usage(anyhow!("cannot write the manifests: {e}")))?;
        out.push_str("---\n");
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// One run's names: its id (from the time it was made), the prefix of
/// its objects and its folder on the results volume.
struct Run {
    id: String,
    prefix: String,
    dir: String,
}

impl Run {
    fn new(now: SystemTime) -> Run {
        let id = humantime::format_rfc3339_seconds(now)
            .to_string()
            .trim_end_matches('Z')
            .replace(['-', ':'], "")
            .replace('T', "-");
        Run {
            prefix: format!("throng-{id}"),
            dir: format!("{RESULTS_DIR}/{id}"),
            id,
        }
    }
}

/// Compiles the scenario as the pods will, noting each data file it
/// reads: its text, its load model and the data files.
#[allow(clippy::type_complexity)]
fn compile_as_pods_will(
    a: &KubeArgs,
) -> Result<(String, plan::Model, Vec<DataFile>, plan::Target), Failure> {
    let text = std::fs::read_to_string(&a.scenario)
        .map_err(|e| Failure::usage(anyhow!("cannot read {}: {e}", a.scenario.display())))?;
    let base = a
        .scenario
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let read: Arc<Mutex<Vec<DataFile>>> = Arc::default();
    let reader: scenario::ReadData = {
        let read = read.clone();
        Arc::new(move |name: &str| {
            let bytes = std::fs::read(base.join(name)).map_err(|e| e.to_string())?;
            if let Ok(mut r) = read.lock() {
                r.push((name.to_string(), bytes.clone()));
            }
            Ok(bytes)
        })
    };
    for secret in &a.env_from_secrets {
        check_name("--env-from-secret", secret)?;
    }
    // The pods read `{{ env.NAME }}` from a Secret, never from the
    // manifests: here a name the local environment lacks is only a
    // placeholder, for the compilation that checks the file.
    let wanted = env_names(&text);
    if !wanted.is_empty() && a.env_from_secrets.is_empty() {
        let names = wanted.join(", ");
        return Err(Failure::usage(anyhow!(
            "the scenario reads {names} from the environment, which the worker pods do not have: \
             put the values in a Secret (kubectl -n {ns} create secret generic throng-env \
             --from-literal={first}=...) and pass --env-from-secret throng-env",
            ns = a.namespace,
            first = wanted[0],
        )));
    }
    let mut env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    for name in &wanted {
        env.entry(name.clone())
            .or_insert_with(|| "(from the Secret)".into());
    }
    let options = scenario::Options {
        target: a.target.clone(),
        env,
        read_data: Some(reader),
    };
    let name = a.scenario.display().to_string();
    let compiled = scenario::compile(&name, &text, &options).map_err(Failure::usage)?;
    let (model, _) = compiled.load.build().map_err(Failure::usage)?;
    let data = read.lock().map(|r| r.clone()).unwrap_or_default();

    Ok((text, model, data, compiled.scenario.target))
}

/// Whether `host` names this machine: `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `kubectl create secret` that holds the data files under the keys
/// the pods mount them from, read from where they are here.
fn create_secret(a: &KubeArgs, secret: &str, data: &[DataFile]) -> String {
    let base = a.scenario.parent().unwrap_or(Path::new(""));
    let files: Vec<String> = data
        .iter()
        .enumerate()
        .map(|(i, (file, _))| {
            format!(
                "--from-file={}={}",
                data_key(i, file),
                base.join(file).display()
            )
        })
        .collect();
    format!(
        "kubectl -n {} create secret generic {secret} {}",
        a.namespace,
        files.join(" ")
    )
}

/// The key a data file has in the ConfigMap or the Secret.
fn data_key(i: usize, file: &str) -> String {
    format!("data-{i}-{file}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The ConfigMap's data: the scenario, and each data file under a key of
/// its own (unless `in_secret`: then the files are the Secret's, under
/// the same keys); and the items that mount them at their paths.
fn config_map(
    text: &str,
    data: &[DataFile],
    in_secret: bool,
) -> Result<(serde_json::Map<String, Value>, Vec<Value>), Failure> {
    let mut config = serde_json::Map::new();
    let mut items = vec![json!({"key": "scenario.yaml", "path": "scenario.yaml"})];
    config.insert("scenario.yaml".into(), Value::String(text.to_string()));
    let mut size = text.len();
    for (i, (file, bytes)) in data.iter().enumerate() {
        let rel = Path::new(file);
        if rel.is_absolute() || rel.components().any(|c| c.as_os_str() == "..") {
            return Err(Failure::usage(anyhow!(
                "the data file {file:?} is outside the scenario's folder: a ConfigMap keeps paths \
                 below it only (move the file beside the scenario)"
            )));
        }
        let key = data_key(i, file);
        items.push(json!({"key": key, "path": file}));
        if in_secret {
            continue;
        }
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Failure::usage(anyhow!("the data file {file:?} is not UTF-8 text")))?;
        size += text.len();
        config.insert(key, Value::String(text));
    }
    if size > CONFIGMAP_LIMIT {
        return Err(Failure::usage(anyhow!(
            "the scenario and its data files are {size} bytes, over a ConfigMap's 1 MiB: \
             build them into the image, or mount them from a volume"
        )));
    }

    Ok((config, items))
}

/// The worker pods' arguments and the merge pod's.
fn pod_args(a: &KubeArgs, run: &Run, wait: Duration) -> (Vec<String>, Vec<String>) {
    let (n, dir) = (a.workers, &run.dir);
    let mut worker_args = vec![
        "run".to_string(),
        format!("{SCENARIO_DIR}/scenario.yaml"),
        "--segment".into(),
        format!("$(JOB_COMPLETION_INDEX)/{n}"),
        "--start-file".into(),
        format!("{dir}/start-at"),
        "--start-delay".into(),
        a.start_delay.clone(),
        "--out".into(),
        format!("{dir}/segment-$(JOB_COMPLETION_INDEX).json"),
    ];
    if let Some(t) = &a.target {
        worker_args.extend(["--target".into(), t.clone()]);
    }
    worker_args.extend(a.run_args.iter().cloned());
    let merge_args = vec![
        "merge".to_string(),
        dir.clone(),
        "--expect".into(),
        n.to_string(),
        "--wait".into(),
        format!("{}s", wait.as_secs()),
        "--out".into(),
        format!("{dir}/merged.json"),
        "--report".into(),
        format!("{dir}/report.html"),
        "--junit".into(),
        format!("{dir}/junit.xml"),
    ];
    (worker_args, merge_args)
}

/// The Namespace, the results volume's claim, the ConfigMap, the workers'
/// Indexed Job and the merge Job.
fn documents(
    a: &KubeArgs,
    run: &Run,
    config: serde_json::Map<String, Value>,
    items: Vec<Value>,
    wait: Duration,
) -> [Value; 5] {
    let (worker_args, merge_args) = pod_args(a, run, wait);
    let (n, prefix, run_id) = (a.workers, &run.prefix, &run.id);
    let labels = json!({"app.kubernetes.io/name": "throng", "throng/run": run_id});
    let ns = &a.namespace;
    // The scenario from the ConfigMap; its data files from there too, or
    // from the Secret, in one folder.
    let scenario_volume = match &a.data_from_secret {
        Some(secret) if items.len() > 1 => {
            let (scenario, files) = items.split_at(1);
            json!({"name": "scenario", "projected": {"sources": [
                {"configMap": {"name": format!("{prefix}-scenario"), "items": scenario}},
                {"secret": {"name": secret, "items": files}},
            ]}})
        }
        _ => {
            json!({"name": "scenario", "configMap": {"name": format!("{prefix}-scenario"), "items": items}})
        }
    };
    let volumes = json!([
        scenario_volume,
        {"name": "results", "persistentVolumeClaim": {"claimName": "throng-results"}},
    ]);
    let mounts = json!([
        {"name": "scenario", "mountPath": SCENARIO_DIR, "readOnly": true},
        {"name": "results", "mountPath": RESULTS_DIR},
    ]);
    let pod = |role: &str, args: Vec<String>, env: Value| {
        json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "throng", "throng/run": run_id, "throng/role": role}},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "fsGroup": 10001},
                "containers": [{
                    "name": role,
                    "image": a.image,
                    "args": args,
                    "env": env,
                    "volumeMounts": mounts,
                }],
                "volumes": volumes,
            }
        })
    };
    let mut worker_pod = pod(
        "worker",
        worker_args,
        json!([{
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
        }]),
    );
    if !a.env_from_secrets.is_empty() {
        worker_pod["spec"]["containers"][0]["envFrom"] = a
            .env_from_secrets
            .iter()
            .map(|name| json!({"secretRef": {"name": name}}))
            .collect();
    }
    // One worker per node where the cluster has room: a worker's load is
    // bounded by its machine.
    worker_pod["spec"]["topologySpreadConstraints"] = json!([{
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"throng/run": run_id, "throng/role": "worker"}},
    }]);
    let mut pvc_spec = json!({
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": a.volume_size}},
    });
    if let Some(class) = &a.storage_class {
        pvc_spec["storageClassName"] = json!(class);
    }
    [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "throng-results", "namespace": ns, "labels": {"app.kubernetes.io/name": "throng"}},
            "spec": pvc_spec,
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{prefix}-scenario"), "namespace": ns, "labels": labels},
            "data": config,
        }),
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": format!("{prefix}-workers"), "namespace": ns, "labels": labels},
            "spec": {
                "completionMode": "Indexed",
                "completions": n,
                "parallelism": n,
                "backoffLimit": 0,
                "template": worker_pod,
            }
        }),
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": format!("{prefix}-merge"), "namespace": ns, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "template": pod("merge", merge_args, json!([])),
            }
        }),
    ]
}

/// Kubernetes names: lower-case letters, digits and '-'.
/// The environment variables a scenario's templates read
/// (`{{ env.NAME }}`), in order of first use.
fn env_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in plan::expressions(text) {
        if let Some(name) = e.strip_prefix("env.").map(str::trim) {
            if !name.is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn check_name(flag: &str, name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(anyhow!(
            "{flag} {name:?} is not a Kubernetes name: lower-case letters, digits and '-', at most 63"
        )))
    }
}
