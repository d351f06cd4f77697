//! What a run is, decided once, before it starts: [`prepare`] turns `throng
//! run`'s typed arguments and the scenario they name into a [`RunSpec`]
//! (the plan, how it is judged, where its results go, its data feeds);
//! the demo, capacity's steps and replay build theirs directly. Nothing
//! after this reads the command line: the controller drives a `RunSpec`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use analysis::{AbortRule, RecoveryCheck, Threshold};
use anyhow::{anyhow, Context};
use plan::{
    Arrivals, HttpVersion, LoadSpec, Model, ModelKind, Plan, Profile, RequestSpec, Scenario,
};
use report::{LoadInfo, RunInfo, Status};

use crate::args::{ArrivalsArg, Exports, ModelArg, OutputArgs, RunArgs, RunOptions};
use crate::watch::WatchSpec;
use crate::Failure;

/// How often workers report progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// One run, fully decided.
pub struct RunSpec {
    /// What the engine runs.
    pub plan: Plan,
    /// How the run is judged, during it and at its end.
    pub judging: Judging,
    /// The planned load, as the results file records it.
    pub load: LoadInfo,
    /// Where the results go, and what the console shows.
    pub outputs: Outputs,
    /// A replay's request feeds, one per worker (empty otherwise).
    pub feeds: Vec<engine::Feed>,
    /// The results' `target`: a `--url` as given, else the scenario's.
    pub target: String,
    /// What is read of the target beside the load: metrics, processes.
    pub watch: WatchSpec,
    /// The load the scenario and the command line asked for, under which
    /// [`RunSpec::with_load`] sets another level.
    given_load: LoadSpec,
}

/// How a run is judged.
#[derive(Debug, Clone, Default)]
pub struct Judging {
    /// The file's thresholds, then the command line's, each naming only
    /// endpoints the run has.
    pub thresholds: Vec<Threshold>,
    /// What an A/B run's comparison calls no change (a fraction).
    pub tolerance: f64,
    /// The file's recovery check.
    pub recovery: Option<RecoveryCheck>,
    /// `--abort-if` rules, judged on each progress period.
    pub abort_if: Vec<AbortRule>,
    /// Stop once an error threshold is clearly lost.
    pub abort_on_fail: bool,
}

/// Where a run's results go, and what the console shows meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// The results file.
    pub out: Option<PathBuf>,
    /// Reports and exports written at the end.
    pub exports: Exports,
    /// How often `out` is rewritten with the results so far; `None` when
    /// it is not (no `out`, an A/B run, or turned off).
    pub checkpoint_every: Option<Duration>,
    /// Where Prometheus metrics are served during the run.
    pub metrics_listen: Option<String>,
    /// No progress output.
    pub quiet: bool,
    /// The command line as typed, secrets redacted, for the results.
    pub command: String,
}

impl Outputs {
    /// The outputs `throng run` was told, with the checkpoints it can
    /// have: none without a results file, none for an A/B run (whose
    /// results file is a comparison written at the end).
    pub fn new(args: &OutputArgs, ab: bool) -> Outputs {
        let every = args.checkpoint_every;
        Outputs {
            out: args.out.clone(),
            exports: args.exports.clone(),
            checkpoint_every: (!every.is_zero() && args.out.is_some() && !ab)
                .then(|| every.max(PROGRESS_EVERY)),
            metrics_listen: args.metrics_listen.clone(),
            quiet: args.quiet,
            command: redacted_command(),
        }
    }

    /// Fails now, not after a 30-minute run, if a file cannot be written.
    pub fn check(&self) -> Result<(), Failure> {
        crate::output::check_dir("--out", self.out.as_deref())?;
        crate::output::check_export_dirs(&self.exports)
    }
}

/// What a run loads. One value per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// `--url`: one request.
    Url(RequestSpec),
    /// A scenario file.
    File(ScenarioFile),
}

/// A compiled scenario file.
pub struct ScenarioFile {
    /// The path as given.
    pub name: String,
    /// What it compiled to.
    pub compiled: scenario::Compiled,
}

