//! A recording's exchanges as requests to replay: their headers and
//! bodies, masked values filled in, and the values that flowed between a
//! session's exchanges turned into variables the replay takes from its
//! own responses.
//!
//! A first pass over the recording ([`Flows::learn`]) notes, for each
//! exchange, which values later requests take from its response: the
//! response of exchange 12 must be read for `$.items[3].id` because
//! exchange 15 sent it back. The second pass ([`Converter::record`])
//! attaches that to each request ([`plan::RecordedExchange`]).

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use plan::ExtractFrom;
use plan::{BodyKind, Recorded, RecordedExchange, Take};

use crate::recording::{placeholders, Exchange, Head, Rule};
use crate::Record;

/// Headers a replay does not send as recorded: the session's cookie jar
/// sends cookies, throng sets the length, and a compressed answer could
/// not be read for the values later requests need.
const NOT_SENT: [&str; 5] = [
    "cookie",
    "host",
    "content-length",
    "accept-encoding",
    "user-agent",
];

/// The values that flow between exchanges, from a first pass.
#[derive(Debug, Default)]
pub struct Flows {
    vars: HashMap<(u64, Rule), usize>,
    gives: HashMap<u64, Vec<(usize, Rule)>>,
}

impl Flows {
    /// Notes what `e` takes from earlier responses.
    pub fn learn(&mut self, e: &Exchange) {
        for u in &e.uses {
            let next = self.vars.len();
            let var = *self.vars.entry((u.from, u.rule.clone())).or_insert(next);
            let gives = self.gives.entry(u.from).or_default();
            if !gives.iter().any(|(v, _)| *v == var) {
                gives.push((var, u.rule.clone()));
            }
        }
    }

    /// Values that flow (variables).
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no value flows.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

/// What the conversion found, for the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filled {
    /// Placeholders filled from the environment.
    pub from_env: u64,
    /// Placeholders with no value: each number and the requests that had
    /// it (a header with one is left out; elsewhere it is sent as it is).
    pub missing: BTreeMap<u64, u64>,
    /// Where each missing placeholder was first seen.
    pub missing_where: BTreeMap<u64, String>,
    /// Request bodies the recorder had cut (sent as recorded, shorter).
    pub bodies_cut: u64,
}

/// Turns exchanges into [`Record`]s.
pub struct Converter {
    flows: Flows,
    started_us: i64,
    secrets: HashMap<u64, String>,
    takes: HashMap<Rule, Option<Take>>,
    /// What was filled in and what was missing.
    pub filled: Filled,
}

/// The environment variable that fills placeholder `n`.
pub fn secret_var(n: u64) -> String {
    format!("THRONG_MASKED_{n}")
}

impl Converter {
    /// A converter for the recording `head` begins; `secrets` fill
    /// placeholders by number (from [`secret_var`]s).
    pub fn new(
        head: &Head,
        flows: Flows,
        secrets: HashMap<u64, String>,
    ) -> Result<Converter, String> {
        let started: jiff::Timestamp = head
            .started
            .parse()
            .map_err(|e| format!("the head's start {:?}: {e}", head.started))?;
        Ok(Converter {
            flows,
            started_us: started.as_microsecond(),
            secrets,
            takes: HashMap::new(),
            filled: Filled::default(),
        })
    }

