//! Checks on what users see, and values extracted from responses; compiled
//! once (regexes, JSONPath, CSS selectors), evaluated per response.
//!
//! Evaluation is pure: it takes a [`ResponseView`] and the user's
//! variables, so every check's meaning is tested without a network.

use std::time::Duration;

use regex::Regex;
use serde_json_path::JsonPath;

use crate::{RenderCtx, Slot, Template};

/// Which statuses a status check accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this code.
    Code(u16),
    /// Any code of this class (2 for 2xx).
    Class(u16),
}

/// What a check tests.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// The status is one of these.
    Status(Vec<StatusMatch>),
    /// The body contains this text.
    BodyContains(Template),
    /// The body does not contain this text.
    BodyNotContains(Template),
    /// The body matches this regex.
    BodyMatches(Regex),
    /// The JSON body has a value at this path.
    JsonExists(JsonPath),
    /// The JSON body has no value at this path (or is not JSON).
    JsonAbsent(JsonPath),
    /// The JSON body's value at this path equals this text (strings compare
    /// as their content, other values as their JSON text).
    JsonEquals(JsonPath, Template),
    /// The header is present.
    HeaderExists(String),
    /// The header is absent.
    HeaderAbsent(String),
    /// The header equals this text.
    HeaderEquals(String, Template),
    /// The header matches this regex.
    HeaderMatches(String, Regex),
    /// The response took at most this long (from the intended send time).
    MaxLatency(Duration),
}

/// What to do when a check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFail {
    /// Go on with the flow.
    Continue,
    /// End this session's flow here.
    StopFlow,
}

/// A named check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Index in [`crate::Scenario::checks`].
    pub id: usize,
    /// What it tests.
    pub kind: CheckKind,
    /// What a failure does.
    pub on_fail: OnFail,
    /// Whether it compares the response with a value an earlier response
    /// gave (an extracted variable): a read-your-writes check, whose
    /// failures are stale reads.
    pub reads_back: bool,
}

/// Where an extracted value comes from. Each source has matches in
/// document order; the extract's [`PickFrom`] says which it takes.
#[derive(Debug, Clone)]
pub enum ExtractFrom {
    /// The values at a JSONPath (strings as their content).
    Json(JsonPath),
    /// A regex capture group in the body, at each match.
    Regex(Regex, usize),
    /// A response header (each occurrence).
    Header(String),
    /// A cookie the response sets.
    Cookie(String),
    /// The elements matching a CSS selector: each one's text, or an attribute.
    Css(Box<scraper::Selector>, Option<String>),
}

/// Which of a source's matches an extract takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PickFrom {
    /// The first (the default).
    #[default]
    First,
    /// One at random, each match equally likely.
    Random,
    /// Every match, as a list (the variable is a list: `for_each` walks it).
    All,
}

/// A value taken from a response into a variable.
#[derive(Debug, Clone)]
pub struct Extract {
    /// The variable's slot (a list's, with [`PickFrom::All`]).
    pub slot: Slot,
    /// Where the value comes from.
    pub from: ExtractFrom,
    /// Which match it takes.
    pub pick: PickFrom,
}

/// What an extract took from one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// One value (`first`, `random`), or `None` when nothing matched.
    One(Option<String>),
    /// Every match (`all`), empty when nothing matched.
    All(Vec<String>),
}

impl Taken {
    /// Whether nothing matched: the extraction missed.
    pub fn missed(&self) -> bool {
        match self {
            Taken::One(v) => v.is_none(),
            Taken::All(v) => v.is_empty(),
        }
    }
}

/// Takes from `matches` what `pick` says: the first, one at random
/// (reservoir sampling, one pass, nothing collected) or all.
fn pick_among<T>(
    mut matches: impl Iterator<Item = T>,
    pick: PickFrom,
    rng: &mut fastrand::Rng,
    text: impl Fn(T) -> String,
) -> Taken {
    match pick {
        PickFrom::First => Taken::One(matches.next().map(text)),
        PickFrom::Random => {
            let mut chosen = None;
            for (seen, m) in matches.enumerate() {
                if rng.usize(..=seen) == 0 {
                    chosen = Some(m);
                }
            }
            Taken::One(chosen.map(text))
        }
        PickFrom::All => Taken::All(matches.map(text).collect()),
    }
}

