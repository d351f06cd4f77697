//! Command-line arguments as typed, before any validation or I/O.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};

mod run;

use run::RUN_EXAMPLES;
pub use run::{ArrivalsArg, ModelArg, OutputArgs, RunArgs, RunOptions, WatchArgs};

/// Rehearse production traffic before production does.
#[derive(Debug, Parser)]
#[command(
    name = "throng",
    version,
    about = "A load-testing tool that measures honestly: latency from the intended send time, \
             HDR histograms, errors by kind.",
    after_help = "Exit codes: 0 all thresholds held, 1 a threshold failed, 2 bad usage or configuration \
                  (nothing started), 3 interrupted or aborted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load test: a scenario file, or a single URL.
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Check a scenario file and show what it would run; sends nothing.
    #[command(
        after_help = "Example:\n  throng validate checkout.yaml\n\nExit codes: 0 valid, 2 not valid."
    )]
    Validate(ValidateArgs),
    /// Print the JSON Schema of scenario files, for editors.
    #[command(
        after_help = "Example:\n  throng schema > throng.schema.json\n  # then, as the first line of a scenario file:\n  # yaml-language-server: $schema=throng.schema.json"
    )]
    Schema,
    /// Compare two results files: did the candidate get slower, or fail more?
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Replay an access log against a target: the same requests at the same
    /// times, faster or multiplied if asked.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(Box<ReplayArgs>),
    /// Turn a saved results file into an HTML report, CSV, JUnit or Markdown.
    #[command(
        after_help = "Example:\n  throng run checkout.yaml --out results.json\n  throng report results.json --html report.html --junit junit.xml --summary-md summary.md"
    )]
    Report(ReportArgs),
    /// Turn a recording into a scenario file to edit.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Record real traffic: a reverse proxy in front of a service that
    /// forwards every request and writes each exchange, secrets masked.
    #[command(after_help = RECORD_EXAMPLES)]
    Record(Box<RecordArgs>),
    /// Find the highest load that holds every SLO: steps up, then bisects.
    #[command(after_help = CAPACITY_EXAMPLES)]
    Capacity(Box<CapacityArgs>),
    /// Merge the results files of a run's segments (--segment K/N) into one:
    /// exact percentiles, summed timelines, thresholds and findings redone.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge(MergeArgs),
    /// Write Kubernetes manifests that run a scenario on N worker pods and
    /// merge their results.
    #[command(after_help = KUBE_EXAMPLES)]
    Kube(KubeArgs),
    /// Serve the built-in target: a small crowdfunding site whose failures
    /// (one per incident, I1..I12) are switched on by flags.
    #[command(after_help = LAB_EXAMPLES)]
    Lab(LabArgs),
    /// Start the lab and rehearse a launch day against it: a normal day, then
    /// a flash crowd at 10x.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
}

const REPLAY_EXAMPLES: &str = "\
Examples:
  # Yesterday's traffic as it came (nginx/Apache combined format; .gz is read as is)
  throng replay /var/log/nginx/access.log.1.gz --target http://127.0.0.1:8080

  # An hour in 15 minutes, with three times the visitors
  throng replay access.log --target http://127.0.0.1:8080 --speed 4 --scale 3

  # JSON lines with their own field names; only the API, no health checks
  throng replay app.jsonl --format json --fields 'time=ts,path=uri,ip=client,user_agent=ua' \\
      --target http://127.0.0.1:8080 --include '^/api/' --exclude '^/api/health'

  # A recording (throng record) against a staging copy, writes included; the value
  # masked as __masked_3__ (a password the recording did not keep) from the environment
  THRONG_MASKED_3=hunter2 throng replay monday.rec.gz --target http://127.0.0.1:8080 --allow-writes

A recording's requests are sent with their headers and bodies; each recorded session is
replayed as one, with its own cookie jar, and values that flowed from a response into a
later request (ids, CSRF fields, tokens) are taken from the replayed responses. A request
waits for the exchanges of its session that had ended before it began when recorded.
Masked values (__masked_N__) are filled from THRONG_MASKED_N; a header with one that has
no value is left out (counted before the run).

