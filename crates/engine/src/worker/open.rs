//! The open model: arrivals paced on their schedule and handed to a pool
//! of sender tasks that grows with demand.

use super::*;

/// What an open-model sender is handed.
pub(super) enum Job {
    /// A new session, due at this time, with its number and arm.
    Session(Instant, u64, usize),
    /// One request of a replayed log, with its dispatch number when it
    /// was recorded in a session.
    Replay(plan::ReplayRequest, Option<u64>),
}

/// A sender waiting for its next arrival.
#[derive(Default)]
pub(super) struct Slot {
    /// The next job.
    pub(super) job: Cell<Option<Job>>,
    pub(super) wake: Notify,
}

#[derive(Default)]
pub(crate) struct Pool {
    pub(super) idle: RefCell<Vec<Rc<Slot>>>,
    /// The time finished jobs held their senders, in all, in seconds.
    pub(super) held: Cell<f64>,
    /// Jobs finished so far.
    pub(super) jobs: Cell<u64>,
    /// The automatic in-flight cap as last sized: a sender that finds more
    /// senders than this when it finishes a job stops (closing its
    /// connections). None for a set cap.
    pub(crate) cap: Cell<Option<usize>>,
    /// Notified when a sender goes idle.
    pub(super) went_idle: Notify,
    pub(super) closing: Cell<bool>,
    /// Senders started so far, less those that stopped.
    pub(crate) senders: Cell<usize>,
    /// The open model's arrivals not handed out yet (none in a replay).
    pub(super) upcoming: RefCell<Option<Upcoming>>,
}

/// The open model's schedule, shared by the dispatcher and the senders: a
/// sender that finishes while an arrival is already due takes it at once,
/// rather than going idle and waiting for the dispatcher to be polled and
/// hand it over. Under load that wait is a trip through every ready task,
/// and it showed as generator lag; each arrival is still taken once, and
/// still measured from its due time.
pub(super) struct Upcoming {
    pub(super) schedule: ArrivalSchedule,
    /// The next arrival's due time, from the run start.
    pub(super) next: Option<Duration>,
    /// Arrivals taken so far.
    pub(super) taken: u64,
    /// The due time of the last arrival taken.
    pub(super) last_due: Duration,
}

impl Upcoming {
    pub(super) fn new(mut schedule: ArrivalSchedule) -> Upcoming {
        let next = schedule.next();
        Upcoming {
            schedule,
            next,
            taken: 0,
            last_due: Duration::ZERO,
        }
    }

    /// The next arrival, with its number (from 1), if it is due at `now`
    /// (from the run start).
    pub(super) fn take_due(&mut self, now: Duration) -> Option<(Duration, u64)> {
        let due = self.next.filter(|d| *d <= now)?;
        self.next = self.schedule.next();
        self.taken += 1;
        self.last_due = due;
        Some((due, self.taken))
    }
}

