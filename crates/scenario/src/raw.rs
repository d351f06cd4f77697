//! The scenario file as written: serde types that mirror the YAML, with
//! source positions kept where later checks need them. No validation
//! beyond shapes and known keys happens here; `compile.rs` does the rest.
//! The JSON Schema (`throng schema`) is derived from these same types.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A throng scenario: who the users are and what they do.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// The scenario's name, shown in reports.
    pub name: Option<String>,
    /// Base URL of the system under test, e.g. `http://127.0.0.1:8080`. Step
    /// paths are appended to it. `--target` overrides it.
    #[schemars(with = "Option<String>")]
    pub target: Option<Spanned<String>>,
    /// Settings every step inherits.
    pub defaults: Option<RawDefaults>,
    /// How much load, and its shape over time. Command-line options override it.
    pub load: Option<RawLoad>,
    /// Keep a cookie jar per virtual user (default true).
    pub cookies: Option<bool>,
    /// Speak HTTP/2 (h2c on http, ALPN on https).
    pub http2: Option<bool>,
    /// Pass/fail expressions, e.g. `p99<500ms`, `errors<1%`, `p99(login)<400ms`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub thresholds: Vec<Spanned<String>>,
    /// Test data: CSV or JSON-lines files whose columns become variables
    /// `{{ NAME.COLUMN }}`; each flow iteration takes one row of each.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawData>")]
    pub data: IndexMap<String, Spanned<RawData>>,
    /// The user journeys; each session walks one, picked by weight.
    #[schemars(length(min = 1))]
    pub flows: Vec<RawFlow>,
    /// How users differ as clients: source addresses, connection habits,
    /// slow downloads, a mix of user agents.
    #[schemars(with = "Option<RawClients>")]
    pub clients: Option<Spanned<RawClients>>,
    /// A recovery check: after the trigger window (a spike, a fault), goodput
    /// must come back to within `within` of its level before it.
    #[schemars(with = "Option<RawRecovery>")]
    pub recovery: Option<Spanned<RawRecovery>>,
    /// Most redirects a request follows (default 10; 0 follows none, so a
    /// 3xx is the response). Each hop must stay on the target's host or
    /// one of `allowed_hosts`.
    pub redirects: Option<u32>,
    /// Hosts besides the target's that redirects may lead to, e.g.
    /// `[login.example.com]` (any port). A redirect anywhere else is not
    /// followed and counts as `blocked`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowed_hosts: Vec<Spanned<String>>,
    /// The target's metrics endpoints (Prometheus text or OpenMetrics),
    /// read during the run so that the results, the report and the
    /// findings show what the server was doing: a URL or a path on the
    /// target, e.g. `- /metrics`, or `- { url: /metrics, interval: 1s,
    /// match: "db_|queue_" }`.
    #[serde(default)]
    #[schemars(with = "Vec<RawScrape>")]
    pub scrape: Vec<Spanned<RawScrape>>,
}

/// A metrics endpoint: its URL alone, or with settings.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum RawScrape {
    /// A URL, or a path on the target (`/metrics`).
    Url(String),
    /// The URL and how to read it.
    With(RawScrapeWith),
}

