//! User journeys: weighted flows of steps, compiled once.
//!
//! A plain `--url` run is a scenario of one flow with one step, so the
//! engine has one way to run anything.

use std::time::Duration;

use http::Method;

use crate::{
    Check, Cond, Extract, Feeder, HttpVersion, Needs, RequestSpec, Scheme, Slot, Template, Think,
    TlsOptions,
};

/// Where requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or address (no brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `Host` header value.
    pub authority: String,
    /// A path prefix every step's path is appended to ("" for none).
    pub base_path: String,
}

impl Target {
    /// The target of a request spec, without its path.
    pub fn of(spec: &RequestSpec) -> Target {
        Target {
            scheme: spec.scheme,
            host: spec.host.clone(),
            port: spec.port,
            authority: spec.authority.clone(),
            base_path: String::new(),
        }
    }

    /// The target a base URL names: its path (without a trailing `/`)
    /// prefixes every step's path. A query is refused.
    pub fn parse(url: &str) -> Result<Target, crate::PlanError> {
        let spec = RequestSpec::get(url)?;
        if spec.path_and_query.contains('?') {
            return Err(crate::PlanError::TargetQuery {
                input: url.to_string(),
            });
        }
        let mut target = Target::of(&spec);
        target.base_path = spec.path_and_query.trim_end_matches('/').to_string();
        Ok(target)
    }

    /// The URL of the target's root, for reports.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority,
            self.base_path
        )
    }
}

/// One request of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    /// Index of the step's endpoint in [`Scenario::endpoints`].
    pub endpoint: usize,
    /// HTTP method.
    pub method: Method,
    /// Path and query, appended to the target's base path.
    pub path: Template,
    /// Headers, in order.
    pub headers: Vec<(String, Template)>,
    /// The body (empty for none).
    pub body: Template,
    /// Pause after the response, before the next step.
    pub think: Think,
    /// Limit on this step's request (the run's timeout when `None`); with
    /// retries, on each attempt.
    pub timeout: Option<Duration>,
    /// How the client retries a failed attempt; `None` never retries.
    pub retry: Option<crate::Retry>,
    /// Checks on the response.
    pub checks: Vec<Check>,
    /// Values taken from the response into variables.
    pub extract: Vec<Extract>,
    /// What of the response the checks and extractors read (and the
    /// caching report, for assets).
    pub needs: Needs,
    /// The path names a static asset: its caching headers are reported.
    pub watch_cache: bool,
    /// The variables its request (path, headers, body) reads.
    pub reads: Vec<Slot>,
    /// What happens when one of them has no value.
    pub on_missing: OnMissing,
}

/// What a step does when a variable its request needs has no value (an
/// earlier extraction found nothing, or no step set it on this path).
/// The request is never sent with an empty hole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnMissing {
    /// Not sent, counted as a failure of the step (`missing_value`).
    #[default]
    Fail,
    /// Not sent, counted as `skipped` (not a failure); the flow goes on.
    Skip,
}

/// What a flow does, in order: its requests and the blocks around them.
#[derive(Debug, Clone)]
pub enum Node {
    /// Send the flow's step with this index (in [`Flow::steps`]).
    Step(usize),
    /// The body, `min..=max` times (drawn per entry).
    Repeat {
        /// Fewest times.
        min: u32,
        /// Most times.
        max: u32,
        /// The slot of `loop.index` (from 0) inside.
        index: Slot,
        /// What is repeated.
        body: Vec<Node>,
    },
    /// The body once per item of a list (at most `max` items).
    ForEach {
        /// The list's slot.
        list: Slot,
        /// The slot the item goes into (`as:`).
        item: Slot,
        /// The slot of `loop.index`.
        index: Slot,
        /// Most items walked.
        max: u32,
        /// What is run per item.
        body: Vec<Node>,
    },
    /// The body while the condition holds (checked before each pass), at
    /// most `max` times.
    While {
        /// The condition.
        cond: Cond,
        /// Most passes.
        max: u32,
        /// The slot of `loop.index`.
        index: Slot,
        /// What is run per pass.
        body: Vec<Node>,
    },
    /// `then` when the condition holds, else `otherwise`.
    If {
        /// The condition.
        cond: Cond,
        /// Run when it holds.
        then: Vec<Node>,
        /// Run when it does not (may be empty).
        otherwise: Vec<Node>,
    },
    /// One of the arms, picked by weight.
    Random {
        /// Each arm's weight and body.
        arms: Vec<(f64, Vec<Node>)>,
    },
    /// A page load: a document, then its assets several at a time.
    Page(crate::Page),
    /// A live connection opened by a step (in [`Flow::steps`]: its path,
    /// headers and endpoint), kept open while its session runs.
    Live {
        /// The step that opens it.
        step: usize,
        /// What is done on it.
        live: Box<crate::Live>,
    },
}

