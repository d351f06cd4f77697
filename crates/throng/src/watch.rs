//! What the target was doing during the run: its metrics endpoints
//! scraped (`--scrape`, `scrape:`) and its processes read from `/proc`
//! (`--watch-pid`, `--watch-cmd`), on a thread of its own with its own
//! runtime, so nothing here takes time from the workers. Readings go into
//! one `observe::Recorder`; the controller asks it for the series at each
//! checkpoint and at the end, and for a few figures for the live panel.
//!
//! Reads are timed from the run's start: once at the start (a baseline,
//! so that a counter has a rate after the first half-interval), then at
//! the middle of each interval (`observe::series` says why). A read never
//! outlives its interval: a slow endpoint costs its reading, not the
//! next one.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use observe::process::{self, Reading};
use observe::{Recorder, SourceKind};

use crate::Failure;

/// Series kept at most unless `--scrape-max-series` says otherwise.
pub const DEFAULT_MAX_SERIES: usize = 300;

/// How often a process is read.
const PROCESS_EVERY: Duration = Duration::from_secs(1);

/// Processes `--watch-cmd` may find for one name.
const MAX_PROCESSES: usize = 16;

/// What to watch, resolved before the run starts.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    /// Metrics endpoints.
    pub scrapes: Vec<plan::Scrape>,
    /// Processes.
    pub processes: Vec<Process>,
    /// The most series kept.
    pub max_series: usize,
}

impl WatchSpec {
    /// Whether there is nothing to watch.
    pub fn is_empty(&self) -> bool {
        self.scrapes.is_empty() && self.processes.is_empty()
    }
}

/// A process to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its id.
    pub pid: u32,
    /// Its name, as `/proc/PID/stat` has it.
    pub name: String,
    /// Only its threads whose name starts with this (the demo's lab,
    /// which shares throng's process); memory and descriptors stay the
    /// whole process's.
    pub threads: Option<String>,
}

impl Process {
    fn label(&self) -> String {
        match &self.threads {
            None => format!("pid {} ({})", self.pid, self.name),
            Some(prefix) => format!("pid {} ({}), threads {prefix}*", self.pid, self.name),
        }
    }
}

/// `--watch-pid` and `--watch-cmd`, found in `/proc`.
pub fn find_processes(pids: &[u32], commands: &[String]) -> Result<Vec<Process>, Failure> {
    let mut found = Vec::new();
    for &pid in pids {
        let name = stat_name(pid).ok_or_else(|| {
            Failure::usage(anyhow!(
                "--watch-pid {pid}: no such process can be read here (it must run on this machine; `pgrep -n NAME` gives a pid)"
            ))
        })?;
        found.push(Process {
            pid,
            name,
            threads: None,
        });
    }
    for command in commands {
        let matching = processes_named(command);
        if matching.is_empty() {
            return Err(Failure::usage(anyhow!(
                "--watch-cmd {command}: no process of that name is running here (names are as `ps -e` shows them; or give --watch-pid PID)"
            )));
        }
        if matching.len() > MAX_PROCESSES {
            return Err(Failure::usage(anyhow!(
                "--watch-cmd {command}: {} processes have that name; watch at most {MAX_PROCESSES} (pick them by --watch-pid)",
                matching.len()
            )));
        }
        for p in matching {
            if !found.contains(&p) {
                found.push(p);
            }
        }
    }
    Ok(found)
}

/// The name in `/proc/PID/stat`, if the process can be read.
fn stat_name(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    process::parse_stat(&text).map(|(name, _, _)| name.to_string())
}

