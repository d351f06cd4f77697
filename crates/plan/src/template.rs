//! `{{ name }}` templates, compiled once when the plan is built and
//! rendered per request into a reused buffer, never parsed again.
//!
//! Inside `{{ }}`: a variable (extracted values, feeder columns: resolved to
//! a slot number here), `env.NAME` (resolved now, from the environment the
//! caller hands in), or a built-in: `vu` (the virtual user's number),
//! `iteration` (its flow iterations so far), `uuid`, `timestamp` (Unix
//! seconds), `timestamp_ms`, `random(MIN, MAX)` (an integer, both ends
//! included) or `choice("a", "b", ...)`.
//!
//! A value is escaped for where it goes ([`Context`]): percent-encoded in a
//! URL's path and query, form-encoded in a form body, JSON-escaped in a
//! JSON body; `raw(NAME)` writes it as it is, `url(NAME)` percent-encoded
//! and `form(NAME)` form-encoded wherever it goes.

use std::collections::BTreeMap;

/// Where a variable's value lives: its slot in a virtual user's variables.
pub type Slot = usize;

/// Names known when templates compile: variable slots and environment
/// values.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    slots: BTreeMap<String, Slot>,
    /// Names whose slot holds a list (`pick: all`), not one value.
    lists: std::collections::BTreeSet<String>,
    env: BTreeMap<String, String>,
}

impl Scope {
    /// A scope that reads `env.NAME` from `env`.
    pub fn new(env: BTreeMap<String, String>) -> Scope {
        Scope {
            slots: BTreeMap::new(),
            lists: Default::default(),
            env,
        }
    }

    /// Makes `name` visible here as a list (`pick: all`) at `slot`.
    pub fn declare_list_at(&mut self, name: &str, slot: Slot) {
        self.slots.insert(name.to_string(), slot);
        self.lists.insert(name.to_string());
    }

    /// What `name` is bound to here: its slot, and whether it is a list.
    pub fn binding(&self, name: &str) -> Option<(Slot, bool)> {
        self.slot(name).map(|s| (s, self.is_list(name)))
    }

    /// Puts back a binding [`Scope::binding`] returned (`None`: unbound),
    /// when a block that bound `name` for its own steps ends.
    pub fn restore(&mut self, name: &str, binding: Option<(Slot, bool)>) {
        match binding {
            Some((slot, true)) => self.declare_list_at(name, slot),
            Some((slot, false)) => self.declare_at(name, slot),
            None => {
                self.slots.remove(name);
                self.lists.remove(name);
            }
        }
    }

    /// Whether `name` holds a list.
    pub fn is_list(&self, name: &str) -> bool {
        self.lists.contains(name)
    }

    /// Declares a variable (idempotent); returns its slot.
    pub fn declare(&mut self, name: &str) -> Slot {
        let next = self.slots.len();
        *self.slots.entry(name.to_string()).or_insert(next)
    }

    /// Makes `name` visible here with a slot allocated elsewhere (so that
    /// each flow sees only its own variables, while slots stay unique).
    pub fn declare_at(&mut self, name: &str, slot: Slot) {
        self.slots.insert(name.to_string(), slot);
        self.lists.remove(name);
    }

    /// The slot of a declared variable.
    pub fn slot(&self, name: &str) -> Option<Slot> {
        self.slots.get(name).copied()
    }

    /// How many variable slots a virtual user needs.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no variable is declared.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Declared variable names, for "did you mean" hints.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }
}

/// A value computed when a template renders.
#[derive(Debug, Clone, PartialEq)]
pub enum Builtin {
    /// The virtual user's number, from 0.
    Vu,
    /// How many flow iterations the user has started, from 0.
    Iteration,
    /// A random UUID (version 4).
    Uuid,
    /// Unix time in seconds.
    Timestamp,
    /// Unix time in milliseconds.
    TimestampMs,
    /// A random integer in `min..=max`.
    Random(i64, i64),
    /// One of the listed values at random.
    Choice(Vec<String>),
}

/// Where a template's text goes, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// As it is: headers, raw bodies, checks.
    Raw,
    /// A URL's path and query: values percent-encoded (in the path, a
    /// value is one segment: `/` is encoded too).
    Url,
    /// An `application/x-www-form-urlencoded` body: values form-encoded.
    Form,
    /// A JSON body, values inside its strings: JSON-escaped.
    Json,
}

/// How one value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Not at all.
    Raw,
    /// Percent-encoded: everything but `A-Z a-z 0-9 - . _ ~`.
    Percent,
    /// Form-encoded: percent-encoded, with spaces as `+`.
    Form,
    /// As the inside of a JSON string.
    Json,
}