    /// The request `e` makes, to replay.
    pub fn record(&mut self, e: Exchange) -> Result<Record, String> {
        let method = http::Method::from_bytes(e.method.as_bytes())
            .map_err(|_| format!("{:?} is not a method", e.method))?;
        let flowing = |text: &str| e.uses.iter().any(|u| text.contains(u.text.as_str()));
        let mut headers = Vec::with_capacity(e.headers.len());
        let mut user_agent = None;
        let mut content_type = String::new();
        for (name, value) in &e.headers {
            let name = name.to_ascii_lowercase();
            if name == "user-agent" {
                user_agent = Some(value.clone());
            }
            if name == "content-type" {
                content_type = value.to_ascii_lowercase();
            }
            if NOT_SENT.contains(&name.as_str()) {
                continue;
            }
            match self.fill(value, &flowing) {
                Some(value) => headers.push((name, value)),
                None => {
                    for (n, _) in placeholders(value) {
                        self.filled.missing_where.entry(n).or_insert_with(|| {
                            format!("the {name} header of {} {}", e.method, e.path)
                        });
                    }
                }
            }
        }
        let path = self
            .fill(&e.path, &flowing)
            .unwrap_or_else(|| self.note_missing(&e.path, "the path", &e));
        let body = match (&e.body, &e.body_b64) {
            (Some(text), _) => self
                .fill(text, &flowing)
                .unwrap_or_else(|| self.note_missing(text, "the body", &e))
                .into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|err| format!("body_b64: {err}"))?,
            (None, None) => Vec::new(),
        };
        self.filled.bodies_cut += u64::from(e.body_cut);
        let body_kind = if content_type.starts_with("application/x-www-form-urlencoded") {
            BodyKind::Form
        } else if content_type.contains("json") {
            BodyKind::Json
        } else {
            BodyKind::Raw
        };
        let uses = e
            .uses
            .iter()
            .filter_map(|u| {
                let var = *self.flows.vars.get(&(u.from, u.rule.clone()))?;
                Some((var, u.text.clone()))
            })
            .collect();
        let mut gives = Vec::new();
        for (var, rule) in self.flows.gives.get(&e.seq).cloned().unwrap_or_default() {
            let take = self
                .takes
                .entry(rule.clone())
                .or_insert_with(|| take(&rule))
                .clone();
            if let Some(take) = take {
                gives.push((var, take));
            }
        }
        let response_size = comparable_size(&e);
        Ok(Record {
            time_us: self
                .started_us
                .saturating_add(i64::try_from(e.at_us).unwrap_or(i64::MAX)),
            precise: true,
            method,
            path,
            ip: e.client,
            user_agent,
            session: Some(e.session.to_string()),
            recorded: Some(Recorded(std::sync::Arc::new(RecordedExchange {
                headers,
                body,
                body_kind,
                at_us: e.at_us,
                end_us: e.at_us.saturating_add(e.duration_us),
                status: e.status,
                response_size,
                uses,
                gives,
            }))),
        })
    }

    /// `text` with its placeholders filled from the environment; `None`
    /// when one has no value and does not flow from a response.
    fn fill(&mut self, text: &str, flowing: &dyn Fn(&str) -> bool) -> Option<String> {
        let found = placeholders(text);
        if found.is_empty() {
            return Some(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (n, range) in found {
            let holder = &text[range.clone()];
            out.push_str(&text[last..range.start]);
            if flowing(holder) {
                out.push_str(holder);
            } else if let Some(value) = self.secrets.get(&n) {
                self.filled.from_env += 1;
                out.push_str(value);
            } else {
                *self.filled.missing.entry(n).or_insert(0) += 1;
                return None;
            }
            last = range.end;
        }
        out.push_str(&text[last..]);
        Some(out)
    }

    fn note_missing(&mut self, text: &str, part: &str, e: &Exchange) -> String {
        for (n, _) in placeholders(text) {
            if !self.secrets.contains_key(&n) {
                self.filled
                    .missing_where
                    .entry(n)
                    .or_insert_with(|| format!("{part} of {} {}", e.method, e.path));
            }
        }
        text.to_string()
    }
}

/// The recorded response's size, when a replay's can be compared with it:
/// a body passed on as it was (not compressed), of a response that has one.
fn comparable_size(e: &Exchange) -> Option<u64> {
    let encoded = e.response_headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("content-encoding") && !v.eq_ignore_ascii_case("identity")
    });
    let bodiless = e.method == "HEAD" || matches!(e.status, 0 | 101 | 204 | 304);
    (!encoded && !bodiless && e.error.is_none()).then_some(e.response_size)
}

/// How a replay takes a value the recorder saw a response give.
fn take(rule: &Rule) -> Option<Take> {
    Some(match rule {
        Rule::Json(path) => Take::First(ExtractFrom::Json(
            serde_json_path::JsonPath::parse(path).ok()?,
        )),
        Rule::Header(name) => Take::First(ExtractFrom::Header(name.clone())),
        Rule::Location => Take::LastSegment(ExtractFrom::Header("location".into())),
        Rule::Input(name) => {
            if name.contains(['"', '\\']) {
                return None;
            }
            let selector = scraper::Selector::parse(&format!("input[name=\"{name}\"]")).ok()?;
            Take::First(ExtractFrom::Css(Box::new(selector), Some("value".into())))
        }
        Rule::Link { parent, nth } => {
            let re = regex::Regex::new(&format!(
                r#"\bhref\s*=\s*["']{}/([^"'?#/]*)["'?#]"#,
                regex::escape(parent)
            ))
            .ok()?;
            Take::Nth(ExtractFrom::Regex(re, 1), *nth)
        }
    })
}
