//! From raw YAML types to a validated [`plan::Scenario`] and load options.

use std::collections::BTreeMap;
use std::time::Duration;

use analysis::RecoveryCheck;
use http::Method;
use plan::{
    parse_duration, parse_stages, Arrivals, Backoff, Check, CheckKind, Clients, Connections,
    Context, Extract, ExtractFrom, HttpVersion, Jitter, LoadSpec, ModelKind, Needs, OnFail,
    OnMissing, PickFrom, PlanError, Profile, Resend, Retry, RetryOn, Scenario, Scope, Shape,
    SlowClients, SpikeLevel, StatusMatch, Step, Target, Template, TemplateError, Think, TlsOptions,
};
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Pos};

mod blocks;
mod describe;
mod live;
use crate::raw::{
    RawArrivals, RawBackoff, RawCheck, RawClients, RawConnections, RawData, RawExtract, RawHeader,
    RawJitter, RawLoad, RawModel, RawOnFail, RawOnMissing, RawPick, RawRecovery, RawResend,
    RawRetry, RawRetryOn, RawScenario, RawScrape, RawSpike, RawStage, RawStages, RawStatus,
    RawStatusItem, RawStep, RawTake, RawThink,
};

/// Reads a data file named in the scenario (a path as written there).
pub type ReadData = std::sync::Arc<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// What the caller supplies besides the text.
#[derive(Clone, Default)]
pub struct Options {
    /// Overrides the file's `target` (`--target`).
    pub target: Option<String>,
    /// Values for `{{ env.NAME }}`.
    pub env: BTreeMap<String, String>,
    /// Reads `data` files; without it, a scenario with data cannot compile.
    pub read_data: Option<ReadData>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("target", &self.target)
            .field("env", &format_args!("{} variables", self.env.len()))
            .field("read_data", &self.read_data.is_some())
            .finish()
    }
}

/// A compiled scenario file.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The journeys, ready to run.
    pub scenario: Scenario,
    /// The file's load options (the command line may override them).
    pub load: LoadSpec,
    /// The file's request timeout (`defaults.timeout`).
    pub timeout: Option<Duration>,
    /// The file's thresholds, parsed, each naming only endpoints the
    /// scenario has.
    pub thresholds: Vec<analysis::Threshold>,
    /// Variable names, by slot.
    pub var_names: Vec<String>,
    /// The file's recovery check.
    pub recovery: Option<analysis::RecoveryCheck>,
    /// The metrics endpoints read during the run (`scrape`).
    pub scrapes: Vec<plan::Scrape>,
}

/// Compiles a scenario file's `text`; `file` names it in diagnostics.
pub fn compile(file: &str, text: &str, opts: &Options) -> Result<Compiled, Diagnostic> {
    let raw: RawScenario =
        serde_saphyr::from_str(text).map_err(|e| Diagnostic::from_yaml(file, text, &e))?;
    Compiler { file, text }.scenario(raw, opts)
}

struct Compiler<'a> {
    file: &'a str,
    text: &'a str,
}

/// A secret header's value as `throng validate` shows it: none of its
/// text, only the template expressions it is made of, so the user can see
/// where the value comes from.
fn redacted(source: &str) -> String {
    let uses: Vec<String> = plan::expressions(source)
        .iter()
        .map(|e| format!("{{{{ {e} }}}}"))
        .collect();
    if uses.is_empty() {
        "[redacted]".to_string()
    } else {
        format!("[redacted; uses {}]", uses.join(" "))
    }
}