/// Validates `throng run`'s arguments (and the scenario they name) into a
/// run.
pub fn prepare(args: &RunArgs) -> Result<RunSpec, Failure> {
    let o = &args.options;
    check_ab(&o.ab)?;
    // An A/B run's scenario is compiled against its first target.
    let target = args
        .target
        .clone()
        .or_else(|| o.ab.first().map(|a| a.target.url()));
    let source = match (&args.scenario, &args.url) {
        (Some(path), _) => {
            for (given, name) in [
                (args.method.is_some(), "-X/--method"),
                (!args.headers.is_empty(), "-H/--header"),
                (args.body.is_some(), "--body"),
                (args.body_file.is_some(), "--body-file"),
            ] {
                if given {
                    return Err(Failure::usage(anyhow!(
                        "{name} shapes the request of a --url run; in a scenario, set it on the steps"
                    )));
                }
            }
            Source::File(load_scenario(path, target)?)
        }
        (None, Some(url)) => Source::Url(url_spec(args, url)?),
        (None, None) => {
            return Err(Failure::usage(anyhow!(
                "say what to load: a scenario file (throng run checkout.yaml) or a URL (throng run --url http://...)"
            )))
        }
    };
    let mut spec = RunSpec::new(source, o, Outputs::new(&args.outputs, !o.ab.is_empty()))?;
    if let Some(url) = &args.url {
        spec.target.clone_from(url);
    }
    Ok(spec)
}

impl RunSpec {
    /// The run of `source` as `options` change it, its results going to
    /// `outputs`.
    pub fn new(source: Source, options: &RunOptions, outputs: Outputs) -> Result<RunSpec, Failure> {
        let o = options;
        let (mut scenario, file_load, file_timeout, mut thresholds, recovery, scrapes) =
            match source {
                Source::Url(spec) => (
                    Scenario::single(&spec),
                    LoadSpec::default(),
                    None,
                    Vec::new(),
                    None,
                    Vec::new(),
                ),
                Source::File(f) => {
                    let c = f.compiled;
                    (
                        c.scenario,
                        c.load,
                        c.timeout,
                        c.thresholds,
                        c.recovery,
                        c.scrapes,
                    )
                }
            };
        apply_request_options(&mut scenario, o)?;
        let watch = watch_spec(scrapes, o, &scenario)?;
        let given_load = file_load.overridden_by(cli_load(o));
        let (model, level) = given_load.build().map_err(Failure::usage)?;
        let mut plan = Plan {
            model,
            max_requests: given_load.requests,
            scenario,
            timeout: o
                .timeout
                .or(file_timeout)
                .unwrap_or(Duration::from_secs(30)),
            grace: o.grace,
            workers: o.workers.unwrap_or_else(default_workers),
            seed: o.seed,
            ab: o.ab.clone(),
            segment: o.segment.unwrap_or_default(),
            start_at: None,
            snapshot_every: outputs.checkpoint_every,
            max_rate: o.max_rate,
            max_body: o.max_body,
            addrs: Vec::new(),
        };
        plan.validate().map_err(Failure::usage)?;
        check_max_rate(&plan, outputs.quiet)?;
        thresholds.extend(check_thresholds(
            o.thresholds.clone(),
            &plan.scenario.endpoints,
        )?);
        let load = load_info(&plan, level);
        // Last, once everything else is known to be right: a start file is
        // written by the first segment to get here.
        plan.start_at = start_time(o)?;
        Ok(RunSpec {
            target: plan.scenario.target.url(),
            watch,
            plan,
            judging: Judging {
                thresholds,
                tolerance: o.tolerance,
                recovery,
                abort_if: o.abort_if.clone(),
                abort_on_fail: o.abort_on_fail,
            },
            load,
            outputs,
            feeds: Vec::new(),
            given_load,
        })
    }

