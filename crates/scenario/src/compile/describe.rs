//! `throng validate`'s description of a compiled scenario: its flows,
//! blocks and steps, clients, retries and recovery check.

use plan::{
    Backoff, Connections, ExtractFrom, HttpVersion, Jitter, Node, OnFail, OnMissing, PickFrom,
    Retry, Step, Think,
};

use super::{redacted, Compiled};

impl Compiled {
    /// A compact description of what will run, for `throng validate` and
    /// snapshot tests.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let s = &self.scenario;
        let mut out = String::new();
        let _ = writeln!(out, "scenario {:?} -> {}", s.name, s.target.url());
        let _ = writeln!(
            out,
            "  {}, cookies {}",
            match s.version {
                HttpVersion::Http1 => "HTTP/1.1",
                HttpVersion::Http2 => "HTTP/2",
            },
            if s.cookies { "on" } else { "off" }
        );
        for f in &s.flows {
            let _ = writeln!(out, "  flow {:?} weight {}", f.name, f.weight);
            self.describe_nodes(&mut out, f, &f.body, 4);
        }
        if let Some(clients) = describe_clients(&s.clients) {
            let _ = writeln!(out, "  clients: {clients}");
        }
        for sc in &self.scrapes {
            let _ = writeln!(
                out,
                "  scrape {} every {} (timeout {}, at most {} bytes{})",
                sc.url(),
                plan::format_duration(sc.interval),
                plan::format_duration(sc.timeout),
                sc.max_size,
                sc.matcher
                    .as_ref()
                    .map(|m| format!(", metrics matching {:?}", m.as_str()))
                    .unwrap_or_default()
            );
        }
        if let Some(r) = &self.recovery {
            let by = r.by_s.map_or(" by the end of the run".to_string(), |b| {
                format!(" within {b}s of its end")
            });
            let _ = writeln!(
                out,
                "  recovery: goodput back within {}% of its level after the trigger {}s-{}s{by}",
                r.within * 100.0,
                r.from_s,
                r.to_s
            );
        }
        out
    }

    /// A flow's steps and blocks, each nested block `indent` further in.
    fn describe_nodes(&self, out: &mut String, flow: &plan::Flow, nodes: &[Node], indent: usize) {
        use std::fmt::Write as _;
        let pad = " ".repeat(indent);
        let name = |slot: usize| self.var_names.get(slot).map_or("?", String::as_str);
        for node in nodes {
            match node {
                Node::Step(i) => {
                    if let Some(st) = flow.steps.get(*i) {
                        self.describe_step(out, st, indent);
                    }
                }
                Node::Repeat { min, max, body, .. } => {
                    let times = if min == max {
                        format!("{min}")
                    } else {
                        format!("{min} to {max}")
                    };
                    let _ = writeln!(out, "{pad}repeat {times} times:");
                    self.describe_nodes(out, flow, body, indent + 2);
                }
                Node::ForEach {
                    list,
                    item,
                    max,
                    body,
                    ..
                } => {
                    let _ = writeln!(
                        out,
                        "{pad}for each {} of {} (at most {max}):",
                        name(*item),
                        name(*list)
                    );
                    self.describe_nodes(out, flow, body, indent + 2);
                }
                Node::While {
                    cond, max, body, ..
                } => {
                    let _ = writeln!(out, "{pad}while {} (at most {max}):", cond.source());
                    self.describe_nodes(out, flow, body, indent + 2);
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    let _ = writeln!(out, "{pad}if {}:", cond.source());
                    self.describe_nodes(out, flow, then, indent + 2);
                    if !otherwise.is_empty() {
                        let _ = writeln!(out, "{pad}else:");
                        self.describe_nodes(out, flow, otherwise, indent + 2);
                    }
                }
                Node::Page(page) => {
                    let mut how = vec![format!("{} connections", page.connections)];
                    if page.from_html {
                        how.push("and the assets its document names".into());
                    }
                    if page.cache {
                        how.push("fresh assets from the session's cache".into());
                    }
                    let _ = writeln!(
                        out,
                        "{pad}page {:?} ({}):",
                        self.scenario.endpoints[page.endpoint],
                        how.join(", ")
                    );
                    if let Some(d) = page.document.and_then(|d| flow.steps.get(d)) {
                        let _ = writeln!(out, "{pad}  the document:");
                        self.describe_step(out, d, indent + 4);
                    }
                    let _ = writeln!(
                        out,
                        "{pad}  {}:",
                        if page.document.is_some() {
                            "then, at once"
                        } else {
                            "at once"
                        }
                    );
                    for a in page.assets.iter().filter_map(|a| flow.steps.get(*a)) {
                        self.describe_step(out, a, indent + 4);
                    }
                    if page.from_html {
                        let _ = writeln!(out, "{pad}    GET each asset the document names");
                    }
                }
                Node::Live { step, live } => self.describe_live(out, flow, *step, live, indent),
                Node::Random { arms } => {
                    let total: f64 = arms.iter().map(|(w, _)| w).sum();
                    for (i, (w, body)) in arms.iter().enumerate() {
                        let word = if i == 0 { "at random" } else { "or" };
                        let _ = writeln!(out, "{pad}{word}, {:.0}%:", w / total * 100.0);
                        self.describe_nodes(out, flow, body, indent + 2);
                    }
                }
            }
        }
    }

    /// A live step: the step that opens the connection, and what is done
    /// on it.
    fn describe_live(
        &self,
        out: &mut String,
        flow: &plan::Flow,
        step: usize,
        live: &plan::Live,
        indent: usize,
    ) {
        use std::fmt::Write as _;
        let Some(st) = flow.steps.get(step) else {
            return;
        };
        let pad = " ".repeat(indent);
        let name = |slot: usize| self.var_names.get(slot).map_or("?", String::as_str);
        let ws = match live {
            plan::Live::Ws(ws) => ws,
            plan::Live::Sse(sse) => {
                let mut until = vec!["the stream's end".to_string()];
                if let Some(n) = sse.events {
                    until.push(format!("{n} events"));
                }
                if let Some(p) = sse.period {
                    until.push(plan::format_duration(p));
                }
                let _ = writeln!(
                    out,
                    "{pad}event stream, until {}; reconnects {} times with Last-Event-ID:",
                    until.join(" or "),
                    sse.reconnects
                );
                self.describe_step(out, st, indent + 2);
                return;
            }
        };
        let _ = writeln!(out, "{pad}websocket:");
        self.describe_step(out, st, indent + 2);
        if !ws.subprotocols.is_empty() {
            let _ = writeln!(out, "{pad}  subprotocols: {}", ws.subprotocols.join(", "));
        }
        let _ = writeln!(out, "{pad}  keeps up to {} early messages", ws.queue);
        for a in &ws.actions {
            let _ = writeln!(out, "{pad}  {}", describe_ws_action(a, &name));
        }
    }

    /// One step of `describe`: request, endpoint, think time, timeout,
    /// retry policy, headers (secrets redacted), body, checks, extracts.
    fn describe_step(&self, out: &mut String, st: &Step, indent: usize) {
        use std::fmt::Write as _;
        let s = &self.scenario;
        let pad = " ".repeat(indent);
        let _ = write!(
            out,
            "{pad}{} {} as {:?}",
            st.method,
            st.path.source(),
            s.endpoints[st.endpoint]
        );
        if st.think != Think::None {
            let _ = write!(out, ", think {}", describe_think(&st.think));
        }
        if let Some(t) = st.timeout {
            let _ = write!(out, ", timeout {}", plan::format_duration(t));
        }
        if st.on_missing == OnMissing::Skip {
            let _ = write!(out, ", skipped without its variables");
        }
        let _ = writeln!(out);
        if let Some(r) = &st.retry {
            let _ = writeln!(out, "{pad}  retry: {}", describe_retry(r));
        }
        for (n, v) in &st.headers {
            let shown = if s.is_secret_header(n) {
                redacted(v.source())
            } else {
                v.source().to_string()
            };
            let _ = writeln!(out, "{pad}  {n}: {shown}");
        }
        if !st.body.source().is_empty() {
            let _ = writeln!(out, "{pad}  body: {}", st.body.source());
        }
        for c in &st.checks {
            let stop = if c.on_fail == OnFail::StopFlow {
                " (stops the flow)"
            } else {
                ""
            };
            let _ = writeln!(out, "{pad}  check {:?}{stop}", s.checks[c.id]);
        }
        for e in &st.extract {
            let name = self.var_names.get(e.slot).map_or("?", String::as_str);
            let from = describe_from(&e.from);
            let pick = match e.pick {
                PickFrom::First => "",
                PickFrom::Random => ", one at random",
                PickFrom::All => ", every match (a list)",
            };
            let _ = writeln!(out, "{pad}  extract {name} from {from}{pick}");
        }
    }
}