Only GET and HEAD are replayed unless --allow-writes is given. Each request is due at its
logged time (from the first request, divided by --speed) and its latency counts from then.
Requests logged within the same whole second are spread evenly across it. --scale N adds
N-1 copies of every session (a client's requests with no --session-timeout gap), each
shifted as a whole by up to --spread, so the gaps inside sessions are kept.

Exit codes: as for throng run; 2 also when the log has nothing to replay.";

const RECORD_EXAMPLES: &str = "\
Examples:
  # In front of a staging copy for an hour: point clients at :8081 instead of :8080
  throng record --listen 0.0.0.0:8081 --upstream http://127.0.0.1:8080 \\
      --out staging.rec.gz --duration 1h

  # An HTTPS service; sessions named by a header the clients send
  throng record --upstream https://api.internal --cacert ca.pem --out api.rec \\
      --session-header X-User-Id --mask-json '$.customer.email'

Each exchange is written when its response ends (method, path, headers, the request
body up to --body-cap, status, response size and times, a session number), flushed every
second, so a recorder that is killed loses at most the last second. Authorization,
Cookie, Set-Cookie and Proxy-Authorization, and every header, query, form or JSON key
whose name contains pass, secret, token, auth, session, key-like words (see the
recording's head for the list) are written as placeholders (__masked_N__, the same N
for the same value): no secret is written unless --keep names it. Stop with Ctrl-C
or SIGTERM: in-flight exchanges get 5 s to finish, then the end line is written.

Exit codes: 0 recorded, 2 bad usage (nothing started), 3 the recording could not be written.";

const COMPARE_EXAMPLES: &str = "\
Examples:
  # Last release against this one, as a CI gate
  throng run checkout.yaml --target http://old.internal:8080 --out base.json
  throng run checkout.yaml --target http://new.internal:8080 --out cand.json
  throng compare base.json cand.json --tolerance 10%

  # Several baseline runs (say, main's last three): their spread counts as noise
  throng compare base-1.json base-2.json base-3.json cand.json

  # A table for a pull-request comment
  throng compare base.json cand.json --format markdown > comment.md

  # Better on a noisy machine: one interleaved run, each session sent to one of the two
  throng run checkout.yaml --ab base=http://old.internal:8080 --ab cand=http://new.internal:8080

Per endpoint, p50, p90 and p99 are compared as ratios (candidate / baseline) and the
error rate as a difference, each with a bootstrap interval over time windows (queued
requests are not independent, so windows are resampled, not requests). The intervals
hold together with 95% confidence. A regression is a slowdown at that confidence whose
size is beyond the tolerance. Separate runs also differ by what changed on the machine
between them: their latency intervals add the run-to-run noise seen in each run's halves
and between the baselines, and changes under --min-change do not count. An --ab run's two
arms saw the same machine and need neither. Each comparison says in one line what its
verdict rests on.

Exit codes: 0 no endpoint regressed, 1 a regression, 2 bad usage or unreadable files.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    /// A table for the terminal.
    Text,
    /// The comparison file (schema throng.compare/v1).
    Json,
    /// A Markdown table for a pull-request comment.
    Markdown,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline's results file (from throng run --out), or several runs
    /// of the baseline (pooled; their spread is run-to-run noise), then the
    /// candidate's results file, last.
    #[arg(value_name = "BASE.json... CAND.json", num_args = 2.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Changes within this are no change: '10%' or '0.1'.
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = tolerance)]
    pub tolerance: f64,
    /// Separate runs only: latency changes within this are no change either,
    /// however large as a ratio (runs minutes apart on a shared machine
    /// differ by about 0.1 ms with nothing changed). '0' to turn it off.
    #[arg(long, value_name = "DURATION", default_value = "0.25ms")]
    pub min_change: String,
    /// What to print.
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    pub format: CompareFormat,
    /// Also write the comparison (JSON, schema throng.compare/v1) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the comparison as an HTML page to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