/// A string or a map, each read as itself, so that a mistake inside the
/// map (an unknown key) is reported as such rather than as "matched no
/// variant".
impl<'de> Deserialize<'de> for RawScrape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawScrape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL, or a map with `url` and settings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawScrape, E> {
                Ok(RawScrape::Url(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawScrape, A::Error> {
                RawScrapeWith::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawScrape::With)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A metrics endpoint and how to read it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScrapeWith {
    /// A URL, or a path on the target (`/metrics`).
    pub url: String,
    /// How often it is read (default 1s, at least 100ms).
    pub interval: Option<String>,
    /// How long one read may take (default and at most: the interval).
    pub timeout: Option<String>,
    /// The largest answer read (default 4MiB); a longer one is not parsed.
    pub max_size: Option<String>,
    /// Keep only metrics whose name this regex finds (default: all).
    #[serde(rename = "match")]
    pub matches: Option<String>,
}

/// A header's value: the text (templates allowed), or the text with
/// `secret: true`. Authorization, Proxy-Authorization and Cookie are
/// secret without saying so.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawHeader {
    /// The value.
    Plain(String),
    /// The value, marked.
    Marked(RawMarkedHeader),
}

impl RawHeader {
    /// The value's text.
    pub fn text(&self) -> &str {
        match self {
            RawHeader::Plain(v) => v,
            RawHeader::Marked(m) => &m.value,
        }
    }

    /// Whether it was marked `secret: true`.
    pub fn secret(&self) -> bool {
        matches!(
            self,
            RawHeader::Marked(RawMarkedHeader { secret: true, .. })
        )
    }
}

/// `{ value: "{{ env.API_KEY }}", secret: true }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMarkedHeader {
    /// The value (templates allowed).
    pub value: String,
    /// Keep the value out of every output (the command line, `throng
    /// validate`, reports), and off redirects to other hosts.
    #[serde(default)]
    pub secret: bool,
}

/// `{ source_ips: "127.0.0.2-127.0.0.200", connections: per_session,
/// slow: { fraction: 10%, rate: 50KB/s }, user_agents: [...] }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClients {
    /// Local addresses to send from, e.g. `127.0.0.2-127.0.0.200`; each user
    /// binds one (HTTP/1.1 only).
    pub source_ips: Option<String>,
    /// `keep_alive` (default), `per_session` (every visitor new) or `per_request`.
    pub connections: Option<RawConnections>,
    /// A share of users with a capped download rate.
    pub slow: Option<RawSlow>,
    /// User agents, each with a weight; each user picks one.
    #[serde(default)]
    pub user_agents: Vec<RawUserAgent>,
    /// Which requests are sent again, counted as `resent`, when a reused
    /// connection closes after the request was written and before any
    /// byte of its response: `safe` (default: GET, HEAD, OPTIONS, TRACE,
    /// as browsers do), `idempotent` (also PUT, DELETE) or `never`.
    pub resend: Option<RawResend>,
}

/// Which requests are re-sent after a reused connection closed unanswered.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawResend {
    /// Never: the request fails as `reset`.
    Never,
    /// GET, HEAD, OPTIONS and TRACE.
    Safe,
    /// Safe methods, PUT and DELETE.
    Idempotent,
}

/// When connections are opened.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawConnections {
    /// Reuse connections.
    KeepAlive,
    /// A new connection per session.
    PerSession,
    /// A new connection per request.
    PerRequest,
}

/// Slow users.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSlow {
    /// Their share of users, e.g. `10%`.
    pub fraction: String,
    /// Their download rate, e.g. `50KB/s`, `1MB/s` (bytes, powers of 1000).
    pub rate: String,
}

/// One user agent of the mix.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUserAgent {
    /// The header's value.
    pub value: String,
    /// Relative weight (default 1).
    pub weight: Option<f64>,
}

/// `{ trigger: { from: 10s, to: 15s }, within: 10%, by: 30s }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    /// The trigger window, from the run start.
    pub trigger: RawWindow,
    /// How far below its level before the trigger goodput may stay (default 10%).
    pub within: Option<String>,
    /// How soon after the trigger ends goodput must be back (default: by the end of the run).
    pub by: Option<String>,
}

/// A window of the run, from its start.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Where the window starts, e.g. `10s`.
    pub from: String,
    /// Where it ends, e.g. `15s`.
    pub to: String,
}

/// Settings every step inherits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Headers sent with every request (templates allowed); `{ value: ...,
    /// secret: true }` keeps a value out of every output.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawHeader>")]
    pub headers: IndexMap<String, Spanned<RawHeader>>,
    /// Limit on each request, e.g. `10s` (default 30s).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Think time after each step, unless the step sets its own.
    #[schemars(with = "Option<RawThink>")]
    pub think: Option<Spanned<RawThink>>,
    /// How clients retry failed requests, unless a flow or step says otherwise.
    #[schemars(with = "Option<RawRetry>")]
    pub retry: Option<Spanned<RawRetry>>,
}

