//! One worker's scheduler: paces arrivals (open model) or runs virtual
//! users (closed model), sends through a [`Connector`], and records every
//! outcome into its own [`Recorder`].
//!
//! A worker runs on one thread, in a tokio `LocalSet`: its state is shared
//! by `Rc` and `RefCell`, never locked. Requests are carried by long-lived
//! sender tasks that each own one connection, so the steady state spawns
//! nothing and allocates nothing per request. All timing uses
//! `tokio::time::Instant`, which tests pause and advance at will.
//!
//! Here: the worker's configuration, its shared state and `run_worker`.
//! By role: `open` (the dispatcher and its pool of senders), `closed`
//! (virtual users), `replay` (a log's feed), `flow` (a session's steps)
//! and `send` (one request: its connection, re-send, retries, redirects).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use plan::{
    ArrivalSchedule, Clients, Cond, CondCtx, Connections, LazyJson, Model, Node, OnFail, OnMissing,
    Profile, RenderCtx, ResponseView, Retry, RetryBudget, Scenario, Slot, Taken, Target,
};
use stats::{
    ClientWork, ErrorKind, Interval, Outcome, Phases, Recorder, RetryCause, Sample, Stats,
};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::ceiling::Ceiling;
use crate::cookies::Jar;
use crate::error::{Failure, Stage};
use crate::pacer::Pacer;
use crate::redirect::{self, Reach};
use crate::request::{Hop, Prepared, Rendered, Who, Wire};
use crate::transport::{Capture, Connection, Connector, Response};
use page::Lane;

mod closed;
mod flow;
mod live;
mod open;
mod page;
mod replay;
mod send;
mod stream;
mod watch;

use closed::closed_loop;
pub(crate) use open::InFlight;
use open::{open_loop, Job};
#[cfg(test)]
pub(crate) use open::{Cap, Pool, Ran, Seen};
use replay::replay_loop;
pub use replay::Feed;
use watch::{Watch, Watched};

/// The load band of each second of the planned load (middle of the
/// second), so per-endpoint latency can be told apart by load.
fn load_bands(profile: &plan::Profile) -> Vec<u8> {
    let Some(total) = profile.duration() else {
        return Vec::new();
    };
    let peak = profile.peak();
    (0..total.as_secs().max(1))
        .map(|t| {
            let level = profile.value_at(Duration::from_millis(t * 1000 + 500));
            stats::load_band(level, peak) as u8
        })
        .collect()
}

/// Most body bytes kept for checks and extractors; the rest of a longer
/// body is read and discarded.
pub(crate) const MAX_CAPTURED_BODY: usize = 4 * 1024 * 1024;

/// What one worker does.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    /// This worker's index, from 0.
    pub(crate) index: usize,
    /// How many workers share the load.
    pub(crate) workers: usize,
    /// The part of the whole run this process runs: every split between
    /// workers is made between segments first (`plan::Segment`).
    pub(crate) segment: plan::Segment,
    /// The whole run's load model; the worker takes its share.
    pub(crate) model: Model,
    /// The whole run's request bound; the worker takes its share.
    pub(crate) max_requests: Option<u64>,
    /// Limit on one request.
    pub(crate) timeout: Duration,
    /// How long in-flight requests may finish after the load ends.
    pub(crate) grace: Duration,
    /// Seed for random choices.
    pub(crate) seed: u64,
    /// The run's common start.
    pub(crate) start: Instant,
    /// How often to report progress.
    pub(crate) progress_every: Duration,
    /// How often a progress report carries a copy of everything recorded
    /// so far (for checkpoints); never when `None`.
    pub(crate) snapshot_every: Option<Duration>,
    /// The whole run's ceiling on sends per second (`--max-rate`), shared
    /// evenly by every worker of every segment.
    pub(crate) max_rate: Option<f64>,
    /// Most body bytes a response may have (`--max-body`); 0 for no limit.
    pub(crate) max_body: u64,
    /// Whether due times are waited for with a precise timer (a timerfd,
    /// `pacer.rs`); false under a paused test clock, which only tokio's
    /// timer follows.
    pub(crate) precise: bool,
}

