//! `throng run`: from arguments to a plan, through the engine, to the
//! summary, the results file and the exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use analysis::Threshold;
use anyhow::{anyhow, Context};
use engine::{Event, WorkerOutput};
use plan::{
    parse_duration, parse_stages, AbArm, Arrivals, HttpVersion, LoadSpec, Model, ModelKind, Plan,
    Profile, RequestSpec, Scenario, TlsOptions,
};
use report::{LoadInfo, Results, RunInfo, Status};
use stats::{Interval, Stats};

use crate::args::{ArrivalsArg, Exports, ModelArg, RunArgs};
use crate::{exit, Failure};

/// Everything validated before the run starts.
pub struct Prepared {
    /// The plan.
    pub plan: Plan,
    /// The file's and the command line's thresholds.
    pub thresholds: Vec<Threshold>,
    /// The planned load, for results.
    pub load: LoadInfo,
    /// What an A/B run's comparison calls no change (a fraction).
    pub tolerance: f64,
    /// The file's recovery check.
    pub recovery: Option<analysis::RecoveryCheck>,
    /// A replay's request feeds, one per worker (empty otherwise).
    pub feeds: Vec<engine::Feed>,
}

/// `throng run`'s options with their defaults, for commands that drive
/// runs of their own (`demo`, `capacity`).
pub fn default_args() -> Result<RunArgs, Failure> {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        run: RunArgs,
    }
    <Defaults as clap::Parser>::try_parse_from(["throng"])
        .map(|d| d.run)
        .map_err(|e| Failure::usage(anyhow!("the default run options: {e}")))
}

/// How often workers report progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Validates the arguments (and the scenario they name) into a plan.
pub fn prepare(args: &RunArgs) -> Result<Prepared, Failure> {
    let dur = |s: &str| parse_duration(s).map_err(Failure::usage);
    let ab = parse_ab(&args.ab)?;
    let tolerance = crate::compare::parse_tolerance(&args.tolerance)?;
    // An A/B run's scenario is compiled against its first target.
    let target = args
        .target
        .clone()
        .or_else(|| ab.first().map(|a| a.target.url()));
    let extra_roots_pem = match &args.cacert {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read --cacert {}", path.display()))
                .map_err(Failure::usage)?,
        ),
        None => None,
    };
    let tls = TlsOptions {
        insecure: args.insecure,
        extra_roots_pem,
    };

    let source = match (&args.embedded, &args.scenario, &args.url) {
        (Some(e), _, _) => Source::File(compile_scenario(
            e.name.clone(),
            e.text.clone(),
            None,
            target.clone(),
        )?),
        (None, Some(path), _) => {
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
            Source::File(load_scenario(path, target.clone())?)
        }
        (None, None, Some(url)) => Source::Url(url_spec(args, url)?),
        (None, None, None) => {
            return Err(Failure::usage(anyhow!(
                "say what to load: a scenario file (throng run checkout.yaml) or a URL (throng run --url http://...)"
            )))
        }
    };
    let (mut scenario, file_load, file_timeout, file_thresholds, recovery) = match &source {
        Source::Url(spec) => (
            Scenario::single(spec),
            LoadSpec::default(),
            None,
            Vec::new(),
            None,
        ),
        Source::File(f) => (
            f.compiled.scenario.clone(),
            f.compiled.load.clone(),
            f.compiled.timeout,
            f.compiled.thresholds.clone(),
            f.compiled.recovery,
        ),
    };
    scenario.tls = tls;
    if let Some(n) = args.max_redirects {
        scenario.redirects.max = n;
    }
    if let Some(policy) = args.resend {
        scenario.clients.resend = policy;
    }
    for host in &args.allow_hosts {
        let Some(h) = plan::Redirects::host(host) else {
            return Err(Failure::usage(anyhow!(
                "--allow-host {host:?} is not a host name: write the host alone, e.g. --allow-host login.example.com"
            )));
        };
        scenario.redirects.allowed_hosts.push(h);
    }
    if args.no_retries {
        for step in scenario.flows.iter_mut().flat_map(|f| &mut f.steps) {
            step.retry = None;
        }
    }
    if args.http2 {
        scenario.version = HttpVersion::Http2;
        if scenario.clients.need_http1() {
            return Err(Failure::usage(anyhow!(
                "--http2 does not go with the scenario's clients source_ips, connections or slow: \
                 HTTP/2 shares one connection per worker (drop --http2, or those settings)"
            )));
        }
    }

    let timeout = match &args.timeout {
        Some(t) => dur(t)?,
        None => file_timeout.unwrap_or(Duration::from_secs(30)),
    };
    let grace = dur(&args.grace)?;
    let load = file_load.overridden_by(cli_load(args)?);
    let (model, level) = load.build().map_err(Failure::usage)?;
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let plan = Plan {
        model,
        max_requests: load.requests,
        scenario,
        timeout,
        grace,
        workers,
        seed: args.seed,
        ab,
        segment: match &args.segment {
            Some(text) => plan::Segment::parse(text).map_err(|e| Failure::usage(anyhow!(e)))?,
            None => plan::Segment::default(),
        },
        start_at: None,
        snapshot_every: None,
        max_rate: args.max_rate,
        max_body: parse_size(&args.max_body)
            .map_err(|e| Failure::usage(anyhow!("--max-body {:?}: {e}", args.max_body)))?,
    };
    plan.validate().map_err(Failure::usage)?;
    check_max_rate(&plan, args.quiet)?;

    // Thresholds: the file's (compiled and checked with it), then the
    // command line's.
    let endpoints = &plan.scenario.endpoints;
    let mut thresholds = file_thresholds;
    thresholds.extend(cli_thresholds(&args.thresholds, endpoints)?);

    let load = load_info(&plan, level);
    // Last, once everything else is known to be right: a start file is
    // written by the first segment to get here.
    let mut plan = plan;
    plan.start_at = start_time(args)?;
    Ok(Prepared {
        plan,
        thresholds,
        load,
        tolerance,
        recovery,
        feeds: Vec::new(),
    })
}