/// How a client retries: `{ attempts: 3, backoff: exponential, base: 100ms,
/// max: 10s, jitter: full, on: [5xx, timeout, connect, reset], budget: 10% }`.
/// Every key is optional; those are the defaults, except `budget` (none).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Most attempts per request, the first included (1 never retries).
    pub attempts: Option<u32>,
    /// `none`, `fixed` (always `base`) or `exponential` (doubling from `base`).
    pub backoff: Option<RawBackoff>,
    /// The first pause, e.g. `100ms`.
    pub base: Option<String>,
    /// The longest pause, e.g. `10s`.
    pub max: Option<String>,
    /// `none`, `full` (uniform up to the pause) or `equal` (half fixed, half random).
    pub jitter: Option<RawJitter>,
    /// Which failures are retried: `5xx`, `timeout`, `connect`, `reset`.
    pub on: Option<Vec<RawRetryOn>>,
    /// Retries allowed as a share of requests over the last 10 s, e.g. `10%`
    /// (per worker). Without it, every failure is retried.
    pub budget: Option<String>,
    /// How long the user waits for the request, retries included; a later
    /// success is not goodput. Default: the request timeout.
    pub deadline: Option<String>,
}

/// How pauses between attempts grow.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawBackoff {
    /// Retry at once.
    None,
    /// Always `base`.
    Fixed,
    /// Doubling from `base` up to `max`.
    Exponential,
}

/// How much of a pause is random.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawJitter {
    /// None: clients that failed together retry together.
    None,
    /// Uniform between 0 and the pause.
    Full,
    /// Half the pause plus up to the other half.
    Equal,
}

/// A failure a client retries.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum RawRetryOn {
    /// A response with a 5xx status.
    #[serde(rename = "5xx")]
    Http5xx,
    /// No response within the timeout.
    #[serde(rename = "timeout")]
    Timeout,
    /// The connection could not be opened.
    #[serde(rename = "connect")]
    Connect,
    /// The connection was reset before the response ended.
    #[serde(rename = "reset")]
    Reset,
}

/// How much load, and its shape over time.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    /// `open` (arrivals at a rate) or `closed` (virtual users); inferred from `rate`/`vus`.
    pub model: Option<RawModel>,
    /// Open model: new sessions per second.
    pub rate: Option<f64>,
    /// Closed model: concurrent virtual users.
    pub vus: Option<u32>,
    /// How long, e.g. `30s`, `5m`.
    #[schemars(with = "Option<String>")]
    pub duration: Option<Spanned<String>>,
    /// A ramp from 0: `"0:10s,500:30s"` or a list of `{target, duration}`.
    #[schemars(with = "Option<RawStages>")]
    pub stages: Option<Spanned<RawStages>>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// Open model: `uniform` or `poisson` arrivals.
    pub arrivals: Option<RawArrivals>,
    /// Open model: most requests in flight; arrivals beyond it are counted as dropped.
    pub max_in_flight: Option<usize>,
}

/// Which load model.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawModel {
    /// Arrivals at a rate, whatever the target does.
    Open,
    /// Users who wait for each response.
    Closed,
}

/// How open-model arrivals are spread.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawArrivals {
    /// Evenly spaced.
    Uniform,
    /// A Poisson process.
    Poisson,
}

/// Stages, as text or as a list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawStages {
    /// `TARGET:DURATION,...`, e.g. `"0:10s,500:30s,500:1m,0:10s"`.
    Text(String),
    /// A list of ramps, steps, spikes and sines.
    List(Vec<RawStage>),
}

/// One piece of the load's shape: exactly one of `target` (a linear
/// ramp), `step`, `spike` or `sine`, with its `duration`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Ramp linearly to this level (rate or users) over `duration`.
    pub target: Option<f64>,
    /// Jump to this level and hold it for `duration`.
    pub step: Option<f64>,
    /// A flash crowd: jump to `10x` the current level (or to a number) for
    /// `duration`, then straight back.
    pub spike: Option<RawSpike>,
    /// A daily cycle: a sine between `low` and `high`, starting at `low`.
    pub sine: Option<RawSine>,
    /// How long this piece lasts, e.g. `30s`.
    pub duration: String,
}

/// A spike's level: `10x` (times the level before it) or a number.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawSpike {
    /// An absolute level.
    Level(f64),
    /// A factor, e.g. `10x`.
    Factor(String),
}

/// A sine wave's range and period.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSine {
    /// The trough (where the wave starts).
    pub low: f64,
    /// The crest, half a period later.
    pub high: f64,
    /// One full cycle (default `24h`).
    pub period: Option<String>,
}

