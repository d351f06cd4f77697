//! Requests, protocol-neutral: what a step, a replayed line or a redirect
//! hop asks for is rendered once per send into [`Rendered`] (buffers the
//! session reuses) and seen as [`Parts`]; each protocol turns parts into
//! its own request type, a [`Wire`] (the bytes to write for HTTP/1.1 in
//! `h1.rs`, hyper's request for HTTP/2 in `h2.rs`). A redirect's hop is
//! derived from the parts of the request it answers, never from the bytes
//! that went out.

use http::Method;
use plan::{RenderCtx, ReplayRequest, Scenario, Step, Target};
use url::Url;

use crate::error::Failure;

/// The User-Agent sent unless a step sets its own.
pub(crate) const USER_AGENT: &str = concat!("throng/", env!("CARGO_PKG_VERSION"));

/// A request in a protocol's own form, rendered from [`Parts`] into
/// buffers it keeps between sends.
pub(crate) trait Wire: Default {
    /// Renders `parts`, replacing what this request held.
    fn render(&mut self, parts: &Parts<'_>) -> Result<(), Failure>;
}

/// What a request asks for, in no protocol's form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// The method.
    pub(crate) method: &'a Method,
    /// `http` or `https`.
    pub(crate) scheme: &'a str,
    /// Host, and port unless the scheme's default: `Host`, `:authority`.
    pub(crate) authority: &'a str,
    /// Path and query (origin form), the target's base path included.
    pub(crate) path: &'a [u8],
    /// The request's own headers, in order (a `Host` among them replaces
    /// the authority's, for HTTP/1.1).
    pub(crate) headers: &'a Headers,
    /// The `User-Agent` to add; `None` when the headers carry one.
    pub(crate) agent: Option<&'a str>,
    /// The user's cookies, if any.
    pub(crate) cookie: Option<&'a str>,
    /// The body.
    pub(crate) body: &'a [u8],
    /// Whether to add the body's length (HTTP/1.1's `Content-Length`):
    /// for a body, or a method that has one, when the headers do not
    /// already say it (a hop never carries the first request's). Decided
    /// where the parts are made.
    pub(crate) length: bool,
}

impl Parts<'_> {
    /// The URL the request goes to.
    pub(crate) fn url(&self) -> Option<Url> {
        let path = std::str::from_utf8(self.path).ok()?;
        Url::parse(&format!("{}://{}{path}", self.scheme, self.authority)).ok()
    }

    /// Whether the response has no body whatever its headers say.
    pub(crate) fn head(&self) -> bool {
        *self.method == Method::HEAD
    }
}

/// Rendered headers: names and values in one buffer, reused.
#[derive(Debug, Default, Clone)]
pub(crate) struct Headers {
    buf: Vec<u8>,
    /// Each header's name start, name end (its value's start) and value end.
    spans: Vec<(usize, usize, usize)>,
}

impl Headers {
    fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
    }

    /// Adds `name` with the value `value` writes.
    fn push(&mut self, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(name.as_bytes());
        let mid = self.buf.len();
        value(&mut self.buf);
        self.spans.push((start, mid, self.buf.len()));
    }

    /// The headers, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.iter().map(|&(s, m, e)| {
            (
                std::str::from_utf8(&self.buf[s..m]).unwrap_or_default(),
                &self.buf[m..e],
            )
        })
    }

    /// Replaces `from` with `to` in every value.
    fn replace(&mut self, from: &[u8], to: &[u8]) {
        let changed: Vec<(String, Vec<u8>)> = self
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    replace(v, from, to).unwrap_or_else(|| v.to_vec()),
                )
            })
            .collect();
        self.clear();
        for (n, v) in changed {
            self.push(&n, |out| out.extend_from_slice(&v));
        }
    }

    /// Whether a header `name` is among them.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// Whether a request of `method` with `body` says its length.