impl Pool {
    /// An idle sender, or a new one while fewer than `max` exist; `None`
    /// when the in-flight cap is reached.
    pub(super) fn sender<C: Connector + 'static>(
        self: &Rc<Pool>,
        sh: &Rc<Shared<C>>,
        max: usize,
    ) -> Option<Rc<Slot>> {
        if let Some(slot) = self.idle.borrow_mut().pop() {
            return Some(slot);
        }
        if self.senders.get() >= max {
            return None;
        }
        Some(self.spawn(sh))
    }

    /// A new sender, with its own connections.
    pub(super) fn spawn<C: Connector + 'static>(self: &Rc<Pool>, sh: &Rc<Shared<C>>) -> Rc<Slot> {
        self.senders.set(self.senders.get() + 1);
        let slot = Rc::new(Slot::default());
        let guard = AliveGuard::new(sh);
        tokio::task::spawn_local(open_sender(guard, self.clone(), slot.clone()));
        slot
    }

    /// Counts a finished job that held its sender `held` (for W of
    /// Little's law, see [`Cap`]).
    pub(super) fn held(&self, held: Duration) {
        self.jobs.set(self.jobs.get() + 1);
        self.held.set(self.held.get() + held.as_secs_f64());
    }

    /// What the dispatcher has seen so far.
    fn seen(&self) -> Seen {
        Seen {
            taken: self.taken(),
            due: self
                .upcoming
                .borrow()
                .as_ref()
                .map_or(Duration::ZERO, |u| u.last_due),
            held: self.held.get(),
            jobs: self.jobs.get(),
        }
    }

    /// True when this sender, having finished its job, is one too many
    /// for the cap (which fell since it started), and is to stop.
    pub(crate) fn retires(&self) -> bool {
        let senders = self.senders.get();
        if self.cap.get().is_some_and(|cap| senders > cap) {
            self.senders.set(senders - 1);
            return true;
        }
        false
    }

    /// Arrivals taken so far.
    pub(super) fn taken(&self) -> u64 {
        self.upcoming.borrow().as_ref().map_or(0, |u| u.taken)
    }

    /// An arrival already due at `now`, as a sender's next job, unless
    /// the load phase is over.
    pub(super) fn take_due<C: Connector>(&self, sh: &Shared<C>, now: Instant) -> Option<Job> {
        if sh.end.is_cancelled() {
            return None;
        }
        let now = now.saturating_duration_since(sh.start);
        let (due, n) = self.upcoming.borrow_mut().as_mut()?.take_due(now)?;
        Some(sh.arrival(due, n))
    }

    /// Tells every sender to stop once its job is done.
    pub(super) fn close(&self) {
        self.closing.set(true);
        for slot in self.idle.borrow_mut().drain(..) {
            slot.job.set(None);
            slot.wake.notify_one();
        }
    }
}

/// Waits until `due`. False when the load phase ended first.
pub(super) async fn until_due<C: Connector>(sh: &Shared<C>, pacer: &Pacer, due: Instant) -> bool {
    until_due_from(sh, pacer, due, Instant::now())
        .await
        .is_some()
}

/// [`until_due`], with the time the caller read last (`now`): the clock
/// is read again only after a wait. Returns the time, or None when the
/// load phase ended first.
async fn until_due_from<C: Connector>(
    sh: &Shared<C>,
    pacer: &Pacer,
    due: Instant,
    now: Instant,
) -> Option<Instant> {
    if now < due {
        tokio::select! {
            biased;
            _ = sh.end.cancelled() => None,
            _ = pacer.until(due) => Some(Instant::now()),
        }
    } else if sh.end.is_cancelled() {
        None
    } else {
        Some(now)
    }
}

/// How this thread has run so far: the CPU time it used, and the time it
/// was ready to run but waited for its core (another process, or another
/// thread, had it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Ran {
    pub(crate) cpu: Duration,
    pub(crate) waited: Duration,
}

/// This thread's [`Ran`]: from the scheduler's own account
/// (`/proc/thread-self/schedstat`: time on a core, then time waiting on a
/// run queue, in ns) where there is one, else its CPU time alone.
fn thread_ran() -> Ran {
    let parsed = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| {
            let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
            match (fields.next(), fields.next()) {
                (Some(Ok(cpu)), Some(Ok(waited))) => Some(Ran {
                    cpu: Duration::from_nanos(cpu),
                    waited: Duration::from_nanos(waited),
                }),
                _ => None,
            }
        });
    parsed.unwrap_or_else(|| {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Ran {
            cpu: Duration::new(
                t.tv_sec.max(0) as u64,
                t.tv_nsec.clamp(0, 999_999_999) as u32,
            ),
            waited: Duration::ZERO,
        }
    })
}

/// How long a due arrival waits for a busy sender to finish before a new
/// sender (with a new connection) is started for it.
const PATIENCE: Duration = Duration::from_micros(200);

/// The open model's cap on senders (sessions in flight), for one worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum InFlight {
    /// `--max-in-flight N`'s share.
    Fixed(usize),
    /// Sized by Little's law as the run goes, up to `ceiling`
    /// (`plan::DEFAULT_MAX_IN_FLIGHT`'s share).
    Auto { ceiling: usize },
}