/// The names of headers marked `secret: true` anywhere in the file, in
/// lower case.
fn secret_headers(raw: &RawScenario) -> Vec<String> {
    let defaults = raw.defaults.iter().flat_map(|d| &d.headers);
    let steps = raw
        .flows
        .iter()
        .flat_map(|f| &f.steps)
        .flat_map(|s| &s.value.headers);
    let mut names: Vec<String> = defaults
        .chain(steps)
        .filter(|(_, v)| v.value.secret())
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

impl Compiler<'_> {
    fn err(&self, pos: Pos, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic::at(self.file, self.text, pos, message, hint)
    }

    fn duration(&self, value: &Spanned<String>) -> Result<Duration, Diagnostic> {
        parse_duration(&value.value).map_err(|e| self.err(Pos::of(value), e.to_string(), None))
    }

    /// Compiles a template held in a YAML string, pointing errors at the
    /// exact character.
    fn template(&self, value: &Spanned<String>, scope: &Scope) -> Result<Template, Diagnostic> {
        Template::compile(&value.value, scope).map_err(|e| self.template_err(Pos::of(value), e))
    }

    /// Compiles a header's value.
    fn header_template(
        &self,
        value: &Spanned<RawHeader>,
        scope: &Scope,
    ) -> Result<Template, Diagnostic> {
        Template::compile(value.value.text(), scope)
            .map_err(|e| self.template_err(Pos::of(value), e))
    }

    fn template_err(&self, pos: Pos, e: TemplateError) -> Diagnostic {
        // A quoted scalar's text starts one column after its quote.
        let line = self
            .text
            .lines()
            .nth(pos.line.saturating_sub(1))
            .unwrap_or_default();
        let quoted = line
            .chars()
            .nth(pos.column.saturating_sub(1))
            .is_some_and(|c| c == '"' || c == '\'');
        let column = pos.column + usize::from(quoted) + e.offset;
        self.err(
            Pos {
                line: pos.line,
                column,
            },
            e.message,
            e.hint,
        )
    }

    fn scenario(&self, raw: RawScenario, opts: &Options) -> Result<Compiled, Diagnostic> {
        let target = self.target(&raw, opts)?;
        let mut scope = Scope::new(opts.env.clone());
        // Feeder columns are visible everywhere, defaults included.
        let mut slots = Scope::default();
        let mut feeders = Vec::new();
        for (name, data) in &raw.data {
            feeders.push(self.feeder(name, data, opts, &mut scope, &mut slots)?);
        }
        let secret_headers = secret_headers(&raw);
        let redirects = self.redirects(&raw)?;
        let (default_headers, default_think, timeout, default_retry) =
            self.defaults(raw.defaults.as_ref(), &scope)?;
        let mut endpoints: Vec<String> = Vec::new();
        let mut check_names: Vec<String> = Vec::new();
        let mut flows = Vec::new();
        if raw.flows.is_empty() {
            return Err(self.err(
                Pos { line: 1, column: 1 },
                "the scenario has no flows",
                Some("add `flows:` with at least one flow of `steps:`".into()),
            ));
        }
        for (i, raw_flow) in raw.flows.into_iter().enumerate() {
            let inherited = Inherited {
                headers: &default_headers,
                think: &default_think,
                retry: default_retry,
            };
            let cx = FlowCx::new(
                &scope,
                &mut slots,
                inherited,
                &mut endpoints,
                &mut check_names,
            );
            flows.push(self.flow(i, raw_flow, cx)?);
        }

        let load = match &raw.load {
            Some(l) => self.load(l)?,
            None => LoadSpec::default(),
        };
        let scenario = Scenario {
            name: raw.name.unwrap_or_else(|| self.file.to_string()),
            target,
            version: if raw.http2.unwrap_or(false) {
                HttpVersion::Http2
            } else {
                HttpVersion::Http1
            },
            tls: TlsOptions::default(),
            flows,
            endpoints,
            slots: slots.len(),
            var_names: Vec::new(),
            cookies: raw.cookies.unwrap_or(true),
            checks: check_names,
            feeders,
            clients: raw
                .clients
                .as_ref()
                .map(|c| self.clients(c, raw.http2.unwrap_or(false)))
                .transpose()?
                .unwrap_or_default(),
            redirects,
            secret_headers,
        };
        let mut var_names = vec![String::new(); slots.len()];
        for name in slots.names() {
            if let Some(slot) = slots.slot(name) {
                var_names[slot] = name.to_string();
            }
        }
        let mut scenario = scenario;
        scenario.var_names.clone_from(&var_names);
        let recovery = raw
            .recovery
            .as_ref()
            .map(|r| self.recovery(r))
            .transpose()?;
        let scrapes = raw
            .scrape
            .iter()
            .map(|s| self.scrape(s, &scenario.target.url()))
            .collect::<Result<_, _>>()?;
        Ok(Compiled {
            load,
            timeout,
            var_names,
            recovery,
            scrapes,
            thresholds: raw
                .thresholds
                .iter()
                .map(|t| self.threshold(t, &scenario.endpoints))
                .collect::<Result<_, _>>()?,
            scenario,
        })
    }

    /// The target: `--target`, else the file's.
    fn target(&self, raw: &RawScenario, opts: &Options) -> Result<Target, Diagnostic> {
        let target_text = match (&opts.target, &raw.target) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => t.value.clone(),
            (None, None) => {
                return Err(self.err(
                    Pos { line: 1, column: 1 },
                    "the scenario has no target",
                    Some("add `target: http://host:port` or run with --target URL".into()),
                ))
            }
        };
        let target_pos = raw
            .target
            .as_ref()
            .map(Pos::of)
            .unwrap_or(Pos { line: 1, column: 1 });
        Target::parse(&target_text).map_err(|e| match e {
            PlanError::TargetQuery { .. } => self.err(
                target_pos,
                "the target cannot have a query",
                Some("put query parameters on the steps".into()),
            ),
            e => self.err(target_pos, e.to_string(), None),
        })
    }

    /// The file's `defaults`: headers, think time, timeout and retry
    /// policy.
    #[allow(clippy::type_complexity)]
    fn defaults(
        &self,
        defaults: Option<&crate::raw::RawDefaults>,
        scope: &Scope,
    ) -> Result<
        (
            Vec<(String, Template)>,
            Think,
            Option<Duration>,
            Option<Retry>,
        ),
        Diagnostic,
    > {
        let mut default_headers = Vec::new();
        let mut default_think = Think::None;
        let mut timeout = None;
        let mut default_retry = None;
        if let Some(d) = defaults {
            if let Some(r) = &d.retry {
                default_retry = Some(self.retry(r)?);
            }
            for (name, value) in &d.headers {
                self.header_name(name, Pos::of(value))?;
                default_headers.push((name.to_string(), self.header_template(value, scope)?));
            }
            if let Some(t) = &d.timeout {
                timeout = Some(self.positive(t)?);
            }
            if let Some(t) = &d.think {
                default_think = self.think(t)?;
            }
        }
        Ok((default_headers, default_think, timeout, default_retry))
    }

    /// One threshold: parsed, and any endpoint it names checked against
    /// the scenario's, so that `validate` and `run` refuse the same files.
    fn threshold(
        &self,
        raw: &Spanned<String>,
        endpoints: &[String],
    ) -> Result<analysis::Threshold, Diagnostic> {
        let pos = Pos::of(raw);
        let t = analysis::Threshold::parse(&raw.value)
            .map_err(|e| self.err(pos, e.why.clone(), None))?;
        if let Some(ep) = t.endpoint.as_ref().filter(|ep| !endpoints.contains(ep)) {
            return Err(self.err(
                pos,
                format!("no endpoint is named {ep:?}"),
                Some(plan::suggest::hint(ep, endpoints)),
            ));
        }
        Ok(t)
    }

    /// The clients section.
    fn clients(&self, raw: &Spanned<RawClients>, http2: bool) -> Result<Clients, Diagnostic> {
        let pos = Pos::of(raw);
        let c = &raw.value;
        let err = |why: String, hint: Option<&str>| self.err(pos, why, hint.map(String::from));
        let source_ips = match &c.source_ips {
            None => Vec::new(),
            Some(text) => plan::parse_source_ips(text)
                .map_err(|why| err(format!("source_ips: {why}"), None))?,
        };
        let connections = match c.connections {
            None | Some(RawConnections::KeepAlive) => Connections::KeepAlive,
            Some(RawConnections::PerSession) => Connections::PerSession,
            Some(RawConnections::PerRequest) => Connections::PerRequest,
        };
        let slow = match &c.slow {
            None => None,
            Some(s) => {
                let fraction = plan::parse_percent(&s.fraction)
                    .filter(|f| *f <= 1.0)
                    .ok_or_else(|| {
                        err(
                            format!(
                                "slow.fraction {:?} is not a percentage up to 100%",
                                s.fraction
                            ),
                            Some("e.g. fraction: 10%"),
                        )
                    })?;
                let bytes_per_second = byte_rate(&s.rate).ok_or_else(|| {
                    err(
                        format!("slow.rate {:?} is not a rate", s.rate),
                        Some(
                            "e.g. rate: 50KB/s (bytes per second; KB = 1000 bytes, also B/s, MB/s)",
                        ),
                    )
                })?;
                Some(SlowClients {
                    fraction,
                    bytes_per_second,
                })
            }
        };
        let mut user_agents = Vec::new();
        for ua in &c.user_agents {
            let weight = ua.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(err(
                    format!("user agent {:?}: the weight must be more than 0", ua.value),
                    None,
                ));
            }
            user_agents.push((ua.value.clone(), weight));
        }
        let resend = match c.resend {
            None | Some(RawResend::Safe) => Resend::Safe,
            Some(RawResend::Never) => Resend::Never,
            Some(RawResend::Idempotent) => Resend::Idempotent,
        };
        let clients = Clients {
            source_ips,
            connections,
            slow,
            user_agents,
            resend,
            http2_connections: 0,
            http2_streams: 0,
        };
        if http2 && clients.need_http1() {
            return Err(err(
                "source_ips, connections and slow need HTTP/1.1: HTTP/2 users share a few connections (one per worker unless --http2-connections)"
                    .into(),
                Some("remove http2: true, or these client settings"),
            ));
        }
        Ok(clients)
    }

    /// A recovery check: a trigger window with at least a second before
    /// it, and a tolerance.
    fn recovery(&self, raw: &Spanned<RawRecovery>) -> Result<RecoveryCheck, Diagnostic> {
        let pos = Pos::of(raw);
        let r = &raw.value;
        let dur = |t: &str| parse_duration(t).map_err(|e| self.err(pos, e.to_string(), None));
        let (from, to) = (dur(&r.trigger.from)?, dur(&r.trigger.to)?);
        if from < Duration::from_secs(1) || to <= from {
            return Err(self.err(
                pos,
                "the trigger window needs from >= 1s (a level before it to recover to) and to > from",
                Some("e.g. trigger: { from: 10s, to: 15s }".into()),
            ));
        }
        let within = match &r.within {
            None => 0.10,
            Some(text) => plan::parse_percent(text)
                .filter(|f| *f < 1.0)
                .ok_or_else(|| {
                    self.err(
                        pos,
                        format!("within {text:?} is not a percentage below 100%"),
                        Some(
                            "write e.g. within: 10% (goodput back to at least 90% of its level)"
                                .into(),
                        ),
                    )
                })?,
        };
        Ok(RecoveryCheck {
            from_s: from.as_secs_f64(),
            to_s: to.as_secs_f64(),
            within,
            by_s: r
                .by
                .as_deref()
                .map(dur)
                .transpose()?
                .map(|d| d.as_secs_f64()),
        })
    }

    /// A metrics endpoint: its URL (a path is on the target), how often
    /// and how long it is read, how much of it, and which metrics.
    fn scrape(&self, raw: &Spanned<RawScrape>, target: &str) -> Result<plan::Scrape, Diagnostic> {
        let pos = Pos::of(raw);
        let err = |e: &dyn std::fmt::Display| self.err(pos, e.to_string(), None);
        let with = match &raw.value {
            RawScrape::Url(url) => {
                return plan::Scrape::new(url, Some(target), plan::DEFAULT_SCRAPE_INTERVAL, None)
                    .map_err(|e| err(&e))
            }
            RawScrape::With(w) => w,
        };
        let dur = |t: &str| parse_duration(t).map_err(|e| err(&e));
        let interval = match &with.interval {
            Some(t) => dur(t)?,
            None => plan::DEFAULT_SCRAPE_INTERVAL,
        };
        let timeout = with.timeout.as_deref().map(dur).transpose()?;
        let mut scrape =
            plan::Scrape::new(&with.url, Some(target), interval, timeout).map_err(|e| err(&e))?;
        if let Some(size) = &with.max_size {
            scrape.max_size = plan::parse_size(size)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    self.err(
                        pos,
                        format!("max_size {size:?} is not a size"),
                        Some("write e.g. max_size: 4MiB".into()),
                    )
                })?;
        }
        if let Some(pattern) = &with.matches {
            scrape = scrape.matching(pattern).map_err(|e| {
                self.err(
                    pos,
                    e.to_string(),
                    Some(
                        "a regex searched in each metric's name, e.g. match: \"db_|queue_\"".into(),
                    ),
                )
            })?;
        }
        Ok(scrape)
    }

    /// A retry policy; missing keys take [`Retry::default`]'s values.
    fn retry(&self, raw: &Spanned<RawRetry>) -> Result<Retry, Diagnostic> {
        let pos = Pos::of(raw);
        let r = &raw.value;
        let d = Retry::default();
        let dur = |text: &Option<String>, default: Duration| match text {
            Some(t) => parse_duration(t).map_err(|e| self.err(pos, e.to_string(), None)),
            None => Ok(default),
        };
        let attempts = r.attempts.unwrap_or(d.attempts);
        if attempts == 0 {
            return Err(self.err(
                pos,
                "attempts counts the first one too, so it is at least 1",
                Some("attempts: 1 never retries; attempts: 3 retries twice".into()),
            ));
        }
        let budget = match &r.budget {
            None => None,
            Some(text) => {
                let fraction = plan::parse_percent(text).ok_or_else(|| {
                    self.err(
                        pos,
                        format!("retry budget {text:?} is not a percentage"),
                        Some("write e.g. budget: 10% (retries at most 10% of requests)".into()),
                    )
                })?;
                Some(fraction)
            }
        };
        let base = dur(&r.base, d.base)?;
        let max = dur(&r.max, d.max.max(base))?;
        if max < base {
            return Err(self.err(pos, "the retry's max pause is shorter than its base", None));
        }
        let deadline = r
            .deadline
            .as_ref()
            .map(|t| dur(&Some(t.clone()), Duration::ZERO))
            .transpose()?;
        Ok(Retry {
            attempts,
            backoff: match r.backoff {
                None => d.backoff,
                Some(RawBackoff::None) => Backoff::None,
                Some(RawBackoff::Fixed) => Backoff::Fixed,
                Some(RawBackoff::Exponential) => Backoff::Exponential,
            },
            base,
            max,
            jitter: match r.jitter {
                None => d.jitter,
                Some(RawJitter::None) => Jitter::None,
                Some(RawJitter::Full) => Jitter::Full,
                Some(RawJitter::Equal) => Jitter::Equal,
            },
            on: match &r.on {
                None => d.on,
                Some(list) => {
                    let mut on = RetryOn::NONE;
                    for cause in list {
                        match cause {
                            RawRetryOn::Http5xx => on.http_5xx = true,
                            RawRetryOn::Timeout => on.timeout = true,
                            RawRetryOn::Connect => on.connect = true,
                            RawRetryOn::Reset => on.reset = true,
                        }
                    }
                    on
                }
            },
            budget,
            deadline,
        })
    }

    fn positive(&self, value: &Spanned<String>) -> Result<Duration, Diagnostic> {
        let d = self.duration(value)?;
        if d.is_zero() {
            return Err(self.err(Pos::of(value), "this must be more than 0", None));
        }
        Ok(d)
    }

    fn header_name(&self, name: &str, pos: Pos) -> Result<(), Diagnostic> {
        http::HeaderName::from_bytes(name.as_bytes())
            .map(|_| ())
            .map_err(|_| self.err(pos, format!("{name:?} is not a valid header name"), None))
    }

    /// The scenario's `redirects` and `allowed_hosts`.
    fn redirects(&self, raw: &RawScenario) -> Result<plan::Redirects, Diagnostic> {
        let mut allowed_hosts = Vec::new();
        for host in &raw.allowed_hosts {
            let Some(h) = plan::Redirects::host(&host.value) else {
                return Err(self.err(
                    Pos::of(host),
                    format!("{:?} is not a host name", host.value.trim()),
                    Some(
                        "write the host alone, e.g. login.example.com (any port is allowed)".into(),
                    ),
                ));
            };
            allowed_hosts.push(h);
        }
        Ok(plan::Redirects {
            max: raw.redirects.unwrap_or(plan::DEFAULT_MAX_REDIRECTS),
            allowed_hosts,
        })
    }

    fn step(
        &self,
        raw: &Spanned<RawStep>,
        scope: &mut Scope,
        slots: &mut Scope,
        inherited: &Inherited,
        endpoints: &mut Vec<String>,
        check_names: &mut Vec<String>,
    ) -> Result<Step, Diagnostic> {
        let at = Pos::of(raw);
        let s = &raw.value;
        let (method, path) = self.request_line(raw)?;
        let path_template = self.path_and_query(path, s, scope)?;
        let mut headers = self.headers(s, inherited, scope)?;
        let body = self.body(s, at, &mut headers, scope)?;
        let name = match &s.name {
            Some(n) if n.value.trim().is_empty() => {
                return Err(self.err(Pos::of(n), "a step's name cannot be empty", None))
            }
            Some(n) => n.value.clone(),
            None => format!(
                "{} {}",
                if s.ws.is_some() {
                    "WS"
                } else if s.sse.is_some() {
                    "SSE"
                } else {
                    method.as_str()
                },
                path.value.split('?').next().unwrap_or("/")
            ),
        };
        let endpoint = match endpoints.iter().position(|e| *e == name) {
            Some(i) => i,
            None => {
                endpoints.push(name);
                endpoints.len() - 1
            }
        };
        let think = match &s.think {
            Some(t) => self.think(t)?,
            None => inherited.think.clone(),
        };
        let timeout = s.timeout.as_ref().map(|t| self.positive(t)).transpose()?;
        let retry = match &s.retry {
            Some(r) => Some(self.retry(r)?),
            None => inherited.retry,
        }
        .filter(|r| r.attempts > 1);
        let endpoint_name = endpoints[endpoint].clone();
        // Checks see the variables from before this step; its extracts are
        // visible from the next step on.
        let mut checks = Vec::new();
        for c in &s.checks {
            checks.push(self.check(c, scope, &endpoint_name, check_names)?);
        }
        let extract = self.extracts(s, scope, slots)?;
        let watch_cache = plan::looks_like_asset(path_template.source());
        let mut needs = Needs::of(&checks, &extract);
        needs.headers |= watch_cache;
        let mut reads: Vec<usize> = path_template
            .slots()
            .chain(headers.iter().flat_map(|(_, t)| t.slots()))
            .chain(body.slots())
            .map(|(slot, _)| slot)
            .collect();
        reads.sort_unstable();
        reads.dedup();
        let on_missing = match s.on_missing {
            Some(RawOnMissing::Skip) => OnMissing::Skip,
            Some(RawOnMissing::Fail) | None => OnMissing::Fail,
        };
        Ok(Step {
            endpoint,
            method,
            path: path_template,
            headers,
            body,
            think,
            timeout,
            retry,
            checks,
            extract,
            needs,
            watch_cache,
            reads,
            on_missing,
        })
    }

    /// The step's method and path: exactly one of `get`, `post`, ...
    fn request_line<'s>(
        &self,
        raw: &'s Spanned<RawStep>,
    ) -> Result<(Method, &'s Spanned<String>), Diagnostic> {
        let at = Pos::of(raw);
        let s = &raw.value;
        let methods = [
            (Method::GET, &s.get),
            (Method::POST, &s.post),
            (Method::PUT, &s.put),
            (Method::PATCH, &s.patch),
            (Method::DELETE, &s.delete),
            (Method::HEAD, &s.head),
            // A WebSocket opens with a GET that asks to upgrade; an event
            // stream is a GET.
            (Method::GET, &s.ws),
            (Method::GET, &s.sse),
        ];
        let given: Vec<_> = methods
            .iter()
            .filter_map(|(m, p)| p.as_ref().map(|p| (m.clone(), p)))
            .collect();
        let (method, path) = match given.as_slice() {
            [one] => one.clone(),
            [] => return Err(self.err(
                at,
                "the step has no request",
                Some(
                    "start it with one of get, post, put, patch, delete, head, ws or sse, e.g. `- get: /`"
                        .into(),
                ),
            )),
            [_, second, ..] => return Err(self.err(
                Pos::of(second.1),
                "a step sends one request: give only one of get, post, put, patch, delete, head, ws or sse",
                None,
            )),
        };
        if !path.value.starts_with('/') {
            return Err(self.err(
                Pos::of(path),
                "a step's path starts with '/'",
                Some(format!("write /{}", path.value)),
            ));
        }
        Ok((method, path))
    }

    /// The path and query, as one template.
    fn path_and_query(
        &self,
        path: &Spanned<String>,
        s: &RawStep,
        scope: &Scope,
    ) -> Result<Template, Diagnostic> {
        let mut path_text = path.value.clone();
        let mut path_template = Template::compile_in(&path.value, scope, Context::Url)
            .map_err(|e| self.template_err(Pos::of(path), e))?;
        if !s.query.is_empty() {
            for (i, (key, value)) in s.query.iter().enumerate() {
                path_text.push(if i == 0 && !path.value.contains('?') {
                    '?'
                } else {
                    '&'
                });
                path_text.push_str(&encode(key));
                path_text.push('=');
                path_text.push_str(&encode_literal_text(&value.value, false));
                // Compile each value for its own diagnostic position.
                self.template(value, scope)?;
            }
            path_template = Template::compile_in(&path_text, scope, Context::Url)
                .map_err(|e| self.template_err(Pos::of(path), e))?;
        }
        Ok(path_template)
    }

    /// The inherited headers, with the step's own replacing those of the
    /// same name.
    fn headers(
        &self,
        s: &RawStep,
        inherited: &Inherited,
        scope: &Scope,
    ) -> Result<Vec<(String, Template)>, Diagnostic> {
        let mut headers = inherited.headers.to_vec();
        for (name, value) in &s.headers {
            self.header_name(name, Pos::of(value))?;
            let t = self.header_template(value, scope)?;
            match headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some(h) => h.1 = t,
                None => headers.push((name.clone(), t)),
            }
        }
        Ok(headers)
    }

    /// The body: text, JSON or a form (adding its `Content-Type` unless
    /// the headers have one), or none.
    fn body(
        &self,
        s: &RawStep,
        at: Pos,
        headers: &mut Vec<(String, Template)>,
        scope: &Scope,
    ) -> Result<Template, Diagnostic> {
        let has = |headers: &[(String, Template)], n: &str| {
            headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n))
        };

        let bodies = usize::from(s.body.is_some())
            + usize::from(s.json.is_some())
            + usize::from(!s.form.is_empty());
        if bodies > 1 {
            return Err(self.err(at, "give only one of body, json and form", None));
        }
        Ok(if let Some(b) = &s.body {
            self.template(b, scope)?
        } else if let Some(json) = &s.json {
            if !has(headers, "content-type") {
                headers.push(("Content-Type".into(), Template::literal("application/json")));
            }
            let text = serde_json::to_string(json).unwrap_or_default();
            Template::compile_in(&text, scope, Context::Json)
                .map_err(|e| self.template_err(at, TemplateError { offset: 0, ..e }))?
        } else if !s.form.is_empty() {
            if !has(headers, "content-type") {
                headers.push((
                    "Content-Type".into(),
                    Template::literal("application/x-www-form-urlencoded"),
                ));
            }
            let mut text = String::new();
            for (i, (key, value)) in s.form.iter().enumerate() {
                if i > 0 {
                    text.push('&');
                }
                text.push_str(&encode(key));
                text.push('=');
                text.push_str(&encode_literal_text(&value.value, true));
                self.template(value, scope)?;
            }
            Template::compile_in(&text, scope, Context::Form)
                .map_err(|e| self.template_err(at, TemplateError { offset: 0, ..e }))?
        } else {
            Template::literal("")
        })
    }

    /// The step's extracts, each declaring its variable for the steps
    /// after it.
    fn extracts(
        &self,
        s: &RawStep,
        scope: &mut Scope,
        slots: &mut Scope,
    ) -> Result<Vec<Extract>, Diagnostic> {
        self.extracts_of(&s.extract, scope, slots)
    }

    /// Extracts by variable name, each declaring its variable for what
    /// comes after it.
    fn extracts_of(
        &self,
        raw: &indexmap::IndexMap<String, Spanned<RawExtract>>,
        scope: &mut Scope,
        slots: &mut Scope,
    ) -> Result<Vec<Extract>, Diagnostic> {
        let mut extract = Vec::new();
        for (name, e) in raw {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(self.err(
                    Pos::of(e),
                    format!("{name:?} is not a variable name"),
                    Some("use letters, digits, '_' and '-'".into()),
                ));
            }
            let from = self.extract_from(e)?;
            let slot = slots.declare(name);
            let pick = match e.value.pick {
                None | Some(RawTake::First) => PickFrom::First,
                Some(RawTake::Random) => PickFrom::Random,
                Some(RawTake::All) => PickFrom::All,
            };
            if pick == PickFrom::All {
                scope.declare_list_at(name, slot);
            } else {
                scope.declare_at(name, slot);
            }
            extract.push(Extract { slot, from, pick });
        }
        Ok(extract)
    }

    fn feeder(
        &self,
        name: &str,
        data: &Spanned<RawData>,
        opts: &Options,
        scope: &mut Scope,
        slots: &mut Scope,
    ) -> Result<plan::Feeder, Diagnostic> {
        let pos = Pos::of(data);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(self.err(
                pos,
                format!("{name:?} is not a valid data name"),
                Some("use letters, digits, '_' and '-'".into()),
            ));
        }
        let file = &data.value.file;
        let read = opts
            .read_data
            .as_ref()
            .ok_or_else(|| self.err(pos, "data files cannot be read here", None))?;
        let bytes =
            read(file).map_err(|e| self.err(pos, format!("cannot read {file}: {e}"), None))?;
        let parsed = if file.ends_with(".csv") {
            plan::parse_csv(&bytes)
        } else if file.ends_with(".jsonl") || file.ends_with(".ndjson") {
            plan::parse_jsonl(&bytes)
        } else {
            return Err(self.err(
                pos,
                format!("{file}: unknown data format"),
                Some(
                    "use a .csv file (with a header line) or .jsonl (one JSON object per line)"
                        .into(),
                ),
            ));
        };
        let (columns, rows) = parsed.map_err(|e| {
            let at = e.line.map(|l| format!(":{l}")).unwrap_or_default();
            self.err(pos, format!("{file}{at}: {}", e.message), None)
        })?;
        if rows.is_empty() {
            return Err(self.err(pos, format!("{file} has no rows"), None));
        }
        let column_slots = columns
            .iter()
            .map(|c| {
                let var = format!("{name}.{c}");
                let slot = slots.declare(&var);
                scope.declare_at(&var, slot);
                slot
            })
            .collect();
        Ok(plan::Feeder {
            name: name.to_string(),
            columns,
            rows,
            pick: match data.value.pick {
                Some(RawPick::Random) => plan::Pick::Random,
                Some(RawPick::Unique) => plan::Pick::Unique,
                Some(RawPick::Sequential) | None => plan::Pick::Sequential,
            },
            slots: column_slots,
        })
    }

    fn regex(&self, pos: Pos, pattern: &str) -> Result<regex::Regex, Diagnostic> {
        regex::Regex::new(pattern).map_err(|e| {
            // The regex crate shows the pattern with a caret under the
            // problem; keep its last line and turn the caret into a position.
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or_default().trim();
            let last = last.strip_prefix("error: ").unwrap_or(last);
            let at = detail
                .lines()
                .find(|l| l.trim_start().starts_with('^'))
                .map(|l| {
                    format!(
                        " at character {}",
                        l.find('^').unwrap_or(4).saturating_sub(4) + 1
                    )
                })
                .unwrap_or_default();
            self.err(
                pos,
                format!("invalid regular expression {pattern:?}: {last}{at}"),
                None,
            )
        })
    }

    fn json_path(&self, pos: Pos, path: &str) -> Result<serde_json_path::JsonPath, Diagnostic> {
        serde_json_path::JsonPath::parse(path).map_err(|e| {
            self.err(
                pos,
                format!("invalid JSONPath {path:?}: {e}"),
                Some("JSONPath (RFC 9535) starts at $, e.g. $.user.id or $.items[0].name".into()),
            )
        })
    }

    fn check(
        &self,
        raw: &Spanned<RawCheck>,
        scope: &Scope,
        endpoint: &str,
        names: &mut Vec<String>,
    ) -> Result<Check, Diagnostic> {
        let pos = Pos::of(raw);
        let c = &raw.value;
        let template = |text: &str| {
            Template::compile(text, scope)
                .map_err(|e| self.template_err(pos, TemplateError { offset: 0, ..e }))
        };
        let mut kinds: Vec<(CheckKind, String)> = Vec::new();
        if let Some(status) = &c.status {
            let set = self.statuses(pos, status)?;
            let desc = set
                .iter()
                .map(|m| match m {
                    StatusMatch::Code(c) => c.to_string(),
                    StatusMatch::Class(c) => format!("{c}xx"),
                })
                .collect::<Vec<_>>()
                .join(" or ");
            kinds.push((CheckKind::Status(set), format!("status {desc}")));
        }
        if let Some(t) = &c.body_contains {
            kinds.push((
                CheckKind::BodyContains(template(t)?),
                format!("body contains {t:?}"),
            ));
        }
        if let Some(t) = &c.body_not_contains {
            kinds.push((
                CheckKind::BodyNotContains(template(t)?),
                format!("body does not contain {t:?}"),
            ));
        }
        if let Some(re) = &c.body_matches {
            kinds.push((
                CheckKind::BodyMatches(self.regex(pos, re)?),
                format!("body matches /{re}/"),
            ));
        }
        if let Some(j) = &c.json {
            kinds.push(self.json_check(pos, j, &template)?);
        }
        if let Some(h) = &c.header {
            kinds.push(self.header_check(pos, h, &template)?);
        }
        if let Some(d) = &c.max_latency {
            let max = parse_duration(d).map_err(|e| self.err(pos, e.to_string(), None))?;
            kinds.push((
                CheckKind::MaxLatency(max),
                format!("latency <= {}", plan::format_duration(max)),
            ));
        }
        let (kind, desc) = match kinds.len() {
            1 => kinds.remove(0),
            _ => {
                return Err(self.err(
                    pos,
                    if kinds.is_empty() { "the check tests nothing" } else { "a check tests one thing" },
                    Some("give exactly one of status, body_contains, body_not_contains, body_matches, json, header or max_latency; write several checks for several things".into()),
                ))
            }
        };
        let name = c
            .name
            .clone()
            .unwrap_or_else(|| format!("{endpoint}: {desc}"));
        let id = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                names.push(name);
                names.len() - 1
            }
        };
        // Data columns are `data.column`; a name without a dot was
        // extracted from an earlier response.
        let reads_back = kind
            .expected()
            .is_some_and(|t| t.slots().any(|(_, name)| !name.contains('.')));
        Ok(Check {
            id,
            kind,
            reads_back,
            on_fail: match c.on_fail {
                Some(RawOnFail::StopFlow) => OnFail::StopFlow,
                Some(RawOnFail::Continue) | None => OnFail::Continue,
            },
        })
    }

    /// A status check's codes and classes (`200`, `"2xx"` or a list).
    fn statuses(&self, pos: Pos, status: &RawStatus) -> Result<Vec<StatusMatch>, Diagnostic> {
        let items: Vec<&RawStatusItem> = match status {
            RawStatus::List(list) => list.iter().collect(),
            RawStatus::Code(_) | RawStatus::Text(_) => Vec::new(),
        };
        let mut set = Vec::new();
        let mut add = |text: String| -> Result<(), Diagnostic> {
            let t = text.trim().to_ascii_lowercase();
            let m = if let Some(class) = t.strip_suffix("xx").and_then(|d| d.parse::<u16>().ok()) {
                StatusMatch::Class(class)
            } else {
                StatusMatch::Code(t.parse().map_err(|_| {
                    self.err(
                        pos,
                        format!("{text:?} is not a status: write 200, \"2xx\" or a list"),
                        None,
                    )
                })?)
            };
            let ok = match m {
                StatusMatch::Class(c) => (1..=5).contains(&c),
                StatusMatch::Code(c) => (100..=599).contains(&c),
            };
            if !ok {
                return Err(self.err(pos, format!("{text:?} is not an HTTP status"), None));
            }
            set.push(m);
            Ok(())
        };
        match status {
            RawStatus::Code(code) => add(code.to_string())?,
            RawStatus::Text(t) => add(t.clone())?,
            RawStatus::List(_) => {
                for item in items {
                    match item {
                        RawStatusItem::Code(code) => add(code.to_string())?,
                        RawStatusItem::Text(t) => add(t.clone())?,
                    }
                }
            }
        }
        Ok(set)
    }

    /// A `json` check: a path that equals a value, exists, or is absent.
    fn json_check(
        &self,
        pos: Pos,
        j: &crate::raw::RawJsonCheck,
        template: &dyn Fn(&str) -> Result<Template, Diagnostic>,
    ) -> Result<(CheckKind, String), Diagnostic> {
        let path = self.json_path(pos, &j.path)?;
        Ok(match (&j.equals, j.exists) {
            (Some(v), None) => {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (
                    CheckKind::JsonEquals(path, template(&text)?),
                    format!("json {} equals {text:?}", j.path),
                )
            }
            (None, Some(true)) => (
                CheckKind::JsonExists(path),
                format!("json {} exists", j.path),
            ),
            (None, Some(false)) => (
                CheckKind::JsonAbsent(path),
                format!("json {} is absent", j.path),
            ),
            _ => {
                return Err(self.err(
                    pos,
                    "a json check needs exactly one of `equals` and `exists`",
                    None,
                ))
            }
        })
    }

    /// A `header` check: a header that equals or matches, exists, or is
    /// absent.
    fn header_check(
        &self,
        pos: Pos,
        h: &crate::raw::RawHeaderCheck,
        template: &dyn Fn(&str) -> Result<Template, Diagnostic>,
    ) -> Result<(CheckKind, String), Diagnostic> {
        let name = h.name.clone();
        Ok(match (&h.equals, &h.matches, h.exists) {
            (Some(v), None, None) => (
                CheckKind::HeaderEquals(name.clone(), template(v)?),
                format!("header {name} equals {v:?}"),
            ),
            (None, Some(re), None) => (
                CheckKind::HeaderMatches(name.clone(), self.regex(pos, re)?),
                format!("header {name} matches /{re}/"),
            ),
            (None, None, Some(true)) => (
                CheckKind::HeaderExists(name.clone()),
                format!("header {name} present"),
            ),
            (None, None, Some(false)) => (
                CheckKind::HeaderAbsent(name.clone()),
                format!("header {name} absent"),
            ),
            _ => {
                return Err(self.err(
                    pos,
                    "a header check needs exactly one of `equals`, `matches` and `exists`",
                    None,
                ))
            }
        })
    }

    fn extract_from(&self, raw: &Spanned<RawExtract>) -> Result<ExtractFrom, Diagnostic> {
        let pos = Pos::of(raw);
        let e = &raw.value;
        let given = [
            e.json.is_some(),
            e.regex.is_some(),
            e.header.is_some(),
            e.cookie.is_some(),
            e.css.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(self.err(
                pos,
                "an extract needs exactly one of json, regex, header, cookie and css",
                Some("e.g. `token: { json: $.token }`".into()),
            ));
        }
        if e.group.is_some() && e.regex.is_none() {
            return Err(self.err(pos, "`group` goes with `regex`", None));
        }
        if e.attr.is_some() && e.css.is_none() {
            return Err(self.err(pos, "`attr` goes with `css`", None));
        }
        if let Some(p) = &e.json {
            return Ok(ExtractFrom::Json(self.json_path(pos, p)?));
        }
        if let Some(re) = &e.regex {
            let compiled = self.regex(pos, re)?;
            let group = e.group.unwrap_or(1);
            if group >= compiled.captures_len() {
                return Err(self.err(
                    pos,
                    format!(
                        "the regex has {} capture group(s); group {group} does not exist",
                        compiled.captures_len() - 1
                    ),
                    Some("put the part to extract in parentheses, e.g. \"order-(\\d+)\"".into()),
                ));
            }
            return Ok(ExtractFrom::Regex(compiled, group));
        }
        if let Some(h) = &e.header {
            return Ok(ExtractFrom::Header(h.clone()));
        }
        if let Some(c) = &e.cookie {
            return Ok(ExtractFrom::Cookie(c.clone()));
        }
        let css = e.css.clone().unwrap_or_default();
        let selector = scraper::Selector::parse(&css)
            .map_err(|err| self.err(pos, format!("invalid CSS selector {css:?}: {err}"), None))?;
        Ok(ExtractFrom::Css(Box::new(selector), e.attr.clone()))
    }

    fn think(&self, raw: &Spanned<RawThink>) -> Result<Think, Diagnostic> {
        let pos = Pos::of(raw);
        let dur = |text: &str| parse_duration(text).map_err(|e| self.err(pos, e.to_string(), None));
        match &raw.value {
            RawThink::Constant(text) => {
                let d = dur(text)?;
                Ok(if d.is_zero() {
                    Think::None
                } else {
                    Think::Constant(d)
                })
            }
            RawThink::Distribution(d) => {
                let count = usize::from(d.uniform.is_some())
                    + usize::from(d.exponential.is_some())
                    + usize::from(d.lognormal.is_some())
                    + usize::from(d.pareto.is_some());
                if count != 1 {
                    return Err(self.err(
                        pos,
                        "a think time is a duration or exactly one distribution",
                        Some("write e.g. `think: 2s`, `think: { uniform: [1s, 3s] }`, `{ exponential: 2s }`, `{ lognormal: { median: 2s, sigma: 0.8 } }` or `{ pareto: { min: 1s, alpha: 1.5 } }`".into()),
                    ));
                }
                if let Some((a, b)) = &d.uniform {
                    let (min, max) = (dur(a)?, dur(b)?);
                    if min > max {
                        return Err(self.err(
                            pos,
                            "uniform think time: the first bound is larger than the second",
                            None,
                        ));
                    }
                    return Ok(Think::Uniform { min, max });
                }
                if let Some(mean) = &d.exponential {
                    return Ok(Think::Exponential { mean: dur(mean)? });
                }
                if let Some(l) = &d.lognormal {
                    if !(l.sigma.is_finite() && l.sigma >= 0.0) {
                        return Err(self.err(pos, "lognormal sigma must be 0 or more", None));
                    }
                    return Ok(Think::LogNormal {
                        median: dur(&l.median)?,
                        sigma: l.sigma,
                    });
                }
                match &d.pareto {
                    Some(p) if p.alpha.is_finite() && p.alpha > 0.0 => Ok(Think::Pareto {
                        min: dur(&p.min)?,
                        alpha: p.alpha,
                    }),
                    _ => Err(self.err(pos, "pareto alpha must be more than 0", None)),
                }
            }
        }
    }

    /// One stage of a list: which shape, with its numbers read.
    fn shape(&self, st: &RawStage) -> Result<Shape, String> {
        let duration = parse_duration(&st.duration).map_err(|e| e.to_string())?;
        Ok(match (st.target, st.step, &st.spike, &st.sine) {
            (Some(target), None, None, None) => Shape::Ramp { target, duration },
            (None, Some(target), None, None) => Shape::Step { target, duration },
            (None, None, Some(spike), None) => {
                let level = match spike {
                    RawSpike::Level(x) => SpikeLevel::Absolute(*x),
                    RawSpike::Factor(text) => SpikeLevel::Times(
                        text.trim()
                            .strip_suffix(['x', 'X'])
                            .and_then(|k| k.trim().parse::<f64>().ok())
                            .ok_or_else(|| {
                                format!("spike {text:?} is not a level: write a factor such as 10x, or a number")
                            })?,
                    ),
                };
                Shape::Spike { level, duration }
            }
            (None, None, None, Some(sine)) => Shape::Sine {
                low: sine.low,
                high: sine.high,
                period: match &sine.period {
                    Some(p) => parse_duration(p).map_err(|e| e.to_string())?,
                    None => Duration::from_secs(24 * 3600),
                },
                duration,
            },
            _ => {
                return Err("each stage has exactly one of target (a ramp), step, spike or sine, with a duration".into())
            }
        })
    }

    fn load(&self, raw: &RawLoad) -> Result<LoadSpec, Diagnostic> {
        let stages = match &raw.stages {
            None => None,
            Some(s) => Some(match &s.value {
                RawStages::Text(text) => {
                    parse_stages(text).map_err(|e| self.err(Pos::of(s), e.to_string(), None))?
                }
                RawStages::List(list) => {
                    let mut shapes = Vec::new();
                    // Positions inside an untagged list are lost, so the
                    // message names the stage by number.
                    for (i, st) in list.iter().enumerate() {
                        shapes.push(self.shape(st).map_err(|why| {
                            self.err(Pos::of(s), format!("stage {}: {why}", i + 1), None)
                        })?);
                    }
                    Profile::from_shapes(&shapes)
                        .map_err(|e| self.err(Pos::of(s), e.to_string(), None))?
                }
            }),
        };
        Ok(LoadSpec {
            model: raw.model.map(|m| match m {
                RawModel::Open => ModelKind::Open,
                RawModel::Closed => ModelKind::Closed,
            }),
            rate: raw.rate,
            vus: raw.vus.map(f64::from),
            duration: raw
                .duration
                .as_ref()
                .map(|d| self.positive(d))
                .transpose()?,
            stages,
            requests: raw.requests,
            think: None,
            arrivals: raw.arrivals.map(|a| match a {
                RawArrivals::Uniform => Arrivals::Uniform,
                RawArrivals::Poisson => Arrivals::Poisson,
            }),
            max_in_flight: raw.max_in_flight,
        })
    }
}