/// The request type of connector `C`'s connections.
type Req<C> = <<C as Connector>::Conn as Connection>::Request;

/// One target of a run. A plain run has one; an A/B run (`--ab`) has
/// two, and each session goes to one.
pub(crate) struct Arm<C: Connector> {
    /// Connects to the target.
    pub(crate) connector: C,
    /// Where requests go (`Host`, base path).
    pub(crate) target: Target,
    /// The scenario's static requests, rendered for this target.
    pub(crate) prepared: Prepared<Req<C>>,
    /// Where redirects may go (shared by the arms).
    pub(crate) reach: Arc<Reach>,
    /// Opens live connections (WebSockets): HTTP/1.1 whatever the run's
    /// protocol. `None` for test doubles that cannot.
    pub(crate) live: Option<crate::net::Dialer>,
}

/// A message from a worker.
#[derive(Debug)]
pub enum Event {
    /// Numbers since the last report.
    Progress(Box<Progress>),
    /// The worker finished; its statistics.
    Done(Box<WorkerOutput>),
}

/// A periodic progress report.
#[derive(Debug)]
pub struct Progress {
    /// Which worker.
    pub worker: usize,
    /// Requests that ended since the last report.
    pub interval: Interval,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Virtual users running now (closed model).
    pub vus: usize,
    /// Everything recorded so far, every `snapshot_every`: what the
    /// worker's output would be if it stopped now (`load_end` is the time
    /// of the copy).
    pub snapshot: Option<Box<WorkerOutput>>,
}

/// A worker's final output.
#[derive(Debug, Clone)]
pub struct WorkerOutput {
    /// Which worker.
    pub worker: usize,
    /// Everything it recorded (for the first arm, in an A/B run).
    pub stats: Stats,
    /// What it recorded for each further arm of an A/B run, in order.
    pub other_arms: Vec<Stats>,
    /// When it stopped starting requests, from the run start.
    pub load_end: Duration,
    /// Whether it stopped early because it was told to.
    pub stopped: bool,
    /// The first error message seen for each error kind.
    pub first_errors: Vec<(ErrorKind, String)>,
    /// Why the worker stopped starting sessions before the planned end.
    pub stop_reason: Option<String>,
}

/// Control tokens shared by all workers of a run.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Cancelled to stop starting new requests (first Ctrl-C, abort).
    pub stop: CancellationToken,
    /// Cancelled to abandon requests still in flight.
    pub kill: CancellationToken,
}

struct Shared<C: Connector> {
    arms: Vec<Arm<C>>,
    scenario: Arc<Scenario>,
    /// Picks the arm of each open-model arrival.
    arm_rng: RefCell<fastrand::Rng>,
    worker: usize,
    workers: usize,
    seed: u64,
    /// Draws flows for arrivals that are dropped before a session starts.
    drop_rng: RefCell<fastrand::Rng>,
    /// Rows drawn so far from each feeder by this worker.
    feeder_draws: RefCell<Vec<u64>>,
    /// Why this worker stopped starting sessions early, if it did.
    stop_reason: RefCell<Option<String>>,
    /// Documents whose assets pages have already read.
    seen_documents: RefCell<page::SeenDocuments>,
    /// One per arm.
    recorders: Vec<RefCell<Recorder>>,
    start: Instant,
    timeout: Duration,
    /// Cancelled when this worker starts no more sessions (the load phase
    /// ended, or `stop`). Sessions in progress go on.
    end: CancellationToken,
    /// Cancelled by Ctrl-C or an abort: sessions stop at their next step.
    stop: CancellationToken,
    kill: CancellationToken,
    /// The deadlines of the requests in flight, and `kill` for them.
    watch: Rc<Watch>,
    in_flight: Cell<usize>,
    /// This worker's share of `--max-rate`.
    ceiling: Option<Ceiling>,
    /// `--max-body`, in bytes (0: no limit).
    max_body: u64,
    budget: Cell<Option<u64>>,
    /// Logical requests and retries of the last seconds, for retry budgets.
    retry_budget: RefCell<RetryBudget>,
    alive: Cell<usize>,
    all_done: Notify,
    first_errors: RefCell<Vec<(ErrorKind, String)>>,
    /// A recording's sessions, replayed.
    replayed: replay::Sessions,
}