/// Headroom over the sessions Little's law says are in flight on average.
const HEADROOM: f64 = 4.0;
/// The least automatic cap of a worker.
const FLOOR: usize = 32;
/// A pause of the target (or of the machine) this long is ridden out
/// without arrivals waiting for a sender: the automatic cap is at least
/// the arrivals of this long. At 155,000 arrivals a second against nginx,
/// 32 senders left 1% of the arrivals waiting ~1 ms for one (lag p99
/// 0.92-0.97 ms), 64 left lag p99 at 0.46 ms; both dropped ~0.1%.
const PAUSE: Duration = Duration::from_micros(500);
/// How often the automatic cap is sized again.
const SIZING: Duration = Duration::from_millis(100);
/// How often it is sized while it has not yet seen a job finish (a
/// run's first moments): at a slow target, the first 100 ms at the
/// floor would drop most of their arrivals.
const SIZING_AT_START: Duration = Duration::from_millis(10);

/// The worker's thread is this busy or more (of the time it could run: a
/// core taken from it by another process is time it was busy too): more
/// connections would not send sooner, only cost more.
const BUSY: f64 = 0.9;

/// What the dispatcher has seen so far, for sizing the automatic cap.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Seen {
    /// Arrivals taken from the schedule (sent or dropped).
    pub(crate) taken: u64,
    /// When the last of them was due, from the run start.
    pub(crate) due: Duration,
    /// The time finished jobs held their senders, in all, in seconds.
    pub(crate) held: f64,
    /// Jobs finished.
    pub(crate) jobs: u64,
}

/// The cap as it stands: fixed, or sized again every [`SIZING`] from what
/// happened since it was last sized: the rate at which arrivals were due
/// (λ) and the mean time the jobs that finished held their senders (W):
/// `HEADROOM × λ × W`, at least `FLOOR` and the arrivals of a [`PAUSE`],
/// at most `ceiling`; every [`SIZING_AT_START`] until a job has finished.
///
/// Three rules keep a generator's own trouble from opening connections
/// that only make it worse (measured before them: 1000 connections and
/// 3-15% of the arrivals dropped where 50 connections dropped 1%):
/// - W is the mean over the whole window, not over the last jobs: a stall
///   of the machine that holds the jobs in flight for 40 ms then weighs
///   as those few jobs do among the window's thousands, rather than
///   deciding the cap if a sizing falls just after it.
/// - After the first sizing that knows W, the cap at most doubles from one
///   sizing to the next (from the floor to 1000 in half a second when a
///   target does slow down).
/// - While the worker's own thread was [`BUSY`], the cap does not rise: a
///   generator at its limit makes every session look slow. Busy is of
///   the time the thread could run: a core taken by another process
///   while the thread was ready (the scheduler's run-queue wait, [`Ran`])
///   is left out, so that a noisy host's stalls count as the full core
///   they are (before, a 20 ms stall in every 200 ms read as 80% busy,
///   and the cap climbed to 1000 in `bench/run --quick` on CI).
///
/// When the cap falls, senders over it stop as they finish ([`Pool`]).
///
/// Known limit: from about 20,000 arrivals a second the pacer spends the
/// gaps between arrivals yielding (a sleep would wake too late), so the
/// thread looks busy by its CPU time whatever the load, and against a
/// slow target the cap then stays low (30,000/s at a 20 ms target: 32
/// senders, most arrivals dropped and counted, and the summary says to
/// raise `--max-in-flight`). Judging "busy" by how late the dispatcher
/// woke instead was tried and let a generator at its limit climb to 1000
/// connections again (bench case (b): −6% to −31% of the rate).
pub(crate) struct Cap {
    of: InFlight,
    now: usize,
    /// W from the last window in which a job finished, in seconds.
    holding: Option<f64>,
    since: Duration,
    seen_since: Seen,
    ran_since: Ran,
}

impl Cap {
    pub(crate) fn new(of: InFlight) -> Cap {
        let now = match of {
            InFlight::Fixed(n) => n,
            InFlight::Auto { ceiling } => FLOOR.min(ceiling),
        };
        Cap {
            of,
            now,
            holding: None,
            since: Duration::ZERO,
            seen_since: Seen::default(),
            ran_since: Ran::default(),
        }
    }

