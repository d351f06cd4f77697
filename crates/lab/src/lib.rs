//! `throng lab`: a small crowdfunding site that fails the way real sites
//! fail, each way behind a flag.
//!
//! The site (home, assets, login, lessons, funds, pledges, a profile, a
//! deploy control, health and metrics) runs on a real SQLite database
//! generated from a seed. Every pathology of `shared/incidents.md` that a
//! server can show is a real code path switched on by a [`Config`] field:
//! a costlier release, a login that scans every user, a bounded connection
//! pool, a unit-of-work race, a lagging replica, a routing table that
//! hands an address to another app mid-deploy, periodic freezes, short
//! cache lifetimes behind an edge cache, a queue that works on requests
//! nobody waits for, and WebSocket rooms that drop sockets past a cap.
//! See each module for how.
//!
//! Nothing in throng's engine depends on this crate; the `throng` binary
//! embeds it for `throng lab`, `throng demo` and the end-to-end tests.

mod app;
mod assets;
mod config;
mod db;
mod deploy;
mod listing;
mod metrics;
mod pages;
mod rooms;
mod router;
mod uow;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use assets::ORIGIN_RTT;
pub use config::{Config, Release, Stall};
pub use db::{email, FEATURED_TITLE, OTHER_TITLE, PASSWORD};
pub use router::BOUNTY_HOST;

/// Why the lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating or opening the database failed.
    #[error("cannot create the lab's database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime could not be built.
    #[error("cannot start the lab's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A running lab; stops when dropped.
pub struct Lab {
    addr: SocketAddr,
    /// How long generating the data took.
    pub generated_in: Duration,
    state: Arc<app::State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lab {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `/metrics` text, read in-process.
    pub fn metrics(&self) -> String {
        self.state.metrics.render()
    }

    /// Stops serving and waits for the server's thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Generates the data, binds, and serves on a thread of its own (with
/// `config.threads` runtime workers) until the returned [`Lab`] is stopped
/// or dropped.
pub fn start(config: Config) -> Result<Lab, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .thread_name("lab")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let t0 = Instant::now();
    let db = db::Db::create(&config, metrics.clone())?;
    let generated_in = t0.elapsed();
    let listener = rt
        .block_on(TcpListener::bind(config.listen))
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let router = Arc::new(router::Router::new(config.misroute));
    let deployer = {
        let _guard = rt.enter();
        deploy::Deployer::start(config.metastable, router.clone(), metrics.clone())
    };
    let state = Arc::new(app::State {
        uow: uow::Context::new(config.race),
        edge: assets::Edge::new(config.short_cache),
        listing: listing::Listing::new(config.seed),
        rooms: Arc::new(rooms::Rooms::new(config.ws_cap, metrics.clone())),
        config,
        db,
        metrics,
        sessions: Mutex::new(std::collections::HashMap::new()),
        router,
        deployer,
        started: Instant::now(),
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let serving = state.clone();
    let thread = std::thread::Builder::new()
        .name("lab-server".into())
        .spawn(move || {
            rt.block_on(serve(listener, serving, stop_rx));
            rt.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(Error::Runtime)?;
    Ok(Lab {
        addr,
        generated_in,
        state,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

async fn serve(listener: TcpListener, state: Arc<app::State>, mut stop: oneshot::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors, say: wait a little and go on.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| app::handle(state.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
