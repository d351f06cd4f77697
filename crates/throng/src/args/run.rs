//! `throng run`'s arguments: the biggest command's, apart from the rest.

use super::*;

pub(super) const RUN_EXAMPLES: &str = "\
Examples:
  # A scenario file: user journeys with think times, cookies and templates
  throng run checkout.yaml --target http://127.0.0.1:8080

  # Open model: 500 arrivals per second for 30 s, whatever the target does
  throng run --url http://127.0.0.1:8080/ --rate 500 --duration 30s

  # Closed model: 50 users, each waiting 100 ms between response and next request
  throng run --url http://127.0.0.1:8080/ --vus 50 --think 100ms --duration 30s

  # Ramp the arrival rate: 10 s idle, 30 s up to 500/s, hold a minute, 10 s down
  throng run --url http://127.0.0.1:8080/ --stages '0:10s,500:30s,500:60s,0:10s'

  # A gate for CI: results file, thresholds, exit code 1 when one fails
  throng run --url http://127.0.0.1:8080/api --rate 200 --duration 1m \\
      --threshold 'p99<300ms' --threshold 'errors<1%' --out results.json

  # A retry storm and its control: the same scenario with its clients' retries off
  throng run examples/incidents/i04-retry-storm.yaml --target http://127.0.0.1:8080
  throng run examples/incidents/i04-retry-storm.yaml --target http://127.0.0.1:8080 --no-retries

  # A/B: one interleaved run against two releases, compared per endpoint
  throng run checkout.yaml --ab base=http://127.0.0.1:8080 --ab cand=http://127.0.0.1:8081 \\
      --rate 100 --duration 1m --out ab.json    # writes ab.base.json, ab.cand.json, ab.compare.json

Exit codes: 0 all thresholds held (and, with --ab, no regression), 1 a threshold failed
(or, with --ab, an endpoint regressed; or the scenario's recovery check failed), 2 bad usage or configuration (nothing started),
3 interrupted (Ctrl-C, SIGTERM) or aborted.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Arrivals at a rate, independent of the target's speed.
    Open,
    /// Virtual users, each waiting for its response before the next request.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArrivalsArg {
    /// Evenly spaced.
    Uniform,
    /// A Poisson process (exponential gaps), as independent users arrive.
    Poisson,
}

/// `throng run`'s arguments: what to load, how the run may differ from
/// the scenario's own settings, and where its results go. Typed here;
/// `spec::prepare` turns them into a `RunSpec`, and nothing after it reads
/// them.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario file (YAML) describing the users' journeys.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Load this single URL instead of a scenario (http:// or https://).
    #[arg(long, value_name = "URL", conflicts_with = "scenario")]
    pub url: Option<String>,
    /// The scenario's base URL, overriding its `target`.
    #[arg(long, value_name = "URL", requires = "scenario")]
    pub target: Option<String>,

    #[command(flatten)]
    pub options: RunOptions,

    /// HTTP method.
    #[arg(long, short = 'X', help_heading = "Request")]
    pub method: Option<String>,
    /// A header, 'Name: value' (repeatable).
    #[arg(
        long = "header",
        short = 'H',
        value_name = "HEADER",
        help_heading = "Request"
    )]
    pub headers: Vec<String>,
    /// The request body.
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "body_file",
        help_heading = "Request"
    )]
    pub body: Option<String>,
    /// Read the request body from a file.
    #[arg(long, value_name = "FILE", help_heading = "Request")]
    pub body_file: Option<PathBuf>,

    #[command(flatten)]
    pub outputs: OutputArgs,
}