    /// The cap at `at` (from the run start), given what the dispatcher has
    /// `seen` so far and how the worker's thread has `ran` so far (read
    /// only when the cap is sized again).
    pub(crate) fn at(&mut self, at: Duration, seen: Seen, ran: impl FnOnce() -> Ran) -> usize {
        let InFlight::Auto { ceiling } = self.of else {
            return self.now;
        };
        let window = at.saturating_sub(self.since);
        let every = if self.holding.is_none() {
            SIZING_AT_START
        } else {
            SIZING
        };
        if window < every {
            return self.now;
        }
        let ran = ran();
        // Of the time the thread could run, the share it did: a stall in
        // which another process had the core makes the sessions in flight
        // look slow just as a full core does.
        let could = window.saturating_sub(ran.waited.saturating_sub(self.ran_since.waited));
        let used = ran.cpu.saturating_sub(self.ran_since.cpu);
        let busy = if could.is_zero() {
            1.0
        } else {
            used.as_secs_f64() / could.as_secs_f64()
        };
        // λ over the arrivals' due times, not over the window: arrivals
        // taken in a burst (a worker that started late, or caught up after
        // a stall) were due over a longer time. A worker that started 30 ms
        // late read 491,000/s in its first 10 ms where 120,000/s were
        // planned, and the cap that followed (up to 1000) opened a
        // connection for each arrival that then waited.
        let taken = seen.taken.saturating_sub(self.seen_since.taken) as f64;
        let span = seen.due.saturating_sub(self.seen_since.due);
        let rate = taken / if span.is_zero() { window } else { span }.as_secs_f64();
        let jobs = seen.jobs.saturating_sub(self.seen_since.jobs);
        let known = self.holding.is_some();
        if jobs > 0 {
            self.holding = Some((seen.held - self.seen_since.held).max(0.0) / jobs as f64);
        }
        let floor = ((rate * PAUSE.as_secs_f64()).ceil() as usize)
            .max(FLOOR)
            .min(ceiling);
        let wanted =
            ((HEADROOM * rate * self.holding.unwrap_or(0.0)).ceil() as usize).clamp(floor, ceiling);
        self.now = if busy >= BUSY {
            wanted.min(self.now).max(floor)
        } else if known {
            wanted.min(self.now.saturating_mul(2)).max(floor)
        } else {
            wanted
        };
        self.since = at;
        self.seen_since = seen;
        self.ran_since = ran;
        self.now
    }
}

/// The least time between two new senders started for waiting arrivals.
const SPAWN_GAP: Duration = Duration::from_micros(50);

