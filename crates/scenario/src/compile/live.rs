//! Steps that open a live connection: `ws:` with its `session` of
//! actions, or `sse:` with how long to follow the stream, compiled into a
//! [`Node::Live`] around the step that opens it.

use base64::Engine as _;
use plan::{
    Context, Live, Node, Template, WsAction, WsExpect, WsKind, WsMessage, WsSession,
    DEFAULT_EXPECT_TIMEOUT, DEFAULT_WS_QUEUE,
};
use serde_saphyr::Spanned;

use super::{Compiler, FlowCx};
use crate::diagnostic::{Diagnostic, Pos};
use crate::raw::{RawCheck, RawStep, RawWsAction, RawWsEvery, RawWsExpect};

/// Most messages a session may keep for its `expect`s.
const MAX_WS_QUEUE: usize = 65_536;

/// The keys of a `ws` step that belong to other steps, and why.
fn not_for_ws(s: &RawStep) -> Option<&'static str> {
    [
        (s.body.is_some(), "body"),
        (s.json.is_some(), "json"),
        (!s.form.is_empty(), "form"),
        (s.retry.is_some(), "retry"),
        (!s.checks.is_empty(), "checks"),
        (!s.extract.is_empty(), "extract"),
    ]
    .into_iter()
    .find_map(|(set, key)| set.then_some(key))
}

/// A message to send: one of `send`, `send_json`, `send_binary`.
struct RawSend<'r> {
    text: Option<&'r Spanned<String>>,
    json: Option<&'r serde_json::Value>,
    binary: Option<&'r Spanned<String>>,
}

impl RawSend<'_> {
    fn count(&self) -> usize {
        usize::from(self.text.is_some())
            + usize::from(self.json.is_some())
            + usize::from(self.binary.is_some())
    }
}

