//! Requests on the wire: serialized once per run where a step is static,
//! rendered into a reused buffer where it depends on the user.

use bytes::Bytes;
use plan::{RenderCtx, ReplayRequest, Scenario, Step, Target};

/// The User-Agent sent unless a step sets its own.
pub const USER_AGENT: &str = concat!("throng/", env!("CARGO_PKG_VERSION"));

/// A request ready for a connection.
#[derive(Debug)]
pub enum Outgoing<'a> {
    /// HTTP/1.1: the exact bytes to write.
    H1 {
        /// Request line, headers and body.
        bytes: &'a [u8],
        /// Whether the response has no body whatever its headers say.
        head: bool,
    },
    /// HTTP/2: the parts to frame (cloned per send, so a stale connection
    /// can be retried).
    H2 {
        /// Method, URI and headers (boxed: HTTP/1.1 requests, the common
        /// case, should not carry their size).
        parts: Box<http::request::Parts>,
        /// The body.
        body: Bytes,
    },
}

/// Per-step data prepared once for the whole run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The HTTP/1.1 bytes of each step that does not depend on the user,
    /// indexed like the flows' steps (flow, step).
    pub static_h1: Vec<Vec<Option<Bytes>>>,
}

impl Prepared {
    /// Serializes every static step of `scenario` for `target`.
    pub fn new(scenario: &Scenario, target: &Target) -> Prepared {
        let mut rng = fastrand::Rng::with_seed(0);
        let static_h1 = scenario
            .flows
            .iter()
            .map(|flow| {
                flow.steps
                    .iter()
                    .map(|step| {
                        step.is_static().then(|| {
                            let mut ctx = RenderCtx {
                                vars: &[],
                                vu: 0,
                                iteration: 0,
                                rng: &mut rng,
                                now_ms: 0,
                            };
                            let mut out = Vec::new();
                            let who = Who::default();
                            render_h1(target, step, &mut ctx, &who, &mut Vec::new(), &mut out);
                            Bytes::from(out)
                        })
                    })
                    .collect()
            })
            .collect();
        Prepared { static_h1 }
    }
}

fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The user's `User-Agent`, unless the step sets its own.
fn user_agent_line(out: &mut Vec<u8>, step: &Step, who: &Who<'_>) {
    if !has_header(step, "user-agent") {
        header_line(
            out,
            "User-Agent",
            who.agent.unwrap_or(USER_AGENT).as_bytes(),
        );
    }
}

fn has_header(step: &Step, name: &str) -> bool {
    step.headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn wants_length(step: &Step, body: &[u8]) -> bool {
    !body.is_empty() || matches!(step.method.as_str(), "POST" | "PUT" | "PATCH")
}

/// What a request says about its user besides the step: cookies and the
/// user agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Who<'a> {
    /// The `Cookie` header's value, if the user has cookies.
    pub cookie: Option<&'a str>,
    /// The user's `User-Agent` (throng's when `None`).
    pub agent: Option<&'a str>,
}

/// Renders a step's HTTP/1.1 request into `out` (cleared first), using
/// `body` as scratch. Adds `Host`, `User-Agent`, `Content-Length` and the
/// user's cookies unless the step sets them.
pub fn render_h1(
    target: &Target,
    step: &Step,
    ctx: &mut RenderCtx<'_>,
    who: &Who<'_>,
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    body.clear();
    step.body.render(ctx, body);
    out.clear();
    out.extend_from_slice(step.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.base_path.as_bytes());
    step.path.render(ctx, out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !has_header(step, "host") {
        header_line(out, "Host", target.authority.as_bytes());
    }
    user_agent_line(out, step, who);
    for (name, value) in &step.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        value.render(ctx, out);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(cookie) = who.cookie.filter(|c| !c.is_empty()) {
        header_line(out, "Cookie", cookie.as_bytes());
    }
    if wants_length(step, body) && !has_header(step, "content-length") {
        let mut n = itoa_buf(body.len());
        header_line(out, "Content-Length", n.as_bytes_mut());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A small stack buffer for a decimal number.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: usize) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

/// Builds a step's HTTP/2 request.
pub fn render_h2(
    target: &Target,
    step: &Step,
    ctx: &mut RenderCtx<'_>,
    who: &Who<'_>,
) -> Result<Outgoing<'static>, http::Error> {
    let scheme = target.scheme.as_str();
    let mut path = Vec::new();
    step.path.render(ctx, &mut path);
    let uri = format!(
        "{scheme}://{}{}{}",
        target.authority,
        target.base_path,
        String::from_utf8_lossy(&path)
    );
    let mut builder = http::Request::builder()
        .method(step.method.clone())
        .uri(uri);
    for (name, value) in &step.headers {
        if !name.eq_ignore_ascii_case("host") {
            let mut v = Vec::new();
            value.render(ctx, &mut v);
            builder = builder.header(name.as_str(), v);
        }
    }
    if !has_header(step, "user-agent") {
        builder = builder.header("user-agent", who.agent.unwrap_or(USER_AGENT));
    }
    if let Some(cookie) = who.cookie.filter(|c| !c.is_empty()) {
        builder = builder.header("cookie", cookie);
    }
    let mut body = Vec::new();
    step.body.render(ctx, &mut body);
    let (parts, ()) = builder.body(())?.into_parts();
    Ok(Outgoing::H2 {
        parts: Box::new(parts),
        body: Bytes::from(body),
    })
}

/// Renders a replayed request's HTTP/1.1 bytes into `out` (cleared
/// first): its method and path under the target's base path, the target's
/// `Host`, and the user agent the log recorded (throng's when it has none).
pub fn render_replay_h1(target: &Target, req: &ReplayRequest, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.base_path.as_bytes());
    out.extend_from_slice(req.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    header_line(out, "Host", target.authority.as_bytes());
    let agent = req.user_agent.as_deref().unwrap_or(USER_AGENT);
    header_line(out, "User-Agent", agent.as_bytes());
    if matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
        header_line(out, "Content-Length", b"0");
    }
    out.extend_from_slice(b"\r\n");
}

