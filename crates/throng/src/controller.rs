//! The controller: drives one [`RunSpec`] through the engine, whatever
//! kind of run it is (`throng run`, a replay, a capacity step, an A/B
//! run), and returns what happened. It shows progress, serves live
//! metrics, judges `--abort-if` and `--abort-on-fail` as reports come in,
//! rewrites checkpoints, and answers Ctrl-C and SIGTERM; summaries and
//! verdicts are its callers'.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use analysis::AbortWatch;
use anyhow::anyhow;
use engine::{Event, WorkerOutput};
use plan::{Model, Plan};
use report::{Results, Status};
use stats::{Interval, Stats};

use crate::spec::{RunSpec, PROGRESS_EVERY};
use crate::watch::Watcher;
use crate::{exit, output, Failure};

/// What a run recorded, and how it ended.
pub struct Outcome {
    /// The workers' statistics, merged.
    pub merged: Merged,
    /// What the target was doing, aligned with the merged timeline.
    pub server: Option<observe::Server>,
    /// How it ended.
    pub ending: Ending,
}

/// How a run ended.
pub struct Ending {
    /// Completed, interrupted or aborted.
    pub status: Status,
    /// Why the load stopped early, if it did.
    pub stop_reason: Option<String>,
    /// Whether `--abort-if` or `--abort-on-fail` stopped it (a threshold's
    /// failure, exit 1, rather than an abort, exit 3).
    pub aborted_by_threshold: bool,
    /// When the load started (RFC 3339, seconds).
    pub started_at: String,
}

impl Ending {
    /// The exit code, given whether every threshold held.
    pub fn code(&self, held: bool) -> u8 {
        match self.status {
            Status::Interrupted | Status::Running => exit::ABORTED,
            Status::Aborted if !self.aborted_by_threshold => exit::ABORTED,
            _ if !held => exit::THRESHOLD,
            Status::Aborted => exit::THRESHOLD,
            Status::Completed => exit::OK,
        }
    }
}

impl Outcome {
    /// What the results file says about the run.
    pub fn info(&self, spec: &RunSpec) -> report::RunInfo {
        let e = &self.ending;
        let mut info = spec.info(
            &e.started_at,
            e.status,
            self.merged.load_end,
            e.stop_reason.clone(),
            self.merged.first_errors.clone(),
        );
        info.server.clone_from(&self.server);
        info
    }
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

/// Runs `spec` to its end (or its interruption) and merges what the
/// workers recorded. Its feeds are handed to the workers.
pub async fn drive(spec: &mut RunSpec) -> Result<Outcome, Failure> {
    let metrics = match &spec.outputs.metrics_listen {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };
    let feeds = std::mem::take(&mut spec.feeds);
    let spec = &*spec;
    let mut watcher = Watcher::new(&spec.watch)?;
    let run = match engine::start_with(&spec.plan, PROGRESS_EVERY, feeds) {
        Ok(run) => run,
        Err(e) => return Err(nothing_sent(spec, e)),
    };
    if let Some(w) = &mut watcher {
        if let Err(f) = w.start(run.start) {
            // Nothing may keep running: stop the workers first.
            run.control.kill.cancel();
            run.join();
            return Err(f);
        }
    }
    if !spec.outputs.quiet {
        for note in &run.notes {
            eprintln!("note: {note}");
        }
    }
    let mut c = Controller::new(spec, run, metrics, watcher);
    c.announce_start();
    c.event_loop().await?;
    c.finish()
}

/// A run that could not start. A target that does not resolve is the
/// target's fault: the results say why nothing was sent, for whatever
/// reads them next (a CI step, a dashboard).
fn nothing_sent(spec: &RunSpec, e: engine::EngineError) -> Failure {
    if let (engine::EngineError::Resolve { .. }, Some(out)) = (&e, &spec.outputs.out) {
        let why = e.to_string();
        let info = spec.info(
            &humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            Status::Aborted,
            Duration::ZERO,
            Some(format!("nothing was sent: {why}")),
            BTreeMap::from([("connect".to_string(), why)]),
        );
        let stats = Stats::new(spec.plan.scenario.endpoints.clone());
        if let Err(f) = output::write(out, &Results::new(info, stats, &[]).to_json()) {
            return f;
        }
    }
    Failure::usage(e)
}

/// One run's state while it goes on.
struct Controller<'a> {
    spec: &'a RunSpec,
    run: engine::Run,
    started_at: String,
    live: Live,
    watches: Vec<AbortWatch>,
    metrics: Option<Arc<Mutex<String>>>,
    console: Console,
    outputs: Vec<WorkerOutput>,
    /// The latest copy of each worker's statistics, for checkpoints.
    snapshots: BTreeMap<usize, WorkerOutput>,
    status: Status,
    aborted_by_threshold: bool,
    abort_reason: Option<String>,
    interrupts: u32,
    hard_deadline: Option<tokio::time::Instant>,
    /// Reads the target's metrics and processes, on its own thread.
    watcher: Option<Watcher>,
}