impl Compiler<'_> {
    /// `ws: PATH` with its `session`: the step that opens the socket
    /// (its path, headers, name, upgrade `timeout` and `think`), and the
    /// actions run on it.
    pub(super) fn ws(
        &self,
        item: &Spanned<RawStep>,
        cx: &mut FlowCx<'_>,
    ) -> Result<Node, Diagnostic> {
        let s = &item.value;
        let at = Pos::of(item);
        self.request_line(item)?;
        if let Some(key) = not_for_ws(s) {
            return Err(self.err(
                at,
                format!("a `ws` step sends no HTTP body and reads no response, so it takes no `{key}`"),
                Some(
                    "send messages and check replies in its `session`: `- send: ...`, `- expect: { json: ... }`"
                        .into(),
                ),
            ));
        }
        let Some(raw_actions) = s.session.as_deref().filter(|a| !a.is_empty()) else {
            return Err(self.err(
                at,
                "the `ws` step has no `session`",
                Some(
                    "give it the actions to run on the socket, e.g.\n  - ws: /chat\n    session:\n      - send: hello\n      - expect: { body_contains: hello }\n      - hold: 10s"
                        .into(),
                ),
            ));
        };
        let (queue, subprotocols) = self.ws_options(s, at)?;
        let mut step = self.live_step(item, cx)?;
        let mut actions = Vec::with_capacity(raw_actions.len());
        for (i, raw) in raw_actions.iter().enumerate() {
            let action = self.ws_action(raw, cx)?;
            if matches!(action, WsAction::Close(_)) && i + 1 < raw_actions.len() {
                return Err(self.err(
                    Pos::of(&raw_actions[i + 1]),
                    "the session closed its socket before this action",
                    Some(
                        "put `close` last (a session that ends without one closes with 1000)"
                            .into(),
                    ),
                ));
            }
            actions.push(action);
        }
        // What the session's messages read before it sets them makes
        // the step need them, as its path does.
        let own: Vec<usize> = actions
            .iter()
            .flat_map(|a| match a {
                WsAction::Expect(e) => e.extract.iter().map(|x| x.slot).collect(),
                WsAction::Every {
                    expect: Some(e), ..
                } => e.extract.iter().map(|x| x.slot).collect(),
                _ => Vec::new(),
            })
            .collect();
        for a in &actions {
            let message = match a {
                WsAction::Send(m) | WsAction::Every { send: m, .. } => m,
                _ => continue,
            };
            step.reads.extend(
                message
                    .text
                    .slots()
                    .map(|(slot, _)| slot)
                    .filter(|s| !own.contains(s)),
            );
        }
        step.reads.sort_unstable();
        step.reads.dedup();
        cx.steps.push(step);
        Ok(Node::Live {
            step: cx.steps.len() - 1,
            live: Box::new(Live::Ws(WsSession {
                subprotocols,
                actions,
                queue,
            })),
        })
    }

    /// `sse: PATH`: the step (its path, headers, name, timeout for the
    /// response's head, and its checks and extracts, applied to each
    /// event) and how long the stream is followed.
    pub(super) fn sse(
        &self,
        item: &Spanned<RawStep>,
        cx: &mut FlowCx<'_>,
    ) -> Result<Node, Diagnostic> {
        let s = &item.value;
        let at = Pos::of(item);
        self.request_line(item)?;
        let not_for_sse = [
            (s.body.is_some(), "body"),
            (s.json.is_some(), "json"),
            (!s.form.is_empty(), "form"),
            (s.retry.is_some(), "retry"),
        ]
        .into_iter()
        .find_map(|(set, key)| set.then_some(key));
        if let Some(key) = not_for_sse {
            return Err(self.err(
                at,
                format!("an `sse` step subscribes with a GET, so it takes no `{key}`"),
                Some("to resume a broken stream, use `reconnect: N`".into()),
            ));
        }
        let period = s.period.as_ref().map(|p| self.positive(p)).transpose()?;
        if s.events == Some(0) {
            return Err(self.err(at, "`events` must be at least 1", None));
        }
        let mut step = self.live_step(item, cx)?;
        // Each event is read for the checks and extracts.
        step.needs.body = true;
        cx.steps.push(step);
        Ok(Node::Live {
            step: cx.steps.len() - 1,
            live: Box::new(Live::Sse(plan::SseStream {
                events: s.events,
                period,
                reconnects: s.reconnect.unwrap_or(0),
            })),
        })
    }

    /// The step that opens a live connection: as any step, but never
    /// retried (every attempt counts as it went).
    fn live_step(
        &self,
        item: &Spanned<RawStep>,
        cx: &mut FlowCx<'_>,
    ) -> Result<plan::Step, Diagnostic> {
        let mut step = self.step(
            item,
            &mut cx.scope,
            cx.slots,
            &cx.inherited,
            cx.endpoints,
            cx.check_names,
        )?;
        step.retry = None;
        Ok(step)
    }

    /// A `ws` step's `queue` and `subprotocols`, checked.
    fn ws_options(&self, s: &RawStep, at: Pos) -> Result<(usize, Vec<String>), Diagnostic> {
        let queue = match s.queue {
            Some(0) => {
                return Err(self.err(
                    at,
                    "`queue` must keep at least one message",
                    Some(format!("the default is {DEFAULT_WS_QUEUE}")),
                ))
            }
            Some(n) if n > MAX_WS_QUEUE => {
                return Err(self.err(
                    at,
                    format!("`queue` keeps at most {MAX_WS_QUEUE} messages"),
                    None,
                ))
            }
            Some(n) => n,
            None => DEFAULT_WS_QUEUE,
        };
        let subprotocols = s.subprotocols.clone().unwrap_or_default();
        for p in &subprotocols {
            let token = !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !token {
                return Err(self.err(
                    at,
                    format!("{p:?} is not a subprotocol name"),
                    Some("a subprotocol is one token, e.g. `chat.v2`".into()),
                ));
            }
        }
        Ok((queue, subprotocols))
    }

    /// One action of a session.
    fn ws_action(
        &self,
        raw: &Spanned<RawWsAction>,
        cx: &mut FlowCx<'_>,
    ) -> Result<WsAction, Diagnostic> {
        let at = Pos::of(raw);
        let a = &raw.value;
        let send = RawSend {
            text: a.send.as_ref(),
            json: a.send_json.as_ref(),
            binary: a.send_binary.as_ref(),
        };
        let given = send.count()
            + usize::from(a.expect.is_some())
            + usize::from(a.hold.is_some())
            + usize::from(a.every.is_some())
            + usize::from(a.close.is_some());
        if given != 1 {
            return Err(self.err(
                at,
                if given == 0 {
                    "the action does nothing"
                } else {
                    "an action does one thing"
                },
                Some(
                    "give exactly one of send, send_json, send_binary, expect, hold, every or close; write several actions for several things"
                        .into(),
                ),
            ));
        }
        if send.count() == 1 {
            return Ok(WsAction::Send(self.ws_message(at, &send, cx)?));
        }
        if let Some(e) = &a.expect {
            return Ok(WsAction::Expect(self.ws_expect(e, cx)?));
        }
        if let Some(h) = &a.hold {
            return Ok(WsAction::Hold(self.positive(h)?));
        }
        if let Some(e) = &a.every {
            return self.ws_every(e, cx);
        }
        let code = a.close.as_ref().map_or(1000, |c| c.value);
        // Codes a client may send (RFC 6455 7.4): 1000, the registered
        // ones an endpoint sends, and the application's 3000-4999.
        if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
            return Err(self.err(
                a.close.as_ref().map_or(at, Pos::of),
                format!("{code} is not a close code a client sends"),
                Some(
                    "use 1000 (normal), 1001 (going away), or 3000-4999 for your application's own"
                        .into(),
                ),
            ));
        }
        Ok(WsAction::Close(code))
    }

    /// `every: { interval, for, send..., expect }`.
    fn ws_every(
        &self,
        raw: &Spanned<RawWsEvery>,
        cx: &mut FlowCx<'_>,
    ) -> Result<WsAction, Diagnostic> {
        let at = Pos::of(raw);
        let e = &raw.value;
        let interval = self.positive(&e.interval)?;
        let period = self.positive(&e.period)?;
        let send = RawSend {
            text: e.send.as_ref(),
            json: e.send_json.as_ref(),
            binary: e.send_binary.as_ref(),
        };
        if send.count() != 1 {
            return Err(self.err(
                at,
                "`every` sends one message",
                Some("give exactly one of send, send_json or send_binary".into()),
            ));
        }
        let send = self.ws_message(at, &send, cx)?;
        let expect = e
            .expect
            .as_ref()
            .map(|x| self.ws_expect(x, cx))
            .transpose()?;
        Ok(WsAction::Every {
            interval,
            period,
            send,
            expect,
        })
    }

    /// A message to send, its template compiled in the session's scope.
    fn ws_message(
        &self,
        at: Pos,
        send: &RawSend<'_>,
        cx: &FlowCx<'_>,
    ) -> Result<WsMessage, Diagnostic> {
        if let Some(text) = send.text {
            let template = Template::compile_in(&text.value, &cx.scope, Context::Raw)
                .map_err(|e| self.template_err(Pos::of(text), e))?;
            return Ok(WsMessage {
                kind: WsKind::Text,
                text: template,
                binary: Vec::new(),
            });
        }
        if let Some(json) = send.json {
            let text = serde_json::to_string(json).unwrap_or_default();
            let template = Template::compile_in(&text, &cx.scope, Context::Json)
                .map_err(|e| self.template_err(at, plan::TemplateError { offset: 0, ..e }))?;
            return Ok(WsMessage {
                kind: WsKind::Text,
                text: template,
                binary: Vec::new(),
            });
        }
        let b64 = send.binary.map_or("", |b| b.value.as_str());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| {
                self.err(
                    send.binary.map_or(at, Pos::of),
                    format!("`send_binary` is not base64: {e}"),
                    Some("write the message's bytes in base64, e.g. `AAEC` for 00 01 02".into()),
                )
            })?;
        Ok(WsMessage {
            kind: WsKind::Binary,
            text: Template::literal(""),
            binary: bytes,
        })
    }

    /// What an `expect` waits for; its extracts declare their variables
    /// for the actions and steps after it.
    fn ws_expect(
        &self,
        raw: &Spanned<RawWsExpect>,
        cx: &mut FlowCx<'_>,
    ) -> Result<WsExpect, Diagnostic> {
        let e = &raw.value;
        let given = usize::from(e.body_contains.is_some())
            + usize::from(e.body_not_contains.is_some())
            + usize::from(e.body_matches.is_some())
            + usize::from(e.json.is_some());
        if given > 1 {
            return Err(self.err(
                Pos::of(raw),
                "an `expect` matches on one thing",
                Some("give at most one of body_contains, body_not_contains, body_matches or json (none: any message)".into()),
            ));
        }
        let mut what = String::new();
        let matcher = if given == 1 {
            let check = RawCheck {
                name: None,
                on_fail: None,
                status: None,
                body_contains: e.body_contains.clone(),
                body_not_contains: e.body_not_contains.clone(),
                body_matches: e.body_matches.clone(),
                json: e.json.clone(),
                header: None,
                max_latency: None,
            };
            let spanned = Spanned::new(check, raw.referenced, raw.defined);
            // A matcher picks the message: it is not a named check.
            let mut names = Vec::new();
            let check = self.check(&spanned, &cx.scope, "", &mut names)?;
            what = names
                .pop()
                .map(|n| n.trim_start_matches(": ").to_string())
                .unwrap_or_default();
            Some(check)
        } else {
            None
        };
        let timeout = e
            .timeout
            .as_ref()
            .map(|t| self.positive(t))
            .transpose()?
            .unwrap_or(DEFAULT_EXPECT_TIMEOUT);
        let extract = self.extracts_of(&e.extract, &mut cx.scope, cx.slots)?;
        Ok(WsExpect {
            matcher,
            what,
            timeout,
            extract,
        })
    }
}