impl Escape {
    /// Appends `value` to `out`, escaped.
    pub fn write(self, value: &[u8], out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        match self {
            Escape::Raw => out.extend_from_slice(value),
            Escape::Percent | Escape::Form => {
                for &b in value {
                    if unreserved(b) {
                        out.push(b);
                    } else if b == b' ' && self == Escape::Form {
                        out.push(b'+');
                    } else {
                        out.extend_from_slice(&[
                            b'%',
                            HEX[usize::from(b >> 4)],
                            HEX[usize::from(b & 15)],
                        ]);
                    }
                }
            }
            Escape::Json => {
                for &b in value {
                    match b {
                        b'"' => out.extend_from_slice(b"\\\""),
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        0..=0x1f => out.extend_from_slice(&[
                            b'\\',
                            b'u',
                            b'0',
                            b'0',
                            HEX[usize::from(b >> 4)],
                            HEX[usize::from(b & 15)],
                        ]),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var {
        slot: Slot,
        name: String,
        escape: Escape,
    },
    Builtin(Builtin, Escape),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

/// A template could not compile; `offset` is the byte offset of the
/// problem in the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset into the template text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

/// What rendering needs from the virtual user.
pub struct RenderCtx<'a> {
    /// Variable values by slot (`None`: not set yet).
    pub vars: &'a [Option<String>],
    /// The virtual user's number.
    pub vu: u64,
    /// Its iteration.
    pub iteration: u64,
    /// Its random numbers.
    pub rng: &'a mut fastrand::Rng,
    /// Unix time now, in milliseconds.
    pub now_ms: u64,
}

impl<'a> RenderCtx<'a> {
    /// A context with no user in it: no variables, user and iteration 0,
    /// time 0. For templates no user's values reach (static steps).
    pub fn anonymous(rng: &'a mut fastrand::Rng) -> RenderCtx<'a> {
        RenderCtx {
            vars: &[],
            vu: 0,
            iteration: 0,
            rng,
            now_ms: 0,
        }
    }
}

impl Template {
    /// Compiles `text` against `scope`, its values written as they are.
    pub fn compile(text: &str, scope: &Scope) -> Result<Template, TemplateError> {
        Template::compile_in(text, scope, Context::Raw)
    }

    /// Compiles `text` against `scope`, its values escaped for `context`.
    pub fn compile_in(
        text: &str,
        scope: &Scope,
        context: Context,
    ) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut base = 0;
        let escape = match context {
            Context::Raw => Escape::Raw,
            // Path segments and query values alike.
            Context::Url => Escape::Percent,
            Context::Form => Escape::Form,
            Context::Json => Escape::Json,
        };
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| TemplateError {
                offset: base + open,
                message: "'{{' is not closed".into(),
                hint: Some("close it with '}}'".into()),
            })?;
            let inner = &after[..close];
            let lead = inner.len() - inner.trim_start().len();
            let expr_offset = base + open + 2 + lead;
            parts.push(compile_expr(inner.trim(), expr_offset, scope, escape)?);
            let consumed = open + 2 + close + 2;
            base += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            parts,
            source: text.to_string(),
        })
    }

    /// The text the template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A template that is only this text.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: vec![Part::Text(text.to_string())],
            source: text.to_string(),
        }
    }