/// Processes (not throng itself) whose name or program is `command`. The
/// kernel cuts names at 15 bytes, so the program's file name is read
/// from the command line as well.
fn processes_named(command: &str) -> Vec<Process> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<Process> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let name = stat_name(pid)?;
            let program = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .and_then(|c| {
                    let argv0 = c.split(|b| *b == 0).next()?.to_vec();
                    let argv0 = String::from_utf8(argv0).ok()?;
                    Some(argv0.rsplit('/').next().unwrap_or_default().to_string())
                });
            (name == command || program.as_deref() == Some(command)).then_some(Process {
                pid,
                name,
                threads: None,
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Reads a process: CPU, memory, threads, descriptors, switches. The
/// process's `status` counts only its first thread's switches, so they
/// are summed over its threads (as CPU is, when only some threads are
/// watched).
fn read_process(p: &Process) -> io::Result<Reading> {
    let base = format!("/proc/{}", p.pid);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unreadable stat line");
    let mut r = Reading::default();
    process::parse_status(&std::fs::read_to_string(format!("{base}/status"))?, &mut r);
    let stat = std::fs::read_to_string(format!("{base}/stat"))?;
    (_, r.user_ticks, r.system_ticks) = process::parse_stat(&stat).ok_or_else(bad)?;
    // Exited, and only waiting for its parent to notice: gone.
    if matches!(process::parse_state(&stat), Some('Z' | 'X')) {
        return Err(io::Error::new(io::ErrorKind::NotFound, "exited"));
    }
    (r.voluntary_switches, r.involuntary_switches) = (0, 0);
    if p.threads.is_some() {
        (r.user_ticks, r.system_ticks, r.threads) = (0, 0, 0);
    }
    for task in std::fs::read_dir(format!("{base}/task"))?.flatten() {
        let path = task.path();
        // A thread that ended meanwhile is skipped.
        if let Some(prefix) = &p.threads {
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue;
            };
            let Some((name, user, system)) = process::parse_stat(&stat) else {
                continue;
            };
            if !name.starts_with(prefix.as_str()) {
                continue;
            }
            r.user_ticks += user;
            r.system_ticks += system;
            r.threads += 1;
        }
        let mut t = Reading::default();
        if let Ok(status) = std::fs::read_to_string(path.join("status")) {
            process::parse_status(&status, &mut t);
        }
        r.voluntary_switches += t.voluntary_switches;
        r.involuntary_switches += t.involuntary_switches;
    }
    r.fds = std::fs::read_dir(format!("{base}/fd"))
        .ok()
        .map(|d| d.count() as u64);
    r.max_fds = std::fs::read_to_string(format!("{base}/limits"))
        .ok()
        .and_then(|l| process::parse_max_fds(&l));
    Ok(r)
}

/// The machine's CPUs, and throng's own share of them.
fn read_machine() -> Option<observe::Machine> {
    let (busy_ticks, cpus) = process::parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, user, system) = process::parse_stat(&own)?;
    Some(observe::Machine {
        busy_ticks,
        cpus,
        own_ticks: user + system,
    })
}

/// The kernel's clock tick, which `/proc` counts CPU time in.
fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// The watching thread, and the series it records.
pub struct Watcher {
    recorder: Arc<Mutex<Recorder>>,
    /// What the thread will read, until it starts.
    pending: Option<Pending>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The readers, ready before the run: each scrape's source, settings and
/// fetcher (its host resolved), the processes, the machine's source.
struct Pending {
    scrapes: Vec<(usize, plan::Scrape, engine::Fetcher)>,
    processes: Vec<(usize, Process)>,
    machine: Option<usize>,
}

fn lock(r: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    r.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watcher {
    /// Gets ready to watch (hosts resolved, TLS built): before the run,
    /// so that a scrape URL that cannot be read at all is a usage error
    /// and not a run stopped after it began. `None` when there is
    /// nothing to watch.
    pub fn new(spec: &WatchSpec) -> Result<Option<Watcher>, Failure> {
        if spec.is_empty() {
            return Ok(None);
        }
        let mut recorder = Recorder::new(spec.max_series);
        let mut scrapes = Vec::new();
        for s in &spec.scrapes {
            let fetcher = engine::Fetcher::new(&s.request)
                .map_err(|e| Failure::usage(anyhow!("--scrape {}: {e}", s.url())))?;
            let source = recorder.source(SourceKind::Scrape, s.url());
            scrapes.push((source, s.clone(), fetcher));
        }
        let processes: Vec<(usize, Process)> = spec
            .processes
            .iter()
            .map(|p| (recorder.source(SourceKind::Process, p.label()), p.clone()))
            .collect();
        // Beside a process, the machine it shares: was every CPU busy?
        let machine = (!processes.is_empty())
            .then(|| recorder.source(SourceKind::Process, observe::MACHINE.to_string()));
        Ok(Some(Watcher {
            recorder: Arc::new(Mutex::new(recorder)),
            pending: Some(Pending {
                scrapes,
                processes,
                machine,
            }),
            stop: None,
            thread: None,
        }))
    }

    /// Starts the thread, with times counted from `start` (the run's).
    pub fn start(&mut self, start: Instant) -> Result<(), Failure> {
        let Some(Pending {
            scrapes,
            processes,
            machine,
        }) = self.pending.take()
        else {
            return Ok(());
        };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = self.recorder.clone();
        let thread = std::thread::Builder::new()
            .name("throng-watch".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let start = tokio::time::Instant::from_std(start);
                    let mut tasks = tokio::task::JoinSet::new();
                    for (source, scrape, fetcher) in scrapes {
                        tasks.spawn(scrape_loop(shared.clone(), source, scrape, fetcher, start));
                    }
                    if let Some(machine) = machine {
                        tasks.spawn(process_loop(shared, machine, processes, start));
                    }
                    let _ = stopped.await;
                    tasks.abort_all();
                });
            })
            .map_err(|e| Failure::usage(anyhow!("cannot start the watching thread: {e}")))?;
        self.stop = Some(stop);
        self.thread = Some(thread);
        Ok(())
    }

    /// The series so far, aligned with a timeline of `buckets` buckets
    /// of `bucket_s` seconds.
    pub fn server(&self, buckets: usize, bucket_s: u64) -> observe::Server {
        lock(&self.recorder).finish(buckets, bucket_s)
    }

    /// The few figures the live panel shows.
    pub fn headline(&self) -> Vec<String> {
        lock(&self.recorder).headline()
    }

    /// Stops watching (the last readings are kept).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// When readings are due: once at the start (a baseline, so that even a
