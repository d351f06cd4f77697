//! What the lab serves and which of its pathologies are switched on.

use std::net::SocketAddr;
use std::time::Duration;

/// Which code path the handlers take (incidents I1 and I12).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Release {
    /// The lean path: a few indexed queries per page.
    #[default]
    V1,
    /// The rewrite: the same pages through an ORM-like layer that loads
    /// rows one at a time (N+1 queries), hydrates them through JSON and
    /// sorts in the application.
    V2,
}

/// The whole server freezes `stall` out of every `period`, counted from
/// its start, as a long garbage-collection pause would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    /// How long each freeze lasts.
    pub stall: Duration,
    /// How often a freeze begins.
    pub period: Duration,
}

impl Stall {
    /// How long a request arriving `elapsed` after the start must wait for
    /// the current freeze to end (zero outside a freeze).
    pub fn remaining(&self, elapsed: Duration) -> Duration {
        let period = self.period.as_nanos().max(1);
        let into = elapsed.as_nanos() % period;
        let stall = self.stall.as_nanos();
        if into < stall {
            Duration::from_nanos((stall - into) as u64)
        } else {
            Duration::ZERO
        }
    }
}

/// The lab's configuration. Every pathology is off by default.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Generated users.
    pub users: u32,
    /// Seed for the generated data: the same seed, the same site.
    pub seed: u64,
    /// Runtime worker threads.
    pub threads: usize,
    /// I1, I12: which release the handlers run.
    pub release: Release,
    /// I11: login looks the user up by a pattern match over every row.
    pub login_scan: bool,
    /// I6: size of the database connection pool (`None`: 64).
    pub db_pool: Option<usize>,
    /// I6: how long a request waits for a pooled connection before it
    /// answers 503 "too many connections".
    pub db_wait: Duration,
    /// I9: the page and the session tracker open units of work on one
    /// shared context.
    pub race: bool,
    /// I7: reads go to a replica that applies writes this much later.
    pub replica_lag: Option<Duration>,
    /// I7: how long the replica takes to apply each write, one after
    /// another (zero: as fast as SQLite): a slow replica falls behind
    /// under write load.
    pub replica_apply: Duration,
    /// I5, I10: a restart frees the app's address before it has a new one,
    /// so another app is placed on it meanwhile.
    pub misroute: bool,
    /// Measurement: the server freezes periodically.
    pub stall: Option<Stall>,
    /// I8: assets carry no or a very short cache lifetime.
    pub short_cache: bool,
    /// I4: the deploy queue keeps working on requests whose clients have
    /// already given up.
    pub metastable: bool,
    /// Measurement: every page of the app answers this much later (a
    /// release slower by a known amount, for checking `throng compare`).
    pub delay: Option<Duration>,
    /// I8: every asset (`/static/`) answers this much later, as from an
    /// overloaded edge: a page is as slow as its slowest asset.
    pub slow_assets: Option<Duration>,
    /// WebSockets: past this many open sockets, a new one is upgraded and
    /// then dropped without a close frame (a server at its connection
    /// limit).
    pub ws_cap: Option<u64>,
    /// I3: a balancer in front refuses (431) a request whose headers add
    /// up to more than this many bytes: test traffic with a few short
    /// headers passes, real browsers with their cookies do not.
    pub header_limit: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: 100_000,
            seed: 1,
            threads: 2,
            release: Release::V1,
            login_scan: false,
            db_pool: None,
            db_wait: Duration::from_millis(1000),
            race: false,
            replica_lag: None,
            replica_apply: Duration::ZERO,
            misroute: false,
            stall: None,
            short_cache: false,
            metastable: false,
            delay: None,
            slow_assets: None,
            ws_cap: None,
            header_limit: None,
        }
    }
}

impl Config {
    /// The pathologies switched on, as flags, for the banner.
    pub fn pathologies(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.release == Release::V2 {
            out.push("--release v2".to_string());
        }
        if self.login_scan {
            out.push("--login-scan".into());
        }
        if let Some(n) = self.db_pool {
            out.push(format!(
                "--db-pool {n} --db-wait {}",
                self.db_wait.as_millis()
            ));
        }
        if self.race {
            out.push("--race".into());
        }
        if let Some(lag) = self.replica_lag {
            out.push(format!("--replica-lag {}", lag.as_millis()));
        }
        if !self.replica_apply.is_zero() {
            out.push(format!(
                "--replica-apply {}",
                self.replica_apply.as_millis()
            ));
        }
        if let Some(d) = self.delay {
            out.push(format!("--delay {}us", d.as_micros()));
        }
        if self.misroute {
            out.push("--misroute".into());
        }
        if let Some(n) = self.header_limit {
            out.push(format!("--header-limit {n}"));
        }
        if let Some(s) = self.stall {
            out.push(format!(
                "--stall {}ms,{}ms",
                s.stall.as_millis(),
                s.period.as_millis()
            ));
        }
        if self.short_cache {
            out.push("--short-cache".into());
        }
        if self.metastable {
            out.push("--metastable".into());
        }
        if let Some(d) = self.slow_assets {
            out.push(format!("--slow-assets {}ms", d.as_millis()));
        }
        if let Some(n) = self.ws_cap {
            out.push(format!("--ws-cap {n}"));
        }
        out
    }
}