    /// The text, if the template has no `{{ }}` at all.
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The variable slots this template reads.
    pub fn slots(&self) -> impl Iterator<Item = (Slot, &str)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { slot, name, .. } => Some((*slot, name.as_str())),
            _ => None,
        })
    }

    /// Appends the rendered text to `out`. An unset variable renders as
    /// nothing.
    pub fn render(&self, ctx: &mut RenderCtx<'_>, out: &mut Vec<u8>) {
        use std::io::Write as _;
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Var { slot, escape, .. } => {
                    if let Some(Some(v)) = ctx.vars.get(*slot) {
                        escape.write(v.as_bytes(), out);
                    }
                }
                Part::Builtin(Builtin::Choice(items), escape) => {
                    let i = ctx.rng.usize(..items.len());
                    escape.write(items[i].as_bytes(), out);
                }
                Part::Builtin(b, _) => {
                    // Writing into a Vec cannot fail.
                    let _ = match b {
                        Builtin::Vu => write!(out, "{}", ctx.vu),
                        Builtin::Iteration => write!(out, "{}", ctx.iteration),
                        Builtin::Timestamp => write!(out, "{}", ctx.now_ms / 1000),
                        Builtin::TimestampMs => write!(out, "{}", ctx.now_ms),
                        Builtin::Random(lo, hi) => write!(out, "{}", ctx.rng.i64(*lo..=*hi)),
                        // Rendered above, escaped.
                        Builtin::Choice(_) => Ok(()),
                        Builtin::Uuid => {
                            let v = ctx.rng.u128(..);
                            // Version 4, RFC 4122 variant.
                            let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
                            let h = format!("{v:032x}");
                            write!(
                                out,
                                "{}-{}-{}-{}-{}",
                                &h[..8],
                                &h[8..12],
                                &h[12..16],
                                &h[16..20],
                                &h[20..]
                            )
                        }
                    };
                }
            }
        }
    }

    /// Renders to a string (for tests and one-off uses).
    pub fn render_string(&self, ctx: &mut RenderCtx<'_>) -> String {
        let mut out = Vec::new();
        self.render(ctx, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn compile_expr(
    expr: &str,
    offset: usize,
    scope: &Scope,
    escape: Escape,
) -> Result<Part, TemplateError> {
    let err = |message: String, hint: Option<String>| TemplateError {
        offset,
        message,
        hint,
    };
    if expr.is_empty() {
        return Err(err(
            "'{{ }}' is empty".into(),
            Some("name a variable, e.g. {{ token }}".into()),
        ));
    }
    // `raw(v)`, `url(v)`, `form(v)`: the value escaped as named rather
    // than as its place would.
    for (name, escape) in [
        ("raw(", Escape::Raw),
        ("url(", Escape::Percent),
        ("form(", Escape::Form),
    ] {
        if let Some(inner) = expr.strip_prefix(name).and_then(|a| a.strip_suffix(')')) {
            let lead = inner.len() - inner.trim_start().len();
            return compile_expr(inner.trim(), offset + name.len() + lead, scope, escape);
        }
    }
    if let Some(name) = expr.strip_prefix("env.") {
        return match scope.env.get(name) {
            Some(v) => Ok(Part::Text(v.clone())),
            None => Err(err(
                format!("environment variable {name} is not set"),
                Some(format!("set it before the run: {name}=... throng run ...")),
            )),
        };
    }
    if let Some(args) = expr
        .strip_prefix("random(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let nums: Vec<Option<i64>> = args.split(',').map(|a| a.trim().parse().ok()).collect();
        return match nums.as_slice() {
            [Some(lo), Some(hi)] if lo <= hi => {
                Ok(Part::Builtin(Builtin::Random(*lo, *hi), escape))
            }
            _ => Err(err(
                format!("bad random({args})"),
                Some("write random(MIN, MAX) with whole numbers, MIN <= MAX".into()),
            )),
        };
    }
    if let Some(args) = expr
        .strip_prefix("choice(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return choice(args)
            .map(|b| Part::Builtin(b, escape))
            .ok_or_else(|| {
                err(
                    "choice() needs at least one value".into(),
                    Some("write choice(\"a\", \"b\")".into()),
                )
            });
    }
    let builtin = match expr {
        "vu" => Some(Builtin::Vu),
        "iteration" => Some(Builtin::Iteration),
        "uuid" | "uuid()" => Some(Builtin::Uuid),
        "timestamp" => Some(Builtin::Timestamp),
        "timestamp_ms" => Some(Builtin::TimestampMs),
        _ => None,
    };
    if let Some(b) = builtin {
        return Ok(Part::Builtin(b, escape));
    }
    if !expr
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
    {
        return Err(err(
            format!("{expr:?} is not a variable name"),
            Some("names use letters, digits, '_', '.' and '-'".into()),
        ));
    }
    if scope.is_list(expr) {
        return Err(err(
            format!("{expr:?} is a list (`pick: all`), not one value"),
            Some(format!(
                "loop over it (`for_each: {expr}`, `as: item`), or extract one with `pick: random`"
            )),
        ));
    }
    match scope.slot(expr) {
        Some(slot) => Ok(Part::Var {
            slot,
            name: expr.to_string(),
            escape,
        }),
        None => Err(unknown_variable(expr, offset, scope)),
    }
}

/// `choice(ARGS)`'s values, if it has any.
fn choice(args: &str) -> Option<Builtin> {
    let items: Vec<String> = args
        .split(',')
        // Quotes may arrive escaped (`\"a\"`) when the template sits
        // inside a JSON string.
        .map(|a| {
            a.trim()
                .trim_matches(|c| c == '"' || c == '\'' || c == '\\')
                .to_string()
        })
        .filter(|a| !a.is_empty())
        .collect();
    (!items.is_empty()).then_some(Builtin::Choice(items))
}

/// `expr` names no variable defined here: the error, with the nearest
/// name or the names there are.
fn unknown_variable(expr: &str, offset: usize, scope: &Scope) -> TemplateError {
    const BUILTINS: [&str; 7] = [
        "vu",
        "iteration",
        "uuid",
        "timestamp",
        "timestamp_ms",
        "random",
        "choice",
    ];
    let known: Vec<&str> = scope.names().chain(BUILTINS).collect();
    let hint = crate::suggest::nearest(expr, known.iter().copied())
        .map(|n| format!("did you mean {{{{ {n} }}}}?"))
        .or_else(|| {
            Some(if scope.is_empty() {
                "no variables are defined here (an earlier step's `extract` defines them); \
                 built-ins are vu, iteration, uuid, timestamp, timestamp_ms, random(MIN, MAX) \
                 and choice(\"a\", \"b\")"
                    .into()
            } else {
                format!(
                    "variables defined before this point: {}",
                    scope.names().collect::<Vec<_>>().join(", ")
                )
            })
        });
    TemplateError {
        offset,
        message: format!("unknown variable {expr:?}"),
        hint,
    }
}

/// The `{{ ... }}` expressions of a template's text, trimmed, in order,
/// unchecked: for showing where a value comes from without the value.
pub fn expressions(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        found.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    found
}