/// `text` with each `from` replaced by `to`; `None` when it has none.
fn replace(text: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    if from.is_empty() || text.len() < from.len() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    let mut found = false;
    while i < text.len() {
        if text[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
            found = true;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    found.then_some(out)
}

/// A value as a path or query may carry it: unreserved characters as
/// they are, the rest percent-encoded.
fn escape_url(value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

fn wants_length(method: &Method, body: &[u8]) -> bool {
    !body.is_empty() || matches!(method.as_str(), "POST" | "PUT" | "PATCH")
}

/// What a request says about its user besides the step: cookies and the
/// user agent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Who<'a> {
    /// The `Cookie` header's value, if the user has cookies.
    pub(crate) cookie: Option<&'a str>,
    /// The user's `User-Agent` (throng's when `None`).
    pub(crate) agent: Option<&'a str>,
}

/// A request's templated pieces as rendered for one send: path, headers
/// and body. A session keeps one and reuses its buffers.
#[derive(Debug, Default)]
pub(crate) struct Rendered {
    path: Vec<u8>,
    headers: Headers,
    body: Vec<u8>,
}

impl Rendered {
    /// Renders `step` for the user in `ctx`, under `target`'s base path.
    pub(crate) fn step(&mut self, target: &Target, step: &Step, ctx: &mut RenderCtx<'_>) {
        self.path.clear();
        self.path.extend_from_slice(target.base_path.as_bytes());
        step.path.render(ctx, &mut self.path);
        self.headers.clear();
        for (name, value) in &step.headers {
            self.headers.push(name, |out| value.render(ctx, out));
        }
        self.body.clear();
        step.body.render(ctx, &mut self.body);
    }

    /// The parts of `step`'s request, as [`Rendered::step`] rendered it.
    pub(crate) fn step_parts<'a>(
        &'a self,
        target: &'a Target,
        step: &'a Step,
        who: &Who<'a>,
    ) -> Parts<'a> {
        Parts {
            method: &step.method,
            scheme: target.scheme.as_str(),
            authority: &target.authority,
            path: &self.path,
            headers: &self.headers,
            agent: self.agent(who),
            cookie: who.cookie,
            body: &self.body,
            length: wants_length(&step.method, &self.body) && !self.headers.has("content-length"),
        }
    }

    /// The user's agent, unless the request's headers name one.
    fn agent<'a>(&self, who: &Who<'a>) -> Option<&'a str> {
        (!self.headers.has("user-agent")).then(|| who.agent.unwrap_or(USER_AGENT))
    }

    /// Renders a GET of an asset a page's document named: its path and
    /// query, no headers of its own, no body.
    pub(crate) fn asset(&mut self, path: &str) {
        self.path.clear();
        self.path.extend_from_slice(path.as_bytes());
        self.headers.clear();
        self.body.clear();
    }

    /// The parts of an asset's GET, as [`Rendered::asset`] rendered it,
    /// to `scheme://authority`; the user's cookies go only to the
    /// target's origin.
    pub(crate) fn asset_parts<'a>(
        &'a self,
        scheme: &'a str,
        authority: &'a str,
        who: &Who<'a>,
        same_origin: bool,
    ) -> Parts<'a> {
        Parts {
            method: &Method::GET,
            scheme,
            authority,
            path: &self.path,
            headers: &self.headers,
            agent: self.agent(who),
            cookie: who.cookie.filter(|_| same_origin),
            body: &self.body,
            length: false,
        }
    }

    /// The path and query last rendered.
    pub(crate) fn path(&self) -> &[u8] {
        &self.path
    }

    /// Renders a replayed request: its path under `target`'s base path,
    /// no headers of its own and no body (logs keep none).
    pub(crate) fn replay(&mut self, target: &Target, req: &ReplayRequest) {
        self.path.clear();
        self.path.extend_from_slice(target.base_path.as_bytes());
        self.headers.clear();
        self.body.clear();
        let Some(plan::Recorded(rec)) = &req.recorded else {
            self.path.extend_from_slice(req.path.as_bytes());
            return;
        };
        self.path.extend_from_slice(req.path.as_bytes());
        for (name, value) in &rec.headers {
            self.headers
                .push(name, |out| out.extend_from_slice(value.as_bytes()));
        }
        self.body.extend_from_slice(&rec.body);
    }

    /// A recorded request's values that came from a response, replaced by
    /// the replayed responses' (`value` of each variable the session has),
    /// each written as its place wants it: escaped in the path, the form
    /// or the JSON body, as it is in a header.
    pub(crate) fn substitute(
        &mut self,
        target: &Target,
        rec: &plan::RecordedExchange,
        value: &dyn Fn(usize) -> Option<String>,
    ) {
        let base = target.base_path.len();
        for (var, text) in &rec.uses {
            let Some(new) = value(*var) else { continue };
            if new == *text {
                continue;
            }
            let path = &self.path[base..];
            if let Some(replaced) = replace(path, text.as_bytes(), &escape_url(&new)) {
                self.path.truncate(base);
                self.path.extend_from_slice(&replaced);
            }
            let in_body = match rec.body_kind {
                plan::BodyKind::Form => {
                    form_urlencoded::byte_serialize(new.as_bytes()).collect::<String>()
                }
                plan::BodyKind::Json => {
                    let quoted = serde_json::Value::String(new.clone()).to_string();
                    quoted[1..quoted.len() - 1].to_string()
                }
                plan::BodyKind::Raw => new.clone(),
            };
            if let Some(replaced) = replace(&self.body, text.as_bytes(), in_body.as_bytes()) {
                self.body = replaced;
            }
            let plain: String = new.chars().filter(|c| !c.is_control()).collect();
            self.headers.replace(text.as_bytes(), plain.as_bytes());
        }
    }

    /// The parts of a replayed request, as [`Rendered::replay`] rendered
    /// it, with the user agent the log recorded (throng's when it has none).
    pub(crate) fn replay_parts<'a>(
        &'a self,
        target: &'a Target,
        req: &'a ReplayRequest,
        cookie: Option<&'a str>,
    ) -> Parts<'a> {
        Parts {
            method: &req.method,
            scheme: target.scheme.as_str(),
            authority: &target.authority,
            path: &self.path,
            headers: &self.headers,
            agent: Some(req.user_agent.as_deref().unwrap_or(USER_AGENT)),
            cookie,
            body: &self.body,
            length: wants_length(&req.method, &self.body),
        }
    }

    /// Renders a redirect's `hop` from `first`, the parts of the request
    /// it redirects: the headers `hop` lets through (`secret` says which
    /// hold secrets) and the body, if it goes again.
    pub(crate) fn hop(&mut self, hop: &Hop<'_>, first: &Parts<'_>, secret: &dyn Fn(&str) -> bool) {
        self.path.clear();
        self.path.extend_from_slice(hop.path.as_bytes());
        self.headers.clear();
        for (name, value) in first.headers.iter() {
            if hop.carries(name, secret) {
                self.headers.push(name, |out| out.extend_from_slice(value));
            }
        }
        self.body.clear();
        if hop.keep_body {
            self.body.extend_from_slice(first.body);
        }
    }

    /// The parts of a redirect's hop, as [`Rendered::hop`] rendered it:
    /// the user's cookies go only to the target's origin.
    pub(crate) fn hop_parts<'a>(&'a self, hop: &'a Hop<'a>, who: &Who<'a>) -> Parts<'a> {
        Parts {
            method: hop.method,
            scheme: hop.scheme,
            authority: hop.authority,
            path: &self.path,
            headers: &self.headers,
            agent: self.agent(who),
            cookie: who.cookie.filter(|_| hop.same_origin),
            body: &self.body,
            length: hop.keep_body && wants_length(hop.method, &self.body),
        }
    }
}

