//! What a recording keeps out of sight, and how: each secret value is
//! replaced by a placeholder ([`replay::recording::placeholder`]), the
//! same one for the same value, so a token's path from one request to the
//! next survives. Pure: no I/O, the state is the value-to-number map.
//!
//! Masked by default: the credential headers ([`DEFAULT_HEADERS`]), and
//! in headers, query strings, form bodies (urlencoded and multipart) and
//! JSON bodies every key whose
//! lowercase name contains one of [`DEFAULT_FIELDS`] (`password`,
//! `access_token`, `X-Session-Id`, ...). Masking too much is the safe
//! mistake: a key is kept in clear only when the user names it.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use regex::bytes::Regex;
use replay::recording::placeholder;
use serde_json_path::JsonPath;

/// Headers masked by default (lowercase).
pub const DEFAULT_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Key names (headers, query, form and JSON keys) are masked when their
/// lowercase form contains one of these.
pub const DEFAULT_FIELDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "auth",
    "session",
    "signature",
    "credential",
    "private",
    "otp",
    "cvv",
    "cvc",
    "card",
    "ssn",
];

/// Distinct values remembered; past this the map starts again (a value
/// seen before then and again after gets a second placeholder).
const REMEMBERED: usize = 1 << 22;

/// What to mask.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Headers masked whole (lowercase names); `Cookie` and `Set-Cookie`
    /// keep their cookie names, `Authorization` its scheme.
    pub headers: Vec<String>,
    /// Key names containing one of these (lowercase) are masked.
    pub fields: Vec<String>,
    /// Key names (lowercase, whole) kept in clear although they match.
    pub keep: Vec<String>,
    /// JSONPaths masked in JSON bodies, as written and compiled.
    pub json: Vec<(String, JsonPath)>,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            headers: DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect(),
            fields: DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
            keep: Vec::new(),
            json: Vec::new(),
        }
    }
}

impl Rules {
    /// Adds a JSONPath to mask; the error says what is wrong with it.
    pub fn add_json(&mut self, path: &str) -> Result<(), String> {
        let compiled = JsonPath::parse(path).map_err(|e| e.to_string())?;
        self.json.push((path.to_string(), compiled));
        Ok(())
    }

    /// Whether a key (a header, query, form or JSON key) is secret.
    pub fn secret_key(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        !self.keep.contains(&key) && self.fields.iter().any(|f| key.contains(f.as_str()))
    }

    fn secret_header(&self, name: &str) -> bool {
        (self.headers.iter().any(|h| h == name) || self.secret_key(name))
            && !self.keep.iter().any(|k| k == name)
    }
}

/// The `boundary` of a `multipart/form-data` content type, as written
/// (case kept, quotes removed).
fn kind_boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

/// Masks values, numbering each distinct one.
pub struct Masker {
    rules: Rules,
    hasher: std::hash::RandomState,
    seen: HashMap<u64, u64>,
    next: u64,
    /// Values replaced so far.
    pub masked: u64,
}