/// Where an extract takes its value from.
fn describe_from(from: &ExtractFrom) -> String {
    match from {
        ExtractFrom::Json(p) => format!("json {p}"),
        ExtractFrom::Regex(re, g) => format!("regex /{re}/ group {g}"),
        ExtractFrom::Header(h) => format!("header {h}"),
        ExtractFrom::Cookie(c) => format!("cookie {c}"),
        ExtractFrom::Css(_, attr) => format!(
            "css selector{}",
            attr.as_ref()
                .map(|a| format!(", attribute {a}"))
                .unwrap_or_default()
        ),
    }
}

/// What kind of clients a scenario's users are, unless the default.
fn describe_clients(c: &plan::Clients) -> Option<String> {
    if c == &plan::Clients::default() {
        return None;
    }
    let mut parts = Vec::new();
    if let (Some(first), Some(last)) = (c.source_ips.first(), c.source_ips.last()) {
        parts.push(format!(
            "from {} source address(es) {first}..{last}",
            c.source_ips.len()
        ));
    }
    parts.push(
        match c.connections {
            Connections::KeepAlive => "keep-alive connections",
            Connections::PerSession => "a new connection per session",
            Connections::PerRequest => "a new connection per request",
        }
        .to_string(),
    );
    if let Some(slow) = c.slow {
        parts.push(format!(
            "{}% slow at {} B/s",
            slow.fraction * 100.0,
            slow.bytes_per_second
        ));
    }
    if !c.user_agents.is_empty() {
        parts.push(format!("{} user agents", c.user_agents.len()));
    }
    Some(parts.join(", "))
}