/// What the controller does next, after an event.
enum Next {
    Continue,
    Finished,
}

impl<'a> Controller<'a> {
    fn new(
        spec: &'a RunSpec,
        run: engine::Run,
        metrics: Option<Arc<Mutex<String>>>,
        watcher: Option<Watcher>,
    ) -> Self {
        Controller {
            watcher,
            started_at: humantime::format_rfc3339_seconds(run.started_at).to_string(),
            watches: spec.judging.abort_if.iter().map(|r| r.watch()).collect(),
            console: Console::new(&spec.plan, spec.outputs.quiet),
            outputs: Vec::with_capacity(run.workers),
            spec,
            run,
            live: Live::default(),
            metrics,
            snapshots: BTreeMap::new(),
            status: Status::Completed,
            aborted_by_threshold: false,
            abort_reason: None,
            interrupts: 0,
            hard_deadline: None,
        }
    }

    fn announce_start(&self) {
        let plan = &self.spec.plan;
        let (Some(at), false) = (plan.start_at, self.spec.outputs.quiet) else {
            return;
        };
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

    async fn event_loop(&mut self) -> Result<(), Failure> {
        let show_every = self.console.every();
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::from_std(
                self.run.start + show_every + Duration::from_millis(150),
            ),
            show_every,
        );
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let checkpoint_every = self.spec.outputs.checkpoint_every;
        let mut checkpoint =
            tokio::time::interval(checkpoint_every.unwrap_or(Duration::from_secs(3600)));
        checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checkpoint.tick().await;
        let quiet = self.spec.outputs.quiet;
        loop {
            let term = async {
                match sigterm.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let hard_deadline = self.hard_deadline;
            let deadline = async {
                match hard_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                event = self.run.events.recv() => self.on_event(event),
                _ = tokio::signal::ctrl_c() => self.interrupt(),
                _ = term => self.interrupt(),
                _ = deadline => {
                    return Err(Failure {
                        code: exit::ABORTED,
                        error: anyhow!("workers did not stop in time; exiting without results"),
                    });
                }
                _ = checkpoint.tick(), if checkpoint_every.is_some() && !self.snapshots.is_empty() => {
                    self.checkpoint();
                    Next::Continue
                }
                _ = ticker.tick(), if !quiet => {
                    self.show_progress();
                    Next::Continue
                }
            };
            if let Next::Finished = next {
                return Ok(());
            }
        }
    }

    fn on_event(&mut self, event: Option<Event>) -> Next {
        match event {
            Some(Event::Progress(mut p)) => {
                if let Some(s) = p.snapshot.take() {
                    self.snapshots.insert(s.worker, *s);
                }
                self.live.add(&p);
                // Each period's reports, one per worker, judge --abort-if.
                if let Some(period) = self.live.period(&p, self.run.workers) {
                    self.judge_period(&period);
                }
                self.publish_metrics();
                self.judge_totals();
                Next::Continue
            }
            Some(Event::Done(out)) => {
                self.outputs.push(*out);
                if self.outputs.len() == self.run.workers {
                    Next::Finished
                } else {
                    Next::Continue
                }
            }
            None => Next::Finished,
        }
    }

    /// `--abort-if` on one progress period of every worker.
    fn judge_period(&mut self, period: &Interval) {
        let end = Duration::from_secs(self.run.start.elapsed().as_secs_f64().round() as u64);
        let fired = self
            .watches
            .iter_mut()
            .find_map(|w| w.observe(end, PROGRESS_EVERY, period));
        if let Some(reason) = fired {
            if self.abort(&reason) {
                self.abort_reason = Some(reason);
            }
        }
    }

    /// `--abort-on-fail` on the totals so far.
    fn judge_totals(&mut self) {
        let counts = self.live.all.counts;
        if self.spec.judging.abort_on_fail
            && self
                .spec
                .judging
                .thresholds
                .iter()
                .any(|t| t.clearly_lost(counts.requests, counts.failed()))
        {
            self.abort(&format!(
                "an error threshold is clearly lost ({} of {} requests failed)",
                counts.failed(),
                counts.requests
            ));
        }
    }

    /// Stops the load because a threshold is lost; returns whether this
    /// was the first reason to stop.
    fn abort(&mut self, reason: &str) -> bool {
        if self.status != Status::Completed {
            return false;
        }
        self.status = Status::Aborted;
        self.aborted_by_threshold = true;
        self.run.control.stop.cancel();
        if !self.spec.outputs.quiet {
            eprintln!("\nstopping: {reason}");
            self.console.below_panel();
        }
        true
    }

    fn publish_metrics(&self) {
        let Some(text) = &self.metrics else { return };
        let exposition = report::prometheus(
            &self.live.all,
            self.live.in_flight.values().sum(),
            self.console.closed.then(|| self.live.vus.values().sum()),
            self.run.start.elapsed().as_secs_f64(),
        );
        if let Ok(mut t) = text.lock() {
            *t = exposition;
        }
    }

    /// Ctrl-C or SIGTERM: the first stops new requests and lets those in
    /// flight finish within the grace; the second abandons them.
    fn interrupt(&mut self) -> Next {
        self.interrupts += 1;
        if self.interrupts == 1 {
            self.status = Status::Interrupted;
            self.run.control.stop.cancel();
            eprintln!(
                "\nstopping: no new requests; waiting up to {} for those in flight (Ctrl-C again to stop now)",
                plan::format_duration(self.spec.plan.grace)
            );
        } else {
            self.run.control.kill.cancel();
            self.hard_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3));
            eprintln!("\nstopping now: abandoning requests in flight");
        }
        // The message went below the panel: draw the next one after it.
        self.console.below_panel();
        Next::Continue
    }

    /// Rewrites `--out` with the results so far, from the workers' latest
    /// copies.
    fn checkpoint(&self) {
        let Some(out) = &self.spec.outputs.out else {
            return;
        };
        let merged = merge_outputs(&self.spec.plan, self.snapshots.values().cloned().collect());
        let mut info = self.spec.info(
            &self.started_at,
            Status::Running,
            merged.load_end,
            None,
            merged.first_errors,
        );
        info.server = self
            .watcher
            .as_ref()
            .map(|w| w.server(merged.stats.timeline.len(), merged.stats.bucket_s));
        let results = Results::judged(info, merged.stats, &self.spec.judging.thresholds);
        if let Err(e) = output::write_quietly(out, &results.to_json()) {
            eprintln!("warning: checkpoint not written: {:#}", e.error);
        }
    }

    fn show_progress(&mut self) {
        let elapsed = self.run.start.elapsed();
        let c = &mut self.console;
        let view = self
            .live
            .view(elapsed, PROGRESS_EVERY, self.run.workers, c.total, c.closed);
        if c.tty {
            let profile = self.spec.plan.model.profile();
            let mut panel = self.live.dashboard(view, profile, elapsed);
            panel.server = self
                .watcher
                .as_ref()
                .map(Watcher::headline)
                .unwrap_or_default();
            c.draw_panel(&report::dashboard(&panel));
        } else {
            eprintln!("{}", report::progress_line(&view));
        }
    }

    /// Waits for the workers and merges what they recorded.
    fn finish(mut self) -> Result<Outcome, Failure> {
        self.console.leave_panel();
        let workers_started = self.run.workers;
        self.run.join();
        if let Some(w) = &mut self.watcher {
            w.stop();
        }
        if self.outputs.len() < workers_started {
            return Err(Failure {
                code: exit::ABORTED,
                error: anyhow!(
                    "{} of {workers_started} workers failed; see the messages above",
                    workers_started - self.outputs.len()
                ),
            });
        }
        let merged = merge_outputs(&self.spec.plan, self.outputs);
        let mut status = self.status;
        let mut stop_reason = merged.stop_reason.clone();
        if stop_reason.is_some() && status == Status::Completed {
            status = Status::Aborted;
        }
        if let Some(reason) = self.abort_reason {
            stop_reason.get_or_insert(reason);
        }
        if self.spec.judging.abort_on_fail && status == Status::Aborted && stop_reason.is_none() {
            stop_reason = Some("an error threshold was clearly lost (--abort-on-fail)".into());
        }
        let server = self
            .watcher
            .as_ref()
            .map(|w| w.server(merged.stats.timeline.len(), merged.stats.bucket_s));
        Ok(Outcome {
            merged,
            server,
            ending: Ending {
                status,
                stop_reason,
                aborted_by_threshold: self.aborted_by_threshold,
                started_at: self.started_at,
            },
        })
    }
}