/// What checks and extractors see of a response.
pub struct ResponseView<'a> {
    /// Status code.
    pub status: u16,
    /// Headers (names as sent; compared without case).
    pub headers: &'a [(String, String)],
    /// The body (possibly truncated at the capture limit).
    pub body: &'a [u8],
    /// Latency from the intended send time.
    pub latency: Duration,
}

impl ResponseView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.body)
    }
}

/// The body parsed as JSON, once per response, only when asked.
pub struct LazyJson<'a> {
    body: &'a [u8],
    parsed: Option<Option<serde_json::Value>>,
}

impl<'a> LazyJson<'a> {
    /// Wraps a body.
    pub fn new(body: &'a [u8]) -> LazyJson<'a> {
        LazyJson { body, parsed: None }
    }

    fn get(&mut self) -> Option<&serde_json::Value> {
        self.parsed
            .get_or_insert_with(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }
}

/// A JSON value as text: strings as their content.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl CheckKind {
    /// What of the response it looks at: `status`, `body`, `header` or
    /// `latency`, as reports name it.
    pub fn part(&self) -> &'static str {
        match self {
            CheckKind::Status(_) => "status",
            CheckKind::BodyContains(_)
            | CheckKind::BodyNotContains(_)
            | CheckKind::BodyMatches(_)
            | CheckKind::JsonExists(_)
            | CheckKind::JsonAbsent(_)
            | CheckKind::JsonEquals(..) => "body",
            CheckKind::HeaderExists(_)
            | CheckKind::HeaderAbsent(_)
            | CheckKind::HeaderEquals(..)
            | CheckKind::HeaderMatches(..) => "header",
            CheckKind::MaxLatency(_) => "latency",
        }
    }

    /// The header a header check looks at.
    pub fn header(&self) -> Option<&str> {
        match self {
            CheckKind::HeaderExists(h)
            | CheckKind::HeaderAbsent(h)
            | CheckKind::HeaderEquals(h, _)
            | CheckKind::HeaderMatches(h, _) => Some(h),
            _ => None,
        }
    }

    /// The template the response is compared with, if any.
    pub fn expected(&self) -> Option<&Template> {
        match self {
            CheckKind::BodyContains(t)
            | CheckKind::BodyNotContains(t)
            | CheckKind::JsonEquals(_, t)
            | CheckKind::HeaderEquals(_, t) => Some(t),
            _ => None,
        }
    }
}

impl Check {
    /// Whether the response passes.
    pub fn passes(
        &self,
        r: &ResponseView<'_>,
        json: &mut LazyJson<'_>,
        ctx: &mut RenderCtx<'_>,
    ) -> bool {
        match &self.kind {
            CheckKind::Status(set) => set.iter().any(|m| match m {
                StatusMatch::Code(c) => r.status == *c,
                StatusMatch::Class(c) => r.status / 100 == *c,
            }),
            CheckKind::BodyContains(t) => r.text().contains(&t.render_string(ctx)),
            CheckKind::BodyNotContains(t) => !r.text().contains(&t.render_string(ctx)),
            CheckKind::BodyMatches(re) => re.is_match(&r.text()),
            CheckKind::JsonExists(path) => json.get().is_some_and(|v| !path.query(v).is_empty()),
            CheckKind::JsonAbsent(path) => json.get().is_none_or(|v| path.query(v).is_empty()),
            CheckKind::JsonEquals(path, t) => {
                let expected = t.render_string(ctx);
                json.get()
                    .and_then(|v| path.query(v).first().map(json_text))
                    .is_some_and(|actual| actual == expected)
            }
            CheckKind::HeaderExists(name) => r.header(name).is_some(),
            CheckKind::HeaderAbsent(name) => r.header(name).is_none(),
            CheckKind::HeaderEquals(name, t) => {
                r.header(name).is_some_and(|v| v == t.render_string(ctx))
            }
            CheckKind::HeaderMatches(name, re) => r.header(name).is_some_and(|v| re.is_match(v)),
            CheckKind::MaxLatency(max) => r.latency <= *max,
        }
    }
}

