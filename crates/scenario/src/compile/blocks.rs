//! A flow's steps and the blocks around them (`repeat`, `for_each`,
//! `while`, `if`, `random`), compiled into a [`plan::Flow`]: its requests
//! in the order written, and a tree of [`Node`]s saying when each is sent.
//!
//! Variables are scoped by text order, blocks or not: a value extracted
//! inside an `if` is visible after it (and may then have no value, which
//! the step's `on_missing` rule handles). Only `loop.index` and a
//! `for_each`'s `as` name are the block's own.

use plan::{Cond, Flow, Node, Scope, Slot};
use serde_saphyr::Spanned;

use super::{Compiler, FlowCx};
use crate::diagnostic::{Diagnostic, Pos};
use crate::raw::{RawArm, RawFlow, RawRepeat, RawStep};

/// Most passes of a `for_each` or `while` that gives no `max`.
pub(crate) const DEFAULT_MAX_PASSES: u32 = 100;

/// A block's key and its value.
#[derive(Clone, Copy)]
enum Block<'r> {
    Repeat(&'r Spanned<RawRepeat>),
    ForEach(&'r Spanned<String>),
    While(&'r Spanned<String>),
    If(&'r Spanned<String>),
    Random(&'r Spanned<Vec<RawArm>>),
    Page(&'r Spanned<String>),
}

impl Block<'_> {
    fn key(self) -> &'static str {
        match self {
            Block::Repeat(_) => "repeat",
            Block::ForEach(_) => "for_each",
            Block::While(_) => "while",
            Block::If(_) => "if",
            Block::Random(_) => "random",
            Block::Page(_) => "page",
        }
    }
}

/// The block keys set on a step (none: it is a request).
fn blocks(s: &RawStep) -> Vec<Block<'_>> {
    let mut found = Vec::new();
    found.extend(s.repeat.as_ref().map(Block::Repeat));
    found.extend(s.for_each.as_ref().map(Block::ForEach));
    found.extend(s.while_cond.as_ref().map(Block::While));
    found.extend(s.if_cond.as_ref().map(Block::If));
    found.extend(s.random.as_ref().map(Block::Random));
    found.extend(s.page.as_ref().map(Block::Page));
    found
}

/// A key of another kind of block set on a `kind` block: the key, and
/// the blocks it goes with.
fn misplaced(s: &RawStep, kind: &str) -> Option<(&'static str, &'static str)> {
    let misplaced = [
        (s.else_steps.is_some() && kind != "if", "else", "`if`"),
        (
            s.as_name.is_some() && kind != "for_each",
            "as",
            "`for_each`",
        ),
        (
            s.max.is_some() && !matches!(kind, "for_each" | "while"),
            "max",
            "`for_each` or `while`",
        ),
        (
            s.steps.is_some() && kind == "random",
            "steps",
            "each arm of `random`",
        ),
        (s.assets.is_some() && kind != "page", "assets", "`page`"),
        (
            s.connections.is_some() && kind != "page",
            "connections",
            "`page`",
        ),
        (s.together.is_some() && kind != "page", "together", "`page`"),
        (s.cache.is_some() && kind != "page", "cache", "`page`"),
        (s.session.is_some(), "session", "`ws`"),
        (s.subprotocols.is_some(), "subprotocols", "`ws`"),
        (s.queue.is_some(), "queue", "`ws`"),
        (s.events.is_some(), "events", "`sse`"),
        (s.period.is_some(), "for", "`sse`"),
        (s.reconnect.is_some(), "reconnect", "`sse`"),
    ];
    misplaced
        .into_iter()
        .find(|(bad, ..)| *bad)
        .map(|(_, key, owner)| (key, owner))
}

/// The request keys of a step set on a block, which has no request.
fn request_key(s: &RawStep) -> Option<&'static str> {
    [
        (s.get.is_some(), "get"),
        (s.post.is_some(), "post"),
        (s.put.is_some(), "put"),
        (s.patch.is_some(), "patch"),
        (s.delete.is_some(), "delete"),
        (s.head.is_some(), "head"),
        (s.ws.is_some(), "ws"),
        (s.sse.is_some(), "sse"),
        (s.name.is_some(), "name"),
        (!s.headers.is_empty(), "headers"),
        (!s.query.is_empty(), "query"),
        (s.body.is_some(), "body"),
        (s.json.is_some(), "json"),
        (!s.form.is_empty(), "form"),
        (s.think.is_some(), "think"),
        (s.timeout.is_some(), "timeout"),
        (s.retry.is_some(), "retry"),
        (!s.checks.is_empty(), "checks"),
        (!s.extract.is_empty(), "extract"),
        (s.on_missing.is_some(), "on_missing"),
    ]
    .into_iter()
    .find_map(|(set, name)| set.then_some(name))
}

impl Compiler<'_> {
    /// One flow: its name, weight, requests and blocks, under the
    /// defaults `cx` starts with.
    pub(super) fn flow(
        &self,
        i: usize,
        raw_flow: RawFlow,
        mut cx: FlowCx<'_>,
    ) -> Result<Flow, Diagnostic> {
        let name = raw_flow.name.unwrap_or_else(|| format!("flow {}", i + 1));
        let weight = match &raw_flow.weight {
            Some(w) if !(w.value.is_finite() && w.value > 0.0) => {
                return Err(self.err(Pos::of(w), "a flow's weight must be more than 0", None))
            }
            Some(w) => w.value,
            None => 1.0,
        };
        if raw_flow.steps.is_empty() {
            return Err(self.err(
                Pos { line: 1, column: 1 },
                format!("flow {name:?} has no steps"),
                None,
            ));
        }
        if let Some(r) = &raw_flow.retry {
            cx.inherited.retry = Some(self.retry(r)?);
        }
        let body = self.nodes(&raw_flow.steps, &mut cx)?;
        Ok(Flow {
            name,
            weight,
            steps: cx.steps,
            body,
        })
    }

    /// A list of steps and blocks.
    fn nodes(
        &self,
        raw: &[Spanned<RawStep>],
        cx: &mut FlowCx<'_>,
    ) -> Result<Vec<Node>, Diagnostic> {
        let mut nodes = Vec::with_capacity(raw.len());
        for item in raw {
            nodes.push(match blocks(&item.value).as_slice() {
                [] if item.value.ws.is_some() => {
                    self.not_in_request(item)?;
                    self.ws(item, cx)?
                }
                [] if item.value.sse.is_some() => {
                    self.not_in_request(item)?;
                    self.sse(item, cx)?
                }
                [] => {
                    self.not_in_request(item)?;
                    let step = self.step(
                        item,
                        &mut cx.scope,
                        cx.slots,
                        &cx.inherited,
                        cx.endpoints,
                        cx.check_names,
                    )?;
                    cx.steps.push(step);
                    Node::Step(cx.steps.len() - 1)
                }
                [block] => self.block(item, *block, cx)?,
                [first, second, ..] => {
                    return Err(self.err(
                        Pos::of(item),
                        format!(
                            "a step is one block: `{}` and `{}` cannot go together",
                            first.key(),
                            second.key()
                        ),
                        Some("nest one inside the other's `steps`".into()),
                    ))
                }
            });
        }
        Ok(nodes)
    }

    /// A request step may not carry a block's keys.
    fn not_in_request(&self, item: &Spanned<RawStep>) -> Result<(), Diagnostic> {
        let s = &item.value;
        let stray = [
            (s.steps.is_some(), "steps"),
            (s.else_steps.is_some(), "else"),
            (s.as_name.is_some(), "as"),
            (s.max.is_some(), "max"),
            (s.assets.is_some(), "assets"),
            (s.connections.is_some(), "connections"),
            (s.together.is_some(), "together"),
            (s.cache.is_some(), "cache"),
            (s.session.is_some() && s.ws.is_none(), "session"),
            (s.subprotocols.is_some() && s.ws.is_none(), "subprotocols"),
            (s.queue.is_some() && s.ws.is_none(), "queue"),
            (s.events.is_some() && s.sse.is_none(), "events"),
            (s.period.is_some() && s.sse.is_none(), "for"),
            (s.reconnect.is_some() && s.sse.is_none(), "reconnect"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name));
        match stray {
            Some(key) => Err(self.err(
                Pos::of(item),
                if matches!(key, "session" | "subprotocols" | "queue") {
                    format!("`{key}` belongs to a `ws` step")
                } else if matches!(key, "events" | "for" | "reconnect") {
                    format!("`{key}` belongs to an `sse` step")
                } else {
                    format!("`{key}` belongs to a block, and this step is a request")
                },
                Some(match key {
                    "else" => "`else` goes with `if`".into(),
                    "as" => "`as` goes with `for_each`".into(),
                    "max" => "`max` goes with `for_each` or `while`".into(),
                    "assets" | "connections" | "together" | "cache" => {
                        format!("`{key}` goes with `page`")
                    }
                    "session" | "subprotocols" | "queue" => {
                        format!("`{key}` goes with `ws`: a WebSocket step")
                    }
                    "events" | "for" | "reconnect" => {
                        format!("`{key}` goes with `sse`: an event stream step")
                    }
                    _ => {
                        "start a block with repeat, for_each, while or if, then its `steps`".into()
                    }
                }),
            )),
            None => Ok(()),
        }
    }

    /// One block.
    fn block(
        &self,
        item: &Spanned<RawStep>,
        block: Block<'_>,
        cx: &mut FlowCx<'_>,
    ) -> Result<Node, Diagnostic> {
        let at = Pos::of(item);
        let s = &item.value;
        let kind = block.key();
        if let Some(key) = request_key(s) {
            return Err(self.err(
                at,
                format!("a `{kind}` block sends no request of its own, so it takes no `{key}`"),
                Some(format!(
                    "put the request in the block's `steps`, or the `{kind}` in a step of its own"
                )),
            ));
        }
        if let Some((key, owner)) = misplaced(s, kind) {
            return Err(self.err(at, format!("`{key}` goes with {owner}, not `{kind}`"), None));
        }
        if let Block::Random(arms) = block {
            return self.random(arms, cx);
        }
        let Some(body) = s.steps.as_deref().filter(|b| !b.is_empty()) else {
            return Err(self.err(
                at,
                format!("the `{kind}` block has no `steps`"),
                Some(format!(
                    "give it the steps to run, e.g.\n  - {kind}: ...\n    steps:\n      - get: /"
                )),
            ));
        };
        match block {
            Block::Repeat(raw) => {
                let (min, max) = self.repeat_range(raw)?;
                let (index, body) = self.in_loop(body, None, cx)?;
                Ok(Node::Repeat {
                    min,
                    max,
                    index,
                    body,
                })
            }
            Block::ForEach(list) => self.for_each(item, list, body, cx),
            Block::While(text) => {
                let max = self.max_passes(item)?;
                let (index, body) = self.in_loop(body, None, cx)?;
                // The condition may read what the body extracts (a next
                // page's link) and loop.index: compiled with the scope
                // as it is after the body, plus the loop's index.
                let saved = cx.scope.binding("loop.index");
                cx.scope.declare_at("loop.index", index);
                let cond = self.cond(text, &cx.scope);
                cx.scope.restore("loop.index", saved);
                Ok(Node::While {
                    cond: cond?,
                    max,
                    index,
                    body,
                })
            }
            Block::If(text) => {
                let cond = self.cond(text, &cx.scope)?;
                let then = self.nodes(body, cx)?;
                let otherwise = match &s.else_steps {
                    Some(e) => self.nodes(e, cx)?,
                    None => Vec::new(),
                };
                Ok(Node::If {
                    cond,
                    then,
                    otherwise,
                })
            }
            Block::Random(arms) => self.random(arms, cx),
            Block::Page(name) => self.page(item, name, body, cx),
        }
    }

    /// `page: NAME` with its requests: the document first (unless
    /// `together`), then the assets.
    fn page(
        &self,
        item: &Spanned<RawStep>,
        name: &Spanned<String>,
        body: &[Spanned<RawStep>],
        cx: &mut FlowCx<'_>,
    ) -> Result<Node, Diagnostic> {
        let s = &item.value;
        if name.value.trim().is_empty() {
            return Err(self.err(Pos::of(name), "a page's name cannot be empty", None));
        }
        if cx.endpoints.contains(&name.value) {
            return Err(self.err(
                Pos::of(name),
                format!(
                    "{:?} already names a request; a page reports as an endpoint of its own",
                    name.value
                ),
                Some("give the page a name of its own, e.g. \"home page\"".into()),
            ));
        }
        let together = s.together.unwrap_or(false);
        let connections = match s.connections {
            Some(0) => {
                return Err(self.err(
                    Pos::of(item),
                    "a page needs at least one connection",
                    Some(format!("browsers use {}", plan::DEFAULT_PAGE_CONNECTIONS)),
                ))
            }
            Some(n) => n,
            None => plan::DEFAULT_PAGE_CONNECTIONS,
        };
        let from_html = s.assets.is_some();
        if from_html && together {
            return Err(self.err(
                Pos::of(item),
                "`assets: from_html` reads the document first, so it cannot go with `together: true`",
                None,
            ));
        }
        let mut indices = Vec::with_capacity(body.len());
        for (i, raw) in body.iter().enumerate() {
            if let [block, ..] = blocks(&raw.value).as_slice() {
                return Err(self.err(
                    Pos::of(raw),
                    format!(
                        "a page's steps are its requests; a `{}` block cannot go in it",
                        block.key()
                    ),
                    Some("put the block before or after the page".into()),
                ));
            }
            self.not_live(raw)?;
            let is_document = i == 0 && !together;
            if !is_document && !raw.value.extract.is_empty() {
                return Err(self.err(
                    Pos::of(raw),
                    "an asset's response is not read for values: only the document (a page's first step) can `extract`",
                    Some("move the extract to the document, or the request out of the page".into()),
                ));
            }
            self.not_in_request(raw)?;
            let mut step = self.step(
                raw,
                &mut cx.scope,
                cx.slots,
                &cx.inherited,
                cx.endpoints,
                cx.check_names,
            )?;
            if is_document && from_html {
                step.needs.body = true;
            }
            if s.cache == Some(true) {
                step.needs.headers = true;
            }
            cx.steps.push(step);
            indices.push(cx.steps.len() - 1);
        }
        cx.endpoints.push(name.value.clone());
        let (document, assets) = if together {
            (None, indices)
        } else {
            (Some(indices[0]), indices[1..].to_vec())
        };
        Ok(Node::Page(plan::Page {
            endpoint: cx.endpoints.len() - 1,
            document,
            assets,
            from_html,
            connections,
            cache: s.cache.unwrap_or(false),
        }))
    }

    /// A page's step may not open a live connection.
    fn not_live(&self, raw: &Spanned<RawStep>) -> Result<(), Diagnostic> {
        if raw.value.ws.is_some() || raw.value.sse.is_some() {
            return Err(self.err(
                Pos::of(raw),
                "a page's steps are HTTP requests; a `ws` or `sse` step cannot go in it",
                None,
            ));
        }
        Ok(())
    }

    /// `for_each: LIST`, `as: NAME`.
    fn for_each(
        &self,
        item: &Spanned<RawStep>,
        list_name: &Spanned<String>,
        body: &[Spanned<RawStep>],
        cx: &mut FlowCx<'_>,
    ) -> Result<Node, Diagnostic> {
        let s = &item.value;
        let list = match cx.scope.binding(&list_name.value) {
            Some((slot, true)) => slot,
            Some((_, false)) => {
                return Err(self.err(
                    Pos::of(list_name),
                    format!("{:?} is one value, not a list", list_name.value),
                    Some(format!(
                        "extract it with `pick: all` to loop over every match, e.g. {}: {{ json: \"$.items[*].id\", pick: all }}",
                        list_name.value
                    )),
                ))
            }
            None => {
                let lists: Vec<&str> = cx
                    .scope
                    .names()
                    .filter(|n| cx.scope.is_list(n))
                    .collect();
                return Err(self.err(
                    Pos::of(list_name),
                    format!("unknown list {:?}", list_name.value),
                    Some(match plan::suggest::nearest(&list_name.value, lists.iter().copied()) {
                        Some(n) => format!("did you mean {n}?"),
                        None if lists.is_empty() => "an earlier step defines a list with an extract's `pick: all`".into(),
                        None => format!("lists defined before this point: {}", lists.join(", ")),
                    }),
                ));
            }
        };
        let Some(as_name) = &s.as_name else {
            return Err(self.err(
                Pos::of(item),
                "a `for_each` block names its item with `as`",
                Some(format!(
                    "e.g. `for_each: {}` with `as: item`, then {{{{ item }}}} in its steps",
                    list_name.value
                )),
            ));
        };
        let valid = !as_name.value.is_empty()
            && as_name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(self.err(
                Pos::of(as_name),
                format!("{:?} is not a variable name", as_name.value),
                Some("use letters, digits, '_' and '-'".into()),
            ));
        }
        let max = self.max_passes(item)?;
        let item_slot = cx.slots.declare(&as_name.value);
        let (index, body) = self.in_loop(body, Some((&as_name.value, item_slot)), cx)?;
        Ok(Node::ForEach {
            list,
            item: item_slot,
            index,
            max,
            body,
        })
    }

    /// A loop's body, with `loop.index` (and a `for_each`'s item) bound
    /// inside it only. Returns the index's slot and the body.
    fn in_loop(
        &self,
        body: &[Spanned<RawStep>],
        item: Option<(&str, Slot)>,
        cx: &mut FlowCx<'_>,
    ) -> Result<(Slot, Vec<Node>), Diagnostic> {
        // Each loop has its own index slot, so an inner loop leaves the
        // outer one's index as it was.
        let index = cx.slots.declare(&format!("loop.index#{}", cx.slots.len()));
        let saved_index = cx.scope.binding("loop.index");
        cx.scope.declare_at("loop.index", index);
        let saved_item = item.map(|(name, slot)| {
            let saved = cx.scope.binding(name);
            cx.scope.declare_at(name, slot);
            (name, saved)
        });
        let nodes = self.nodes(body, cx);
        cx.scope.restore("loop.index", saved_index);
        if let Some((name, saved)) = saved_item {
            cx.scope.restore(name, saved);
        }
        Ok((index, nodes?))
    }

    /// `random: [{ weight, steps }, ...]`.
    fn random(&self, raw: &Spanned<Vec<RawArm>>, cx: &mut FlowCx<'_>) -> Result<Node, Diagnostic> {
        if raw.value.is_empty() {
            return Err(self.err(
                Pos::of(raw),
                "a `random` block has no arms",
                Some("e.g. random: [{ weight: 3, steps: [...] }, { steps: [...] }]".into()),
            ));
        }
        let mut arms = Vec::with_capacity(raw.value.len());
        for RawArm { weight, steps } in &raw.value {
            let weight = weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(self.err(Pos::of(raw), "an arm's weight must be more than 0", None));
            }
            if steps.is_empty() {
                return Err(self.err(Pos::of(raw), "an arm of `random` has no steps", None));
            }
            arms.push((weight, self.nodes(steps, cx)?));
        }
        Ok(Node::Random { arms })
    }

    /// `repeat: N` or `repeat: "MIN..MAX"`.
    fn repeat_range(&self, raw: &Spanned<RawRepeat>) -> Result<(u32, u32), Diagnostic> {
        let bad = || {
            self.err(
                Pos::of(raw),
                "`repeat` takes a count or a range",
                Some("write e.g. `repeat: 3` or `repeat: 2..5` (both ends included)".into()),
            )
        };
        let (min, max) = match &raw.value {
            RawRepeat::Times(n) => (*n, *n),
            RawRepeat::Range(text) => {
                let text = text.trim();
                match text.split_once("..") {
                    Some((a, b)) => {
                        let a = a.trim().parse::<u32>().map_err(|_| bad())?;
                        let b = b
                            .trim()
                            .trim_start_matches('=')
                            .trim()
                            .parse::<u32>()
                            .map_err(|_| bad())?;
                        (a, b)
                    }
                    None => {
                        let n = text.parse::<u32>().map_err(|_| bad())?;
                        (n, n)
                    }
                }
            }
        };
        if max < min {
            return Err(self.err(
                Pos::of(raw),
                format!("the range {min}..{max} ends before it starts"),
                Some(format!("write {max}..{min}")),
            ));
        }
        if max == 0 {
            return Err(self.err(
                Pos::of(raw),
                "`repeat: 0` never runs its steps",
                Some("remove the block, or repeat at least once".into()),
            ));
        }
        Ok((min, max))
    }

    /// A `for_each`'s or `while`'s `max`.
    fn max_passes(&self, item: &Spanned<RawStep>) -> Result<u32, Diagnostic> {
        match item.value.max {
            Some(0) => Err(self.err(
                Pos::of(item),
                "`max: 0` never runs the block's steps",
                Some("give at least 1".into()),
            )),
            Some(n) => Ok(n),
            None => Ok(DEFAULT_MAX_PASSES),
        }
    }

    /// A condition, its errors pointing at the column.
    fn cond(&self, text: &Spanned<String>, scope: &Scope) -> Result<Cond, Diagnostic> {
        Cond::compile(&text.value, scope).map_err(|e| self.template_err(Pos::of(text), e))
    }
}