    /// A run of a plan built by hand (a replay's), judged by `thresholds`.
    pub fn of_plan(
        mut plan: Plan,
        thresholds: Vec<Threshold>,
        load: LoadInfo,
        outputs: Outputs,
    ) -> Result<RunSpec, Failure> {
        plan.snapshot_every = outputs.checkpoint_every;
        plan.validate().map_err(Failure::usage)?;
        check_max_rate(&plan, outputs.quiet)?;
        let thresholds = check_thresholds(thresholds, &plan.scenario.endpoints)?;
        Ok(RunSpec {
            target: plan.scenario.target.url(),
            judging: Judging {
                thresholds,
                tolerance: RunOptions::default().tolerance,
                ..Judging::default()
            },
            load,
            outputs,
            feeds: Vec::new(),
            given_load: LoadSpec::default(),
            watch: WatchSpec::default(),
            plan,
        })
    }

    /// The same run at another load: `load`'s settings replace the
    /// scenario's and the command line's (capacity's steps and probes).
    pub fn with_load(&self, load: LoadSpec) -> Result<RunSpec, Failure> {
        let given_load = self.given_load.clone().overridden_by(load);
        let (model, level) = given_load.build().map_err(Failure::usage)?;
        let plan = Plan {
            model,
            max_requests: given_load.requests,
            ..self.plan.clone()
        };
        plan.validate().map_err(Failure::usage)?;
        Ok(RunSpec {
            load: load_info(&plan, level),
            plan,
            judging: self.judging.clone(),
            outputs: self.outputs.clone(),
            feeds: Vec::new(),
            target: self.target.clone(),
            watch: self.watch.clone(),
            given_load,
        })
    }

    /// What the results file says about the run, at its end or at a
    /// checkpoint.
    pub fn info(
        &self,
        started_at: &str,
        status: Status,
        duration: Duration,
        stop_reason: Option<String>,
        first_errors: BTreeMap<String, String>,
    ) -> RunInfo {
        let info = RunInfo {
            stop_reason,
            command: self.outputs.command.clone(),
            target: self.target.clone(),
            model: self.plan.model.name().to_string(),
            load: self.load.clone(),
            started_at: started_at.to_string(),
            duration,
            status,
            first_errors,
            recovery: self.judging.recovery,
            segment: None,
            coverage: None,
            server: None,
        };
        // A segment's file records its part of the planned load, and which
        // part it is, for `throng merge`.
        let segment = self.plan.segment;
        if segment.is_whole() {
            info
        } else {
            RunInfo {
                load: info.load.share(segment.count),
                segment: Some(report::SegmentInfo {
                    index: segment.index,
                    count: segment.count,
                }),
                ..info
            }
        }
    }
}

/// What to read of the target beside the load: the file's scrapes and
/// the command line's (a path is on the target; one of a URL the file
/// scrapes replaces the file's; `--scrape-match` applies to those
/// without a `match` of their own), TLS as the run's; and the processes
/// named, found now.
fn watch_spec(
    file: Vec<plan::Scrape>,
    o: &RunOptions,
    scenario: &Scenario,
) -> Result<WatchSpec, Failure> {
    let o = &o.watch;
    let target = scenario.target.url();
    let mut scrapes = file;
    for url in &o.scrapes {
        let s = plan::Scrape::new(url, Some(&target), o.scrape_interval, None)
            .map_err(|e| Failure::usage(anyhow!("--scrape {url}: {e}")))?;
        // The command line's reading of a URL the file reads replaces it.
        scrapes.retain(|f| f.url() != s.url());
        scrapes.push(s);
    }
    for s in &mut scrapes {
        s.request.tls = scenario.tls.clone();
        if let (None, Some(pattern)) = (&s.matcher, &o.scrape_match) {
            *s = s
                .clone()
                .matching(pattern)
                .map_err(|e| Failure::usage(anyhow!("--scrape-match: {e}")))?;
        }
    }
    Ok(WatchSpec {
        scrapes,
        processes: crate::watch::find_processes(&o.watch_pids, &o.watch_cmds)?,
        max_series: o.scrape_max_series,
    })
}