/// Open model: dispatches each arrival when due to an idle sender. When
/// every sender is busy, the arrival waits up to [`PATIENCE`] for one to
/// finish (a finishing sender takes it itself), and then a new sender is
/// started, at most one per [`SPAWN_GAP`], while under the in-flight cap
/// ([`Cap`]); at the cap, an arrival waits for a sender up to
/// [`plan::QUEUE_WAIT`] after it was due, and is then counted as dropped
/// (so a pause of the target delays arrivals, measured from their due
/// times, rather than losing them). So the pool grows with
/// demand: a pause of the target a few hundred µs long costs a few new
/// connections, not one per arrival that came during it (at 190,000/s that
/// was a thousand connections, whose setup and upkeep then kept the
/// generator behind). The wait is the generator's, so it shows as lag:
/// latency still runs from the due time. Returns when the load phase
/// ended, from the run start.
pub(super) async fn open_loop<C: Connector + 'static>(
    sh: &Rc<Shared<C>>,
    schedule: ArrivalSchedule,
    in_flight: InFlight,
    duration: Option<Duration>,
    max_arrivals: Option<u64>,
    pacer: &Pacer,
) -> Duration {
    let pool = Rc::new(Pool::default());
    pool.upcoming.replace(Some(Upcoming::new(schedule)));
    let next = |pool: &Pool| pool.upcoming.borrow().as_ref().and_then(|u| u.next);
    let mut exhausted = true;
    let mut last_spawn: Option<Instant> = None;
    let mut cap = Cap::new(in_flight);
    'arrivals: while let Some(offset) = next(&pool) {
        let due_at = sh.start + offset;
        // The clock is read once per arrival unless the dispatcher waits:
        // at 100,000 arrivals a second its reads showed in the profile.
        let Some(mut now) = until_due_from(sh, pacer, due_at, Instant::now()).await else {
            exhausted = false;
            break;
        };
        let taken_before = pool.taken();
        let mut size = |now: Instant| {
            let max = cap.at(
                now.saturating_duration_since(sh.start),
                pool.seen(),
                thread_ran,
            );
            if matches!(in_flight, InFlight::Auto { .. }) {
                pool.cap.set(Some(max));
            }
            max
        };
        size(now);
        let mut waited = false;
        let slot = loop {
            if let Some(slot) = pool.idle.borrow_mut().pop() {
                break Some(slot);
            }
            now = Instant::now();
            waited = false;
            let patient = due_at + PATIENCE;
            let max = size(now);
            let at_cap = pool.senders.get() >= max;
            // At the cap, the arrival waits for a sender, then is dropped.
            let given_up = due_at + plan::QUEUE_WAIT;
            if at_cap && now >= given_up {
                break None;
            }
            let spawn_at = if at_cap {
                given_up
            } else if pool.senders.get() == 0 {
                now
            } else {
                last_spawn.map_or(patient, |l| patient.max(l + SPAWN_GAP))
            };
            if !at_cap && now >= spawn_at {
                last_spawn = Some(now);
                break Some(pool.spawn(sh));
            }
            tokio::select! {
                biased;
                _ = sh.end.cancelled() => {
                    exhausted = false;
                    break 'arrivals;
                }
                _ = pool.went_idle.notified() => {}
                _ = pacer.until(spawn_at) => {}
            }
            waited = true;
            // A sender that finished meanwhile took it: on to the next.
            if pool.taken() != taken_before {
                continue 'arrivals;
            }
        };
        // A sender may have taken this arrival while the dispatcher waited;
        // then the loop moves on to the next.
        if waited {
            now = Instant::now();
        }
        let now = now.saturating_duration_since(sh.start);
        let taken = pool
            .upcoming
            .borrow_mut()
            .as_mut()
            .and_then(|u| u.take_due(now));
        let Some((due, n)) = taken else {
            if let Some(slot) = slot {
                pool.idle.borrow_mut().push(slot);
            }
            continue;
        };
        let Some(slot) = slot else {
            // The session never started: its first step's endpoint is
            // the one that went without. Draw the flow as the session
            // would have, so drops land on the right endpoint.
            let flow = sh.scenario.pick_flow(sh.drop_rng.borrow_mut().f64());
            let endpoint = sh.scenario.flows[flow]
                .steps
                .first()
                .map_or(0, |s| s.endpoint);
            let arm = sh.pick_arm();
            sh.recorders[arm].borrow_mut().record_dropped(endpoint, due);
            continue;
        };
        slot.job.set(Some(sh.arrival(due, n)));
        slot.wake.notify_one();
    }
    let (arrivals, last_due) = pool
        .upcoming
        .borrow()
        .as_ref()
        .map_or((0, Duration::ZERO), |u| (u.taken, u.last_due));
    pool.close();
    match (exhausted, duration) {
        // The schedule ran to its planned end.
        (true, Some(d)) if max_arrivals != Some(arrivals) => d,
        // Ended by the request bound: the load lasted until the last arrival.
        (true, _) => last_due,
        (false, _) => Instant::now().saturating_duration_since(sh.start),
    }
}

pub(super) async fn open_sender<C: Connector>(
    guard: AliveGuard<C>,
    pool: Rc<Pool>,
    slot: Rc<Slot>,
) {
    let sh = &guard.0;
    let mut session = sh.session(0);
    loop {
        slot.wake.notified().await;
        let Some(mut job) = slot.job.take() else {
            break;
        };
        let mut took = Instant::now();
        loop {
            match job {
                Job::Session(due, vu, arm) => {
                    // Each arrival is a new visitor; the sender keeps its connections.
                    session.reset(vu, arm, &sh.scenario.clients, sh.seed_of(vu));
                    sh.run_flow(&mut session, Some(due), false).await;
                }
                Job::Replay(req, id) => sh.replay_one(&mut session, &req, id).await,
            }
            // One clock read ends this job and starts the next.
            let done = Instant::now();
            pool.held(done.saturating_duration_since(took));
            // An arrival already due goes to the first sender free.
            if pool.closing.get() {
                break;
            }
            match pool.take_due(sh, done) {
                Some(next) => job = next,
                None => break,
            }
            took = done;
        }
        if pool.closing.get() || pool.retires() {
            break;
        }
        pool.idle.borrow_mut().push(slot.clone());
        pool.went_idle.notify_one();
    }
}