/// Counts a task as alive until dropped.
struct AliveGuard<C: Connector>(Rc<Shared<C>>);

impl<C: Connector> AliveGuard<C> {
    fn new(sh: &Rc<Shared<C>>) -> AliveGuard<C> {
        sh.alive.set(sh.alive.get() + 1);
        AliveGuard(sh.clone())
    }
}

impl<C: Connector> Drop for AliveGuard<C> {
    fn drop(&mut self) {
        let n = self.0.alive.get() - 1;
        self.0.alive.set(n);
        if n == 0 {
            self.0.all_done.notify_one();
        }
    }
}

impl<C: Connector> Shared<C> {
    /// Takes one request from the budget; false when it is spent.
    fn take_budget(&self) -> bool {
        match self.budget.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                self.budget.set(Some(n - 1));
                true
            }
        }
    }

    /// Keeps `message` as the example of `kind`, if it has none yet.
    fn note_error(&self, kind: ErrorKind, message: impl FnOnce() -> String) {
        let mut first = self.first_errors.borrow_mut();
        if !first.iter().any(|(k, _)| *k == kind) {
            first.push((kind, message()));
        }
    }

    /// The arm of a new open-model arrival: one at random.
    /// The open model's `n`-th arrival (from 1) of this worker, due `due`
    /// after the start, as a sender's job. Session numbers are unique
    /// across workers (and segments): worker + (n - 1) * workers.
    fn arrival(&self, due: Duration, n: u64) -> Job {
        let vu = self.worker as u64 + (n - 1) * self.workers as u64;
        Job::Session(self.start + due, vu, self.pick_arm())
    }

    fn pick_arm(&self) -> usize {
        match self.arms.len() {
            0 | 1 => 0,
            n => self.arm_rng.borrow_mut().usize(..n),
        }
    }

    /// Every arm's interval since the last, merged: progress is for the
    /// run as a whole.
    /// A copy of everything recorded so far, as the worker's output would
    /// be if it stopped now.
    fn snapshot(&self, worker: usize) -> WorkerOutput {
        let mut arms: Vec<Stats> = self
            .recorders
            .iter()
            .map(|r| r.borrow().stats().clone())
            .collect();
        let stats = if arms.is_empty() {
            Stats::new([])
        } else {
            arms.remove(0)
        };
        WorkerOutput {
            worker,
            stats,
            other_arms: arms,
            load_end: Instant::now().saturating_duration_since(self.start),
            stopped: false,
            first_errors: self.first_errors.borrow().clone(),
            stop_reason: None,
        }
    }

    fn take_interval(&self) -> Interval {
        let mut all = Interval::default();
        for r in &self.recorders {
            all.merge(&r.borrow_mut().take_interval());
        }
        all
    }

    /// Records a request that could not even be built.
    fn record_failure(
        &self,
        recorder: &RefCell<Recorder>,
        endpoint: usize,
        due: Option<Instant>,
        kind: ErrorKind,
    ) {
        let now = Instant::now();
        let due = due.unwrap_or(now).saturating_duration_since(self.start);
        let mut recorder = recorder.borrow_mut();
        recorder.record(&Sample {
            endpoint,
            due,
            lag: now.saturating_duration_since(self.start + due),
            service: Duration::ZERO,
            phases: Phases::default(),
            outcome: Outcome::Failed(kind),
            checks_failed: false,
            client: ClientWork::default(),
        });
        if let Some(retries) = recorder.retries() {
            retries.record(due, 0, false);
        }
    }

    /// The seed of user (or session) number `vu`'s random numbers: the
    /// same whichever task carries it, so runs repeat and sessions differ.
    fn seed_of(&self, vu: u64) -> u64 {
        self.seed ^ vu.wrapping_mul(0xa076_1d64_78bd_642f) ^ self.worker as u64
    }

    /// A new session for user number `vu`. In an A/B run, users alternate
    /// between the arms by number (each arm gets half of them, however
    /// few); open-model senders reassign the arm per arrival.
    fn session(&self, vu: u64) -> Session<C::Conn> {
        let mut session = Session {
            conns: (0..self.arms.len()).map(|_| None).collect(),
            arm: (vu as usize) % self.arms.len().max(1),
            vars: vec![None; self.scenario.slots],
            lists: vec![Vec::new(); self.scenario.slots],
            last_status: None,
            last_checks: false,
            lanes: Vec::new(),
            cache: Vec::new(),
            jar: Jar::default(),
            rng: fastrand::Rng::with_seed(self.seed_of(vu)),
            rendered: Rendered::default(),
            request: Default::default(),
            capture: Capture {
                max_body: MAX_CAPTURED_BODY,
                body_limit: self.max_body,
                // A replay's scenario follows none (`Scenario::replay`).
                follow: self.arms.first().is_some_and(|a| a.reach.max > 0),
                source: self.scenario.clients.source_ip(vu),
                ..Capture::default()
            },
            vu,
            iteration: 0,
            agent: None,
        };
        session.become_client(&self.scenario.clients);
        session
    }
}