/// A think time: a duration (`2s`), or a distribution.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawThink {
    /// Always this long, e.g. `1s`.
    Constant(String),
    /// Drawn from a distribution.
    Distribution(RawThinkDistribution),
}

/// Exactly one of these keys.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawThinkDistribution {
    /// Evenly between two durations: `[1s, 3s]`.
    pub uniform: Option<(String, String)>,
    /// Exponential with this mean: `2s`.
    pub exponential: Option<String>,
    /// Lognormal: `{ median: 2s, sigma: 0.8 }` (real users' heavy tail).
    pub lognormal: Option<RawLogNormal>,
    /// Pareto: `{ min: 1s, alpha: 1.5 }` (a heavier tail).
    pub pareto: Option<RawPareto>,
}

/// Lognormal parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogNormal {
    /// The median pause.
    pub median: String,
    /// Spread (0.5 moderate, 1.0 wide).
    pub sigma: f64,
}

/// Pareto parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPareto {
    /// The shortest pause.
    pub min: String,
    /// Tail index, more than 0 (smaller is heavier).
    pub alpha: f64,
}

/// A user journey.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    /// The flow's name.
    pub name: Option<String>,
    /// Relative weight among flows (default 1).
    #[schemars(with = "Option<f64>")]
    pub weight: Option<Spanned<f64>>,
    /// How this flow's clients retry (replaces `defaults.retry`).
    #[schemars(with = "Option<RawRetry>")]
    pub retry: Option<Spanned<RawRetry>>,
    /// The requests, in order, and blocks around them (`repeat`,
    /// `for_each`, `while`, `if`, `random`).
    #[schemars(with = "Vec<RawStep>", length(min = 1))]
    pub steps: Vec<Spanned<RawStep>>,
}

