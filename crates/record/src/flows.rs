//! Values that flow from a response into a later request of the same
//! session: an id in a JSON listing, a link's path, a CSRF field, a token.
//! A replay against a fresh copy of the service gets other values, so it
//! must take them from its own responses: the recorder, which sees each
//! response body as it passes (and never writes it), notes where each
//! value came from, and the request that sends one back says so
//! ([`replay::recording::Use`]). Pure: the writer calls it in order.
//!
//! A response offers its JSON leaves (by path, positions included: "the
//! third item's id"), some headers (`Location`, and any whose name says
//! token or csrf), hidden form fields (by name) and the links of an HTML
//! page (by position among the links of the same shape). A request uses
//! an offer when one of its words (path segments, query and form values,
//! header values, JSON strings) is exactly an offered value that no
//! earlier request of the session had sent before it was offered (a value
//! the client already had came from elsewhere). Values shorter than
//! [`MIN_VALUE`] are left alone: "1" and "true" match everywhere by
//! chance. Memory per session is bounded ([`OFFERS`], [`SENT`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::LazyLock;

use regex::Regex;
use replay::recording::Rule;
use serde_json::Value;

/// The shortest value followed.
pub const MIN_VALUE: usize = 4;

/// The longest value followed: longer ones are documents, not ids.
const MAX_VALUE: usize = 2048;

/// Offers kept per session (the latest).
pub const OFFERS: usize = 512;

/// Hashes of values a session's requests sent, kept per session.
pub const SENT: usize = 4096;

/// JSON leaves looked at in one response; array items per array.
const JSON_LEAVES: usize = 2000;
const JSON_ITEMS: usize = 100;

#[derive(Default)]
struct Session {
    /// Value to (the exchange that offered it, how to take it).
    offers: HashMap<String, (u64, Rule)>,
    order: VecDeque<String>,
    sent: HashSet<u64>,
    sent_order: VecDeque<u64>,
}

/// Every session's offers.
pub struct Flows {
    hasher: std::hash::RandomState,
    sessions: HashMap<u64, Session>,
}

impl Default for Flows {
    fn default() -> Flows {
        Flows::new()
    }
}

/// A value a request sent back, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The value, as the response gave it.
    pub value: String,
    /// The exchange whose response offered it.
    pub from: u64,
    /// How to take it from that response.
    pub rule: Rule,
}

impl Flows {
    /// No sessions yet.
    pub fn new() -> Flows {
        Flows {
            hasher: std::hash::RandomState::new(),
            sessions: HashMap::new(),
        }
    }

    /// Forgets a session (it ended).
    pub fn forget(&mut self, session: u64) {
        self.sessions.remove(&session);
    }

    /// Sessions with state.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The offers of its session a request's `words` send back; then
    /// remembers the words as sent.
    pub fn request(&mut self, session: u64, words: &[&str]) -> Vec<Found> {
        let s = self.sessions.entry(session).or_default();
        let mut found: Vec<Found> = Vec::new();
        for w in words {
            if let Some((from, rule)) = s.offers.get(*w) {
                if !found.iter().any(|f| f.value == *w) {
                    found.push(Found {
                        value: w.to_string(),
                        from: *from,
                        rule: rule.clone(),
                    });
                }
            }
        }
        for w in words {
            if w.len() < MIN_VALUE {
                continue;
            }
            let h = self.hasher.hash_one(w);
            if s.sent.insert(h) {
                s.sent_order.push_back(h);
                if s.sent_order.len() > SENT {
                    if let Some(old) = s.sent_order.pop_front() {
                        s.sent.remove(&old);
                    }
                }
            }
        }
        found
    }

    /// Remembers what exchange `seq`'s response offers.
    pub fn response(&mut self, session: u64, seq: u64, offers: Vec<(String, Rule)>) {
        let s = self.sessions.entry(session).or_default();
        for (value, rule) in offers {
            if value.len() < MIN_VALUE
                || value.len() > MAX_VALUE
                || s.sent.contains(&self.hasher.hash_one(value.as_str()))
            {
                continue;
            }
            if s.offers.insert(value.clone(), (seq, rule)).is_none() {
                s.order.push_back(value);
                if s.order.len() > OFFERS {
                    if let Some(old) = s.order.pop_front() {
                        s.offers.remove(&old);
                    }
                }
            }
        }
    }
}