const CAPACITY_EXAMPLES: &str = "\
Examples:
  # The highest arrival rate at which p99 stays under 500 ms and errors under 1%
  throng capacity checkout.yaml --target http://127.0.0.1:8080 --slo 'p99<500ms' --slo 'errors<1%'

  # Concurrent users instead of arrivals, a quick search
  throng capacity checkout.yaml --vus --start 5 --max 500 --step-duration 5s --slo 'p99<1s'

Each step runs the scenario at one level for --step-duration (longer if needed to collect
--min-samples responses), then cools down and checks the target is healthy before the next.
The levels double until a step breaks an SLO, then bisect until the bracket is within
--precision; a step that holds only just is run twice. The SLOs are the --slo expressions
and the scenario's thresholds; a search of arrivals also holds dropped<1% (a step whose
arrivals were dropped at the in-flight limit was not offered its level).

Exit codes: 0 a sustainable level was found, 1 none held (not even the lowest step),
2 bad usage, 3 interrupted (the levels measured so far are still reported).";

const LAB_EXAMPLES: &str = "\
Examples:
  # A healthy site on a free loopback port; the URL is printed
  throng lab

  # The launch-day failures: a unit-of-work race and a login that scans every user
  throng lab --race --login-scan --users 200000

  # A fixed port, reachable from other machines
  throng lab --listen 0.0.0.0:8080 --public

Every generated user is user{N}@example.com (N from 1 to --users), password 'password'.
Routes: / /static/app.css /static/app.js /static/logo.svg /static/font.woff2 POST /login
/learn/{id} /funds/{id} POST /pledge GET|PUT /profile POST /deploy /health /metrics;
Host: bounty.lab.test reaches the other app.";

const DEMO_EXAMPLES: &str = "\
Examples:
  # The launch day against a lab with a race and a scanning login (the default set)
  throng demo

  # The same day against a healthy lab, for comparison
  throng demo --healthy

  # Choose the failures
  throng demo --replica-lag 500 --short-cache

The demo exits 0 when the launch day ran to its end, even when thresholds failed: showing
them fail is its point. Use `throng run examples/launch-day.yaml` for a gate.";