/// How a run may differ from its scenario's settings, and the settings a
/// scenario does not have. `Default` is `throng run` with no options (a
/// test checks that clap's defaults agree), for the commands that build a
/// run of their own.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct RunOptions {
    /// Open model: arrivals per second.
    #[arg(long, value_name = "PER_SECOND", help_heading = "Load")]
    pub rate: Option<f64>,
    /// Closed model: concurrent virtual users.
    #[arg(long, value_name = "N", help_heading = "Load")]
    pub vus: Option<u32>,
    /// How long the load lasts [default: 10s unless --stages or --requests bound the run].
    #[arg(long, short = 'd', value_name = "DURATION", value_parser = duration, help_heading = "Load")]
    pub duration: Option<Duration>,
    /// Ramp linearly through TARGET:DURATION points, starting from 0: the
    /// arrival rate (open model, the default) or the user count (--model closed).
    #[arg(long, value_name = "STAGES", value_parser = stages, help_heading = "Load")]
    pub stages: Option<plan::Profile>,
    /// Which model --stages drives.
    #[arg(long, value_enum, help_heading = "Load")]
    pub model: Option<ModelArg>,
    /// Stop after this many requests (all workers together).
    #[arg(long, short = 'n', value_name = "N", help_heading = "Load")]
    pub requests: Option<u64>,
    /// Closed model: pause between a response and the user's next request.
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Load")]
    pub think: Option<Duration>,
    /// Open model: how arrivals are spread in time [default: uniform].
    #[arg(long, value_enum, help_heading = "Load")]
    pub arrivals: Option<ArrivalsArg>,
    /// Open model: most sessions in flight, each on its own connection; a
    /// due arrival beyond it waits for one to finish (its wait is lag) and
    /// is counted as dropped after 1 ms [default: sized as the run goes by
    /// Little's law: 4 x the arrival rate x the mean session time, at
    /// least 32 per worker and the arrivals of 0.5 ms, at most 1000 in
    /// all].
    #[arg(long, value_name = "N", help_heading = "Load")]
    pub max_in_flight: Option<usize>,
    /// A hard ceiling on requests sent per second by the whole run,
    /// retries included, whatever the load asks for: sends beyond it wait
    /// (and show as the generator's lag).
    #[arg(long, value_name = "N", help_heading = "Load")]
    pub max_rate: Option<f64>,
    /// Worker threads, each with its own connections [default: CPU cores].
    #[arg(long, value_name = "N", help_heading = "Load")]
    pub workers: Option<usize>,
    /// Seed for random choices (Poisson arrivals), so runs repeat.
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Load")]
    pub seed: u64,

    /// Most body bytes one response may have, e.g. 8MiB, 500KB or 0 for
    /// no limit: a longer body fails as `body_too_large`, the rest unread
    /// and the connection closed (an endless body cannot stall a run).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "8MiB",
        value_parser = plan::parse_size,
        help_heading = "Request"
    )]
    pub max_body: u64,
    /// Limit on one request, connect included [default: 30s, or the scenario's].
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Request")]
    pub timeout: Option<Duration>,
    /// Speak HTTP/2 (h2c prior knowledge on http://, ALPN on https://).
    #[arg(long, help_heading = "Request")]
    pub http2: bool,
    /// HTTP/2: connections to the target, all workers together (at least
    /// one per worker); sessions take them in turn and multiplex their
    /// requests on them [default: one per worker].
    #[arg(long, value_name = "N", help_heading = "Request")]
    pub http2_connections: Option<usize>,
    /// HTTP/2: most requests at once on one connection; the others wait
    /// for a stream, their wait in their latency [default: as many as the
    /// server allows]. `--vus 100 --http2-connections 10
    /// --http2-streams 10` is h2load's `-c10 -m10`.
    #[arg(long, value_name = "N", value_parser = positive, help_heading = "Request")]
    pub http2_streams: Option<usize>,
    /// Ignore the scenario's retry policies: a control run for a retry storm.
    #[arg(long, help_heading = "Request")]
    pub no_retries: bool,
    /// Follow at most N redirects per request (default: the scenario's
    /// `redirects`, else 10); 0 follows none, so a 3xx is the response.
    /// One past the limit counts as `too_many_redirects`.
    #[arg(long, value_name = "N", help_heading = "Request")]
    pub max_redirects: Option<u32>,
    /// Which requests are sent again, on a new connection, when a reused
    /// connection closes after the request was written and before any byte
    /// of its response: safe (GET, HEAD, OPTIONS, TRACE, as browsers do),
    /// idempotent (also PUT, DELETE) or never [default: the scenario's
    /// clients.resend, else safe]. Each re-send is counted as `resent`;
    /// POST and PATCH are never re-sent.
    #[arg(long, value_name = "POLICY", value_parser = parse_resend, help_heading = "Request")]
    pub resend: Option<plan::Resend>,
    /// Let redirects lead to this host too (repeatable; any port). A
    /// redirect to a host that is neither the target's nor allowed is not
    /// followed and counts as `blocked`.
    #[arg(long = "allow-host", value_name = "HOST", value_parser = allowed_host, help_heading = "Request")]
    pub allow_hosts: Vec<String>,
    /// Accept any TLS certificate (verification is on by default).
    #[arg(long, help_heading = "Request")]
    pub insecure: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE", help_heading = "Request")]
    pub cacert: Option<PathBuf>,
    /// TLS session resumption: each user keeps the tickets the server
    /// gives it, and its later connections resume (a shorter handshake,
    /// counted as `tls_resumed`); a new visitor (`connections:
    /// per_session`) starts with none. `off`: every handshake is full.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set, help_heading = "Request")]
    pub tls_resumption: bool,

    /// Pass/fail expression, e.g. 'p99<300ms', 'errors<1%', 'rate>450', 'dropped<1%' (repeatable).
    #[arg(long = "threshold", value_name = "EXPR", value_parser = threshold, help_heading = "Output")]
    pub thresholds: Vec<analysis::Threshold>,
    /// Stop early once an error threshold is clearly lost.
    #[arg(long, help_heading = "Output")]
    pub abort_on_fail: bool,
    /// Stop a test that is hurting its target: 'CONDITION for DURATION',
    /// judged on each second, e.g. 'errors>50% for 10s' or 'p99>2s for
    /// 30s' (repeatable; exit code 1).
    #[arg(long = "abort-if", value_name = "RULE", value_parser = abort_rule, help_heading = "Output")]
    pub abort_if: Vec<analysis::AbortRule>,
    /// After the load ends (or the first Ctrl-C), how long in-flight requests may finish.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = duration,
        help_heading = "Output"
    )]
    pub grace: Duration,

    /// An A/B run: NAME=URL, given twice (baseline first). Each session goes to
    /// one of the two at random; both are reported and compared.
    #[arg(
        long = "ab",
        value_name = "NAME=URL",
        value_parser = ab_arm,
        requires = "scenario",
        conflicts_with = "target",
        help_heading = "A/B"
    )]
    pub ab: Vec<plan::AbArm>,
    /// A/B: changes within this are no change: '10%' or '0.1'.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value = "10%",
        value_parser = tolerance,
        help_heading = "A/B"
    )]
    pub tolerance: f64,

    /// What is read of the target beside the load.
    #[command(flatten)]
    pub watch: WatchArgs,

    /// Run segment K (from 0) of N of the whole load, on one of N machines:
    /// rates, users, request bounds and unique data rows are split so that
    /// the N segments together are exactly the whole run. Merge their
    /// results with `throng merge`.
    #[arg(long, value_name = "K/N", value_parser = plan::Segment::parse, help_heading = "Scale out")]
    pub segment: Option<plan::Segment>,
    /// Start the load at this time (RFC 3339, e.g. 2026-12-01T10:00:00Z),
    /// the same on every segment, so that stages line up.
    #[arg(long, value_name = "TIME", value_parser = time, help_heading = "Scale out")]
    pub start_at: Option<SystemTime>,
    /// Share one start time through this file: the first segment to start
    /// writes the time now + --start-delay, the others read it (a volume
    /// every worker mounts, as `throng kube` sets up).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "start_at",
        help_heading = "Scale out"
    )]
    pub start_file: Option<PathBuf>,
    /// With --start-file: how far ahead the first segment sets the start.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        value_parser = duration,
        help_heading = "Scale out"
    )]
    pub start_delay: Duration,
}

