//! The load engine: turns a [`plan::Plan`] into requests on the wire and
//! their measurements.
//!
//! [`start`] resolves the target, builds TLS once, and starts one OS thread
//! per worker, each with its own current-thread tokio runtime, connections
//! and [`stats::Recorder`]. Workers send one [`Event::Progress`] per second
//! and one [`Event::Done`] at the end; nothing crosses threads per request.
//! The engine never prints: the caller decides what to show.

mod ceiling;
mod cookies;
mod h1;
mod h2;
mod net;
mod pacer;
mod redirect;
mod request;
mod transport;
mod worker;

#[cfg(test)]
mod tests;

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use plan::{HttpVersion, Plan, Scheme};
use tokio::sync::mpsc;

pub use h1::{BadChunk, Chunked, H1Connector};
pub use h2::H2Connector;
pub use net::{tls_connector, Dialer, Stream, TlsTarget};
pub use redirect::{is_redirect, Reach};
pub use request::{
    render_h1, render_h2, render_replay_h1, render_replay_h2, Outgoing, Prepared, Who, USER_AGENT,
};
pub use transport::{Capture, Connection, Connector, Failure, Response, Stage};
pub use worker::{run_worker, Arm, Control, Event, Feed, Progress, WorkerConfig, WorkerOutput};

/// The run could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The host name did not resolve.
    #[error("cannot resolve {host:?}: {why} (check the host name, or use an IP address)")]
    Resolve {
        /// The host.
        host: String,
        /// Why (shown in the message, so not a `source` as well).
        why: std::io::Error,
    },
    /// TLS could not be set up (a bad `--cacert`, for instance).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// `--start-at` named a time already past.
    #[error("the start time (--start-at) passed {:.1} s ago: start every segment before it, or give a later time", .0.as_secs_f64())]
    StartPassed(Duration),
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
}

/// A running load test.
pub struct Run {
    /// Stops new requests, or abandons in-flight ones.
    pub control: Control,
    /// Progress and completion events from the workers.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Wall-clock time of the run start (the common start of all workers).
    pub started_at: SystemTime,
    /// Monotonic time of the run start.
    pub start: std::time::Instant,
    /// How many workers were started.
    pub workers: usize,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Run {
    /// Waits for the worker threads to exit (after their `Done` events).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The first address of `host`, once per run (never per request).
fn resolve(host: &str, port: u16) -> Result<std::net::SocketAddr, EngineError> {
    (host, port)
        .to_socket_addrs()
        .and_then(|mut addrs| {
            addrs
                .next()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"))
        })
        .map_err(|why| EngineError::Resolve {
            host: host.to_string(),
            why,
        })
}

/// Resolves `target` and builds its TLS client, once per run.
fn dialer(
    target: &plan::Target,
    tls: &plan::TlsOptions,
    http2: bool,
) -> Result<Dialer, EngineError> {
    let addr = resolve(&target.host, target.port)?;
    let tls = match target.scheme {
        Scheme::Http => None,
        Scheme::Https => {
            let connector = tls_connector(tls, http2).map_err(EngineError::Tls)?;
            let name =
                rustls_pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    EngineError::Tls(format!(
                        "{:?} is not a valid TLS server name: {e}",
                        target.host
                    ))
                })?;
            Some(TlsTarget { connector, name })
        }
    };
    Ok(Dialer { addr, tls })
}

/// Starts a run of `plan`, reporting progress every `progress_every`.
pub fn start(plan: &Plan, progress_every: Duration) -> Result<Run, EngineError> {
    start_with(plan, progress_every, Vec::new())
}

/// Starts a run of `plan` whose requests come from replay `feeds`, one per
/// worker (`plan.worker_count()` of them); the plan's open model gives the
/// in-flight cap and, for reports, the feed's rate over time. With no
/// feeds, the same as [`start`].
pub fn start_with(
    plan: &Plan,
    progress_every: Duration,
    feeds: Vec<Feed>,
) -> Result<Run, EngineError> {
    let mut feeds = feeds.into_iter();
    let scenario = &plan.scenario;
    let http2 = scenario.version == HttpVersion::Http2;
    // One arm per target: the scenario's, or an A/B run's two.
    let targets: Vec<&plan::Target> = if plan.ab.is_empty() {
        vec![&scenario.target]
    } else {
        plan.ab.iter().map(|a| &a.target).collect()
    };
    let mut arms = Vec::with_capacity(targets.len());
    for target in &targets {
        let dialer = dialer(target, &scenario.tls, http2)?;
        let prepared = Arc::new(Prepared::new(scenario, target));
        arms.push((dialer, (*target).clone(), prepared));
    }
    let resolved: Vec<(&plan::Target, std::net::IpAddr)> = targets
        .iter()
        .zip(&arms)
        .map(|(t, (d, _, _))| (*t, d.addr.ip()))
        .collect();
    let reach = Arc::new(Reach::new(
        &scenario.redirects,
        &resolved,
        &scenario.tls,
        http2,
    )?);
    let scenario = Arc::new(scenario.clone());

    let (tx, rx) = mpsc::unbounded_channel();
    let control = Control::default();
    // A short lead lets every worker be ready before the first arrival; a
    // set start time (`--start-at`, shared by every segment) is kept to.
    let lead = Duration::from_millis(20);
    let (now, wall) = (std::time::Instant::now(), SystemTime::now());
    let (start, started_at) = match plan.start_at {
        Some(at) => match at.duration_since(wall) {
            Ok(ahead) => (now + ahead, at),
            Err(late) => return Err(EngineError::StartPassed(late.duration())),
        },
        None => (now + lead, wall + lead),
    };
    let workers = plan.worker_count();
    let mut threads = Vec::with_capacity(workers);
    for index in 0..workers {
        let cfg = WorkerConfig {
            index,
            workers,
            model: plan.model.clone(),
            max_requests: plan.max_requests,
            timeout: plan.timeout,
            grace: plan.grace,
            seed: plan.seed,
            segment: plan.segment,
            start: tokio::time::Instant::from_std(start),
            progress_every,
            snapshot_every: plan.snapshot_every,
            max_rate: plan.max_rate,
            max_body: plan.max_body,
            precise: true,
        };
        let (scenario, arms, control, tx, reach) = (
            scenario.clone(),
            arms.clone(),
            control.clone(),
            tx.clone(),
            reach.clone(),
        );
        let feed = feeds.next();
        let thread = std::thread::Builder::new()
            .name(format!("throng-worker-{index}"))
            .spawn(move || {
                pacer::tighten_timer_slack();
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let local = tokio::task::LocalSet::new();
                let out = if http2 {
                    let arms = arms
                        .into_iter()
                        .map(|(d, target, prepared)| Arm {
                            connector: H2Connector::new(d),
                            target,
                            prepared,
                            reach: reach.clone(),
                        })
                        .collect();
                    local.block_on(
                        &rt,
                        run_worker(cfg, scenario, arms, control, tx.clone(), feed),
                    )
                } else {
                    let arms = arms
                        .into_iter()
                        .map(|(dialer, target, prepared)| Arm {
                            connector: H1Connector { dialer },
                            target,
                            prepared,
                            reach: reach.clone(),
                        })
                        .collect();
                    local.block_on(
                        &rt,
                        run_worker(cfg, scenario, arms, control, tx.clone(), feed),
                    )
                };
                let _ = tx.send(Event::Done(Box::new(out)));
            })
            .map_err(EngineError::Thread)?;
        threads.push(thread);
    }
    Ok(Run {
        control,
        events: rx,
        started_at,
        start,
        workers,
        threads,
    })
}