/// The lab's failures, each off unless its flag is given.
#[derive(Debug, Args, Clone, Default)]
pub struct Pathologies {
    /// I1, I12: run release v2, a rewrite whose data layer loads rows one at
    /// a time and hydrates them through JSON: ~10x slower on /, /funds/{id},
    /// /learn/{id}.
    #[arg(long, value_enum, value_name = "RELEASE", help_heading = "Failures")]
    pub release: Option<ReleaseArg>,
    /// I11: login finds the user with a case-insensitive pattern match over
    /// every row instead of the index: its cost grows with --users.
    #[arg(long, help_heading = "Failures")]
    pub login_scan: bool,
    /// I6: database connections in the pool [default: 64]; a request that
    /// finds none free within --db-wait answers 503 "too many connections".
    #[arg(long, value_name = "N", help_heading = "Failures")]
    pub db_pool: Option<usize>,
    /// I6: how long a request waits for a pooled connection, in ms.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 1000,
        help_heading = "Failures"
    )]
    pub db_wait: u64,
    /// I9: pages and the session tracker share one unit-of-work context;
    /// under heavy concurrency a growing share of pledges answer 200 with
    /// "An error has occurred".
    #[arg(long, help_heading = "Failures")]
    pub race: bool,
    /// I7: reads go to a replica that applies each write MS later, so a read
    /// right after a write is stale.
    #[arg(long, value_name = "MS", help_heading = "Failures")]
    pub replica_lag: Option<u64>,
    /// I7: with --replica-lag, each write takes the replica MS to apply, one
    /// after another: past 1000/MS writes a second it falls further behind
    /// (lab_replica_lag_seconds climbs) and reads turn stale.
    #[arg(
        long,
        value_name = "MS",
        requires = "replica_lag",
        help_heading = "Failures"
    )]
    pub replica_apply: Option<u64>,
    /// I5, I10: a deploy frees the app's address before it has a new one and
    /// another app is placed there: while /deploy is busy, some visitors get
    /// the other app's site (another fund's title) with a 200.
    #[arg(long, help_heading = "Failures")]
    pub misroute: bool,
    /// I3: a balancer change in front of the site refuses (431) requests
    /// whose headers add up to more than BYTES: a scenario's few short
    /// headers pass, real browsers' cookies and headers (a recording's) do
    /// not.
    #[arg(long, value_name = "BYTES", help_heading = "Failures")]
    pub header_limit: Option<usize>,
    /// Measurement: the whole server freezes STALL out of every PERIOD, e.g.
    /// '1s,10s', as a long GC pause would.
    #[arg(long, value_name = "STALL,PERIOD", help_heading = "Failures")]
    pub stall: Option<String>,
    /// I8: assets carry no or a 5 s cache lifetime (else one year), so the
    /// edge cache sends nearly every stylesheet request to the origin.
    #[arg(long, help_heading = "Failures")]
    pub short_cache: bool,
    /// I4: the deploy queue keeps working on requests whose clients have
    /// given up, so an overload can outlast its trigger.
    #[arg(long, help_heading = "Failures")]
    pub metastable: bool,
    /// Measurement: every page of the app (not /health or /metrics) answers
    /// DURATION later, e.g. '2.5ms': a release slower by a known amount, to
    /// see what `throng compare` catches.
    #[arg(long, value_name = "DURATION", help_heading = "Failures")]
    pub delay: Option<String>,
    /// I8: every asset under /static/ answers DURATION later, e.g. '300ms',
    /// as from an overloaded edge: a page loads as slowly as its slowest
    /// asset, which no single request's numbers show.
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Failures")]
    pub slow_assets: Option<Duration>,
    /// I1, live: the pair-programming rooms over WebSocket (/pair/ROOM)
    /// upgrade every socket past the Nth and then drop it without a close
    /// frame, as a server at its connection limit does; clients see
    /// abnormal closes (1006).
    #[arg(long, value_name = "N", help_heading = "Failures")]
    pub ws_cap: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReleaseArg {
    /// The lean release.
    V1,
    /// The costly rewrite.
    V2,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results file (schema throng.results/v1).
    #[arg(value_name = "RESULTS.json")]
    pub results: PathBuf,
    /// Write an HTML report (one self-contained file) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the per-second timeline as CSV to this file.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// Write the thresholds as JUnit XML (one test case each) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (for a pull-request comment) to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
}

/// Files written after a run, besides the results.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct Exports {
    /// Write an HTML report (one self-contained file) to this file.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report: Option<PathBuf>,
    /// Write the per-second timeline as CSV to this file.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub timeline: Option<PathBuf>,
    /// Write the thresholds as JUnit XML (one test case each) to this file, for CI.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (for a pull-request comment) to this file.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub summary_md: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A browser session saved as HAR (DevTools > Network > Save all as HAR).
    #[command(after_help = IMPORT_HAR_EXAMPLES)]
    Har(ImportHarArgs),
    /// A recording made by `throng record` (or a part of it, by session or
    /// time) as a scenario file: one flow per session.
    #[command(after_help = IMPORT_RECORDING_EXAMPLES)]
    Recording(ImportRecordingArgs),
}

const IMPORT_RECORDING_EXAMPLES: &str = "\
Examples:
  # The busiest session of the recording
  throng import recording monday.rec.gz > monday.yaml

  # Sessions 17 and 23, as two flows; only what came in the recording's second minute
  throng import recording monday.rec.gz --session 17 --session 23 --from 1m --to 2m --out two.yaml

One step per request, think times from the recorded gaps, redirects the client followed
merged into the request that caused them (throng follows redirects). Values a response gave
that a later request sent back (as the recorder saw them) become an extract and a
{{ variable }}, marked \"guessed\". Masked values become {{ env.THRONG_MASKED_N }}.
Cookies are left to throng's cookie jar.";