/// What a virtual user (or, in the open model, a sender between sessions)
/// keeps: its connection, variables, cookies, random numbers and buffers.
struct Session<Conn: Connection> {
    /// A connection per arm (one, but for A/B runs).
    conns: Vec<Option<Conn>>,
    /// The arm this session's requests go to.
    arm: usize,
    /// Variables by slot: `None` has no value.
    vars: Vec<Option<String>>,
    /// List variables (`pick: all`) by slot.
    lists: Vec<Vec<String>>,
    /// The last response's status, if the last request got one.
    last_status: Option<u16>,
    /// Whether every check of the last response passed.
    last_checks: bool,
    /// A page's further connections, kept between pages.
    lanes: Vec<Lane<Conn>>,
    /// Assets fetched before and fresh until then (pages with `cache`).
    cache: Vec<(String, Instant)>,
    jar: Jar,
    rng: fastrand::Rng,
    /// The request being sent, as rendered for the user.
    rendered: Rendered,
    /// The same, in the protocol's form.
    request: Conn::Request,
    capture: Capture,
    vu: u64,
    iteration: u64,
    /// The user's agent, an index into the scenario's mix.
    agent: Option<usize>,
}

impl<Conn: Connection> Session<Conn> {
    /// Starts a new visitor, sent to `arm`, on the same connections (unless
    /// the visitor comes from another address).
    fn reset(&mut self, vu: u64, arm: usize, clients: &Clients, seed: u64) {
        self.arm = arm;
        // Its own random numbers: a sender that carries many sessions
        // must not hand each the same sequence.
        self.rng = fastrand::Rng::with_seed(seed);
        self.vars.iter_mut().for_each(|v| *v = None);
        self.lists.iter_mut().for_each(Vec::clear);
        self.cache.clear();
        self.jar.clear();
        self.vu = vu;
        self.iteration = 0;
        let source = clients.source_ip(vu);
        if source != self.capture.source {
            self.conns.iter_mut().for_each(|c| *c = None);
            // Lanes are made afresh, with the new address.
            self.lanes.clear();
            self.capture.source = source;
        }
        self.become_client(clients);
    }

    /// What `if` and `while` conditions read.
    fn cond_ctx(&self) -> CondCtx<'_> {
        CondCtx {
            vars: &self.vars,
            lists: &self.lists,
            status: self.last_status,
            checks: self.last_checks,
        }
    }

    /// Draws what kind of client user `vu` is: slow or not, which agent.
    /// The draws depend on the user's number only, so runs repeat.
    fn become_client(&mut self, clients: &Clients) {
        let mut rng =
            fastrand::Rng::with_seed(self.vu.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xc11e);
        self.capture.download_cap = clients.download_cap(rng.f64());
        self.agent = clients.pick_user_agent(rng.f64());
    }
}