impl Step {
    /// Whether nothing in the request depends on the user: it can be
    /// serialized once for the whole run.
    pub fn is_static(&self) -> bool {
        self.path.as_static().is_some()
            && self.body.as_static().is_some()
            && self.headers.iter().all(|(_, v)| v.as_static().is_some())
    }
}

/// A sequence of steps a user walks through, picked by weight.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The flow's name.
    pub name: String,
    /// Relative weight among flows.
    pub weight: f64,
    /// Its requests, in the order they are written; `body` says when
    /// each is sent.
    pub steps: Vec<Step>,
    /// What the flow does: `steps` in order, or loops and branches
    /// around them.
    pub body: Vec<Node>,
}

impl Flow {
    /// A flow that sends its steps once each, in order.
    pub fn straight(name: String, weight: f64, steps: Vec<Step>) -> Flow {
        let body = (0..steps.len()).map(Node::Step).collect();
        Flow {
            name,
            weight,
            steps,
            body,
        }
    }
}

/// The index picked by a uniform draw `u` in `0..1` among weighted
/// arms (the last when rounding leaves `u` past them all).
pub fn pick_arm(arms: &[(f64, Vec<Node>)], u: f64) -> Option<usize> {
    pick_by_weight(arms.iter().map(|(w, _)| *w), u)
}

/// Everything a virtual user does.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's name.
    pub name: String,
    /// Where requests go.
    pub target: Target,
    /// Protocol version.
    pub version: HttpVersion,
    /// TLS settings.
    pub tls: TlsOptions,
    /// The flows (at least one).
    pub flows: Vec<Flow>,
    /// Endpoint names, in order of first appearance: the keys of every
    /// per-endpoint report.
    pub endpoints: Vec<String>,
    /// Variable slots each virtual user keeps.
    pub slots: usize,
    /// Each slot's variable name (for messages; may be empty).
    pub var_names: Vec<String>,
    /// Whether each user keeps a cookie jar.
    pub cookies: bool,
    /// Check names, indexed by [`Check::id`].
    pub checks: Vec<String>,
    /// Test data; each flow iteration takes one row of each.
    pub feeders: Vec<Feeder>,
    /// How the users differ as clients (addresses, connections, speed, agent).
    pub clients: Clients,
    /// How far redirects are followed, and to which hosts.
    pub redirects: Redirects,
    /// Names of headers marked `secret: true` (lower case), redacted like
    /// [`crate::SENSITIVE_HEADERS`].
    pub secret_headers: Vec<String>,
}

/// Most redirects a request follows unless the scenario says otherwise,
/// as browsers and most HTTP clients do.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// How far a request follows redirects, and to which hosts: its target's
/// and the `allowed_hosts` a scenario names, so that a redirect never
/// turns a test into load on a third party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirects {
    /// Most redirects followed per request; 0 follows none (a 3xx is then
    /// the response).
    pub max: u32,
    /// Hosts besides the target's that redirects may lead to, in lower
    /// case, on any port.
    pub allowed_hosts: Vec<String>,
}

impl Default for Redirects {
    fn default() -> Redirects {
        Redirects {
            max: DEFAULT_MAX_REDIRECTS,
            allowed_hosts: Vec::new(),
        }
    }
}

impl Redirects {
    /// `text` as an `allowed_hosts` entry: a host name or address alone
    /// (no scheme, port, path or user), in lower case without IPv6
    /// brackets; `None` when it is not one.
    pub fn host(text: &str) -> Option<String> {
        let bare = text.trim().trim_start_matches('[').trim_end_matches(']');
        let valid = !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        valid.then(|| bare.to_ascii_lowercase())
    }

    /// Whether a redirect may lead to `host` from a run against
    /// `target_host` (names compare without case, addresses as written).
    pub fn allows(&self, target_host: &str, host: &str) -> bool {
        host.eq_ignore_ascii_case(target_host)
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// What reports need to know of a check besides its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// The endpoint of the step it belongs to (the first, if several share
    /// the name).
    pub endpoint: String,
    /// Whether it is a read-your-writes check ([`crate::Check::reads_back`]).
    pub reads_back: bool,
    /// What of the response it looks at ([`crate::CheckKind::part`]).
    pub part: &'static str,
    /// For a header check, the header's name in lower case.
    pub header: String,
}

impl Scenario {
    /// Whether any step has a retry policy (a run that retries records
    /// attempts and goodput).
    pub fn retries(&self) -> bool {
        self.flows
            .iter()
            .flat_map(|f| &f.steps)
            .any(|s| s.retry.is_some())
    }