#[derive(Debug, Args)]
pub struct ImportRecordingArgs {
    /// The recording (`throng record --out`), plain or gzip-compressed.
    #[arg(value_name = "RECORDING")]
    pub recording: PathBuf,
    /// Import this session (repeatable; its number in the recording)
    /// [default: the session with the most requests].
    #[arg(long = "session", value_name = "N")]
    pub sessions: Vec<u64>,
    /// Only requests that came at or after this time into the recording.
    #[arg(long, value_name = "DURATION", value_parser = plan::parse_duration)]
    pub from: Option<Duration>,
    /// Only requests that came before this time into the recording.
    #[arg(long, value_name = "DURATION", value_parser = plan::parse_duration)]
    pub to: Option<Duration>,
    /// Leave out static assets (stylesheets, scripts, images, fonts).
    #[arg(long)]
    pub no_assets: bool,
    /// The scenario's name [default: recorded].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Write the scenario to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

const IMPORT_HAR_EXAMPLES: &str = "\
Examples:
  throng import har checkout.har > checkout.yaml
  throng import har checkout.har --no-assets --out checkout.yaml
  throng validate checkout.yaml && throng run checkout.yaml --target http://127.0.0.1:8080

One step per request to the recording's first host, think times from the recorded gaps.
Values a response gave that a later request sent back (a token, an id, a form's hidden
field) become an extract and a {{ variable }}, each marked \"guessed\" in a comment.
Cookies are left to throng's cookie jar; requests to other hosts are left out.";

#[derive(Debug, Args)]
pub struct ImportHarArgs {
    /// The HAR file.
    #[arg(value_name = "SESSION.har")]
    pub har: PathBuf,
    /// Leave out static assets (stylesheets, scripts, images, fonts).
    #[arg(long)]
    pub no_assets: bool,
    /// The scenario's name [default: the recorded page's title].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Write the scenario to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The access log, or a recording made by `throng record` (recognized
    /// by its first line), plain or gzip-compressed.
    #[arg(value_name = "LOG|RECORDING")]
    pub log: PathBuf,
    /// Base URL to send the log's requests to; their paths are appended.
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// The log's format.
    #[arg(long, value_enum, default_value = "combined")]
    pub format: LogFormatArg,
    /// JSON lines: field names, e.g. 'time=ts,path=uri,ip=client,user_agent=ua,session=sid'
    /// [default: time, method, path, ip, user_agent].
    #[arg(long, value_name = "KEY=FIELD,...")]
    pub fields: Option<String>,
    /// Replay this many times faster than the log (2 halves every gap).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,
    /// Send N copies of every session (more visitors, the same habits).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub scale: u32,
    /// Each copy of a session starts up to this much after the original
    /// [default: a tenth of the log's length, at most 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub spread: Option<Duration>,
    /// A client's requests further apart than this are two sessions.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = duration)]
    pub session_timeout: Duration,
    /// How far out of time order the log's lines may be: a server writes a
    /// line when its response ends, so a slow request's line comes after
    /// quicker ones that started later. Requests are replayed in time
    /// order within this window; older lines are sent at once and counted.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub reorder_window: Duration,
    /// Also replay POST, PUT, PATCH and DELETE (bodies are not in logs: sent empty).
    #[arg(long)]
    pub allow_writes: bool,
    /// Replay only paths matching this regex (repeatable).
    #[arg(long = "include", value_name = "REGEX")]
    pub include: Vec<String>,
    /// Leave out paths matching this regex (repeatable).
    #[arg(long = "exclude", value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Send this Host header instead of the target's.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Most requests in flight; a request due beyond it is counted as dropped.
    #[arg(long, value_name = "N", default_value_t = plan::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// A hard ceiling on requests sent per second, whatever the log asks
    /// for: sends beyond it wait (and show as the generator's lag).
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
    /// Replay the log's first N requests (in time order), then stop.
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Replay segment K (from 0) of N, on one of N machines: the log's
    /// sessions are split between the segments, so a visitor's requests
    /// stay on one machine and the N segments send exactly the whole log
    /// (and, with --requests, exactly its first N requests). Give every
    /// segment the same --start-at; merge their results with `throng merge`.
    #[arg(long, value_name = "K/N", value_parser = plan::Segment::parse)]
    pub segment: Option<plan::Segment>,
    /// Start the replay at this time (RFC 3339), the same on every segment.
    #[arg(long, value_name = "TIME", value_parser = time)]
    pub start_at: Option<SystemTime>,
    /// Limit on one request, connect included.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// Speak HTTP/2 (h2c prior knowledge on http://, ALPN on https://).
    #[arg(long)]
    pub http2: bool,
    /// Worker threads [default: CPU cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Pass/fail expression, e.g. 'p99<300ms', 'errors<1%' (repeatable).
    #[arg(long = "threshold", value_name = "EXPR", value_parser = threshold)]
    pub thresholds: Vec<analysis::Threshold>,
    /// Write the results (JSON, schema throng.results/v1) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub exports: Exports,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// Access-log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// nginx's and Apache's combined format (with referer and user agent).
    Combined,
    /// The common format (no referer, no user agent).
    Common,
    /// One JSON object per line (see --fields).
    Json,
}

#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// The scenario's base URL, overriding its `target`.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// A service-level objective every step must hold, threshold syntax (repeatable).
    #[arg(long = "slo", value_name = "EXPR", value_parser = threshold)]
    pub slos: Vec<analysis::Threshold>,
    /// Search concurrent users (closed model) instead of arrivals per second.
    #[arg(long)]
    pub vus: bool,
    /// The first level tried (arrivals/s, or users with --vus).
    #[arg(long, value_name = "LEVEL", default_value_t = 10.0)]
    pub start: f64,
    /// The highest level tried.
    #[arg(long, value_name = "LEVEL", default_value_t = 100_000.0)]
    pub max: f64,
    /// How long each step runs at least.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub step_duration: Duration,
    /// Arrivals (sessions) a step needs for a stable p99: low-rate steps run
    /// longer than --step-duration to get them.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub min_samples: u64,
    /// Pause between steps, so one step's backlog does not spill into the next.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub cooldown: Duration,
    /// Stop bisecting when the bracket is narrower than this share.
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = fraction)]
    pub precision: f64,
    /// Bound on the whole search.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = duration)]
    pub time_limit: Duration,
    /// Limit on one request.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Worker threads [default: CPU cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// What is read of the target beside each step.
    #[command(flatten)]
    pub watch: WatchArgs,
    /// Write the search (JSON, schema throng.capacity/v1) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the search as an HTML page (the capacity curve) to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The service to forward to: http:// or https://, host, port and an
    /// optional path prefix.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Where to listen for the clients; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// The recording's file (schema throng.recording/v1, JSON lines).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Compress the recording with gzip (the default for a FILE ending .gz).
    #[arg(long)]
    pub gzip: bool,
    /// Keep request bodies up to this size; longer ones are cut (and
    /// counted).
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = plan::parse_size)]
    pub body_cap: u64,
    /// Stop after this long (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = plan::parse_duration)]
    pub duration: Option<Duration>,
    /// Also mask this header's value (repeatable).
    #[arg(long = "mask-header", value_name = "NAME")]
    pub mask_headers: Vec<String>,
    /// Also mask query, form, JSON and header keys whose name contains
    /// this (repeatable).
    #[arg(long = "mask-field", value_name = "TEXT")]
    pub mask_fields: Vec<String>,
    /// Mask what this JSONPath selects in JSON request bodies (repeatable).
    #[arg(long = "mask-json", value_name = "PATH")]
    pub mask_json: Vec<String>,
    /// Keep this key or header in clear although its name matches
    /// (repeatable; the whole name).
    #[arg(long = "keep", value_name = "NAME")]
    pub keep: Vec<String>,
    /// A request header whose value names the session (say X-User-Id);
    /// without one, sessions follow cookies and connections.
    #[arg(long, value_name = "NAME")]
    pub session_header: Option<String>,
    /// Send the client's Host header upstream instead of the upstream's.
    #[arg(long)]
    pub preserve_host: bool,
    /// Accept any TLS certificate from the upstream.
    #[arg(long)]
    pub insecure: bool,
    /// Also trust the CA certificates in this PEM file for the upstream.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// No progress lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Where to listen; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Allow --listen on an address other than loopback.
    #[arg(long)]
    pub public: bool,
    /// Users to generate.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub users: u32,
    /// Seed for the generated data: the same seed, the same site.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Server threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: usize,
    #[command(flatten)]
    pub pathologies: Pathologies,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run against a lab with no failures switched on.
    #[arg(long)]
    pub healthy: bool,
    /// Users to generate.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub users: u32,
    /// Write the results (JSON, schema throng.results/v1) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Where to write the HTML report.
    #[arg(long, value_name = "FILE", default_value = "throng-report.html")]
    pub report: PathBuf,
    /// No progress output while running.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub pathologies: Pathologies,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Check it as if run with this --target.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
}