/// `50KB/s` as 50,000: bytes per second, units of 1000.
fn byte_rate(text: &str) -> Option<u64> {
    let t = text.trim().strip_suffix("/s")?.trim();
    let (number, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic())?);
    let scale = match unit.trim() {
        "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    let n: f64 = number.trim().parse().ok()?;
    let rate = n * scale;
    (rate.is_finite() && rate >= 1.0).then_some(rate as u64)
}

/// What compiling one flow accumulates.
struct FlowCx<'a> {
    /// The names visible at this point of the flow.
    scope: Scope,
    /// Slots unique across flows.
    slots: &'a mut Scope,
    inherited: Inherited<'a>,
    endpoints: &'a mut Vec<String>,
    check_names: &'a mut Vec<String>,
    /// The flow's requests so far.
    steps: Vec<Step>,
}

impl<'a> FlowCx<'a> {
    /// A flow's start: the scenario's names (each flow sees only the
    /// variables its own earlier steps extract, while `slots` hands out
    /// slots unique across flows), the defaults, and the scenario's
    /// endpoints and checks so far.
    fn new(
        scope: &Scope,
        slots: &'a mut Scope,
        inherited: Inherited<'a>,
        endpoints: &'a mut Vec<String>,
        check_names: &'a mut Vec<String>,
    ) -> FlowCx<'a> {
        FlowCx {
            scope: scope.clone(),
            slots,
            inherited,
            endpoints,
            check_names,
            steps: Vec::new(),
        }
    }
}

/// What a flow's steps inherit unless they set their own.
#[derive(Clone, Copy)]
struct Inherited<'a> {
    headers: &'a [(String, Template)],
    think: &'a Think,
    retry: Option<Retry>,
}

/// A query or form value's text with its literal parts encoded (spaces as
/// `+` in a `form`) and its `{{ }}` expressions left for the template,
/// which escapes their values when they render.
fn encode_literal_text(text: &str, form: bool) -> String {
    let literal = |part: &str| {
        if form {
            encode(part).replace("%20", "+")
        } else {
            encode(part)
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        let end = open + close + 2;
        out.push_str(&literal(&rest[..open]));
        out.push_str(&rest[open..end]);
        rest = &rest[end..];
    }
    out.push_str(&literal(rest));
    out
}

/// Percent-encodes the characters that would break a query or form key.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