    /// Every check's name, endpoint and kind, indexed by check id.
    pub fn check_info(&self) -> Vec<CheckInfo> {
        let mut out: Vec<CheckInfo> = self
            .checks
            .iter()
            .map(|name| CheckInfo {
                name: name.clone(),
                endpoint: String::new(),
                reads_back: false,
                part: "",
                header: String::new(),
            })
            .collect();
        for step in self.flows.iter().flat_map(|f| &f.steps) {
            for check in &step.checks {
                if let Some(info) = out.get_mut(check.id) {
                    if info.endpoint.is_empty() {
                        info.endpoint = self
                            .endpoints
                            .get(step.endpoint)
                            .cloned()
                            .unwrap_or_default();
                    }
                    info.reads_back |= check.reads_back;
                    if info.part.is_empty() {
                        info.part = check.kind.part();
                        info.header = check.kind.header().unwrap_or_default().to_ascii_lowercase();
                    }
                }
            }
        }
        out
    }

    /// The scenario of a plain request: one flow of one step, no cookies.
    pub fn single(spec: &RequestSpec) -> Scenario {
        let watch_cache = looks_like_asset(&spec.path_and_query);
        let step = Step {
            endpoint: 0,
            method: spec.method.clone(),
            path: Template::literal(&spec.path_and_query),
            headers: spec
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), Template::literal(v)))
                .collect(),
            body: Template::literal(&String::from_utf8_lossy(&spec.body)),
            think: Think::None,
            timeout: None,
            retry: None,
            checks: Vec::new(),
            extract: Vec::new(),
            needs: Needs {
                headers: watch_cache,
                body: false,
            },
            watch_cache,
            reads: Vec::new(),
            on_missing: OnMissing::Fail,
        };
        Scenario {
            name: spec.name.clone(),
            target: Target::of(spec),
            version: spec.version,
            tls: spec.tls.clone(),
            flows: vec![Flow::straight("default".into(), 1.0, vec![step])],
            endpoints: vec![spec.name.clone()],
            slots: 0,
            var_names: Vec::new(),
            cookies: false,
            checks: Vec::new(),
            feeders: Vec::new(),
            clients: Clients::default(),
            redirects: Redirects::default(),
            secret_headers: Vec::new(),
        }
    }

    /// The scenario of a replayed log: its endpoints, and no flows, since
    /// the requests come from the replay's feeds (`engine::start_with`).
    pub fn replay(
        name: String,
        target: Target,
        version: HttpVersion,
        endpoints: Vec<String>,
    ) -> Scenario {
        Scenario {
            name,
            target,
            version,
            tls: TlsOptions::default(),
            flows: Vec::new(),
            endpoints,
            slots: 0,
            var_names: Vec::new(),
            cookies: false,
            checks: Vec::new(),
            feeders: Vec::new(),
            clients: Clients::default(),
            // A log already holds the requests its clients made after a
            // redirect.
            redirects: Redirects {
                max: 0,
                allowed_hosts: Vec::new(),
            },
            secret_headers: Vec::new(),
        }
    }

    /// Whether a header's values are secrets: a name in
    /// [`crate::SENSITIVE_HEADERS`], or one the scenario marked `secret: true`.
    pub fn is_secret_header(&self, name: &str) -> bool {
        crate::is_sensitive_header(name)
            || self
                .secret_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Picks a flow index by weight, from a uniform draw in `0..1`.
    pub fn pick_flow(&self, u: f64) -> usize {
        pick_by_weight(self.flows.iter().map(|f| f.weight), u).unwrap_or(0)
    }
}

/// The index picked by a uniform draw `u` in `0..1` among `weights`, each
/// with its share of the total; `None` when there are none.
fn pick_by_weight(weights: impl Iterator<Item = f64> + Clone, u: f64) -> Option<usize> {
    let total: f64 = weights.clone().sum();
    let mut x = u * total;
    let mut last = None;
    for (i, w) in weights.enumerate() {
        if x < w {
            return Some(i);
        }
        x -= w;
        last = Some(i);
    }
    last
}

/// Extensions of paths that name static assets, which a site should let
/// browsers and CDNs cache.
const ASSET_EXTENSIONS: [&str; 15] = [
    "css", "js", "mjs", "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "woff", "woff2",
    "ttf", "otf",
];