/// A YAML scalar that is read as text (`25`, `true` and `"25"` alike),
/// as form and query values are: for the JSON Schema only.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// One request: exactly one of `get`, `post`, `put`, `patch`, `delete`,
/// `head`, with its path. Or a block of steps: `repeat`, `for_each` (with
/// `as`), `while` or `if` (with `else`), each with its `steps`, or
/// `random` (weighted arms).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// GET this path (templates allowed).
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub get: Option<Spanned<String>>,
    /// POST to this path.
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub post: Option<Spanned<String>>,
    /// PUT to this path.
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub put: Option<Spanned<String>>,
    /// PATCH this path.
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub patch: Option<Spanned<String>>,
    /// DELETE this path.
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub delete: Option<Spanned<String>>,
    /// HEAD this path.
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub head: Option<Spanned<String>>,
    /// The endpoint's name in every report (default: method and path).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Headers (templates allowed in values); `{ value: ..., secret: true }`
    /// keeps a value out of every output.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawHeader>")]
    pub headers: IndexMap<String, Spanned<RawHeader>>,
    /// Query parameters, appended to the path (templates allowed in values).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub query: IndexMap<String, Spanned<String>>,
    /// A raw body (templates allowed).
    #[schemars(with = "Option<String>")]
    pub body: Option<Spanned<String>>,
    /// A JSON body; strings may hold templates. Sets `Content-Type: application/json`.
    pub json: Option<serde_json::Value>,
    /// A form body (`application/x-www-form-urlencoded`); values may hold templates.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub form: IndexMap<String, Spanned<String>>,
    /// Pause after this step's response.
    #[schemars(with = "Option<RawThink>")]
    pub think: Option<Spanned<RawThink>>,
    /// Limit on this request, e.g. `5s` (on each attempt, with retries).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// How this step's request is retried (replaces the flow's or defaults' policy).
    #[schemars(with = "Option<RawRetry>")]
    pub retry: Option<Spanned<RawRetry>>,
    /// Checks on what the user sees. A response that fails one counts as a
    /// `check_failed` error, even with status 200.
    #[serde(default)]
    #[schemars(with = "Vec<RawCheck>")]
    pub checks: Vec<Spanned<RawCheck>>,
    /// Values to take from the response, by variable name; later steps of the
    /// flow use them as `{{ name }}`.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawExtract>")]
    pub extract: IndexMap<String, Spanned<RawExtract>>,
    /// When a variable the request needs has no value: `fail` (default:
    /// not sent, counted as a `missing_value` error) or `skip` (not sent,
    /// counted as skipped).
    pub on_missing: Option<RawOnMissing>,
    /// A block: its `steps` this many times: `3`, or a range drawn per
    /// session, `"2..5"`. Inside, `{{ loop.index }}` counts from 0.
    #[schemars(with = "Option<RawRepeat>")]
    pub repeat: Option<Spanned<RawRepeat>>,
    /// A block: its `steps` once per item of a list variable (an extract
    /// with `pick: all`), the item in the variable named by `as`.
    #[schemars(with = "Option<String>")]
    pub for_each: Option<Spanned<String>>,
    /// With `for_each`: the name of the variable that holds the item.
    #[serde(rename = "as")]
    #[schemars(with = "Option<String>")]
    pub as_name: Option<Spanned<String>>,
    /// A block: its `steps` while this condition holds, e.g.
    /// `"next_page and status == 200"` (checked before each pass).
    #[serde(rename = "while")]
    #[schemars(with = "Option<String>")]
    pub while_cond: Option<Spanned<String>>,
    /// With `for_each` or `while`: most passes (default 100).
    pub max: Option<u32>,
    /// A block: its `steps` when this condition holds, else its `else`
    /// steps, e.g. `"status == 200 and cart_id"`.
    #[serde(rename = "if")]
    #[schemars(with = "Option<String>")]
    pub if_cond: Option<Spanned<String>>,
    /// With `if`: the steps when the condition does not hold.
    #[serde(rename = "else")]
    #[schemars(with = "Option<Vec<RawStep>>")]
    pub else_steps: Option<Vec<Spanned<RawStep>>>,
    /// A block's steps (with `repeat`, `for_each`, `while` or `if`).
    #[schemars(with = "Option<Vec<RawStep>>")]
    pub steps: Option<Vec<Spanned<RawStep>>>,
    /// A block: one of these arms, picked by weight, e.g.
    /// `[{ weight: 3, steps: [...] }, { steps: [...] }]`.
    #[schemars(with = "Option<Vec<RawArm>>")]
    pub random: Option<Spanned<Vec<RawArm>>>,
    /// A page load, named for reports: its `steps` are the document (the
    /// first) and its assets, fetched after it several at a time, the
    /// way a browser loads a page. The page is reported as its own
    /// endpoint, from its intended start to the end of its last request.
    #[schemars(with = "Option<String>")]
    pub page: Option<Spanned<String>>,
    /// With `page`: `from_html` also fetches the stylesheets, scripts,
    /// images and icons the document names (on the target's host or an
    /// allowed one).
    pub assets: Option<RawAssets>,
    /// With `page`: most requests in flight at once, i.e. connections per
    /// host (default 6, as browsers).
    pub connections: Option<u32>,
    /// With `page`: send every step at once as written, with no document
    /// first (default false).
    pub together: Option<bool>,
    /// With `page`: honour `Cache-Control` within the session, so an asset
    /// fetched before and still fresh is not fetched again (default false).
    pub cache: Option<bool>,
    /// Open a WebSocket at this path (`ws://`, or `wss://` for an https
    /// target; the session's cookies and the step's headers go with the
    /// upgrade) and run its `session`. Reported as an endpoint (default
    /// name `WS /path`): upgrade time, message round trips, messages,
    /// close codes.
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub ws: Option<Spanned<String>>,
    /// With `ws`: what is done on the socket, in order: `send`,
    /// `send_json`, `send_binary`, `expect`, `hold`, `every`, `close`.
    #[schemars(with = "Option<Vec<RawWsAction>>")]
    pub session: Option<Vec<Spanned<RawWsAction>>>,
    /// With `ws`: subprotocols offered (`Sec-WebSocket-Protocol`).
    pub subprotocols: Option<Vec<String>>,
    /// With `ws`: most messages kept for a later `expect` (default 256);
    /// when more arrive the oldest are dropped, and counted.
    pub queue: Option<usize>,
    /// Subscribe to a server-sent event stream at this path and follow it
    /// until it ends, `events` came or `for` passed; the step's `checks`
    /// and `extract` apply to each event's data. Reported as an endpoint
    /// (default name `SSE /path`): time to the first event, gaps, events.
    #[schemars(with = "Option<String>", pattern("^/"))]
    pub sse: Option<Spanned<String>>,
    /// With `sse`: end after this many events.
    pub events: Option<u64>,
    /// With `sse`: end this long after the step's start, e.g. `30s`.
    #[serde(rename = "for")]
    #[schemars(with = "Option<String>")]
    pub period: Option<Spanned<String>>,
    /// With `sse`: reconnect up to this many times, with `Last-Event-ID`,
    /// when the stream ends before `events` or `for` (default 0).
    pub reconnect: Option<u32>,
}