impl Masker {
    /// A masker with these rules and no values seen.
    pub fn new(rules: Rules) -> Masker {
        Masker {
            rules,
            // Keyed at random: the hashes of secrets are never written,
            // and could not be reversed by a reader if they were.
            hasher: std::hash::RandomState::new(),
            seen: HashMap::new(),
            next: 0,
            masked: 0,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Distinct values masked (placeholders handed out).
    pub fn placeholders(&self) -> u64 {
        self.next
    }

    /// The placeholder for `value` (an empty value stays empty).
    pub fn value(&mut self, value: &str) -> String {
        if value.is_empty() {
            return String::new();
        }
        self.masked += 1;
        if self.seen.len() >= REMEMBERED {
            self.seen.clear();
        }
        let hash = self.hasher.hash_one(value);
        let next = &mut self.next;
        let n = *self.seen.entry(hash).or_insert_with(|| {
            *next += 1;
            *next
        });
        placeholder(n)
    }

    /// The placeholder `value` was given, if it was masked.
    pub fn placeholder_of(&self, value: &str) -> Option<String> {
        self.seen
            .get(&self.hasher.hash_one(value))
            .map(|&n| placeholder(n))
    }

    /// A header's value as it is written: `None` when it is not masked.
    pub fn header(&mut self, name: &str, value: &str) -> Option<String> {
        if !self.rules.secret_header(name) {
            return None;
        }
        Some(match name {
            "cookie" => value
                .split(';')
                .map(|pair| self.cookie_pair(pair.trim()))
                .collect::<Vec<_>>()
                .join("; "),
            "set-cookie" => match value.split_once(';') {
                Some((pair, attributes)) => {
                    format!("{};{attributes}", self.cookie_pair(pair.trim()))
                }
                None => self.cookie_pair(value.trim()),
            },
            _ => match value.split_once(' ') {
                // `Bearer TOKEN`, `Basic CREDENTIALS`: the scheme says how
                // to fill it in again, the rest is the secret.
                Some((scheme, secret))
                    if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    format!("{scheme} {}", self.value(secret.trim()))
                }
                _ => self.value(value),
            },
        })
    }

    fn cookie_pair(&mut self, pair: &str) -> String {
        match pair.split_once('=') {
            Some((name, value)) => format!("{name}={}", self.value(value)),
            None => self.value(pair),
        }
    }

    /// A path with its query's secret values masked; `None` when none is.
    pub fn path(&mut self, path: &str) -> Option<String> {
        let (before, query) = path.split_once('?')?;
        let query = self.pairs(query.as_bytes())?;
        Some(format!("{before}?{}", String::from_utf8_lossy(&query)))
    }

    /// `a=1&password=2` with secret values masked, every other byte as
    /// it was (re-encoding would change how the rest is escaped); `None`
    /// when nothing is.
    fn pairs(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len());
        let mut changed = false;
        for (i, pair) in text.split(|&b| b == b'&').enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let decoded: String = form_urlencoded::parse(key)
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            if !value.is_empty() && self.rules.secret_key(&decoded) {
                out.extend_from_slice(key);
                out.push(b'=');
                let value = String::from_utf8_lossy(value);
                out.extend_from_slice(self.value(&value).as_bytes());
                changed = true;
            } else {
                out.extend_from_slice(pair);
            }
        }
        changed.then_some(out)
    }

    /// A request body with its secret values masked, by its content type:
    /// form fields (urlencoded or multipart) and JSON keys by name,
    /// JSONPaths; `None` when nothing is. Other bodies are written as they
    /// are.
    pub fn body(&mut self, content_type: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
        let kind = content_type.unwrap_or("").to_ascii_lowercase();
        if kind.starts_with("application/x-www-form-urlencoded") {
            self.pairs(body)
        } else if kind.contains("json") {
            let by_key = self.json_keys(body);
            let text = by_key.as_deref().unwrap_or(body);
            match self.json_paths(text) {
                Some(masked) => Some(masked),
                None => by_key,
            }
        } else if kind.starts_with("multipart/form-data") {
            let boundary = kind_boundary(content_type.unwrap_or(""))?;
            self.multipart(&boundary, body)
        } else {
            None
        }
    }

    /// The parts of a `multipart/form-data` body whose field name is
    /// secret, their content masked (the last part too when the body was
    /// cut at the cap); every other byte as it was.
    fn multipart(&mut self, boundary: &str, body: &[u8]) -> Option<Vec<u8>> {
        let part = Regex::new(&format!(
            r#"(?s-u)name="([^"\r\n]{{1,200}})"[^\r\n]*\r\n(?:[^\r\n]*\r\n)*?\r\n(.*?)(?:\r\n--{}|\z)"#,
            regex::escape(boundary)
        ))
        .ok()?;
        let mut out = Vec::new();
        let mut last = 0;
        for caps in part.captures_iter(body) {
            let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            let name = String::from_utf8_lossy(name.as_bytes());
            if value.is_empty() || !self.rules.secret_key(&name) {
                continue;
            }
            out.extend_from_slice(&body[last..value.start()]);
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            out.extend_from_slice(self.value(&text).as_bytes());
            last = value.end();
        }
        if last == 0 {
            return None;
        }
        out.extend_from_slice(&body[last..]);
        Some(out)
    }

    /// `"key": value` pairs whose key is secret, found in the text (so a
    /// body cut at the cap is masked too, and the rest keeps its bytes).
    fn json_keys(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        static PAIR: LazyLock<Regex> = LazyLock::new(|| {
            #[allow(clippy::unwrap_used)] // a constant, tested
            Regex::new(r#""((?:[^"\\]|\\.){1,200})"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)"#)
                .unwrap()
        });
        let mut out = Vec::new();
        let mut last = 0;
        for caps in PAIR.captures_iter(body) {
            let (Some(key), Some(value)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            let key = String::from_utf8_lossy(key.as_bytes());
            if !self.rules.secret_key(&key) {
                continue;
            }
            let raw = value.as_bytes();
            let inner = if raw.first() == Some(&b'"') {
                &raw[1..raw.len() - 1]
            } else {
                raw
            };
            out.extend_from_slice(&body[last..value.start()]);
            out.push(b'"');
            out.extend_from_slice(self.value(&String::from_utf8_lossy(inner)).as_bytes());
            out.push(b'"');
            last = value.end();
        }
        if last == 0 {
            return None;
        }
        out.extend_from_slice(&body[last..]);
        Some(out)
    }

    /// The user's JSONPaths: every string or number they select (inside
    /// whatever they select) masked. `None` if there are none, the body
    /// is no JSON, or nothing was selected.
    fn json_paths(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        if self.rules.json.is_empty() {
            return None;
        }
        let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let mut pointers = Vec::new();
        for (_, path) in &self.rules.json {
            for node in path.query_located(&value) {
                pointers.push(node.location().to_json_pointer());
            }
        }
        let mut changed = false;
        for pointer in pointers {
            if let Some(node) = value.pointer_mut(&pointer) {
                changed |= self.mask_scalars(node);
            }
        }
        changed.then(|| serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec()))
    }

    fn mask_scalars(&mut self, node: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match node {
            Value::String(s) if s.starts_with("__masked_") => false,
            Value::String(s) => {
                *node = Value::String(self.value(&s.clone()));
                true
            }
            Value::Number(n) => {
                *node = Value::String(self.value(&n.to_string()));
                true
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |acc, i| self.mask_scalars(i) | acc),
            Value::Object(map) => map
                .values_mut()
                .fold(false, |acc, v| self.mask_scalars(v) | acc),
            Value::Null | Value::Bool(_) => false,
        }
    }
}