/// Whether a path (with or without a query) names a static asset.
pub fn looks_like_asset(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    last.rsplit_once('.')
        .is_some_and(|(_, ext)| ASSET_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// How the users differ from each other as clients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clients {
    /// Local addresses to send from; each user (or session, in the open
    /// model) binds one, by its number. Empty: the system picks.
    pub source_ips: Vec<std::net::IpAddr>,
    /// When connections are opened.
    pub connections: Connections,
    /// Users who download slowly.
    pub slow: Option<SlowClients>,
    /// User agents with their weights; each user picks one. Empty: throng's.
    pub user_agents: Vec<(String, f64)>,
    /// Which requests are sent again when a reused connection closes
    /// before their response.
    pub resend: Resend,
    /// HTTP/2: connections to the target, all workers together (each
    /// worker at least one); sessions take them in turn and multiplex
    /// their requests on them. 0: one per worker.
    pub http2_connections: usize,
    /// HTTP/2: most requests open at once on one connection (the rest
    /// wait their turn). 0: as many as the server allows.
    pub http2_streams: usize,
}

/// Which requests a client sends again, on a new connection, when a
/// reused keep-alive connection closes after the request was written and
/// before any byte of its response came back.
///
/// That is the race every keep-alive client loses now and then: the
/// server closed the idle connection just as the request went out, and
/// the client cannot tell whether it was processed. Browsers re-send GET,
/// HEAD and OPTIONS then (and never POST), so `safe` is the default: the
/// target sees what it would see from browsers. Each re-send is counted
/// (`resent`), never hidden. A connection found closed *before* anything
/// is written to it is simply replaced, whatever this says: nothing was
/// sent on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resend {
    /// Never: the request fails as `reset`.
    Never,
    /// GET, HEAD, OPTIONS and TRACE: safe methods (RFC 9110 9.2.1).
    #[default]
    Safe,
    /// Safe methods, PUT and DELETE: idempotent methods (RFC 9110 9.2.2).
    Idempotent,
}

impl Resend {
    /// Every policy, with its name in scenarios, flags and results.
    pub const ALL: [(Resend, &'static str); 3] = [
        (Resend::Never, "never"),
        (Resend::Safe, "safe"),
        (Resend::Idempotent, "idempotent"),
    ];

    /// The policy named `name`.
    pub fn named(name: &str) -> Option<Resend> {
        Resend::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(r, _)| *r)
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        let (_, name) = Resend::ALL[self as usize];
        name
    }

    /// Whether a request with `method` may be re-sent. POST, PATCH and
    /// CONNECT never are: only a retry policy, whose attempts are counted
    /// as attempts, sends them again.
    pub fn allows(self, method: &http::Method) -> bool {
        use http::Method;
        let safe = [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method);
        match self {
            Resend::Never => false,
            Resend::Safe => safe,
            Resend::Idempotent => safe || method == Method::PUT || method == Method::DELETE,
        }
    }
}

/// When a user opens a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Connections {
    /// Keep connections open and reuse them (browsers, API clients).
    #[default]
    KeepAlive,
    /// A new connection for each session: every visitor is new.
    PerSession,
    /// A new connection for every request.
    PerRequest,
}

/// A share of users whose downloads are capped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowClients {
    /// The share of users, 0 to 1.
    pub fraction: f64,
    /// Their download rate, bytes per second.
    pub bytes_per_second: u64,
}

impl Clients {
    /// The source address of user (or session) number `vu`.
    pub fn source_ip(&self, vu: u64) -> Option<std::net::IpAddr> {
        match self.source_ips.len() {
            0 => None,
            n => Some(self.source_ips[(vu % n as u64) as usize]),
        }
    }

    /// Whether user `vu` is slow, with `u` a uniform draw of its own.
    pub fn download_cap(&self, u: f64) -> Option<u64> {
        self.slow
            .filter(|s| u < s.fraction)
            .map(|s| s.bytes_per_second)
    }

    /// The index of the user agent picked by a uniform draw `u` in `0..1`,
    /// by weight; `None` without a mix.
    pub fn pick_user_agent(&self, u: f64) -> Option<usize> {
        pick_by_weight(self.user_agents.iter().map(|(_, w)| *w), u)
    }

    /// Whether these settings need one connection per user (HTTP/1.1):
    /// source addresses, connection habits and slow downloads.
    pub fn need_http1(&self) -> bool {
        !self.source_ips.is_empty()
            || self.connections != Connections::KeepAlive
            || self.slow.is_some()
    }
}

/// Parses a source address range: `127.0.0.2-127.0.0.200`, one address,
/// or a comma-separated list of either (IPv4 ranges only).
pub fn parse_source_ips(text: &str) -> Result<Vec<std::net::IpAddr>, String> {
    use std::net::{IpAddr, Ipv4Addr};
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            None => out.push(
                part.parse::<IpAddr>()
                    .map_err(|_| format!("{part:?} is not an IP address"))?,
            ),
            Some((a, b)) => {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
                let b: Ipv4Addr = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("{b:?} is not an IPv4 address"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a {
                    return Err(format!("{part:?}: the range ends before it starts"));
                }
                if b - a >= 65_536 {
                    return Err(format!("{part:?}: more than 65,536 addresses"));
                }
                out.extend((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
            }
        }
    }
    if out.is_empty() {
        return Err("no addresses given (write e.g. 127.0.0.2-127.0.0.200)".into());
    }
    Ok(out)
}