/// When the load starts: `--start-at`'s time, or the one shared through
/// `--start-file` (written by whichever segment comes first, read by the
/// others), or none (as soon as the workers are ready).
fn start_time(args: &RunArgs) -> Result<Option<SystemTime>, Failure> {
    let parse = |text: &str, from: &str| {
        humantime::parse_rfc3339_weak(text.trim()).map_err(|e| {
            Failure::usage(anyhow!(
                "{from}: {:?} is not a time: {e} (write RFC 3339, e.g. 2026-12-01T10:00:00Z)",
                text.trim()
            ))
        })
    };
    if let Some(text) = &args.start_at {
        let at = parse(text, "--start-at")?;
        let now = SystemTime::now();
        let shown = |t| humantime::format_rfc3339_seconds(t);
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
        return Ok(Some(at));
    }
    let Some(path) = &args.start_file else {
        return Ok(None);
    };
    let delay = parse_duration(&args.start_delay).map_err(Failure::usage)?;
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
            Ok(Some(at))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another segment created it and may still be writing it.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                if text.ends_with('\n') || std::time::Instant::now() >= deadline {
                    let at = parse(&text, &format!("the start file {shown}"))?;
                    if at < SystemTime::now() {
                        return Err(Failure::usage(anyhow!(
                            "the start time in {shown} ({}) has passed: is it left from an earlier run? \
                             Delete it, or start every segment within --start-delay ({}) of the first",
                            text.trim(),
                            args.start_delay
                        )));
                    }
                    return Ok(Some(at));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(e) => Err(Failure::usage(anyhow!(
            "cannot create the start file {shown}: {e}"
        ))),
    }
}

/// The command line's thresholds, checked against the run's endpoints.
pub fn cli_thresholds(given: &[String], endpoints: &[String]) -> Result<Vec<Threshold>, Failure> {
    let mut thresholds = Vec::new();
    for text in given {
        let t = Threshold::parse(text).map_err(Failure::usage)?;
        if let Some(ep) = t.endpoint.as_ref().filter(|ep| !endpoints.contains(ep)) {
            return Err(Failure::usage(anyhow!(
                "threshold {:?} names endpoint {ep:?}, which this run does not have; {}",
                t.expr,
                plan::suggest::hint(ep, endpoints)
            )));
        }
        thresholds.push(t);
    }
    Ok(thresholds)
}

/// The `--ab NAME=URL` arms: none, or exactly two with distinct names
/// that can go into file names.
fn parse_ab(given: &[String]) -> Result<Vec<AbArm>, Failure> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    if given.len() != 2 {
        return Err(Failure::usage(anyhow!(
            "--ab is given twice, baseline first: --ab base=URL1 --ab cand=URL2 (got {} of them)",
            given.len()
        )));
    }
    let mut arms: Vec<AbArm> = Vec::new();
    for text in given {
        let Some((name, url)) = text.split_once('=') else {
            return Err(Failure::usage(anyhow!(
                "--ab {text:?}: write NAME=URL, e.g. --ab base=http://127.0.0.1:8080"
            )));
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Failure::usage(anyhow!(
                "--ab {text:?}: the name {name:?} goes into file names; use letters, digits, '-' and '_'"
            )));
        }
        if arms.iter().any(|a| a.name == name) {
            return Err(Failure::usage(anyhow!(
                "--ab: both arms are named {name:?}; give them different names (base, cand)"
            )));
        }
        let target = plan::Target::parse(url.trim())
            .map_err(|e| Failure::usage(anyhow!("--ab {name}: {e}")))?;
        arms.push(AbArm {
            name: name.to_string(),
            target,
        });
    }
    Ok(arms)
}