/// The words of a request's text that could be values: split at the
/// characters that separate values in paths, queries, forms, headers and
/// JSON; a `key=value` word also gives its value alone.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| {
        matches!(
            c,
            '/' | '?' | '&' | ';' | ',' | ':' | '"' | '\'' | '{' | '}' | '[' | ']' | '<' | '>'
        ) || c.is_whitespace()
    })
    .flat_map(|w| {
        let value = w.split_once('=').map(|(_, v)| v);
        std::iter::once(w).chain(value)
    })
    .filter(|w| w.len() >= MIN_VALUE)
}

/// A word of a path or form as the value it encodes (`%XX` escapes, and
/// `+` as a space), when that differs from the word.
pub fn decoded(word: &str) -> Option<String> {
    if word.contains('=') || !word.contains(['%', '+']) {
        return None;
    }
    let bytes: Vec<u8> = form_urlencoded::parse(word.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned().into_bytes())?;
    let text = String::from_utf8(bytes).ok()?;
    (text != word && text.len() >= MIN_VALUE).then_some(text)
}

/// What a response offers later requests, from its headers and (the first
/// part of) its body.
pub fn offers(headers: &http::HeaderMap, body: &[u8]) -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        let Ok(value) = value.to_str() else { continue };
        if name == "location" {
            // A Location sends the client to a path it then asks for:
            // `/orders/7f3a` offers `7f3a`.
            let path = value.split(['?', '#']).next().unwrap_or("");
            if let Some((_, last)) = path.rsplit_once('/') {
                out.push((last.to_string(), Rule::Location));
            }
        } else if name.contains("token") || name.contains("csrf") {
            out.push((value.to_string(), Rule::Header(name.to_string())));
        }
    }
    let kind = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if kind.contains("json") {
        if let Ok(json) = serde_json::from_slice::<Value>(body) {
            let mut budget = JSON_LEAVES;
            json_leaves(&json, "$", &mut out, &mut budget);
        }
    } else if kind.contains("html") {
        let text = String::from_utf8_lossy(body);
        html(&text, &mut out);
    }
    out
}

fn json_leaves(v: &Value, path: &str, out: &mut Vec<(String, Rule)>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let simple = !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit());
                let p = if simple {
                    format!("{path}.{k}")
                } else {
                    format!("{path}[{}]", serde_json::Value::String(k.clone()))
                        .replace("[\"", "['")
                        .replace("\"]", "']")
                };
                if !simple && (k.contains('\'') || k.contains('\\')) {
                    continue;
                }
                json_leaves(v, &p, out, budget);
            }
        }
        Value::Array(list) => {
            for (i, v) in list.iter().enumerate().take(JSON_ITEMS) {
                json_leaves(v, &format!("{path}[{i}]"), out, budget);
            }
        }
        Value::String(s) => {
            *budget -= 1;
            out.push((s.clone(), Rule::Json(path.to_string())));
        }
        Value::Number(n) => {
            *budget -= 1;
            out.push((n.to_string(), Rule::Json(path.to_string())));
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Hidden form fields by name; link paths by their shape and position.
fn html(text: &str, out: &mut Vec<(String, Rule)>) {
    static INPUT: LazyLock<Regex> = LazyLock::new(|| {
        #[allow(clippy::unwrap_used)] // a constant, tested
        Regex::new(r#"<input[^>]*\bname\s*=\s*["']([^"']+)["'][^>]*\bvalue\s*=\s*["']([^"']*)["']"#)
            .unwrap()
    });
    static HREF: LazyLock<Regex> = LazyLock::new(|| {
        #[allow(clippy::unwrap_used)] // a constant, tested
        Regex::new(r#"\bhref\s*=\s*["'](/[^"'?#]*)"#).unwrap()
    });
    for c in INPUT.captures_iter(text) {
        out.push((c[2].to_string(), Rule::Input(c[1].to_string())));
    }
    // A link's last segment (`/funds/f3a9` offers `f3a9`), as the n-th
    // link under the same parent path: "the third fund in the listing".
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in HREF.captures_iter(text).take(1000) {
        let path = &c[1];
        let Some((parent, last)) = path.rsplit_once('/') else {
            continue;
        };
        // Counted whatever their length, as a replay counts them.
        let n = seen.entry(parent.to_string()).or_insert(0);
        if last.len() >= MIN_VALUE {
            out.push((
                last.to_string(),
                Rule::Link {
                    parent: parent.to_string(),
                    nth: *n,
                },
            ));
        }
        *n += 1;
    }
}