/// The command line's request options, applied to the scenario.
fn apply_request_options(scenario: &mut Scenario, o: &RunOptions) -> Result<(), Failure> {
    scenario.tls = plan::TlsOptions {
        insecure: o.insecure,
        resumption: o.tls_resumption,
        extra_roots_pem: match &o.cacert {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --cacert {}", path.display()))
                    .map_err(Failure::usage)?,
            ),
            None => None,
        },
    };
    if let Some(n) = o.max_redirects {
        scenario.redirects.max = n;
    }
    if let Some(policy) = o.resend {
        scenario.clients.resend = policy;
    }
    if let Some(n) = o.http2_connections {
        scenario.clients.http2_connections = n;
    }
    if let Some(n) = o.http2_streams {
        scenario.clients.http2_streams = n;
    }
    scenario
        .redirects
        .allowed_hosts
        .extend(o.allow_hosts.iter().cloned());
    if o.no_retries {
        for step in scenario.flows.iter_mut().flat_map(|f| &mut f.steps) {
            step.retry = None;
        }
    }
    if o.http2 {
        scenario.version = HttpVersion::Http2;
        if scenario.clients.need_http1() {
            return Err(Failure::usage(anyhow!(
                "--http2 does not go with the scenario's clients source_ips, connections or slow: \
                 HTTP/2 shares one connection per worker (drop --http2, or those settings)"
            )));
        }
    }
    Ok(())
}

/// One worker per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `--start-at`'s time, if it is to come, and today.
pub fn check_start_at(at: SystemTime) -> Result<SystemTime, Failure> {
    let shown = |t| humantime::format_rfc3339_seconds(t);
    let now = SystemTime::now();
    if at < now {
        return Err(Failure::usage(anyhow!(
            "--start-at {} has passed (it is {} now): give a time after every segment will have started",
            shown(at),
            shown(now)
        )));
    }
    if at.duration_since(now).unwrap_or_default() > Duration::from_secs(24 * 3600) {
        return Err(Failure::usage(anyhow!(
            "--start-at {} is more than a day ahead (it is {} now): is the date right?",
            shown(at),
            shown(now)
        )));
    }
    Ok(at)
}

/// When the load starts: `--start-at`'s time, or the one shared through
/// `--start-file` (written by whichever segment comes first, read by the
/// others), or none (as soon as the workers are ready).
fn start_time(o: &RunOptions) -> Result<Option<SystemTime>, Failure> {
    if let Some(at) = o.start_at {
        return check_start_at(at).map(Some);
    }
    match &o.start_file {
        Some(path) => shared_start(path, o.start_delay).map(Some),
        None => Ok(None),
    }
}

/// The start time in `path`: written there as now + `delay` by the first
/// segment to come, read by the others.
fn shared_start(path: &Path, delay: Duration) -> Result<SystemTime, Failure> {
    let shown = path.display();
    // The run's folder on a shared volume may not exist yet.
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(anyhow!("cannot create {}: {e}", dir.display())))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            use std::io::Write as _;
            let at = SystemTime::now() + delay;
            let text = humantime::format_rfc3339_millis(at).to_string();
            file.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| {
                    Failure::usage(anyhow!("cannot write the start time to {shown}: {e}"))
                })?;
            Ok(at)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another segment created it and may still be writing it.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                if text.ends_with('\n') || std::time::Instant::now() >= deadline {
                    let at = humantime::parse_rfc3339_weak(text.trim()).map_err(|e| {
                        Failure::usage(anyhow!(
                            "the start file {shown}: {:?} is not a time: {e} (write RFC 3339, e.g. 2026-12-01T10:00:00Z)",
                            text.trim()
                        ))
                    })?;
                    if at < SystemTime::now() {
                        return Err(Failure::usage(anyhow!(
                            "the start time in {shown} ({}) has passed: is it left from an earlier run? \
                             Delete it, or start every segment within --start-delay ({}) of the first",
                            text.trim(),
                            plan::format_duration(delay)
                        )));
                    }
                    return Ok(at);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(e) => Err(Failure::usage(anyhow!(
            "cannot create the start file {shown}: {e}"
        ))),
    }
}