/// Runs one worker to the end of its share of the load. Must be called
/// inside a `tokio::task::LocalSet`.
pub(crate) async fn run_worker<C: Connector + 'static>(
    cfg: WorkerConfig,
    scenario: Arc<Scenario>,
    arms: Vec<Arm<C>>,
    control: Control,
    events: mpsc::UnboundedSender<Event>,
    feed: Option<Feed>,
) -> WorkerOutput {
    if arms.is_empty() {
        return WorkerOutput {
            worker: cfg.index,
            stats: Stats::new([]),
            other_arms: Vec::new(),
            load_end: Duration::ZERO,
            stopped: false,
            first_errors: Vec::new(),
            stop_reason: Some("the run has no target".into()),
        };
    }
    let sh = Rc::new(Shared::new(&cfg, scenario, arms, &control));
    let watcher = tokio::task::spawn_local(sh.watch.clone().watch(sh.kill.clone()));
    let vus = Rc::new(Cell::new(0usize));
    let ticker = tokio::task::spawn_local(report_progress(
        sh.clone(),
        vus.clone(),
        events.clone(),
        cfg.clone(),
    ));
    // A start set far ahead (`--start-at`) is waited for, unless stopped.
    tokio::select! {
        _ = sleep_until(cfg.start) => {}
        _ = control.stop.cancelled() => {}
    }
    let load_end = run_load(&sh, &cfg, feed, &vus).await;
    sh.end.cancel();
    sh.drain(cfg.grace).await;
    ticker.abort();
    watcher.abort();
    let interval = sh.take_interval();
    let _ = events.send(Event::Progress(Box::new(Progress {
        worker: cfg.index,
        interval,
        in_flight: 0,
        vus: 0,
        snapshot: None,
    })));
    Shared::finish(sh, cfg.index, load_end, control.stop.is_cancelled())
}

/// Runs the worker's share of the load model; returns when it stopped
/// starting requests, from the run start.
async fn run_load<C: Connector + 'static>(
    sh: &Rc<Shared<C>>,
    cfg: &WorkerConfig,
    feed: Option<Feed>,
    vus: &Rc<Cell<usize>>,
) -> Duration {
    let (global, all_workers) = cfg.segment.worker(cfg.index, cfg.workers);
    let pacer = Pacer::new(cfg.precise);
    match &cfg.model {
        Model::Open {
            rate,
            arrivals,
            max_in_flight,
        } => {
            // With one step per flow, arrivals and requests are the same
            // thing, so the schedule itself can stop at the bound (and
            // know its last due time).
            let single_step = sh.scenario.flows.iter().all(|f| f.steps.len() == 1);
            let max_arrivals = sh.budget.get().filter(|_| single_step);
            let schedule = ArrivalSchedule::new(
                rate.clone(),
                *arrivals,
                global,
                all_workers,
                max_arrivals,
                cfg.seed,
            );
            let share = |n: usize| n.div_ceil(all_workers).max(1);
            let cap = match max_in_flight {
                Some(n) => InFlight::Fixed(share(*n)),
                None => InFlight::Auto {
                    ceiling: share(plan::DEFAULT_MAX_IN_FLIGHT),
                },
            };
            match feed {
                Some(feed) => {
                    let n = max_in_flight.unwrap_or(plan::DEFAULT_MAX_IN_FLIGHT);
                    replay_loop(sh, feed, share(n), &pacer).await
                }
                None => open_loop(sh, schedule, cap, rate.duration(), max_arrivals, &pacer).await,
            }
        }
        Model::Closed {
            vus: profile,
            think,
        } => closed_loop(sh, profile, *think, cfg, vus).await,
    }
}

/// Sends a progress report every `progress_every`, with a copy of
/// everything recorded every `snapshot_every`.
async fn report_progress<C: Connector>(
    sh: Rc<Shared<C>>,
    vus: Rc<Cell<usize>>,
    events: mpsc::UnboundedSender<Event>,
    cfg: WorkerConfig,
) {
    let every = cfg.progress_every;
    let mut next = sh.start + every;
    let mut next_snapshot = cfg.snapshot_every.map(|d| sh.start + d);
    loop {
        sleep_until(next).await;
        next += every;
        let interval = sh.take_interval();
        let snapshot = match (next_snapshot, cfg.snapshot_every) {
            (Some(at), Some(d)) if Instant::now() >= at => {
                next_snapshot = Some(at + d);
                Some(Box::new(sh.snapshot(cfg.index)))
            }
            _ => None,
        };
        let progress = Progress {
            worker: cfg.index,
            interval,
            in_flight: sh.in_flight.get(),
            vus: vus.get(),
            snapshot,
        };
        if events.send(Event::Progress(Box::new(progress))).is_err() {
            break;
        }
    }
}