/// What throng reads of the target beside the load: its metrics
/// endpoints and its processes (`throng run`, `throng capacity`).
#[derive(Args, Debug, Clone, PartialEq)]
pub struct WatchArgs {
    /// Read the target's metrics (Prometheus text or OpenMetrics) during
    /// the run: a URL, or a path on the target such as /metrics
    /// (repeatable; replaces the scenario's scrape of the same URL). The
    /// series line up with the latency in the results, the report and the
    /// findings, which name what ran out.
    #[arg(long = "scrape", value_name = "URL", help_heading = "Server")]
    pub scrapes: Vec<String>,
    /// Keep only metrics whose name this regex finds, e.g. 'db_|queue_'
    /// (for scrapes without a `match` of their own) [default: all].
    #[arg(long, value_name = "REGEX", help_heading = "Server")]
    pub scrape_match: Option<String>,
    /// How often each --scrape endpoint is read; a read may take at most
    /// this long.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration, help_heading = "Server")]
    pub scrape_interval: Duration,
    /// The most series kept from all scrapes together; more are counted
    /// and left out (narrow them with --scrape-match).
    #[arg(long, value_name = "N", default_value_t = crate::watch::DEFAULT_MAX_SERIES, help_heading = "Server")]
    pub scrape_max_series: usize,
    /// Read this process's CPU, memory, threads, open files and context
    /// switches from /proc each second (repeatable): whether the target
    /// was CPU-bound or waiting. A process on this machine.
    #[arg(long = "watch-pid", value_name = "PID", help_heading = "Server")]
    pub watch_pids: Vec<u32>,
    /// Like --watch-pid, for the processes of this name (as `ps -e` shows
    /// it), e.g. --watch-cmd nginx (repeatable).
    #[arg(long = "watch-cmd", value_name = "NAME", help_heading = "Server")]
    pub watch_cmds: Vec<String>,
}

