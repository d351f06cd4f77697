//! Conditions of `if:` and `while:` blocks: a small expression language,
//! compiled once against the flow's variables (names become slots) and
//! evaluated per session with no allocation.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | compare
//! compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//! operand := NAME | "status" | "checks" | "len(" NAME ")" | NUMBER
//!          | "STRING" | 'STRING' | "true" | "false" | "(" expr ")"
//! ```
//!
//! A name alone is true when the variable has a value that is not empty
//! (a list: when it has an item). `status` is the last response's status
//! and `checks` whether every check of the last response passed; before
//! any response, or after a request that got none, `status` has no value
//! and `checks` is false. Two values compare as numbers when both are
//! numbers, else `==` and `!=` compare text; a comparison with a missing
//! value is false whatever its operator (test presence with the name).

use crate::{Scope, Slot, TemplateError};

/// Most tokens in a condition.
const MAX_TOKENS: usize = 256;

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    expr: Expr,
    source: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Op, Operand, Operand),
    Truth(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Var(Slot),
    List(Slot),
    Len(Slot),
    Status,
    Checks,
    Num(f64),
    Text(String),
    Bool(bool),
}

/// What a condition reads of a session.
#[derive(Debug, Clone, Copy)]
pub struct CondCtx<'a> {
    /// Variable values by slot.
    pub vars: &'a [Option<String>],
    /// List values by slot (`pick: all`).
    pub lists: &'a [Vec<String>],
    /// The last response's status, if it got one.
    pub status: Option<u16>,
    /// Whether every check of the last response passed.
    pub checks: bool,
}

/// A value while evaluating.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Missing,
    Text(&'a str),
    Num(f64),
    Bool(bool),
}

impl Value<'_> {
    fn truthy(self) -> bool {
        match self {
            Value::Missing => false,
            Value::Text(t) => !t.is_empty(),
            Value::Num(n) => n != 0.0,
            Value::Bool(b) => b,
        }
    }

    fn number(self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(n),
            Value::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Cond {
    /// Compiles `text` against the names in `scope`.
    pub fn compile(text: &str, scope: &Scope) -> Result<Cond, TemplateError> {
        let tokens = lex(text)?;
        // Bounds the tree's depth, and with it the recursion of parsing
        // and evaluating it.
        if let Some(t) = tokens.get(MAX_TOKENS) {
            return Err(error(
                t.offset,
                format!("a condition has at most {MAX_TOKENS} parts"),
                "split the logic over nested `if` blocks",
            ));
        }
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            scope,
            end: text.len(),
        };
        let expr = parser.or()?;
        if let Some(t) = parser.peek() {
            return Err(error(
                t.offset,
                format!("unexpected {:?}", t.text),
                "join conditions with `and` or `or`",
            ));
        }
        Ok(Cond {
            expr,
            source: text.to_string(),
        })
    }

    /// The text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the condition holds.
    pub fn holds(&self, ctx: &CondCtx<'_>) -> bool {
        eval(&self.expr, ctx)
    }
}

fn eval(e: &Expr, ctx: &CondCtx<'_>) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, ctx) || eval(b, ctx),
        Expr::And(a, b) => eval(a, ctx) && eval(b, ctx),
        Expr::Not(a) => !eval(a, ctx),
        Expr::Truth(o) => value(o, ctx).truthy(),
        Expr::Compare(op, a, b) => compare(*op, value(a, ctx), value(b, ctx)),
    }
}

fn value<'a>(o: &'a Operand, ctx: &CondCtx<'a>) -> Value<'a> {
    match o {
        Operand::Var(slot) => match ctx.vars.get(*slot) {
            Some(Some(v)) => Value::Text(v),
            _ => Value::Missing,
        },
        Operand::List(slot) => Value::Bool(ctx.lists.get(*slot).is_some_and(|l| !l.is_empty())),
        Operand::Len(slot) => Value::Num(ctx.lists.get(*slot).map_or(0, Vec::len) as f64),
        Operand::Status => ctx
            .status
            .map_or(Value::Missing, |s| Value::Num(f64::from(s))),
        Operand::Checks => Value::Bool(ctx.checks),
        Operand::Num(n) => Value::Num(*n),
        Operand::Text(t) => Value::Text(t),
        Operand::Bool(b) => Value::Bool(*b),
    }
}

fn compare(op: Op, a: Value<'_>, b: Value<'_>) -> bool {
    if matches!(a, Value::Missing) || matches!(b, Value::Missing) {
        return false;
    }
    if let (Some(x), Some(y)) = (a.number(), b.number()) {
        return match op {
            Op::Eq => x == y,
            Op::Ne => x != y,
            Op::Lt => x < y,
            Op::Le => x <= y,
            Op::Gt => x > y,
            Op::Ge => x >= y,
        };
    }
    let equal = match (a, b) {
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Bool(x), Value::Text(y)) | (Value::Text(y), Value::Bool(x)) => {
            y == if x { "true" } else { "false" }
        }
        _ => false,
    };
    match op {
        Op::Eq => equal,
        Op::Ne => !equal,
        _ => false,
    }
}