/// The progress shown while a run goes on: a panel redrawn in place on a
/// terminal, a line every few seconds elsewhere.
struct Console {
    tty: bool,
    quiet: bool,
    /// Lines of the live panel on screen (a terminal only).
    drawn: usize,
    closed: bool,
    total: Option<Duration>,
}

impl Console {
    fn new(plan: &Plan, quiet: bool) -> Console {
        Console {
            tty: std::io::stderr().is_terminal(),
            quiet,
            drawn: 0,
            closed: matches!(plan.model, Model::Closed { .. }),
            total: plan.duration(),
        }
    }

    fn every(&self) -> Duration {
        if self.tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        }
    }

    /// A panel redrawn in place: up to its first line, then each line
    /// cleared and written again.
    fn draw_panel(&mut self, lines: &[String]) {
        let mut frame = String::new();
        if self.drawn > 0 {
            frame.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in lines {
            frame.push_str(&format!("\r\x1b[2K{l}\n"));
        }
        eprint!("{frame}");
        self.drawn = lines.len();
    }

    /// A message went below the panel: the next one is drawn after it.
    fn below_panel(&mut self) {
        self.drawn = 0;
    }

    /// The panel stays on screen, as the last state of the run.
    fn leave_panel(&self) {
        if self.tty && !self.quiet && self.drawn > 0 {
            eprintln!();
        }
    }
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
            server: Vec::new(),
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
            sessions_rate: interval.counts.sessions as f64 / secs,
            p50_ms: has.then(|| interval.latency.quantile_ms(0.5)),
            p99_ms: has.then(|| interval.latency.quantile_ms(0.99)),
            requests: self.all.counts.requests,
            errors: self.all.counts.failed(),
            dropped: self.all.counts.dropped(),
            resent: self.all.counts.resent,
            in_flight: self.in_flight.values().sum(),
            vus: closed.then(|| self.vus.values().sum()),
            sockets: self.all.live.open(),
        }
    }
}