/// Thresholds given outside the scenario, checked against the run's
/// endpoints as the scenario's own were when it compiled.
pub fn check_thresholds(
    given: Vec<Threshold>,
    endpoints: &[String],
) -> Result<Vec<Threshold>, Failure> {
    for t in &given {
        if let Some(ep) = t.endpoint.as_ref().filter(|ep| !endpoints.contains(ep)) {
            return Err(Failure::usage(anyhow!(
                "threshold {:?} names endpoint {ep:?}, which this run does not have; {}",
                t.expr,
                plan::suggest::hint(ep, endpoints)
            )));
        }
    }
    Ok(given)
}

/// The `--ab` arms: none, or exactly two with distinct names.
fn check_ab(arms: &[plan::AbArm]) -> Result<(), Failure> {
    match arms {
        [] => Ok(()),
        [a, b] if a.name == b.name => Err(Failure::usage(anyhow!(
            "--ab: both arms are named {:?}; give them different names (base, cand)",
            a.name
        ))),
        [_, _] => Ok(()),
        _ => Err(Failure::usage(anyhow!(
            "--ab is given twice, baseline first: --ab base=URL1 --ab cand=URL2 (got {} of them)",
            arms.len()
        ))),
    }
}

/// Reads and compiles a scenario file; `{{ env.NAME }}` reads the
/// environment here, the only place that does.
pub fn load_scenario(path: &Path, target: Option<String>) -> Result<ScenarioFile, Failure> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the scenario {name}"))
        .map_err(Failure::usage)?;
    // Data files are named relative to the scenario file.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    compile_scenario(name, text, Some(base), target)
}

/// Compiles a scenario's text; data files are read from `base`, if any.
pub fn compile_scenario(
    name: String,
    text: String,
    base: Option<PathBuf>,
    target: Option<String>,
) -> Result<ScenarioFile, Failure> {
    let read_data: Option<scenario::ReadData> = base.map(|base| {
        let read: scenario::ReadData = std::sync::Arc::new(move |name: &str| {
            std::fs::read(base.join(name)).map_err(|e| e.to_string())
        });
        read
    });
    let options = scenario::Options {
        target,
        env: std::env::vars().collect(),
        read_data,
    };
    let compiled = scenario::compile(&name, &text, &options).map_err(Failure::usage)?;
    Ok(ScenarioFile { name, compiled })
}

/// The request of a `--url` run.
fn url_spec(args: &RunArgs, url: &str) -> Result<RequestSpec, Failure> {
    let mut spec = RequestSpec::get(url).map_err(Failure::usage)?;
    spec = spec
        .with_method(args.method.as_deref().unwrap_or("GET"))
        .map_err(Failure::usage)?;
    for h in &args.headers {
        spec = spec.with_header_line(h).map_err(Failure::usage)?;
    }
    if let Some(body) = &args.body {
        spec.body = body.clone().into();
    }
    if let Some(path) = &args.body_file {
        let body = std::fs::read(path)
            .with_context(|| format!("cannot read --body-file {}", path.display()))
            .map_err(Failure::usage)?;
        spec.body = body.into();
    }
    Ok(spec)
}

/// The planned load, for the results file: the level or stages, and every
/// option that shaped the load.
pub fn load_info(plan: &Plan, level: Option<f64>) -> LoadInfo {
    let stages = |p: &Profile| -> Vec<(f64, f64)> {
        if level.is_some() {
            Vec::new()
        } else {
            p.stage_list()
                .iter()
                .map(|s| (s.target, s.duration.as_secs_f64()))
                .collect()
        }
    };
    let mut info = LoadInfo {
        rate: None,
        vus: None,
        stages: stages(plan.model.profile()),
        duration_s: plan.duration().map(|d| d.as_secs_f64()),
        max_requests: plan.max_requests,
        arrivals: None,
        max_in_flight: None,
        think_ms: None,
        timeout_ms: plan.timeout.as_secs_f64() * 1000.0,
        workers: plan.worker_count(),
        resend: Some(plan.scenario.clients.resend.as_str().into()),
        max_rate: plan.max_rate,
        max_body: Some(plan.max_body),
        seed: Some(plan.seed),
        http: Some(
            match plan.scenario.version {
                HttpVersion::Http1 => "1.1",
                HttpVersion::Http2 => "2",
            }
            .into(),
        ),
        retries: Some(plan.scenario.retries()),
        max_redirects: Some(plan.scenario.redirects.max),
    };
    match &plan.model {
        Model::Open {
            arrivals,
            max_in_flight,
            ..
        } => {
            info.rate = level;
            info.arrivals = Some(match arrivals {
                Arrivals::Uniform => "uniform".into(),
                Arrivals::Poisson => "poisson".into(),
            });
            info.max_in_flight = *max_in_flight;
        }
        Model::Closed { think, .. } => {
            info.vus = level;
            info.think_ms = Some(think.as_secs_f64() * 1000.0);
        }
    }
    info
}