impl Extract {
    /// What the response gives, by the extract's pick.
    pub fn take(
        &self,
        r: &ResponseView<'_>,
        json: &mut LazyJson<'_>,
        rng: &mut fastrand::Rng,
    ) -> Taken {
        self.from.take_as(self.pick, r, json, rng)
    }

    /// The first value, if the response has one.
    pub fn value(&self, r: &ResponseView<'_>, json: &mut LazyJson<'_>) -> Option<String> {
        match self
            .from
            .take_as(PickFrom::First, r, json, &mut fastrand::Rng::with_seed(0))
        {
            Taken::One(v) => v,
            Taken::All(mut v) => (!v.is_empty()).then(|| v.swap_remove(0)),
        }
    }
}

/// What a step needs captured from its responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Response headers.
    pub headers: bool,
    /// The response body.
    pub body: bool,
}

impl Needs {
    /// What `checks` and `extract` read.
    pub fn of(checks: &[Check], extract: &[Extract]) -> Needs {
        let mut n = Needs::default();
        for c in checks {
            match c.kind {
                CheckKind::BodyContains(_)
                | CheckKind::BodyNotContains(_)
                | CheckKind::BodyMatches(_)
                | CheckKind::JsonExists(_)
                | CheckKind::JsonAbsent(_)
                | CheckKind::JsonEquals(..) => n.body = true,
                CheckKind::HeaderExists(_)
                | CheckKind::HeaderAbsent(_)
                | CheckKind::HeaderEquals(..)
                | CheckKind::HeaderMatches(..) => n.headers = true,
                CheckKind::Status(_) | CheckKind::MaxLatency(_) => {}
            }
        }
        for e in extract {
            match e.from {
                ExtractFrom::Json(_) | ExtractFrom::Regex(..) | ExtractFrom::Css(..) => {
                    n.body = true
                }
                ExtractFrom::Header(_) | ExtractFrom::Cookie(_) => n.headers = true,
            }
        }
        n
    }
}

impl ExtractFrom {
    /// What this source finds in a response, picked as `pick` says.
    pub fn take_as(
        &self,
        pick: PickFrom,
        r: &ResponseView<'_>,
        json: &mut LazyJson<'_>,
        rng: &mut fastrand::Rng,
    ) -> Taken {
        match self {
            ExtractFrom::Json(path) => match json.get() {
                Some(v) => pick_among(path.query(v).into_iter(), pick, rng, json_text),
                None => pick_among(
                    std::iter::empty::<&serde_json::Value>(),
                    pick,
                    rng,
                    json_text,
                ),
            },
            ExtractFrom::Regex(re, group) => {
                let text = r.text();
                let found = re
                    .captures_iter(&text)
                    .filter_map(|c| c.get(*group).map(|m| m.as_str()));
                pick_among(found, pick, rng, str::to_string)
            }
            ExtractFrom::Header(name) => {
                let found = r
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str());
                pick_among(found, pick, rng, str::to_string)
            }
            ExtractFrom::Cookie(name) => {
                let found = r
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                    .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
                    .filter(|(n, _)| n.trim() == name)
                    .map(|(_, v)| v.trim().trim_matches('"'));
                pick_among(found, pick, rng, str::to_string)
            }
            ExtractFrom::Css(selector, attr) => {
                let doc = scraper::Html::parse_document(&r.text());
                let found = doc.select(selector).filter_map(|el| match attr {
                    Some(a) => el.value().attr(a).map(str::to_string),
                    None => Some(el.text().collect::<String>().trim().to_string()),
                });
                pick_among(found, pick, rng, |s| s)
            }
        }
    }
}