/// One action of a WebSocket session: exactly one of `send`, `send_json`,
/// `send_binary`, `expect`, `hold`, `every`, `close`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWsAction {
    /// Send a text message (templates allowed, as written).
    #[schemars(with = "Option<String>")]
    pub send: Option<Spanned<String>>,
    /// Send this JSON as a text message (strings may hold templates,
    /// escaped for JSON).
    pub send_json: Option<serde_json::Value>,
    /// Send a binary message: its bytes in base64.
    #[schemars(with = "Option<String>")]
    pub send_binary: Option<Spanned<String>>,
    /// Wait for the next message, or the next one that matches
    /// (`body_contains`, `body_not_contains`, `body_matches`, `json`),
    /// within `timeout` (default 10s); `extract` takes values from it.
    /// Messages that came before are kept for it (see `queue`).
    #[schemars(with = "Option<RawWsExpect>")]
    pub expect: Option<Spanned<RawWsExpect>>,
    /// Stay connected this long, e.g. `30s`, reading messages and
    /// answering pings.
    #[schemars(with = "Option<String>")]
    pub hold: Option<Spanned<String>>,
    /// Send a message every `interval` for a while (`for`), each perhaps
    /// answered by an `expect`ed reply.
    #[schemars(with = "Option<RawWsEvery>")]
    pub every: Option<Spanned<RawWsEvery>>,
    /// Close the socket with this code, e.g. `1000`.
    #[schemars(with = "Option<u16>")]
    pub close: Option<Spanned<u16>>,
}

/// What an `expect` waits for: at most one of `body_contains`,
/// `body_not_contains`, `body_matches`, `json` (none: any message).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWsExpect {
    /// The message contains this text (templates allowed).
    pub body_contains: Option<String>,
    /// The message does not contain this text.
    pub body_not_contains: Option<String>,
    /// The message matches this regular expression.
    pub body_matches: Option<String>,
    /// A JSONPath (RFC 9535) into the message, with `equals` or `exists`.
    pub json: Option<RawJsonCheck>,
    /// Most time to wait, e.g. `2s` (default 10s).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Values to take from the message, by variable name.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawExtract>")]
    pub extract: IndexMap<String, Spanned<RawExtract>>,
}

/// A message sent periodically: exactly one of `send`, `send_json`,
/// `send_binary`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWsEvery {
    /// Time between sends, e.g. `1s` (the first goes at once).
    #[schemars(with = "String")]
    pub interval: Spanned<String>,
    /// How long to keep sending, e.g. `30s`.
    #[serde(rename = "for")]
    #[schemars(with = "String")]
    pub period: Spanned<String>,
    /// A text message (templates allowed).
    #[schemars(with = "Option<String>")]
    pub send: Option<Spanned<String>>,
    /// A JSON message.
    pub send_json: Option<serde_json::Value>,
    /// A binary message, in base64.
    #[schemars(with = "Option<String>")]
    pub send_binary: Option<Spanned<String>>,
    /// The reply that answers each send: its round trip is measured from
    /// the send's intended time.
    #[schemars(with = "Option<RawWsExpect>")]
    pub expect: Option<Spanned<RawWsExpect>>,
}

/// How many times a `repeat` block runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawRepeat {
    /// Exactly this many.
    Times(u32),
    /// A range drawn per session, both ends included: `"2..5"`.
    Range(String),
}

/// One arm of a `random` block.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArm {
    /// Relative weight (default 1).
    pub weight: Option<f64>,
    /// The arm's steps.
    #[schemars(with = "Vec<RawStep>")]
    pub steps: Vec<Spanned<RawStep>>,
}

