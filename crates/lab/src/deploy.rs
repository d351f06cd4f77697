//! `/deploy`, the "restart my app" command (incidents I4 and I5).
//!
//! Deploys go through a bounded queue to one worker: each builds the
//! release (`BUILD` of real CPU work) and restarts the app. A healthy
//! server skips queued deploys whose client has already hung up. Under
//! `--metastable` the worker builds them anyway: once an overload has made
//! clients time out, the queue fills with work nobody waits for, new
//! requests wait behind it, time out in turn, and (with clients that
//! retry) the overload sustains itself after the trigger is gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::router::Router;

/// CPU time one deploy's build takes.
pub const BUILD: Duration = Duration::from_millis(2);

/// Deploys that may wait; more are refused with 503.
pub const QUEUE: usize = 1024;

/// Why a deploy was not done.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full.
    QueueFull,
    /// The worker is gone (the lab is stopping).
    Stopped,
}

/// Accepts deploys and hands them to the worker.
pub struct Deployer {
    tx: mpsc::Sender<oneshot::Sender<u64>>,
    metrics: Arc<Metrics>,
}

/// Real work standing for a build: hashing until `BUILD` has passed.
fn build() -> u64 {
    let started = Instant::now();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i: u64 = 0;
    while started.elapsed() < BUILD {
        for _ in 0..4096 {
            h ^= i;
            h = h.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
    }
    h
}

impl Deployer {
    /// Starts the worker on the current runtime.
    pub fn start(metastable: bool, router: Arc<Router>, metrics: Arc<Metrics>) -> Deployer {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<u64>>(QUEUE);
        metrics
            .deploy_queue_capacity
            .store(QUEUE as u64, Ordering::Relaxed);
        let m = metrics.clone();
        tokio::spawn(async move {
            let release = AtomicU64::new(1);
            while let Some(reply) = rx.recv().await {
                m.deploy_queue.fetch_sub(1, Ordering::Relaxed);
                if reply.is_closed() {
                    if !metastable {
                        m.add(&m.deploys_abandoned_skipped, 1);
                        continue;
                    }
                    m.add(&m.deploys_abandoned_worked, 1);
                }
                if tokio::task::spawn_blocking(build).await.is_err() {
                    continue;
                }
                router.restart_fundfill().await;
                let n = release.fetch_add(1, Ordering::Relaxed) + 1;
                m.add(&m.deploys, 1);
                let _ = reply.send(n);
            }
        });
        Deployer { tx, metrics }
    }

    /// Queues a deploy and waits for it; the new release number.
    pub async fn deploy(&self) -> Result<u64, Refused> {
        let (reply, done) = oneshot::channel();
        self.metrics.deploy_queue.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(reply) {
            self.metrics.deploy_queue.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => {
                    self.metrics.add(&self.metrics.deploys_refused, 1);
                    Refused::QueueFull
                }
                mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
            });
        }
        done.await.map_err(|_| Refused::Stopped)
    }
}