/// The workers' outputs, merged.
pub struct Merged {
    /// Everything recorded, with the checks described (the first arm's,
    /// in an A/B run).
    pub stats: Stats,
    /// The further arms' statistics, in order, in an A/B run.
    pub other_arms: Vec<Stats>,
    /// When the last worker stopped starting requests: the planned end,
    /// the moment it saw a stop, or its last due arrival under --requests.
    pub load_end: Duration,
    /// Why the load stopped early, if a worker says.
    pub stop_reason: Option<String>,
    /// The first message of each error kind.
    pub first_errors: BTreeMap<String, String>,
}

/// Merges the workers' statistics exactly (histograms add bucket by bucket).
fn merge_outputs(plan: &Plan, mut outputs: Vec<WorkerOutput>) -> Merged {
    outputs.sort_by_key(|o| o.worker);
    let check_info = plan.scenario.check_info();
    let empty = || {
        let mut stats = Stats::new(plan.scenario.endpoints.iter().cloned())
            .with_checks(plan.scenario.checks.iter().cloned());
        stats.describe_checks(check_info.iter().map(|c| stats::CheckMeta {
            endpoint: &c.endpoint,
            reads_back: c.reads_back,
            part: c.part,
            header: &c.header,
        }));
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

/// Returns at the first Ctrl-C or SIGTERM: how a command that serves
/// until told to stop (`throng lab`, `throng record`) waits.
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
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
}