/// Which assets a page fetches besides its listed steps.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAssets {
    /// Those the document names: `<link rel=stylesheet|icon|preload>`,
    /// `<script src>`, `<img src>`.
    FromHtml,
}

/// What a step does when a variable it needs has no value.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOnMissing {
    /// Not sent; a `missing_value` error.
    Fail,
    /// Not sent; counted as skipped.
    Skip,
}

/// One check: exactly one of `status`, `body_contains`, `body_not_contains`,
/// `body_matches`, `json`, `header`, `max_latency`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// The check's name in reports (default: what it tests).
    pub name: Option<String>,
    /// `continue` (default) or `stop_flow` (end this session's flow).
    pub on_fail: Option<RawOnFail>,
    /// A code (`200`), a class (`2xx`), or a list of them.
    pub status: Option<RawStatus>,
    /// The body contains this text (templates allowed).
    pub body_contains: Option<String>,
    /// The body does not contain this text, e.g. `An error has occurred`.
    pub body_not_contains: Option<String>,
    /// The body matches this regular expression.
    pub body_matches: Option<String>,
    /// A JSONPath (RFC 9535) into the JSON body, with `equals` or `exists`.
    pub json: Option<RawJsonCheck>,
    /// A response header, with `equals`, `matches` or `exists`.
    pub header: Option<RawHeaderCheck>,
    /// The response took at most this long, e.g. `500ms`.
    pub max_latency: Option<String>,
}

/// What a failed check does.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOnFail {
    /// Go on with the flow.
    Continue,
    /// End this session's flow.
    StopFlow,
}

/// Accepted statuses.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawStatus {
    /// One code.
    Code(u16),
    /// A code or class as text: `"200"`, `"2xx"`.
    Text(String),
    /// Any of these.
    List(Vec<RawStatusItem>),
}

/// A code or a class.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawStatusItem {
    /// One code.
    Code(u16),
    /// `"2xx"` or `"404"`.
    Text(String),
}

/// A check on the JSON body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJsonCheck {
    /// RFC 9535 JSONPath, e.g. `$.user.id`.
    pub path: String,
    /// The first value there equals this (strings by content; templates
    /// allowed, so `"{{ written }}"` checks read-your-writes).
    pub equals: Option<serde_json::Value>,
    /// There is (true) or is not (false) a value there.
    pub exists: Option<bool>,
}

/// A check on a response header.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderCheck {
    /// The header's name.
    pub name: String,
    /// Its value equals this (templates allowed).
    pub equals: Option<String>,
    /// Its value matches this regular expression.
    pub matches: Option<String>,
    /// It is (true) or is not (false) present.
    pub exists: Option<bool>,
}

/// Where to take a value from: exactly one of `json`, `regex`, `header`,
/// `cookie`, `css`; and which match, with `pick`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExtract {
    /// RFC 9535 JSONPath into the JSON body.
    pub json: Option<String>,
    /// Which match: `first` (default), `random` (each equally likely) or
    /// `all` (a list, for `for_each`). When nothing matches, the variable
    /// has no value (even if an earlier response set it).
    pub pick: Option<RawTake>,
    /// A regular expression on the body; capture `group` (default 1).
    pub regex: Option<String>,
    /// The capture group of `regex`.
    pub group: Option<usize>,
    /// A response header.
    pub header: Option<String>,
    /// A cookie the response sets.
    pub cookie: Option<String>,
    /// A CSS selector on the HTML body: a match's text, or its `attr`.
    pub css: Option<String>,
    /// With `css`: take this attribute instead of the text.
    pub attr: Option<String>,
}

/// Which match an extract takes.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawTake {
    /// The first.
    First,
    /// One at random.
    Random,
    /// All of them, as a list.
    All,
}

/// A data file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// The file, relative to the scenario: `.csv` (with a header line) or
    /// `.jsonl` (one JSON object per line).
    pub file: String,
    /// `sequential` (default: in order, starting over), `random`, or
    /// `unique` (each row once in the whole run; the run stops starting
    /// sessions when rows run out).
    pub pick: Option<RawPick>,
}

/// How rows are handed out.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawPick {
    /// In order, starting over at the end.
    Sequential,
    /// At random, with repeats.
    Random,
    /// Each row once in the whole run.
    Unique,
}
