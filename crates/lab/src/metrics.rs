//! The lab's own counters, served at `/metrics` in the Prometheus text
//! format, so that a run's findings can be checked against what the
//! server saw.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Routes, in the order `/metrics` lists them.
pub const ROUTES: [&str; 15] = [
    "home",
    "static",
    "login",
    "learn",
    "funds",
    "pledge",
    "profile",
    "deploy",
    "listing",
    "pair",
    "health",
    "metrics",
    "other_app",
    "balancer",
    "not_found",
];

/// Counters; all relaxed atomics, read only by `/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Requests by route (index into `ROUTES`) and status class (1xx..5xx).
    requests: [[AtomicU64; 5]; ROUTES.len()],
    /// Requests that waited for a pooled connection in vain (503).
    pub db_pool_timeouts: AtomicU64,
    /// Total µs spent waiting for pooled connections.
    pub db_pool_wait_us: AtomicU64,
    /// Units of work found closed by another code path (`--race`).
    pub uow_conflicts: AtomicU64,
    /// Requests served by the wrong app (`--misroute`).
    pub misrouted: AtomicU64,
    /// Deploys completed.
    pub deploys: AtomicU64,
    /// Deploys worked on after their client had gone (`--metastable`).
    pub deploys_abandoned_worked: AtomicU64,
    /// Deploys skipped because their client had gone.
    pub deploys_abandoned_skipped: AtomicU64,
    /// Deploys refused because the queue was full.
    pub deploys_refused: AtomicU64,
    /// Deploys waiting in the queue now.
    pub deploy_queue: AtomicU64,
    /// Asset requests answered from the edge cache.
    pub cache_hits: AtomicU64,
    /// Asset requests that went to the origin.
    pub cache_misses: AtomicU64,
    /// Requests held by a stall (`--stall`).
    pub stalled: AtomicU64,
    /// Asset requests being answered now.
    pub static_in_flight: AtomicU64,
    /// The most asset requests answered at once so far.
    pub static_in_flight_max: AtomicU64,
    /// Different funds opened by their listing ids.
    pub listing_funds_opened: AtomicU64,
    /// WebSockets upgraded.
    pub ws_opened: AtomicU64,
    /// WebSockets open now.
    pub ws_open: AtomicU64,
    /// WebSockets dropped at the cap (`--ws-cap`).
    pub ws_rejected: AtomicU64,
    /// WebSocket messages received.
    pub ws_messages: AtomicU64,
    /// Messages not delivered to a member whose queue was full.
    pub ws_slow_dropped: AtomicU64,
    /// Event streams subscribed to.
    pub sse_streams: AtomicU64,
    /// Events sent to subscribers.
    pub sse_events: AtomicU64,
    /// Requests being handled now (event streams excepted).
    pub in_flight: AtomicU64,
    /// The database pools' gauges and wait times, by [`PoolName`].
    pub pools: [PoolMetrics; 2],
    /// Whether reads go to a replica (its lag is served only then).
    pub replicated: AtomicBool,
    /// When each write not yet applied on the replica was applied on the
    /// primary, oldest first.
    pub replica_pending: Mutex<VecDeque<Instant>>,
    /// Deploys the queue holds at most.
    pub deploy_queue_capacity: AtomicU64,
}

/// Which pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolName {
    /// Writes, and reads without a replica.
    Primary = 0,
    /// Reads behind the replica.
    Replica = 1,
}

/// Upper bounds of the pool wait histogram's buckets, seconds.
pub const WAIT_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One pool's gauges and wait times, as an app's pool library exposes them.
#[derive(Default)]
pub struct PoolMetrics {
    /// Connections the pool may hold.
    pub size: AtomicU64,
    /// Connections held by requests now.
    pub in_use: AtomicU64,
    /// Waits for a connection (granted or timed out), by bucket of
    /// [`WAIT_BOUNDS`] (the last: longer than all of them).
    wait_buckets: [AtomicU64; WAIT_BOUNDS.len() + 1],
    /// Total wait, µs.
    wait_us: AtomicU64,
}