impl Default for WatchArgs {
    fn default() -> WatchArgs {
        WatchArgs {
            scrapes: Vec::new(),
            scrape_match: None,
            scrape_interval: plan::DEFAULT_SCRAPE_INTERVAL,
            scrape_max_series: crate::watch::DEFAULT_MAX_SERIES,
            watch_pids: Vec::new(),
            watch_cmds: Vec::new(),
        }
    }
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            rate: None,
            vus: None,
            duration: None,
            stages: None,
            model: None,
            requests: None,
            think: None,
            arrivals: None,
            max_in_flight: None,
            max_rate: None,
            workers: None,
            seed: 1,
            max_body: plan::DEFAULT_MAX_BODY,
            timeout: None,
            http2: false,
            http2_connections: None,
            http2_streams: None,
            no_retries: false,
            max_redirects: None,
            resend: None,
            allow_hosts: Vec::new(),
            insecure: false,
            cacert: None,
            tls_resumption: true,
            thresholds: Vec::new(),
            abort_on_fail: false,
            abort_if: Vec::new(),
            grace: Duration::from_secs(10),
            ab: Vec::new(),
            tolerance: 0.1,
            watch: WatchArgs::default(),
            segment: None,
            start_at: None,
            start_file: None,
            start_delay: Duration::from_secs(30),
        }
    }
}

/// Where a run's results go. `Default` is `throng run`'s (a test checks
/// that clap's defaults agree).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct OutputArgs {
    /// Write the results (JSON, schema throng.results/v1) to this file.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Rewrite --out with the results so far this often while the run
    /// goes on (atomically, status "running"), so that even a killed run
    /// leaves them; 0 turns it off.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = duration,
        help_heading = "Output"
    )]
    pub checkpoint_every: Duration,
    /// Serve Prometheus metrics on this address during the run, e.g.
    /// 127.0.0.1:9464 (port 0 picks one; the address is printed).
    #[arg(long, value_name = "ADDR", help_heading = "Output")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub exports: Exports,
    /// No progress output while running.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,
}

impl Default for OutputArgs {
    fn default() -> OutputArgs {
        OutputArgs {
            out: None,
            checkpoint_every: Duration::from_secs(5),
            metrics_listen: None,
            exports: Exports::default(),
            quiet: false,
        }
    }
}