/// one-second run has a rate), then at the middle of each interval.
struct Ticks {
    start: tokio::time::Instant,
    every: Duration,
    /// The next interval's number; `None` before the reading at the start.
    next: Option<u32>,
}

impl Ticks {
    fn new(start: tokio::time::Instant, every: Duration) -> Ticks {
        Ticks {
            start,
            every,
            next: None,
        }
    }

    fn due(&self, k: u32) -> tokio::time::Instant {
        self.start + self.every * k + self.every / 2
    }

    /// Waits for the next reading's time. A late wake-up skips readings
    /// rather than bunching them.
    async fn tick(&mut self) {
        let Some(mut k) = self.next else {
            self.next = Some(0);
            tokio::time::sleep_until(self.start).await;
            return;
        };
        let now = tokio::time::Instant::now();
        while self.due(k) + self.every / 2 < now {
            k += 1;
        }
        self.next = Some(k + 1);
        tokio::time::sleep_until(self.due(k)).await;
    }
}

fn seconds_since(start: tokio::time::Instant) -> f64 {
    tokio::time::Instant::now()
        .saturating_duration_since(start)
        .as_secs_f64()
}

async fn scrape_loop(
    recorder: Arc<Mutex<Recorder>>,
    source: usize,
    scrape: plan::Scrape,
    fetcher: engine::Fetcher,
    start: tokio::time::Instant,
) {
    let mut ticks = Ticks::new(start, scrape.interval);
    loop {
        ticks.tick().await;
        let t = seconds_since(start);
        let read = fetcher.get(scrape.timeout, scrape.max_size).await;
        let mut r = lock(&recorder);
        match read {
            Ok(body) => r.scraped(source, t, &String::from_utf8_lossy(&body), |n| {
                scrape.keeps(n)
            }),
            Err(e) => r.failed(source, e.reason(), || e.to_string()),
        }
    }
}

async fn process_loop(
    recorder: Arc<Mutex<Recorder>>,
    machine: usize,
    mut processes: Vec<(usize, Process)>,
    start: tokio::time::Instant,
) {
    let per_s = ticks_per_second();
    let mut ticks = Ticks::new(start, PROCESS_EVERY);
    while !processes.is_empty() {
        ticks.tick().await;
        let t = seconds_since(start);
        let readings: Vec<(usize, io::Result<Reading>)> = processes
            .iter()
            .map(|(source, p)| (*source, read_process(p)))
            .collect();
        let mut machine_reading = read_machine();
        // Threads of throng's own process that are the target's (the
        // demo's lab) are not throng's load.
        let me = std::process::id();
        for ((_, p), (_, reading)) in processes.iter().zip(&readings) {
            if let (true, Some(m), Ok(r)) = (p.pid == me, machine_reading.as_mut(), reading) {
                m.own_ticks = m.own_ticks.saturating_sub(r.user_ticks + r.system_ticks);
            }
        }
        let mut r = lock(&recorder);
        if let Some(m) = machine_reading {
            r.machine(machine, t, m, per_s);
        }
        for (source, reading) in readings {
            match reading {
                Ok(reading) => r.process(source, t, reading, per_s),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // It exited (or crashed): its series end here.
                    r.failed(source, "gone", || {
                        format!("the process was gone at {t:.1}s")
                    });
                    r.gone(source, t);
                    processes.retain(|(s, _)| *s != source);
                }
                Err(e) => r.failed(source, "unreadable", || e.to_string()),
            }
        }
    }
}