/// A redirect's request: where it goes and what of the first request it
/// carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hop<'a> {
    /// The method (see [`crate::redirect::Hop`]).
    pub(crate) method: &'a Method,
    /// `http` or `https`.
    pub(crate) scheme: &'a str,
    /// The `Host` header: host, and port unless the scheme's default.
    pub(crate) authority: &'a str,
    /// Path and query.
    pub(crate) path: &'a str,
    /// Whether the body is sent again.
    pub(crate) keep_body: bool,
    /// Whether the hop stays on the target's origin. If not, no header
    /// whose value is a secret goes with it (`secret` says which), and no
    /// cookies, as browsers do.
    pub(crate) same_origin: bool,
}

impl<'a> Hop<'a> {
    /// The request of redirect `next`.
    pub(crate) fn to(next: &'a crate::redirect::Hop, same_origin: bool) -> Hop<'a> {
        let url = &next.url;
        Hop {
            method: &next.method,
            scheme: url.scheme(),
            authority: &url[url::Position::BeforeHost..url::Position::AfterPort],
            path: &url[url::Position::BeforePath..url::Position::AfterQuery],
            keep_body: next.keep_body,
            same_origin,
        }
    }

    /// Whether the first request's header `name` goes with this hop.
    fn carries(&self, name: &str, secret: &dyn Fn(&str) -> bool) -> bool {
        if name.eq_ignore_ascii_case("content-length") {
            return false;
        }
        // A step's own `Host` (a virtual host on the target) stays on the
        // target's origin; elsewhere the hop's host is the one.
        if name.eq_ignore_ascii_case("host") {
            return self.same_origin;
        }
        if !self.keep_body && name.eq_ignore_ascii_case("content-type") {
            return false;
        }
        self.same_origin || !secret(name)
    }
}

/// The requests of a scenario's steps that do not depend on the user, in
/// a protocol's form, rendered once per run (per worker), indexed like the
/// flows' steps (flow, step).
#[derive(Debug, Clone)]
pub(crate) struct Prepared<R> {
    statics: Vec<Vec<Option<R>>>,
}

impl<R: Wire> Prepared<R> {
    /// Renders every static step of `scenario` for `target`.
    pub(crate) fn new(scenario: &Scenario, target: &Target) -> Prepared<R> {
        let mut rng = fastrand::Rng::with_seed(0);
        let mut rendered = Rendered::default();
        let statics = scenario
            .flows
            .iter()
            .map(|flow| {
                flow.steps
                    .iter()
                    .map(|step| {
                        if !step.is_static() {
                            return None;
                        }
                        rendered.step(target, step, &mut RenderCtx::anonymous(&mut rng));
                        let mut req = R::default();
                        let parts = rendered.step_parts(target, step, &Who::default());
                        req.render(&parts).ok().map(|()| req)
                    })
                    .collect()
            })
            .collect();
        Prepared { statics }
    }

    /// Step `step` of flow `flow`, rendered once, if it does not depend on
    /// the user.
    pub(crate) fn get(&self, flow: usize, step: usize) -> Option<&R> {
        self.statics.get(flow)?.get(step)?.as_ref()
    }
}