fn error(offset: usize, message: String, hint: &str) -> TemplateError {
    TemplateError {
        offset,
        message,
        hint: Some(hint.to_string()),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Name,
    Num(f64),
    Text(String),
    Op(Op),
    Open,
    Close,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    offset: usize,
}

fn lex(text: &str) -> Result<Vec<Token<'_>>, TemplateError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = bytes.get(i + 1) == Some(&b'=');
                i += if two { 2 } else { 1 };
                match (c, two) {
                    (b'=', true) => Kind::Op(Op::Eq),
                    (b'!', true) => Kind::Op(Op::Ne),
                    (b'<', false) => Kind::Op(Op::Lt),
                    (b'<', true) => Kind::Op(Op::Le),
                    (b'>', false) => Kind::Op(Op::Gt),
                    (b'>', true) => Kind::Op(Op::Ge),
                    _ => {
                        return Err(error(
                            start,
                            format!("unexpected {:?}", &text[start..i]),
                            "compare with ==, !=, <, <=, > or >=; negate with `not`",
                        ))
                    }
                }
            }
            b'"' | b'\'' => {
                let close = text[i + 1..].find(c as char).ok_or_else(|| {
                    error(
                        start,
                        "the string is not closed".into(),
                        "close it with the same quote",
                    )
                })?;
                let inner = &text[i + 1..i + 1 + close];
                i += close + 2;
                Kind::Text(inner.to_string())
            }
            b'0'..=b'9' | b'-' | b'.' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_digit() || matches!(bytes[i], b'.' | b'-'))
                {
                    i += 1;
                }
                let n = text[start..i].parse().map_err(|_| {
                    error(
                        start,
                        format!("{:?} is not a number", &text[start..i]),
                        "write e.g. 200 or 2.5",
                    )
                })?;
                Kind::Num(n)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'-'))
                {
                    i += 1;
                }
                Kind::Name
            }
            _ => {
                let end = start + text[start..].chars().next().map_or(1, char::len_utf8);
                return Err(error(
                    start,
                    format!("unexpected {:?}", &text[start..end]),
                    "a condition uses names, numbers, quoted text, comparisons, and, or, not and parentheses",
                ));
            }
        };
        out.push(Token {
            kind,
            text: &text[start..i],
            offset: start,
        });
    }
    Ok(out)
}

struct Parser<'t, 's> {
    tokens: &'t [Token<'t>],
    at: usize,
    scope: &'s Scope,
    end: usize,
}

impl<'t> Parser<'t, '_> {
    fn peek(&self) -> Option<&'t Token<'t>> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<&'t Token<'t>> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        let hit = self
            .peek()
            .is_some_and(|t| t.kind == Kind::Name && t.text == word);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn or(&mut self) -> Result<Expr, TemplateError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, TemplateError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, TemplateError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, TemplateError> {
        if self.peek().is_some_and(|t| t.kind == Kind::Open) {
            self.at += 1;
            let inner = self.or()?;
            return match self.next() {
                Some(Token {
                    kind: Kind::Close, ..
                }) => Ok(inner),
                other => Err(error(
                    other.map_or(self.end, |t| t.offset),
                    "'(' is not closed".into(),
                    "close it with ')'",
                )),
            };
        }
        let left = self.operand()?;
        let Some(Token {
            kind: Kind::Op(op), ..
        }) = self.peek()
        else {
            return Ok(Expr::Truth(left));
        };
        self.at += 1;
        let right = self.operand()?;
        Ok(Expr::Compare(*op, left, right))
    }

    fn operand(&mut self) -> Result<Operand, TemplateError> {
        let end = self.end;
        let Some(t) = self.next() else {
            return Err(error(
                end,
                "the condition ends too soon".into(),
                "write e.g. `status == 200 and cart_id`",
            ));
        };
        Ok(match &t.kind {
            Kind::Num(n) => Operand::Num(*n),
            Kind::Text(s) => Operand::Text(s.clone()),
            Kind::Name => match t.text {
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                "status" => Operand::Status,
                "checks" => Operand::Checks,
                "len" => self.len(t)?,
                "and" | "or" | "not" => {
                    return Err(error(
                        t.offset,
                        format!("{:?} needs a condition before it", t.text),
                        "write e.g. `status == 200 and cart_id`",
                    ))
                }
                name => match self.scope.slot(name) {
                    Some(slot) if self.scope.is_list(name) => Operand::List(slot),
                    Some(slot) => Operand::Var(slot),
                    None => {
                        let known = self.scope.names().chain(["status", "checks", "len"]);
                        let hint = match crate::suggest::nearest(name, known) {
                            Some(n) => format!("did you mean {n}?"),
                            None => {
                                let names: Vec<&str> = self.scope.names().collect();
                                format!(
                                    "a condition reads status, checks and the variables defined before it{}",
                                    if names.is_empty() {
                                        String::new()
                                    } else {
                                        format!(": {}", names.join(", "))
                                    }
                                )
                            }
                        };
                        return Err(TemplateError {
                            offset: t.offset,
                            message: format!("unknown variable {name:?}"),
                            hint: Some(hint),
                        });
                    }
                },
            },
            _ => {
                return Err(error(
                    t.offset,
                    format!("unexpected {:?}", t.text),
                    "write e.g. `status == 200 and cart_id`",
                ))
            }
        })
    }

    /// `len(LIST)`, after `len`.
    fn len(&mut self, at: &Token<'_>) -> Result<Operand, TemplateError> {
        let bad = |offset| {
            error(
                offset,
                "bad len()".into(),
                "write len(NAME) with a list's name",
            )
        };
        if !matches!(
            self.next(),
            Some(Token {
                kind: Kind::Open,
                ..
            })
        ) {
            return Err(bad(at.offset));
        }
        let Some(name) = self.next().filter(|t| t.kind == Kind::Name) else {
            return Err(bad(at.offset));
        };
        if !matches!(
            self.next(),
            Some(Token {
                kind: Kind::Close,
                ..
            })
        ) {
            return Err(bad(at.offset));
        }
        match self.scope.slot(name.text) {
            Some(slot) if self.scope.is_list(name.text) => Ok(Operand::Len(slot)),
            _ => Err(error(
                name.offset,
                format!("{:?} is not a list", name.text),
                "len() counts a list's items: extract one with `pick: all`",
            )),
        }
    }
}