/// What the run loads. One value per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Source {
    Url(RequestSpec),
    File(ScenarioFile),
}

/// A compiled scenario file.
pub struct ScenarioFile {
    /// The path as given.
    pub name: String,
    /// What it compiled to.
    pub compiled: scenario::Compiled,
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
    base: Option<std::path::PathBuf>,
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

/// The planned load, for the results file.
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
            info.max_in_flight = Some(*max_in_flight);
        }
        Model::Closed { think, .. } => {
            info.vus = level;
            info.think_ms = Some(think.as_secs_f64() * 1000.0);
        }
    }
    info
}

/// The load options given on the command line.
fn cli_load(args: &RunArgs) -> Result<LoadSpec, Failure> {
    let dur = |s: &str| parse_duration(s).map_err(Failure::usage);
    Ok(LoadSpec {
        model: args.model.map(|m| match m {
            ModelArg::Open => ModelKind::Open,
            ModelArg::Closed => ModelKind::Closed,
        }),
        rate: args.rate,
        vus: args.vus.map(f64::from),
        duration: args.duration.as_deref().map(dur).transpose()?,
        stages: args
            .stages
            .as_deref()
            .map(parse_stages)
            .transpose()
            .map_err(Failure::usage)?,
        requests: args.requests,
        think: args.think.as_deref().map(dur).transpose()?,
        arrivals: args.arrivals.map(|a| match a {
            ArrivalsArg::Uniform => Arrivals::Uniform,
            ArrivalsArg::Poisson => Arrivals::Poisson,
        }),
        max_in_flight: args.max_in_flight,
    })
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

/// Running totals from the workers' progress reports.
#[derive(Default)]
struct Live {
    /// Everything since the start: the totals the line, the panel, the
    /// metrics endpoint and --abort-on-fail read.
    all: Interval,
    interval: Interval,
    /// Progress reports merged into `interval`: each covers one worker for
    /// one progress period.
    reports: u32,
    in_flight: BTreeMap<usize, usize>,
    vus: BTreeMap<usize, usize>,
    /// This progress period's reports so far, and how many.
    period: Interval,
    period_reports: usize,
}

impl Live {
    /// Adds `p` to the current progress period; returns the period once
    /// every worker has reported it.
    fn period(&mut self, p: &engine::Progress, workers: usize) -> Option<Interval> {
        self.period.merge(&p.interval);
        self.period_reports += 1;
        (self.period_reports >= workers).then(|| {
            self.period_reports = 0;
            std::mem::take(&mut self.period)
        })
    }

    fn add(&mut self, p: &engine::Progress) {
        self.interval.merge(&p.interval);
        self.all.merge(&p.interval);
        self.reports += 1;
        self.in_flight.insert(p.worker, p.in_flight);
        self.vus.insert(p.worker, p.vus);
    }

    /// The dashboard's view: the progress line's, plus the planned level
    /// and stage now and the failures so far by kind.
    fn dashboard(
        &self,
        line: report::ProgressView,
        profile: &plan::Profile,
        elapsed: Duration,
    ) -> report::DashboardView {
        let mut kinds: Vec<(&'static str, u64)> = self
            .all
            .counts
            .errors
            .nonzero()
            .filter(|(k, _)| *k != stats::ErrorKind::Dropped)
            .map(|(k, n)| (k.as_str(), n))
            .collect();
        kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        // Stages as people see them: the pieces that take time.
        let stages: Vec<Duration> = profile
            .stage_list()
            .iter()
            .map(|s| s.duration)
            .filter(|d| !d.is_zero())
            .collect();
        let mut end = Duration::ZERO;
        let stage = stages.iter().position(|d| {
            end += *d;
            elapsed < end
        });
        report::DashboardView {
            line,
            offered: (profile.peak() > 0.0).then(|| profile.value_at(elapsed)),
            stage: (stages.len() > 1)
                .then(|| (stage.unwrap_or(stages.len() - 1) + 1, stages.len())),
            errors_by_kind: kinds,
            check_failures: self.all.counts.check_failures,
        }
    }

    /// The view for the progress line; the rate is over the periods the
    /// merged reports cover (`reports / workers` of them).
    fn view(
        &mut self,
        elapsed: Duration,
        period: Duration,
        workers: usize,
        total: Option<Duration>,
        closed: bool,
    ) -> report::ProgressView {
        let interval = std::mem::take(&mut self.interval);
        let reports = std::mem::take(&mut self.reports);
        let has = interval.latency.count() > 0;
        let covered = f64::from(reports) / workers.max(1) as f64 * period.as_secs_f64();
        let secs = covered.max(1e-3);
        report::ProgressView {
            elapsed_s: elapsed.as_secs_f64(),
            total_s: total.map(|t| t.as_secs_f64()),
            rate: interval.counts.requests as f64 / secs,
            p50_ms: has.then(|| interval.latency.quantile_ms(0.5)),
            p99_ms: has.then(|| interval.latency.quantile_ms(0.99)),
            requests: self.all.counts.requests,
            errors: self.all.counts.failed(),
            dropped: self.all.counts.dropped(),
            resent: self.all.counts.resent,
            in_flight: self.in_flight.values().sum(),
            vus: closed.then(|| self.vus.values().sum()),
        }
    }
}

/// Writes an `--out` file and says so.
pub fn write_out(out: &Path, text: &str) -> Result<(), Failure> {
    write_out_quietly(out, text)?;
    println!("\n  results written to {}", out.display());
    Ok(())
}

/// Writes an `--out` file, saying nothing (stdout may be the output).
pub fn write_out_quietly(out: &Path, text: &str) -> Result<(), Failure> {
    write_atomic(out, text)
        .with_context(|| format!("cannot write --out {}", out.display()))
        .map_err(|error| Failure {
            code: exit::ABORTED,
            error,
        })
}

/// Writes `text` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub fn run(args: RunArgs) -> Result<u8, Failure> {
    let prepared = prepare(&args)?;
    check_out_dir("--out", args.out.as_deref())?;
    check_export_dirs(&args.exports)?;
    runtime()?.block_on(drive(args, prepared))
}

/// Writes the files `exports` asks for and says where.
pub fn write_exports(exports: &Exports, results: &Results) -> Result<(), Failure> {
    type Render = fn(&Results) -> String;
    let outputs: [(&Option<PathBuf>, &str, Render); 4] = [
        (&exports.report, "report", report::html),
        (&exports.timeline, "timeline", report::timeline_csv),
        (&exports.junit, "JUnit XML", report::junit),
        (
            &exports.summary_md,
            "Markdown summary",
            report::summary_markdown,
        ),
    ];
    for (path, what, render) in outputs {
        if let Some(path) = path {
            write_said(path, what, &render(results))?;
        }
    }
    Ok(())
}

/// Writes `text` (a report, an export) to `path` and says so: "  report
/// written to PATH".
pub fn write_said(path: &Path, what: &str, text: &str) -> Result<(), Failure> {
    write_out_quietly(path, text)?;
    println!("  {what} written to {}", path.display());
    Ok(())
}

/// Checks, before a run, that every export can be written.
pub fn check_export_dirs(exports: &Exports) -> Result<(), Failure> {
    check_out_dir("--report", exports.report.as_deref())?;
    check_out_dir("--timeline", exports.timeline.as_deref())?;
    check_out_dir("--junit", exports.junit.as_deref())?;
    check_out_dir("--summary-md", exports.summary_md.as_deref())
}

/// Fails now, not after a 30-minute run, if the results cannot be written.
pub fn check_out_dir(flag: &str, out: Option<&Path>) -> Result<(), Failure> {
    let Some(out) = out else { return Ok(()) };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Failure::usage(anyhow!(
            "{flag} {}: the directory {} does not exist",
            out.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Serves the latest Prometheus exposition at `addr` until the run ends;
/// returns where the text goes. A scrape endpoint answers every request
/// with one text, so it is a few lines on a listener rather than an HTTP
/// server framework.
async fn serve_metrics(addr: &str) -> Result<Arc<Mutex<String>>, Failure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::usage(anyhow!("--metrics-listen {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::usage(anyhow!("--metrics-listen {addr}: {e}")))?;
    eprintln!("metrics: http://{local}/metrics");
    let text = Arc::new(Mutex::new(report::prometheus(
        &Interval::default(),
        0,
        None,
        0.0,
    )));
    let shared = text.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                // Read the request head (ignored: every path gets the metrics).
                let mut buf = [0u8; 2048];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = shared.lock().map(|t| t.clone()).unwrap_or_default();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(text)
}

/// The controller's runtime: one thread (workers have their own).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: exit::ABORTED,
            error: e.into(),
        })
}

pub async fn drive(args: RunArgs, prepared: Prepared) -> Result<u8, Failure> {
    let Prepared {
        mut plan,
        thresholds,
        load,
        tolerance,
        recovery,
        feeds,
    } = prepared;
    // Checkpoints: workers send copies of their statistics this often, and
    // --out is rewritten with them (not in A/B runs, whose --out is a
    // comparison written at the end).
    let every = parse_duration(&args.checkpoint_every)
        .map_err(|e| Failure::usage(anyhow!("--checkpoint-every: {e}")))?;
    let checkpoint_every = match every {
        d if d.is_zero() || args.out.is_none() || !plan.ab.is_empty() => None,
        d => Some(d.max(PROGRESS_EVERY)),
    };
    plan.snapshot_every = checkpoint_every;
    let mut watches = args
        .abort_if
        .iter()
        .map(|text| {
            analysis::AbortRule::parse(text, |d| parse_duration(d).map_err(|e| e.to_string()))
                .map(|rule| rule.watch())
                .map_err(|e| Failure::usage(anyhow!(e)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut abort_reason: Option<String> = None;
    let metrics = match &args.metrics_listen {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };
    let started = engine::start_with(&plan, PROGRESS_EVERY, feeds);
    let started_at = humantime::format_rfc3339_seconds(match &started {
        Ok(run) => run.started_at,
        Err(_) => std::time::SystemTime::now(),
    })
    .to_string();
    // What the results file says about the run, at its end or a checkpoint.
    let info_for = |status: Status,
                    duration: Duration,
                    stop_reason: Option<String>,
                    first_errors: BTreeMap<String, String>| {
        let info = RunInfo {
            stop_reason,
            command: redacted_command(),
            target: args
                .url
                .clone()
                .unwrap_or_else(|| plan.scenario.target.url()),
            model: plan.model.name().to_string(),
            load: load.clone(),
            started_at: started_at.clone(),
            duration,
            status,
            first_errors,
            recovery,
            segment: None,
            coverage: None,
        };
        // A segment's file records its part of the planned load, and which
        // part it is, for `throng merge`.
        if plan.segment.is_whole() {
            info
        } else {
            RunInfo {
                load: info.load.share(plan.segment.count),
                segment: Some(report::SegmentInfo {
                    index: plan.segment.index,
                    count: plan.segment.count,
                }),
                ..info
            }
        }
    };
    let mut run = match started {
        Ok(run) => run,
        Err(e) => {
            // A target that does not resolve is the target's fault: the
            // results say why nothing was sent, for whatever reads them
            // next (a CI step, a dashboard).
            if let (engine::EngineError::Resolve { .. }, Some(out)) = (&e, &args.out) {
                let why = e.to_string();
                let info = info_for(
                    Status::Aborted,
                    Duration::ZERO,
                    Some(format!("nothing was sent: {why}")),
                    BTreeMap::from([("connect".to_string(), why)]),
                );
                let stats = Stats::new(plan.scenario.endpoints.clone());
                write_out(out, &Results::new(info, stats, &[]).to_json())?;
            }
            return Err(Failure::usage(e));
        }
    };
    let tty = std::io::stderr().is_terminal();
    if let (Some(at), false) = (plan.start_at, args.quiet) {
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_secs_f64();
        let who = if plan.segment.is_whole() {
            String::new()
        } else {
            format!("segment {}: ", plan.segment.label())
        };
        eprintln!(
            "{who}the load starts at {} (in {wait:.1} s)",
            humantime::format_rfc3339_millis(at)
        );
    }
    let show_every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let closed = matches!(plan.model, Model::Closed { .. });
    let total = plan.duration();
    let mut live = Live::default();
    // Lines of the live panel on screen (a TTY only).
    let mut drawn = 0usize;
    let mut outputs: Vec<WorkerOutput> = Vec::with_capacity(run.workers);
    let mut status = Status::Completed;
    let mut aborted_by_threshold = false;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::from_std(run.start + show_every + Duration::from_millis(150)),
        show_every,
    );
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut interrupts = 0;
    let mut hard_deadline: Option<tokio::time::Instant> = None;
    // The latest copy of each worker's statistics, for checkpoints.
    let mut snapshots: BTreeMap<usize, WorkerOutput> = BTreeMap::new();
    let mut checkpoint =
        tokio::time::interval(checkpoint_every.unwrap_or(Duration::from_secs(3600)));
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    checkpoint.tick().await;

    loop {
        let term = async {
            match sigterm.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match hard_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = run.events.recv() => match event {
                Some(Event::Progress(mut p)) => {
                    if let Some(s) = p.snapshot.take() {
                        snapshots.insert(s.worker, *s);
                    }
                    live.add(&p);
                    // Each period's reports, one per worker, judge --abort-if.
                    if let Some(period) = live.period(&p, run.workers) {
                        let end = Duration::from_secs(run.start.elapsed().as_secs_f64().round() as u64);
                        let fired = watches
                            .iter_mut()
                            .find_map(|w| w.observe(end, PROGRESS_EVERY, &period));
                        if let (Some(reason), Status::Completed) = (fired, status) {
                            status = Status::Aborted;
                            aborted_by_threshold = true;
                            run.control.stop.cancel();
                            if !args.quiet {
                                eprintln!("\nstopping: {reason}");
                                drawn = 0;
                            }
                            abort_reason = Some(reason);
                        }
                    }
                    if let Some(text) = &metrics {
                        let exposition = report::prometheus(
                            &live.all,
                            live.in_flight.values().sum(),
                            closed.then(|| live.vus.values().sum()),
                            run.start.elapsed().as_secs_f64(),
                        );
                        if let Ok(mut t) = text.lock() {
                            *t = exposition;
                        }
                    }
                    if args.abort_on_fail && status == Status::Completed
                        && thresholds.iter().any(|t| t.clearly_lost(live.all.counts.requests, live.all.counts.failed()))
                    {
                        status = Status::Aborted;
                        aborted_by_threshold = true;
                        run.control.stop.cancel();
                        if !args.quiet {
                            eprintln!("\nstopping: an error threshold is clearly lost ({} of {} requests failed)", live.all.counts.failed(), live.all.counts.requests);
                            drawn = 0;
                        }
                    }
                }
                Some(Event::Done(out)) => {
                    outputs.push(*out);
                    if outputs.len() == run.workers {
                        break;
                    }
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                interrupts += 1;
                interrupt(&run, &mut status, interrupts, &plan, &mut hard_deadline);
                // The message went below the panel: draw the next one after it.
                drawn = 0;
            }
            _ = term => {
                interrupts += 1;
                interrupt(&run, &mut status, interrupts, &plan, &mut hard_deadline);
                drawn = 0;
            }
            _ = deadline => {
                eprintln!("error: workers did not stop in time; exiting without results");
                return Ok(exit::ABORTED);
            }
            _ = checkpoint.tick(), if checkpoint_every.is_some() && !snapshots.is_empty() => {
                if let Some(out) = &args.out {
                    let results = checkpoint_results(&plan, &thresholds, &info_for, snapshots.values());
                    if let Err(e) = write_out_quietly(out, &results.to_json()) {
                        eprintln!("warning: checkpoint not written: {:#}", e.error);
                    }
                }
            }
            _ = ticker.tick(), if !args.quiet => {
                let elapsed = run.start.elapsed();
                let view = live.view(elapsed, PROGRESS_EVERY, run.workers, total, closed);
                if tty {
                    // A panel redrawn in place: up to its first line, then
                    // each line cleared and written again.
                    let lines = report::dashboard(&live.dashboard(view, plan.model.profile(), elapsed));
                    let mut frame = String::new();
                    if drawn > 0 {
                        frame.push_str(&format!("\x1b[{drawn}A"));
                    }
                    for l in &lines {
                        frame.push_str(&format!("\r\x1b[2K{l}\n"));
                    }
                    eprint!("{frame}");
                    drawn = lines.len();
                } else {
                    eprintln!("{}", report::progress_line(&view));
                }
            }
        }
    }
    if tty && !args.quiet && drawn > 0 {
        // The panel stays on screen, as the last state of the run.
        eprintln!();
    }
    let workers_started = run.workers;
    run.join();
    if outputs.len() < workers_started {
        return Err(Failure {
            code: exit::ABORTED,
            error: anyhow!(
                "{} of {workers_started} workers failed; see the messages above",
                workers_started - outputs.len()
            ),
        });
    }

    let Merged {
        stats,
        other_arms,
        load_end,
        mut stop_reason,
        first_errors,
    } = merge_outputs(&plan, outputs);
    // Each worker reports when it stopped starting requests: the planned end,
    // the moment it saw a stop, or its last due arrival under --requests.
    let duration = load_end;
    if stop_reason.is_some() && status == Status::Completed {
        status = Status::Aborted;
    }
    if let Some(reason) = abort_reason {
        stop_reason.get_or_insert(reason);
    }
    if args.abort_on_fail && status == Status::Aborted && stop_reason.is_none() {
        stop_reason = Some("an error threshold was clearly lost (--abort-on-fail)".into());
    }
    let info = info_for(status, duration, stop_reason.clone(), first_errors);
    let code = |held: bool| match status {
        Status::Interrupted | Status::Running => exit::ABORTED,
        Status::Aborted if !aborted_by_threshold => exit::ABORTED,
        _ if !held => exit::THRESHOLD,
        Status::Aborted => exit::THRESHOLD,
        Status::Completed => exit::OK,
    };
    if !plan.ab.is_empty() {
        let arms = std::iter::once(stats).chain(other_arms).collect();
        let held = report_ab(&args, &plan, &thresholds, tolerance, info, arms)?;
        if let Some(reason) = &stop_reason {
            eprintln!("error: the load stopped early: {reason}");
        }
        return Ok(code(held));
    }
    let results = Results::judged(info, stats, &thresholds);
    print!("{}", report::summary(&results));
    if let Some(out) = &args.out {
        write_out(out, &results.to_json())?;
    }
    write_exports(&args.exports, &results)?;
    if let Some(reason) = &stop_reason {
        eprintln!("error: the load stopped early: {reason}");
    }
    if !plan.segment.is_whole() {
        // One segment's share cannot pass or fail a threshold set for the
        // whole run (a rate, say): `throng merge` judges them.
        if !args.quiet {
            eprintln!(
                "segment {}: thresholds are judged on the whole run by throng merge",
                plan.segment.label()
            );
        }
        return Ok(code(true));
    }
    Ok(code(results.passed()))
}

/// An A/B run's ending: each arm's summary and results, then their
/// comparison (windows paired, since the arms ran interleaved). Returns
/// whether every threshold held in every arm and no endpoint regressed.
fn report_ab(
    args: &RunArgs,
    plan: &Plan,
    thresholds: &[Threshold],
    tolerance: f64,
    info: RunInfo,
    arms: Vec<Stats>,
) -> Result<bool, Failure> {
    let mut results = Vec::new();
    for (arm, stats) in plan.ab.iter().zip(arms) {
        let mut info = info.clone();
        info.target = arm.target.url();
        info.load = info.load.share(plan.ab.len());
        let r = Results::judged(info, stats, thresholds);
        println!("== {} ==", arm.name);
        println!("{}", report::summary(&r));
        results.push((arm.name.as_str(), r));
    }
    let [(base_name, base), (cand_name, cand)] = &results[..] else {
        return Err(Failure::usage(anyhow!("an A/B run has two arms")));
    };
    let opts = analysis::CompareOptions {
        tolerance,
        paired: true,
        ..analysis::CompareOptions::default()
    };
    let comparison = analysis::compare_runs(&[&base.raw], &cand.raw, &opts);
    let compared = report::CompareReport::new(
        report::Side::of(base_name, base),
        report::Side::of(cand_name, cand),
        comparison,
    );
    println!("== side by side ==");
    println!(
        "{}",
        report::side_by_side(&[(base_name, base), (cand_name, cand)])
    );
    println!("== {cand_name} against {base_name} ==");
    print!("{}", compared.to_text());
    if let Some(out) = &args.out {
        for (name, r) in &results {
            write_out(&beside(out, name), &r.to_json())?;
        }
        write_out(&beside(out, "compare"), &compared.to_json())?;
    }
    if let Some(path) = &args.exports.report {
        write_said(&beside(path, "compare"), "report", &compared.to_html())?;
    }
    for (name, r) in &results {
        let e = &args.exports;
        let arm = |p: &Option<PathBuf>| p.as_deref().map(|p| beside(p, name));
        write_exports(
            &Exports {
                report: arm(&e.report),
                timeline: arm(&e.timeline),
                junit: arm(&e.junit),
                summary_md: arm(&e.summary_md),
            },
            r,
        )?;
    }
    let held = results.iter().all(|(_, r)| r.passed());
    Ok(held && !compared.regressed())
}

/// `ab.json` with `base` beside it: `ab.base.json`.
pub fn beside(out: &Path, name: &str) -> std::path::PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "json".into());
    out.with_file_name(format!("{stem}.{name}.{ext}"))
}

/// The workers' outputs, merged.
pub struct Merged {
    /// Everything recorded, with the checks described (the first arm's,
    /// in an A/B run).
    pub stats: Stats,
    /// The further arms' statistics, in order, in an A/B run.
    pub other_arms: Vec<Stats>,
    /// When the last worker stopped starting requests.
    pub load_end: Duration,
    /// Why the load stopped early, if a worker says.
    pub stop_reason: Option<String>,
    /// The first message of each error kind.
    pub first_errors: BTreeMap<String, String>,
}

/// Merges the workers' statistics exactly (histograms add bucket by bucket).
pub fn merge_outputs(plan: &Plan, mut outputs: Vec<WorkerOutput>) -> Merged {
    outputs.sort_by_key(|o| o.worker);
    let check_info = plan.scenario.check_info();
    let empty = || {
        let mut stats = Stats::new(plan.scenario.endpoints.iter().cloned())
            .with_checks(plan.scenario.checks.iter().cloned());
        stats.describe_checks(
            check_info
                .iter()
                .map(|c| (c.endpoint.as_str(), c.reads_back)),
        );
        stats
    };
    let mut merged = Merged {
        stats: empty(),
        other_arms: (1..plan.ab.len()).map(|_| empty()).collect(),
        load_end: Duration::ZERO,
        stop_reason: None,
        first_errors: BTreeMap::new(),
    };
    for out in &outputs {
        if merged.stop_reason.is_none() {
            merged.stop_reason.clone_from(&out.stop_reason);
        }
        merged.stats.merge(&out.stats);
        for (ours, theirs) in merged.other_arms.iter_mut().zip(&out.other_arms) {
            ours.merge(theirs);
        }
        merged.load_end = merged.load_end.max(out.load_end);
        for (kind, msg) in &out.first_errors {
            merged
                .first_errors
                .entry(kind.as_str().to_string())
                .or_insert_with(|| msg.clone());
        }
    }
    merged
}

/// A size: bytes, or a number with B, KB, MB, GB (units of 1000) or KiB,
/// MiB, GiB (units of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| "write a size such as 8MiB, 500KB or 1048576".to_string())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "{other:?} is not a unit: use B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    Ok((n * scale as f64).round() as u64)
}

/// Refuses a `--max-rate` that is not a positive number, and says so when
/// the planned arrival rate goes above it (the ceiling then holds sends
/// back, and the run measures the ceiling as much as the target).
pub fn check_max_rate(plan: &Plan, quiet: bool) -> Result<(), Failure> {
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

/// The results so far, from the workers' latest copies: what a checkpoint
/// writes to --out.
fn checkpoint_results<'a>(
    plan: &Plan,
    thresholds: &[Threshold],
    info_for: &dyn Fn(Status, Duration, Option<String>, BTreeMap<String, String>) -> RunInfo,
    snapshots: impl Iterator<Item = &'a WorkerOutput>,
) -> Results {
    let merged = merge_outputs(plan, snapshots.cloned().collect());
    let info = info_for(Status::Running, merged.load_end, None, merged.first_errors);
    Results::judged(info, merged.stats, thresholds)
}

fn interrupt(
    run: &engine::Run,
    status: &mut Status,
    count: u32,
    plan: &Plan,
    hard_deadline: &mut Option<tokio::time::Instant>,
) {
    if count == 1 {
        *status = Status::Interrupted;
        run.control.stop.cancel();
        eprintln!(
            "\nstopping: no new requests; waiting up to {} for those in flight (Ctrl-C again to stop now)",
            plan::format_duration(plan.grace)
        );
    } else {
        run.control.kill.cancel();
        *hard_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3));
        eprintln!("\nstopping now: abandoning requests in flight");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(worker: usize, requests: u64) -> engine::Progress {
        let mut interval = Interval::default();
        interval.counts.requests = requests;
        interval.counts.ok = requests;
        engine::Progress {
            worker,
            interval,
            in_flight: 2,
            vus: 0,
            snapshot: None,
        }
    }

    #[test]
    fn the_live_panel_knows_the_stage_and_the_planned_level() {
        let profile = plan::Profile::from_shapes(&[
            plan::Shape::Step {
                target: 20.0,
                duration: Duration::from_secs(2),
            },
            plan::Shape::Spike {
                level: plan::SpikeLevel::Times(5.0),
                duration: Duration::from_secs(2),
            },
            plan::Shape::Step {
                target: 20.0,
                duration: Duration::from_secs(1),
            },
        ])
        .unwrap();
        let mut live = Live::default();
        live.add(&progress(0, 100));
        let line = live.view(
            Duration::from_millis(2500),
            Duration::from_secs(1),
            1,
            None,
            false,
        );
        let d = live.dashboard(line, &profile, Duration::from_millis(2500));
        assert_eq!(d.stage, Some((2, 3)));
        assert_eq!(d.offered, Some(100.0));
        let d = live.dashboard(line, &profile, Duration::from_secs(9));
        assert_eq!(d.stage, Some((3, 3)), "after the end, the last stage");
    }

    #[test]
    fn live_rate_is_over_the_periods_the_reports_cover() {
        let mut live = Live::default();
        // Two workers, two one-second reports each: 2 s covered, 800 requests.
        let mut p = progress(0, 0);
        p.interval.latency.record(Duration::from_millis(40));
        live.add(&p);
        live.reports = 0;
        for (worker, n) in [(0, 200), (1, 200), (0, 200), (1, 200)] {
            live.add(&progress(worker, n));
        }
        let v = live.view(
            Duration::from_secs(5),
            Duration::from_secs(1),
            2,
            None,
            false,
        );
        assert_eq!(v.rate, 400.0);
        assert!(
            (v.p99_ms.unwrap() - 40.0).abs() < 0.5,
            "live latency {:?}",
            v.p99_ms
        );
        assert_eq!(v.requests, 800);
        assert_eq!(
            v.in_flight, 4,
            "in flight is the sum of the workers' latest gauges"
        );
        // The next view starts afresh.
        assert_eq!(
            live.view(
                Duration::from_secs(6),
                Duration::from_secs(1),
                2,
                None,
                false
            )
            .rate,
            0.0
        );
    }

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