fn describe_think(t: &Think) -> String {
    use plan::format_duration as f;
    match t {
        Think::None => "none".into(),
        Think::Constant(d) => f(*d),
        Think::Uniform { min, max } => format!("uniform {}..{}", f(*min), f(*max)),
        Think::Exponential { mean } => format!("exponential mean {}", f(*mean)),
        Think::LogNormal { median, sigma } => {
            format!("lognormal median {} sigma {sigma}", f(*median))
        }
        Think::Pareto { min, alpha } => format!("pareto min {} alpha {alpha}", f(*min)),
    }
}

/// A retry policy in a line, for `throng validate`.
fn describe_retry(r: &Retry) -> String {
    let mut on = Vec::new();
    for (yes, name) in [
        (r.on.http_5xx, "5xx"),
        (r.on.timeout, "timeout"),
        (r.on.connect, "connect"),
        (r.on.reset, "reset"),
    ] {
        if yes {
            on.push(name);
        }
    }
    let f = plan::format_duration;
    let backoff = match r.backoff {
        Backoff::None => "at once".to_string(),
        Backoff::Fixed => format!("every {}", f(r.base)),
        Backoff::Exponential => format!("backoff {} doubling to {}", f(r.base), f(r.max)),
    };
    let jitter = match (r.backoff, r.jitter) {
        (Backoff::None, _) => "",
        (_, Jitter::None) => ", no jitter",
        (_, Jitter::Full) => ", full jitter",
        (_, Jitter::Equal) => ", equal jitter",
    };
    let budget = r.budget.map_or("no budget".to_string(), |b| {
        format!("budget {}%", b * 100.0)
    });
    let deadline = r
        .deadline
        .map_or(String::new(), |d| format!(", deadline {}", f(d)));
    format!(
        "{} attempts on {}, {backoff}{jitter}, {budget}{deadline}",
        r.attempts,
        on.join("/")
    )
}

/// One action of a WebSocket session, on one line.
fn describe_ws_action<'n>(a: &plan::WsAction, name: &dyn Fn(usize) -> &'n str) -> String {
    use plan::{format_duration as d, WsAction, WsExpect, WsKind, WsMessage};
    let message = |m: &WsMessage| match m.kind {
        WsKind::Text => format!("{:?}", m.text.source()),
        WsKind::Binary => format!("{} binary bytes", m.binary.len()),
    };
    let expect = |e: &WsExpect| {
        let what = match &e.matcher {
            Some(_) => format!("a message where {}", e.what),
            None => "any message".to_string(),
        };
        let mut out = format!("{what} within {}", d(e.timeout));
        for x in &e.extract {
            out.push_str(&format!(", {} <- {}", name(x.slot), describe_from(&x.from)));
        }
        out
    };
    match a {
        WsAction::Send(m) => format!("send {}", message(m)),
        WsAction::Expect(e) => format!("expect {}", expect(e)),
        WsAction::Hold(t) => format!("hold {}", d(*t)),
        WsAction::Every {
            interval,
            period,
            send,
            expect: reply,
        } => {
            let mut out = format!(
                "every {} for {}: send {}",
                d(*interval),
                d(*period),
                message(send)
            );
            if let Some(e) = reply {
                out.push_str(&format!(", expect {}", expect(e)));
            }
            out
        }
        WsAction::Close(code) => format!("close {code}"),
    }
}