const MERGE_EXAMPLES: &str = "\
Examples:
  # Four machines, one start time, then one report
  throng run shop.yaml --segment 0/4 --start-at 2026-12-01T10:00:00Z --out w0.json   # ... to 3/4
  throng merge w0.json w1.json w2.json w3.json --out merged.json --report report.html

  # A directory: every results file in it (as Kubernetes workers leave them)
  throng merge /results --expect 8 --wait 10m --out /results/merged.json

Exit codes: 0 every threshold held, 1 a threshold failed or a segment is missing,
2 the files cannot be merged.";

const KUBE_EXAMPLES: &str = "\
Examples:
  throng kube shop.yaml --workers 8 --image ghcr.io/you/throng:0.1 > throng.yaml
  kubectl apply -f throng.yaml
  kubectl -n throng logs -f job/throng-<run>-merge   # the name is in throng.yaml's first lines

  # Data files with credentials (test users' passwords) from a Secret, not the ConfigMap
  throng kube login.yaml --data-from-secret throng-data > throng.yaml   # says how to create it
  # deploy/kubernetes/README.md: the whole walk-through";

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Results files of the segments, or directories holding them.
    #[arg(value_name = "RESULTS", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write the merged results (JSON, throng.results/v1) here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How many segments to wait for (default: the N of their --segment K/N).
    #[arg(long, value_name = "N")]
    pub expect: Option<usize>,
    /// Wait up to this long for every segment's file to appear (directories).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub exports: Exports,
}