impl<C: Connector> Shared<C> {
    /// A worker's state: its share of the request bound, its place among
    /// every segment's workers (the stride and offset of its arrivals,
    /// feeder rows and session numbers) and a recorder per arm.
    fn new(
        cfg: &WorkerConfig,
        scenario: Arc<Scenario>,
        arms: Vec<Arm<C>>,
        control: &Control,
    ) -> Shared<C> {
        let budget = cfg
            .max_requests
            .map(|n| cfg.segment.share(n, cfg.index, cfg.workers));
        let (global, all_workers) = cfg.segment.worker(cfg.index, cfg.workers);
        let bands = load_bands(cfg.model.profile());
        let retries = scenario.retries();
        let recorders = arms
            .iter()
            .map(|_| {
                let stats = Stats::new(scenario.endpoints.clone())
                    .with_checks(scenario.checks.clone())
                    .with_load_bands(bands.clone());
                RefCell::new(Recorder::with_stats(if retries {
                    stats.with_retries()
                } else {
                    stats
                }))
            })
            .collect();
        Shared {
            arms,
            arm_rng: RefCell::new(fastrand::Rng::with_seed(cfg.seed ^ 0xab ^ global as u64)),
            worker: global,
            workers: all_workers,
            seed: cfg.seed,
            drop_rng: RefCell::new(fastrand::Rng::with_seed(cfg.seed ^ 0x5eed)),
            feeder_draws: RefCell::new(vec![0; scenario.feeders.len()]),
            scenario,
            stop_reason: RefCell::new(None),
            seen_documents: RefCell::default(),
            recorders,
            start: cfg.start,
            timeout: cfg.timeout,
            end: control.stop.child_token(),
            stop: control.stop.clone(),
            kill: control.kill.child_token(),
            watch: Rc::default(),
            in_flight: Cell::new(0),
            max_body: cfg.max_body,
            ceiling: cfg
                .max_rate
                .and_then(|r| Ceiling::new(r / all_workers as f64, cfg.start)),
            budget: Cell::new(budget),
            retry_budget: RefCell::new(RetryBudget::default()),
            alive: Cell::new(0),
            all_done: Notify::new(),
            first_errors: RefCell::new(Vec::new()),
            replayed: replay::Sessions::default(),
        }
    }

    /// Lets in-flight requests finish within `grace`, then abandons them.
    async fn drain(&self, grace: Duration) {
        let drained = async {
            while self.alive.get() > 0 {
                self.all_done.notified().await;
            }
        };
        tokio::select! {
            _ = drained => {}
            _ = sleep(grace) => self.kill.cancel(),
            _ = self.kill.cancelled() => {}
        }
        while self.alive.get() > 0 {
            self.all_done.notified().await;
        }
    }

    /// The worker's output, once every task has ended.
    fn finish(sh: Rc<Shared<C>>, worker: usize, load_end: Duration, stopped: bool) -> WorkerOutput {
        let first_errors = sh.first_errors.take();
        let stop_reason = sh.stop_reason.take();
        let mut arms: Vec<Stats> = match Rc::try_unwrap(sh) {
            Ok(sh) => sh
                .recorders
                .into_iter()
                .map(|r| r.into_inner().into_stats())
                .collect(),
            // A task still holds the state (it cannot, all were awaited
            // above); copy rather than lose the numbers.
            Err(sh) => {
                return WorkerOutput {
                    load_end,
                    stopped,
                    first_errors,
                    stop_reason,
                    ..sh.snapshot(worker)
                }
            }
        };
        let stats = arms.remove(0);
        WorkerOutput {
            worker,
            stats,
            other_arms: arms,
            load_end,
            stopped,
            first_errors,
            stop_reason,
        }
    }
}