/// The load options given on the command line.
fn cli_load(o: &RunOptions) -> LoadSpec {
    LoadSpec {
        model: o.model.map(|m| match m {
            ModelArg::Open => ModelKind::Open,
            ModelArg::Closed => ModelKind::Closed,
        }),
        rate: o.rate,
        vus: o.vus.map(f64::from),
        duration: o.duration,
        stages: o.stages.clone(),
        requests: o.requests,
        think: o.think,
        arrivals: o.arrivals.map(|a| match a {
            ArrivalsArg::Uniform => Arrivals::Uniform,
            ArrivalsArg::Poisson => Arrivals::Poisson,
        }),
        max_in_flight: o.max_in_flight,
    }
}

/// Refuses a `--max-rate` that is not a positive number, and says so when
/// the planned arrival rate goes above it (the ceiling then holds sends
/// back, and the run measures the ceiling as much as the target).
fn check_max_rate(plan: &Plan, quiet: bool) -> Result<(), Failure> {
    let Some(max) = plan.max_rate else {
        return Ok(());
    };
    if !(max.is_finite() && max > 0.0) {
        return Err(Failure::usage(anyhow!(
            "--max-rate {max} is not a positive number of requests per second (say --max-rate 500)"
        )));
    }
    if let (Model::Open { rate, .. }, false) = (&plan.model, quiet) {
        let peak = rate.peak();
        if peak > max {
            eprintln!(
                "warning: the load peaks at {peak:.0} arrivals/s, above --max-rate {max}: sends are held to {max}/s and the wait shows as the generator's lag"
            );
        }
    }
    Ok(())
}

/// The command line as typed, with secret header values replaced.
pub fn redacted_command() -> String {
    redact(std::env::args())
}

fn redact(args: impl IntoIterator<Item = String>) -> String {
    let mut out = Vec::new();
    let mut next_is_header = false;
    for arg in args {
        let (prefix, header) = if next_is_header {
            ("", Some(arg.as_str()))
        } else if let Some(h) = arg.strip_prefix("--header=") {
            ("--header=", Some(h))
        } else if let Some(h) = arg.strip_prefix("-H").filter(|h| !h.is_empty()) {
            ("-H", Some(h))
        } else {
            ("", None)
        };
        next_is_header = arg == "-H" || arg == "--header";
        let shown = match header.and_then(|h| h.split_once(':')) {
            Some((name, _)) if plan::is_sensitive_header(name) => {
                format!("{prefix}{name}: [redacted]")
            }
            _ => arg.clone(),
        };
        out.push(if shown.contains([' ', '\'', '"', '*', '$', '<', '>']) {
            format!("'{}'", shown.replace('\'', r"'\''"))
        } else {
            shown
        });
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_headers_are_redacted_in_the_command() {
        let cmd = redact(
            [
                "throng",
                "run",
                "-H",
                "Authorization: Bearer x",
                "--header=Cookie: a=b",
                "-HX-Ok: 1",
                "--url",
                "u",
            ]
            .map(String::from),
        );
        assert_eq!(
            cmd,
            "throng run -H 'Authorization: [redacted]' '--header=Cookie: [redacted]' '-HX-Ok: 1' --url u"
        );
    }
}
