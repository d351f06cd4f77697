//! The load engine: turns a [`plan::Plan`] into requests on the wire and
//! their measurements.
//!
//! [`start`] resolves the target (or takes the address [`resolve`] chose
//! before), builds TLS once, and starts one OS thread
//! per worker, each with its own current-thread tokio runtime, connections
//! and [`stats::Recorder`]. Workers send one [`Event::Progress`] per second
//! and one [`Event::Done`] at the end; nothing crosses threads per request.
//! The engine never prints: the caller decides what to show.

mod ceiling;
mod cookies;
mod error;
mod fetch;
mod h1;
mod h2;
mod hpack;
mod net;
mod pacer;
mod redirect;
mod request;
pub mod sse;
mod transport;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use plan::{HttpVersion, Plan, Scenario, Target};
use tokio::sync::mpsc;

pub use error::EngineError;
pub use fetch::{FetchError, Fetcher};
#[doc(hidden)]
pub use h1::fuzz_response as fuzz_h1_response;
pub use h2::fuzz_frames as fuzz_h2_frames;
pub use worker::{Control, Event, Feed, Progress, WorkerOutput};

use h1::H1Connector;
use h2::H2Connector;
use net::Dialer;
use redirect::Reach;
use request::Prepared;
use transport::Connector;
use worker::{run_worker, Arm, WorkerConfig};

/// The TLS client configuration `throng run` dials with (the built-in
/// roots and `--cacert`, or `--insecure`; resumption as asked), without
/// ALPN: for another client of the same target, such as the recorder's
/// connections to its upstream, which negotiates its own.
pub fn tls_client_config(opts: &plan::TlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut config = Arc::unwrap_or_clone(net::tls_config(opts, false)?);
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
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
    /// What the user is to be told before the load: how a target's
    /// address was chosen when it was not its first.
    pub notes: Vec<String>,
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
    let targets = targets(plan);
    let sources = &scenario.clients.source_ips;
    // Addresses chosen before (a capacity search's, for every step) are
    // kept; else they are chosen now.
    let Resolved { addrs, notes } = if plan.addrs.len() == targets.len() {
        Resolved {
            addrs: plan.addrs.clone(),
            notes: Vec::new(),
        }
    } else {
        resolve(plan)?
    };
    let arms = dialers(&targets, &addrs, &scenario.tls, http2)?;
    let ips: Vec<(&plan::Target, std::net::IpAddr)> = targets
        .iter()
        .zip(&addrs)
        .map(|(t, a)| (*t, a.ip()))
        .collect();
    let reach = Arc::new(Reach::new(
        &scenario.redirects,
        &ips,
        &scenario.tls,
        http2,
        sources,
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
                // The protocol is chosen here, once: the worker is generic
                // over it.
                let out = if http2 {
                    // The run's connections split between the workers,
                    // at least one each.
                    let total = scenario.clients.http2_connections;
                    let each = total.div_ceil(workers).max(1);
                    let streams = Some(scenario.clients.http2_streams).filter(|&n| n > 0);
                    let arms = arms_of(arms, &scenario, &reach, |dialer| {
                        H2Connector::new(dialer, each, streams)
                    });
                    local.block_on(
                        &rt,
                        run_worker(cfg, scenario, arms, control, tx.clone(), feed),
                    )
                } else {
                    let arms = arms_of(arms, &scenario, &reach, |dialer| H1Connector { dialer });
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
        notes,
        threads,
    })
}

/// The address each target of a plan is sent to, and what the user is to
/// be told of how it was chosen ([`resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// One per target: the scenario's, or each A/B arm's in order.
    pub addrs: Vec<std::net::SocketAddr>,
    /// How an address was chosen when it was not its host's first.
    pub notes: Vec<String>,
}

/// Checks the plan's source addresses (`clients.source_ips`) and chooses
/// the address of each of its targets, as a run does at its start (a
/// probe when a host has several addresses: up to 500 ms each). A caller
/// that runs the same plan many times (a capacity search) does it once
/// and keeps the result in [`Plan::addrs`], so every run sends to the
/// same address without probing again.
pub fn resolve(plan: &Plan) -> Result<Resolved, EngineError> {
    let sources = &plan.scenario.clients.source_ips;
    net::check_sources(sources)?;
    let mut resolved = Resolved {
        addrs: Vec::new(),
        notes: Vec::new(),
    };
    for target in targets(plan) {
        let (addr, note) = net::resolve_target(&target.host, target.port, sources)?;
        resolved.addrs.push(addr);
        resolved.notes.extend(note);
    }
    Ok(resolved)
}

/// A plan's targets: the scenario's, or an A/B run's two.
fn targets(plan: &Plan) -> Vec<&Target> {
    if plan.ab.is_empty() {
        vec![&plan.scenario.target]
    } else {
        plan.ab.iter().map(|a| &a.target).collect()
    }
}

/// A target's dialers (for requests, and for live connections) and the
/// target.
type TargetDialers = (Dialer, Dialer, Target);

/// Each target's dialers, to its address in `addrs`: for requests (in
/// the run's protocol), and for live connections (WebSockets upgrade an
/// HTTP/1.1 connection, and event streams are read on one, whatever the
/// run's protocol: TLS offers only http/1.1 to them).
fn dialers(
    targets: &[&plan::Target],
    addrs: &[std::net::SocketAddr],
    tls: &plan::TlsOptions,
    http2: bool,
) -> Result<Vec<TargetDialers>, EngineError> {
    let mut arms = Vec::with_capacity(targets.len());
    for (target, &addr) in targets.iter().zip(addrs) {
        let dialer = net::dialer_to(target, addr, tls, http2)?;
        let live = if http2 {
            net::dialer_to(target, addr, tls, false)?
        } else {
            dialer.clone()
        };
        arms.push((dialer, live, (*target).clone()));
    }
    Ok(arms)
}

/// A worker's arms: one per target, with its connector and the scenario's
/// requests rendered for it once.
fn arms_of<C: Connector>(
    targets: Vec<TargetDialers>,
    scenario: &Scenario,
    reach: &Arc<Reach>,
    connector: impl Fn(Dialer) -> C,
) -> Vec<Arm<C>> {
    targets
        .into_iter()
        .map(|(dialer, live, target)| Arm {
            prepared: Prepared::new(scenario, &target),
            connector: connector(dialer),
            target,
            reach: reach.clone(),
            live: Some(live),
        })
        .collect()
}