#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// The scenario file; it and the data files it reads go into a ConfigMap.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Worker pods, each running one segment.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub workers: usize,
    /// The throng image (built from the repository's Dockerfile).
    #[arg(long, value_name = "IMAGE", default_value = "throng:latest")]
    pub image: String,
    /// The namespace of every object.
    #[arg(long, value_name = "NS", default_value = "throng")]
    pub namespace: String,
    /// The target, instead of the scenario's.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The results volume's size.
    #[arg(long, value_name = "SIZE", default_value = "1Gi")]
    pub volume_size: String,
    /// The results volume's storage class (one that offers ReadWriteMany).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// How far ahead of the first worker's start the load begins, so that
    /// every pod is running by then.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub start_delay: String,
    /// A Secret whose keys become every worker pod's environment
    /// (repeatable): what the scenario's `{{ env.NAME }}` reads. The
    /// values stay in the cluster; the manifests only name the Secret.
    #[arg(long = "env-from-secret", value_name = "SECRET")]
    pub env_from_secrets: Vec<String>,
    /// The scenario's data files (feeders' CSV and JSON) come from this
    /// Secret rather than the ConfigMap: for files that hold credentials.
    /// The manifests hold neither the files nor their contents; throng
    /// prints the `kubectl create secret` that puts them in the cluster.
    #[arg(long = "data-from-secret", value_name = "SECRET")]
    pub data_from_secret: Option<String>,
    /// More options for every worker's `throng run` (repeatable), e.g.
    /// --run-arg=--rate --run-arg=2000.
    #[arg(long = "run-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub run_args: Vec<String>,
}