/// Builds a replayed request for HTTP/2.
pub fn render_replay_h2(
    target: &Target,
    req: &ReplayRequest,
) -> Result<Outgoing<'static>, http::Error> {
    let uri = format!(
        "{}://{}{}{}",
        target.scheme.as_str(),
        target.authority,
        target.base_path,
        req.path
    );
    let agent = req.user_agent.as_deref().unwrap_or(USER_AGENT);
    let (parts, ()) = http::Request::builder()
        .method(req.method.clone())
        .uri(uri)
        .header("user-agent", agent)
        .body(())?
        .into_parts();
    Ok(Outgoing::H2 {
        parts: Box::new(parts),
        body: Bytes::new(),
    })
}

/// A redirect's request: where it goes and what of the step it carries.
#[derive(Debug, Clone, Copy)]
pub struct HopRequest<'a> {
    /// The method (see [`crate::redirect::Hop`]).
    pub method: &'a http::Method,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The `Host` header: host, and port unless the scheme's default.
    pub authority: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// The body, when it is sent again (307, 308); else empty.
    pub body: &'a [u8],
    /// Whether the body is sent again.
    pub keep_body: bool,
    /// Whether the hop stays on the target's origin. If not, no header
    /// whose value is a secret goes with it (`secret` says which), and no
    /// cookies, as browsers do.
    pub same_origin: bool,
}

impl HopRequest<'_> {
    /// Whether the step's header `name` goes with this hop.
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

/// Renders a redirect hop's HTTP/1.1 request into `out` (cleared first):
/// the step's headers (those [`HopRequest`] lets through), rendered again
/// for the user, and the user's cookies on the same origin.
pub fn render_hop_h1(
    hop: &HopRequest<'_>,
    step: &Step,
    ctx: &mut RenderCtx<'_>,
    who: &Who<'_>,
    secret: &dyn Fn(&str) -> bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(hop.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(hop.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !(hop.same_origin && has_header(step, "host")) {
        header_line(out, "Host", hop.authority.as_bytes());
    }
    user_agent_line(out, step, who);
    for (name, value) in &step.headers {
        if hop.carries(name, secret) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            value.render(ctx, out);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(cookie) = who.cookie.filter(|c| hop.same_origin && !c.is_empty()) {
        header_line(out, "Cookie", cookie.as_bytes());
    }
    if hop.keep_body
        && (!hop.body.is_empty() || matches!(hop.method.as_str(), "POST" | "PUT" | "PATCH"))
    {
        let mut n = itoa_buf(hop.body.len());
        header_line(out, "Content-Length", n.as_bytes_mut());
    }
    out.extend_from_slice(b"\r\n");
    if hop.keep_body {
        out.extend_from_slice(hop.body);
    }
}

/// Builds a redirect hop's HTTP/2 request (see [`render_hop_h1`]).
pub fn render_hop_h2(
    hop: &HopRequest<'_>,
    step: &Step,
    ctx: &mut RenderCtx<'_>,
    who: &Who<'_>,
    secret: &dyn Fn(&str) -> bool,
) -> Result<Outgoing<'static>, http::Error> {
    let uri = format!("{}://{}{}", hop.scheme, hop.authority, hop.path);
    let mut builder = http::Request::builder().method(hop.method.clone()).uri(uri);
    for (name, value) in &step.headers {
        // HTTP/2 names the host in the URI, as the step's request did.
        if hop.carries(name, secret) && !name.eq_ignore_ascii_case("host") {
            let mut v = Vec::new();
            value.render(ctx, &mut v);
            builder = builder.header(name.as_str(), v);
        }
    }
    if !has_header(step, "user-agent") {
        builder = builder.header("user-agent", who.agent.unwrap_or(USER_AGENT));
    }
    if let Some(cookie) = who.cookie.filter(|c| hop.same_origin && !c.is_empty()) {
        builder = builder.header("cookie", cookie);
    }
    let (parts, ()) = builder.body(())?.into_parts();
    let body = if hop.keep_body {
        Bytes::copy_from_slice(hop.body)
    } else {
        Bytes::new()
    };
    Ok(Outgoing::H2 {
        parts: Box::new(parts),
        body,
    })
}

/// The body of a request built for a connection.
pub fn body_of<'a>(req: &'a Outgoing<'_>) -> &'a [u8] {
    match req {
        Outgoing::H1 { bytes, .. } => bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(&[], |i| &bytes[i + 4..]),
        Outgoing::H2 { body, .. } => body,
    }
}