impl PoolMetrics {
    /// Records one wait for a connection.
    pub fn waited(&self, wait: std::time::Duration) {
        let s = wait.as_secs_f64();
        let i = WAIT_BOUNDS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(WAIT_BOUNDS.len());
        self.wait_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.wait_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a response.
    pub fn request(&self, route: usize, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(r) = self.requests.get(route) {
            r[class].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters and gauges besides requests: name, help, value.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 14] {
        [
            (
                "lab_db_pool_timeouts_total",
                "Requests that found no free database connection in time.",
                &self.db_pool_timeouts,
            ),
            (
                "lab_db_pool_wait_microseconds_total",
                "Time spent waiting for database connections.",
                &self.db_pool_wait_us,
            ),
            (
                "lab_uow_conflicts_total",
                "Units of work closed by another code path (--race).",
                &self.uow_conflicts,
            ),
            (
                "lab_misrouted_total",
                "Requests served by the wrong app (--misroute).",
                &self.misrouted,
            ),
            ("lab_deploys_total", "Deploys completed.", &self.deploys),
            (
                "lab_deploys_abandoned_worked_total",
                "Deploys worked on after their client gave up (--metastable).",
                &self.deploys_abandoned_worked,
            ),
            (
                "lab_deploys_abandoned_skipped_total",
                "Deploys skipped because their client gave up.",
                &self.deploys_abandoned_skipped,
            ),
            (
                "lab_deploys_refused_total",
                "Deploys refused because the queue was full.",
                &self.deploys_refused,
            ),
            (
                "lab_deploy_queue",
                "Deploys waiting now.",
                &self.deploy_queue,
            ),
            (
                "lab_cache_hits_total",
                "Asset requests answered by the edge cache.",
                &self.cache_hits,
            ),
            (
                "lab_cache_misses_total",
                "Asset requests sent to the origin.",
                &self.cache_misses,
            ),
            (
                "lab_stalled_total",
                "Requests held by a stall (--stall).",
                &self.stalled,
            ),
            (
                "lab_static_in_flight_max",
                "The most asset requests answered at once so far.",
                &self.static_in_flight_max,
            ),
            (
                "lab_listing_funds_opened",
                "Different funds opened by their listing ids.",
                &self.listing_funds_opened,
            ),
        ]
    }

    /// The live connections' counters and gauges.
    fn live_counters(&self) -> [(&'static str, &'static str, &AtomicU64); 7] {
        [
            (
                "lab_ws_opened_total",
                "WebSockets upgraded.",
                &self.ws_opened,
            ),
            ("lab_ws_open", "WebSockets open now.", &self.ws_open),
            (
                "lab_ws_rejected_total",
                "WebSockets dropped without a close frame at the cap (--ws-cap).",
                &self.ws_rejected,
            ),
            (
                "lab_ws_messages_total",
                "WebSocket messages received.",
                &self.ws_messages,
            ),
            (
                "lab_ws_slow_dropped_total",
                "Room messages not delivered to a member too slow to take them.",
                &self.ws_slow_dropped,
            ),
            (
                "lab_sse_streams_total",
                "Room event streams subscribed to.",
                &self.sse_streams,
            ),
            (
                "lab_sse_events_total",
                "Room events sent to subscribers.",
                &self.sse_events,
            ),
        ]
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP lab_requests_total Responses by route and status class.\n# TYPE lab_requests_total counter"
        );
        for (route, counts) in ROUTES.iter().zip(&self.requests) {
            for (c, n) in counts.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "lab_requests_total{{route=\"{route}\",status=\"{}xx\"}} {n}",
                        c + 1
                    );
                }
            }
        }
        for (name, help, v) in self.counters().into_iter().chain(self.live_counters()) {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.render_gauges(&mut out);
        out
    }

    /// What a real app's instrumentation would add: requests in flight,
    /// the pools (in use, size, wait times), the replica's lag and the
    /// deploy queue's capacity.
    fn render_gauges(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP lab_http_requests_in_flight Requests being handled now.\n# TYPE lab_http_requests_in_flight gauge\nlab_http_requests_in_flight {}",
            load(&self.in_flight)
        );
        let pools: Vec<(&str, &PoolMetrics)> =
            [("primary", &self.pools[0]), ("replica", &self.pools[1])]
                .into_iter()
                .filter(|(_, p)| load(&p.size) > 0)
                .collect();
        for (name, help, value) in [
            (
                "lab_db_pool_in_use",
                "Database connections held by requests now.",
                (|p: &PoolMetrics| p.in_use.load(Ordering::Relaxed)) as fn(&PoolMetrics) -> u64,
            ),
            (
                "lab_db_pool_size",
                "Database connections the pool may hold.",
                |p| p.size.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (pool, p) in &pools {
                let _ = writeln!(out, "{name}{{pool=\"{pool}\"}} {}", value(p));
            }
        }
        let name = "lab_db_pool_wait_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time requests waited for a database connection.\n# TYPE {name} histogram"
        );
        for (pool, p) in &pools {
            let mut cumulative = 0;
            for (i, n) in p.wait_buckets.iter().enumerate() {
                cumulative += load(n);
                let le = WAIT_BOUNDS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "{name}_bucket{{pool=\"{pool}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_sum{{pool=\"{pool}\"}} {}\n{name}_count{{pool=\"{pool}\"}} {cumulative}",
                load(&p.wait_us) as f64 / 1e6
            );
        }
        if self.replicated.load(Ordering::Relaxed) {
            let lag = self
                .replica_pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .front()
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            let _ = writeln!(
                out,
                "# HELP lab_replica_lag_seconds How long the oldest write the replica has not applied yet has waited.\n# TYPE lab_replica_lag_seconds gauge\nlab_replica_lag_seconds {lag}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lab_deploy_queue_capacity Deploys the queue holds at most.\n# TYPE lab_deploy_queue_capacity gauge\nlab_deploy_queue_capacity {}",
            load(&self.deploy_queue_capacity)
        );
    }
}