/// A duration such as `250ms`, `30s` or `1m30s`.
pub fn duration(text: &str) -> Result<Duration, String> {
    plan::parse_duration(text).map_err(|e| e.to_string())
}

fn stages(text: &str) -> Result<plan::Profile, String> {
    plan::parse_stages(text).map_err(|e| e.to_string())
}

fn threshold(text: &str) -> Result<analysis::Threshold, String> {
    analysis::Threshold::parse(text).map_err(|e| e.to_string())
}

fn abort_rule(text: &str) -> Result<analysis::AbortRule, String> {
    analysis::AbortRule::parse(text, duration)
}

fn allowed_host(text: &str) -> Result<String, String> {
    plan::Redirects::host(text).ok_or_else(|| {
        format!(
            "{text:?} is not a host name: write the host alone, e.g. --allow-host login.example.com"
        )
    })
}

/// A time in RFC 3339, e.g. 2026-12-01T10:00:00Z.
fn time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text.trim())
        .map_err(|e| format!("{e} (write RFC 3339, e.g. 2026-12-01T10:00:00Z)"))
}

/// One `--ab NAME=URL` arm, whose name can go into file names.
fn ab_arm(text: &str) -> Result<plan::AbArm, String> {
    let Some((name, url)) = text.split_once('=') else {
        return Err("write NAME=URL, e.g. --ab base=http://127.0.0.1:8080".into());
    };
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "the name {name:?} goes into file names; use letters, digits, '-' and '_'"
        ));
    }
    let target = plan::Target::parse(url.trim()).map_err(|e| format!("--ab {name}: {e}"))?;
    Ok(plan::AbArm {
        name: name.to_string(),
        target,
    })
}

/// A share as `10%` or `0.1`.
pub fn share(text: &str) -> Option<f64> {
    plan::parse_percent(text).or_else(|| text.trim().parse().ok())
}

/// A tolerance: `10%` or `0.1`, below 1.
pub fn tolerance(text: &str) -> Result<f64, String> {
    match share(text) {
        Some(v) if v.is_finite() && (0.0..1.0).contains(&v) => Ok(v),
        _ => Err("give a percentage below 100%, such as 10% or 0.1".into()),
    }
}

/// A share strictly between 0 and 1: `10%` or `0.1`.
fn fraction(text: &str) -> Result<f64, String> {
    match share(text) {
        Some(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err("give a share such as 10% or 0.1".into()),
    }
}

/// `--resend`: a policy by its name.
fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("use on or off".into()),
    }
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("use a whole number of at least 1".into()),
    }
}

fn parse_resend(text: &str) -> Result<plan::Resend, String> {
    plan::Resend::named(text).ok_or_else(|| {
        let names: Vec<&str> = plan::Resend::ALL.iter().map(|(_, n)| *n).collect();
        format!("not a resend policy: use one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn tolerances_read_as_percent_or_fraction() {
        assert_eq!(tolerance("10%").ok(), Some(0.1));
        assert_eq!(tolerance(" 2.5 % ").ok(), Some(0.025));
        assert_eq!(tolerance("0.2").ok(), Some(0.2));
        for bad in ["", "ten", "150%", "-1%", "1"] {
            assert!(tolerance(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_run_built_without_the_command_line_has_the_command_lines_defaults() {
        let Command::Run(args) = Cli::parse_from(["throng", "run", "s.yaml"]).command else {
            panic!("not a run");
        };
        assert_eq!(args.options, RunOptions::default());
        assert_eq!(args.outputs, OutputArgs::default());
    }
}
